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
        let keys = [col("township"), col("indicator")];
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
        let failures = input
            .facts
            .clone()
            .lazy()
            .filter(col("dimension").is_null().and(col("value").is_not_null()))
            .join(
                months.lazy(),
                [col("period")],
                [col("period")],
                JoinArgs::new(JoinType::Left),
            )
            // The windows below run over (township, indicator) in row order:
            // only the periods need to be in order (a stable sort on one
            // short key, not three strings).
            .sort(["period"], SortMultipleOptions::default().with_maintain_order(true))
            .with_columns([
                per_month
                    .clone()
                    .shift(lit(1))
                    .cum_max(false)
                    .over(keys.clone())?
                    .alias("history_max"),
                col("value")
                    .neq(lit(0.0))
                    .cast(DataType::Int64)
                    .shift(lit(1))
                    .cum_sum(false)
                    .over(keys)?
                    .alias("history_n"),
            ])
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
