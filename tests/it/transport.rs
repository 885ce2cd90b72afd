//! Bodies that do not arrive whole, or are not reports at all, over a real
//! loopback portal: a body over `http.max_body_bytes`, a transfer cut off on
//! every attempt, a report served as an HTML page. Each is landed as received,
//! quarantined whole with its reason and alerted; every other township is
//! published; the next good fetch replaces it.

use polars::prelude::*;
use serde_json::json;

use taizhang::land::sha256_hex;
use taizhang::run::{RunOptions, run};
use taizhang::simulator::{Canned, Listing};

use crate::support::{Demo, at, read_year, rows, total};

fn report(township: &str, explanation: &str) -> serde_json::Value {
    json!({
        "township": township,
        "program": "cdpf-monthly",
        "period": "2026-06",
        "submitted_at": "2026-07-04T09:12:00+08:00",
        "version": 1,
        "explanation": explanation,
        "values": [{"indicator": "白内障复明手术", "value": 12}]
    })
}

/// The published `last_fetched_at` of a township's landing of a period
/// (microseconds).
fn last_fetched_at(wh: &std::path::Path, township: &str, period: &str) -> Option<i64> {
    let landings = rows(
        &read_year(wh, "landings", 2026),
        &[("township", township), ("period", period)],
    );
    let last = landings
        .column("last_fetched_at")
        .unwrap()
        .cast(&DataType::Int64)
        .unwrap();
    last.i64().unwrap().get(0)
}

