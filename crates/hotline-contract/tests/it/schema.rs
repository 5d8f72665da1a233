//! Every feed message the Rust code makes is an instance of the message its `ce-dataschema` names, by the
//! descriptors compiled from proto/ now; the contract covers every internal event type, and has no field that
//! nothing sets.

use std::collections::BTreeSet;

use hotline_contract::{Audience, DATASCHEMA_PREFIX, FeedMessage, PACKAGE, SUBJECT_PREFIX, TYPE_PREFIX, snake_case};
use hotline_domain::TicketEvent;
use prost_reflect::{DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, ReflectMessage, SerializeOptions, Value};

use crate::fixtures::{AGENCY, PROVINCE, TICKET, every_message};
use crate::proto::{comment, pool};

/// `data` read as its dataschema's message, unknown fields refused.
fn parse(message: &FeedMessage) -> DynamicMessage {
    let name = message.ce_dataschema.strip_prefix(DATASCHEMA_PREFIX).expect("proto: scheme");
    let desc = pool().get_message_by_name(name).unwrap_or_else(|| panic!("no message {name} in proto/"));
    let json = serde_json::to_string(&message.data).expect("json");
    let mut de = serde_json::Deserializer::from_str(&json);
    let parsed = DynamicMessage::deserialize_with_options(desc, &mut de, &DeserializeOptions::new().deny_unknown_fields(true))
        .unwrap_or_else(|e| panic!("{} ({:?}) does not parse as {name}: {e}\n{json}", message.subject, message.audience));
    de.end().expect("one JSON value");
    parsed
}

#[test]
fn every_feed_message_parses_as_its_dataschema_and_reserialises_to_the_same_json() {
    let messages = every_message();
    assert!(messages.len() > TicketEvent::TYPES.len());
    for (_, message) in &messages {
        let parsed = parse(message);
        // The canonical proto3 JSON: lowerCamelCase names, 64-bit integers as strings, enums by name, defaults
        // left out. Equal JSON means our mapping writes exactly what any proto3 JSON reader expects.
        let mut ser = serde_json::Serializer::new(Vec::new());
        parsed.serialize_with_options(&mut ser, &SerializeOptions::new()).expect("serialise");
        let again: serde_json::Value = serde_json::from_slice(&ser.into_inner()).expect("json");
        assert_eq!(again, message.data, "{} does not round-trip", message.subject);
    }
}

#[test]
fn every_internal_event_type_is_published_publicly_and_to_the_assigned_agency() {
    let messages = every_message();
    for &event_type in TicketEvent::TYPES {
        let of_type: Vec<&FeedMessage> = messages.iter().filter(|(t, _)| *t == event_type).map(|(_, m)| m).collect();
        let snake = snake_case(event_type);
        let public = of_type.iter().find(|m| m.audience == Audience::Public).unwrap_or_else(|| panic!("{event_type}: no public message"));
        assert_eq!(public.subject, format!("{SUBJECT_PREFIX}.public.{snake}.{TICKET}"));
        assert_eq!(public.ce_dataschema, format!("{DATASCHEMA_PREFIX}{PACKAGE}.{event_type}"));
        assert_eq!(public.ce_type, format!("{TYPE_PREFIX}.{snake}"));
        assert_eq!(public.ce_source, format!("/hotline/{PROVINCE}"));
        assert_eq!(public.ce_subject, TICKET.to_string());
        assert!(!public.id.contains(':'));
        let agency = of_type.iter().find(|m| matches!(m.audience, Audience::Agency(_)));
        if event_type == "PetitionReceived" {
            // No agency holds a ticket at its first event.
            assert!(agency.is_none(), "PetitionReceived has no agency copy");
            continue;
        }
        let agency = agency.unwrap_or_else(|| panic!("{event_type}: no agency copy"));
        let expected = match event_type {
            // The triage event moves the ticket to the desk, whose feed gets the copy.
            "PetitionNeedsTriage" => "hotline_desk",
            _ => AGENCY,
        };
        assert_eq!(agency.audience, Audience::Agency(expected.into()), "{event_type}");
        assert_eq!(agency.subject, format!("{SUBJECT_PREFIX}.{expected}.{snake}.{TICKET}"));
        assert_eq!(agency.id, format!("{}:{expected}", public.id));
        assert_eq!(agency.ce_dataschema, public.ce_dataschema);
        assert_eq!(of_type.len(), 2, "{event_type}: one public message and one agency copy");
    }
}

