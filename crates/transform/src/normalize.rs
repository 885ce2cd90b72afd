//! Normalize: the current submission of every (township, period) becomes long
//! rows — township, period, indicator code, dimension, category, value in the
//! catalog unit, flags, provenance. What cannot be used goes to the quarantine
//! with its reason; nothing is dropped silently. Pure: no IO, no clock.
//!
//! Conservation holds per submission and is recorded in the submissions
//! table: values received = values published + values quarantined + values
//! held for review (a document's uncertain extractions).
//!
//! A document (work summary) arrives parsed with the extractor's mentions
//! beside its values: confident ones are published flagged `extracted`,
//! uncertain ones held for review; every mention, stated quotas included,
//! becomes a row of `extractions` with its provenance.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use polars::prelude::*;
use taizhang_model::Landing;

use crate::catalog::{Catalog, Indicator};
use crate::definition::Pipeline;
use crate::extract::Decision;
use crate::normalize_value::{Reading, read};
use crate::period::Period;
use crate::registry::{NameMatch, Registry};
use crate::submission::{Cell, CompactString, ECHO_CHARS, RawValue, Submission, clip};
use crate::text::TextBuilder;

/// Limits on what one submission may contain; over a limit it is
/// quarantined with the reason, and the run goes on.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Values in one submission.
    pub max_values: usize,
    /// Rows in one submission (JSON/DHIS2 entries, CSV records, sheet rows).
    pub max_rows: usize,
    /// Values on one row (CSV fields, filled cells on a sheet row).
    pub max_row_values: usize,
    /// Bytes an .xlsx may inflate to.
    pub max_uncompressed_bytes: u64,
    /// Characters in one label or value.
    pub max_text_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let read = crate::submission::ReadLimits::default();
        Limits {
            max_values: 20_000,
            max_rows: read.max_rows,
            max_row_values: read.max_row_values,
            max_uncompressed_bytes: read.max_uncompressed_bytes,
            max_text_chars: 200,
        }
    }
}

impl Limits {
    /// The parsers' share of the limits.
    pub fn read(&self) -> crate::submission::ReadLimits {
        crate::submission::ReadLimits {
            max_rows: self.max_rows,
            max_row_values: self.max_row_values,
            max_uncompressed_bytes: self.max_uncompressed_bytes,
        }
    }
}

/// Longest force-submit explanation published (submissions, check results);
/// the whole text stays in the raw body.
pub const EXPLANATION_CHARS: usize = 2000;

/// One landed body chosen as the current version of its (township, period).
pub struct Landed<'a> {
    /// Its landing record.
    pub landing: &'a Landing,
    /// The bytes as sent.
    pub body: &'a [u8],
    /// How many distinct bodies were landed for the same (township, period).
    pub versions_landed: usize,
}

/// The normalized tables of one pipeline.
#[derive(Clone)]
pub struct Normalized {
    /// Long fact rows, all indicators: the columns of [`FACT_COLUMNS`].
    pub facts: DataFrame,
    /// Rows set aside, with reasons.
    pub quarantine: DataFrame,
    /// One row per current submission.
    pub submissions: DataFrame,
    /// Every value found in a document, with its provenance and status.
    pub extractions: DataFrame,
}

#[derive(Default)]
struct Facts {
    program: TextBuilder,
    township: TextBuilder,
    county: TextBuilder,
    period: TextBuilder,
    year: Vec<i32>,
    indicator: TextBuilder,
    dimension: TextBuilder,
    category: TextBuilder,
    value: Vec<Option<f64>>,
    unit: TextBuilder,
    approx: Vec<bool>,
    missing: Vec<bool>,
    value_raw: TextBuilder,
    sha: TextBuilder,
    submitted_at: Vec<Option<i64>>,
    version: Vec<Option<i64>>,
    index: Vec<i64>,
    extracted: Vec<bool>,
}

impl Facts {
    /// Room for `rows` more facts (a group of bodies' values, counted
    /// before they are normalized: no column grows a value at a time).
    fn reserve(&mut self, rows: usize) {
        for column in [
            &mut self.program,
            &mut self.township,
            &mut self.county,
            &mut self.period,
            &mut self.indicator,
            &mut self.dimension,
            &mut self.category,
            &mut self.unit,
            &mut self.value_raw,
            &mut self.sha,
        ] {
            column.reserve(rows);
        }
        self.year.reserve(rows);
        self.value.reserve(rows);
        self.approx.reserve(rows);
        self.missing.reserve(rows);
        self.submitted_at.reserve(rows);
        self.version.reserve(rows);
        self.index.reserve(rows);
        self.extracted.reserve(rows);
    }
}

#[derive(Default)]
struct Quarantine {
    program: Vec<String>,
    township: Vec<String>,
    period: Vec<String>,
    year: Vec<i32>,
    sha: Vec<String>,
    indicator_label: Vec<Option<String>>,
    dimension: Vec<Option<String>>,
    category: Vec<Option<String>>,
    value_raw: Vec<Option<String>>,
    reason: Vec<String>,
    index: Vec<Option<i64>>,
}

#[derive(Default)]
struct Submissions {
    program: Vec<String>,
    township: Vec<String>,
    period: Vec<String>,
    year: Vec<i32>,
    sha: Vec<String>,
    format: Vec<Option<String>>,
    encoding: Vec<Option<String>>,
    version: Vec<Option<i64>>,
    submitted_at: Vec<Option<i64>>,
    first_fetched_at: Vec<i64>,
    deadline: Vec<i64>,
    first_seen: Vec<i64>,
    status: Vec<String>,
    explanation: Vec<Option<String>>,
    received: Vec<i64>,
    published: Vec<i64>,
    quarantined: Vec<i64>,
    in_review: Vec<i64>,
    versions_landed: Vec<i64>,
}

/// The rows of `extractions`: a document's mentions.
#[derive(Default)]
struct Extractions {
    program: Vec<String>,
    township: Vec<String>,
    county: Vec<String>,
    period: Vec<String>,
    year: Vec<i32>,
    review_id: Vec<String>,
    indicator: Vec<String>,
    name: Vec<String>,
    dimension: Vec<Option<String>>,
    category: Vec<Option<String>>,
    value: Vec<Option<f64>>,
    unit: Vec<String>,
    approx: Vec<bool>,
    missing: Vec<bool>,
    kind: Vec<&'static str>,
    text: Vec<String>,
    sentence: Vec<String>,
    start: Vec<i64>,
    end: Vec<i64>,
    rule: Vec<String>,
    confidence: Vec<f64>,
    decision: Vec<&'static str>,
    status: Vec<&'static str>,
    sha: Vec<String>,
    submitted_at: Vec<Option<i64>>,
    version: Vec<Option<i64>>,
    index: Vec<Option<i64>>,
}

