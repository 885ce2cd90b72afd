//! Quota progress (序时进度, 时间过半任务过半): year-to-date achievement over
//! the yearly quota, against the share of the year whose reports are due.
//! Flows add up across the year's periods; stocks and cumulatives take the
//! latest value.

use polars::prelude::*;
use serde::Deserialize;
use taizhang_model::Severity;

use super::{Check, CheckInput, Failure, Rows, num, township_label};
use crate::catalog::Catalog;
use crate::catalog::Kind;
use crate::period::year_elapsed;

/// The quota progress check (`kind = "quota_progress"`): year-to-date
/// progress against the yearly quota and the elapsed share of the year (序时进度).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaProgress {
    /// Severity of behind / far ahead.
    pub severity: Severity,
    /// Behind when progress < elapsed − this.
    #[serde(default = "default_behind_tolerance")]
    pub behind_tolerance: f64,
    /// Far ahead when progress > this share of the quota.
    #[serde(default = "default_ahead_ceiling")]
    pub ahead_ceiling: f64,
}

fn default_behind_tolerance() -> f64 {
    0.1
}

fn default_ahead_ceiling() -> f64 {
    1.5
}

impl QuotaProgress {
    /// Checks the declaration against the catalog; the check as declared.
    pub fn build(&self, _catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(self.clone()))
    }
}

/// What the quota check reads of the facts: kept with a batch that is
/// carried from run to run, so that the check runs without them.
#[derive(Debug, Clone)]
pub struct QuotaFacts {
    /// Year-to-date achievement ([`achieved`]).
    pub achieved: DataFrame,
    /// The years the facts hold.
    pub years: Vec<i32>,
}

impl QuotaFacts {
    /// The year to date after `own` (the next batch's [`quota_facts`]),
    /// from the year to date before it (`self`): flows add up, stocks and
    /// cumulatives take `own`'s latest where it has one. What a batch
    /// carries to the next instead of the rows of every period before.
    pub fn then(&self, own: &QuotaFacts, catalog: &crate::catalog::Catalog) -> PolarsResult<QuotaFacts> {
        if self.achieved.width() == 0 {
            return Ok(own.clone());
        }
        let keys = [col("township"), col("year"), col("indicator")];
        let achieved = self
            .achieved
            .clone()
            .lazy()
            .join(
                own.achieved.clone().lazy(),
                keys.clone(),
                keys,
                JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
            )
            .join(
                kinds(catalog)?,
                [col("indicator")],
                [col("indicator")],
                JoinArgs::new(JoinType::Left),
            )
            .select([
                col("township"),
                col("year"),
                col("indicator"),
                when(col("is_flow").fill_null(lit(false)).and(col("achieved").is_not_null()))
                    .then(col("achieved") + col("achieved_right").fill_null(lit(0.0)))
                    .otherwise(col("achieved_right").fill_null(col("achieved")))
                    .alias("achieved"),
            ])
            .collect()?;
        let mut years = self.years.clone();
        years.extend(&own.years);
        years.sort_unstable();
        years.dedup();
        Ok(QuotaFacts { achieved, years })
    }
}

/// Each indicator of the catalog and whether it is a flow (added up over
/// the year) or not (the latest value counts): (indicator, is_flow).
pub(crate) fn kinds(catalog: &crate::catalog::Catalog) -> PolarsResult<LazyFrame> {
    let (codes, flows): (Vec<String>, Vec<bool>) = catalog
        .indicators
        .iter()
        .map(|i| (i.code.clone(), i.kind == Kind::Flow))
        .unzip();
    Ok(DataFrame::new_infer_height(vec![
        Column::new("indicator".into(), codes),
        Column::new("is_flow".into(), flows),
    ])?
    .lazy())
}

/// [`QuotaFacts`] of `facts`.
pub fn quota_facts(facts: &DataFrame, catalog: &crate::catalog::Catalog) -> PolarsResult<QuotaFacts> {
    let mut years: Vec<i32> = facts.column("year")?.i32()?.iter().flatten().collect();
    years.sort_unstable();
    years.dedup();
    Ok(QuotaFacts {
        achieved: achieved(facts, catalog)?.collect()?,
        years,
    })
}

