//! Shared helpers: a webhook receiver, Parquet readers, the demo clock.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use chrono::{DateTime, Utc};
use polars::prelude::*;

/// The demo county in a temp dir: its configuration pointed at a fresh demo
/// portal, and a webhook receiver that gets the alerts. Retries are quick.
pub struct Demo {
    /// Kept alive for the test's duration.
    pub _dir: tempfile::TempDir,
    pub wh: PathBuf,
    pub cfg: taizhang::config::Loaded,
    pub portal: taizhang::simulator::Portal,
    pub receiver: Receiver,
}

impl Demo {
    pub async fn start() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let wh = dir.path().join("warehouse");
        let mut cfg = taizhang::demo::demo_config(&wh).unwrap();
        let (portal, _addr) = taizhang::demo::start_portal(&mut cfg).await.unwrap();
        let (receiver, hook) = Receiver::start().await;
        cfg.webhook_url = Some(hook);
        cfg.settings.http.retry_base_ms = 1;
        Demo {
            _dir: dir,
            wh,
            cfg,
            portal,
            receiver,
        }
    }
}

/// A webhook receiver on loopback that keeps every JSON body posted to it.
/// It can answer late (`delay_ms`), so that a sender can be stopped while
/// its request is pending; `requests` counts arrivals, `answered` answers.
#[derive(Clone, Default)]
pub struct Receiver {
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    pub delay_ms: Arc<AtomicU64>,
    pub requests: Arc<AtomicUsize>,
    pub answered: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start() -> (Receiver, String) {
        let r = Receiver::default();
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    |State(r): State<Receiver>, Json(v): Json<serde_json::Value>| async move {
                        r.bodies.lock().unwrap().push(v);
                        r.requests.fetch_add(1, Ordering::SeqCst);
                        let delay = r.delay_ms.load(Ordering::SeqCst);
                        if delay > 0 {
                            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                        }
                        r.answered.fetch_add(1, Ordering::SeqCst);
                        "ok"
                    },
                ),
            )
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (r, format!("http://{addr}/hook"))
    }

    pub fn posts(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// The idempotency keys of every alert posted from the `from`-th body on.
    pub fn keys_since(&self, from: usize) -> Vec<String> {
        self.posts()[from..]
            .iter()
            .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
            .map(|a| a["idempotency_key"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Reads a year partition of a table (every program's file) from the
/// published snapshot.
pub fn read_year(wh: &Path, table: &str, year: i32) -> DataFrame {
    taizhang::inspect::read_table(wh, &format!("{table}/year={year}")).unwrap_or_else(|e| panic!("{table} {year}: {e}"))
}

/// Reads a whole table from the published snapshot.
pub fn read_table(wh: &Path, table: &str) -> DataFrame {
    taizhang::inspect::read_table(wh, table).unwrap_or_else(|e| panic!("{table}: {e}"))
}

/// Rows of `df` matching every (column, value) string equality.
pub fn rows(df: &DataFrame, eq: &[(&str, &str)]) -> DataFrame {
    let mut pred = lit(true);
    for (c, v) in eq {
        pred = pred.and(col(*c).eq(lit(*v)));
    }
    df.clone().lazy().filter(pred).collect().unwrap()
}

/// The total row (dimension null) of one cell.
pub fn total(df: &DataFrame, township: &str, period: &str) -> Option<f64> {
    let r = rows(df, &[("township", township), ("period", period)])
        .lazy()
        .filter(col("dimension").is_null())
        .collect()
        .unwrap();
    assert!(r.height() <= 1, "one total per cell");
    r.column("value").unwrap().f64().unwrap().get(0)
}

/// Every Parquet file of the published snapshot with its bytes, sorted by
/// path: what a reader of the warehouse sees.
pub fn snapshot(wh: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = taizhang::inspect::published_root(wh);
    let dir = dir.as_path();
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The taizhang binary, as cron runs it.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_taizhang"))
}

/// Copies the shipped config/, pipelines/ and schemas/ into `dir`.
pub fn copy_config(dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for sub in ["config", "config/quotas", "pipelines", "schemas", "schemas/divisions"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(root.join(sub)).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
}

/// The Python with duckdb that scripts/test installs (target/pyenv);
/// created here when missing so that plain `cargo test` works too.
pub fn python() -> PathBuf {
    use std::process::Command;
    if let Ok(p) = std::env::var("TAIZHANG_PYTHON") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/pyenv");
    let py = venv.join("bin/python");
    let has_duckdb = |py: &Path| {
        Command::new(py)
            .args(["-c", "import duckdb"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_duckdb(&py) {
        let ok = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "duckdb"])
                .status()
                .is_ok_and(|s| s.success());
        assert!(ok, "could not install duckdb into {}; run scripts/test", venv.display());
    }
    py
}

/// Points every pipeline of a copied configuration at the portal on `addr`.
pub fn point_pipelines_at(root: &Path, addr: &str) {
    for e in std::fs::read_dir(root.join("pipelines")).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path())
            .unwrap()
            .replace("127.0.0.1:8080", addr);
        std::fs::write(e.path(), text).unwrap();
    }
}

/// The shipped configuration copied into a temp dir, its programs pointed at
/// a fresh demo portal on loopback: (the dir, the portal, the settings file).
pub async fn demo_deployment() -> (tempfile::TempDir, taizhang::simulator::Portal, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let cfg = taizhang::demo::demo_config(&dir.path().join("unused")).unwrap();
    let portal = taizhang::simulator::Portal::demo(&cfg.def.catalog, &cfg.def.quotas);
    let addr = portal.clone().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    point_pipelines_at(dir.path(), &addr.to_string());
    let settings = dir.path().join("config/taizhang.toml");
    (dir, portal, settings)
}
