//! Value strings (4.5万元, 60多, 三千, ___): total, never panics, never NaN.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let r = taizhang_ingest::normalize_value::read(s);
    if let Some(v) = r.value {
        assert!(v.is_finite(), "{s:?} read as {v}");
        assert!(r.error.is_none() && !r.missing);
    }
});
