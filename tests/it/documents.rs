//! Work summaries as a source: documents pulled from a portal or an inbox
//! folder, landed unchanged, their confident values published flagged
//! `extracted` and checked like form values, the uncertain ones held in the
//! review queue until a person accepts or rejects them. All through the real
//! binary.

use std::path::{Path, PathBuf};
use std::process::Output;

use polars::prelude::*;
use taizhang::simulator::{Canned, Portal};

use crate::prose::docx;
use crate::support::{bin, copy_config, read_table, rows};

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const NOW: &str = "2026-07-20";

/// The shipped configuration with its form programs replaced by one
/// half-yearly program of work summaries, fetched as `source` says.
fn summary_deployment(dir: &Path, source: &str) -> PathBuf {
    copy_config(dir);
    for e in std::fs::read_dir(dir.join("pipelines")).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    std::fs::write(
        dir.join("pipelines/cdpf-summary.toml"),
        format!(
            r#"name = "cdpf-summary"
title = "半年工作总结"
period_type = "half_yearly"
start_period = "2026-H1"
deadline_days = 15
source_kind = "document"
{source}
schedule = "0 0 3 * * *"

[[checks]]
kind = "breakdown"
severity = "error"
"#
        ),
    )
    .unwrap();
    dir.join("config/taizhang.toml")
}

fn taizhang(args: &[&str], config: &Path) -> Output {
    bin().args(args).arg("--config").arg(config).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn run(config: &Path) -> Output {
    let config = config.to_path_buf();
    tokio::task::spawn_blocking(move || taizhang(&["run", "--now", NOW], &config))
        .await
        .unwrap()
}

fn strs(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or("∅").to_string())
        .collect()
}

fn ints(df: &DataFrame, c: &str) -> Vec<i64> {
    df.column(c)
        .unwrap()
        .i64()
        .unwrap()
        .iter()
        .map(|v| v.unwrap_or(-1))
        .collect()
}

/// The extraction row of one indicator and value in one township.
fn extraction(wh: &Path, township: &str, indicator: &str, value: f64) -> (String, String, String) {
    let x = rows(
        &read_table(wh, "extractions"),
        &[("township", township), ("indicator", indicator)],
    )
    .lazy()
    .filter(col("value").eq(lit(value)))
    .collect()
    .unwrap();
    assert_eq!(x.height(), 1, "{township} {indicator} {value}: {x}");
    (
        strs(&x, "review_id")[0].clone(),
        strs(&x, "status")[0].clone(),
        strs(&x, "rule")[0].clone(),
    )
}

