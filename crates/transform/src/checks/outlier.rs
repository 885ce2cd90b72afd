//! Outliers by a robust z-score (median and MAD, Iglewicz–Hoaglin) against
//! the township's own history of the indicator, and against peer townships of
//! the county in the same period (each relative to its own level). Zeros are never flagged (a
//! seasonal zero is not an error; a missing report is the overdue check's
//! business), and nothing is flagged from fewer than `min_points` values.

use polars::prelude::*;
use serde::Deserialize;
use taizhang_model::Severity;

use super::known;
use super::{Check, CheckInput, Failure, FailureFrame, Rows, num, township_label};
use crate::catalog::Catalog;
use crate::catalog::Kind;

/// The outlier check (`kind = "outlier"`): robust outliers (modified
/// z-score, median/MAD) against the township's own history and against peer
/// townships in the same period.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    /// Indicator codes or names; empty = every flow indicator counted in
    /// people, households or items (amounts follow their counts: see count_rate).
    #[serde(default)]
    pub indicators: Vec<String>,
    /// |modified z| above this is an outlier (3.5 is the usual choice).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Fewest values in a comparison group (history or peers) before anything is flagged.
    #[serde(default = "default_min_points")]
    pub min_points: usize,
    /// Severity.
    pub severity: Severity,
}

fn default_threshold() -> f64 {
    3.5
}

fn default_min_points() -> usize {
    6
}

impl Outlier {
    /// Resolves the indicators named to catalog codes.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(Outlier {
            indicators: self
                .indicators
                .iter()
                .map(|c| known(catalog, c))
                .collect::<Result<_, _>>()?,
            ..self.clone()
        }))
    }
}

/// Median and MAD of `x` within `group`, as columns `{p}_med`, `{p}_mad`, `{p}_n`.
fn robust(lf: LazyFrame, x: Expr, group: &[Expr], p: &str) -> PolarsResult<LazyFrame> {
    let med = format!("{p}_med");
    Ok(lf
        .with_columns([
            x.clone().median().over(group)?.alias(med.as_str()),
            x.clone()
                .count()
                .over(group)?
                .cast(DataType::Int64)
                .alias(format!("{p}_n").as_str()),
        ])
        .with_column(
            (x - col(med.as_str()))
                .abs()
                .median()
                .over(group)?
                .alias(format!("{p}_mad").as_str()),
        ))
}

/// The larger of two expressions.
fn max2(a: Expr, b: Expr) -> Expr {
    when(a.clone().gt(b.clone())).then(a).otherwise(b)
}

impl Check for Outlier {
    fn name(&self) -> &'static str {
        "outlier"
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        let codes: Vec<String> = if self.indicators.is_empty() {
            input
                .catalog
                .indicators
                .iter()
                .filter(|i| i.kind == Kind::Flow && i.unit != "元")
                .map(|i| i.code.clone())
                .collect()
        } else {
            self.indicators.clone()
        };
        let mut rows = Rows::default();
        // Nothing is flagged from fewer than `min_points` values of a
        // township (a deployment's first months: every township's history
        // is that short).
        if super::longest_history(input.facts, Some(&codes))? < self.min_points {
            return rows.finish();
        }
        let totals = input
            .facts
            .clone()
            .lazy()
            .filter(col("dimension").is_null().and(col("value").is_not_null()))
            .filter(col("indicator").is_in(lit(Series::new("c".into(), codes)).implode(false), false));
        // Counts are small integers: a MAD of 0.5 would make 2 against 1 an
        // "outlier". The scale is floored at Poisson noise, sqrt(median + 1),
        // and at 20% of the median.
        let h = robust(totals, col("value"), &[col("township"), col("indicator")], "h")?.with_column(
            ((col("value") - col("h_med"))
                / max2(
                    max2(lit(1.4826) * col("h_mad"), (col("h_med") + lit(1.0)).sqrt()),
                    lit(0.2) * col("h_med"),
                ))
            .alias("z_history"),
        );
        // Made once: both scopes below read it.
        let h = h.collect()?.lazy();
        // Peers: each township against its own level (value / its median),
        // compared across the county's townships in the same period, so a big
        // township is not an outlier for being big.
        let peers = robust(
            h.clone()
                .filter(
                    col("h_med")
                        .gt(lit(0.0))
                        .and(col("h_n").gt_eq(lit(self.min_points as i64))),
                )
                .with_column((col("value") / col("h_med")).alias("ratio")),
            col("ratio"),
            &[col("county"), col("period"), col("indicator")],
            "p",
        )?
        .with_column(
            ((col("ratio") - col("p_med"))
                / max2(
                    max2(
                        lit(1.4826) * col("p_mad"),
                        (col("h_med") + lit(1.0)).sqrt() / col("h_med"),
                    ),
                    lit(0.2),
                ))
            .alias("z_peers"),
        );
        let scopes = [
            (
                "outlier_history",
                h.with_columns([
                    col("h_n").alias("n"),
                    col("z_history").alias("z"),
                    col("h_med").alias("med"),
                ]),
                "本乡镇历史中位数",
            ),
            (
                "outlier_peers",
                peers.with_columns([
                    col("p_n").alias("n"),
                    col("z_peers").alias("z"),
                    (col("p_med") * col("h_med")).alias("med"),
                ]),
                "按同期其他乡镇变化推算的",
            ),
        ];
        for (rule, lf, against) in scopes {
            let failures = lf
                .filter(
                    col("n")
                        .gt_eq(lit(self.min_points as i64))
                        .and(col("value").neq(lit(0.0)))
                        .and(col("z").abs().gt(lit(self.threshold))),
                )
                .sort(["township", "period", "indicator"], Default::default())
                .collect()?;
            let ff = FailureFrame::read(&failures)?;
            let indicator = ff.str("indicator")?;
            let (value, med, z) = (ff.f64("value")?, ff.f64("med")?, ff.f64("z")?);
            for i in 0..ff.len() {
                let (t, p, code) = (ff.township(i), ff.period(i), indicator.get(i).unwrap_or(""));
                let name = input.catalog.get(code).map_or(code, |i| i.name.as_str());
                let (v, m) = (value.get(i).unwrap_or(f64::NAN), med.get(i).unwrap_or(f64::NAN));
                rows.push(Failure {
                    indicator: Some(code),
                    dimension: None,
                    observed: Some(v),
                    expected: Some(m),
                    message: format!(
                        "{} {p} {name}: {} 与{against} {} 差异异常 (z = {:.1}; outlier, please verify)",
                        township_label(input.registry, t),
                        num(v),
                        num(m),
                        z.get(i).unwrap_or(f64::NAN)
                    ),
                    ..ff.failure(i, rule, self.severity)
                });
            }
        }
        rows.finish()
    }
}
