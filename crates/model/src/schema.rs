//! The one definition of every published table's columns: name, type,
//! description and unit. The Parquet files declare these (field metadata),
//! the stages build their frames in this order, and a test holds the README's
//! table reference to them.

use ColType::{Bool, F64, I64, Str, Timestamp};
use arrow_schema::{DataType, TimeUnit};

/// Logical type of a published column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// UTF-8 text.
    Str,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// Double.
    F64,
    /// Boolean.
    Bool,
    /// Instant, microseconds since the epoch, UTC (held as i64 in frames).
    Timestamp,
}

/// One published column: name, type, and the words that travel with it.
#[derive(Debug, Clone)]
pub struct ColSpec {
    /// Column name.
    pub name: String,
    /// Type.
    pub ty: ColType,
    /// What it holds.
    pub description: String,
    /// Unit of the values, if any.
    pub unit: Option<String>,
}

/// Shorthand for a column without a unit.
pub fn c(name: &str, ty: ColType, description: &str) -> ColSpec {
    ColSpec {
        name: name.into(),
        ty,
        description: description.into(),
        unit: None,
    }
}

impl ColType {
    /// The Arrow type the column is written as.
    pub fn arrow(self) -> DataType {
        match self {
            ColType::Str => DataType::Utf8,
            ColType::I32 => DataType::Int32,
            ColType::I64 => DataType::Int64,
            ColType::F64 => DataType::Float64,
            ColType::Bool => DataType::Boolean,
            ColType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// The names of `columns`, in order.
pub fn names(columns: &[ColSpec]) -> Vec<&str> {
    columns.iter().map(|c| c.name.as_str()).collect()
}

/// One level of the hierarchy: its table and the columns naming its area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Table name (`rollup_county`, …).
    pub table: &'static str,
    /// Area code column (`county`, …); None for the nation.
    pub code: Option<&'static str>,
    /// Area name column.
    pub name: Option<&'static str>,
    /// What the level is called in descriptions.
    pub label: &'static str,
}

/// The levels, bottom up.
pub const LEVELS: [Level; 4] = [
    Level {
        table: "rollup_county",
        code: Some("county"),
        name: Some("county_name"),
        label: "county",
    },
    Level {
        table: "rollup_city",
        code: Some("city"),
        name: Some("city_name"),
        label: "city",
    },
    Level {
        table: "rollup_province",
        code: Some("province"),
        name: Some("province_name"),
        label: "province",
    },
    Level {
        table: "rollup_nation",
        code: None,
        name: None,
        label: "nation",
    },
];

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
        c(
            "extracted",
            Bool,
            "read out of a work summary's prose by the extractor (see extractions), not typed into a form",
        ),
    ]
}

/// Columns of `extractions`: every value the extractor found in a document
/// (work summary), with its provenance and what became of it.
pub fn extraction_columns() -> Vec<ColSpec> {
    vec![
        c("program", Str, "reporting program"),
        c("township", Str, "9-digit township code the document was fetched for"),
        c("county", Str, "6-digit county code"),
        c("period", Str, "reporting period"),
        c(
            "review_id",
            Str,
            "id in the review queue (taizhang review accept|reject ID); stable across runs",
        ),
        c("indicator", Str, "indicator code"),
        c("name", Str, "indicator name"),
        c("dimension", Str, "breakdown dimension after 其中; null for the total"),
        c("category", Str, "breakdown category; null for the total"),
        c("value", F64, "value in the indicator's unit"),
        c("unit", Str, "unit of value"),
        c("approx", Bool, "written as an approximation (多, 余, 近, 左右)"),
        c("missing", Bool, "no number could be read"),
        c(
            "kind",
            Str,
            "achievement, or quota when the sentence assigns it (任务, 指标, 下达): never published as a fact",
        ),
        c("value_raw", Str, "the value as written (155.67萬元)"),
        c(
            "sentence",
            Str,
            "the sentence it stands in (personal numbers masked; 400 characters at most)",
        ),
        c("start", I64, "character offset of the value in the document text"),
        c("end", I64, "character offset just after the value"),
        c(
            "rule",
            Str,
            "the extractor's rule that attached the value to the indicator",
        ),
        c("confidence", F64, "0-1; published at 0.9 and above"),
        c("decision", Str, "the extractor's: publish or review"),
        c(
            "status",
            Str,
            "published (in facts), review (waiting), accepted (published after review), rejected (set aside by a reviewer; in quarantine), conflict (accepted, but the document's published value for the same cell differs), quarantined (unusable; reason in quarantine), quota",
        ),
        c("source_sha256", Str, "sha256 of the document (raw/sha256/…)"),
        c(
            "submitted_at",
            Timestamp,
            "declared submission time (null for documents)",
        ),
        c("version", I64, "declared version (null for documents)"),
        c(
            "value_index",
            I64,
            "position among the document's values; null for quotas",
        ),
    ]
}

