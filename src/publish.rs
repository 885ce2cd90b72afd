//! The warehouse tables: which exist, their columns, units and descriptions,
//! and how they are partitioned. Each snapshot (see `sinks::snapshot`) holds:
//!
//! ```text
//! facts/<indicator>/year=YYYY/part-<program>-<hash>.parquet   one table per indicator
//! rollup_county/ landings/ submission_history/ submissions/
//! quarantine/ check_results/  …/year=YYYY/part-<program>-<hash>.parquet
//! quotas/year=YYYY/part-<hash>.parquet
//! alerts/ dim_townships/ dim_indicators/  part-<hash>.parquet
//! ```

use std::collections::BTreeSet;

use polars::prelude::*;

use crate::config::Loaded;
use crate::rollup::{LEVELS, Level};
use crate::sinks::parquet::{ColSpec, ColType, PublishError, Table, c};
use crate::sinks::{Owner, TableSink};

use ColType::{Bool, F64, I64, Str, Timestamp};

fn frame_err(table: &str) -> impl FnOnce(PolarsError) -> PublishError + '_ {
    move |source| PublishError::Frame {
        table: table.to_string(),
        source,
    }
}

/// Columns of an indicator's fact table; `unit` is the indicator's unit.
pub fn fact_columns(unit: &str) -> Vec<ColSpec> {
    vec![
        c("program", Str, "reporting program (pipeline name)"),
        c("township", Str, "9-digit township code (统计用区划代码)"),
        c("county", Str, "6-digit county code"),
        c("period", Str, "reporting period: YYYY-MM, YYYY-Qn, YYYY-H1/H2 or YYYY"),
        c("indicator", Str, "indicator code (see dim_indicators)"),
        c(
            "dimension",
            Str,
            "breakdown dimension (类别, 等级); null for the indicator's total",
        ),
        c(
            "category",
            Str,
            "breakdown category (视力, 一级, …); null for the total",
        ),
        ColSpec {
            name: "value".into(),
            ty: F64,
            description: "value in the catalog unit (万元 converted to 元); null when the township left it blank"
                .into(),
            unit: Some(unit.to_string()),
        },
        c("unit", Str, "unit of value"),
        c(
            "approx",
            Bool,
            "the township wrote an approximation (60多, 100余, 近4000)",
        ),
        c(
            "missing",
            Bool,
            "the township left a placeholder or blank (___, xx): missing, not zero",
        ),
        c("value_raw", Str, "the value exactly as the township wrote it"),
        c(
            "source_sha256",
            Str,
            "sha256 of the landed body this row came from (raw/sha256/…)",
        ),
        c("submitted_at", Timestamp, "when the township says it submitted"),
        c("version", I64, "submission version; the newest counts"),
        c(
            "value_index",
            I64,
            "position of the value in the submission (0-based), for taizhang explain",
        ),
    ]
}

/// Columns of a rollup level's table.
fn rollup_columns(level: Level) -> Vec<ColSpec> {
    let area = level.label;
    let mut out = vec![c("program", Str, "reporting program")];
    if let (Some(code), Some(name)) = (level.code, level.name) {
        let digits = match area {
            "county" => "6-digit",
            "city" => "4-digit",
            _ => "2-digit",
        };
        out.push(c(code, Str, &format!("{digits} {area} code")));
        out.push(c(name, Str, &format!("{area} name")));
    }
    out.extend([
        c("period", Str, "reporting period"),
        c("indicator", Str, "indicator code"),
        c("dimension", Str, "breakdown dimension; null for the total"),
        c("category", Str, "breakdown category; null for the total"),
        c(
            "value",
            F64,
            match area {
                "county" => "sum over the included townships; null when none reported a value",
                _ => "sum over the level below; null when no included township reported a value",
            },
        ),
        c("unit", Str, "unit of value"),
        c(
            "townships_expected",
            I64,
            &format!("townships of the {area} in the registry"),
        ),
        c(
            "townships_reporting",
            I64,
            "townships whose report for the period was received and readable",
        ),
        c(
            "townships_included",
            I64,
            "townships whose values for this cell are in `value`",
        ),
        c(
            "townships_excluded",
            I64,
            "townships held out by error-severity checks for this indicator and period",
        ),
        c(
            "quota",
            F64,
            &match area {
                "county" => {
                    "yearly county quota (totals only): the county's own, else the sum of its townships'".to_string()
                }
                _ => format!(
                    "yearly {area} quota (totals only): the sum of its counties' quotas; null unless every county of the {area} in the registry has one"
                ),
            },
        ),
        c(
            "ytd_value",
            F64,
            "year to date: running sum of flows, latest value of stocks and cumulatives",
        ),
        c("progress", F64, "ytd_value / quota"),
    ]);
    out
}

