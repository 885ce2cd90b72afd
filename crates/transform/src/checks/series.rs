//! Checks across periods: year-to-date values never decrease, and stocks
//! move only by what was added and what left.

use polars::prelude::*;
use serde::Deserialize;
use taizhang_model::Severity;

use super::known;
use super::{Check, CheckInput, Failure, FailureFrame, Rows, num, township_label};
use crate::catalog::Catalog;
use crate::catalog::Kind;
use crate::period::Period;

/// A cumulative (year-to-date) value never decreases within a year
/// (`kind = "cumulative"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cumulative {
    /// Indicator codes or names; empty = every cumulative indicator.
    #[serde(default)]
    pub indicators: Vec<String>,
    /// Severity.
    pub severity: Severity,
}

/// stock = previous stock + new − exits, where the pieces are reported
/// (`kind = "stock_flow"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockFlow {
    /// Stock indicator.
    pub stock: String,
    /// Additions this period.
    pub new: String,
    /// Exits this period, if reported.
    #[serde(default)]
    pub exits: Option<String>,
    /// Absolute tolerance.
    #[serde(default)]
    pub tolerance: f64,
    /// Severity.
    pub severity: Severity,
}

impl Cumulative {
    /// Resolves the indicators named to catalog codes.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(Cumulative {
            indicators: self
                .indicators
                .iter()
                .map(|c| known(catalog, c))
                .collect::<Result<_, _>>()?,
            severity: self.severity,
        }))
    }
}

impl Cumulative {
    /// The indicators checked.
    fn codes(&self, catalog: &Catalog) -> Vec<String> {
        if self.indicators.is_empty() {
            catalog
                .indicators
                .iter()
                .filter(|i| i.kind == Kind::Cumulative)
                .map(|i| i.code.clone())
                .collect()
        } else {
            self.indicators.clone()
        }
    }
}

impl StockFlow {
    /// Resolves the indicators named to catalog codes.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(StockFlow {
            stock: known(catalog, &self.stock)?,
            new: known(catalog, &self.new)?,
            exits: self.exits.as_deref().map(|c| known(catalog, c)).transpose()?,
            tolerance: self.tolerance,
            severity: self.severity,
        }))
    }
}

/// (period, previous period of the same kind) for every period in the facts.
fn previous_periods(facts: &DataFrame) -> PolarsResult<DataFrame> {
    let periods: std::collections::BTreeSet<String> = facts
        .column("period")?
        .str()?
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    let prev: Vec<Option<String>> = periods
        .iter()
        .map(|p| {
            p.parse::<Period>().ok().map(|p| {
                // The period before p: step back by its length.
                let m = i64::from(p.first_month) - 1 - i64::from(p.months);
                let (y, m) = (p.year + m.div_euclid(12) as i32, m.rem_euclid(12) as u32 + 1);
                Period {
                    year: y,
                    first_month: m,
                    months: p.months,
                }
                .to_string()
            })
        })
        .collect();
    DataFrame::new_infer_height(vec![
        Column::new("period".into(), periods.into_iter().collect::<Vec<_>>()),
        Column::new("prev_period".into(), prev),
    ])
}

impl Check for Cumulative {
    fn name(&self) -> &'static str {
        "ytd_decreased"
    }

    /// The value before a period's, in the same year.
    fn earlier(&self, catalog: &Catalog) -> Option<Expr> {
        let codes = self.codes(catalog);
        Some(
            col("indicator")
                .is_in(lit(Series::new("c".into(), codes)).implode(false), false)
                .and(col("value").is_not_null()),
        )
    }

    /// Each series' last value: the one a later period is compared with.
    fn carried(&self, catalog: &Catalog, earlier: &DataFrame) -> PolarsResult<LazyFrame> {
        let Some(rows) = self.earlier(catalog) else {
            return Ok(earlier.clone().lazy().filter(lit(false)).select([col(super::ROW)]));
        };
        let series = [
            col("township"),
            col("year"),
            col("indicator"),
            col("dimension"),
            col("category"),
        ];
        Ok(earlier
            .clone()
            .lazy()
            .filter(rows)
            .filter(col("period").eq(col("period").max().over(series)?))
            .select([col(super::ROW)]))
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        let codes = self.codes(input.catalog);
        let mut rows = Rows::default();
        if codes.is_empty() {
            return rows.finish();
        }
        let keys = [
            col("township"),
            col("year"),
            col("indicator"),
            col("dimension"),
            col("category"),
        ];
        let failures = input
            .facts
            .clone()
            .lazy()
            .filter(col("indicator").is_in(lit(Series::new("c".into(), codes)).implode(false), false))
            .filter(col("value").is_not_null())
            .sort(
                ["township", "indicator", "dimension", "category", "period"],
                Default::default(),
            )
            .with_columns([
                col("value").shift(lit(1)).over(keys.clone())?.alias("prev"),
                col("period").shift(lit(1)).over(keys)?.alias("prev_period"),
            ])
            .filter(col("value").lt(col("prev")))
            .collect()?;
        let ff = FailureFrame::read(&failures)?;
        let (indicator, prev_p, dimension) = (ff.str("indicator")?, ff.str("prev_period")?, ff.str("dimension")?);
        let (value, prev) = (ff.f64("value")?, ff.f64("prev")?);
        for i in 0..ff.len() {
            let (t, p, code) = (ff.township(i), ff.period(i), indicator.get(i).unwrap_or(""));
            let name = input.catalog.get(code).map_or(code, |i| i.name.as_str());
            let (v, pv) = (value.get(i).unwrap_or(f64::NAN), prev.get(i).unwrap_or(f64::NAN));
            rows.push(Failure {
                indicator: Some(code),
                dimension: dimension.get(i),
                observed: Some(v),
                expected: Some(pv),
                message: format!(
                    "{} {p} {name}: 累计数 {} 小于上期 {} 的 {} (year-to-date value decreased)",
                    township_label(input.registry, t),
                    num(v),
                    prev_p.get(i).unwrap_or("?"),
                    num(pv)
                ),
                ..ff.failure(i, self.name(), self.severity)
            });
        }
        rows.finish()
    }
}

