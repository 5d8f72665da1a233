//! A Twilio webhook body through strict form decoding and the X-Twilio-Signature check.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_channel_sms::fuzz::twilio_form(data);
});