/// The review queue's id of a document's value: stable across runs (the
/// document's sha256, where the value stands in it, and its cell).
pub fn review_id(sha256: &str, m: &crate::extract::Mention) -> String {
    let key = format!(
        "{sha256}:{}:{}:{}:{}:{}",
        m.start,
        m.end,
        m.indicator,
        m.dimension.as_deref().unwrap_or(""),
        m.category.as_deref().unwrap_or("")
    );
    taizhang_model::sha256_hex(key.as_bytes())[..12].to_string()
}

/// The document a mention comes from, for extraction rows.
struct Doc<'a> {
    pipeline: &'a Pipeline,
    landing: &'a Landing,
    county: &'a str,
    year: i32,
    submitted_at: Option<i64>,
    version: Option<i64>,
}

impl Extractions {
    /// One mention; `cell` is where it resolved to (else the mention's own
    /// labels), `outcome` its status with the value and approx as read.
    fn push(
        &mut self,
        d: &Doc<'_>,
        catalog: &Catalog,
        m: &crate::extract::Mention,
        cell: Option<&Cellkey>,
        (status, value, approx): (&'static str, Option<f64>, bool),
        index: Option<usize>,
    ) {
        self.program.push(d.pipeline.name.clone());
        self.township.push(d.landing.township.clone());
        self.county.push(d.county.to_string());
        self.period.push(d.landing.period.clone());
        self.year.push(d.year);
        self.review_id.push(review_id(&d.landing.sha256, m));
        self.indicator.push(m.indicator.clone());
        self.name.push(m.name.clone());
        self.dimension.push(cell.map_or(m.dimension.clone(), |c| c.1.clone()));
        self.category.push(cell.map_or(m.category.clone(), |c| c.2.clone()));
        self.value.push(value);
        self.unit
            .push(catalog.get(&m.indicator).map_or_else(String::new, |i| i.unit.clone()));
        self.approx.push(approx);
        self.missing.push(value.is_none());
        self.kind.push(match m.kind {
            crate::extract::MentionKind::Achievement => "achievement",
            crate::extract::MentionKind::Quota => "quota",
        });
        self.text.push(m.text.clone());
        self.sentence.push(clip(&m.sentence, SENTENCE_CHARS));
        self.start.push(m.start as i64);
        self.end.push(m.end as i64);
        self.rule.push(m.rule.clone());
        self.confidence.push(m.confidence);
        self.decision.push(match m.decision {
            Decision::Publish => "publish",
            Decision::Review => "review",
        });
        self.status.push(status);
        self.sha.push(d.landing.sha256.clone());
        self.submitted_at.push(d.submitted_at);
        self.version.push(d.version);
        self.index.push(index.map(|i| i as i64));
    }
}

/// Longest sentence published beside an extracted value (the whole text
/// stays in `raw/`).
pub const SENTENCE_CHARS: usize = 400;

/// The columns of [`Normalized::facts`], in their order.
pub const FACT_COLUMNS: [&str; 18] = [
    "program",
    "township",
    "county",
    "period",
    "year",
    "indicator",
    "dimension",
    "category",
    "value",
    "unit",
    "approx",
    "missing",
    "value_raw",
    "source_sha256",
    "submitted_at",
    "version",
    "value_index",
    "extracted",
];

/// Identity of one landed body, for quarantine rows.
struct Origin<'a> {
    program: &'a str,
    township: &'a str,
    period: &'a str,
    year: i32,
    sha: &'a str,
}

