//! One run of every pipeline: plan → fetch → land → normalize → check →
//! publish → roll up → alert. This is the only module that sequences IO; the
//! stages in between are pure functions of what was landed and of `now`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use polars::prelude::*;

use crate::alerts::{self, Candidate};
use crate::checks::{self, CheckInput, Part};
use crate::config::{Loaded, Pipeline};
use crate::kept::{Kept, KeptError};
use crate::land::{Durable, LandError, RawStore};
use crate::lock::{LockError, RunLock};
use crate::memo::{self, Memo};
use crate::normalize::{self, Landed};
use crate::period::Period;
use crate::publish::{self, BATCH_TABLES};
use crate::review;
use crate::rollup;
use crate::sinks::TableSink;
use crate::sinks::parquet::{PublishError, PublishReport};
use crate::sinks::snapshot::{Recovery, Snapshots};
use crate::sources::http::HttpSource;
use crate::sources::inbox::{self, WithInbox};
use crate::sources::{FetchOutcome, FetchTarget, Source};
use crate::state::{AlertRecord, Commit, Landing, Pending, State, StateError};
use crate::timeliness;
use taizhang_model::schema::LEVELS;

/// A run that could not complete. Bad township input is never one of these:
/// it is quarantined and alerted, and the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The landing area failed.
    #[error(transparent)]
    Land(#[from] LandError),
    /// Publishing failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// Kept normalization results could not be written.
    #[error(transparent)]
    Kept(#[from] KeptError),
    /// A frame operation failed: a bug, not bad input.
    #[error("internal error in {stage}: {source}")]
    Internal {
        /// Stage.
        stage: &'static str,
        /// What polars said.
        source: PolarsError,
    },
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// Another run holds the lock (or it cannot be taken).
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A blocking task died (a bug).
    #[error("internal error: {0}")]
    Task(String),
    /// A carried batch's memo no longer reads (its files changed under the
    /// run): it is removed, and the next run computes the batch.
    #[error(
        "the memo of batch {batch} of {program} cannot be read ({why}); it is removed, and the next run computes the batch"
    )]
    Memo {
        /// Program.
        program: String,
        /// Batch code.
        batch: String,
        /// What went wrong.
        why: String,
    },
}

fn internal(stage: &'static str) -> impl FnOnce(PolarsError) -> RunError {
    move |source| RunError::Internal { stage, source }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run's clock.
    pub now: DateTime<Utc>,
    /// Only plan: print what would be fetched, change nothing.
    pub dry_run: bool,
    /// Only these pipelines (all when empty).
    pub only: Vec<String>,
    /// How long to wait for another run to finish before giving up.
    pub lock_wait: Duration,
    /// Instead of every period closed since each program's start: the
    /// periods lying within these days (a backfill; earlier than the start
    /// too).
    pub periods: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    /// Told of each report handled: (done, of).
    pub progress: Option<Progress>,
    /// Compute every batch, even one whose inputs did not change since the
    /// run before (see [`crate::memo`]).
    pub recompute: bool,
    /// Ask for every report of a settled period too (see
    /// `Pipeline::revisits`); a backfill (`periods`) always does.
    pub revisit_all: bool,
}

/// A progress callback: (reports handled, reports planned).
#[derive(Clone)]
pub struct Progress(pub Arc<dyn Fn(usize, usize) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// The periods of `p` a run fetches: every one closed since the program's
/// start, or those lying within `range` (a backfill).
pub fn periods_of(
    p: &Pipeline,
    now: DateTime<Utc>,
    range: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
) -> Vec<Period> {
    let Some((from, to)) = range else {
        return Period::closed_since(p.start(), now);
    };
    let mut period = Period::containing(
        p.period_type,
        chrono::Datelike::year(&from),
        chrono::Datelike::month(&from),
    );
    if period.start_date() < from {
        period = period.next();
    }
    let mut out = vec![];
    while period.end_date() <= to && period.closes_at() <= now {
        out.push(period);
        period = period.next();
    }
    out
}

impl RunOptions {
    /// A full run of every pipeline at `now`.
    pub fn at(now: DateTime<Utc>) -> RunOptions {
        RunOptions {
            now,
            dry_run: false,
            only: vec![],
            lock_wait: Duration::ZERO,
            periods: None,
            progress: None,
            recompute: false,
            revisit_all: false,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Fetch targets planned.
    pub planned: usize,
    /// Reports fetched (HTTP 200).
    pub fetched: usize,
    /// Targets with nothing submitted (404).
    pub not_submitted: usize,
    /// Targets whose landed body is still what the portal serves (304):
    /// neither downloaded nor parsed again.
    pub not_modified: usize,
    /// Of `not_modified`, those a portal's listing showed unchanged (not
    /// asked for; see `listing_url`).
    pub listed: usize,
    /// Listings read (see `listing_url`).
    pub listings_read: usize,
    /// Listings that could not be fetched or read (their reports were
    /// asked for one by one).
    pub listings_failed: usize,
    /// Targets that failed after retries.
    pub fetch_failed: usize,
    /// Bodies landed for the first time.
    pub landed_new: usize,
    /// Current submissions normalized.
    pub submissions: usize,
    /// Fact rows published.
    pub rows_published: usize,
    /// Values quarantined.
    pub quarantined: usize,
    /// Values read from documents that wait in the review queue.
    pub in_review: usize,
    /// Inbox files that are no report of their program ("program: file: why").
    pub inbox_unmatched: Vec<String>,
    /// Check failures by severity.
    pub check_failures: BTreeMap<String, usize>,
    /// Alerts raised this run.
    pub alerts_raised: Vec<AlertRecord>,
    /// Alerts resolved this run.
    pub alerts_resolved: usize,
    /// Alerts open after the run.
    pub alerts_open: usize,
    /// Alerts delivered to the webhook this run.
    pub alerts_delivered: usize,
    /// Delivery problem, if any (the run still succeeds; delivery is retried next run).
    pub delivery_error: Option<String>,
    /// Files written and unchanged, old snapshots removed.
    pub publish: PublishReport,
    /// The warehouse.
    pub warehouse: PathBuf,
    /// County rollup rows.
    pub rollup_rows: usize,
    /// The published snapshot after the run.
    pub snapshot: Option<u64>,
    /// Landed bodies parsed (each body is parsed once in its life; a rerun
    /// with nothing new parses none).
    pub bodies_parsed: usize,
    /// Batches (a program's parts' periods) whose inputs had not changed since
    /// the run before: carried over, not computed (see [`crate::memo`]).
    pub batches_carried: usize,
    /// Reports of settled periods this run did not ask for (asked for on
    /// another day: `revisit_after_days` in the program).
    pub not_revisited: usize,
}

/// Every (township, period) each pipeline expects by `now`: from its
/// portal's URL template, or its inbox folder (`file://` targets).
pub fn plan(cfg: &Loaded, opts: &RunOptions) -> Vec<FetchTarget> {
    let mut out = unaddressed(cfg, opts);
    address(cfg, &mut out);
    out
}

/// [`plan`]'s targets, those of a portal without their URL (see
/// [`address`]): a national year plans 455,000 reports, and a run leaves
/// most of a settled period's for later.
fn unaddressed(cfg: &Loaded, opts: &RunOptions) -> Vec<FetchTarget> {
    let mut out = Vec::new();
    for p in selected(cfg, opts) {
        let inbox = p
            .inbox_dir
            .as_ref()
            .map(|dir| (PathBuf::from(dir), inbox::scan(Path::new(dir), p, &cfg.def.registry)));
        for period in periods_of(p, opts.now, opts.periods) {
            for t in cfg.def.registry.townships.keys() {
                let url = match &inbox {
                    Some((dir, files)) => inbox::url(files, dir, t, &period.to_string()),
                    None => String::new(),
                };
                out.push(FetchTarget {
                    pipeline: p.name.clone(),
                    township: t.clone(),
                    period: period.to_string(),
                    url,
                    validators: None,
                    described: None,
                    described_bytes: None,
                });
            }
        }
    }
    out
}

/// Gives each target of a portal its URL (from the pipeline's
/// `source_url`; an inbox's targets have theirs).
fn address(cfg: &Loaded, targets: &mut [FetchTarget]) {
    for t in targets.iter_mut() {
        let Some(p) = cfg.def.pipeline(&t.pipeline) else {
            continue;
        };
        if p.inbox_dir.is_none() {
            t.url = p.url_of(&t.township, &t.period).unwrap_or_default();
        }
    }
}

/// Leaves out of `targets` the reports of settled periods that may wait
/// (`waiting`, see [`may_wait`]) and are not due to be asked for again
/// today (see `Pipeline::revisits`): how many, per program. A report never
/// landed is asked for on every run, settled or not; `--revisit-all` and a
/// backfill ask for every one.
pub fn leave_for_later(
    cfg: &Loaded,
    opts: &RunOptions,
    targets: &mut Vec<FetchTarget>,
    waiting: &std::collections::HashSet<u128>,
) -> BTreeMap<String, usize> {
    let mut later = BTreeMap::new();
    if opts.revisit_all || opts.periods.is_some() {
        return later;
    }
    targets.retain(|t| {
        let Some(p) = cfg.def.pipeline(&t.pipeline) else {
            return true;
        };
        if p.revisit_after_days.is_none() {
            return true;
        }
        let keep = t
            .period
            .parse()
            .map_or(true, |period| p.revisits(&t.township, &period, opts.now))
            || !waiting.contains(&report_key(&t.pipeline, &t.township, &t.period));
        if !keep {
            *later.entry(t.pipeline.clone()).or_insert(0) += 1;
        }
        keep
    });
    later
}

/// The reports of `program` that may wait for their day when settled (see
/// [`leave_for_later`]), as [`report_key`]s: those with a body landed and
/// no fetch failure open (a failed fetch is retried by the next run).
/// `each` is given every landed (township, period, sha256) on the way.
pub fn may_wait(
    state: &State,
    program: &str,
    mut each: impl FnMut(&str, &str, &str),
) -> Result<std::collections::HashSet<u128>, crate::state::StateError> {
    let mut reports = std::collections::HashSet::new();
    state.landed_keys(program, |township, period, sha256| {
        each(township, period, sha256);
        reports.insert(report_key(program, township, period));
    })?;
    for (township, period, _, _) in state.fetch_failures(program)? {
        reports.remove(&report_key(program, &township, &period));
    }
    Ok(reports)
}

/// A report's key in [`may_wait`]'s set.
fn report_key(program: &str, township: &str, period: &str) -> u128 {
    crate::kept::hash_of(&[program, township, period])
}

/// Files in the selected pipelines' inboxes that are no report of theirs:
/// (pipeline, file name, why).
pub fn inbox_unmatched(cfg: &Loaded, opts: &RunOptions) -> Vec<(String, String, String)> {
    selected(cfg, opts)
        .filter_map(|p| p.inbox_dir.as_ref().map(|d| (p, d)))
        .flat_map(|(p, dir)| {
            inbox::scan(Path::new(dir), p, &cfg.def.registry)
                .unmatched
                .into_iter()
                .map(|(file, why)| (p.name.clone(), file, why))
        })
        .collect()
}

fn selected<'a>(cfg: &'a Loaded, opts: &'a RunOptions) -> impl Iterator<Item = &'a Pipeline> + 'a {
    cfg.def
        .pipelines
        .iter()
        .filter(|p| opts.only.is_empty() || opts.only.contains(&p.name))
}

/// Parses a fetched body of a target, unless that body is landed already
/// (None: landing does not parse it either).
/// Stores a fetched body in the raw store and parses it when it is new.
type Storer = Arc<dyn Fn(&FetchTarget, &[u8]) -> Result<Stored, crate::land::LandError> + Send + Sync>;
type ParseResult = Result<crate::submission::Submission, crate::submission::ParseError>;

/// A body stored durably in the raw store (before its landing is recorded),
/// parsed when it was not landed before for its (program, township, period).
struct Stored {
    sha256: String,
    parsed: Option<ParseResult>,
}

/// A fetched target, with its body stored (or why it could not be) when
/// there was one.
type Fetched = (
    FetchTarget,
    FetchOutcome,
    Option<Result<Stored, crate::land::LandError>>,
);

/// Bodies stored and parsed at once on the blocking pool, per core.
const STORE_PER_CORE: usize = 2;

/// The largest body stored and parsed on the runtime thread that fetched it
/// (a national month's bodies are ~13 KB: a fraction of a millisecond each,
/// where handing each to the blocking pool and back cost ~5% of a first
/// run's CPU); a larger one goes to the blocking pool, so that a township's
/// 9 MB body does not hold up the other fetches.
const STORE_INLINE: usize = 256 * 1024;

/// Fetches every target, at most `concurrency` at a time, and sends each
/// outcome as it arrives. A fetch slot is held until its outcome is handed
/// to landing, so the bodies in memory are bounded by `concurrency` plus
/// the channel's capacity, whatever the number of targets.
async fn fetch_into<S: Source + Clone + 'static>(
    source: S,
    targets: Vec<FetchTarget>,
    concurrency: usize,
    storer: Storer,
    tx: tokio::sync::mpsc::Sender<Fetched>,
) {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    // Bodies stored and parsed at once: a few per core (each holds a thread
    // of the blocking pool; more only add threads and memory, not speed).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let storing = Arc::new(tokio::sync::Semaphore::new(STORE_PER_CORE * cores));
    let mut set = tokio::task::JoinSet::new();
    let reap = |res: Result<(), tokio::task::JoinError>| {
        if let Err(e) = res {
            tracing::error!(error = %e, "Fetch task died; its target is retried next run.");
        }
    };
    for t in targets {
        // Answered without a request (a listing showed it unchanged): handed
        // to landing at once, without a task or a permit (a national
        // rerun's 41,352).
        if let Some(outcome) = source.answered(&t) {
            let _ = tx.send((t, outcome, None)).await;
            continue;
        }
        let permit = sem.clone().acquire_owned().await.expect("semaphore is never closed");
        let (source, tx, storer, storing) = (source.clone(), tx.clone(), storer.clone(), storing.clone());
        set.spawn(async move {
            let mut outcome = source.fetch(&t).await;
            // Stored and parsed here, off the landing thread (both cores
            // busy, many bodies syncing at once); landing records it.
            let mut stored = None;
            if let FetchOutcome::Submitted { body, .. } = &mut outcome {
                match store(&storer, &storing, &t, body).await {
                    Ok(s) => stored = Some(s),
                    Err(e) => {
                        tracing::error!(error = %e, "Parse task died; its target is retried next run.");
                        drop(permit);
                        return;
                    }
                }
            }
            // Waits while landing is behind; an error means landing stopped.
            let _ = tx.send((t, outcome, stored)).await;
            drop(permit);
        });
        while let Some(res) = set.try_join_next() {
            reap(res);
        }
    }
    while let Some(res) = set.join_next().await {
        reap(res);
    }
}

/// `source`, answering for the reports the portals' listings show
/// unchanged (see [`crate::sources::listing`]), the listings read first;
/// what they showed and the listings not read go into `summary` and the
/// log.
async fn with_listings<S: Source>(
    source: S,
    cfg: &Loaded,
    targets: &[FetchTarget],
    summary: &mut RunSummary,
) -> crate::sources::listing::WithListings<S> {
    let shown = crate::sources::listing::show(&source, &cfg.def, targets, cfg.settings.http.concurrency).await;
    summary.listed = shown.unchanged.values().map(|urls| urls.len()).sum();
    summary.listings_failed = shown.failed.len();
    summary.listings_read = shown.read;
    if shown.read + shown.failed.len() > 0 {
        for (url, why) in shown.failed.iter().take(5) {
            let listing = crate::sources::listing::for_log(url);
            tracing::warn!(listing = %listing, error = %why, "Listing not read; the reports it lists are asked for one by one.");
        }
        tracing::info!(
            read = shown.read,
            failed = shown.failed.len(),
            unchanged = summary.listed,
            "Listings read."
        );
    }
    crate::sources::listing::WithListings {
        inner: source,
        unchanged: Arc::new(shown.unchanged),
    }
}

/// Stores and parses one fetched body: on this runtime thread when it is
/// at most [`STORE_INLINE`] bytes (the blocking pool's hand-off cost more
/// than the work), else on the blocking pool, at most [`STORE_PER_CORE`]
/// per core at once. Err: the blocking task died.
async fn store(
    storer: &Storer,
    storing: &Arc<tokio::sync::Semaphore>,
    t: &FetchTarget,
    body: &mut Vec<u8>,
) -> Result<Result<Stored, crate::land::LandError>, tokio::task::JoinError> {
    if body.len() <= STORE_INLINE {
        return Ok(storer(t, body));
    }
    let (bytes, target, storer) = (std::mem::take(body), t.clone(), storer.clone());
    let slot = storing
        .clone()
        .acquire_owned()
        .await
        .expect("semaphore is never closed");
    let (bytes, s) = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let s = storer(&target, &bytes);
        (bytes, s)
    })
    .await?;
    *body = bytes;
    Ok(s)
}

