//! What a county defines, read from texts and validated, before any run:
//! the indicator catalog, the township registry, the reporting programs
//! (`pipelines/*.toml`, their checks built from [`crate::checks`]), the
//! quotas and the DHIS2 mapping. Pure: the binary reads the files and hands
//! over their texts; the texts shipped with the binary are [`embedded_texts`].

use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use taizhang_model::{Quota, sha256_hex};

use crate::catalog::{Catalog, CatalogError};
use crate::checks::CheckConfig;
use crate::period::{Period, PeriodType};
use crate::registry::{Divisions, Registry, RegistryConfig, RegistryError};

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    /// The file at fault.
    pub file: String,
    /// The key (or line) at fault.
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A problem with `key` of `file`.
    pub fn new(file: impl Into<String>, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The texts of a configuration, wherever they came from.
pub struct Texts<'a> {
    /// (file name, text) of the catalog.
    pub catalog: (String, String),
    /// (file name, text) of the registry.
    pub registry: (String, String),
    /// (file name, text) of each pipeline.
    pub pipelines: Vec<(String, String)>,
    /// (file name, text) of each quota CSV.
    pub quotas: Vec<(String, String)>,
    /// (file name, text) of the DHIS2 mapping, if any.
    pub dhis2: Option<(String, String)>,
    /// The division table.
    pub divisions: Divisions<'a>,
}

/// The configuration compiled into the binary (the demo's defaults).
pub fn embedded_texts() -> Texts<'static> {
    Texts {
        catalog: (
            "schemas/indicators.toml".into(),
            include_str!("../../../schemas/indicators.toml").into(),
        ),
        registry: (
            "config/registry.toml".into(),
            include_str!("../../../config/registry.toml").into(),
        ),
        pipelines: vec![
            (
                "pipelines/cdpf-monthly.toml".into(),
                include_str!("../../../pipelines/cdpf-monthly.toml").into(),
            ),
            (
                "pipelines/cdpf-quarterly.toml".into(),
                include_str!("../../../pipelines/cdpf-quarterly.toml").into(),
            ),
        ],
        quotas: vec![(
            "config/quotas/2026.csv".into(),
            include_str!("../../../config/quotas/2026.csv").into(),
        )],
        dhis2: Some((
            "config/dhis2.toml".into(),
            include_str!("../../../config/dhis2.toml").into(),
        )),
        divisions: Divisions::embedded(),
    }
}

fn with_lines(file: &str, text: &str, e: toml::de::Error) -> ConfigError {
    let key = match e.span() {
        Some(span) => format!("line {}", text[..span.start.min(text.len())].matches('\n').count() + 1),
        None => "-".into(),
    };
    ConfigError::new(file, key, e.message().trim().to_string())
}

/// `revisit_every_days` when it is not given.
pub const DEFAULT_REVISIT_EVERY_DAYS: u32 = 7;

/// One reporting program (`pipelines/<name>.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Program name; also the `program` field of submissions.
    pub name: String,
    /// Display title.
    #[serde(default)]
    pub title: String,
    /// monthly, quarterly, half_yearly or yearly.
    pub period_type: PeriodType,
    /// First period expected, e.g. `2026-01`.
    pub start_period: String,
    /// Days after the period end a report is due.
    pub deadline_days: u32,
    /// A period whose deadline is at least this many days past is settled:
    /// its reports are asked for on one day in `revisit_every_days` (each
    /// township's on its own day) instead of on every run. Absent: every
    /// period on every run.
    #[serde(default)]
    pub revisit_after_days: Option<u32>,
    /// See `revisit_after_days` (default 7).
    #[serde(default)]
    pub revisit_every_days: Option<u32>,
    /// What the bodies are: `submission` (forms, the default) or `document`
    /// (work summaries, .txt or .docx, read by the extractor).
    #[serde(default)]
    pub source_kind: crate::parse::SourceKind,
    /// URL template with `{township}` and `{period}` (and, optionally,
    /// `{county}`: the township code's first six digits).
    #[serde(default)]
    pub source_url: Option<String>,
    /// With `source_url`: a URL template (`{period}`, `{county}`, both
    /// optional) whose body lists the reports the portal serves with their
    /// validators (see the README's "Listings"). A report listed as the body
    /// landed last for it is not asked for.
    #[serde(default)]
    pub listing_url: Option<String>,
    /// A folder the county drops reports into instead of a portal:
    /// `<township code or name>_<period>.<ext>` (大墅镇_2026-H1.docx).
    /// Exactly one of `source_url` and `inbox_dir`.
    #[serde(default)]
    pub inbox_dir: Option<String>,
    /// Cron schedule (sec min hour day month weekday), China time.
    pub schedule: String,
    /// Indicator codes reported; empty means the whole catalog.
    #[serde(default)]
    pub indicators: Vec<String>,
    /// Checks run before the rollup.
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
}

