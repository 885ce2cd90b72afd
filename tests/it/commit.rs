//! Runs that commit once, with the real binary, the real portal and a real
//! webhook receiver: kill -9 anywhere never shows two runs mixed and a rerun
//! converges; two runs take turns; one program's run leaves another's tables
//! and alerts alone; a 3 MB header field costs nothing and is forgotten once
//! the township sends a clean report; a check result failing again on the
//! next days keeps its first run's `first_seen`.
//!
//! More kills than CI's: `TAIZHANG_KILL_TRIALS=300 cargo test --test it commit::kill`
//! (`TAIZHANG_KILL_SEED` replays a sequence).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use taizhang::simulator::{Canned, Portal};

use crate::support::{Receiver, bin, copy_config, python, read_table, rows};

const T1: &str = "2026-06-10T10:00:00+08:00";
const T2: &str = "2026-07-10T10:00:00+08:00";

/// A county deployment on disk (config, warehouse, state), fed by a demo
/// portal and alerting a receiver. Copies of its directory are independent
/// deployments sharing the portal and the receiver.
struct Deployment {
    dir: tempfile::TempDir,
    portal: Portal,
    receiver: Receiver,
}

impl Deployment {
    async fn start() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("county");
        copy_config(&root);
        let cfg = taizhang::demo::demo_config(&dir.path().join("unused")).unwrap();
        let portal = Portal::demo(&cfg.def.catalog, &cfg.def.quotas);
        let addr = portal.clone().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
        crate::support::point_pipelines_at(&root, &addr.to_string());
        let (receiver, hook) = Receiver::start().await;
        let hook_file = dir.path().join("hook-url");
        std::fs::write(&hook_file, format!("{hook}\n")).unwrap();
        let settings = root.join("config/taizhang.toml");
        let s = std::fs::read_to_string(&settings)
            .unwrap()
            .replace(
                "# webhook_url_file = \"/run/secrets/taizhang-webhook\"",
                &format!("webhook_url_file = {:?}", hook_file.display().to_string()),
            )
            .replace("retry_base_ms = 500", "retry_base_ms = 1");
        std::fs::write(&settings, s).unwrap();
        Deployment { dir, portal, receiver }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("county")
    }

    /// A copy of the deployment (`cp -a`: links and modes kept).
    fn copy(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.dir.path().join(name);
        let _ = std::fs::remove_dir_all(&to);
        let ok = Command::new("cp").arg("-a").arg(from).arg(&to).status().unwrap();
        assert!(ok.success());
        to
    }
}

fn run_cmd(root: &Path, now: &str, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["run", "--now", now, "--config"])
        .arg(root.join("config/taizhang.toml"))
        .args(extra)
        .env("RUST_LOG", "warn");
    c
}

async fn run_ok(root: &Path, now: &str, extra: &[&str]) -> String {
    let mut c = run_cmd(root, now, extra);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
    assert!(
        out.status.success(),
        "run failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// What DuckDB reads from each warehouse the documented way (through
/// `current/`): per table, rows and a digest of them.
const DIGEST: &str = r#"
import duckdb, hashlib, json, os, sys
out = {}
for wh in sys.argv[1:]:
    cur = os.path.join(wh, "current")
    if not os.path.exists(cur):  # a snapshot directory itself
        cur = wh
    tables = set()
    for root, dirs, files in os.walk(cur, followlinks=True):
        if any(f.endswith(".parquet") for f in files):
            parts = [p for p in os.path.relpath(root, cur).split(os.sep) if not p.startswith("year=")]
            tables.add("/".join(parts))
    d = {}
    for t in sorted(tables):
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{cur}/{t}/**/*.parquet', hive_partitioning = true)").fetchall()
        lines = sorted(repr(r) for r in rows)
        d[t] = [len(rows), hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]]
    out[wh] = d
print(json.dumps(out))
"#;

type Digest = BTreeMap<String, (u64, String)>;

fn digests(warehouses: &[PathBuf]) -> Vec<Digest> {
    let out = Command::new(python())
        .arg("-c")
        .arg(DIGEST)
        .args(warehouses)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: BTreeMap<String, Digest> = serde_json::from_slice(&out.stdout).unwrap();
    warehouses.iter().map(|w| v[&w.display().to_string()].clone()).collect()
}

/// Where a trial stops the run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Moment {
    /// After this many reports were served.
    Fetching(usize),
    /// This many ms after the last report was served (landing, normalizing).
    AfterFetch(u64),
    /// This many ms after the snapshot's staging directory appeared.
    Staging(u64),
    /// As soon as the snapshot is sealed (before or after the commit).
    Sealed,
    /// While the receiver holds the alerts' POST unanswered.
    Delivering,
    /// Right after the receiver answered.
    Delivered,
    /// This many ms into the follow-up snapshot that records the delivery.
    FollowUp(u64),
}

