//! Replays every seed of the fuzz corpus (`fuzz-corpus/open311_form/`) through the fuzz entry point, so the suite
//! runs the malformed inputs the fuzzer starts from (and any crash it found, once its input is added there).

use std::path::Path;

#[test]
fn open311_form_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus").join("open311_form");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(entry.expect("entry").path()).expect("read seed");
        hotline_open311::fuzz::open311_form(&data);
        count += 1;
    }
    assert!(count >= 5, "only {count} seeds");
}
