//! The township portal simulator: a real HTTP server (axum) that serves
//! submissions in the wire contract, used by `taizhang demo` and by the tests.
//! `Portal::demo()` holds January–June 2026 for the ten townships of 全椒县
//! with the faults real counties see.
#![warn(missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use taizhang_ingest::catalog::{self, Catalog};
use taizhang_ingest::fold;
use taizhang_model::Quota;

/// One canned response.
#[derive(Debug, Clone, PartialEq)]
pub struct Canned {
    /// HTTP status.
    pub status: u16,
    /// Content-Type.
    pub content_type: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Drop the connection after this many body bytes (Content-Length still
    /// announces the whole body): a transfer cut off mid-way.
    pub cut_off_after: Option<usize>,
    /// A `Location` header (with a 3xx status: a redirect).
    pub location: Option<String>,
}

impl Canned {
    /// A JSON submission.
    pub fn json(v: &Value) -> Canned {
        Canned {
            status: 200,
            content_type: "application/json; charset=utf-8".into(),
            body: serde_json::to_vec(v).expect("JSON values serialize"),
            cut_off_after: None,
            location: None,
        }
    }
    /// A CSV submission.
    pub fn csv(text: &str) -> Canned {
        Canned {
            status: 200,
            content_type: "text/csv; charset=utf-8".into(),
            body: text.as_bytes().to_vec(),
            cut_off_after: None,
            location: None,
        }
    }
    /// Any bytes (a Word document, a text file in GB18030 …) served as `content_type`.
    pub fn bytes(body: &[u8], content_type: &str) -> Canned {
        Canned {
            status: 200,
            content_type: content_type.into(),
            body: body.to_vec(),
            cut_off_after: None,
            location: None,
        }
    }
    /// Any status with a text body.
    pub fn status(status: u16, body: &str) -> Canned {
        Canned {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.as_bytes().to_vec(),
            cut_off_after: None,
            location: None,
        }
    }
    /// The same response served with another Content-Type.
    pub fn served_as(mut self, content_type: &str) -> Canned {
        self.content_type = content_type.into();
        self
    }
    /// A 302 redirect to `location`.
    pub fn redirect(location: &str) -> Canned {
        Canned {
            location: Some(location.to_string()),
            ..Canned::status(302, "moved")
        }
    }
    /// The same response, with the connection dropped after `n` body bytes.
    pub fn cut_off_after(mut self, n: usize) -> Canned {
        self.cut_off_after = Some(n);
        self
    }
}

/// Reports by (township, period), each with the [`Portal::set`]s before it.
type Reports = HashMap<(String, String), (Canned, i64)>;

/// What the portal serves, by (township, period). Missing keys answer 404.
#[derive(Debug, Clone, Default)]
pub struct Portal {
    /// Each report with when it last changed: the number of
    /// [`Portal::set`]s before it (its `Last-Modified`, see [`http_date`]).
    reports: Arc<RwLock<Reports>>,
    changes: Arc<std::sync::atomic::AtomicI64>,
    /// What `/listings/{period}` says of each report (None: 404).
    listing: Arc<RwLock<Option<Listing>>>,
    listings_served: Arc<std::sync::atomic::AtomicUsize>,
    hits: Arc<RwLock<usize>>,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
    validators: Arc<std::sync::atomic::AtomicBool>,
    not_modified: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests being answered now, and the most at once.
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    max_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

/// Demo townships with a fault, for tests and the demo summary.
pub mod faults {
    /// Never submits June.
    pub const NEVER_SUBMITS_JUNE: &str = "341124109";
    /// Submits June after the deadline.
    pub const LATE_IN_JUNE: &str = "341124105";
    /// May certificate total ≠ sum of its 类别 breakdown.
    pub const BAD_BREAKDOWN_MAY: &str = "341124102";
    /// Traditional-character names, township by name only, 万元 amounts.
    pub const TRADITIONAL_WAN_YUAN: &str = "341124103";
    /// Serves CSV instead of JSON.
    pub const CSV: &str = "341124101";
    /// Far behind its cataract surgery quota.
    pub const BEHIND_QUOTA: &str = "341124106";
    /// June includes an indicator the catalog does not know.
    pub const UNKNOWN_INDICATOR_JUNE: &str = "341124107";
    /// The unknown indicator label.
    pub const UNKNOWN_LABEL: &str = "残疾人体育活动";
    /// Writes an approximation (e.g. 20多人) for basic rehab services in March.
    pub const APPROX_MARCH: &str = "341124108";
}

/// What a portal's listing (`/listings/{period}`) gives each report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Its `ETag`.
    Etags,
    /// Its modification time and size, as nginx's `autoindex_format json`.
    TimesAndSizes,
    /// A body that is no listing.
    Garbage,
}

impl Portal {
    /// Serves `canned` for (township, period).
    pub fn set(&self, township: &str, period: &str, canned: Canned) {
        let n = self.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.reports
            .write()
            .expect("portal lock")
            .insert((township.to_string(), period.to_string()), (canned, n));
    }

