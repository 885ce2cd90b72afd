//! CSV bodies behind a valid header, in any encoding.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut body = b"township,period,indicator,dimension,category,value\n".to_vec();
    body.extend_from_slice(data);
    let _ = taizhang::submission::parse(&body);
});
