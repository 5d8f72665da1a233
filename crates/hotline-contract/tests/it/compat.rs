//! The compatibility check: the published shape of each proto package (every message's fields by name with
//! number, type and label; every enum's values) is recorded in `proto/<package path>/baseline.json`, and a change
//! that removes, renumbers, retypes or relabels a field (or removes or renumbers an enum value, or removes a
//! message or enum) fails, unless it comes as a new package (`hotline.v2`). Adding passes. Also: the committed
//! descriptor set `proto/hotline/v1/hotline.binpb` is what protox compiles now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost_reflect::{Cardinality, DescriptorPool, Kind};
use serde::{Deserialize, Serialize};

use crate::proto::{REGENERATE, bless, compile, root};

/// The published shape of one proto package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shape {
    package: String,
    /// Full message name → field name → field.
    messages: BTreeMap<String, BTreeMap<String, Field>>,
    /// Full enum name → value name → number.
    enums: BTreeMap<String, BTreeMap<String, i32>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Field {
    number: u32,
    /// A scalar kind (`string`, `uint64`...) or the full name of a message or enum.
    r#type: String,
    /// `singular` (proto3 implicit presence), `optional` (explicit presence) or `repeated`.
    label: String,
}

fn shape(pool: &DescriptorPool, package: &str) -> Shape {
    let mut messages = BTreeMap::new();
    for m in pool.all_messages().filter(|m| m.package_name() == package) {
        let fields = m
            .fields()
            .map(|f| {
                let r#type = match f.kind() {
                    Kind::Message(m) => m.full_name().to_owned(),
                    Kind::Enum(e) => e.full_name().to_owned(),
                    scalar => format!("{scalar:?}").to_lowercase(),
                };
                let label = match f.cardinality() {
                    Cardinality::Repeated => "repeated",
                    _ if f.field_descriptor_proto().proto3_optional() => "optional",
                    Cardinality::Required => "required",
                    Cardinality::Optional => "singular",
                };
                (f.name().to_owned(), Field { number: f.number(), r#type, label: label.to_owned() })
            })
            .collect();
        messages.insert(m.full_name().to_owned(), fields);
    }
    let mut enums = BTreeMap::new();
    for e in pool.all_enums().filter(|e| e.package_name() == package) {
        enums.insert(e.full_name().to_owned(), e.values().map(|v| (v.name().to_owned(), v.number())).collect());
    }
    Shape { package: package.to_owned(), messages, enums }
}

/// What `new` breaks of `old` (same package).
fn breaking(old: &Shape, new: &Shape) -> Vec<String> {
    let mut out = Vec::new();
    for (message, fields) in &old.messages {
        let Some(now) = new.messages.get(message) else {
            out.push(format!("message {message} was removed"));
            continue;
        };
        for (name, field) in fields {
            match now.get(name) {
                None => out.push(format!("field {message}.{name} was removed")),
                Some(f) if f.number != field.number => {
                    out.push(format!("field {message}.{name} was renumbered {} -> {}", field.number, f.number))
                }
                Some(f) if f.r#type != field.r#type => {
                    out.push(format!("field {message}.{name} was retyped {} -> {}", field.r#type, f.r#type))
                }
                Some(f) if f.label != field.label => {
                    out.push(format!("field {message}.{name} was relabelled {} -> {}", field.label, f.label))
                }
                Some(_) => {}
            }
        }
        // A new field must not take the number of a field that was there (a renamed field is a removed one).
        for (name, f) in now {
            if !fields.contains_key(name) && fields.values().any(|old| old.number == f.number) {
                out.push(format!("field {message}.{name} reuses number {}", f.number));
            }
        }
    }
    for (e, values) in &old.enums {
        let Some(now) = new.enums.get(e) else {
            out.push(format!("enum {e} was removed"));
            continue;
        };
        for (name, number) in values {
            match now.get(name) {
                None => out.push(format!("enum value {e}.{name} was removed")),
                Some(n) if n != number => out.push(format!("enum value {e}.{name} was renumbered {number} -> {n}")),
                Some(_) => {}
            }
        }
    }
    out
}

/// The breaking changes of `pool` against each baseline. A baseline whose package `pool` no longer has was
/// retired by a new major version: nothing to keep.
fn check(baselines: &[Shape], pool: &DescriptorPool) -> Vec<String> {
    baselines
        .iter()
        .filter(|b| pool.files().any(|f| f.package_name() == b.package))
        .flat_map(|b| breaking(b, &shape(pool, &b.package)))
        .collect()
}

fn baseline_path(package: &str) -> PathBuf {
    root().join("proto").join(package.replace('.', "/")).join("baseline.json")
}

/// Every `proto/**/baseline.json`.
fn baselines() -> Vec<(PathBuf, Shape)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Shape)>) {
        for entry in std::fs::read_dir(dir).expect("read proto/") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.file_name().is_some_and(|n| n == "baseline.json") {
                let text = std::fs::read_to_string(&path).expect("read baseline");
                let shape = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.push((path, shape));
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("proto"), &mut out);
    out
}