fn submission_columns() -> Vec<ColSpec> {
    vec![
        c("program", Str, "reporting program"),
        c("township", Str, "9-digit township code the report was requested for"),
        c("period", Str, "reporting period"),
        c("source_sha256", Str, "sha256 of the current body"),
        c("format", Str, "json, csv, xlsx or dhis2; null when unreadable"),
        c(
            "encoding",
            Str,
            "utf-8, utf-8-bom, utf-16le, utf-16be or gb18030 (text formats)",
        ),
        c("version", I64, "declared version"),
        c("submitted_at", Timestamp, "declared submission time"),
        c("first_fetched_at", Timestamp, "when taizhang first fetched this body"),
        c("deadline", Timestamp, "when the report became late"),
        c(
            "status",
            Str,
            "on_time, late (by submitted_at, else first fetch) or quarantined (unreadable)",
        ),
        c("explanation", Str, "force-submit explanation (强制上报说明), if any"),
        c("values_received", I64, "values in the body"),
        c("values_published", I64, "values published to the fact tables"),
        c(
            "values_quarantined",
            I64,
            "values set aside; received = published + quarantined",
        ),
        c(
            "versions_landed",
            I64,
            "distinct bodies landed for this township and period",
        ),
    ]
}

fn history_columns() -> Vec<ColSpec> {
    vec![
        c("program", Str, "reporting program"),
        c("township", Str, "township code"),
        c("period", Str, "period"),
        c("from_sha256", Str, "the earlier version's body"),
        c("to_sha256", Str, "the later version's body"),
        c("from_version", I64, "declared version of the earlier body"),
        c("to_version", I64, "declared version of the later body"),
        c("changed_at", Timestamp, "when the later version was first fetched"),
        c("indicator", Str, "indicator code"),
        c("dimension", Str, "breakdown dimension; null for the total"),
        c("category", Str, "breakdown category; null for the total"),
        c(
            "old_value",
            F64,
            "value in the earlier version (null: absent or missing)",
        ),
        c("new_value", F64, "value in the later version (null: absent or missing)"),
        c("old_raw", Str, "as written in the earlier version (null: absent)"),
        c("new_raw", Str, "as written in the later version (null: absent)"),
    ]
}

fn landing_columns() -> Vec<ColSpec> {
    vec![
        c("program", Str, "reporting program"),
        c("township", Str, "township code requested"),
        c("period", Str, "period requested"),
        c(
            "source_sha256",
            Str,
            "sha256 of the body; the bytes are at raw/sha256/<first 2>/<rest>",
        ),
        c("url", Str, "URL fetched"),
        c("bytes", I64, "body size"),
        c("content_type", Str, "Content-Type as sent"),
        c(
            "defect",
            Str,
            "why the body could not be taken whole (over the size limit, cut off); null when complete",
        ),
        c("version", I64, "version the body declares"),
        c("submitted_at", Timestamp, "submission time the body declares"),
        c("first_fetched_at", Timestamp, "first fetch of these exact bytes"),
        c("last_fetched_at", Timestamp, "latest fetch of these exact bytes"),
        c("current", Bool, "this body is the version in the published tables"),
    ]
}

fn quarantine_columns() -> Vec<ColSpec> {
    vec![
        c("program", Str, "reporting program"),
        c("township", Str, "township code requested"),
        c("period", Str, "period requested"),
        c("source_sha256", Str, "sha256 of the landed body (raw/sha256/…)"),
        c(
            "indicator_label",
            Str,
            "indicator as written; null when the whole submission was set aside",
        ),
        c("dimension", Str, "dimension as written"),
        c("category", Str, "category as written"),
        c("value_raw", Str, "value as written"),
        c("reason", Str, "why it was set aside"),
        c(
            "value_index",
            I64,
            "position of the value in the submission; null when the whole body was unreadable",
        ),
    ]
}

