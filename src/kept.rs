//! Kept normalization: what normalize made of each landed body, stored once
//! so that no later run parses it again. Under
//! `<state_dir>/normalized/<program>/<fingerprint>/`, results are kept in
//! chunks of up to [`CHUNK_LANDINGS`] landings
//! (`chunk-<n>.{facts,quarantine,extractions,submission}.parquet`), valid for one
//! [`crate::config::Loaded::normalize_fingerprint`]: a catalog, registry,
//! mapping, limit or code change makes them again. A chunk's submission
//! rows carry their landing's township and body sha256, and how many of
//! the facts file's rows are the landing's (they come a landing after
//! another; a landing's own columns, the same on each of its fact rows,
//! are kept once on its submission row), so a run reads the rows of the
//! landings it wants from the chunks that hold them. A chunk's `submission`
//! file is written last: a chunk counts only once it is complete, and a file
//! that cannot be read makes its landings be normalized again, never an error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use polars::io::parquet::write::StatisticsOptions;
use polars::prelude::*;
use taizhang_model::Landing;
use taizhang_transform::normalize::FACT_COLUMNS;
use taizhang_transform::text::{Numbers, TextBuilder, Texts, like_before};

use crate::normalize::Normalized;

/// Landings per chunk: a few hundred thousand fact rows.
pub const CHUNK_LANDINGS: usize = 2000;

/// A chunk of a quarter of [`CHUNK_LANDINGS`] or fewer once read is kept
/// in memory through the run, as long as those kept come to no more than
/// this ([`DataFrame::estimated_size`]; a national month's full chunk:
/// ~15 MB).
const SMALL_BUDGET: usize = 48 << 20;

/// A kept-results failure (the disk said no).
#[derive(Debug, thiserror::Error)]
#[error("kept normalization {path}: {reason}")]
pub struct KeptError {
    /// File or directory.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

const PARTS: [&str; 4] = ["facts", "quarantine", "extractions", "submission"];

/// The facts' columns that are their landing's, the same on each of a
/// body's rows. A chunk keeps them once, on the landing's submission row
/// (which holds most of them already, and [`KEPT_COUNTY`] and
/// [`KEPT_EXTRACTED`] besides), with the number of the landing's fact rows
/// ([`FACT_ROWS`]): a national month's 6.2 million fact rows each carried
/// a 64-byte sha256 and seven more such columns, and polars built a
/// dictionary of each when the chunk was written and read them back.
const LANDING_COLUMNS: [&str; 9] = [
    "program",
    "township",
    "county",
    "period",
    "year",
    "source_sha256",
    "submitted_at",
    "version",
    "extracted",
];

/// A chunk's submission file: how many rows of its facts file are the
/// landing's (they follow those of the landing before it).
const FACT_ROWS: &str = "kept_fact_rows";
/// A chunk's submission file: its landing's facts' county.
const KEPT_COUNTY: &str = "kept_county";
/// A chunk's submission file: whether its landing's facts were read from
/// a document.
const KEPT_EXTRACTED: &str = "kept_extracted";

fn err(path: &Path, reason: impl ToString) -> KeptError {
    KeptError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A landing's (township, body sha256), hashed (xxh3-128): a national
/// year's 455,000 keys as two strings each were ~65 MB held through the
/// run. Only which chunk to read is looked up by it: the rows are then
/// picked by the strings themselves, and a landing whose chunk holds no
/// submission for it is normalized again.
type Key = u128;

fn key_of(township: &str, sha256: &str) -> Key {
    hash_of(&[township, sha256])
}

/// xxh3-128 of `parts`, each followed by a NUL (so that no two lists of
/// texts without NULs hash the same text).
pub(crate) fn hash_of(parts: &[&str]) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(&[0]);
    }
    h.digest128()
}

fn key(l: &Landing) -> Key {
    key_of(&l.township, &l.sha256)
}

/// The kept results of one program under one fingerprint.
pub struct Kept {
    dir: PathBuf,
    /// Which chunk holds each landing (township, sha256).
    index: HashMap<Key, u64>,
    /// Results not yet written, in landing order (the landings a result
    /// holds the rows of, and the result).
    pending: Vec<(Vec<Key>, Normalized)>,
    /// Landings waiting in `pending`.
    pending_count: usize,
    /// Their keys.
    pending_keys: HashSet<Key>,
    next: u64,
    /// The chunk read last: consecutive batches share a boundary chunk,
    /// and a read begins with it (see [`Kept::read`]).
    cached: Option<(u64, [DataFrame; 4])>,
    /// Small chunks once read (what a run adds of the reports resubmitted
    /// since the one before), kept through the run while they come to
    /// [`SMALL_BUDGET`]: every batch with resubmitted reports reads those
    /// of each such run for their history and rows, ~10 landings of each
    /// chunk's hundreds.
    small: HashMap<u64, [DataFrame; 4]>,
    /// Their [`DataFrame::estimated_size`].
    small_bytes: usize,
    /// Landings per chunk ([`CHUNK_LANDINGS`]).
    chunk_landings: usize,
}