/// The kept normalization of each selected pipeline.
fn kept_stores<'a>(cfg: &'a Loaded, opts: &'a RunOptions) -> Result<BTreeMap<String, (&'a Pipeline, Kept)>, RunError> {
    selected(cfg, opts)
        .map(|p| {
            let kept = Kept::open(&cfg.settings.paths.state_dir, &p.name, &cfg.normalize_fingerprint(p))?;
            Ok((p.name.clone(), (p, kept)))
        })
        .collect()
}

/// Lands one fetched outcome: the body was stored in the raw store by its
/// fetch task (durable before it is recorded); its record goes into state.
/// A body new for its (program, township, period) was parsed there, once,
/// and is normalized from that parse into the kept results; a body landed
/// before is not parsed again (only its last fetch time moves).
#[allow(clippy::too_many_arguments)]
fn land(
    cfg: &Loaded,
    state: &State,
    raw: &RawStore,
    kept: &BTreeMap<String, (&Pipeline, Kept)>,
    normalizer: &mut Normalizer,
    (t, outcome, stored): Fetched,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    match outcome {
        FetchOutcome::Submitted {
            body,
            content_type,
            defect,
            validators,
        } => {
            summary.fetched += 1;
            let (sha, pre) = match stored {
                Some(stored) => {
                    let Stored { sha256, parsed } = stored?;
                    (sha256, parsed)
                }
                None => (raw.put(&body)?, None),
            };
            state.set_validators(
                &t.pipeline,
                &t.township,
                &t.period,
                validators.as_ref().map(|v| (v, sha.as_str(), body.len() as u64)),
            )?;
            let known = state.has_landing(&t.pipeline, &t.township, &t.period, &sha)?;
            let kind = cfg.def.pipeline(&t.pipeline).map(|p| p.source_kind).unwrap_or_default();
            let parsed = match (known, pre) {
                (true, _) => None,
                (false, Some(p)) => Some(p),
                (false, None) => Some(crate::parse::parse_body(
                    kind,
                    &body,
                    &cfg.def.catalog,
                    &cfg.def.dhis2,
                    &cfg.settings.limits.read(),
                )),
            };
            let header = parsed.as_ref().and_then(|p| p.as_ref().ok());
            let landing = Landing {
                pipeline: t.pipeline.clone(),
                township: t.township.clone(),
                period: t.period.clone(),
                sha256: sha,
                url: t.url.clone(),
                bytes: body.len() as i64,
                content_type,
                defect,
                version: header.and_then(|h| h.version),
                submitted_at: header.and_then(|h| h.submitted_at).map(|t| t.to_rfc3339()),
                first_fetched_at: now,
                last_fetched_at: now,
            };
            if let Some(defect) = &landing.defect {
                tracing::warn!(township = %t.township, period = %t.period, defect = %defect, "Report landed incomplete; it will be quarantined.");
            }
            if state.record_landing(&landing)? {
                summary.landed_new += 1;
                tracing::info!(township = %t.township, period = %t.period, sha256 = %landing.sha256, bytes = landing.bytes, "Report landed.");
            }
            if let (Some(parsed), true) = (parsed, kept.contains_key(&t.pipeline)) {
                summary.bodies_parsed += 1;
                normalizer.push(landing, parsed);
            }
        }
        FetchOutcome::NotModified => {
            // A 304 answers validators, read with the sha of the body they
            // describe (none: nothing of it can be landed here).
            let served = match t.described.as_deref() {
                Some(sha) => state.still_served(&t.pipeline, &t.township, &t.period, sha, now)?,
                None => false,
            };
            if served {
                summary.not_modified += 1;
            } else {
                // The portal says unchanged, but what it describes is not
                // landed here (a state store restored from backup): asked
                // again without validators next run.
                summary.fetch_failed += 1;
                let error = "304 Not Modified for a body this deployment has not landed; fetched whole next run";
                tracing::warn!(township = %t.township, period = %t.period, "{error}");
                state.record_fetch_failure(&t, error, 1, now)?;
            }
        }
        FetchOutcome::NotSubmitted => {
            summary.not_submitted += 1;
            state.set_validators(&t.pipeline, &t.township, &t.period, None)?;
            state.clear_fetch_failure(&t.pipeline, &t.township, &t.period)?;
            // Missing after its deadline: evidence against a later claim of
            // having been on time.
            let deadline = cfg
                .def
                .pipeline(&t.pipeline)
                .zip(t.period.parse::<Period>().ok())
                .map(|(p, period)| period.deadline(p.deadline_days));
            if deadline.is_some_and(|d| now > d) {
                state.record_absence(&t.pipeline, &t.township, &t.period, now)?;
            }
        }
        FetchOutcome::Failed { error, attempts } => {
            summary.fetch_failed += 1;
            tracing::warn!(township = %t.township, period = %t.period, attempts, error = %error, "Fetch failed.");
            state.record_fetch_failure(&t, &error, attempts, now)?;
        }
    }
    Ok(())
}

/// How long an open transaction of landing records waits for more before
/// it is committed (a few hundred records at national speed; a slow
/// portal's few records do not hold the state store locked for long).
const LANDING_LINGER: Duration = Duration::from_millis(100);

/// What lands the outcomes of a run's fetches: records them in the open
/// transaction of landing records, and hands new bodies to normalizing.
struct Lander<'a> {
    cfg: &'a Loaded,
    state: &'a State,
    raw: &'a RawStore,
    normalizer: Normalizer,
    batch: crate::state::LandingBatch,
    /// When the open transaction recorded its first outcome.
    opened: Option<tokio::time::Instant>,
    /// The open transaction waited [`LANDING_LINGER`] for more.
    lingered: bool,
    done: usize,
    now: DateTime<Utc>,
    progress: Option<&'a Progress>,
}

impl Lander<'_> {
    /// Lands one outcome into the open transaction.
    async fn land(
        &mut self,
        fetched: Fetched,
        kept: &mut BTreeMap<String, (&Pipeline, Kept)>,
        summary: &mut RunSummary,
    ) -> Result<(), RunError> {
        land(
            self.cfg,
            self.state,
            self.raw,
            kept,
            &mut self.normalizer,
            fetched,
            self.now,
            summary,
        )?;
        self.normalizer.keep(kept, NORMALIZE_IN_FLIGHT).await?;
        self.done += 1;
        self.opened.get_or_insert_with(tokio::time::Instant::now);
        self.batch.recorded();
        if let Some(Progress(tell)) = self.progress {
            tell(self.done, summary.planned);
        }
        Ok(())
    }

    /// The open transaction is to be synced and committed: it is full, it
    /// waited long enough for more, or nothing more comes.
    fn due(&self, receiving: bool) -> bool {
        self.opened.is_some() && (self.batch.is_full() || self.lingered || !receiving)
    }

    /// Nothing is recorded in the open transaction.
    fn is_empty(&self) -> bool {
        self.opened.is_none()
    }

    /// Commits the open transaction (its bodies are `durable`) and opens the next.
    fn commit(&mut self, durable: Durable) -> Result<(), RunError> {
        self.state.commit_landings(&mut self.batch, durable)?;
        (self.opened, self.lingered) = (None, false);
        Ok(())
    }
}

/// Bodies normalized together: one set of frames per group, not per body.
const NORMALIZE_GROUP: usize = 256;

/// Groups being normalized at once, besides the landing thread's work: a
/// bound on the bodies and frames in memory, enough to keep both cores busy.
const NORMALIZE_IN_FLIGHT: usize = 2;

/// A group of one program's bodies, normalized.
type NormalizedGroup = Result<(String, Vec<Landing>, normalize::Normalized), PolarsError>;

/// New bodies parsed and landed, normalized in groups of
/// [`NORMALIZE_GROUP`] on the blocking pool while landing goes on, and
/// kept in the order they were landed.
struct Normalizer {
    def: Arc<crate::config::Definition>,
    limits: crate::normalize::Limits,
    /// By program, bodies waiting for their group to fill.
    waiting: BTreeMap<String, Vec<(Landing, ParseResult)>>,
    running: std::collections::VecDeque<tokio::task::JoinHandle<NormalizedGroup>>,
}

impl Normalizer {
    fn new(def: Arc<crate::config::Definition>, limits: crate::normalize::Limits) -> Normalizer {
        Normalizer {
            def,
            limits,
            waiting: BTreeMap::new(),
            running: Default::default(),
        }
    }

    fn push(&mut self, landing: Landing, parsed: ParseResult) {
        let program = landing.pipeline.clone();
        let group = self.waiting.entry(program.clone()).or_default();
        group.push((landing, parsed));
        if group.len() >= NORMALIZE_GROUP {
            self.start(&program);
        }
    }

    /// Starts normalizing the bodies waiting for `program`.
    fn start(&mut self, program: &str) {
        let Some(group) = self.waiting.remove(program).filter(|g| !g.is_empty()) else {
            return;
        };
        let (def, limits, program) = (self.def.clone(), self.limits.clone(), program.to_string());
        self.running.push_back(tokio::task::spawn_blocking(move || {
            let Some(p) = def.pipeline(&program) else {
                return Err(PolarsError::ComputeError(
                    format!("program {program} is not configured").into(),
                ));
            };
            let refs: Vec<(&Landing, &ParseResult)> = group.iter().map(|(l, p)| (l, p)).collect();
            let n = normalize::normalize_parsed_many(p, &def.catalog, &def.registry, &limits, &refs)?;
            Ok((program, group.into_iter().map(|(l, _)| l).collect(), n))
        }));
    }

    /// Keeps the groups finished in landing order until at most `leave`
    /// are still running.
    async fn keep(&mut self, kept: &mut BTreeMap<String, (&Pipeline, Kept)>, leave: usize) -> Result<(), RunError> {
        while self.running.len() > leave {
            let Some(job) = self.running.pop_front() else { break };
            let (program, landings, n) = job
                .await
                .map_err(|e| RunError::Task(e.to_string()))?
                .map_err(internal("normalize"))?;
            if let Some((_, kept)) = kept.get_mut(&program) {
                kept.add_many(&landings, n)?;
            }
        }
        Ok(())
    }

    /// Normalizes and keeps every body still waiting.
    async fn finish(mut self, kept: &mut BTreeMap<String, (&Pipeline, Kept)>) -> Result<(), RunError> {
        let programs: Vec<String> = self.waiting.keys().cloned().collect();
        for program in programs {
            self.start(&program);
        }
        self.keep(kept, 0).await
    }
}

/// Of several bodies landed for one (township, period), the current one: the
/// one fetched last (what the portal serves now), then the highest declared version.
pub fn current_of<'a>(versions: impl IntoIterator<Item = &'a Landing>) -> Option<&'a Landing> {
    versions
        .into_iter()
        .max_by(|a, b| (a.last_fetched_at, a.version).cmp(&(b.last_fetched_at, b.version)))
}

/// The current body of each (township, period), with the number of versions
/// landed. Older versions stay in the landing area.
pub fn current_landings(all: &[Landing]) -> Vec<(&Landing, usize)> {
    let mut by_key: BTreeMap<(&str, &str), Vec<&Landing>> = BTreeMap::new();
    for l in all {
        by_key.entry((&l.township, &l.period)).or_default().push(l);
    }
    by_key
        .into_values()
        .filter_map(|v| {
            let n = v.len();
            current_of(v).map(|l| (l, n))
        })
        .collect()
}

/// Every version of the (township, period)s of `current` with more than
/// one, from `all`: looked up, not searched for, per batch.
fn versions_of<'a>(
    all: &'a [Landing],
    current: &[(&Landing, usize)],
) -> std::collections::HashMap<(&'a str, &'a str), Vec<&'a Landing>> {
    let several: std::collections::HashSet<(&str, &str)> = current
        .iter()
        .filter(|(_, n)| *n > 1)
        .map(|(l, _)| (l.township.as_str(), l.period.as_str()))
        .collect();
    let mut versions: std::collections::HashMap<(&str, &str), Vec<&Landing>> = std::collections::HashMap::new();
    for l in all {
        let k = (l.township.as_str(), l.period.as_str());
        if several.contains(&k) {
            versions.entry(k).or_default().push(l);
        }
    }
    versions
}

/// Stacks frames of one schema.
pub fn vstack(frames: Vec<DataFrame>) -> PolarsResult<DataFrame> {
    let mut it = frames.into_iter();
    let Some(mut first) = it.next() else {
        return Ok(DataFrame::empty());
    };
    for f in it {
        first.vstack_mut(&f)?;
    }
    first.align_chunks_par();
    Ok(first)
}

/// The landings table's rows of `all` (every landing of some townships),
/// with their current versions and their reports.
fn landing_rows(
    all: &[Landing],
    current: &[(&Landing, usize)],
    reports: &timeliness::Reports<'_>,
) -> Result<DataFrame, RunError> {
    landings_frame(all, current, &timeliness::of_landings(all, reports)).map_err(internal("land"))
}

/// The landings table: every version of every submission, current marked.
fn landings_frame(
    all: &[Landing],
    current: &[(&Landing, usize)],
    timeliness: &[timeliness::Timeliness],
) -> PolarsResult<DataFrame> {
    let cur: PlHashSet<(&str, &str, &str)> = current
        .iter()
        .map(|(l, _)| (l.township.as_str(), l.period.as_str(), l.sha256.as_str()))
        .collect();
    let s = |f: fn(&Landing) -> &str| all.iter().map(f).collect::<Vec<&str>>();
    let micros = |t: &DateTime<Utc>| t.timestamp_micros();
    DataFrame::new_infer_height(vec![
        Column::new("program".into(), s(|l| &l.pipeline)),
        Column::new("township".into(), s(|l| &l.township)),
        Column::new("period".into(), s(|l| &l.period)),
        Column::new(
            "year".into(),
            all.iter()
                .map(|l| l.period.parse::<Period>().map_or(0, |p| p.year))
                .collect::<Vec<i32>>(),
        ),
        Column::new("source_sha256".into(), s(|l| &l.sha256)),
        Column::new("url".into(), s(|l| &l.url)),
        Column::new("bytes".into(), all.iter().map(|l| l.bytes).collect::<Vec<i64>>()),
        Column::new(
            "content_type".into(),
            all.iter().map(|l| l.content_type.as_deref()).collect::<Vec<_>>(),
        ),
        Column::new(
            "defect".into(),
            all.iter().map(|l| l.defect.as_deref()).collect::<Vec<_>>(),
        ),
        Column::new("version".into(), all.iter().map(|l| l.version).collect::<Vec<_>>()),
        Column::new(
            "submitted_at".into(),
            all.iter()
                .map(|l| {
                    l.submitted_at
                        .as_deref()
                        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                        .map(|t| t.timestamp_micros())
                })
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "first_fetched_at".into(),
            all.iter().map(|l| micros(&l.first_fetched_at)).collect::<Vec<_>>(),
        ),
        Column::new(
            "last_fetched_at".into(),
            all.iter().map(|l| micros(&l.last_fetched_at)).collect::<Vec<_>>(),
        ),
        Column::new(
            "current".into(),
            all.iter()
                .map(|l| cur.contains(&(l.township.as_str(), l.period.as_str(), l.sha256.as_str())))
                .collect::<Vec<bool>>(),
        ),
        Column::new(
            "timeliness".into(),
            timeliness.iter().map(|t| t.as_str()).collect::<Vec<&str>>(),
        ),
    ])
}

