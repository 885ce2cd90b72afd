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
use crate::text::{Texts, like_before};

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

impl Breakdown {
    /// (indicator, dimension) → (categories expected, exhaustive) of every
    /// breakdown in scope.
    fn scope<'c>(&self, catalog: &'c Catalog) -> PlHashMap<(&'c str, &'c str), Vec<(i64, bool)>> {
        let mut scope: PlHashMap<(&str, &str), Vec<(i64, bool)>> = PlHashMap::new();
        for i in &catalog.indicators {
            if !self.indicators.is_empty() && !self.indicators.contains(&i.code) {
                continue;
            }
            for b in &i.breakdowns {
                scope
                    .entry((i.code.as_str(), b.dimension.as_str()))
                    .or_default()
                    .push((b.categories.len() as i64, b.exhaustive));
            }
        }
        scope
    }

    /// The failing (total, breakdown) pairs: program, township, period,
    /// year, indicator, dimension, total, parts_sum, complete; in
    /// (township, period, indicator, dimension) order. In one pass over the
    /// facts: a breakdown's parts are summed by (township, period,
    /// indicator, dimension), each compared with the total of its (township,
    /// period, indicator), rows with a null key in neither (a join matches
    /// no null). A polars group-by and join of every part row before.
    ///
    /// A batch's facts come a report at a time: each run of one (township,
    /// period) is summed and compared alone, in maps small enough to stay in
    /// cache (maps of a whole batch's cells were a tenth of its checks).
    /// Facts where a (township, period) comes back after another are one
    /// run.
    fn failures(&self, facts: &DataFrame, catalog: &Catalog) -> PolarsResult<DataFrame> {
        let scope = self.scope(catalog);
        // The key columns read row by row, a row compared with the one
        // before by its Arrow views.
        let text = |c: &str| Texts::of(facts, c);
        let (program, township, period) = (text("program")?, text("township")?, text("period")?);
        let (indicator, dimension) = (text("indicator")?, text("dimension")?);
        let year = facts.column("year")?.i32()?;
        let (value, approx) = (facts.column("value")?.f64()?, facts.column("approx")?.bool()?);
        type Cell<'a> = (&'a str, &'a str, &'a str);
        // Totals: the rows of each (township, period, indicator), in order.
        let mut totals: PlHashMap<Cell<'_>, Vec<usize>> = PlHashMap::new();
        // Parts: (sum, values present) per breakdown, in order of first row.
        let mut parts: PlIndexMap<(Cell<'_>, &str), (super::GroupSum, i64)> = PlIndexMap::default();
        let mut out: Vec<(usize, &str, f64, f64, bool)> = Vec::new();
        // Compares a run's parts with its totals, and empties both.
        #[allow(clippy::type_complexity)]
        fn flush<'a>(
            totals: &mut PlHashMap<Cell<'a>, Vec<usize>>,
            parts: &mut PlIndexMap<(Cell<'a>, &'a str), (super::GroupSum, i64)>,
            scope: &PlHashMap<(&str, &str), Vec<(i64, bool)>>,
            (value, tolerance): (&Float64Chunked, f64),
            out: &mut Vec<(usize, &'a str, f64, f64, bool)>,
        ) {
            for ((cell, d), (sum, n)) in parts.iter() {
                let Some(rows) = totals.get(cell) else { continue };
                let sum = sum.sum();
                for &(expected, exhaustive) in &scope[&(cell.2, *d)] {
                    // An exhaustive breakdown with every category must add
                    // up to the total; any other (partial, or exhaustive
                    // with categories left out: 其中 in a work summary)
                    // cannot exceed it.
                    let complete = exhaustive && *n == expected;
                    for &row in rows {
                        let total = value.get(row).expect("totals have a value");
                        let fails = match complete {
                            true => (total - sum).abs() > tolerance,
                            false => sum - total > tolerance,
                        };
                        if fails {
                            out.push((row, d, total, sum, complete));
                        }
                    }
                }
            }
            totals.clear();
            parts.clear();
        }
        let mut ends = report_runs(&township, &period).into_iter();
        let mut end = ends.next();
        // The parts entry of the row before, when it was a part: a row of
        // the same four keys adds to it without a lookup (a breakdown's
        // categories come one after another). A run ends where the
        // township or period changes, so no row after a flush takes it.
        let mut before: Option<usize> = None;
        for row in 0..township.len() {
            if end == Some(row) {
                flush(&mut totals, &mut parts, &scope, (value, self.tolerance), &mut out);
                end = ends.next();
            }
            let (v, a) = (value.get(row), approx.get(row));
            if let Some(e) = before
                && like_before(&[&township, &period, &indicator, &dimension], row)
            {
                if let Some(v) = v {
                    let (_, (sum, n)) = parts.get_index_mut(e).expect("the entry of the row before");
                    sum.add(v);
                    *n += 1;
                }
                continue;
            }
            before = None;
            let (Some(t), Some(p), Some(i)) = (township.get(row), period.get(row), indicator.get(row)) else {
                continue;
            };
            match dimension.get(row) {
                None => {
                    if v.is_some() && a == Some(false) {
                        totals.entry((t, p, i)).or_default().push(row);
                    }
                }
                Some(d) if scope.contains_key(&(i, d)) => {
                    let entry = parts.entry(((t, p, i), d));
                    before = Some(entry.index());
                    let (sum, n) = entry.or_default();
                    if let Some(v) = v {
                        sum.add(v);
                        *n += 1;
                    }
                }
                Some(_) => {}
            }
        }
        flush(&mut totals, &mut parts, &scope, (value, self.tolerance), &mut out);
        out.sort_by(|a, b| {
            (township.get(a.0), period.get(a.0), indicator.get(a.0), a.1).cmp(&(
                township.get(b.0),
                period.get(b.0),
                indicator.get(b.0),
                b.1,
            ))
        });
        fn at<'c>(c: &'c Texts, out: &[(usize, &str, f64, f64, bool)]) -> Vec<Option<&'c str>> {
            out.iter().map(|o| c.get(o.0)).collect()
        }
        DataFrame::new_infer_height(vec![
            Column::new("program".into(), at(&program, &out)),
            Column::new("township".into(), at(&township, &out)),
            Column::new("period".into(), at(&period, &out)),
            Column::new("year".into(), out.iter().map(|o| year.get(o.0)).collect::<Vec<_>>()),
            Column::new("indicator".into(), at(&indicator, &out)),
            Column::new("dimension".into(), out.iter().map(|o| o.1).collect::<Vec<_>>()),
            Column::new("total".into(), out.iter().map(|o| o.2).collect::<Vec<_>>()),
            Column::new("parts_sum".into(), out.iter().map(|o| o.3).collect::<Vec<_>>()),
            Column::new("complete".into(), out.iter().map(|o| o.4).collect::<Vec<_>>()),
        ])
    }
}

