//! Replays every seed of the fuzz corpora (`fuzz-corpus/<target>/`) through its fuzz entry point, so the suite
//! runs the malformed inputs the fuzzers start from (and any crash they found, once its input is added there).

use std::path::Path;

use hotline_channel_sms::fuzz;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz-corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read seed");
        run(&data);
        count += 1;
    }
    assert!(count >= 5, "{target}: only {count} seeds");
}

#[test]
fn smpp_pdu_seeds() {
    replay("smpp_pdu", fuzz::smpp_pdu);
}

#[test]
fn sms_text_seeds() {
    replay("sms_text", fuzz::sms_text);
}

#[test]
fn twilio_form_seeds() {
    replay("twilio_form", fuzz::twilio_form);
}

#[test]
fn esms_query_seeds() {
    replay("esms_query", fuzz::esms_query);
}
