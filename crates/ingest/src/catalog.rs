//! The indicator catalog (`schemas/indicators.toml`): codes, units, kinds and
//! breakdowns, and the resolution of the labels townships write (names,
//! aliases, traditional spellings) to catalog codes.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::fold::fold;

/// How values of an indicator combine over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// This period's count: adds up across months.
    Flow,
    /// Year to date: the latest value counts.
    Cumulative,
    /// As of the period end: the latest value counts.
    Stock,
}

impl Kind {
    /// Lower-case name as written in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Flow => "flow",
            Kind::Cumulative => "cumulative",
            Kind::Stock => "stock",
        }
    }
}

/// A breakdown dimension (类别, 等级) and its categories.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dimension {
    /// Chinese name as reports write it.
    pub name: String,
    /// What the dimension means.
    #[serde(default)]
    pub description: String,
    /// Every category label, in display order.
    pub categories: Vec<String>,
}

/// One breakdown of an indicator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Breakdown {
    /// Name of a `[[dimension]]`.
    pub dimension: String,
    /// The categories used for this indicator; the dimension's list when omitted.
    #[serde(default)]
    pub categories: Vec<String>,
    /// True when the categories add up to the indicator's total.
    #[serde(default)]
    pub exhaustive: bool,
}

/// One indicator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indicator {
    /// Stable ASCII code; the published table's name.
    pub code: String,
    /// Official Chinese name.
    pub name: String,
    /// Other names seen in reports.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Phrases that name the indicator in running text (工作总结), besides its
    /// name and aliases; several indicators may share one (a count and its
    /// amount), the unit decides. Not used to resolve form labels.
    #[serde(default)]
    pub prose: Vec<String>,
    /// Unit of the published value (人, 户, 元, …).
    pub unit: String,
    /// Other units a value may be written in and still mean the same (人次 for 人).
    #[serde(default)]
    pub accepted_units: Vec<String>,
    /// flow, cumulative or stock.
    pub kind: Kind,
    /// Work area (康复, 两项补贴, …).
    #[serde(default)]
    pub area: String,
    /// What is counted.
    #[serde(default)]
    pub description: String,
    /// Breakdowns reported under the indicator.
    #[serde(default)]
    pub breakdowns: Vec<Breakdown>,
    /// Largest plausible value for one township and one month (scaled by the
    /// months a period covers); above it a value is held out until confirmed.
    #[serde(default)]
    pub plausible_max: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    dimension: Vec<Dimension>,
    #[serde(default)]
    indicator: Vec<Indicator>,
}

/// A catalog that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file is not valid TOML of the catalog's shape.
    #[error("{file}: {source}")]
    Parse {
        /// Catalog file.
        file: String,
        /// What the parser said, with line and key.
        source: Box<toml::de::Error>,
    },
    /// The file parses but says something inconsistent.
    #[error("{file}: indicator {indicator:?}: {reason}")]
    Invalid {
        /// Catalog file.
        file: String,
        /// Indicator code or name.
        indicator: String,
        /// What is wrong.
        reason: String,
    },
}

/// The loaded catalog with its label index.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Indicators in file order.
    pub indicators: Vec<Indicator>,
    /// Dimensions by name.
    pub dimensions: BTreeMap<String, Dimension>,
    by_label: HashMap<String, usize>,
    /// folded category label → dimension name, over every dimension.
    category_dims: HashMap<String, Vec<String>>,
}

