//! Check: consistency of the normalized rows against arithmetic, quotas and
//! deadlines. Every check is pure (DataFrame in, DataFrame out; `now` passed
//! in) and evaluated over all townships and periods at once with polars.
//! Results share one schema ([`result_columns`]); error-severity failures
//! tied to an indicator keep those values out of the rollup unless the
//! township force-submitted with an explanation (强制上报 + 说明).

pub mod breakdown;
pub mod outlier;
pub mod overdue;
pub mod plausibility;
pub mod quota;
pub mod rule;
pub mod series;
pub mod track;

#[cfg(test)]
mod kinds_tests;

use chrono::{DateTime, Utc};
use polars::prelude::*;
use serde::Deserialize;

use crate::catalog::Catalog;
use crate::definition::Pipeline;
use crate::registry::Registry;
use crate::text::{Numbers, Texts};
use taizhang_model::schema::{check_columns, with_year};
use taizhang_model::{Quota, Severity};

/// One check declared in a pipeline file (`[[checks]]` with its `kind`).
/// This is the registry of check kinds: each variant's declaration is the
/// struct beside its implementation, and [`CheckConfig::build`] turns it
/// into the check.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckConfig {
    /// See [`breakdown::Breakdown`].
    Breakdown(breakdown::Breakdown),
    /// See [`quota::QuotaProgress`].
    QuotaProgress(quota::QuotaProgress),
    /// See [`overdue::Overdue`].
    Overdue(overdue::Overdue),
    /// See [`rule::RuleConfig`].
    Rule(rule::RuleConfig),
    /// See [`rule::CountRate`].
    CountRate(rule::CountRate),
    /// See [`rule::PartOfWhole`].
    PartOfWhole(rule::PartOfWhole),
    /// See [`rule::Ratio`].
    Ratio(rule::Ratio),
    /// See [`series::Cumulative`].
    Cumulative(series::Cumulative),
    /// See [`series::StockFlow`].
    StockFlow(series::StockFlow),
    /// See [`outlier::Outlier`].
    Outlier(outlier::Outlier),
    /// See [`plausibility::Plausibility`].
    Plausibility(plausibility::Plausibility),
}

impl CheckConfig {
    /// The check this declaration makes. Fails with a reason when it names
    /// an unknown indicator or category or an expression does not parse.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        match self {
            CheckConfig::Breakdown(c) => c.build(catalog),
            CheckConfig::QuotaProgress(c) => c.build(catalog),
            CheckConfig::Overdue(c) => c.build(catalog),
            CheckConfig::Rule(c) => c.build(catalog),
            CheckConfig::CountRate(c) => c.build(catalog),
            CheckConfig::PartOfWhole(c) => c.build(catalog),
            CheckConfig::Ratio(c) => c.build(catalog),
            CheckConfig::Cumulative(c) => c.build(catalog),
            CheckConfig::StockFlow(c) => c.build(catalog),
            CheckConfig::Outlier(c) => c.build(catalog),
            CheckConfig::Plausibility(c) => c.build(catalog),
        }
    }
}

/// The catalog code of an indicator named by code, name or alias.
fn known(catalog: &Catalog, code: &str) -> Result<String, String> {
    catalog
        .resolve(code)
        .map(|i| i.code.clone())
        .ok_or_else(|| format!("unknown indicator {code:?}"))
}

/// Columns of a check result as the checks make them: the published
/// `check_results` columns up to `excluded`, with `year` (the tracking
/// columns are added by [`track`]).
pub fn result_columns() -> Vec<String> {
    let cols = check_columns();
    let upto = cols
        .iter()
        .position(|c| c.name == "excluded")
        .map_or(cols.len(), |i| i + 1);
    with_year(&cols[..upto]).into_iter().map(str::to_string).collect()
}

