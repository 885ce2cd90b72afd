//! The warehouse tables: which exist, their columns, units and descriptions,
//! and how they are partitioned. Each snapshot (see `sinks::snapshot`) holds:
//!
//! ```text
//! facts/<indicator>/year=YYYY/part-<program>-<hash>.parquet   one table per indicator
//! rollup_county/ landings/ submission_history/ submissions/
//! quarantine/ extractions/ check_results/  …/year=YYYY/part-<program>-<hash>.parquet
//! quotas/year=YYYY/part-<hash>.parquet
//! alerts/ dim_townships/ dim_indicators/  part-<hash>.parquet
//! ```

use std::collections::BTreeSet;

use polars::prelude::*;
use taizhang_model::schema::{
    LEVELS, Level, alert_columns, check_columns, extraction_columns, fact_columns, history_columns, indicator_columns,
    landing_columns, quarantine_columns, quota_columns, rollup_columns, submission_columns, township_columns,
};
use taizhang_transform::text::{Texts, like_before};

use crate::config::Loaded;
use crate::sinks::parquet::{PublishError, Table, YearEncoder};
use crate::sinks::{Owner, TableSink};

fn frame_err(table: &str) -> impl FnOnce(PolarsError) -> PublishError + '_ {
    move |source| PublishError::Frame {
        table: table.to_string(),
        source,
    }
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
    /// Values found in documents, with provenance and status.
    pub extractions: DataFrame,
}

impl BatchTables {
    /// The tables besides the facts, in the order of [`BATCH_TABLES`].
    fn others(&self) -> [&DataFrame; 4] {
        [&self.history, &self.submissions, &self.quarantine, &self.extractions]
    }
}

/// What one program computed over all its batches: the tables that are
/// small whatever the country (one row per landing, per county cell, …).
pub struct ProgramTables {
    /// Every body ever landed, with the current one marked, encoded a part
    /// at a time.
    pub landings: YearEncoder,
    /// Its tracked check results, encoded a batch at a time.
    pub checks: YearEncoder,
}

/// The encoder of a program's `landings` (its rows are given a part at a
/// time), `empty` the table with no row.
pub fn landing_encoder(empty: &DataFrame) -> YearEncoder {
    YearEncoder::new(&landing_table(empty))
}

fn landing_table(frame: &DataFrame) -> Table<'_> {
    Table {
        name: "landings".into(),
        description: "every body landed: what came from where and when; the current version marked".into(),
        columns: landing_columns(),
        metadata: vec![],
        frame,
    }
}

/// The encoder of a program's `check_results` (its rows are given a batch
/// at a time).
pub fn check_encoder() -> YearEncoder {
    let empty = crate::checks::track::empty_tracked();
    YearEncoder::new(&check_table(&empty))
}

fn check_table(frame: &DataFrame) -> Table<'_> {
    Table {
        name: "check_results".into(),
        description: "failed checks, one row per rule, township, period, indicator and dimension".into(),
        columns: check_columns(),
        metadata: vec![],
        frame,
    }
}

