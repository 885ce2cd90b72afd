//! total = sum of an exhaustive breakdown (合计 = 分项之和), total ≥ sum of a
//! partial one (其中). The equality is checked only when the total and every
//! category are present (skip-if-any-missing); with categories left out
//! (a work summary's 其中 names some) the parts still cannot exceed the
//! total. Approximate totals (60多 cannot equal a sum exactly) are skipped.

use polars::prelude::*;
use serde::Deserialize;
use taizhang_model::Severity;

use super::{Check, CheckInput, Failure, FailureFrame, Rows, num, township_label};
use crate::catalog::Catalog;

/// The breakdown check (`kind = "breakdown"`): total = sum of every
/// exhaustive breakdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breakdown {
    /// Severity of a mismatch.
    pub severity: Severity,
    /// Indicators checked; empty = every one with an exhaustive breakdown.
    #[serde(default)]
    pub indicators: Vec<String>,
    /// Absolute difference tolerated.
    #[serde(default)]
    pub tolerance: f64,
}

impl Breakdown {
    /// Checks the declaration against the catalog; the check as declared.
    pub fn build(&self, _catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(self.clone()))
    }
}

impl Check for Breakdown {
    fn name(&self) -> &'static str {
        "breakdown"
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        // (indicator, dimension, categories expected) for every exhaustive breakdown in scope.
        let (mut ind, mut dim, mut n, mut exh) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in &input.catalog.indicators {
            if !self.indicators.is_empty() && !self.indicators.contains(&i.code) {
                continue;
            }
            for b in &i.breakdowns {
                ind.push(i.code.clone());
                dim.push(b.dimension.clone());
                n.push(b.categories.len() as i64);
                exh.push(b.exhaustive);
            }
        }
        let scope = DataFrame::new_infer_height(vec![
            Column::new("indicator".into(), ind),
            Column::new("dimension".into(), dim),
            Column::new("n_expected".into(), n),
            Column::new("exhaustive".into(), exh),
        ])?
        .lazy();
        let facts = input.facts.clone().lazy();
        let keys = [col("township"), col("period"), col("indicator")];
        let totals = facts
            .clone()
            .filter(
                col("dimension")
                    .is_null()
                    .and(col("value").is_not_null())
                    .and(col("approx").not()),
            )
            .select([
                col("program"),
                col("township"),
                col("period"),
                col("year"),
                col("indicator"),
                col("value").alias("total"),
            ]);
        let parts = facts
            .filter(col("dimension").is_not_null())
            .group_by([col("township"), col("period"), col("indicator"), col("dimension")])
            .agg([
                col("value").sum().alias("parts_sum"),
                col("value").count().cast(DataType::Int64).alias("n_present"),
            ])
            .join(
                scope,
                [col("indicator"), col("dimension")],
                [col("indicator"), col("dimension")],
                JoinArgs::new(JoinType::Inner),
            )
            // An exhaustive breakdown with every category must add up to the
            // total; any other (partial, or exhaustive with categories left
            // out: 其中 in a work summary) cannot exceed it.
            .with_column(
                col("exhaustive")
                    .and(col("n_present").eq(col("n_expected")))
                    .alias("complete"),
            );
        let failures = totals
            .join(parts, keys.clone(), keys, JoinArgs::new(JoinType::Inner))
            .filter(
                when(col("complete"))
                    .then((col("total") - col("parts_sum")).abs().gt(lit(self.tolerance)))
                    .otherwise((col("parts_sum") - col("total")).gt(lit(self.tolerance))),
            )
            .sort(["township", "period", "indicator", "dimension"], Default::default())
            .collect()?;

        let mut rows = Rows::default();
        let ff = FailureFrame::read(&failures)?;
        let (indicator, dimension) = (ff.str("indicator")?, ff.str("dimension")?);
        let (total, parts_sum) = (ff.f64("total")?, ff.f64("parts_sum")?);
        let exhaustive = failures.column("complete")?.bool()?.clone();
        for i in 0..ff.len() {
            let (t, p, code, d) = (
                ff.township(i),
                ff.period(i),
                indicator.get(i).unwrap_or(""),
                dimension.get(i).unwrap_or(""),
            );
            let (tot, sum) = (total.get(i).unwrap_or(f64::NAN), parts_sum.get(i).unwrap_or(f64::NAN));
            let name = input.catalog.get(code).map_or(code, |i| i.name.as_str());
            rows.push(Failure {
                indicator: Some(code),
                dimension: Some(d),
                observed: Some(tot),
                expected: Some(sum),
                message: if exhaustive.get(i).unwrap_or(true) {
                    format!(
                        "{} {p} {name}: 合计 {} 与按{d}分项之和 {} 不符 (total {} ≠ sum of {d} categories {})",
                        township_label(input.registry, t),
                        num(tot),
                        num(sum),
                        num(tot),
                        num(sum)
                    )
                } else {
                    format!(
                        "{} {p} {name}: 其中按{d}各项之和 {} 大于合计 {} (parts exceed the total)",
                        township_label(input.registry, t),
                        num(sum),
                        num(tot)
                    )
                },
                ..ff.failure(i, self.name(), self.severity)
            });
        }
        rows.finish()
    }
}
