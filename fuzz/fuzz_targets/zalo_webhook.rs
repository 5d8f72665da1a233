//! A Zalo OA webhook body through the X-ZEvent-Signature check (wrong and right MAC) and event parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_channel_zalo::fuzz::zalo_webhook(data);
});
