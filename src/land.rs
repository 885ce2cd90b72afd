//! The raw landing area: every body a township sent, stored unchanged under
//! its sha256 (`<warehouse>/raw/sha256/ab/cdef…`). Content-addressed, so a
//! body is written once and never overwritten; written aside, then renamed.

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

/// The content-addressed raw store.
#[derive(Debug, Clone)]
pub struct RawStore {
    root: PathBuf,
    /// Bodies being written: `<warehouse>/raw/.tmp`, on the same file
    /// system, emptied by [`RawStore::clear_leftovers`].
    tmp: PathBuf,
    /// Directories made (and given their mode) by this process: each once,
    /// not for every body (ten system calls a body of a national month).
    made: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<PathBuf>>>,
}

pub use taizhang_model::sha256_hex;

impl RawStore {
    /// The store under `<warehouse>/raw/sha256`.
    pub fn new(warehouse: &Path) -> RawStore {
        RawStore {
            root: warehouse.join("raw").join("sha256"),
            tmp: warehouse.join("raw").join(".tmp"),
            made: Default::default(),
        }
    }

    /// Where a body with this hash lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        let (a, b) = sha256.split_at(2.min(sha256.len()));
        self.root.join(a).join(b)
    }

    /// Stores a body, durably (written, synced and renamed into place);
    /// returns its hash. Storing the same bytes again is a no-op. Safe to
    /// call from several threads at once, with the same bytes too.
    pub fn put(&self, bytes: &[u8]) -> Result<String, LandError> {
        let sha = sha256_hex(bytes);
        let path = self.path(&sha);
        if path.exists() {
            return Ok(sha);
        }
        let err = |p: &Path| {
            let p = p.display().to_string();
            move |source| LandError { path: p, source }
        };
        let dir = path.parent().expect("raw paths have a parent");
        // Raw bodies hold personal data in the clear: owner only.
        if let Some(raw) = self.root.parent() {
            self.private_dir(raw).map_err(err(raw))?;
        }
        self.private_dir(dir).map_err(err(dir))?;
        self.private_dir(&self.tmp).map_err(err(&self.tmp))?;
        // Unique per call: two threads may store the same bytes at once.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{sha}-{}-{n}", std::process::id()));
        // A file of that name is a killed process's leftover (same pid,
        // same count, same bytes): it is replaced.
        let mut f = match crate::private::create_new(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::remove_file(&tmp).map_err(err(&tmp))?;
                crate::private::create_new(&tmp)
            }
            other => other,
        }
        .map_err(err(&tmp))?;
        f.write_all(bytes).map_err(err(&tmp))?;
        f.sync_all().map_err(err(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(err(&path))?;
        Ok(sha)
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
            std::fs::remove_file(e.path()).map_err(|source| LandError {
                path: e.path().display().to_string(),
                source,
            })?;
            n += 1;
        }
        Ok(n)
    }

    /// Reads a stored body back.
    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, LandError> {
        let p = self.path(sha256);
        std::fs::read(&p).map_err(|source| LandError {
            path: p.display().to_string(),
            source,
        })
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
        // Nothing left aside.
        assert_eq!(store.clear_leftovers().unwrap(), 0);
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
        assert!(store.path(&a).starts_with(dir.path().join("raw/sha256")));
    }
}
