//! Timeliness from evidence, not from what a township claims alone.
//!
//! A report's timeliness is decided by its first version, from three facts:
//! the time the township claims (`submitted_at`, when its format has one),
//! when taizhang first saw it, and whether a fetch after the deadline found
//! nothing (a 404 or an empty inbox) before it was first seen.
//!
//! - **late** when the claim is after the deadline, or a fetch after the
//!   deadline found nothing before the report was first seen;
//! - **on time** when it was seen by the deadline, or (with no fetch after
//!   the deadline finding it missing) when the claim is by the deadline;
//! - **unknown** when there is no evidence either way: no claim, first seen
//!   after the deadline, never seen missing (a new deployment backfilling).
//!
//! A report on time stays on time when a correction (a later version)
//! arrives after the deadline; the correction itself is recorded as late in
//! `landings` (a later version is judged by when it was seen: the earlier
//! one was being served until then, so its claim cannot move it earlier).
//! Pure: the evidence is passed in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use polars::prelude::*;
use taizhang_model::Landing;

use crate::period::Period;

/// What taizhang knows about when a report arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// The township's claimed submission time, if its format has one.
    pub claim: Option<DateTime<Utc>>,
    /// When taizhang first saw this version.
    pub first_seen: DateTime<Utc>,
    /// The first fetch after the deadline that found nothing, if any.
    pub seen_missing: Option<DateTime<Utc>>,
    /// When the report became late.
    pub deadline: DateTime<Utc>,
}

/// A report's (or a version's) timeliness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    /// By the deadline.
    OnTime,
    /// After it.
    Late,
    /// No evidence either way.
    Unknown,
}

impl Timeliness {
    /// As published: `on_time`, `late`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Timeliness::OnTime => "on_time",
            Timeliness::Late => "late",
            Timeliness::Unknown => "unknown",
        }
    }
}

/// The timeliness of a report from the evidence of its first version.
pub fn assess(e: &Evidence) -> Timeliness {
    let missing_first = e.seen_missing.is_some_and(|m| m < e.first_seen);
    if e.claim.is_some_and(|c| c > e.deadline) || missing_first {
        return Timeliness::Late;
    }
    if e.first_seen <= e.deadline || e.claim.is_some() {
        return Timeliness::OnTime;
    }
    Timeliness::Unknown
}

/// A correction (a version after the first) is judged by when it was seen.
pub fn assess_correction(first_seen: DateTime<Utc>, deadline: DateTime<Utc>) -> Timeliness {
    match first_seen <= deadline {
        true => Timeliness::OnTime,
        false => Timeliness::Late,
    }
}

fn claim_of(l: &Landing) -> Option<DateTime<Utc>> {
    l.submitted_at
        .as_deref()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// What is known of one report: its timeliness, the evidence of its first
/// version, and which body that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<'a> {
    /// From the first version's evidence.
    pub timeliness: Timeliness,
    /// The first version's evidence.
    pub evidence: Evidence,
    /// The first version's body.
    pub first_sha256: &'a str,
}

/// Every report of a program by (township, period), borrowed from its
/// landings (a national year has 454,872: as owned strings they were
/// ~100 MB held through the run's batches). Hashed with polars' hasher:
/// a run makes them for every part, every run.
pub type Reports<'a> = PlHashMap<(&'a str, &'a str), Report<'a>>;

/// When a fetch after the deadline found each (township, period) missing
/// (a program's absences), borrowed for [`reports`]: made once per run, not
/// for every part it makes reports of.
pub type Absent<'a> = PlHashMap<(&'a str, &'a str), DateTime<Utc>>;

/// [`Absent`] of a program's absences as the state reads them.
pub fn absent(missing: &HashMap<(String, String), DateTime<Utc>>) -> Absent<'_> {
    missing
        .iter()
        .map(|((t, p), at)| ((t.as_str(), p.as_str()), *at))
        .collect()
}

/// Every report of one program by (township, period), from its landings
/// (the first seen is the first version) and its absences.
pub fn reports<'a>(all: &'a [Landing], deadline_days: u32, missing: &Absent<'_>) -> Reports<'a> {
    let mut first: PlHashMap<(&str, &str), &Landing> = PlHashMap::with_capacity(all.len());
    for l in all {
        let e = first.entry((&l.township, &l.period)).or_insert(l);
        if (l.first_fetched_at, &l.sha256) < (e.first_fetched_at, &e.sha256) {
            *e = l;
        }
    }
    first
        .into_values()
        .filter_map(|l| {
            let period = l.period.parse::<Period>().ok()?;
            let key = (l.township.as_str(), l.period.as_str());
            let evidence = Evidence {
                claim: claim_of(l),
                first_seen: l.first_fetched_at,
                seen_missing: missing.get(&key).copied(),
                deadline: period.deadline(deadline_days),
            };
            let report = Report {
                timeliness: assess(&evidence),
                evidence,
                first_sha256: &l.sha256,
            };
            Some((key, report))
        })
        .collect()
}