impl Check for StockFlow {
    fn name(&self) -> &'static str {
        "stock_flow"
    }

    /// The stock (and its pieces) of the period before.
    fn earlier(&self, _catalog: &Catalog) -> Option<Expr> {
        let mut codes = vec![self.stock.clone(), self.new.clone()];
        codes.extend(self.exits.clone());
        Some(
            col("indicator")
                .is_in(lit(Series::new("c".into(), codes)).implode(false), false)
                .and(col("dimension").is_null()),
        )
    }

    /// Each township's last stock before: a later period is compared with
    /// it when it is the period just before (a period with no stock, or
    /// not just before, is compared with nothing).
    fn carried(&self, _catalog: &Catalog, earlier: &DataFrame) -> PolarsResult<LazyFrame> {
        Ok(earlier
            .clone()
            .lazy()
            .filter(
                col("indicator")
                    .eq(lit(self.stock.clone()))
                    .and(col("dimension").is_null()),
            )
            .filter(col("period").eq(col("period").max().over([col("township")])?))
            .select([col(super::ROW)]))
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        let total = |code: &str| {
            col("value")
                .filter(
                    col("indicator")
                        .eq(lit(code.to_string()))
                        .and(col("dimension").is_null()),
                )
                .first()
        };
        let mut aggs = vec![total(&self.stock).alias("stock"), total(&self.new).alias("new")];
        if let Some(e) = &self.exits {
            aggs.push(total(e).alias("exits"));
        }
        let failures = input
            .facts
            .clone()
            .lazy()
            .group_by([col("program"), col("township"), col("period"), col("year")])
            .agg(aggs)
            .with_column(if self.exits.is_some() {
                col("exits")
            } else {
                lit(0.0).alias("exits")
            })
            .join(
                previous_periods(input.facts)?.lazy(),
                [col("period")],
                [col("period")],
                JoinArgs::new(JoinType::Left),
            )
            .sort(["township", "period"], Default::default())
            .with_columns([
                col("stock").shift(lit(1)).over([col("township")])?.alias("prev_stock"),
                col("period")
                    .shift(lit(1))
                    .over([col("township")])?
                    .alias("last_period"),
            ])
            .filter(col("last_period").eq(col("prev_period")))
            .with_column((col("prev_stock") + col("new") - col("exits")).alias("expected"))
            .filter(
                col("stock")
                    .is_not_null()
                    .and(col("expected").is_not_null())
                    .and((col("stock") - col("expected")).abs().gt(lit(self.tolerance))),
            )
            .collect()?;
        let mut rows = Rows::default();
        let ff = FailureFrame::read(&failures)?;
        let (stock, expected, prev) = (ff.f64("stock")?, ff.f64("expected")?, ff.f64("prev_stock")?);
        let name = input
            .catalog
            .get(&self.stock)
            .map_or(self.stock.as_str(), |i| i.name.as_str());
        for i in 0..ff.len() {
            let (t, p) = (ff.township(i), ff.period(i));
            let (s, e) = (stock.get(i).unwrap_or(f64::NAN), expected.get(i).unwrap_or(f64::NAN));
            rows.push(Failure {
                indicator: Some(&self.stock),
                dimension: None,
                observed: Some(s),
                expected: Some(e),
                message: format!(
                    "{} {p} {name}: {} ≠ 上期 {} + 新增 − 退出 = {} (stock ≠ previous + new − exits)",
                    township_label(input.registry, t),
                    num(s),
                    num(prev.get(i).unwrap_or(f64::NAN)),
                    num(e)
                ),
                ..ff.failure(i, self.name(), self.severity)
            });
        }
        rows.finish()
    }
}
