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

/// The larger of a series' largest per-month value so far and the next
/// one, as `cum_max` takes them: NaN only while every value so far is NaN.
fn larger(max: Option<f64>, x: f64) -> f64 {
    max.map_or(x, |m| if x > m || m.is_nan() { x } else { m })
}

/// Over rows sorted by series (township, indicator), then period: for each
/// row, the largest per-month value of the rows before it in its series
/// (`history_max`) and how many of their values are not zero
/// (`history_n`). What `shift(1)` then `cum_max()` / `cum_sum()` over the
/// series give, nulls as they give them (both null on a series' first row;
/// the largest null too where the row before has no per-month value), in
/// one pass: polars evaluates those windows one small frame per series,
/// 140 ms of a province's month. A series in `seen` ([`series_after`] of
/// the periods before the rows') continues from its history there: its
/// first row is not a first.
fn history(sorted: DataFrame, seen: Option<&DataFrame>) -> PolarsResult<DataFrame> {
    let (township, indicator) = (sorted.column("township")?.str()?, sorted.column("indicator")?.str()?);
    let (value, per_month) = (sorted.column("value")?.f64()?, sorted.column(PER_MONTH)?.f64()?);
    let seen = match seen {
        Some(s) => Some(Seen::read(s)?),
        None => None,
    };
    let mut at = 0;
    let n = sorted.height();
    let mut largest: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut nonzero: Vec<Option<i64>> = Vec::with_capacity(n);
    let (mut max, mut count) = (None::<f64>, 0i64);
    let (mut prev, mut prev_pm, mut prev_nz) = ((None, None), None, 0i64);
    for i in 0..n {
        let series = (township.get(i), indicator.get(i));
        if i == 0 || series != prev {
            match seen.as_ref().and_then(|s| s.find(series, &mut at)) {
                // Its history before: the row before it is the last of
                // those periods' (with or without a per-month value).
                Some(before) => {
                    (max, count) = (before.max, before.n);
                    largest.push(if before.last_unknown { None } else { before.max });
                    nonzero.push(Some(count));
                }
                None => {
                    (max, count) = (None, 0);
                    largest.push(None);
                    nonzero.push(None);
                }
            }
        } else {
            largest.push(prev_pm.map(|x: f64| {
                let m = larger(max, x);
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

/// Columns of a township's history of an indicator's totals after some
/// periods ([`series_after`]): the series, the largest per-month value of its
/// totals (null: none had one), how many were not zero, and whether the
/// last had no per-month value.
const SERIES_COLUMNS: [&str; 5] = ["township", "indicator", "history_max", "history_n", "last_unknown"];

/// A series: its township and indicator.
type SeriesKey<'a> = (Option<&'a str>, Option<&'a str>);

/// One series of a [`series_after`] frame.
#[derive(Debug, Clone, Copy)]
struct Before {
    max: Option<f64>,
    n: i64,
    last_unknown: bool,
}

/// A [`series_after`] frame read for a walk in its order.
struct Seen<'a> {
    township: &'a StringChunked,
    indicator: &'a StringChunked,
    max: &'a Float64Chunked,
    n: &'a Int64Chunked,
    last_unknown: &'a BooleanChunked,
}

impl<'a> Seen<'a> {
    fn read(frame: &'a DataFrame) -> PolarsResult<Seen<'a>> {
        Ok(Seen {
            township: frame.column(SERIES_COLUMNS[0])?.str()?,
            indicator: frame.column(SERIES_COLUMNS[1])?.str()?,
            max: frame.column(SERIES_COLUMNS[2])?.f64()?,
            n: frame.column(SERIES_COLUMNS[3])?.i64()?,
            last_unknown: frame.column(SERIES_COLUMNS[4])?.bool()?,
        })
    }

    fn len(&self) -> usize {
        self.township.len()
    }

    fn key(&self, i: usize) -> SeriesKey<'a> {
        (self.township.get(i), self.indicator.get(i))
    }

    fn get(&self, i: usize) -> Before {
        Before {
            max: self.max.get(i),
            n: self.n.get(i).unwrap_or(0),
            last_unknown: self.last_unknown.get(i).unwrap_or(true),
        }
    }

    /// The history of `series`, looked for from `at` on (series come in
    /// the frame's order, so `at` only moves forward).
    fn find(&self, series: SeriesKey<'_>, at: &mut usize) -> Option<Before> {
        while *at < self.len() && self.key(*at) < series {
            *at += 1;
        }
        (*at < self.len() && self.key(*at) == series).then(|| self.get(*at))
    }
}

/// Of `facts`, the totals the check bounds (no breakdown, a value), with
/// their months and only the columns the check reads.
fn totals(facts: &DataFrame) -> PolarsResult<LazyFrame> {
    let months = super::rule::period_months(facts)?;
    Ok(facts
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
        ))
}

/// Each township's history of each indicator's totals after `facts`'
/// periods, continuing `before` (the same after the periods before them;
/// None: nothing before): what the history bound of a later period reads,
/// a row per series in [`SERIES_COLUMNS`], sorted by township and
/// indicator. What a batch carries to the next instead of the rows of
/// every period before (a national November read 3.8 million such rows
/// and sorted them with its own): checking a period with the history
/// after the ones before it fails as checking it with all of their rows.
pub fn series_after(before: Option<&DataFrame>, facts: &DataFrame) -> PolarsResult<DataFrame> {
    let own = totals(facts)?
        .select([
            col("township"),
            col("indicator"),
            col("period"),
            col("value"),
            (col("value") / col("months")).alias(PER_MONTH),
        ])
        .sort(
            ["township", "indicator", "period"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()?;
    series_of(&own, before)
}

/// [`series_after`] of rows sorted by series (township, indicator), then
/// period, with their value and per-month value (`PER_MONTH`).
fn series_of(own: &DataFrame, before: Option<&DataFrame>) -> PolarsResult<DataFrame> {
    let (township, indicator) = (own.column("township")?.str()?, own.column("indicator")?.str()?);
    let (value, per_month) = (own.column("value")?.f64()?, own.column(PER_MONTH)?.f64()?);
    // Each series of `own`, folded over its rows in period order.
    let mut mine: Vec<(SeriesKey<'_>, Before)> = vec![];
    for i in 0..own.height() {
        let series = (township.get(i), indicator.get(i));
        if mine.last().is_none_or(|(s, _)| *s != series) {
            mine.push((
                series,
                Before {
                    max: None,
                    n: 0,
                    last_unknown: true,
                },
            ));
        }
        let b = &mut mine.last_mut().expect("pushed above").1;
        let pm = per_month.get(i);
        if let Some(x) = pm {
            b.max = Some(larger(b.max, x));
        }
        b.n += i64::from(value.get(i).is_some_and(|v| v != 0.0));
        b.last_unknown = pm.is_none();
    }
    // Merged with the series before, both in (township, indicator) order.
    let seen = match before.filter(|b| b.width() > 0) {
        Some(b) => Some(Seen::read(b)?),
        None => None,
    };
    let earlier = seen.as_ref().map_or(0, Seen::len);
    let mut out: Vec<(SeriesKey<'_>, Before)> = Vec::with_capacity(mine.len() + earlier);
    let (mut i, mut j) = (0, 0);
    while i < earlier || j < mine.len() {
        let old = seen.as_ref().filter(|_| i < earlier).map(|s| (s.key(i), s.get(i)));
        match (old, mine.get(j)) {
            (Some((k, b)), Some((m, _))) if k < *m => {
                out.push((k, b));
                i += 1;
            }
            (Some((k, b)), Some((m, now))) if k == *m => {
                out.push((
                    k,
                    Before {
                        max: match (b.max, now.max) {
                            (Some(m), Some(x)) => Some(larger(Some(m), x)),
                            (m, x) => m.or(x),
                        },
                        n: b.n + now.n,
                        last_unknown: now.last_unknown,
                    },
                ));
                (i, j) = (i + 1, j + 1);
            }
            (Some((k, b)), None) => {
                out.push((k, b));
                i += 1;
            }
            (_, Some(m)) => {
                out.push(*m);
                j += 1;
            }
            (None, None) => unreachable!("the loop runs while one side has rows"),
        }
    }
    DataFrame::new_infer_height(vec![
        Column::new(
            SERIES_COLUMNS[0].into(),
            out.iter().map(|(k, _)| k.0).collect::<Vec<_>>(),
        ),
        Column::new(
            SERIES_COLUMNS[1].into(),
            out.iter().map(|(k, _)| k.1).collect::<Vec<_>>(),
        ),
        Column::new(
            SERIES_COLUMNS[2].into(),
            out.iter().map(|(_, b)| b.max).collect::<Vec<_>>(),
        ),
        Column::new(
            SERIES_COLUMNS[3].into(),
            out.iter().map(|(_, b)| b.n).collect::<Vec<_>>(),
        ),
        Column::new(
            SERIES_COLUMNS[4].into(),
            out.iter().map(|(_, b)| b.last_unknown).collect::<Vec<_>>(),
        ),
    ])
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
        // continued from the periods before (`input.series`), then back in
        // period order. A history no row can use (no series longer than
        // `min_history` and nothing before: a deployment's first months) is
        // not made. Only the columns the check reads are carried through
        // its sorts and joins, not all of a batch's facts'.
        let totals = totals(input.facts)?
            .sort(["period"], SortMultipleOptions::default().with_maintain_order(true))
            .collect()?;
        let seen = input.series.filter(|s| s.height() > 0);
        // The series' lengths counted over the totals, not every fact row.
        let with_history = match seen.is_some() || super::longest_history(&totals, None)? > self.min_history.max(1) {
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
                seen,
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

    /// `rows` random totals of a few townships and indicators in `periods`
    /// (values zero, negative, NaN, large; some without a per-month value;
    /// several of one period), sorted by series, then period, as the check
    /// sorts them.
    fn random_series(next: &mut impl FnMut(u64) -> u64, rows: usize, periods: &[&str]) -> DataFrame {
        let (mut t, mut ind, mut period, mut value, mut pm) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..rows {
            t.push(["110101001", "110101002", "320106001"][next(3) as usize]);
            ind.push(["A01", "A02", "B07"][next(3) as usize]);
            period.push(periods[next(periods.len() as u64) as usize]);
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
        DataFrame::new_infer_height(vec![
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
        .unwrap()
    }

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
            let frame = random_series(&mut next, rows, &["2026-01", "2026-02", "2026-03", "2026-Q1"]);
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
            let ours = history(frame, None).unwrap();
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

    /// Random series as above, split into runs of periods as a year's
    /// batches come: each run's history continued from [`series_of`] the
    /// runs before it (chained run by run) is the history of the whole.
    #[test]
    fn history_continued_from_the_series_before_is_the_history_of_the_whole() {
        let mut next = crate::fixtures::random(0x9E37_79B9_7F4A_7C15u64);
        let periods = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-Q1"];
        let (mut seeded, mut unknown_last, mut merged) = (0, 0, 0);
        for _ in 0..300 {
            let rows = 1 + next(50) as usize;
            let frame = random_series(&mut next, rows, &periods);
            let whole = history(frame.clone(), None).unwrap();
            // Two cuts between periods: up to three runs.
            let (a, b) = (next(6) as usize, next(6) as usize);
            let cuts = [a.min(b), a.max(b)];
            let run = |f: &DataFrame, from: usize, to: usize| {
                let of: Vec<&str> = periods[from.min(5)..to.min(5)].to_vec();
                f.clone()
                    .lazy()
                    .filter(col("period").is_in(lit(Series::new("p".into(), of)).implode(false), false))
                    .collect()
                    .unwrap()
            };
            let mut before: Option<DataFrame> = None;
            let mut got: Vec<DataFrame> = vec![];
            let mut want: Vec<DataFrame> = vec![];
            for (from, to) in [(0, cuts[0]), (cuts[0], cuts[1]), (cuts[1], 5)] {
                let rows = run(&frame, from, to);
                if let Some(b) = &before {
                    seeded += usize::from(b.height() > 0 && rows.height() > 0);
                    unknown_last += usize::from(b.column("last_unknown").unwrap().bool().unwrap().any());
                }
                got.push(history(rows.clone(), before.as_ref()).unwrap());
                want.push(run(&whole, from, to));
                if let Some(b) = &before {
                    // Series with rows both before and in this run.
                    let keys = [col("township"), col("indicator")];
                    merged += rows
                        .clone()
                        .lazy()
                        .join(b.clone().lazy(), keys.clone(), keys, JoinArgs::new(JoinType::Semi))
                        .collect()
                        .unwrap()
                        .height();
                }
                before = Some(series_of(&rows, before.as_ref()).unwrap());
            }
            let f = |d: &DataFrame, c: &str| -> Vec<Option<String>> {
                let s = d.column(c).unwrap().cast(&DataType::Float64).unwrap();
                s.f64().unwrap().iter().map(|v| v.map(|v| format!("{v:?}"))).collect()
            };
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.height(), w.height());
                for c in ["township", "indicator", "period"] {
                    assert!(g.column(c).unwrap().equals_missing(w.column(c).unwrap()));
                }
                for c in ["history_max", "history_n"] {
                    assert_eq!(f(g, c), f(w, c), "{c} of\n{g}\nagainst the whole's\n{w}");
                }
            }
            // After every run, a row per series of all the runs.
            let all = before.unwrap();
            let series = frame
                .clone()
                .lazy()
                .select([col("township"), col("indicator")])
                .unique_stable(None, UniqueKeepStrategy::First)
                .collect()
                .unwrap();
            assert_eq!(all.height(), series.height(), "{all}");
        }
        assert!(
            seeded > 100 && unknown_last > 20 && merged > 1000,
            "{seeded} {unknown_last} {merged}"
        );
    }
}
