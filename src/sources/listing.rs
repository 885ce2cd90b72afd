//! Listings: a portal's page that names the reports it serves with their
//! validators (a pipeline's `listing_url`). A report listed as the body
//! landed last for it is not asked for: the listing said what a 304 would
//! have. A national portal answers a night's rerun with a few thousand
//! listings instead of 41,352 conditional requests.
//!
//! The body is a JSON array of entries, each an object with
//! - `name`: the report's URL, relative to the listing's (a file name in a
//!   folder's listing, or a path);
//! - `etag`: its `ETag`, or `mtime` (an HTTP date, as `Last-Modified`, or
//!   RFC 3339) and `size` (bytes);
//! - `type`: optional; an entry whose type is not `file` is passed over.
//!
//! Other keys are ignored: nginx's `autoindex_format json` is such a
//! listing. What a listing cannot show unchanged is asked for as without
//! one; a listing that cannot be fetched or read costs only the requests it
//! would have saved.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::{FetchOutcome, FetchTarget, Source, Validators};
use crate::definition::Definition;

/// One entry of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Entry {
    /// The report's URL, relative to the listing's.
    pub name: String,
    /// `file`, `directory`, … (absent: a file).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The body's `ETag`.
    #[serde(default)]
    pub etag: Option<String>,
    /// When the body last changed: an HTTP date or RFC 3339.
    #[serde(default)]
    pub mtime: Option<String>,
    /// The body's length in bytes.
    #[serde(default)]
    pub size: Option<u64>,
}

/// A listing read: each entry by the absolute URL it names (None: named
/// twice, differently; never taken as unchanged).
pub type Listed = HashMap<String, Option<Entry>>;

/// Reads a listing fetched from `url`.
pub fn read(url: &str, body: &[u8]) -> Result<Listed, String> {
    let base = reqwest::Url::parse(url).map_err(|e| format!("the listing's URL: {e}"))?;
    let entries: Vec<Entry> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON array of entries with a name: {e}"))?;
    let mut listed = Listed::with_capacity(entries.len());
    for e in entries {
        if e.kind.as_deref().is_some_and(|k| k != "file") {
            continue;
        }
        let Ok(at) = base.join(&e.name) else { continue };
        match listed.entry(at.into()) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Some(e));
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if o.get().as_ref() != Some(&e) {
                    o.insert(None);
                }
            }
        }
    }
    Ok(listed)
}

/// Whether `entry` shows the body a report's `validators` describe, `bytes`
/// long as landed: the same `ETag` (compared as If-None-Match does, weakly),
/// or, for an entry without one, the same modification time as
/// `Last-Modified` and the same size.
pub fn shows_unchanged(entry: &Entry, validators: &Validators, bytes: Option<u64>) -> bool {
    if let Some(listed) = &entry.etag {
        return validators.etag.as_deref().is_some_and(|e| opaque(e) == opaque(listed));
    }
    match (&entry.mtime, entry.size, &validators.last_modified, bytes) {
        (Some(mtime), Some(size), Some(last_modified), Some(bytes)) => size == bytes && same_time(mtime, last_modified),
        _ => false,
    }
}

/// An entity tag without its weakness mark and quotes.
fn opaque(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(tag)
}

/// Whether two times are one instant (HTTP dates or RFC 3339; text that is
/// neither only when it is the same text).
fn same_time(a: &str, b: &str) -> bool {
    let at = |s: &str| {
        let s = s.trim();
        chrono::DateTime::parse_from_rfc2822(s)
            .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
            .ok()
    };
    match (at(a), at(b)) {
        (Some(a), Some(b)) => a == b,
        (None, None) => a.trim() == b.trim(),
        _ => false,
    }
}

/// What a run's listings showed.
#[derive(Debug, Default)]
pub struct Shown {
    /// The reports shown unchanged: by program, their URLs as the targets
    /// give them (two programs may share a portal's URLs; only the one
    /// whose landed body was listed is answered).
    pub unchanged: HashMap<String, HashSet<String>>,
    /// Listings read.
    pub read: usize,
    /// Listings that could not be fetched or read, with why.
    pub failed: Vec<(String, String)>,
}