impl Pipeline {
    /// Whether a run at `now` asks for `township`'s report of `period`: a
    /// settled period's (see `revisit_after_days`) on one China day in
    /// `revisit_every_days`, the day picked by the township and period so
    /// that a run asks for about as many every day (by its county and the
    /// period for a program with a `listing_url`: the reports one listing
    /// names share their day, and a day reads each listing it needs once);
    /// any other on every run.
    pub fn revisits(&self, township: &str, period: &Period, now: DateTime<Utc>) -> bool {
        let Some(after) = self.revisit_after_days else {
            return true;
        };
        let settled = period.deadline(self.deadline_days) + chrono::Duration::days(i64::from(after));
        if now < settled {
            return true;
        }
        let every = u64::from(self.revisit_every_days.unwrap_or(DEFAULT_REVISIT_EVERY_DAYS).max(1));
        let day = now
            .with_timezone(&crate::period::china())
            .date_naive()
            .num_days_from_ce();
        let by = match self.listing_url {
            Some(_) => county_of(township),
            None => township,
        };
        let slot = revisit_slot(by, period);
        slot.wrapping_add(u64::from(day.unsigned_abs())).is_multiple_of(every)
    }

    /// The first expected period (validated at load).
    pub fn start(&self) -> Period {
        self.start_period.parse().expect("validated at load")
    }

    /// The URL of one township's report for one period (a pipeline with a
    /// `source_url`; an inbox pipeline has none).
    pub fn url(&self, township: &str, period: &Period) -> Option<String> {
        self.url_of(township, &period.to_string())
    }

    /// [`Pipeline::url`] of a period as written (`2026-06`).
    pub fn url_of(&self, township: &str, period: &str) -> Option<String> {
        self.source_url.as_deref().map(|u| fill(u, township, period))
    }

    /// The listing that names `township`'s report of `period`, when the
    /// pipeline has a `listing_url`.
    pub fn listing_of(&self, township: &str, period: &str) -> Option<String> {
        self.listing_url.as_deref().map(|u| fill(u, township, period))
    }
}

/// The county of a township code: its first six digits.
fn county_of(township: &str) -> &str {
    township.get(..6).unwrap_or(township)
}

/// A URL template with `{township}`, `{county}` (the township code's first
/// six digits) and `{period}` filled in.
fn fill(template: &str, township: &str, period: &str) -> String {
    let mut url = template.replace("{township}", township).replace("{period}", period);
    if url.contains("{county}") {
        url = url.replace("{county}", county_of(township));
    }
    url
}

/// The hash of `<township>/<period>` that spreads a settled period's
/// reports over the days of a revisit cycle, streamed rather than joined
/// first (a national year asks it of 455,000 reports a run): the same
/// number as the joined text's, so no report moves to another day.
fn revisit_slot(township: &str, period: &Period) -> u64 {
    let mut slot = xxhash_rust::xxh3::Xxh3::new();
    slot.update(township.as_bytes());
    slot.update(b"/");
    // A period's text is at most 7 bytes (`2026-06`, `2026-Q2`).
    let mut text = [0u8; 16];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{period}"));
    let n = cursor.position() as usize;
    slot.update(&text[..n]);
    slot.digest()
}

