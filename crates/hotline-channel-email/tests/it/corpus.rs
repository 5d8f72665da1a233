//! Replays the fuzz targets' seed corpora (fuzz-corpus/<target>/), so every input a fuzzer starts from, and every
//! crash it found and we fixed (add the file there), runs in the ordinary test suite.

use std::path::Path;

fn each_input(target: &str, run: impl Fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        run(&bytes);
        count += 1;
    }
    count
}

#[test]
fn the_email_mime_corpus_parses_without_panicking() {
    let n = each_input("email_mime", |bytes| {
        hotline_channel_email::mime::fuzz_mime(bytes);
    });
    assert!(n >= 10, "the corpus has its seeds ({n})");
}

#[test]
fn the_smtp_session_corpus_runs_without_panicking() {
    let n = each_input("smtp_session", |bytes| {
        let out = hotline_channel_email::smtp::fuzz_session(bytes);
        assert!(out.starts_with(b"220 "), "every session is greeted");
    });
    assert!(n >= 5, "the corpus has its seeds ({n})");
}
