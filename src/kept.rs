//! Kept normalization: what normalize made of each landed body, stored once
//! so that no later run parses it again. Under
//! `<state_dir>/normalized/<program>/<fingerprint>/`, results are kept in
//! chunks of up to [`CHUNK_LANDINGS`] landings
//! (`chunk-<n>.{facts,quarantine,extractions,submission}.parquet`), valid for one
//! [`crate::config::Loaded::normalize_fingerprint`]: a catalog, registry,
//! mapping, limit or code change makes them again. Every row carries its
//! landing's township and body sha256, so a run reads the rows of the
//! landings it wants from the chunks that hold them. A chunk's `submission`
//! file is written last: a chunk counts only once it is complete, and a file
//! that cannot be read makes its landings be normalized again, never an error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use polars::io::parquet::write::StatisticsOptions;
use polars::prelude::*;
use taizhang_model::Landing;
use taizhang_transform::text::{Texts, like_before};

use crate::normalize::Normalized;

/// Landings per chunk: a few hundred thousand fact rows.
pub const CHUNK_LANDINGS: usize = 2000;

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
    /// The chunk read last (consecutive batches share a boundary chunk).
    cached: Option<(u64, [DataFrame; 4])>,
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
        let stack = |pick: fn(&Normalized) -> &DataFrame| -> Result<DataFrame, KeptError> {
            let mut it = pending.iter().map(|(_, n)| pick(n));
            let mut out = it.next().expect("pending is not empty").clone();
            for f in it {
                out.vstack_mut(f).map_err(|e| err(&self.dir, e))?;
            }
            Ok(out)
        };
        let frames = [
            stack(|n| &n.facts)?,
            stack(|n| &n.quarantine)?,
            stack(|n| &n.extractions)?,
            stack(|n| &n.submissions)?,
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
        let read = |part: &str| -> Option<DataFrame> {
            let f = std::fs::File::open(self.path(chunk, part)).ok()?;
            ParquetReader::new(f).finish().ok()
        };
        let frames = [read(PARTS[0])?, read(PARTS[1])?, read(PARTS[2])?, read(PARTS[3])?];
        self.cached = Some((chunk, frames.clone()));
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
        let mut parts: [Vec<DataFrame>; 4] = Default::default();
        for (chunk, idx) in by_chunk {
            let Some(frames) = self.chunk(chunk) else {
                for i in idx {
                    self.index.remove(&key(wanted[i].0));
                    missing.push(i);
                }
                continue;
            };
            let keys = DataFrame::new_infer_height(vec![
                Column::new(
                    "township".into(),
                    idx.iter().map(|i| wanted[*i].0.township.clone()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "source_sha256".into(),
                    idx.iter().map(|i| wanted[*i].0.sha256.clone()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "versions_landed".into(),
                    idx.iter().map(|i| wanted[*i].1 as i64).collect::<Vec<_>>(),
                ),
            ])
            .map_err(|e| err(&self.dir, e))?;
            let on = [col("township"), col("source_sha256")];
            let pick = |frame: &DataFrame, how: JoinType| -> Result<DataFrame, KeptError> {
                frame
                    .clone()
                    .lazy()
                    .join(keys.clone().lazy(), on.clone(), on.clone(), JoinArgs::new(how))
                    .collect()
                    .map_err(|e| err(&self.dir, e))
            };
            let [facts, quarantine, extractions, submissions] = frames;
            let subs = submissions.drop("versions_landed").map_err(|e| err(&self.dir, e))?;
            let subs = pick(&subs, JoinType::Inner)?;
            // Every kept landing has its submission row: one the index
            // sent here without it (a chunk written over, keys whose hashes
            // collide) is normalized again, and none of its rows is taken.
            let mut mine: HashSet<(&str, &str)> = HashSet::with_capacity(idx.len());
            {
                let (t, h) = (
                    subs.column("township")
                        .and_then(|c| c.str())
                        .map_err(|e| err(&self.dir, e))?,
                    subs.column("source_sha256")
                        .and_then(|c| c.str())
                        .map_err(|e| err(&self.dir, e))?,
                );
                let found: HashSet<(&str, &str)> = t.iter().zip(h.iter()).filter_map(|(t, h)| Some((t?, h?))).collect();
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
            for (part, frame) in parts.iter_mut().zip([&facts, &quarantine, &extractions]) {
                part.push(rows_of(frame, &mine).map_err(|e| err(&self.dir, e))?);
            }
            parts[3].push(subs);
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
