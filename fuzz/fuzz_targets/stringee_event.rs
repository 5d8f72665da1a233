//! A Stringee call-event body through the token and account checks and its parser.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_channel_phone::fuzz::stringee_event(data);
});