impl Kept {
    /// Opens the store of `program` for `fingerprint`: results kept for
    /// other fingerprints of the program are removed (they can never be
    /// used again), and so are files a killed process was still writing.
    pub fn open(state_dir: &Path, program: &str, fingerprint: &str) -> Result<Kept, KeptError> {
        let base = state_dir.join("normalized").join(program);
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                if e.file_name() != fingerprint {
                    std::fs::remove_dir_all(e.path()).map_err(|x| err(&e.path(), x))?;
                }
            }
        }
        let dir = base.join(fingerprint);
        crate::private::dir(&dir).map_err(|e| err(&dir, e))?;
        let mut kept = Kept::unread(state_dir, program, fingerprint);
        for e in std::fs::read_dir(&dir).map_err(|e| err(&dir, e))?.flatten() {
            if e.file_name().to_string_lossy().contains(".tmp-") {
                std::fs::remove_file(e.path()).map_err(|x| err(&e.path(), x))?;
            }
        }
        kept.load_index();
        Ok(kept)
    }

    /// The store of `program` for `fingerprint`, read-only: nothing is
    /// created or removed (for plans).
    pub fn at(state_dir: &Path, program: &str, fingerprint: &str) -> Kept {
        let mut kept = Kept::unread(state_dir, program, fingerprint);
        kept.load_index();
        kept
    }

    /// The store of `program` for `fingerprint`, its index not read yet.
    fn unread(state_dir: &Path, program: &str, fingerprint: &str) -> Kept {
        Kept {
            dir: state_dir.join("normalized").join(program).join(fingerprint),
            index: HashMap::new(),
            pending: vec![],
            pending_keys: HashSet::new(),
            pending_count: 0,
            next: 1,
            cached: None,
            small: HashMap::new(),
            small_bytes: 0,
            chunk_landings: CHUNK_LANDINGS,
        }
    }

    fn path(&self, chunk: u64, part: &str) -> PathBuf {
        self.dir.join(format!("chunk-{chunk:08}.{part}.parquet"))
    }

    /// Reads every complete chunk's landings (its `submission` file).
    fn load_index(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(n) = name
                .strip_prefix("chunk-")
                .and_then(|r| r.strip_suffix(".submission.parquet"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            self.next = self.next.max(n + 1);
            // The two key columns only: a national year's index is read
            // from 455,000 submissions' rows at the start of every run.
            let Some(subs) = std::fs::File::open(e.path()).ok().and_then(|f| {
                ParquetReader::new(f)
                    .with_columns(Some(vec!["township".into(), "source_sha256".into()]))
                    .finish()
                    .ok()
            }) else {
                continue;
            };
            let (Ok(t), Ok(s)) = (subs.column("township"), subs.column("source_sha256")) else {
                continue;
            };
            let (Ok(t), Ok(s)) = (t.str(), s.str()) else { continue };
            for (t, s) in t.iter().zip(s.iter()) {
                if let (Some(t), Some(s)) = (t, s) {
                    self.index.insert(key_of(t, s), n);
                }
            }
        }
    }

    /// Whether this landing's normalization is kept (or waiting to be).
    pub fn has(&self, l: &Landing) -> bool {
        let k = key(l);
        self.index.contains_key(&k) || self.pending_keys.contains(&k)
    }

    /// Keeps what normalize made of this landing (written with its chunk).
    pub fn add(&mut self, l: &Landing, n: Normalized) -> Result<(), KeptError> {
        self.add_many(std::slice::from_ref(l), n)
    }

    /// Keeps what normalize made of several landings at once (`n` holds the
    /// rows of all of them).
    pub fn add_many(&mut self, ls: &[Landing], n: Normalized) -> Result<(), KeptError> {
        let keys: Vec<Key> = ls.iter().map(key).collect();
        self.pending_keys.extend(keys.iter().copied());
        self.pending_count += keys.len();
        self.pending.push((keys, n));
        if self.pending_count >= self.chunk_landings {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the results waiting in memory as one chunk.
    pub fn flush(&mut self) -> Result<(), KeptError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_keys.clear();
        self.pending_count = 0;
        let chunk = self.next;
        let stack = |frames: &mut dyn Iterator<Item = &DataFrame>| -> Result<DataFrame, KeptError> {
            let mut out = frames.next().expect("pending is not empty").clone();
            for f in frames {
                out.vstack_mut(f).map_err(|e| err(&self.dir, e))?;
            }
            Ok(out)
        };
        // Each result's facts and submissions made slim on their own (one
        // chunk of rows each, read without copying them into one); when one
        // cannot be, the chunk keeps them all whole.
        let slimmed: Option<Vec<(DataFrame, DataFrame)>> = pending
            .iter()
            .map(|(_, n)| slim(&n.facts, &n.submissions))
            .collect::<PolarsResult<_>>()
            .map_err(|e| err(&self.dir, e))?;
        let (facts, submissions) = match &slimmed {
            Some(parts) => (
                stack(&mut parts.iter().map(|p| &p.0))?,
                stack(&mut parts.iter().map(|p| &p.1))?,
            ),
            None => (
                stack(&mut pending.iter().map(|(_, n)| &n.facts))?,
                stack(&mut pending.iter().map(|(_, n)| &n.submissions))?,
            ),
        };
        let frames = [
            facts,
            stack(&mut pending.iter().map(|(_, n)| &n.quarantine))?,
            stack(&mut pending.iter().map(|(_, n)| &n.extractions))?,
            submissions,
        ];
        // The submission part last: it makes the chunk count.
        for (part, frame) in PARTS.iter().zip(frames) {
            write(&self.path(chunk, part), frame)?;
        }
        for (keys, _) in pending {
            for k in keys {
                self.index.insert(k, chunk);
            }
        }
        self.next += 1;
        Ok(())
    }

    fn chunk(&mut self, chunk: u64) -> Option<[DataFrame; 4]> {
        if let Some((n, frames)) = &self.cached
            && *n == chunk
        {
            return Some(frames.clone());
        }
        if let Some(frames) = self.small.get(&chunk) {
            return Some(frames.clone());
        }
        let read = |part: &str| -> Option<DataFrame> {
            let f = std::fs::File::open(self.path(chunk, part)).ok()?;
            ParquetReader::new(f).finish().ok()
        };
        let frames = [read(PARTS[0])?, read(PARTS[1])?, read(PARTS[2])?, read(PARTS[3])?];
        // Sized only when small (a full chunk's text columns are walked to
        // size them: ~1% of a national month's compute).
        let small = (frames[3].height() <= self.chunk_landings / 4)
            .then(|| frames.iter().map(DataFrame::estimated_size).sum::<usize>())
            .filter(|size| self.small_bytes + size <= SMALL_BUDGET);
        if let Some(size) = small {
            self.small_bytes += size;
            self.small.insert(chunk, frames.clone());
        } else {
            self.cached = Some((chunk, frames.clone()));
        }
        Some(frames)
    }

    /// The kept results of `wanted` landings, with each submission's
    /// `versions_landed` set as given. Landings whose chunk cannot be read
    /// are returned as missing (to be normalized again), never an error.
    pub fn read(&mut self, wanted: &[(&Landing, usize)]) -> Result<(Normalized, Vec<usize>), KeptError> {
        self.flush()?;
        let mut by_chunk: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut missing = vec![];
        for (i, (l, _)) in wanted.iter().enumerate() {
            match self.index.get(&key(l)) {
                Some(c) => by_chunk.entry(*c).or_default().push(i),
                None => missing.push(i),
            }
        }
        // The chunk read last first, then the others smallest first: the
        // largest is the one kept in memory for the next read. A batch
        // with resubmitted reports reads the chunks of their older versions
        // (its own) and of their new ones (small, shared by every batch)
        // for their history, then the same for the batch's rows: that way
        // its own chunk is decoded once, not twice.
        let size = |chunk: u64| std::fs::metadata(self.path(chunk, PARTS[0])).map_or(0, |m| m.len());
        let cached = self.cached.as_ref().map(|c| c.0);
        let mut by_chunk: Vec<(u64, Vec<usize>)> = by_chunk.into_iter().collect();
        by_chunk.sort_by_cached_key(|(chunk, _)| (Some(*chunk) != cached, size(*chunk), *chunk));
        // Each chunk's rows, stacked in the order of the chunks whatever
        // the order they were read in.
        let mut read: Vec<(u64, [DataFrame; 4])> = Vec::with_capacity(by_chunk.len());
        for (chunk, idx) in by_chunk {
            let Some(frames) = self.chunk(chunk) else {
                for i in idx {
                    self.index.remove(&key(wanted[i].0));
                    missing.push(i);
                }
                continue;
            };
            let [facts, quarantine, extractions, submissions] = frames;
            // The landings asked of this chunk, with their versions landed.
            let asked: HashMap<(&str, &str), i64> = idx
                .iter()
                .map(|i| {
                    let (l, versions) = wanted[*i];
                    ((l.township.as_str(), l.sha256.as_str()), versions as i64)
                })
                .collect();
            let picked = match submissions.column(FACT_ROWS) {
                // A chunk whose counts or columns do not add up is made again.
                Ok(_) => pick_slim(&facts, &submissions, &asked).ok().flatten(),
                Err(_) => Some((None, pick_whole(&submissions, &asked).map_err(|e| err(&self.dir, e))?)),
            };
            let Some((facts_rows, subs)) = picked else {
                for i in idx {
                    self.index.remove(&key(wanted[i].0));
                    missing.push(i);
                }
                continue;
            };
            // Every kept landing has its submission row: one the index
            // sent here without it (a chunk written over, keys whose hashes
            // collide) is normalized again, and none of its rows is taken.
            let mut mine: HashSet<(&str, &str)> = HashSet::with_capacity(idx.len());
            {
                let (t, h) = (
                    Texts::of(&subs, "township").map_err(|e| err(&self.dir, e))?,
                    Texts::of(&subs, "source_sha256").map_err(|e| err(&self.dir, e))?,
                );
                let found: HashSet<(&str, &str)> = (0..t.len()).filter_map(|j| Some((t.get(j)?, h.get(j)?))).collect();
                for i in idx {
                    let l = wanted[i].0;
                    if found.contains(&(l.township.as_str(), l.sha256.as_str())) {
                        mine.insert((l.township.as_str(), l.sha256.as_str()));
                    } else {
                        self.index.remove(&key(l));
                        missing.push(i);
                    }
                }
            }
            let facts_rows = match facts_rows {
                Some(rows) => rows,
                None => rows_of(&facts, &mine).map_err(|e| err(&self.dir, e))?,
            };
            let rows = |frame: &DataFrame| rows_of(frame, &mine).map_err(|e| err(&self.dir, e));
            read.push((chunk, [facts_rows, rows(&quarantine)?, rows(&extractions)?, subs]));
        }
        read.sort_unstable_by_key(|(chunk, _)| *chunk);
        let mut parts: [Vec<DataFrame>; 4] = Default::default();
        for (_, frames) in read {
            for (part, frame) in parts.iter_mut().zip(frames) {
                part.push(frame);
            }
        }
        let [f, q, x, s] = parts;
        let stack = |frames: Vec<DataFrame>| -> Result<Option<DataFrame>, KeptError> {
            let mut it = frames.into_iter();
            let Some(mut out) = it.next() else { return Ok(None) };
            for f in it {
                out.vstack_mut(&f).map_err(|e| err(&self.dir, e))?;
            }
            Ok(Some(out))
        };
        let (f, q, x, s) = (stack(f)?, stack(q)?, stack(x)?, stack(s)?);
        missing.sort_unstable();
        Ok((
            Normalized {
                facts: f.unwrap_or_default(),
                quarantine: q.unwrap_or_default(),
                submissions: s.unwrap_or_default(),
                extractions: x.unwrap_or_default(),
            },
            missing,
        ))
    }
}

/// The rows of `frame` whose (township, source_sha256) is in `wanted`, in
/// their order (what a semi-join on the two keeps). A body's rows come
/// together, so a key is looked up once per run of rows, not per row.
fn rows_of(frame: &DataFrame, wanted: &HashSet<(&str, &str)>) -> PolarsResult<DataFrame> {
    let (townships, shas) = (Texts::of(frame, "township")?, Texts::of(frame, "source_sha256")?);
    let mut keep = Vec::with_capacity(frame.height());
    for i in 0..townships.len() {
        // A row of the body before (compared by Arrow views) keeps what it
        // kept; a null key matches nothing, as in a join.
        let k = match like_before(&[&townships, &shas], i) {
            true => keep[i - 1],
            false => matches!((townships.get(i), shas.get(i)), (Some(t), Some(s)) if wanted.contains(&(t, s))),
        };
        keep.push(k);
    }
    if keep.iter().all(|k| *k) {
        return Ok(frame.clone());
    }
    frame.filter(&BooleanChunked::from_slice("keep".into(), &keep))
}

/// The submission rows of the `asked` landings from a chunk written
/// whole (every fact row with its landing's columns), their versions
/// landed as asked.
fn pick_whole(submissions: &DataFrame, asked: &HashMap<(&str, &str), i64>) -> PolarsResult<DataFrame> {
    let (t, h) = (
        Texts::of(submissions, "township")?,
        Texts::of(submissions, "source_sha256")?,
    );
    let mut keep = Vec::with_capacity(t.len());
    let mut versions: Vec<i64> = vec![];
    for j in 0..t.len() {
        let v = t.get(j).zip(h.get(j)).and_then(|k| asked.get(&k));
        keep.push(v.is_some());
        versions.extend(v.copied());
    }
    let mut subs = submissions.filter(&BooleanChunked::from_slice("keep".into(), &keep))?;
    subs.with_column(Column::new("versions_landed".into(), versions))?;
    Ok(subs)
}

/// The fact rows and submission rows of the `asked` landings from a chunk
/// whose facts keep their landings' columns once ([`slim`]): each
/// landing's rows follow the rows of the landing before, as many as its
/// [`FACT_ROWS`] says, and get its columns back. None when the counts do
/// not add up to the facts file's rows (the chunk is made again).
fn pick_slim(
    facts: &DataFrame,
    submissions: &DataFrame,
    asked: &HashMap<(&str, &str), i64>,
) -> PolarsResult<Option<(Option<DataFrame>, DataFrame)>> {
    let (t, h) = (
        Texts::of(submissions, "township")?,
        Texts::of(submissions, "source_sha256")?,
    );
    let counts = Numbers::<Int64Type>::of(submissions, FACT_ROWS)?;
    let mut keep_landing = Vec::with_capacity(t.len());
    let mut keep_row = Vec::with_capacity(facts.height());
    let mut versions: Vec<i64> = vec![];
    for j in 0..t.len() {
        // No more rows than the facts file has (a count changed on disk
        // is not a length to allocate).
        let Some(rows) = counts
            .get(j)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| keep_row.len() + n <= facts.height())
        else {
            return Ok(None);
        };
        let v = t.get(j).zip(h.get(j)).and_then(|k| asked.get(&k));
        keep_landing.push(v.is_some());
        versions.extend(v.copied());
        keep_row.extend(std::iter::repeat_n(v.is_some(), rows));
    }
    if keep_row.len() != facts.height() {
        return Ok(None);
    }
    let landings = submissions.filter(&BooleanChunked::from_slice("keep".into(), &keep_landing))?;
    let rows = match keep_row.iter().all(|k| *k) {
        true => facts.clone(),
        false => facts.filter(&BooleanChunked::from_slice("keep".into(), &keep_row))?,
    };
    let facts = rows.hstack(expand(&landings)?.columns())?.select(FACT_COLUMNS)?;
    let mut subs = landings.drop_many([FACT_ROWS, KEPT_COUNTY, KEPT_EXTRACTED]);
    subs.with_column(Column::new("versions_landed".into(), versions))?;
    Ok(Some((Some(facts), subs)))
}