/// Year-to-date achievement per (township, year, indicator): a pure helper
/// shared with the rollup. Columns: township, year, indicator, achieved.
pub fn achieved(facts: &DataFrame, catalog: &crate::catalog::Catalog) -> PolarsResult<LazyFrame> {
    // The latest value is the group's last row once the rows are in period
    // order (a sort within every group was most of this); the rows of one
    // period (a batch's) are in order as they are.
    let totals = facts.clone().lazy().filter(super::reported_totals());
    let totals = match super::rule::period_months(facts)?.height() > 1 {
        true => totals.sort(["period"], SortMultipleOptions::default().with_maintain_order(true)),
        false => totals,
    };
    let grouped = totals
        .group_by([col("township"), col("year"), col("indicator")])
        .agg([col("value").sum().alias("sum"), col("value").last().alias("latest")]);
    of_kind(grouped, catalog)
}

/// Each group's achievement from its `sum` and `latest`: the sum of a
/// flow, the latest value of any other kind.
fn of_kind(grouped: LazyFrame, catalog: &crate::catalog::Catalog) -> PolarsResult<LazyFrame> {
    Ok(grouped
        .join(
            kinds(catalog)?,
            [col("indicator")],
            [col("indicator")],
            JoinArgs::new(JoinType::Inner),
        )
        .select([
            col("township"),
            col("year"),
            col("indicator"),
            when(col("is_flow"))
                .then(col("sum"))
                .otherwise(col("latest"))
                .alias("achieved"),
        ]))
}

