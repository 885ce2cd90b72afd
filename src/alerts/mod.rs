//! Alert: turn failures (error-severity checks, quarantined submissions,
//! fetch failures) into alerts with stable keys, and reconcile them with the
//! alert state so that each fires once when it starts and is marked resolved
//! when it stops — never once per night. Derivation and reconciliation are
//! pure; delivery goes through an [`AlertChannel`] (the one shipped is
//! [`webhook::Webhook`]).

pub mod webhook;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use polars::prelude::*;

use crate::registry::Registry;
use taizhang_model::{AlertRecord, OutboxEntry};

/// A delivery failure, in words that carry no secret (URL, token).
#[derive(Debug, thiserror::Error)]
#[error("alert delivery failed: {0}")]
pub struct DeliveryError(pub String);

/// A place alert state changes are delivered to, after the run's commit.
///
/// Contract: `deliver` gets every pending change of the outbox at once and
/// answers for all of them. `Ok` means the receiver accepted them: they are
/// marked delivered. `Err` means it did not, or its answer was lost: none is
/// marked and all are offered again next run. Delivery is therefore at least
/// once, and every change carries an `idempotency_key` to deduplicate on. A
/// channel never logs its secret.
pub trait AlertChannel: Send + Sync {
    /// Delivers the changes.
    fn deliver(&self, entries: &[OutboxEntry]) -> impl Future<Output = Result<(), DeliveryError>> + Send;
}

/// An alert condition that holds now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Candidate {
    /// Stable identity, starting with the program.
    pub key: String,
    /// The reporting program.
    pub program: String,
    /// overdue, breakdown, quarantined, fetch_failed, …
    pub kind: String,
    /// error or warning.
    pub severity: String,
    /// Township code.
    pub township: String,
    /// Period.
    pub period: String,
    /// Indicator code or empty.
    pub indicator: String,
    /// Words for county staff.
    pub message: String,
}

fn strs<'a>(df: &'a DataFrame, name: &str) -> PolarsResult<&'a StringChunked> {
    df.column(name)?.str()
}

/// Alert conditions from one pipeline's results.
pub fn derive(
    program: &str,
    checks: &DataFrame,
    quarantine: &DataFrame,
    fetch_failures: &[(String, String, String, String)],
    registry: &Registry,
) -> PolarsResult<Vec<Candidate>> {
    let mut out = Vec::new();
    let (rule, sev, tw, per, ind, dim, msg) = (
        strs(checks, "rule")?,
        strs(checks, "severity")?,
        strs(checks, "township")?,
        strs(checks, "period")?,
        strs(checks, "indicator")?,
        strs(checks, "dimension")?,
        strs(checks, "message")?,
    );
    for i in 0..checks.height() {
        if sev.get(i) != Some("error") {
            continue;
        }
        let (r, t, p) = (
            rule.get(i).unwrap_or(""),
            tw.get(i).unwrap_or(""),
            per.get(i).unwrap_or(""),
        );
        let (ind_i, dim_i) = (ind.get(i).unwrap_or(""), dim.get(i).unwrap_or(""));
        out.push(Candidate {
            key: format!("{program}/{r}/{t}/{p}/{ind_i}/{dim_i}"),
            program: program.to_string(),
            kind: r.to_string(),
            severity: "error".into(),
            township: t.to_string(),
            period: p.to_string(),
            indicator: ind_i.to_string(),
            message: msg.get(i).unwrap_or("").to_string(),
        });
    }
    // One alert per quarantined submission, naming the first reason.
    let (tw, per, sha, reason, label) = (
        strs(quarantine, "township")?,
        strs(quarantine, "period")?,
        strs(quarantine, "source_sha256")?,
        strs(quarantine, "reason")?,
        strs(quarantine, "indicator_label")?,
    );
    let index = quarantine.column("value_index")?.as_materialized_series().is_null();
    // Per submission: values quarantined, the first reason, whether a row
    // stands for the whole submission (no value index: it could not be read).
    let mut by_sub: BTreeMap<(String, String, String), (usize, String, bool)> = BTreeMap::new();
    for i in 0..quarantine.height() {
        let k = (
            tw.get(i).unwrap_or("").to_string(),
            per.get(i).unwrap_or("").to_string(),
            sha.get(i).unwrap_or("").to_string(),
        );
        let first = match label.get(i) {
            // The label as the township wrote it: clipped like every echo.
            Some(l) => format!(
                "{}: {}",
                crate::submission::clip(l, crate::submission::ECHO_CHARS),
                reason.get(i).unwrap_or("")
            ),
            None => reason.get(i).unwrap_or("").to_string(),
        };
        let e = by_sub.entry(k).or_insert((0, first, false));
        e.0 += 1;
        e.2 |= index.get(i) == Some(true);
    }
    for ((t, p, s), (n, first, whole)) in by_sub {
        let who = crate::checks::township_label(registry, &t);
        let message = if whole {
            format!("{who} {p}: 报表无法读取，已整份隔离 (submission unreadable, quarantined whole: {first})")
        } else {
            format!("{who} {p}: {n} 项数据无法识别，已隔离待核 ({n} value(s) quarantined; first: {first})")
        };
        out.push(Candidate {
            key: format!("{program}/quarantined/{t}/{p}/{}", &s[..s.len().min(12)]),
            program: program.to_string(),
            kind: "quarantined".into(),
            severity: "error".into(),
            township: t,
            period: p.clone(),
            indicator: String::new(),
            message,
        });
    }
    for (t, p, _url, error) in fetch_failures {
        let who = crate::checks::township_label(registry, t);
        out.push(Candidate {
            key: format!("{program}/fetch_failed/{t}/{p}"),
            program: program.to_string(),
            kind: "fetch_failed".into(),
            severity: "error".into(),
            township: t.clone(),
            period: p.clone(),
            indicator: String::new(),
            message: format!("{who} {p}: 报表获取失败 (fetch failed: {error})"),
        });
    }
    Ok(out)
}

