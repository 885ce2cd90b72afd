//! Data-driven normalizer cases: `tests/cases/<name>/` holds one input
//! submission (`input.json`, `input.csv`, `input.xlsx`, …), an optional
//! `case.toml` (`township`, `period` it was requested as, the `content_type`
//! it was served with, a transfer `defect`, limits `max_values`, `max_rows`,
//! `max_row_values`), and `expected.txt`:
//! the published rows, the quarantine and the submission record as text.
//! `BLESS=1 cargo test --test it cases` rewrites the expectations; review the
//! diff before committing it.

use std::path::Path;

use polars::prelude::*;
use taizhang::config::{Loaded, Settings, embedded_texts};
use taizhang::normalize::{Landed, normalize};
use taizhang::state::Landing;

fn table(df: &DataFrame, cols: &[&str]) -> String {
    let mut out = cols.join(" | ");
    out.push('\n');
    for i in 0..df.height() {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match df.column(c).unwrap().get(i).unwrap() {
                AnyValue::Null => "∅".to_string(),
                AnyValue::String(s) => s.to_string(),
                AnyValue::StringOwned(s) => s.to_string(),
                AnyValue::Float64(f) => taizhang::submission::format_number(f),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&cells.join(" | "));
        out.push('\n');
    }
    out
}

fn render(cfg: &Loaded, dir: &Path) -> String {
    let input = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("input"))
        .unwrap_or_else(|| panic!("{}: no input file", dir.display()));
    let body = std::fs::read(&input).unwrap();
    let case: toml::Table = std::fs::read_to_string(dir.join("case.toml"))
        .map(|t| toml::from_str(&t).unwrap())
        .unwrap_or_default();
    let get = |k: &str, d: &str| case.get(k).and_then(|v| v.as_str()).unwrap_or(d).to_string();
    let t = chrono::DateTime::parse_from_rfc3339("2026-07-10T10:00:00+08:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let landing = Landing {
        pipeline: "cdpf-monthly".into(),
        township: get("township", "341124102"),
        period: get("period", "2026-06"),
        sha256: taizhang::land::sha256_hex(&body),
        url: "http://portal/".into(),
        bytes: body.len() as i64,
        content_type: case.get("content_type").and_then(|v| v.as_str()).map(str::to_string),
        defect: case.get("defect").and_then(|v| v.as_str()).map(str::to_string),
        version: None,
        submitted_at: None,
        first_fetched_at: t,
        last_fetched_at: t,
    };
    let mut limits = cfg.settings.limits.clone();
    let int = |k: &str| case.get(k).and_then(|v| v.as_integer()).map(|n| n as usize);
    if let Some(n) = int("max_values") {
        limits.max_values = n;
    }
    if let Some(n) = int("max_rows") {
        limits.max_rows = n;
    }
    if let Some(n) = int("max_row_values") {
        limits.max_row_values = n;
    }
    let landed = [Landed {
        landing: &landing,
        body: &body,
        versions_landed: 1,
    }];
    let n = normalize(
        &cfg.def.pipelines[0],
        &cfg.def.catalog,
        &cfg.def.registry,
        &cfg.def.dhis2,
        &limits,
        &landed,
    )
    .unwrap();
    format!(
        "== facts ==\n{}\n== quarantine ==\n{}\n== submission ==\n{}",
        table(
            &n.facts,
            &[
                "value_index",
                "indicator",
                "dimension",
                "category",
                "value",
                "unit",
                "approx",
                "missing",
                "value_raw"
            ]
        ),
        table(
            &n.quarantine,
            &[
                "value_index",
                "indicator_label",
                "dimension",
                "category",
                "value_raw",
                "reason"
            ]
        ),
        table(
            &n.submissions,
            &[
                "township",
                "period",
                "format",
                "encoding",
                "status",
                "values_received",
                "values_published",
                "values_quarantined"
            ]
        ),
    )
}

#[test]
fn normalizer_cases() {
    let cfg = Loaded::from_texts(Settings::default(), None, &embedded_texts()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let bless = std::env::var_os("BLESS").is_some();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "the cases are there");
    let mut failed = Vec::new();
    for dir in dirs {
        let got = render(&cfg, &dir);
        let path = dir.join("expected.txt");
        if bless {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            failed.push(format!("--- {} expected\n{want}\n+++ got\n{got}", dir.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} case(s) differ (BLESS=1 to accept):\n{}",
        failed.len(),
        failed.join("\n")
    );
}