impl Catalog {
    /// Parses and validates a catalog; `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Catalog, CatalogError> {
        let parsed: CatalogFile = toml::from_str(text).map_err(|e| CatalogError::Parse {
            file: file.to_string(),
            source: Box::new(e),
        })?;
        let invalid = |indicator: &str, reason: String| CatalogError::Invalid {
            file: file.to_string(),
            indicator: indicator.to_string(),
            reason,
        };
        let dimensions: BTreeMap<String, Dimension> =
            parsed.dimension.into_iter().map(|d| (d.name.clone(), d)).collect();
        let mut indicators = parsed.indicator;
        let mut by_label = HashMap::new();
        for (i, ind) in indicators.iter_mut().enumerate() {
            if ind.code.is_empty()
                || !ind
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(invalid(&ind.code, "code must be lower-case ASCII, digits and _".into()));
            }
            for b in &mut ind.breakdowns {
                let Some(dim) = dimensions.get(&b.dimension) else {
                    return Err(invalid(&ind.code, format!("unknown dimension {:?}", b.dimension)));
                };
                if b.categories.is_empty() {
                    b.categories = dim.categories.clone();
                } else if let Some(c) = b.categories.iter().find(|c| !dim.categories.contains(c)) {
                    return Err(invalid(
                        &ind.code,
                        format!("{c:?} is not a category of {:?}", b.dimension),
                    ));
                }
            }
            let labels = [&ind.code, &ind.name].into_iter().chain(ind.aliases.iter());
            for label in labels {
                if let Some(prev) = by_label.insert(fold(label), i)
                    && prev != i
                {
                    return Err(invalid(
                        &ind.code,
                        format!("label {label:?} is also used by another indicator"),
                    ));
                }
            }
        }
        let mut category_dims: HashMap<String, Vec<String>> = HashMap::new();
        for d in dimensions.values() {
            for c in &d.categories {
                category_dims.entry(fold(c)).or_default().push(d.name.clone());
            }
        }
        Ok(Catalog {
            indicators,
            dimensions,
            by_label,
            category_dims,
        })
    }

    /// The indicator a label (code, name or alias, any spelling) refers to.
    pub fn resolve(&self, label: &str) -> Option<&Indicator> {
        let folded = fold(label);
        let i = self.by_label.get(&folded).or_else(|| {
            // "残疾人证核发（人）": a unit in brackets after the name.
            let bare = folded.split(['(', '（']).next().unwrap_or(&folded);
            self.by_label.get(bare)
        })?;
        Some(&self.indicators[*i])
    }

    /// Why a value written with `unit` cannot be an `indicator` value, if so.
    pub fn unit_mismatch(indicator: &Indicator, unit: &str) -> Option<String> {
        if unit == indicator.unit || indicator.accepted_units.iter().any(|u| u == unit) {
            return None;
        }
        Some(format!(
            "unit {unit} does not fit {} (counted in {})",
            indicator.name, indicator.unit
        ))
    }

    /// The indicator with this exact code.
    pub fn get(&self, code: &str) -> Option<&Indicator> {
        self.indicators.iter().find(|i| i.code == code)
    }

    /// Resolves a breakdown cell of `indicator`: the dimension (given, or
    /// implied by the category label) and the official category label.
    pub fn resolve_category(
        &self,
        indicator: &Indicator,
        dimension: Option<&str>,
        category: &str,
    ) -> Result<(String, String), String> {
        let cat = fold(category);
        let candidates: Vec<&Breakdown> = match dimension.map(fold).filter(|d| !d.is_empty()) {
            Some(d) => indicator
                .breakdowns
                .iter()
                .filter(|b| fold(&b.dimension) == d)
                .collect(),
            None => {
                let dims = self.category_dims.get(&cat).cloned().unwrap_or_default();
                indicator
                    .breakdowns
                    .iter()
                    .filter(|b| dims.contains(&b.dimension))
                    .collect()
            }
        };
        let matches: Vec<(&Breakdown, &String)> = candidates
            .iter()
            .filter_map(|b| b.categories.iter().find(|c| fold(c) == cat).map(|c| (*b, c)))
            .collect();
        match matches.as_slice() {
            [(b, c)] => Ok((b.dimension.clone(), (*c).clone())),
            [] => Err(format!(
                "category {category:?}{} is not a breakdown of {}",
                dimension.map(|d| format!(" of dimension {d:?}")).unwrap_or_default(),
                indicator.name
            )),
            _ => Err(format!("category {category:?} is ambiguous without a dimension")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_toml("indicators.toml", include_str!("../../../schemas/indicators.toml")).unwrap()
    }

    #[test]
    fn shipped_catalog_has_the_issue_indicators() {
        let c = catalog();
        assert!(c.indicators.len() >= 25);
        assert_eq!(c.resolve("殘疾人證核發").unwrap().code, "certificates_issued");
        assert_eq!(c.resolve("certificates_issued").unwrap().unit, "人");
        assert_eq!(c.resolve("护理补贴金额").unwrap().code, "severe_care_amount");
        assert_eq!(c.resolve("残疾人证核发（人）").unwrap().code, "certificates_issued");
        assert!(c.resolve("残疾人体育活动").is_none());
    }

    #[test]
    fn category_implies_its_dimension() {
        let c = catalog();
        let ind = c.get("certificates_issued").unwrap();
        assert_eq!(
            c.resolve_category(ind, None, "視力").unwrap(),
            ("类别".into(), "视力".into())
        );
        assert_eq!(
            c.resolve_category(ind, None, "一级").unwrap(),
            ("等级".into(), "一级".into())
        );
        assert!(c.resolve_category(ind, Some("类别"), "一级").is_err());
        let amount = c.get("severe_care_amount").unwrap();
        assert!(c.resolve_category(amount, None, "视力").is_err());
    }

    #[test]
    fn rejects_unknown_dimension_and_fields() {
        let bad = "[[indicator]]\ncode='x'\nname='x'\nunit='人'\nkind='flow'\nbreakdowns=[{dimension='性别'}]\n";
        let err = Catalog::from_toml("t.toml", bad).unwrap_err().to_string();
        assert!(err.contains("unknown dimension"), "{err}");
        let typo = "[[indicator]]\ncode='x'\nname='x'\nunit='人'\nkind='flow'\nunits='人'\n";
        let err = Catalog::from_toml("t.toml", typo).unwrap_err().to_string();
        assert!(err.contains("unknown field `units`"), "{err}");
    }
}