/// Conservation, checked on every run: values received = published +
/// quarantined + held for review for every submission. A violation is a bug in taizhang, raised
/// as an alert so it cannot pass unnoticed.
fn conservation(program: &str, submissions: &DataFrame) -> PolarsResult<Vec<Candidate>> {
    let broken = submissions
        .clone()
        .lazy()
        .filter(
            col("values_received").neq(col("values_published") + col("values_quarantined") + col("values_in_review")),
        )
        .collect()?;
    let (t, p) = (broken.column("township")?.str()?, broken.column("period")?.str()?);
    let n = |c: &str| broken.column(c).and_then(|c| c.i64().cloned());
    let (r, pu, q) = (n("values_received")?, n("values_published")?, n("values_quarantined")?);
    Ok((0..broken.height())
        .map(|i| {
            let (t, p) = (t.get(i).unwrap_or(""), p.get(i).unwrap_or(""));
            tracing::error!(
                township = t,
                period = p,
                "Conservation violated: a value was lost. This is a bug."
            );
            Candidate {
                key: format!("{program}/conservation/{t}/{p}"),
                program: program.to_string(),
                kind: "conservation".into(),
                severity: "error".into(),
                township: t.to_string(),
                period: p.to_string(),
                indicator: String::new(),
                message: format!(
                    "{t} {p}: received {} values but published {} and quarantined {} (internal error; please report)",
                    r.get(i).unwrap_or(0),
                    pu.get(i).unwrap_or(0),
                    q.get(i).unwrap_or(0)
                ),
            }
        })
        .collect())
}

/// Extracted values waiting for a reviewer.
fn in_review(extractions: &DataFrame) -> PolarsResult<usize> {
    Ok(extractions
        .column("status")?
        .str()?
        .iter()
        .filter(|s| *s == Some("review") || *s == Some("conflict"))
        .count())
}

/// What normalize makes of one landed body, read from the raw store (for a
/// body not kept yet: a new configuration fingerprint, or a run killed
/// before its chunk was written). `parsed` counts bodies parsed.
fn normalize_from_raw(
    cfg: &Loaded,
    p: &Pipeline,
    raw: &RawStore,
    l: &Landing,
    parsed: &mut usize,
) -> Result<normalize::Normalized, RunError> {
    let body = raw.get(&l.sha256)?;
    *parsed += 1;
    let one = [Landed {
        landing: l,
        body: &body,
        versions_landed: 1,
    }];
    normalize::normalize(
        p,
        &cfg.def.catalog,
        &cfg.def.registry,
        &cfg.def.dhis2,
        &cfg.settings.limits,
        &one,
    )
    .map_err(internal("normalize"))
}

/// The normalization of `wanted` landings (with the `versions_landed` of
/// each), from the kept results; bodies not kept yet are normalized from
/// the raw store and kept. Empty tables keep `empty`'s schemas.
fn kept_results(
    cfg: &Loaded,
    p: &Pipeline,
    kept: &mut Kept,
    raw: &RawStore,
    wanted: &[(&Landing, usize)],
    empty: &normalize::Normalized,
    parsed: &mut usize,
) -> Result<normalize::Normalized, RunError> {
    for (l, _) in wanted {
        if !kept.has(l) {
            let n = normalize_from_raw(cfg, p, raw, l, parsed)?;
            kept.add(l, n)?;
        }
    }
    let (mut n, missing) = kept.read(wanted)?;
    if !missing.is_empty() {
        // A chunk that could not be read: its landings are normalized again.
        for i in &missing {
            let l = wanted[*i].0;
            let again = normalize_from_raw(cfg, p, raw, l, parsed)?;
            kept.add(l, again)?;
        }
        let again: Vec<(&Landing, usize)> = missing.iter().map(|i| wanted[*i]).collect();
        let (m, still) = kept.read(&again)?;
        if !still.is_empty() {
            return Err(RunError::Kept(KeptError {
                path: cfg.settings.paths.state_dir.display().to_string(),
                reason: format!("{} kept results cannot be read back after writing them", still.len()),
            }));
        }
        n = normalize::Normalized {
            facts: vstack(vec![n.facts, m.facts]).map_err(internal("normalize"))?,
            quarantine: vstack(vec![n.quarantine, m.quarantine]).map_err(internal("normalize"))?,
            submissions: vstack(vec![n.submissions, m.submissions]).map_err(internal("normalize"))?,
            extractions: vstack(vec![n.extractions, m.extractions]).map_err(internal("normalize"))?,
        };
    }
    let or_empty = |f: DataFrame, e: &DataFrame| if f.width() == 0 { e.clone() } else { f };
    // The facts come in a chunk per kept chunk read: made one, so that
    // gathering them (the checks' joins, the publish order) copies each
    // string's 16-byte view and shares its bytes; polars copies every
    // string's bytes when it gathers from several chunks.
    let mut facts = n.facts;
    facts.rechunk_mut_par();
    Ok(normalize::Normalized {
        facts: or_empty(facts, &empty.facts),
        quarantine: or_empty(n.quarantine, &empty.quarantine),
        submissions: or_empty(n.submissions, &empty.submissions),
        extractions: or_empty(n.extractions, &empty.extractions),
    })
}

/// What computing the selected programs leaves for the commit (everything
/// a row per landed value is already in the sink by then).
struct Computed {
    /// Alert conditions.
    candidates: Vec<Candidate>,
    /// Each program's small tables.
    programs: Vec<(String, publish::ProgramTables)>,
}

/// Townships in a batch at most, unless one city has more: a province with
/// more is split into runs of whole cities. A computed batch's memory grows
/// with its townships, and a run computes one while it reads the next and
/// publishes the one before: Sichuan's 3,111 townships whole took a
/// national year's November run from ~720 to ~1030 MiB.
const BATCH_TOWNSHIPS: usize = 1600;

/// The parts of the registry a run works in, each a registry of its own, in
/// code order: each province, or, for a province of more than `most`
/// townships, runs of its cities (in code order, of about equal size, named
/// `<first city>_<last city>`). Every check compares townships within a
/// county, so a part checks exactly as the whole registry would. A part's
/// batches are its periods (see [`checks::Part`]).
fn batches(registry: &crate::registry::Registry, most: usize) -> Vec<(String, crate::registry::Registry)> {
    // Counted first and split once (each township copied once: splitting
    // by province and then a large one by city copied a nation's twice,
    // a fifth of a rerun's time on the main thread).
    let mut provinces: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for t in registry.townships.values() {
        *provinces
            .entry(t.province.as_str())
            .or_default()
            .entry(t.city.as_str())
            .or_default() += 1;
    }
    // Each (province, city)'s part, and the parts in order.
    let mut part_of: HashMap<(&str, &str), String> = HashMap::new();
    let mut order: Vec<String> = vec![];
    for (province, cities) in provinces {
        let n: usize = cities.values().sum();
        if n <= most {
            part_of.extend(cities.keys().map(|c| ((province, *c), province.to_string())));
            order.push(province.to_string());
            continue;
        }
        let size = n.div_ceil(n.div_ceil(most));
        // Cities are added to a run until it has `size` townships or the
        // next city would take it over `most`.
        let mut runs: Vec<(Vec<&str>, usize)> = vec![];
        for (city, n) in cities {
            match runs.last_mut() {
                Some((run, had)) if *had < size && *had + n <= most => {
                    run.push(city);
                    *had += n;
                }
                _ => runs.push((vec![city], n)),
            }
        }
        for (run, _) in runs {
            let name = format!("{}_{}", run[0], run[run.len() - 1]);
            part_of.extend(run.iter().map(|c| ((province, *c), name.clone())));
            order.push(name);
        }
    }
    let mut parts = registry.split_by(|t| part_of[&(t.province.as_str(), t.city.as_str())].clone());
    order
        .into_iter()
        .filter_map(|name| parts.remove(&name).map(|reg| (name, reg)))
        .collect()
}

/// The order periods are worked in, oldest first (a text that is no
/// period after the periods, by itself).
fn period_order(p: &str) -> (Option<Period>, String) {
    (p.parse().ok(), p.to_string())
}

/// The periods of a part's current landings, oldest first.
fn part_periods(mine: &[(&Landing, usize)]) -> Vec<String> {
    let distinct: std::collections::HashSet<&str> = mine.iter().map(|(l, _)| l.period.as_str()).collect();
    let mut periods: Vec<String> = distinct.into_iter().map(str::to_string).collect();
    periods.sort_by_cached_key(|p| period_order(p));
    periods
}

/// What a batch carries to the next batch of its part of the registry, for its checks
/// that look back: its look-back rows (`checks::look_back`), year to
/// date and totals' history (`plausibility::series_after`), after its
/// period.
#[derive(Clone)]
struct Carry {
    rows: DataFrame,
    quota: checks::quota::QuotaFacts,
    series: DataFrame,
}

/// Where the batch before this one in its part (if any) keeps what it
/// carries: a computed batch sends it from its thread once made (the next
/// batch's thread waits for it, not this one); a carried batch has it in
/// its memo, read only when the next batch is computed.
enum Before {
    Computing(std::sync::mpsc::Receiver<Carry>),
    Kept {
        code: String,
        digest: String,
        quota: checks::quota::QuotaFacts,
        /// Whether the program's checks look back, and whether it keeps
        /// the totals' history ([`Memo::look_back`]'s `wanted`).
        wanted: [bool; 2],
        /// How many of the part's landings are of the batches up to it
        /// (their rows make its look-back rows again when its memo's cannot
        /// be read).
        upto: usize,
    },
}

impl Before {
    /// What it carries, for the next batch's thread: the memo's look-back
    /// rows and totals' history of a carried batch (or `again` made from
    /// the first `upto` of its part's landings when they cannot be read).
    fn carry(
        self,
        memo: &Memo,
        again: &mut impl FnMut(usize) -> Result<(DataFrame, DataFrame), RunError>,
    ) -> Result<std::sync::mpsc::Receiver<Carry>, RunError> {
        match self {
            Before::Computing(rx) => Ok(rx),
            Before::Kept {
                code,
                digest,
                quota,
                wanted,
                upto,
            } => {
                let (rows, series) = match memo.look_back(&code, &digest, wanted) {
                    Some(kept) => kept,
                    None => again(upto)?,
                };
                let (tx, rx) = std::sync::mpsc::channel();
                // The receiver is right here: the send cannot fail.
                let _ = tx.send(Carry { rows, quota, series });
                Ok(rx)
            }
        }
    }
}