impl Quarantine {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        o: &Origin<'_>,
        index: Option<usize>,
        label: Option<String>,
        dim: Option<String>,
        cat: Option<String>,
        raw: Option<String>,
        reason: String,
    ) {
        self.index.push(index.map(|i| i as i64));
        self.program.push(o.program.to_string());
        self.township.push(o.township.to_string());
        self.period.push(o.period.to_string());
        self.year.push(o.year);
        self.sha.push(o.sha.to_string());
        self.indicator_label.push(label);
        self.dimension.push(dim);
        self.category.push(cat);
        self.value_raw.push(raw);
        self.reason.push(reason);
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Checks the submission's own header against what was requested; returns
/// the reason the whole submission must be set aside, if any.
/// Every field the township wrote is clipped before it is echoed.
fn header_problem(sub: &Submission, landing: &Landing, pipeline: &Pipeline, registry: &Registry) -> Option<String> {
    if let Some(p) = &sub.program
        && p != &pipeline.name
    {
        return Some(format!(
            "submission is for program {:?}, not {:?}",
            clip(p, ECHO_CHARS),
            pipeline.name
        ));
    }
    if let Some(p) = &sub.period {
        match p.parse::<Period>() {
            Err(_) => {
                return Some(format!(
                    "period {:?} is not YYYY-MM, YYYY-Qn, YYYY-H1/H2 or YYYY",
                    clip(p, ECHO_CHARS)
                ));
            }
            Ok(p) if p.to_string() != landing.period => {
                return Some(format!(
                    "submission is for period {p}, but {} was requested",
                    landing.period
                ));
            }
            Ok(_) => {}
        }
    }
    let resolved = match (&sub.township, &sub.township_name) {
        (Some(code), _) => match registry.get(code) {
            Some(_) => code.clone(),
            None => {
                return Some(format!(
                    "township code {:?} is not in the registry",
                    clip(code, ECHO_CHARS)
                ));
            }
        },
        (None, Some(name)) => match registry.resolve_name(name) {
            NameMatch::Found(code) => code,
            NameMatch::Unknown => {
                let similar = registry.similar(name);
                let name = clip(name, ECHO_CHARS);
                return Some(format!(
                    "township name {name:?} matches no township of the registry (considered: {})",
                    if similar.is_empty() {
                        "none alike".to_string()
                    } else {
                        similar.join(", ")
                    }
                ));
            }
            NameMatch::Ambiguous(c) => {
                return Some(format!(
                    "township name {:?} is ambiguous: could be {}",
                    clip(name, ECHO_CHARS),
                    c.join(", ")
                ));
            }
        },
        (None, None) => landing.township.clone(),
    };
    if resolved != landing.township {
        return Some(format!(
            "submission is for township {resolved}, but {} was requested",
            landing.township
        ));
    }
    None
}

/// Why what was landed is not the report as sent, or not a report at all:
/// the landing's defect (over the size limit, cut off), else a Content-Type
/// that is no report format. Such a submission is quarantined whole.
pub fn transfer_problem(landing: &Landing) -> Option<String> {
    landing.defect.clone().or_else(|| {
        landing
            .content_type
            .as_deref()
            .and_then(crate::submission::content_type_problem)
    })
}

/// Normalizes the current submissions of one pipeline.
pub fn normalize(
    pipeline: &Pipeline,
    catalog: &Catalog,
    registry: &Registry,
    dhis2: &crate::dhis2::Mapping,
    limits: &Limits,
    landed: &[Landed<'_>],
) -> PolarsResult<Normalized> {
    let mut acc = Acc::default();
    for l in landed {
        let parsed = crate::parse::parse_body(pipeline.source_kind, l.body, catalog, dhis2, &limits.read());
        acc.add(
            pipeline,
            catalog,
            registry,
            limits,
            l.landing,
            l.versions_landed,
            &parsed,
        );
    }
    acc.finish()
}

/// Normalizes one landing from the result of parsing its body (landing
/// parses a new body once, and normalizes it right away from that parse).
pub fn normalize_parsed(
    pipeline: &Pipeline,
    catalog: &Catalog,
    registry: &Registry,
    limits: &Limits,
    landing: &Landing,
    parsed: &Result<Submission, crate::submission::ParseError>,
) -> PolarsResult<Normalized> {
    let mut acc = Acc::default();
    acc.add(pipeline, catalog, registry, limits, landing, 1, parsed);
    acc.finish()
}

/// Normalizes several landings at once from their parses (landing keeps
/// them in groups: one set of frames per group, not per body).
pub fn normalize_parsed_many(
    pipeline: &Pipeline,
    catalog: &Catalog,
    registry: &Registry,
    limits: &Limits,
    landed: &[(&Landing, &Result<Submission, crate::submission::ParseError>)],
) -> PolarsResult<Normalized> {
    let mut acc = Acc::default();
    // A body over the limit is quarantined whole: it makes no fact row,
    // and sizes nothing (a hostile group would otherwise reserve 256 ×
    // the limit for none).
    let values: usize = landed
        .iter()
        .filter_map(|(_, parsed)| parsed.as_ref().ok())
        .map(|sub| sub.values.len())
        .filter(|&n| n <= limits.max_values)
        .sum();
    acc.f.reserve(values);
    for (landing, parsed) in landed {
        acc.add(pipeline, catalog, registry, limits, landing, 1, parsed);
    }
    acc.finish()
}

/// Rows being built for one or more landings.
#[derive(Default)]
struct Acc<'c> {
    f: Facts,
    q: Quarantine,
    s: Submissions,
    x: Extractions,
    readings: HashMap<String, Reading>,
    /// Cells already resolved, by the labels values were written with (a
    /// group of bodies writes the same few hundred labels again and again).
    cells: CellCache<'c>,
}

impl<'c> Acc<'c> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        pipeline: &Pipeline,
        catalog: &'c Catalog,
        registry: &Registry,
        limits: &Limits,
        landing: &Landing,
        versions_landed: usize,
        parsed: &Result<Submission, crate::submission::ParseError>,
    ) {
        let Acc {
            f,
            q,
            s,
            x,
            readings,
            cells: cache,
        } = self;
        let period: Period = match landing.period.parse() {
            Ok(p) => p,
            Err(_) => return, // landings are keyed by periods we generated; cannot happen
        };
        let o = Origin {
            program: &pipeline.name,
            township: &landing.township,
            period: &landing.period,
            year: period.year,
            sha: &landing.sha256,
        };
        let county = registry
            .get(&landing.township)
            .map(|t| t.county.clone())
            .unwrap_or_default();
        let (mut received, mut published, mut quarantined, mut in_review) = (0i64, 0i64, 0i64, 0i64);
        // What arrived is not the report as sent, or not a report at all.
        let transfer = transfer_problem(landing);
        let sub = match &parsed {
            Ok(sub) => match transfer
                .clone()
                .or_else(|| header_problem(sub, landing, pipeline, registry))
                .or_else(|| {
                    (sub.values.len() > limits.max_values).then(|| {
                        format!(
                            "submission has {} values, over the limit of {}",
                            sub.values.len(),
                            limits.max_values
                        )
                    })
                }) {
                None => Some(sub),
                Some(reason) => {
                    received = sub.values.len() as i64;
                    for (i, v) in sub.values.iter().enumerate() {
                        q.push(
                            &o,
                            Some(i),
                            v.indicator.as_deref().map(String::from),
                            v.dimension.as_deref().map(String::from),
                            v.category.as_deref().map(String::from),
                            Some(v.value.raw()),
                            reason.clone(),
                        );
                    }
                    if sub.values.is_empty() {
                        q.push(&o, None, None, None, None, None, reason);
                    }
                    quarantined = received;
                    None
                }
            },
            Err(e) => {
                let reason = match &transfer {
                    Some(t) => format!("{t}; submission unreadable: {e}"),
                    None => format!("submission unreadable: {e}"),
                };
                q.push(&o, None, None, None, None, None, reason);
                None
            }
        };
        if let Some(sub) = sub {
            let submitted_at = sub.submitted_at.map(|t| micros(t.with_timezone(&Utc)));
            // The same cell twice in one submission: written the same, it
            // counts once; written differently, none of them counts.
            // Each value's cell (or why it has none), worked out once.
            let ids: Vec<Result<CellId, String>> = sub
                .values
                .iter()
                .enumerate()
                .map(|(i, v)| cell_of(i, v, catalog, &pipeline.indicators, limits, &pipeline.name, cache))
                .collect();
            let cache = &*cache;
            let resolved = |i: usize| match &ids[i] {
                Ok(id) => cache.get(*id).as_ref().map_err(String::as_str),
                Err(e) => Err(e.as_str()),
            };
            // A document's values held for review do not count against the
            // published ones (a reviewer decides them).
            let held = |i: usize| sub.mentions.get(i).is_some_and(|m| m.decision == Decision::Review);
            // The cells written more than once (rare), each with its
            // values (not held) in the order written.
            let cells: HashMap<CellId, Vec<(usize, String)>> = {
                let mut by_cell: Vec<(CellId, usize)> = (0..ids.len())
                    .filter(|&i| resolved(i).is_ok() && !held(i))
                    .filter_map(|i| ids[i].as_ref().ok().map(|id| (*id, i)))
                    .collect();
                by_cell.sort_unstable();
                by_cell
                    .chunk_by(|a, b| a.0 == b.0)
                    .filter(|run| run.len() > 1)
                    .map(|run| {
                        (
                            run[0].0,
                            run.iter().map(|&(_, i)| (i, sub.values[i].value.raw())).collect(),
                        )
                    })
                    .collect()
            };
            let mut raw_buf = String::new();
            // What became of each document value (quarantined unless it is
            // published or held below), with its reading.
            let mut outcome: Vec<(&'static str, Option<f64>, bool)> =
                vec![("quarantined", None, false); sub.mentions.len()];
            for (i, v) in sub.values.iter().enumerate() {
                received += 1;
                let mut reject = |reason: String| {
                    q.push(
                        &o,
                        Some(i),
                        v.indicator.as_deref().map(String::from),
                        v.dimension.as_deref().map(String::from),
                        v.category.as_deref().map(String::from),
                        Some(v.value.raw()),
                        reason,
                    );
                    quarantined += 1;
                };
                let (key, ind) = match resolved(i) {
                    Ok((key, ind)) => (key, *ind),
                    Err(reason) => {
                        reject(reason.to_string());
                        continue;
                    }
                };
                if let Some(group) = ids[i].as_ref().ok().and_then(|id| cells.get(id)) {
                    let same = group.iter().all(|(_, r)| *r == group[0].1);
                    match (same, group[0].0 == i) {
                        (true, true) => {}
                        (true, false) => {
                            reject(format!(
                                "the same cell again with the same value (as value {}): counted once",
                                group[0].0
                            ));
                            continue;
                        }
                        (false, _) => {
                            let written: Vec<String> = group
                                .iter()
                                .map(|(_, r)| format!("{:?}", clip(r, ECHO_CHARS)))
                                .collect();
                            reject(format!(
                                "the same cell appears {} times with different values ({}): none counts until the township corrects it",
                                group.len(),
                                written.join(", ")
                            ));
                            continue;
                        }
                    }
                }
                let (value, approx, missing) = match &v.value {
                    Cell::Number(n) => {
                        if let Some(why) = crate::normalize_value::number_problem(*n) {
                            reject(format!("unreadable value: {why}"));
                            continue;
                        }
                        (Some(*n), false, false)
                    }
                    Cell::Null => (None, false, true),
                    Cell::Text(t) => {
                        if !readings.contains_key(t.as_str()) {
                            readings.insert(t.to_string(), read(t));
                        }
                        let r = &readings[t.as_str()];
                        if let Some(e) = &r.error {
                            reject(format!("unreadable value: {e}"));
                            continue;
                        }
                        if let Some(why) = r.unit.as_deref().and_then(|u| Catalog::unit_mismatch(ind, u)) {
                            reject(why);
                            continue;
                        }
                        (r.value, r.approx, r.missing)
                    }
                };
                if let Some(o) = outcome.get_mut(i) {
                    if held(i) {
                        *o = ("review", value, approx);
                        in_review += 1;
                        continue;
                    }
                    *o = ("published", value, approx);
                }
                f.indicator.push(&ind.code);
                f.dimension.push_opt(key.1.as_deref());
                f.category.push_opt(key.2.as_deref());
                f.value.push(value);
                f.unit.push(&ind.unit);
                f.approx.push(approx);
                f.missing.push(missing);
                raw_buf.clear();
                v.value.write_raw(&mut raw_buf);
                f.value_raw.push(&crate::submission::mask_personal(&raw_buf));
                f.index.push(i as i64);
                published += 1;
            }
            // The landing's own columns, the same on each of its fact rows:
            // pushed once for all of them.
            let rows = published as usize;
            f.program.push_repeated(Some(&pipeline.name), rows);
            f.township.push_repeated(Some(&landing.township), rows);
            f.county.push_repeated(Some(&county), rows);
            f.period.push_repeated(Some(&landing.period), rows);
            f.sha.push_repeated(Some(&landing.sha256), rows);
            f.year.extend(std::iter::repeat_n(period.year, rows));
            f.submitted_at.extend(std::iter::repeat_n(submitted_at, rows));
            f.version.extend(std::iter::repeat_n(sub.version, rows));
            f.extracted.extend(std::iter::repeat_n(!sub.mentions.is_empty(), rows));
            let doc = Doc {
                pipeline,
                landing,
                county: &county,
                year: period.year,
                submitted_at,
                version: sub.version,
            };
            for (i, (m, (status, value, approx))) in sub.mentions.iter().zip(outcome).enumerate() {
                let cell = resolved(i).ok().map(|(k, _)| k);
                x.push(
                    &doc,
                    catalog,
                    m,
                    cell,
                    (status, value.or(Some(m.value)), approx),
                    Some(i),
                );
            }
            for m in &sub.stated_quotas {
                x.push(&doc, catalog, m, None, ("quota", Some(m.value), m.approx), None);
            }
        }
        debug_assert_eq!(received, published + quarantined + in_review, "conservation");
        let sub_ok = parsed.as_ref().ok();
        let submitted_at = sub_ok
            .and_then(|s| s.submitted_at)
            .map(|t| micros(t.with_timezone(&Utc)));
        let deadline = period.deadline(pipeline.deadline_days);
        // Provisional, from this body alone: the run decides each report's
        // timeliness from the evidence of all its versions (`timeliness`).
        let arrived = submitted_at.unwrap_or(micros(landing.first_fetched_at));
        let status = if sub.is_none() {
            "quarantined"
        } else if arrived <= micros(deadline) {
            "on_time"
        } else {
            "late"
        };
        s.program.push(pipeline.name.clone());
        s.township.push(landing.township.clone());
        s.period.push(landing.period.clone());
        s.year.push(period.year);
        s.sha.push(landing.sha256.clone());
        s.format.push(sub_ok.map(|s| s.format.as_str().to_string()));
        s.encoding.push(sub_ok.map(|s| s.encoding.to_string()));
        s.version.push(sub_ok.and_then(|s| s.version));
        s.submitted_at.push(submitted_at);
        s.first_fetched_at.push(micros(landing.first_fetched_at));
        s.deadline.push(micros(deadline));
        s.first_seen.push(micros(landing.first_fetched_at));
        s.status.push(status.to_string());
        s.explanation.push(
            sub_ok
                .and_then(|s| s.explanation.as_deref())
                .map(|e| clip(e, EXPLANATION_CHARS)),
        );
        s.received.push(received);
        s.published.push(published);
        s.quarantined.push(quarantined);
        s.in_review.push(in_review);
        s.versions_landed.push(versions_landed as i64);
    }

    fn finish(self) -> PolarsResult<Normalized> {
        let Acc { f, q, s, x, .. } = self;

        let facts = DataFrame::new_infer_height(vec![
            f.program.finish("program"),
            f.township.finish("township"),
            f.county.finish("county"),
            f.period.finish("period"),
            Column::new("year".into(), f.year),
            f.indicator.finish("indicator"),
            f.dimension.finish("dimension"),
            f.category.finish("category"),
            Column::new("value".into(), f.value),
            f.unit.finish("unit"),
            Column::new("approx".into(), f.approx),
            Column::new("missing".into(), f.missing),
            // Masked as it was pushed.
            f.value_raw.finish("value_raw"),
            f.sha.finish("source_sha256"),
            Column::new("submitted_at".into(), f.submitted_at),
            Column::new("version".into(), f.version),
            Column::new("value_index".into(), f.index),
            Column::new("extracted".into(), f.extracted),
        ])?;
        let quarantine = DataFrame::new_infer_height(vec![
            Column::new("program".into(), q.program),
            Column::new("township".into(), q.township),
            Column::new("period".into(), q.period),
            Column::new("year".into(), q.year),
            Column::new("source_sha256".into(), q.sha),
            Column::new("indicator_label".into(), masked_opt(q.indicator_label)),
            Column::new("dimension".into(), masked_opt(q.dimension)),
            Column::new("category".into(), masked_opt(q.category)),
            Column::new("value_raw".into(), masked_opt(q.value_raw)),
            Column::new("reason".into(), masked(q.reason)),
            Column::new("value_index".into(), q.index),
        ])?;
        let submissions = DataFrame::new_infer_height(vec![
            Column::new("program".into(), s.program),
            Column::new("township".into(), s.township),
            Column::new("period".into(), s.period),
            Column::new("year".into(), s.year),
            Column::new("source_sha256".into(), s.sha),
            Column::new("format".into(), s.format),
            Column::new("encoding".into(), s.encoding),
            Column::new("version".into(), s.version),
            Column::new("submitted_at".into(), s.submitted_at),
            Column::new("first_fetched_at".into(), s.first_fetched_at),
            Column::new("deadline".into(), s.deadline),
            Column::new("first_seen_at".into(), s.first_seen.clone()),
            Column::new("seen_missing_at".into(), vec![None::<i64>; s.first_seen.len()]),
            Column::new("status".into(), s.status),
            Column::new("explanation".into(), masked_opt(s.explanation)),
            Column::new("values_received".into(), s.received),
            Column::new("values_published".into(), s.published),
            Column::new("values_quarantined".into(), s.quarantined),
            Column::new("values_in_review".into(), s.in_review),
            Column::new("versions_landed".into(), s.versions_landed),
        ])?;
        let strs = |v: Vec<&'static str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
        let extractions = DataFrame::new_infer_height(vec![
            Column::new("program".into(), x.program),
            Column::new("township".into(), x.township),
            Column::new("county".into(), x.county),
            Column::new("period".into(), x.period),
            Column::new("year".into(), x.year),
            Column::new("review_id".into(), x.review_id),
            Column::new("indicator".into(), x.indicator),
            Column::new("name".into(), x.name),
            Column::new("dimension".into(), x.dimension),
            Column::new("category".into(), x.category),
            Column::new("value".into(), x.value),
            Column::new("unit".into(), x.unit),
            Column::new("approx".into(), x.approx),
            Column::new("missing".into(), x.missing),
            Column::new("kind".into(), strs(x.kind)),
            Column::new("value_raw".into(), masked(x.text)),
            Column::new("sentence".into(), masked(x.sentence)),
            Column::new("start".into(), x.start),
            Column::new("end".into(), x.end),
            Column::new("rule".into(), x.rule),
            Column::new("confidence".into(), x.confidence),
            Column::new("decision".into(), strs(x.decision)),
            Column::new("status".into(), strs(x.status)),
            Column::new("source_sha256".into(), x.sha),
            Column::new("submitted_at".into(), x.submitted_at),
            Column::new("version".into(), x.version),
            Column::new("value_index".into(), x.index),
        ])?;
        Ok(Normalized {
            facts,
            quarantine,
            submissions,
            extractions,
        })
    }
}

