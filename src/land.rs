//! The raw landing area: every body a township sent, stored unchanged under
//! its sha256 (`<warehouse>/raw/sha256/ab/cdef…`). Content-addressed, so a
//! body is written once and never overwritten: on Linux as an unnamed file
//! in its directory (`O_TMPFILE`) that is linked into place once whole;
//! elsewhere (or where the file system cannot) written aside, then renamed.
//!
//! Durability is batched: [`RawStore::put`] leaves a body in the page cache
//! and [`RawStore::sync`] makes every body put before it durable at once
//! (one `syncfs` instead of an `fsync` per body and one per directory). A
//! landing may be recorded only with the [`Durable`] that `sync` returns.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A landing-area failure.
#[derive(Debug, thiserror::Error)]
#[error("landing area {path}: {source}")]
pub struct LandError {
    /// File or directory.
    pub path: String,
    /// What the OS said.
    pub source: std::io::Error,
}

impl LandError {
    /// What an IO error on `path` becomes (for `map_err`).
    fn at(path: &Path) -> impl FnOnce(std::io::Error) -> LandError + use<> {
        let path = path.display().to_string();
        move |source| LandError { path, source }
    }
}

/// The content-addressed raw store.
#[derive(Debug, Clone)]
pub struct RawStore {
    root: PathBuf,
    /// Bodies being written aside: `<warehouse>/raw/.tmp`, on the same
    /// file system, emptied by [`RawStore::clear_leftovers`] (where no
    /// unnamed file can be made, and to write a torn body over).
    tmp: PathBuf,
    /// Whether bodies are written as unnamed files (Linux, until the file
    /// system or `/proc` says it cannot).
    unnamed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Directories made (and given their mode) by this process: each once,
    /// not for every body (ten system calls a body of a national month).
    made: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
    /// What a [`RawStore::sync`] has to make durable, shared by the clones.
    writes: std::sync::Arc<std::sync::Mutex<Writes>>,
}

/// The store's writes as [`RawStore::sync`] sees them.
#[derive(Debug)]
struct Writes {
    /// Bodies being written now.
    in_flight: usize,
    /// A body was written (or began to be) since the last sync began; true
    /// at first, so that a process's first sync also covers what a killed
    /// process left unsynced.
    dirty: bool,
    /// `syncfs` calls made (the rest were not needed).
    syncs: u64,
}

pub use taizhang_model::sha256_hex;

/// Says that the file under a body's name holds other bytes (`stored`
/// of them), to be written again.
fn torn(path: &Path, stored: usize) {
    tracing::warn!(
        path = %path.display(),
        stored_bytes = stored,
        "A raw body is not what its name says (left torn by a crash before it was synced); it is written again."
    );
}

/// What the caller of [`RawStore::put_hashed`] knows of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Not landed before for its township: linked into place without a
    /// look first.
    Unseen,
    /// Likely stored already: its file is read first and left as it is
    /// when it holds the body's bytes.
    Seen,
    /// Its landing (township, period and sha256) is recorded in the state:
    /// its file was synced before that record was committed (see
    /// [`Durable`]), so a file of the body's length under its name is
    /// taken as whole without reading it. A portal without validators, or
    /// whose validators changed, sends every report whole again: a
    /// national year's November run read 94,276 such bodies back to
    /// compare them.
    Recorded,
}

/// Proof that the bodies put before it are durable: made only by
/// [`RawStore::sync`], asked for by every commit of landing records.
#[derive(Debug)]
#[must_use]
pub struct Durable(());

