//! Remembered batches: what a run computed for one batch (a period of a
//! part of the registry: a province, or a run of a large one's cities) of
//! one program, and for one period's rollups, kept so that the next run, when nothing the
//! batch is computed from changed, carries the batch's files and results
//! over instead of reading, checking, rolling up and fingerprinting it again.
//!
//! A batch's inputs are summed up in a digest (see `run::batch_digest`): the
//! binary, the configuration, the batch's current and older landings with
//! their timeliness evidence, and the review decisions. The run's clock is
//! not in it: the checks that use the clock (`overdue`, `quota_progress`) are
//! computed every run from what the memo keeps for them (the batch's
//! submissions and year-to-date achievement), and a batch is carried only when
//! they hold out of the rollup exactly what they held out the run before.
//! Files are carried only when every file the memo names is in the warehouse
//! the run started from, exactly (path, rows, fingerprint); otherwise the
//! batch is computed. A memo that cannot be read is no memo. A carried
//! batch's county rows are read only when its period's rollup is computed
//! ([`RollRows`]). Under
//! `<state_dir>/memo/<program>/<batch>/`.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::alerts::Candidate;
use crate::checks;
use crate::checks::quota::QuotaFacts;
use crate::sinks::snapshot::FileEntry;

/// Bumped whenever what a batch computes changes in a way the binary's
/// identity would not show (it is in the digest too).
pub const MEMO_VERSION: u32 = 5;

/// The frames of a memo, by file name.
const FRAMES: [&str; 5] = ["checks", "county", "reporting", "achieved", "submissions"];

/// The file of a memo's look-back rows.
const LOOK_BACK: &str = "look_back";

/// The file of a memo's totals' history (`plausibility::series_after`).
const SERIES: &str = "series";

/// What one batch computed.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Digest of the inputs it was computed from.
    pub digest: String,
    /// What the look-back checks of the province's later periods need of
    /// its period and the ones before (`checks::look_back`); None when
    /// loaded (they are read on their own, with [`Memo::look_back`], only
    /// when the next batch is computed).
    pub look_back: Option<DataFrame>,
    /// Each township's history of each indicator's totals after its period
    /// (`checks::plausibility::series_after`), which the next period's
    /// plausibility check continues; None when loaded (read with the
    /// look-back rows, [`Memo::look_back`]).
    pub series: Option<DataFrame>,
    /// Its files in the snapshot it was published in.
    pub files: Vec<FileEntry>,
    /// Fact rows published.
    pub rows_published: usize,
    /// Quarantined rows.
    pub quarantined: usize,
    /// Current submissions.
    pub submissions_count: usize,
    /// Document values waiting for review.
    pub in_review: usize,
    /// The batch tables that had rows.
    pub had_rows: Vec<String>,
    /// Alert conditions of its quarantined submissions.
    pub quarantine_candidates: Vec<Candidate>,
    /// Alert conditions of its submissions' conservation.
    pub conservation_candidates: Vec<Candidate>,
    /// What the clock checks held out of the rollup ([`excluded_keys`]).
    pub clock_excluded: Vec<String>,
    /// The periods of its facts.
    pub periods: Vec<String>,
    /// Failures of the checks that do not use the clock (`checks::run_raw`).
    pub checks: DataFrame,
    /// Its county rows and reporting, for its period's rollup.
    pub roll: RollRows,
    /// What the quota check reads of the facts.
    pub quota_facts: QuotaFacts,
    /// (township, period, status, explanation) of its submissions.
    pub submissions: DataFrame,
}

