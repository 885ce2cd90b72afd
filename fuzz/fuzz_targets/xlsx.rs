//! Zip/xlsx bodies: the size pre-check and calamine. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut body = b"PK\x03\x04".to_vec();
    body.extend_from_slice(data);
    let _ = taizhang::xlsx::parse(&body);
});