fn check_columns() -> Vec<ColSpec> {
    vec![
        c("rule", Str, "breakdown, quota_behind, quota_far_ahead, overdue, late"),
        c("severity", Str, "error, warning or info"),
        c("program", Str, "reporting program"),
        c("township", Str, "township code"),
        c("period", Str, "period (the year for year-to-date quota checks)"),
        c("indicator", Str, "indicator code, when the check is about one"),
        c("dimension", Str, "breakdown dimension, when the check is about one"),
        c("observed", F64, "what was found (total; progress share)"),
        c(
            "expected",
            F64,
            "what it was checked against (sum of parts; elapsed share of the year)",
        ),
        c("message", Str, "the failure in words county staff use"),
        c("explanation", Str, "the township's force-submit explanation, if any"),
        c("excluded", Bool, "the values are held out of the county rollup"),
        c("status", Str, "new (first run failing), still_failing, or resolved"),
        c("first_seen", Timestamp, "run time the check first failed"),
        c("last_seen", Timestamp, "last run time it failed"),
        c("resolved_at", Timestamp, "run time it stopped failing"),
    ]
}

fn alert_columns() -> Vec<ColSpec> {
    vec![
        c(
            "alert_key",
            Str,
            "stable identity: program/kind/township/period/indicator/dimension",
        ),
        c("program", Str, "reporting program the alert belongs to"),
        c("kind", Str, "overdue, breakdown, quarantined, fetch_failed"),
        c("severity", Str, "error or warning"),
        c("township", Str, "township code"),
        c("township_name", Str, "township name"),
        c("period", Str, "period"),
        c("indicator", Str, "indicator code, if any"),
        c("message", Str, "what happened, in words county staff use"),
        c("status", Str, "open or resolved"),
        c("first_seen", Timestamp, "run time the alert was raised"),
        c("last_seen", Timestamp, "last run time it still held"),
        c(
            "notified_at",
            Timestamp,
            "when it was delivered to the webhook; null if not (yet)",
        ),
        c("resolved_at", Timestamp, "run time it stopped holding"),
    ]
}

/// Every published table with its columns, as the files declare them (a
/// fact table stands for all: `facts/<indicator>`). The README's table
/// reference is checked against this.
pub fn schemas() -> Vec<(String, Vec<ColSpec>)> {
    let mut out = vec![("facts/<indicator>".to_string(), fact_columns("unit"))];
    out.extend(LEVELS.iter().map(|l| (l.table.to_string(), rollup_columns(*l))));
    out.extend([
        ("landings".to_string(), landing_columns()),
        ("submission_history".to_string(), history_columns()),
        ("submissions".to_string(), submission_columns()),
        ("quarantine".to_string(), quarantine_columns()),
        ("check_results".to_string(), check_columns()),
        ("quotas".to_string(), quota_columns()),
        ("alerts".to_string(), alert_columns()),
        ("dim_townships".to_string(), township_columns()),
        ("dim_indicators".to_string(), indicator_columns()),
    ]);
    out
}

/// What one batch of one program computed: the tables with a row per
/// landed value or submission. Each is published as the batch's own files,
/// so a run holds one batch of them at a time.
pub struct BatchTables {
    /// Fact rows, all indicators.
    pub facts: DataFrame,
    /// Quarantined rows.
    pub quarantine: DataFrame,
    /// Current submissions.
    pub submissions: DataFrame,
    /// Cell changes between versions.
    pub history: DataFrame,
}

/// What one program computed over all its batches: the tables that are
/// small whatever the country (one row per landing, per county cell, …).
pub struct ProgramTables {
    /// Every body ever landed, with the current one marked.
    pub landings: DataFrame,
    /// Rollups up the hierarchy: county, city, province, nation (see `rollup::LEVELS`).
    pub rollup: [DataFrame; 4],
}

