//! A generic PBX webhook body through its HMAC check and strict JSON parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_channel_phone::fuzz::pbx_generic(data);
});
