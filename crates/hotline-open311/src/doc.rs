//! One response, two formats: every Open311 answer is built once as a [`Doc`] (a root element and ordered
//! fields) and written as XML (the required format) or as JSON by the spec's "Spark convention": the root element
//! is dropped, a list becomes an array, an element with children an object, an empty element `null`.

use std::fmt::Write;

/// A value in a response document.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    /// Written as is: the caller formats it (a JSON number is also valid XML text).
    Number(String),
    Bool(bool),
    /// `<name/>` in XML, `null` in JSON.
    Null,
    /// Children in order: `<a>..</a><b>..</b>` / `{"a":..,"b":..}`.
    Fields(Vec<(&'static str, Node)>),
    /// Repeated elements named `.0`: `<x>..</x><x>..</x>` / `[..,..]`.
    List(&'static str, Vec<Node>),
}

impl Node {
    pub fn text(s: impl Into<String>) -> Node {
        Node::Text(s.into())
    }

    /// Text, or `Null` when there is none.
    pub fn opt(s: Option<impl Into<String>>) -> Node {
        s.map_or(Node::Null, |s| Node::Text(s.into()))
    }

    pub fn number(n: impl std::fmt::Display) -> Node {
        Node::Number(n.to_string())
    }
}

/// A whole response: the root element and its content.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub root: &'static str,
    pub body: Node,
}

/// The format a client asked for by the resource's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
}

impl Format {
    /// Splits `services.json` into (`services`, Json). None without a known extension.
    pub fn split(file: &str) -> Option<(&str, Format)> {
        if let Some(name) = file.strip_suffix(".xml") {
            Some((name, Format::Xml))
        } else {
            file.strip_suffix(".json").map(|name| (name, Format::Json))
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Xml => "text/xml; charset=utf-8",
            Format::Json => "application/json; charset=utf-8",
        }
    }
}

impl Doc {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Xml => self.to_xml(),
            Format::Json => {
                let mut out = String::new();
                json_text(&mut out, &self.body);
                out
            }
        }
    }

    /// XML 1.0 with the declaration the spec asks for, no namespace.
    pub fn to_xml(&self) -> String {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
        element(&mut out, self.root, &self.body);
        out.push('\n');
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        json(&self.body)
    }
}

fn element(out: &mut String, name: &str, node: &Node) {
    match node {
        Node::Null => {
            let _ = write!(out, "<{name}/>");
        }
        Node::Text(t) => {
            let _ = write!(out, "<{name}>");
            escape(out, t);
            let _ = write!(out, "</{name}>");
        }
        Node::Number(n) => {
            let _ = write!(out, "<{name}>");
            escape(out, n);
            let _ = write!(out, "</{name}>");
        }
        Node::Bool(b) => {
            let _ = write!(out, "<{name}>{b}</{name}>");
        }
        Node::Fields(fields) => {
            let _ = write!(out, "<{name}>");
            for (child, value) in fields {
                element(out, child, value);
            }
            let _ = write!(out, "</{name}>");
        }
        Node::List(child, items) => {
            let _ = write!(out, "<{name}>");
            for item in items {
                element(out, child, item);
            }
            let _ = write!(out, "</{name}>");
        }
    }
}

/// Escapes text content. Characters XML 1.0 cannot carry at all (most C0 controls) are dropped; a carriage
/// return is written as a reference, since a parser would otherwise turn it into a line feed.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

/// JSON text with the fields in document order (a `serde_json::Map` would sort them).
fn json_text(out: &mut String, node: &Node) {
    match node {
        Node::Fields(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::from(*k).to_string());
                out.push(':');
                json_text(out, v);
            }
            out.push('}');
        }
        Node::List(_, items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_text(out, item);
            }
            out.push(']');
        }
        other => out.push_str(&json(other).to_string()),
    }
}

fn json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Null => Value::Null,
        Node::Text(t) => Value::String(t.clone()),
        Node::Number(n) => serde_json::from_str::<serde_json::Number>(n).map_or_else(|_| Value::String(n.clone()), Value::Number),
        Node::Bool(b) => Value::Bool(*b),
        Node::Fields(fields) => Value::Object(fields.iter().map(|(k, v)| ((*k).to_owned(), json(v))).collect()),
        Node::List(_, items) => Value::Array(items.iter().map(json).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Doc {
        Doc {
            root: "service_requests",
            body: Node::List(
                "request",
                vec![Node::Fields(vec![
                    ("service_request_id", Node::text("AB12CD34")),
                    ("description", Node::text("Ổ gà <to> & \"sâu\" 'lắm'\r\nở Dĩ An\u{1}")),
                    ("lat", Node::number(10.9)),
                    ("account_id", Node::Null),
                ])],
            ),
        }
    }

    #[test]
    fn xml_is_well_formed_escaped_and_vietnamese_round_trips() {
        let xml = sample().to_xml();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service_requests><request>"));
        let doc = roxmltree::Document::parse(&xml).expect("well-formed");
        let request = doc.root_element().first_element_child().expect("request");
        let names: Vec<&str> = request.children().filter(|n| n.is_element()).map(|n| n.tag_name().name()).collect();
        assert_eq!(names, ["service_request_id", "description", "lat", "account_id"]);
        let description = request.children().find(|n| n.has_tag_name("description")).and_then(|n| n.text());
        // The control character is dropped; the CR survives as a reference.
        assert_eq!(description, Some("Ổ gà <to> & \"sâu\" 'lắm'\r\nở Dĩ An"));
    }

    #[test]
    fn json_follows_the_spark_convention() {
        let json = sample().to_json();
        assert_eq!(
            json,
            serde_json::json!([{
                "service_request_id": "AB12CD34",
                "description": "Ổ gà <to> & \"sâu\" 'lắm'\r\nở Dĩ An\u{1}",
                "lat": 10.9,
                "account_id": null,
            }])
        );
        let text = sample().render(Format::Json);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).expect("json"), json);
        assert!(text.find("service_request_id") < text.find("description"), "fields keep their order: {text}");
    }

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(Format::split("services.json"), Some(("services", Format::Json)));
        assert_eq!(Format::split("AB12.xml"), Some(("AB12", Format::Xml)));
        assert_eq!(Format::split("services"), None);
        assert_eq!(Format::split("services.html"), None);
    }
}
