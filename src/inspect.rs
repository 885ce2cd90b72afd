//! Read-only views of the published warehouse for county staff:
//! `taizhang checks` prints the open check results grouped by township.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;
use taizhang_model::Severity;

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

/// Every Parquet file under `dir`, recursively, sorted.
fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The directory of the published snapshot, resolved once so that every
/// table read through it comes from the same run (the warehouse itself
/// when it has no snapshot yet).
pub fn published_root(warehouse: &Path) -> std::path::PathBuf {
    match std::fs::read_link(warehouse.join("current")) {
        Ok(target) => warehouse.join(target),
        Err(_) => warehouse.to_path_buf(),
    }
}

/// Reads every file of a table (all partitions and programs) from the
/// published snapshot.
pub fn read_table(warehouse: &Path, table: &str) -> Result<DataFrame, InspectError> {
    let dir = published_root(warehouse).join(table);
    if !dir.is_dir() {
        return Err(InspectError::Missing(dir.display().to_string()));
    }
    let files = parquet_files(&dir);
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

/// What was set aside and why, optionally for one period and one township,
/// grouped by township and submission.
pub fn quarantine_report(
    warehouse: &Path,
    registry: &crate::registry::Registry,
    period: Option<&str>,
    township: Option<&str>,
) -> Result<String, InspectError> {
    let df = read_table(warehouse, "quarantine")?;
    let s = |c: &str| {
        df.column(c)
            .and_then(|c| c.str().cloned())
            .map_err(|source| InspectError::Read {
                path: "quarantine".into(),
                source,
            })
    };
    let (tw, per, sha, label, dim, cat, raw, reason) = (
        s("township")?,
        s("period")?,
        s("source_sha256")?,
        s("indicator_label")?,
        s("dimension")?,
        s("category")?,
        s("value_raw")?,
        s("reason")?,
    );
    let mut groups: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for i in 0..df.height() {
        let (t, p) = (tw.get(i).unwrap_or(""), per.get(i).unwrap_or(""));
        if period.is_some_and(|w| w != p) || township.is_some_and(|w| w != t) {
            continue;
        }
        let what = match label.get(i) {
            None => "整份报表 (the whole submission)".to_string(),
            Some(l) => {
                let cell = [dim.get(i), cat.get(i)]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(":");
                let cell = if cell.is_empty() {
                    String::new()
                } else {
                    format!("[{cell}]")
                };
                format!("{l}{cell} = {:?}", raw.get(i).unwrap_or(""))
            }
        };
        groups
            .entry((t.to_string(), p.to_string(), sha.get(i).unwrap_or("").to_string()))
            .or_default()
            .push(format!(
                "  {what}\n      原因 (reason): {}",
                reason.get(i).unwrap_or("")
            ));
    }
    if groups.is_empty() {
        return Ok("没有隔离的数据 (nothing quarantined)\n".into());
    }
    let mut out = String::new();
    for ((t, p, sha), lines) in groups {
        let name = registry.get(&t).map_or(String::new(), |x| x.name.clone());
        out.push_str(&format!(
            "{name}({t}) {p}: {} 项已隔离 ({} set aside) — raw/sha256/{}/{}\n",
            lines.len(),
            lines.len(),
            &sha[..sha.len().min(2)],
            &sha[sha.len().min(2)..]
        ));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// For one submission: every value from the raw bytes to the published row.
pub fn explain(cfg: &crate::config::Loaded, township: &str, period: &str) -> Result<String, InspectError> {
    use crate::normalize::{Landed, normalize};
    let wh = &cfg.settings.paths.warehouse_dir;
    let state =
        crate::state::State::open(&cfg.settings.paths.state_dir).map_err(|e| InspectError::Missing(e.to_string()))?;
    let raw = crate::land::RawStore::new(wh);
    let decisions = state
        .review_decisions()
        .map_err(|e| InspectError::Missing(e.to_string()))?;
    let mut out = String::new();
    let mut found = false;
    for p in &cfg.def.pipelines {
        let all = state
            .landings(&p.name)
            .map_err(|e| InspectError::Missing(e.to_string()))?;
        let versions: Vec<_> = all
            .iter()
            .filter(|l| l.township == township && l.period == period)
            .collect();
        let Some(current) = crate::run::current_of(versions.iter().copied()) else {
            continue;
        };
        found = true;
        let body = raw
            .get(&current.sha256)
            .map_err(|e| InspectError::Missing(e.to_string()))?;
        let landed = [Landed {
            landing: current,
            body: &body,
            versions_landed: versions.len(),
        }];
        let n = normalize(
            p,
            &cfg.def.catalog,
            &cfg.def.registry,
            &cfg.def.dhis2,
            &cfg.settings.limits,
            &landed,
        )
        .and_then(|n| crate::review::apply(n, &decisions))
        .map_err(|source| InspectError::Read {
            path: "normalize".into(),
            source,
        })?;
        let name = cfg.def.registry.get(township).map_or("", |t| t.name.as_str());
        out.push_str(&format!("{name}({township}) {period} — program {}\n", p.name));
        out.push_str(&format!(
            "  fetched   {} from {}\n  body      {} bytes, sha256 {} ({} version(s) landed)\n",
            current.first_fetched_at.to_rfc3339(),
            current.url,
            current.bytes,
            current.sha256,
            versions.len()
        ));
        if let Some(ct) = &current.content_type {
            out.push_str(&format!("  served as {ct}\n"));
        }
        if let Some(reason) = crate::normalize::transfer_problem(current) {
            out.push_str(&format!("  set aside {reason}\n"));
        }
        let sub = crate::parse::parse_body(
            p.source_kind,
            &body,
            &cfg.def.catalog,
            &cfg.def.dhis2,
            &cfg.settings.limits.read(),
        );
        match &sub {
            Err(e) => out.push_str(&format!("  unreadable: {e}\n")),
            Ok(s) => {
                out.push_str(&format!(
                    "  format    {} ({}), version {}, submitted {}\n\n",
                    s.format.as_str(),
                    s.encoding,
                    s.version.map_or("-".into(), |v| v.to_string()),
                    s.submitted_at.map_or("-".into(), |t| t.to_rfc3339())
                ));
                let idx = |df: &DataFrame| -> Vec<Option<i64>> {
                    df.column("value_index")
                        .map(|c| c.i64().map(|a| a.iter().collect()).unwrap_or_default())
                        .unwrap_or_default()
                };
                let (fi, qi) = (idx(&n.facts), idx(&n.quarantine));
                let fs = |c: &str| n.facts.column(c).ok().and_then(|c| c.str().ok().cloned());
                let (ind, dim, cat, unit) = (fs("indicator"), fs("dimension"), fs("category"), fs("unit"));
                let val = n.facts.column("value").ok().and_then(|c| c.f64().ok().cloned());
                let flag = |c: &str, r: usize| {
                    n.facts
                        .column(c)
                        .ok()
                        .and_then(|c| c.bool().ok().and_then(|b| b.get(r)))
                        .unwrap_or(false)
                };
                let reason = n.quarantine.column("reason").ok().and_then(|c| c.str().ok().cloned());
                let xi = idx(&n.extractions);
                let xs = |c: &str| n.extractions.column(c).ok().and_then(|c| c.str().ok().cloned());
                let (x_id, x_status) = (xs("review_id"), xs("status"));
                for (i, v) in s.values.iter().enumerate() {
                    let label = [v.indicator.as_deref(), v.dimension.as_deref(), v.category.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" / ");
                    out.push_str(&format!("  #{i:<3} {label} = {:?}\n", v.value.raw()));
                    if let Some(r) = fi.iter().position(|x| *x == Some(i as i64)) {
                        let g = |a: &Option<StringChunked>| a.as_ref().and_then(|a| a.get(r)).unwrap_or("").to_string();
                        let cell = [g(&dim), g(&cat)]
                            .into_iter()
                            .filter(|x| !x.is_empty())
                            .collect::<Vec<_>>()
                            .join(":");
                        let value = val
                            .as_ref()
                            .and_then(|v| v.get(r))
                            .map_or("null".into(), crate::checks::num);
                        let mut flags = vec![];
                        if flag("approx", r) {
                            flags.push("approx");
                        }
                        if flag("missing", r) {
                            flags.push("missing");
                        }
                        if flag("extracted", r) {
                            flags.push("extracted");
                        }
                        out.push_str(&format!(
                            "        → facts/{}{} = {value} {}{}\n",
                            g(&ind),
                            if cell.is_empty() {
                                String::new()
                            } else {
                                format!(" [{cell}]")
                            },
                            g(&unit),
                            if flags.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", flags.join(", "))
                            }
                        ));
                    } else if let Some(r) = qi.iter().position(|x| *x == Some(i as i64)) {
                        let why = reason.as_ref().and_then(|a| a.get(r)).unwrap_or("");
                        out.push_str(&format!("        → quarantine: {why}\n"));
                    } else if let Some(r) = xi.iter().position(|x| *x == Some(i as i64)) {
                        let g = |a: &Option<StringChunked>| a.as_ref().and_then(|a| a.get(r)).unwrap_or("").to_string();
                        out.push_str(&format!(
                            "        → review queue, {} ({}): taizhang review accept|reject {}\n",
                            g(&x_id),
                            g(&x_status),
                            g(&x_id)
                        ));
                    }
                    if let Some(m) = s.mentions.get(i) {
                        out.push_str(&format!(
                            "        at {}..{}, {} (confidence {:.2}): {}\n",
                            m.start,
                            m.end,
                            m.rule,
                            m.confidence,
                            crate::submission::clip(&crate::submission::mask_personal(&m.sentence), 120)
                        ));
                    }
                }
                for m in &s.stated_quotas {
                    out.push_str(&format!(
                        "  quota stated: {} = {} ({:?}), not a value of the report: {}\n",
                        m.name,
                        crate::checks::num(m.value),
                        m.text,
                        crate::submission::clip(&crate::submission::mask_personal(&m.sentence), 120)
                    ));
                }
            }
        }
        if n.quarantine.height() > 0 && sub.is_err() {
            out.push_str("  → the whole submission is in quarantine\n");
        }
    }
    if !found {
        return Err(InspectError::Missing(format!(
            "{township} {period}: no landed submission"
        )));
    }
    Ok(out)
}

/// The last runs as JSON objects (as `taizhang runs --json` prints them),
/// newest first; none when the deployment never ran.
pub fn runs_json(state_dir: &std::path::Path, last: usize) -> Result<Vec<serde_json::Value>, crate::state::StateError> {
    if !state_dir.join("taizhang.sqlite").exists() {
        return Ok(vec![]);
    }
    Ok(crate::state::State::open(state_dir)?
        .runs(last)?
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "run": r.id,
                "started_at": r.started_at.to_rfc3339(),
                "now": r.now.to_rfc3339(),
                "finished_at": r.finished_at.map(|t| t.to_rfc3339()),
                "outcome": if r.finished_at.is_some() { "done" } else { "interrupted" },
                "summary": r.summary,
            })
        })
        .collect())
}

