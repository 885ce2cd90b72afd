//! Check results over time: each (rule, township, period, indicator,
//! dimension) is `new` the run it first fails, `still_failing` on later runs,
//! and `resolved` once it stops failing — so alerts fire once, and county
//! staff see how long a problem has been open. Pure: frames and `now` in.
//!
//! Columnar: a national year remembers about two million results, and
//! every run compares them all with its own; a record object per result
//! (and a hash map of their keys) made tracking a year's results the run's
//! peak of memory.

use chrono::{DateTime, Utc};
use polars::prelude::*;
use taizhang_model::CheckRecord;

/// The key of a result row, as the state keeps it:
/// `program/rule/township/period/indicator/dimension`, a missing indicator
/// or dimension empty.
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

/// [`key`] of every row of a frame of results.
pub fn key_expr() -> Expr {
    let parts = ["program", "rule", "township", "period", "indicator", "dimension"].map(|c| col(c).fill_null(lit("")));
    concat_str(parts, "/", false)
}

/// The columns of remembered results (the state's `check_state`): the
/// key, the result's own columns but `excluded`, and when it was first
/// and last seen failing and when it was resolved, in microseconds since
/// the epoch (UTC).
pub fn known_schema() -> Schema {
    let s = DataType::String;
    let t = DataType::Int64;
    Schema::from_iter([
        Field::new("key".into(), s.clone()),
        Field::new("rule".into(), s.clone()),
        Field::new("severity".into(), s.clone()),
        Field::new("program".into(), s.clone()),
        Field::new("township".into(), s.clone()),
        Field::new("period".into(), s.clone()),
        Field::new("year".into(), DataType::Int32),
        Field::new("indicator".into(), s.clone()),
        Field::new("dimension".into(), s.clone()),
        Field::new("observed".into(), DataType::Float64),
        Field::new("expected".into(), DataType::Float64),
        Field::new("message".into(), s.clone()),
        Field::new("explanation".into(), s),
        Field::new("first_seen".into(), t.clone()),
        Field::new("last_seen".into(), t.clone()),
        Field::new("resolved_at".into(), t),
    ])
}

/// What [`track`] found.
pub struct Tracked {
    /// The results with `status`, `first_seen`, `last_seen` and
    /// `resolved_at`: the ones failing now, then the remembered ones that
    /// no longer fail.
    pub table: DataFrame,
    /// The results to remember that are not only seen failing again
    /// (new, changed, failing again after being resolved, resolved now),
    /// in [`known_schema`]'s columns. A result still failing as it was is
    /// not in it: the state moves its `last_seen` with one statement.
    pub changed: DataFrame,
}

