//! Kept normalization: what normalize made of each landed body, stored once
//! so that no later run parses it again. Under
//! `<state_dir>/normalized/<program>/<fingerprint>/` one file set per landing
//! (`<township>-<period>-<sha256>.{facts,quarantine,submission}.parquet`),
//! valid for one [`crate::config::Loaded::normalize_fingerprint`]: a catalog,
//! registry, mapping, limit or code change makes them again. Written aside and
//! renamed; a file that cannot be read is made again, never an error.

use std::path::{Path, PathBuf};

use polars::io::parquet::write::StatisticsOptions;
use polars::prelude::*;

use crate::normalize::Normalized;
use crate::state::Landing;

/// A kept-results failure (the disk said no).
#[derive(Debug, thiserror::Error)]
#[error("kept normalization {path}: {reason}")]
pub struct KeptError {
    /// File or directory.
    pub path: String,
    /// What went wrong.
    pub reason: String,
}

/// The kept results of one program under one fingerprint.
#[derive(Debug, Clone)]
pub struct Kept {
    dir: PathBuf,
}

const PARTS: [&str; 3] = ["facts", "quarantine", "submission"];

fn err(path: &Path, reason: impl ToString) -> KeptError {
    KeptError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl Kept {
    /// Opens the store of `program` for `fingerprint`; results kept for
    /// other fingerprints of the program are removed (they can never be
    /// used again).
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
        std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
        // Files a killed process was still writing.
        for e in std::fs::read_dir(&dir).map_err(|e| err(&dir, e))?.flatten() {
            if e.file_name().to_string_lossy().contains(".tmp-") {
                std::fs::remove_file(e.path()).map_err(|x| err(&e.path(), x))?;
            }
        }
        Ok(Kept { dir })
    }

    /// The store of `program` for `fingerprint`, read-only: nothing is
    /// created or removed (for plans).
    pub fn at(state_dir: &Path, program: &str, fingerprint: &str) -> Kept {
        Kept {
            dir: state_dir.join("normalized").join(program).join(fingerprint),
        }
    }

    /// Whether this landing's normalization is kept.
    pub fn has(&self, l: &Landing) -> bool {
        PARTS.iter().all(|p| self.path(l, p).exists())
    }

    fn path(&self, l: &Landing, part: &str) -> PathBuf {
        self.dir
            .join(format!("{}-{}-{}.{part}.parquet", l.township, l.period, l.sha256))
    }

    /// What normalize made of this landing, if kept and readable.
    pub fn get(&self, l: &Landing) -> Option<Normalized> {
        let read = |part: &str| -> Option<DataFrame> {
            let f = std::fs::File::open(self.path(l, part)).ok()?;
            ParquetReader::new(f).finish().ok()
        };
        Some(Normalized {
            facts: read(PARTS[0])?,
            quarantine: read(PARTS[1])?,
            submissions: read(PARTS[2])?,
        })
    }

    /// Keeps what normalize made of this landing.
    pub fn put(&self, l: &Landing, n: &Normalized) -> Result<(), KeptError> {
        for (part, frame) in PARTS.iter().zip([&n.facts, &n.quarantine, &n.submissions]) {
            let path = self.path(l, part);
            let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
            let file = std::fs::File::create(&tmp).map_err(|e| err(&tmp, e))?;
            let mut frame = frame.clone();
            // Small files read back whole: no statistics, and one write(2)
            // per buffer, not per footer field.
            let none = StatisticsOptions {
                min_value: false,
                max_value: false,
                distinct_count: false,
                null_count: false,
                binary_statistics_truncate_length: None,
            };
            ParquetWriter::new(std::io::BufWriter::with_capacity(64 * 1024, file))
                .with_compression(ParquetCompression::Uncompressed)
                .with_statistics(none)
                .finish(&mut frame)
                .map_err(|e| err(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| err(&path, e))?;
        }
        Ok(())
    }
}
