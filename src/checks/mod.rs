//! Check: consistency of the normalized rows against arithmetic, quotas and
//! deadlines. Every check is pure (DataFrame in, DataFrame out; `now` passed
//! in) and evaluated over all townships and periods at once with polars.
//! Results share one schema ([`RESULT_COLUMNS`]); error-severity failures
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

use crate::catalog::Catalog;
use crate::config::{CheckConfig, Pipeline, Quota, Severity};
use crate::registry::Registry;

/// Columns of the check-results table, in order.
pub const RESULT_COLUMNS: &[&str] = &[
    "rule",
    "severity",
    "program",
    "township",
    "period",
    "year",
    "indicator",
    "dimension",
    "observed",
    "expected",
    "message",
    "explanation",
    "excluded",
];

/// What every check sees.
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
}

/// One kind of check.
///
/// Contract: `run` returns only failures, one row per (rule, township,
/// period, indicator, dimension), in the first eleven [`RESULT_COLUMNS`]
/// (`explanation` and `excluded` are added by [`run_all`]). It does no IO.
pub trait Check {
    /// Rule name as it appears in results (`breakdown`, `quota_behind`, …).
    fn name(&self) -> &'static str;
    /// Evaluates the check.
    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame>;
}

/// The registry of check kinds: one declaration in a pipeline file, one
/// implementation. Fails with a reason when the declaration names an unknown
/// indicator or category or does not parse.
pub fn build(cfg: &CheckConfig, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
    use rule::{Missing, Rule};
    let known = |code: &str| -> Result<String, String> {
        catalog
            .resolve(code)
            .map(|i| i.code.clone())
            .ok_or_else(|| format!("unknown indicator {code:?}"))
    };
    Ok(match cfg {
        CheckConfig::Breakdown {
            severity,
            indicators,
            tolerance,
        } => Box::new(breakdown::Breakdown {
            severity: *severity,
            indicators: indicators.clone(),
            tolerance: *tolerance,
        }),
        CheckConfig::QuotaProgress {
            severity,
            behind_tolerance,
            ahead_ceiling,
        } => Box::new(quota::QuotaProgress {
            severity: *severity,
            behind_tolerance: *behind_tolerance,
            ahead_ceiling: *ahead_ceiling,
        }),
        CheckConfig::Overdue { severity } => Box::new(overdue::Overdue { severity: *severity }),
        CheckConfig::Rule {
            name,
            left,
            op,
            right,
            tolerance_abs,
            tolerance_rel,
            missing,
            severity,
            message,
        } => {
            let mut r = Rule::new(
                name,
                left,
                op,
                right,
                catalog,
                *severity,
                *missing,
                (*tolerance_abs, *tolerance_rel),
            )?;
            r.message = message.clone();
            Box::new(r)
        }
        CheckConfig::CountRate {
            count,
            per,
            amount,
            rate,
            county_rates,
            tolerance_rel,
            severity,
        } => {
            let mut r = Rule::new(
                "count_rate",
                amount,
                "=",
                &match per {
                    crate::config::RatePer::Month => format!("{count} * rate * months"),
                    crate::config::RatePer::Period => format!("{count} * rate"),
                },
                catalog,
                *severity,
                Missing::SkipIfAny,
                (0.0, *tolerance_rel),
            )?;
            r.rates = (*rate, county_rates.clone());
            r.message = Some(format!(
                "{{township}} {{period}}: {amount} {{left}} ≠ {count} × {rate}{} = {{right}} (count × rate ≠ amount)",
                if *per == crate::config::RatePer::Month {
                    " × 月数"
                } else {
                    ""
                }
            ));
            Box::new(r)
        }
        CheckConfig::PartOfWhole { part, whole, severity } => {
            let mut r = Rule::new(
                "part_of_whole",
                part,
                "<=",
                whole,
                catalog,
                *severity,
                Missing::SkipIfAny,
                (0.0, 0.0),
            )?;
            r.message = Some(format!(
                "{{township}} {{period}}: {part} {{left}} 大于 {whole} {{right}} (part exceeds whole)"
            ));
            Box::new(r)
        }
        CheckConfig::Ratio {
            ratio,
            numerator,
            denominator,
            tolerance_abs,
            severity,
        } => {
            let mut r = Rule::new(
                "ratio",
                ratio,
                "=",
                &format!("({numerator}) / ({denominator}) * 100"),
                catalog,
                *severity,
                Missing::SkipIfAny,
                (*tolerance_abs, 0.0),
            )?;
            r.message = Some(format!(
                "{{township}} {{period}}: {ratio} {{left}}% ≠ ({numerator}) / ({denominator}) = {{right}}% (ratio does not match its parts)"
            ));
            Box::new(r)
        }
        CheckConfig::Cumulative { indicators, severity } => Box::new(series::Cumulative {
            indicators: indicators.iter().map(|c| known(c)).collect::<Result<_, _>>()?,
            severity: *severity,
        }),
        CheckConfig::StockFlow {
            stock,
            new,
            exits,
            tolerance,
            severity,
        } => Box::new(series::StockFlow {
            stock: known(stock)?,
            new: known(new)?,
            exits: exits.as_deref().map(known).transpose()?,
            tolerance: *tolerance,
            severity: *severity,
        }),
        CheckConfig::Outlier {
            indicators,
            threshold,
            min_points,
            severity,
        } => Box::new(outlier::Outlier {
            indicators: indicators.iter().map(|c| known(c)).collect::<Result<_, _>>()?,
            threshold: *threshold,
            min_points: *min_points,
            severity: *severity,
        }),
        CheckConfig::Plausibility {
            bounds,
            history_factor,
            min_history,
            history_floor,
            severity,
        } => Box::new(plausibility::Plausibility {
            bounds: bounds
                .iter()
                .map(|(k, v)| known(k).map(|c| (c, *v)))
                .collect::<Result<_, _>>()?,
            history_factor: *history_factor,
            min_history: *min_history,
            history_floor: *history_floor,
            severity: *severity,
        }),
    })
}

/// Runs every check of the pipeline and adds the submission's explanation
/// and the rollup gate (`excluded`).
pub fn run_all(input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
    let mut frames = vec![Rows::default().finish()?.lazy()];
    for cfg in &input.pipeline.checks {
        let check = build(cfg, input.catalog)
            .map_err(|e| polars_err!(ComputeError: "check validated at load no longer builds: {e}"))?;
        frames.push(check.run(input)?.lazy());
    }
    let all = concat(frames, UnionArgs::default())?;
    let explanations = input
        .submissions
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
            .and(col("explanation").is_null()))
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

/// Formats a number for a message.
pub fn num(x: f64) -> String {
    crate::submission::format_number((x * 100.0).round() / 100.0)
}
