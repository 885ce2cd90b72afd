//! Plausibility bounds: a township value above what one township can
//! plausibly do in a period (138674万名 in a township of 30,000 people), or
//! below zero, is held out of the rollup until someone confirms it.

use std::collections::BTreeMap;

use polars::prelude::*;

use super::{Check, CheckInput, Failure, FailureFrame, Rows, num, township_label};
use crate::config::Severity;

/// The plausibility check.
pub struct Plausibility {
    /// Overrides of the catalog's `plausible_max`, per indicator code.
    pub bounds: BTreeMap<String, f64>,
    /// Severity.
    pub severity: Severity,
}

impl Check for Plausibility {
    fn name(&self) -> &'static str {
        "implausible"
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        let (codes, maxes): (Vec<String>, Vec<f64>) = input
            .catalog
            .indicators
            .iter()
            .filter_map(|i| {
                self.bounds
                    .get(&i.code)
                    .copied()
                    .or(i.plausible_max)
                    .map(|m| (i.code.clone(), m))
            })
            .unzip();
        let bounds = DataFrame::new_infer_height(vec![
            Column::new("indicator".into(), codes),
            Column::new("max_per_month".into(), maxes),
        ])?;
        let months = super::rule::period_months(input.facts)?;
        let failures = input
            .facts
            .clone()
            .lazy()
            .filter(col("dimension").is_null().and(col("value").is_not_null()))
            .join(
                bounds.lazy(),
                [col("indicator")],
                [col("indicator")],
                JoinArgs::new(JoinType::Left),
            )
            .join(
                months.lazy(),
                [col("period")],
                [col("period")],
                JoinArgs::new(JoinType::Left),
            )
            .with_column((col("max_per_month") * col("months")).alias("max"))
            .filter(col("value").lt(lit(0.0)).or(col("value").gt(col("max"))))
            .sort(["township", "period", "indicator"], Default::default())
            .collect()?;
        let mut rows = Rows::default();
        let ff = FailureFrame::read(&failures)?;
        let (indicator, raw) = (ff.str("indicator")?, ff.str("value_raw")?);
        let (value, max) = (ff.f64("value")?, ff.f64("max")?);
        for i in 0..ff.len() {
            let (t, p, code) = (ff.township(i), ff.period(i), indicator.get(i).unwrap_or(""));
            let ind = input.catalog.get(code);
            let (v, m) = (value.get(i).unwrap_or(f64::NAN), max.get(i));
            let unit = ind.map_or("", |i| i.unit.as_str());
            rows.push(Failure {
                indicator: Some(code),
                dimension: None,
                observed: Some(v),
                expected: m,
                message: format!(
                    "{} {p} {}: {}{unit}（原文 {:?}）超出合理范围 {}，待核实后计入 (implausible value held out until confirmed)",
                    township_label(input.registry, t),
                    ind.map_or(code, |i| i.name.as_str()),
                    num(v),
                    raw.get(i).unwrap_or(""),
                    m.map_or("0..".into(), |m| format!("0–{}", num(m)))
                ),
                ..ff.failure(i, self.name(), self.severity)
            });
        }
        rows.finish()
    }
}
