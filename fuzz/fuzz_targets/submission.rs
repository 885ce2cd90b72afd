//! Any bytes as a landed body: JSON, DHIS2, CSV, xlsx or garbage. Must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = taizhang::submission::parse(data);
});
