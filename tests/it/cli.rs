//! The command line as cron and county IT use it: `validate` and `run --config`
//! on real files, with an environment override.

use std::process::Command;

use taizhang::simulator::{Canned, Portal};

use crate::support::copy_config;

use crate::support::bin;

#[test]
fn validate_accepts_the_shipped_config_and_names_file_line_key_of_a_typo() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let settings = dir.path().join("config/taizhang.toml");
    let ok = bin().args(["validate", "--config"]).arg(&settings).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("10 townships"));

    let pipeline = dir.path().join("pipelines/cdpf-monthly.toml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(&pipeline, text.replace("deadline_days = 5", "deadline_dayz = 5")).unwrap();
    let bad = bin().args(["validate", "--config"]).arg(&settings).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("cdpf-monthly.toml: line "), "{err}");
    assert!(err.contains("deadline_dayz"), "{err}");

    // A declared rule naming an indicator the catalog does not have.
    let rule = "\n[[checks]]\nkind = \"rule\"\nname = \"x\"\nleft = \"残疾人证核发\"\nop = \"=\"\nright = \"残疾人证补办\"\nseverity = \"error\"\n";
    std::fs::write(&pipeline, format!("{text}{rule}")).unwrap();
    let bad = bin().args(["validate", "--config"]).arg(&settings).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    let line = text.lines().count() + 2;
    assert!(
        err.contains(&format!("cdpf-monthly.toml: line {line}: checks[")),
        "{err}"
    );
    assert!(err.contains("unknown indicator \"残疾人证补办\""), "{err}");

    std::fs::write(&pipeline, text).unwrap();
    // Quotas that do not decompose: the county's 240 is not its townships' sum.
    let quotas = dir.path().join("config/quotas/2026.csv");
    let q = std::fs::read_to_string(&quotas).unwrap();
    std::fs::write(
        &quotas,
        q.replace(
            "2026,341124109,cataract_surgery,18",
            "2026,341124109,cataract_surgery,20",
        ),
    )
    .unwrap();
    // Quotas that do not add up are data: validate warns, and run accepts
    // exactly what validate accepts (it reports them as a check).
    let warned = bin().args(["validate", "--config"]).arg(&settings).output().unwrap();
    assert_eq!(warned.status.code(), Some(0));
    let err = String::from_utf8_lossy(&warned.stderr);
    assert!(
        err.contains("warning: ")
            && err.contains("cataract_surgery: township quotas add up to 242, not the county quota 240")
            && err.contains("check quota_decomposition"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&warned.stdout).contains("(1 quota warnings)"));
    let plan = bin()
        .args(["run", "--dry-run", "--config"])
        .arg(&settings)
        .output()
        .unwrap();
    assert_eq!(plan.status.code(), Some(0));
    std::fs::write(&quotas, q).unwrap();

    let s = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, s.replace("concurrency = 16", "concurency = 16")).unwrap();
    let bad = bin().args(["validate", "--config"]).arg(&settings).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("concurency"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_config_file_env_override_and_fixed_clock() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let cfg = taizhang::demo::demo_config(&dir.path().join("unused")).unwrap();
    let portal = Portal::demo(&cfg.def.catalog, &cfg.def.quotas);
    let addr = portal.clone().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    crate::support::point_pipelines_at(dir.path(), &addr.to_string());
    let wh = dir.path().join("elsewhere");
    let hook_file = dir.path().join("hook-url");
    let (receiver, hook) = crate::support::Receiver::start().await;
    std::fs::write(&hook_file, format!("{hook}\n")).unwrap();
    let settings = dir.path().join("config/taizhang.toml");
    let s = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        s.replace(
            "# webhook_url_file = \"/run/secrets/taizhang-webhook\"",
            &format!("webhook_url_file = {:?}", hook_file.display().to_string()),
        ),
    )
    .unwrap();

    let dry = bin()
        .args(["run", "--dry-run", "--now", "2026-07-10T10:00:00+08:00", "--config"])
        .arg(&settings)
        .output()
        .unwrap();
    assert!(dry.status.success());
    let plan = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(plan.contains("80 reports would be fetched"), "{plan}");
    assert!(
        plan.contains("cdpf-quarterly: 20 reports (2026-Q1 … 2026-Q2)"),
        "{plan}"
    );
    assert!(plan.contains("nothing published yet"), "{plan}");
    assert_eq!(portal.hits(), 0, "a dry run fetches nothing");
    assert!(!dir.path().join("state").exists(), "nor creates anything");

    let (settings2, wh2) = (settings.clone(), wh.clone());
    let out = tokio::task::spawn_blocking(move || {
        bin()
            .args(["run", "--now", "2026-07-10T10:00:00+08:00", "--config"])
            .arg(&settings)
            .env("TAIZHANG_PATHS__WAREHOUSE_DIR", &wh)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reports fetched     79 of 80"), "{stdout}");
    // The run is in the history, as a table and as JSON lines.
    let runs = bin()
        .args(["runs", "--json", "--config"])
        .arg(&settings2)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&runs.stdout).to_string();
    let history: Vec<serde_json::Value> = line.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(history.len(), 1, "{line}");
    assert_eq!(history[0]["outcome"], "done");
    assert_eq!(history[0]["summary"]["fetched"], 79);
    assert_eq!(history[0]["now"], "2026-07-10T02:00:00+00:00");
    let table = bin().args(["runs", "--config"]).arg(&settings2).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout).to_string();
    assert!(table.contains("2026-07-10 10:00") && table.contains("79/80"), "{table}");
    // Logs for a file or a journal: sentences with fields, no colour codes.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log that is not a terminal: {log:?}"
    );
    let partition = dir.path().join("elsewhere/facts/certificates_issued/year=2026");
    let files: Vec<String> = std::fs::read_dir(&partition)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    // A file per batch: the county's province (34), each month landed.
    assert_eq!(files.len(), 6, "{files:?}");
    for m in 1..=6 {
        let batch = format!("part-cdpf-monthly-34-2026-{m:02}-");
        assert!(files.iter().any(|f| f.starts_with(&batch)), "{batch} in {files:?}");
    }
    assert!(!dir.path().join("warehouse").exists(), "the environment override wins");
    let posts = receiver.posts();
    assert_eq!(posts.len(), 1);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&hook),
        "the webhook URL is a secret and never logged"
    );

    // The plan after the run: everything landed and kept, nothing to parse.
    let dry = bin()
        .args(["run", "--dry-run", "--now", "2026-07-10T10:00:00+08:00", "--config"])
        .arg(&settings2)
        .env("TAIZHANG_PATHS__WAREHOUSE_DIR", &wh2)
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(
        plan.contains("cdpf-monthly: 60 reports (2026-01 … 2026-06); 59 already landed; 0 landed bodies to parse"),
        "{plan}"
    );
    assert!(plan.contains("published snapshot 2"), "{plan}");
    assert!(plan.contains("alerts waiting for delivery: 0"), "{plan}");

    // What county staff read after the run.
    let read = |args: &[&str]| {
        let o = bin()
            .args(args)
            .arg("--config")
            .arg(&settings2)
            .env("TAIZHANG_PATHS__WAREHOUSE_DIR", &wh2)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let q = read(&["quarantine", "--period", "2026-06"]);
    assert!(
        q.contains("十字镇") && q.contains("残疾人体育活动") && q.contains("unknown indicator"),
        "{q}"
    );
    assert!(!read(&["quarantine", "--period", "2026-05"]).contains("十字镇"));
    let e = read(&["explain", "--township", "341124102", "--period", "2026-05"]);
    assert!(e.contains("大墅镇(341124102) 2026-05"), "{e}");
    assert!(e.contains("served as application/json"), "{e}");
    assert!(e.contains("残疾人证核发"), "{e}");
    let e = read(&["explain", "--township", "341124107", "--period", "2026-06"]);
    assert!(e.contains("残疾人体育活动") && e.contains("unknown indicator"), "{e}");
    let c = read(&["checks", "--period", "2026-05"]);
    assert!(
        c.contains("大墅镇(341124102) 2026-05 残疾人证核发: 合计 11 与按类别分项之和 9 不符")
            && c.contains("未计入县汇总"),
        "{c}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_on_schedule_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let cfg = taizhang::demo::demo_config(&dir.path().join("unused")).unwrap();
    let portal = Portal::demo(&cfg.def.catalog, &cfg.def.quotas);
    let addr = portal.clone().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    let pipeline = dir.path().join("pipelines/cdpf-monthly.toml");
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("127.0.0.1:8080", &addr.to_string())
        .replace("schedule = \"0 0 2 * * *\"", "schedule = \"* * * * * *\"")
        // Real time is after 2026, so start the program at the previous month.
        .replace(
            "start_period = \"2026-01\"",
            &format!("start_period = {:?}", last_month()),
        );
    std::fs::write(&pipeline, text).unwrap();
    let settings = dir.path().join("config/taizhang.toml");
    let child = bin()
        .args(["serve", "--config"])
        .arg(&settings)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let runs = dir.path().join("state/taizhang.sqlite");
    let mut finished = 0;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(conn) = rusqlite::Connection::open(&runs) {
            finished = conn
                .query_row("SELECT count(*) FROM runs WHERE finished_at IS NOT NULL", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap_or(0);
            if finished >= 1 {
                break;
            }
        }
    }
    assert!(finished >= 1, "serve ran no scheduled run within 10 s");
    assert!(portal.hits() >= 10, "the scheduled run fetched every township");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "serve exits cleanly on SIGTERM: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Shutdown signal received"));
}

