//! Plausibility bounds: a township value above what one township can
//! plausibly do in a period (138674万名 in a township of 30,000 people), or
//! below zero, is held out of the rollup until someone confirms it.
//!
//! The bound is the tightest of what is known: the configured bound (the
//! pipeline's `bounds`, else the catalog's `plausible_max`, per month); for
//! counts of people and households, the township's resident population
//! (registry.toml `[population]`); and, once the township has
//! `min_history` non-zero periods, `history_factor` times its largest
//! monthly value so far (never below `history_floor` per month).

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::Deserialize;
use taizhang_model::Severity;

use super::known;
use super::{Check, CheckInput, Failure, FailureFrame, Rows, num, township_label};
use crate::catalog::Catalog;

/// Units that count people or households: no township has more of them
/// than its population.
const PEOPLE_UNITS: &[&str] = &["人", "名", "户"];

/// Rule name of a value below zero or over a hard bound (the catalog's
/// `plausible_max`, the configured bound, the township's population): always
/// an error, and never held in by a force-submit explanation.
pub const IMPOSSIBLE: &str = "impossible";

/// Working columns: a row's place in period order, its value per month.
const ORDER: &str = "__order";
const PER_MONTH: &str = "__per_month";

/// Over rows sorted by series (township, indicator), then period: for each
/// row, the largest per-month value of the rows before it in its series
/// (`history_max`) and how many of their values are not zero
/// (`history_n`). What `shift(1)` then `cum_max()` / `cum_sum()` over the
/// series give, nulls as they give them (both null on a series' first row;
/// the largest null too where the row before has no per-month value), in
/// one pass: polars evaluates those windows one small frame per series,
/// 140 ms of a province's month.
fn history(sorted: DataFrame) -> PolarsResult<DataFrame> {
    let (township, indicator) = (sorted.column("township")?.str()?, sorted.column("indicator")?.str()?);
    let (value, per_month) = (sorted.column("value")?.f64()?, sorted.column(PER_MONTH)?.f64()?);
    let n = sorted.height();
    let mut largest: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut nonzero: Vec<Option<i64>> = Vec::with_capacity(n);
    let (mut max, mut count) = (None::<f64>, 0i64);
    let (mut prev, mut prev_pm, mut prev_nz) = ((None, None), None, 0i64);
    for i in 0..n {
        let series = (township.get(i), indicator.get(i));
        if i == 0 || series != prev {
            (max, count) = (None, 0);
            largest.push(None);
            nonzero.push(None);
        } else {
            largest.push(prev_pm.map(|x: f64| {
                let m = max.map_or(x, |m: f64| if x > m || m.is_nan() { x } else { m });
                max = Some(m);
                m
            }));
            count += prev_nz;
            nonzero.push(Some(count));
        }
        prev = series;
        prev_pm = per_month.get(i);
        prev_nz = i64::from(value.get(i).is_some_and(|v| v != 0.0));
    }
    let mut out = sorted;
    out.with_column(Column::new("history_max".into(), largest))?;
    out.with_column(Column::new("history_n".into(), nonzero))?;
    Ok(out)
}

/// The plausibility check (`kind = "plausibility"`): bounds per township and
/// period (the catalog's `plausible_max`, overridable here) and against the
/// township's own history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plausibility {
    /// Overrides of the catalog's `plausible_max`: indicator code or name →
    /// largest plausible value per township and month.
    #[serde(default)]
    pub bounds: BTreeMap<String, f64>,
    /// A value over this many times the township's largest month so far is implausible.
    #[serde(default = "default_history_factor")]
    pub history_factor: f64,
    /// Non-zero periods of history needed before the history bound applies.
    #[serde(default = "default_min_history")]
    pub min_history: usize,
    /// The history bound is never below this, per month.
    #[serde(default = "default_history_floor")]
    pub history_floor: f64,
    /// Severity.
    pub severity: Severity,
}

fn default_history_factor() -> f64 {
    20.0
}

fn default_min_history() -> usize {
    3
}

fn default_history_floor() -> f64 {
    100.0
}

impl Plausibility {
    /// Resolves the indicators named in `bounds` to catalog codes.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(Plausibility {
            bounds: self
                .bounds
                .iter()
                .map(|(k, v)| known(catalog, k).map(|c| (c, *v)))
                .collect::<Result<_, _>>()?,
            ..self.clone()
        }))
    }
}