    /// Serves `/listings/{period}` from now on: every report of the period
    /// served with 200, named by its path, with what `listing` says (None:
    /// 404).
    pub fn set_listing(&self, listing: Option<Listing>) {
        *self.listing.write().expect("portal lock") = listing;
    }

    /// Listings answered so far.
    pub fn listings_served(&self) -> usize {
        self.listings_served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops serving (township, period): 404 from now on.
    pub fn remove(&self, township: &str, period: &str) {
        self.reports
            .write()
            .expect("portal lock")
            .remove(&(township.to_string(), period.to_string()));
    }

    /// What is served for (township, period).
    pub fn get(&self, township: &str, period: &str) -> Option<Canned> {
        self.served(township, period).map(|(c, _)| c)
    }

    /// What is served for (township, period), with when it last changed.
    fn served(&self, township: &str, period: &str) -> Option<(Canned, i64)> {
        self.reports
            .read()
            .expect("portal lock")
            .get(&(township.to_string(), period.to_string()))
            .cloned()
    }

    /// Answers every request this much later (a slow portal, so that tests
    /// can interrupt a run while it fetches).
    pub fn set_delay(&self, delay: std::time::Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Serves validators from now on: an `ETag` (a hash of the body) and a
    /// `Last-Modified` on every 200, and 304 Not Modified (no body) to a
    /// request whose `If-None-Match` names the current ETag.
    pub fn set_validators(&self, on: bool) {
        self.validators.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The most requests this portal was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests answered 304 so far.
    pub fn not_modified(&self) -> usize {
        self.not_modified.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        *self.hits.read().expect("portal lock")
    }

    /// Serves the portal on `addr` (use port 0 for any free port); returns the bound address.
    pub async fn serve(self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let app = Router::new()
            .route("/reports/{township}/{period}", axum::routing::get(report))
            .route("/listings/{period}", axum::routing::get(listing))
            .with_state(self);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "Township portal stopped.");
            }
        });
        Ok(bound)
    }

    /// The demo county: 全椒县's ten townships, January–June 2026 (the
    /// monthly report) and the first two quarters (the quarterly one).
    pub fn demo(catalog: &Catalog, quotas: &[Quota]) -> Portal {
        let portal = Portal::default();
        let townships: Vec<String> = (100..110).map(|i| format!("341124{i}")).collect();
        for t in &townships {
            for quarter in 1..=2u32 {
                portal.set(
                    t,
                    &format!("2026-Q{quarter}"),
                    Canned::json(&demo_quarterly(t, quarter)),
                );
            }
            for month in 1..=6u32 {
                let period = format!("2026-{month:02}");
                if t == faults::NEVER_SUBMITS_JUNE && month == 6 {
                    continue;
                }
                let doc = demo_submission(catalog, quotas, t, month);
                let canned = if t == faults::CSV {
                    Canned::csv(&to_csv(&doc))
                } else {
                    Canned::json(&doc)
                };
                portal.set(t, &period, canned);
            }
        }
        portal
    }
}