impl Check for QuotaProgress {
    fn name(&self) -> &'static str {
        "quota_progress"
    }

    fn uses_clock(&self) -> bool {
        true
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        let mut rows = Rows::default();
        // Its results are a year's (`2026`): a batch that owns no year (a
        // monthly province's batches but the last) has none to make (a
        // national year's every carried batch made and dropped them).
        if let (Some(part), Some(q)) = (input.part, input.quota_facts) {
            let mut years = q.years.iter().chain(input.quotas.iter().map(|q| &q.year));
            if !years.any(|y| part.owns(&y.to_string())) {
                return rows.finish();
            }
        }
        for d in decomposition(input.quotas, input.registry) {
            let name = input
                .catalog
                .get(&d.indicator)
                .map_or(d.indicator.as_str(), |i| i.name.as_str());
            rows.push(Failure {
                rule: "quota_decomposition",
                severity: Severity::Error,
                program: &input.pipeline.name,
                township: &d.county,
                period: &d.year.to_string(),
                year: d.year,
                indicator: Some(&d.indicator),
                dimension: None,
                observed: Some(d.townships_sum),
                expected: Some(d.county_quota),
                message: format!(
                    "{} {}年 {name}: 各乡镇任务数之和 {} ≠ 县任务数 {} (township quotas do not add up to the county quota)",
                    d.county,
                    d.year,
                    num(d.townships_sum),
                    num(d.county_quota)
                ),
            });
        }
        // A year reported with no quota at all is not checked against
        // anything: say so, per county, rather than staying silent.
        let counties = input.registry.counties();
        let own;
        let of_facts = match input.quota_facts {
            Some(q) => q,
            // The rows of the periods before are not the year to date: what
            // a batch carries of them keeps only what the look-back checks
            // need (`super::look_back`); the year to date is carried apart.
            None if input.earlier.is_some() => {
                polars_bail!(ComputeError: "quota progress of a batch with periods before it needs their year to date (CheckInput::quota_facts)")
            }
            None => {
                own = quota_facts(input.facts, input.catalog)?;
                &own
            }
        };
        // The (county, year)s with a quota, the county's own or one of its
        // townships': gathered once (asked of every quota per county, this
        // was most of a carried batch's clock checks).
        let with_quota: std::collections::HashSet<(&str, i32)> = input
            .quotas
            .iter()
            .map(|q| match input.registry.get(&q.code) {
                Some(t) => (t.county.as_str(), q.year),
                None => (q.code.as_str(), q.year),
            })
            .collect();
        for &year in &of_facts.years {
            let has_quota = |county: &str| with_quota.contains(&(county, year));
            for (county, county_name) in counties.iter().filter(|(c, _)| !has_quota(c)) {
                rows.push(Failure {
                    rule: "quota_missing",
                    severity: Severity::Warning,
                    program: &input.pipeline.name,
                    township: county,
                    period: &year.to_string(),
                    year,
                    indicator: None,
                    dimension: None,
                    observed: None,
                    expected: None,
                    message: format!(
                        "{county_name}({county}) {year}年: 没有任务数，序时进度未核查 (no quotas for {year} in the quota files: progress is not checked)"
                    ),
                });
            }
        }
        let (mut t, mut y, mut ind, mut q) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for quota in input
            .quotas
            .iter()
            .filter(|q| input.registry.get(&q.code).is_some() && q.quota > 0.0)
        {
            if !input.pipeline.indicators.is_empty() && !input.pipeline.indicators.contains(&quota.indicator) {
                continue;
            }
            t.push(quota.code.clone());
            y.push(quota.year);
            ind.push(quota.indicator.clone());
            q.push(quota.quota);
        }
        // No township has a quota: no progress to measure (the join and
        // its sort were most of a carried batch's clock checks).
        if t.is_empty() {
            return rows.finish();
        }
        let quotas = DataFrame::new_infer_height(vec![
            Column::new("township".into(), t),
            Column::new("year".into(), y),
            Column::new("indicator".into(), ind),
            Column::new("quota".into(), q),
        ])?;
        let keys = [col("township"), col("year"), col("indicator")];
        let progress = quotas
            .lazy()
            .join(
                of_facts.achieved.clone().lazy(),
                keys.clone(),
                keys,
                JoinArgs::new(JoinType::Left),
            )
            .with_column((col("achieved").fill_null(lit(0.0)) / col("quota")).alias("progress"))
            .sort(["township", "indicator"], Default::default())
            .collect()?;
        let s = |c: &str| progress.column(c).and_then(|c| c.str().cloned());
        let (township, indicator) = (s("township")?, s("indicator")?);
        let year = progress.column("year")?.i32()?.clone();
        let share = progress.column("progress")?.f64()?.clone();
        let quota = progress.column("quota")?.f64()?.clone();
        for i in 0..progress.height() {
            let (Some(tw), Some(code), Some(yr), Some(p), Some(qv)) = (
                township.get(i),
                indicator.get(i),
                year.get(i),
                share.get(i),
                quota.get(i),
            ) else {
                continue;
            };
            let elapsed = year_elapsed(yr, input.now);
            if elapsed <= 0.0 {
                continue;
            }
            let name = input.catalog.get(code).map_or(code, |i| i.name.as_str());
            let who = township_label(input.registry, tw);
            let pct = |x: f64| format!("{:.0}%", x * 100.0);
            let (rule, message) = if p < elapsed - self.behind_tolerance {
                (
                    "quota_behind",
                    format!(
                        "{who} {yr}年 {name}: 完成 {} / 任务 {} = {}，低于序时进度 {} (behind time-proportional progress)",
                        num(p * qv),
                        num(qv),
                        pct(p),
                        pct(elapsed)
                    ),
                )
            } else if p > self.ahead_ceiling {
                (
                    "quota_far_ahead",
                    format!(
                        "{who} {yr}年 {name}: 完成 {} / 任务 {} = {}，远超任务，请核实 (far ahead of quota: a star or an error)",
                        num(p * qv),
                        num(qv),
                        pct(p)
                    ),
                )
            } else {
                continue;
            };
            rows.push(Failure {
                rule,
                severity: self.severity,
                program: &input.pipeline.name,
                township: tw,
                period: &yr.to_string(),
                year: yr,
                indicator: Some(code),
                dimension: None,
                observed: Some(p),
                expected: Some(elapsed),
                message,
            });
        }
        rows.finish()
    }
}

