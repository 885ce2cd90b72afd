//! Test fixtures for the pure stages: hand-written submissions normalized
//! with the embedded configuration, no IO.

use chrono::{DateTime, Utc};
use serde_json::Value;
use taizhang_model::Landing;

use crate::definition::{Definition, Pipeline, embedded_texts};
use crate::normalize::{Landed, Limits, Normalized, normalize};

/// A small deterministic generator (xorshift64): each call gives a number
/// below its argument. For tests that draw many random frames.
pub fn random(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |n| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    }
}

/// A frame of text columns (`names` and `texts` in order) followed by
/// `others`: the fact-shaped frames tests draw at random.
pub fn frame<const N: usize>(
    names: [&str; N],
    texts: [Vec<Option<String>>; N],
    others: Vec<polars::prelude::Column>,
) -> polars::prelude::DataFrame {
    use polars::prelude::{Column, DataFrame};
    let mut columns: Vec<Column> = names
        .iter()
        .zip(texts)
        .map(|(n, v)| Column::new((*n).into(), v))
        .collect();
    columns.extend(others);
    DataFrame::new_infer_height(columns).expect("test frames have columns of one height")
}

/// The embedded configuration.
pub fn config() -> Definition {
    Definition::from_texts(&embedded_texts()).expect("embedded config is valid")
}

/// The embedded configuration with extra catalog entries appended.
pub fn config_with(extra_catalog: &str) -> Definition {
    let mut t = embedded_texts();
    t.catalog.1.push_str(extra_catalog);
    Definition::from_texts(&t).expect("test config is valid")
}

/// A clock.
pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("test times are RFC 3339")
        .with_timezone(&Utc)
}

/// The landing record of `body`, fetched on 2026-07-01.
pub fn landing(pipeline: &str, township: &str, period: &str, body: &[u8]) -> Landing {
    Landing {
        pipeline: pipeline.to_string(),
        township: township.to_string(),
        period: period.to_string(),
        sha256: taizhang_model::sha256_hex(body),
        url: String::new(),
        bytes: body.len() as i64,
        content_type: None,
        defect: None,
        version: None,
        submitted_at: None,
        first_fetched_at: at("2026-07-01T00:00:00Z"),
        last_fetched_at: at("2026-07-01T00:00:00Z"),
    }
}

/// Nothing unreachable.
static REACHABLE: std::sync::LazyLock<std::collections::HashSet<(String, String)>> =
    std::sync::LazyLock::new(std::collections::HashSet::new);

/// What `pipeline`'s checks see of `n` at `now`: the whole registry and
/// its quotas, every township reachable, no earlier rows, no batch.
pub fn input<'a>(
    cfg: &'a Definition,
    pipeline: &'a Pipeline,
    n: &'a Normalized,
    now: &str,
) -> crate::checks::CheckInput<'a> {
    crate::checks::CheckInput {
        pipeline,
        catalog: &cfg.catalog,
        registry: &cfg.registry,
        quotas: &cfg.quotas,
        facts: &n.facts,
        submissions: &n.submissions,
        unreachable: &REACHABLE,
        now: at(now),
        quota_facts: None,
        earlier: None,
        series: None,
        part: None,
    }
}

/// Every check of the shipped monthly pipeline over normalized rows at `now`.
pub fn checked(cfg: &Definition, n: &Normalized, now: &str) -> polars::prelude::DataFrame {
    crate::checks::run_all(&input(cfg, &cfg.pipelines[0], n, now)).expect("checks run")
}

/// Every level's rollup of `n` with its check results.
pub fn levels(
    cfg: &Definition,
    n: &Normalized,
    checks: &polars::prelude::DataFrame,
) -> [polars::prelude::DataFrame; 4] {
    crate::rollup::hierarchy(
        &n.facts,
        checks,
        &n.submissions,
        &cfg.registry,
        &cfg.quotas,
        &cfg.catalog,
    )
    .expect("rolled up")
}

/// Normalizes `(township, period, document)` as if each had been landed.
pub fn normalized(cfg: &Definition, docs: &[(&str, &str, Value)]) -> Normalized {
    let bodies: Vec<Vec<u8>> = docs
        .iter()
        .map(|(_, _, d)| serde_json::to_vec(d).expect("JSON"))
        .collect();
    let landings: Vec<Landing> = docs
        .iter()
        .zip(&bodies)
        .map(|((t, p, _), b)| landing(&cfg.pipelines[0].name, t, p, b))
        .collect();
    let landed: Vec<Landed<'_>> = landings
        .iter()
        .zip(&bodies)
        .map(|(l, b)| Landed {
            landing: l,
            body: b,
            versions_landed: 1,
        })
        .collect();
    normalize(
        &cfg.pipelines[0],
        &cfg.catalog,
        &cfg.registry,
        &cfg.dhis2,
        &Limits::default(),
        &landed,
    )
    .expect("normalize")
}