/// A batch's rows from the kept results, with the reviewers' decisions.
/// Each of `landings`' rows of `facts` (by township and body sha256), in
/// their order: one pass over the rows, not one filter per landing (a
/// batch's history holds every version of the reports resubmitted, ten
/// townships' dozens of versions).
fn rows_per_landing<'l>(
    facts: &DataFrame,
    landings: impl Iterator<Item = &'l Landing>,
) -> PolarsResult<Vec<DataFrame>> {
    use taizhang_transform::text::Texts;
    let (townships, shas) = (Texts::of(facts, "township")?, Texts::of(facts, "source_sha256")?);
    let mut rows: HashMap<(&str, &str), Vec<IdxSize>> = HashMap::new();
    for i in 0..facts.height() {
        if let (Some(t), Some(s)) = (townships.get(i), shas.get(i)) {
            rows.entry((t, s)).or_default().push(i as IdxSize);
        }
    }
    landings
        .map(|l| {
            let at = rows
                .get(&(l.township.as_str(), l.sha256.as_str()))
                .cloned()
                .unwrap_or_default();
            facts.take(&IdxCa::from_vec("rows".into(), at))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn batch_rows(
    cfg: &Loaded,
    p: &Pipeline,
    kept: &mut Kept,
    raw: &RawStore,
    wanted: &[(&Landing, usize)],
    empty: &normalize::Normalized,
    decisions: &review::Decisions,
    parsed: &mut usize,
) -> Result<normalize::Normalized, RunError> {
    let n = kept_results(cfg, p, kept, raw, wanted, empty, parsed)?;
    review::apply(n, decisions).map_err(internal("review"))
}

/// Normalize, check and roll up every selected program from what is landed,
/// one batch of the registry at a time: a batch's facts, quarantine,
/// submissions and history are read from the kept results, checked, rolled
/// up to its counties and given to `sink` before the next batch is read, so
/// memory grows with one batch (a part's period), not with the country. Check
/// failures and county rollups (small) are kept for the levels above and the
/// commit. Each landed body is normalized once in its life (see [`Kept`]).
/// A batch whose inputs did not change since the run before is carried
/// over from its memo unless `recompute`.
#[allow(clippy::too_many_arguments)]
fn compute(
    cfg: &Loaded,
    state: &State,
    pending: &Pending<'_>,
    remembered: Remembered,
    raw: &RawStore,
    kept: &mut BTreeMap<String, (&Pipeline, Kept)>,
    sink: &mut dyn TableSink,
    now: DateTime<Utc>,
    year: i32,
    recompute: bool,
    summary: &mut RunSummary,
) -> Result<Computed, RunError> {
    let mut candidates = Vec::new();
    let mut programs = vec![];
    let decisions = &state.review_decisions()?;
    let batches = batches(&cfg.def.registry, BATCH_TOWNSHIPS);
    for (p, kept) in kept.values_mut() {
        let p = *p;
        let failures = state.fetch_failures(&p.name)?;
        let absences = state.absences(&p.name)?;
        let absent = timeliness::absent(&absences);
        let unreachable = failures.iter().map(|(t, p, _, _)| (t.clone(), p.clone())).collect();
        // An empty batch still has the tables' schemas.
        let empty = normalize::normalize(
            p,
            &cfg.def.catalog,
            &cfg.def.registry,
            &cfg.def.dhis2,
            &cfg.settings.limits,
            &[],
        )
        .map_err(internal("normalize"))?;
        let memo = Memo::new(&cfg.settings.paths.state_dir, &p.name);
        let looks_back = checks::earlier_rows(p, &cfg.def.catalog)
            .map_err(internal("check"))?
            .is_some();
        let keeps_series = checks::keeps_series(p);
        let ctx = BatchContext {
            cfg,
            p,
            unreachable: &unreachable,
            empty: &empty,
            now,
        };
        // What the state remembers of the program's check results (hashed:
        // 56 bytes each), to track each batch's against.
        let mut tail = Tail {
            candidates: Vec::new(),
            rolls: Vec::new(),
            had_rows: Default::default(),
            tracker: checks::track::Tracker::new(
                remembered
                    .recv()
                    .map_err(|_| RunError::Task(format!("the thread reading what {} remembers stopped", p.name)))??,
                now,
            ),
            check_file: publish::check_encoder().spill_into(sink.spill_dir()).beside()?,
        };
        // The batches of this run (the memos of any other are forgotten).
        let mut codes = std::collections::BTreeSet::new();
        let started = std::time::Instant::now();
        let mut spent = Spent::default();
        // The program's landings table, encoded a part at a time (on a
        // thread of its own) from the landings the batches read.
        let mut landing_file = publish::landing_encoder(&landings_frame(&[], &[], &[]).map_err(internal("land"))?)
            .spill_into(sink.spill_dir())
            .beside()?;
        std::thread::scope(|scope| -> Result<(), RunError> {
            let mut queue = std::collections::VecDeque::new();
            let mut batch_end = BatchEnd {
                cfg,
                p,
                memo: &memo,
                empty: &empty,
                sink: &mut *sink,
                year,
                tail: &mut tail,
                summary: &mut *summary,
                pending,
            };
            // The parts' landings, read and prepared a part ahead on a
            // thread of its own (with its own connection): each batch's
            // digest and, when its memo matches, what carrying it needs (the
            // memo read, its clock checks run, its results finished), while
            // this thread carries or starts the batches of the part before.
            let prep = PartPrep {
                ctx: &ctx,
                memo: &memo,
                decisions,
                absent: &absent,
                year,
                recompute,
            };
            let mut prepared = prepare_ahead(scope, state, &batches, prep)?;
            for (_, reg) in &batches {
                let t = std::time::Instant::now();
                let Prepared {
                    all,
                    rows,
                    quotas,
                    periods,
                    batches: part_batches,
                    spent: took,
                } = prepared
                    .next()
                    .ok_or_else(|| RunError::Task(format!("the landings of {} ran out before its parts", p.name)))??;
                spent.wait += t.elapsed();
                spent.add(&took);
                let t = std::time::Instant::now();
                landing_file.write(rows)?;
                spent.landings += t.elapsed();
                // What a batch computed here is made from, made again from
                // the part's landings only when one is (a part whose batches
                // are all carried needs none of it).
                let derived = std::cell::OnceCell::new();
                let derive = || Derived::of(&all, p.deadline_days, &absent);
                // What the batches before give the next: what it carries for
                // the look-back checks.
                let mut before: Option<Before> = None;
                let mut upto_len = 0;
                for PreparedBatch {
                    code,
                    part,
                    digest,
                    wanted_len,
                    attempt,
                } in part_batches
                {
                    let batch_failures: Vec<_> = failures
                        .iter()
                        .filter(|f| reg.get(&f.0).is_some() && part.owns(&f.1))
                        .cloned()
                        .collect();
                    // Nothing the batch is computed from changed (nor any
                    // batch before it): its files and results are carried
                    // over, and only the clock checks ran.
                    let mut carried = None;
                    let t = std::time::Instant::now();
                    match attempt {
                        Some(attempt) => {
                            let (m, held, results) = attempt?;
                            if held != m.clock_excluded {
                                tracing::debug!(program = %p.name, batch = %code, "The clock checks hold out other values than before: computing the batch.");
                            } else if !batch_end.sink.carry(&m.files)? {
                                tracing::debug!(program = %p.name, batch = %code, "A file of the batch's memo is not in the published snapshot: computing the batch.");
                            } else {
                                batch_end.summary.batches_carried += 1;
                                carried = Some((m, results));
                            }
                        }
                        None if !recompute => {
                            tracing::debug!(program = %p.name, batch = %code, "No memo of the batch for its inputs: computing it.");
                        }
                        None => {}
                    }
                    spent.carry += t.elapsed();
                    upto_len += wanted_len;
                    let work = match carried {
                        Some((m, results)) => {
                            before = Some(Before::Kept {
                                code: code.clone(),
                                digest: digest.clone(),
                                quota: m.quota_facts.clone(),
                                wanted: [looks_back, keeps_series],
                                upto: upto_len,
                            });
                            Work::Carried(Box::new(m), results)
                        }
                        None => {
                            let part_derived = derived.get_or_init(derive);
                            let wanted = part_derived.wanted(part.period.as_deref());
                            let older = older_versions(&wanted, &part_derived.versions);
                            let history = if older.is_empty() {
                                normalize::history(&p.name, &[]).map_err(internal("normalize"))?
                            } else {
                                let facts = kept_results(
                                    cfg,
                                    p,
                                    kept,
                                    raw,
                                    &older,
                                    &empty,
                                    &mut batch_end.summary.bodies_parsed,
                                )?
                                .facts;
                                let per_version = rows_per_landing(&facts, older.iter().map(|(l, _)| *l))
                                    .map_err(internal("normalize"))?;
                                let versions: Vec<normalize::Version<'_>> = older
                                    .iter()
                                    .zip(&per_version)
                                    .map(|((landing, _), facts)| normalize::Version { landing, facts })
                                    .collect();
                                normalize::history(&p.name, &versions).map_err(internal("normalize"))?
                            };
                            let mut n = batch_rows(
                                cfg,
                                p,
                                kept,
                                raw,
                                &wanted,
                                &empty,
                                decisions,
                                &mut batch_end.summary.bodies_parsed,
                            )?;
                            // When each report arrived, from the evidence
                            // of all its versions.
                            n.submissions = timeliness::apply(n.submissions, &part_derived.reports)
                                .map_err(internal("normalize"))?;
                            // What the batch before carries: waited for on
                            // the batch's thread when it is computing.
                            let carry_in = match before.take() {
                                Some(b) => {
                                    // A carried batch's rows whose memo cannot
                                    // be read: made again from its part's
                                    // landings up to it.
                                    let mut again = |n: usize| {
                                        if !looks_back && !keeps_series {
                                            return Ok((DataFrame::empty(), DataFrame::empty()));
                                        }
                                        let n = batch_rows(
                                            cfg,
                                            p,
                                            kept,
                                            raw,
                                            &part_derived.upto(&periods)[..n],
                                            &empty,
                                            decisions,
                                            &mut batch_end.summary.bodies_parsed,
                                        )?;
                                        let rows = match looks_back {
                                            true => checks::look_back(p, &cfg.def.catalog, None, &n.facts)
                                                .map_err(internal("check"))?,
                                            false => DataFrame::empty(),
                                        };
                                        let series = match keeps_series {
                                            true => checks::plausibility::series_after(None, &n.facts)
                                                .map_err(internal("check"))?,
                                            false => DataFrame::empty(),
                                        };
                                        Ok((rows, series))
                                    };
                                    Some(b.carry(&memo, &mut again)?)
                                }
                                None => None,
                            };
                            tracing::debug!(program = %p.name, batch = %code, townships = reg.townships.len(), facts = n.facts.height(), "Computing the batch.");
                            let (carry_out, next) = std::sync::mpsc::channel();
                            before = Some(Before::Computing(next));
                            let (ctx, quotas, part) = (&ctx, Arc::clone(&quotas), part.clone());
                            // Named, so that `top -H` and profiles tell it
                            // from the main thread.
                            let job = std::thread::Builder::new()
                                .name(format!("batch {code}"))
                                .spawn_scoped(scope, move || {
                                    compute_batch(ctx, reg, &quotas, digest, n, history, carry_in, carry_out, &part)
                                })
                                .map_err(|e| RunError::Task(format!("cannot start a thread for batch {code}: {e}")))?;
                            Work::Running(job)
                        }
                    };
                    codes.insert(code.clone());
                    queue.push_back((code, part.period.clone(), batch_failures, work));
                    // Batches computed on other threads (one or two: see
                    // `batches_in_flight`) while this thread carries the
                    // batches after them, reads the next computed one's rows
                    // and then writes the one before: a computed batch is
                    // finished (waited for, its files written) only once the
                    // next one is computing, carried ones at once.
                    loop {
                        let computing = queue.iter().filter(|q| matches!(q.3, Work::Running(_))).count();
                        let front_carried = queue.front().is_some_and(|q| matches!(q.3, Work::Carried(..)));
                        if !front_carried && computing <= batches_in_flight() {
                            break;
                        }
                        let t = std::time::Instant::now();
                        finish_batch(&mut queue, &mut batch_end)?;
                        spent.finish += t.elapsed();
                    }
                }
            }
            while !queue.is_empty() {
                finish_batch(&mut queue, &mut batch_end)?;
            }
            Ok(())
        })?;
        let Tail {
            candidates: batch_candidates,
            rolls,
            had_rows,
            tracker,
            check_file,
        } = tail;
        candidates.extend(batch_candidates);
        // The remembered results no batch failed: read back whole, resolved.
        let gone = state.check_rows(&tracker.gone())?;
        drop(tracker);
        let (resolved, resolved_now) = checks::track::resolved(&gone, now).map_err(internal("check"))?;
        let mut check_file = check_file.finish()?;
        check_file.write(&resolved)?;
        pending.write_checks(&checks::track::records(&resolved_now).map_err(internal("check"))?)?;
        let empty = publish::BatchTables {
            history: normalize::history(&p.name, &[]).map_err(internal("normalize"))?,
            facts: empty.facts,
            quarantine: empty.quarantine,
            submissions: empty.submissions,
            extractions: empty.extractions,
        };
        publish::publish_empty(&p.name, &empty, &had_rows, sink, year)?;
        tracing::debug!(program = %p.name, ms = started.elapsed().as_millis() as u64, wait_ms = spent.wait.as_millis() as u64, read_ms = spent.read.as_millis() as u64, digest_ms = spent.digest.as_millis() as u64, memo_ms = spent.load.as_millis() as u64, landings_ms = spent.landings.as_millis() as u64, clock_ms = spent.clock.as_millis() as u64, carry_ms = spent.carry.as_millis() as u64, finish_ms = spent.finish.as_millis() as u64, "Batches done.");
        summary.rollup_rows += roll_up(cfg, p, &memo, &mut *sink, rolls, year, recompute, &mut codes)?;
        tracing::debug!(program = %p.name, ms = started.elapsed().as_millis() as u64, "Rollups done.");
        // The batches' rows are gone: what their threads freed goes back
        // (the year's April: 0.7 GiB free in the arenas here).
        crate::memory::give_back();
        memo.retain(&codes);
        // The landings of townships in no batch (no longer in the registry).
        let outside: Vec<String> = state
            .landed_townships(&p.name)?
            .into_iter()
            .filter(|t| cfg.def.registry.get(t).is_none())
            .collect();
        if !outside.is_empty() {
            let all = state.landings_of(&p.name, outside.iter().map(String::as_str))?;
            let reports = timeliness::reports(&all, p.deadline_days, &absent);
            landing_file.write(landing_rows(&all, &current_landings(&all), &reports)?)?;
        }
        programs.push((
            p.name.clone(),
            publish::ProgramTables {
                landings: landing_file.finish()?,
                checks: check_file,
            },
        ));
    }
    Ok(Computed { candidates, programs })
}

/// What [`prepare_part`] works with: the program's batch context and
/// memo, and what every batch's digest covers beside its landings.
struct PartPrep<'a> {
    ctx: &'a BatchContext<'a>,
    memo: &'a Memo,
    decisions: &'a review::Decisions,
    absent: &'a timeliness::Absent<'a>,
    year: i32,
    recompute: bool,
}

/// A part's landings and its batches, a period each (oldest first), as far
/// as they are known before one is carried or computed.
struct Prepared {
    /// The part's landings (of every version).
    all: Vec<Landing>,
    /// Their rows of the program's `landings` table.
    rows: DataFrame,
    /// The quotas of the part's townships and counties.
    quotas: Arc<Vec<taizhang_model::Quota>>,
    /// The periods of its current landings, oldest first.
    periods: Vec<String>,
    batches: Vec<PreparedBatch>,
    /// Where the preparing thread's time went.
    spent: PrepSpent,
}

/// A batch's memo, what its clock checks hold out now and its results
/// (see [`carry_attempt`]).
type Attempt = (memo::Batch, Vec<String>, DataFrame);

/// One batch of a [`Prepared`] part.
struct PreparedBatch {
    code: String,
    part: Part,
    /// Of everything it is computed from, and of the batches before it.
    digest: String,
    /// Its current landings.
    wanted_len: usize,
    /// Its memo for `digest`, with what the clock checks hold out now and
    /// its results finished (see [`carry_attempt`]): None without such a
    /// memo (or when every batch is computed again).
    attempt: Option<Result<Attempt, RunError>>,
}

/// The preparing thread's time over a part (see [`Spent`]).
#[derive(Default)]
struct PrepSpent {
    read: std::time::Duration,
    digest: std::time::Duration,
    load: std::time::Duration,
    clock: std::time::Duration,
}

/// Each part of `batches` in turn, read from the state (see
/// [`State::landings_of`]) and prepared ([`prepare_part`]) on
/// [`PREPARERS`] threads of `scope`, each through a connection of its own
/// and taking every other part, at most one part ahead of the one
/// received: parts' batches are digested and their memos read while the
/// batches of the part before are carried or started. Received in order; a
/// thread stops at its first error (given) or when the receiver is gone.
fn prepare_ahead<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    state: &State,
    batches: &'env [(String, crate::registry::Registry)],
    prep: PartPrep<'env>,
) -> Result<impl Iterator<Item = Result<Prepared, RunError>> + 'scope, RunError>
where
    'env: 'scope,
{
    let program = &prep.ctx.p.name;
    let prep = Arc::new(prep);
    let mut receivers = Vec::new();
    for i in 0..PREPARERS {
        let reader = state.reader()?;
        // A rendezvous: the next part is prepared, then handed over when asked for.
        let (give, prepared) = std::sync::mpsc::sync_channel(0);
        let prep = Arc::clone(&prep);
        let mine = batches.iter().skip(i).step_by(PREPARERS);
        std::thread::Builder::new()
            .name("read landings".into())
            .spawn_scoped(scope, move || {
                hand_over(mine, give, |(area, reg)| {
                    let t = std::time::Instant::now();
                    let all = reader.landings_of(&prep.ctx.p.name, reg.townships.keys().map(String::as_str))?;
                    let read = t.elapsed();
                    let mut part = prepare_part(&prep, area, reg, all)?;
                    part.spent.read += read;
                    Ok(part)
                })
            })
            .map_err(|e| RunError::Task(format!("cannot start a thread to read the landings of {program}: {e}")))?;
        receivers.push(prepared);
    }
    let program = program.clone();
    Ok((0..batches.len()).map(move |i| {
        receivers[i % PREPARERS]
            .recv()
            .map_err(|_| RunError::Task(format!("the thread reading the landings of {program} stopped")))?
    }))
}

/// Threads preparing parts at once (see [`prepare_ahead`]).
const PREPARERS: usize = 2;

/// A part's batches from its landings `all` (a township not in the
/// registry is in no batch: only in the program's landings table): one per
/// period of its current landings, oldest first, or one with none when
/// nothing of the part landed; each with its digest (chained: a batch's
/// covers the one before it) and, unless `recompute`, its memo when one
/// was kept for that digest, with the clock checks run on it.
fn prepare_part(
    prep: &PartPrep<'_>,
    area: &str,
    reg: &crate::registry::Registry,
    all: Vec<Landing>,
) -> Result<Prepared, RunError> {
    let PartPrep {
        ctx,
        memo,
        decisions,
        absent,
        year,
        recompute,
    } = *prep;
    let (cfg, p) = (ctx.cfg, ctx.p);
    let mut spent = PrepSpent::default();
    let t = std::time::Instant::now();
    let derived = Derived::of(&all, p.deadline_days, absent);
    let rows = landing_rows(&all, &derived.current, &derived.reports)?;
    spent.read += t.elapsed();
    let counties = reg.counties();
    let quotas: Vec<taizhang_model::Quota> = cfg
        .def
        .quotas
        .iter()
        .filter(|q| reg.get(&q.code).is_some() || counties.contains_key(&q.code))
        .cloned()
        .collect();
    let quotas = Arc::new(quotas);
    let periods = part_periods(&derived.current);
    let parts: Vec<Option<&str>> = match periods.is_empty() {
        true => vec![None],
        false => periods.iter().map(|p| Some(p.as_str())).collect(),
    };
    let mut chain = String::new();
    let mut batches = Vec::with_capacity(parts.len());
    for (i, period) in parts.iter().enumerate() {
        let part = Part {
            period: period.map(str::to_string),
            last: i + 1 == parts.len(),
            periods: periods.clone(),
        };
        let code = match period {
            Some(p) => format!("{area}-{p}"),
            None => area.to_string(),
        };
        let wanted = derived.wanted(*period);
        let older = older_versions(&wanted, &derived.versions);
        let t = std::time::Instant::now();
        let digest = batch_digest(
            cfg,
            p,
            &code,
            year,
            &wanted,
            &older,
            &derived.reports,
            decisions,
            &chain,
        );
        spent.digest += t.elapsed();
        chain = digest.clone();
        let attempt = match recompute {
            true => None,
            false => carry_attempt(memo, &code, &digest, &ctx.check_input(reg, &quotas, &part), &mut spent),
        };
        batches.push(PreparedBatch {
            code,
            part,
            digest,
            wanted_len: wanted.len(),
            attempt,
        });
    }
    drop(derived);
    Ok(Prepared {
        all,
        rows,
        quotas,
        periods,
        batches,
        spent,
    })
}

/// What a part's batches are made from besides their own landings: the
/// part's current landings, their reports' timeliness and the versions of
/// the (township, period)s with several (see [`current_landings`],
/// [`timeliness::reports`], [`versions_of`]).
struct Derived<'a> {
    current: Vec<(&'a Landing, usize)>,
    reports: timeliness::Reports<'a>,
    versions: std::collections::HashMap<(&'a str, &'a str), Vec<&'a Landing>>,
}

impl<'a> Derived<'a> {
    fn of(all: &'a [Landing], deadline_days: u32, absent: &timeliness::Absent<'_>) -> Derived<'a> {
        let current = current_landings(all);
        let reports = timeliness::reports(all, deadline_days, absent);
        let versions = versions_of(all, &current);
        Derived {
            current,
            reports,
            versions,
        }
    }

    /// The current landings of `period` (none for None).
    fn wanted(&self, period: Option<&str>) -> Vec<(&'a Landing, usize)> {
        self.current
            .iter()
            .filter(|(l, _)| Some(l.period.as_str()) == period)
            .copied()
            .collect()
    }

    /// The current landings of `periods`, in their order (see
    /// `Before::Kept`'s `upto`).
    fn upto(&self, periods: &[String]) -> Vec<(&'a Landing, usize)> {
        periods.iter().flat_map(|p| self.wanted(Some(p))).collect()
    }
}