/// Publishes one batch's tables as its files; empty tables write nothing.
/// Returns the names of the tables that had rows.
pub fn publish_batch(
    cfg: &Loaded,
    program: &str,
    batch: &str,
    t: &BatchTables,
    sink: &mut dyn TableSink,
    year: i32,
) -> Result<Vec<&'static str>, PublishError> {
    let owner = Owner::batch(program, batch);
    // One table per indicator.
    let present: BTreeSet<String> = match t.facts.height() {
        0 => BTreeSet::new(),
        _ => t
            .facts
            .column("indicator")
            .and_then(|s| s.str().cloned())
            .map_err(frame_err("facts"))?
            .iter()
            .flatten()
            .map(str::to_string)
            .collect(),
    };
    for code in &present {
        let Some(ind) = cfg.catalog.get(code) else { continue };
        let rows = t
            .facts
            .clone()
            .lazy()
            .filter(col("indicator").eq(lit(code.clone())))
            .sort(
                ["township", "period", "dimension", "category"],
                SortMultipleOptions::default().with_nulls_last(false),
            )
            .collect()
            .map_err(frame_err("facts"))?;
        let info = serde_json::json!({
            "code": ind.code, "name": ind.name, "unit": ind.unit, "kind": ind.kind.as_str(),
            "area": ind.area, "description": ind.description,
        });
        let table = Table {
            name: format!("facts/{code}"),
            description: format!("{} ({}): {}", ind.name, ind.unit, ind.description),
            columns: fact_columns(&ind.unit),
            metadata: vec![("taizhang.indicator".into(), info.to_string())],
            frame: &rows,
        };
        sink.write_by_year(&table, owner, year)?;
    }
    let mut had_rows = Vec::new();
    for (name, frame) in [
        ("submission_history", &t.history),
        ("submissions", &t.submissions),
        ("quarantine", &t.quarantine),
    ] {
        if frame.height() > 0 {
            sink.write_by_year(&batch_table(name, frame), owner, year)?;
            had_rows.push(name);
        }
    }
    Ok(had_rows)
}

/// The batch tables that no batch of a program had rows for, written as
/// one empty file each, so that readers always find their schema.
pub fn publish_empty(
    program: &str,
    empty: &BatchTables,
    had_rows: &BTreeSet<&str>,
    sink: &mut dyn TableSink,
    year: i32,
) -> Result<(), PublishError> {
    for (name, frame) in [
        ("submission_history", &empty.history),
        ("submissions", &empty.submissions),
        ("quarantine", &empty.quarantine),
    ] {
        if !had_rows.contains(name) {
            sink.write_by_year(&batch_table(name, frame), Owner::program(program), year)?;
        }
    }
    Ok(())
}

fn batch_table<'a>(name: &'static str, frame: &'a DataFrame) -> Table<'a> {
    let (description, columns) = match name {
        "submission_history" => (
            "cells changed by resubmissions: old value → new value, per version",
            history_columns(),
        ),
        "submissions" => (
            "the current submission of every township and period",
            submission_columns(),
        ),
        _ => (
            "values and submissions set aside, with the reason",
            quarantine_columns(),
        ),
    };
    Table {
        name: name.into(),
        description: description.into(),
        columns,
        metadata: vec![],
        frame,
    }
}

/// Publishes a program's small tables: landings, rollups at every level and
/// the (tracked) check results.
pub fn publish_program(
    program: &str,
    t: &ProgramTables,
    checks: &DataFrame,
    sink: &mut dyn TableSink,
    year: i32,
) -> Result<(), PublishError> {
    let owner = Owner::program(program);
    for (level, frame) in LEVELS.iter().zip(&t.rollup) {
        let table = Table {
            name: level.table.into(),
            description: format!(
                "{} totals per indicator, breakdown cell and period, with quota progress",
                level.label
            ),
            columns: rollup_columns(*level),
            metadata: vec![],
            frame,
        };
        sink.write_by_year(&table, owner, year)?;
    }
    let checks = of_program(checks, program, "check_results")?;
    for (name, description, columns, frame) in [
        (
            "landings",
            "every body landed: what came from where and when; the current version marked",
            landing_columns(),
            &t.landings,
        ),
        (
            "check_results",
            "failed checks, one row per rule, township, period, indicator and dimension",
            check_columns(),
            &checks,
        ),
    ] {
        let table = Table {
            name: name.into(),
            description: description.into(),
            columns,
            metadata: vec![],
            frame,
        };
        sink.write_by_year(&table, owner, year)?;
    }
    Ok(())
}