/// The tables of a batch besides the facts.
pub const BATCH_TABLES: [&str; 4] = ["submission_history", "submissions", "quarantine", "extractions"];

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
    // One table per indicator: the rows sorted once by indicator (then
    // township, period, dimension, category), each indicator's a slice.
    let sorted = sort_facts(&t.facts).map_err(frame_err("facts"))?;
    let runs = indicator_runs(&sorted).map_err(frame_err("facts"))?;
    // Every file of the batch first (its rows, one frame per indicator
    // and year), then given to the sink at once: it encodes them on every
    // core while the next batch computes.
    let mut indicators = Vec::new();
    for (code, (start, len)) in &runs {
        let Some(ind) = cfg.def.catalog.get(code) else { continue };
        let rows = sorted.slice(*start as i64, *len);
        let info = serde_json::json!({
            "code": ind.code, "name": ind.name, "unit": ind.unit, "kind": ind.kind.as_str(),
            "area": ind.area, "description": ind.description,
        });
        indicators.push((ind, rows, info.to_string()));
    }
    let mut tables: Vec<Table<'_>> = indicators
        .iter()
        .map(|(ind, rows, info)| Table {
            name: format!("facts/{}", ind.code),
            description: format!("{} ({}): {}", ind.name, ind.unit, ind.description),
            columns: fact_columns(&ind.unit),
            metadata: vec![("taizhang.indicator".into(), info.clone())],
            frame: rows,
        })
        .collect();
    let mut had_rows = Vec::new();
    for (name, frame) in BATCH_TABLES.into_iter().zip(t.others()) {
        if frame.height() > 0 {
            tables.push(batch_table(name, frame));
            had_rows.push(name);
        }
    }
    let parts: Vec<Vec<(i32, DataFrame)>> = tables
        .iter()
        .map(|table| crate::sinks::by_year(table, year))
        .collect::<Result<_, _>>()?;
    let files: Vec<(Table<'_>, Option<i32>)> = tables
        .iter()
        .zip(&parts)
        .flat_map(|(table, parts)| parts.iter().map(|(y, part)| (table.clone_with_frame(part), Some(*y))))
        .collect();
    sink.write_files(&files, owner)?;
    Ok(had_rows)
}

/// The columns facts are published in the order of: each nulls first,
/// ties in the order the rows come in.
const FACT_ORDER: [&str; 5] = ["indicator", "township", "period", "dimension", "category"];

/// Facts in the order they are published in ([`FACT_ORDER`]). The rows are
/// ordered by each column's rank among its distinct values (a handful of
/// indicators, townships and periods per batch): the strings are compared
/// once per distinct value, not at every comparison of the sort (a sort on
/// the strings themselves was a fifth of publishing a batch).
fn sort_facts(facts: &DataFrame) -> PolarsResult<DataFrame> {
    match publish_order(facts)? {
        Some(order) => facts.take(&order),
        // Too many rows for the packed key.
        None => sort_by_strings(facts),
    }
}

/// Facts in their published order by polars comparing the strings.
fn sort_by_strings(facts: &DataFrame) -> PolarsResult<DataFrame> {
    facts
        .clone()
        .lazy()
        .sort(
            FACT_ORDER,
            SortMultipleOptions::default()
                .with_nulls_last(false)
                .with_maintain_order(true),
        )
        .collect()
}

/// The row order of [`sort_facts`]; none for 2^24 rows or more (a rank
/// would not fit its place in the packed key).
fn publish_order(facts: &DataFrame) -> PolarsResult<Option<IdxCa>> {
    const BITS: u32 = 24;
    let Some(height) = u32::try_from(facts.height()).ok().filter(|h| *h < 1 << BITS) else {
        return Ok(None);
    };
    let keys = fact_ranks(facts)?;
    let order = narrow_order(&keys, height).unwrap_or_else(|| wide_order(&keys, height, BITS));
    Ok(Some(IdxCa::from_vec("order".into(), order)))
}

/// Each row's rank in each column of [`FACT_ORDER`].
fn fact_ranks(facts: &DataFrame) -> PolarsResult<Vec<Vec<u32>>> {
    FACT_ORDER.iter().map(|c| Ok(ranks(facts.column(c)?.str()?))).collect()
}

/// The rows ordered by their ranks, when the ranks and the row fit in one
/// u64, each in as many bits as its largest value needs (a batch's: ~30
/// bits of ranks, 18 of rows): sorted as plain numbers, half the bytes of
/// [`wide_order`]'s u128 key beside its row.
fn narrow_order(keys: &[Vec<u32>], height: u32) -> Option<Vec<IdxSize>> {
    let width = |most: u32| u32::BITS - most.leading_zeros();
    let widths: Vec<u32> = keys
        .iter()
        .map(|ranks| width(ranks.iter().copied().max().unwrap_or(0)))
        .collect();
    let row_bits = width(height.saturating_sub(1));
    if widths.iter().sum::<u32>() + row_bits > u64::BITS {
        return None;
    }
    // The row last: no two keys are equal, the sort need not be stable.
    let mut order: Vec<u64> = (0..height)
        .map(|i| {
            let key = keys
                .iter()
                .zip(&widths)
                .fold(0u64, |k, (ranks, w)| (k << w) | u64::from(ranks[i as usize]));
            (key << row_bits) | u64::from(i)
        })
        .collect();
    order.sort_unstable();
    let row_mask = (1u64 << row_bits) - 1;
    Some(order.into_iter().map(|k| (k & row_mask) as IdxSize).collect())
}