fn our_packages(pool: &DescriptorPool) -> Vec<String> {
    let mut packages: Vec<String> =
        pool.files().map(|f| f.package_name().to_owned()).filter(|p| p.starts_with("hotline.")).collect();
    packages.sort();
    packages.dedup();
    packages
}

#[test]
fn the_protos_keep_every_published_field_of_their_baseline() {
    let pool = compile(&root().join("proto"), false).descriptor_pool();
    let found = baselines();
    let shapes: Vec<Shape> = found.iter().map(|(_, s)| s.clone()).collect();
    let broken = check(&shapes, &pool);
    // Blessing never accepts a breaking change: within a package, fields are only added. Breaking takes a new
    // package (proto/hotline/v2, package hotline.v2).
    assert!(broken.is_empty(), "breaking changes to the published contract (publish them as a new package version instead):\n{}", broken.join("\n"));
    for package in our_packages(&pool) {
        let now = shape(&pool, &package);
        let path = baseline_path(&package);
        let recorded = found.iter().find(|(_, s)| s.package == package).map(|(_, s)| s);
        if recorded != Some(&now) {
            if bless() {
                let text = serde_json::to_string_pretty(&now).expect("json") + "\n";
                std::fs::write(&path, text).expect("write baseline");
            } else {
                panic!("{} does not record the current shape of {package} (fields were added?): run `{REGENERATE}`", path.display());
            }
        }
    }
}

#[test]
fn the_committed_descriptor_set_is_what_protox_compiles_now() {
    let path = root().join("proto/hotline/v1/hotline.binpb");
    let now = compile(&root().join("proto"), false).encode_file_descriptor_set();
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != now {
        if bless() {
            std::fs::write(&path, &now).expect("write descriptor set");
        } else {
            panic!("{} is stale (or missing): regenerate it with `{REGENERATE}` and commit it", path.display());
        }
    }
    // It holds the imports too, so a subscriber needs nothing else.
    let pool = DescriptorPool::decode(now.as_slice()).expect("a FileDescriptorSet");
    assert!(pool.get_file_by_name("google/protobuf/timestamp.proto").is_some());
    assert!(pool.get_message_by_name("hotline.v1.PetitionRouted").is_some());
}

/// The current v1 shape.
fn current() -> Shape {
    shape(&compile(&root().join("proto"), false).descriptor_pool(), "hotline.v1")
}

fn field<'a>(s: &'a mut Shape, message: &str, name: &str) -> &'a mut Field {
    s.messages.get_mut(message).and_then(|m| m.get_mut(name)).expect("field")
}