impl RawStore {
    /// The store under `<warehouse>/raw/sha256`.
    pub fn new(warehouse: &Path) -> RawStore {
        RawStore {
            root: warehouse.join("raw").join("sha256"),
            tmp: warehouse.join("raw").join(".tmp"),
            unnamed: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(cfg!(target_os = "linux"))),
            made: Default::default(),
            writes: std::sync::Arc::new(std::sync::Mutex::new(Writes {
                in_flight: 0,
                dirty: true,
                syncs: 0,
            })),
        }
    }

    fn writes(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where a body with this hash lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        let (a, b) = sha256.split_at(2.min(sha256.len()));
        self.root.join(a).join(b)
    }

    /// Stores a body (written aside and renamed into place); returns its
    /// hash. Durable once [`RawStore::sync`] returns. Storing the same bytes
    /// again is a no-op, but a file found under the hash is trusted only
    /// with those bytes: a machine that lost power before a `sync` may have
    /// left it empty or torn, and it is written again. Safe to call from
    /// several threads at once, with the same bytes too.
    pub fn put(&self, bytes: &[u8]) -> Result<String, LandError> {
        let sha = sha256_hex(bytes);
        self.put_hashed(&sha, bytes, Known::Seen)?;
        Ok(sha)
    }

    /// [`RawStore::put`] of a body whose sha256 the caller has already
    /// taken, with what the caller knows of it (see [`Known`]). An unseen
    /// body is linked into place straight away as an unnamed file, and
    /// only a file already under its name is read and compared (the same
    /// bytes from another township, or a torn body): a national month's
    /// first run looked up 41,352 names that did not exist. Where bodies
    /// are written aside and renamed, every body is read first (a rename
    /// would replace a stored, synced body with one not yet synced).
    pub fn put_hashed(&self, sha: &str, bytes: &[u8], known: Known) -> Result<(), LandError> {
        let path = self.path(sha);
        if known == Known::Recorded {
            // Synced before its landing was recorded: whole when it is all
            // there. Only a file of another length (cut short, or gone) is
            // read and compared below.
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.len() == bytes.len() as u64 => return Ok(()),
                _ => {}
            }
        }
        if known != Known::Unseen || !self.unnamed.load(std::sync::atomic::Ordering::Relaxed) {
            match std::fs::read(&path) {
                Ok(stored) if stored == bytes => return Ok(()),
                Ok(stored) => torn(&path, stored.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LandError::at(&path)(e)),
            }
        }
        // A write is in flight from here until its rename is done (whatever
        // becomes of it): a sync meanwhile is not skipped, and the one after
        // it neither.
        self.writes().in_flight += 1;
        let written = self.write(sha, &path, bytes);
        let mut w = self.writes();
        w.in_flight -= 1;
        w.dirty = true;
        drop(w);
        written
    }

    /// Writes a body into place: as an unnamed file linked in, or aside
    /// and renamed.
    fn write(&self, sha: &str, path: &Path, bytes: &[u8]) -> Result<(), LandError> {
        let dir = path.parent().expect("raw paths have a parent");
        // Raw bodies hold personal data in the clear: owner only.
        if let Some(raw) = self.root.parent() {
            self.private_dir(raw).map_err(LandError::at(raw))?;
        }
        self.private_dir(dir).map_err(LandError::at(dir))?;
        #[cfg(target_os = "linux")]
        {
            use std::sync::atomic::Ordering::Relaxed;
            let unnamed = self.unnamed.load(Relaxed);
            if self.link_unnamed(dir, path, bytes)? {
                return Ok(());
            }
            // Unnamed files found unusable just now: a body put unseen was
            // not read first, and a rename must not replace it whole and
            // synced with one not yet synced.
            if unnamed && !self.unnamed.load(Relaxed) && std::fs::read(path).is_ok_and(|stored| stored == bytes) {
                return Ok(());
            }
        }
        self.private_dir(&self.tmp).map_err(LandError::at(&self.tmp))?;
        // Unique per call: two threads may store the same bytes at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{sha}-{}-{n}", std::process::id()));
        // A file of that name is a killed process's leftover (same pid,
        // same count, same bytes): it is replaced.
        let mut f = match crate::private::create_new(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp).map_err(LandError::at(&tmp))?;
                crate::private::create_new(&tmp)
            }
            other => other,
        }
        .map_err(LandError::at(&tmp))?;
        f.write_all(bytes).map_err(LandError::at(&tmp))?;
        // Without `syncfs`, each body is synced on its own.
        #[cfg(not(target_os = "linux"))]
        f.sync_all().map_err(LandError::at(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(LandError::at(path))?;
        Ok(())
    }

    /// Writes `bytes` as an unnamed file in `dir` (`O_TMPFILE`) and links it
    /// as `path` once whole: no name exists before, no temporary one is
    /// made, renamed and locked in a directory shared by every body (that
    /// rename and the shared directory's lock were ~10% of the landing
    /// tasks' time), and a killed process leaves nothing behind. False when
    /// it could not be done this way (the file system has no unnamed files,
    /// `/proc` is not mounted, or a torn body is already under `path`, to
    /// be written over): the caller writes aside and renames.
    #[cfg(target_os = "linux")]
    fn link_unnamed(&self, dir: &Path, path: &Path, bytes: &[u8]) -> Result<bool, LandError> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::Ordering::Relaxed;
        if !self.unnamed.load(Relaxed) {
            return Ok(false);
        }
        let opened = std::fs::OpenOptions::new()
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir);
        let mut f = match opened {
            Ok(f) => f,
            // No unnamed files on this file system (EOPNOTSUPP), or a
            // kernel before them (EISDIR, EINVAL).
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)) => {
                tracing::debug!(dir = %dir.display(), error = %e, "No unnamed files here: raw bodies are written aside and renamed.");
                self.unnamed.store(false, Relaxed);
                return Ok(false);
            }
            Err(e) => return Err(LandError::at(dir)(e)),
        };
        f.write_all(bytes).map_err(LandError::at(path))?;
        use std::os::fd::AsRawFd;
        let from = format!("/proc/self/fd/{}\0", f.as_raw_fd());
        let mut to = path.as_os_str().as_bytes().to_vec();
        to.push(0);
        // SAFETY: both paths are NUL-terminated buffers alive for the call;
        // `f` keeps the descriptor open.
        let linked = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr().cast(),
                libc::AT_FDCWD,
                to.as_ptr().cast(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if linked == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            // The same bytes are stored (another thread linked them just
            // now, or they were stored before: a whole file, linked only
            // once written): nothing to do. Otherwise a torn body is there,
            // to be written over.
            Some(libc::EEXIST) => match std::fs::read(path) {
                Ok(stored) if stored == bytes => Ok(true),
                Ok(stored) => {
                    torn(path, stored.len());
                    Ok(false)
                }
                Err(_) => Ok(false),
            },
            // No `/proc` to name the unnamed file by.
            Some(libc::ENOENT) if !Path::new("/proc/self/fd").is_dir() => {
                tracing::debug!(error = %e, "No /proc/self/fd: raw bodies are written aside and renamed.");
                self.unnamed.store(false, Relaxed);
                Ok(false)
            }
            _ => Err(LandError::at(path)(e)),
        }
    }

    /// Makes every body put so far durable, with the directory entries that
    /// name them: one `syncfs(2)` of the raw store's file system, not an
    /// `fsync` per body; none when nothing was written since the last one
    /// began and nothing is being written (a night of answers 304 has
    /// nothing to sync: a `syncfs` per transaction of landing records was
    /// ~5 ms each, most of a national year's fetch). Returns the proof a
    /// landing record asks for.
    pub fn sync(&self) -> Result<Durable, LandError> {
        {
            let mut w = self.writes();
            if !w.dirty && w.in_flight == 0 {
                return Ok(Durable(()));
            }
            // What is written from now on is for the next sync.
            w.dirty = false;
            w.syncs += 1;
        }
        let synced = self.sync_now();
        if synced.is_err() {
            self.writes().dirty = true;
        }
        synced
    }

    /// `syncfs` calls made so far (a sync with nothing to make durable
    /// makes none).
    pub fn syncs(&self) -> u64 {
        self.writes().syncs
    }

    fn sync_now(&self) -> Result<Durable, LandError> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let err = LandError::at(&self.root);
            // The raw directory exists once a body was put; before that
            // there is nothing of the store to sync.
            let dir = match std::fs::File::open(&self.root) {
                Ok(dir) => dir,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Durable(())),
                Err(e) => return Err(err(e)),
            };
            unsafe extern "C" {
                // glibc ≥ 2.14, musl ≥ 1.1.
                fn syncfs(fd: std::ffi::c_int) -> std::ffi::c_int;
            }
            // SAFETY: `dir` is an open descriptor for the call's duration;
            // syncfs takes no pointers.
            if unsafe { syncfs(dir.as_raw_fd()) } != 0 {
                return Err(err(std::io::Error::last_os_error()));
            }
        }
        Ok(Durable(()))
    }

    /// Makes `dir` owner-only ([`crate::private::dir`]) unless this process
    /// did already.
    fn private_dir(&self, dir: &Path) -> std::io::Result<()> {
        let made = || self.made.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if made().contains(dir) {
            return Ok(());
        }
        crate::private::dir(dir)?;
        made().insert(dir.to_path_buf());
        Ok(())
    }

    /// Removes bodies a killed process was still writing (never renamed into
    /// place, so never recorded). Call it holding the run lock.
    pub fn clear_leftovers(&self) -> Result<usize, LandError> {
        let Ok(entries) = std::fs::read_dir(&self.tmp) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in entries.flatten() {
            std::fs::remove_file(e.path()).map_err(LandError::at(&e.path()))?;
            n += 1;
        }
        Ok(n)
    }

    /// Reads a stored body back.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, LandError> {
        let p = self.path(sha256);
        std::fs::read(&p).map_err(LandError::at(&p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_bytes_stored_from_many_threads_at_once_are_stored_once() {
        // Fetch tasks store bodies in parallel, and two townships may send
        // byte-identical bodies.
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(dir.path());
        let body = vec![b'x'; 200_000];
        let shas: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| store.put(&body))).collect();
            handles.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
        });
        assert!(shas.iter().all(|h| *h == sha256_hex(&body)));
        assert_eq!(store.get(&shas[0]).unwrap(), body);
        // Nothing left aside; on Linux nothing written aside either (a
        // thread that finds the same bytes linked before it is done).
        #[cfg(target_os = "linux")]
        assert!(!dir.path().join("raw/.tmp").exists());
        assert_eq!(store.clear_leftovers().unwrap(), 0);
    }

    #[test]
    fn a_sync_with_nothing_written_since_the_last_one_makes_no_syncfs() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(dir.path());
        // A process's first sync syncs: a killed one may have left bodies
        // unsynced.
        let _ = store.sync().unwrap();
        assert_eq!(store.syncs(), 1);
        let _ = store.sync().unwrap();
        assert_eq!(store.syncs(), 1, "nothing written since");
        let a = store.put(b"a body").unwrap();
        let _ = store.sync().unwrap();
        assert_eq!(store.syncs(), 2, "a body written");
        // The same bytes again write nothing; a clone shares what was written.
        let clone = store.clone();
        assert_eq!(clone.put(b"a body").unwrap(), a);
        let _ = clone.sync().unwrap();
        assert_eq!(store.syncs(), 2, "nothing new to sync");
        let _ = clone.put(b"another body").unwrap();
        let _ = store.sync().unwrap();
        assert_eq!(store.syncs(), 3, "a body written through a clone");
        // A body torn by a crash is written again, and synced.
        std::fs::write(store.path(&a), b"a b").unwrap();
        let _ = store.put(b"a body").unwrap();
        let _ = store.sync().unwrap();
        assert_eq!(store.syncs(), 4, "a torn body rewritten");
        // A write that fails may have left something: the next sync syncs.
        let shard = store.path(&sha256_hex(b"a third body")).parent().unwrap().to_path_buf();
        let _ = std::fs::remove_dir_all(&shard);
        // Read as absent, but no directory can be made there.
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &shard).unwrap();
        assert!(store.put(b"a third body").is_err());
        let _ = store.sync().unwrap();
        assert_eq!(store.syncs(), 5, "a failed write");
    }

    #[test]
    fn a_body_left_torn_by_a_crash_before_its_sync_is_written_again() {
        // Bodies are synced in batches: a power loss before the sync can
        // leave a body's file empty or cut short under its hash, with its
        // landing never recorded. The next run fetches the body again; it
        // must not take the torn file for the body.
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(dir.path());
        let body = b"{\"township\":\"341124100\",\"values\":[1,2,3]}";
        let sha = store.put(body).unwrap();
        written_again_over_torn(&store, &sha, body, || assert_eq!(store.put(body).unwrap(), sha));
    }

    /// Leaves each kind of torn file under `sha`, `put`s, and asserts the
    /// body is whole again, the owner's only, and nothing was left aside.
    fn written_again_over_torn(store: &RawStore, sha: &str, body: &[u8], put: impl Fn()) {
        use std::os::unix::fs::PermissionsExt;
        for torn in [
            &b""[..],
            &body[..10],
            b"{\"township\":\"341124100\",\"values\":[1,2,4]}",
        ] {
            std::fs::write(store.path(sha), torn).unwrap();
            put();
            assert_eq!(store.get(sha).unwrap(), body, "written again over {torn:?}");
            assert_eq!(
                std::fs::metadata(store.path(sha)).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let _ = store.sync().unwrap();
        assert_eq!(store.clear_leftovers().unwrap(), 0);
    }

    /// A store in a new directory (kept alive by the first value) holding
    /// one body, put unseen; the body and its sha256.
    fn stored_once() -> (tempfile::TempDir, RawStore, &'static [u8], String) {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(dir.path());
        let body: &'static [u8] = b"{\"township\":\"341124100\",\"values\":[1,2,3]}";
        let sha = sha256_hex(body);
        store.put_hashed(&sha, body, Known::Unseen).unwrap();
        (dir, store, body, sha)
    }

    /// The inode of the file under `sha`'s name.
    fn inode_of(store: &RawStore, sha: &str) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(store.path(sha)).unwrap().ino()
    }

    /// A body put unseen (not landed before for its township) is linked
    /// into place without a look first; a file already under its name is
    /// still compared: the same bytes are left as they are (the very file),
    /// a torn body is written again.
    #[test]
    fn a_body_put_unseen_keeps_a_whole_file_and_writes_a_torn_one_again() {
        let (_dir, store, body, sha) = stored_once();
        assert_eq!(store.get(&sha).unwrap(), body);
        let inode = inode_of(&store, &sha);
        store.put_hashed(&sha, body, Known::Unseen).unwrap();
        assert_eq!(inode_of(&store, &sha), inode);
        written_again_over_torn(&store, &sha, body, || {
            store.put_hashed(&sha, body, Known::Unseen).unwrap()
        });
    }

    /// A body whose landing is recorded was synced before the record: a
    /// file of its length under its name is left as it is without being
    /// read (the same length of other bytes included: what the sync before
    /// the record rules out), one cut short or gone is written again.
    #[test]
    fn a_recorded_body_is_trusted_by_its_length_and_written_again_when_cut_short() {
        let (_dir, store, body, sha) = stored_once();
        let _ = store.sync().unwrap();
        let inode = inode_of(&store, &sha);
        store.put_hashed(&sha, body, Known::Recorded).unwrap();
        assert_eq!(inode_of(&store, &sha), inode, "the very file");
        let same_length = b"{\"township\":\"341124100\",\"values\":[1,2,4]}";
        assert_eq!(same_length.len(), body.len());
        std::fs::write(store.path(&sha), same_length).unwrap();
        store.put_hashed(&sha, body, Known::Recorded).unwrap();
        assert_eq!(store.get(&sha).unwrap(), same_length, "not read");
        for cut in [&b""[..], &body[..10]] {
            std::fs::write(store.path(&sha), cut).unwrap();
            store.put_hashed(&sha, body, Known::Recorded).unwrap();
            assert_eq!(store.get(&sha).unwrap(), body, "written again over {cut:?}");
        }
        std::fs::remove_file(store.path(&sha)).unwrap();
        store.put_hashed(&sha, body, Known::Recorded).unwrap();
        assert_eq!(store.get(&sha).unwrap(), body, "written again when gone");
    }

    #[test]
    fn same_bytes_same_file_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = RawStore::new(dir.path());
        let a = store.put(b"{\"values\":[]}").unwrap();
        assert_eq!(a, sha256_hex(b"{\"values\":[]}"));
        assert_eq!(store.put(b"{\"values\":[]}").unwrap(), a);
        let b = store.put(b"other").unwrap();
        assert_ne!(a, b);
        assert_eq!(store.get(&a).unwrap(), b"{\"values\":[]}");
        // Personal data in the clear: the owner's only.
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(store.path(&a)).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // On Linux a body is an unnamed file linked into place: none was
        // written aside.
        #[cfg(target_os = "linux")]
        assert!(!dir.path().join("raw/.tmp").exists());
        // Stored the same bytes again: the very file, not a copy.
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(store.path(&a)).unwrap().ino();
        store.put(b"{\"values\":[]}").unwrap();
        assert_eq!(std::fs::metadata(store.path(&a)).unwrap().ino(), inode);
        assert!(store.path(&a).starts_with(dir.path().join("raw/sha256")));
    }
}
