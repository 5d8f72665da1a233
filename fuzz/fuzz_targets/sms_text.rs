//! SMS user data records through data_coding decoding, UDH splitting and concatenated-message reassembly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_channel_sms::fuzz::sms_text(data);
});