/// The last `last` runs of the deployment whose state is in `state_dir`,
/// newest first: a table for people, or (`json`) one JSON object per line.
/// Reads only: a deployment that never ran says so and creates nothing.
pub fn runs_report(state_dir: &std::path::Path, last: usize, json: bool) -> Result<String, crate::state::StateError> {
    if !state_dir.join("taizhang.sqlite").exists() {
        return Ok(match json {
            true => String::new(),
            false => format!("no runs yet ({} has no state store)\n", state_dir.display()),
        });
    }
    if json {
        return Ok(runs_json(state_dir, last)?
            .into_iter()
            .map(|v| v.to_string() + "\n")
            .collect());
    }
    let runs = crate::state::State::open(state_dir)?.runs(last)?;
    let china = crate::period::china();
    let mut out = String::from(
        "run  started (China time)   clock                outcome      fetched  failed  landed  rows     quarantined  alerts  snapshot\n",
    );
    for r in &runs {
        let n = |k: &str| r.summary.as_ref().and_then(|s| s.get(k)).and_then(|v| v.as_u64());
        let outcome = if r.finished_at.is_some() { "done" } else { "interrupted" };
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        out.push_str(&format!(
            "{:<4} {:<24} {:<20} {:<12} {:>7}  {:>6}  {:>6}  {:>7}  {:>11}  {:>6}  {}\n",
            r.id,
            r.started_at.with_timezone(&china).format("%Y-%m-%d %H:%M:%S"),
            r.now.with_timezone(&china).format("%Y-%m-%d %H:%M"),
            outcome,
            match (n("fetched"), n("planned")) {
                (Some(f), Some(p)) => format!("{f}/{p}"),
                _ => "-".into(),
            },
            opt(n("fetch_failed")),
            opt(n("landed_new")),
            opt(n("rows_published")),
            opt(n("quarantined")),
            opt(n("alerts_raised")),
            r.summary
                .as_ref()
                .and_then(|s| s.get("snapshot"))
                .and_then(|v| v.as_u64())
                .map_or("unchanged".to_string(), |v| v.to_string()),
        ));
    }
    Ok(out)
}