/// Publishes the tables every program shares: quotas, the dimensions and
/// the alerts of every program.
pub fn publish_shared(
    cfg: &Loaded,
    alerts: &DataFrame,
    sink: &mut dyn TableSink,
    year: i32,
) -> Result<(), PublishError> {
    let quotas = quota_frame(cfg).map_err(frame_err("quotas"))?;
    sink.write_by_year(
        &Table {
            name: "quotas".into(),
            description: "yearly quotas (任务数) of the county and its townships".into(),
            columns: quota_columns(),
            metadata: vec![],
            frame: &quotas,
        },
        Owner::SHARED,
        year,
    )?;
    let dims = [
        (
            "dim_townships",
            "townships of the registry with their county, city and province",
            township_columns(),
            township_frame(cfg),
        ),
        (
            "dim_indicators",
            "the indicator catalog",
            indicator_columns(),
            indicator_frame(cfg),
        ),
    ];
    for (name, description, columns, frame) in dims {
        let frame = frame.map_err(frame_err(name))?;
        let t = Table {
            name: name.into(),
            description: description.into(),
            columns,
            metadata: vec![],
            frame: &frame,
        };
        sink.write_file(&t, None, Owner::SHARED)?;
    }
    sink.write_file(
        &Table {
            name: "alerts".into(),
            description: "every alert raised, open and resolved, of every program".into(),
            columns: alert_columns(),
            metadata: vec![],
            frame: alerts,
        },
        None,
        Owner::SHARED,
    )
}

/// Rows of `frame` for one program.
fn of_program(frame: &DataFrame, program: &str, table: &str) -> Result<DataFrame, PublishError> {
    if frame.height() == 0 {
        return Ok(frame.clone());
    }
    frame
        .clone()
        .lazy()
        .filter(col("program").eq(lit(program.to_string())))
        .collect()
        .map_err(frame_err(table))
}

fn quota_columns() -> Vec<ColSpec> {
    vec![
        c("code", Str, "6-digit county or 9-digit township code"),
        c("level", Str, "county or township"),
        c("indicator", Str, "indicator code"),
        c("quota", F64, "target for the year, in the indicator's unit"),
    ]
}

fn quota_frame(cfg: &Loaded) -> PolarsResult<DataFrame> {
    let q = &cfg.quotas;
    DataFrame::new_infer_height(vec![
        Column::new("year".into(), q.iter().map(|q| q.year).collect::<Vec<i32>>()),
        Column::new("code".into(), q.iter().map(|q| q.code.clone()).collect::<Vec<_>>()),
        Column::new(
            "level".into(),
            q.iter()
                .map(|q| if q.code.len() == 9 { "township" } else { "county" }.to_string())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "indicator".into(),
            q.iter().map(|q| q.indicator.clone()).collect::<Vec<_>>(),
        ),
        Column::new("quota".into(), q.iter().map(|q| q.quota).collect::<Vec<f64>>()),
    ])
}

fn township_columns() -> Vec<ColSpec> {
    vec![
        c("township", Str, "9-digit township code"),
        c("township_name", Str, "official name (2023 edition)"),
        c("county", Str, "6-digit county code"),
        c("county_name", Str, "county name"),
        c("city", Str, "4-digit city code"),
        c("city_name", Str, "city name"),
        c("province", Str, "2-digit province code"),
        c("province_name", Str, "province name"),
        c(
            "population",
            I64,
            "resident population as configured in registry.toml (null when not given)",
        ),
    ]
}

fn township_frame(cfg: &Loaded) -> PolarsResult<DataFrame> {
    let ts: Vec<_> = cfg.registry.townships.values().collect();
    let col = |f: fn(&crate::registry::Township) -> &String| ts.iter().map(|t| f(t).clone()).collect::<Vec<String>>();
    DataFrame::new_infer_height(vec![
        Column::new("township".into(), col(|t| &t.code)),
        Column::new("township_name".into(), col(|t| &t.name)),
        Column::new("county".into(), col(|t| &t.county)),
        Column::new("county_name".into(), col(|t| &t.county_name)),
        Column::new("city".into(), col(|t| &t.city)),
        Column::new("city_name".into(), col(|t| &t.city_name)),
        Column::new("province".into(), col(|t| &t.province)),
        Column::new("province_name".into(), col(|t| &t.province_name)),
        Column::new(
            "population".into(),
            ts.iter().map(|t| t.population.map(|p| p as i64)).collect::<Vec<_>>(),
        ),
    ])
}

