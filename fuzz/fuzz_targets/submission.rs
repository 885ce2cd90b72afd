//! Any bytes as a landed body: JSON, DHIS2, CSV, xlsx or garbage, read with
//! the county's real DHIS2 mapping. Must never panic; every parsed cell keeps
//! its indicator label and a value, and a document is one clear error or a
//! submission.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use taizhang_ingest::dhis2::Mapping;
use taizhang_ingest::submission::ReadLimits;

fuzz_target!(|data: &[u8]| {
    static MAPPING: OnceLock<Mapping> = OnceLock::new();
    let mapping = MAPPING.get_or_init(|| toml::from_str(include_str!("../../config/dhis2.toml")).unwrap());
    match taizhang_ingest::parse::parse_with(data, mapping, &ReadLimits::default()) {
        // Whatever was read can be shown (explain prints it) ...
        Ok(s) => {
            let _ = format!("{s:?}");
        }
        // ... and an error always says something to county staff.
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
