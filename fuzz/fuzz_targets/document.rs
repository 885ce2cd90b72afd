//! Work summaries (any bytes: text in any encoding, or behind a zip
//! signature a .docx) read and searched for values with the real catalog.
//! Must never panic; every value found lies inside the text, with a finite
//! value and a confidence in 0–1.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use taizhang_ingest::catalog::Catalog;

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| {
        Catalog::from_toml("indicators.toml", include_str!("../../schemas/indicators.toml")).expect("catalog")
    })
}

fuzz_target!(|data: &[u8]| {
    // As a document program parses a landed body: one value per achievement.
    if let Ok(sub) = taizhang_ingest::parse::parse_document(data, catalog(), &Default::default()) {
        assert_eq!(sub.values.len(), sub.mentions.len());
    }
    let Ok(doc) = taizhang_ingest::document::read(data) else { return };
    let chars = doc.text.chars().count();
    for m in taizhang_ingest::extract::extract(&doc.text, catalog()) {
        assert!(m.start < m.end && m.end <= chars, "{m:?}");
        assert!(m.value.is_finite() && (0.0..=1.0).contains(&m.confidence), "{m:?}");
    }
});