/// The [`LANDING_COLUMNS`] of each landing's fact rows: its submission
/// row's (with [`FACT_ROWS`], [`KEPT_COUNTY`] and [`KEPT_EXTRACTED`])
/// repeated as many times as it has fact rows.
fn expand(landings: &DataFrame) -> PolarsResult<DataFrame> {
    let counts = Numbers::<Int64Type>::of(landings, FACT_ROWS)?;
    let n: Vec<usize> = (0..landings.height())
        .map(|i| counts.get(i).and_then(|n| usize::try_from(n).ok()).unwrap_or(0))
        .collect();
    let rows: usize = n.iter().sum();
    let text = |name: &str, from: &str| -> PolarsResult<Column> {
        let texts = Texts::of(landings, from)?;
        let mut built = TextBuilder::default();
        built.reserve(rows);
        for (i, n) in n.iter().enumerate() {
            built.push_repeated(texts.get(i), *n);
        }
        Ok(built.finish(name))
    };
    let mut at: Vec<IdxSize> = Vec::with_capacity(rows);
    for (i, n) in n.iter().enumerate() {
        at.extend(std::iter::repeat_n(i as IdxSize, *n));
    }
    let at = IdxCa::from_vec("at".into(), at);
    let gathered = |name: &str, from: &str| -> PolarsResult<Column> {
        Ok(landings.column(from)?.take(&at)?.with_name(name.into()))
    };
    DataFrame::new(
        rows,
        vec![
            text("program", "program")?,
            text("township", "township")?,
            text("county", KEPT_COUNTY)?,
            text("period", "period")?,
            gathered("year", "year")?,
            text("source_sha256", "source_sha256")?,
            gathered("submitted_at", "submitted_at")?,
            gathered("version", "version")?,
            gathered("extracted", KEPT_EXTRACTED)?,
        ],
    )
}

