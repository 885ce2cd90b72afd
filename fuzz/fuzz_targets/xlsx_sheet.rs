//! The worksheet XML of a real template, fuzzed inside a valid zip: the bytes
//! become `xl/worksheets/sheet1.xml` of `schemas/template.xlsx`, so calamine's
//! XML, cell-reference and shared-string handling is reached on every input
//! (byte mutations of a whole .xlsx mostly break the zip's checksums first).
#![no_main]
use std::io::{Cursor, Read, Write};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const SHEET: &str = "xl/worksheets/sheet1.xml";

fn template_parts() -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(&include_bytes!("../../schemas/template.xlsx")[..])).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut e = zip.by_index(i).unwrap();
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).unwrap();
            (e.name().unwrap().to_string(), buf)
        })
        .collect()
}

fuzz_target!(|sheet: &[u8]| {
    static PARTS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    let parts = PARTS.get_or_init(template_parts);
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in parts {
        out.start_file(name.as_str(), stored).unwrap();
        out.write_all(if name == SHEET { sheet } else { bytes }).unwrap();
    }
    let body = out.finish().unwrap().into_inner();
    if let Err(e) = taizhang_ingest::xlsx::parse(&body) {
        assert!(!e.to_string().is_empty());
    }
});
