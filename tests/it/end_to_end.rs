//! The whole path on real components: portal on loopback → fetch → land →
//! normalize → check → publish → roll up → alert to a real webhook receiver,
//! then a second run that changes nothing.

use polars::prelude::*;
use serde_json::json;

use taizhang::land::sha256_hex;
use taizhang::run::{RunOptions, run};
use taizhang::simulator::{Canned, faults};

use crate::support::{Demo, at, read_year, rows, snapshot, total};

const CONTRACT_EXAMPLE: &str = r#"{
  "township": "341124102",
  "township_name": "大墅镇",
  "program": "cdpf-monthly",
  "period": "2026-06",
  "submitted_at": "2026-07-04T09:12:00+08:00",
  "version": 1,
  "explanation": null,
  "values": [
    {"indicator": "白内障复明手术", "value": 12},
    {"indicator": "残疾人证核发", "value": 20},
    {"indicator": "残疾人证核发", "dimension": "类别", "category": "视力", "value": 3},
    {"indicator": "重度残疾人护理补贴金额", "value": "4.5万元"}
  ]
}"#;

fn opts(now: &str) -> RunOptions {
    RunOptions::at(at(now))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_run_publishes_checks_rolls_up_alerts_and_reruns_idempotently() {
    let Demo {
        _dir,
        wh,
        cfg,
        portal,
        receiver,
    } = Demo::start().await;
    portal.set(
        "341124102",
        "2026-06",
        Canned::json(&serde_json::from_str(CONTRACT_EXAMPLE).unwrap()),
    );
    // A township whose portal page is broken: fetched, retried, reported.
    portal.set("341124104", "2026-02", Canned::status(500, "internal error"));

    let s = run(&cfg, &opts("2026-07-10T10:00:00+08:00")).await.unwrap();
    // Ten townships × (six months + two quarters of the quarterly program).
    assert_eq!(s.planned, 80);
    assert_eq!((s.fetched, s.not_submitted, s.fetch_failed), (78, 1, 1));
    assert_eq!(s.landed_new, 78);

    // Every body landed unchanged under its sha256.
    let body = portal.get("341124102", "2026-06").unwrap().body;
    let landed = std::fs::read(
        wh.join("raw/sha256")
            .join(&sha256_hex(&body)[..2])
            .join(&sha256_hex(&body)[2..]),
    )
    .unwrap();
    assert_eq!(landed, body);

    // Exact cells from the contract example.
    let cataract = read_year(&wh, "facts/cataract_surgery", 2026);
    assert_eq!(total(&cataract, "341124102", "2026-06"), Some(12.0));
    let care = read_year(&wh, "facts/severe_care_amount", 2026);
    assert_eq!(total(&care, "341124102", "2026-06"), Some(45000.0));
    let certs = read_year(&wh, "facts/certificates_issued", 2026);
    let vision = rows(
        &certs,
        &[("township", "341124102"), ("period", "2026-06"), ("category", "视力")],
    );
    assert_eq!(vision.column("value").unwrap().f64().unwrap().get(0), Some(3.0));
    assert_eq!(vision.column("dimension").unwrap().str().unwrap().get(0), Some("类别"));

    // Traditional characters, township by name only, 万元 amounts: the value
    // read equals recipients × 50 as served.
    let doc: serde_json::Value =
        serde_json::from_slice(&portal.get(faults::TRADITIONAL_WAN_YUAN, "2026-03").unwrap().body).unwrap();
    assert!(doc.get("township").is_none());
    let served = |label: &str| {
        doc["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["indicator"] == label && v.get("category").is_none())
            .unwrap()["value"]
            .clone()
    };
    assert!(served("重度殘疾人護理補貼金額").as_str().unwrap().ends_with("萬元"));
    let recipients = served("重度殘疾人護理補貼人數").as_f64().unwrap();
    assert_eq!(
        total(&care, faults::TRADITIONAL_WAN_YUAN, "2026-03"),
        Some(recipients * 50.0)
    );

    // CSV submissions are read too.
    let csv_rows = rows(&certs, &[("township", faults::CSV)]);
    assert_eq!(csv_rows.height(), 6 * (1 + 7 + 4));

    // Approximations keep the number and the flag.
    let training = read_year(&wh, "facts/basic_rehab", 2026);
    let approx = rows(&training, &[("township", faults::APPROX_MARCH), ("period", "2026-03")])
        .lazy()
        .filter(col("dimension").is_null())
        .collect()
        .unwrap();
    assert_eq!(approx.column("approx").unwrap().bool().unwrap().get(0), Some(true));
    assert!(
        approx
            .column("value_raw")
            .unwrap()
            .str()
            .unwrap()
            .get(0)
            .unwrap()
            .ends_with("多人")
    );

    // The quarantined row, with its reason.
    let q = read_year(&wh, "quarantine", 2026);
    assert_eq!(q.height(), 1, "{q}");
    let q = rows(
        &q,
        &[
            ("township", faults::UNKNOWN_INDICATOR_JUNE),
            ("period", "2026-06"),
            ("indicator_label", faults::UNKNOWN_LABEL),
        ],
    );
    assert!(
        q.column("reason")
            .unwrap()
            .str()
            .unwrap()
            .get(0)
            .unwrap()
            .contains("unknown indicator")
    );

    // Conservation per submission.
    let subs = rows(&read_year(&wh, "submissions", 2026), &[("program", "cdpf-monthly")]);
    assert_eq!(subs.height(), 58);
    let bad = subs
        .clone()
        .lazy()
        .filter(col("values_received").neq(col("values_published") + col("values_quarantined")))
        .collect()
        .unwrap();
    assert_eq!(bad.height(), 0);
    let late = rows(&subs, &[("township", faults::LATE_IN_JUNE), ("period", "2026-06")]);
    assert_eq!(late.column("status").unwrap().str().unwrap().get(0), Some("late"));

    // Checks.
    let checks = read_year(&wh, "check_results", 2026);
    let rule = |r: &str, t: &str, p: &str| rows(&checks, &[("rule", r), ("township", t), ("period", p)]);
    let bd = rule("breakdown", faults::BAD_BREAKDOWN_MAY, "2026-05");
    assert_eq!(bd.height(), 1, "{checks}");
    assert_eq!(bd.column("dimension").unwrap().str().unwrap().get(0), Some("类别"));
    assert_eq!(bd.column("excluded").unwrap().bool().unwrap().get(0), Some(true));
    let diff = bd.column("observed").unwrap().f64().unwrap().get(0).unwrap()
        - bd.column("expected").unwrap().f64().unwrap().get(0).unwrap();
    assert_eq!(diff, 2.0);
    assert_eq!(rule("overdue", faults::NEVER_SUBMITS_JUNE, "2026-06").height(), 1);
    assert_eq!(rule("late", faults::LATE_IN_JUNE, "2026-06").height(), 1);
    let behind = rows(
        &checks,
        &[
            ("rule", "quota_behind"),
            ("township", faults::BEHIND_QUOTA),
            ("indicator", "cataract_surgery"),
        ],
    );
    assert_eq!(behind.height(), 1, "{checks}");
    assert_eq!(
        rows(&checks, &[("rule", "breakdown")]).height(),
        1,
        "only the planted breakdown fault"
    );

    // County rollup: May certificates exclude the inconsistent township.
    let roll = read_year(&wh, "rollup_county", 2026);
    let may = rows(&roll, &[("indicator", "certificates_issued"), ("period", "2026-05")])
        .lazy()
        .filter(col("dimension").is_null())
        .collect()
        .unwrap();
    assert_eq!(may.height(), 1);
    let may_facts = rows(&certs, &[("period", "2026-05")])
        .lazy()
        .filter(
            col("dimension")
                .is_null()
                .and(col("township").neq(lit(faults::BAD_BREAKDOWN_MAY))),
        )
        .collect()
        .unwrap();
    let expected: f64 = may_facts.column("value").unwrap().f64().unwrap().sum().unwrap();
    assert_eq!(may.column("value").unwrap().f64().unwrap().get(0), Some(expected));
    assert_eq!(may.column("townships_excluded").unwrap().i64().unwrap().get(0), Some(1));
    assert_eq!(
        may.column("townships_reporting").unwrap().i64().unwrap().get(0),
        Some(10)
    );
    assert_eq!(
        may.column("townships_expected").unwrap().i64().unwrap().get(0),
        Some(10)
    );
    let june = rows(&roll, &[("indicator", "cataract_surgery"), ("period", "2026-06")])
        .lazy()
        .filter(col("dimension").is_null())
        .collect()
        .unwrap();
    assert_eq!(
        june.column("townships_reporting").unwrap().i64().unwrap().get(0),
        Some(9)
    );
    assert_eq!(june.column("quota").unwrap().f64().unwrap().get(0), Some(240.0));

    // Alerts: one POST carrying the overdue, inconsistent, quarantined and unfetchable reports.
    let posts = receiver.posts();
    assert_eq!(posts.len(), 1);
    let keys: Vec<String> = posts[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_string())
        .collect();
    assert!(
        keys.contains(&"cdpf-monthly/overdue/341124109/2026-06//".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"cdpf-monthly/breakdown/341124102/2026-05/certificates_issued/类别".to_string()),
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.starts_with("cdpf-monthly/quarantined/341124107/2026-06/")),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"cdpf-monthly/fetch_failed/341124104/2026-02".to_string()),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 4, "{keys:?}");
    // Each state change carries the key a receiver deduplicates on.
    for a in posts[0]["alerts"].as_array().unwrap() {
        let (key, first_seen) = (a["key"].as_str().unwrap(), a["first_seen"].as_str().unwrap());
        assert_eq!(a["idempotency_key"], json!(format!("raised:{key}@{first_seen}")));
        assert_eq!(a["program"], json!("cdpf-monthly"));
    }
    assert_eq!(s.alerts_raised.len(), 4);
    let alerts = crate::support::read_table(&wh, "alerts");
    assert_eq!(alerts.height(), 4);

    // Second run on the same inputs: nothing changes, nothing is re-sent.
    let before = snapshot(&wh);
    let again = run(&cfg, &opts("2026-07-10T10:00:00+08:00")).await.unwrap();
    assert_eq!(again.landed_new, 0);
    assert_eq!(s.bodies_parsed, 78, "every body landed was parsed once");
    assert_eq!(again.bodies_parsed, 0, "a rerun with nothing new parses no body");
    assert_eq!(again.publish.written, 0, "{:?}", again.publish);
    assert!(again.publish.unchanged > 0, "nor encodes one: {:?}", again.publish);
    assert!(again.alerts_raised.is_empty());
    assert_eq!(receiver.posts().len(), 1);
    assert_eq!(snapshot(&wh), before);

    // The overdue township submits, the broken page is fixed: alerts resolve,
    // the late June report is used.
    let mut doc =
        taizhang::simulator::demo_submission(&cfg.def.catalog, &cfg.def.quotas, faults::NEVER_SUBMITS_JUNE, 6);
    doc["submitted_at"] = json!("2026-07-12T08:00:00+08:00");
    portal.set(faults::NEVER_SUBMITS_JUNE, "2026-06", Canned::json(&doc));
    portal.set(
        "341124104",
        "2026-02",
        Canned::json(&taizhang::simulator::demo_submission(
            &cfg.def.catalog,
            &cfg.def.quotas,
            "341124104",
            2,
        )),
    );
    // A correction: 襄河镇 resubmits April as version 2 with a new condolence amount.
    let mut v2 = taizhang::simulator::demo_submission(&cfg.def.catalog, &cfg.def.quotas, "341124100", 4);
    v2["version"] = json!(2);
    let money_entry = v2["values"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|v| v["indicator"] == "慰问金")
        .unwrap();
    money_entry["value"] = json!("9.99万元");
    portal.set("341124100", "2026-04", Canned::json(&v2));
    let third = run(&cfg, &opts("2026-07-12T10:00:00+08:00")).await.unwrap();
    assert_eq!(third.landed_new, 3);
    let money = read_year(&wh, "facts/condolence_money", 2026);
    assert_eq!(total(&money, "341124100", "2026-04"), Some(99900.0));
    let landings = read_year(&wh, "landings", 2026);
    assert_eq!(
        landings.height(),
        81,
        "every version stays on record (61 monthly, 20 quarterly)"
    );
    let april = rows(&landings, &[("township", "341124100"), ("period", "2026-04")]);
    assert_eq!(april.height(), 2);
    let current: Vec<Option<i64>> = april
        .clone()
        .lazy()
        .filter(col("current"))
        .collect()
        .unwrap()
        .column("version")
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(current, vec![Some(2)]);
    let history = read_year(&wh, "submission_history", 2026);
    assert_eq!(history.height(), 1, "{history}");
    assert_eq!(
        history.column("indicator").unwrap().str().unwrap().get(0),
        Some("condolence_money")
    );
    assert_eq!(
        history.column("new_value").unwrap().f64().unwrap().get(0),
        Some(99900.0)
    );
    assert_eq!(
        history.column("new_raw").unwrap().str().unwrap().get(0),
        Some("9.99万元")
    );
    assert_eq!(history.column("to_version").unwrap().i64().unwrap().get(0), Some(2));
    assert!(history.column("old_value").unwrap().f64().unwrap().get(0).is_some());
    assert_eq!(third.alerts_resolved, 2);
    assert!(third.alerts_raised.is_empty());
    let roll = read_year(&wh, "rollup_county", 2026);
    let june = rows(&roll, &[("indicator", "cataract_surgery"), ("period", "2026-06")])
        .lazy()
        .filter(col("dimension").is_null())
        .collect()
        .unwrap();
    assert_eq!(
        june.column("townships_reporting").unwrap().i64().unwrap().get(0),
        Some(10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_across_provinces_is_computed_batch_by_batch_and_rolls_up_to_the_nation() {
    let Demo {
        _dir,
        wh,
        mut cfg,
        portal,
        ..
    } = Demo::start().await;
    // 全椒县 (安徽, 34) and 东城区 (北京, 11): two batches.
    let mut t = taizhang::config::embedded_texts();
    t.registry.1 = t
        .registry
        .1
        .replace("counties = [\"341124\"]", "counties = [\"341124\", \"110101\"]");
    let mut wide = taizhang::config::Loaded::from_texts(cfg.settings.clone(), None, &t).unwrap();
    wide.def_mut().pipelines = cfg.def.pipelines.clone();
    cfg = wide;
    let beijing: Vec<String> = cfg
        .def
        .registry
        .townships
        .values()
        .filter(|t| t.county == "110101")
        .map(|t| t.code.clone())
        .collect();
    assert!(beijing.len() > 5);
    for (i, tw) in beijing.iter().enumerate() {
        for month in 1..=6u32 {
            if i == 0 && month == 6 {
                continue; // overdue
            }
            let mut doc = taizhang::simulator::demo_submission(&cfg.def.catalog, &cfg.def.quotas, tw, month);
            doc["township"] = json!(tw);
            doc.as_object_mut().unwrap().remove("township_name");
            portal.set(tw, &format!("2026-{month:02}"), Canned::json(&doc));
        }
    }
    let opts = RunOptions {
        only: vec!["cdpf-monthly".into()],
        ..opts("2026-07-10T10:00:00+08:00")
    };
    let s = run(&cfg, &opts).await.unwrap();
    assert_eq!(s.fetch_failed, 0);

    let files: Vec<String> = std::fs::read_dir(wh.join("current/facts/certificates_issued/year=2026"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    // Each batch (a province's period) wrote its own files.
    let mut batches: Vec<String> = files
        .iter()
        .map(|f| f[..f.len() - "-0123456789abcdef.parquet".len()].to_string())
        .collect();
    batches.sort();
    let months = ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"];
    let expected: Vec<String> = ["11", "34"]
        .iter()
        .flat_map(|p| months.iter().map(move |m| format!("part-cdpf-monthly-{p}-{m}")))
        .collect();
    assert_eq!(batches, expected, "{files:?}");

    // Checks ran per batch, each township once.
    let checks = read_year(&wh, "check_results", 2026);
    let overdue = rows(&checks, &[("rule", "overdue"), ("period", "2026-06")]);
    let mut overdue_townships: Vec<&str> = overdue
        .column("township")
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .flatten()
        .collect();
    overdue_townships.sort();
    assert_eq!(overdue_townships, vec![beijing[0].as_str(), faults::NEVER_SUBMITS_JUNE]);

    // The nation is the sum of its provinces, each with its own townships.
    let cell = |table: &str, filter: &[(&str, &str)]| {
        let mut eq = vec![("indicator", "cataract_surgery"), ("period", "2026-03")];
        eq.extend_from_slice(filter);
        let r = rows(&read_year(&wh, table, 2026), &eq)
            .lazy()
            .filter(col("dimension").is_null())
            .collect()
            .unwrap();
        assert_eq!(r.height(), 1, "{table} {filter:?}");
        (
            r.column("value").unwrap().f64().unwrap().get(0).unwrap(),
            r.column("townships_expected").unwrap().i64().unwrap().get(0).unwrap(),
        )
    };
    let (anhui, beijing_p) = (
        cell("rollup_province", &[("province", "34")]),
        cell("rollup_province", &[("province", "11")]),
    );
    assert_eq!(anhui.1, 10);
    assert_eq!(beijing_p.1, beijing.len() as i64);
    let nation = cell("rollup_nation", &[]);
    assert_eq!(nation, (anhui.0 + beijing_p.0, anhui.1 + beijing_p.1));
    assert_eq!(cell("rollup_county", &[("county", "110101")]), beijing_p);

    // Nothing new: nothing parsed, nothing encoded, all 12 batches carried;
    // a memo of a batch no longer made (a province batch of an earlier
    // version) is forgotten.
    let memos = cfg.settings.paths.state_dir.join("memo/cdpf-monthly");
    std::fs::create_dir_all(memos.join("11")).unwrap();
    std::fs::write(memos.join("11/meta.json"), b"{}").unwrap();
    let again = run(&cfg, &opts).await.unwrap();
    let mut kept: Vec<String> = std::fs::read_dir(&memos)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    kept.sort();
    // A memo per batch, and per period of the program's rollups.
    let mut batches: Vec<String> = expected
        .iter()
        .map(|f| f["part-cdpf-monthly-".len()..].to_string())
        .collect();
    batches.extend(months.iter().map(|m| format!("rollup-{m}")));
    assert_eq!(kept, batches);
    assert_eq!(
        (again.bodies_parsed, again.publish.written, again.batches_carried),
        (0, 0, 12),
        "{:?}",
        again.publish
    );
    // What a carried batch publishes is what computing it publishes: a run
    // that computes every batch finds nothing to change.
    let recompute = |now: &str| RunOptions {
        only: vec!["cdpf-monthly".into()],
        recompute: true,
        ..RunOptions::at(at(now))
    };
    let same = |carried: &taizhang::run::RunSummary, computed: &taizhang::run::RunSummary| {
        assert_eq!(computed.batches_carried, 0);
        assert_eq!(computed.publish.written, 0, "{:?}", computed.publish);
        assert_eq!(computed.snapshot, carried.snapshot);
        assert!(computed.alerts_raised.is_empty(), "{:?}", computed.alerts_raised);
        assert_eq!(computed.alerts_resolved, 0);
        assert_eq!(
            (
                computed.rows_published,
                computed.quarantined,
                computed.submissions,
                computed.check_failures.clone()
            ),
            (
                carried.rows_published,
                carried.quarantined,
                carried.submissions,
                carried.check_failures.clone()
            )
        );
    };
    same(
        &again,
        &run(&cfg, &recompute("2026-07-10T10:00:00+08:00")).await.unwrap(),
    );

    // One township of 北京 resubmits May: its batch is computed, and June's,
    // which looks back at May; the other ten are carried.
    let mut doc = taizhang::simulator::demo_submission(&cfg.def.catalog, &cfg.def.quotas, &beijing[1], 5);
    doc["township"] = json!(beijing[1]);
    doc["version"] = json!(2);
    doc.as_object_mut().unwrap().remove("township_name");
    doc["values"][0]["value"] = json!(777);
    portal.set(&beijing[1], "2026-05", Canned::json(&doc));
    let one = run(&cfg, &opts).await.unwrap();
    assert_eq!((one.landed_new, one.batches_carried), (1, 10));
    same(&one, &run(&cfg, &recompute("2026-07-10T10:00:00+08:00")).await.unwrap());

    // A month later July is overdue everywhere: the clock checks of a
    // carried batch run again (the last of each province's owns July).
    let later = RunOptions {
        only: vec!["cdpf-monthly".into()],
        ..RunOptions::at(at("2026-08-12T10:00:00+08:00"))
    };
    let august = run(&cfg, &later).await.unwrap();
    assert_eq!(august.batches_carried, 12);
    let checks = read_year(&wh, "check_results", 2026);
    let july = rows(&checks, &[("rule", "overdue"), ("period", "2026-07")]);
    assert_eq!(july.height(), cfg.def.registry.townships.len(), "{july}");
    // What the state remembers for the next run: the checks open since July
    // (not written again, their last_seen moved at once) and the new ones
    // alike, as published.
    let remembered = taizhang::state::State::open(&cfg.settings.paths.state_dir)
        .unwrap()
        .check_records("cdpf-monthly")
        .unwrap();
    let aug = at("2026-08-12T10:00:00+08:00");
    let open: Vec<_> = remembered.iter().filter(|r| r.resolved_at.is_none()).collect();
    assert!(open.iter().all(|r| r.last_seen == aug), "{open:?}");
    assert!(open.iter().any(|r| r.first_seen < aug), "some open since July");
    let open_july = open
        .iter()
        .filter(|r| r.rule == "overdue" && r.period == "2026-07")
        .count();
    assert_eq!(open_july, july.height());
    let published_open = checks
        .clone()
        .lazy()
        .filter(col("status").neq(lit("resolved")))
        .collect()
        .unwrap();
    assert_eq!(open.len(), published_open.height());
    same(
        &august,
        &run(&cfg, &recompute("2026-08-12T10:00:00+08:00")).await.unwrap(),
    );

    // A memo that cannot be read is no memo: its batch is computed (the
    // batches after it are computed from the same inputs: carried).
    std::fs::write(memos.join("11-2026-03/checks.parquet"), b"PAR1 not really").unwrap();
    let mended = run(&cfg, &later).await.unwrap();
    assert_eq!(mended.batches_carried, 11);
    same(
        &mended,
        &run(&cfg, &recompute("2026-08-12T10:00:00+08:00")).await.unwrap(),
    );

    // A township of 全椒 resubmits June, with the totals' history May's
    // memo carries to June gone (a memo with it missing is not one without
    // history): it is made again from the province's reports of May and
    // the months before.
    let series = memos.join("34-2026-05/series.parquet");
    assert!(series.exists());
    std::fs::remove_file(&series).unwrap();
    // And the year to date May's rollup carries into June's: made again
    // from the months before.
    std::fs::write(memos.join("rollup-2026-05/carry-0.parquet"), b"PAR1 not really").unwrap();
    // A carried batch's county rows are read only when its period's rollup
    // is computed (June's, with Beijing's June carried); May's of Beijing
    // are not Parquet: that batch is computed.
    std::fs::write(memos.join("11-2026-05/county.parquet"), b"PAR1 not really").unwrap();
    let mut doc = taizhang::simulator::demo_submission(&cfg.def.catalog, &cfg.def.quotas, "341124102", 6);
    doc["township"] = json!("341124102");
    doc["version"] = json!(2);
    doc.as_object_mut().unwrap().remove("township_name");
    doc["values"][0]["value"] = json!(778);
    portal.set("341124102", "2026-06", Canned::json(&doc));
    let june = run(&cfg, &later).await.unwrap();
    assert_eq!((june.landed_new, june.batches_carried), (1, 10));
    // What June carries on, made from May's remade rows, is what it is
    // when every month is computed.
    let carried_on = || {
        let f = std::fs::File::open(memos.join("34-2026-06/series.parquet")).unwrap();
        let rows = ParquetReader::new(f).finish().unwrap();
        let by: Vec<String> = rows.get_column_names().iter().map(|c| c.to_string()).collect();
        rows.sort(by, Default::default()).unwrap()
    };
    let remade = carried_on();
    same(
        &june,
        &run(&cfg, &recompute("2026-08-12T10:00:00+08:00")).await.unwrap(),
    );
    assert!(remade.height() > 0);
    assert!(remade.equals_missing(&carried_on()), "{remade}");
}

/// Every run trims old snapshots, even one with nothing new to publish: a
/// run killed between publishing and trimming, or an operator who lowers
/// `warehouse.keep_snapshots`, leaves no more than the setting keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_trims_old_snapshots_even_with_nothing_to_publish() {
    let Demo { _dir, wh, mut cfg, .. } = Demo::start().await;
    let sealed = || {
        std::fs::read_dir(wh.join("snapshots"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
            .count()
    };
    run(&cfg, &opts("2026-07-10T10:00:00+08:00")).await.unwrap();
    let second = run(&cfg, &opts("2026-07-11T10:00:00+08:00")).await.unwrap();
    // (Runs and their alert deliveries: three kept of the four.)
    let before = sealed();
    assert!(before >= 2, "{before}");
    cfg.settings.warehouse.keep_snapshots = 1;
    let third = run(&cfg, &opts("2026-07-11T10:00:00+08:00")).await.unwrap();
    assert_eq!(third.snapshot, second.snapshot, "nothing new: no snapshot published");
    assert_eq!(sealed(), 1);
    assert_eq!(third.publish.removed, before - 1);
}

/// A run whose memos cannot be written still rolls up what it computed
/// (each batch's county rows kept in memory instead of read back from its
/// memo), publishes exactly what a run with memos publishes, and only
/// costs the next run time: nothing is carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_memos_cannot_be_written_rolls_up_the_same() {
    let Demo { _dir, wh, cfg, .. } = Demo::start().await;
    // The monthly program only (the quarterly one keeps its memos).
    let monthly = || RunOptions {
        only: vec!["cdpf-monthly".into()],
        ..opts("2026-07-10T10:00:00+08:00")
    };
    // A file where the program's memos go: no memo can be kept under it.
    let memos = cfg.settings.paths.state_dir.join("memo");
    std::fs::create_dir_all(&memos).unwrap();
    std::fs::write(memos.join("cdpf-monthly"), b"not a directory").unwrap();
    let blocked = run(&cfg, &monthly()).await.unwrap();
    assert!(blocked.rows_published > 0);
    assert_eq!(blocked.batches_carried, 0);
    let county = read_year(&wh, "rollup_county", 2026);
    assert!(county.height() > 0);
    assert!(memos.join("cdpf-monthly").is_file(), "no memo was written");
    // Nothing to carry from: computed again, the same files.
    let again = run(&cfg, &monthly()).await.unwrap();
    assert_eq!(again.batches_carried, 0);
    assert_eq!(again.publish.written, 0, "{:?}", again.publish);
    // With memos, the rows read back from them make the same rollups.
    std::fs::remove_file(memos.join("cdpf-monthly")).unwrap();
    let kept = run(&cfg, &monthly()).await.unwrap();
    assert_eq!(kept.batches_carried, 0);
    assert_eq!(kept.publish.written, 0, "{:?}", kept.publish);
    assert!(read_year(&wh, "rollup_county", 2026).equals_missing(&county));
    let carried = run(&cfg, &monthly()).await.unwrap();
    assert!(carried.batches_carried > 0);
    assert_eq!(carried.publish.written, 0, "{:?}", carried.publish);
}