/// Fetches the listings of `targets` (those with a landed body to compare
/// with) through `source`, `concurrency` at once, and says which reports
/// they show unchanged.
pub async fn show<S: Source>(source: &S, def: &Definition, targets: &[FetchTarget], concurrency: usize) -> Shown {
    // Each listing with the targets it may show.
    let mut by_listing: HashMap<String, (String, Vec<usize>)> = HashMap::new();
    for (i, t) in targets.iter().enumerate() {
        if t.validators.is_none() || t.described_bytes.is_none() {
            continue;
        }
        let Some(url) = def
            .pipeline(&t.pipeline)
            .and_then(|p| p.listing_of(&t.township, &t.period))
        else {
            continue;
        };
        by_listing
            .entry(url)
            .or_insert_with(|| (t.pipeline.clone(), Vec::new()))
            .1
            .push(i);
    }
    let mut shown = Shown::default();
    if by_listing.is_empty() {
        return shown;
    }
    tracing::debug!(listings = by_listing.len(), "Asking the listings.");
    let fetches = by_listing.into_iter().map(|(url, (pipeline, at))| async move {
        let target = FetchTarget {
            pipeline,
            township: String::new(),
            period: String::new(),
            url,
            validators: None,
            described: None,
            described_bytes: None,
        };
        let read = match source.fetch(&target).await {
            FetchOutcome::Submitted { defect: Some(d), .. } => Err(d),
            FetchOutcome::Submitted { body, .. } => read(&target.url, &body),
            FetchOutcome::NotModified => Err("304 to a request without validators".to_string()),
            FetchOutcome::NotSubmitted => Err("404".to_string()),
            FetchOutcome::Failed { error, .. } => Err(error),
        };
        (target.url, at, read)
    });
    let mut results =
        futures_util::StreamExt::buffer_unordered(futures_util::stream::iter(fetches), concurrency.max(1));
    while let Some((url, at, read)) = futures_util::StreamExt::next(&mut results).await {
        let listed = match read {
            Ok(listed) => listed,
            Err(why) => {
                shown.failed.push((url, why));
                continue;
            }
        };
        shown.read += 1;
        for i in at {
            let t = &targets[i];
            let Some(validators) = &t.validators else { continue };
            // Found as written (a URL from a template is usually written
            // as parsing would write it: a key is a parsed URL), else parsed.
            let entry = match listed.get(t.url.as_str()) {
                Some(entry) => entry,
                None => match reqwest::Url::parse(&t.url) {
                    Ok(key) => listed.get(key.as_str()).unwrap_or(&None),
                    Err(_) => &None,
                },
            };
            if let Some(entry) = entry
                && shows_unchanged(entry, validators, t.described_bytes)
            {
                shown
                    .unchanged
                    .entry(t.pipeline.clone())
                    .or_default()
                    .insert(t.url.clone());
            }
        }
    }
    shown
}

/// A listing's URL as logged: without its query or fragment, which may
/// carry a portal's key.
pub fn for_log(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or_default()
}

/// A source that answers 304 for the reports a run's listings showed
/// unchanged, and asks `inner` for every other.
#[derive(Debug, Clone)]
pub struct WithListings<S> {
    /// Where other targets go.
    pub inner: S,
    /// [`Shown::unchanged`].
    pub unchanged: std::sync::Arc<HashMap<String, HashSet<String>>>,
}

impl<S: Source> Source for WithListings<S> {
    async fn fetch(&self, target: &FetchTarget) -> FetchOutcome {
        match self.answered(target) {
            Some(outcome) => outcome,
            None => self.inner.fetch(target).await,
        }
    }

