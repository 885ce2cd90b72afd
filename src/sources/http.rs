//! HTTP source: GET the pipeline's URL with timeouts, bounded retries with
//! exponential backoff and jitter, and a body size limit.

use std::time::Duration;

use super::{FetchOutcome, FetchTarget, Source, Validators};
use crate::config::HttpSettings;

/// Fetches over HTTP(S) with reqwest.
#[derive(Debug, Clone)]
pub struct HttpSource {
    client: reqwest::Client,
    settings: HttpSettings,
    /// One semaphore per origin (`http.per_host_concurrency`).
    hosts: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>>,
}

impl HttpSource {
    /// A source with the deployment's limits.
    pub fn new(settings: &HttpSettings) -> Result<HttpSource, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs))
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .pool_max_idle_per_host(settings.concurrency)
            .user_agent(concat!("taizhang/", env!("CARGO_PKG_VERSION")))
            .redirect(same_origin_redirects())
            .build()?;
        Ok(HttpSource {
            client,
            settings: settings.clone(),
            hosts: Default::default(),
        })
    }

    /// A slot for one request to `url`'s origin, waited for before the
    /// township's budget starts (None: no per-host limit).
    async fn host_slot(&self, url: &str) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let limit = self.settings.per_host_concurrency;
        if limit == 0 {
            return None;
        }
        let origin = reqwest::Url::parse(url).ok()?.origin().ascii_serialization();
        let sem = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts
                .entry(origin)
                .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(limit)))
                .clone()
        };
        sem.acquire_owned().await.ok()
    }

    async fn once(&self, url: &str, asked: Option<&Validators>) -> Result<FetchOutcome, Attempt> {
        let fail = |error: String| Attempt {
            error,
            partial: None,
            last: false,
        };
        let mut req = self.client.get(url);
        if let Some(v) = asked {
            if let Some(tag) = &v.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, tag);
            }
            if let Some(at) = &v.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, at);
            }
        }
        let mut resp = req.send().await.map_err(|e| Attempt {
            error: describe(&e),
            partial: None,
            // A refused redirect is the same on every attempt.
            last: e.is_redirect(),
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(FetchOutcome::NotSubmitted);
        }
        if status == reqwest::StatusCode::NOT_MODIFIED && asked.is_some() {
            return Ok(FetchOutcome::NotModified);
        }
        if status != reqwest::StatusCode::OK {
            return Err(fail(format!("HTTP {status}")));
        }
        let limit = self.settings.max_body_bytes;
        let declared = resp.content_length();
        let header = |name: reqwest::header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let validators = Validators::of(header(reqwest::header::ETAG), header(reqwest::header::LAST_MODIFIED));
        let mut body = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = (limit as usize).saturating_sub(body.len());
                    if chunk.len() > room {
                        // Keep what fits, stop reading: the township sent
                        // more than a report can be. Not retried.
                        body.extend_from_slice(&chunk[..room]);
                        let declared = declared.map(|n| format!(" (Content-Length {n})")).unwrap_or_default();
                        return Ok(FetchOutcome::Submitted {
                            body,
                            content_type,
                            // A body kept in part is not what the validators describe.
                            validators: None,
                            defect: Some(format!(
                                "body larger than the {limit}-byte limit{declared}; the first {limit} bytes are kept"
                            )),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let error = describe(&e);
                    let partial = (!body.is_empty()).then(|| {
                        let of = declared.map(|n| format!(" of {n}")).unwrap_or_default();
                        let defect = format!("body cut off after {}{of} bytes ({error})", body.len());
                        (body, content_type, defect)
                    });
                    return Err(Attempt {
                        error,
                        partial,
                        last: false,
                    });
                }
            }
        }
        Ok(FetchOutcome::Submitted {
            body,
            content_type,
            defect: None,
            validators,
        })
    }
}

/// A failed attempt, with what arrived before the transfer broke off.
struct Attempt {
    error: String,
    partial: Option<(Vec<u8>, Option<String>, String)>,
    /// Retrying cannot help.
    last: bool,
}

/// Redirects are followed only within the origin (scheme, host, port) of the
/// URL the pipeline configured, at most five: a township cannot make the
/// county server fetch another host (an internal address, say) or publish
/// another site's body as its own. A refused redirect is a fetch failure,
/// recorded and alerted, naming where it pointed.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first().cloned() else {
            return attempt.follow();
        };
        if attempt.previous().len() > 5 {
            return attempt.error("more than 5 redirects");
        }
        let to = attempt.url().origin();
        if to == first.origin() {
            attempt.follow()
        } else {
            let to = to.ascii_serialization();
            attempt.error(format!(
                "redirected to {to}, outside the configured origin: not followed"
            ))
        }
    })
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body could not be read"
    } else {
        "request failed"
    };
    let mut msg = kind.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// Backoff before attempt `n` (1-based retries): base × 2^(n−1), ±25% jitter.
fn backoff(base_ms: u64, n: u32, seed: &str) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << (n - 1).min(16));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let h = seed
        .bytes()
        .fold(u64::from(nanos), |h, b| h.rotate_left(5) ^ u64::from(b));
    let jitter = (h % 51) as i64 - 25; // -25..=25 percent
    Duration::from_millis((exp as i64 + exp as i64 * jitter / 100).max(0) as u64)
}

impl Source for HttpSource {
    async fn fetch(&self, target: &FetchTarget) -> FetchOutcome {
        let _slot = self.host_slot(&target.url).await;
        let budget = Duration::from_secs(self.settings.township_budget_secs);
        let tried = std::sync::atomic::AtomicU32::new(0);
        match tokio::time::timeout(budget, self.attempts(target, &tried)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                tracing::warn!(township = %target.township, period = %target.period, budget_secs = budget.as_secs(), "Township gave no report within its budget.");
                FetchOutcome::Failed {
                    error: format!(
                        "no report within the township's budget of {} s over all attempts",
                        budget.as_secs()
                    ),
                    attempts: tried.load(std::sync::atomic::Ordering::Relaxed).max(1),
                }
            }
        }
    }
}

impl HttpSource {
    /// Every attempt at one target, with backoff between them.
    async fn attempts(&self, target: &FetchTarget, tried: &std::sync::atomic::AtomicU32) -> FetchOutcome {
        let attempts = self.settings.retries + 1;
        let mut last = Attempt {
            error: String::new(),
            partial: None,
            last: false,
        };
        for n in 1..=attempts {
            tried.store(n, std::sync::atomic::Ordering::Relaxed);
            match self.once(&target.url, target.validators.as_ref()).await {
                Ok(outcome) => return outcome,
                Err(e) => {
                    tracing::debug!(township = %target.township, period = %target.period, attempt = n, error = %e.error, "Fetch attempt failed.");
                    last = e;
                }
            }
            if last.last {
                return FetchOutcome::Failed {
                    error: last.error,
                    attempts: n,
                };
            }
            if n < attempts {
                tokio::time::sleep(backoff(self.settings.retry_base_ms, n, &target.url)).await;
            }
        }
        match last.partial {
            // Cut off on every attempt: land what the last one received, so
            // nothing that arrived is lost, and let the normalizer quarantine it.
            Some((body, content_type, defect)) => FetchOutcome::Submitted {
                body,
                content_type,
                defect: Some(defect),
                validators: None,
            },
            None => FetchOutcome::Failed {
                error: last.error,
                attempts,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter() {
        for n in 1..=4 {
            let d = backoff(100, n, "u").as_millis() as u64;
            let exp = 100 << (n - 1);
            assert!(d >= exp * 3 / 4 && d <= exp * 5 / 4, "attempt {n}: {d}ms");
        }
    }
}