fn indicator_columns() -> Vec<ColSpec> {
    vec![
        c("indicator", Str, "indicator code = fact table name"),
        c("name", Str, "official Chinese name"),
        c("aliases", Str, "other accepted names, separated by 、"),
        c("unit", Str, "unit of the published value"),
        c("kind", Str, "flow, cumulative or stock"),
        c("area", Str, "work area (康复, 两项补贴, …)"),
        c("description", Str, "what is counted"),
        c(
            "breakdowns",
            Str,
            "dimension: categories; exhaustive ones add up to the total",
        ),
    ]
}

fn indicator_frame(cfg: &Loaded) -> PolarsResult<DataFrame> {
    let inds = &cfg.catalog.indicators;
    let map = |f: &dyn Fn(&crate::catalog::Indicator) -> String| inds.iter().map(f).collect::<Vec<String>>();
    DataFrame::new_infer_height(vec![
        Column::new("indicator".into(), map(&|i| i.code.clone())),
        Column::new("name".into(), map(&|i| i.name.clone())),
        Column::new("aliases".into(), map(&|i| i.aliases.join("、"))),
        Column::new("unit".into(), map(&|i| i.unit.clone())),
        Column::new("kind".into(), map(&|i| i.kind.as_str().to_string())),
        Column::new("area".into(), map(&|i| i.area.clone())),
        Column::new("description".into(), map(&|i| i.description.clone())),
        Column::new(
            "breakdowns".into(),
            map(&|i| {
                i.breakdowns
                    .iter()
                    .map(|b| {
                        format!(
                            "{}: {}{}",
                            b.dimension,
                            b.categories.join("/"),
                            if b.exhaustive { " (exhaustive)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
        ),
    ])
}

#[cfg(test)]
mod tests {
    /// The column names a README table row lists: the first backticked
    /// name of each comma-separated item outside brackets.
    fn readme_columns(cell: &str) -> Vec<String> {
        let (mut depth, mut items, mut cur) = (0, vec![], String::new());
        for ch in cell.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => items.push(std::mem::take(&mut cur)),
                _ if depth == 0 => cur.push(ch),
                _ => {}
            }
        }
        items.push(cur);
        items
            .iter()
            .filter_map(|i| i.split('`').nth(1).map(str::to_string))
            .collect()
    }

    #[test]
    fn the_frames_the_stages_make_have_exactly_the_published_columns() {
        use polars::prelude::DataFrame;
        let cfg = crate::fixtures::config();
        let doc = serde_json::json!({"period": "2026-05", "values": [
            {"indicator": "残疾人证核发", "value": 3},
            {"indicator": "残疾人证核发", "category": "视力", "value": 3},
            {"indicator": "无此指标", "value": 1}]});
        let n = crate::fixtures::normalized(&cfg, &[("341124100", "2026-05", doc)]);
        let names = |df: &DataFrame| -> Vec<String> {
            let mut v: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
            v.retain(|c| c != "year");
            v
        };
        let spec = |cols: Vec<super::ColSpec>| cols.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(&n.facts), spec(super::fact_columns("人")));
        assert_eq!(names(&n.quarantine), spec(super::quarantine_columns()));
        assert_eq!(names(&n.submissions), spec(super::submission_columns()));
        let checks = crate::fixtures::checked(&cfg, &n, "2026-06-10T00:00:00Z");
        let levels = crate::rollup::hierarchy(
            &n.facts,
            &checks,
            &n.submissions,
            &cfg.registry,
            &cfg.quotas,
            &cfg.catalog,
        )
        .unwrap();
        for (level, frame) in super::LEVELS.iter().zip(&levels) {
            assert_eq!(names(frame), spec(super::rollup_columns(*level)), "{}", level.table);
        }
    }

    #[test]
    fn the_readme_lists_every_published_column_in_order() {
        let readme = include_str!("../README.md");
        let rows: Vec<(String, String)> = readme
            .lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                Some((
                    cells.first()?.trim_start_matches("| ").to_string(),
                    cells.get(1)?.to_string(),
                ))
            })
            .collect();
        for (table, columns) in super::schemas() {
            let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
            let documented = rows
                .iter()
                .find(|(t, _)| t.split(", ").any(|t| t == format!("`{table}`")))
                .unwrap_or_else(|| panic!("README documents no table {table}"));
            if documented.1.starts_with("the same") {
                continue; // documented as another level's columns with its area columns
            }
            assert_eq!(readme_columns(&documented.1), names, "README columns of {table}");
        }
    }
}
