//! An Open311 `POST requests` body through strict form decoding, the field checks and the attribute checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_open311::fuzz::open311_form(data);
});