/// A county quota its townships' quotas do not add up to.
#[derive(Debug, Clone, PartialEq)]
pub struct Decomposition {
    /// County code.
    pub county: String,
    /// Year.
    pub year: i32,
    /// Indicator code.
    pub indicator: String,
    /// The county's own quota.
    pub county_quota: f64,
    /// Sum of its townships' quotas.
    pub townships_sum: f64,
}

/// Every (county, year, indicator) whose township quotas (任务分解到乡镇) do
/// not sum to the county quota. Checked when quotas are loaded and on every run.
pub fn decomposition(quotas: &[taizhang_model::Quota], registry: &crate::registry::Registry) -> Vec<Decomposition> {
    use std::collections::BTreeMap;
    let mut county: BTreeMap<(String, i32, String), f64> = BTreeMap::new();
    let mut sums: BTreeMap<(String, i32, String), f64> = BTreeMap::new();
    for q in quotas {
        match registry.get(&q.code) {
            Some(t) => *sums.entry((t.county.clone(), q.year, q.indicator.clone())).or_default() += q.quota,
            None => {
                county.insert((q.code.clone(), q.year, q.indicator.clone()), q.quota);
            }
        }
    }
    county
        .into_iter()
        .filter_map(|(k, cq)| {
            let s = sums.get(&k).copied()?;
            ((s - cq).abs() > 1e-9).then_some(Decomposition {
                county: k.0,
                year: k.1,
                indicator: k.2,
                county_quota: cq,
                townships_sum: s,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::{achieved, of_kind};
    use crate::fixtures::{config, random};

    /// The year to date as a sort of each group's rows made it before.
    fn sorted_per_group(facts: &DataFrame, catalog: &crate::catalog::Catalog) -> DataFrame {
        let grouped = facts
            .clone()
            .lazy()
            .filter(super::super::reported_totals())
            .group_by([col("township"), col("year"), col("indicator")])
            .agg([
                col("value").sum().alias("sum"),
                col("value")
                    .sort_by([col("period")], SortMultipleOptions::default())
                    .last()
                    .alias("latest"),
            ]);
        of_kind(grouped, catalog)
            .unwrap()
            .sort(["township", "year", "indicator"], Default::default())
            .collect()
            .unwrap()
    }

    #[test]
    fn the_year_to_date_takes_a_stocks_latest_period_whatever_order_the_rows_come_in() {
        let cfg = config();
        for seed in 1..30u64 {
            let mut r = random(seed * 104_729);
            let (mut t, mut p, mut ind, mut dim, mut v) = (vec![], vec![], vec![], vec![], vec![]);
            // Each (township, period, indicator) once, in shuffled order;
            // one period only for some seeds (the rows as they are).
            let periods: &[&str] = if seed % 3 == 0 {
                &["2026-05"]
            } else {
                &["2026-03", "2026-05", "2026-04"]
            };
            let mut cells = vec![];
            for tw in ["340101001", "340101002"] {
                for pe in periods {
                    for code in ["severe_care_recipients", "certificates_issued", "fuel_households"] {
                        cells.push((tw, *pe, code));
                    }
                }
            }
            while !cells.is_empty() {
                let (tw, pe, code) = cells.remove(r(cells.len() as u64) as usize);
                t.push(tw);
                p.push(pe);
                ind.push(code);
                dim.push([None, None, None, Some("类别")][r(4) as usize]);
                v.push((r(6) > 0).then(|| r(50) as f64));
            }
            let facts = df!(
                "township" => t, "period" => p, "year" => vec![2026i32; ind.len()],
                "indicator" => ind, "dimension" => dim, "value" => v,
            )
            .unwrap();
            let got = achieved(&facts, &cfg.catalog)
                .unwrap()
                .sort(["township", "year", "indicator"], Default::default())
                .collect()
                .unwrap();
            let want = sorted_per_group(&facts, &cfg.catalog);
            assert!(got.equals_missing(&want), "seed {seed}:\n{got}\n{want}");
        }
    }
}