/// Where each run of rows of one (township, period) ends (exclusive), the
/// last at the frame's height; one run of every row when a (township,
/// period) comes back after another.
fn report_runs(township: &Texts, period: &Texts) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut seen: PlHashSet<(Option<&str>, Option<&str>)> = PlHashSet::new();
    for row in 0..township.len() {
        if like_before(&[township, period], row) {
            continue;
        }
        if !seen.insert((township.get(row), period.get(row))) {
            return vec![township.len()];
        }
        if row > 0 {
            ends.push(row);
        }
    }
    ends.push(township.len());
    ends
}

impl Check for Breakdown {
    fn name(&self) -> &'static str {
        "breakdown"
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        let failures = self.failures(input.facts, input.catalog)?;
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

#[cfg(test)]
mod tests {
    use polars::prelude::*;
    use taizhang_model::Severity;

    use super::Breakdown;
    use crate::catalog::Catalog;
    use crate::fixtures::{config, frame, random};
    use crate::text::Texts;

    /// The failures as a polars group-by and join made them before.
    fn polars_failures(b: &Breakdown, facts: &DataFrame, catalog: &Catalog) -> DataFrame {
        // (indicator, dimension, categories expected) for every exhaustive breakdown in scope.
        let (mut ind, mut dim, mut n, mut exh) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in &catalog.indicators {
            if !b.indicators.is_empty() && !b.indicators.contains(&i.code) {
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
        ])
        .unwrap()
        .lazy();
        let facts = facts.clone().lazy();
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
        totals
            .join(parts, keys.clone(), keys, JoinArgs::new(JoinType::Inner))
            .filter(
                when(col("complete"))
                    .then((col("total") - col("parts_sum")).abs().gt(lit(b.tolerance)))
                    .otherwise((col("parts_sum") - col("total")).gt(lit(b.tolerance))),
            )
            .sort(["township", "period", "indicator", "dimension"], Default::default())
            .collect()
            .unwrap()
    }

