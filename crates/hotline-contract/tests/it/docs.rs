//! docs/feed.md's reference section is generated from the proto files' comments, so the doc and the schema
//! cannot drift: this test fails when the section differs from what the protos say now (`BLESS=1` rewrites it).

use hotline_contract::{PACKAGE, SUBJECT_PREFIX, TYPE_PREFIX, snake_case};
use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};

use crate::proto::{REGENERATE, bless, comment, pool, root};

const BEGIN: &str = "<!-- BEGIN GENERATED: proto/hotline/v1 reference. Edit the .proto comments, then run `BLESS=1 cargo test -p hotline-contract`. -->";
const END: &str = "<!-- END GENERATED -->";

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn type_name(f: &FieldDescriptor) -> String {
    let base = match f.kind() {
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => "Timestamp (RFC 3339 string, UTC)".to_owned(),
        Kind::Message(m) => format!("[{0}](#{1})", m.name(), m.name().to_lowercase()),
        Kind::Enum(e) => format!("[{0}](#{1}) (enum, by name)", e.name(), e.name().to_lowercase()),
        Kind::Uint64 | Kind::Int64 | Kind::Sint64 | Kind::Fixed64 | Kind::Sfixed64 => {
            format!("{:?} (JSON string)", f.kind()).to_lowercase()
        }
        scalar => format!("{scalar:?}").to_lowercase(),
    };
    match f.cardinality() {
        Cardinality::Repeated => format!("list of {base}"),
        _ if f.field_descriptor_proto().proto3_optional() => format!("{base}, optional"),
        _ => base,
    }
}

fn message_section(m: &MessageDescriptor, event: bool) -> String {
    let file = m.parent_file();
    let mut out = format!("### {}\n\n{}\n\n", m.name(), comment(&file, m.path()));
    if event {
        let snake = snake_case(m.name());
        let subjects = if comment(&file, m.path()).contains("Public only") {
            format!("Subject `{SUBJECT_PREFIX}.public.{snake}.<ticket id>`")
        } else {
            format!("Subjects `{SUBJECT_PREFIX}.public.{snake}.<ticket id>` and `{SUBJECT_PREFIX}.<agency>.{snake}.<ticket id>`")
        };
        out += &format!("{subjects}; ce-type `{TYPE_PREFIX}.{snake}`; ce-dataschema `proto:{}`.\n\n", m.full_name());
    }
    out += "| # | field (JSON name) | type | meaning |\n|---|---|---|---|\n";
    for f in m.fields() {
        out += &format!("| {} | `{}` | {} | {} |\n", f.number(), f.json_name(), type_name(&f), cell(&comment(&file, f.path())));
    }
    out + "\n"
}

fn generate() -> String {
    let pool = pool();
    let mut out = format!("{BEGIN}\n\n## Event messages\n\n");
    let events = pool.get_file_by_name("hotline/v1/events.proto").expect("events.proto");
    for m in events.messages() {
        out += &message_section(&m, true);
    }
    out += "## Shared messages\n\n";
    for m in pool.all_messages().filter(|m| m.package_name() == PACKAGE && m.parent_file().name() != events.name()) {
        out += &message_section(&m, false);
    }
    out += "## Enums\n\nEnum values travel by name; the `_UNSPECIFIED` value (0) is never sent, so an absent enum field means \"not applicable\".\n\n";
    for e in pool.all_enums().filter(|e| e.package_name() == PACKAGE) {
        let file = e.parent_file();
        out += &format!("### {}\n\n{}\n\n| value | number | meaning |\n|---|---|---|\n", e.name(), comment(&file, e.path()));
        for v in e.values() {
            out += &format!("| `{}` | {} | {} |\n", v.name(), v.number(), cell(&comment(&file, v.path())));
        }
        out += "\n";
    }
    out + END
}

#[test]
fn docs_feed_md_reference_is_generated_from_the_protos() {
    let path = root().join("docs/feed.md");
    let doc = std::fs::read_to_string(&path).expect("docs/feed.md");
    let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/feed.md has no generated section (`{BEGIN}` ... `{END}`)");
    };
    let now = generate();
    if doc[start..end + END.len()] != now {
        if bless() {
            std::fs::write(&path, format!("{}{now}{}", &doc[..start], &doc[end + END.len()..])).expect("write docs");
        } else {
            panic!("docs/feed.md's reference section is stale: run `{REGENERATE}`");
        }
    }
}

#[test]
fn docs_feed_md_names_every_message_field_and_enum_value() {
    // Belt and braces over the generated section: every name a subscriber meets is in the doc.
    let doc = std::fs::read_to_string(root().join("docs/feed.md")).expect("docs/feed.md");
    for m in pool().all_messages().filter(|m| m.package_name() == PACKAGE) {
        assert!(doc.contains(&format!("### {}\n", m.name())), "docs/feed.md has no section for {}", m.name());
        for f in m.fields() {
            assert!(doc.contains(&format!("`{}`", f.json_name())), "docs/feed.md does not name {}", f.full_name());
        }
    }
    for e in pool().all_enums().filter(|e| e.package_name() == PACKAGE) {
        for v in e.values() {
            assert!(doc.contains(&format!("`{}`", v.name())), "docs/feed.md does not name {}", v.name());
        }
    }
}

/// docs/events.md documents the internal log; every event it lists is published under the same name, so it must
/// stay in step with events.proto too: each published event message has its section there, and the page points
/// at the published contract.
#[test]
fn docs_events_md_has_a_section_for_every_published_event_message_and_links_the_contract() {
    let doc = std::fs::read_to_string(root().join("docs/events.md")).expect("docs/events.md");
    let pool = pool();
    let events = pool.get_file_by_name("hotline/v1/events.proto").expect("events.proto");
    for m in events.messages() {
        assert!(
            doc.lines().any(|l| l.trim() == format!("## {}", m.name())),
            "docs/events.md has no section `## {}` for the published message hotline.v1.{}",
            m.name(),
            m.name()
        );
    }
    assert!(doc.contains("docs/feed.md"), "docs/events.md must point at the published contract, docs/feed.md");
}
