//! The review queue of values read from documents (`taizhang review`): what
//! waits for a person, and their decisions. The queue is the published
//! `extractions` table (rows with status `review` or `conflict`); a decision
//! is recorded in the state store and applied by the next run (see
//! [`crate::review`]), which publishes an accepted value flagged `extracted`
//! and sets a rejected one aside in the quarantine.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use polars::prelude::*;

use crate::inspect::{InspectError, read_table};
use crate::registry::Registry;
use crate::review::Verdict;
use crate::state::State;

/// One row of the published `extractions` table, as the queue shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Item {
    /// Review id.
    pub review_id: String,
    /// Program.
    pub program: String,
    /// Township code.
    pub township: String,
    /// Period.
    pub period: String,
    /// Indicator code.
    pub indicator: String,
    /// Indicator name.
    pub name: String,
    /// Breakdown dimension.
    pub dimension: Option<String>,
    /// Breakdown category.
    pub category: Option<String>,
    /// Value in the catalog unit.
    pub value: Option<f64>,
    /// Unit.
    pub unit: String,
    /// As written.
    pub value_raw: String,
    /// The sentence (masked).
    pub sentence: String,
    /// The extractor's rule.
    pub rule: String,
    /// 0–1.
    pub confidence: f64,
    /// Status in the published snapshot.
    pub status: String,
    /// A decision recorded since that snapshot was published, not applied yet.
    pub decided: Option<String>,
}

fn read_err(source: PolarsError) -> InspectError {
    InspectError::Read {
        path: "extractions".into(),
        source,
    }
}

/// Every row of the published `extractions` table except stated quotas.
fn items(warehouse: &Path) -> Result<Vec<Item>, InspectError> {
    let df = read_table(warehouse, "extractions")?;
    let s = |c: &str| -> Result<Vec<Option<String>>, InspectError> {
        Ok(df
            .column(c)
            .and_then(|c| c.str().cloned())
            .map_err(read_err)?
            .iter()
            .map(|x| x.map(str::to_string))
            .collect())
    };
    let f = |c: &str| -> Result<Vec<Option<f64>>, InspectError> {
        Ok(df
            .column(c)
            .and_then(|c| c.f64().cloned())
            .map_err(read_err)?
            .iter()
            .collect())
    };
    let (id, program, township, period) = (s("review_id")?, s("program")?, s("township")?, s("period")?);
    let (indicator, name, dimension, category) = (s("indicator")?, s("name")?, s("dimension")?, s("category")?);
    let (unit, raw, sentence, rule, status, kind) = (
        s("unit")?,
        s("value_raw")?,
        s("sentence")?,
        s("rule")?,
        s("status")?,
        s("kind")?,
    );
    let (value, confidence) = (f("value")?, f("confidence")?);
    let get = |v: &Vec<Option<String>>, i: usize| v[i].clone().unwrap_or_default();
    Ok((0..df.height())
        .filter(|i| kind[*i].as_deref() != Some("quota"))
        .map(|i| Item {
            review_id: get(&id, i),
            program: get(&program, i),
            township: get(&township, i),
            period: get(&period, i),
            indicator: get(&indicator, i),
            name: get(&name, i),
            dimension: dimension[i].clone(),
            category: category[i].clone(),
            value: value[i],
            unit: get(&unit, i),
            value_raw: get(&raw, i),
            sentence: get(&sentence, i),
            rule: get(&rule, i),
            confidence: confidence[i].unwrap_or(0.0),
            status: get(&status, i),
            decided: None,
        })
        .collect())
}

/// A decision the published status does not show yet (made since the
/// last run): an accept of a value still waiting, a reject of one that is
/// not set aside yet.
fn not_applied(verdict: &Verdict, status: &str) -> bool {
    match verdict {
        Verdict::Accept => status == "review",
        Verdict::Reject(_) => matches!(status, "review" | "published" | "accepted" | "conflict"),
    }
}

/// What to list.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    /// Every value found (published, accepted, rejected …), not only what waits.
    pub all: bool,
    /// Only this period.
    pub period: Option<&'a str>,
    /// Only this township (code).
    pub township: Option<&'a str>,
}