/// One changed cell between two versions.
struct Change<'a> {
    township: String,
    period: String,
    year: i32,
    from_sha: String,
    to_sha: String,
    from_version: Option<i64>,
    to_version: Option<i64>,
    changed_at: i64,
    cell: CellKey<'a>,
    old: Option<(Option<f64>, &'a str)>,
    new: Option<(Option<f64>, &'a str)>,
}

/// A cell (indicator, dimension, category), borrowed from a version's facts.
type CellKey<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

/// A version's cells: each one's value and what was written (borrowed: a
/// batch's history compares every version of its resubmitted reports,
/// hundreds of cells each).
fn cells(f: &DataFrame) -> PolarsResult<HashMap<CellKey<'_>, (Option<f64>, &str)>> {
    let (ind, dim, cat, raw) = (
        f.column("indicator")?.str()?,
        f.column("dimension")?.str()?,
        f.column("category")?.str()?,
        f.column("value_raw")?.str()?,
    );
    let val = f.column("value")?.f64()?;
    Ok((0..f.height())
        .map(|i| {
            let key = (ind.get(i).unwrap_or(""), dim.get(i), cat.get(i));
            (key, (val.get(i), raw.get(i).unwrap_or("")))
        })
        .collect())
}

/// One landed version with the fact rows normalize made of it.
pub struct Version<'a> {
    /// Its landing record.
    pub landing: &'a Landing,
    /// Its fact rows.
    pub facts: &'a DataFrame,
}