/// How many of `facts`' rows are each submission's landing's: its rows
/// follow those of the landing before. None when they do not (the chunk
/// is then kept whole).
fn fact_rows(facts: &DataFrame, submissions: &DataFrame) -> PolarsResult<Option<Vec<i64>>> {
    let (ft, fh) = (Texts::of(facts, "township")?, Texts::of(facts, "source_sha256")?);
    let (st, sh) = (
        Texts::of(submissions, "township")?,
        Texts::of(submissions, "source_sha256")?,
    );
    let mut counts = Vec::with_capacity(st.len());
    let mut row = 0;
    for j in 0..st.len() {
        let start = row;
        let first = ft.len() > row
            && ft.get(row).is_some()
            && fh.get(row).is_some()
            && (ft.get(row), fh.get(row)) == (st.get(j), sh.get(j));
        if first {
            row += 1;
            while row < ft.len() && like_before(&[&ft, &fh], row) {
                row += 1;
            }
        }
        counts.push((row - start) as i64);
    }
    Ok((row == ft.len()).then_some(counts))
}

/// Facts and submissions as a chunk keeps them: the facts without their
/// [`LANDING_COLUMNS`], the submissions with what makes them again
/// ([`expand`]), when each landing's fact rows follow the landing's
/// before and its columns are the same on each of them (as normalize
/// makes them); else None (kept whole).
fn slim(facts: &DataFrame, submissions: &DataFrame) -> PolarsResult<Option<(DataFrame, DataFrame)>> {
    let Some(counts) = fact_rows(facts, submissions)? else {
        return Ok(None);
    };
    let county = Texts::of(facts, "county")?;
    let extracted = facts.column("extracted")?.bool()?.rechunk();
    let mut kept_county = TextBuilder::default();
    let mut kept_extracted = Vec::with_capacity(counts.len());
    let mut at = 0;
    for &n in &counts {
        match n > 0 {
            true => {
                kept_county.push_opt(county.get(at));
                kept_extracted.push(extracted.get(at));
            }
            false => {
                kept_county.push_null();
                kept_extracted.push(None);
            }
        }
        at += n as usize;
    }
    let mut with = submissions.clone();
    with.with_column(Column::new(FACT_ROWS.into(), counts.clone()))?;
    with.with_column(kept_county.finish(KEPT_COUNTY))?;
    with.with_column(Column::new(KEPT_EXTRACTED.into(), kept_extracted))?;
    // What the chunk will give back is what it was given, row for row.
    if !landings_alike(facts, &with, &counts)? {
        return Ok(None);
    }
    Ok(Some((facts.drop_many(LANDING_COLUMNS), with)))
}

