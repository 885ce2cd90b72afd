//! Township and indicator names as written: folding and resolution never panic.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use taizhang::config::{Loaded, Settings, embedded_texts};

fuzz_target!(|s: &str| {
    static CFG: OnceLock<Loaded> = OnceLock::new();
    let cfg = CFG.get_or_init(|| Loaded::from_texts(Settings::default(), None, &embedded_texts()).unwrap());
    let _ = cfg.registry.resolve_name(s);
    let _ = cfg.registry.similar(s);
    if let Some(ind) = cfg.catalog.resolve(s) {
        let _ = cfg.catalog.resolve_category(ind, None, s);
    }
    let _ = s.parse::<taizhang::period::Period>();
    let _ = taizhang::dhis2::period(s);
});
