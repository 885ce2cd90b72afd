//! `taizhang serve`: runs each pipeline on its cron schedule (China time)
//! until SIGINT or SIGTERM. A run in progress finishes before shutdown.

use chrono::Utc;

use crate::config::Loaded;
use crate::period::china;
use crate::run::{RunOptions, run};

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

/// Runs pipelines on schedule until a shutdown signal.
pub async fn serve(cfg: Loaded) {
    let schedules: Vec<(String, cron::Schedule)> = cfg
        .def
        .pipelines
        .iter()
        .map(|p| (p.name.clone(), p.schedule.parse().expect("validated at load")))
        .collect();
    let stop = shutdown();
    tokio::pin!(stop);
    loop {
        let now = Utc::now().with_timezone(&china());
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
            .collect();
        tracing::info!(next_run = %at.to_rfc3339(), pipelines = ?due, "Waiting for the next scheduled run.");
        let wait = (at.with_timezone(&Utc) - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = &mut stop => {
                tracing::info!("Shutdown signal received; stopping.");
                return;
            }
            _ = tokio::time::sleep(wait) => {}
        }
        let opts = RunOptions {
            now: Utc::now(),
            dry_run: false,
            only: due,
            lock_wait: TICK_LOCK_WAIT,
        };
        match run(&cfg, &opts).await {
            Ok(s) => tracing::info!(
                fetched = s.fetched,
                rows = s.rows_published,
                alerts = s.alerts_raised.len(),
                "Scheduled run finished."
            ),
            Err(crate::run::RunError::Lock(e)) => {
                tracing::warn!(error = %e, "Scheduled run skipped: another run holds the lock; the next tick tries again.")
            }
            Err(e) => tracing::error!(error = %e, "Scheduled run failed; the next one retries."),
        }
    }
}
