//! Bytes from an Asterisk manager connection through the AMI decoder and the call correlator.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hotline_channel_phone::fuzz::ami_frame(data);
});