/// Every version of the (township, period)s of `wanted` that have more
/// than one (`versions_of`, see [`versions_of`]).
fn older_versions<'a>(
    wanted: &[(&'a Landing, usize)],
    versions_of: &std::collections::HashMap<(&str, &str), Vec<&'a Landing>>,
) -> Vec<(&'a Landing, usize)> {
    wanted
        .iter()
        .filter(|(_, n)| *n > 1)
        .flat_map(|(c, _)| {
            versions_of
                .get(&(c.township.as_str(), c.period.as_str()))
                .into_iter()
                .flatten()
                .map(|l| (*l, 1))
        })
        .collect()
}

/// A batch's memo for `digest`, if one was kept, with what its clock checks
/// hold out now and its check results (the memo's and the clock's,
/// finished): what carrying it needs, made before it is known to be
/// carried (a memo whose clock checks hold out other values is computed).
fn carry_attempt(
    memo: &Memo,
    code: &str,
    digest: &str,
    base: &CheckInput<'_>,
    spent: &mut PrepSpent,
) -> Option<Result<Attempt, RunError>> {
    let t = std::time::Instant::now();
    let m = memo.load(code, digest);
    spent.load += t.elapsed();
    let m = m?;
    let t = std::time::Instant::now();
    let attempt = (|| -> Result<_, RunError> {
        let input = CheckInput {
            submissions: &m.submissions,
            quota_facts: Some(&m.quota_facts),
            ..base.clone()
        };
        let clock = checks::run_raw(&input, true).map_err(internal("check"))?;
        let held = memo::clock_excluded(&clock, &m.submissions, &m.periods).map_err(internal("check"))?;
        let results = checks::finish(&[m.checks.clone(), clock], &m.submissions).map_err(internal("check"))?;
        Ok((held, results))
    })();
    spent.clock += t.elapsed();
    Some(attempt.map(|(held, results)| (m, held, results)))
}

/// Each program's remembered check results, in the order of the kept
/// stores (see [`read_remembered`]).
type Remembered = std::sync::mpsc::Receiver<Result<Vec<checks::track::Remembered>, crate::state::StateError>>;

/// What the state remembers of each of `programs`' check results (see
/// [`State::remembered`]), in that order, read on a thread of its own
/// through a second connection, one program ahead of the one received:
/// the next is read when the one before is asked for. The thread stops at
/// the first error (given) or when the receiver is gone.
fn read_remembered(state: &State, programs: Vec<String>) -> Result<Remembered, RunError> {
    let reader = state.reader()?;
    let (give, remembered) = std::sync::mpsc::sync_channel(0);
    std::thread::Builder::new()
        .name("read remembered".into())
        .spawn(move || hand_over(programs, give, |p| reader.remembered(&p)))
        .map_err(|e| {
            RunError::Task(format!(
                "cannot start a thread to read the remembered check results: {e}"
            ))
        })?;
    Ok(remembered)
}

/// Reads each of `items` in turn and gives what was read on `give` (a
/// rendezvous: the next is read while the one before is worked on), until
/// the first error (given) or until the receiver is gone.
fn hand_over<I, T, E>(
    items: impl IntoIterator<Item = I>,
    give: std::sync::mpsc::SyncSender<Result<T, E>>,
    mut read: impl FnMut(I) -> Result<T, E>,
) {
    for item in items {
        let got = read(item);
        let failed = got.is_err();
        if give.send(got).is_err() || failed {
            break;
        }
    }
}

/// Where the main thread's time over a program's batches went, logged
/// with "Batches done." (debug): what a run that carries most of its
/// batches spends its time on.
#[derive(Default)]
struct Spent {
    /// The run's thread waiting for the next part (see [`prepare_ahead`]).
    wait: std::time::Duration,
    /// On the preparing threads: reading the parts' landings, their
    /// reports' timeliness and their rows of the landings table ...
    read: std::time::Duration,
    /// ... the batches' digests ...
    digest: std::time::Duration,
    /// ... loading the memos that match them ...
    load: std::time::Duration,
    /// ... and a loaded memo's clock checks and finished results.
    clock: std::time::Duration,
    /// Carrying a batch's files.
    carry: std::time::Duration,
    /// Giving each part's landings to the landings table's encoder.
    landings: std::time::Duration,
    /// Finishing batches in order: waiting for the computed ones and
    /// publishing them; every batch's alerts, tracking and check results.
    finish: std::time::Duration,
}

impl Spent {
    /// The preparing thread's time over a part (see [`prepare_ahead`]).
    fn add(&mut self, prep: &PrepSpent) {
        self.read += prep.read;
        self.digest += prep.digest;
        self.load += prep.load;
        self.clock += prep.clock;
    }
}

/// A program's rollups, a period at a time, oldest first, from the county
/// rows of each period's batches: every level's cells of the period, each
/// flow's year to date continued from the period before (see
/// `rollup::period_levels`). A period whose batches' digests and the
/// rollup of the period before it are those its memo was computed from is
/// carried (its files linked) like a batch; a computed one is published as
/// its own files. Returns the county rows.
#[allow(clippy::too_many_arguments)]
fn roll_up(
    cfg: &Loaded,
    p: &Pipeline,
    memo: &Memo,
    sink: &mut dyn TableSink,
    rolls: Vec<Roll>,
    year: i32,
    recompute: bool,
    codes: &mut std::collections::BTreeSet<String>,
) -> Result<usize, RunError> {
    let mut periods: BTreeMap<(Option<Period>, String), Vec<Roll>> = BTreeMap::new();
    let mut none = None;
    for r in rolls {
        match &r.period {
            Some(p) => periods.entry(period_order(p)).or_default().push(r),
            None => none = Some(r),
        }
    }
    let periods: Vec<(String, Vec<Roll>)> = periods.into_iter().map(|((_, p), r)| (p, r)).collect();
    // A batch's rows, a carried one's read from its memo.
    let rows_of = |r: &Roll| -> Result<(DataFrame, DataFrame), RunError> {
        match &r.rows {
            memo::RollRows::Here { county, reporting } => Ok((county.clone(), reporting.clone())),
            memo::RollRows::Kept { batch, digest } => memo.roll_rows(batch, digest).map_err(|why| {
                memo.forget(batch);
                RunError::Memo {
                    program: p.name.clone(),
                    batch: batch.clone(),
                    why,
                }
            }),
        }
    };
    if periods.is_empty() {
        // Nothing landed: the tables' schemas, in one empty file each.
        if let Some(r) = none {
            let (county, reporting) = rows_of(&r)?;
            let empty = rollup::levels_up(county, &reporting, &cfg.def.registry, &cfg.def.quotas, &cfg.def.catalog)
                .map_err(internal("rollup"))?;
            publish::publish_rollup(&p.name, None, &empty, sink, year)?;
        }
        return Ok(0);
    }
    let levels = |county: DataFrame, reporting: &DataFrame, before: Option<&[DataFrame; 4]>| {
        rollup::period_levels(
            county,
            reporting,
            &cfg.def.registry,
            &cfg.def.quotas,
            &cfg.def.catalog,
            before,
        )
        .map_err(internal("rollup"))
    };
    let stacked = |rolls: &[Roll]| -> Result<(DataFrame, DataFrame), RunError> {
        let (mut county, mut reporting) = (vec![], vec![]);
        for r in rolls {
            let (c, s) = rows_of(r)?;
            county.push(c);
            reporting.push(s);
        }
        Ok((
            vstack(county).map_err(internal("rollup"))?,
            vstack(reporting).map_err(internal("rollup"))?,
        ))
    };
    let mut rows = 0;
    let mut chain = String::new();
    // The year-to-date carry after the period before, when it was computed;
    // the memo to read it from when it was carried.
    let mut carry: Option<[DataFrame; 4]> = None;
    let mut carried: Option<(String, String)> = None;
    for (i, (period, rolls)) in periods.iter().enumerate() {
        let name = format!("rollup-{period}");
        codes.insert(name.clone());
        let mut digests: Vec<&str> = rolls.iter().map(|r| r.digest.as_str()).collect();
        digests.sort_unstable();
        let digest = crate::land::sha256_hex(
            format!(
                "rollup v{} {period} after {chain}\n{}",
                memo::MEMO_VERSION,
                digests.join("\n")
            )
            .as_bytes(),
        );
        chain = digest.clone();
        if !recompute
            && let Some(m) = memo.load_rollup(&name, &digest)
            && sink.carry(&m.files)?
        {
            rows += m.rows;
            carry = None;
            carried = Some((name, digest));
            continue;
        }
        let before = match (carry.take(), carried.take()) {
            (Some(c), _) => Some(c),
            (None, Some((name, digest))) => match memo.rollup_carry(&name, &digest) {
                Some(c) => Some(c),
                // Not readable: made again from the periods before.
                None => {
                    let mut c: Option<[DataFrame; 4]> = None;
                    for (_, rolls) in &periods[..i] {
                        let (county, reporting) = stacked(rolls)?;
                        c = Some(levels(county, &reporting, c.as_ref())?.1);
                    }
                    c
                }
            },
            (None, None) => None,
        };
        let (county, reporting) = stacked(rolls)?;
        // The county level published (its file encoded) while the levels
        // above it are made on a thread of their own: a national month's
        // 0.12 s beside its 0.15-0.2 s.
        let rollup = rollup::PeriodRollup::new(
            &reporting,
            &cfg.def.registry,
            &cfg.def.quotas,
            &cfg.def.catalog,
            before.as_ref(),
        )
        .map_err(internal("rollup"))?;
        let county = rollup.to_date(county).map_err(internal("rollup"))?;
        let owner = crate::sinks::Owner::batch(&p.name, period);
        let (county_rows, (above, above_after)) = std::thread::scope(|scope| -> Result<_, RunError> {
            let above = std::thread::Builder::new()
                .name("rollup above".into())
                .spawn_scoped(scope, || rollup.above(&county))
                .map_err(|e| RunError::Task(format!("cannot start a thread for the rollup of {period}: {e}")))?;
            let county_level = rollup.county(county.clone()).map_err(internal("rollup"));
            let published = county_level.and_then(|(table, after)| {
                publish::publish_rollup_level(owner, LEVELS[0], &table, sink, year)?;
                Ok((table.height(), after))
            });
            let above = above
                .join()
                .map_err(|_| RunError::Task(format!("the rollup of {period} panicked")))?
                .map_err(internal("rollup"))?;
            Ok((published?, above))
        })?;
        let (county_height, county_after) = county_rows;
        for (level, table) in LEVELS[1..].iter().zip(&above) {
            publish::publish_rollup_level(owner, *level, table, sink, year)?;
        }
        let [city_after, province_after, nation_after] = above_after;
        let after = [county_after, city_after, province_after, nation_after];
        let m = memo::Rollup {
            digest,
            files: sink.files_of(&p.name, period),
            rows: county_height,
        };
        rows += m.rows;
        if let Err(e) = memo.save_rollup(&name, &m, &after) {
            tracing::warn!(program = %p.name, period = %period, error = %e, "Cannot remember the rollup; the next run computes it again.");
        }
        carry = Some(after);
    }
    Ok(rows)
}

/// What every batch of a program is computed with.
struct BatchContext<'a> {
    cfg: &'a Loaded,
    p: &'a Pipeline,
    unreachable: &'a std::collections::HashSet<(String, String)>,
    /// The program's tables, empty (their schemas).
    empty: &'a normalize::Normalized,
    now: DateTime<Utc>,
}

impl BatchContext<'_> {
    /// What a batch's checks see, but its rows.
    fn check_input<'b>(
        &'b self,
        registry: &'b crate::registry::Registry,
        quotas: &'b [taizhang_model::Quota],
        part: &'b Part,
    ) -> CheckInput<'b> {
        CheckInput {
            pipeline: self.p,
            catalog: &self.cfg.def.catalog,
            registry,
            quotas,
            facts: &self.empty.facts,
            submissions: &self.empty.submissions,
            unreachable: self.unreachable,
            now: self.now,
            quota_facts: None,
            earlier: None,
            series: None,
            part: Some(part),
        }
    }
}

/// A batch in the run's queue: carried (its memo and results), or being
/// computed on another thread.
enum Work<'scope> {
    Carried(Box<memo::Batch>, DataFrame),
    Running(std::thread::ScopedJoinHandle<'scope, Result<ComputedBatch, RunError>>),
}

/// A batch waiting in the run's queue: its code, its period, its fetch
/// failures (township, period, url, error) and its work.
type Queued<'scope> = (
    String,
    Option<String>,
    Vec<(String, String, String, String)>,
    Work<'scope>,
);

/// A batch computed: its memo (without its files yet), check results and
/// tables to publish.
type ComputedBatch = (memo::Batch, DataFrame, publish::BatchTables);

/// Batches computed at once besides the one being read: two while the
/// process is under [`SECOND_BATCH_UNDER`] resident, else one. A national
/// month's first run spent 8.6-10.3 s instead of 12.1-14.3 in its batches
/// and peaked at 658-688 MiB instead of 646-660; the national year's
/// November, computed with a year of history, peaked at 867 MiB (807 with
/// one at a time, 928 with two whatever the memory, for no time saved)
/// (BENCHMARKS.md).
fn batches_in_flight() -> usize {
    match crate::memory::resident_bytes() {
        Some(r) if r < SECOND_BATCH_UNDER => 2,
        _ => 1,
    }
}

/// See [`batches_in_flight`].
const SECOND_BATCH_UNDER: usize = 720 << 20;

