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

/// One result the state remembers, without its text: which result it is
/// and what it said (as hashes), when it was seen, and where the state
/// keeps it whole. A national year remembers ~1.7 million results; held as
/// text they were the largest thing a run held (their key and message
/// ~480 MB as columns), held like this ~90 MB: 56 bytes each (packed to
/// 8 bytes: 80 with the key's own alignment of 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(8))]
pub struct Remembered {
    /// Where the state keeps the whole result (its row id), to read it
    /// back when the result is published as resolved.
    pub row: i64,
    /// [`key_hash`] of its [`key`].
    pub key: u128,
    /// [`said`] of what it said.
    pub said: u64,
    /// When it first failed, in microseconds since the epoch (UTC).
    pub first_seen: i64,
    /// When it last failed.
    pub last_seen: i64,
    /// Whether it has stopped failing (when is read back with the
    /// result, if it is published again).
    pub resolved: bool,
}

const _: () = assert!(std::mem::size_of::<Remembered>() == 56);

/// The hash a result's [`key`] is looked up by: 64 bits of xxh3 of the
/// whole key, under 64 that place it by its period (16 bits of its hash)
/// and township (its code as a number, or 48 bits of its hash): two keys
/// meet only when both halves do (for a national year's keys, odds of
/// about 1 in 10^16 that any two ever do). Sorted by it, the remembered
/// results of one batch (a period's townships) lie together in township
/// order, the order a batch's results are looked up in: a lookup finds
/// what the one before it left in the cache (most of a national year's
/// tracking was cache misses).
pub fn key_hash(key: &str) -> u128 {
    key_hash_of_bytes(key.as_bytes())
}

/// [`key_hash`] of a key's bytes, as the state store hands them over (not
/// checked for UTF-8 first: a national year's 1.7 million remembered keys
/// and texts were a tenth of reading them).
pub fn key_hash_of_bytes(key: &[u8]) -> u128 {
    use xxhash_rust::xxh3::xxh3_64;
    const LOW48: u64 = (1 << 48) - 1;
    let mut parts = key.splitn(5, |b| *b == b'/').skip(2);
    let (township, period) = (parts.next().unwrap_or(b""), parts.next().unwrap_or(b""));
    let number = std::str::from_utf8(township).ok().and_then(|t| t.parse::<u64>().ok());
    let place = match number {
        Some(n) if n <= LOW48 => n,
        _ => xxh3_64(township) & LOW48,
    };
    let high = (xxh3_64(period) << 48) | place;
    (u128::from(high) << 64) | u128::from(xxh3_64(key))
}

/// What tracking compares of a result (a result failing again with
/// anything of it changed is written back): each field framed, so that no
/// two different results hash the same bytes; -0.0 is 0.0 and every NaN
/// one NaN, as polars compares them. 64 bits: it only tells whether a
/// result changed (one in 2^64 changes would be taken for none and its
/// text not written back until it changes again); the key is 128.
pub fn said(
    buf: &mut Vec<u8>,
    severity: Option<&str>,
    year: Option<i32>,
    observed: Option<f64>,
    expected: Option<f64>,
    message: Option<&str>,
    explanation: Option<&str>,
) -> u64 {
    said_of_bytes(
        buf,
        severity.map(str::as_bytes),
        year,
        observed,
        expected,
        message.map(str::as_bytes),
        explanation.map(str::as_bytes),
    )
}