    fn answered(&self, target: &FetchTarget) -> Option<FetchOutcome> {
        let shown = self
            .unchanged
            .get(&target.pipeline)
            .is_some_and(|urls| urls.contains(&target.url));
        match shown {
            true => Some(FetchOutcome::NotModified),
            false => self.inner.answered(target),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators(etag: Option<&str>, last_modified: Option<&str>) -> Validators {
        Validators {
            etag: etag.map(Into::into),
            last_modified: last_modified.map(Into::into),
        }
    }

    /// A portal with nothing submitted (404 to everything) that counts the
    /// requests it answers.
    #[derive(Clone, Default)]
    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Source for Counting {
        async fn fetch(&self, _: &FetchTarget) -> FetchOutcome {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            FetchOutcome::NotSubmitted
        }
    }

    #[tokio::test]
    async fn only_the_program_whose_report_was_shown_unchanged_is_answered_for_its_url() {
        let target = |pipeline: &str| FetchTarget {
            pipeline: pipeline.into(),
            township: "341124102".into(),
            period: "2026-06".into(),
            url: "http://portal/r/341124102/2026-06".into(),
            validators: None,
            described: None,
            described_bytes: None,
        };
        let inner = Counting::default();
        let shown: HashMap<String, HashSet<String>> =
            [("monthly".to_string(), [target("monthly").url].into_iter().collect())].into();
        let source = WithListings {
            inner: inner.clone(),
            unchanged: std::sync::Arc::new(shown),
        };
        assert_eq!(source.fetch(&target("monthly")).await, FetchOutcome::NotModified);
        assert_eq!(source.answered(&target("monthly")), Some(FetchOutcome::NotModified));
        assert_eq!(source.answered(&target("quarterly")), None);
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::Relaxed), 0);
        // Another program at the same URL is asked for.
        assert_eq!(source.fetch(&target("quarterly")).await, FetchOutcome::NotSubmitted);
        assert_eq!(inner.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    /// A portal whose every answer is one listing.
    #[derive(Clone)]
    struct Lists(&'static str);

    impl Source for Lists {
        async fn fetch(&self, _: &FetchTarget) -> FetchOutcome {
            FetchOutcome::Submitted {
                body: self.0.as_bytes().to_vec(),
                content_type: None,
                defect: None,
                validators: None,
            }
        }
    }

    #[tokio::test]
    async fn a_report_is_found_in_its_listing_however_its_url_is_written() {
        let mut texts = crate::definition::embedded_texts();
        texts.pipelines[0].1 = texts.pipelines[0].1.replace(
            "deadline_days = 5",
            "deadline_days = 5\nlisting_url = \"http://portal/r/{period}/{county}/\"",
        );
        let def = Definition::from_texts(&texts).unwrap();
        let target = |township: &str, url: &str| FetchTarget {
            pipeline: def.pipelines[0].name.clone(),
            township: township.into(),
            period: "2026-06".into(),
            url: url.into(),
            validators: Some(validators(Some("\"e\""), None)),
            described: Some("sha".into()),
            described_bytes: Some(1),
        };
        let targets = [
            // As parsing writes it, and as an operator may write it.
            target("341124101", "http://portal/r/2026-06/341124/341124101.json"),
            target("341124102", "http://PORTAL:80/r/2026-06/341124/341124102.json"),
            // Listed with another ETag; not listed.
            target("341124103", "http://portal/r/2026-06/341124/341124103.json"),
            target("341124104", "http://portal/r/2026-06/341124/341124104.json"),
        ];
        let body = r#"[{"name":"341124101.json","etag":"\"e\""},{"name":"341124102.json","etag":"\"e\""},
                       {"name":"341124103.json","etag":"\"f\""}]"#;
        let shown = show(&Lists(body), &def, &targets, 4).await;
        assert_eq!((shown.read, shown.failed.len()), (1, 0));
        let mut urls: Vec<&str> = shown.unchanged[&def.pipelines[0].name]
            .iter()
            .map(String::as_str)
            .collect();
        urls.sort_unstable();
        assert_eq!(urls, [&targets[1].url, &targets[0].url]);
    }

    #[test]
    fn a_listing_is_logged_without_its_query() {
        assert_eq!(
            for_log("https://portal/l/2026-06/?key=s3cret&x=1"),
            "https://portal/l/2026-06/"
        );
        assert_eq!(for_log("https://portal/l/#k=s3cret"), "https://portal/l/");
        assert_eq!(for_log("http://portal/l/341124/"), "http://portal/l/341124/");
    }

    #[test]
    fn nginx_autoindex_json_is_a_listing_of_files_by_their_url() {
        let body = br#"[
            { "name":"110101001.json", "type":"file", "mtime":"Sun, 06 Dec 2026 03:50:00 GMT", "size":13183 },
            { "name":"old", "type":"directory", "mtime":"Sun, 06 Dec 2026 03:50:00 GMT" },
            { "name":"/reports/110101002/2026-06", "etag":"\"abc\"" }
        ]"#;
        let listed = read("http://portal:8080/r/110101/", body).unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        let file = listed["http://portal:8080/r/110101/110101001.json"].as_ref().unwrap();
        assert_eq!((file.size, file.etag.as_deref()), (Some(13183), None));
        assert!(listed.contains_key("http://portal:8080/reports/110101002/2026-06"));
    }

    #[test]
    fn a_listing_that_is_not_an_array_of_named_entries_is_an_error() {
        for body in [&b"{}"[..], b"[{\"size\":3}]", b"<html>", b"[{\"name\":1}]", b""] {
            assert!(read("http://p/l/", body).is_err(), "{}", String::from_utf8_lossy(body));
        }
        assert!(read("not a url", b"[]").is_err());
    }

    #[test]
    fn a_url_named_twice_differently_is_never_shown_unchanged() {
        let body =
            br#"[{"name":"a","etag":"1"},{"name":"a","etag":"2"},{"name":"b","etag":"3"},{"name":"b","etag":"3"}]"#;
        let listed = read("http://p/l/", body).unwrap();
        assert_eq!(listed["http://p/l/a"], None);
        assert_eq!(
            listed["http://p/l/b"].as_ref().and_then(|e| e.etag.as_deref()),
            Some("3")
        );
    }

    #[test]
    fn an_entry_shows_a_body_unchanged_by_its_etag_or_by_its_time_and_size() {
        let lm = "Sun, 06 Dec 2026 03:50:00 GMT";
        let entry = |etag: Option<&str>, mtime: Option<&str>, size: Option<u64>| Entry {
            name: "x".into(),
            etag: etag.map(Into::into),
            mtime: mtime.map(Into::into),
            size,
            ..Default::default()
        };
        let v = validators(Some("\"6933a7c6-337f\""), Some(lm));
        // The ETag, compared weakly, quoted or not.
        assert!(shows_unchanged(&entry(Some("\"6933a7c6-337f\""), None, None), &v, None));
        assert!(shows_unchanged(&entry(Some("6933a7c6-337f"), None, None), &v, None));
        assert!(shows_unchanged(
            &entry(Some("W/\"6933a7c6-337f\""), None, None),
            &v,
            None
        ));
        assert!(!shows_unchanged(
            &entry(Some("\"6933a7c6-3380\""), None, None),
            &v,
            None
        ));
        // An ETag that differs is not outvoted by time and size.
        assert!(!shows_unchanged(
            &entry(Some("\"other\""), Some(lm), Some(13183)),
            &v,
            Some(13183)
        ));
        // Time and size: the same instant however written, the landed length.
        assert!(shows_unchanged(&entry(None, Some(lm), Some(13183)), &v, Some(13183)));
        assert!(shows_unchanged(
            &entry(None, Some("2026-12-06T11:50:00+08:00"), Some(13183)),
            &v,
            Some(13183)
        ));
        assert!(!shows_unchanged(
            &entry(None, Some("Sun, 06 Dec 2026 03:50:01 GMT"), Some(13183)),
            &v,
            Some(13183)
        ));
        assert!(!shows_unchanged(&entry(None, Some(lm), Some(13184)), &v, Some(13183)));
        // A body cut short when it landed is shorter than what is listed.
        assert!(!shows_unchanged(&entry(None, Some(lm), Some(13183)), &v, Some(4096)));
        // Time without size, size without time, nothing landed to compare with.
        assert!(!shows_unchanged(&entry(None, Some(lm), None), &v, Some(13183)));
        assert!(!shows_unchanged(&entry(None, None, Some(13183)), &v, Some(13183)));
        assert!(!shows_unchanged(&entry(None, Some(lm), Some(13183)), &v, None));
        // Nothing the portal said to compare with.
        assert!(!shows_unchanged(
            &entry(Some("\"6933a7c6-337f\""), None, None),
            &validators(None, Some(lm)),
            None
        ));
        assert!(!shows_unchanged(
            &entry(None, Some(lm), Some(13183)),
            &validators(Some("\"e\""), None),
            Some(13183)
        ));
        // Text that is no time is compared as text.
        assert!(shows_unchanged(
            &entry(None, Some("v7"), Some(1)),
            &validators(None, Some("v7")),
            Some(1)
        ));
        assert!(!shows_unchanged(
            &entry(None, Some("v7"), Some(1)),
            &validators(None, Some(lm)),
            Some(1)
        ));
    }
}