/// Adds `status`, `first_seen`, `last_seen`, `resolved_at` to the current
/// results (`checks::result_columns`) and appends the remembered ones
/// (`known`, in [`known_schema`]'s columns) that no longer fail.
pub fn track(current: &DataFrame, known: &DataFrame, now: DateTime<Utc>) -> PolarsResult<Tracked> {
    let now = lit(now.timestamp_micros());
    let mut columns: Vec<Expr> = super::result_columns().iter().map(|c| col(c.as_str())).collect();
    let was = |c: &str| format!("was_{c}");
    let compared = ["severity", "year", "observed", "expected", "message", "explanation"];
    let mut before = vec![col("key")];
    for c in compared.iter().chain(&["first_seen", "last_seen", "resolved_at"]) {
        before.push(col(*c).alias(was(c)));
    }
    let open = col("was_first_seen")
        .is_not_null()
        .and(col("was_resolved_at").is_null());
    let same = compared
        .iter()
        .map(|c| col(*c).eq_missing(col(was(c))))
        .reduce(Expr::and)
        .expect("compared columns");
    let by_key = JoinArgs {
        maintain_order: MaintainOrderJoin::Left,
        ..JoinArgs::new(JoinType::Left)
    };
    let failing = current
        .clone()
        .lazy()
        .select(columns.clone())
        .with_column(key_expr().alias("key"))
        .join(known.clone().lazy().select(before), [col("key")], [col("key")], by_key)
        .with_columns([
            when(open.clone())
                .then(col("was_first_seen"))
                .otherwise(now.clone())
                .alias("first_seen"),
            when(open.clone().and(col("was_last_seen").gt(now.clone())))
                .then(col("was_last_seen"))
                .otherwise(now.clone())
                .alias("last_seen"),
            lit(NULL).cast(DataType::Int64).alias("resolved_at"),
            open.and(same).not().alias("changed"),
        ])
        .with_column(
            when(col("first_seen").eq(col("last_seen")))
                .then(lit("new"))
                .otherwise(lit("still_failing"))
                .alias("status"),
        );
    let resolved = known
        .clone()
        .lazy()
        .join(
            current.clone().lazy().select([key_expr().alias("key")]),
            [col("key")],
            [col("key")],
            JoinArgs::new(JoinType::Anti),
        )
        .with_columns([
            col("resolved_at").fill_null(now).alias("resolved_at"),
            col("resolved_at").is_null().alias("changed"),
            lit("resolved").alias("status"),
            lit(false).alias("excluded"),
        ]);
    let mut out = columns.clone();
    out.extend(["key", "status", "first_seen", "last_seen", "resolved_at", "changed"].map(col));
    let both = concat(
        [failing.select(out.clone()), resolved.select(out)],
        UnionArgs {
            parallel: false,
            ..Default::default()
        },
    )?
    .collect()?;
    columns.extend(["status", "first_seen", "last_seen", "resolved_at"].map(col));
    let mut table = both.clone().lazy().select(columns).collect()?;
    table.align_chunks_par();
    let known: Vec<Expr> = known_schema().iter_names().map(|c| col(c.clone())).collect();
    let changed = both.lazy().filter(col("changed")).select(known).collect()?;
    Ok(Tracked { table, changed })
}

