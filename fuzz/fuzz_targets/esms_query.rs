//! An eSMS MO callback query string through strict decoding and the MD5 sign check.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_channel_sms::fuzz::esms_query(data);
});