/// The rows ordered by their ranks, each below 2^`bits` (five fit in one
/// u128), the row beside them (equal keys keep their order, the sort need
/// not be stable).
fn wide_order(keys: &[Vec<u32>], height: u32, bits: u32) -> Vec<IdxSize> {
    let mut order: Vec<(u128, u32)> = (0..height)
        .map(|i| {
            let key = keys
                .iter()
                .fold(0u128, |k, ranks| (k << bits) | u128::from(ranks[i as usize]));
            (key, i)
        })
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, i)| i as IdxSize).collect()
}

/// Each value's rank among the column's distinct values in byte order
/// (how polars orders strings), null 0 (first).
fn ranks(column: &StringChunked) -> Vec<u32> {
    let texts = Texts::new(column);
    let mut ids: PlHashMap<&str, u32> = PlHashMap::new();
    let mut distinct: Vec<&str> = Vec::new();
    let mut out = Vec::with_capacity(texts.len());
    // Rows come in runs of one township and period: only a change is
    // looked up (a row compared with the one before by its view).
    for i in 0..texts.len() {
        let id = match (like_before(&[&texts], i), texts.get(i)) {
            (true, _) => out[i - 1],
            (false, None) => 0,
            (false, Some(v)) => *ids.entry(v).or_insert_with(|| {
                distinct.push(v);
                distinct.len() as u32
            }),
        };
        out.push(id);
    }
    let mut by_value: Vec<usize> = (0..distinct.len()).collect();
    by_value.sort_unstable_by_key(|&i| distinct[i]);
    let mut rank = vec![0u32; distinct.len() + 1];
    for (r, i) in by_value.into_iter().enumerate() {
        rank[i + 1] = r as u32 + 1;
    }
    for id in &mut out {
        *id = rank[*id as usize];
    }
    out
}

