//! `application/x-www-form-urlencoded` decoding (the POST body and the query strings) and the fields of a
//! `POST requests`. Pure and strict: a bad percent-escape or a value that is not UTF-8 is an error naming the
//! field, never a silently replaced character; every check that needs no configuration happens here, and all the
//! problems of one request are reported together (Open311 errors are a list).

/// Most fields one form may carry (a service definition has a handful of attributes).
pub const MAX_FIELDS: usize = 200;
/// Longest `description` the spec allows, in characters.
pub const MAX_DESCRIPTION: usize = 4000;

/// Decoded `name=value` pairs in their order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pub pairs: Vec<(String, String)>,
}

/// Why a form cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("invalid percent-encoding at byte {0}")]
    Percent(usize),
    #[error("`{0}` is not UTF-8 text")]
    Utf8(String),
    #[error("more than {MAX_FIELDS} fields")]
    TooManyFields,
}

/// Decodes a form body or query string.
pub fn parse(bytes: &[u8]) -> Result<Form, FormError> {
    let mut pairs = Vec::new();
    let mut offset = 0;
    for part in bytes.split(|&b| b == b'&') {
        let start = offset;
        offset += part.len() + 1;
        if part.is_empty() {
            continue;
        }
        if pairs.len() == MAX_FIELDS {
            return Err(FormError::TooManyFields);
        }
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &part[part.len()..]),
        };
        let value_at = start + name.len() + 1;
        let name = decode(name, start)?;
        let name = String::from_utf8(name).map_err(|e| FormError::Utf8(String::from_utf8_lossy(e.as_bytes()).into_owned()))?;
        let value = decode(value, value_at)?;
        let value = String::from_utf8(value).map_err(|_| FormError::Utf8(name.clone()))?;
        pairs.push((name, value));
    }
    Ok(Form { pairs })
}

fn decode(raw: &[u8], at: usize) -> Result<Vec<u8>, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (raw.get(i + 1).copied().and_then(hex), raw.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => return Err(FormError::Percent(at + i)),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

impl Form {
    /// The one value of `name`; empty counts as absent (the spec's rule for optional arguments). A field given
    /// twice is an error: which one was meant cannot be known.
    pub fn single(&self, name: &str) -> Result<Option<&str>, FieldError> {
        let mut found = None;
        for (n, v) in &self.pairs {
            if n == name {
                if found.is_some() {
                    return Err(FieldError::new(name, format!("`{name}` is given more than once")));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found.map(str::trim).filter(|v| !v.is_empty()))
    }

    /// A comma list (`service_code=a,b`); the field may also be repeated. Empty items are dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> FieldError {
        FieldError { field: field.to_owned(), message: message.into() }
    }
}

/// An attribute's value as sent: `attribute[code]=v`, or `attribute[code][]=v1&attribute[code][]=v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    Single(String),
    Multi(Vec<String>),
}

/// The fields of `POST requests`, checked for shape; the service's definition is checked later.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceRequestForm {
    pub api_key: Option<String>,
    pub jurisdiction_id: Option<String>,
    pub service_code: Option<String>,
    /// Both or neither (checked here).
    pub lat: Option<f64>,
    pub long: Option<f64>,
    pub address_string: Option<String>,
    pub address_id: Option<String>,
    pub email: Option<String>,
    pub device_id: Option<String>,
    pub account_id: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub description: Option<String>,
    pub media_url: Option<String>,
    /// In the order first seen.
    pub attributes: Vec<(String, AttributeValue)>,
}

/// Longest accepted value of the short fields.
const MAX_SHORT: usize = 200;
/// Longest accepted `address_string` and `media_url`.
const MAX_LONG: usize = 2000;

