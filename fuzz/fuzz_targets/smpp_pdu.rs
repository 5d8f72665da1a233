//! An SMSC's byte stream through SMPP framing and PDU decoding (and re-encoding, and receipt detection).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_channel_sms::fuzz::smpp_pdu(data);
});