/// A batch's county rollup rows and (township, period, status) of its
/// submissions, for its period's rollup: in its memo, read only when its
/// period's rollup cannot be carried too ([`Memo::roll_rows`]); in memory
/// only when the batch was computed and its memo could not be kept. A
/// national year's carried batches held ~100 MiB of them a month, mostly
/// never read; a run computing every batch held every batch's.
#[derive(Debug, Clone)]
pub enum RollRows {
    /// Computed by this run.
    Here {
        /// County rollup rows.
        county: DataFrame,
        /// (township, period, status) of its submissions.
        reporting: DataFrame,
    },
    /// In the memo of the batch (its code and digest).
    Kept {
        /// The batch's code.
        batch: String,
        /// The digest its memo was loaded with.
        digest: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Meta {
    format: u32,
    digest: String,
    files: Vec<FileEntry>,
    rows_published: usize,
    quarantined: usize,
    submissions: usize,
    in_review: usize,
    had_rows: Vec<String>,
    quarantine_candidates: Vec<Candidate>,
    conservation_candidates: Vec<Candidate>,
    clock_excluded: Vec<String>,
    periods: Vec<String>,
    years: Vec<i32>,
}

/// The memos of one program.
#[derive(Debug, Clone)]
pub struct Memo {
    dir: PathBuf,
}

impl Memo {
    /// The memos of `program` under `state_dir`.
    pub fn new(state_dir: &Path, program: &str) -> Memo {
        Memo {
            dir: memo_root(state_dir).join(program),
        }
    }

    fn batch_dir(&self, batch: &str) -> PathBuf {
        self.dir.join(batch)
    }

    /// The memo of `batch` when it was computed from inputs with `digest`;
    /// None when there is none, it is for other inputs, or it cannot be read.
    pub fn load(&self, batch: &str, digest: &str) -> Option<Batch> {
        let dir = self.batch_dir(batch);
        let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
        if meta.format != MEMO_VERSION || meta.digest != digest {
            return None;
        }
        let read = |name: &str| -> Option<DataFrame> {
            let f = std::fs::File::open(dir.join(format!("{name}.parquet"))).ok()?;
            ParquetReader::new(f).finish().ok()
        };
        // The rollup rows are read later, if at all: here only whether
        // their files are there and end as Parquet files do.
        let there = |name: &str| -> Option<()> {
            let f = std::fs::File::open(dir.join(format!("{name}.parquet"))).ok()?;
            ParquetReader::new(f).num_rows().ok().map(|_| ())
        };
        there(FRAMES[1])?;
        there(FRAMES[2])?;
        Some(Batch {
            digest: meta.digest,
            look_back: None,
            series: None,
            files: meta.files,
            rows_published: meta.rows_published,
            quarantined: meta.quarantined,
            submissions_count: meta.submissions,
            in_review: meta.in_review,
            had_rows: meta.had_rows,
            quarantine_candidates: meta.quarantine_candidates,
            conservation_candidates: meta.conservation_candidates,
            clock_excluded: meta.clock_excluded,
            periods: meta.periods,
            checks: read(FRAMES[0])?,
            roll: RollRows::Kept {
                batch: batch.to_string(),
                digest: digest.to_string(),
            },
            quota_facts: QuotaFacts {
                achieved: read(FRAMES[3])?,
                years: meta.years,
            },
            submissions: read(FRAMES[4])?,
        })
    }

    /// The county rows and reporting of the carried `batch`
    /// ([`RollRows::Kept`]); an error when its memo no longer reads as it
    /// did when loaded with `digest`.
    pub fn roll_rows(&self, batch: &str, digest: &str) -> Result<(DataFrame, DataFrame), String> {
        let dir = self.batch_dir(batch);
        let meta: Meta = std::fs::read(dir.join("meta.json"))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))?;
        if meta.format != MEMO_VERSION || meta.digest != digest {
            return Err("replaced since it was loaded".into());
        }
        let read = |name: &str| -> Result<DataFrame, String> {
            let path = dir.join(format!("{name}.parquet"));
            let f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            ParquetReader::new(f)
                .finish()
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        Ok((read(FRAMES[1])?, read(FRAMES[2])?))
    }

    /// Forgets the memo of `batch` (what cannot be removed is left).
    pub fn forget(&self, batch: &str) {
        let dir = self.batch_dir(batch);
        if let Err(e) = remove(&dir) {
            tracing::warn!(path = %dir.display(), error = %e, "Cannot remove a memo.");
        }
    }

    /// Forgets the memos of batches other than `batches` (a province's
    /// period nobody reports any more, a batch of an earlier version). What
    /// cannot be removed is left: it costs disk, not correctness.
    pub fn retain(&self, batches: &std::collections::BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !batches.contains(&name)
                && let Err(err) = remove(&e.path())
            {
                tracing::warn!(path = %e.path().display(), error = %err, "Cannot remove a memo no batch uses.");
            }
        }
    }