/// The fact columns the checks read (a run gives them only these: every
/// row they filter, join or window is copied without the provenance);
/// [`CheckInput::earlier`] has the same.
pub const CHECKED_COLUMNS: [&str; 13] = {
    // The facts' columns before their provenance (`source_sha256` on).
    let mut columns = [""; 13];
    let mut i = 0;
    while i < columns.len() {
        columns[i] = crate::normalize::FACT_COLUMNS[i];
        i += 1;
    }
    columns
};

/// What every check sees.
#[derive(Clone)]
pub struct CheckInput<'a> {
    /// The program being checked.
    pub pipeline: &'a Pipeline,
    /// Indicator catalog.
    pub catalog: &'a Catalog,
    /// Township registry.
    pub registry: &'a Registry,
    /// Quotas of every year.
    pub quotas: &'a [Quota],
    /// Normalized fact rows.
    pub facts: &'a DataFrame,
    /// Current submissions.
    pub submissions: &'a DataFrame,
    /// (township, period) pairs whose fetch failed: not known to be missing,
    /// so not overdue; the fetch failure is alerted on its own.
    pub unreachable: &'a std::collections::HashSet<(String, String)>,
    /// The run's clock.
    pub now: DateTime<Utc>,
    /// What the quota check reads: the year to date through `facts`' period
    /// (a batch carried from the run before keeps it; a computed one
    /// continues the batch before's, [`quota::QuotaFacts::then`]); None:
    /// read from `facts`, which must then be every period of the year
    /// (an error with `earlier`).
    pub quota_facts: Option<&'a quota::QuotaFacts>,
    /// Fact rows of the periods before `facts`' (same townships, same
    /// columns), for the checks that look back ([`Check::earlier`]): the
    /// rows [`earlier_rows`] selects, or what [`look_back`] carries of them.
    /// None: nothing before. With them, the quota check needs
    /// `quota_facts` (the year to date is not carried in rows).
    pub earlier: Option<&'a DataFrame>,
    /// Each township's history of each indicator's totals after the
    /// periods before `facts`' ([`plausibility::series_after`]), which the
    /// plausibility check's history bound continues; None: `facts` are
    /// all the history there is.
    pub series: Option<&'a DataFrame>,
    /// The batch whose results are wanted ([`run_raw`] keeps only those);
    /// None: every period's.
    pub part: Option<&'a Part>,
}

/// Which batch of its province a run of the checks is for (a run works
/// in batches of one province's period): one period of the province's
/// (None when nothing of the province landed), whether it is the last one,
/// and all the province's periods. A batch owns the results of its period;
/// the last one also those of periods no batch has (a year's quota
/// progress, a period nobody of the province reported yet: overdue).
#[derive(Debug, Clone)]
pub struct Part {
    /// The batch's period.
    pub period: Option<String>,
    /// Whether it is its province's last.
    pub last: bool,
    /// Every period of the province that has a batch, oldest first.
    pub periods: Vec<String>,
}

impl Part {
    /// Whether results (and fetch failures) of `period` are this batch's.
    pub fn owns(&self, period: &str) -> bool {
        self.period.as_deref() == Some(period) || (self.last && !self.periods.iter().any(|p| p == period))
    }

    /// The rows of `results` this batch owns.
    pub fn keep(&self, results: DataFrame) -> PolarsResult<DataFrame> {
        let own = match &self.period {
            Some(p) => col("period").eq(lit(p.clone())),
            None => lit(false),
        };
        let orphan = match self.last {
            true => col("period")
                .is_in(lit(Series::new("p".into(), self.periods.clone())).implode(false), false)
                .not(),
            false => lit(false),
        };
        results.lazy().filter(own.or(orphan)).collect()
    }
}