/// [`said`] of the texts' bytes (see [`key_hash_of_bytes`]).
pub fn said_of_bytes(
    buf: &mut Vec<u8>,
    severity: Option<&[u8]>,
    year: Option<i32>,
    observed: Option<f64>,
    expected: Option<f64>,
    message: Option<&[u8]>,
    explanation: Option<&[u8]>,
) -> u64 {
    buf.clear();
    let text = |buf: &mut Vec<u8>, v: Option<&[u8]>| match v {
        Some(v) => {
            buf.push(1);
            buf.extend_from_slice(&(v.len() as u64).to_le_bytes());
            buf.extend_from_slice(v);
        }
        None => buf.push(0),
    };
    let number = |buf: &mut Vec<u8>, v: Option<f64>| match v {
        Some(v) => {
            let v = if v.is_nan() {
                f64::NAN
            } else if v == 0.0 {
                0.0
            } else {
                v
            };
            buf.push(1);
            buf.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        None => buf.push(0),
    };
    text(buf, severity);
    match year {
        Some(y) => {
            buf.push(1);
            buf.extend_from_slice(&y.to_le_bytes());
        }
        None => buf.push(0),
    }
    number(buf, observed);
    number(buf, expected);
    text(buf, message);
    text(buf, explanation);
    xxhash_rust::xxh3::xxh3_64(buf)
}

/// The remembered results of a frame in [`known_schema`]'s columns, each
/// `row` its position in the frame (for tests and for frames not read from
/// the state).
pub fn remembered(known: &DataFrame) -> PolarsResult<Vec<Remembered>> {
    let s = |c: &str| known.column(c).and_then(|c| c.str().cloned());
    let t = |c: &str| known.column(c).and_then(|c| c.i64().cloned());
    let f = |c: &str| known.column(c).and_then(|c| c.f64().cloned());
    let (key, sev, msg, expl) = (s("key")?, s("severity")?, s("message")?, s("explanation")?);
    let year = known.column("year")?.i32()?.clone();
    let (obs, exp) = (f("observed")?, f("expected")?);
    let (first, last, resolved) = (t("first_seen")?, t("last_seen")?, t("resolved_at")?);
    let mut buf = Vec::new();
    Ok((0..known.height())
        .map(|i| Remembered {
            row: i as i64,
            key: key_hash(key.get(i).unwrap_or("")),
            said: said(
                &mut buf,
                sev.get(i),
                year.get(i),
                obs.get(i),
                exp.get(i),
                msg.get(i),
                expl.get(i),
            ),
            first_seen: first.get(i).unwrap_or(0),
            last_seen: last.get(i).unwrap_or(0),
            resolved: resolved.get(i).is_some(),
        })
        .collect())
}

/// Tracks a run's results, a batch at a time, against every result the
/// state remembers of a program: a result is `new` the run it starts
/// failing (again), `still_failing` while it fails, keeping when it was
/// first seen; a remembered result no batch fails is resolved ([`gone`],
/// [`resolved`]). Pure: a map of the remembered keys; each batch's results
/// looked up in one pass, their columns shared with the tracked rows, not
/// copied.
///
/// [`gone`]: Tracker::gone
pub struct Tracker {
    /// Sorted by key, and searched: a map of a year's keys was another
    /// ~70 MB held through the batches.
    known: Vec<Remembered>,
    seen: Vec<bool>,
    now: i64,
}

impl Tracker {
    /// Tracks against `known`, the remembered results, at `now`.
    pub fn new(mut known: Vec<Remembered>, now: DateTime<Utc>) -> Tracker {
        known.sort_unstable_by_key(|k| k.key);
        Tracker {
            seen: vec![false; known.len()],
            known,
            now: now.timestamp_micros(),
        }
    }

    /// The state's rows of the remembered results no batch failed (so
    /// far), in row order (the order they were first remembered): read
    /// them whole and give them to [`resolved`].
    pub fn gone(&self) -> Vec<i64> {
        let mut rows: Vec<i64> = self
            .known
            .iter()
            .zip(&self.seen)
            .filter(|(_, seen)| !**seen)
            .map(|(k, _)| k.row)
            .collect();
        rows.sort_unstable();
        rows
    }

    /// Tracks one batch's current results (`checks::result_columns`):
    /// returns them with `status`, `first_seen`, `last_seen` and
    /// `resolved_at` (null), the frame's own columns shared and these four
    /// added; and the ones to remember that are not only seen failing
    /// again (new, changed, failing again after being resolved), in
    /// [`known_schema`]'s columns. A result still failing as it was is not
    /// among them: the state moves its `last_seen` with one statement.
    pub fn failing(&mut self, current: &DataFrame) -> PolarsResult<(DataFrame, DataFrame)> {
        let Tracker { known, seen, now } = self;
        let now = *now;
        let columns: Vec<String> = super::result_columns();
        let current = if current.width() == 0 {
            empty_results()
        } else {
            current.select(columns.iter().map(String::as_str))?
        };
        let s = |c: &str| current.column(c).and_then(|c| c.str().cloned());
        let f = |c: &str| current.column(c).and_then(|c| c.f64().cloned());
        let (program, rule, township, period) = (s("program")?, s("rule")?, s("township")?, s("period")?);
        let (indicator, dimension) = (s("indicator")?, s("dimension")?);
        let (sev, msg, expl) = (s("severity")?, s("message")?, s("explanation")?);
        let year = current.column("year")?.i32()?.clone();
        let (obs, exp) = (f("observed")?, f("expected")?);
        let n = current.height();
        let (mut first_seen, mut last_seen) = (Vec::with_capacity(n), Vec::with_capacity(n));
        let mut changed = Vec::with_capacity(n);
        let (mut text, mut buf) = (String::new(), Vec::new());
        // Zipped iterators, not `get(i)`: a run's results come in a chunk per
        // batch (341 for a year), and `get` looks for its chunk every time.
        let keys = program
            .iter()
            .zip(rule.iter())
            .zip(township.iter())
            .zip(period.iter())
            .zip(indicator.iter())
            .zip(dimension.iter());
        let saids = sev
            .iter()
            .zip(year.iter())
            .zip(obs.iter())
            .zip(exp.iter())
            .zip(msg.iter())
            .zip(expl.iter());
        for ((((((program, rule), township), period), indicator), dimension), what) in keys.zip(saids) {
            // `key` (a `String` of its own per row would be ~100 MB for a
            // year), its parts pushed one by one (`write!`'s formatting was
            // a fifth of a rerun's tracking).
            text.clear();
            for (i, part) in [program, rule, township, period, indicator, dimension]
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    text.push('/');
                }
                text.push_str(part.unwrap_or(""));
            }
            let h = key_hash(&text);
            let was = known.binary_search_by_key(&h, |k| k.key).ok().map(|k| {
                seen[k] = true;
                &known[k]
            });
            match was.filter(|w| !w.resolved) {
                Some(w) => {
                    first_seen.push(w.first_seen);
                    last_seen.push(w.last_seen.max(now));
                    let (((((sev, year), obs), exp), msg), expl) = what;
                    changed.push(w.said != said(&mut buf, sev, year, obs, exp, msg, expl));
                }
                None => {
                    first_seen.push(now);
                    last_seen.push(now);
                    changed.push(true);
                }
            }
        }
        let status: StringChunked = first_seen
            .iter()
            .zip(&last_seen)
            .map(|(f, l)| Some(if f == l { "new" } else { "still_failing" }))
            .collect();
        let first_seen = Column::new("first_seen".into(), first_seen);
        let last_seen = Column::new("last_seen".into(), last_seen);
        let mut table = current.clone();
        table.hstack_mut(&[
            status.with_name("status".into()).into_column(),
            first_seen.clone(),
            last_seen.clone(),
            Column::full_null("resolved_at".into(), n, &DataType::Int64),
        ])?;
        let mask = BooleanChunked::from_slice("changed".into(), &changed);
        let mut picked = current.filter(&mask)?;
        picked.hstack_mut(&[
            first_seen.filter(&mask)?,
            last_seen.filter(&mask)?,
            Column::full_null("resolved_at".into(), picked.height(), &DataType::Int64),
        ])?;
        let changed = picked
            .lazy()
            .with_column(key_expr().alias("key"))
            .select(known_columns())
            .collect()?;
        Ok((table, changed))
    }
}

