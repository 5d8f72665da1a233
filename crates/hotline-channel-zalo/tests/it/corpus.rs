//! Replays every seed of the fuzz corpus (`fuzz-corpus/zalo_webhook/`) through the fuzz entry point, so the suite
//! runs the malformed inputs the fuzzer starts from (and any crash it found, once its input is added there).

use std::path::Path;

#[test]
fn zalo_webhook_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus").join("zalo_webhook");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read seed");
        hotline_channel_zalo::fuzz::zalo_webhook(&data);
        count += 1;
    }
    assert!(count >= 5, "only {count} seeds");
}
