//! DHIS2 `dataValueSets` JSON, for counties already on DHIS2: data element,
//! category option combo and org unit UIDs are mapped to catalog codes,
//! breakdown cells and township codes through `config/dhis2.toml`. Unmapped
//! UIDs are kept visible (`dhis2:<uid>`) so the value is quarantined with a
//! reason naming them, never dropped.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::submission::{Cell, Format, ParseError, RawValue, Submission};

/// `config/dhis2.toml`: DHIS2 UIDs → taizhang codes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// dataElement UID → indicator code (or name).
    #[serde(default)]
    pub data_elements: BTreeMap<String, String>,
    /// categoryOptionCombo UID → `total` or `dimension:category` (类别:视力).
    #[serde(default)]
    pub category_option_combos: BTreeMap<String, String>,
    /// orgUnit UID → 9-digit township code.
    #[serde(default)]
    pub org_units: BTreeMap<String, String>,
}

/// DHIS2 period (202606, 2026Q2, 2026S1, 2026) → taizhang period.
pub fn period(p: &str) -> Option<String> {
    let p = p.trim();
    let (y, rest) = (p.get(..4)?, p.get(4..)?);
    if !y.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match rest {
        "" => Some(y.to_string()),
        r if r.len() == 2 && r.bytes().all(|b| b.is_ascii_digit()) => Some(format!("{y}-{r}")),
        r if r.starts_with('Q') => Some(format!("{y}-{r}")),
        r if r.starts_with('S') => Some(format!("{y}-H{}", &r[1..])),
        _ => None,
    }
}

fn text(o: &Map<String, Value>, k: &str) -> Option<String> {
    match o.get(k)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Converts a parsed `dataValueSets` object.
pub fn to_submission(obj: &Map<String, Value>, mapping: &Mapping) -> Result<Submission, ParseError> {
    let Some(Value::Array(values)) = obj.get("dataValues") else {
        return Err(ParseError::Shape("dataValueSets has no dataValues list".into()));
    };
    let first = values.first().and_then(Value::as_object);
    let org = text(obj, "orgUnit").or_else(|| first.and_then(|f| text(f, "orgUnit")));
    let per = text(obj, "period").or_else(|| first.and_then(|f| text(f, "period")));
    let township = org.as_ref().map(|o| {
        mapping
            .org_units
            .get(o)
            .cloned()
            .unwrap_or_else(|| format!("dhis2:{o}"))
    });
    let period_str = match &per {
        Some(p) => Some(period(p).ok_or_else(|| {
            ParseError::Shape(format!(
                "DHIS2 period {p:?} is not monthly, quarterly, six-monthly or yearly"
            ))
        })?),
        None => None,
    };
    let submitted_at: Option<DateTime<FixedOffset>> = text(obj, "completeDate").and_then(|d| {
        let day = NaiveDate::parse_from_str(d.get(..10)?, "%Y-%m-%d").ok()?;
        crate::period::china()
            .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
            .single()
    });
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let Some(o) = v.as_object() else {
            out.push(RawValue {
                indicator: None,
                dimension: None,
                category: None,
                value: Cell::Text(v.to_string().into()),
                problem: Some("dataValue is not an object".into()),
            });
            continue;
        };
        let de = text(o, "dataElement");
        let indicator = de.as_ref().map(|d| {
            mapping
                .data_elements
                .get(d)
                .cloned()
                .unwrap_or_else(|| format!("dhis2:{d}"))
        });
        let mut problem = None;
        let (dimension, category) = match text(o, "categoryOptionCombo") {
            None => (None, None),
            Some(coc) => match mapping.category_option_combos.get(&coc).map(String::as_str) {
                Some("total") => (None, None),
                Some(cell) => match cell.split_once(':') {
                    Some((d, c)) => (Some(d.to_string()), Some(c.to_string())),
                    None => (None, Some(cell.to_string())),
                },
                None => {
                    problem = Some(format!("categoryOptionCombo {coc:?} is not in the DHIS2 mapping"));
                    (None, None)
                }
            },
        };
        let (vo, vp) = (text(o, "orgUnit"), text(o, "period"));
        if vo.is_some() && vo != org || vp.is_some() && vp != per {
            problem = Some(format!(
                "dataValue is for orgUnit {} period {}, not the set's",
                vo.unwrap_or_default(),
                vp.unwrap_or_default()
            ));
        }
        out.push(RawValue {
            indicator: indicator.map(Into::into),
            dimension: dimension.map(Into::into),
            category: category.map(Into::into),
            value: text(o, "value").map(|t| Cell::Text(t.into())).unwrap_or(Cell::Null),
            problem,
        });
    }
    Ok(Submission {
        format: Format::Dhis2,
        encoding: "utf-8",
        township,
        township_name: None,
        program: None,
        period: period_str,
        submitted_at,
        version: None,
        explanation: None,
        values: out,
        mentions: vec![],
        stated_quotas: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(period("202606").as_deref(), Some("2026-06"));
        assert_eq!(period("2026Q2").as_deref(), Some("2026-Q2"));
        assert_eq!(period("2026S1").as_deref(), Some("2026-H1"));
        assert_eq!(period("2026").as_deref(), Some("2026"));
        assert_eq!(period("2026W3"), None);
    }
}
