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
    /// The origins requested, parsed once (see [`Origins`]).
    origins: std::sync::Arc<Origins>,
}

/// Request URLs parsed with their origin's parse reused: a national year
/// asks 455,000 URLs of one origin, and parsing each whole (its host through
/// IDNA) was a tenth of the fetch's CPU. A URL whose path and query are
/// plain (letters, digits, `-`, `_`, `/`, `=`, `&`, one `?`) is its origin's
/// parsed URL with the path and query set; any other is parsed whole, so
/// both give the same [`reqwest::Url`].
#[derive(Debug, Default)]
pub(crate) struct Origins {
    /// `scheme://authority/` and its parse; a deployment has a few.
    parsed: std::sync::RwLock<Vec<(String, reqwest::Url)>>,
}

impl Origins {
    /// Origins kept at most (a URL of any other is parsed whole).
    const MOST: usize = 16;

    pub(crate) fn parse(&self, url: &str) -> Result<reqwest::Url, String> {
        let Some((origin, path, query)) = plain(url) else {
            return reqwest::Url::parse(url).map_err(|e| e.to_string());
        };
        let known = {
            let parsed = self.parsed.read().unwrap_or_else(|p| p.into_inner());
            parsed.iter().find(|(o, _)| o == origin).map(|(_, u)| u.clone())
        };
        let mut u = match known {
            Some(u) => u,
            None => {
                let u = reqwest::Url::parse(origin).map_err(|e| e.to_string())?;
                let mut parsed = self.parsed.write().unwrap_or_else(|p| p.into_inner());
                if parsed.len() < Self::MOST && u.as_str() == origin {
                    parsed.push((origin.to_string(), u.clone()));
                } else if u.as_str() != origin {
                    // Not in its canonical form (case, a default port):
                    // parsed whole, every time.
                    return reqwest::Url::parse(url).map_err(|e| e.to_string());
                }
                u
            }
        };
        u.set_path(path);
        u.set_query(query);
        Ok(u)
    }
}

/// `url` as origin (`http(s)://authority/`), path and query when its path
/// and query are plain (see [`Origins`]).
fn plain(url: &str) -> Option<(&str, &str, Option<&str>)> {
    let after = url
        .strip_prefix("http://")
        .map(|r| (7, r))
        .or_else(|| url.strip_prefix("https://").map(|r| (8, r)))?;
    let slash = after.0 + after.1.find('/')?;
    let (origin, rest) = (&url[..=slash], &url[slash..]);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let ok = |s: &str, extra: &[u8]| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || extra.contains(&b))
    };
    (ok(path, b"/") && query.is_none_or(|q| ok(q, b"=&"))).then_some((origin, path, query))
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
            origins: Default::default(),
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
        // A URL that cannot be parsed is given as it is: reqwest's error.
        let mut req = match self.origins.parse(url) {
            Ok(parsed) => self.client.get(parsed),
            Err(_) => self.client.get(url),
        };
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
    use proptest::prelude::*;

    proptest! {
        /// The reused origin's parse gives what parsing the URL whole does,
        /// for plain paths and queries and for any other.
        #[test]
        fn a_url_parsed_with_its_origin_reused_is_the_url_parsed_whole(
            scheme in prop::sample::select(vec!["http", "https", "HTTP", "ftp"]),
            host in "[a-zA-Z0-9.-]{1,12}|\\[::1\\]|127\\.0\\.0\\.1|bücher\\.cn",
            port in prop::option::of(prop::sample::select(vec![80u16, 443, 8080, 42775])),
            path in "(/[a-zA-Z0-9_.%-]{0,6}){0,4}/?",
            query in prop::option::of("[a-z0-9=&?._%-]{0,12}"),
            tail in prop::option::of("#[a-z]{0,3}| [a-z]{0,3}"),
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let path = if path.is_empty() { "/".to_string() } else { path };
            let query = query.map(|q| format!("?{q}")).unwrap_or_default();
            let url = format!("{scheme}://{host}{port}{path}{query}{}", tail.unwrap_or_default());
            let origins = Origins::default();
            // Twice: the origin parsed, then reused.
            for _ in 0..2 {
                let fast = origins.parse(&url).map(|u| u.to_string()).map_err(|e| e.to_string());
                let whole = reqwest::Url::parse(&url).map(|u| u.to_string()).map_err(|e| e.to_string());
                prop_assert_eq!(fast, whole, "{}", url);
            }
        }
    }

    #[test]
    fn a_plain_url_reuses_its_origin() {
        let origins = Origins::default();
        let a = origins
            .parse("http://127.0.0.1:42775/reports/110101001/2026-06")
            .unwrap();
        let b = origins
            .parse("http://127.0.0.1:42775/reports/110101002/2026-06?v=2&x")
            .unwrap();
        assert_eq!(a.as_str(), "http://127.0.0.1:42775/reports/110101001/2026-06");
        assert_eq!(b.as_str(), "http://127.0.0.1:42775/reports/110101002/2026-06?v=2&x");
        assert_eq!(origins.parsed.read().unwrap().len(), 1);
        // Not plain: parsed whole, no origin kept for it.
        let c = origins.parse("http://other.example/a/../b").unwrap();
        assert_eq!(c.as_str(), "http://other.example/b");
        assert_eq!(origins.parsed.read().unwrap().len(), 1);
    }

    #[test]
    fn backoff_doubles_within_jitter() {
        for n in 1..=4 {
            let d = backoff(100, n, "u").as_millis() as u64;
            let exp = 100 << (n - 1);
            assert!(d >= exp * 3 / 4 && d <= exp * 5 / 4, "attempt {n}: {d}ms");
        }
    }
}
