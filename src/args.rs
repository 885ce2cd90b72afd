//! What an operator types, checked before anything runs: periods that exist,
//! townships by code or name, pipelines that are configured, a clock given
//! as a date. A mistake gets a reason and exit code 2 ([`EXIT_USAGE`]),
//! never a silent empty answer or an internal error later.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

use crate::period::{Period, china};
use crate::registry::{NameMatch, Registry};

/// Exit code of a command given arguments it cannot use (as clap's).
pub const EXIT_USAGE: u8 = 2;

/// An argument that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {reason}")]
pub struct UsageError {
    /// The flag at fault (`--period`).
    pub flag: &'static str,
    /// What is wrong, with what would be right.
    pub reason: String,
}

fn usage(flag: &'static str, reason: impl Into<String>) -> UsageError {
    UsageError {
        flag,
        reason: reason.into(),
    }
}

/// A period filter: `2026-06`, `2026-Q2`, `2026-H1` or a year `2026`,
/// returned as the warehouse writes it.
pub fn period(s: &str) -> Result<String, UsageError> {
    let p: Period = s.parse().map_err(|_| {
        usage(
            "--period",
            format!("{s:?} is not a period: write a month as 2026-06, a quarter as 2026-Q2, a half year as 2026-H1, or a year as 2026"),
        )
    })?;
    Ok(p.to_string())
}

/// A township by its 9-digit code or its name as people write it (十字镇, 十字).
pub fn township(registry: &Registry, s: &str) -> Result<String, UsageError> {
    if registry.get(s.trim()).is_some() {
        return Ok(s.trim().to_string());
    }
    match registry.resolve_name(s) {
        NameMatch::Found(code) => Ok(code),
        NameMatch::Ambiguous(codes) => Err(usage(
            "--township",
            format!("{s:?} could be any of {}: give the code", codes.join(", ")),
        )),
        NameMatch::Unknown => {
            let similar = registry.similar(s);
            Err(usage(
                "--township",
                match similar.is_empty() {
                    true => format!("{s:?} is no township of the registry"),
                    false => format!("{s:?} is no township of the registry (similar: {})", similar.join(", ")),
                },
            ))
        }
    }
}

/// The pipelines asked for exist.
pub fn pipelines(configured: &[String], asked: &[String]) -> Result<(), UsageError> {
    for a in asked {
        if !configured.contains(a) {
            return Err(usage(
                "--pipeline",
                format!("no pipeline is named {a:?} (configured: {})", configured.join(", ")),
            ));
        }
    }
    Ok(())
}

/// The run's clock: RFC 3339 (`2026-07-10T09:00:00+08:00`) or a date
/// (`2026-07-10`: midnight China time).
pub fn now(s: &str) -> Result<DateTime<Utc>, UsageError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        if let Some(t) = china().from_local_datetime(&midnight).single() {
            return Ok(t.with_timezone(&Utc));
        }
    }
    Err(usage(
        "--now",
        format!("{s:?} is neither a date (2026-07-10, midnight China time) nor a time (2026-07-10T09:00:00+08:00)"),
    ))
}

/// A county's townships from the division table compiled in, as
/// tab-separated lines with a header: code, name, county, city, province.
pub fn townships(county: &str) -> Result<String, UsageError> {
    let code = county.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(usage(
            "--county",
            format!("{county:?} is not a 6-digit county code (341124)"),
        ));
    }
    let config = crate::registry::RegistryConfig {
        counties: vec![code.to_string()],
        aliases: vec![],
        population: Default::default(),
    };
    let registry = Registry::build("--county", &config, &crate::registry::Divisions::embedded())
        .map_err(|e| usage("--county", format!("{code}: {e}")))?;
    let mut out = String::from("township\tname\tcounty\tcity\tprovince\n");
    for t in registry.townships.values() {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            t.code, t.name, t.county_name, t.city_name, t.province_name
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_that_do_not_exist_are_refused_with_the_forms_that_do() {
        for bad in ["2026-13", "2026-6", "202606", "2026-Q5", "June"] {
            let e = period(bad).unwrap_err().to_string();
            assert!(e.starts_with("--period: ") && e.contains("2026-06"), "{e}");
        }
        assert_eq!(period("2026-06").unwrap(), "2026-06");
        assert_eq!(period("2026-q2").unwrap(), "2026-Q2");
        assert_eq!(period("2026").unwrap(), "2026");
    }

    #[test]
    fn a_date_is_midnight_china_time_and_junk_says_what_is_accepted() {
        assert_eq!(now("2026-07-10").unwrap().to_rfc3339(), "2026-07-09T16:00:00+00:00");
        assert_eq!(
            now("2026-07-10T09:00:00+08:00").unwrap().to_rfc3339(),
            "2026-07-10T01:00:00+00:00"
        );
        assert!(now("yesterday").unwrap_err().to_string().contains("neither a date"));
    }

    #[test]
    fn unknown_pipelines_are_named_with_the_configured_ones() {
        let configured = vec!["cdpf-monthly".to_string(), "cdpf-quarterly".to_string()];
        assert!(pipelines(&configured, &["cdpf-monthly".into()]).is_ok());
        let e = pipelines(&configured, &["nope".into()]).unwrap_err().to_string();
        assert!(
            e.contains("\"nope\"") && e.contains("cdpf-monthly, cdpf-quarterly"),
            "{e}"
        );
    }

    #[test]
    fn townships_by_code_or_name_and_unknown_ones_with_the_similar() {
        let registry = std::sync::Arc::unwrap_or_clone(crate::config::Loaded::embedded().def).registry;
        assert_eq!(township(&registry, "341124107").unwrap(), "341124107");
        assert_eq!(township(&registry, "十字镇").unwrap(), "341124107");
        assert_eq!(township(&registry, "十字鎮").unwrap(), "341124107");
        let e = township(&registry, "十里镇").unwrap_err().to_string();
        assert!(e.contains("no township") && e.contains("十字镇(341124107)"), "{e}");
    }

    #[test]
    fn a_countys_townships_come_from_the_division_table() {
        let t = townships("341124").unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "township\tname\tcounty\tcity\tprovince");
        assert_eq!(lines.len(), 11, "{t}");
        assert!(t.contains("341124107\t十字镇\t全椒县\t滁州市\t安徽省"), "{t}");
        assert!(townships("34112").unwrap_err().to_string().contains("6-digit"));
        assert!(
            townships("999999")
                .unwrap_err()
                .to_string()
                .starts_with("--county: 999999")
        );
    }
}