/// One kind of check.
///
/// Contract: `run` returns only failures, one row per (rule, township,
/// period, indicator, dimension), in the first eleven [`result_columns`]
/// (`explanation` and `excluded` are added by [`run_all`]). It does no IO.
pub trait Check {
    /// Rule name as it appears in results (`breakdown`, `quota_behind`, …).
    fn name(&self) -> &'static str;
    /// Evaluates the check.
    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame>;
    /// Whether the result depends on the run's clock (`overdue`,
    /// `quota_progress`), besides the rows. Checks that do not are computed
    /// once per batch input; these are computed every run (from the
    /// submissions and the year-to-date achievement only).
    fn uses_clock(&self) -> bool {
        false
    }
    /// The fact rows of earlier periods this check reads (a filter), when
    /// it compares a period with the ones before it (year to date, the
    /// period before, a township's history); None when it reads only the
    /// periods it reports on. [`run_raw`] gives such a check
    /// [`CheckInput::earlier`] (which [`earlier_rows`], the union of these
    /// filters, selected) with the facts and keeps only its failures of
    /// periods other than the earlier ones.
    fn earlier(&self, _catalog: &Catalog) -> Option<Expr> {
        None
    }
    /// Of the rows of periods before (`earlier`: what [`earlier_rows`]
    /// selects of them, with a [`ROW`] index), the ones this check needs to
    /// check any later period as it would with all of them, as a frame of
    /// their [`ROW`]s: what a batch carries to the next instead of every
    /// period's rows ([`look_back`]). Called only when [`Check::earlier`]
    /// is Some; by default every row it selects.
    fn carried(&self, catalog: &Catalog, earlier: &DataFrame) -> PolarsResult<LazyFrame> {
        let rows = self.earlier(catalog).unwrap_or(lit(false));
        Ok(earlier.clone().lazy().filter(rows).select([col(ROW)]))
    }
    /// The rule this check is (declared rules and the fixed shapes built on
    /// them): [`run_raw`] evaluates every rule of a run over one table of
    /// their cells ([`rule::Cells`]).
    fn rule(&self) -> Option<&rule::Rule> {
        None
    }
}

/// The row index [`Check::carried`] reads and answers with.
pub const ROW: &str = "carried_row";

/// The look-back rows after a batch, carried to the next batch of its
/// province (as its [`CheckInput::earlier`]) instead of every period's rows:
/// of `before` (the look-back rows after the batch before; None for the
/// first) and of the rows [`earlier_rows`] selects of `facts` (the batch's
/// own), the ones some look-back check of `pipeline` needs for the periods
/// after them ([`Check::carried`]), in [`CHECKED_COLUMNS`]. However many
/// periods come before, this is about as many rows as a few periods have
/// (a series' last value, a township's last stock). More rows than needed
/// would do as well (each is a row of the periods before). Empty when no
/// check looks back. The year to date of the quota check
/// ([`quota::QuotaFacts::then`]) and the plausibility check's history of
/// totals ([`plausibility::series_after`]) are carried apart.
pub fn look_back(
    pipeline: &Pipeline,
    catalog: &Catalog,
    before: Option<&DataFrame>,
    facts: &DataFrame,
) -> PolarsResult<DataFrame> {
    let Some(rows) = earlier_rows(pipeline, catalog)? else {
        return Ok(DataFrame::empty());
    };
    let own = facts.select(CHECKED_COLUMNS)?.lazy().filter(rows);
    let all = match before.filter(|b| b.width() > 0) {
        Some(b) => concat([b.clone().lazy(), own], UnionArgs::default())?,
        None => {
            // One period (a province's first batch): each of its rows is
            // its series' last and its township's last, kept as they are.
            let own = own.collect()?;
            if own.column("period")?.n_unique()? <= 1 {
                return Ok(own);
            }
            own.lazy()
        }
    }
    .with_row_index(ROW, None)
    .collect()?;
    let mut kept = vec![];
    for cfg in &pipeline.checks {
        let check = cfg
            .build(catalog)
            .map_err(|e| polars_err!(ComputeError: "check validated at load no longer builds: {e}"))?;
        if check.earlier(catalog).is_some() {
            kept.push(check.carried(catalog, &all)?);
        }
    }
    let kept = concat(kept, UnionArgs::default())?.collect()?;
    let kept = kept.column(ROW)?.as_materialized_series().clone();
    all.lazy()
        .filter(col(ROW).is_in(lit(kept).implode(false), false))
        .select(CHECKED_COLUMNS.map(col))
        .collect()
}