/// A county's definitions, loaded and validated.
#[derive(Debug, Clone)]
pub struct Definition {
    /// Indicator catalog.
    pub catalog: Catalog,
    /// Township registry.
    pub registry: Registry,
    /// Reporting programs, by name order.
    pub pipelines: Vec<Pipeline>,
    /// Quotas of every year.
    pub quotas: Vec<Quota>,
    /// DHIS2 UID mapping.
    pub dhis2: crate::dhis2::Mapping,
    /// Digest of everything normalization reads besides the body and the
    /// program: the catalog, the registry (its text and resolved townships)
    /// and the DHIS2 mapping. Part of the kept results' fingerprint.
    pub texts_digest: String,
    /// Digest of every text of the configuration (the programs and quotas
    /// too): part of what a remembered batch was computed from.
    pub all_texts_digest: String,
}

impl Definition {
    /// The program named `name`.
    pub fn pipeline(&self, name: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    /// Loads and validates a configuration from texts.
    pub fn from_texts(t: &Texts<'_>) -> Result<Definition, ConfigError> {
        let catalog = Catalog::from_toml(&t.catalog.0, &t.catalog.1).map_err(|e| match e {
            CatalogError::Parse { file, source } => with_lines(&file, &t.catalog.1, *source),
            CatalogError::Invalid {
                file,
                indicator,
                reason,
            } => ConfigError::new(file, format!("indicator {indicator:?}"), reason),
        })?;
        let reg_cfg: RegistryConfig =
            toml::from_str(&t.registry.1).map_err(|e| with_lines(&t.registry.0, &t.registry.1, e))?;
        let registry = Registry::build(&t.registry.0, &reg_cfg, &t.divisions).map_err(|e| match e {
            RegistryError::Parse { file, source } => with_lines(&file, &t.registry.1, *source),
            RegistryError::Invalid { file, key, reason } => ConfigError::new(file, key, reason),
        })?;
        let mut pipelines = Vec::new();
        for (file, text) in &t.pipelines {
            let p: Pipeline = toml::from_str(text).map_err(|e| with_lines(file, text, e))?;
            validate_pipeline(file, text, &p, &catalog)?;
            if pipelines.iter().any(|q: &Pipeline| q.name == p.name) {
                return Err(ConfigError::new(
                    file,
                    "name",
                    format!("pipeline {:?} is defined twice", p.name),
                ));
            }
            pipelines.push(p);
        }
        pipelines.sort_by(|a, b| a.name.cmp(&b.name));
        let mut quotas = Vec::new();
        for (file, text) in &t.quotas {
            quotas.extend(parse_quotas(file, text, &catalog, &registry)?);
        }
        let dhis2 = match &t.dhis2 {
            Some((file, text)) => toml::from_str(text).map_err(|e| with_lines(file, text, e))?,
            None => crate::dhis2::Mapping::default(),
        };
        let mut digest = String::new();
        for text in [&t.catalog.1, &t.registry.1] {
            digest.push_str(&sha256_hex(text.as_bytes()));
        }
        if let Some((_, text)) = &t.dhis2 {
            digest.push_str(&sha256_hex(text.as_bytes()));
        }
        let townships: String = registry
            .townships
            .values()
            .map(|t| format!("{}={}@{};", t.code, t.name, t.county))
            .collect();
        digest.push_str(&sha256_hex(townships.as_bytes()));
        let mut all = digest.clone();
        // By file name, not path: the same deployment named by another
        // path (a relative --config, a moved directory) is the same. A
        // program as parsed (its comments and layout compute nothing), less
        // what only says when to ask for reports: no batch is computed
        // from `revisit_*`.
        let programs = t.pipelines.iter().map(|(file, text)| (file, computed_from(text)));
        let quota_texts = t.quotas.iter().map(|(file, text)| (file, text.clone()));
        for (file, text) in programs.chain(quota_texts) {
            let name = std::path::Path::new(file)
                .file_name()
                .map_or(file.as_str(), |n| n.to_str().unwrap_or(file));
            all.push_str(&sha256_hex(format!("{name}\n{text}").as_bytes()));
        }
        Ok(Definition {
            catalog,
            registry,
            pipelines,
            quotas,
            dhis2,
            texts_digest: sha256_hex(digest.as_bytes()),
            all_texts_digest: sha256_hex(all.as_bytes()),
        })
    }
}

/// What a program's batches are computed from: its settings (parsed and
/// written out again) less those that only say when to ask for reports.
/// A text that does not parse (it never gets this far) counts whole.
fn computed_from(program: &str) -> String {
    match program.parse::<toml::Table>() {
        Ok(mut settings) => {
            settings.remove("revisit_after_days");
            settings.remove("revisit_every_days");
            settings.to_string()
        }
        Err(_) => program.to_string(),
    }
}

fn validate_pipeline(file: &str, text: &str, p: &Pipeline, catalog: &Catalog) -> Result<(), ConfigError> {
    let start: Period = p
        .start_period
        .parse()
        .map_err(|e: crate::period::BadPeriod| ConfigError::new(file, "start_period", e.to_string()))?;
    if start.kind() != p.period_type {
        return Err(ConfigError::new(
            file,
            "start_period",
            format!("{:?} is not a {:?} period", p.start_period, p.period_type),
        ));
    }
    match (&p.source_url, &p.inbox_dir) {
        (Some(url), None) => {
            for part in ["{township}", "{period}"] {
                if !url.contains(part) {
                    return Err(ConfigError::new(file, "source_url", format!("must contain {part}")));
                }
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::new(
                    file,
                    "source_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        (None, Some(dir)) if dir.trim().is_empty() => {
            return Err(ConfigError::new(file, "inbox_dir", "is empty"));
        }
        (None, Some(_)) => {}
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                file,
                "inbox_dir",
                "a pipeline has either source_url (a portal) or inbox_dir (a folder), not both",
            ));
        }
        (None, None) => {
            return Err(ConfigError::new(
                file,
                "source_url",
                "missing: give source_url (a portal URL with {township} and {period}) or inbox_dir (a folder)",
            ));
        }
    }
    if let Some(listing) = &p.listing_url {
        if p.source_url.is_none() {
            return Err(ConfigError::new(
                file,
                "listing_url",
                "lists a portal's reports: give it with source_url, not with inbox_dir",
            ));
        }
        if !(listing.starts_with("http://") || listing.starts_with("https://")) {
            return Err(ConfigError::new(
                file,
                "listing_url",
                "must be an http:// or https:// URL",
            ));
        }
        if listing.contains("{township}") {
            return Err(ConfigError::new(
                file,
                "listing_url",
                "lists many townships' reports: it may hold {period} and {county}, not {township}",
            ));
        }
    }
    match (p.revisit_after_days, p.revisit_every_days) {
        (_, Some(0)) => {
            return Err(ConfigError::new(
                file,
                "revisit_every_days",
                "must be 1 or more (1: every day)",
            ));
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                file,
                "revisit_every_days",
                "has no effect without revisit_after_days (the days after a deadline from which a period is asked for less often)",
            ));
        }
        _ => {}
    }
    if let Some(why) = schedule_problem(&p.schedule) {
        return Err(ConfigError::new(file, "schedule", why));
    }
    for code in &p.indicators {
        if catalog.get(code).is_none() {
            return Err(ConfigError::new(
                file,
                "indicators",
                format!("unknown indicator {code:?}"),
            ));
        }
    }
    for (i, c) in p.checks.iter().enumerate() {
        if let CheckConfig::Breakdown(b) = c {
            for code in &b.indicators {
                let Some(ind) = catalog.get(code) else {
                    return Err(ConfigError::new(
                        file,
                        format!("checks[{i}].indicators"),
                        format!("unknown indicator {code:?}"),
                    ));
                };
                if ind.breakdowns.is_empty() {
                    return Err(ConfigError::new(
                        file,
                        format!("checks[{i}].indicators"),
                        format!("{code:?} has no breakdown"),
                    ));
                }
            }
        }
        if let Err(reason) = c.build(catalog) {
            let line = check_line(text, i);
            return Err(ConfigError::new(file, format!("line {line}: checks[{i}]"), reason));
        }
    }
    Ok(())
}