/// Whether each landing's fact rows (`counts` of them, one landing after
/// another) hold in every one of [`LANDING_COLUMNS`] what the landing's
/// row of `landings` holds: what [`expand`] makes of it, asked without
/// making it (townships and sha256s were followed by [`fact_rows`]).
fn landings_alike(facts: &DataFrame, landings: &DataFrame, counts: &[i64]) -> PolarsResult<bool> {
    // The rows of each landing, and the landing.
    let runs = || {
        counts.iter().enumerate().scan(0usize, |at, (j, &n)| {
            let start = *at;
            *at += n as usize;
            Some((j, start..*at))
        })
    };
    for (column, from) in [("program", "program"), ("county", KEPT_COUNTY), ("period", "period")] {
        let (rows, of) = (Texts::of(facts, column)?, Texts::of(landings, from)?);
        for (j, r) in runs() {
            if !r.is_empty() && (rows.get(r.start) != of.get(j) || r.skip(1).any(|i| !rows.same(i, i - 1))) {
                return Ok(false);
            }
        }
    }
    fn numbers<T: PolarsNumericType>(
        facts: &DataFrame,
        landings: &DataFrame,
        column: &str,
        runs: impl Iterator<Item = (usize, std::ops::Range<usize>)>,
    ) -> PolarsResult<bool> {
        let (rows, of) = (Numbers::<T>::of(facts, column)?, Numbers::<T>::of(landings, column)?);
        for (j, r) in runs {
            if r.clone().any(|i| rows.get(i) != of.get(j)) {
                return Ok(false);
            }
        }
        Ok(true)
    }
    let alike = numbers::<Int32Type>(facts, landings, "year", runs())?
        && numbers::<Int64Type>(facts, landings, "submitted_at", runs())?
        && numbers::<Int64Type>(facts, landings, "version", runs())?;
    let (rows, of) = (
        facts.column("extracted")?.bool()?.rechunk(),
        landings.column(KEPT_EXTRACTED)?.bool()?.rechunk(),
    );
    let (rows, of) = (rows.downcast_as_array(), of.downcast_as_array());
    Ok(alike
        && runs().all(|(j, r)| {
            r.clone()
                .all(|i| matches!((rows.get(i), of.get(j)), (Some(a), Some(b)) if a == b))
        }))
}

