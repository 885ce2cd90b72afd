//! Read-only views of the published warehouse for county staff:
//! `taizhang checks` prints the open check results grouped by township.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use crate::config::Severity;

/// A view that cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The table is not there (no run yet?).
    #[error("{0}: no check results; has `taizhang run` published this warehouse?")]
    Missing(String),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// File.
        path: String,
        /// What polars said.
        source: PolarsError,
    },
}

/// Reads every year partition of a table.
pub fn read_table(warehouse: &Path, table: &str) -> Result<DataFrame, InspectError> {
    let dir = warehouse.join(table);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|_| InspectError::Missing(dir.display().to_string()))?
        .flatten()
        .map(|e| e.path().join("part-0.parquet"))
        .filter(|p| p.exists())
        .collect();
    files.sort();
    let mut out: Option<DataFrame> = None;
    for f in files {
        let read = |source| InspectError::Read {
            path: f.display().to_string(),
            source,
        };
        let file = std::fs::File::open(&f).map_err(|e| read(e.into()))?;
        let df = ParquetReader::new(file).finish().map_err(read)?;
        match &mut out {
            None => out = Some(df),
            Some(acc) => {
                acc.vstack_mut(&df).map_err(read)?;
            }
        }
    }
    out.ok_or_else(|| InspectError::Missing(dir.display().to_string()))
}

fn word(severity: &str) -> &'static str {
    match severity {
        "error" => "错误 error",
        "warning" => "警告 warning",
        _ => "提示 info",
    }
}

/// The open check results (and, with `all`, resolved ones), optionally for
/// one period and at least one severity, grouped by township.
pub fn checks_report(
    warehouse: &Path,
    period: Option<&str>,
    severity: Option<Severity>,
    all: bool,
) -> Result<String, InspectError> {
    let df = read_table(warehouse, "check_results")?;
    let s = |c: &str| {
        df.column(c)
            .and_then(|c| c.str().cloned())
            .map_err(|source| InspectError::Read {
                path: "check_results".into(),
                source,
            })
    };
    let (sev, township, per, msg, status, expl) = (
        s("severity")?,
        s("township")?,
        s("period")?,
        s("message")?,
        s("status")?,
        s("explanation")?,
    );
    let excluded = df.column("excluded").ok().and_then(|c| c.bool().ok().cloned());
    let rank = |x: &str| match x {
        "error" => Severity::Error,
        "warning" => Severity::Warning,
        _ => Severity::Info,
    };
    let mut groups: BTreeMap<String, Vec<(u8, String)>> = BTreeMap::new();
    for i in 0..df.height() {
        let (sv, st, p) = (
            sev.get(i).unwrap_or(""),
            status.get(i).unwrap_or(""),
            per.get(i).unwrap_or(""),
        );
        if (st == "resolved" && !all)
            || period.is_some_and(|want| want != p && !p.is_empty() && !want.starts_with(p))
            || severity.is_some_and(|min| rank(sv) < min)
        {
            continue;
        }
        let state = match st {
            "new" => "新发现 new",
            "still_failing" => "仍未解决 still failing",
            _ => "已解决 resolved",
        };
        let mut line = format!("  [{}] {} ({state})", word(sv), msg.get(i).unwrap_or(""));
        if excluded.as_ref().and_then(|e| e.get(i)) == Some(true) {
            line.push_str("\n      未计入县汇总 (held out of the county rollup)");
        }
        if let Some(e) = expl.get(i) {
            line.push_str(&format!("\n      乡镇说明 (explanation): {e}"));
        }
        let order = 2 - rank(sv) as u8;
        groups
            .entry(township.get(i).unwrap_or("").to_string())
            .or_default()
            .push((order, line));
    }
    if groups.is_empty() {
        return Ok("没有需要处理的问题 (no open check results)\n".into());
    }
    let mut out = String::new();
    let total: usize = groups.values().map(Vec::len).sum();
    out.push_str(&format!(
        "{total} 项问题，涉及 {} 个单位 ({total} results, {} units)\n",
        groups.len(),
        groups.len()
    ));
    for (t, mut lines) in groups {
        lines.sort();
        out.push_str(&format!("\n{t}\n"));
        for (_, l) in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    Ok(out)
}