/// A small deterministic generator (no dependency for this).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn snapshot_names(wh: &Path) -> Vec<String> {
    std::fs::read_dir(wh.join("snapshots"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts a run and SIGKILLs it at `moment`; returns whether it was killed
/// (false: it finished first).
fn kill_at(root: &Path, portal: &Portal, receiver: &Receiver, moment: Moment, reports: usize) -> bool {
    let wh = root.join("warehouse");
    let before: BTreeSet<String> = snapshot_names(&wh).into_iter().collect();
    let (hits0, req0, ans0) = (
        portal.hits(),
        receiver.requests.load(Ordering::SeqCst),
        receiver.answered.load(Ordering::SeqCst),
    );
    let mut child = run_cmd(root, T2, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let names = snapshot_names(&wh);
        let fire = match moment {
            Moment::Fetching(k) => portal.hits() - hits0 >= k,
            Moment::AfterFetch(ms) => {
                let done = portal.hits() - hits0 >= reports;
                if done {
                    std::thread::sleep(Duration::from_millis(ms));
                }
                done
            }
            Moment::Staging(ms) => {
                let staging = names.iter().any(|n| n.ends_with(".staging"));
                if staging {
                    std::thread::sleep(Duration::from_millis(ms));
                }
                staging
            }
            Moment::Sealed => names.iter().any(|n| !n.ends_with(".staging") && !before.contains(n)),
            Moment::Delivering => receiver.requests.load(Ordering::SeqCst) > req0,
            Moment::Delivered => receiver.answered.load(Ordering::SeqCst) > ans0,
            Moment::FollowUp(ms) => {
                let go =
                    receiver.answered.load(Ordering::SeqCst) > ans0 && names.iter().any(|n| n.ends_with(".staging"));
                if go {
                    std::thread::sleep(Duration::from_millis(ms));
                }
                go
            }
        };
        if fire {
            let _ = child.kill();
            let _ = child.wait();
            return true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "run never reached {moment:?}"
        );
        std::thread::sleep(Duration::from_micros(300));
    }
}

fn leftovers(wh: &Path) -> Vec<String> {
    let mut out: Vec<String> = snapshot_names(wh)
        .into_iter()
        .filter(|n| n.ends_with(".staging"))
        .collect();
    for e in std::fs::read_dir(wh).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        if n.starts_with("current.tmp") {
            out.push(n);
        }
    }
    if let Ok(d) = std::fs::read_dir(wh.join("raw/.tmp")) {
        out.extend(d.flatten().map(|e| e.file_name().to_string_lossy().to_string()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_anywhere_never_shows_two_runs_mixed_and_a_rerun_converges() {
    let d = Deployment::start().await;
    let root = d.root();
    // The month before: January to May, alerts delivered.
    run_ok(&root, T1, &[]).await;
    run_ok(&root, T1, &[]).await;
    let base = d.copy(&root, "base");

    // The reference: the July run uninterrupted; every snapshot it publishes
    // is a state a reader may see. Once more: nothing new, nothing parsed,
    // nothing encoded.
    let reference = d.copy(&base, "reference");
    let from = d.receiver.posts().len();
    run_ok(&reference, T2, &[]).await;
    let expected_keys: BTreeSet<String> = d.receiver.keys_since(from).into_iter().collect();
    assert!(
        expected_keys.len() >= 2,
        "the July run raises alerts: {expected_keys:?}"
    );
    assert_eq!(d.receiver.keys_since(from).len(), expected_keys.len(), "each once");
    let base_seq: u64 = snapshot_names(&base.join("warehouse"))
        .iter()
        .filter_map(|n| n.parse().ok())
        .max()
        .unwrap();
    let published: Vec<PathBuf> = {
        let mut n: Vec<u64> = snapshot_names(&reference.join("warehouse"))
            .iter()
            .filter_map(|n| n.parse().ok())
            .filter(|n| *n > base_seq)
            .collect();
        n.sort_unstable();
        n.iter()
            .map(|n| reference.join(format!("warehouse/snapshots/{n:08}")))
            .collect()
    };
    assert_eq!(published.len(), 2, "the run's commit and its delivery's");
    let again = run_ok(&reference, T2, &[]).await;
    let mut reference_snapshots = snapshot_names(&reference.join("warehouse"));
    reference_snapshots.sort();
    assert!(again.contains("bodies parsed       0"), "{again}");
    assert!(again.contains("files               0 written"), "{again}");

    // The trials: a slow portal and a slow receiver, so every phase is hit.
    d.portal.set_delay(Duration::from_millis(15));
    d.receiver.delay_ms.store(200, Ordering::SeqCst);
    let trials: usize = std::env::var("TAIZHANG_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("TAIZHANG_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20261129);
    let mut rng = Lcg(seed);
    let reports = 80; // ten townships × (six months + two quarters)
    let mut mids = Vec::new();
    let mut finals = Vec::new();
    let mut killed = 0;
    for i in 0..trials {
        let moment = match i % 10 {
            0..=2 => Moment::Fetching(1 + rng.next(reports as u64 - 1) as usize),
            3 => Moment::AfterFetch(rng.next(40)),
            4 | 5 => Moment::Staging(rng.next(25)),
            6 => Moment::Sealed,
            7 => Moment::Delivering,
            8 => Moment::Delivered,
            _ => Moment::FollowUp(rng.next(15)),
        };
        let trial = d.copy(&base, &format!("trial-{i}"));
        let from = d.receiver.posts().len();
        let (portal, receiver, t) = (d.portal.clone(), d.receiver.clone(), trial.clone());
        let was_killed = tokio::task::spawn_blocking(move || kill_at(&t, &portal, &receiver, moment, reports))
            .await
            .unwrap();
        killed += usize::from(was_killed);
        eprintln!(
            "trial {i}: {moment:?} {}",
            if was_killed { "killed" } else { "finished first" }
        );
        mids.push((moment, d.copy(&trial, &format!("mid-{i}")).join("warehouse")));
        // What the killed run left is cleaned up and the run converges.
        run_ok(&trial, T2, &[]).await;
        let wh = trial.join("warehouse");
        assert_eq!(leftovers(&wh), Vec::<String>::new(), "trial {i} {moment:?}");
        // No snapshot that no commit published survives, and a committed one
        // is published: the same snapshots as the uninterrupted run's.
        run_ok(&trial, T2, &[]).await;
        let mut names = snapshot_names(&wh);
        names.sort();
        assert_eq!(names, reference_snapshots, "trial {i} {moment:?}");
        finals.push((moment, wh));
        let keys = d.receiver.keys_since(from);
        let distinct: BTreeSet<String> = keys.iter().cloned().collect();
        assert_eq!(distinct, expected_keys, "trial {i} {moment:?}: every alert delivered");
        if !matches!(moment, Moment::Delivering | Moment::Delivered) {
            assert_eq!(keys.len(), distinct.len(), "trial {i} {moment:?}: nothing sent twice");
        }
    }
    d.portal.set_delay(Duration::ZERO);
    assert!(
        killed * 10 >= trials * 8,
        "most trials must kill the run: {killed} of {trials}"
    );

    let mut all = vec![base.join("warehouse"), reference.join("warehouse")];
    all.extend(published.iter().cloned());
    all.extend(mids.iter().map(|(_, w)| w.clone()));
    all.extend(finals.iter().map(|(_, w)| w.clone()));
    let got = digests(&all);
    let (before, converged) = (&got[0], &got[1]);
    let states = &got[2..2 + published.len()];
    assert_ne!(before, converged);
    assert_eq!(states.last(), Some(converged));
    assert!(converged.contains_key("rollup_county") && converged.keys().any(|t| t.starts_with("facts/")));
    let mids_at = 2 + published.len();
    for (i, (moment, _)) in mids.iter().enumerate() {
        let seen = &got[mids_at + i];
        let which = match states.iter().position(|s| s == seen) {
            Some(k) => format!("published snapshot {k} of the run"),
            None => "the previous run's".into(),
        };
        eprintln!("trial {i} killed at {moment:?}: a reader saw {which}");
        assert!(
            seen == before || states.contains(seen),
            "trial {i} killed at {moment:?}: the warehouse is neither the previous run's nor this one's:\n{}",
            mixed(seen, before, converged)
        );
    }
    for (i, (moment, _)) in finals.iter().enumerate() {
        assert_eq!(
            &got[mids_at + mids.len() + i],
            converged,
            "trial {i} {moment:?}: the rerun converges"
        );
    }
}

/// Which tables differ from either run, for a failure message.
fn mixed(seen: &Digest, before: &Digest, after: &Digest) -> String {
    seen.iter()
        .map(|(t, v)| {
            let tag = match (before.get(t) == Some(v), after.get(t) == Some(v)) {
                (true, true) => "both",
                (true, false) => "previous",
                (false, true) => "this",
                (false, false) => "NEITHER",
            };
            format!("  {t}: {tag}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_take_turns_and_alert_once() {
    let d = Deployment::start().await;
    let root = d.root();
    d.portal.set_delay(Duration::from_millis(30));
    let from = d.receiver.posts().len();
    let spawn = |extra: &'static [&'static str]| {
        run_cmd(&root, T2, extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(&["--wait-secs", "120"]), spawn(&["--wait-secs", "120"]));
    // A third that will not wait is refused while they run.
    std::thread::sleep(Duration::from_millis(100));
    let c = run_cmd(&root, T2, &[]).output().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    d.portal.set_delay(Duration::ZERO);
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(c.status.code(), Some(75), "{}", String::from_utf8_lossy(&c.stderr));
    let err = String::from_utf8_lossy(&c.stderr);
    assert!(err.contains("another taizhang run holds"), "{err}");
    assert!(err.contains("pid "), "the holder is named: {err}");
    let keys = d.receiver.keys_since(from);
    let distinct: BTreeSet<&String> = keys.iter().collect();
    assert!(!keys.is_empty());
    assert_eq!(keys.len(), distinct.len(), "every alert POSTed once: {keys:?}");
}

/// Files of one program in the published snapshot, with their bytes.
/// Landings are recorded in transactions, each committed after one sync of
/// the raw store: with a slow portal, what has landed is in the state store
/// (for `taizhang review`, `inspect`, a `serve` beside it) while the run is
/// still fetching, not held in one transaction until the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_portals_landings_are_committed_while_the_run_still_fetches() {
    let d = Deployment::start().await;
    d.portal.set_delay(Duration::from_millis(80));
    let root = d.root();
    let mut c = run_cmd(&root, T2, &[]);
    c.env("TAIZHANG_HTTP__CONCURRENCY", "1").stdout(Stdio::null());
    let db = root.join("state/taizhang.sqlite");
    let landed = move || -> Option<i64> {
        let conn = rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        conn.busy_timeout(Duration::from_secs(1)).ok()?;
        conn.query_row("SELECT count(*) FROM landings", [], |r| r.get(0)).ok()
    };
    let (seen, status) = tokio::task::spawn_blocking({
        let landed = landed.clone();
        move || {
            let mut child = c.spawn().unwrap();
            // Counts read while the run was still going (read, then checked
            // that it had not ended).
            let mut seen = Vec::new();
            loop {
                let n = landed();
                if let Some(status) = child.try_wait().unwrap() {
                    return (seen, status);
                }
                seen.extend(n);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    })
    .await
    .unwrap();
    assert!(status.success());
    // Ten townships × (six months + two quarters), one of them not submitted.
    let reports = 79;
    assert_eq!(landed(), Some(reports), "every report landed");
    let during: BTreeSet<i64> = seen.into_iter().filter(|n| *n > 0 && *n < reports).collect();
    assert!(
        during.len() >= 3,
        "landings committed a few at a time while the run fetched: {during:?}"
    );
}

fn program_files(wh: &Path, program: &str) -> Vec<(String, Vec<u8>)> {
    crate::support::snapshot(wh)
        .into_iter()
        .filter(|(p, _)| p.contains(&format!("part-{program}-")))
        .collect()
}

/// The distinct values of `column` in `df`, as text (an instant as its
/// number).
fn distinct_text(df: &polars::prelude::DataFrame, column: &str) -> BTreeSet<String> {
    use polars::prelude::DataType;
    let c = df.column(column).unwrap();
    match c.dtype() {
        DataType::String => c.str().unwrap().iter().map(|v| format!("{v:?}")).collect(),
        _ => {
            let n = c.cast(&DataType::Int64).unwrap();
            n.i64().unwrap().iter().map(|v| format!("{v:?}")).collect()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_failing_again_on_the_next_days_is_still_failing_since_the_first_run() {
    // Nothing changes at the portal between two runs a day apart: every
    // result the first run raised is the second's, tracked by its key
    // against what the state remembers (read back as hashes), not new.
    let d = Deployment::start().await;
    let root = d.root();
    let wh = root.join("warehouse");
    run_ok(&root, T2, &[]).await;
    let first = read_table(&wh, "check_results");
    assert!(
        first.height() >= 3,
        "the demo's townships fail some checks: {}",
        first.height()
    );
    assert_eq!(
        distinct_text(&first, "status"),
        BTreeSet::from(["Some(\"new\")".to_string()])
    );
    run_ok(&root, "2026-07-11T10:00:00+08:00", &[]).await;
    let second = read_table(&wh, "check_results");
    assert_eq!(second.height(), first.height(), "the same results");
    assert_eq!(
        distinct_text(&second, "status"),
        BTreeSet::from(["Some(\"still_failing\")".to_string()]),
    );
    assert_eq!(
        distinct_text(&second, "first_seen"),
        distinct_text(&first, "first_seen"),
        "first seen by the first run"
    );
    let (seen_first, seen_again) = (distinct_text(&first, "last_seen"), distinct_text(&second, "last_seen"));
    assert_eq!(seen_again.len(), 1, "{seen_again:?}");
    assert_ne!(seen_again, seen_first, "last seen by the second run");
    // A third day: still first seen by the first run, last by the third.
    run_ok(&root, "2026-07-12T10:00:00+08:00", &[]).await;
    let third = read_table(&wh, "check_results");
    assert_eq!(distinct_text(&third, "first_seen"), distinct_text(&first, "first_seen"));
    let seen_last = distinct_text(&third, "last_seen");
    assert!(seen_last.len() == 1 && seen_last != seen_again, "{seen_last:?}");
}

/// The townships' table is carried from one snapshot to the next, never
/// made again, while what it is made from stays (its memo beside the
/// programs'), and made again once the registry changes: a township's
/// population changed in registry.toml is in the next run's table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_townships_table_is_carried_until_the_registry_changes() {
    let d = Deployment::start().await;
    let root = d.root();
    let wh = root.join("warehouse");
    // A run's log at debug level, and the name of the table's file.
    let logged = |now: &'static str| {
        let mut c = run_cmd(&root, now, &[]);
        c.env("RUST_LOG", "taizhang=debug");
        async move {
            let out = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stderr).to_string()
        }
    };
    let file = |wh: &Path| -> Vec<String> {
        std::fs::read_dir(wh.join("current/dim_townships"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect()
    };
    // What the run's first publish did with the table (a run that sends
    // alerts publishes again, carrying it).
    let first_publish = |log: &str| {
        let (made, carried) = (
            log.find("The townships' table is made."),
            log.find("The townships' table is carried."),
        );
        match (made, carried) {
            (Some(m), c) if c.is_none_or(|c| m < c) => "made",
            (_, Some(_)) => "carried",
            _ => panic!("the table is neither made nor carried: {log}"),
        }
    };
    assert_eq!(first_publish(&logged(T2).await), "made", "nothing to carry yet");
    assert!(root.join("state/memo/.shared/dim_townships.json").exists());
    let first = file(&wh);
    assert_eq!(first.len(), 1, "{first:?}");
    // A day later: a new snapshot (the results are seen again), the same file.
    assert_eq!(first_publish(&logged("2026-07-11T10:00:00+08:00").await), "carried");
    assert_eq!(file(&wh), first);
    let population = |wh: &Path| {
        let df = read_table(wh, "dim_townships");
        let df = rows(&df, &[("township", "341124101")]);
        df.column("population").unwrap().i64().unwrap().get(0)
    };
    assert_eq!(population(&wh), Some(38_000));
    let registry = root.join("config/registry.toml");
    let text = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(&registry, text.replace("341124101 = 38000", "341124101 = 38500")).unwrap();
    assert_eq!(
        first_publish(&logged("2026-07-12T10:00:00+08:00").await),
        "made",
        "the registry changed"
    );
    assert_ne!(file(&wh), first);
    assert_eq!(population(&wh), Some(38_500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_programs_run_leaves_another_programs_tables_and_alerts_alone() {
    let d = Deployment::start().await;
    let root = d.root();
    // Three townships never sent Q1 (due 2026-04-15): overdue in the quarterly program.
    for t in ["341124100", "341124101", "341124102"] {
        d.portal.remove(t, "2026-Q1");
    }
    let wh = root.join("warehouse");
    run_ok(&root, T2, &[]).await;
    let monthly = program_files(&wh, "cdpf-monthly");
    assert!(!monthly.is_empty() && !program_files(&wh, "cdpf-quarterly").is_empty());
    let alerts = read_table(&wh, "alerts");
    let open =
        |a: &polars::prelude::DataFrame, program: &str| rows(a, &[("program", program), ("status", "open")]).height();
    let monthly_open = open(&alerts, "cdpf-monthly");
    assert!(monthly_open >= 3, "{monthly_open}");
    assert_eq!(open(&alerts, "cdpf-quarterly"), 3);
    let from = d.receiver.posts().len();

    // The quarterly program alone, a day later, after one township sent Q1.
    d.portal.set(
        "341124100",
        "2026-Q1",
        Canned::json(&taizhang::simulator::demo_quarterly("341124100", 1)),
    );
    let out = run_ok(&root, "2026-07-11T10:00:00+08:00", &["--pipeline", "cdpf-quarterly"]).await;
    assert!(out.contains("reports fetched     18 of 20"), "{out}");
    assert_eq!(program_files(&wh, "cdpf-monthly"), monthly, "monthly files untouched");
    let alerts = read_table(&wh, "alerts");
    assert_eq!(open(&alerts, "cdpf-monthly"), monthly_open, "monthly alerts untouched");
    assert_eq!(open(&alerts, "cdpf-quarterly"), 2, "one quarterly overdue resolved");
    let checks = read_table(&wh, "check_results");
    assert_eq!(
        rows(&checks, &[("program", "cdpf-monthly"), ("status", "resolved")]).height(),
        0,
        "no monthly check result resolved by the quarterly run"
    );
    // The township that sent Q1 is no longer overdue: its result, read back
    // whole from the state, is published resolved, with what it said.
    let resolved = rows(
        &checks,
        &[
            ("program", "cdpf-quarterly"),
            ("township", "341124100"),
            ("rule", "overdue"),
        ],
    );
    assert_eq!(resolved.height(), 1, "{resolved}");
    let text = |c: &str| resolved.column(c).unwrap().str().unwrap().get(0).map(str::to_string);
    assert_eq!(text("status").as_deref(), Some("resolved"));
    assert_eq!(text("period").as_deref(), Some("2026-Q1"));
    assert!(text("message").is_some_and(|m| m.contains("341124100")), "{resolved}");
    assert!(resolved.column("resolved_at").unwrap().null_count() == 0, "{resolved}");
    let insured = crate::support::read_year(&wh, "facts/pension_insured", 2026);
    assert_eq!(rows(&insured, &[("program", "cdpf-quarterly")]).height(), 18);

    // The next full run re-raises nothing of the monthly program.
    run_ok(&root, "2026-07-11T10:00:00+08:00", &[]).await;
    let resent: Vec<String> = d
        .receiver
        .keys_since(from)
        .into_iter()
        .filter(|k| k.contains("cdpf-monthly/"))
        .collect();
    assert_eq!(resent, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3mb_header_field_costs_nothing_and_a_clean_resubmission_replaces_it() {
    let d = Deployment::start().await;
    let root = d.root();
    let wh = root.join("warehouse");
    let huge = "镇".repeat(1_000_000); // 3 MB of UTF-8
    let values: Vec<serde_json::Value> = (0..1000)
        .map(|i| json!({"indicator": "白内障复明手术", "dimension": "x", "category": format!("c{i}"), "value": i}))
        .collect();
    let hostile = json!({"township": "341124102", "program": huge, "township_name": huge,
                         "period": "2026-06", "values": values});
    d.portal.set("341124102", "2026-06", Canned::json(&hostile));
    run_ok(&root, T2, &[]).await;
    let q = read_table(&wh, "quarantine");
    let mine = rows(&q, &[("township", "341124102"), ("period", "2026-06")]);
    assert_eq!(mine.height(), 1000, "every value set aside, none lost");
    let longest = mine
        .column("reason")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(str::len)
        .max()
        .unwrap();
    assert!(
        longest < 400,
        "the reason echoes a clipped field, not 3 MB: {longest} bytes"
    );
    let alerts = read_table(&wh, "alerts");
    let messages = alerts.column("message").unwrap().str().unwrap();
    assert!(messages.iter().flatten().all(|m| m.len() < 1000));
    let posted = serde_json::to_string(&d.receiver.posts()).unwrap();
    assert!(posted.len() < 100_000, "webhook payload stays small: {}", posted.len());

    // The township fixes its report: the next run publishes it and is not
    // held back by the stored bad version.
    let clean = taizhang::simulator::demo_submission(
        &taizhang::demo::demo_config(&d.dir.path().join("x"))
            .unwrap()
            .def
            .catalog,
        &[],
        "341124102",
        6,
    );
    d.portal.set("341124102", "2026-06", Canned::json(&clean));
    run_ok(&root, "2026-07-11T10:00:00+08:00", &[]).await;
    let q = read_table(&wh, "quarantine");
    assert_eq!(
        rows(&q, &[("township", "341124102"), ("period", "2026-06")]).height(),
        0
    );
    let facts = crate::support::read_year(&wh, "facts/cataract_surgery", 2026);
    assert!(crate::support::total(&facts, "341124102", "2026-06").is_some());
    // And again: the bad version stays in raw/ and landings, and runs go on.
    run_ok(&root, "2026-07-12T10:00:00+08:00", &[]).await;
}

/// Rewrites a deployment as the previous version left it: tables in place
/// as `<table>/[year=YYYY/]part-0.parquet`, no snapshots, and a state store
/// whose alert and check keys carry no program (schema version 0).
fn as_previous_version(root: &Path) {
    let wh = root.join("warehouse");
    let current = taizhang::inspect::published_root(&wh);
    for e in std::fs::read_dir(&wh).unwrap().flatten() {
        let (path, name) = (e.path(), e.file_name().to_string_lossy().to_string());
        if std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink() && name != "current" {
            std::fs::remove_file(&path).unwrap();
            let mut stack = vec![current.join(&name)];
            while let Some(d) = stack.pop() {
                let files: Vec<PathBuf> = std::fs::read_dir(&d).unwrap().flatten().map(|e| e.path()).collect();
                if files.iter().any(|f| f.is_file()) {
                    let to = wh.join(d.strip_prefix(&current).unwrap());
                    std::fs::create_dir_all(&to).unwrap();
                    let first = files.iter().find(|f| f.is_file()).unwrap();
                    std::fs::copy(first, to.join("part-0.parquet")).unwrap();
                }
                stack.extend(files.into_iter().filter(|f| f.is_dir()));
            }
        }
    }
    std::fs::remove_file(wh.join("current")).unwrap();
    std::fs::remove_dir_all(wh.join("snapshots")).unwrap();
    let db = rusqlite::Connection::open(root.join("state/taizhang.sqlite")).unwrap();
    db.execute_batch(
        "UPDATE alerts SET key = substr(key, length(program) + 2), program = '';
         UPDATE check_state SET key = substr(key, length(program) + 2);
         DROP TABLE outbox; DROP TABLE meta; PRAGMA user_version = 0;",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_of_the_previous_version_upgrades_without_resending_alerts() {
    let d = Deployment::start().await;
    let root = d.root();
    // The monthly program alone, as the previous version ran it.
    std::fs::remove_file(root.join("pipelines/cdpf-quarterly.toml")).unwrap();
    run_ok(&root, T2, &[]).await;
    let wh = root.join("warehouse");
    let before = read_table(&wh, "rollup_county").height();
    let sent = d.receiver.keys_since(0).len();
    assert!(sent >= 3);
    as_previous_version(&root);
    assert!(wh.join("rollup_county/year=2026/part-0.parquet").is_file());

    let out = run_ok(&root, T2, &[]).await;
    assert!(out.contains("alerts              0 new, 0 resolved"), "{out}");
    assert_eq!(d.receiver.keys_since(0).len(), sent, "nothing sent again");
    // The in-place tables became links into the published snapshot.
    for table in ["rollup_county", "facts", "alerts"] {
        let m = std::fs::symlink_metadata(wh.join(table)).unwrap();
        assert!(m.file_type().is_symlink(), "{table}");
    }
    assert!(!wh.join("rollup_county/year=2026/part-0.parquet").exists());
    assert_eq!(read_table(&wh, "rollup_county").height(), before);
    let alerts = read_table(&wh, "alerts");
    let keys = alerts.column("alert_key").unwrap().str().unwrap();
    assert!(keys.iter().flatten().all(|k| k.starts_with("cdpf-monthly/")));
    assert_eq!(rows(&alerts, &[("status", "resolved")]).height(), 0);
}

/// The unique indexes of the state's `check_state`, each as its columns.
fn check_state_unique(db: &rusqlite::Connection) -> Vec<Vec<String>> {
    let names: Vec<String> = db
        .prepare("SELECT name FROM pragma_index_list('check_state') WHERE \"unique\"")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names
        .iter()
        .map(|n| {
            db.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .unwrap()
                .query_map([n], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_keeping_results_unique_by_key_is_indexed_by_period_and_tracks_on() {
    let d = Deployment::start().await;
    let root = d.root();
    // One township never sent Q1: an overdue result to resolve later.
    d.portal.remove("341124100", "2026-Q1");
    let wh = root.join("warehouse");
    run_ok(&root, T2, &[]).await;
    let first = read_table(&wh, "check_results");
    let (posted, sent): (usize, BTreeSet<String>) =
        (d.receiver.posts().len(), d.receiver.keys_since(0).into_iter().collect());
    assert!(first.height() >= 3 && sent.len() >= 3, "{first}");

    // The store as schema 2 kept it: results unique by key alone, at row
    // ids far apart (kept by the upgrade).
    let state = root.join("state/taizhang.sqlite");
    let db = rusqlite::Connection::open(&state).unwrap();
    let columns = "key, rule, severity, program, township, period, year, indicator, dimension, observed, \
                   expected, message, explanation, first_seen, last_seen, resolved_at";
    db.execute_batch(&format!(
        "BEGIN;
         CREATE TABLE v2 (
           key TEXT PRIMARY KEY, rule TEXT NOT NULL, severity TEXT NOT NULL, program TEXT NOT NULL,
           township TEXT NOT NULL, period TEXT NOT NULL, year INTEGER NOT NULL, indicator TEXT, dimension TEXT,
           observed REAL, expected REAL, message TEXT NOT NULL, explanation TEXT,
           first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, resolved_at TEXT);
         INSERT INTO v2 (rowid, {columns}) SELECT rowid * 7 + 3, {columns} FROM check_state;
         DROP TABLE check_state; ALTER TABLE v2 RENAME TO check_state; PRAGMA user_version = 2; COMMIT;"
    ))
    .unwrap();
    assert_eq!(check_state_unique(&db), vec![vec!["key".to_string()]]);
    let rows_of = |db: &rusqlite::Connection| -> BTreeSet<(i64, String, String)> {
        db.prepare("SELECT rowid, key, first_seen FROM check_state")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let remembered = rows_of(&db);
    assert_eq!(remembered.len(), first.height());
    drop(db);

    // The township sends Q1; the next day's run upgrades the store first.
    d.portal.set(
        "341124100",
        "2026-Q1",
        Canned::json(&taizhang::simulator::demo_quarterly("341124100", 1)),
    );
    let out = run_ok(&root, "2026-07-11T10:00:00+08:00", &[]).await;
    assert!(out.contains("alerts              0 new, 1 resolved"), "{out}");
    let db = rusqlite::Connection::open(&state).unwrap();
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 4);
    assert_eq!(
        check_state_unique(&db),
        vec![vec!["period".to_string(), "key".to_string()]],
        "unique by (period, key), no longer by key alone"
    );
    // Every result at its row id, first seen as before; the one new result
    // is the township's Q1, late.
    let now = rows_of(&db);
    assert!(now.is_superset(&remembered), "{now:?}");
    let added: Vec<&String> = now.difference(&remembered).map(|(_, k, _)| k).collect();
    assert_eq!(added, ["cdpf-quarterly/late/341124100/2026-Q1//"]);

    // Tracked on: every other result still failing since the first run, the
    // overdue one read back whole and published resolved, nothing re-sent.
    let second = read_table(&wh, "check_results");
    assert_eq!(second.height(), first.height() + 1);
    let resolved = rows(&second, &[("status", "resolved")]);
    assert_eq!(resolved.height(), 1, "{resolved}");
    let text = |c: &str| resolved.column(c).unwrap().str().unwrap().get(0).map(str::to_string);
    assert_eq!(
        (
            text("rule").as_deref(),
            text("township").as_deref(),
            text("period").as_deref()
        ),
        (Some("overdue"), Some("341124100"), Some("2026-Q1"))
    );
    assert!(text("message").is_some_and(|m| m.contains("341124100")), "{resolved}");
    assert_eq!(
        rows(&second, &[("status", "still_failing")]).height(),
        first.height() - 1
    );
    let new = rows(&second, &[("status", "new")]);
    assert_eq!(
        rows(&new, &[("rule", "late"), ("township", "341124100")]).height(),
        1,
        "{new}"
    );
    assert_eq!(new.height(), 1, "{new}");
    let again: Vec<String> = d
        .receiver
        .keys_since(posted)
        .into_iter()
        .filter(|k| sent.contains(k))
        .collect();
    assert!(again.is_empty(), "no alert sent again: {again:?}");
}