/// What the allocator may keep freed after a computed batch, for the next
/// one to reuse, before all of it is given back to the system. A national
/// month's batches left 45-245 MiB freed each (so none was given back):
/// its batches took 17% less time, its peak 70 MiB more; the national
/// year's November computed with the year landed peaked at 795-808 MiB
/// against 767-791 (BENCHMARKS.md).
const BATCH_FREED_KEPT: usize = 256 << 20;

/// Computes one batch from its kept rows and the history of its reports'
/// versions: reviews and timeliness applied, checks, county rollup and the
/// alert conditions of its quarantine. Pure: no IO, no clock but `now`.
#[allow(clippy::too_many_arguments)]
fn compute_batch(
    ctx: &BatchContext<'_>,
    reg: &crate::registry::Registry,
    quotas: &[taizhang_model::Quota],
    digest: String,
    n: normalize::Normalized,
    history: DataFrame,
    carry_in: Option<std::sync::mpsc::Receiver<Carry>>,
    carry_out: std::sync::mpsc::Sender<Carry>,
    part: &Part,
) -> Result<ComputedBatch, RunError> {
    let BatchContext { cfg, p, .. } = *ctx;
    let base = ctx.check_input(reg, quotas, part);
    let mut lap = Lap::default();
    // Rows come in the order the chunks hold them; publish them in
    // an order that does not depend on when each body landed.
    let sorted = |f: DataFrame, by: &[&str]| {
        f.lazy()
            .sort(by.to_vec(), SortMultipleOptions::default().with_nulls_last(false))
            .collect()
    };
    let n = normalize::Normalized {
        facts: n.facts,
        quarantine: sorted(n.quarantine, &["township", "period", "value_index"]).map_err(internal("normalize"))?,
        submissions: sorted(n.submissions, &["township", "period"]).map_err(internal("normalize"))?,
        extractions: sorted(n.extractions, &["township", "period", "start", "end"]).map_err(internal("normalize"))?,
    };
    // The checks see the columns they read: every row they filter, join or
    // window is copied without the provenance (the body's sha256 above
    // all), which is a fifth of a fact row.
    let checked = n.facts.select(checks::CHECKED_COLUMNS).map_err(internal("check"))?;
    // What the batch before carries (the next batch's thread waits for
    // this one's the same way), and what this one carries on: the rows the
    // look-back checks need and the year to date, made first.
    let before = match carry_in {
        Some(rx) => Some(
            rx.recv()
                .map_err(|_| RunError::Task(format!("a batch of {} stopped before the one after it", p.name)))?,
        ),
        None => None,
    };
    let own = match p
        .checks
        .iter()
        .any(|c| matches!(c, checks::CheckConfig::QuotaProgress(_)))
    {
        true => checks::quota::quota_facts(&checked, &cfg.def.catalog).map_err(internal("check"))?,
        false => checks::quota::QuotaFacts {
            achieved: DataFrame::empty(),
            years: vec![],
        },
    };
    let quota_facts = match &before {
        Some(b) => b.quota.then(&own, &cfg.def.catalog).map_err(internal("check"))?,
        None => own,
    };
    let (earlier, series_before) = match before {
        Some(b) => (Some(b.rows).filter(|r| r.height() > 0), Some(b.series)),
        None => (None, None),
    };
    // How many rows of the periods before the look-back checks read with
    // the batch's (for its debug line: they grow over a year's first
    // months, until a history is as long as the checks look back).
    let earlier_rows = earlier.as_ref().map_or(0, DataFrame::height);
    lap.lap("sorted_and_waited");
    let look_back = checks::look_back(p, &cfg.def.catalog, earlier.as_ref(), &checked).map_err(internal("check"))?;
    lap.lap("look_back");
    let carried_rows = look_back.height();
    let series = match checks::keeps_series(p) {
        true => checks::plausibility::series_after(series_before.as_ref(), &checked).map_err(internal("check"))?,
        false => DataFrame::empty(),
    };
    lap.lap("series");
    // The next batch may be carried: nobody waits then.
    let _ = carry_out.send(Carry {
        rows: look_back.clone(),
        quota: quota_facts.clone(),
        series: series.clone(),
    });
    let input = CheckInput {
        facts: &checked,
        submissions: &n.submissions,
        quota_facts: Some(&quota_facts),
        earlier: earlier.as_ref(),
        series: series_before.as_ref(),
        ..base
    };
    let fixed = checks::run_raw(&input, false).map_err(internal("check"))?;
    lap.lap("checks");
    let clock = checks::run_raw(&input, true).map_err(internal("check"))?;
    lap.lap("clock");
    let results = checks::finish(&[fixed.clone(), clock.clone()], &n.submissions).map_err(internal("check"))?;
    lap.lap("finish");
    let mut periods: Vec<String> = n
        .facts
        .column("period")
        .and_then(|c| c.unique())
        .and_then(|c| c.str().map(|s| s.iter().flatten().map(str::to_string).collect()))
        .map_err(internal("check"))?;
    periods.sort();
    let clock_excluded = memo::clock_excluded(&clock, &n.submissions, &periods).map_err(internal("check"))?;
    let county_roll = rollup::county(&n.facts, &results, &n.submissions, reg, quotas, &cfg.def.catalog)
        .map_err(internal("rollup"))?;
    lap.lap("rollup");
    // Alert conditions of the quarantine and the conservation (the
    // checks' and fetch failures' are made every run, below).
    let of_quarantine =
        alerts::derive(&p.name, &results.clear(), &n.quarantine, &[], &cfg.def.registry).map_err(internal("alert"))?;
    let of_conservation = conservation(&p.name, &n.submissions).map_err(internal("normalize"))?;
    let batch_reporting = n
        .submissions
        .select(["township", "period", "status"])
        .map_err(internal("rollup"))?;
    let in_review_count = in_review(&n.extractions).map_err(internal("review"))?;
    let batch = memo::Batch {
        digest,
        look_back: Some(look_back),
        series: Some(series),
        files: vec![],
        rows_published: n.facts.height(),
        quarantined: n.quarantine.height(),
        submissions_count: n.submissions.height(),
        in_review: in_review_count,
        had_rows: vec![],
        quarantine_candidates: of_quarantine,
        conservation_candidates: of_conservation,
        clock_excluded,
        periods,
        checks: fixed,
        roll: memo::RollRows::Here {
            county: county_roll,
            reporting: batch_reporting,
        },
        quota_facts,
        submissions: n
            .submissions
            .select(["township", "period", "status", "explanation"])
            .map_err(internal("check"))?,
    };
    lap.lap("rest");
    tracing::debug!(program = %p.name, laps = %lap, fact_rows = n.facts.height(), earlier_rows, carried_rows, "Batch computed.");
    let tables = publish::BatchTables {
        facts: n.facts,
        quarantine: n.quarantine,
        submissions: n.submissions,
        history,
        extractions: n.extractions,
    };
    Ok((batch, results, tables))
}

/// Milliseconds spent in each stage of a computed batch, for its debug line.
struct Lap {
    at: std::time::Instant,
    laps: Vec<(&'static str, u128)>,
}

impl Default for Lap {
    fn default() -> Lap {
        Lap {
            at: std::time::Instant::now(),
            laps: vec![],
        }
    }
}

impl Lap {
    fn lap(&mut self, stage: &'static str) {
        self.laps.push((stage, self.at.elapsed().as_millis()));
        self.at = std::time::Instant::now();
    }
}

impl std::fmt::Display for Lap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (stage, ms)) in self.laps.iter().enumerate() {
            write!(f, "{}{stage} {ms}", if i > 0 { ", " } else { "" })?;
        }
        Ok(())
    }
}

/// Where a finished batch goes: its files, its memo, and what the run
/// gathers of every batch.
struct BatchEnd<'a, 's> {
    cfg: &'a Loaded,
    p: &'a Pipeline,
    memo: &'a Memo,
    empty: &'a normalize::Normalized,
    sink: &'s mut dyn TableSink,
    year: i32,
    tail: &'s mut Tail,
    summary: &'s mut RunSummary,
    /// The run's commit, which the batches' check results are written into.
    pending: &'a Pending<'a>,
}

/// A batch's county rollup rows and (township, period, status) of its
/// submissions, for its period's rollup.
struct Roll {
    /// None for a part with no period (nothing of it landed).
    period: Option<String>,
    digest: String,
    rows: memo::RollRows,
}

/// What a program's run gathers of its batches, in batch order.
struct Tail {
    candidates: Vec<Candidate>,
    rolls: Vec<Roll>,
    had_rows: std::collections::BTreeSet<&'static str>,
    /// The check results, tracked a batch at a time against what the
    /// state remembers, ...
    tracker: checks::track::Tracker,
    /// ... encoded into the program's `check_results` as they are tracked
    /// (on a thread of its own), those to remember written into the
    /// run's commit ([`Pending::write_checks`]).
    check_file: crate::sinks::parquet::Beside,
}

/// Finishes the batch at the front of the queue: a computed one's files
/// are published and its memo saved; then, carried or computed alike, its
/// alert conditions, rollup rows and counts are gathered.
fn finish_batch(
    queue: &mut std::collections::VecDeque<Queued<'_>>,
    end: &mut BatchEnd<'_, '_>,
) -> Result<(), RunError> {
    let Some((code, period, batch_failures, work)) = queue.pop_front() else {
        return Ok(());
    };
    let BatchEnd {
        cfg,
        p,
        memo,
        empty,
        year,
        ..
    } = *end;
    let computed = matches!(work, Work::Running(_));
    let (b, results) = match work {
        Work::Carried(b, results) => (*b, results),
        Work::Running(job) => {
            let (mut batch, results, tables) = job
                .join()
                .map_err(|_| RunError::Task(format!("computing batch {code} of {} panicked", p.name)))??;
            let wrote = publish::publish_batch(cfg, &p.name, &code, &tables, end.sink, year)?;
            tracing::debug!(program = %p.name, batch = %code, "Batch published.");
            batch.had_rows = wrote.iter().map(|t| t.to_string()).collect();
            batch.files = end.sink.files_of(&p.name, &code);
            // A memo that cannot be kept only costs the next run time.
            match memo.save(&code, &batch) {
                // Its county rows are read back from it for the rollups:
                // a run that computes every batch (after an upgrade) held
                // them all until then.
                Ok(()) => {
                    batch.roll = memo::RollRows::Kept {
                        batch: code.clone(),
                        digest: batch.digest.clone(),
                    }
                }
                Err(e) => {
                    tracing::warn!(program = %p.name, batch = %code, error = %e, "Cannot remember the batch; the next run computes it again.");
                }
            }
            (batch, results)
        }
    };
    let (tail, summary) = (&mut *end.tail, &mut *end.summary);
    // Alert conditions: of the checks, the quarantine, the fetch
    // failures and the conservation, in this order whether the batch
    // was carried or computed.
    tail.candidates.extend(
        alerts::derive(&p.name, &results, &empty.quarantine, &[], &cfg.def.registry).map_err(internal("alert"))?,
    );
    tail.candidates.extend(b.quarantine_candidates);
    tail.candidates.extend(
        alerts::derive(
            &p.name,
            &results.clear(),
            &empty.quarantine,
            &batch_failures,
            &cfg.def.registry,
        )
        .map_err(internal("alert"))?,
    );
    tail.candidates.extend(b.conservation_candidates);
    tail.rolls.push(Roll {
        period,
        digest: b.digest,
        rows: b.roll,
    });
    summary.rows_published += b.rows_published;
    summary.quarantined += b.quarantined;
    summary.submissions += b.submissions_count;
    summary.in_review += b.in_review;
    tail.had_rows.extend(
        BATCH_TABLES
            .iter()
            .filter(|t| b.had_rows.iter().any(|h| h == *t))
            .copied(),
    );
    // Tracked, counted and encoded now: a run never holds more than a
    // batch of its check results (a national year has 1.7 million).
    let (tracked, changed) = tail.tracker.failing(&results).map_err(internal("check"))?;
    drop(results);
    let severity = tracked.column("severity").and_then(|c| c.str().cloned());
    for s in severity.map_err(internal("check"))?.iter().flatten() {
        if let Some(n) = summary.check_failures.get_mut(s) {
            *n += 1;
        } else {
            summary.check_failures.insert(s.to_string(), 1);
        }
    }
    tail.check_file.write(tracked)?;
    end.pending
        .write_checks(&checks::track::records(&changed).map_err(internal("check"))?)?;
    // What a computed batch's threads freed is kept for the next one up to
    // a limit, the rest given back before the next is read (a carried one
    // freed little).
    if computed {
        let held = crate::memory::give_back_over(BATCH_FREED_KEPT);
        tracing::debug!(program = %p.name, batch = %code, freed_mib = held.map(|b| b >> 20), "Batch finished.");
    }
    Ok(())
}

/// A line of [`batch_digest`]: its fields as bytes, each led by a tag
/// (`T`: a text's length and bytes, `-`: no text, `N`: a number's eight
/// bytes), so that no two lines of different fields are the same bytes.
#[derive(Default)]
struct Line(Vec<u8>);

impl Line {
    fn text(&mut self, s: Option<&str>) {
        match s {
            Some(s) => {
                self.0.push(b'T');
                self.0.extend_from_slice(&(s.len() as u64).to_le_bytes());
                self.0.extend_from_slice(s.as_bytes());
            }
            None => self.0.push(b'-'),
        }
    }

    fn number(&mut self, n: i64) {
        self.0.push(b'N');
        self.0.extend_from_slice(&n.to_le_bytes());
    }
}

/// Everything one batch of one program is computed from besides the clock,
/// summed up: the binary and the configuration, the batch, the year files
/// are published under, every current and older landing of the batch with
/// its report's timeliness evidence, the review decisions, and the digest of
/// the part's batch `before` it (whose periods its look-back checks
/// read, and which was computed from the one before it, and so on). (Fetch
/// failures are not in it: their alerts are made every run.)
#[allow(clippy::too_many_arguments)]
fn batch_digest(
    cfg: &Loaded,
    p: &Pipeline,
    batch: &str,
    year: i32,
    wanted: &[(&Landing, usize)],
    older: &[(&Landing, usize)],
    reports: &timeliness::Reports<'_>,
    decisions: &review::Decisions,
    before: &str,
) -> String {
    // One line per landing, its instants as microseconds (formatting them
    // as text was most of a national year's digests: 455,000 landings in
    // November), written into one buffer and hashed: the digest is of the
    // lines' hashes, sorted (it does not depend on their order; sorting and
    // joining the lines themselves was a third of a year's digests). A line
    // is its fields as bytes: a text as its length and bytes (text a
    // township controls is never read as another field), a number as its
    // eight bytes (`write!` into a text line was two thirds of a year's
    // digests: 1.1 of December's 9.2 s of carried batches).
    use sha2::Digest as _;
    let micros = |t: Option<DateTime<Utc>>| t.map_or(i64::MIN, |t| t.timestamp_micros());
    let landing = |out: &mut Line, l: &Landing| {
        for s in [&l.township, &l.period, &l.sha256, &l.url] {
            out.text(Some(s));
        }
        out.text(l.content_type.as_deref());
        out.text(l.defect.as_deref());
        out.text(l.submitted_at.as_deref());
        out.number(l.bytes);
        out.number(l.version.unwrap_or(i64::MIN));
        out.number(l.first_fetched_at.timestamp_micros());
    };
    let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(wanted.len() + older.len() + decisions.len());
    let mut line = Line::default();
    let mut hash = |line: &mut Line| {
        hashes.push(sha2::Sha256::digest(&line.0).into());
        line.0.clear();
    };
    for (l, n) in wanted {
        line.text(Some("current"));
        line.number(*n as i64);
        landing(&mut line, l);
        match reports.get(&(l.township.as_str(), l.period.as_str())) {
            Some(r) => {
                let e = &r.evidence;
                line.text(Some(r.timeliness.as_str()));
                line.number(micros(e.claim));
                line.number(e.first_seen.timestamp_micros());
                line.number(micros(e.seen_missing));
                line.number(e.deadline.timestamp_micros());
                line.text(Some(r.first_sha256));
            }
            None => line.text(None),
        }
        hash(&mut line);
    }
    for (l, _) in older {
        line.text(Some("older"));
        landing(&mut line, l);
        hash(&mut line);
    }
    for (id, v) in decisions {
        line.text(Some("decision"));
        line.text(Some(id));
        line.text(Some(&format!("{v:?}")));
        hash(&mut line);
    }
    hashes.sort_unstable();
    let mut all = sha2::Sha256::new();
    all.update(
        format!(
            "memo v{} {} {} {} {batch} {year} after {before}\n",
            memo::MEMO_VERSION,
            binary_identity(),
            cfg.normalize_fingerprint(p),
            cfg.def.all_texts_digest,
        )
        .as_bytes(),
    );
    for h in &hashes {
        all.update(h);
    }
    hex::encode(all.finalize())
}