/// What reconciling candidates with the alert state decided.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Reconciled {
    /// Every record to write back (changed ones only).
    pub upserts: Vec<AlertRecord>,
    /// Alerts raised now for the first time (or again after resolution).
    pub raised: Vec<AlertRecord>,
    /// Alerts that stopped holding.
    pub resolved: Vec<AlertRecord>,
}

/// The idempotency key of an alert's raising: the same on every delivery
/// attempt of this state change, different when the alert is raised again
/// after it was resolved.
pub fn idempotency_key(a: &AlertRecord) -> String {
    format!("raised:{}@{}", a.key, a.first_seen.to_rfc3339())
}

/// The outbox entries for the alerts a run raised: what the webhook will be
/// sent once the run has committed.
pub fn outbox(raised: &[AlertRecord], registry: &Registry, now: DateTime<Utc>) -> Vec<OutboxEntry> {
    raised
        .iter()
        .map(|a| OutboxEntry {
            idempotency_key: idempotency_key(a),
            alert_key: a.key.clone(),
            program: a.program.clone(),
            change: "raised".into(),
            alert: webhook::item(a, registry),
            created_at: now,
        })
        .collect()
}

/// Reconciles candidates with the remembered alerts at `now`.
pub fn reconcile(state: &[AlertRecord], candidates: &[Candidate], now: DateTime<Utc>) -> Reconciled {
    let known: HashMap<&str, &AlertRecord> = state.iter().map(|a| (a.key.as_str(), a)).collect();
    let mut r = Reconciled::default();
    let mut current = std::collections::HashSet::new();
    for c in candidates {
        if !current.insert(c.key.as_str()) {
            continue;
        }
        let rec = match known.get(c.key.as_str()) {
            Some(old) if old.resolved_at.is_none() => AlertRecord {
                message: c.message.clone(),
                last_seen: now.max(old.last_seen),
                ..(*old).clone()
            },
            _ => {
                let rec = AlertRecord {
                    key: c.key.clone(),
                    program: c.program.clone(),
                    kind: c.kind.clone(),
                    severity: c.severity.clone(),
                    township: c.township.clone(),
                    period: c.period.clone(),
                    indicator: c.indicator.clone(),
                    message: c.message.clone(),
                    first_seen: now,
                    last_seen: now,
                    notified_at: None,
                    resolved_at: None,
                };
                r.raised.push(rec.clone());
                rec
            }
        };
        if known.get(c.key.as_str()).is_none_or(|old| **old != rec) {
            r.upserts.push(rec);
        }
    }
    for old in state {
        if old.resolved_at.is_none() && !current.contains(old.key.as_str()) {
            let rec = AlertRecord {
                resolved_at: Some(now),
                ..old.clone()
            };
            r.resolved.push(rec.clone());
            r.upserts.push(rec);
        }
    }
    r
}