/// Columns of `runs`: every run of the deployment (outside the snapshots).
pub fn run_columns() -> Vec<ColSpec> {
    vec![
        c("run", I64, "run id (state store)"),
        c("started_at", Timestamp, "when the run started (wall clock)"),
        c("clock", Timestamp, "the run's clock (--now, or the start)"),
        c(
            "finished_at",
            Timestamp,
            "when it committed; null when interrupted or failed",
        ),
        c(
            "outcome",
            Str,
            "done, partial (committed; some reports not fetched or alerts not delivered) or interrupted (killed or failed before its commit)",
        ),
        c("programs", Str, "the programs it ran, comma-separated"),
        c(
            "planned",
            I64,
            "reports it asked for: every report expected, less not_revisited",
        ),
        c("fetched", I64, "reports downloaded"),
        c("unchanged", I64, "reports the portal said were unchanged (304)"),
        c("not_submitted", I64, "reports not there yet (404)"),
        c("fetch_failed", I64, "reports that could not be fetched"),
        c("landed_new", I64, "bodies landed for the first time"),
        c("rows_published", I64, "fact rows published"),
        c("quarantined", I64, "values set aside"),
        c("in_review", I64, "values read from documents waiting for review"),
        c("alerts_raised", I64, "alerts raised"),
        c("snapshot", I64, "the snapshot it published; null when nothing changed"),
        c(
            "not_revisited",
            I64,
            "reports of settled periods it left for another day (a program's revisit_after_days); null for runs before this column",
        ),
    ]
}

/// Columns of a rollup level's table (`rollup_county`, …, `rollup_nation`).
pub fn rollup_columns(level: Level) -> Vec<ColSpec> {
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

/// Columns of `submissions`: the current submission of every township and period.
pub fn submission_columns() -> Vec<ColSpec> {
    vec![
        c("program", Str, "reporting program"),
        c("township", Str, "9-digit township code the report was requested for"),
        c("period", Str, "reporting period"),
        c("source_sha256", Str, "sha256 of the current body"),
        c(
            "format",
            Str,
            "json, csv, xlsx, dhis2, txt or docx (work summaries); null when unreadable",
        ),
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
            "first_seen_at",
            Timestamp,
            "when taizhang first saw any version of this report",
        ),
        c(
            "seen_missing_at",
            Timestamp,
            "the first fetch after the deadline that found nothing (404, no inbox file); null if none",
        ),
        c(
            "status",
            Str,
            "on_time, late, unknown (no evidence either way) or quarantined (unreadable); from the claimed time, when taizhang first saw the report and whether a fetch after the deadline found it missing (README: Timeliness)",
        ),
        c("explanation", Str, "force-submit explanation (强制上报说明), if any"),
        c("values_received", I64, "values in the body"),
        c("values_published", I64, "values published to the fact tables"),
        c(
            "values_quarantined",
            I64,
            "values set aside; received = published + quarantined + in_review",
        ),
        c(
            "values_in_review",
            I64,
            "a document's extracted values waiting in the review queue (0 for forms)",
        ),
        c(
            "versions_landed",
            I64,
            "distinct bodies landed for this township and period",
        ),
    ]
}

/// Columns of `submission_history`: cells changed between versions of a submission.
pub fn history_columns() -> Vec<ColSpec> {
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

/// The columns of `table` whose values are nearly all distinct (a check
/// result's message and explanation; a landing's URL and body sha256), so
/// that a Parquet dictionary of them would be built value by value and then
/// dropped for plain pages: they are written plain from the start (a
/// national year's `check_results` and `landings`, 1.7 million and 455,000
/// rows encoded every run, ~9% less encoding and slightly smaller files).
/// A fact's value as written changes nearly every row of its file (a
/// file holds one indicator, a row per township and breakdown): interning
/// each one was a quarter of the writer's time on a national month's
/// facts; written plain, the writer's time in a first run's compute 884 →
/// 712 perf samples, for 3% more bytes (63.2 → 65.2 MB of facts).
pub fn plain_columns(table: &str) -> &'static [&'static str] {
    match table {
        "check_results" => &["message", "explanation"],
        "landings" => &["url", "source_sha256"],
        t if t.starts_with("facts/") => &["value_raw"],
        _ => &[],
    }
}