impl Check for Plausibility {
    fn name(&self) -> &'static str {
        "implausible"
    }

    /// The township's history of each indicator's total.
    fn earlier(&self, _catalog: &Catalog) -> Option<Expr> {
        Some(super::reported_totals())
    }

    /// Of each township's history of an indicator, what its bound reads:
    /// its largest month, and its last `min_history` non-zero periods
    /// (whether it has that many).
    fn carried(&self, _catalog: &Catalog, earlier: &DataFrame) -> PolarsResult<LazyFrame> {
        let keys = [col("township"), col("indicator")];
        let per_month = col("value") / col("months");
        let totals = earlier.clone().lazy().filter(super::reported_totals()).join(
            super::rule::period_months(earlier)?.lazy(),
            [col("period")],
            [col("period")],
            JoinArgs::new(JoinType::Left),
        );
        let largest = totals
            .clone()
            .filter(
                per_month
                    .clone()
                    .eq(per_month.clone().max().over(keys.clone())?)
                    .or(per_month.is_nan()),
            )
            .select([col(super::ROW)]);
        let last = totals
            .filter(col("value").neq(lit(0.0)))
            .filter(
                col("period")
                    .rank(
                        RankOptions {
                            method: RankMethod::Dense,
                            descending: true,
                        },
                        None,
                    )
                    .over(keys)?
                    .cast(DataType::Int64)
                    .lt_eq(lit(self.min_history as i64)),
            )
            .select([col(super::ROW)]);
        concat([largest, last], UnionArgs::default())
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        let cat = &input.catalog.indicators;
        let bounds = DataFrame::new_infer_height(vec![
            Column::new(
                "indicator".into(),
                cat.iter().map(|i| i.code.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "max_per_month".into(),
                cat.iter()
                    .map(|i| self.bounds.get(&i.code).copied().or(i.plausible_max))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "people".into(),
                cat.iter()
                    .map(|i| PEOPLE_UNITS.contains(&i.unit.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ])?;
        let ts: Vec<_> = input.registry.townships.values().collect();
        let population = DataFrame::new_infer_height(vec![
            Column::new("township".into(), ts.iter().map(|t| t.code.clone()).collect::<Vec<_>>()),
            Column::new(
                "population".into(),
                ts.iter().map(|t| t.population.map(|p| p as f64)).collect::<Vec<_>>(),
            ),
        ])?;
        let months = super::rule::period_months(input.facts)?;
        let per_month = col("value") / col("months");
        let configured = col("max_per_month") * col("months");
        let by_population = when(col("people")).then(col("population")).otherwise(lit(NULL));
        let by_history = when(col("history_n").gt_eq(lit(self.min_history as i64)))
            .then((col("history_max") * lit(self.history_factor)).clip_min(lit(self.history_floor)) * col("months"))
            .otherwise(lit(NULL));
        // The tightest of the known bounds, and which one it is.
        let tighter = |a: Expr, b: Expr| {
            when(a.clone().is_null())
                .then(b.clone())
                .when(b.clone().is_null().or(a.clone().lt_eq(b.clone())))
                .then(a)
                .otherwise(b)
        };
        let max = tighter(tighter(configured.clone(), by_population.clone()), by_history.clone());
        // The totals in period order (rows of one period in the order they
        // came), with their history: each (township, indicator)'s rows in
        // period order, their history made in one pass (see [`history`]),
        // then back in period order. A history no row can use (no series
        // longer than `min_history`: a deployment's first months) is not
        // made. Only the columns the check reads are carried through its
        // sorts and joins, not all of a batch's facts'.
        let totals = input
            .facts
            .clone()
            .lazy()
            .select(
                [
                    "program",
                    "township",
                    "period",
                    "year",
                    "indicator",
                    "dimension",
                    "value",
                    "value_raw",
                ]
                .map(col),
            )
            .filter(col("dimension").is_null().and(col("value").is_not_null()))
            .join(
                months.lazy(),
                [col("period")],
                [col("period")],
                JoinArgs::new(JoinType::Left),
            )
            .sort(["period"], SortMultipleOptions::default().with_maintain_order(true))
            .collect()?;
        // The series' lengths counted over the totals, not every fact row.
        let with_history = match super::longest_history(&totals, None)? > self.min_history.max(1) {
            true => history(
                totals
                    .lazy()
                    .with_row_index(ORDER, None)
                    .sort(
                        ["township", "indicator", "period"],
                        SortMultipleOptions::default().with_maintain_order(true),
                    )
                    .with_column(per_month.alias(PER_MONTH))
                    .collect()?,
            )?
            .lazy()
            .sort([ORDER], Default::default())
            .drop(Selector::ByName {
                names: [ORDER.into(), PER_MONTH.into()].into(),
                strict: true,
            }),
            false => totals.lazy().with_columns([
                lit(NULL).cast(DataType::Float64).alias("history_max"),
                lit(NULL).cast(DataType::Int64).alias("history_n"),
            ]),
        };
        let failures = with_history
            .join(
                bounds.lazy(),
                [col("indicator")],
                [col("indicator")],
                JoinArgs::new(JoinType::Left),
            )
            .join(
                population.lazy(),
                [col("township")],
                [col("township")],
                JoinArgs::new(JoinType::Left),
            )
            .with_column(max.alias("max"))
            .with_column(
                when(col("max").is_null())
                    .then(lit(NULL).cast(DataType::String))
                    .when(by_population.clone().eq(col("max")))
                    .then(lit("population"))
                    .when(configured.eq(col("max")))
                    .then(lit("configured"))
                    .otherwise(lit("history"))
                    .alias("basis"),
            )
            .filter(col("value").lt(lit(0.0)).or(col("value").gt(col("max"))))
            .sort(["township", "period", "indicator"], Default::default())
            .collect()?;
        let mut rows = Rows::default();
        let ff = FailureFrame::read(&failures)?;
        let (indicator, raw) = (ff.str("indicator")?, ff.str("value_raw")?);
        let (value, max) = (ff.f64("value")?, ff.f64("max")?);
        let basis = ff.str("basis")?;
        for i in 0..ff.len() {
            let (t, p, code) = (ff.township(i), ff.period(i), indicator.get(i).unwrap_or(""));
            let ind = input.catalog.get(code);
            let (v, m) = (value.get(i).unwrap_or(f64::NAN), max.get(i));
            let unit = ind.map_or("", |i| i.unit.as_str());
            // Over a hard bound (the catalog's or the population) or below
            // zero: impossible, held out whatever the township explains.
            let impossible = v < 0.0 || matches!(basis.get(i), Some("population" | "configured"));
            let (rule, severity, outcome) = match impossible {
                true => (
                    IMPOSSIBLE,
                    Severity::Error,
                    "不可能的数值，不计入汇总 (impossible value: held out; an explanation cannot hold it in)",
                ),
                false => (
                    self.name(),
                    self.severity,
                    "待核实后计入 (implausible value held out until confirmed)",
                ),
            };
            rows.push(Failure {
                indicator: Some(code),
                dimension: None,
                observed: Some(v),
                expected: m,
                message: format!(
                    "{} {p} {}: {}{unit}（原文 {:?}）超出合理范围 {}{}，{outcome}",
                    township_label(input.registry, t),
                    ind.map_or(code, |i| i.name.as_str()),
                    num(v),
                    raw.get(i).unwrap_or(""),
                    m.map_or("0..".into(), |m| format!("0–{}", num(m))),
                    match basis.get(i) {
                        Some("population") => "（本乡镇常住人口）".to_string(),
                        Some("history") => format!("（本乡镇以往最高月值的 {} 倍）", num(self.history_factor)),
                        _ => String::new(),
                    }
                ),
                ..ff.failure(i, rule, severity)
            });
        }
        rows.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random series (a few townships, indicators and periods; values zero,
    /// negative, NaN, large; some rows without a per-month value; several
    /// rows of one period), sorted as the check sorts them: [`history`]
    /// gives exactly what polars' windows over each series give.
    #[test]
    fn history_in_one_pass_is_what_the_windows_over_each_series_give() {
        let mut next = crate::fixtures::random(0x2545_F491_4F6C_DD1Du64);
        let keys = [col("township"), col("indicator")];
        let (mut nan_seen, mut null_max_after_first) = (false, false);
        for _ in 0..200 {
            let rows = 1 + next(40) as usize;
            let (mut t, mut ind, mut period, mut value, mut pm) = (vec![], vec![], vec![], vec![], vec![]);
            for _ in 0..rows {
                t.push(["110101001", "110101002", "320106001"][next(3) as usize]);
                ind.push(["A01", "A02", "B07"][next(3) as usize]);
                period.push(["2026-01", "2026-02", "2026-03", "2026-Q1"][next(4) as usize]);
                let v = match next(8) {
                    0 => 0.0,
                    1 => -(next(50) as f64),
                    2 => f64::NAN,
                    3 => 1e9,
                    _ => next(500) as f64,
                };
                value.push(v);
                pm.push((next(6) != 0).then_some(v / (1 + next(3)) as f64));
            }
            let frame = DataFrame::new_infer_height(vec![
                Column::new("township".into(), t),
                Column::new("indicator".into(), ind),
                Column::new("period".into(), period),
                Column::new("value".into(), value),
                Column::new(PER_MONTH.into(), pm),
            ])
            .unwrap()
            .lazy()
            .sort(
                ["township", "indicator", "period"],
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .collect()
            .unwrap();
            let windows = frame
                .clone()
                .lazy()
                .with_columns([
                    col(PER_MONTH)
                        .shift(lit(1))
                        .cum_max(false)
                        .over(keys.clone())
                        .unwrap()
                        .alias("history_max"),
                    col("value")
                        .neq(lit(0.0))
                        .cast(DataType::Int64)
                        .shift(lit(1))
                        .cum_sum(false)
                        .over(keys.clone())
                        .unwrap()
                        .alias("history_n"),
                ])
                .collect()
                .unwrap();
            let ours = history(frame).unwrap();
            let f = |d: &DataFrame, c: &str| -> Vec<Option<String>> {
                let s = d.column(c).unwrap().cast(&DataType::Float64).unwrap();
                s.f64().unwrap().iter().map(|v| v.map(|v| format!("{v:?}"))).collect()
            };
            for c in ["history_max", "history_n"] {
                assert_eq!(f(&ours, c), f(&windows, c), "{c} of\n{windows}");
            }
            nan_seen |= f(&ours, "history_max").iter().any(|v| v.as_deref() == Some("NaN"));
            let firsts = windows.column("history_n").unwrap().null_count();
            null_max_after_first |= windows.column("history_max").unwrap().null_count() > firsts;
        }
        // The cases that make the two differ if handled differently came up.
        assert!(nan_seen && null_max_after_first);
    }
}
