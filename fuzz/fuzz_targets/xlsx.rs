//! Zip/xlsx bodies: the decompressed-size pre-check and calamine. Must never
//! panic, and never expand a zip bomb (the pre-check refuses it first).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut body = b"PK\x03\x04".to_vec();
    body.extend_from_slice(data);
    if let Err(e) = taizhang_ingest::xlsx::parse(&body) {
        assert!(!e.to_string().is_empty());
    }
});