impl ServiceRequestForm {
    /// Reads and shape-checks the fields. Unknown fields are ignored: clients send extras (FixMyStreet's
    /// `attribute[...]` for other services, tracking fields), and the spec does not forbid them.
    pub fn from_form(form: &Form) -> Result<ServiceRequestForm, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut text = |name: &str, max: usize| -> Option<String> {
            match form.single(name) {
                Ok(Some(v)) if v.chars().count() > max => {
                    errors.push(FieldError::new(name, format!("`{name}` is longer than {max} characters")));
                    None
                }
                Ok(Some(v)) if name != "description" && v.chars().any(char::is_control) => {
                    errors.push(FieldError::new(name, format!("`{name}` must be one line without control characters")));
                    None
                }
                Ok(v) => v.map(str::to_owned),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        };
        let mut request = ServiceRequestForm {
            api_key: text("api_key", MAX_SHORT),
            jurisdiction_id: text("jurisdiction_id", MAX_SHORT),
            service_code: text("service_code", MAX_SHORT),
            lat: None,
            long: None,
            address_string: text("address_string", MAX_LONG),
            address_id: text("address_id", MAX_SHORT),
            email: text("email", 254),
            device_id: text("device_id", MAX_SHORT),
            account_id: text("account_id", MAX_SHORT),
            first_name: text("first_name", 100),
            last_name: text("last_name", 100),
            phone: text("phone", 32),
            description: text("description", MAX_DESCRIPTION),
            media_url: text("media_url", MAX_LONG),
            attributes: Vec::new(),
        };
        let lat = text("lat", 40);
        let long = text("long", 40);
        let coordinate = |name: &str, value: &str, limit: f64, errors: &mut Vec<FieldError>| match value.parse::<f64>() {
            Ok(v) if v.is_finite() && (-limit..=limit).contains(&v) => Some(v),
            _ => {
                errors.push(FieldError::new(name, format!("`{name}` must be a WGS84 number within -{limit}..{limit}")));
                None
            }
        };
        match (lat, long) {
            (Some(lat), Some(long)) => {
                request.lat = coordinate("lat", &lat, 90.0, &mut errors);
                request.long = coordinate("long", &long, 180.0, &mut errors);
            }
            (Some(_), None) | (None, Some(_)) => {
                errors.push(FieldError::new("lat", "`lat` and `long` go together: send both or neither"));
            }
            (None, None) => {}
        }
        if let Some(email) = &request.email
            && !plausible_email(email)
        {
            errors.push(FieldError::new("email", "`email` is not an e-mail address"));
        }
        if let Some(phone) = &request.phone
            && !phone.chars().all(|c| c.is_ascii_digit() || " +-.()".contains(c))
        {
            errors.push(FieldError::new("phone", "`phone` may hold digits, spaces, + - . ( ) only"));
        }
        if let Some(url) = &request.media_url
            && !plausible_url(url)
        {
            errors.push(FieldError::new("media_url", "`media_url` must be an absolute http(s) URL"));
        }
        for (name, value) in &form.pairs {
            let Some(rest) = name.strip_prefix("attribute[") else { continue };
            let (code, multi) = match rest.strip_suffix("][]") {
                Some(code) => (code, true),
                None => match rest.strip_suffix(']') {
                    Some(code) => (code, false),
                    None => {
                        errors.push(FieldError::new(name, format!("`{name}` is not attribute[code] or attribute[code][]")));
                        continue;
                    }
                },
            };
            if code.is_empty() || code.len() > 100 || code.contains(['[', ']']) {
                errors.push(FieldError::new(name, format!("`{name}` does not name an attribute")));
                continue;
            }
            let value = value.trim();
            let existing = request.attributes.iter_mut().find(|(c, _)| c == code);
            match (existing, multi) {
                (None, false) => {
                    if !value.is_empty() {
                        request.attributes.push((code.to_owned(), AttributeValue::Single(value.to_owned())));
                    }
                }
                (None, true) => {
                    let values = if value.is_empty() { Vec::new() } else { vec![value.to_owned()] };
                    request.attributes.push((code.to_owned(), AttributeValue::Multi(values)));
                }
                (Some((_, AttributeValue::Multi(values))), true) => {
                    if !value.is_empty() {
                        values.push(value.to_owned());
                    }
                }
                (Some(_), _) => {
                    errors.push(FieldError::new(name, format!("attribute `{code}` is given more than once")));
                }
            }
            if value.chars().count() > MAX_LONG {
                errors.push(FieldError::new(name, format!("attribute `{code}` is longer than {MAX_LONG} characters")));
            }
        }
        request.attributes.retain(|(_, v)| !matches!(v, AttributeValue::Multi(values) if values.is_empty()));
        if errors.is_empty() { Ok(request) } else { Err(errors) }
    }

    /// The spec's one required location: `lat` + `long`, `address_string` or `address_id`.
    pub fn has_location(&self) -> bool {
        self.lat.is_some() || self.address_string.is_some() || self.address_id.is_some()
    }
}

fn plausible_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else { return false };
    !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !email.contains(char::is_whitespace)
}

