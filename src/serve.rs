//! `taizhang serve`: runs each pipeline on its cron schedule (China time)
//! until SIGINT or SIGTERM. A run in progress finishes before shutdown.
//!
//! At start it catches up once: a pipeline whose schedule fired while the
//! service was down (since its last committed run) runs once, not once per
//! missed night; `serve.run_at_start` runs every pipeline at start. With
//! `serve.listen` it answers `/healthz`, `/metrics` (Prometheus text) and
//! `/runs` (JSON) on that address.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::config::Loaded;
use crate::period::china;
use crate::run::{RunOptions, RunSummary, run};

async fn shutdown() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// How long a scheduled run waits for a run that holds the lock (a manual
/// `taizhang run`, say) before it skips this tick.
pub const TICK_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The service's clock: the real one, or one that starts at a given time
/// (`serve --clock`, for replays and tests) and runs at real speed.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: DateTime<Utc>,
    at: Instant,
}

impl Clock {
    /// A clock that reads `start` now.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        Clock {
            start,
            at: Instant::now(),
        }
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::from_std(self.at.elapsed()).unwrap_or_default()
    }
}

/// What the service has done since it started, for `/metrics` and `/healthz`.
#[derive(Debug, Default)]
struct Metrics {
    /// Runs by outcome: done, partial, failed, skipped (lock held).
    runs: BTreeMap<&'static str, u64>,
    /// Fetches by result: fetched, unchanged, not_submitted, failed.
    fetches: BTreeMap<&'static str, u64>,
    /// Listings by result: read, failed.
    listings: BTreeMap<&'static str, u64>,
    values_published: u64,
    values_quarantined: u64,
    values_in_review: u64,
    alerts_raised: u64,
    alerts_delivered: u64,
    /// Check failures open after the last run, by severity.
    check_failures: BTreeMap<String, u64>,
    duration_sum: f64,
    last_duration: f64,
    last_run: Option<DateTime<Utc>>,
    last_outcome: Option<&'static str>,
    next_run: Option<DateTime<Utc>>,
}

impl Metrics {
    fn record(&mut self, outcome: &'static str, s: Option<&RunSummary>, secs: f64, at: DateTime<Utc>) {
        *self.runs.entry(outcome).or_default() += 1;
        self.duration_sum += secs;
        self.last_duration = secs;
        self.last_run = Some(at);
        self.last_outcome = Some(outcome);
        let Some(s) = s else { return };
        for (k, v) in [
            ("fetched", s.fetched),
            ("unchanged", s.not_modified),
            ("not_submitted", s.not_submitted),
            ("failed", s.fetch_failed),
        ] {
            *self.fetches.entry(k).or_default() += v as u64;
        }
        for (k, v) in [("read", s.listings_read), ("failed", s.listings_failed)] {
            *self.listings.entry(k).or_default() += v as u64;
        }
        self.values_published += s.rows_published as u64;
        self.values_quarantined += s.quarantined as u64;
        self.values_in_review = s.in_review as u64;
        self.alerts_raised += s.alerts_raised.len() as u64;
        self.alerts_delivered += s.alerts_delivered as u64;
        self.check_failures = s.check_failures.iter().map(|(k, v)| (k.clone(), *v as u64)).collect();
    }