/// Why a pipeline's `schedule` cannot be used: not six fields, a field out
/// of range, or a schedule that never fires (30 February). None when it is
/// fine.
pub fn schedule_problem(schedule: &str) -> Option<String> {
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    let shape = "taizhang schedules have 6 fields: second minute hour day month weekday (China time), \
                 e.g. \"0 0 2 * * *\" for 02:00 every night";
    if fields.len() != 6 {
        let hint = match fields.len() {
            5 => format!("; with seconds: \"0 {}\"", fields.join(" ")),
            _ => String::new(),
        };
        return Some(format!("{schedule:?} has {} fields; {shape}{hint}", fields.len()));
    }
    let ranges = [
        ("second", 0, 59),
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day", 1, 31),
        ("month", 1, 12),
        ("weekday", 1, 7),
    ];
    for (field, (name, lo, hi)) in fields.iter().zip(ranges) {
        for n in field.split([',', '-', '/']).filter_map(|t| t.parse::<u32>().ok()) {
            // A step (*/90) is not a value; only values are bounded here.
            let is_step = field.split_once('/').is_some_and(|(_, step)| step == n.to_string());
            if !is_step && !(lo..=hi).contains(&n) {
                return Some(format!("{schedule:?}: {name} {n} is out of range {lo}–{hi}; {shape}"));
            }
        }
    }
    let parsed = match schedule.parse::<cron::Schedule>() {
        Ok(s) => s,
        Err(e) => {
            // The cron crate says "less than N" where it means "at most N".
            let why = e.to_string().replace("must be less than", "must be at most");
            let why = why.lines().last().unwrap_or("").trim().to_string();
            return Some(format!("{schedule:?} is not a cron schedule: {why}; {shape}"));
        }
    };
    // Fixed, not the clock: 2000-01-01 to 2008 sees every 29 February.
    let from = chrono::DateTime::<chrono::Utc>::from_timestamp(946_684_800, 0).expect("2000-01-01 is a time");
    match parsed.after(&from).next() {
        Some(t) if t.timestamp() < 946_684_800 + 9 * 366 * 86_400 => None,
        _ => Some(format!("{schedule:?} never fires (no such date)")),
    }
}