async fn listing(State(portal): State<Portal>, Path(period): Path<String>) -> Response {
    let Some(kind) = *portal.listing.read().expect("portal lock") else {
        return (StatusCode::NOT_FOUND, "no listing").into_response();
    };
    portal
        .listings_served
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if kind == Listing::Garbage {
        return (StatusCode::OK, "<html>listing</html>").into_response();
    }
    let reports = portal.reports.read().expect("portal lock").clone();
    let mut entries: Vec<Value> = reports
        .iter()
        .filter(|((_, p), (c, _))| *p == period && c.status == 200)
        .map(|((t, p), (c, changed))| {
            let name = format!("/reports/{t}/{p}");
            match kind {
                Listing::Etags => json!({ "name": name, "etag": etag(&c.body) }),
                _ => json!({
                    "name": name, "type": "file",
                    "mtime": http_date(*changed), "size": c.body.len(),
                }),
            }
        })
        .collect();
    entries.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    axum::Json(entries).into_response()
}

/// The `Last-Modified` of a report set after `changes` others: that many
/// seconds after 2026-07-01T01:00:00Z.
fn http_date(changes: i64) -> String {
    let base = chrono::DateTime::from_timestamp(1_782_867_600, 0).expect("2026-07-01T01:00:00Z");
    (base + chrono::Duration::seconds(changes))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The ETag the portal gives a body: a hash of its bytes.
fn etag(body: &[u8]) -> String {
    let h = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("\"{h:016x}\"")
}

async fn report(
    State(portal): State<Portal>,
    Path((township, period)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let now = portal.in_flight.fetch_add(1, Relaxed) + 1;
    portal.max_in_flight.fetch_max(now, Relaxed);
    let delay = portal.delay_ms.load(Relaxed);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    portal.in_flight.fetch_sub(1, Relaxed);
    *portal.hits.write().expect("portal lock") += 1;
    let (canned, changed) = portal.served(&township, &period).unzip();
    match canned {
        None => (StatusCode::NOT_FOUND, "no submission").into_response(),
        Some(c) if c.cut_off_after.is_some_and(|n| n < c.body.len()) => {
            let n = c.cut_off_after.unwrap_or(0);
            let whole = c.body.len();
            let parts: Vec<Result<Vec<u8>, std::io::Error>> = vec![
                Ok(c.body[..n].to_vec()),
                Err(std::io::Error::other("simulated dropped connection")),
            ];
            // Let the first part reach the client before the connection drops.
            let stream = futures_util::StreamExt::then(futures_util::stream::iter(parts), |p| async move {
                if p.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                p
            });
            let mut resp = axum::body::Body::from_stream(stream).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_LENGTH, whole.into());
            if let Ok(v) = c.content_type.parse() {
                h.insert(header::CONTENT_TYPE, v);
            }
            resp
        }
        Some(c) if c.status == 200 && portal.validators.load(std::sync::atomic::Ordering::Relaxed) => {
            let tag = etag(&c.body);
            let asked = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
            if asked == Some(tag.as_str()) {
                portal.not_modified.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
            }
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, c.content_type),
                    (header::ETAG, tag),
                    (header::LAST_MODIFIED, http_date(changed.unwrap_or(0))),
                ],
                c.body,
            )
                .into_response()
        }
        Some(c) => {
            let mut resp = (
                StatusCode::from_u16(c.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                [(header::CONTENT_TYPE, c.content_type)],
                c.body,
            )
                .into_response();
            if let Some(v) = c.location.and_then(|l| l.parse().ok()) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
    }
}

/// splitmix64: a deterministic stream per (township, month, indicator).
fn rng(seed: &str) -> impl FnMut() -> f64 + use<> {
    let mut x = seed.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    });
    move || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Typical monthly count per township for indicators without a quota.