/// What changed between consecutive versions of each (township, period):
/// one row per cell whose value changed, appeared or disappeared (old → new).
/// `versions` holds every landed version of one or more (township, period),
/// in any order, each with the facts normalize made of it on its own.
pub fn history(program: &str, versions: &[Version<'_>]) -> PolarsResult<DataFrame> {
    let mut groups: std::collections::BTreeMap<(&str, &str), Vec<&Version<'_>>> = Default::default();
    for v in versions {
        groups
            .entry((&v.landing.township, &v.landing.period))
            .or_default()
            .push(v);
    }
    let mut out: Vec<Change> = Vec::new();
    for ((township, period), mut vs) in groups {
        if vs.len() < 2 {
            continue;
        }
        vs.sort_by(|a, b| {
            (a.landing.first_fetched_at, a.landing.version).cmp(&(b.landing.first_fetched_at, b.landing.version))
        });
        let year = period.parse::<Period>().map_or(0, |p| p.year);
        let mut prev = cells(vs[0].facts)?;
        for pair in vs.windows(2) {
            let (a, b) = (pair[0].landing, pair[1].landing);
            let next = cells(pair[1].facts)?;
            let mut keys: Vec<&CellKey> = prev.keys().chain(next.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (o, n) = (prev.get(k), next.get(k));
                if o.map(|x| x.0) == n.map(|x| x.0) {
                    continue;
                }
                out.push(Change {
                    township: township.to_string(),
                    period: period.to_string(),
                    year,
                    from_sha: a.sha256.clone(),
                    to_sha: b.sha256.clone(),
                    from_version: a.version,
                    to_version: b.version,
                    changed_at: micros(b.first_fetched_at),
                    cell: *k,
                    old: o.cloned(),
                    new: n.cloned(),
                });
            }
            prev = next;
        }
    }
    let strs = |f: fn(&Change) -> Option<String>| out.iter().map(f).collect::<Vec<Option<String>>>();
    let nums = |f: fn(&Change) -> Option<f64>| out.iter().map(f).collect::<Vec<Option<f64>>>();
    DataFrame::new_infer_height(vec![
        Column::new("program".into(), vec![program.to_string(); out.len()]),
        Column::new("township".into(), strs(|c| Some(c.township.clone()))),
        Column::new("period".into(), strs(|c| Some(c.period.clone()))),
        Column::new("year".into(), out.iter().map(|c| c.year).collect::<Vec<i32>>()),
        Column::new("from_sha256".into(), strs(|c| Some(c.from_sha.clone()))),
        Column::new("to_sha256".into(), strs(|c| Some(c.to_sha.clone()))),
        Column::new(
            "from_version".into(),
            out.iter().map(|c| c.from_version).collect::<Vec<_>>(),
        ),
        Column::new(
            "to_version".into(),
            out.iter().map(|c| c.to_version).collect::<Vec<_>>(),
        ),
        Column::new(
            "changed_at".into(),
            out.iter().map(|c| c.changed_at).collect::<Vec<i64>>(),
        ),
        Column::new("indicator".into(), strs(|c| Some(c.cell.0.to_string()))),
        Column::new("dimension".into(), strs(|c| c.cell.1.map(str::to_string))),
        Column::new("category".into(), strs(|c| c.cell.2.map(str::to_string))),
        Column::new("old_value".into(), nums(|c| c.old.as_ref().and_then(|x| x.0))),
        Column::new("new_value".into(), nums(|c| c.new.as_ref().and_then(|x| x.0))),
        Column::new("old_raw".into(), strs(|c| c.old.as_ref().map(|x| x.1.to_string()))),
        Column::new("new_raw".into(), strs(|c| c.new.as_ref().map(|x| x.1.to_string()))),
    ])
}

/// Township-written text as published: personal numbers masked
/// ([`crate::submission::mask_personal`]); the clear text stays in `raw/`.
fn masked(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|t| match crate::submission::mask_personal(&t) {
            std::borrow::Cow::Borrowed(_) => t,
            std::borrow::Cow::Owned(m) => m,
        })
        .collect()
}