/// The running binary (its size and modification time): a rebuilt binary
/// computes every batch again, whatever its version says.
pub(crate) fn binary_identity() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let meta = std::env::current_exe().and_then(std::fs::metadata);
        match meta {
            Ok(m) => format!(
                "{} {} {:?}",
                env!("CARGO_PKG_VERSION"),
                m.len(),
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            ),
            // Unknown: a fresh identity, so nothing is carried.
            Err(_) => format!("unknown {:?}", std::time::SystemTime::now()),
        }
    })
}

/// Takes the run lock without blocking the async runtime.
async fn lock(cfg: &Loaded, programs: &[String], wait: Duration) -> Result<RunLock, RunError> {
    let dir = cfg.settings.paths.state_dir.clone();
    let holder = format!(
        "pid {} since {} programs {}",
        std::process::id(),
        Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        programs.join(",")
    );
    tokio::task::spawn_blocking(move || RunLock::acquire(&dir, wait, &holder))
        .await
        .map_err(|e| RunError::Task(e.to_string()))?
        .map_err(RunError::from)
}

/// One run of every selected pipeline: the only place that sequences IO.
///
/// Nothing the run computes is visible, or remembered, before its commit:
/// the tables are written into a sealed snapshot, then one state-store
/// transaction records the snapshot with the run's check and alert state and
/// the alerts to deliver, then the warehouse pointer is swapped. Alerts are
/// delivered from the outbox after that. A process killed anywhere leaves the
/// previous run's warehouse and state, or this one's, never a mix; the next
/// run cleans up what it left (see [`Snapshots::recover`]).
pub async fn run(cfg: &Loaded, opts: &RunOptions) -> Result<RunSummary, RunError> {
    let source = HttpSource::new(&cfg.settings.http).map_err(|e| RunError::Client(e.to_string()))?;
    run_with(cfg, opts, source).await
}

