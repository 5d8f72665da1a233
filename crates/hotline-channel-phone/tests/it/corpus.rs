//! Replays every seed of the fuzz corpora (fuzz-corpus/<target>/) through its fuzz entry point: none may panic.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz-corpus").join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        run(&std::fs::read(&path).expect("seed"));
        count += 1;
    }
    assert!(count >= 4, "{target} has a seed corpus");
}

#[test]
fn pbx_generic_seeds() {
    replay("pbx_generic", hotline_channel_phone::fuzz::pbx_generic);
}

#[test]
fn stringee_event_seeds() {
    replay("stringee_event", hotline_channel_phone::fuzz::stringee_event);
}

#[test]
fn ami_frame_seeds() {
    replay("ami_frame", hotline_channel_phone::fuzz::ami_frame);
}