fn masked_opt(v: Vec<Option<String>>) -> Vec<Option<String>> {
    v.into_iter()
        .map(|t| t.map(|t| crate::submission::mask_personal(&t).into_owned()))
        .collect()
}

/// A cell of a submission: indicator code, dimension, category.
type Cellkey = (String, Option<String>, Option<String>);

/// The cell a value is published in, or why it cannot be: a problem the
/// parser found, a field over the length limit, no or an unknown indicator,
/// one outside the program, a category that does not resolve.
fn cell_of<'c>(
    at: usize,
    v: &RawValue,
    catalog: &'c Catalog,
    allowed: &[String],
    limits: &Limits,
    program: &str,
    cache: &mut CellCache<'c>,
) -> Result<CellId, String> {
    if let Some(p) = &v.problem {
        return Err(p.clone());
    }
    let too_long = [&v.indicator, &v.dimension, &v.category]
        .into_iter()
        .flatten()
        .chain(match &v.value {
            Cell::Text(t) => Some(t),
            _ => None,
        })
        // No more characters than bytes: counted only when it could be over.
        .find(|t| t.len() > limits.max_text_chars && t.chars().count() > limits.max_text_chars);
    if let Some(t) = too_long {
        return Err(format!(
            "a field is {} characters long, over the limit of {}",
            t.chars().count(),
            limits.max_text_chars
        ));
    }
    Ok(cache.resolve(at, v, || cell_of_labels(v, catalog, allowed, program)))
}

/// The positions of a body whose labels a [`CellCache`] remembers.
const MAX_POSITIONS: usize = 4096;

/// A cell (or why labels name none) as resolved once by a [`CellCache`].
type CellId = u32;

/// A cell resolved from the labels a value was written with.
type ResolvedCell<'c> = Result<(Cellkey, &'c Indicator), String>;

/// The labels a value was written with: indicator, dimension, category.
type Labels = (Option<CompactString>, Option<CompactString>, Option<CompactString>);