fn text(df: &DataFrame, c: &str) -> String {
    df.column(c).unwrap().str().unwrap().get(0).unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_cut_off_and_mistyped_bodies_are_landed_quarantined_and_alerted() {
    let Demo {
        _dir,
        wh,
        mut cfg,
        portal,
        receiver,
    } = Demo::start().await;
    cfg.settings.http.max_body_bytes = 64 * 1024;

    let huge = Canned::json(&report("341124102", &"很长的说明。".repeat(10_000)));
    assert!(huge.body.len() > 64 * 1024);
    portal.set("341124102", "2026-06", huge.clone());
    let cut = Canned::json(&report("341124103", "")).cut_off_after(100);
    portal.set("341124103", "2026-06", cut.clone());
    let html = Canned::json(&report("341124104", "")).served_as("text/html; charset=utf-8");
    portal.set("341124104", "2026-06", html);

    let s = run(&cfg, &RunOptions::at(at("2026-07-10T10:00:00+08:00")))
        .await
        .unwrap();
    assert_eq!(s.fetch_failed, 0, "all three were received, in part or whole");

    // Landed as received: the first 64 KiB, the first 100 bytes.
    let landings = read_year(&wh, "landings", 2026);
    let landing = |t: &str| rows(&landings, &[("township", t), ("period", "2026-06")]);
    let big = landing("341124102");
    assert_eq!(big.column("bytes").unwrap().i64().unwrap().get(0), Some(64 * 1024));
    assert!(
        text(&big, "defect").contains("larger than the 65536-byte limit"),
        "{big}"
    );
    let raw = |body: &[u8]| {
        let h = sha256_hex(body);
        std::fs::read(wh.join("raw/sha256").join(&h[..2]).join(&h[2..])).unwrap()
    };
    assert_eq!(raw(&huge.body[..64 * 1024]), &huge.body[..64 * 1024]);
    let short = landing("341124103");
    assert!(
        text(&short, "defect").starts_with("body cut off after 100 of"),
        "{short}"
    );
    assert_eq!(raw(&cut.body[..100]), &cut.body[..100]);
    assert!(
        landing("341124104").column("defect").unwrap().is_null().get(0) == Some(true),
        "a mistyped body arrived whole"
    );

    // Quarantined whole, each with its reason; nothing published for them.
    let q = read_year(&wh, "quarantine", 2026);
    let reason = |t: &str| text(&rows(&q, &[("township", t), ("period", "2026-06")]), "reason");
    assert!(reason("341124102").contains("larger than the 65536-byte limit"));
    assert!(reason("341124103").contains("cut off after 100"));
    assert!(reason("341124104").contains("served as \"text/html"));
    let cataract = read_year(&wh, "facts/cataract_surgery", 2026);
    for t in ["341124102", "341124103", "341124104"] {
        assert_eq!(
            rows(&cataract, &[("township", t), ("period", "2026-06")]).height(),
            0,
            "{t}"
        );
    }
    // Every other township's June is published.
    assert!(total(&cataract, "341124105", "2026-06").is_some());
    let subs = read_year(&wh, "submissions", 2026);
    for t in ["341124102", "341124103", "341124104"] {
        let sub = rows(&subs, &[("township", t), ("period", "2026-06")]);
        assert_eq!(text(&sub, "status"), "quarantined", "{t}");
    }

    // Alerted, in words county staff can act on.
    let posts = receiver.posts();
    let messages: Vec<String> = posts
        .iter()
        .flat_map(|p| p["alerts"].as_array().unwrap().clone())
        .filter(|a| a["kind"] == "quarantined")
        .map(|a| format!("{} {}", a["township"], a["message"]))
        .collect();
    for (t, says) in [
        ("341124102", "整份隔离"),
        ("341124103", "cut off"),
        ("341124104", "text/html"),
    ] {
        assert!(
            messages.iter().any(|m| m.contains(t) && m.contains(says)),
            "{t}: {messages:#?}"
        );
    }

    // The townships send again, properly: the good versions count, the
    // defective bodies stay in the landing area.
    for t in ["341124102", "341124103", "341124104"] {
        portal.set(t, "2026-06", Canned::json(&report(t, "重新上报")));
    }
    run(&cfg, &RunOptions::at(at("2026-07-11T10:00:00+08:00")))
        .await
        .unwrap();
    let cataract = read_year(&wh, "facts/cataract_surgery", 2026);
    let landings = read_year(&wh, "landings", 2026);
    for t in ["341124102", "341124103", "341124104"] {
        assert_eq!(total(&cataract, t, "2026-06"), Some(12.0), "{t}");
        assert_eq!(rows(&landings, &[("township", t), ("period", "2026-06")]).height(), 2);
    }
    let q = read_year(&wh, "quarantine", 2026);
    assert_eq!(
        rows(&q, &[("period", "2026-06"), ("township", "341124102")]).height(),
        0
    );
}

/// A township that answers with a redirect to another origin cannot make the
/// county server fetch there, nor have that body published as its report:
/// the fetch fails at once (no retries), is recorded and alerted with where it
/// pointed. A redirect within the configured origin is followed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_only_within_the_configured_origin() {
    let Demo {
        _dir,
        wh,
        cfg,
        portal,
        receiver,
    } = Demo::start().await;
    let elsewhere = taizhang::simulator::Portal::default();
    elsewhere.set("341124102", "2026-06", Canned::json(&report("341124102", "")));
    let other = elsewhere
        .clone()
        .serve(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    portal.set(
        "341124102",
        "2026-06",
        Canned::redirect(&format!("http://{other}/reports/341124102/2026-06")),
    );
    portal.set("341124103", "2026-06-moved", Canned::json(&report("341124103", "")));
    portal.set(
        "341124103",
        "2026-06",
        Canned::redirect("/reports/341124103/2026-06-moved"),
    );

    let s = run(&cfg, &RunOptions::at(at("2026-07-10T10:00:00+08:00")))
        .await
        .unwrap();
    assert_eq!(s.fetch_failed, 1);
    assert_eq!(elsewhere.hits(), 0, "the other origin was never asked");
    let cataract = read_year(&wh, "facts/cataract_surgery", 2026);
    assert_eq!(
        rows(&cataract, &[("township", "341124102"), ("period", "2026-06")]).height(),
        0
    );
    assert_eq!(total(&cataract, "341124103", "2026-06"), Some(12.0));
    let alerts: Vec<serde_json::Value> = receiver
        .posts()
        .iter()
        .flat_map(|p| p["alerts"].as_array().unwrap().clone())
        .filter(|a| a["kind"] == "fetch_failed" && a["township"] == "341124102")
        .collect();
    let message = alerts[0]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("redirected to http://{other}, outside the configured origin")),
        "{message}"
    );
}