/// The month before the current one, China time, as YYYY-MM.
fn last_month() -> String {
    use chrono::Datelike;
    let now = chrono::Utc::now().with_timezone(&taizhang::period::china());
    let (y, m) = if now.month() == 1 {
        (now.year() - 1, 12)
    } else {
        (now.year(), now.month() - 1)
    };
    format!("{y}-{m:02}")
}

/// Operator mistakes get a reason and exit code 2, before anything runs:
/// periods that do not exist, a pipeline that is not configured, a clock
/// given as a date (accepted), schedules in the wrong shape or that never
/// fire, a body limit of 0, a webhook URL that is no URL (never printed).
#[test]
fn operator_mistakes_get_a_reason_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let settings = dir.path().join("config/taizhang.toml");
    let run = |args: &[&str]| {
        let out = bin().args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let cfg = settings.to_str().unwrap();
    let wh = dir.path().join("warehouse");
    for bad in ["2026-13", "2026-6", "202606"] {
        let (code, _, err) = run(&["checks", "--warehouse", wh.to_str().unwrap(), "--period", bad]);
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(err.contains("--period") && err.contains("2026-06"), "{err}");
    }
    let (code, _, err) = run(&["run", "--config", cfg, "--pipeline", "nope", "--dry-run"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("\"nope\"") && err.contains("cdpf-monthly"), "{err}");
    let (code, _, err) = run(&["quarantine", "--config", cfg, "--township", "不存在镇"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no township of the registry"), "{err}");
    // A date is a clock: midnight China time.
    let (code, out, err) = run(&["run", "--config", cfg, "--now", "2026-07-10", "--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("2026-06"), "{out}");
    let (code, _, err) = run(&["run", "--config", cfg, "--now", "July 10th", "--dry-run"]);
    assert_eq!(code, Some(2), "{err}");
    // Deploying another county starts from its townships.
    let (code, out, err) = run(&["townships", "--county", "341124"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("341124107\t十字镇\t全椒县"), "{out}");
    let (code, _, err) = run(&["townships", "--county", "999999"]);
    assert_eq!(code, Some(2), "{err}");

    let validate = |what: &str| {
        let (code, _, err) = run(&["validate", "--config", cfg]);
        assert_eq!(code, Some(2), "{what}: {err}");
        err
    };
    let pipeline = dir.path().join("pipelines/cdpf-monthly.toml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let schedule = text.lines().find(|l| l.starts_with("schedule")).unwrap().to_string();
    for (bad, says) in [
        ("0 2 * * *", "\"0 0 2 * * *\""),
        ("0 0 24 * * *", "hour 24 is out of range 0–23"),
        ("0 0 2 30 2 *", "never fires"),
    ] {
        std::fs::write(&pipeline, text.replace(&schedule, &format!("schedule = \"{bad}\""))).unwrap();
        let err = validate(bad);
        assert!(err.contains("schedule") && err.contains(says), "{err}");
    }
    std::fs::write(&pipeline, &text).unwrap();
    let s = std::fs::read_to_string(&settings).unwrap();
    assert!(s.contains("max_body_bytes = 16777216"));
    std::fs::write(&settings, s.replace("max_body_bytes = 16777216", "max_body_bytes = 0")).unwrap();
    assert!(validate("max_body_bytes").contains("http.max_body_bytes: must be at least 1"));
    // Errors name the key, not "-".
    std::fs::write(&settings, s.replace("concurrency = 16", "concurrency = \"many\"")).unwrap();
    let err = validate("concurrency type");
    assert!(err.contains("taizhang.toml: http.concurrency: invalid type"), "{err}");
    std::fs::write(&settings, &s).unwrap();
    let registry = dir.path().join("config/registry.toml");
    let r = std::fs::read_to_string(&registry).unwrap();
    std::fs::write(
        &registry,
        r.replace("counties = [\"341124\"]", "counties = [\"349999\"]"),
    )
    .unwrap();
    let err = validate("registry county");
    assert!(
        err.contains("registry.toml: counties: \"349999\" is not a county code"),
        "{err}"
    );
    assert!(!err.contains(": -:"), "{err}");
    std::fs::write(&registry, r).unwrap();
    let patched = match s.contains("[alerts]") {
        true => s.replace("[alerts]", "[alerts]\nwebhook_url_env = \"TZ_TEST_HOOK\""),
        false => format!("{s}\n[alerts]\nwebhook_url_env = \"TZ_TEST_HOOK\"\n"),
    };
    std::fs::write(&settings, patched).unwrap();
    let out = bin()
        .args(["validate", "--config", cfg])
        .env("TZ_TEST_HOOK", "not a url key=s3cret")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("alerts.webhook_url_env") && err.contains("not an http"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "the secret was printed: {err}");
}

/// Personal data stays with the service's user whatever the umask: the
/// state store, kept normalizations and raw bodies are 0700/0600 (an
/// existing 0755 state directory is tightened), the published tables stay
/// readable for analysts.
#[test]
fn state_and_raw_bodies_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    std::fs::create_dir_all(wh.join("_state")).unwrap();
    std::fs::set_permissions(wh.join("_state"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022; exec '{}' demo --warehouse '{}'",
            env!("CARGO_BIN_EXE_taizhang"),
            wh.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let files_under = |d: &std::path::Path| -> Vec<std::path::PathBuf> {
        let mut out = vec![];
        let mut stack = vec![d.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() { stack.push(p) } else { out.push(p) }
            }
        }
        out
    };
    assert_eq!(mode(&wh.join("_state")), 0o700);
    assert_eq!(mode(&wh.join("raw")), 0o700);
    let private: Vec<_> = files_under(&wh.join("_state"))
        .into_iter()
        .chain(files_under(&wh.join("raw")))
        .collect();
    assert!(private.len() > 80, "{}", private.len());
    for f in &private {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    // What analysts read stays readable.
    assert_eq!(mode(&wh), 0o755);
    let table = files_under(&wh.join("current/facts/cataract_surgery").canonicalize().unwrap())
        .into_iter()
        .next()
        .unwrap();
    assert_eq!(mode(&table), 0o644);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_townships_that_could_not_be_fetched_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let cfg = taizhang::demo::demo_config(&dir.path().join("unused")).unwrap();
    let portal = Portal::demo(&cfg.def.catalog, &cfg.def.quotas);
    portal.set("341124104", "2026-06", Canned::status(500, "down"));
    let addr = portal.clone().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    crate::support::point_pipelines_at(dir.path(), &addr.to_string());
    let settings = dir.path().join("config/taizhang.toml");
    let run = move |settings: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            bin()
                .args(["run", "--now", "2026-07-10T10:00:00+08:00", "--config"])
                .arg(&settings)
                .env("TAIZHANG_HTTP__RETRY_BASE_MS", "1")
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let out = run(settings.clone()).await;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "partial: {said}");
    assert!(said.contains("1 failed"), "{said}");
    // Everything else was published.
    assert!(dir.path().join("warehouse/current/facts").is_dir());
    portal.remove("341124104", "2026-06");
    let out = run(settings.clone()).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out = run(settings).await;
    assert_eq!(out.status.code(), Some(0));
    // Every run in the warehouse's runs table, those that published nothing too.
    use polars::prelude::SerReader;
    let f = std::fs::File::open(dir.path().join("warehouse/runs/runs.parquet")).unwrap();
    let runs = polars::prelude::ParquetReader::new(f).finish().unwrap();
    let outcome: Vec<&str> = runs
        .column("outcome")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    assert_eq!(outcome, ["partial", "done", "done"]);
    let snapshot: Vec<Option<i64>> = runs.column("snapshot").unwrap().i64().unwrap().iter().collect();
    assert!(snapshot[0].is_some() && snapshot[2].is_none(), "{snapshot:?}");
    let failed: Vec<Option<i64>> = runs.column("fetch_failed").unwrap().i64().unwrap().iter().collect();
    assert_eq!(failed, [Some(1), Some(0), Some(0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_warehouse_mode_is_what_the_settings_say_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, _portal, settings) = crate::support::demo_deployment().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    for (access, wh_mode, file_mode) in [("group", 0o2750, 0o640), ("world", 0o755, 0o644)] {
        let wh = dir.path().join(format!("wh-{access}"));
        let (settings, wh2) = (settings.clone(), wh.clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "umask 077; exec '{}' run --now 2026-07-10 --config '{}'",
                    env!("CARGO_BIN_EXE_taizhang"),
                    settings.display()
                ))
                .env("TAIZHANG_PATHS__WAREHOUSE_DIR", &wh2)
                .env("TAIZHANG_WAREHOUSE__ACCESS", access)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(mode(&wh), wh_mode, "{access}");
        let snap = wh.join("current").canonicalize().unwrap();
        assert_eq!(mode(&snap), wh_mode, "{access}");
        let part = wh
            .join("current/facts/cataract_surgery/year=2026")
            .canonicalize()
            .unwrap();
        assert_eq!(mode(&part), wh_mode, "{access}");
        for f in std::fs::read_dir(&part).unwrap().flatten() {
            assert_eq!(mode(&f.path()), file_mode, "{access} {}", f.path().display());
        }
        assert_eq!(mode(&snap.join("_manifest.json")), file_mode);
        assert_eq!(mode(&wh.join("raw")), 0o700, "bodies as sent stay the service's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_catches_up_once_after_downtime_and_reports_health_metrics_and_runs() {
    use std::io::BufRead;
    let (_dir, _portal, settings) = crate::support::demo_deployment().await;
    let s = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        s.replace("# listen = \"127.0.0.1:9464\"", "listen = \"127.0.0.1:0\""),
    )
    .unwrap();
    // The monthly program last ran at 02:00 on 07-08 ...
    let first = bin()
        .args([
            "run",
            "--pipeline",
            "cdpf-monthly",
            "--now",
            "2026-07-08T02:00:00+08:00",
            "--config",
        ])
        .arg(&settings)
        .output()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // ... and the service comes back at 09:00 on 07-10, two nightly ticks later.
    let mut child = bin()
        .args([
            "--log-format",
            "json",
            "serve",
            "--clock",
            "2026-07-10T09:00:00+08:00",
            "--config",
        ])
        .arg(&settings)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let endpoint = loop {
        let v = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("serve logged no address");
        if v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Service endpoints listening"))
        {
            break format!("http://{}", v["addr"].as_str().unwrap());
        }
    };
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{endpoint}{path}"));
        async move { http.get(url).send().await.unwrap() }
    };
    let mut runs = vec![];
    for _ in 0..200 {
        runs = get("/runs").await.json::<Vec<serde_json::Value>>().await.unwrap();
        if runs.len() >= 2 && runs[0]["outcome"] == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(runs.len(), 2, "one catch-up run for two missed nights: {runs:#?}");
    assert!(
        runs[0]["now"].as_str().unwrap().starts_with("2026-07-10T01:00"),
        "{}",
        runs[0]
    );
    assert_eq!(
        runs[0]["summary"]["programs"],
        serde_json::json!(["cdpf-monthly"]),
        "the quarterly program never ran: not caught up"
    );

    // The run is in /runs once committed; its metrics once it has returned.
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = get("/metrics").await.text().await.unwrap();
        if metrics.lines().any(|l| l == "taizhang_runs_total{outcome=\"done\"} 1") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for line in [
        "taizhang_runs_total{outcome=\"done\"} 1",
        "taizhang_fetches_total{result=\"fetched\"} 59",
        "taizhang_fetches_total{result=\"not_submitted\"} 1",
        "taizhang_check_failures{severity=\"error\"} 2",
        "taizhang_next_run_timestamp_seconds 1783706400",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in\n{metrics}");
    }
    let health = get("/healthz").await;
    assert_eq!(health.status(), 200);
    let health: serde_json::Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["next_run"], "2026-07-10T18:00:00+00:00");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_never_need_the_delivery_secret() {
    let (dir, _portal, settings) = crate::support::demo_deployment().await;
    let s = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(
        &settings,
        s.replace(
            "# webhook_url_env = \"TAIZHANG_WEBHOOK_URL\"",
            "webhook_url_env = \"TZ_TEST_HOOK\"",
        ),
    )
    .unwrap();
    let (receiver, hook) = crate::support::Receiver::start().await;
    let settings2 = settings.clone();
    let out = tokio::task::spawn_blocking(move || {
        bin()
            .args(["run", "--now", "2026-07-10", "--config"])
            .arg(&settings2)
            .env("TZ_TEST_HOOK", hook)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!receiver.posts().is_empty());
    // Without the secret: the nightly job refuses, naming the key ...
    let run = bin()
        .args(["run", "--dry-run", "--config"])
        .arg(&settings)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("alerts.webhook_url_env"));
    // ... and every command that only reads works.
    for args in [
        vec!["checks"],
        vec!["quarantine"],
        vec!["explain", "--township", "大墅镇", "--period", "2026-06"],
        vec!["review"],
        vec!["runs"],
    ] {
        let out = bin().args(&args).arg("--config").arg(&settings).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wh = dir.path().join("warehouse");
    let q = bin()
        .args(["quarantine", "--warehouse"])
        .arg(&wh)
        .arg("--config")
        .arg(&settings)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&q.stdout).contains("残疾人体育活动"));
}

#[test]
fn init_writes_a_deployment_for_any_county_that_validates_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let deployment = dir.path().join("dongcheng");
    let out = bin()
        .args(["init", "--county", "110101", "--year", "2027"])
        .arg(&deployment)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let settings = deployment.join("config/taizhang.toml");
    let ok = bin().args(["validate", "--config"]).arg(&settings).output().unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    // Every township of the county, from the division table.
    let listed =
        String::from_utf8_lossy(&bin().args(["townships", "--county", "110101"]).output().unwrap().stdout).to_string();
    let codes: Vec<&str> = listed.lines().skip(1).map(|l| l.split('\t').next().unwrap()).collect();
    assert!(codes.len() > 10);
    let registry = std::fs::read_to_string(deployment.join("config/registry.toml")).unwrap();
    let template = std::fs::read_to_string(deployment.join("config/quotas/2027.csv.template")).unwrap();
    for c in &codes {
        assert!(registry.contains(&format!("# {c} =")), "{c} not in the registry");
        assert!(
            template.contains(&format!("2027,{c},cataract_surgery,")),
            "{c} not in the quota template"
        );
    }
    assert!(String::from_utf8_lossy(&ok.stdout).contains(&format!("{} townships", codes.len())));
    let unit = std::fs::read_to_string(deployment.join("deploy/taizhang.service")).unwrap();
    assert!(
        unit.contains(&format!(
            "serve --config {}",
            settings.canonicalize().unwrap().display()
        )),
        "{unit}"
    );
    assert!(
        std::fs::read_to_string(deployment.join("deploy/taizhang.cron"))
            .unwrap()
            .contains(" run --config ")
    );
    let plan = bin()
        .args(["run", "--dry-run", "--now", "2027-02-10", "--config"])
        .arg(&settings)
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", String::from_utf8_lossy(&plan.stderr));
    // A careless operator: an existing deployment is never overwritten, an unknown county is refused.
    let again = bin()
        .args(["init", "--county", "110101"])
        .arg(&deployment)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
    let unknown = bin()
        .args(["init", "--county", "999999"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(!dir.path().join("x").exists(), "nothing written for an unknown county");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_fetches_periods_before_the_start_with_progress_lines_in_a_log() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let cfg = taizhang::demo::demo_config(&dir.path().join("unused")).unwrap();
    let portal = Portal::demo(&cfg.def.catalog, &cfg.def.quotas);
    let addr = portal.clone().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    crate::support::point_pipelines_at(dir.path(), &addr.to_string());
    // The deployment starts in April; January–March are history to backfill.
    let monthly = dir.path().join("pipelines/cdpf-monthly.toml");
    let text = std::fs::read_to_string(&monthly).unwrap();
    std::fs::write(
        &monthly,
        text.replace("start_period = \"2026-01\"", "start_period = \"2026-04\""),
    )
    .unwrap();
    let settings = dir.path().join("config/taizhang.toml");
    let backfill = |args: &'static [&'static str]| {
        let settings = settings.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                bin()
                    .arg("backfill")
                    .args(args)
                    .args(["--pipeline", "cdpf-monthly", "--now", "2026-07-10", "--config"])
                    .arg(&settings)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let plan = backfill(&["--from", "2026-01", "--to", "2026-03", "--dry-run"]).await;
    assert!(
        String::from_utf8_lossy(&plan.stdout).contains("30 reports would be fetched"),
        "{}",
        String::from_utf8_lossy(&plan.stdout)
    );
    let out = backfill(&["--from", "2026-01", "--to", "2026-03"]).await;
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("reports fetched     30 of 30"));
    // Not a terminal: progress as log lines, no bar, no colour codes.
    assert!(log.contains("Reports handled. done=30 of=30 percent=100"), "{log}");
    // With the process's CPU time so far, in milliseconds.
    let cpu: u64 = log
        .lines()
        .find(|l| l.contains("Reports handled. done=30 of=30"))
        .and_then(|l| l.split("cpu_ms=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no cpu_ms on the last progress line: {log}"));
    assert!(cpu > 0, "{log}");
    assert!(!log.contains('\u{1b}'), "no ANSI escapes in a log");
    let facts = crate::support::read_table(&dir.path().join("warehouse"), "facts/cataract_surgery");
    let periods: std::collections::BTreeSet<String> = facts
        .column("period")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    assert_eq!(
        periods.into_iter().collect::<Vec<_>>(),
        ["2026-01", "2026-02", "2026-03"]
    );
    let bad = backfill(&["--from", "2026-05", "--to", "2026-02"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--to: 2026-02 ends before 2026-05 starts"));
}

/// A program with `revisit_after_days`, run with the real binary: a settled
/// period's landed report is asked for on its own day (or with
/// `--revisit-all`), a recent one on every run, and a correction to a
/// settled month waits for that day, then is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_month_is_asked_for_on_its_own_day_or_with_revisit_all() {
    let (dir, portal, settings) = crate::support::demo_deployment().await;
    let program = dir.path().join("pipelines/cdpf-monthly.toml");
    let text = std::fs::read_to_string(&program).unwrap();
    let edited = text.replace("deadline_days = 5", "deadline_days = 5\nrevisit_after_days = 30");
    assert_ne!(edited, text);
    std::fs::write(&program, edited).unwrap();
    let run_exiting = |code: i32, now: &str, extra: &[&str]| {
        let out = bin()
            .args(["run", "--config"])
            .arg(&settings)
            .args(["--pipeline", "cdpf-monthly", "--now", now])
            .args(extra)
            .env("TAIZHANG_HTTP__RETRY_BASE_MS", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let run = |now: &str, extra: &[&str]| run_exiting(0, now, extra);
    // Nothing landed yet: every report is asked for, settled or not.
    let first = run("2026-07-10T10:00:00+08:00", &[]);
    assert!(first.contains(" of 60 expected"), "{first}");
    assert!(!first.contains("not asked today"), "{first}");

    // Two townships correct January (settled since March 8th).
    let cfg = taizhang::config::Loaded::from_file(&settings).unwrap();
    let p = cfg.def.pipeline("cdpf-monthly").unwrap();
    let january: taizhang::period::Period = "2026-01".parse().unwrap();
    let at = |d: u32| crate::support::at(&format!("2026-07-{d:02}T10:00:00+08:00"));
    let day_of = |t: &str| (11..18).find(|d| p.revisits(t, &january, at(*d))).unwrap();
    let (a, b) = ("341124102", "341124103");
    let (day_a, day_b) = (day_of(a), day_of(b));
    let correct = |t: &str| {
        let mut doc: serde_json::Value = serde_json::from_slice(&portal.get(t, "2026-01").unwrap().body).unwrap();
        doc["version"] = 2.into();
        let values = doc["values"].as_array_mut().unwrap();
        // Every value of the indicator, however the township labels it.
        values.retain(|v| {
            let label = v["indicator"].as_str().unwrap_or_default();
            cfg.def.catalog.resolve(label).map(|i| i.code.as_str()) != Some("cataract_surgery")
        });
        values.push(serde_json::json!({"indicator": "白内障复明手术", "value": 777}));
        portal.set(t, "2026-01", Canned::json(&doc));
    };
    correct(a);
    correct(b);
    let cataract = |t: &str| {
        let df = crate::support::read_year(&dir.path().join("warehouse"), "facts/cataract_surgery", 2026);
        crate::support::total(&df, t, "2026-01")
    };
    let before = (cataract(a), cataract(b));
    assert!(
        before.0.is_some_and(|v| v != 777.0) && before.1.is_some_and(|v| v != 777.0),
        "{before:?}"
    );

    // A day that is neither township's: both corrections wait; the
    // settled months of the other townships are asked for on their days,
    // June (not settled) every day.
    let other = (11..18).find(|d| *d != day_a && *d != day_b).unwrap();
    // The dry run says first what the run will do.
    let plan = run(&format!("2026-07-{other:02}T10:00:00+08:00"), &["--dry-run"]);
    let number_before = |text: &str, marker: &str| -> usize {
        let head = &text[..text.find(marker).unwrap_or_else(|| panic!("{marker:?} in {text}"))];
        head.rsplit(|c: char| !c.is_ascii_digit())
            .find(|w| !w.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    };
    let (would, later) = (
        number_before(&plan, " reports would be fetched"),
        number_before(&plan, " reports of settled periods are asked for on another day"),
    );
    assert_eq!(would + later, 60, "{plan}");
    let s = run(&format!("2026-07-{other:02}T10:00:00+08:00"), &[]);
    assert!(s.contains("not asked today"), "{s}");
    let asked: usize = s
        .split(" of ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((10..60).contains(&asked), "{s}");
    assert_eq!(asked, would, "as the dry run said:\n{plan}\n{s}");
    assert_eq!((cataract(a), cataract(b)), before);
    // The runs table counts what was left: asked for and left add up to
    // every report expected; the first run left none.
    use polars::prelude::SerReader;
    let f = std::fs::File::open(dir.path().join("warehouse/runs/runs.parquet")).unwrap();
    let runs = polars::prelude::ParquetReader::new(f).finish().unwrap();
    let count = |c: &str| -> Vec<Option<i64>> { runs.column(c).unwrap().i64().unwrap().iter().collect() };
    let (planned, left) = (count("planned"), count("not_revisited"));
    assert_eq!(left[0], Some(0));
    assert_eq!(planned[1], Some(asked as i64));
    assert_eq!(left[1].unwrap() + planned[1].unwrap(), 60, "{runs}");

    // Township a's day: its correction is published, b's still waits
    // (when they share the day, both are).
    run(&format!("2026-07-{day_a:02}T10:00:00+08:00"), &[]);
    assert_eq!(cataract(a), Some(777.0));
    if day_b != day_a {
        assert_eq!(cataract(b), before.1);
        // --revisit-all asks for every report now.
        let all = run(&format!("2026-07-{day_a:02}T11:00:00+08:00"), &["--revisit-all"]);
        assert!(all.contains(" of 60 expected"), "{all}");
        assert!(!all.contains("not asked today"), "{all}");
    }
    assert_eq!(cataract(b), Some(777.0));

    // A settled report whose fetch fails on its day is asked for again on
    // the next run, not a week later.
    let c = "341124104";
    let day_c = (18..25).find(|d| p.revisits(c, &january, at(*d))).unwrap();
    assert!(!p.revisits(c, &january, at(day_c + 1)));
    let before_c = cataract(c);
    correct(c);
    let corrected = portal.get(c, "2026-01").unwrap();
    portal.set(c, "2026-01", Canned::status(500, "down"));
    let failed = run_exiting(3, &format!("2026-07-{day_c:02}T10:00:00+08:00"), &[]);
    assert!(failed.contains(" 1 failed)"), "{failed}");
    portal.set(c, "2026-01", corrected);
    assert_eq!(cataract(c), before_c);
    run(&format!("2026-07-{:02}T10:00:00+08:00", day_c + 1), &[]);
    assert_eq!(cataract(c), Some(777.0));
}
