//! The records that pass between stages and are remembered between runs:
//! what was landed, check results and alerts as the state store keeps them,
//! alert state changes in the outbox, severities and quotas.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// One landed body: the newest record of what came from where.
#[derive(Debug, Clone, PartialEq)]
pub struct Landing {
    /// Pipeline name.
    pub pipeline: String,
    /// Township code the request was for.
    pub township: String,
    /// Period the request was for.
    pub period: String,
    /// sha256 of the body, hex.
    pub sha256: String,
    /// URL fetched.
    pub url: String,
    /// Body size.
    pub bytes: i64,
    /// Content-Type header, as sent.
    pub content_type: Option<String>,
    /// Why the body could not be taken whole (over the size limit, cut off
    /// mid-transfer); the stored bytes are what arrived.
    pub defect: Option<String>,
    /// Version the body declares, if readable.
    pub version: Option<i64>,
    /// Submission time the body declares, if readable (RFC 3339).
    pub submitted_at: Option<String>,
    /// First time this body was fetched.
    pub first_fetched_at: DateTime<Utc>,
    /// Last time this body was fetched.
    pub last_fetched_at: DateTime<Utc>,
}

/// One alert as remembered between runs.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    /// Stable identity: program/kind/township/period/indicator/dimension.
    pub key: String,
    /// The reporting program the alert belongs to; a run of one program
    /// never raises, changes or resolves another's alerts.
    pub program: String,
    /// Alert kind (overdue, breakdown, fetch_failed, quarantined, …).
    pub kind: String,
    /// error, warning or info.
    pub severity: String,
    /// Township code.
    pub township: String,
    /// Period.
    pub period: String,
    /// Indicator code, or empty.
    pub indicator: String,
    /// Words for county staff.
    pub message: String,
    /// When first raised.
    pub first_seen: DateTime<Utc>,
    /// When last seen still true.
    pub last_seen: DateTime<Utc>,
    /// When delivered to the webhook.
    pub notified_at: Option<DateTime<Utc>>,
    /// When it stopped being true.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One check result as remembered between runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRecord {
    /// rule/township/period/indicator/dimension.
    pub key: String,
    /// Rule name.
    pub rule: String,
    /// Severity.
    pub severity: String,
    /// Program.
    pub program: String,
    /// Township (or county, for quota decomposition).
    pub township: String,
    /// Period.
    pub period: String,
    /// Year.
    pub year: i32,
    /// Indicator code.
    pub indicator: Option<String>,
    /// Dimension.
    pub dimension: Option<String>,
    /// What was found.
    pub observed: Option<f64>,
    /// What was expected.
    pub expected: Option<f64>,
    /// Words for county staff.
    pub message: String,
    /// Force-submit explanation.
    pub explanation: Option<String>,
    /// First run it failed.
    pub first_seen: DateTime<Utc>,
    /// Last run it failed.
    pub last_seen: DateTime<Utc>,
    /// Run it stopped failing.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// An alert state change waiting in the outbox to be delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    /// Identity of this state change: the same on every delivery attempt,
    /// so a receiver can deduplicate (delivery is at least once).
    pub idempotency_key: String,
    /// The alert's stable key.
    pub alert_key: String,
    /// The alert's program.
    pub program: String,
    /// `raised`.
    pub change: String,
    /// The alert as delivered (one element of the payload's `alerts`).
    pub alert: serde_json::Value,
    /// The run time that made the change.
    pub created_at: DateTime<Utc>,
}

/// How serious a check failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Someone should look.
    Warning,
    /// The values are held out of the rollup; the report is chased.
    Error,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One yearly quota (任务数).
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// Calendar year.
    pub year: i32,
    /// 6-digit county or 9-digit township code.
    pub code: String,
    /// Indicator code.
    pub indicator: String,
    /// Target for the year, in the indicator's unit.
    pub quota: f64,
}