/// A portal that accepts connections and answers too slowly: each township
/// is given up after its budget over all attempts, recorded and alerted as
/// such, instead of holding its slot through every retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_township_is_given_up_after_its_budget_over_all_attempts() {
    let Demo {
        _dir,
        mut cfg,
        portal,
        receiver,
        ..
    } = Demo::start().await;
    portal.set_delay(std::time::Duration::from_secs(30));
    cfg.settings.http.timeout_secs = 20;
    cfg.settings.http.retries = 5;
    cfg.settings.http.township_budget_secs = 1;
    let s = run(&cfg, &RunOptions::at(at("2026-07-10T10:00:00+08:00")))
        .await
        .unwrap();
    assert_eq!(s.fetch_failed, s.planned, "every report was given up");
    let messages: Vec<String> = receiver
        .posts()
        .iter()
        .flat_map(|p| p["alerts"].as_array().unwrap().clone())
        .filter(|a| a["kind"] == "fetch_failed")
        .map(|a| a["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(messages.len(), s.planned, "{messages:#?}");
    assert!(
        messages
            .iter()
            .all(|m| m.contains("no report within the township's budget of 1 s over all attempts")),
        "{messages:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_report_is_asked_for_with_its_validators_and_not_downloaded_again() {
    let Demo {
        _dir, wh, cfg, portal, ..
    } = Demo::start().await;
    portal.set_validators(true);
    let opts = RunOptions::at(at("2026-07-10T02:00:00Z"));
    let first = run(&cfg, &opts).await.unwrap();
    assert_eq!((first.fetched, first.not_modified), (79, 0));
    assert_eq!(portal.not_modified(), 0);

    // Nothing changed: every report answers 304, nothing is downloaded or parsed.
    let later = RunOptions::at(at("2026-07-11T02:00:00Z"));
    let again = run(&cfg, &later).await.unwrap();
    assert_eq!((again.fetched, again.not_modified, again.bodies_parsed), (0, 79, 0));
    assert_eq!(portal.not_modified(), 79);
    // Seen again: the landing's last fetch moved.
    assert_eq!(
        last_fetched_at(&wh, "341124102", "2026-06"),
        Some(at("2026-07-11T02:00:00Z").timestamp_micros())
    );

    // One township corrects its report: only that one is downloaded.
    portal.set("341124102", "2026-06", Canned::json(&report("341124102", "")));
    let third = run(&cfg, &RunOptions::at(at("2026-07-12T02:00:00Z"))).await.unwrap();
    assert_eq!((third.fetched, third.not_modified, third.bodies_parsed), (1, 78, 1));
    let facts = read_year(&wh, "facts/cataract_surgery", 2026);
    assert_eq!(total(&facts, "341124102", "2026-06"), Some(12.0));
    // And back to the first version: fetched whole (its validators changed), current again.
    let hits = portal.not_modified();
    portal.set_validators(false);
    let fourth = run(&cfg, &RunOptions::at(at("2026-07-13T02:00:00Z"))).await.unwrap();
    assert_eq!(
        fourth.not_modified, 0,
        "a portal without validators is downloaded whole"
    );
    assert_eq!(portal.not_modified(), hits);
}

/// Every program of the demo with `listing_url`: the portal's `/listings/{period}`.
fn with_listings(mut cfg: taizhang::config::Loaded) -> taizhang::config::Loaded {
    let mut def = (*cfg.def).clone();
    for p in &mut def.pipelines {
        p.listing_url = p
            .source_url
            .as_ref()
            .map(|u| u.replace("/reports/{township}/{period}", "/listings/{period}"));
        assert!(
            p.listing_url
                .as_ref()
                .is_some_and(|u| u.ends_with("/listings/{period}"))
        );
    }
    cfg.def = std::sync::Arc::new(def);
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portals_listing_spares_the_requests_for_the_reports_it_shows_unchanged() {
    for kind in [Listing::Etags, Listing::TimesAndSizes] {
        let Demo {
            _dir, wh, cfg, portal, ..
        } = Demo::start().await;
        let cfg = with_listings(cfg);
        portal.set_validators(true);
        portal.set_listing(Some(kind));
        // Nothing landed yet, nothing a listing could show: no listing is asked for.
        let first = run(&cfg, &RunOptions::at(at("2026-07-10T02:00:00Z"))).await.unwrap();
        assert_eq!((first.fetched, first.listed), (79, 0), "{kind:?}");
        assert_eq!(portal.listings_served(), 0, "{kind:?}");

        // Nothing changed: eight listings (six months, two quarters) answer
        // for the 79 reports; only the one never submitted is asked for.
        let hits = portal.hits();
        let again = run(&cfg, &RunOptions::at(at("2026-07-11T02:00:00Z"))).await.unwrap();
        assert_eq!(
            (again.fetched, again.not_modified, again.listed, again.bodies_parsed),
            (0, 79, 79, 0),
            "{kind:?}"
        );
        assert_eq!(
            (
                portal.hits() - hits,
                portal.listings_served(),
                again.listings_read,
                again.listings_failed
            ),
            (1, 8, 8, 0),
            "{kind:?}"
        );
        // Seen again, as with a 304: the landing's last fetch moved.
        assert_eq!(
            last_fetched_at(&wh, "341124102", "2026-06"),
            Some(at("2026-07-11T02:00:00Z").timestamp_micros()),
            "{kind:?}"
        );

        // The same bytes served anew, with a new modification time: the
        // ETag shows them unchanged; time and size do not, and the report
        // is asked for (a 304: its ETag is the same).
        let same = portal.get("341124102", "2026-06").unwrap();
        portal.set("341124102", "2026-06", same);
        let hits = portal.hits();
        let third = run(&cfg, &RunOptions::at(at("2026-07-12T02:00:00Z"))).await.unwrap();
        let asked = match kind {
            Listing::Etags => (79, 1),
            _ => (78, 2),
        };
        assert_eq!((third.listed, portal.hits() - hits), asked, "{kind:?}");
        assert_eq!((third.fetched, third.not_modified), (0, 79), "{kind:?}");

        // A correction is downloaded and parsed, whatever the listing gives.
        portal.set("341124102", "2026-06", Canned::json(&report("341124102", "")));
        let fourth = run(&cfg, &RunOptions::at(at("2026-07-13T02:00:00Z"))).await.unwrap();
        assert_eq!(
            (fourth.fetched, fourth.listed, fourth.bodies_parsed),
            (1, 78, 1),
            "{kind:?}"
        );
        let facts = read_year(&wh, "facts/cataract_surgery", 2026);
        assert_eq!(total(&facts, "341124102", "2026-06"), Some(12.0), "{kind:?}");
    }
}

/// Whether `table` of the state store at `db` is kept in its key's order
/// (`WITHOUT ROWID`).
fn without_rowid(db: &rusqlite::Connection, table: &str) -> bool {
    let sql: String = db
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap();
    sql.to_uppercase().contains("WITHOUT ROWID")
}

/// The state's landings' columns.
const LANDINGS: &str = "pipeline, township, period, sha256, url, bytes, content_type, version, submitted_at, \
                        first_fetched_at, last_fetched_at, defect";

/// SQL making the state's `landings` again as an earlier version kept
/// them (`shape`: "" or "WITHOUT ROWID"), their rows copied in `order`.
fn landings_made_again(shape: &str, order: &str) -> String {
    format!(
        "CREATE TABLE landings_again (
           pipeline TEXT NOT NULL, township TEXT NOT NULL, period TEXT NOT NULL, sha256 TEXT NOT NULL,
           url TEXT NOT NULL, bytes INTEGER NOT NULL, content_type TEXT, version INTEGER, submitted_at TEXT,
           first_fetched_at TEXT NOT NULL, last_fetched_at TEXT NOT NULL, defect TEXT,
           PRIMARY KEY (pipeline, township, period, sha256)) {shape};
         INSERT INTO landings_again SELECT {LANDINGS} FROM landings {order};
         DROP TABLE landings; ALTER TABLE landings_again RENAME TO landings;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_schema_3_keeps_its_landings_and_validators_and_its_listings_still_answer() {
    let Demo {
        _dir, wh, cfg, portal, ..
    } = Demo::start().await;
    let cfg = with_listings(cfg);
    portal.set_validators(true);
    portal.set_listing(Some(Listing::TimesAndSizes));
    let first = run(&cfg, &RunOptions::at(at("2026-07-10T02:00:00Z"))).await.unwrap();
    assert_eq!(first.fetched, 79);

    // The store as schema 3 kept it: landings and validators in the order
    // they were written, the validators without their body's length.
    let path = cfg.settings.paths.state_dir.join("taizhang.sqlite");
    let db = rusqlite::Connection::open(&path).unwrap();
    assert!(!without_rowid(&db, "landings") && without_rowid(&db, "validators"));
    let read_landings = |db: &rusqlite::Connection| -> Vec<Vec<String>> {
        let mut st = db
            .prepare(&format!(
                "SELECT {LANDINGS} FROM landings ORDER BY township, period, sha256"
            ))
            .unwrap();
        st.query_map([], |r| {
            (0..12)
                .map(|i| r.get::<_, Option<rusqlite::types::Value>>(i).map(|v| format!("{v:?}")))
                .collect()
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    };
    let before = read_landings(&db);
    assert_eq!(before.len(), 79);
    db.execute_batch(&format!(
        "BEGIN; {}
         CREATE TABLE v3 (
           pipeline TEXT NOT NULL, township TEXT NOT NULL, period TEXT NOT NULL,
           etag TEXT, last_modified TEXT, sha256 TEXT NOT NULL, PRIMARY KEY (pipeline, township, period));
         INSERT INTO v3 SELECT pipeline, township, period, etag, last_modified, sha256 FROM validators
           ORDER BY township DESC;
         DROP TABLE validators; ALTER TABLE v3 RENAME TO validators;
         PRAGMA user_version = 3; COMMIT;",
        landings_made_again("", "ORDER BY last_fetched_at DESC, township DESC")
    ))
    .unwrap();
    assert!(!without_rowid(&db, "landings") && !without_rowid(&db, "validators"));
    let validators = db
        .query_row("SELECT count(*) FROM validators", [], |r| r.get::<_, i64>(0))
        .unwrap();
    assert_eq!(validators, 79);
    drop(db);

    // The next run upgrades the store first; its listings still show every
    // report unchanged by time and size (the size kept with the validators).
    let again = run(&cfg, &RunOptions::at(at("2026-07-11T02:00:00Z"))).await.unwrap();
    assert_eq!(
        (again.fetched, again.not_modified, again.listed, again.bodies_parsed),
        (0, 79, 79, 0)
    );
    let db = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 4);
    assert!(!without_rowid(&db, "landings") && without_rowid(&db, "validators"));
    // Every landing kept, only its last fetch moved.
    let after = read_landings(&db);
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a[..10], b[..10]);
        assert_eq!(a[11], b[11]);
    }
    assert_eq!(
        last_fetched_at(&wh, "341124102", "2026-06"),
        Some(at("2026-07-11T02:00:00Z").timestamp_micros())
    );
    // Every validator with the length of the body it describes.
    let unmatched: i64 = db
        .query_row(
            "SELECT count(*) FROM validators v WHERE v.bytes IS NOT (SELECT l.bytes FROM landings l
               WHERE l.pipeline = v.pipeline AND l.township = v.township AND l.period = v.period
                 AND l.sha256 = v.sha256)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let kept: i64 = db
        .query_row("SELECT count(*) FROM validators WHERE bytes > 0", [], |r| r.get(0))
        .unwrap();
    assert_eq!((unmatched, kept), (0, 79));

    // A store of the hours when schema 4 kept the landings in their key's
    // order too: they are written in the order they were landed again.
    db.execute_batch(&format!("BEGIN; {} COMMIT;", landings_made_again("WITHOUT ROWID", "")))
        .unwrap();
    assert!(without_rowid(&db, "landings"));
    let before = read_landings(&db);
    drop(db);
    let third = run(&cfg, &RunOptions::at(at("2026-07-12T02:00:00Z"))).await.unwrap();
    assert_eq!((third.fetched, third.listed), (0, 79));
    let db = rusqlite::Connection::open(&path).unwrap();
    assert!(!without_rowid(&db, "landings") && without_rowid(&db, "validators"));
    let after = read_landings(&db);
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        assert_eq!(a[..10], b[..10]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_cannot_be_read_costs_only_the_requests_it_would_have_saved() {
    for kind in [Some(Listing::Garbage), None] {
        let Demo { _dir, cfg, portal, .. } = Demo::start().await;
        let cfg = with_listings(cfg);
        portal.set_validators(true);
        portal.set_listing(kind);
        run(&cfg, &RunOptions::at(at("2026-07-10T02:00:00Z"))).await.unwrap();
        let hits = portal.hits();
        let again = run(&cfg, &RunOptions::at(at("2026-07-11T02:00:00Z"))).await.unwrap();
        // Every report asked for, as without a listing: 79 answer 304.
        assert_eq!(
            (
                again.fetched,
                again.not_modified,
                again.listed,
                again.listings_read,
                again.listings_failed
            ),
            (0, 79, 0, 0, 8),
            "{kind:?}"
        );
        assert_eq!((portal.hits() - hits, portal.not_modified()), (80, 79), "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_one_host_stay_within_its_limit() {
    for (per_host, limited) in [(3, true), (0, false)] {
        let Demo { cfg, portal, _dir, .. } = Demo::start().await;
        let mut cfg = cfg;
        cfg.settings.http.concurrency = 16;
        cfg.settings.http.per_host_concurrency = per_host;
        portal.set_delay(std::time::Duration::from_millis(60));
        run(&cfg, &RunOptions::at(at("2026-07-10T02:00:00Z"))).await.unwrap();
        let most = portal.max_in_flight();
        match limited {
            true => assert_eq!(most, 3, "per_host_concurrency = 3"),
            // Without a per-host limit, the global one (16) is what binds.
            false => assert!(most > 3 && most <= 16, "{most}"),
        }
    }
}
