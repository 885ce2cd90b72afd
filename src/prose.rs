//! Work summaries (工作总结) read with provenance: `taizhang extract FILE`
//! prints every value the extractor finds in a .txt or .docx as one JSON
//! object per line, and `taizhang extract --score DIR` measures it against
//! labelled documents (precision and recall per indicator). The reading
//! itself is `taizhang_ingest::document` and `taizhang_ingest::extract`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use taizhang_ingest::catalog::Catalog;
use taizhang_ingest::extract::{self, Decision, Mention, Score};

/// A document that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ProseError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> ProseError {
    ProseError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The mentions of one document and its sha256.
pub fn extract_file(path: &Path, catalog: &Catalog) -> Result<(Vec<Mention>, String), ProseError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, e))?;
    let doc = taizhang_ingest::document::read(&bytes).map_err(|e| err(path, e))?;
    Ok((extract::extract(&doc.text, catalog), crate::land::sha256_hex(&bytes)))
}

/// One mention as `taizhang extract` prints it (the documented contract,
/// then `rule` and `sha256`).
pub fn to_json(m: &Mention, sha256: &str) -> serde_json::Value {
    json!({
        "indicator": m.indicator,
        "name": m.name,
        "value": m.value,
        "unit_raw": m.unit_raw,
        "approx": m.approx,
        "kind": m.kind,
        "dimension": m.dimension,
        "category": m.category,
        "start": m.start,
        "end": m.end,
        "text": m.text,
        "sentence": m.sentence,
        "confidence": m.confidence,
        "decision": m.decision,
        "rule": m.rule,
        "sha256": sha256,
    })
}

/// Scores of a labelled directory: what is published, and everything found.
pub struct Scores {
    /// Documents scored.
    pub documents: usize,
    /// Per indicator, over the mentions decided `publish`.
    pub published: BTreeMap<String, Score>,
    /// Per indicator, over every mention (published and for review).
    pub found: BTreeMap<String, Score>,
}

impl Scores {
    /// All indicators together.
    pub fn total(scores: &BTreeMap<String, Score>) -> Score {
        let mut t = Score::default();
        scores.values().for_each(|s| t.add(s));
        t
    }
}

/// Scores every `<name>.txt` or `<name>.docx` of `dir` against `<name>.labels.tsv`.
pub fn score_dir(dir: &Path, catalog: &Catalog) -> Result<Scores, ProseError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt" || x == "docx"))
        .collect();
    entries.sort();
    let mut out = Scores {
        documents: 0,
        published: BTreeMap::new(),
        found: BTreeMap::new(),
    };
    for doc in entries {
        let stem = doc.file_stem().unwrap_or_default().to_string_lossy().to_string();
        let labels_path = dir.join(format!("{stem}.labels.tsv"));
        let labels_text = std::fs::read_to_string(&labels_path).map_err(|e| err(&labels_path, e))?;
        let labels = extract::parse_labels(&labels_text).map_err(|e| err(&labels_path, e))?;
        let (mentions, _) = extract_file(&doc, catalog)?;
        let published = extract::score(mentions.iter().filter(|m| m.decision == Decision::Publish), &labels);
        let found = extract::score(&mentions, &labels);
        for (into, from) in [(&mut out.published, published), (&mut out.found, found)] {
            for (k, s) in from {
                into.entry(k).or_default().add(&s);
            }
        }
        out.documents += 1;
    }
    Ok(out)
}

/// The scores as a table for people.
pub fn score_table(s: &Scores) -> String {
    let mut out = format!(
        "{} documents\n{:<26} {:>4} {:>4} {:>4} {:>9} {:>7}   {:>9} {:>7}\n",
        s.documents, "indicator", "tp", "fp", "fn", "precision", "recall", "found: P", "R"
    );
    let row = |name: &str, p: &Score, f: &Score| {
        format!(
            "{:<26} {:>4} {:>4} {:>4} {:>9.3} {:>7.3}   {:>9.3} {:>7.3}\n",
            name,
            p.true_positives,
            p.false_positives,
            p.false_negatives,
            p.precision(),
            p.recall(),
            f.precision(),
            f.recall()
        )
    };
    let empty = Score::default();
    for (k, f) in &s.found {
        out.push_str(&row(k, s.published.get(k).unwrap_or(&empty), f));
    }
    out.push_str(&row("all", &Scores::total(&s.published), &Scores::total(&s.found)));
    out
}
