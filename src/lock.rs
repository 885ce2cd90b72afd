//! One run at a time: an exclusive lock on `<state_dir>/run.lock`, held by the
//! process for the whole run (fetch to delivery). The operating system drops
//! it when the process ends, however it ends (kill -9 included), so a dead
//! run never blocks the next one. Read-only commands do not take it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Exit code of `taizhang run` when another run holds the lock
/// (EX_TEMPFAIL from sysexits.h: try again later).
pub const EXIT_BUSY: u8 = 75;

/// The lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another taizhang run holds {path} ({holder}); waited {waited_secs} s. Try again later, or pass --wait-secs"
    )]
    Busy {
        /// The lock file.
        path: String,
        /// What the holder wrote into the lock file (pid, start time, programs).
        holder: String,
        /// How long this process waited.
        waited_secs: u64,
    },
    /// The lock file cannot be opened or locked.
    #[error("run lock {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock, waiting up to `wait` for a holder to finish.
    /// `holder` (pid, programs) is written into the file for whoever waits.
    pub fn acquire(state_dir: &Path, wait: Duration, holder: &str) -> Result<RunLock, LockError> {
        let path = state_dir.join("run.lock");
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        crate::private::dir(state_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(100).min(wait.saturating_sub(started.elapsed())));
                }
                Err(TryLockError::WouldBlock) => {
                    let text = holder_line(&mut file);
                    return Err(LockError::Busy {
                        path: path.display().to_string(),
                        holder: if text.is_empty() {
                            "holder unknown".into()
                        } else {
                            text.chars().take(200).collect()
                        },
                        waited_secs: started.elapsed().as_secs(),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        // Only the holder writes the file, so a waiter reads a whole line.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{holder}").map_err(io)?;
        Ok(RunLock { _file: file })
    }
}

/// How long a refused run waits for the holder's line: a holder that took
/// the lock a moment ago has not written it yet (two runs started in the
/// same instant printed "holder unknown").
const HOLDER_LINE_WAIT: Duration = Duration::from_secs(1);

/// The holder's line in the lock file, read again until it is there (at
/// most [`HOLDER_LINE_WAIT`]); empty when it never is.
fn holder_line(file: &mut File) -> String {
    let asked = Instant::now();
    loop {
        let mut text = String::new();
        let read = file.rewind().and_then(|()| file.read_to_string(&mut text));
        // The holder truncates the file and writes its whole line at once.
        if read.is_err() || text.ends_with('\n') || asked.elapsed() >= HOLDER_LINE_WAIT {
            return text.trim().to_string();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), Duration::ZERO, "pid 1 programs [a]").unwrap();
        match RunLock::acquire(dir.path(), Duration::from_millis(250), "pid 2") {
            Err(LockError::Busy { holder, .. }) => assert_eq!(holder, "pid 1 programs [a]"),
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(first);
        RunLock::acquire(dir.path(), Duration::ZERO, "pid 2").unwrap();
    }

    #[test]
    fn a_run_refused_the_moment_the_holder_took_the_lock_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        // A holder that has the lock but writes its line 300 ms later, as a
        // run that started in the same instant has not yet.
        let path = dir.path().join("run.lock");
        let mut holder = std::fs::File::create(&path).unwrap();
        holder.try_lock().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            writeln!(holder, "pid 7 programs [a]").unwrap();
            holder
        });
        match RunLock::acquire(dir.path(), Duration::ZERO, "pid 8") {
            Err(LockError::Busy {
                holder, waited_secs, ..
            }) => {
                assert_eq!(holder, "pid 7 programs [a]");
                assert_eq!(waited_secs, 0);
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(writer.join().unwrap());
        RunLock::acquire(dir.path(), Duration::ZERO, "pid 8").unwrap();
    }
}