/// The timeliness of each landing: the first version's is its report's, a
/// later one is judged as a correction.
pub fn of_landings(all: &[Landing], reports: &Reports<'_>) -> Vec<Timeliness> {
    all.iter()
        .map(|l| match reports.get(&(l.township.as_str(), l.period.as_str())) {
            Some(r) if r.first_sha256 == l.sha256 => r.timeliness,
            Some(r) => assess_correction(l.first_fetched_at, r.evidence.deadline),
            None => Timeliness::Unknown,
        })
        .collect()
}

/// The submissions table with each report's timeliness (`status`, unless
/// it is `quarantined`), when taizhang first saw the report
/// (`first_seen_at`) and when a fetch after the deadline found it missing
/// (`seen_missing_at`).
pub fn apply(submissions: DataFrame, reports: &Reports<'_>) -> PolarsResult<DataFrame> {
    let (t, p) = (
        submissions.column("township")?.str()?,
        submissions.column("period")?.str()?,
    );
    let status = submissions.column("status")?.str()?;
    let mut new_status = Vec::with_capacity(submissions.height());
    let (mut seen, mut missing) = (Vec::new(), Vec::new());
    for i in 0..submissions.height() {
        let key = (t.get(i).unwrap_or(""), p.get(i).unwrap_or(""));
        let found = reports.get(&key);
        let st = status.get(i).unwrap_or("");
        new_status.push(match (st, found) {
            ("quarantined", _) | (_, None) => st.to_string(),
            (_, Some(r)) => r.timeliness.as_str().to_string(),
        });
        seen.push(found.map(|r| r.evidence.first_seen.timestamp_micros()));
        missing.push(found.and_then(|r| r.evidence.seen_missing.map(|m| m.timestamp_micros())));
    }
    let mut out = submissions;
    out.with_column(Column::new("status".into(), new_status))?;
    out.with_column(Column::new("first_seen_at".into(), seen))?;
    out.with_column(Column::new("seen_missing_at".into(), missing))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::at;

    fn e(claim: Option<&str>, first_seen: &str, missing: Option<&str>) -> Timeliness {
        assess(&Evidence {
            claim: claim.map(at),
            first_seen: at(first_seen),
            seen_missing: missing.map(at),
            deadline: at("2026-07-05T16:00:00Z"),
        })
    }

    #[test]
    fn a_claim_counts_only_when_no_observation_contradicts_it() {
        // First seen 07-12 claiming 07-01: on time unless a fetch after the deadline found nothing.
        assert_eq!(
            e(Some("2026-07-01T00:00:00Z"), "2026-07-12T00:00:00Z", None),
            Timeliness::OnTime
        );
        assert_eq!(
            e(
                Some("2026-07-01T00:00:00Z"),
                "2026-07-12T00:00:00Z",
                Some("2026-07-06T18:00:00Z")
            ),
            Timeliness::Late
        );
        // A claim after the deadline is late whenever it was seen.
        assert_eq!(
            e(Some("2026-07-06T00:00:00Z"), "2026-07-03T00:00:00Z", None),
            Timeliness::Late
        );
        // Missing seen only after the report was seen (withdrawn later): not evidence.
        assert_eq!(
            e(None, "2026-07-03T00:00:00Z", Some("2026-07-08T00:00:00Z")),
            Timeliness::OnTime
        );
    }

    #[test]
    fn without_a_claim_observation_decides_or_nothing_does() {
        assert_eq!(e(None, "2026-07-05T15:59:00Z", None), Timeliness::OnTime);
        assert_eq!(
            e(None, "2026-07-10T02:00:00Z", Some("2026-07-06T18:00:00Z")),
            Timeliness::Late
        );
        // A new deployment backfilling January in July: no evidence either way.
        assert_eq!(e(None, "2026-07-10T02:00:00Z", None), Timeliness::Unknown);
    }

    #[test]
    fn a_correction_after_the_deadline_is_late_and_the_report_stays_on_time() {
        let land = |sha: &str, seen: &str, claim: Option<&str>| Landing {
            sha256: sha.into(),
            submitted_at: claim.map(str::to_string),
            first_fetched_at: at(seen),
            last_fetched_at: at(seen),
            ..crate::fixtures::landing("p", "341124102", "2026-06", b"x")
        };
        let all = [
            land("a", "2026-07-02T00:00:00Z", Some("2026-07-01T00:00:00+08:00")),
            land("b", "2026-07-09T00:00:00Z", Some("2026-07-01T00:00:00+08:00")),
        ];
        let r = reports(&all, 5, &Absent::default());
        assert_eq!(of_landings(&all, &r), [Timeliness::OnTime, Timeliness::Late]);
        assert_eq!(r[&("341124102", "2026-06")].timeliness, Timeliness::OnTime);
    }
}