fn facts_of(wh: &Path, indicator: &str, township: &str) -> DataFrame {
    match taizhang::inspect::read_table(wh, &format!("facts/{indicator}")) {
        Ok(df) => rows(&df, &[("township", township)]),
        Err(_) => DataFrame::empty(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_from_a_portal_are_published_checked_and_reviewed() {
    let dir = tempfile::tempdir().unwrap();
    let portal = Portal::default();
    let addr = portal.clone().serve(([127, 0, 0, 1], 0).into()).await.unwrap();
    let config = summary_deployment(
        dir.path(),
        &format!("source_url = \"http://{addr}/reports/{{township}}/{{period}}\""),
    );
    let wh = dir.path().join("warehouse");
    // 大墅镇: a Word document, traditional characters, a breakdown that adds
    // up, a product that does not (8 × 300 ≠ 2500), a quota, a phone number.
    let good = docx(&[
        &["一、上半年工作情況"],
        &[
            "截止6月底,辦理殘疾證1012人,其中:視力殘疾121人、聽力殘疾128人、",
            "言語殘疾37人、肢體殘疾630人、智力殘疾74人、精神殘疾22人。",
        ],
        &["完成白內障復明手術30例,經辦人13812345678,發放輪椅9輛。"],
        &["春節期間共慰問困難殘疾人8戶,每戶300元,共計發放慰問金2500元。"],
        &["今年實施殘疾人家庭無障礙改造任務30戶。"],
    ]);
    portal.set("341124102", "2026-H1", Canned::bytes(&good, DOCX));
    // 二郎口镇: GB18030 text whose breakdown exceeds its total.
    let (gbk, _, _) =
        encoding_rs::GB18030.encode("上半年為殘疾人辦理殘疾證100人,其中視力殘疾30人、聽力殘疾20人、肢體殘疾60人。\n");
    portal.set("341124103", "2026-H1", Canned::bytes(&gbk, "text/plain"));
    // Hostile or careless townships: bytes that are no text, a zip that is
    // no Word document, a web page.
    portal.set(
        "341124104",
        "2026-H1",
        Canned::bytes(b"\x80\x81\xfe\x00\x00garbage", "text/plain"),
    );
    portal.set(
        "341124105",
        "2026-H1",
        Canned::bytes(b"PK\x03\x04 not a zip at all", DOCX),
    );
    portal.set(
        "341124106",
        "2026-H1",
        Canned::bytes("<html>完成白内障复明手术3例</html>".as_bytes(), "text/html"),
    );
    portal.set(
        "341124107",
        "2026-H1",
        Canned::bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "application/pdf"),
    );

    let out = run(&config).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("review queue        2 values read from documents wait"),
        "{}",
        text(&out)
    );

    // Confident values are facts like any other, flagged extracted, with
    // the value as written and the document's sha256.
    let certs = facts_of(&wh, "certificates_issued", "341124102");
    assert_eq!(certs.height(), 7, "the total and six categories: {certs}");
    assert!(
        certs
            .column("extracted")
            .unwrap()
            .bool()
            .unwrap()
            .iter()
            .all(|e| e == Some(true))
    );
    let total = certs
        .clone()
        .lazy()
        .filter(col("dimension").is_null())
        .collect()
        .unwrap();
    assert_eq!(total.column("value").unwrap().f64().unwrap().get(0), Some(1012.0));
    assert_eq!(strs(&total, "value_raw"), ["1012人"]);
    assert_eq!(strs(&total, "source_sha256"), [taizhang::land::sha256_hex(&good)]);
    assert_eq!(facts_of(&wh, "wheelchairs", "341124102").height(), 1);
    // The product that does not hold waits for a person; the quota is no fact.
    assert_eq!(facts_of(&wh, "condolence_money", "341124102").height(), 0);
    assert_eq!(facts_of(&wh, "accessibility_renovation", "341124102").height(), 0);
    let (money, status, rule) = extraction(&wh, "341124102", "condolence_money", 2500.0);
    assert_eq!(status, "review");
    assert!(rule.contains("arithmetic: 8 × 300 = 2400, not 2500"), "{rule}");
    let (visits, status, _) = extraction(&wh, "341124102", "condolence_visits", 8.0);
    assert_eq!(status, "review");
    assert_eq!(
        extraction(&wh, "341124102", "accessibility_renovation", 30.0).1,
        "quota"
    );
    let (wheelchairs, status, _) = extraction(&wh, "341124102", "wheelchairs", 9.0);
    assert_eq!(status, "published");

    // The same checks as forms: 二郎口镇's categories exceed its total.
    let checks = rows(
        &read_table(&wh, "check_results"),
        &[("township", "341124103"), ("rule", "breakdown")],
    );
    assert_eq!(checks.height(), 1, "{checks}");
    // What is no document is quarantined whole with the reason; the run went on.
    let q = read_table(&wh, "quarantine");
    let reason = |t: &str| strs(&rows(&q, &[("township", t)]), "reason").join(" | ");
    assert!(
        reason("341124104").contains("binary data, not text"),
        "{}",
        reason("341124104")
    );
    assert!(
        reason("341124105").contains("not a readable .docx"),
        "{}",
        reason("341124105")
    );
    assert!(reason("341124106").contains("text/html"), "{}", reason("341124106"));
    assert!(
        reason("341124107").contains("application/pdf"),
        "{}",
        reason("341124107")
    );
    assert!(
        reason("341124107").contains("a PDF document"),
        "{}",
        reason("341124107")
    );
    // Conservation, with the values in review.
    let subs = rows(&read_table(&wh, "submissions"), &[("township", "341124102")]);
    assert_eq!(strs(&subs, "format"), ["docx"]);
    let n = |c: &str| ints(&subs, c)[0];
    assert_eq!(n("values_in_review"), 2);
    assert_eq!(
        n("values_received"),
        n("values_published") + n("values_quarantined") + n("values_in_review")
    );
    let received_before = n("values_received");
    // No personal number reaches a published table in clear.
    for (path, bytes) in crate::support::snapshot(&wh) {
        assert!(
            !bytes.windows(11).any(|w| w == b"13812345678"),
            "a phone number in clear in {path}"
        );
    }

    // The queue, for people and for tools.
    let list = taizhang(&["review"], &config);
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(listed.contains(&money) && listed.contains(&visits), "{listed}");
    assert!(listed.contains("大墅镇(341124102) 2026-H1"), "{listed}");
    assert!(!listed.contains(&wheelchairs), "published values do not wait: {listed}");
    let json = taizhang(&["review", "--json"], &config);
    let items: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i["status"] == "review" && i["decided"].is_null()));

    // A careless operator: unknown ids and accepting what is published are refused.
    let unknown = taizhang(&["review", "accept", "0123456789ab"], &config);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("no value read from a document has id"),
        "{}",
        text(&unknown)
    );
    let again = taizhang(&["review", "accept", &wheelchairs], &config);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    // Decisions: accept the amount, reject the count and a published value.
    let accept = taizhang(&["review", "accept", &money], &config);
    assert!(accept.status.success(), "{}", text(&accept));
    assert!(text(&accept).contains("the next run publishes it"), "{}", text(&accept));
    let reject = bin()
        .args([
            "review",
            "reject",
            &visits,
            &wheelchairs,
            "--note",
            "户数有误",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(reject.status.success(), "{}", text(&reject));
    let pending = String::from_utf8_lossy(&taizhang(&["review"], &config).stdout).to_string();
    assert!(pending.contains("accepted; the next run publishes it"), "{pending}");

    let out = run(&config).await;
    assert!(out.status.success(), "{}", text(&out));
    let money_facts = facts_of(&wh, "condolence_money", "341124102");
    assert_eq!(money_facts.column("value").unwrap().f64().unwrap().get(0), Some(2500.0));
    assert_eq!(
        money_facts.column("extracted").unwrap().bool().unwrap().get(0),
        Some(true)
    );
    assert_eq!(
        facts_of(&wh, "wheelchairs", "341124102").height(),
        0,
        "rejected after publication"
    );
    assert_eq!(facts_of(&wh, "condolence_visits", "341124102").height(), 0);
    let q = rows(&read_table(&wh, "quarantine"), &[("township", "341124102")]);
    let reasons = strs(&q, "reason");
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.starts_with("rejected in review (") && r.ends_with("): 户数有误"))
            .count(),
        2,
        "{reasons:?}"
    );
    assert_eq!(extraction(&wh, "341124102", "condolence_money", 2500.0).1, "accepted");
    assert_eq!(extraction(&wh, "341124102", "wheelchairs", 9.0).1, "rejected");
    let subs = rows(&read_table(&wh, "submissions"), &[("township", "341124102")]);
    let n = |c: &str| ints(&subs, c)[0];
    assert_eq!(n("values_in_review"), 0);
    assert_eq!(n("values_received"), received_before);
    assert_eq!(
        n("values_received"),
        n("values_published") + n("values_quarantined"),
        "conservation after the decisions"
    );
    let empty = taizhang(&["review"], &config);
    assert!(text(&empty).contains("nothing waits for review"), "{}", text(&empty));

    // explain shows where each value stands and what became of it.
    let explain = bin()
        .args(["explain", "--township", "大墅镇", "--period", "2026-H1", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let e = text(&explain);
    assert!(explain.status.success(), "{e}");
    assert!(e.contains("format    docx"), "{e}");
    assert!(e.contains("(extracted)"), "{e}");
    assert!(e.contains("quota stated: 无障碍改造 = 30"), "{e}");
    assert!(e.contains("rejected in review"), "{e}");
    assert!(!e.contains("13812345678"), "{e}");

    // A rerun with nothing new and no new decision changes nothing.
    let before = crate::support::snapshot(&wh);
    let out = run(&config).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(crate::support::snapshot(&wh), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_dropped_in_an_inbox_folder_are_landed_like_fetched_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = summary_deployment(dir.path(), "inbox_dir = \"../inbox\"");
    let wh = dir.path().join("warehouse");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("大墅鎮_2026-H1.txt"), "上半年完成白内障复明手术30例。\n").unwrap();
    std::fs::write(inbox.join("341124103_2026-H1.docx"), docx(&[&["發放輪椅12輛。"]])).unwrap();
    std::fs::write(inbox.join("无此镇_2026-H1.txt"), "完成白内障复明手术1例。").unwrap();
    std::fs::write(inbox.join("大墅镇_2026-13.txt"), "完成白内障复明手术1例。").unwrap();
    std::fs::write(inbox.join("~$大墅镇_2026-H1.docx"), "lock").unwrap();
    std::fs::write(inbox.join("武岗镇_2026-H1.txt"), "完成白内障复明手术2例。".repeat(200)).unwrap();

    let out = bin()
        .args(["run", "--now", NOW, "--config"])
        .arg(&config)
        .env("TAIZHANG_HTTP__MAX_BODY_BYTES", "2000")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("inbox               not read: cdpf-summary: 无此镇_2026-H1.txt"),
        "{said}"
    );
    assert!(said.contains("大墅镇_2026-13.txt"), "{said}");
    assert!(!said.contains("~$"), "Office lock files are no reports: {said}");
    let cataract = facts_of(&wh, "cataract_surgery", "341124102");
    assert_eq!(cataract.column("value").unwrap().f64().unwrap().get(0), Some(30.0));
    let wheelchairs = facts_of(&wh, "wheelchairs", "341124103");
    assert_eq!(wheelchairs.column("value").unwrap().f64().unwrap().get(0), Some(12.0));
    // Landed unchanged, from where it was read.
    let landings = rows(&read_table(&wh, "landings"), &[("township", "341124102")]);
    let url = strs(&landings, "url")[0].clone();
    assert!(
        url.starts_with("file://") && url.ends_with("大墅鎮_2026-H1.txt"),
        "{url}"
    );
    let sha = strs(&landings, "source_sha256")[0].clone();
    let raw = std::fs::read(wh.join("raw/sha256").join(&sha[..2]).join(&sha[2..])).unwrap();
    assert_eq!(raw, "上半年完成白内障复明手术30例。\n".as_bytes());
    // Over the body limit: landed up to it and quarantined with the reason.
    let q = rows(&read_table(&wh, "quarantine"), &[("township", "341124104")]);
    assert!(strs(&q, "reason")[0].contains("larger than the 2000-byte limit"), "{q}");

    // Nothing new: nothing parsed. A changed file is a new version.
    let run = || {
        bin()
            .args(["run", "--now", NOW, "--config"])
            .arg(&config)
            .env("TAIZHANG_HTTP__MAX_BODY_BYTES", "2000")
            .output()
            .unwrap()
    };
    let again = run();
    assert!(text(&again).contains("bodies parsed       0"), "{}", text(&again));
    std::fs::write(inbox.join("大墅鎮_2026-H1.txt"), "上半年完成白内障复明手术31例。\n").unwrap();
    let changed = run();
    assert!(changed.status.success(), "{}", text(&changed));
    let cataract = facts_of(&wh, "cataract_surgery", "341124102");
    assert_eq!(cataract.column("value").unwrap().f64().unwrap().get(0), Some(31.0));
    let history = rows(&read_table(&wh, "submission_history"), &[("township", "341124102")]);
    assert_eq!(history.height(), 1, "{history}");
}

#[test]
fn a_pipeline_needs_exactly_one_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = summary_deployment(
        dir.path(),
        "source_url = \"http://127.0.0.1:9/{township}/{period}\"\ninbox_dir = \"../inbox\"",
    );
    let out = taizhang(&["validate"], &config);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("inbox_dir: a pipeline has either source_url"),
        "{}",
        text(&out)
    );
    let config = summary_deployment(dir.path(), "");
    let out = taizhang(&["validate"], &config);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("source_url: missing"), "{}", text(&out));
    let config = summary_deployment(dir.path(), "inbox_dir = \"../inbox\"");
    let file = dir.path().join("pipelines/cdpf-summary.toml");
    let t = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, t.replace("source_kind = \"document\"", "source_kind = \"pdf\"")).unwrap();
    let out = taizhang(&["validate"], &config);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("line 6: unknown variant `pdf`, expected `submission` or `document`"),
        "{}",
        text(&out)
    );
}
