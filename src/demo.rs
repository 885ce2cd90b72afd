//! `taizhang demo`: the real pipeline against the embedded township portal
//! (全椒县, January–June 2026, with realistic faults) at a simulated now of
//! 2026-07-10, into a local warehouse.

use std::net::SocketAddr;
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::config::{ConfigError, Loaded, Settings, embedded_texts};
use crate::run::{RunError, RunOptions, RunSummary, run};
use crate::simulator::Portal;

/// The demo's simulated clock.
pub const DEMO_NOW: &str = "2026-07-10T10:00:00+08:00";

/// A demo that could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The embedded configuration is broken (a bug).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The portal could not bind a loopback port.
    #[error("township portal: {0}")]
    Portal(std::io::Error),
    /// The run failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// The embedded configuration pointed at `warehouse` (state in `<warehouse>/_state`).
pub fn demo_config(warehouse: &Path) -> Result<Loaded, ConfigError> {
    let mut settings = Settings::default();
    settings.paths.warehouse_dir = warehouse.to_path_buf();
    settings.paths.state_dir = warehouse.join("_state");
    Loaded::from_texts(settings, None, &embedded_texts())
}

/// Starts the demo portal and points every pipeline at it.
pub async fn start_portal(cfg: &mut Loaded) -> Result<(Portal, SocketAddr), std::io::Error> {
    let portal = Portal::demo(&cfg.def.catalog, &cfg.def.quotas);
    let addr = portal.clone().serve(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    for p in &mut cfg.def_mut().pipelines {
        p.source_url = Some(format!("http://{addr}/reports/{{township}}/{{period}}"));
    }
    Ok((portal, addr))
}

/// Runs the demo; returns the configuration used and what the run did.
pub async fn demo(warehouse: &Path) -> Result<(Loaded, RunSummary), DemoError> {
    let mut cfg = demo_config(warehouse)?;
    let (_portal, addr) = start_portal(&mut cfg).await.map_err(DemoError::Portal)?;
    tracing::info!(%addr, "Township portal listening.");
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(DEMO_NOW)
        .expect("constant is RFC 3339")
        .with_timezone(&Utc);
    let summary = run(&cfg, &RunOptions::at(now)).await?;
    Ok((cfg, summary))
}