fn plausible_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/')) && !url.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_spec_example_with_plus_percent_and_brackets() {
        // The example request of the GeoReport v2 spec (POST Service Request), shortened.
        let body = b"api_key=xyz&jurisdiction_id=city.gov&service_code=001&lat=37.76524078&long=-122.4212043\
&address_string=1234+5th+street&email=smit333%40sfgov.edu&device_id=tt222111&account_id=123456&first_name=john\
&last_name=smith&phone=111111111&description=A+large+sinkhole+is+destroying+the+street\
&media_url=http%3A%2F%2Ffarm3.static.flickr.com%2F2002%2F2212426634_5ed477a060.jpg\
&attribute[WHISPAWN]=123456&attribute[WHISDORN]=COISL001";
        let form = parse(body).expect("form");
        let request = ServiceRequestForm::from_form(&form).expect("request");
        assert_eq!(request.address_string.as_deref(), Some("1234 5th street"));
        assert_eq!(request.email.as_deref(), Some("smit333@sfgov.edu"));
        assert_eq!(request.lat, Some(37.76524078));
        assert_eq!(request.long, Some(-122.4212043));
        assert_eq!(request.media_url.as_deref(), Some("http://farm3.static.flickr.com/2002/2212426634_5ed477a060.jpg"));
        assert_eq!(
            request.attributes,
            vec![
                ("WHISPAWN".to_owned(), AttributeValue::Single("123456".into())),
                ("WHISDORN".to_owned(), AttributeValue::Single("COISL001".into())),
            ]
        );
    }

    #[test]
    fn vietnamese_text_round_trips_through_percent_encoding() {
        let form = parse("description=%E1%BB%94+g%C3%A0+tr%C3%AAn+%C4%91%C6%B0%E1%BB%9Dng".as_bytes()).expect("form");
        assert_eq!(form.single("description"), Ok(Some("Ổ gà trên đường")));
    }

    #[test]
    fn bad_escapes_and_non_utf8_are_errors_not_replacement_characters() {
        assert_eq!(parse(b"a=%zz"), Err(FormError::Percent(2)));
        assert_eq!(parse(b"a=%4"), Err(FormError::Percent(2)));
        assert_eq!(parse(b"description=%C3%28"), Err(FormError::Utf8("description".into())));
        let many = "a=1&".repeat(MAX_FIELDS + 1);
        assert_eq!(parse(many.as_bytes()), Err(FormError::TooManyFields));
    }

    #[test]
    fn multivalue_attributes_collect_and_mixed_or_repeated_singles_are_errors() {
        let form = parse(b"attribute[kinds][]=a&attribute[kinds][]=b&attribute[x]=1").expect("form");
        let request = ServiceRequestForm::from_form(&form).expect("request");
        assert_eq!(request.attributes[0], ("kinds".to_owned(), AttributeValue::Multi(vec!["a".into(), "b".into()])));
        let form = parse(b"attribute[x]=1&attribute[x]=2&attribute[y]=1&attribute[y][]=2&attribute[z=1").expect("form");
        let errors = ServiceRequestForm::from_form(&form).expect_err("errors");
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn every_problem_of_a_request_is_reported_at_once() {
        let form = parse(b"lat=91&long=abc&email=nobody&media_url=ftp://x&phone=call+me&service_code=a&service_code=b")
            .expect("form");
        let errors = ServiceRequestForm::from_form(&form).expect_err("errors");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["service_code", "lat", "long", "email", "phone", "media_url"]);
        let form = parse(b"lat=10.9").expect("form");
        assert_eq!(ServiceRequestForm::from_form(&form).expect_err("errors")[0].field, "lat");
    }

    #[test]
    fn empty_values_count_as_absent() {
        let form = parse(b"email=&address_string=+&lat=&long=").expect("form");
        let request = ServiceRequestForm::from_form(&form).expect("request");
        assert_eq!(request, ServiceRequestForm::default());
        assert!(!request.has_location());
    }

    #[test]
    fn a_description_over_4000_characters_is_refused() {
        let body = format!("description={}", "ô".repeat(MAX_DESCRIPTION + 1));
        let errors = ServiceRequestForm::from_form(&parse(body.as_bytes()).expect("form")).expect_err("errors");
        assert_eq!(errors[0].field, "description");
        let body = format!("description={}", "ô".repeat(MAX_DESCRIPTION));
        assert!(ServiceRequestForm::from_form(&parse(body.as_bytes()).expect("form")).is_ok());
    }
}
