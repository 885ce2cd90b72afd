//! Check results over time: each (rule, township, period, indicator,
//! dimension) is `new` the run it first fails, `still_failing` on later runs,
//! and `resolved` once it stops failing — so alerts fire once, and county
//! staff see how long a problem has been open. Pure: records and `now` in.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use polars::prelude::*;
use taizhang_model::CheckRecord;

/// The key of a result row.
pub fn key(
    program: &str,
    rule: &str,
    township: &str,
    period: &str,
    indicator: Option<&str>,
    dimension: Option<&str>,
) -> String {
    format!(
        "{program}/{rule}/{township}/{period}/{}/{}",
        indicator.unwrap_or(""),
        dimension.unwrap_or("")
    )
}

fn records(df: &DataFrame) -> PolarsResult<Vec<CheckRecord>> {
    let s = |c: &str| df.column(c).and_then(|c| c.str().cloned());
    let (rule, sev, program, township, period, ind, dim, msg, expl) = (
        s("rule")?,
        s("severity")?,
        s("program")?,
        s("township")?,
        s("period")?,
        s("indicator")?,
        s("dimension")?,
        s("message")?,
        s("explanation")?,
    );
    let year = df.column("year")?.i32()?.clone();
    let (obs, exp) = (
        df.column("observed")?.f64()?.clone(),
        df.column("expected")?.f64()?.clone(),
    );
    let epoch = DateTime::<Utc>::default();
    Ok((0..df.height())
        .map(|i| CheckRecord {
            key: key(
                program.get(i).unwrap_or(""),
                rule.get(i).unwrap_or(""),
                township.get(i).unwrap_or(""),
                period.get(i).unwrap_or(""),
                ind.get(i),
                dim.get(i),
            ),
            rule: rule.get(i).unwrap_or("").into(),
            severity: sev.get(i).unwrap_or("").into(),
            program: program.get(i).unwrap_or("").into(),
            township: township.get(i).unwrap_or("").into(),
            period: period.get(i).unwrap_or("").into(),
            year: year.get(i).unwrap_or(0),
            indicator: ind.get(i).map(str::to_string),
            dimension: dim.get(i).map(str::to_string),
            observed: obs.get(i),
            expected: exp.get(i),
            message: msg.get(i).unwrap_or("").into(),
            explanation: expl.get(i).map(str::to_string),
            first_seen: epoch,
            last_seen: epoch,
            resolved_at: None,
        })
        .collect())
}