#[test]
fn removing_renumbering_retyping_or_relabelling_a_field_is_caught() {
    let old = current();
    assert!(breaking(&old, &old).is_empty());

    let mut new = old.clone();
    new.messages.get_mut("hotline.v1.PetitionRouted").expect("m").remove("resolve_by");
    assert_eq!(breaking(&old, &new), ["field hotline.v1.PetitionRouted.resolve_by was removed"]);

    let mut new = old.clone();
    field(&mut new, "hotline.v1.PetitionRouted", "agency").number = 30;
    assert_eq!(breaking(&old, &new), ["field hotline.v1.PetitionRouted.agency was renumbered 3 -> 30"]);

    let mut new = old.clone();
    field(&mut new, "hotline.v1.EventInfo", "seq").r#type = "uint32".into();
    assert_eq!(breaking(&old, &new), ["field hotline.v1.EventInfo.seq was retyped uint64 -> uint32"]);

    let mut new = old.clone();
    field(&mut new, "hotline.v1.PetitionCategorized", "matched").label = "singular".into();
    assert_eq!(breaking(&old, &new), ["field hotline.v1.PetitionCategorized.matched was relabelled repeated -> singular"]);

    let mut new = old.clone();
    let moved = new.messages.get_mut("hotline.v1.Citizen").expect("m").remove("phone").expect("phone");
    new.messages.get_mut("hotline.v1.Citizen").expect("m").insert("msisdn".into(), moved);
    assert_eq!(
        breaking(&old, &new),
        ["field hotline.v1.Citizen.phone was removed", "field hotline.v1.Citizen.msisdn reuses number 2"]
    );

    let mut new = old.clone();
    new.messages.remove("hotline.v1.CallbackDone");
    new.enums.get_mut("hotline.v1.TicketStatus").expect("e").remove("TICKET_STATUS_DUPLICATE");
    *new.enums.get_mut("hotline.v1.ReplyKind").and_then(|e| e.get_mut("REPLY_KIND_ANSWER")).expect("v") = 7;
    assert_eq!(
        breaking(&old, &new),
        [
            "message hotline.v1.CallbackDone was removed",
            "enum value hotline.v1.ReplyKind.REPLY_KIND_ANSWER was renumbered 1 -> 7",
            "enum value hotline.v1.TicketStatus.TICKET_STATUS_DUPLICATE was removed",
        ]
    );
}

#[test]
fn adding_fields_messages_and_enum_values_is_compatible() {
    let old = current();
    let mut new = old.clone();
    new.messages
        .get_mut("hotline.v1.PetitionRouted")
        .expect("m")
        .insert("sla_class".into(), Field { number: 9, r#type: "string".into(), label: "singular".into() });
    new.messages.insert("hotline.v1.PetitionReopened".into(), BTreeMap::new());
    new.enums.get_mut("hotline.v1.TicketStatus").expect("e").insert("TICKET_STATUS_ARCHIVED".into(), 11);
    assert!(breaking(&old, &new).is_empty());
}

/// Compiles a copy of proto/ in which `edit` rewrote each file's text.
fn compile_edited(edit: impl Fn(&str) -> String) -> DescriptorPool {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = root().join("proto");
    for rel in crate::proto::proto_files(&src) {
        let text = std::fs::read_to_string(src.join(&rel)).expect("read");
        let to = dir.path().join(&rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::write(to, edit(&text)).expect("write");
    }
    compile(dir.path(), false).descriptor_pool()
}

#[test]
fn a_breaking_change_in_the_proto_files_fails_unless_the_package_version_changes() {
    let baseline = vec![current()];
    let drop_field = |text: &str| text.replace("  google.protobuf.Timestamp resolve_by = 7;\n", "");
    let broken = check(&baseline, &compile_edited(drop_field));
    assert_eq!(broken, ["field hotline.v1.PetitionRouted.resolve_by was removed"]);

    let retype = |text: &str| text.replace("  uint32 bounces = 5;", "  uint64 bounces = 5;");
    assert_eq!(check(&baseline, &compile_edited(retype)), ["field hotline.v1.PetitionTransferred.bounces was retyped uint32 -> uint64"]);

    // The same change published as hotline.v2 breaks nothing of v1.
    let as_v2 = |text: &str| drop_field(text).replace("package hotline.v1;", "package hotline.v2;");
    let pool = compile_edited(as_v2);
    assert!(pool.get_message_by_name("hotline.v2.PetitionRouted").is_some());
    assert!(check(&baseline, &pool).is_empty());

    let add = |text: &str| text.replace("  PetitionSnapshot petition = 8;\n", "  PetitionSnapshot petition = 8;\n  // new\n  string sla_class = 9;\n");
    assert!(check(&baseline, &compile_edited(add)).is_empty());
}