/// The queue: one block per township and period, or one JSON object per
/// line with `json`.
pub fn list(
    warehouse: &Path,
    state: &State,
    registry: &Registry,
    filter: &Filter<'_>,
    json: bool,
) -> Result<String, InspectError> {
    let decided: HashMap<String, Verdict> = state
        .review_decisions()
        .map_err(|e| InspectError::Missing(e.to_string()))?;
    let mut shown: Vec<Item> = items(warehouse)?
        .into_iter()
        .filter(|i| filter.all || matches!(i.status.as_str(), "review" | "conflict"))
        .filter(|i| filter.period.is_none_or(|p| p == i.period))
        .filter(|i| filter.township.is_none_or(|t| t == i.township))
        .collect();
    for i in &mut shown {
        i.decided = decided
            .get(&i.review_id)
            .filter(|v| not_applied(v, &i.status))
            .map(|v| match v {
                Verdict::Accept => "accept".to_string(),
                Verdict::Reject(_) => "reject".to_string(),
            });
    }
    if json {
        return Ok(shown
            .iter()
            .map(|i| serde_json::to_string(i).unwrap_or_default() + "\n")
            .collect());
    }
    if shown.is_empty() {
        return Ok(match filter.all {
            true => "没有从文档中读出的数值 (no values read from documents)\n".into(),
            false => "没有待审核的数值 (nothing waits for review)\n".into(),
        });
    }
    let mut out = String::new();
    let mut last: Option<(String, String, String)> = None;
    for i in &shown {
        let key = (i.program.clone(), i.township.clone(), i.period.clone());
        if last.as_ref() != Some(&key) {
            let name = registry.get(&i.township).map_or("", |t| t.name.as_str());
            let n = shown
                .iter()
                .filter(|o| (&o.program, &o.township, &o.period) == (&key.0, &key.1, &key.2))
                .count();
            out.push_str(&format!(
                "{name}({}) {} — program {}: {n} 项 ({n} values)\n",
                i.township, i.period, i.program
            ));
            last = Some(key);
        }
        let cell = [i.dimension.as_deref(), i.category.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(":");
        let value = i.value.map_or("?".into(), crate::checks::num);
        let status = match (&i.decided, i.status.as_str()) {
            (Some(d), _) if d == "accept" => "已接受，下次运行发布 (accepted; the next run publishes it)".to_string(),
            (Some(_), _) => "已驳回，下次运行隔离 (rejected; the next run sets it aside)".to_string(),
            (None, "review") => "待审核 (waits for review)".to_string(),
            (None, "conflict") => {
                "冲突 (conflict): accepted, but the document's published value for this cell differs; reject one".into()
            }
            (None, other) => other.to_string(),
        };
        out.push_str(&format!(
            "  {}  {}{} = {value} {} ({:?})  confidence {:.2}, {}\n      {status}\n      「{}」\n",
            i.review_id,
            i.name,
            if cell.is_empty() {
                String::new()
            } else {
                format!("[{cell}]")
            },
            i.unit,
            i.value_raw,
            i.confidence,
            i.rule,
            crate::submission::clip(&i.sentence, 120),
        ));
    }
    if !filter.all {
        out.push_str("\ntaizhang review accept ID… | taizhang review reject ID… [--note TEXT]\n");
    }
    Ok(out)
}

/// Why a decision cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The warehouse cannot be read.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// The state store said no.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The id is not in the published table, or cannot be decided.
    #[error("{0}")]
    Refused(String),
}

/// Records `verdict` for every id (all or none: every id is checked
/// against the published table first). Returns one line per id.
pub fn decide(
    warehouse: &Path,
    state: &State,
    ids: &[String],
    verdict: &Verdict,
    now: DateTime<Utc>,
) -> Result<String, DecideError> {
    if ids.is_empty() {
        return Err(DecideError::Refused(
            "give the id of at least one value (taizhang review lists them)".into(),
        ));
    }
    let all = items(warehouse)?;
    let mut chosen = vec![];
    for id in ids {
        let id = id.trim().to_ascii_lowercase();
        let Some(item) = all.iter().find(|i| i.review_id == id) else {
            return Err(DecideError::Refused(format!(
                "no value read from a document has id {:?} in the published warehouse (taizhang review --all lists them)",
                crate::submission::clip(&id, 24)
            )));
        };
        match (verdict, item.status.as_str()) {
            (_, "quarantined") => {
                return Err(DecideError::Refused(format!(
                    "{id} cannot be decided: the value itself is unusable (see taizhang quarantine)"
                )));
            }
            (Verdict::Accept, "published" | "accepted") => {
                return Err(DecideError::Refused(format!("{id} is already published")));
            }
            _ => chosen.push((id, item)),
        }
    }
    let mut out = String::new();
    for (id, item) in chosen {
        state.decide_review(&id, verdict, now)?;
        let what = format!(
            "{} {} {} = {} {}",
            item.township,
            item.period,
            item.name,
            item.value.map_or("?".into(), crate::checks::num),
            item.unit
        );
        out.push_str(&match verdict {
            Verdict::Accept => format!("accepted {id}: {what}; the next run publishes it (flagged extracted)\n"),
            Verdict::Reject(_) => format!("rejected {id}: {what}; the next run sets it aside in the quarantine\n"),
        });
    }
    Ok(out)
}
