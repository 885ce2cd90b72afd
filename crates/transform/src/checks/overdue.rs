//! Deadlines: a report not in by its deadline is overdue; one that came in
//! after it is late (counted for timeliness, still used).

use polars::prelude::*;
use serde::Deserialize;
use taizhang_model::Severity;

use super::{Check, CheckInput, Failure, Rows, township_label};
use crate::catalog::Catalog;
use crate::period::{Period, china};

/// The overdue check (`kind = "overdue"`): reports not in by the deadline,
/// and reports that came in after it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overdue {
    /// Severity of an overdue report; a late one is `info`.
    pub severity: Severity,
}

impl Overdue {
    /// Checks the declaration against the catalog; the check as declared.
    pub fn build(&self, _catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        Ok(Box::new(self.clone()))
    }
}

impl Check for Overdue {
    fn name(&self) -> &'static str {
        "overdue"
    }

    fn uses_clock(&self) -> bool {
        true
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        let subs = input.submissions;
        let township = subs.column("township")?.str()?;
        let period = subs.column("period")?.str()?;
        let status = subs.column("status")?.str()?;
        // Borrowed: a national year's run asks this of every carried
        // batch, a report at a time.
        let mut received: PlHashSet<(&str, &str)> = PlHashSet::with_capacity(subs.height());
        let mut rows = Rows::default();
        let program = &input.pipeline.name;
        for i in 0..subs.height() {
            let (Some(t), Some(p), Some(st)) = (township.get(i), period.get(i), status.get(i)) else {
                continue;
            };
            received.insert((t, p));
            if st == "late" {
                let year = p.parse::<Period>().map(|p| p.year).unwrap_or(0);
                rows.push(Failure {
                    rule: "late",
                    severity: Severity::Info,
                    program,
                    township: t,
                    period: p,
                    year,
                    indicator: None,
                    dimension: None,
                    observed: None,
                    expected: None,
                    message: format!(
                        "{} {p} 报表逾期报送 (report arrived after the deadline)",
                        township_label(input.registry, t)
                    ),
                });
            }
        }
        let deadline_days = input.pipeline.deadline_days;
        for p in Period::closed_since(input.pipeline.start(), input.now) {
            let deadline = p.deadline(deadline_days);
            if deadline > input.now {
                continue;
            }
            let ps = p.to_string();
            // Another batch's period: its own run reports it.
            if input.part.is_some_and(|b| !b.owns(&ps)) {
                continue;
            }
            for t in input.registry.townships.keys() {
                if received.contains(&(t.as_str(), ps.as_str())) || input.unreachable.contains(&(t.clone(), ps.clone()))
                {
                    continue;
                }
                let due = (deadline - chrono::Duration::seconds(1)).with_timezone(&china());
                let days = (input.now - deadline).num_days();
                rows.push(Failure {
                    rule: "overdue",
                    severity: self.severity,
                    program,
                    township: t,
                    period: &ps,
                    year: p.year,
                    indicator: None,
                    dimension: None,
                    observed: None,
                    expected: None,
                    message: format!(
                        "{} {ps} 报表未报送，截止 {} 已过 {days} 天 (overdue: not submitted, due {})",
                        township_label(input.registry, t),
                        due.format("%Y-%m-%d"),
                        due.format("%Y-%m-%d")
                    ),
                });
            }
        }
        rows.finish()
    }
}