/// Cells resolved from labels, for one group of bodies (the program's
/// allowed indicators are the same for all of them). Labels written alike
/// get the same [`CellId`]: one cell, one id.
#[derive(Default)]
struct CellCache<'c> {
    hasher: PlRandomState,
    by_hash: PlHashMap<u64, Vec<(Labels, CellId)>>,
    resolved: Vec<ResolvedCell<'c>>,
    /// Each distinct cell's id (two spellings of one cell share it).
    ids: HashMap<Cellkey, CellId>,
    /// The labels last resolved at each position of a body, with their id:
    /// the bodies of one form list their values in one order, so a value's
    /// labels are usually those at its place in the body before (three
    /// comparisons instead of hashing them and a lookup).
    at: Vec<Option<(Labels, CellId)>>,
}

/// Whether `v` was written with the labels `l`.
fn written_as(l: &Labels, v: &RawValue) -> bool {
    l.0.as_deref() == v.indicator.as_deref()
        && l.1.as_deref() == v.dimension.as_deref()
        && l.2.as_deref() == v.category.as_deref()
}

impl<'c> CellCache<'c> {
    /// The id of `v`'s labels' cell: from the cache, or resolved by `make` and kept.
    fn resolve(&mut self, at: usize, v: &RawValue, make: impl FnOnce() -> ResolvedCell<'c>) -> CellId {
        if let Some(Some((l, id))) = self.at.get(at)
            && written_as(l, v)
        {
            return *id;
        }
        let id = self.resolve_by_hash(v, make);
        // Positions past the longest body a form has are not remembered
        // (a hostile body's 100,000 values do not make a slot each).
        if at < MAX_POSITIONS {
            if self.at.len() <= at {
                self.at.resize(at + 1, None);
            }
            self.at[at] = Some(((v.indicator.clone(), v.dimension.clone(), v.category.clone()), id));
        }
        id
    }

    /// The id of `v`'s labels' cell, looked up by their hash.
    fn resolve_by_hash(&mut self, v: &RawValue, make: impl FnOnce() -> ResolvedCell<'c>) -> CellId {
        use std::hash::BuildHasher;
        let h = self
            .hasher
            .hash_one((v.indicator.as_deref(), v.dimension.as_deref(), v.category.as_deref()));
        let bucket = self.by_hash.entry(h).or_default();
        if let Some((_, id)) = bucket.iter().find(|(l, _)| written_as(l, v)) {
            return *id;
        }
        let r = make();
        let fresh = self.resolved.len() as CellId;
        let id = match &r {
            Ok((key, _)) => *self.ids.entry(key.clone()).or_insert(fresh),
            Err(_) => fresh,
        };
        if id == fresh {
            self.resolved.push(r);
        }
        bucket.push(((v.indicator.clone(), v.dimension.clone(), v.category.clone()), id));
        id
    }

    fn get(&self, id: CellId) -> &ResolvedCell<'c> {
        &self.resolved[id as usize]
    }
}

