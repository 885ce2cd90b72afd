//! Timeliness from evidence, through the real binary: a claimed time counts
//! only when no fetch after the deadline found the report missing; without a
//! claim, observation decides or the status is unknown; a correction after
//! the deadline is late, and the report stays on time.

use std::path::{Path, PathBuf};

use serde_json::json;
use taizhang::simulator::{Canned, Portal};

use crate::support::{bin, copy_config, point_pipelines_at, read_table, rows};

fn report(township: &str, claimed: &str, cataract: i64) -> Canned {
    Canned::json(&json!({
        "township": township, "period": "2026-06", "submitted_at": claimed,
        "values": [{"indicator": "白内障复明手术", "value": cataract}]
    }))
}

/// The demo's configuration against an empty portal of our own: the
/// directory, the portal, the settings file and the warehouse.
async fn deployment() -> (tempfile::TempDir, Portal, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let portal = Portal::default();
    let addr = portal.clone().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    point_pipelines_at(dir.path(), &addr.to_string());
    let config = dir.path().join("config/taizhang.toml");
    let wh = dir.path().join("warehouse");
    (dir, portal, config, wh)
}

/// The report `township` sends for June, `claimed` its submission time.
fn june(portal: &Portal, township: &str, claimed: &str, cataract: i64) {
    portal.set(township, "2026-06", report(township, claimed, cataract));
}

async fn run_at(config: &Path, now: &str) {
    let (config, now) = (config.to_path_buf(), now.to_string());
    let out = tokio::task::spawn_blocking(move || {
        bin()
            .args(["run", "--pipeline", "cdpf-monthly", "--now", &now, "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn column(df: &polars::prelude::DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or("∅").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lateness_is_decided_from_evidence_not_from_the_claim_alone() {
    let (_dir, portal, config, wh) = deployment().await;
    // June is due by the end of 07-05 (China time).
    june(&portal, "341124105", "2026-07-02T09:00:00+08:00", 5);
    run_at(&config, "2026-07-03T10:00:00+08:00").await;
    // After the deadline: 大墅镇 (102) has nothing; 二郎口镇 (103) claims 07-01;
    // 武岗镇 (104) sends CSV (no claim); 马厂镇 (105) sends a correction.
    june(&portal, "341124103", "2026-07-01T09:00:00+08:00", 3);
    portal.set(
        "341124104",
        "2026-06",
        Canned::csv("township,period,indicator,dimension,category,value\n341124104,2026-06,白内障复明手术,,,4\n"),
    );
    june(&portal, "341124105", "2026-07-02T09:00:00+08:00", 6);
    run_at(&config, "2026-07-06T10:00:00+08:00").await;
    // 07-12: 大墅镇's report appears, claiming 07-01.
    june(&portal, "341124102", "2026-07-01T09:00:00+08:00", 2);
    run_at(&config, "2026-07-12T10:00:00+08:00").await;

    let subs = rows(&read_table(&wh, "submissions"), &[("period", "2026-06")]);
    let status = |t: &str| column(&rows(&subs, &[("township", t)]), "status").join(",");
    assert_eq!(
        status("341124102"),
        "late",
        "seen missing on 07-06, so its 07-01 claim is false"
    );
    assert_eq!(status("341124103"), "on_time", "nothing contradicts its claim");
    assert_eq!(
        status("341124104"),
        "unknown",
        "no claim, first seen after the deadline"
    );
    assert_eq!(
        status("341124105"),
        "on_time",
        "a correction does not make the report late"
    );
    let seen_missing = rows(&subs, &[("township", "341124102")])
        .column("seen_missing_at")
        .unwrap()
        .is_not_null()
        .get(0);
    assert_eq!(seen_missing, Some(true));

    let landings = rows(
        &read_table(&wh, "landings"),
        &[("township", "341124105"), ("period", "2026-06")],
    )
    .sort(["first_fetched_at"], Default::default())
    .unwrap();
    assert_eq!(column(&landings, "timeliness"), ["on_time", "late"]);

    let late = rows(
        &read_table(&wh, "check_results"),
        &[("rule", "late"), ("period", "2026-06")],
    );
    assert_eq!(column(&late, "township"), ["341124102"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_township_that_left_the_registry_keeps_its_landings_and_their_timeliness() {
    let (dir, portal, config, wh) = deployment().await;
    june(&portal, "341124105", "2026-07-02T09:00:00+08:00", 5);
    run_at(&config, "2026-07-03T10:00:00+08:00").await;
    june(&portal, "341124105", "2026-07-02T09:00:00+08:00", 6);
    run_at(&config, "2026-07-06T10:00:00+08:00").await;
    // The deployment now reports for 来安县 instead: 全椒县's townships are
    // in no batch of the next run, and their landings stay all the same.
    std::fs::write(dir.path().join("config/registry.toml"), "counties = [\"341122\"]\n").unwrap();
    std::fs::write(dir.path().join("config/quotas/2026.csv"), "year,code,indicator,quota\n").unwrap();
    run_at(&config, "2026-07-12T10:00:00+08:00").await;

    let all = read_table(&wh, "landings");
    let landings = rows(&all, &[("township", "341124105"), ("period", "2026-06")])
        .sort(["first_fetched_at"], Default::default())
        .unwrap();
    assert_eq!(column(&landings, "timeliness"), ["on_time", "late"]);
    let current: Vec<Option<bool>> = landings.column("current").unwrap().bool().unwrap().iter().collect();
    assert_eq!(current, [Some(false), Some(true)]);
    assert_eq!(all.height(), 2, "no other township of either county sent anything");
}