    fn in_order(f: DataFrame) -> DataFrame {
        f.select([
            "program",
            "township",
            "period",
            "year",
            "indicator",
            "dimension",
            "total",
            "parts_sum",
            "complete",
        ])
        .unwrap()
        .lazy()
        .sort(
            [
                "township",
                "period",
                "indicator",
                "dimension",
                "total",
                "parts_sum",
                "program",
            ],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .collect()
        .unwrap()
    }

    #[test]
    fn a_report_at_a_time_is_runs_and_a_report_coming_back_is_one_run() {
        let col = |v: &[Option<&str>]| Texts::new(&StringChunked::new("c".into(), v));
        let (t, p) = (
            col(&[Some("1"), Some("1"), Some("1"), Some("2"), None, None]),
            col(&[Some("a"), Some("a"), Some("b"), Some("b"), Some("b"), Some("b")]),
        );
        assert_eq!(super::report_runs(&t, &p), vec![2, 3, 4, 6]);
        let back = col(&[Some("1"), Some("2"), Some("1")]);
        assert_eq!(super::report_runs(&back, &col(&[Some("a"); 3])), vec![3]);
        assert_eq!(super::report_runs(&col(&[]), &col(&[])), vec![0]);
    }

    #[test]
    fn breakdowns_fail_as_the_group_by_and_join_of_their_parts_made_them_fail() {
        // Random facts in random order, and the same a report at a time.
        let cfg = config();
        let pick = |r: &mut dyn FnMut(u64) -> u64, options: &[Option<&str>]| {
            options[r(options.len() as u64) as usize].map(str::to_string)
        };
        let mut failed = 0;
        for seed in 1..60u64 {
            let mut r = random(seed * 15_485_863);
            let rows = 20 + r(300) as usize;
            let mut cols: [Vec<Option<String>>; 5] = Default::default();
            let (mut years, mut values, mut approx) = (vec![], vec![], vec![]);
            for _ in 0..rows {
                cols[0].push(pick(&mut r, &[Some("p"), Some("p"), Some("q")]));
                cols[1].push(pick(
                    &mut r,
                    &[Some("340101001"), Some("340101002"), Some("340101002"), None],
                ));
                cols[2].push(pick(&mut r, &[Some("2026-05"), Some("2026-06"), Some("2026-06"), None]));
                cols[3].push(pick(
                    &mut r,
                    &[
                        Some("certificates_issued"),
                        Some("certificates_issued"),
                        Some("severe_care_recipients"),
                        Some("fuel_amount"),
                        None,
                    ],
                ));
                cols[4].push(pick(
                    &mut r,
                    &[None, Some("类别"), Some("类别"), Some("等级"), Some("其他")],
                ));
                years.push(Some(2026));
                // Quarters, tenths and whole numbers: sums that are exact
                // and sums that are not.
                values.push(match r(6) {
                    0 => None,
                    1 => Some(r(40) as f64 / 10.0),
                    2 => Some(r(40) as f64 / 4.0),
                    _ => Some(r(12) as f64),
                });
                approx.push([Some(false), Some(false), Some(false), Some(true), None][r(5) as usize]);
            }
            let facts = frame(
                ["program", "township", "period", "indicator", "dimension"],
                cols,
                vec![
                    Column::new("year".into(), years),
                    Column::new("value".into(), values),
                    Column::new("approx".into(), approx),
                ],
            );
            // As they come (a (township, period) again after another) and a
            // report at a time (runs of one (township, period), as a
            // batch's facts come), summed as one run and run by run.
            let by_report = facts
                .clone()
                .lazy()
                .sort(
                    ["township", "period"],
                    SortMultipleOptions::default().with_maintain_order(true),
                )
                .collect()
                .unwrap();
            let (township, period) = (
                by_report.column("township").unwrap(),
                by_report.column("period").unwrap(),
            );
            let runs = super::report_runs(&Texts::new(township.str().unwrap()), &Texts::new(period.str().unwrap()));
            assert!(runs.len() > 1, "seed {seed}: runs of one report {runs:?}");
            for facts in [&facts, &by_report] {
                for (indicators, tolerance) in [
                    (vec![], 0.0),
                    (vec![], 0.5),
                    (vec!["severe_care_recipients".to_string()], 0.0),
                ] {
                    let b = Breakdown {
                        severity: Severity::Error,
                        indicators,
                        tolerance,
                    };
                    let got = in_order(b.failures(facts, &cfg.catalog).unwrap());
                    let want = in_order(polars_failures(&b, facts, &cfg.catalog));
                    assert!(got.equals_missing(&want), "seed {seed}:\n{got}\n{want}");
                    failed += got.height();
                }
            }
        }
        assert!(failed > 200, "the random facts fail a breakdown now and then: {failed}");
    }
}