/// The cell a value's labels name, or why they name none.
fn cell_of_labels<'c>(v: &RawValue, catalog: &'c Catalog, allowed: &[String], program: &str) -> ResolvedCell<'c> {
    let Some(label) = &v.indicator else {
        return Err("value has no indicator".into());
    };
    let Some(ind) = catalog.resolve(label) else {
        return Err(format!("unknown indicator {label:?}"));
    };
    if !allowed.is_empty() && !allowed.contains(&ind.code) {
        return Err(format!("indicator {} is not part of program {program}", ind.name));
    }
    let (dimension, category) = match (&v.dimension, &v.category) {
        (_, Some(cat)) => {
            let (d, c) = catalog.resolve_category(ind, v.dimension.as_deref(), cat)?;
            (Some(d), Some(c))
        }
        (Some(d), None) => return Err(format!("dimension {d:?} given without a category")),
        (None, None) => (None, None),
    };
    Ok(((ind.code.clone(), dimension, category), ind))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::fixtures::{config, normalized};

    #[test]
    fn every_value_is_published_or_quarantined_with_a_reason() {
        let cfg = config();
        let doc = json!({"township_name": "大墅鎮", "period": "2026-06", "values": [
            {"indicator": "殘疾人證核發", "value": "1,774"},
            {"indicator": "残疾人证核发", "category": "視力", "value": "60多"},
            {"indicator": "残疾人证核发", "category": "视力", "value": 3},
            {"indicator": "慰问金", "value": "___"},
            {"indicator": "残疾人体育活动", "value": 3},
            {"indicator": "轮椅发放", "value": "很多"},
            {"indicator": "慰问金", "dimension": "类别", "value": 1},
            {"indicator": "危房改造", "value": "3000元"},
            {"value": 1}
        ]});
        let n = normalized(&cfg, &[("341124102", "2026-06", doc)]);
        // 60多 and 3 for the same cell: neither counts.
        assert_eq!(n.facts.height(), 2);
        assert_eq!(n.quarantine.height(), 7);
        let reasons: Vec<&str> = n
            .quarantine
            .column("reason")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert!(reasons[0].contains("different values (\"60多\", \"3\")"), "{reasons:?}");
        assert_eq!(reasons[0], reasons[1]);
        let reasons = &reasons[1..];
        assert!(reasons[1].contains("unknown indicator"), "{reasons:?}");
        assert!(reasons[2].contains("no number"), "{reasons:?}");
        assert!(reasons[3].contains("without a category"), "{reasons:?}");
        assert!(
            reasons[4].contains("unit 元 does not fit 危房改造 (counted in 户)"),
            "{reasons:?}"
        );
        assert!(reasons[5].contains("no indicator"), "{reasons:?}");
        let s = &n.submissions;
        assert_eq!(s.column("values_received").unwrap().i64().unwrap().get(0), Some(9));
        assert_eq!(s.column("values_published").unwrap().i64().unwrap().get(0), Some(2));
        assert_eq!(s.column("values_quarantined").unwrap().i64().unwrap().get(0), Some(7));
        let missing = n.facts.column("missing").unwrap().bool().unwrap();
        let value = n.facts.column("value").unwrap().f64().unwrap();
        assert_eq!(value.get(0), Some(1774.0));
        assert_eq!(
            (missing.get(1), value.get(1)),
            (Some(true), None),
            "a placeholder is missing, not zero"
        );
        let names: Vec<&str> = n.facts.get_column_names().into_iter().map(|c| c.as_str()).collect();
        assert_eq!(names, super::FACT_COLUMNS, "the facts' columns, in their order");
    }

    #[test]
    fn labels_resolve_to_their_own_cells_in_every_body_of_a_group() {
        // A group of bodies resolves each set of labels once and reuses it:
        // every value still lands in the cell its own labels name.
        let cfg = config();
        let doc = |n: i64| {
            json!({"period": "2026-06", "values": [
                {"indicator": "残疾人证核发", "value": n},
                {"indicator": "残疾人证核发", "category": "视力", "value": n + 1},
                {"indicator": "残疾人证核发", "category": "肢体", "value": n + 2},
                {"indicator": "殘疾人證核發", "category": "聽力", "value": n + 3},
                {"indicator": "不存在的指标", "category": "视力", "value": 1}
            ]})
        };
        let n = normalized(
            &cfg,
            &[("341124102", "2026-06", doc(10)), ("341124103", "2026-06", doc(20))],
        );
        let cells: Vec<(String, Option<String>, Option<f64>)> = (0..n.facts.height())
            .map(|i| {
                let get = |c: &str| n.facts.column(c).unwrap().str().unwrap().get(i).map(str::to_string);
                (
                    get("township").unwrap(),
                    get("category"),
                    n.facts.column("value").unwrap().f64().unwrap().get(i),
                )
            })
            .collect();
        let want = |t: &str, base: f64| {
            vec![
                (t.to_string(), None, Some(base)),
                (t.to_string(), Some("视力".to_string()), Some(base + 1.0)),
                (t.to_string(), Some("肢体".to_string()), Some(base + 2.0)),
                (t.to_string(), Some("听力".to_string()), Some(base + 3.0)),
            ]
        };
        assert_eq!(cells, [want("341124102", 10.0), want("341124103", 20.0)].concat());
        // The unknown indicator is quarantined in both bodies.
        assert_eq!(n.quarantine.height(), 2);
    }

    #[test]
    fn a_value_in_another_place_than_in_the_body_before_lands_in_its_own_cell() {
        // Labels are first looked for at the value's place in the body
        // before: a value whose labels differ there in one label only (the
        // category, the dimension, the indicator) still lands in its own cell.
        let cfg = config();
        let first = json!({"period": "2026-06", "values": [
            {"indicator": "残疾人证核发", "category": "视力", "value": 1},
            {"indicator": "残疾人证核发", "dimension": "类别", "category": "肢体", "value": 2},
            {"indicator": "残疾人证核发", "value": 3},
            {"indicator": "白内障复明手术", "value": 4}
        ]});
        let second = json!({"period": "2026-06", "values": [
            {"indicator": "残疾人证核发", "category": "肢体", "value": 12},
            {"indicator": "残疾人证核发", "dimension": "等级", "category": "肢体", "value": 99},
            {"indicator": "白内障复明手术", "value": 14},
            {"indicator": "残疾人证核发", "value": 13},
            {"indicator": "残疾人证核发", "category": "视力", "value": 11}
        ]});
        let n = normalized(
            &cfg,
            &[
                ("341124102", "2026-06", first.clone()),
                ("341124103", "2026-06", second),
                ("341124104", "2026-06", first),
            ],
        );
        let mut cells: Vec<(String, String, Option<String>, i64)> = (0..n.facts.height())
            .map(|i| {
                let get = |c: &str| n.facts.column(c).unwrap().str().unwrap().get(i).map(str::to_string);
                let value = n.facts.column("value").unwrap().f64().unwrap().get(i).unwrap();
                (
                    get("township").unwrap(),
                    get("indicator").unwrap(),
                    get("category"),
                    value as i64,
                )
            })
            .collect();
        cells.sort();
        let cell = |t: &str, i: &str, c: Option<&str>, v: i64| (t.to_string(), i.to_string(), c.map(str::to_string), v);
        let (cert, cataract) = ("certificates_issued", "cataract_surgery");
        let body = |t: &str, base: i64| {
            vec![
                cell(t, cataract, None, base + 4),
                cell(t, cert, None, base + 3),
                cell(t, cert, Some("肢体"), base + 2),
                cell(t, cert, Some("视力"), base + 1),
            ]
        };
        assert_eq!(
            cells,
            [body("341124102", 0), body("341124103", 10), body("341124104", 0)].concat()
        );
        // The category under a dimension the indicator does not have.
        let q = &n.quarantine;
        assert_eq!(q.height(), 1, "{q}");
        assert_eq!(q.column("township").unwrap().str().unwrap().get(0), Some("341124103"));
    }

    #[test]
    fn submission_for_another_township_is_set_aside_whole() {
        let cfg = config();
        let doc = json!({"township": "341124103", "period": "2026-06", "values": [
            {"indicator": "白内障复明手术", "value": 1}, {"indicator": "轮椅发放", "value": 2}]});
        let n = normalized(&cfg, &[("341124102", "2026-06", doc)]);
        assert_eq!(n.facts.height(), 0);
        assert_eq!(n.quarantine.height(), 2);
        let reason = n
            .quarantine
            .column("reason")
            .unwrap()
            .str()
            .unwrap()
            .get(0)
            .unwrap()
            .to_string();
        assert!(
            reason.contains("341124103") && reason.contains("341124102 was requested"),
            "{reason}"
        );
        let status = n.submissions.column("status").unwrap().str().unwrap().get(0);
        assert_eq!(status, Some("quarantined"));
        let broken = normalized(&cfg, &[("341124102", "2026-06", json!("not an object"))]);
        assert_eq!(broken.quarantine.height(), 1);
    }

    #[test]
    fn personal_numbers_never_reach_the_published_rows() {
        let cfg = config();
        let doc = json!({"period": "2026-06", "explanation": "联系人13812345678，身份证340102199001011234",
            "values": [{"indicator": "白内障复明手术", "value": "340102199001011234"},
                       {"indicator": "轮椅发放", "value": 2}]});
        let n = normalized(&cfg, &[("341124102", "2026-06", doc)]);
        let raw: Vec<&str> = n
            .quarantine
            .column("value_raw")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .flatten()
            .collect();
        assert_eq!(raw, ["340102************"]);
        let expl = n
            .submissions
            .column("explanation")
            .unwrap()
            .str()
            .unwrap()
            .get(0)
            .unwrap()
            .to_string();
        assert_eq!(expl, "联系人138********，身份证340102************");
    }
}