/// The columns of `table` written without min/max statistics: in every
/// file they span about every value they can take (a fact's dimension,
/// category, value as written and body sha256) or hold one (its unit, the
/// indicator's), so a reader skips no file by them, and comparing every
/// value twice to find them was a tenth of encoding a national month's
/// facts. The other columns keep them (township, county, period,
/// indicator, value: what readers filter on).
pub fn unranged_columns(table: &str) -> &'static [&'static str] {
    match table {
        t if t.starts_with("facts/") => &["dimension", "category", "unit", "value_raw", "source_sha256"],
        _ => &[],
    }
}

/// The columns of `table` written uncompressed: one value per file, or
/// nearly (a fact file is one program, period and indicator of one batch),
/// so their dictionary-encoded pages are a few dozen bytes that zstd makes
/// larger, and making a zstd compressor for each was most of their cost
/// (1,000 fact files a national month).
pub fn uncompressed_columns(table: &str) -> &'static [&'static str] {
    match table {
        t if t.starts_with("facts/") => &["program", "period", "indicator", "unit", "version"],
        _ => &[],
    }
}

/// Columns of `landings`: every body landed, the current one marked.
pub fn landing_columns() -> Vec<ColSpec> {
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
        c(
            "timeliness",
            Str,
            "on_time, late or unknown: the first version as the report's; a later version (a correction) late when first seen after the deadline",
        ),
    ]
}

/// Columns of `quarantine`: values and submissions set aside, with the reason.
pub fn quarantine_columns() -> Vec<ColSpec> {
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

/// Columns of `check_results`: failed checks with their tracking columns.
pub fn check_columns() -> Vec<ColSpec> {
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

/// Columns of `alerts`: every alert raised, open and resolved.
pub fn alert_columns() -> Vec<ColSpec> {
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
        ("extractions".to_string(), extraction_columns()),
        ("runs".to_string(), run_columns()),
        ("check_results".to_string(), check_columns()),
        ("quotas".to_string(), quota_columns()),
        ("alerts".to_string(), alert_columns()),
        ("dim_townships".to_string(), township_columns()),
        ("dim_indicators".to_string(), indicator_columns()),
    ]);
    out
}

/// Columns of `quotas`: yearly quotas (partitioned by `year`).
pub fn quota_columns() -> Vec<ColSpec> {
    vec![
        c("code", Str, "6-digit county or 9-digit township code"),
        c("level", Str, "county or township"),
        c("indicator", Str, "indicator code"),
        c("quota", F64, "target for the year, in the indicator's unit"),
    ]
}

/// Columns of `dim_townships`: the registry with county, city and province.
pub fn township_columns() -> Vec<ColSpec> {
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

/// Columns of `dim_indicators`: the indicator catalog.
pub fn indicator_columns() -> Vec<ColSpec> {
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

/// `columns` with `year` after `period`: the order of the frames the stages
/// make, where `year` is still a column (it becomes the `year=` partition).
pub fn with_year(columns: &[ColSpec]) -> Vec<&str> {
    let mut out = Vec::with_capacity(columns.len() + 1);
    for c in columns {
        out.push(c.name.as_str());
        if c.name == "period" {
            out.push("year");
        }
    }
    out
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

    /// Every column written plain is a text column of its table (a
    /// renamed column would otherwise be written with a dictionary again,
    /// silently).
    #[test]
    fn the_plain_columns_are_text_columns_of_their_tables() {
        let mut named = 0;
        for (table, columns) in super::schemas() {
            for plain in super::plain_columns(&table) {
                let c = columns.iter().find(|c| c.name == *plain);
                assert!(c.is_some_and(|c| c.ty == super::ColType::Str), "{table}.{plain}");
                named += 1;
            }
        }
        assert_eq!(named, 5);
    }

    #[test]
    fn the_readme_lists_every_published_column_in_order() {
        let readme = include_str!("../../../README.md");
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
