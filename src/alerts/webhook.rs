//! Webhook delivery: one JSON POST per run carrying every alert state change
//! in the outbox not yet delivered, each with its idempotency key. Delivery
//! is at least once: a change is sent again only when the receiver's answer
//! was lost. The URL is a secret (it usually embeds a key) and is never logged.

use std::time::Duration;

use serde_json::json;

use super::{AlertChannel, DeliveryError};
use crate::registry::Registry;
use crate::state::{AlertRecord, OutboxEntry};

/// The webhook channel: a WeCom/DingTalk group robot or any receiver that
/// takes a JSON POST. The URL is a secret.
pub struct Webhook {
    /// Receiver URL (never logged).
    pub url: String,
    /// Seconds to wait for the answer.
    pub timeout_secs: u64,
}

impl AlertChannel for Webhook {
    async fn deliver(&self, entries: &[OutboxEntry]) -> Result<(), DeliveryError> {
        post(&self.url, &payload(entries), self.timeout_secs).await
    }
}

/// One alert as delivered: an element of the payload's `alerts`.
pub fn item(a: &AlertRecord, registry: &Registry) -> serde_json::Value {
    json!({
        "idempotency_key": crate::alerts::idempotency_key(a),
        "change": "raised",
        "key": a.key,
        "program": a.program,
        "kind": a.kind,
        "severity": a.severity,
        "township": a.township,
        "township_name": registry.get(&a.township).map(|t| t.name.clone()),
        "period": a.period,
        "indicator": if a.indicator.is_empty() { None } else { Some(&a.indicator) },
        "message": a.message,
        "first_seen": a.first_seen.to_rfc3339(),
    })
}

/// The JSON body posted for the pending outbox entries.
pub fn payload(entries: &[OutboxEntry]) -> serde_json::Value {
    let text = entries
        .iter()
        .map(|e| {
            format!(
                "[{}] {}",
                e.alert["kind"].as_str().unwrap_or(""),
                e.alert["message"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    json!({
        "source": "taizhang",
        "count": entries.len(),
        "text": text,
        "alerts": entries.iter().map(|e| e.alert.clone()).collect::<Vec<_>>(),
    })
}

/// Posts the alerts; a non-2xx answer is an error.
pub async fn post(url: &str, body: &serde_json::Value, timeout_secs: u64) -> Result<(), DeliveryError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .build()
        .map_err(|e| DeliveryError(e.without_url().to_string()))?;
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| DeliveryError(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(DeliveryError(format!("receiver answered HTTP {}", resp.status())));
    }
    Ok(())
}