/// The remembered results that no longer fail (`gone`, read whole, in
/// [`known_schema`]'s columns) as rows of the tracked table (`resolved`,
/// when first resolved: now if not before), and those resolved now as
/// rows to write back. Pure.
pub fn resolved(gone: &DataFrame, now: DateTime<Utc>) -> PolarsResult<(DataFrame, DataFrame)> {
    let now = lit(now.timestamp_micros());
    let rows = gone
        .clone()
        .lazy()
        .with_columns([
            col("resolved_at").is_null().alias("changed"),
            col("resolved_at").fill_null(now).alias("resolved_at"),
            lit("resolved").alias("status"),
            lit(false).alias("excluded"),
        ])
        .collect()?;
    let mut columns: Vec<Expr> = super::result_columns().iter().map(|c| col(c.as_str())).collect();
    columns.extend(["status", "first_seen", "last_seen", "resolved_at"].map(col));
    let table = rows.clone().lazy().select(columns).collect()?;
    let changed = rows.lazy().filter(col("changed")).select(known_columns()).collect()?;
    Ok((table, changed))
}

/// [`known_schema`]'s columns, as expressions.
fn known_columns() -> Vec<Expr> {
    known_schema().iter_names().map(|c| col(c.clone())).collect()
}

/// A tracked table of no results: the result columns and `status`,
/// `first_seen`, `last_seen`, `resolved_at`.
pub fn empty_tracked() -> DataFrame {
    let mut t = empty_results();
    t.hstack_mut(&[
        Column::new_empty("status".into(), &DataType::String),
        Column::new_empty("first_seen".into(), &DataType::Int64),
        Column::new_empty("last_seen".into(), &DataType::Int64),
        Column::new_empty("resolved_at".into(), &DataType::Int64),
    ])
    .expect("distinct columns");
    t
}

