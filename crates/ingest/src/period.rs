//! Reporting periods (`2026-06`, `2026-Q2`, `2026-H1`, `2026`) and the calendar
//! arithmetic around them: when a period ends, when its report is due, and how
//! much of the year has elapsed. Pure: the clock is always passed in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// China Standard Time (UTC+8): report deadlines fall at midnight local time.
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// How often a program reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodType {
    /// `YYYY-MM`
    Monthly,
    /// `YYYY-Qn`
    Quarterly,
    /// `YYYY-H1`, `YYYY-H2`
    HalfYearly,
    /// `YYYY`
    Yearly,
}

impl PeriodType {
    fn months(self) -> u32 {
        match self {
            PeriodType::Monthly => 1,
            PeriodType::Quarterly => 3,
            PeriodType::HalfYearly => 6,
            PeriodType::Yearly => 12,
        }
    }
}

/// One reporting period: a run of whole months inside one year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Period {
    /// Calendar year.
    pub year: i32,
    /// First month covered, 1-based.
    pub first_month: u32,
    /// Number of months covered (1, 3, 6 or 12).
    pub months: u32,
}

/// A period string that is none of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("period {0:?} is not YYYY-MM, YYYY-Qn, YYYY-H1/H2 or YYYY")]
pub struct BadPeriod(pub String);

impl Period {
    /// The period of `kind` that contains the first day of `year`-`month`.
    pub fn containing(kind: PeriodType, year: i32, month: u32) -> Period {
        let m = kind.months();
        Period {
            year,
            first_month: (month - 1) / m * m + 1,
            months: m,
        }
    }

    /// Which kind of period this is.
    pub fn kind(&self) -> PeriodType {
        match self.months {
            1 => PeriodType::Monthly,
            3 => PeriodType::Quarterly,
            6 => PeriodType::HalfYearly,
            _ => PeriodType::Yearly,
        }
    }

    /// First day of the period.
    pub fn start_date(&self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.first_month, 1).expect("month is 1..=12")
    }

    /// Last month covered, 1-based.
    pub fn last_month(&self) -> u32 {
        self.first_month + self.months - 1
    }

    /// Last day of the period.
    pub fn end_date(&self) -> NaiveDate {
        self.next().start_date() - Duration::days(1)
    }

    /// The period of the same kind that follows this one.
    pub fn next(&self) -> Period {
        let m = self.first_month + self.months;
        if m > 12 {
            Period {
                year: self.year + 1,
                first_month: 1,
                months: self.months,
            }
        } else {
            Period {
                first_month: m,
                ..*self
            }
        }
    }

    /// The instant the period is over: midnight China time after its last day.
    pub fn closes_at(&self) -> DateTime<Utc> {
        local_midnight(self.next().start_date())
    }

    /// The instant a report for this period becomes late: the end of the day
    /// `deadline_days` after the period's last day, China time.
    pub fn deadline(&self, deadline_days: u32) -> DateTime<Utc> {
        local_midnight(self.end_date() + Duration::days(i64::from(deadline_days) + 1))
    }

    /// Every period of `kind` from `start` up to the last one closed at `now`.
    pub fn closed_since(start: Period, now: DateTime<Utc>) -> Vec<Period> {
        let mut out = Vec::new();
        let mut p = start;
        while p.closes_at() <= now {
            out.push(p);
            p = p.next();
        }
        out
    }
}

fn local_midnight(date: NaiveDate) -> DateTime<Utc> {
    china()
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("UTC+8 has no gaps")
        .with_timezone(&Utc)
}

/// Share of `year` covered by closed reporting months at `now`, in 0..=1.
/// Time-proportional progress (序时进度) is measured against this: a township is
/// not behind for a month whose report is not even due yet.
pub fn year_elapsed(year: i32, now: DateTime<Utc>) -> f64 {
    let local = now.with_timezone(&china());
    if local.year() > year {
        1.0
    } else if local.year() < year {
        0.0
    } else {
        f64::from(local.month() - 1) / 12.0
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind() {
            PeriodType::Monthly => write!(f, "{}-{:02}", self.year, self.first_month),
            PeriodType::Quarterly => write!(f, "{}-Q{}", self.year, (self.first_month - 1) / 3 + 1),
            PeriodType::HalfYearly => write!(f, "{}-H{}", self.year, (self.first_month - 1) / 6 + 1),
            PeriodType::Yearly => write!(f, "{}", self.year),
        }
    }
}

impl FromStr for Period {
    type Err = BadPeriod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPeriod(s.to_string());
        let t = s.trim();
        let (year, rest) = match t.split_once('-') {
            Some((y, r)) => (y, Some(r)),
            None => (t, None),
        };
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let num = |r: &str, max: u32| -> Result<u32, BadPeriod> {
            match r.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) && r.len() <= 2 => Ok(n),
                _ => Err(bad()),
            }
        };
        let (first_month, months) = match rest {
            None => (1, 12),
            Some(r) if r.starts_with(['Q', 'q']) => ((num(&r[1..], 4)? - 1) * 3 + 1, 3),
            Some(r) if r.starts_with(['H', 'h']) => ((num(&r[1..], 2)? - 1) * 6 + 1, 6),
            Some(r) if r.len() == 2 => (num(r, 12)?, 1),
            Some(_) => return Err(bad()),
        };
        Ok(Period {
            year,
            first_month,
            months,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Period {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_every_form() {
        for s in ["2026-06", "2026-12", "2026-Q1", "2026-Q4", "2026-H2", "2026"] {
            assert_eq!(p(s).to_string(), s);
        }
        for s in [
            "2026-13",
            "2026-6",
            "2026-Q5",
            "2026-H3",
            "26-06",
            "",
            "2026-",
            "２０２６",
        ] {
            assert!(s.parse::<Period>().is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn june_report_due_end_of_july_fifth_china_time() {
        let d = p("2026-06").deadline(5);
        assert_eq!(d.to_rfc3339(), "2026-07-05T16:00:00+00:00");
        assert_eq!(p("2026-12").next(), p("2027-01"));
        assert_eq!(p("2026-Q4").end_date().to_string(), "2026-12-31");
    }

    #[test]
    fn closed_periods_stop_at_now() {
        let now = "2026-07-10T00:00:00+08:00".parse::<DateTime<Utc>>().unwrap();
        let ps = Period::closed_since(p("2026-01"), now);
        assert_eq!(ps.len(), 6);
        assert_eq!(ps.last().unwrap().to_string(), "2026-06");
        assert_eq!(year_elapsed(2026, now), 0.5);
    }
}
