//! A client's byte stream through the SMTP session state machine: commands, pipelining, DATA, garbage.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hotline_channel_email::smtp::fuzz_session(data);
});