/// Where each indicator's rows are in facts sorted by indicator: its code,
/// first row and row count (a fact without an indicator has no table).
fn indicator_runs(sorted: &DataFrame) -> PolarsResult<Vec<(String, (usize, usize))>> {
    let mut runs: Vec<(String, (usize, usize))> = Vec::new();
    if sorted.height() == 0 {
        return Ok(runs);
    }
    // A row of the indicator before (compared by Arrow views) lengthens
    // its run; only a change is looked at as text.
    let codes = Texts::of(sorted, "indicator")?;
    for i in 0..codes.len() {
        let Some(code) = codes.get(i) else { continue };
        match runs.last_mut() {
            Some((last, (_, len))) if like_before(&[&codes], i) || last == code => *len += 1,
            _ => runs.push((code.to_string(), (i, 1))),
        }
    }
    Ok(runs)
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
    for (name, frame) in BATCH_TABLES.into_iter().zip(empty.others()) {
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
        "extractions" => (
            "every value read out of a work summary, with where it stands, the rule, the confidence and what became of it",
            extraction_columns(),
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

/// Publishes a program's rollups of one period at every level (county,
/// city, province, nation: see `rollup::LEVELS`), a file per period
/// (`period` None: the program's empty tables, when it has no period).
pub fn publish_rollup(
    program: &str,
    period: Option<&str>,
    rollup: &[DataFrame; 4],
    sink: &mut dyn TableSink,
    year: i32,
) -> Result<(), PublishError> {
    let owner = match period {
        Some(p) => Owner::batch(program, p),
        None => Owner::program(program),
    };
    for (level, frame) in LEVELS.iter().zip(rollup) {
        publish_rollup_level(owner, *level, frame, sink, year)?;
    }
    Ok(())
}

/// Publishes one level of a rollup (see [`publish_rollup`]), for `owner`.
pub fn publish_rollup_level(
    owner: Owner<'_>,
    level: Level,
    frame: &DataFrame,
    sink: &mut dyn TableSink,
    year: i32,
) -> Result<(), PublishError> {
    let table = Table {
        name: level.table.into(),
        description: format!(
            "{} totals per indicator, breakdown cell and period, with quota progress",
            level.label
        ),
        columns: rollup_columns(level),
        metadata: vec![],
        frame,
    };
    sink.write_by_year(&table, owner, year)
}

/// Publishes a program's small tables: landings and check results (its
/// rollups are published a period at a time, [`publish_rollup`]).
pub fn publish_program(
    program: &str,
    t: ProgramTables,
    sink: &mut dyn TableSink,
    year: i32,
) -> Result<(), PublishError> {
    let owner = Owner::program(program);
    write_years(t.landings, landing_table, sink, owner, year)?;
    write_years(t.checks, check_table, sink, owner, year)
}

/// Adds each year's file of `encoded`, the table `table` (an empty table
/// is one empty file of `empty_year`).
fn write_years(
    encoded: YearEncoder,
    table: fn(&DataFrame) -> Table<'_>,
    sink: &mut dyn TableSink,
    owner: Owner<'_>,
    empty_year: i32,
) -> Result<(), PublishError> {
    let empty = encoded.empty();
    let t = table(&empty);
    for (y, file, rows) in encoded.finish(empty_year)? {
        sink.write_encoded(&t, Some(y), owner, file, rows)?;
    }
    Ok(())
}

/// The digest of what `dim_townships` is made from: the registry (with the
/// catalog and mapping: their texts' digest) and the binary.
fn dim_townships_digest(cfg: &Loaded) -> String {
    // Lines of their own: neither holds a line break.
    let parts = ["dim_townships 1", crate::run::binary_identity(), &cfg.def.texts_digest];
    crate::land::sha256_hex(parts.join("\n").as_bytes())
}

/// The townships' table. Its file is carried from the published snapshot
/// when what it is made from is what that file was made from (remembered
/// in `<state_dir>/memo/.shared/dim_townships.json`, and the file there
/// exactly as remembered); made, compared and written otherwise (a
/// national registry's 41,352 rows were ~60 ms of every run, a rerun with
/// nothing new included). A memo that cannot be read or kept only costs
/// that time.
fn publish_dim_townships(cfg: &Loaded, sink: &mut dyn TableSink) -> Result<(), PublishError> {
    const NAME: &str = "dim_townships";
    let (state_dir, digest) = (&cfg.settings.paths.state_dir, dim_townships_digest(cfg));
    if let Some(file) = crate::memo::shared_file(state_dir, NAME, &digest)
        && sink.carry(std::slice::from_ref(&file))?
    {
        tracing::debug!("The townships' table is carried.");
        return Ok(());
    }
    tracing::debug!("The townships' table is made.");
    let frame = crate::rollup::dim_townships(&cfg.def.registry).map_err(frame_err(NAME))?;
    sink.write_file(
        &Table {
            name: NAME.into(),
            description: "townships of the registry with their county, city and province".into(),
            columns: township_columns(),
            metadata: vec![],
            frame: &frame,
        },
        None,
        Owner::SHARED,
    )?;
    if let Some(file) = sink.shared_file(NAME)
        && let Err(e) = crate::memo::keep_shared_file(state_dir, NAME, digest, file)
    {
        tracing::debug!(error = %e, "The townships' table's memo could not be kept.");
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
    publish_dim_townships(cfg, sink)?;
    let dims = [(
        "dim_indicators",
        "the indicator catalog",
        indicator_columns(),
        indicator_frame(cfg),
    )];
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

fn quota_frame(cfg: &Loaded) -> PolarsResult<DataFrame> {
    let q = &cfg.def.quotas;
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

fn indicator_frame(cfg: &Loaded) -> PolarsResult<DataFrame> {
    let inds = &cfg.def.catalog.indicators;
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

/// Writes `<warehouse>/runs/runs.parquet`: every run of the deployment, one
/// row each (outside the snapshots, so a run that changes nothing still
/// appears; the file is replaced whole with one rename).
pub fn publish_runs(
    runs: &[crate::state::RunRecord],
    warehouse: &std::path::Path,
    access: crate::private::Access,
) -> Result<(), PublishError> {
    let io = |path: &std::path::Path| {
        let path = path.display().to_string();
        move |source| PublishError::Io { path, source }
    };
    let n = |r: &crate::state::RunRecord, k: &str| r.summary.as_ref().and_then(|s| s.get(k)).and_then(|v| v.as_i64());
    let micros = |t: &chrono::DateTime<chrono::Utc>| t.timestamp_micros();
    let mut runs: Vec<&crate::state::RunRecord> = runs.iter().collect();
    runs.sort_by_key(|r| r.id);
    let frame = DataFrame::new_infer_height(vec![
        Column::new("run".into(), runs.iter().map(|r| r.id).collect::<Vec<_>>()),
        Column::new(
            "started_at".into(),
            runs.iter().map(|r| micros(&r.started_at)).collect::<Vec<_>>(),
        ),
        Column::new("clock".into(), runs.iter().map(|r| micros(&r.now)).collect::<Vec<_>>()),
        Column::new(
            "finished_at".into(),
            runs.iter()
                .map(|r| r.finished_at.as_ref().map(micros))
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "outcome".into(),
            runs.iter()
                .map(|r| {
                    let partial = r
                        .summary
                        .as_ref()
                        .and_then(|s| s.get("partial"))
                        .and_then(|v| v.as_bool());
                    match (r.finished_at, partial) {
                        (None, _) => "interrupted",
                        (Some(_), Some(true)) => "partial",
                        (Some(_), _) => "done",
                    }
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "programs".into(),
            runs.iter()
                .map(|r| {
                    r.summary
                        .as_ref()
                        .and_then(|s| s.get("programs"))
                        .and_then(|p| p.as_array())
                        .map(|a| a.iter().filter_map(|p| p.as_str()).collect::<Vec<_>>().join(","))
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "planned".into(),
            runs.iter().map(|r| n(r, "planned")).collect::<Vec<_>>(),
        ),
        Column::new(
            "fetched".into(),
            runs.iter().map(|r| n(r, "fetched")).collect::<Vec<_>>(),
        ),
        Column::new(
            "unchanged".into(),
            runs.iter().map(|r| n(r, "not_modified")).collect::<Vec<_>>(),
        ),
        Column::new(
            "not_submitted".into(),
            runs.iter().map(|r| n(r, "not_submitted")).collect::<Vec<_>>(),
        ),
        Column::new(
            "fetch_failed".into(),
            runs.iter().map(|r| n(r, "fetch_failed")).collect::<Vec<_>>(),
        ),
        Column::new(
            "landed_new".into(),
            runs.iter().map(|r| n(r, "landed_new")).collect::<Vec<_>>(),
        ),
        Column::new(
            "rows_published".into(),
            runs.iter().map(|r| n(r, "rows_published")).collect::<Vec<_>>(),
        ),
        Column::new(
            "quarantined".into(),
            runs.iter().map(|r| n(r, "quarantined")).collect::<Vec<_>>(),
        ),
        Column::new(
            "in_review".into(),
            runs.iter().map(|r| n(r, "in_review")).collect::<Vec<_>>(),
        ),
        Column::new(
            "alerts_raised".into(),
            runs.iter().map(|r| n(r, "alerts_raised")).collect::<Vec<_>>(),
        ),
        Column::new(
            "snapshot".into(),
            runs.iter().map(|r| n(r, "snapshot")).collect::<Vec<_>>(),
        ),
        Column::new(
            "not_revisited".into(),
            runs.iter().map(|r| n(r, "not_revisited")).collect::<Vec<_>>(),
        ),
    ])
    .map_err(frame_err("runs"))?;
    let table = Table {
        name: "runs".into(),
        description: "every run of the deployment: when, what it fetched, published and raised".into(),
        columns: taizhang_model::schema::run_columns(),
        metadata: vec![],
        frame: &frame,
    };
    let bytes = crate::sinks::parquet::encode_batch(&table, &crate::sinks::parquet::table_batch(&table)?)?;
    let dir = warehouse.join("runs");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let tmp = dir.join(format!(".runs.parquet.tmp-{}", std::process::id()));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    let (dmode, fmode) = access.modes();
    crate::private::restrict_exact(&tmp, fmode).map_err(io(&tmp))?;
    let _ = crate::private::restrict_exact(&dir, dmode);
    let dest = dir.join("runs.parquet");
    std::fs::rename(&tmp, &dest).map_err(io(&dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Facts in the order normalizing leaves them (a body's rows together,
    /// bodies in landing order), with nulls and repeated keys.
    fn facts(townships: usize, indicators: usize, seed: u64) -> DataFrame {
        let mut x = seed;
        let mut next = |n: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % n
        };
        let (mut ind, mut town, mut period, mut dim, mut cat, mut row) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for t in 0..townships {
            let code = format!("{:09}", 341124100 + next(townships as u64 * 3));
            let p = ["2026-05", "2026-06", "2026-Q2"][next(3) as usize];
            for i in 0..indicators {
                let (d, c) = match next(6) {
                    0 => (Some("性别"), Some(["男", "女"][next(2) as usize])),
                    1 => (Some("age"), None),
                    _ => (None, None),
                };
                ind.push((next(5) > 0).then(|| format!("ind_{:03}", (i * 7 + t) % indicators)));
                town.push(code.clone());
                period.push(p);
                dim.push(d);
                cat.push(c);
                row.push((ind.len() - 1) as u32);
            }
        }
        df!(
            "indicator" => ind, "township" => town, "period" => period,
            "dimension" => dim, "category" => cat, "row" => row,
        )
        .unwrap()
    }

    /// Each indicator's rows are one run of the sorted facts: its first
    /// row and count, long codes and short, across chunks, nulls (first)
    /// in no run.
    #[test]
    fn each_indicator_is_its_run_of_the_sorted_rows() {
        let long = |n: u8| format!("an_indicator_code_longer_than_a_view_{n}");
        let rows: Vec<Option<String>> = [None, None]
            .into_iter()
            .chain(std::iter::repeat_n(Some(long(1)), 3))
            .chain(std::iter::repeat_n(Some("b".to_string()), 2))
            .chain(std::iter::once(Some(long(2))))
            .chain(std::iter::repeat_n(Some(long(3)), 2))
            .collect();
        let mut column = StringChunked::from_iter_options("indicator".into(), rows[..4].iter().map(|r| r.as_deref()));
        column
            .append(&StringChunked::from_iter_options(
                "indicator".into(),
                rows[4..].iter().map(|r| r.as_deref()),
            ))
            .unwrap();
        let sorted = DataFrame::new_infer_height(vec![column.into_column()]).unwrap();
        let runs = indicator_runs(&sorted).unwrap();
        assert_eq!(
            runs,
            vec![
                (long(1), (2, 3)),
                ("b".to_string(), (5, 2)),
                (long(2), (7, 1)),
                (long(3), (8, 2))
            ]
        );
    }

    #[test]
    fn facts_are_published_in_the_order_a_sort_on_the_strings_gives() {
        for (townships, indicators, seed) in [(0, 0, 1), (1, 1, 2), (40, 30, 3), (300, 150, 4)] {
            let f = facts(townships, indicators, seed);
            let expected = sort_by_strings(&f).unwrap();
            let got = sort_facts(&f).unwrap();
            assert!(
                got.equals_missing(&expected),
                "{townships} × {indicators}: {got} {expected}"
            );
            // Both packings of the ranks give that order.
            let (keys, height) = (fact_ranks(&f).unwrap(), f.height() as u32);
            assert_eq!(narrow_order(&keys, height), Some(wide_order(&keys, height, 24)));
        }
        // Ranks too wide for one u64 with the row are left to the u128 key.
        let keys: Vec<Vec<u32>> = (0..5).map(|_| vec![(1 << 13) - 1, 0, 1 << 12]).collect();
        assert_eq!(narrow_order(&keys, 3), None);
        assert_eq!(wide_order(&keys, 3, 24), vec![1, 2, 0]);
    }
}
