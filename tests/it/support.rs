//! Shared helpers: a webhook receiver, Parquet readers, the demo clock.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
#[derive(Clone, Default)]
pub struct Receiver {
    pub bodies: Arc<Mutex<Vec<serde_json::Value>>>,
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
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Reads one Parquet file.
pub fn read(path: &Path) -> DataFrame {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetReader::new(f).finish().unwrap()
}

/// Reads a year partition of a table.
pub fn read_year(wh: &Path, table: &str, year: i32) -> DataFrame {
    read(&wh.join(table).join(format!("year={year}")).join("part-0.parquet"))
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

/// Every Parquet file under `dir` with its bytes, sorted by path.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
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
