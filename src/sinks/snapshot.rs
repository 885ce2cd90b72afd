//! The warehouse as immutable snapshots: every run that changes a table
//! writes a complete new snapshot aside, then one pointer swap publishes it.
//!
//! ```text
//! <warehouse>/
//!   current -> snapshots/00000042       the pointer (a symlink, swapped with rename(2))
//!   snapshots/00000042/_manifest.json   run, programs, every file with its table and rows
//!   snapshots/00000042/facts/<indicator>/year=2026/part-<program>-<hash>.parquet
//!   snapshots/00000042/rollup_county/year=2026/part-<program>-<hash>.parquet
//!   facts -> current/facts              one link per top-level table, so that
//!   rollup_county -> current/rollup_county   paths of the earlier layout still read
//! ```
//!
//! File names carry the first 16 hex digits of the file's sha256, so a name
//! means one content: a file a run does not change is hard-linked from the
//! previous snapshot (no copy), and a reader that listed files under
//! `current/` just before a swap either opens the same bytes or fails loudly
//! on a name that is gone; it never mixes two runs' rows.
//!
//! The commit point is the state store (see `State::commit`): a snapshot is
//! sealed (durable, complete, not yet visible), the state store records it
//! with the run's check and alert state in one transaction, then the pointer
//! is swapped. A process killed in between leaves a sealed snapshot that the
//! next run either publishes (the state store says it was committed) or
//! removes (it was not), together with any `.staging` leftovers.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::parquet::{
    Encoded, PublishError, PublishReport, Table, encode_batch, encode_frame, fingerprint, table_batch, verify,
};
use super::{Owner, TableSink};

const SNAPSHOTS: &str = "snapshots";
const CURRENT: &str = "current";
const MANIFEST: &str = "_manifest.json";
const STAGING_SUFFIX: &str = ".staging";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One snapshot's table of contents (`_manifest.json` at its root).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format (1).
    pub format: u32,
    /// The snapshot's sequence number (its directory name).
    pub snapshot: u64,
    /// The state store's id of the run that wrote it.
    pub run_id: i64,
    /// The run's clock (RFC 3339).
    pub now: String,
    /// Programs whose files this run replaced.
    pub programs: Vec<String>,
    /// Every file of the snapshot.
    pub files: Vec<FileEntry>,
}

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the snapshot root.
    pub path: String,
    /// Table name (`facts/cataract_surgery`, `rollup_county`, …).
    pub table: String,
    /// The program whose rows it holds; null for tables every program shares.
    pub program: Option<String>,
    /// The batch (a province and period; a period for rollups) whose rows it holds;
    /// null for a program's whole table.
    #[serde(default)]
    pub batch: Option<String>,
    /// Rows.
    pub rows: u64,
    /// Fingerprint of what the file holds (see `parquet::fingerprint`): a
    /// later run whose rows for the same file have the same fingerprint
    /// links this file instead of encoding a new one.
    #[serde(default)]
    pub input: String,
}

/// The snapshots of one warehouse directory.
#[derive(Debug, Clone)]
pub struct Snapshots {
    root: PathBuf,
    access: crate::private::Access,
}

/// What [`Snapshots::recover`] cleaned up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Unsealed staging directories removed.
    pub staging_removed: usize,
    /// Sealed snapshots no committed run published, removed.
    pub uncommitted_removed: usize,
    /// The pointer was rolled forward to the committed snapshot.
    pub rolled_forward: bool,
}

fn seq_name(seq: u64) -> String {
    format!("{seq:08}")
}