/// Line of the `i`-th `[[checks]]` table in a pipeline file.
fn check_line(text: &str, i: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim() == "[[checks]]")
        .nth(i)
        .map_or(0, |(n, _)| n + 1)
}

/// Parses a quota CSV (`year,code,indicator,quota`).
pub fn parse_quotas(file: &str, text: &str, catalog: &Catalog, registry: &Registry) -> Result<Vec<Quota>, ConfigError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header = lines
        .next()
        .map(|(_, l)| l.trim().trim_start_matches('\u{feff}'))
        .unwrap_or("");
    if header != "year,code,indicator,quota" {
        return Err(ConfigError::new(
            file,
            "line 1",
            "header must be year,code,indicator,quota",
        ));
    }
    let counties = registry.counties();
    let mut out = Vec::new();
    for (i, line) in lines {
        let at = format!("line {}", i + 1);
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 4 {
            return Err(ConfigError::new(file, at, "expected 4 fields"));
        }
        let year = f[0]
            .parse()
            .map_err(|_| ConfigError::new(file, &at, format!("year {:?} is not a year", f[0])))?;
        if registry.get(f[1]).is_none() && !counties.contains_key(f[1]) {
            return Err(ConfigError::new(
                file,
                &at,
                format!("{:?} is neither a county nor a township of the registry", f[1]),
            ));
        }
        // A code, or a name as people write it (白内障复明手术).
        let Some(indicator) = catalog.get(f[2]).or_else(|| catalog.resolve(f[2])) else {
            return Err(ConfigError::new(file, &at, format!("unknown indicator {:?}", f[2])));
        };
        let quota: f64 = f[3]
            .parse()
            .ok()
            .filter(|q: &f64| q.is_finite() && *q >= 0.0)
            .ok_or_else(|| ConfigError::new(file, &at, format!("quota {:?} is not a non-negative number", f[3])))?;
        out.push(Quota {
            year,
            code: f[1].to_string(),
            indicator: indicator.code.clone(),
            quota,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_batches_are_computed_from_does_not_depend_on_the_path_the_files_were_named_by() {
        let here = Definition::from_texts(&embedded_texts()).unwrap();
        let mut t = embedded_texts();
        for (file, _) in t.pipelines.iter_mut().chain(t.quotas.iter_mut()) {
            *file = format!("/srv/taizhang/config/../{file}");
        }
        assert_eq!(
            Definition::from_texts(&t).unwrap().all_texts_digest,
            here.all_texts_digest
        );
        // When to ask for reports does not count.
        let before = t.pipelines[0].1.clone();
        t.pipelines[0].1 = before.replace("deadline_days = 5", "deadline_days = 5\nrevisit_after_days = 30");
        assert_ne!(t.pipelines[0].1, before);
        assert_eq!(
            Definition::from_texts(&t).unwrap().all_texts_digest,
            here.all_texts_digest
        );
        t.pipelines[0].1 = t.pipelines[0].1.replace(
            "revisit_after_days = 30",
            "revisit_after_days = 9\nrevisit_every_days = 3",
        );
        assert_eq!(
            Definition::from_texts(&t).unwrap().all_texts_digest,
            here.all_texts_digest
        );
        // Nor do its comments and layout ...
        t.pipelines[0].1 = format!("# edited\n\n{before}\n\n# the end\n");
        assert_eq!(
            Definition::from_texts(&t).unwrap().all_texts_digest,
            here.all_texts_digest
        );
        // ... but every setting does.
        t.pipelines[0].1 = before.replace("deadline_days = 5", "deadline_days = 6");
        assert_ne!(t.pipelines[0].1, before);
        assert_ne!(
            Definition::from_texts(&t).unwrap().all_texts_digest,
            here.all_texts_digest
        );
    }

    /// The demo's monthly program, with `extra` lines added.
    fn monthly(extra: &str) -> Result<Definition, ConfigError> {
        let mut t = embedded_texts();
        let text = t.pipelines[0]
            .1
            .replace("deadline_days = 5", &format!("deadline_days = 5\n{extra}"));
        assert_ne!(text, t.pipelines[0].1);
        t.pipelines[0].1 = text;
        Definition::from_texts(&t)
    }

    #[test]
    fn a_settled_period_is_asked_for_once_in_its_days_and_a_recent_one_every_day() {
        let d = monthly("revisit_after_days = 30\nrevisit_every_days = 7").unwrap();
        let p = &d.pipelines[0];
        let day = |date: &str| {
            DateTime::parse_from_rfc3339(&format!("{date}T10:00:00+08:00"))
                .unwrap()
                .with_timezone(&Utc)
        };
        let (may, june): (Period, Period) = ("2026-05".parse().unwrap(), "2026-06".parse().unwrap());
        let townships: Vec<String> = (0..700).map(|i| format!("341124{i:03}")).collect();
        // June's reports are due by the end of July 5th: settled 30 days
        // later, on August 5th.
        assert!(townships.iter().all(|t| p.revisits(t, &june, day("2026-08-04"))));
        assert!(!townships.iter().all(|t| p.revisits(t, &june, day("2026-08-05"))));
        // May's deadline passed 30 days before 2026-07-06: over any seven
        // days from then, each township's May is asked for once, and every
        // day for about a seventh of them.
        let mut times = std::collections::HashMap::new();
        for d in 6..13 {
            let asked: Vec<&String> = townships
                .iter()
                .filter(|t| p.revisits(t, &may, day(&format!("2026-07-{d:02}"))))
                .collect();
            assert!((60..=140).contains(&asked.len()), "day {d}: {}", asked.len());
            for t in asked {
                *times.entry(t.clone()).or_insert(0) += 1;
            }
        }
        assert_eq!(times.len(), townships.len());
        assert!(times.values().all(|n| *n == 1));
        // The day before it settles, May is asked for everywhere.
        assert!(townships.iter().all(|t| p.revisits(t, &may, day("2026-07-05"))));
        // Without revisit_after_days, every period on every run.
        let every = Definition::from_texts(&embedded_texts()).unwrap();
        assert!(
            townships
                .iter()
                .all(|t| every.pipelines[0].revisits(t, &may, day("2026-12-01")))
        );
    }

    #[test]
    fn with_a_listing_a_countys_settled_reports_share_their_day() {
        let d = monthly("revisit_after_days = 30\nlisting_url = \"http://portal/r/{period}/{county}/\"").unwrap();
        let p = &d.pipelines[0];
        let day = |d: u32| {
            DateTime::parse_from_rfc3339(&format!("2026-07-{d:02}T10:00:00+08:00"))
                .unwrap()
                .with_timezone(&Utc)
        };
        let may: Period = "2026-05".parse().unwrap();
        let counties: Vec<String> = (0..300).map(|i| format!("{:06}", 110100 + i)).collect();
        let mut days_of_county = std::collections::HashMap::new();
        for d in 6..13 {
            let mut asked = 0;
            for c in &counties {
                let due: Vec<bool> = (1..=12)
                    .map(|t| p.revisits(&format!("{c}{t:03}"), &may, day(d)))
                    .collect();
                // All of a county's townships, or none of them.
                assert!(due.iter().all(|x| *x == due[0]), "{c} on day {d}");
                if due[0] {
                    asked += 1;
                    *days_of_county.entry(c.clone()).or_insert(0) += 1;
                }
            }
            // About a seventh of the counties every day.
            assert!((20..=70).contains(&asked), "day {d}: {asked}");
        }
        // Each county once in the seven days.
        assert_eq!(days_of_county.len(), counties.len());
        assert!(days_of_county.values().all(|n| *n == 1));
    }

    #[test]
    fn a_reports_revisit_day_is_the_hash_of_its_joined_text_as_before() {
        for period in ["2026-06", "2026-Q2", "2026-H1", "2026", "1999-12"] {
            let parsed: Period = period.parse().unwrap();
            for township in ["341124102", "110101001", ""] {
                assert_eq!(
                    revisit_slot(township, &parsed),
                    xxhash_rust::xxh3::xxh3_64(format!("{township}/{period}").as_bytes()),
                    "{township}/{period}"
                );
            }
        }
    }

    #[test]
    fn a_listing_and_a_county_are_filled_in_and_a_listing_that_cannot_work_is_an_error_naming_its_key() {
        let d = monthly(r#"listing_url = "http://portal/listings/{period}/{county}/""#).unwrap();
        let p = &d.pipelines[0];
        assert_eq!(
            p.listing_of("341124102", "2026-06").as_deref(),
            Some("http://portal/listings/2026-06/341124/")
        );
        assert_eq!(d.pipelines[1].listing_of("341124102", "2026-Q2"), None);
        let mut t = embedded_texts();
        t.pipelines[0].1 = t.pipelines[0]
            .1
            .replace("/reports/{township}/{period}", "/r/{period}/{county}/{township}.json");
        let d = Definition::from_texts(&t).unwrap();
        assert_eq!(
            d.pipelines[0].url_of("341124102", "2026-06").as_deref(),
            Some("http://127.0.0.1:8080/r/2026-06/341124/341124102.json")
        );
        for (extra, says) in [
            (r#"listing_url = "http://portal/{township}""#, "not {township}"),
            (r#"listing_url = "ftp://portal/""#, "http:// or https://"),
        ] {
            let err = monthly(extra).unwrap_err().to_string();
            assert!(err.contains("listing_url") && err.contains(says), "{err}");
        }
        let mut t = embedded_texts();
        t.pipelines[0].1 = t.pipelines[0].1.replace(
            "source_url = \"http://127.0.0.1:8080/reports/{township}/{period}\"",
            "inbox_dir = \"inbox\"\nlisting_url = \"http://portal/\"",
        );
        let err = Definition::from_texts(&t).unwrap_err().to_string();
        assert!(err.contains("listing_url") && err.contains("with source_url"), "{err}");
    }

    #[test]
    fn a_revisit_setting_that_cannot_work_is_an_error_naming_its_key() {
        let err = monthly("revisit_after_days = 30\nrevisit_every_days = 0")
            .unwrap_err()
            .to_string();
        assert!(err.contains("revisit_every_days") && err.contains("1 or more"), "{err}");
        let err = monthly("revisit_every_days = 7").unwrap_err().to_string();
        assert!(
            err.contains("revisit_every_days") && err.contains("without revisit_after_days"),
            "{err}"
        );
        let err = monthly("revisit_after_days = -1").unwrap_err().to_string();
        assert!(err.starts_with("pipelines/cdpf-monthly.toml: line "), "{err}");
        // Every day: the same as no setting.
        assert!(monthly("revisit_after_days = 0\nrevisit_every_days = 1").is_ok());
    }

    #[test]
    fn embedded_configuration_is_valid() {
        let l = Definition::from_texts(&embedded_texts()).unwrap();
        assert_eq!(l.pipelines[0].name, "cdpf-monthly");
        assert_eq!(l.registry.townships.len(), 10);
        assert!(
            l.quotas
                .iter()
                .any(|q| q.code == "341124" && q.indicator == "cataract_surgery" && q.quota == 240.0)
        );
    }

    #[test]
    fn typo_in_pipeline_names_file_line_and_key() {
        let mut t = embedded_texts();
        t.pipelines[0].1 = t.pipelines[0].1.replace("deadline_days = 5", "deadline_day = 5");
        let err = Definition::from_texts(&t).unwrap_err().to_string();
        assert!(err.starts_with("pipelines/cdpf-monthly.toml: line "), "{err}");
        assert!(err.contains("unknown field `deadline_day`"), "{err}");
    }

    #[test]
    fn bad_quota_row_is_rejected_with_line() {
        let mut t = embedded_texts();
        t.quotas[0].1.push_str("2026,341124999,cataract_surgery,3\n");
        let err = Definition::from_texts(&t).unwrap_err().to_string();
        assert!(err.contains("config/quotas/2026.csv: line 68"), "{err}");
    }

    #[test]
    fn schedules_say_what_is_wrong_in_the_operators_words() {
        let e = schedule_problem("0 2 * * *").unwrap();
        assert!(e.contains("has 5 fields") && e.contains("\"0 0 2 * * *\""), "{e}");
        let e = schedule_problem("0 0 24 * * *").unwrap();
        assert!(e.contains("hour 24 is out of range 0–23"), "{e}");
        let e = schedule_problem("0 0 2 30 2 *").unwrap();
        assert!(e.contains("never fires"), "{e}");
        let e = schedule_problem("0 0 2 * * Mox").unwrap();
        assert!(e.contains("not a cron schedule") && !e.contains("less than"), "{e}");
        assert_eq!(schedule_problem("0 0 2 29 2 *"), None);
        assert_eq!(schedule_problem("0 */30 2-4 * * Mon-Fri"), None);
        assert_eq!(schedule_problem("0 0 2 * * *"), None);
    }

    #[test]
    fn quotas_may_name_indicators_as_people_do() {
        let mut t = embedded_texts();
        t.quotas[0].1 =
            "year,code,indicator,quota\n2026,341124,白內障復明手術,240\n2026,341124,fuel_households,30\n".into();
        let d = Definition::from_texts(&t).unwrap();
        let codes: Vec<&str> = d.quotas.iter().map(|q| q.indicator.as_str()).collect();
        assert_eq!(codes, ["cataract_surgery", "fuel_households"]);
        t.quotas[0].1 = "year,code,indicator,quota\n2026,341124,白內障,240\n".into();
        let e = Definition::from_texts(&t).unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("unknown indicator \"白內障\""),
            "{e}"
        );
    }
}