/// The rows of a frame in [`known_schema`]'s columns, as records.
pub fn records(df: &DataFrame) -> PolarsResult<Vec<CheckRecord>> {
    let s = |c: &str| df.column(c).and_then(|c| c.str().cloned());
    let t = |c: &str| df.column(c).and_then(|c| c.i64().cloned());
    let f = |c: &str| df.column(c).and_then(|c| c.f64().cloned());
    let (key, rule, sev, program, township, period, ind, dim, msg, expl) = (
        s("key")?,
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
    let (obs, exp) = (f("observed")?, f("expected")?);
    let (first, last, resolved) = (t("first_seen")?, t("last_seen")?, t("resolved_at")?);
    let at = |us: Option<i64>| us.and_then(DateTime::<Utc>::from_timestamp_micros);
    Ok((0..df.height())
        .map(|i| CheckRecord {
            key: key.get(i).unwrap_or("").into(),
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
            first_seen: at(first.get(i)).unwrap_or_default(),
            last_seen: at(last.get(i)).unwrap_or_default(),
            resolved_at: at(resolved.get(i)),
        })
        .collect())
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

    /// `one` with another observed value and no dimension.
    fn other(observed: f64) -> DataFrame {
        one("breakdown")
            .lazy()
            .with_columns([
                lit(observed).alias("observed"),
                lit(NULL).cast(DataType::String).alias("dimension"),
            ])
            .collect()
            .unwrap()
    }

    /// What the state remembers after a run: every row of its table.
    fn remembered(t: &Tracked) -> DataFrame {
        let columns: Vec<Expr> = known_schema().iter_names().map(|c| col(c.clone())).collect();
        t.table
            .clone()
            .lazy()
            .with_column(key_expr().alias("key"))
            .select(columns)
            .collect()
            .unwrap()
    }

    fn get_str(df: &DataFrame, c: &str) -> Vec<Option<String>> {
        let s = df.column(c).unwrap().str().unwrap().clone();
        s.iter().map(|v| v.map(str::to_string)).collect()
    }

    fn get_us(df: &DataFrame, c: &str) -> Vec<Option<i64>> {
        df.column(c).unwrap().i64().unwrap().iter().collect()
    }

    #[test]
    fn new_then_still_failing_then_changed_then_resolved_then_failing_again() {
        let t = |d: u32| at(&format!("2026-07-{d:02}T00:00:00Z"));
        let us = |d: u32| Some(t(d).timestamp_micros());
        let nothing = DataFrame::empty_with_schema(&known_schema());

        let first = track(&other(11.0), &nothing, t(10)).unwrap();
        assert_eq!(get_str(&first.table, "status"), [Some("new".into())]);
        assert_eq!(first.changed.height(), 1, "a new result is remembered");
        let rec = records(&first.changed).unwrap();
        assert_eq!(
            rec[0].key,
            key(
                "p",
                "breakdown",
                "341124102",
                "2026-05",
                Some("certificates_issued"),
                None
            ),
            "the frame's key is the state's key"
        );
        assert_eq!(
            (rec[0].first_seen, rec[0].last_seen, rec[0].resolved_at),
            (t(10), t(10), None)
        );

        let again = track(&other(11.0), &remembered(&first), t(10)).unwrap();
        assert_eq!(again.table, first.table, "same inputs, same table");
        assert_eq!(again.changed.height(), 0, "seen again: nothing to write back");

        let later = track(&other(11.0), &remembered(&first), t(11)).unwrap();
        assert_eq!(get_str(&later.table, "status"), [Some("still_failing".into())]);
        assert_eq!(get_us(&later.table, "first_seen"), [us(10)]);
        assert_eq!(get_us(&later.table, "last_seen"), [us(11)]);
        assert_eq!(later.changed.height(), 0, "only last_seen moved");

        let changed = track(&other(12.0), &remembered(&later), t(12)).unwrap();
        assert_eq!(get_str(&changed.table, "status"), [Some("still_failing".into())]);
        let rec = records(&changed.changed).unwrap();
        assert_eq!(rec.len(), 1, "a changed value is written back");
        assert_eq!(
            (rec[0].observed, rec[0].first_seen, rec[0].last_seen),
            (Some(12.0), t(10), t(12))
        );

        let empty = other(12.0).clear();
        let gone = track(&empty, &remembered(&changed), t(13)).unwrap();
        assert_eq!(get_str(&gone.table, "status"), [Some("resolved".into())]);
        assert_eq!(get_us(&gone.table, "resolved_at"), [us(13)]);
        assert_eq!(
            gone.table.column("excluded").unwrap().bool().unwrap().get(0),
            Some(false)
        );
        assert_eq!(records(&gone.changed).unwrap()[0].resolved_at, Some(t(13)));

        let still_gone = track(&empty, &remembered(&gone), t(14)).unwrap();
        assert_eq!(get_us(&still_gone.table, "resolved_at"), [us(13)], "resolved once");
        assert_eq!(still_gone.changed.height(), 0);

        let back = track(&other(12.0), &remembered(&still_gone), t(15)).unwrap();
        assert_eq!(get_str(&back.table, "status"), [Some("new".into())]);
        assert_eq!(get_us(&back.table, "first_seen"), [us(15)]);
        assert_eq!(get_us(&back.table, "resolved_at"), [None]);
        assert_eq!(back.changed.height(), 1, "failing again after resolved is written back");
    }

    #[test]
    fn results_of_several_rules_are_tracked_each_by_its_key() {
        let nothing = DataFrame::empty_with_schema(&known_schema());
        let t = |d: u32| at(&format!("2026-07-{d:02}T00:00:00Z"));
        let mut both = one("breakdown");
        both.vstack_mut(&one("cumulative")).unwrap();
        let first = track(&both, &nothing, t(10)).unwrap();
        let next = track(&one("cumulative"), &remembered(&first), t(11)).unwrap();
        assert_eq!(
            get_str(&next.table, "rule"),
            [Some("cumulative".into()), Some("breakdown".into())]
        );
        assert_eq!(
            get_str(&next.table, "status"),
            [Some("still_failing".into()), Some("resolved".into())]
        );
        assert_eq!(get_str(&next.changed, "rule"), [Some("breakdown".into())]);
    }
}