/// Makes a directory's entries durable.
fn sync_dir(dir: &Path) -> Result<(), PublishError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Snapshots {
    /// The snapshots of `warehouse` (nothing is created until a run seals one).
    pub fn new(warehouse: &Path) -> Snapshots {
        Snapshots {
            root: warehouse.to_path_buf(),
            access: crate::private::Access::default(),
        }
    }

    /// The same, sealing snapshots with `access`'s modes.
    pub fn with_access(mut self, access: crate::private::Access) -> Snapshots {
        self.access = access;
        self
    }

    fn dir(&self) -> PathBuf {
        self.root.join(SNAPSHOTS)
    }

    /// The directory of snapshot `seq`.
    pub fn path(&self, seq: u64) -> PathBuf {
        self.dir().join(seq_name(seq))
    }

    /// The published snapshot: where `current` points.
    pub fn current(&self) -> Option<u64> {
        let target = std::fs::read_link(self.root.join(CURRENT)).ok()?;
        target.file_name()?.to_str()?.parse().ok()
    }

    /// A snapshot's manifest.
    pub fn manifest(&self, seq: u64) -> Result<Manifest, PublishError> {
        let path = self.path(seq).join(MANIFEST);
        let text = std::fs::read(&path).map_err(io(&path))?;
        serde_json::from_slice(&text).map_err(|e| PublishError::Verify {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Sealed snapshots on disk, by sequence number.
    fn sealed(&self) -> Result<Vec<u64>, PublishError> {
        let dir = self.dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(vec![]);
        };
        let mut out: Vec<u64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Brings the directory in line with the state store after whatever
    /// happened to the last process: removes staging leftovers and sealed
    /// snapshots that were never committed, and points `current` at
    /// `committed` (the state store's published snapshot) if it does not yet.
    /// Call it holding the run lock.
    pub fn recover(&self, committed: Option<u64>) -> Result<Recovery, PublishError> {
        let mut r = Recovery::default();
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(&format!("{CURRENT}.tmp")) {
                    std::fs::remove_file(e.path()).map_err(io(&e.path()))?;
                }
            }
        }
        // Without a commit (the first run died between its seal and its
        // commit, or the state store was made anew), what is newer than the
        // pointer was never published; without a pointer, nothing was.
        let bound = committed.or(self.current());
        if let Ok(entries) = std::fs::read_dir(self.dir()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let uncommitted = name
                    .parse::<u64>()
                    .ok()
                    .is_some_and(|seq| bound.is_none_or(|c| seq > c));
                if name.ends_with(STAGING_SUFFIX) || uncommitted {
                    std::fs::remove_dir_all(e.path()).map_err(io(&e.path()))?;
                    if uncommitted {
                        r.uncommitted_removed += 1;
                    } else {
                        r.staging_removed += 1;
                    }
                }
            }
        }
        if let Some(c) = committed
            && self.current() != Some(c)
            && self.path(c).is_dir()
        {
            self.publish(c)?;
            r.rolled_forward = true;
        }
        Ok(r)
    }

    /// What an interrupted run left that [`Snapshots::recover`] would
    /// remove: staging directories and pointer temporaries.
    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (dir, pick) in [
            (self.dir(), (|n: &str| n.ends_with(STAGING_SUFFIX)) as fn(&str) -> bool),
            (self.root.clone(), |n: &str| n.starts_with("current.tmp")),
        ] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().to_string();
                    if pick(&name) {
                        out.push(e.path().display().to_string());
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Starts the next snapshot for a run that replaces `programs`' files.
    pub fn begin(&self, run_id: i64, now: &str, programs: &[String]) -> Result<Staging, PublishError> {
        let last = self.sealed()?.last().copied().max(self.current()).unwrap_or(0);
        let seq = last + 1;
        let dir = self.dir().join(format!("{}{STAGING_SUFFIX}", seq_name(seq)));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let spill = self.dir().join(format!("{}-spill{STAGING_SUFFIX}", seq_name(seq)));
        if spill.exists() {
            std::fs::remove_dir_all(&spill).map_err(io(&spill))?;
        }
        let prev = match self.current() {
            Some(c) => Some((self.path(c), self.manifest(c)?)),
            None => None,
        };
        let prev_at = prev
            .iter()
            .flat_map(|(_, m)| m.files.iter().enumerate().map(|(i, f)| (f.path.clone(), i)))
            .collect();
        Ok(Staging {
            snaps: self.clone(),
            seq,
            dir,
            prev,
            prev_at,
            spill,
            manifest: Manifest {
                format: 1,
                snapshot: seq,
                run_id,
                now: now.to_string(),
                programs: programs.to_vec(),
                files: vec![],
            },
            dirs: BTreeSet::new(),
            report: PublishReport::default(),
            syncer: Syncer::spawn(),
        })
    }

    /// Publishes sealed snapshot `seq`: swaps `current` to it in one
    /// rename(2), then makes sure every top-level table path links through
    /// `current` (replacing a directory of the earlier, in-place layout).
    pub fn publish(&self, seq: u64) -> Result<(), PublishError> {
        let tmp = self.root.join(format!("{CURRENT}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let target = Path::new(SNAPSHOTS).join(seq_name(seq));
        std::os::unix::fs::symlink(&target, &tmp).map_err(io(&tmp))?;
        let cur = self.root.join(CURRENT);
        std::fs::rename(&tmp, &cur).map_err(io(&cur))?;
        sync_dir(&self.root)?;
        let manifest = self.manifest(seq)?;
        let tops: BTreeSet<&str> = manifest
            .files
            .iter()
            .filter_map(|f| f.table.split('/').next())
            .collect();
        for top in tops {
            let link = self.root.join(top);
            let want = Path::new(CURRENT).join(top);
            match std::fs::symlink_metadata(&link) {
                Ok(m) if m.file_type().is_symlink() => {
                    if std::fs::read_link(&link).ok().as_deref() == Some(want.as_path()) {
                        continue;
                    }
                    std::fs::remove_file(&link).map_err(io(&link))?;
                }
                // A table directory of the in-place layout: derived data,
                // superseded by the snapshot just published.
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&link).map_err(io(&link))?,
                Ok(_) => std::fs::remove_file(&link).map_err(io(&link))?,
                Err(_) => {}
            }
            std::os::unix::fs::symlink(&want, &link).map_err(io(&link))?;
        }
        Ok(())
    }

    /// Removes published snapshots older than the newest `keep` (never the
    /// current one). Returns how many were removed.
    pub fn retain(&self, keep: usize) -> Result<usize, PublishError> {
        let current = self.current();
        let all: Vec<u64> = self.sealed()?.into_iter().filter(|s| Some(*s) <= current).collect();
        let drop_n = all.len().saturating_sub(keep.max(1));
        for seq in &all[..drop_n] {
            let p = self.path(*seq);
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
        }
        Ok(drop_n)
    }
}

/// A snapshot being written: not visible to any reader.
#[derive(Debug)]
pub struct Staging {
    snaps: Snapshots,
    seq: u64,
    dir: PathBuf,
    prev: Option<(PathBuf, Manifest)>,
    /// Where each file of `prev` is in its list, by path: a national year
    /// carries 11,575 files, each looked up.
    prev_at: std::collections::HashMap<String, usize>,
    /// Where encoders write files before they are given (see
    /// `TableSink::spill_dir`): beside the staging directory, named like
    /// one (a run that dies leaves it to the next run's clean-up).
    spill: PathBuf,
    manifest: Manifest,
    dirs: BTreeSet<PathBuf>,
    report: PublishReport,
    /// Makes the new files durable beside the run (see [`Syncer`]).
    syncer: Syncer,
}

/// New files of a staging snapshot made durable on a thread of their own,
/// in the order they were written: a national month's ~1,040 files each
/// waited ~0.5 ms in `fsync` on the run's thread, which meanwhile finishes
/// batches. [`Syncer::finish`] waits for every file given, so a snapshot
/// is still sealed only once all of its files are durable. At most
/// [`SYNC_QUEUE`] files wait (each holds a descriptor); without the
/// thread (it could not be started), each file is synced where it is given.
#[derive(Debug)]
struct Syncer {
    give: Option<std::sync::mpsc::SyncSender<(PathBuf, std::fs::File)>>,
    job: Option<std::thread::JoinHandle<Result<(), PublishError>>>,
}

/// See [`Syncer`].
const SYNC_QUEUE: usize = 64;

impl Syncer {
    fn spawn() -> Syncer {
        let (give, files) = std::sync::mpsc::sync_channel::<(PathBuf, std::fs::File)>(SYNC_QUEUE);
        let job = std::thread::Builder::new()
            .name("sync published".into())
            .spawn(move || {
                // The first error stops the thread; the next file given sees
                // it closed and reads the error from `finish`.
                for (path, f) in files {
                    f.sync_all().map_err(io(&path))?;
                }
                Ok(())
            });
        match job {
            Ok(job) => Syncer {
                give: Some(give),
                job: Some(job),
            },
            Err(e) => {
                tracing::debug!(error = %e, "Cannot start a thread to sync published files; each is synced as it is written.");
                Syncer { give: None, job: None }
            }
        }
    }

    /// Makes `f` (at `path`) durable, here or on the thread.
    fn sync(&mut self, path: &Path, f: std::fs::File) -> Result<(), PublishError> {
        let Some(give) = &self.give else {
            return f.sync_all().map_err(io(path));
        };
        match give.send((path.to_path_buf(), f)) {
            Ok(()) => Ok(()),
            // The thread stopped at an error: that error.
            Err(std::sync::mpsc::SendError((_, f))) => {
                self.finish()?;
                f.sync_all().map_err(io(path))
            }
        }
    }

    /// Waits until every file given is durable: the first error, if any.
    fn finish(&mut self) -> Result<(), PublishError> {
        self.give = None;
        match self.job.take().map(std::thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(PublishError::Io {
                path: "(the thread syncing published files)".into(),
                source: std::io::Error::other("it panicked"),
            }),
        }
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        // A staging snapshot dropped unsealed (an error): its files need not
        // be durable, but its thread is not left behind.
        let _ = self.finish();
    }
}

/// A sealed snapshot, ready to be committed and published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Its sequence number; None when it would equal the published one
    /// (nothing to publish; the staging directory is gone).
    pub seq: Option<u64>,
    /// Files written and linked.
    pub report: PublishReport,
}

impl Staging {
    fn mkdirs(&mut self, dir: &Path) -> Result<(), PublishError> {
        if self.dirs.insert(dir.to_path_buf()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        Ok(())
    }

    /// Links `rel` from the previous snapshot (copies where links are not
    /// possible).
    fn link_prev(&mut self, prev_dir: &Path, rel: &str) -> Result<(), PublishError> {
        let (from, to) = (prev_dir.join(rel), self.dir.join(rel));
        self.mkdirs(to.parent().expect("files have a directory"))?;
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(io(&from))?;
        }
        Ok(())
    }

    /// Completes the snapshot: carries over the previous snapshot's files of
    /// programs this run did not replace, writes the manifest and makes
    /// everything durable, then renames the staging directory into place.
    pub fn seal(mut self) -> Result<Sealed, PublishError> {
        self.syncer.finish()?;
        // Every file spilled was given (moved or removed): what is left was
        // not (an encoder's, after an error).
        if self.spill.exists() {
            std::fs::remove_dir_all(&self.spill).map_err(io(&self.spill))?;
        }
        if let Some((prev_dir, prev)) = self.prev.take() {
            for f in &prev.files {
                let kept = f.program.as_ref().is_some_and(|p| !self.manifest.programs.contains(p));
                if kept {
                    self.link_prev(&prev_dir, &f.path)?;
                    self.manifest.files.push(f.clone());
                }
            }
            let mut mine = self.manifest.files.clone();
            mine.sort();
            let mut theirs = prev.files.clone();
            theirs.sort();
            if mine == theirs {
                std::fs::remove_dir_all(&self.dir).map_err(io(&self.dir))?;
                return Ok(Sealed {
                    seq: None,
                    report: self.report,
                });
            }
        }
        self.manifest.files.sort();
        let path = self.dir.join(MANIFEST);
        let text = serde_json::to_vec_pretty(&self.manifest).expect("a manifest serializes");
        let mut f = std::fs::File::create(&path).map_err(io(&path))?;
        f.write_all(&text).map_err(io(&path))?;
        f.sync_all().map_err(io(&path))?;
        for d in self.dirs.iter().rev() {
            sync_dir(d)?;
        }
        sync_dir(&self.dir)?;
        // Readers as `warehouse.access` says, whatever the umask (modes do
        // not need to be durable before the rename: a crash leaves no reader).
        crate::private::share(&self.dir, self.snaps.access).map_err(io(&self.dir))?;
        for d in [&self.snaps.root, &self.snaps.dir()] {
            let (mode, _) = self.snaps.access.modes();
            // A warehouse directory the operator made (and owns) stays as
            // they set it; ours takes the mode.
            if let Err(e) = crate::private::restrict_exact(d, mode) {
                tracing::warn!(dir = %d.display(), error = %e, "Cannot set the warehouse directory's mode; readers may not reach it.");
            }
        }
        let dest = self.snaps.path(self.seq);
        std::fs::rename(&self.dir, &dest).map_err(io(&dest))?;
        sync_dir(&self.snaps.dir())?;
        Ok(Sealed {
            seq: Some(self.seq),
            report: self.report,
        })
    }
}

/// Tables with a column the run's clock moves (`last_fetched_at`,
/// `last_seen`).
const CLOCKED_TABLES: [&str; 3] = ["landings", "check_results", "alerts"];

/// How a manifest's `input` says a file was named by its encoded bytes
/// (`bytes:<sha256>`), not by a fingerprint of its rows.
const BY_BYTES: &str = "bytes:";

fn file_name(owner: Owner<'_>, hash: &str) -> String {
    // Program names come from the operator's pipeline files; keep them to
    // characters every file system and URL takes.
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let mut name = String::from("part-");
    for part in [owner.program, owner.batch].into_iter().flatten() {
        name.push_str(&safe(part));
        name.push('-');
    }
    format!("{name}{hash}.parquet")
}

impl TableSink for Staging {
    fn carry(&mut self, files: &[FileEntry]) -> Result<bool, PublishError> {
        let Some((prev_dir, prev)) = &self.prev else {
            return Ok(false);
        };
        let in_prev = |f: &FileEntry| self.prev_at.get(&f.path).is_some_and(|&i| prev.files[i] == *f);
        if !files.iter().all(in_prev) {
            return Ok(false);
        }
        let prev_dir = prev_dir.clone();
        for f in files {
            self.link_prev(&prev_dir, &f.path)?;
            self.report.unchanged += 1;
            self.report.rows += f.rows as usize;
            self.manifest.files.push(f.clone());
        }
        Ok(true)
    }

    fn files_of(&self, program: &str, batch: &str) -> Vec<FileEntry> {
        self.manifest
            .files
            .iter()
            .filter(|f| f.program.as_deref() == Some(program) && f.batch.as_deref() == Some(batch))
            .cloned()
            .collect()
    }

    fn shared_file(&self, table: &str) -> Option<FileEntry> {
        self.manifest
            .files
            .iter()
            .find(|f| f.table == table && f.program.is_none() && f.batch.is_none())
            .cloned()
    }

    fn write_file(&mut self, t: &Table<'_>, year: Option<i32>, owner: Owner<'_>) -> Result<(), PublishError> {
        let prepared = self.prepare(t, year, owner)?;
        self.place(t, owner, prepared, t.frame.height())
    }

    fn write_encoded(
        &mut self,
        t: &Table<'_>,
        year: Option<i32>,
        owner: Owner<'_>,
        encoded: Encoded,
        rows: usize,
    ) -> Result<(), PublishError> {
        let (sha256, body) = match encoded {
            Encoded::Bytes(bytes) => (crate::land::sha256_hex(&bytes), Body::Bytes(bytes)),
            Encoded::File { path, sha256 } => (sha256, Body::File(path)),
        };
        let prepared = Prepared {
            dir: table_dir(t, year),
            input: format!("{BY_BYTES}{sha256}"),
            body,
        };
        self.place(t, owner, prepared, rows)
    }

    fn spill_dir(&self) -> Option<PathBuf> {
        Some(self.spill.clone())
    }

    /// Encodes (or fingerprints) the files on every core at once, then adds
    /// them one by one: a batch's thirty files were the main thread's
    /// longest work while the next batch computed.
    fn write_files(&mut self, files: &[(Table<'_>, Option<i32>)], owner: Owner<'_>) -> Result<(), PublishError> {
        let this = &*self;
        let prepared = on_every_core(files, |(t, year)| this.prepare(t, *year, owner));
        for ((t, _), p) in files.iter().zip(prepared) {
            self.place(t, owner, p?, t.frame.height())?;
        }
        Ok(())
    }
}

/// What a file of a table will be: where it goes, what names it, and its
/// bytes when they were encoded to name it (else its rows, to encode).
struct Prepared {
    dir: PathBuf,
    input: String,
    body: Body,
}

/// A file's content: its bytes, the file of the spill directory they were
/// written to (compared and named by the sha256 in its `input`), or its
/// rows (to encode).
enum Body {
    Bytes(Vec<u8>),
    File(PathBuf),
    Rows(arrow::array::RecordBatch),
}

impl Staging {
    /// The file of the previous snapshot `t`'s file could be linked to: it
    /// was named by a fingerprint, or by its encoded bytes.
    fn candidate(&self, t: &Table<'_>, dir: &Path, owner: Owner<'_>) -> Option<&FileEntry> {
        self.prev
            .as_ref()
            .and_then(|(_, m)| m.files.iter().find(|f| same_slot(f, t, dir, owner)))
    }

    /// Names a file (by a fingerprint of its rows or by its encoded bytes);
    /// reads nothing but the previous snapshot's manifest.
    fn prepare(&self, t: &Table<'_>, year: Option<i32>, owner: Owner<'_>) -> Result<Prepared, PublishError> {
        let dir = table_dir(t, year);
        // Tables whose rows carry the run's clock change almost every run:
        // their encoded bytes are compared instead of a fingerprint that
        // would only be computed to differ. So are a batch's files: an
        // unchanged batch is carried whole (never encoded), so a batch that
        // is computed has changed, and its files are encoded anyway.
        let by_bytes = CLOCKED_TABLES.contains(&t.name.as_str())
            || match self.candidate(t, &dir, owner) {
                Some(f) => f.input.starts_with(BY_BYTES),
                None => owner.batch.is_some(),
            };
        let (input, body) = match by_bytes {
            true => {
                let bytes = encode_frame(t)?;
                (
                    format!("{BY_BYTES}{}", crate::land::sha256_hex(&bytes)),
                    Body::Bytes(bytes),
                )
            }
            false => {
                let batch = table_batch(t)?;
                (fingerprint(t, &batch)?, Body::Rows(batch))
            }
        };
        Ok(Prepared { dir, input, body })
    }

    /// Adds a prepared file: linked from the previous snapshot when it is
    /// the same file there, written (encoded now if it was not) otherwise.
    fn place(&mut self, t: &Table<'_>, owner: Owner<'_>, prepared: Prepared, rows: usize) -> Result<(), PublishError> {
        let Prepared { dir, input, body } = prepared;
        // The same file in the previous snapshot: same table, partition,
        // program and fingerprint. Linked, not encoded.
        let same = self.prev.as_ref().and_then(|(prev_dir, m)| {
            m.files
                .iter()
                .find(|f| f.input == input && same_slot(f, t, &dir, owner))
                .map(|f| (prev_dir.clone(), f.path.clone()))
        });
        let rel = match same {
            Some((prev_dir, rel)) => {
                if let Body::File(spilled) = &body {
                    std::fs::remove_file(spilled).map_err(io(spilled))?;
                }
                self.link_prev(&prev_dir, &rel)?;
                self.report.unchanged += 1;
                rel
            }
            None => {
                // A file compared by its bytes is named by their sha256,
                // already in `input`: not hashed again.
                let named = input.strip_prefix(BY_BYTES);
                let rel = match body {
                    Body::File(spilled) => {
                        // Always given with its bytes' sha256 (`write_encoded`).
                        let sha256 = named.ok_or_else(|| PublishError::Encode {
                            table: t.name.clone(),
                            reason: format!("{}: a spilled file without its sha256", spilled.display()),
                        })?;
                        let (rel, path) = self.new_file(&dir, owner, sha256)?;
                        std::fs::rename(&spilled, &path).map_err(io(&path))?;
                        let f = std::fs::File::open(&path).map_err(io(&path))?;
                        self.syncer.sync(&path, f)?;
                        rel
                    }
                    Body::Bytes(bytes) => self.write_new(&dir, owner, &bytes, named)?,
                    Body::Rows(batch) => self.write_new(&dir, owner, &encode_batch(t, &batch)?, None)?,
                };
                verify(&self.dir.join(&rel), rows, &t.name)?;
                self.report.written += 1;
                rel.to_string_lossy().to_string()
            }
        };
        self.report.rows += rows;
        self.manifest.files.push(FileEntry {
            path: rel,
            table: t.name.clone(),
            program: owner.program.map(str::to_string),
            batch: owner.batch.map(str::to_string),
            rows: rows as u64,
            input,
        });
        Ok(())
    }
}

impl Staging {
    /// Where a new file of `dir` named by `sha256` goes (its directory
    /// made): its path in the snapshot, and on disk.
    fn new_file(&mut self, dir: &Path, owner: Owner<'_>, sha256: &str) -> Result<(PathBuf, PathBuf), PublishError> {
        let rel = dir.join(file_name(owner, &sha256[..16]));
        let path = self.dir.join(&rel);
        self.mkdirs(path.parent().expect("files have a directory"))?;
        Ok((rel, path))
    }

    /// Writes `bytes` (whose sha256 is `sha256`, computed when None) as a
    /// new file of `dir` named by it, and syncs it; its path in the
    /// snapshot.
    fn write_new(
        &mut self,
        dir: &Path,
        owner: Owner<'_>,
        bytes: &[u8],
        sha256: Option<&str>,
    ) -> Result<PathBuf, PublishError> {
        let sha256 = sha256.map_or_else(|| crate::land::sha256_hex(bytes), str::to_string);
        let (rel, path) = self.new_file(dir, owner, &sha256)?;
        let mut f = std::fs::File::create(&path).map_err(io(&path))?;
        f.write_all(bytes).map_err(io(&path))?;
        self.syncer.sync(&path, f)?;
        Ok(rel)
    }
}

/// The directory of `t`'s files of `year` in a snapshot.
fn table_dir(t: &Table<'_>, year: Option<i32>) -> PathBuf {
    let mut dir = PathBuf::from(&t.name);
    if let Some(y) = year {
        dir.push(format!("year={y}"));
    }
    dir
}

/// Whether `f` is the file of `t`'s table, partition (`dir`) and owner.
fn same_slot(f: &FileEntry, t: &Table<'_>, dir: &Path, owner: Owner<'_>) -> bool {
    f.table == t.name
        && f.program.as_deref() == owner.program
        && f.batch.as_deref() == owner.batch
        && Path::new(&f.path).parent() == Some(dir)
}

/// `f` of each item, on as many threads as there are cores (and items), in
/// the items' order.
fn on_every_core<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;
    use taizhang_model::schema::{ColType, c};

    fn table<'a>(name: &str, df: &'a DataFrame) -> Table<'a> {
        Table {
            name: name.into(),
            description: "test".into(),
            columns: vec![c("v", ColType::F64, "v")],
            metadata: vec![],
            frame: df,
        }
    }

    fn stage(s: &Snapshots, programs: &[&str], rows: &[(&str, Option<&str>, f64)]) -> Sealed {
        let programs: Vec<String> = programs.iter().map(|p| p.to_string()).collect();
        let mut st = s.begin(1, "2026-07-10T00:00:00Z", &programs).unwrap();
        for (name, program, v) in rows {
            let df = df!("year" => [2026i32], "v" => [*v]).unwrap();
            let owner = Owner {
                program: *program,
                batch: None,
            };
            st.write_by_year(&table(name, &df), owner, 2026).unwrap();
        }
        st.seal().unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut out = vec![];
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        out.sort();
        out
    }

    /// Files given at once (encoded on every core) are the files given one
    /// by one: the same names, bytes, manifest entries and order, linked
    /// from the previous snapshot the same way.
    #[test]
    fn files_given_at_once_are_the_files_given_one_by_one() {
        let frames: Vec<DataFrame> = (0..9)
            .map(|i| df!("year" => [2025i32, 2026], "v" => [i as f64, -(i as f64)]).unwrap())
            .collect();
        let tables: Vec<Table<'_>> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| table(["facts/a", "facts/b", "quarantine"][i % 3], f))
            .collect();
        let files: Vec<(Table<'_>, Option<i32>)> = tables
            .iter()
            .zip(0..)
            .map(|(t, i)| (t.clone_with_frame(t.frame), Some(2020 + i)))
            .collect();
        let owner = Owner::batch("p", "34-2026-06");
        let run = |at_once: bool, previous: bool| {
            let dir = tempfile::tempdir().unwrap();
            let s = Snapshots::new(dir.path());
            let mut manifests = vec![];
            for round in [0, 1].into_iter().filter(|r| previous || *r == 1) {
                let mut st = s.begin(round + 1, "2026-07-10T00:00:00Z", &["p".to_string()]).unwrap();
                // The first round has the files of the even tables only.
                let these: Vec<_> = files
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| round == 1 || i % 2 == 0)
                    .map(|(_, (t, y))| (t.clone_with_frame(t.frame), *y))
                    .collect();
                match at_once {
                    true => st.write_files(&these, owner).unwrap(),
                    false => these.iter().for_each(|(t, y)| st.write_file(t, *y, owner).unwrap()),
                }
                let report = (st.report.written, st.report.unchanged);
                let sealed = st.seal().unwrap();
                s.publish(sealed.seq.unwrap()).unwrap();
                manifests.push((report, s.manifest(sealed.seq.unwrap()).unwrap().files));
            }
            let bytes: Vec<(String, Vec<u8>)> = files_of(&s.path(s.current().unwrap()));
            (manifests, bytes)
        };
        for previous in [false, true] {
            let (one_by_one, at_once) = (run(false, previous), run(true, previous));
            assert_eq!(at_once, one_by_one);
            assert_eq!(at_once.0.last().unwrap().1.len(), 9);
        }
        assert_eq!(
            run(true, true).0[1].0,
            (4, 5),
            "the second round links the five even files"
        );
    }

    /// A table encoded into the staging's spill directory is published
    /// as the same file (name, bytes, manifest entry) as one encoded in
    /// memory, linked like it when unchanged; no spilled file is left
    /// beside the snapshots, whether it was moved in, linked instead, or
    /// never given (a run that failed after encoding).
    #[test]
    fn a_table_spilled_while_encoded_is_published_as_one_encoded_in_memory() {
        let frames: Vec<DataFrame> = (0..3)
            .map(|i| df!("year" => [2025i32, 2026, 2026], "v" => [i as f64, 1.5, -(i as f64)]).unwrap())
            .collect();
        let owner = Owner::program("p");
        let run = |spill: bool| {
            let dir = tempfile::tempdir().unwrap();
            let s = Snapshots::new(dir.path());
            let mut rounds = vec![];
            for round in 1..=2 {
                let mut st = s.begin(round, "2026-07-10T00:00:00Z", &["p".to_string()]).unwrap();
                let spill_dir = st.spill_dir().unwrap();
                let mut enc = super::super::parquet::YearEncoder::new(&table("landings", &frames[0].clear()))
                    .spill_into(spill.then(|| spill_dir.clone()));
                // The second round gives 2026's rows again and 2025's changed.
                for f in &frames {
                    let changed = when(col("year").eq(lit(2025)))
                        .then(col("v") + lit(100.0))
                        .otherwise(col("v"));
                    let f = match round {
                        2 => f.clone().lazy().with_column(changed.alias("v")).collect().unwrap(),
                        _ => f.clone(),
                    };
                    enc.write(&f).unwrap();
                }
                // An encoder whose files are never given (its run failed).
                let mut lost = super::super::parquet::YearEncoder::new(&table("check_results", &frames[0].clear()))
                    .spill_into(spill.then(|| spill_dir.clone()));
                lost.write(&frames[0]).unwrap();
                let t = table("landings", &frames[0]);
                for (y, file, rows) in enc.finish(2026).unwrap() {
                    assert_eq!(matches!(file, super::super::parquet::Encoded::File { .. }), spill);
                    st.write_encoded(&t, Some(y), owner, file, rows).unwrap();
                }
                drop(lost);
                let report = (st.report.written, st.report.unchanged);
                let sealed = st.seal().unwrap();
                assert!(!spill_dir.exists(), "{}", spill_dir.display());
                s.publish(sealed.seq.unwrap()).unwrap();
                let manifest = s.manifest(sealed.seq.unwrap()).unwrap().files;
                let files = files_of(&s.path(s.current().unwrap()));
                // A file is named by the first 16 hex digits of its bytes'
                // sha256.
                for (name, bytes) in &files {
                    assert!(
                        name.ends_with(&format!("-{}.parquet", &crate::land::sha256_hex(bytes)[..16])),
                        "{name}"
                    );
                }
                rounds.push((report, manifest, files));
            }
            let left: Vec<String> = std::fs::read_dir(s.dir())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.contains("spill"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
            rounds
        };
        let (spilled, in_memory) = (run(true), run(false));
        assert_eq!(spilled, in_memory);
        assert_eq!(spilled[0].0, (2, 0));
        assert_eq!(spilled[1].0, (1, 1), "2026's file is linked, 2025's written");
        assert_eq!(spilled[1].1.iter().map(|f| f.rows).sum::<u64>(), 9);
    }

    fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
        files(dir)
            .into_iter()
            .filter(|f| f.ends_with(".parquet"))
            .map(|f| (f.clone(), std::fs::read(dir.join(&f)).unwrap()))
            .collect()
    }

    /// A file that cannot be made durable (`fsync` of a pipe fails) is an
    /// error: read back by `finish`, by the next file given once the thread
    /// has stopped, and by the seal of the snapshot it was given for, which
    /// then seals nothing. Files beyond the queue's bound are all synced
    /// (nothing hangs with more waiting).
    #[test]
    fn a_file_the_syncing_thread_cannot_make_durable_fails_the_seal() {
        let dir = tempfile::tempdir().unwrap();
        let unsyncable = || -> std::fs::File {
            let (_, writer) = std::io::pipe().unwrap();
            std::fs::File::from(std::os::fd::OwnedFd::from(writer))
        };
        let mut ok = Syncer::spawn();
        for i in 0..3 * SYNC_QUEUE {
            let path = dir.path().join(format!("f{i}"));
            ok.sync(&path, std::fs::File::create(&path).unwrap()).unwrap();
        }
        ok.finish().unwrap();

        let mut failed = Syncer::spawn();
        let pipe = dir.path().join("a pipe");
        failed.sync(&pipe, unsyncable()).unwrap();
        let e = failed.finish().unwrap_err();
        assert!(e.to_string().contains("a pipe"), "{e}");

        let mut stopped = Syncer::spawn();
        stopped.sync(&pipe, unsyncable()).unwrap();
        // The thread stops at the pipe; a file given after it reads its error.
        let after = (0..10 * SYNC_QUEUE).find_map(|i| {
            let path = dir.path().join(format!("g{i}"));
            stopped.sync(&path, std::fs::File::create(&path).unwrap()).err()
        });
        assert!(after.is_some_and(|e| e.to_string().contains("a pipe")));

        let s = Snapshots::new(&dir.path().join("warehouse"));
        let mut st = s.begin(1, "2026-07-10T00:00:00Z", &["a".to_string()]).unwrap();
        let df = df!("year" => [2026i32], "v" => [1.0]).unwrap();
        let owner = Owner {
            program: Some("a"),
            batch: None,
        };
        st.write_by_year(&table("t", &df), owner, 2026).unwrap();
        st.syncer.sync(&pipe, unsyncable()).unwrap();
        let e = st.seal().unwrap_err();
        assert!(e.to_string().contains("a pipe"), "{e}");
        assert_eq!(s.sealed().unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn nothing_is_visible_until_published_and_other_programs_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::new(dir.path());
        let one = stage(
            &s,
            &["a", "b"],
            &[("t", Some("a"), 1.0), ("t", Some("b"), 2.0), ("d", None, 0.0)],
        );
        assert_eq!(one.report.written, 3);
        let one = one.seq.unwrap();
        assert_eq!(s.current(), None, "sealed is not published");
        assert!(!dir.path().join("t").exists());
        s.publish(one).unwrap();
        assert_eq!(s.current(), Some(one));
        let visible = files(&dir.path().join("t"));
        assert_eq!(visible.len(), 2, "{visible:?}");
        assert!(visible.iter().all(|f| f.starts_with("year=2026/part-")));

        // A run of program a alone: b's file is carried, a's replaced.
        let two = stage(&s, &["a"], &[("t", Some("a"), 5.0), ("d", None, 0.0)]);
        assert_eq!((two.report.written, two.report.unchanged), (1, 1));
        let two = two.seq.unwrap();
        s.publish(two).unwrap();
        let m = s.manifest(two).unwrap();
        assert_eq!(m.files.len(), 3);
        assert!(m.files.iter().any(|f| f.program.as_deref() == Some("b")));
        // The same again: nothing to publish.
        assert_eq!(stage(&s, &["a"], &[("t", Some("a"), 5.0), ("d", None, 0.0)]).seq, None);
        assert_eq!(s.retain(1).unwrap(), 1);
        assert!(!s.path(one).exists() && s.path(two).exists());
    }

    #[test]
    fn recovery_removes_leftovers_and_rolls_forward_what_was_committed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::new(dir.path());
        let one = stage(&s, &["a"], &[("t", Some("a"), 1.0)]).seq.unwrap();
        s.publish(one).unwrap();
        // Sealed but the process died before the state store committed it.
        let two = stage(&s, &["a"], &[("t", Some("a"), 2.0)]).seq.unwrap();
        // And a staging directory a killed run left half written.
        let st = s.begin(3, "x", &["a".into()]).unwrap();
        drop(st);
        let r = s.recover(Some(one)).unwrap();
        assert_eq!(
            (r.staging_removed, r.uncommitted_removed, r.rolled_forward),
            (1, 1, false)
        );
        assert!(!s.path(two).exists());
        assert_eq!(s.current(), Some(one));
        // Committed, but the process died before swapping the pointer.
        let three = stage(&s, &["a"], &[("t", Some("a"), 3.0)]).seq.unwrap();
        let r = s.recover(Some(three)).unwrap();
        assert!(r.rolled_forward);
        assert_eq!(s.current(), Some(three));

        // No commit ever recorded: a first run sealed and died; the next
        // finds its snapshot and removes it.
        let fresh = tempfile::tempdir().unwrap();
        let s = Snapshots::new(fresh.path());
        let first = stage(&s, &["a"], &[("t", Some("a"), 1.0)]).seq.unwrap();
        let r = s.recover(None).unwrap();
        assert_eq!((r.uncommitted_removed, r.rolled_forward), (1, false));
        assert!(!s.path(first).exists());
        assert_eq!(s.current(), None);
        // A state store made anew beside a published warehouse: what
        // readers have stays, what was sealed after it goes.
        let one = stage(&s, &["a"], &[("t", Some("a"), 1.0)]).seq.unwrap();
        s.publish(one).unwrap();
        let two = stage(&s, &["a"], &[("t", Some("a"), 2.0)]).seq.unwrap();
        let r = s.recover(None).unwrap();
        assert_eq!(r.uncommitted_removed, 1);
        assert!(s.path(one).exists() && !s.path(two).exists());
        assert_eq!(s.current(), Some(one));
    }

    #[test]
    fn a_table_directory_of_the_in_place_layout_becomes_a_link() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t/year=2026")).unwrap();
        std::fs::write(dir.path().join("t/year=2026/part-0.parquet"), b"old").unwrap();
        let s = Snapshots::new(dir.path());
        let one = stage(&s, &["a"], &[("t", Some("a"), 1.0)]).seq.unwrap();
        s.publish(one).unwrap();
        assert!(
            std::fs::symlink_metadata(dir.path().join("t"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(!dir.path().join("t/year=2026/part-0.parquet").exists());
        assert_eq!(files(&s.path(one).join("t")).len(), 1);
    }
}
