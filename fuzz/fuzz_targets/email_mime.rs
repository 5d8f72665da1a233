//! A raw e-mail (whatever an MTA might hand the SMTP listener) through MIME parsing into a petition.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = hotline_channel_email::mime::fuzz_mime(data);
});