/// Whether a check of `pipeline` continues each township's history of its
/// totals from the periods before ([`CheckInput::series`]): what a batch
/// then carries to the next ([`plausibility::series_after`]).
pub fn keeps_series(pipeline: &Pipeline) -> bool {
    pipeline
        .checks
        .iter()
        .any(|c| matches!(c, CheckConfig::Plausibility(_)))
}

/// The fact rows of earlier periods any check of `pipeline` reads (see
/// [`Check::earlier`]); None when no check looks back.
pub fn earlier_rows(pipeline: &Pipeline, catalog: &Catalog) -> PolarsResult<Option<Expr>> {
    let mut any: Option<Expr> = None;
    for cfg in &pipeline.checks {
        let check = cfg
            .build(catalog)
            .map_err(|e| polars_err!(ComputeError: "check validated at load no longer builds: {e}"))?;
        if let Some(e) = check.earlier(catalog) {
            any = Some(match any {
                Some(a) => a.or(e),
                None => e,
            });
        }
    }
    Ok(any)
}

/// Rules whose failures a force-submit explanation (强制上报 + 说明) can never
/// hold in: impossible values. Every other error-severity failure is held
/// out of the rollup unless the township explained it.
pub const NEVER_OVERRIDABLE: &[&str] = &[plausibility::IMPOSSIBLE];

/// Runs every check of the pipeline and adds the submission's explanation
/// and the rollup gate (`excluded`).
pub fn run_all(input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
    let raw = [run_raw(input, false)?, run_raw(input, true)?];
    finish(&raw, input.submissions)
}

/// The failures of the pipeline's checks that use the clock (`clock`) or do
/// not, in the first eleven [`result_columns`], before [`finish`].
pub fn run_raw(input: &CheckInput<'_>, clock: bool) -> PolarsResult<DataFrame> {
    let mut frames = vec![Rows::default().finish()?.lazy()];
    // The facts with the earlier rows before them, made once for every check
    // that looks back, and which of its failures are this run's: failures
    // of the earlier periods are theirs, reported when they were checked.
    let mut looked_back: Option<(DataFrame, Expr)> = None;
    // Rules are evaluated together, after the others (the order of the
    // parts does not matter, see `finish`).
    let mut rules: Vec<Box<dyn Check>> = Vec::new();
    for cfg in &input.pipeline.checks {
        let check = cfg
            .build(input.catalog)
            .map_err(|e| polars_err!(ComputeError: "check validated at load no longer builds: {e}"))?;
        if check.uses_clock() != clock {
            continue;
        }
        if check.rule().is_some() && check.earlier(input.catalog).is_none() {
            rules.push(check);
            continue;
        }
        match (check.earlier(input.catalog), input.earlier) {
            (Some(_), Some(earlier)) if earlier.height() > 0 => {
                let (facts, ours) = match looked_back {
                    Some(ref made) => made,
                    None => looked_back.insert(with_earlier(input.facts, earlier)?),
                };
                let input = CheckInput {
                    facts,
                    earlier: None,
                    ..input.clone()
                };
                frames.push(check.run(&input)?.lazy().filter(ours.clone()));
            }
            _ => frames.push(check.run(input)?.lazy()),
        }
    }
    let rules: Vec<&rule::Rule> = rules.iter().filter_map(|c| c.rule()).collect();
    if !rules.is_empty() {
        let cells = rule::Cells::of(input.facts, &rules)?;
        for r in rules {
            frames.push(rule::evaluate_with(r, input, &cells)?.lazy());
        }
    }
    let all = concat(frames, UnionArgs::default())?.collect()?;
    match input.part {
        Some(part) => part.keep(all),
        None => Ok(all),
    }
}