fn typical(code: &str) -> f64 {
    match code {
        "wheelchairs" => 3.0,
        "prostheses" => 1.0,
        "hearing_aids" => 2.0,
        "severe_care_recipients" => 240.0,
        "hardship_recipients" => 180.0,
        "fuel_households" => 2.0,
        "students_aided" => 2.0,
        "skills_training" => 6.0,
        "housing_renovation" => 1.0,
        "sunshine_home_care" => 10.0,
        "condolence_visits" => 30.0,
        "petition_visits" => 5.0,
        "petitions_resolved" => 4.0,
        _ => 5.0,
    }
}

/// The demo county's townships (全椒县, 2023 edition).
const NAMES: &[(&str, &str)] = &[
    ("341124100", "襄河镇"),
    ("341124101", "古河镇"),
    ("341124102", "大墅镇"),
    ("341124103", "二郎口镇"),
    ("341124104", "武岗镇"),
    ("341124105", "马厂镇"),
    ("341124106", "石沛镇"),
    ("341124107", "十字镇"),
    ("341124108", "西王镇"),
    ("341124109", "六镇镇"),
];

/// Amount indicators: (amount code, count code, yuan per count per month).
const AMOUNTS: &[(&str, &str, f64)] = &[
    ("severe_care_amount", "severe_care_recipients", 50.0),
    ("hardship_amount", "hardship_recipients", 60.0),
    ("fuel_amount", "fuel_households", 260.0),
    ("student_aid_amount", "students_aided", 1000.0),
    ("accessibility_amount", "accessibility_renovation", 3000.0),
    ("condolence_money", "condolence_visits", 500.0),
];

/// Relative weight of each 类别 (肢体 dominates, as in real ledgers).
const CATEGORY_WEIGHTS: &[f64] = &[0.13, 0.08, 0.02, 0.48, 0.07, 0.09, 0.13];

fn split(total: i64, weights: &[f64]) -> Vec<i64> {
    let sum: f64 = weights.iter().sum();
    let mut parts: Vec<i64> = weights
        .iter()
        .map(|w| (total as f64 * w / sum).floor() as i64)
        .collect();
    let rest = total - parts.iter().sum::<i64>();
    // The largest category takes the rounding remainder.
    let big = weights
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i);
    parts[big] += rest;
    parts
}

fn wan(amount: f64) -> String {
    let s = format!("{:.4}", amount / 10000.0);
    format!("{}萬元", s.trim_end_matches('0').trim_end_matches('.'))
}

/// A township's quarterly statistics (program `cdpf-quarterly`).
pub fn demo_quarterly(township: &str, quarter: u32) -> Value {
    let mut r = rng(&format!("{township}/Q{quarter}"));
    let insured = 600 + (r() * 400.0).round() as i64 + i64::from(quarter) * 12;
    let supported = 5 + (r() * 20.0).round() as i64;
    json!({
        "township": township,
        "program": "cdpf-quarterly",
        "period": format!("2026-Q{quarter}"),
        "submitted_at": format!("2026-{:02}-08T09:00:00+08:00", quarter * 3 + 1),
        "version": 1,
        "values": [
            {"indicator": "参加城乡居民基本养老保险的残疾人", "value": insured},
            {"indicator": "辅助性就业", "value": supported},
        ],
    })
}

/// Indicators of the quarterly report, left out of the monthly one.
const QUARTERLY_ONLY: [&str; 2] = ["pension_insured", "supported_employment"];