#[test]
fn the_proto_has_one_event_message_per_internal_event_type_and_no_other() {
    let events_file = pool().get_file_by_name("hotline/v1/events.proto").expect("events.proto");
    let in_proto: BTreeSet<String> = events_file.messages().map(|m| m.name().to_owned()).collect();
    let in_code: BTreeSet<String> = TicketEvent::TYPES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(in_proto, in_code, "events.proto and TicketEvent::TYPES differ");
    for m in events_file.messages() {
        let fields: Vec<(u32, String)> = m.fields().take(2).map(|f| (f.number(), f.full_name().to_owned())).collect();
        assert_eq!(
            fields,
            vec![(1, format!("{}.event", m.full_name())), (2, format!("{}.ticket", m.full_name()))],
            "every event message starts with event = 1 and ticket = 2"
        );
    }
}

/// Every (message, field) set anywhere in `message`, recursively.
fn set_fields(message: &DynamicMessage, out: &mut BTreeSet<String>) {
    for (field, value) in message.fields() {
        out.insert(field.full_name().to_owned());
        let nested: Vec<&DynamicMessage> = match value {
            Value::Message(m) => vec![m],
            Value::List(list) => list.iter().filter_map(|v| v.as_message()).collect(),
            _ => Vec::new(),
        };
        for m in nested {
            set_fields(m, out);
        }
    }
}

#[test]
fn every_field_of_the_contract_is_set_by_some_message() {
    // A field nothing sets would be a promise the feed does not keep.
    let mut seen = BTreeSet::new();
    for (_, message) in every_message() {
        set_fields(&parse(&message), &mut seen);
    }
    let mut never = Vec::new();
    for m in pool().all_messages().filter(|m| m.package_name() == PACKAGE) {
        for f in m.fields() {
            if !seen.contains(f.full_name()) {
                never.push(f.full_name().to_owned());
            }
        }
    }
    assert!(never.is_empty(), "fields no feed message sets: {never:?}");
}

/// The fields whose comment says "Agency copy only", and every field of a message whose comment says so.
fn agency_only(desc: &MessageDescriptor, field: &prost_reflect::FieldDescriptor) -> bool {
    let file = desc.parent_file();
    let marked = |c: String| c.contains("Agency copy only");
    marked(comment(&file, field.path())) || matches!(field.kind(), Kind::Message(m) if marked(comment(&m.parent_file(), m.path())))
}

/// Walks a public message and fails on any field marked agency-only.
fn assert_no_agency_only(message: &DynamicMessage, subject: &str) {
    let desc = message.descriptor();
    for (field, value) in message.fields() {
        assert!(!agency_only(&desc, &field), "{subject}: public message sets agency-only field {}", field.full_name());
        let nested: Vec<&DynamicMessage> = match value {
            Value::Message(m) => vec![m],
            Value::List(list) => list.iter().filter_map(|v| v.as_message()).collect(),
            _ => Vec::new(),
        };
        for m in nested {
            assert_no_agency_only(m, subject);
        }
    }
}

#[test]
fn a_public_message_never_sets_a_field_the_proto_marks_agency_copy_only() {
    let mut marked = 0;
    for m in pool().all_messages().filter(|m| m.package_name() == PACKAGE) {
        marked += m.fields().filter(|f| agency_only(&m, f)).count();
    }
    assert!(marked >= 20, "the proto marks its agency-only fields ({marked} found)");
    for (_, message) in every_message() {
        if message.audience == Audience::Public {
            assert_no_agency_only(&parse(&message), &message.subject);
        }
    }
}

#[test]
fn every_message_field_enum_and_value_has_a_comment() {
    let mut missing = Vec::new();
    for m in pool().all_messages().filter(|m| m.package_name() == PACKAGE) {
        let file = m.parent_file();
        if comment(&file, m.path()).is_empty() {
            missing.push(m.full_name().to_owned());
        }
        for f in m.fields() {
            if comment(&file, f.path()).is_empty() {
                missing.push(f.full_name().to_owned());
            }
        }
    }
    for e in pool().all_enums().filter(|e| e.package_name() == PACKAGE) {
        let file = e.parent_file();
        if comment(&file, e.path()).is_empty() {
            missing.push(e.full_name().to_owned());
        }
        for v in e.values() {
            if comment(&file, v.path()).is_empty() {
                missing.push(v.full_name().to_owned());
            }
        }
    }
    assert!(missing.is_empty(), "undocumented in proto/: {missing:?}");
}
