//! Township and indicator names as written (any string): folding, registry
//! and catalog resolution, periods. Must never panic; a resolved township is
//! a real 9-digit code of the registry.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use taizhang_ingest::catalog::Catalog;
use taizhang_ingest::registry::{Divisions, NameMatch, Registry, RegistryConfig};

struct Tables {
    registry: Registry,
    catalog: Catalog,
}

fuzz_target!(|s: &str| {
    static T: OnceLock<Tables> = OnceLock::new();
    let t = T.get_or_init(|| {
        // The demo county, a county with ethnic townships (梁河县: 九保阿昌族乡),
        // a city district with 街道, and an alias, so every resolution path runs.
        let cfg: RegistryConfig = toml::from_str(
            r#"counties = ["341124", "533122", "110105", "522631"]
               [[aliases]]
               name = "章辉乡"
               township = "341124100"
               until = "2005-01-01""#,
        )
        .unwrap();
        Tables {
            registry: Registry::build("registry.toml", &cfg, &Divisions::embedded()).unwrap(),
            catalog: Catalog::from_toml("indicators.toml", include_str!("../../schemas/indicators.toml")).unwrap(),
        }
    });
    let _ = taizhang_ingest::fold::fold(s);
    if let NameMatch::Found(code) = t.registry.resolve_name(s) {
        assert!(t.registry.get(&code).is_some(), "{s:?} resolved to unknown {code}");
    }
    let _ = t.registry.similar(s);
    if let Some(ind) = t.catalog.resolve(s) {
        let _ = t.catalog.resolve_category(ind, None, s);
        let _ = t.catalog.resolve_category(ind, Some(s), s);
    }
    let _ = s.parse::<taizhang_ingest::period::Period>();
    let _ = taizhang_ingest::dhis2::period(s);
});