    /// The look-back rows and totals' history of `batch` computed from
    /// inputs with `digest` ([`Batch::look_back`], [`Batch::series`]), of
    /// those `wanted` (the program's checks look back; keep the series):
    /// an empty frame for one not wanted. None when the memo is for other
    /// inputs or a wanted one cannot be read (a batch that had one kept it,
    /// so a missing file is not "none").
    pub fn look_back(&self, batch: &str, digest: &str, wanted: [bool; 2]) -> Option<(DataFrame, DataFrame)> {
        let dir = self.batch_dir(batch);
        let meta: Meta = serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
        if meta.format != MEMO_VERSION || meta.digest != digest {
            return None;
        }
        let read = |name: &str, wanted: bool| -> Option<DataFrame> {
            if !wanted {
                return Some(DataFrame::empty());
            }
            let f = std::fs::File::open(dir.join(format!("{name}.parquet"))).ok()?;
            ParquetReader::new(f).finish().ok()
        };
        Some((read(LOOK_BACK, wanted[0])?, read(SERIES, wanted[1])?))
    }

    /// Keeps `b` as the memo of `batch` (replacing the one before; a crash
    /// in between leaves no memo or one that does not load, never a mix).
    pub fn save(&self, batch: &str, b: &Batch) -> Result<(), String> {
        let RollRows::Here { county, reporting } = &b.roll else {
            return Err("a carried batch's memo is kept as it is".into());
        };
        let mut frames: Vec<(String, &DataFrame)> = FRAMES
            .iter()
            .map(|n| n.to_string())
            .zip([&b.checks, county, reporting, &b.quota_facts.achieved, &b.submissions])
            .collect();
        if let Some(w) = b.look_back.as_ref().filter(|w| w.width() > 0) {
            frames.push((LOOK_BACK.to_string(), w));
        }
        if let Some(w) = b.series.as_ref().filter(|w| w.width() > 0) {
            frames.push((SERIES.to_string(), w));
        }
        let meta = Meta {
            format: MEMO_VERSION,
            digest: b.digest.clone(),
            files: b.files.clone(),
            rows_published: b.rows_published,
            quarantined: b.quarantined,
            submissions: b.submissions_count,
            in_review: b.in_review,
            had_rows: b.had_rows.clone(),
            quarantine_candidates: b.quarantine_candidates.clone(),
            conservation_candidates: b.conservation_candidates.clone(),
            clock_excluded: b.clock_excluded.clone(),
            periods: b.periods.clone(),
            years: b.quota_facts.years.clone(),
        };
        self.keep(batch, &frames, &serde_json::to_vec(&meta).map_err(|e| e.to_string())?)
    }
}

/// What a program's rollup of one period computed (see `run::roll_up`):
/// its files, rows, and the digest of what it was computed from (the
/// period's batches' digests and the rollup of the period before it). The
/// year-to-date carry after it (a frame per level) is kept beside it and
/// read only when the period after it is computed.
#[derive(Debug, Clone)]
pub struct Rollup {
    /// Digest of its inputs.
    pub digest: String,
    /// Its files in the snapshot it was published in.
    pub files: Vec<FileEntry>,
    /// County rows.
    pub rows: usize,
}

#[derive(Serialize, Deserialize)]
struct RollupMeta {
    format: u32,
    digest: String,
    files: Vec<FileEntry>,
    rows: usize,
}

impl Memo {
    /// The rollup memo `name` when it was computed from inputs with `digest`.
    pub fn load_rollup(&self, name: &str, digest: &str) -> Option<Rollup> {
        let meta: RollupMeta =
            serde_json::from_slice(&std::fs::read(self.batch_dir(name).join("meta.json")).ok()?).ok()?;
        (meta.format == MEMO_VERSION && meta.digest == digest).then_some(Rollup {
            digest: meta.digest,
            files: meta.files,
            rows: meta.rows,
        })
    }

