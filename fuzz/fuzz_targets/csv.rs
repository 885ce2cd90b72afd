//! CSV bodies behind a valid header, in any encoding: the decoder (UTF-8,
//! BOM, UTF-16, GB18030) and the record reader. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut body = b"township,period,indicator,dimension,category,value\n".to_vec();
    body.extend_from_slice(data);
    if let Err(e) = taizhang_ingest::parse::parse(&body) {
        assert!(!e.to_string().is_empty());
    }
});