/// The alerts table: every alert remembered, open and resolved.
pub fn table(records: &[AlertRecord], registry: &Registry) -> PolarsResult<DataFrame> {
    let mut recs: Vec<&AlertRecord> = records.iter().collect();
    recs.sort_by(|a, b| a.key.cmp(&b.key));
    let s = |f: fn(&AlertRecord) -> String| recs.iter().map(|a| f(a)).collect::<Vec<String>>();
    let ts = |f: fn(&AlertRecord) -> Option<DateTime<Utc>>| {
        recs.iter()
            .map(|a| f(a).map(|t| t.timestamp_micros()))
            .collect::<Vec<Option<i64>>>()
    };
    let names: Vec<Option<String>> = recs
        .iter()
        .map(|a| registry.get(&a.township).map(|t| t.name.clone()))
        .collect();
    DataFrame::new_infer_height(vec![
        Column::new("alert_key".into(), s(|a| a.key.clone())),
        Column::new("program".into(), s(|a| a.program.clone())),
        Column::new("kind".into(), s(|a| a.kind.clone())),
        Column::new("severity".into(), s(|a| a.severity.clone())),
        Column::new("township".into(), s(|a| a.township.clone())),
        Column::new("township_name".into(), names),
        Column::new("period".into(), s(|a| a.period.clone())),
        Column::new(
            "indicator".into(),
            recs.iter()
                .map(|a| (!a.indicator.is_empty()).then(|| a.indicator.clone()))
                .collect::<Vec<_>>(),
        ),
        Column::new("message".into(), s(|a| a.message.clone())),
        Column::new(
            "status".into(),
            s(|a| {
                if a.resolved_at.is_some() {
                    "resolved".into()
                } else {
                    "open".into()
                }
            }),
        ),
        Column::new("first_seen".into(), ts(|a| Some(a.first_seen))),
        Column::new("last_seen".into(), ts(|a| Some(a.last_seen))),
        Column::new("notified_at".into(), ts(|a| a.notified_at)),
        Column::new("resolved_at".into(), ts(|a| a.resolved_at)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(key: &str) -> Candidate {
        Candidate {
            key: key.into(),
            program: "p".into(),
            kind: "overdue".into(),
            severity: "error".into(),
            township: "341124109".into(),
            period: "2026-06".into(),
            indicator: String::new(),
            message: "m".into(),
        }
    }

    /// A label of 500,000 characters (a hostile township) is echoed into
    /// the quarantine alert clipped, as every township-written echo is.
    #[test]
    fn a_quarantine_alert_echoes_a_huge_label_clipped() {
        use polars::prelude::*;
        let checks = crate::checks::Rows::default().finish().unwrap();
        let label = "x".repeat(500_000);
        let quarantine = df!(
            "township" => ["341124109"],
            "period" => ["2026-06"],
            "source_sha256" => ["ab".repeat(32)],
            "reason" => ["a field is 500000 characters long, over the limit of 200"],
            "indicator_label" => [label.as_str()],
            "value_index" => [Some(0i64)],
        )
        .unwrap();
        let registry = crate::config::Definition::from_texts(&crate::config::embedded_texts())
            .unwrap()
            .registry;
        let out = derive("p", &checks, &quarantine, &[], &registry).unwrap();
        assert_eq!(out.len(), 1);
        let m = &out[0].message;
        assert!(m.len() < 400, "{} bytes", m.len());
        assert!(
            m.contains("(+499936 chars)") && m.contains("over the limit of 200"),
            "{m}"
        );
    }

    #[test]
    fn fires_once_then_resolves() {
        let t1: DateTime<Utc> = "2026-07-10T00:00:00Z".parse().unwrap();
        let t2: DateTime<Utc> = "2026-07-11T00:00:00Z".parse().unwrap();
        let r = reconcile(&[], &[cand("a")], t1);
        assert_eq!(r.raised.len(), 1);
        let mut state = r.upserts.clone();
        state[0].notified_at = Some(t1);
        let again = reconcile(&state, &[cand("a")], t1);
        assert!(again.raised.is_empty() && again.upserts.is_empty());
        let next_day = reconcile(&state, &[cand("a")], t2);
        assert!(next_day.raised.is_empty());
        assert_eq!(next_day.upserts[0].last_seen, t2);
        let gone = reconcile(&state, &[], t2);
        assert_eq!(gone.resolved.len(), 1);
        assert_eq!(gone.resolved[0].resolved_at, Some(t2));
    }
}
