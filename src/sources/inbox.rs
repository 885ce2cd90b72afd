//! Inbox source: a folder the county drops reports into (e-mailed work
//! summaries, files copied from a USB stick) instead of a portal. A file
//! named `<township>_<period>.<ext>` is township `<township>`'s report for
//! `<period>`: the township as its 9-digit code or its name as people write
//! it (大墅镇_2026-H1.docx, 341124102_2026-H1.txt). Files are read, never
//! moved or changed; a file that matches no township or period of the
//! program is reported by name, never read.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{FetchOutcome, FetchTarget, Source};
use crate::config::Pipeline;
use crate::period::Period;
use crate::registry::{NameMatch, Registry};

/// URL scheme of a target read from an inbox.
pub const SCHEME: &str = "file://";

/// What a pipeline's inbox holds.
#[derive(Debug, Default)]
pub struct Inbox {
    /// The file of each (township, period) (the newest, when there are several).
    pub files: BTreeMap<(String, String), PathBuf>,
    /// Files that are no report of this program: name and why.
    pub unmatched: Vec<(String, String)>,
}

/// Lists `dir` (missing: empty). Hidden files and Office lock files (`~$…`)
/// are not reports and are passed over silently.
pub fn scan(dir: &Path, pipeline: &Pipeline, registry: &Registry) -> Inbox {
    let mut inbox = Inbox::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return inbox;
    };
    let mut found: BTreeMap<(String, String), Vec<(std::time::SystemTime, PathBuf)>> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || name.starts_with("~$") || !e.path().is_file() {
            continue;
        }
        match report_of(&name, pipeline, registry) {
            Ok(key) => {
                let modified = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
                found.entry(key).or_default().push((modified, e.path()));
            }
            Err(why) => inbox.unmatched.push((name, why)),
        }
    }
    for (key, mut files) in found {
        files.sort();
        let (_, newest) = files.pop().expect("at least one file per key");
        if !files.is_empty() {
            let others: Vec<String> = files
                .iter()
                .map(|(_, p)| p.file_name().unwrap_or_default().to_string_lossy().to_string())
                .collect();
            tracing::warn!(township = %key.0, period = %key.1, read = %newest.display(), passed_over = %others.join(", "),
                "Several inbox files for one report; the newest is read.");
        }
        inbox.files.insert(key, newest);
    }
    inbox.unmatched.sort();
    inbox
}

/// The (township code, period) a file name stands for.
fn report_of(name: &str, pipeline: &Pipeline, registry: &Registry) -> Result<(String, String), String> {
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let Some((who, period)) = stem.rsplit_once('_') else {
        return Err("not named <township>_<period>.<ext> (大墅镇_2026-H1.docx)".into());
    };
    let period: Period = period
        .trim()
        .parse()
        .map_err(|_| format!("{period:?} is no period (2026-06, 2026-Q2, 2026-H1, 2026)"))?;
    if period.kind() != pipeline.period_type {
        return Err(format!(
            "{period} is not a {:?} period of program {}",
            pipeline.period_type, pipeline.name
        ));
    }
    let who = who.trim();
    let code = match registry.get(who) {
        Some(t) => t.code.clone(),
        None => match registry.resolve_name(who) {
            NameMatch::Found(code) => code,
            NameMatch::Unknown => return Err(format!("{who:?} is no township of the registry")),
            NameMatch::Ambiguous(c) => return Err(format!("{who:?} could be {}", c.join(", "))),
        },
    };
    Ok((code, period.to_string()))
}

/// The target URL of a report in the inbox: its file, or where it would be
/// (which does not exist: nothing submitted yet).
pub fn url(inbox: &Inbox, dir: &Path, township: &str, period: &str) -> String {
    let path = match inbox.files.get(&(township.to_string(), period.to_string())) {
        Some(p) => p.clone(),
        None => dir.join(format!("{township}_{period}")),
    };
    format!("{SCHEME}{}", path.display())
}

/// Reads one inbox file, at most `limit` bytes (like an HTTP body: a larger
/// file is landed up to the limit and quarantined with the reason).
pub fn read(path: &Path, limit: u64) -> FetchOutcome {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FetchOutcome::NotSubmitted,
        Err(e) => {
            return FetchOutcome::Failed {
                error: format!("cannot read {}: {e}", path.display()),
                attempts: 1,
            };
        }
    };
    let mut body = Vec::new();
    if let Err(e) = file.take(limit + 1).read_to_end(&mut body) {
        return FetchOutcome::Failed {
            error: format!("cannot read {}: {e}", path.display()),
            attempts: 1,
        };
    }
    let defect = (body.len() as u64 > limit).then(|| {
        body.truncate(limit as usize);
        format!("file larger than the {limit}-byte limit; the first {limit} bytes are kept")
    });
    FetchOutcome::Submitted {
        body,
        content_type: None,
        defect,
        validators: None,
    }
}

/// A source that reads `file://` targets from the inbox and hands every
/// other target to `inner` (the portals).
#[derive(Clone)]
pub struct WithInbox<S> {
    /// Where other targets go.
    pub inner: S,
    /// Body limit (`http.max_body_bytes`).
    pub limit: u64,
}

impl<S: Source> Source for WithInbox<S> {
    async fn fetch(&self, target: &FetchTarget) -> FetchOutcome {
        match target.url.strip_prefix(SCHEME) {
            Some(path) => {
                let (path, limit) = (PathBuf::from(path), self.limit);
                tokio::task::spawn_blocking(move || read(&path, limit))
                    .await
                    .unwrap_or_else(|e| FetchOutcome::Failed {
                        error: format!("reading the inbox file failed: {e}"),
                        attempts: 1,
                    })
            }
            None => self.inner.fetch(target).await,
        }
    }

    fn answered(&self, target: &FetchTarget) -> Option<FetchOutcome> {
        match target.url.starts_with(SCHEME) {
            true => None,
            false => self.inner.answered(target),
        }
    }
}