/// Adds `status`, `first_seen`, `last_seen`, `resolved_at` to the current
/// results and appends the remembered ones that no longer fail. Returns the
/// table and the records to remember.
pub fn track(
    current: &DataFrame,
    known: &[CheckRecord],
    now: DateTime<Utc>,
) -> PolarsResult<(DataFrame, Vec<CheckRecord>)> {
    let by_key: HashMap<&str, &CheckRecord> = known.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for mut r in records(current)? {
        match by_key.get(r.key.as_str()) {
            Some(old) if old.resolved_at.is_none() => {
                r.first_seen = old.first_seen;
                r.last_seen = now.max(old.last_seen);
            }
            _ => {
                r.first_seen = now;
                r.last_seen = now;
            }
        }
        seen.insert(r.key.clone());
        out.push(r);
    }
    let n_current = out.len();
    for old in known {
        if seen.contains(&old.key) {
            continue;
        }
        let mut r = old.clone();
        if r.resolved_at.is_none() {
            r.resolved_at = Some(now);
        }
        out.push(r);
    }
    let micros = |t: &DateTime<Utc>| t.timestamp_micros();
    let status: Vec<&str> = out
        .iter()
        .enumerate()
        .map(|(i, r)| match i < n_current {
            false => "resolved",
            true if r.first_seen == r.last_seen => "new",
            true => "still_failing",
        })
        .collect();
    let resolved = out[n_current..].iter();
    let extra = DataFrame::new_infer_height(vec![
        Column::new(
            "rule".into(),
            resolved.clone().map(|r| r.rule.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "severity".into(),
            resolved.clone().map(|r| r.severity.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "program".into(),
            resolved.clone().map(|r| r.program.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "township".into(),
            resolved.clone().map(|r| r.township.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "period".into(),
            resolved.clone().map(|r| r.period.clone()).collect::<Vec<_>>(),
        ),
        Column::new("year".into(), resolved.clone().map(|r| r.year).collect::<Vec<i32>>()),
        Column::new(
            "indicator".into(),
            resolved.clone().map(|r| r.indicator.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "dimension".into(),
            resolved.clone().map(|r| r.dimension.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "observed".into(),
            resolved.clone().map(|r| r.observed).collect::<Vec<_>>(),
        ),
        Column::new(
            "expected".into(),
            resolved.clone().map(|r| r.expected).collect::<Vec<_>>(),
        ),
        Column::new(
            "message".into(),
            resolved.clone().map(|r| r.message.clone()).collect::<Vec<_>>(),
        ),
        Column::new(
            "explanation".into(),
            resolved.clone().map(|r| r.explanation.clone()).collect::<Vec<_>>(),
        ),
        Column::new("excluded".into(), resolved.map(|_| false).collect::<Vec<bool>>()),
    ])?;
    let columns = super::result_columns();
    let mut table = current.select(columns.iter().map(String::as_str))?;
    table.vstack_mut(&extra.select(columns.iter().map(String::as_str))?)?;
    let mut table = table.hstack(&[
        Column::new(
            "status".into(),
            status.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ),
        Column::new(
            "first_seen".into(),
            out.iter().map(|r| micros(&r.first_seen)).collect::<Vec<i64>>(),
        ),
        Column::new(
            "last_seen".into(),
            out.iter().map(|r| micros(&r.last_seen)).collect::<Vec<i64>>(),
        ),
        Column::new(
            "resolved_at".into(),
            out.iter()
                .map(|r| r.resolved_at.as_ref().map(micros))
                .collect::<Vec<_>>(),
        ),
    ])?;
    table.align_chunks_par();
    Ok((table, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Failure, Rows};
    use crate::fixtures::at;
    use taizhang_model::Severity;

    fn one(rule: &str) -> DataFrame {
        let mut rows = Rows::default();
        rows.push(Failure {
            rule,
            severity: Severity::Error,
            program: "p",
            township: "341124102",
            period: "2026-05",
            year: 2026,
            indicator: Some("certificates_issued"),
            dimension: Some("类别"),
            observed: Some(11.0),
            expected: Some(9.0),
            message: "m".into(),
        });
        rows.finish()
            .unwrap()
            .lazy()
            .with_columns([
                lit(NULL).cast(DataType::String).alias("explanation"),
                lit(true).alias("excluded"),
            ])
            .collect()
            .unwrap()
    }

    #[test]
    fn new_then_still_failing_then_resolved() {
        let (t1, t2, t3) = (
            at("2026-07-10T00:00:00Z"),
            at("2026-07-11T00:00:00Z"),
            at("2026-07-12T00:00:00Z"),
        );
        let status = |df: &DataFrame| df.column("status").unwrap().str().unwrap().get(0).unwrap().to_string();
        let (table, recs) = track(&one("breakdown"), &[], t1).unwrap();
        assert_eq!(status(&table), "new");
        let (again, _) = track(&one("breakdown"), &recs, t1).unwrap();
        assert_eq!(again, table, "same inputs, same table");
        let (table2, recs2) = track(&one("breakdown"), &recs, t2).unwrap();
        assert_eq!(status(&table2), "still_failing");
        assert_eq!(
            table2.column("first_seen").unwrap().i64().unwrap().get(0),
            Some(t1.timestamp_micros())
        );
        let empty = one("breakdown").clear();
        let (table3, recs3) = track(&empty, &recs2, t3).unwrap();
        assert_eq!(status(&table3), "resolved");
        assert_eq!(recs3[0].resolved_at, Some(t3));
        assert_eq!(table3.column("excluded").unwrap().bool().unwrap().get(0), Some(false));
    }
}