    /// Prometheus text exposition format.
    fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        let labelled = |label: &str, m: &BTreeMap<&'static str, u64>, all: &[&'static str]| {
            all.iter()
                .map(|k| {
                    (
                        format!("{{{label}=\"{k}\"}}"),
                        m.get(k).copied().unwrap_or(0).to_string(),
                    )
                })
                .collect::<Vec<_>>()
        };
        metric(
            "taizhang_runs_total",
            "counter",
            "Runs since the service started, by outcome (done, partial: some reports not fetched or alerts not delivered, failed, skipped: another run held the lock).",
            labelled("outcome", &self.runs, &["done", "partial", "failed", "skipped"]),
        );
        metric(
            "taizhang_fetches_total",
            "counter",
            "Reports asked for, by result (fetched, unchanged: 304 or shown unchanged by a listing, not_submitted: 404, failed).",
            labelled(
                "result",
                &self.fetches,
                &["fetched", "unchanged", "not_submitted", "failed"],
            ),
        );
        metric(
            "taizhang_listings_total",
            "counter",
            "Portal listings asked for (listing_url), by result (read, failed: their reports were asked for one by one).",
            labelled("result", &self.listings, &["read", "failed"]),
        );
        let one = |v: String| vec![(String::new(), v)];
        metric(
            "taizhang_values_published_total",
            "counter",
            "Fact rows published, summed over runs.",
            one(self.values_published.to_string()),
        );
        metric(
            "taizhang_values_quarantined_total",
            "counter",
            "Values set aside, summed over runs.",
            one(self.values_quarantined.to_string()),
        );
        metric(
            "taizhang_values_in_review",
            "gauge",
            "Values read from documents waiting in the review queue after the last run.",
            one(self.values_in_review.to_string()),
        );
        metric(
            "taizhang_check_failures",
            "gauge",
            "Open check failures after the last run, by severity.",
            ["error", "warning", "info"]
                .iter()
                .map(|s| {
                    (
                        format!("{{severity=\"{s}\"}}"),
                        self.check_failures.get(*s).copied().unwrap_or(0).to_string(),
                    )
                })
                .collect(),
        );
        metric(
            "taizhang_alerts_raised_total",
            "counter",
            "Alerts raised.",
            one(self.alerts_raised.to_string()),
        );
        metric(
            "taizhang_alerts_delivered_total",
            "counter",
            "Alerts delivered to the webhook.",
            one(self.alerts_delivered.to_string()),
        );
        let runs: u64 = self.runs.values().sum();
        metric(
            "taizhang_run_duration_seconds",
            "summary",
            "Wall time of runs.",
            // `_sum` and `_count` are suffixes of the summary's name.
            vec![
                ("_sum".into(), format!("{:.3}", self.duration_sum)),
                ("_count".into(), runs.to_string()),
            ],
        );
        metric(
            "taizhang_last_run_duration_seconds",
            "gauge",
            "Wall time of the last run.",
            one(format!("{:.3}", self.last_duration)),
        );
        let ts = |t: Option<DateTime<Utc>>| t.map_or("0".into(), |t| t.timestamp().to_string());
        metric(
            "taizhang_last_run_timestamp_seconds",
            "gauge",
            "When the last run started (the service's clock), Unix seconds; 0 before the first.",
            one(ts(self.last_run)),
        );
        metric(
            "taizhang_next_run_timestamp_seconds",
            "gauge",
            "When the next scheduled run starts, Unix seconds.",
            one(ts(self.next_run)),
        );
        out
    }
}