/// One township's submission for one month of 2026.
pub fn demo_submission(catalog: &Catalog, quotas: &[Quota], township: &str, month: u32) -> Value {
    let period = format!("2026-{month:02}");
    let weight = quotas
        .iter()
        .find(|q| q.code == township && q.indicator == "cataract_surgery")
        .map_or(1.0, |q| q.quota / 24.0);
    let traditional = township == faults::TRADITIONAL_WAN_YUAN;
    let mut counts: HashMap<&str, i64> = HashMap::new();
    let mut values = Vec::new();
    for ind in &catalog.indicators {
        if AMOUNTS.iter().any(|(a, _, _)| *a == ind.code) || QUARTERLY_ONLY.contains(&ind.code.as_str()) {
            continue;
        }
        let mut r = rng(&format!("{township}/{month}/{}", ind.code));
        let monthly = quotas
            .iter()
            .find(|q| q.code == township && q.indicator == ind.code)
            .map_or(typical(&ind.code) * weight, |q| q.quota / 12.0);
        let mut total = match ind.kind {
            catalog::Kind::Flow => (monthly * (0.8 + 0.4 * r())).round() as i64,
            _ => (monthly + f64::from(month) * 2.0).round() as i64,
        };
        if township == faults::BEHIND_QUOTA && ind.code == "cataract_surgery" {
            total = i64::from(month.is_multiple_of(2)); // 3 surgeries in six months against a quota of 24
        }
        counts.insert(ind.code.as_str(), total);
        let label = if traditional {
            fold::to_traditional(&ind.name)
        } else {
            ind.name.clone()
        };
        let raw_total = if township == faults::APPROX_MARCH && month == 3 && ind.code == "basic_rehab" {
            json!(format!("{}多人", total / 10 * 10))
        } else {
            json!(total)
        };
        let mut reported_total = total;
        if township == faults::BAD_BREAKDOWN_MAY && month == 5 && ind.code == "certificates_issued" {
            reported_total = total + 2;
        }
        let value = if reported_total != total {
            json!(reported_total)
        } else {
            raw_total
        };
        values.push(json!({"indicator": label, "value": value}));
        for b in &ind.breakdowns {
            let parts = if b.dimension == "类别" {
                split(total, CATEGORY_WEIGHTS)
            } else {
                let base = if reported_total != total { reported_total } else { total };
                split(base, &vec![1.0; b.categories.len()])
            };
            for (cat, v) in b.categories.iter().zip(parts) {
                values.push(json!({"indicator": label, "dimension": b.dimension, "category": cat, "value": v}));
            }
        }
    }
    for (amount, count, rate) in AMOUNTS {
        let Some(ind) = catalog.get(amount) else { continue };
        let yuan = counts.get(count).copied().unwrap_or(0) as f64 * rate;
        let (label, value) = if traditional {
            (fold::to_traditional(&ind.name), json!(wan(yuan)))
        } else {
            (ind.name.clone(), json!(yuan))
        };
        values.push(json!({"indicator": label, "value": value}));
    }
    if township == faults::UNKNOWN_INDICATOR_JUNE && month == 6 {
        values.push(json!({"indicator": faults::UNKNOWN_LABEL, "value": 3}));
    }
    let (next_y, next_m) = if month == 12 { (2027, 1) } else { (2026, month + 1) };
    let day = if township == faults::LATE_IN_JUNE && month == 6 {
        8
    } else {
        1 + (month % 4)
    };
    let mut doc = json!({
        "program": "cdpf-monthly",
        "period": period,
        "submitted_at": format!("{next_y}-{next_m:02}-{day:02}T09:12:00+08:00"),
        "version": 1,
        "explanation": null,
        "values": values,
    });
    if traditional {
        doc["township_name"] = json!("二郎口鎮");
    } else {
        doc["township"] = json!(township);
        doc["township_name"] = json!(NAMES.iter().find(|(c, _)| *c == township).map_or("", |(_, n)| *n));
    }
    doc
}

/// The same submission as CSV of the wire contract.
pub fn to_csv(doc: &Value) -> String {
    let township = doc["township"].as_str().unwrap_or("");
    let period = doc["period"].as_str().unwrap_or("");
    let mut out = String::from("township,period,indicator,dimension,category,value\n");
    for v in doc["values"].as_array().into_iter().flatten() {
        let s = |k: &str| match &v[k] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{township},{period},{},{},{},{}\n",
            s("indicator"),
            s("dimension"),
            s("category"),
            s("value")
        ));
    }
    out
}