/// `facts` with the `earlier` rows (at least every look-back check's rows
/// of the periods before), and the filter that keeps a failure unless it is
/// of a period only the earlier rows have.
fn with_earlier(facts: &DataFrame, earlier: &DataFrame) -> PolarsResult<(DataFrame, Expr)> {
    let both = concat([earlier.clone().lazy(), facts.clone().lazy()], UnionArgs::default())?.collect()?;
    let periods =
        |f: &DataFrame| -> PolarsResult<Series> { Ok(f.column("period")?.unique()?.as_materialized_series().clone()) };
    let (before, own) = (periods(earlier)?, periods(facts)?);
    let ours = col("period")
        .is_in(lit(before).implode(false), false)
        .not()
        .or(col("period").is_in(lit(own).implode(false), false));
    Ok((both, ours))
}

/// Failures of [`run_raw`] made results: each with its submission's
/// explanation (`submissions`: township, period, explanation) and the rollup
/// gate (`excluded`), in one order whatever order the parts come in (no two
/// checks share a rule name).
pub fn finish(raw: &[DataFrame], submissions: &DataFrame) -> PolarsResult<DataFrame> {
    let mut frames = vec![Rows::default().finish()?.lazy()];
    frames.extend(raw.iter().map(|f| f.clone().lazy()));
    let all = concat(frames, UnionArgs::default())?;
    let explanations = submissions
        .clone()
        .lazy()
        .select([col("township"), col("period"), col("explanation")]);
    all.join(
        explanations,
        [col("township"), col("period")],
        [col("township"), col("period")],
        JoinArgs::new(JoinType::Left),
    )
    .with_column(
        (col("severity")
            .eq(lit("error"))
            .and(col("indicator").is_not_null())
            .and(
                col("explanation").is_null().or(NEVER_OVERRIDABLE
                    .iter()
                    .fold(lit(false), |any, r| any.or(col("rule").eq(lit(*r))))),
            ))
        .alias("excluded"),
    )
    .sort(
        ["township", "period", "rule", "indicator", "dimension"],
        SortMultipleOptions::default()
            .with_nulls_last(false)
            .with_maintain_order(true),
    )
    .collect()
}

/// Whether [`finish`] can hold any of the failures `raw` out of the rollup:
/// only an error about an indicator can be (see its `excluded`). False lets
/// a caller that wants only the held-out cells skip finishing them.
pub fn may_hold_out(raw: &DataFrame) -> PolarsResult<bool> {
    if raw.height() == 0 {
        return Ok(false);
    }
    let severity = raw.column("severity")?.str()?;
    let indicator = raw.column("indicator")?;
    Ok(severity
        .iter()
        .zip(indicator.is_not_null().iter())
        .any(|(s, i)| s == Some("error") && i == Some(true)))
}

/// Builder for result rows (failures are few; messages are formatted in Rust).
#[derive(Default)]
pub struct Rows {
    rule: Vec<String>,
    severity: Vec<String>,
    program: Vec<String>,
    township: Vec<String>,
    period: Vec<String>,
    year: Vec<i32>,
    indicator: Vec<Option<String>>,
    dimension: Vec<Option<String>>,
    observed: Vec<Option<f64>>,
    expected: Vec<Option<f64>>,
    message: Vec<String>,
}

/// One failure.
pub struct Failure<'a> {
    /// Rule name.
    pub rule: &'a str,
    /// Severity.
    pub severity: Severity,
    /// Program.
    pub program: &'a str,
    /// Township code.
    pub township: &'a str,
    /// Period (or year, for year-to-date checks).
    pub period: &'a str,
    /// Calendar year.
    pub year: i32,
    /// Indicator code, if the failure is about one.
    pub indicator: Option<&'a str>,
    /// Breakdown dimension, if any.
    pub dimension: Option<&'a str>,
    /// What was found.
    pub observed: Option<f64>,
    /// What was expected.
    pub expected: Option<f64>,
    /// Words for county staff.
    pub message: String,
}

impl Rows {
    /// Adds a failure.
    pub fn push(&mut self, f: Failure<'_>) {
        self.rule.push(f.rule.to_string());
        self.severity.push(f.severity.as_str().to_string());
        self.program.push(f.program.to_string());
        self.township.push(f.township.to_string());
        self.period.push(f.period.to_string());
        self.year.push(f.year);
        self.indicator.push(f.indicator.map(str::to_string));
        self.dimension.push(f.dimension.map(str::to_string));
        self.observed.push(f.observed);
        self.expected.push(f.expected);
        self.message.push(f.message);
    }