/// Pipelines whose schedule fired between their last committed run and
/// `now`: they run once at start (not once per missed tick). A pipeline that
/// never ran is not caught up (a new deployment backfills with `run`).
pub fn missed(
    schedules: &[(String, cron::Schedule)],
    last_runs: &BTreeMap<String, DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<String> {
    schedules
        .iter()
        .filter(|(name, s)| {
            last_runs.get(name).is_some_and(|last| {
                s.after(&last.with_timezone(&china()))
                    .next()
                    .is_some_and(|t| t.with_timezone(&Utc) <= now)
            })
        })
        .map(|(n, _)| n.clone())
        .collect()
}

/// Runs pipelines on schedule until a shutdown signal, with the real clock.
pub async fn serve(cfg: Loaded) {
    serve_with(cfg, Clock::starting_at(Utc::now())).await
}

/// [`serve`] on `clock`.
pub async fn serve_with(cfg: Loaded, clock: Clock) {
    let schedules: Vec<(String, cron::Schedule)> = cfg
        .def
        .pipelines
        .iter()
        .map(|p| (p.name.clone(), p.schedule.parse().expect("validated at load")))
        .collect();
    let metrics = Arc::new(Mutex::new(Metrics::default()));
    if let Some(addr) = cfg.settings.serve.listen.clone() {
        match endpoints(&cfg, metrics.clone(), &addr).await {
            Ok(bound) => tracing::info!(addr = %bound, "Service endpoints listening: /healthz /metrics /runs."),
            Err(e) => {
                tracing::error!(addr = %addr, error = %e, "Cannot listen for /healthz and /metrics; serving without them.")
            }
        }
    }
    let stop = shutdown();
    tokio::pin!(stop);
    // At start: every pipeline (serve.run_at_start), or those that missed a tick.
    let start = clock.now();
    let first: Vec<String> = if cfg.settings.serve.run_at_start {
        schedules.iter().map(|(n, _)| n.clone()).collect()
    } else {
        let last = match crate::state::State::open(&cfg.settings.paths.state_dir).and_then(|s| s.last_runs()) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "Cannot read the run history; no catch-up run.");
                BTreeMap::new()
            }
        };
        missed(&schedules, &last, start)
    };
    if !first.is_empty() {
        tracing::info!(pipelines = ?first, run_at_start = cfg.settings.serve.run_at_start, "Running once at start (catch-up).");
        tokio::select! {
            _ = &mut stop => {
                tracing::info!("Shutdown signal received; stopping.");
                return;
            }
            _ = one_run(&cfg, &metrics, clock, first) => {}
        }
    }
    loop {
        let now = clock.now().with_timezone(&china());
        let next = schedules
            .iter()
            .filter_map(|(name, s)| s.after(&now).next().map(|t| (t, name.clone())))
            .min();
        let Some((at, _)) = next else {
            tracing::warn!("No schedule has a next run; stopping.");
            return;
        };
        let due: Vec<String> = schedules
            .iter()
            .filter(|(_, s)| s.after(&now).next() == Some(at))
            .map(|(n, _)| n.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        metrics.lock().unwrap_or_else(|p| p.into_inner()).next_run = Some(at.with_timezone(&Utc));
        tracing::info!(next_run = %at.to_rfc3339(), pipelines = ?due, "Waiting for the next scheduled run.");
        let wait = (at.with_timezone(&Utc) - clock.now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = &mut stop => {
                tracing::info!("Shutdown signal received; stopping.");
                return;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        one_run(&cfg, &metrics, clock, due).await;
    }
}

async fn one_run(cfg: &Loaded, metrics: &Mutex<Metrics>, clock: Clock, only: Vec<String>) {
    let now = clock.now();
    let opts = RunOptions {
        now,
        dry_run: false,
        only,
        lock_wait: TICK_LOCK_WAIT,
        periods: None,
        progress: None,
        recompute: false,
        revisit_all: false,
    };
    let started = Instant::now();
    let result = run(cfg, &opts).await;
    let secs = started.elapsed().as_secs_f64();
    let mut m = metrics.lock().unwrap_or_else(|p| p.into_inner());
    match result {
        Ok(s) => {
            tracing::info!(
                fetched = s.fetched,
                unchanged = s.not_modified,
                failed = s.fetch_failed,
                rows = s.rows_published,
                alerts = s.alerts_raised.len(),
                "Scheduled run finished."
            );
            m.record(if s.partial() { "partial" } else { "done" }, Some(&s), secs, now);
        }
        Err(crate::run::RunError::Lock(e)) => {
            tracing::warn!(error = %e, "Scheduled run skipped: another run holds the lock; the next tick tries again.");
            m.record("skipped", None, secs, now);
        }
        Err(e) => {
            tracing::error!(error = %e, "Scheduled run failed; the next one retries.");
            m.record("failed", None, secs, now);
        }
    }
}

/// Serves `/healthz`, `/metrics` and `/runs` on `addr`; returns the bound address.
async fn endpoints(cfg: &Loaded, metrics: Arc<Mutex<Metrics>>, addr: &str) -> std::io::Result<std::net::SocketAddr> {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let state_dir = cfg.settings.paths.state_dir.clone();
    let (m1, m2) = (metrics.clone(), metrics);
    let app = axum::Router::new()
        .route(
            "/healthz",
            axum::routing::get(move || {
                let m = m1.clone();
                async move {
                    let m = m.lock().unwrap_or_else(|p| p.into_inner());
                    let failing = m.last_outcome == Some("failed");
                    let body = serde_json::json!({
                        "status": if failing { "failing" } else { "ok" },
                        "last_run": m.last_run.map(|t| t.to_rfc3339()),
                        "last_outcome": m.last_outcome,
                        "next_run": m.next_run.map(|t| t.to_rfc3339()),
                    });
                    let code = if failing {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    };
                    (code, axum::Json(body))
                }
            }),
        )
        .route(
            "/metrics",
            axum::routing::get(move || {
                let m = m2.clone();
                async move {
                    let text = m.lock().unwrap_or_else(|p| p.into_inner()).render();
                    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
                }
            }),
        )
        .route(
            "/runs",
            axum::routing::get(move || {
                let dir = state_dir.clone();
                async move {
                    let runs = tokio::task::spawn_blocking(move || crate::inspect::runs_json(&dir, 50))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()));
                    match runs {
                        Ok(v) => axum::Json(serde_json::Value::Array(v)).into_response(),
                        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "Service endpoints stopped.");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_pipeline_that_missed_ticks_while_down_catches_up_once() {
        let nightly: cron::Schedule = "0 0 2 * * *".parse().unwrap();
        let schedules = vec![("m".to_string(), nightly.clone()), ("new".to_string(), nightly)];
        let last: BTreeMap<String, DateTime<Utc>> = [("m".to_string(), at("2026-07-08T02:00:00+08:00"))].into();
        // Down over two nights: one catch-up; a pipeline that never ran: none.
        assert_eq!(missed(&schedules, &last, at("2026-07-10T09:00:00+08:00")), ["m"]);
        // Up before the next tick: nothing missed.
        assert!(missed(&schedules, &last, at("2026-07-09T01:59:00+08:00")).is_empty());
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let mut m = Metrics::default();
        let s = RunSummary {
            fetched: 7,
            not_modified: 3,
            listings_read: 2,
            listings_failed: 1,
            rows_published: 100,
            ..Default::default()
        };
        m.record("done", Some(&s), 1.5, at("2026-07-10T02:00:00Z"));
        let text = m.render();
        assert!(text.contains("taizhang_runs_total{outcome=\"done\"} 1\n"), "{text}");
        assert!(
            text.contains("taizhang_fetches_total{result=\"unchanged\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("taizhang_listings_total{result=\"read\"} 2\n"), "{text}");
        assert!(
            text.contains("taizhang_listings_total{result=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("taizhang_run_duration_seconds_count 1\n"), "{text}");
        assert!(
            text.contains("taizhang_last_run_timestamp_seconds 1783648800\n"),
            "{text}"
        );
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("taizhang_"), "{line}");
        }
    }
}
