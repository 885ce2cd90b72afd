//! Sources: where township submissions are fetched from. A source turns a
//! [`FetchTarget`] into a [`FetchOutcome`]; it never parses what it fetched.

pub mod http;
pub mod inbox;
pub mod listing;

/// One report to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTarget {
    /// Pipeline name.
    pub pipeline: String,
    /// 9-digit township code.
    pub township: String,
    /// Period, as printed.
    pub period: String,
    /// URL from the pipeline's template, or `file://` and the path of an
    /// inbox file.
    pub url: String,
    /// What the portal said of the body landed last for this target: asked
    /// back (If-None-Match / If-Modified-Since) so that an unchanged report
    /// is not downloaded again.
    pub validators: Option<Validators>,
    /// The sha256 of the landed body `validators` describe, as the state
    /// said when the run began (a 304 means that body is still served).
    pub described: Option<String>,
    /// That body's length as landed (compared with a listing's `size`).
    pub described_bytes: Option<u64>,
}

/// HTTP cache validators of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// `ETag`.
    pub etag: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
}

impl Validators {
    /// None when the response had neither.
    pub fn of(etag: Option<String>, last_modified: Option<String>) -> Option<Validators> {
        (etag.is_some() || last_modified.is_some()).then_some(Validators { etag, last_modified })
    }
}

/// What fetching one target gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// 200: the township's submission, bytes exactly as received.
    Submitted {
        /// The body (with a `defect`, what arrived of it).
        body: Vec<u8>,
        /// Content-Type header.
        content_type: Option<String>,
        /// Why the body cannot be taken whole, when it cannot: larger than
        /// the body limit (reading stopped there), or cut off mid-transfer on
        /// every attempt. The bytes are still landed; the submission is
        /// quarantined with this reason.
        defect: Option<String>,
        /// The response's validators, to ask with next time.
        validators: Option<Validators>,
    },
    /// 304: the body landed last for this target is still what is served.
    NotModified,
    /// 404: nothing submitted yet.
    NotSubmitted,
    /// Anything else, after every retry.
    Failed {
        /// What went wrong, last attempt.
        error: String,
        /// Attempts made.
        attempts: u32,
    },
}

/// A place submissions come from.
///
/// Contract: `fetch` never panics and never errors out of band; every failure
/// is a [`FetchOutcome::Failed`] with a readable reason. Retrying is the
/// source's business; the caller records what comes back.
pub trait Source: Send + Sync {
    /// Fetches one target.
    fn fetch(&self, target: &FetchTarget) -> impl std::future::Future<Output = FetchOutcome> + Send;

    /// What `fetch` would answer for `target` without asking anyone (a
    /// report a listing showed unchanged), when the source knows it
    /// already: the run then spends no task on it. None by default.
    fn answered(&self, target: &FetchTarget) -> Option<FetchOutcome> {
        let _ = target;
        None
    }
}