/// [`run`] with reports fetched from `source` (the township portals over
/// HTTP in production; any [`Source`] in tests and tools).
pub async fn run_with<S: Source + Clone + 'static>(
    cfg: &Loaded,
    opts: &RunOptions,
    source: S,
) -> Result<RunSummary, RunError> {
    let wh = cfg.settings.paths.warehouse_dir.clone();
    let mut summary = RunSummary {
        warehouse: wh.clone(),
        ..Default::default()
    };
    if opts.dry_run {
        summary.planned = unaddressed(cfg, opts).len();
        return Ok(summary);
    }
    for (program, file, why) in inbox_unmatched(cfg, opts) {
        tracing::warn!(program = %program, file = %file, reason = %why, "Inbox file is no report of the program; it is not read.");
        summary.inbox_unmatched.push(format!("{program}: {file}: {why}"));
    }
    let source = WithInbox {
        inner: source,
        limit: cfg.settings.http.max_body_bytes,
    };
    let programs: Vec<String> = selected(cfg, opts).map(|p| p.name.clone()).collect();
    let _lock = lock(cfg, &programs, opts.lock_wait).await?;

    let mut state = State::open(&cfg.settings.paths.state_dir)?;
    // Read aside, each on a thread of its own, while this thread plans the
    // targets, reads the validators and starts the run (a national year's
    // are 455,000 rows each): the kept normalizations' indexes, and the
    // keys of what is landed (hashed: a national year's 455,000 keys as
    // four strings each were ~130 MB while landing; a body taken for
    // landed by a collision is parsed by the landing thread, which asks
    // the state).
    let landed_key = |p: &str, t: &str, period: &str, sha: &str| crate::kept::hash_of(&[p, t, period, sha]);
    let (reader, names) = (state.reader()?, &programs);
    let (mut kept, landed, raw, snaps, run_id, targets) = std::thread::scope(|scope| -> Result<_, RunError> {
        let opening = std::thread::Builder::new()
            .name("open kept".into())
            .spawn_scoped(scope, move || kept_stores(cfg, opts))
            .map_err(|e| RunError::Task(format!("cannot start a thread to open the kept normalizations: {e}")))?;
        let aside = std::thread::Builder::new()
            .name("read landed".into())
            .spawn_scoped(scope, move || -> Result<_, RunError> {
                let (mut landed, mut reports) = (std::collections::HashSet::new(), std::collections::HashSet::new());
                for p in names {
                    reports.extend(may_wait(&reader, p, |township, period, sha256| {
                        landed.insert(landed_key(p, township, period, sha256));
                    })?);
                }
                landed.shrink_to_fit();
                Ok((landed, reports))
            })
            .map_err(|e| RunError::Task(format!("cannot start a thread to read what is landed: {e}")))?;
        let mut targets = unaddressed(cfg, opts);
        // Conditional requests: what the portal said of each body landed last,
        // given to its target (found by borrowed keys: a national year plans
        // 455,000 targets, each once in the plan).
        // Room for every target's (at most one each, and left untouched
        // where there are none).
        let mut found = Vec::with_capacity(targets.len());
        {
            let at: polars::prelude::PlHashMap<(&str, &str, &str), usize> = targets
                .iter()
                .enumerate()
                .map(|(i, t)| ((t.pipeline.as_str(), t.township.as_str(), t.period.as_str()), i))
                .collect();
            for p in &programs {
                let listed = cfg.def.pipeline(p).is_some_and(|d| d.listing_url.is_some());
                state.validators_picked(
                    p,
                    listed,
                    |township, period| at.get(&(p.as_str(), township, period)).copied(),
                    &mut found,
                )?;
            }
        }
        for (i, d) in found {
            targets[i].validators = Some(d.validators);
            targets[i].described = Some(d.sha256);
            targets[i].described_bytes = d.bytes;
        }
        let snaps = Snapshots::new(&wh).with_access(cfg.settings.warehouse.access);
        let raw = RawStore::new(&wh);
        let recovery = snaps.recover(state.published_snapshot()?)?;
        let leftovers = raw.clear_leftovers()?;
        if recovery != Recovery::default() || leftovers > 0 {
            tracing::warn!(
                staging_removed = recovery.staging_removed,
                uncommitted_removed = recovery.uncommitted_removed,
                rolled_forward = recovery.rolled_forward,
                raw_leftovers = leftovers,
                "An earlier run was interrupted; its leftovers were cleaned up."
            );
        }
        let all: Vec<String> = cfg.def.pipelines.iter().map(|p| p.name.clone()).collect();
        state.adopt_legacy_alerts(&all, opts.now)?;
        let run_id = state.start_run(Utc::now(), opts.now)?;

        let (landed, reports) = aside
            .join()
            .map_err(|_| RunError::Task("reading what is landed panicked".into()))??;
        // Settled periods' landed reports not due today are not asked for.
        let later = leave_for_later(cfg, opts, &mut targets, &reports);
        drop(reports);
        address(cfg, &mut targets);
        summary.not_revisited = later.values().sum();
        summary.planned = targets.len();
        let kept = opening
            .join()
            .map_err(|_| RunError::Task("opening the kept normalizations panicked".into()))??;
        Ok((kept, landed, raw, snaps, run_id, targets))
    })?;
    // What each program's check results were when the last run committed,
    // read on a thread of its own while the reports are fetched and landed
    // (only a run's commit changes them).
    let remembered = read_remembered(&state, kept.values().map(|(p, _)| p.name.clone()).collect())?;

    let concurrency = cfg.settings.http.concurrency;
    let source = with_listings(source, cfg, &targets, &mut summary).await;
    let (tx, mut rx) = tokio::sync::mpsc::channel(concurrency.max(1));
    let def = cfg.def.clone();
    let storer: Storer = {
        let (def, limits, raw) = (def.clone(), cfg.settings.limits.read(), raw.clone());
        // What is landed already is not parsed again (a portal without
        // validators serves the same bytes every night).
        Arc::new(move |t: &FetchTarget, body: &[u8]| {
            let sha256 = crate::land::sha256_hex(body);
            let known = landed.contains(&landed_key(&t.pipeline, &t.township, &t.period, &sha256));
            let hint = match known {
                true => crate::land::Known::Recorded,
                false => crate::land::Known::Unseen,
            };
            raw.put_hashed(&sha256, body, hint)?;
            let parsed = (!known).then(|| {
                let kind = def.pipeline(&t.pipeline).map(|p| p.source_kind).unwrap_or_default();
                crate::parse::parse_body(kind, body, &def.catalog, &def.dhis2, &limits)
            });
            Ok(Stored { sha256, parsed })
        })
    };
    let fetcher = tokio::spawn(fetch_into(source, targets, concurrency, storer, tx));
    let mut lander = Lander {
        cfg,
        state: &state,
        raw: &raw,
        normalizer: Normalizer::new(def, cfg.settings.limits.clone()),
        batch: state.begin_landings()?,
        opened: None,
        lingered: false,
        done: 0,
        now: opts.now,
        progress: opts.progress.as_ref(),
    };
    // The sync that will let the open transaction commit, and what arrived
    // while it runs (landed once it is committed): landing never waits on
    // the disk unless that many wait.
    let mut syncing: Option<tokio::task::JoinHandle<Result<Durable, crate::land::LandError>>> = None;
    let mut waiting: Vec<Fetched> = Vec::new();
    let (mut receiving, mut syncs) = (true, 0usize);
    let landed: Result<(), RunError> = async {
        loop {
            let due = lander.opened.map(|at| at + LANDING_LINGER);
            tokio::select! {
                biased;
                synced = async { syncing.as_mut().expect("selected only while syncing").await }, if syncing.is_some() => {
                    syncing = None;
                    let durable = synced.map_err(|e| RunError::Task(e.to_string()))??;
                    lander.commit(durable)?;
                    syncs += 1;
                    for f in std::mem::take(&mut waiting) {
                        lander.land(f, &mut kept, &mut summary).await?;
                    }
                }
                next = rx.recv(), if receiving && waiting.len() < crate::state::LANDING_BATCH => match next {
                    None => receiving = false,
                    Some(f) if syncing.is_some() => waiting.push(f),
                    Some(f) => lander.land(f, &mut kept, &mut summary).await?,
                },
                // A slow portal never keeps the state store locked for
                // writers such as `taizhang review`: what waits longer
                // than a moment for more is committed.
                _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() && syncing.is_none() => {
                    lander.lingered = true;
                }
                // Not reached: with nothing received, synced or lingering
                // for, the loop has returned below.
                else => return Err(RunError::Task("landing stopped with outcomes not recorded".into())),
            }
            if syncing.is_none() && lander.due(receiving) {
                let raw = raw.clone();
                syncing = Some(tokio::task::spawn_blocking(move || raw.sync()));
            }
            if !receiving && syncing.is_none() && waiting.is_empty() && lander.is_empty() {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = landed {
        fetcher.abort();
        return Err(e);
    }
    let Lander { batch, normalizer, .. } = lander;
    state.end_landings(batch)?;
    tracing::debug!(
        transactions = syncs,
        syncfs = raw.syncs(),
        "Landings recorded, each transaction after a sync of the raw store (none when no body was written since the last)."
    );
    fetcher.await.map_err(|e| RunError::Task(e.to_string()))?;
    normalizer.finish(&mut kept).await?;
    for (_, k) in kept.values_mut() {
        k.flush()?;
    }
    // Landing freed what its threads allocated; give it back before the
    // batches are computed (a national month's peak 1.1 GiB → 0.85 GiB).
    crate::memory::give_back();

    // Stage the snapshot batch by batch; nothing is visible yet.
    let year = chrono::Datelike::year(&opts.now.with_timezone(&crate::period::china()));
    let mut staging = snaps.begin(run_id, &opts.now.to_rfc3339(), &programs)?;
    // Where a run's time goes, at debug level.
    let phase = {
        let mut last = std::time::Instant::now();
        move |what: &'static str| {
            tracing::debug!(phase = what, ms = last.elapsed().as_millis() as u64, "Phase done.");
            last = std::time::Instant::now();
        }
    };
    let mut phase = phase;
    phase("land");
    // The commit begins here: the batches' check results are written into
    // it as they are finished (see `State::begin_commit`).
    let pending = state.begin_commit()?;
    let c = compute(
        cfg,
        &state,
        &pending,
        remembered,
        &raw,
        &mut kept,
        &mut staging,
        opts.now,
        year,
        opts.recompute,
        &mut summary,
    )?;
    phase("compute");
    let alerts = reconcile_alerts(cfg, &state, &programs, &c.candidates, opts.now)?;
    let rec = alerts.reconciled;
    summary.alerts_open = alerts.open;
    summary.alerts_resolved = rec.resolved.len();

    for (program, tables) in c.programs {
        publish::publish_program(&program, tables, &mut staging, year)?;
    }
    publish::publish_shared(cfg, &alerts.table, &mut staging, year)?;
    let sealed = staging.seal()?;
    summary.publish = sealed.report.clone();
    phase("publish");

    // The commit.
    let line = serde_json::json!({
        "programs": programs, "planned": summary.planned, "fetched": summary.fetched,
        "landed_new": summary.landed_new, "fetch_failed": summary.fetch_failed,
        "rows_published": summary.rows_published, "quarantined": summary.quarantined,
        "not_modified": summary.not_modified, "not_submitted": summary.not_submitted,
        "in_review": summary.in_review,
        "alerts_raised": rec.raised.len(), "files_written": summary.publish.written,
        "bodies_parsed": summary.bodies_parsed,
        "batches_carried": summary.batches_carried,
        "not_revisited": summary.not_revisited,
        "listed": summary.listed,
        "snapshot": sealed.seq,
    });
    pending.commit(&Commit {
        run_id,
        checks: &[],
        seen_again: (&programs, opts.now),
        alerts: &rec.upserts,
        outbox: &alerts.outbox,
        snapshot: sealed.seq,
        finished_at: Utc::now(),
        summary: &line.to_string(),
    })?;
    phase("commit");
    if let Some(seq) = sealed.seq {
        snaps.publish(seq)?;
    }
    // Every run trims, not only one that published: a run killed between
    // publishing and trimming leaves one snapshot too many, and the runs
    // after it may have nothing new to publish.
    summary.publish.removed += snaps.retain(cfg.settings.warehouse.keep_snapshots)?;
    summary.snapshot = snaps.current();
    summary.alerts_raised = rec.raised;

    deliver(cfg, &mut state, opts.now, &mut summary).await?;
    if summary.alerts_delivered > 0 {
        publish_delivery(cfg, &state, &snaps, run_id, opts.now, year, &mut summary)?;
    }
    if summary.partial() {
        state.mark_partial(run_id)?;
    }
    publish::publish_runs(&state.runs(usize::MAX >> 1)?, &wh, cfg.settings.warehouse.access)?;
    tracing::info!(
        fetched = summary.fetched,
        rows = summary.rows_published,
        quarantined = summary.quarantined,
        alerts = summary.alerts_raised.len(),
        snapshot = summary.snapshot,
        "Run finished."
    );
    Ok(summary)
}

/// Exit code of a run that committed but left something undone: reports
/// that could not be fetched, or alerts that could not be delivered (both
/// are retried by the next run, and alerted or printed).
pub const EXIT_PARTIAL: u8 = 3;

impl RunSummary {
    /// The run committed, but some townships' reports could not be fetched
    /// or some alerts could not be delivered.
    pub fn partial(&self) -> bool {
        self.fetch_failed > 0 || self.delivery_error.is_some()
    }
}

/// The alerts after a run: the selected programs' reconciled with this
/// run's conditions, every other program's as they were.
struct Alerts {
    reconciled: alerts::Reconciled,
    /// The state changes to deliver.
    outbox: Vec<taizhang_model::OutboxEntry>,
    /// The alerts table (every program).
    table: DataFrame,
    /// Alerts open after the run.
    open: usize,
}

fn reconcile_alerts(
    cfg: &Loaded,
    state: &State,
    programs: &[String],
    candidates: &[Candidate],
    now: DateTime<Utc>,
) -> Result<Alerts, RunError> {
    let remembered = state.alerts()?;
    let mine: Vec<AlertRecord> = remembered
        .iter()
        .filter(|a| programs.contains(&a.program))
        .cloned()
        .collect();
    let reconciled = alerts::reconcile(&mine, candidates, now);
    let outbox = alerts::outbox(&reconciled.raised, &cfg.def.registry, now);
    let mut after: BTreeMap<String, AlertRecord> = remembered.into_iter().map(|a| (a.key.clone(), a)).collect();
    for a in &reconciled.upserts {
        after.insert(a.key.clone(), a.clone());
    }
    let after: Vec<AlertRecord> = after.into_values().collect();
    Ok(Alerts {
        open: after.iter().filter(|a| a.resolved_at.is_none()).count(),
        table: alerts::table(&after, &cfg.def.registry).map_err(internal("alert"))?,
        reconciled,
        outbox,
    })
}

/// After a delivery, a follow-up snapshot in which only the shared tables
/// are new (the rest is linked): the alerts table then says what was
/// delivered, and a rerun with nothing new publishes nothing.
fn publish_delivery(
    cfg: &Loaded,
    state: &State,
    snaps: &Snapshots,
    run_id: i64,
    now: DateTime<Utc>,
    year: i32,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    let table = alerts::table(&state.alerts()?, &cfg.def.registry).map_err(internal("alert"))?;
    let mut staging = snaps.begin(run_id, &now.to_rfc3339(), &[])?;
    publish::publish_shared(cfg, &table, &mut staging, year)?;
    if let Some(seq) = staging.seal()?.seq {
        state.commit_snapshot(seq)?;
        snaps.publish(seq)?;
        summary.publish.removed += snaps.retain(cfg.settings.warehouse.keep_snapshots)?;
        summary.snapshot = Some(seq);
    }
    Ok(())
}

/// Delivers the outbox: every committed alert state change not yet
/// delivered, from this run or earlier ones, in one POST. A 2xx marks them
/// delivered; anything else leaves them for the next run.
async fn deliver(
    cfg: &Loaded,
    state: &mut State,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    let Some(url) = &cfg.webhook_url else {
        tracing::debug!("No webhook configured; alerts are in the alerts table.");
        return Ok(());
    };
    let webhook = alerts::webhook::Webhook {
        url: url.clone(),
        timeout_secs: cfg.settings.http.timeout_secs,
    };
    deliver_to(&webhook, state, now, summary).await
}

/// Offers the outbox to `channel`; marks it delivered or records the failure.
async fn deliver_to(
    channel: &impl alerts::AlertChannel,
    state: &mut State,
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<(), RunError> {
    let pending = state.pending_outbox()?;
    if pending.is_empty() {
        return Ok(());
    }
    match channel.deliver(&pending).await {
        Ok(()) => {
            state.mark_delivered(&pending, now)?;
            summary.alerts_delivered = pending.len();
        }
        Err(e) => {
            tracing::warn!(alerts = pending.len(), error = %e, "Alerts not delivered; they are retried next run.");
            state.delivery_failed(&pending, &e.to_string())?;
            summary.delivery_error = Some(e.to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole nation's registry from the embedded division table.
    fn nation() -> crate::registry::Registry {
        let div = crate::registry::Divisions::embedded();
        let counties = div.areas.lines().skip(1).filter_map(|l| l.get(..6)).map(str::to_string);
        let config = crate::registry::RegistryConfig {
            counties: counties.collect(),
            aliases: vec![],
            population: Default::default(),
        };
        crate::registry::Registry::build("registry.toml", &config, &div).unwrap()
    }

    /// A source that answers every other target itself and counts the
    /// requests it is asked.
    #[derive(Clone, Default)]
    struct HalfKnown(Arc<std::sync::atomic::AtomicUsize>);

    impl Source for HalfKnown {
        async fn fetch(&self, _: &FetchTarget) -> FetchOutcome {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            FetchOutcome::NotSubmitted
        }

        fn answered(&self, target: &FetchTarget) -> Option<FetchOutcome> {
            target
                .township
                .ends_with(['0', '2', '4', '6', '8'])
                .then_some(FetchOutcome::NotModified)
        }
    }

    #[tokio::test]
    async fn a_target_the_source_answers_itself_is_handed_on_without_a_request() {
        let targets: Vec<FetchTarget> = (0..1000)
            .map(|i| FetchTarget {
                pipeline: "p".into(),
                township: format!("341124{i:03}"),
                period: "2026-06".into(),
                url: format!("http://portal/{i}"),
                validators: None,
                described: None,
                described_bytes: None,
            })
            .collect();
        let source = HalfKnown::default();
        let storer: Storer = Arc::new(|_: &FetchTarget, _: &[u8]| unreachable!("nothing is submitted"));
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let fetching = tokio::spawn(fetch_into(source.clone(), targets, 8, storer, tx));
        let mut got = std::collections::BTreeMap::new();
        while let Some((t, outcome, stored)) = rx.recv().await {
            assert!(stored.is_none());
            assert!(got.insert(t.township, outcome).is_none(), "a target handed on twice");
        }
        fetching.await.unwrap();
        assert_eq!(got.len(), 1000, "every target is handed on once");
        for (township, outcome) in &got {
            let want = match township.ends_with(['0', '2', '4', '6', '8']) {
                true => FetchOutcome::NotModified,
                false => FetchOutcome::NotSubmitted,
            };
            assert_eq!(outcome, &want, "{township}");
        }
        assert_eq!(
            source.0.load(std::sync::atomic::Ordering::Relaxed),
            500,
            "only the others are asked"
        );
    }

    #[test]
    fn each_landings_rows_are_what_a_filter_on_its_township_and_sha_keeps() {
        let facts = df!(
            "township" => [Some("1"), Some("1"), Some("2"), None, Some("1"), Some("2"), Some("1")],
            "source_sha256" => [Some("a"), Some("b"), Some("a"), Some("a"), Some("a"), None, Some("b")],
            "row" => [0, 1, 2, 3, 4, 5, 6],
        )
        .unwrap();
        let landing = |township: &str, sha: &str| Landing {
            pipeline: "p".into(),
            township: township.into(),
            period: "2026-06".into(),
            sha256: sha.into(),
            url: String::new(),
            bytes: 0,
            content_type: None,
            defect: None,
            version: None,
            submitted_at: None,
            first_fetched_at: Default::default(),
            last_fetched_at: Default::default(),
        };
        let landings = [
            landing("1", "a"),
            landing("2", "a"),
            landing("1", "b"),
            landing("3", "c"),
            landing("1", "a"),
        ];
        let got = rows_per_landing(&facts, landings.iter()).unwrap();
        assert_eq!(got.len(), landings.len());
        for (l, rows) in landings.iter().zip(&got) {
            let filtered = facts
                .clone()
                .lazy()
                .filter(
                    col("township")
                        .eq(lit(l.township.clone()))
                        .and(col("source_sha256").eq(lit(l.sha256.clone()))),
                )
                .collect()
                .unwrap();
            assert!(rows.equals_missing(&filtered), "{l:?}: {rows} {filtered}");
        }
        let rows_of = |i: usize| -> Vec<i32> {
            got[i]
                .column("row")
                .unwrap()
                .i32()
                .unwrap()
                .into_no_null_iter()
                .collect()
        };
        assert_eq!((rows_of(0), rows_of(2), rows_of(3)), (vec![0, 4], vec![1, 6], vec![]));
    }

    #[test]
    fn a_large_province_is_batched_as_runs_of_whole_cities_and_a_small_one_whole() {
        let nation = nation();
        let parts = batches(&nation, BATCH_TOWNSHIPS);
        let sizes: Vec<(&str, usize)> = parts.iter().map(|(c, r)| (c.as_str(), r.townships.len())).collect();
        // Every township in exactly one part, parts in code order.
        assert_eq!(sizes.iter().map(|(_, n)| n).sum::<usize>(), 41_352);
        let firsts: Vec<&String> = parts.iter().map(|(_, r)| r.townships.keys().next().unwrap()).collect();
        assert!(firsts.is_sorted(), "{firsts:?}");
        // No city in two parts (so no county either), none over the bound.
        let mut city_part = HashMap::new();
        for (code, reg) in &parts {
            assert!(
                reg.townships.len() <= BATCH_TOWNSHIPS,
                "{code}: {}",
                reg.townships.len()
            );
            for t in reg.townships.values() {
                assert_eq!(city_part.entry(t.city.clone()).or_insert(code), &code, "{}", t.city);
            }
        }
        // Sichuan (3,111) in two runs of its cities, Guizhou (1,510) whole.
        let sichuan: Vec<(&str, usize)> = sizes.iter().filter(|(c, _)| c.starts_with("51")).copied().collect();
        assert_eq!(sichuan, [("5101_5114", 1555), ("5115_5134", 1556)]);
        assert!(sizes.contains(&("52", 1510)), "{sizes:?}");
        // The nine provinces over the bound make 9 more batches a period.
        assert_eq!(parts.len(), 31 + 9, "{sizes:?}");
        // A registry within the bound is its provinces, as before.
        let whole = batches(&nation, usize::MAX);
        assert_eq!(whole.len(), 31);
        assert!(whole.iter().all(|(c, _)| c.len() == 2));
    }

    #[test]
    fn conservation_violation_is_raised() {
        let subs = df!(
            "township" => ["341124102", "341124103", "341124104"],
            "period" => ["2026-06", "2026-06", "2026-06"],
            "values_received" => [5i64, 5, 5],
            "values_published" => [4i64, 3, 2],
            "values_quarantined" => [1i64, 1, 1],
            "values_in_review" => [0i64, 0, 2]
        )
        .unwrap();
        let c = conservation("p", &subs).unwrap();
        assert_eq!(c.len(), 1, "values held for review are accounted for");
        assert_eq!(c[0].key, "p/conservation/341124103/2026-06");
    }

    #[test]
    fn a_batch_digest_moves_with_each_thing_the_batch_is_computed_from_and_nothing_else() {
        let cfg = Loaded::embedded();
        let p = &cfg.def.pipelines[0];
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let l = Landing {
            pipeline: p.name.clone(),
            township: "341124102".into(),
            period: "2026-06".into(),
            sha256: "ab".repeat(32),
            url: "http://127.0.0.1:1/r".into(),
            bytes: 100,
            content_type: Some("application/json".into()),
            defect: None,
            version: Some(1),
            submitted_at: Some("2026-07-01T08:00:00+08:00".into()),
            first_fetched_at: t("2026-07-02T00:00:00Z"),
            last_fetched_at: t("2026-07-02T00:00:00Z"),
        };
        let report = timeliness::Report {
            timeliness: timeliness::Timeliness::OnTime,
            evidence: timeliness::Evidence {
                claim: Some(t("2026-07-01T00:00:00Z")),
                first_seen: t("2026-07-02T00:00:00Z"),
                seen_missing: None,
                deadline: t("2026-07-05T16:00:00Z"),
            },
            first_sha256: &l.sha256,
        };
        let key = (l.township.as_str(), l.period.as_str());
        let digest = |l: &Landing, older: &[(&Landing, usize)], r: &timeliness::Report, d: &review::Decisions| {
            let reports = timeliness::Reports::from_iter([(key, r.clone())]);
            batch_digest(&cfg, p, "34-2026-06", 2026, &[(l, 1)], older, &reports, d, "")
        };
        let none = review::Decisions::new();
        let base = digest(&l, &[], &report, &none);
        assert_eq!(base, digest(&l.clone(), &[], &report.clone(), &none), "the same inputs");
        // Fetched again (304): the same batch.
        let again = Landing {
            last_fetched_at: t("2026-07-09T00:00:00Z"),
            ..l.clone()
        };
        assert_eq!(base, digest(&again, &[], &report, &none));
        let moved = [
            Landing {
                sha256: "cd".repeat(32),
                ..l.clone()
            },
            Landing {
                version: Some(2),
                ..l.clone()
            },
            Landing {
                defect: Some("cut off".into()),
                ..l.clone()
            },
            Landing {
                first_fetched_at: t("2026-07-03T00:00:00Z"),
                ..l.clone()
            },
            Landing {
                url: "http://127.0.0.1:1/s".into(),
                ..l.clone()
            },
            Landing {
                bytes: 101,
                ..l.clone()
            },
            Landing {
                content_type: None,
                ..l.clone()
            },
            Landing {
                submitted_at: None,
                ..l.clone()
            },
        ];
        for m in &moved {
            assert_ne!(base, digest(m, &[], &report, &none), "{m:?}");
        }
        // Text a township sends cannot pass for another field's.
        let split = |content_type: &str, defect: &str| Landing {
            content_type: Some(content_type.into()),
            defect: Some(defect.into()),
            ..l.clone()
        };
        assert_ne!(
            digest(&split("text/csv x", "y"), &[], &report, &none),
            digest(&split("text/csv", "x y"), &[], &report, &none)
        );
        let no_type = Landing {
            content_type: None,
            ..l.clone()
        };
        let empty_type = Landing {
            content_type: Some(String::new()),
            ..l.clone()
        };
        assert_ne!(
            digest(&no_type, &[], &report, &none),
            digest(&empty_type, &[], &report, &none),
            "no text is not an empty one"
        );
        let unreported = batch_digest(
            &cfg,
            p,
            "34-2026-06",
            2026,
            &[(&l, 1)],
            &[],
            &Default::default(),
            &none,
            "",
        );
        assert_ne!(base, unreported, "a landing without its report");
        let (a, b) = (&moved[0], &moved[1]);
        assert_ne!(digest(a, &[], &report, &none), digest(b, &[], &report, &none));
        // The lines' order does not count.
        let both = |x: &Landing, y: &Landing| {
            let reports = timeliness::Reports::from_iter([(key, report.clone())]);
            batch_digest(&cfg, p, "34-2026-06", 2026, &[(x, 2), (y, 2)], &[], &reports, &none, "")
        };
        assert_eq!(both(a, b), both(b, a));
        assert_ne!(both(a, b), both(a, a));
        let mut seen_missing = report.clone();
        seen_missing.evidence.seen_missing = Some(t("2026-07-06T00:00:00Z"));
        assert_ne!(base, digest(&l, &[], &seen_missing, &none), "the report's evidence");
        let mut late = report.clone();
        late.timeliness = timeliness::Timeliness::Late;
        assert_ne!(base, digest(&l, &[], &late, &none), "the report's timeliness");
        assert_ne!(base, digest(&l, &[(&l, 1)], &report, &none), "an older version");
        let decided = review::Decisions::from([("x".to_string(), review::Verdict::Accept)]);
        assert_ne!(base, digest(&l, &[], &report, &decided), "a review decision");
    }
}