/// A frame of no results, with the result columns.
fn empty_results() -> DataFrame {
    let known = known_schema();
    let columns = super::result_columns().into_iter().map(|c| {
        let ty = match c.as_str() {
            "excluded" => DataType::Boolean,
            c => known.get(c).cloned().unwrap_or(DataType::String),
        };
        Column::new_empty(c.into(), &ty)
    });
    DataFrame::new_infer_height(columns.collect()).expect("distinct columns")
}

/// What [`track`] found.
pub struct Tracked {
    /// The results with `status`, `first_seen`, `last_seen` and
    /// `resolved_at`: the ones failing now, then the remembered ones that
    /// no longer fail.
    pub table: DataFrame,
    /// The results to remember that are not only seen failing again
    /// (new, changed, failing again after being resolved, resolved now),
    /// in [`known_schema`]'s columns.
    pub changed: DataFrame,
}

/// [`Tracker`] and [`resolved`] in one, with the remembered results whole
/// (`known`, in [`known_schema`]'s columns): what a run does with the state
/// around them.
pub fn track(current: &DataFrame, known: &DataFrame, now: DateTime<Utc>) -> PolarsResult<Tracked> {
    let mut tracker = Tracker::new(remembered(known)?, now);
    let (mut table, mut changed) = tracker.failing(current)?;
    let idx = IdxCa::from_vec("".into(), tracker.gone().iter().map(|&i| i as IdxSize).collect());
    let (rows, resolved_now) = resolved(&known.take(&idx)?, now)?;
    table.vstack_mut(&rows)?;
    changed.vstack_mut(&resolved_now)?;
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

    #[test]
    fn a_periods_results_hash_together_in_township_order_and_keys_that_differ_hash_apart() {
        let k = |t: &str, p: &str, rule: &str, ind: Option<&str>| key_hash(&key("cdpf-monthly", rule, t, p, ind, None));
        // One period's keys, townships in code order (as a batch looks
        // them up): their hashes in the same order, whatever the rule.
        let may = [
            k("341124101", "2026-05", "overdue", None),
            k("341124102", "2026-05", "sum_of_parts", Some("a")),
            k("341124102", "2026-05", "sum_of_parts", Some("b")),
            k("341124103", "2026-05", "late", None),
            k("341125100", "2026-05", "late", None),
        ];
        let town = |h: u128| (h >> 64) as u64 & ((1 << 48) - 1);
        assert!(may.windows(2).all(|w| town(w[0]) <= town(w[1])), "{may:x?}");
        assert!(may.iter().all(|h| h >> 112 == may[0] >> 112), "one period, one place");
        // Another period is elsewhere; a county's (non-township) key and a
        // code too large for 48 bits still hash.
        assert_ne!(k("341124101", "2026-06", "overdue", None) >> 112, may[0] >> 112);
        let odd = [
            k("341124", "2026", "quota_missing", None),
            k("x/y", "2026-05", "overdue", None),
            k("99999999999999999999", "2026-05", "overdue", None),
            k("", "", "", None),
        ];
        // Every key that differs in any part hashes apart.
        let mut all: Vec<u128> = may.iter().chain(&odd).copied().collect();
        all.push(k("341124101", "2026-05", "late", None));
        all.push(k("341124101", "2026-05", "overdue", Some("a")));
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        // The same key, the same hash.
        assert_eq!(k("341124101", "2026-05", "overdue", None), may[0]);
    }

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
    fn remembered_frame(t: &Tracked) -> DataFrame {
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

        let again = track(&other(11.0), &remembered_frame(&first), t(10)).unwrap();
        assert_eq!(again.table, first.table, "same inputs, same table");
        assert_eq!(again.changed.height(), 0, "seen again: nothing to write back");

        let later = track(&other(11.0), &remembered_frame(&first), t(11)).unwrap();
        assert_eq!(get_str(&later.table, "status"), [Some("still_failing".into())]);
        assert_eq!(get_us(&later.table, "first_seen"), [us(10)]);
        assert_eq!(get_us(&later.table, "last_seen"), [us(11)]);
        assert_eq!(later.changed.height(), 0, "only last_seen moved");

        let changed = track(&other(12.0), &remembered_frame(&later), t(12)).unwrap();
        assert_eq!(get_str(&changed.table, "status"), [Some("still_failing".into())]);
        let rec = records(&changed.changed).unwrap();
        assert_eq!(rec.len(), 1, "a changed value is written back");
        assert_eq!(
            (rec[0].observed, rec[0].first_seen, rec[0].last_seen),
            (Some(12.0), t(10), t(12))
        );

        let empty = other(12.0).clear();
        let gone = track(&empty, &remembered_frame(&changed), t(13)).unwrap();
        assert_eq!(get_str(&gone.table, "status"), [Some("resolved".into())]);
        assert_eq!(get_us(&gone.table, "resolved_at"), [us(13)]);
        assert_eq!(
            gone.table.column("excluded").unwrap().bool().unwrap().get(0),
            Some(false)
        );
        assert_eq!(records(&gone.changed).unwrap()[0].resolved_at, Some(t(13)));

        let still_gone = track(&empty, &remembered_frame(&gone), t(14)).unwrap();
        assert_eq!(get_us(&still_gone.table, "resolved_at"), [us(13)], "resolved once");
        assert_eq!(still_gone.changed.height(), 0);

        let back = track(&other(12.0), &remembered_frame(&still_gone), t(15)).unwrap();
        assert_eq!(get_str(&back.table, "status"), [Some("new".into())]);
        assert_eq!(get_us(&back.table, "first_seen"), [us(15)]);
        assert_eq!(get_us(&back.table, "resolved_at"), [None]);
        assert_eq!(back.changed.height(), 1, "failing again after resolved is written back");
    }

    #[test]
    fn what_a_result_said_is_told_apart_by_every_field_and_not_by_how_zero_or_nan_is_written() {
        let mut buf = Vec::new();
        let mut said = |sev, year, obs, exp, msg, expl| said(&mut buf, sev, year, obs, exp, msg, expl);
        let base = said(Some("error"), Some(2026), Some(3.0), Some(2.0), Some("m"), None);
        assert_eq!(
            base,
            said(Some("error"), Some(2026), Some(3.0), Some(2.0), Some("m"), None)
        );
        for other in [
            said(Some("warning"), Some(2026), Some(3.0), Some(2.0), Some("m"), None),
            said(Some("error"), Some(2025), Some(3.0), Some(2.0), Some("m"), None),
            said(Some("error"), None, Some(3.0), Some(2.0), Some("m"), None),
            said(Some("error"), Some(2026), Some(4.0), Some(2.0), Some("m"), None),
            said(Some("error"), Some(2026), None, Some(2.0), Some("m"), None),
            said(Some("error"), Some(2026), Some(3.0), Some(2.5), Some("m"), None),
            said(Some("error"), Some(2026), Some(3.0), Some(2.0), Some("n"), None),
            said(Some("error"), Some(2026), Some(3.0), Some(2.0), Some("m"), Some("")),
            // The same bytes split otherwise between two fields.
            said(Some("error"), Some(2026), Some(3.0), Some(2.0), Some(""), Some("m")),
        ] {
            assert_ne!(base, other);
        }
        assert_eq!(
            said(None, None, Some(0.0), Some(f64::NAN), None, None),
            said(None, None, Some(-0.0), Some(-f64::NAN), None, None),
            "polars compares 0.0 equal to -0.0 and NaN to NaN"
        );
    }

    /// What the state remembers after a run at `at` in which breakdown's
    /// and cumulative's results failed, in that order.
    fn breakdown_and_cumulative_seen(at: DateTime<Utc>) -> Vec<Remembered> {
        let nothing = DataFrame::empty_with_schema(&known_schema());
        let mut both = one("breakdown");
        both.vstack_mut(&one("cumulative")).unwrap();
        let first = track(&both, &nothing, at).unwrap();
        remembered(&remembered_frame(&first)).unwrap()
    }

    #[test]
    fn failing_shares_the_current_columns_and_names_the_remembered_that_are_gone() {
        let t = |d: u32| at(&format!("2026-07-{d:02}T00:00:00Z"));
        let known = breakdown_and_cumulative_seen(t(10));
        let now = one("cumulative");
        let mut tracker = Tracker::new(known, t(11));
        let (table, changed) = tracker.failing(&now).unwrap();
        assert_eq!(
            tracker.gone(),
            [0],
            "breakdown's, the first remembered, no longer fails"
        );
        assert_eq!(changed.height(), 0);
        let views = |df: &DataFrame| {
            let s = df.column("message").unwrap().str().unwrap().clone();
            s.downcast_iter().next().unwrap().views().as_ptr()
        };
        assert_eq!(
            views(&table),
            views(&now),
            "the table's message column is the current frame's, not a copy"
        );
    }

    #[test]
    fn a_result_failing_in_any_batch_is_not_gone() {
        let t = |d: u32| at(&format!("2026-07-{d:02}T00:00:00Z"));
        let known = breakdown_and_cumulative_seen(t(10));
        // The next run sees cumulative's in one batch, breakdown's in the next.
        let mut tracker = Tracker::new(known, t(11));
        assert_eq!(tracker.gone(), [0, 1], "in the order remembered");
        let at = |row, key| Remembered {
            row,
            key,
            said: 0,
            first_seen: 0,
            last_seen: 0,
            resolved: false,
        };
        let rows = Tracker::new(vec![at(10, 3), at(30, 1), at(20, 2)], t(11)).gone();
        assert_eq!(rows, [10, 20, 30], "in row order, whatever the keys' order");
        let (a, _) = tracker.failing(&one("cumulative")).unwrap();
        assert_eq!(tracker.gone(), [0], "breakdown's not failed yet");
        let (b, changed) = tracker.failing(&one("breakdown")).unwrap();
        assert_eq!(tracker.gone(), Vec::<i64>::new());
        assert_eq!(changed.height(), 0, "both failing as before");
        for table in [&a, &b] {
            assert_eq!(get_str(table, "status"), [Some("still_failing".into())]);
            assert_eq!(get_us(table, "first_seen"), [Some(t(10).timestamp_micros())]);
        }
        // An empty batch changes nothing, and has the tracked columns.
        let (empty, _) = tracker.failing(&DataFrame::empty()).unwrap();
        assert_eq!(empty.schema(), empty_tracked().schema());
        assert_eq!(empty.get_column_names(), a.get_column_names());
        assert_eq!(tracker.gone(), Vec::<i64>::new());
    }

    #[test]
    fn results_of_several_rules_are_tracked_each_by_its_key() {
        let nothing = DataFrame::empty_with_schema(&known_schema());
        let t = |d: u32| at(&format!("2026-07-{d:02}T00:00:00Z"));
        let mut both = one("breakdown");
        both.vstack_mut(&one("cumulative")).unwrap();
        let first = track(&both, &nothing, t(10)).unwrap();
        let next = track(&one("cumulative"), &remembered_frame(&first), t(11)).unwrap();
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