/// Writes `frame` to `path` (through a temporary file and a rename), for
/// reading back whole: no statistics, no compression.
pub(crate) fn write(path: &Path, mut frame: DataFrame) -> Result<(), KeptError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let file = crate::private::create(&tmp).map_err(|e| err(&tmp, e))?;
    // Files read back whole: no statistics, and one write(2) per buffer, not
    // per footer field.
    let none = StatisticsOptions {
        min_value: false,
        max_value: false,
        distinct_count: false,
        null_count: false,
        binary_statistics_truncate_length: None,
    };
    ParquetWriter::new(std::io::BufWriter::with_capacity(256 * 1024, file))
        .with_compression(ParquetCompression::Uncompressed)
        .with_statistics(none)
        .finish(&mut frame)
        .map_err(|e| err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| err(path, e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_chunks_rows_of_some_landings_are_what_a_semi_join_keeps() {
        // Bodies' rows in runs, a body split in two runs, null keys.
        let t = [
            Some("1"),
            Some("1"),
            Some("2"),
            Some("2"),
            None,
            Some("3"),
            Some("3"),
            Some("1"),
            Some("2"),
        ];
        let s = [
            Some("a"),
            Some("a"),
            Some("b"),
            Some("b"),
            Some("c"),
            None,
            Some("d"),
            Some("a"),
            Some("b"),
        ];
        let frame = df!("township" => t, "source_sha256" => s, "row" => (0..9).collect::<Vec<i32>>()).unwrap();
        let all = [("1", "a"), ("2", "b"), ("3", "d"), ("", "c")];
        for mask in 0..16u32 {
            let wanted: Vec<(&str, &str)> = (0..4).filter(|b| mask & (1 << b) != 0).map(|b| all[b]).collect();
            let keys = df!(
                "township" => wanted.iter().map(|w| w.0).collect::<Vec<_>>(),
                "source_sha256" => wanted.iter().map(|w| w.1).collect::<Vec<_>>(),
            )
            .unwrap();
            let on = [col("township"), col("source_sha256")];
            let expected = frame
                .clone()
                .lazy()
                .join(keys.lazy(), on.clone(), on, JoinArgs::new(JoinType::Semi))
                .collect()
                .unwrap();
            let got = rows_of(&frame, &wanted.iter().copied().collect()).unwrap();
            assert!(got.equals_missing(&expected), "{wanted:?}: {got} {expected}");
        }
    }
    use taizhang_transform::fixtures::{config, normalized};

    fn landing(township: &str, doc: &serde_json::Value) -> Landing {
        taizhang_transform::fixtures::landing("cdpf-monthly", township, "2026-05", &serde_json::to_vec(doc).unwrap())
    }

    /// Five landings of one township each (values 0, 1, 2 … in a body of
    /// several rows, two of them with no fact: one unreadable, one with
    /// only a bad value), normalized one by one, and the frames of all.
    fn five() -> (Vec<Landing>, Vec<Normalized>) {
        let cfg = config();
        let mut landings = vec![];
        let mut made = vec![];
        for i in 0..5 {
            let t = format!("34112410{i}");
            let doc = match i {
                1 => json!({"period": "2026-05", "values": [{"indicator": "白内障复明手术", "value": "很多"}]}),
                3 => json!("not a report"),
                _ => json!({"period": "2026-05", "submitted_at": "2026-06-03T09:00:00+08:00", "values": [
                    {"indicator": "白内障复明手术", "value": i},
                    {"indicator": "残疾人证核发", "category": "视力", "value": i * 10},
                    {"indicator": "残疾人证核发", "category": "听力", "value": null}
                ]}),
            };
            landings.push(landing(&t, &doc));
            made.push(normalized(&cfg, &[(t.as_str(), "2026-05", doc)]));
        }
        (landings, made)
    }

    /// Frames stacked.
    fn stacked(frames: impl IntoIterator<Item = DataFrame>) -> DataFrame {
        let mut it = frames.into_iter();
        let mut out = it.next().unwrap();
        for f in it {
            out.vstack_mut(&f).unwrap();
        }
        out
    }

    /// The first chunk's `part` file of the store [`kept_in`] made.
    fn chunk_path(dir: &Path, part: &str) -> PathBuf {
        dir.join(format!("normalized/cdpf-monthly/fp/chunk-00000001.{part}.parquet"))
    }

    fn read_file(path: &Path) -> DataFrame {
        ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap()
    }

    /// A new store in `dir` keeping each result for its landings (one
    /// `add_many` each), flushed as one chunk.
    fn kept_in(dir: &Path, results: &[(&[Landing], &Normalized)]) {
        let mut kept = Kept::open(dir, "cdpf-monthly", "fp").unwrap();
        for (ls, n) in results {
            kept.add_many(ls, (*n).clone()).unwrap();
        }
        kept.flush().unwrap();
    }

    /// What the store in `dir`, opened again, gives back for `wanted`.
    fn read_back(dir: &Path, wanted: &[(&Landing, usize)]) -> (Normalized, Vec<usize>) {
        Kept::open(dir, "cdpf-monthly", "fp").unwrap().read(wanted).unwrap()
    }

    /// Read back, a chunk's facts are the rows normalize made, column for
    /// column, though their landings' columns were kept once per landing;
    /// facts whose landing's columns are not the same on each of its rows
    /// are kept whole, and read back as they were.
    #[test]
    fn facts_are_read_back_as_made_with_their_landings_columns_kept_once() {
        let (landings, made) = five();
        let dir = tempfile::tempdir().unwrap();
        let each: Vec<(&[Landing], &Normalized)> = landings.chunks(1).zip(&made).collect();
        kept_in(dir.path(), &each);
        let file = read_file(&chunk_path(dir.path(), "facts"));
        assert_eq!(file.height(), 9, "three rows of three landings");
        for c in LANDING_COLUMNS {
            assert!(file.column(c).is_err(), "{c} kept once per landing, not per row");
        }
        let all: Vec<(&Landing, usize)> = landings.iter().map(|l| (l, 1)).collect();
        let (n, missing) = read_back(dir.path(), &all);
        assert!(missing.is_empty());
        let expected = stacked(made.iter().map(|m| m.facts.clone()));
        assert!(n.facts.equals_missing(&expected), "{}\n{expected}", n.facts);
        let subs = stacked(made.iter().map(|m| m.submissions.clone()));
        assert!(n.submissions.equals_missing(&subs), "{}\n{subs}", n.submissions);
        // Some of them: their rows only, in order.
        let some = [(&landings[4], 1), (&landings[1], 1), (&landings[0], 1)];
        let (n, _) = read_back(dir.path(), &some);
        let expected = stacked([made[0].facts.clone(), made[4].facts.clone()]);
        assert!(n.facts.equals_missing(&expected), "{}\n{expected}", n.facts);

        // A landing's county not the same on each of its rows: the chunk's
        // facts are kept whole, and read back as they were.
        let dir = tempfile::tempdir().unwrap();
        let mut odd = made[2].clone();
        let county: Vec<&str> = vec!["341124", "341199", "341124"];
        odd.facts.with_column(Column::new("county".into(), county)).unwrap();
        kept_in(dir.path(), &[(&landings[0..1], &made[0]), (&landings[2..3], &odd)]);
        assert!(
            read_file(&chunk_path(dir.path(), "facts")).column("county").is_ok(),
            "kept whole"
        );
        let (n, missing) = read_back(dir.path(), &[(&landings[0], 1), (&landings[2], 1)]);
        assert!(missing.is_empty());
        let expected = stacked([made[0].facts.clone(), odd.facts.clone()]);
        assert!(n.facts.equals_missing(&expected), "{}\n{expected}", n.facts);

        // Facts not in their landings' order: kept whole too.
        let dir = tempfile::tempdir().unwrap();
        let mut both = Normalized {
            facts: stacked([made[2].facts.clone(), made[0].facts.clone()]),
            submissions: stacked([made[0].submissions.clone(), made[2].submissions.clone()]),
            ..made[0].clone()
        };
        both.quarantine = made[0].quarantine.clone();
        kept_in(dir.path(), &[(&[landings[0].clone(), landings[2].clone()], &both)]);
        assert!(
            read_file(&chunk_path(dir.path(), "facts")).column("township").is_ok(),
            "kept whole"
        );
        let (n, _) = read_back(dir.path(), &[(&landings[0], 1), (&landings[2], 1)]);
        assert!(n.facts.equals_missing(&both.facts));
    }

    /// A chunk whose landings' row counts do not add up to its facts (a
    /// file changed on disk) is made again: its landings come back missing,
    /// none of its rows taken, and no error.
    #[test]
    fn a_chunk_whose_row_counts_do_not_add_up_is_made_again() {
        let (landings, made) = five();
        let dir = tempfile::tempdir().unwrap();
        let each: Vec<(&[Landing], &Normalized)> = landings.chunks(1).zip(&made).collect();
        kept_in(dir.path(), &each);
        let path = chunk_path(dir.path(), "submission");
        let subs = read_file(&path);
        for counts in [
            [3i64, 0, 3, 0, 2],
            [3, 0, 3, 0, -3],
            [3, 0, 3, 1, 3],
            [3, 0, i64::MAX, 0, 3],
        ] {
            let mut changed = subs.clone();
            changed
                .with_column(Column::new(FACT_ROWS.into(), counts.to_vec()))
                .unwrap();
            write(&path, changed).unwrap();
            let mut kept = Kept::open(dir.path(), "cdpf-monthly", "fp").unwrap();
            let (n, missing) = kept.read(&[(&landings[0], 1), (&landings[4], 1)]).unwrap();
            assert_eq!(missing, vec![0, 1], "{counts:?}");
            assert_eq!((n.facts.height(), n.submissions.height()), (0, 0));
            assert!(!kept.has(&landings[0]), "forgotten, so that it is made again");
        }
    }

    /// Township `34112410<i>`'s landing of one value, `i`, and what
    /// normalize makes of it.
    fn one_value(cfg: &taizhang_transform::definition::Definition, i: usize) -> (Landing, Normalized) {
        let t = format!("34112410{i}");
        let doc = json!({"period": "2026-05", "values": [{"indicator": "白内障复明手术", "value": i}]});
        (landing(&t, &doc), normalized(cfg, &[(t.as_str(), "2026-05", doc)]))
    }

    #[test]
    fn a_read_begins_with_the_chunk_read_last_and_ends_with_its_largest() {
        let cfg = config();
        let dir = tempfile::tempdir().unwrap();
        let mut kept = Kept::open(dir.path(), "cdpf-monthly", "fp").unwrap();
        kept.chunk_landings = 3;
        // Chunk 1: three landings; chunk 2: one (what a run adds of the
        // reports resubmitted since).
        let landings: Vec<Landing> = (0..4)
            .map(|i| {
                let (l, n) = one_value(&cfg, i);
                kept.add(&l, n).unwrap();
                l
            })
            .collect();
        kept.flush().unwrap();
        let (big, small) = ((&landings[0], 1), (&landings[3], 1));
        // A chunk that can no longer be read (its facts file, which a read
        // orders the chunks by, left in place).
        let gone = |kept: &Kept, chunk: u64| {
            for part in &PARTS[1..] {
                std::fs::remove_file(kept.path(chunk, part)).unwrap();
            }
        };
        let values = |n: &Normalized| -> Vec<f64> {
            n.facts
                .column("value")
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect()
        };
        // Both chunks, the small one in front: the largest is read last and
        // stays in memory (its files gone, it is still read); the rows come
        // in the order of the chunks. (Chunks of three landings: neither is
        // small enough to be kept through the run.)
        let mut kept = Kept::open(dir.path(), "cdpf-monthly", "fp").unwrap();
        kept.chunk_landings = 3;
        let (n, missing) = kept.read(&[small, big]).unwrap();
        assert!(missing.is_empty());
        assert_eq!(values(&n), [0.0, 3.0]);
        gone(&kept, 1);
        let (n, missing) = kept.read(&[big]).unwrap();
        assert_eq!((values(&n), missing), (vec![0.0], vec![]));
        // The chunk in memory is read first, before the small one replaces
        // it.
        let (n, missing) = kept.read(&[big, small]).unwrap();
        assert_eq!((values(&n), missing), (vec![0.0, 3.0], vec![]));
        gone(&kept, 2);
        let (n, missing) = kept.read(&[small]).unwrap();
        assert_eq!((values(&n), missing), (vec![3.0], vec![]));
        let (n, missing) = kept.read(&[big]).unwrap();
        assert_eq!(
            (n.facts.height(), missing),
            (0, vec![0]),
            "read from disk, its files gone"
        );
    }

    #[test]
    fn small_chunks_once_read_are_kept_through_the_run_within_a_budget() {
        let cfg = config();
        let dir = tempfile::tempdir().unwrap();
        let mut kept = Kept::open(dir.path(), "cdpf-monthly", "fp").unwrap();
        // Six chunks of one landing each.
        let landings: Vec<Landing> = (0..6)
            .map(|i| {
                let (l, n) = one_value(&cfg, i);
                kept.add(&l, n).unwrap();
                kept.flush().unwrap();
                l
            })
            .collect();
        // A run whose chunks hold `full` landings: one of a quarter of
        // that or fewer is small.
        let open = |full: usize| {
            let mut kept = Kept::open(dir.path(), "cdpf-monthly", "fp").unwrap();
            kept.chunk_landings = full;
            kept
        };
        let read = |kept: &mut Kept, i: usize| {
            let (n, missing) = kept.read(&[(&landings[i], 1)]).unwrap();
            (n.facts.height(), missing.len())
        };
        let gone = |kept: &Kept, chunks: std::ops::RangeInclusive<u64>| {
            for c in chunks {
                for part in PARTS {
                    std::fs::remove_file(kept.path(c, part)).unwrap();
                }
            }
        };
        // Small ones, two read: both still read with their files gone.
        let mut kept = open(4);
        assert_eq!((read(&mut kept, 4), read(&mut kept, 5)), ((1, 0), (1, 0)));
        gone(&kept, 5..=6);
        assert_eq!((read(&mut kept, 4), read(&mut kept, 5)), ((1, 0), (1, 0)));
        // Not small: only the chunk read last is.
        let mut kept = open(3);
        assert_eq!((read(&mut kept, 2), read(&mut kept, 3)), ((1, 0), (1, 0)));
        gone(&kept, 3..=4);
        assert_eq!((read(&mut kept, 3), read(&mut kept, 2)), ((1, 0), (0, 1)));
        // The budget taken but for one chunk: the first read is kept, the
        // next only as the chunk read last.
        let mut kept = open(4);
        let size: usize = kept.chunk(1).unwrap().iter().map(DataFrame::estimated_size).sum();
        let mut kept = open(4);
        kept.small_bytes = SMALL_BUDGET - size;
        assert_eq!((read(&mut kept, 0), read(&mut kept, 1)), ((1, 0), (1, 0)));
        gone(&kept, 1..=2);
        assert_eq!((read(&mut kept, 0), read(&mut kept, 1)), ((1, 0), (1, 0)));
        assert_eq!(kept.small.len(), 1);
        assert_eq!(kept.cached.as_ref().map(|c| c.0), Some(2));
    }

    #[test]
    fn chunks_are_found_again_after_reopening_and_an_unreadable_one_is_made_again() {
        let cfg = config();
        let dir = tempfile::tempdir().unwrap();
        let docs: Vec<(String, serde_json::Value)> = (0..5)
            .map(|i| {
                let t = format!("34112410{i}");
                let doc = json!({"period": "2026-05", "values": [{"indicator": "白内障复明手术", "value": i}]});
                (t, doc)
            })
            .collect();
        let mut kept = Kept::open(dir.path(), "cdpf-monthly", "fp").unwrap();
        kept.chunk_landings = 2;
        let landings: Vec<Landing> = docs.iter().map(|(t, d)| landing(t, d)).collect();
        for ((t, d), l) in docs.iter().zip(&landings) {
            let n = normalized(&cfg, &[(t.as_str(), "2026-05", d.clone())]);
            kept.add(l, n).unwrap();
        }
        kept.flush().unwrap();
        // A file a killed process was writing.
        std::fs::write(
            dir.path().join("normalized/cdpf-monthly/fp/chunk-00000009.facts.tmp-1"),
            b"x",
        )
        .unwrap();

        let mut kept = Kept::open(dir.path(), "cdpf-monthly", "fp").unwrap();
        assert!(
            !dir.path()
                .join("normalized/cdpf-monthly/fp/chunk-00000009.facts.tmp-1")
                .exists()
        );
        assert!(landings.iter().all(|l| kept.has(l)), "three chunks, all indexed");
        let wanted = [(&landings[0], 1), (&landings[3], 2), (&landings[4], 1)];
        let (n, missing) = kept.read(&wanted).unwrap();
        assert!(missing.is_empty());
        assert_eq!(n.facts.height(), 3);
        assert_eq!(n.submissions.height(), 3);
        let mut versions: Vec<i64> = n
            .submissions
            .column("versions_landed")
            .unwrap()
            .i64()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        versions.sort();
        assert_eq!(versions, vec![1, 1, 2], "versions_landed as asked");

        // The chunk holding landings 2 and 3 is damaged: they come back missing.
        let damaged = dir
            .path()
            .join("normalized/cdpf-monthly/fp/chunk-00000002.facts.parquet");
        std::fs::write(&damaged, b"not parquet").unwrap();
        let mut kept = Kept::open(dir.path(), "cdpf-monthly", "fp").unwrap();
        let (n, missing) = kept.read(&wanted).unwrap();
        assert_eq!(missing, vec![1]);
        assert_eq!(n.facts.height(), 2);
        assert!(!kept.has(&landings[3]), "forgotten, so that it is made again");

        // The index sends landing 4 to a chunk that does not hold it (a
        // chunk written over, or keys whose hashes collide): it comes back
        // missing, with none of the chunk's other rows.
        let elsewhere = kept.index[&key(&landings[0])];
        kept.index.insert(key(&landings[4]), elsewhere);
        let (n, missing) = kept.read(&[(&landings[4], 1)]).unwrap();
        assert_eq!(missing, vec![0]);
        assert_eq!((n.facts.height(), n.submissions.height()), (0, 0));
        assert!(!kept.has(&landings[4]), "forgotten, so that it is made again");

        // Another fingerprint: everything kept for this one is gone.
        Kept::open(dir.path(), "cdpf-monthly", "other").unwrap();
        assert!(!dir.path().join("normalized/cdpf-monthly/fp").exists());
    }
}