    /// The rows as a frame.
    pub fn finish(self) -> PolarsResult<DataFrame> {
        DataFrame::new_infer_height(vec![
            Column::new("rule".into(), self.rule),
            Column::new("severity".into(), self.severity),
            Column::new("program".into(), self.program),
            Column::new("township".into(), self.township),
            Column::new("period".into(), self.period),
            Column::new("year".into(), self.year),
            Column::new("indicator".into(), self.indicator),
            Column::new("dimension".into(), self.dimension),
            Column::new("observed".into(), self.observed),
            Column::new("expected".into(), self.expected),
            Column::new("message".into(), self.message),
        ])
    }
}

/// A sum of floats as polars sums a group's values (Kahan's compensated
/// sum, in row order), so that a sum made in Rust equals the group-by's
/// to the last bit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GroupSum {
    sum: f64,
    err: f64,
}

impl GroupSum {
    /// Adds a value.
    pub(crate) fn add(&mut self, v: f64) {
        let y = v - self.err;
        let sum = self.sum + y;
        let err = (sum - self.sum) - y;
        self.sum = sum;
        // Kept finite, so that Inf − Inf brings no NaN.
        if err.is_finite() {
            self.err = err;
        }
    }

    /// The sum so far.
    pub(crate) fn sum(&self) -> f64 {
        self.sum
    }
}

/// The most reported totals ([`reported_totals`]) any (township,
/// indicator) has in `facts`, of `indicators` when given: a check that
/// needs a history of n values can find nothing when this is below n
/// (counted in one pass, a group-by's worth less than the check's plan).
pub(crate) fn longest_history(facts: &DataFrame, indicators: Option<&[String]>) -> PolarsResult<usize> {
    let of: Option<PlHashSet<&str>> = indicators.map(|i| i.iter().map(String::as_str).collect());
    let (township, indicator) = (Texts::of(facts, "township")?, Texts::of(facts, "indicator")?);
    let dimension = Texts::of(facts, "dimension")?;
    let value = Numbers::<Float64Type>::of(facts, "value")?;
    // A report's totals are one row in nine (the rest are its categories):
    // only they are hashed.
    let mut counts: PlHashMap<(Option<&str>, Option<&str>), usize> = PlHashMap::with_capacity(facts.height() / 8);
    let mut longest = 0;
    for row in 0..township.len() {
        if dimension.get(row).is_some() || value.get(row).is_none() {
            continue;
        }
        let i = indicator.get(row);
        if of.as_ref().is_some_and(|of| !i.is_some_and(|i| of.contains(i))) {
            continue;
        }
        let n = counts.entry((township.get(row), i)).or_insert(0);
        *n += 1;
        longest = longest.max(*n);
    }
    Ok(longest)
}

/// The rows a look-back over every indicator's totals reads: reported
/// totals.
pub fn reported_totals() -> Expr {
    col("dimension").is_null().and(col("value").is_not_null())
}

/// A frame of failures as a check's query returns them: the columns every
/// result row needs (program, township, period, year) read once, plus typed
/// access to the check's own columns.
pub struct FailureFrame<'a> {
    df: &'a DataFrame,
    program: StringChunked,
    township: StringChunked,
    period: StringChunked,
    year: Int32Chunked,
}

