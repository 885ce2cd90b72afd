//! Webhook delivery: one JSON POST per run carrying every alert not yet
//! delivered. The URL is a secret (it usually embeds a key) and is never logged.

use std::time::Duration;

use serde_json::json;

use crate::registry::Registry;
use crate::state::AlertRecord;

/// A delivery failure. Deliberately carries no URL.
#[derive(Debug, thiserror::Error)]
#[error("webhook delivery failed: {0}")]
pub struct WebhookError(pub String);

/// The JSON body posted for a batch of alerts.
pub fn payload(alerts: &[AlertRecord], registry: &Registry) -> serde_json::Value {
    let text = alerts
        .iter()
        .map(|a| format!("[{}] {}", a.kind, a.message))
        .collect::<Vec<_>>()
        .join("\n");
    json!({
        "source": "taizhang",
        "count": alerts.len(),
        "text": text,
        "alerts": alerts.iter().map(|a| json!({
            "key": a.key,
            "kind": a.kind,
            "severity": a.severity,
            "township": a.township,
            "township_name": registry.get(&a.township).map(|t| t.name.clone()),
            "period": a.period,
            "indicator": if a.indicator.is_empty() { None } else { Some(&a.indicator) },
            "message": a.message,
            "first_seen": a.first_seen.to_rfc3339(),
        })).collect::<Vec<_>>(),
    })
}

/// Posts the alerts; a non-2xx answer is an error.
pub async fn post(url: &str, body: &serde_json::Value, timeout_secs: u64) -> Result<(), WebhookError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .build()
        .map_err(|e| WebhookError(e.without_url().to_string()))?;
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| WebhookError(e.without_url().to_string()))?;
    if !resp.status().is_success() {
        return Err(WebhookError(format!("receiver answered HTTP {}", resp.status())));
    }
    Ok(())
}