    /// The year-to-date carry kept with the rollup memo `name`.
    pub fn rollup_carry(&self, name: &str, digest: &str) -> Option<[DataFrame; 4]> {
        self.load_rollup(name, digest)?;
        let dir = self.batch_dir(name);
        let read = |i: usize| -> Option<DataFrame> {
            let f = std::fs::File::open(dir.join(format!("carry-{i}.parquet"))).ok()?;
            ParquetReader::new(f).finish().ok()
        };
        Some([read(0)?, read(1)?, read(2)?, read(3)?])
    }

    /// Keeps `r` and its carry as the rollup memo `name`.
    pub fn save_rollup(&self, name: &str, r: &Rollup, carry: &[DataFrame; 4]) -> Result<(), String> {
        let frames: Vec<(String, &DataFrame)> = carry
            .iter()
            .enumerate()
            .map(|(i, f)| (format!("carry-{i}"), f))
            .collect();
        let meta = RollupMeta {
            format: MEMO_VERSION,
            digest: r.digest.clone(),
            files: r.files.clone(),
            rows: r.rows,
        };
        self.keep(name, &frames, &serde_json::to_vec(&meta).map_err(|e| e.to_string())?)
    }

    /// Writes the memo `name` (its frames, then its meta file, which makes
    /// it) in a directory of its own and puts it in place of the one
    /// before: a crash in between leaves no memo or one that does not
    /// load, never a mix.
    fn keep(&self, name: &str, frames: &[(String, &DataFrame)], meta: &[u8]) -> Result<(), String> {
        let dir = self.batch_dir(name);
        let tmp = self.dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let fail = |p: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", p.display());
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| fail(&tmp, &e))?;
        }
        crate::private::dir(&tmp).map_err(|e| fail(&tmp, &e))?;
        for (name, frame) in frames {
            let path = tmp.join(format!("{name}.parquet"));
            crate::kept::write(&path, (*frame).clone()).map_err(|e| e.to_string())?;
        }
        let path = tmp.join("meta.json");
        std::io::Write::write_all(&mut crate::private::create(&path).map_err(|e| fail(&path, &e))?, meta)
            .map_err(|e| fail(&path, &e))?;
        remove(&dir).map_err(|e| fail(&dir, &e))?;
        std::fs::rename(&tmp, &dir).map_err(|e| fail(&dir, &e))
    }
}

/// Where the memos are: a directory per program, and [`SHARED`].
fn memo_root(state_dir: &Path) -> PathBuf {
    state_dir.join("memo")
}

/// The directory of the shared tables' memos, beside the programs' under
/// a name no program has.
const SHARED: &str = ".shared";

/// A file of a table every program shares and the digest of what it was
/// made from (`<state_dir>/memo/.shared/<table>.json`).
#[derive(Serialize, Deserialize)]
struct SharedFile {
    digest: String,
    file: FileEntry,
}

fn shared_path(state_dir: &Path, table: &str) -> PathBuf {
    memo_root(state_dir).join(SHARED).join(format!("{table}.json"))
}

/// The file of the shared `table` remembered as made from what `digest`
/// sums up; none when another or none is remembered, or the memo cannot
/// be read.
pub fn shared_file(state_dir: &Path, table: &str, digest: &str) -> Option<FileEntry> {
    let bytes = std::fs::read(shared_path(state_dir, table)).ok()?;
    let m: SharedFile = serde_json::from_slice(&bytes).ok()?;
    (m.digest == digest).then_some(m.file)
}

/// Remembers `file` of the shared `table` as made from what `digest` sums
/// up (private, as everything under the state directory; written aside
/// and renamed into place).
pub fn keep_shared_file(state_dir: &Path, table: &str, digest: String, file: FileEntry) -> std::io::Result<()> {
    let path = shared_path(state_dir, table);
    let dir = path.parent().expect("a shared memo has a directory");
    crate::private::dir(dir)?;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = crate::private::create(&tmp)?;
    std::io::Write::write_all(&mut f, &serde_json::to_vec(&SharedFile { digest, file })?)?;
    std::fs::rename(&tmp, &path)
}