impl<'a> FailureFrame<'a> {
    /// Reads the common columns.
    pub fn read(df: &'a DataFrame) -> PolarsResult<FailureFrame<'a>> {
        Ok(FailureFrame {
            df,
            program: df.column("program")?.str()?.clone(),
            township: df.column("township")?.str()?.clone(),
            period: df.column("period")?.str()?.clone(),
            year: df.column("year")?.i32()?.clone(),
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.df.height()
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.df.height() == 0
    }

    /// A text column of the check's own.
    pub fn str(&self, name: &str) -> PolarsResult<StringChunked> {
        self.df.column(name)?.str().cloned()
    }

    /// A number column of the check's own.
    pub fn f64(&self, name: &str) -> PolarsResult<Float64Chunked> {
        self.df.column(name)?.f64().cloned()
    }

    /// Township of row `i`.
    pub fn township(&self, i: usize) -> &str {
        self.township.get(i).unwrap_or("")
    }

    /// Period of row `i`.
    pub fn period(&self, i: usize) -> &str {
        self.period.get(i).unwrap_or("")
    }

    /// A failure for row `i` with the common columns filled in; the caller
    /// sets indicator, dimension, observed, expected and message.
    pub fn failure(&self, i: usize, rule: &'a str, severity: Severity) -> Failure<'_> {
        Failure {
            rule,
            severity,
            program: self.program.get(i).unwrap_or(""),
            township: self.township(i),
            period: self.period(i),
            year: self.year.get(i).unwrap_or(0),
            indicator: None,
            dimension: None,
            observed: None,
            expected: None,
            message: String::new(),
        }
    }
}

/// Township display name for messages: 大墅镇(341124102).
pub fn township_label(registry: &Registry, code: &str) -> String {
    match registry.get(code) {
        Some(t) => format!("{}({code})", t.name),
        None => code.to_string(),
    }
}

/// Formats a number for a message. A number a township wrote where a
/// count or an amount goes can be a mobile or ID card number (a value
/// `13812345678`): masked like every echo of what townships write, since
/// messages reach alerts and chat groups.
pub fn num(x: f64) -> String {
    let text = crate::submission::format_number((x * 100.0).round() / 100.0);
    match crate::submission::mask_personal(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(masked) => masked,
    }
}

#[cfg(test)]
mod history_tests {
    use super::*;

    /// The longest history is the largest count of reported totals (no
    /// dimension, a value) of one (township, indicator), of the indicators
    /// asked about: what a polars group-by counts, on random facts in two
    /// chunks with nulls everywhere.
    #[test]
    fn the_longest_history_is_the_largest_group_of_totals() {
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for round in 0..40 {
            let rows = 1 + next(300) as usize;
            let pick = |k: u64, names: &[&'static str]| names.get(k as usize).copied();
            let mut t = vec![];
            let mut i = vec![];
            let mut d = vec![];
            let mut v = vec![];
            for _ in 0..rows {
                t.push(pick(
                    next(5),
                    &["340101001", "340101002", "a township code over twelve", "x"],
                ));
                i.push(pick(next(4), &["severe_care_amount", "b", "c"]));
                d.push(pick(next(3), &["类别"]));
                v.push((next(6) > 0).then(|| next(10) as f64));
            }
            let half = rows / 2;
            let frame = |r: std::ops::Range<usize>| {
                df!(
                    "township" => &t[r.clone()],
                    "indicator" => &i[r.clone()],
                    "dimension" => &d[r.clone()],
                    "value" => &v[r],
                )
                .unwrap()
            };
            let mut facts = frame(0..half);
            facts.vstack_mut(&frame(half..rows)).unwrap();
            let of: Option<Vec<String>> = (round % 2 == 1).then(|| vec!["severe_care_amount".into(), "c".into()]);
            let mut wanted = reported_totals();
            if let Some(of) = &of {
                wanted =
                    wanted.and(col("indicator").is_in(lit(Series::new("of".into(), of.clone())).implode(false), false));
            }
            let expected = facts
                .clone()
                .lazy()
                .filter(wanted)
                .group_by([col("township"), col("indicator")])
                .agg([len().alias("n")])
                .select([col("n").max()])
                .collect()
                .unwrap();
            let expected = expected.column("n").unwrap().u32().unwrap().get(0).unwrap_or(0) as usize;
            assert_eq!(
                longest_history(&facts, of.as_deref()).unwrap(),
                expected,
                "round {round}"
            );
        }
    }
}
