//! The review queue's decisions applied to a normalization: a document's
//! value a person accepted is published (flagged `extracted`, like the
//! confident ones); one a person rejected is taken out of the facts (if the
//! extractor had published it) and set aside in the quarantine with the
//! reviewer's reason. Everything else is as normalize left it. Pure: the
//! decisions are passed in (the binary keeps them in its state store).
//!
//! Counts follow: each submission's `values_published`, `values_quarantined`
//! and `values_in_review` change with its decided values, so conservation
//! (received = published + quarantined + in review) still holds.

use std::collections::{HashMap, HashSet};

use polars::prelude::*;

use crate::normalize::Normalized;

/// What a reviewer decided about one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Publish it.
    Accept,
    /// Set it aside, with the reviewer's note (may be empty).
    Reject(String),
}

/// Decisions by review id.
pub type Decisions = HashMap<String, Verdict>;

fn strs(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<String>>> {
    Ok(df.column(name)?.str()?.iter().map(|s| s.map(str::to_string)).collect())
}

fn ints(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<i64>>> {
    Ok(df.column(name)?.i64()?.iter().collect())
}

/// `n` with `decisions` applied (see the module documentation).
pub fn apply(n: Normalized, decisions: &Decisions) -> PolarsResult<Normalized> {
    let x = &n.extractions;
    if decisions.is_empty() || x.height() == 0 {
        return Ok(n);
    }
    let ids = strs(x, "review_id")?;
    let status = strs(x, "status")?;
    let township = strs(x, "township")?;
    let sha = strs(x, "source_sha256")?;
    let index = ints(x, "value_index")?;
    let cell = {
        let (ind, dim, cat) = (strs(x, "indicator")?, strs(x, "dimension")?, strs(x, "category")?);
        (0..x.height())
            .map(|i| {
                format!(
                    "{}|{}|{}",
                    ind[i].as_deref().unwrap_or(""),
                    dim[i].as_deref().unwrap_or("\u{1}"),
                    cat[i].as_deref().unwrap_or("\u{1}")
                )
            })
            .collect::<Vec<_>>()
    };
    let mut new_status: Vec<String> = status.iter().map(|s| s.clone().unwrap_or_default()).collect();
    // (township, sha, value_index) of published facts a reviewer rejected.
    let mut unpublish: HashSet<(String, String, i64)> = HashSet::new();
    let (mut rejected, mut accepted) = (vec![false; x.height()], vec![false; x.height()]);
    let mut reasons: Vec<String> = vec![];
    // Per (township, sha): published, quarantined, in review deltas.
    let mut delta: HashMap<(String, String), [i64; 3]> = HashMap::new();
    let key = |i: usize| {
        (
            township[i].clone().unwrap_or_default(),
            sha[i].clone().unwrap_or_default(),
        )
    };
    for i in 0..x.height() {
        let Some(verdict) = ids[i].as_deref().and_then(|id| decisions.get(id)) else {
            continue;
        };
        let st = status[i].as_deref().unwrap_or("");
        match (verdict, st) {
            (Verdict::Reject(note), "published" | "review") => {
                rejected[i] = true;
                new_status[i] = "rejected".into();
                let d = delta.entry(key(i)).or_default();
                if st == "published" {
                    d[0] -= 1;
                    if let Some(v) = index[i] {
                        unpublish.insert((key(i).0, key(i).1, v));
                    }
                } else {
                    d[2] -= 1;
                }
                d[1] += 1;
                let id = ids[i].as_deref().unwrap_or("");
                reasons.push(match note.trim() {
                    "" => format!("rejected in review ({id})"),
                    note => format!("rejected in review ({id}): {note}"),
                });
            }
            (Verdict::Accept, "review") => accepted[i] = true,
            _ => {}
        }
    }
    // Facts left after the rejections.
    let mut facts = n.facts;
    if !unpublish.is_empty() {
        let (ft, fs, fi) = (
            strs(&facts, "township")?,
            strs(&facts, "source_sha256")?,
            ints(&facts, "value_index")?,
        );
        let keep: BooleanChunked = (0..facts.height())
            .map(|r| {
                let k = (
                    ft[r].clone().unwrap_or_default(),
                    fs[r].clone().unwrap_or_default(),
                    fi[r].unwrap_or(-1),
                );
                Some(!unpublish.contains(&k))
            })
            .collect();
        facts = facts.filter(&keep)?;
    }
    // An accepted value whose cell the document already has published (or
    // another accepted value has) is a conflict: a person must reject one.
    if accepted.iter().any(|a| *a) {
        let docs: HashSet<(String, String)> = (0..x.height()).filter(|i| accepted[*i]).map(key).collect();
        let mut taken: HashSet<(String, String, String)> = HashSet::new();
        for i in 0..x.height() {
            if new_status[i] == "published" && docs.contains(&key(i)) {
                taken.insert((key(i).0, key(i).1, cell[i].clone()));
            }
        }
        for i in 0..x.height() {
            if !accepted[i] {
                continue;
            }
            let k = (key(i).0, key(i).1, cell[i].clone());
            if taken.insert(k) {
                new_status[i] = "accepted".into();
                let d = delta.entry(key(i)).or_default();
                d[0] += 1;
                d[2] -= 1;
            } else {
                accepted[i] = false;
                new_status[i] = "conflict".into();
            }
        }
        let mask: BooleanChunked = accepted.iter().map(|a| Some(*a)).collect();
        let mut add = x.filter(&mask)?;
        add.with_column(Column::new("extracted".into(), vec![true; add.height()]))?;
        // The columns an extraction row carries, in the facts' order.
        let columns = taizhang_model::schema::fact_columns("");
        let columns = taizhang_model::schema::with_year(&columns);
        let add = add.select(columns.iter().copied())?;
        let mut stacked = facts.select(columns)?;
        stacked.vstack_mut(&add)?;
        facts = stacked;
    }
    // Rejected values join the quarantine with the reviewer's reason.
    let mut quarantine = n.quarantine;
    if rejected.iter().any(|r| *r) {
        let mask: BooleanChunked = rejected.iter().map(|r| Some(*r)).collect();
        let rows = x.filter(&mask)?;
        let columns = quarantine.get_column_names_owned();
        let mut q = rows
            .lazy()
            .select([
                col("program"),
                col("township"),
                col("period"),
                col("year"),
                col("source_sha256"),
                col("name").alias("indicator_label"),
                col("dimension"),
                col("category"),
                col("value_raw"),
                col("value_index"),
            ])
            .collect()?;
        q.with_column(Column::new("reason".into(), reasons))?;
        let q = q.select(columns)?;
        quarantine.vstack_mut(&q)?;
    }
    // Counts per submission.
    let mut submissions = n.submissions;
    if !delta.is_empty() {
        let (st, ss) = (strs(&submissions, "township")?, strs(&submissions, "source_sha256")?);
        let mut cols: Vec<Vec<Option<i64>>> = vec![
            ints(&submissions, "values_published")?,
            ints(&submissions, "values_quarantined")?,
            ints(&submissions, "values_in_review")?,
        ];
        for r in 0..submissions.height() {
            let k = (st[r].clone().unwrap_or_default(), ss[r].clone().unwrap_or_default());
            if let Some(d) = delta.get(&k) {
                for (c, dv) in cols.iter_mut().zip(d) {
                    c[r] = c[r].map(|v| v + dv);
                }
            }
        }
        for (name, c) in ["values_published", "values_quarantined", "values_in_review"]
            .into_iter()
            .zip(cols)
        {
            submissions.with_column(Column::new(name.into(), c))?;
        }
    }
    let mut extractions = n.extractions;
    extractions.with_column(Column::new("status".into(), new_status))?;
    Ok(Normalized {
        facts,
        quarantine,
        submissions,
        extractions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{config, landing};
    use crate::normalize::{Landed, Limits, normalize};

    /// A work summary of 大墅镇 for 2026-H1, normalized by a document program.
    fn summary(text: &str) -> Normalized {
        let cfg = config();
        let mut p = cfg.pipelines[0].clone();
        p.source_kind = crate::parse::SourceKind::Document;
        p.period_type = crate::period::PeriodType::HalfYearly;
        let l = landing(&p.name, "341124102", "2026-H1", text.as_bytes());
        let landed = [Landed {
            landing: &l,
            body: text.as_bytes(),
            versions_landed: 1,
        }];
        normalize(&p, &cfg.catalog, &cfg.registry, &cfg.dhis2, &Limits::default(), &landed).unwrap()
    }

    fn id_of(n: &Normalized, indicator: &str, value: f64) -> String {
        let x = &n.extractions;
        let (ids, ind, val) = (
            strs(x, "review_id").unwrap(),
            strs(x, "indicator").unwrap(),
            x.column("value").unwrap().f64().unwrap().iter().collect::<Vec<_>>(),
        );
        (0..x.height())
            .find(|i| ind[*i].as_deref() == Some(indicator) && val[*i] == Some(value))
            .and_then(|i| ids[i].clone())
            .unwrap_or_else(|| panic!("{indicator} {value} not in {x}"))
    }

    fn counts(n: &Normalized) -> [i64; 4] {
        let g = |c: &str| ints(&n.submissions, c).unwrap()[0].unwrap();
        [
            g("values_received"),
            g("values_published"),
            g("values_quarantined"),
            g("values_in_review"),
        ]
    }

    fn facts_of(n: &Normalized, indicator: &str) -> Vec<f64> {
        let ind = strs(&n.facts, "indicator").unwrap();
        let val: Vec<Option<f64>> = n.facts.column("value").unwrap().f64().unwrap().iter().collect();
        (0..n.facts.height())
            .filter(|i| ind[*i].as_deref() == Some(indicator))
            .filter_map(|i| val[i])
            .collect()
    }

    const TEXT: &str = "上半年完成白内障复明手术30例。\n共慰问困难残疾人8户,每户300元,共计发放慰问金2500元。\n（另有白内障复明手术12例待核实）\n";

    #[test]
    fn uncertain_values_wait_and_decisions_move_them() {
        let n = summary(TEXT);
        // 30 published; 8 户, 2500 元 (the product fails) and 12 (in brackets) wait.
        assert_eq!(facts_of(&n, "cataract_surgery"), [30.0]);
        assert_eq!(counts(&n), [4, 1, 0, 3]);
        let decisions: Decisions = [
            (id_of(&n, "condolence_money", 2500.0), Verdict::Accept),
            (id_of(&n, "condolence_visits", 8.0), Verdict::Reject("户数有误".into())),
            (id_of(&n, "cataract_surgery", 30.0), Verdict::Reject(String::new())),
        ]
        .into_iter()
        .collect();
        let d = apply(summary(TEXT), &decisions).unwrap();
        assert_eq!(facts_of(&d, "condolence_money"), [2500.0]);
        assert!(
            facts_of(&d, "cataract_surgery").is_empty(),
            "a published value rejected"
        );
        assert!(facts_of(&d, "condolence_visits").is_empty());
        // received = published + quarantined + in review, after the decisions too.
        assert_eq!(counts(&d), [4, 1, 2, 1]);
        let reasons = strs(&d.quarantine, "reason").unwrap();
        assert!(
            reasons.iter().flatten().any(|r| r.ends_with("): 户数有误")),
            "{reasons:?}"
        );
        let status = strs(&d.extractions, "status").unwrap();
        for s in ["accepted", "rejected", "review"] {
            assert!(status.iter().any(|x| x.as_deref() == Some(s)), "{s}: {status:?}");
        }
        // The accepted row is a fact like the others.
        assert_eq!(d.facts.get_column_names(), n.facts.get_column_names());
    }

    #[test]
    fn an_accepted_value_for_a_cell_already_published_is_a_conflict() {
        let n = summary(TEXT);
        let waiting = id_of(&n, "cataract_surgery", 12.0);
        let decisions: Decisions = [(waiting.clone(), Verdict::Accept)].into_iter().collect();
        let d = apply(summary(TEXT), &decisions).unwrap();
        assert_eq!(
            facts_of(&d, "cataract_surgery"),
            [30.0],
            "never two values for one cell"
        );
        assert_eq!(counts(&d), counts(&n));
        let ids = strs(&d.extractions, "review_id").unwrap();
        let status = strs(&d.extractions, "status").unwrap();
        let at = ids.iter().position(|i| i.as_deref() == Some(waiting.as_str())).unwrap();
        assert_eq!(status[at].as_deref(), Some("conflict"));
        // Rejecting the published one lets the accepted one in.
        let both: Decisions = [
            (waiting, Verdict::Accept),
            (id_of(&n, "cataract_surgery", 30.0), Verdict::Reject(String::new())),
        ]
        .into_iter()
        .collect();
        let d = apply(summary(TEXT), &both).unwrap();
        assert_eq!(facts_of(&d, "cataract_surgery"), [12.0]);
        assert_eq!(counts(&d), [4, 1, 1, 2]);
    }
}