/// Removes what is at `path`, a memo's directory or anything else found
/// in its place; nothing there is fine.
fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The cells the clock checks' failures `clock` (before
/// [`checks::finish`]) hold out of the rollup ([`excluded_keys`]): none
/// without finishing them when none can be (see [`checks::may_hold_out`]).
pub fn clock_excluded(clock: &DataFrame, submissions: &DataFrame, periods: &[String]) -> PolarsResult<Vec<String>> {
    if !checks::may_hold_out(clock)? {
        return Ok(vec![]);
    }
    excluded_keys(&checks::finish(std::slice::from_ref(clock), submissions)?, periods)
}

/// The (township, period, indicator) cells `results` hold out of the
/// rollup, of the `periods` the facts have (a failure of another period,
/// such as a year's quota progress in a monthly program, holds no fact out),
/// sorted: what the rollup depends on.
pub fn excluded_keys(results: &DataFrame, periods: &[String]) -> PolarsResult<Vec<String>> {
    let held = results
        .clone()
        .lazy()
        .filter(col("excluded"))
        .select([col("township"), col("period"), col("indicator")])
        .collect()?;
    let (t, p, i) = (
        held.column("township")?.str()?,
        held.column("period")?.str()?,
        held.column("indicator")?.str()?,
    );
    let mut keys: Vec<String> = (0..held.height())
        .filter(|r| {
            p.get(*r)
                .is_some_and(|p| periods.binary_search_by(|x| x.as_str().cmp(p)).is_ok())
        })
        .map(|r| {
            format!(
                "{}\u{1f}{}\u{1f}{}",
                t.get(r).unwrap_or(""),
                p.get(r).unwrap_or(""),
                i.get(r).unwrap_or("")
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_where_a_memo_goes_is_replaced_and_one_no_batch_uses_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let memo = Memo::new(dir.path(), "p");
        std::fs::create_dir_all(dir.path().join("memo/p")).unwrap();
        std::fs::write(dir.path().join("memo/p/rollup-2026-06"), b"junk").unwrap();
        std::fs::write(dir.path().join("memo/p/stray"), b"junk").unwrap();
        let carry = [
            df!("a" => [1.0]).unwrap(),
            DataFrame::empty(),
            df!("b" => [2i64]).unwrap(),
            df!("c" => ["x"]).unwrap(),
        ];
        let r = Rollup {
            digest: "d".into(),
            files: vec![],
            rows: 3,
        };
        memo.save_rollup("rollup-2026-06", &r, &carry).unwrap();
        assert_eq!(memo.load_rollup("rollup-2026-06", "d").map(|r| r.rows), Some(3));
        assert!(memo.load_rollup("rollup-2026-06", "other").is_none());
        let back = memo.rollup_carry("rollup-2026-06", "d").unwrap();
        assert_eq!(back[0], carry[0]);
        assert_eq!(back[3], carry[3]);
        memo.retain(&["rollup-2026-06".to_string()].into());
        assert!(!dir.path().join("memo/p/stray").exists());
        assert!(memo.load_rollup("rollup-2026-06", "d").is_some());
    }

    fn batch(digest: &str, county: DataFrame) -> Batch {
        Batch {
            digest: digest.into(),
            look_back: None,
            series: None,
            files: vec![],
            rows_published: 2,
            quarantined: 0,
            submissions_count: 1,
            in_review: 0,
            had_rows: vec!["facts".into()],
            quarantine_candidates: vec![],
            conservation_candidates: vec![],
            clock_excluded: vec![],
            periods: vec!["2026-06".into()],
            checks: df!("rule" => ["breakdown"]).unwrap(),
            roll: RollRows::Here {
                county,
                reporting: df!("township" => ["341124102"], "status" => ["on_time"]).unwrap(),
            },
            quota_facts: QuotaFacts {
                achieved: df!("value" => [1.0]).unwrap(),
                years: vec![2026],
            },
            submissions: df!("township" => ["341124102"]).unwrap(),
        }
    }

    #[test]
    fn a_carried_batch_reads_its_rollup_rows_only_when_asked_and_says_when_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let memo = Memo::new(dir.path(), "p");
        let county = df!("county" => ["341124"], "value" => [3.0]).unwrap();
        memo.save("34-2026-06", &batch("d", county.clone())).unwrap();
        let loaded = memo.load("34-2026-06", "d").unwrap();
        let RollRows::Kept { batch: code, digest } = &loaded.roll else {
            panic!("a loaded batch's rows stay in its memo: {:?}", loaded.roll);
        };
        let (c, r) = memo.roll_rows(code, digest).unwrap();
        assert_eq!(c, county);
        assert_eq!(r.height(), 1);
        // A memo whose rollup rows are not a Parquet file is no memo.
        let file = dir.path().join("memo/p/34-2026-06/county.parquet");
        let good = std::fs::read(&file).unwrap();
        std::fs::write(&file, b"PAR1 not really").unwrap();
        assert!(memo.load("34-2026-06", "d").is_none());
        // Rows that stop reading after the batch was loaded: an error.
        std::fs::write(&file, &good).unwrap();
        let loaded = memo.load("34-2026-06", "d").unwrap();
        let RollRows::Kept { batch: code, digest } = &loaded.roll else {
            panic!("kept");
        };
        std::fs::write(&file, &good[..good.len() / 2]).unwrap();
        assert!(memo.roll_rows(code, digest).is_err());
        // Or a memo of other inputs put in its place.
        memo.save("34-2026-06", &batch("e", county)).unwrap();
        let why = memo.roll_rows(code, digest).unwrap_err();
        assert!(why.contains("replaced"), "{why}");
        memo.forget("34-2026-06");
        assert!(!dir.path().join("memo/p/34-2026-06").exists());
        // A carried batch is not saved again.
        assert!(memo.save("34-2026-06", &loaded).is_err());
    }

    #[test]
    fn clock_failures_hold_out_what_finishing_them_does() {
        let raw = |severity: taizhang_model::Severity| {
            let mut rows = checks::Rows::default();
            rows.push(checks::Failure {
                rule: "r",
                severity,
                program: "p",
                township: "341124102",
                period: "2026-06",
                year: 2026,
                indicator: Some("cataract_surgery"),
                dimension: None,
                observed: None,
                expected: None,
                message: "m".into(),
            });
            rows.finish().unwrap()
        };
        let submissions = df!(
            "township" => ["341124102"],
            "period" => ["2026-06"],
            "explanation" => [None::<&str>],
        )
        .unwrap();
        let periods = ["2026-06".to_string()];
        for severity in [taizhang_model::Severity::Error, taizhang_model::Severity::Warning] {
            let clock = raw(severity);
            let finished = checks::finish(std::slice::from_ref(&clock), &submissions).unwrap();
            assert_eq!(
                clock_excluded(&clock, &submissions, &periods).unwrap(),
                excluded_keys(&finished, &periods).unwrap(),
                "{severity:?}"
            );
        }
        assert_eq!(
            clock_excluded(&raw(taizhang_model::Severity::Error), &submissions, &periods).unwrap(),
            vec!["341124102\u{1f}2026-06\u{1f}cataract_surgery".to_string()]
        );
    }

    #[test]
    fn only_failures_of_the_facts_periods_hold_a_fact_out() {
        let results = df!(
            "township" => ["341124102", "341124102", "341124103"],
            "period" => ["2026", "2026-06", "2026-06"],
            "indicator" => [Some("cataract_surgery"), Some("cataract_surgery"), None],
            "excluded" => [true, true, false],
        )
        .unwrap();
        let keys = excluded_keys(&results, &["2026-05".into(), "2026-06".into()]).unwrap();
        assert_eq!(keys, vec!["341124102\u{1f}2026-06\u{1f}cataract_surgery".to_string()]);
        // A yearly program's facts are of the year: its quota failures count.
        assert_eq!(excluded_keys(&results, &["2026".into()]).unwrap().len(), 1);
    }
}
