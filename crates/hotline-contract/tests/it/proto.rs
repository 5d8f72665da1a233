//! Compiles `proto/` with protox (no protoc) for the tests, and the paths and switches they share.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, FileDescriptor};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `BLESS=1 cargo test -p hotline-contract` rewrites the generated files (descriptor set, baseline, docs section)
/// instead of failing when they differ.
pub fn bless() -> bool {
    std::env::var("BLESS").is_ok_and(|v| v == "1")
}

pub const REGENERATE: &str = "BLESS=1 cargo test -p hotline-contract";

/// Every `.proto` under `dir`, as paths relative to it with `/`, sorted.
pub fn proto_files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|x| x == "proto") {
                let rel = path.strip_prefix(base).expect("under base");
                out.push(rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Compiles every proto file under `dir` (imports included).
pub fn compile(dir: &Path, source_info: bool) -> protox::Compiler {
    let mut compiler = protox::Compiler::new([dir]).expect("compiler");
    compiler.include_imports(true).include_source_info(source_info);
    compiler.open_files(proto_files(dir)).unwrap_or_else(|e| panic!("proto/ does not compile: {e:?}"));
    compiler
}

/// The repository's `proto/`, compiled once, with comments.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| compile(&root().join("proto"), true).descriptor_pool())
}

/// The leading comment of the element at `path` in `file` (trimmed, lines joined with spaces), or "".
pub fn comment(file: &FileDescriptor, path: &[i32]) -> String {
    let Some(info) = &file.file_descriptor_proto().source_code_info else { return String::new() };
    info.location
        .iter()
        .find(|l| l.path == path)
        .and_then(|l| l.leading_comments.as_deref())
        .map(|c| c.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
