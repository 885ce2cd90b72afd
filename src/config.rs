//! Configuration: deployment settings (`config/taizhang.toml`, overridable by
//! `TAIZHANG_<SECTION>__<KEY>` environment variables), reporting programs
//! (`pipelines/*.toml`), the catalog, the township registry and the quotas.
//! Everything is loaded and validated before a run starts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalog::Catalog;
use crate::period::{Period, PeriodType};
use crate::registry::{Divisions, Registry, RegistryConfig};

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
    fn new(file: impl Into<String>, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Where things live. Relative paths resolve against the settings file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Paths {
    /// Published Parquet tables and the raw landing area.
    pub warehouse_dir: PathBuf,
    /// Run state (SQLite).
    pub state_dir: PathBuf,
    /// Indicator catalog (`indicators.toml`) and division tables (`divisions/`).
    pub schemas_dir: PathBuf,
    /// One TOML file per reporting program.
    pub pipelines_dir: PathBuf,
    /// The county's township registry.
    pub registry_file: PathBuf,
    /// Yearly quota CSV files.
    pub quotas_dir: PathBuf,
    /// DHIS2 UID mapping (optional file; see `config/dhis2.toml`).
    pub dhis2_file: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            warehouse_dir: "warehouse".into(),
            state_dir: "state".into(),
            schemas_dir: "schemas".into(),
            pipelines_dir: "pipelines".into(),
            registry_file: "config/registry.toml".into(),
            quotas_dir: "config/quotas".into(),
            dhis2_file: "config/dhis2.toml".into(),
        }
    }
}

/// HTTP client limits for fetching township reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Whole-request timeout, seconds.
    pub timeout_secs: u64,
    /// Connection timeout, seconds.
    pub connect_timeout_secs: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Extra attempts after a failed fetch.
    pub retries: u32,
    /// First retry delay, milliseconds; doubles each attempt, with jitter.
    pub retry_base_ms: u64,
    /// Largest response body accepted, bytes. A larger body is landed up to
    /// this size and quarantined whole, with the reason.
    pub max_body_bytes: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout_secs: 30,
            connect_timeout_secs: 10,
            concurrency: 16,
            retries: 2,
            retry_base_ms: 500,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Limits on what one submission may contain; over a limit it is
/// quarantined with the reason, and the run goes on.
#[derive(Debug, Clone, Deserialize)]
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

/// Where alerts go.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// Environment variable holding the webhook URL.
    pub webhook_url_env: Option<String>,
    /// File holding the webhook URL (first line).
    pub webhook_url_file: Option<PathBuf>,
}

/// How the warehouse keeps its snapshots.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarehouseSettings {
    /// Published snapshots kept (the current one included); older ones are
    /// removed after each commit. A reader holding an older snapshot's path
    /// keeps it readable for this many runs.
    pub keep_snapshots: usize,
}

impl Default for WarehouseSettings {
    fn default() -> Self {
        WarehouseSettings { keep_snapshots: 3 }
    }
}

/// `config/taizhang.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Snapshot retention.
    pub warehouse: WarehouseSettings,
    /// Where things live.
    pub paths: Paths,
    /// Fetch limits.
    pub http: HttpSettings,
    /// Submission limits.
    pub limits: Limits,
    /// Alert channels.
    pub alerts: AlertSettings,
}

/// How serious a check failure is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    Info,
    /// Someone should look.
    Warning,
    /// The values are held out of the rollup; the report is chased.
    Error,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One check declared in a pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CheckConfig {
    /// total = sum of every exhaustive breakdown.
    Breakdown {
        /// Severity of a mismatch.
        severity: Severity,
        /// Indicator codes to check; empty means every indicator with an exhaustive breakdown.
        #[serde(default)]
        indicators: Vec<String>,
        /// Absolute difference tolerated.
        #[serde(default)]
        tolerance: f64,
    },
    /// Year-to-date progress against the yearly quota and the elapsed share of the year (序时进度).
    QuotaProgress {
        /// Severity of "behind" and "far ahead".
        severity: Severity,
        /// Behind when progress < elapsed − this.
        #[serde(default = "default_behind_tolerance")]
        behind_tolerance: f64,
        /// Far ahead when progress > this share of the quota.
        #[serde(default = "default_ahead_ceiling")]
        ahead_ceiling: f64,
    },
    /// Reports not in by the deadline, and reports that came in after it.
    Overdue {
        /// Severity of an overdue report; a late one is `info`.
        severity: Severity,
    },
    /// A declared rule: `left op right` over indicator cells (see `checks::rule`).
    Rule {
        /// Rule name in results and alerts.
        name: String,
        /// Left expression.
        left: String,
        /// Operator: = ≠ < ≤ > ≥ (or ASCII == != < <= > >=).
        op: String,
        /// Right expression.
        right: String,
        /// Absolute difference tolerated.
        #[serde(default)]
        tolerance_abs: f64,
        /// Relative difference tolerated, as a share of |right|.
        #[serde(default)]
        tolerance_rel: f64,
        /// skip_if_any (default), skip_if_all or never.
        #[serde(default)]
        missing: crate::checks::rule::Missing,
        /// Severity.
        severity: Severity,
        /// Message template with {township} {period} {left} {right} {diff} {rule}.
        #[serde(default)]
        message: Option<String>,
    },
    /// count × rate (× months) = amount (燃油补贴户数 × 260 = 燃油补贴金额).
    CountRate {
        /// Count indicator.
        count: String,
        /// `month` (default): the rate is per month, times the months the period
        /// covers; `period`: the rate is per period.
        #[serde(default)]
        per: RatePer,
        /// Amount indicator (元).
        amount: String,
        /// Yuan per count per month.
        rate: f64,
        /// Rates of particular counties (6-digit code → yuan).
        #[serde(default)]
        county_rates: BTreeMap<String, f64>,
        /// Relative difference tolerated.
        #[serde(default = "default_rate_tolerance")]
        tolerance_rel: f64,
        /// Severity.
        severity: Severity,
    },
    /// part ≤ whole (placed in jobs ≤ trained).
    PartOfWhole {
        /// The part (an expression).
        part: String,
        /// The whole (an expression).
        whole: String,
        /// Severity.
        severity: Severity,
    },
    /// A reported ratio in percent = numerator / denominator × 100.
    Ratio {
        /// The reported ratio (%).
        ratio: String,
        /// Numerator expression.
        numerator: String,
        /// Denominator expression.
        denominator: String,
        /// Percentage points tolerated (rounding: 0.01).
        #[serde(default = "default_ratio_tolerance")]
        tolerance_abs: f64,
        /// Severity.
        severity: Severity,
    },
    /// A year-to-date (cumulative) value never decreases within the year.
    Cumulative {
        /// Indicators; empty = every cumulative indicator of the catalog.
        #[serde(default)]
        indicators: Vec<String>,
        /// Severity.
        severity: Severity,
    },
    /// stock = previous stock + new − exits, where the pieces are reported.
    StockFlow {
        /// Stock indicator.
        stock: String,
        /// Additions this period.
        new: String,
        /// Exits this period, if reported.
        #[serde(default)]
        exits: Option<String>,
        /// Absolute difference tolerated.
        #[serde(default)]
        tolerance: f64,
        /// Severity.
        severity: Severity,
    },
    /// Robust outliers (modified z-score, median/MAD) against the township's
    /// own history and against peer townships in the same period.
    Outlier {
        /// Indicators; empty = every flow indicator.
        #[serde(default)]
        indicators: Vec<String>,
        /// |modified z| above this is an outlier.
        #[serde(default = "default_outlier_threshold")]
        threshold: f64,
        /// Fewest values (history or peers) before anything is flagged.
        #[serde(default = "default_min_history")]
        min_points: usize,
        /// Severity.
        severity: Severity,
    },
    /// Plausibility bounds per township and period (catalog `plausible_max`, overridable here).
    Plausibility {
        /// Indicator code → largest plausible value per township and month.
        #[serde(default)]
        bounds: BTreeMap<String, f64>,
        /// Over this many times the township's largest month so far is implausible.
        #[serde(default = "default_history_factor")]
        history_factor: f64,
        /// Non-zero periods of history before the history bound applies.
        #[serde(default = "default_plausible_history")]
        min_history: usize,
        /// The history bound is never below this, per month.
        #[serde(default = "default_history_floor")]
        history_floor: f64,
        /// Severity.
        severity: Severity,
    },
}

fn default_history_factor() -> f64 {
    20.0
}

fn default_plausible_history() -> usize {
    3
}

fn default_history_floor() -> f64 {
    100.0
}

/// What a count_rate's rate is per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatePer {
    /// Per month: times the months the period covers.
    #[default]
    Month,
    /// Per period.
    Period,
}

fn default_rate_tolerance() -> f64 {
    0.005
}
fn default_ratio_tolerance() -> f64 {
    0.01
}
fn default_outlier_threshold() -> f64 {
    3.5
}
fn default_min_history() -> usize {
    6
}
fn default_behind_tolerance() -> f64 {
    0.1
}
fn default_ahead_ceiling() -> f64 {
    1.5
}

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
    /// URL template with `{township}` and `{period}`.
    pub source_url: String,
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
    /// The first expected period (validated at load).
    pub fn start(&self) -> Period {
        self.start_period.parse().expect("validated at load")
    }

    /// The URL of one township's report for one period.
    pub fn url(&self, township: &str, period: &Period) -> String {
        self.source_url
            .replace("{township}", township)
            .replace("{period}", &period.to_string())
    }
}

/// One yearly quota (任务数).
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// Calendar year.
    pub year: i32,
    /// 6-digit county or 9-digit township code.
    pub code: String,
    /// Indicator code.
    pub indicator: String,
    /// Target for the year, in the indicator's unit.
    pub quota: f64,
}

/// Everything a run needs, loaded and validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Deployment settings with paths made absolute.
    pub settings: Settings,
    /// Indicator catalog.
    pub catalog: Catalog,
    /// Township registry.
    pub registry: Registry,
    /// Reporting programs, by name order.
    pub pipelines: Vec<Pipeline>,
    /// Quotas of every year.
    pub quotas: Vec<Quota>,
    /// Webhook URL, read from the secret source; never logged.
    pub webhook_url: Option<String>,
    /// DHIS2 UID mapping.
    pub dhis2: crate::dhis2::Mapping,
    /// Digest of everything normalization reads besides the body: the
    /// catalog, the registry (its text and resolved townships) and the DHIS2
    /// mapping. See [`Loaded::normalize_fingerprint`].
    pub texts_digest: String,
}

/// Bumped whenever normalization itself changes what it makes of a body, so
/// that kept results from an older binary are made again.
pub const NORMALIZE_VERSION: u32 = 1;

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
            include_str!("../schemas/indicators.toml").into(),
        ),
        registry: (
            "config/registry.toml".into(),
            include_str!("../config/registry.toml").into(),
        ),
        pipelines: vec![
            (
                "pipelines/cdpf-monthly.toml".into(),
                include_str!("../pipelines/cdpf-monthly.toml").into(),
            ),
            (
                "pipelines/cdpf-quarterly.toml".into(),
                include_str!("../pipelines/cdpf-quarterly.toml").into(),
            ),
        ],
        quotas: vec![(
            "config/quotas/2026.csv".into(),
            include_str!("../config/quotas/2026.csv").into(),
        )],
        dhis2: Some(("config/dhis2.toml".into(), include_str!("../config/dhis2.toml").into())),
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

impl Loaded {
    /// Loads and validates a configuration from texts.
    pub fn from_texts(settings: Settings, webhook_url: Option<String>, t: &Texts<'_>) -> Result<Loaded, ConfigError> {
        let catalog = Catalog::from_toml(&t.catalog.0, &t.catalog.1)
            .map_err(|e| ConfigError::new(&t.catalog.0, "-", e.to_string()))?;
        let reg_cfg: RegistryConfig =
            toml::from_str(&t.registry.1).map_err(|e| with_lines(&t.registry.0, &t.registry.1, e))?;
        let registry = Registry::build(&t.registry.0, &reg_cfg, &t.divisions)
            .map_err(|e| ConfigError::new(&t.registry.0, "-", e.to_string()))?;
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
            digest.push_str(&crate::land::sha256_hex(text.as_bytes()));
        }
        if let Some((_, text)) = &t.dhis2 {
            digest.push_str(&crate::land::sha256_hex(text.as_bytes()));
        }
        let townships: String = registry
            .townships
            .values()
            .map(|t| format!("{}={}@{};", t.code, t.name, t.county))
            .collect();
        digest.push_str(&crate::land::sha256_hex(townships.as_bytes()));
        Ok(Loaded {
            settings,
            catalog,
            registry,
            pipelines,
            quotas,
            webhook_url,
            dhis2,
            texts_digest: crate::land::sha256_hex(digest.as_bytes()),
        })
    }

    /// What one pipeline's normalization of a body depends on besides the
    /// body and its landing record: configuration and code. Kept results
    /// are valid for one fingerprint; a catalog, registry, mapping, limit or
    /// program change makes them again.
    pub fn normalize_fingerprint(&self, p: &Pipeline) -> String {
        let text = format!(
            "v{NORMALIZE_VERSION} {} {} {} {:?} {} {:?} {:?}",
            env!("CARGO_PKG_VERSION"),
            self.texts_digest,
            p.name,
            p.indicators,
            p.deadline_days,
            self.settings.limits,
            p.period_type,
        );
        crate::land::sha256_hex(text.as_bytes())[..16].to_string()
    }

    /// Loads the settings file, then everything it points at, and validates it all.
    pub fn from_file(path: &Path) -> Result<Loaded, ConfigError> {
        let file = path.display().to_string();
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TAIZHANG_") && k["TAIZHANG_".len()..].contains("__"))
            .collect();
        let raw = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("TAIZHANG")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env)),
            )
            .build()
            .map_err(|e| ConfigError::new(&file, "-", e.to_string()))?;
        let mut settings: Settings = raw
            .try_deserialize()
            .map_err(|e| ConfigError::new(&file, "-", e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let abs = |p: &PathBuf| if p.is_absolute() { p.clone() } else { base.join(p) };
        let paths = &mut settings.paths;
        for p in [
            &mut paths.warehouse_dir,
            &mut paths.state_dir,
            &mut paths.schemas_dir,
            &mut paths.pipelines_dir,
            &mut paths.registry_file,
            &mut paths.quotas_dir,
            &mut paths.dhis2_file,
        ] {
            *p = abs(p);
        }
        validate_http(&file, &settings.http)?;
        validate_warehouse(&file, &settings.warehouse)?;
        let webhook_url = read_webhook_secret(&file, &settings.alerts, &base)?;

        let read = |p: &Path| -> Result<(String, String), ConfigError> {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ConfigError::new(p.display().to_string(), "-", format!("cannot read: {e}")))?;
            Ok((p.display().to_string(), text))
        };
        let list = |dir: &Path, ext: &str| -> Result<Vec<PathBuf>, ConfigError> {
            let rd = std::fs::read_dir(dir)
                .map_err(|e| ConfigError::new(dir.display().to_string(), "-", format!("cannot list: {e}")))?;
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect();
            v.sort();
            Ok(v)
        };
        let schemas = &settings.paths.schemas_dir;
        let div = |name: &str| read(&schemas.join("divisions").join(name)).map(|(_, t)| t);
        let (provinces, cities, areas, streets) = (
            div("provinces.csv")?,
            div("cities.csv")?,
            div("areas.csv")?,
            div("streets.csv")?,
        );
        let texts = Texts {
            catalog: read(&schemas.join("indicators.toml"))?,
            registry: read(&settings.paths.registry_file)?,
            pipelines: list(&settings.paths.pipelines_dir, "toml")?
                .iter()
                .map(|p| read(p))
                .collect::<Result<_, _>>()?,
            quotas: match settings.paths.quotas_dir.exists() {
                true => list(&settings.paths.quotas_dir, "csv")?
                    .iter()
                    .map(|p| read(p))
                    .collect::<Result<_, _>>()?,
                false => vec![],
            },
            dhis2: match settings.paths.dhis2_file.exists() {
                true => Some(read(&settings.paths.dhis2_file)?),
                false => None,
            },
            divisions: Divisions {
                provinces: &provinces,
                cities: &cities,
                areas: &areas,
                streets: &streets,
            },
        };
        Loaded::from_texts(settings.clone(), webhook_url, &texts)
    }
}

fn validate_http(file: &str, h: &HttpSettings) -> Result<(), ConfigError> {
    if h.concurrency == 0 {
        return Err(ConfigError::new(file, "http.concurrency", "must be at least 1"));
    }
    if h.timeout_secs == 0 {
        return Err(ConfigError::new(file, "http.timeout_secs", "must be at least 1"));
    }
    Ok(())
}

fn validate_warehouse(file: &str, w: &WarehouseSettings) -> Result<(), ConfigError> {
    if w.keep_snapshots == 0 {
        return Err(ConfigError::new(
            file,
            "warehouse.keep_snapshots",
            "must be at least 1 (the current snapshot)",
        ));
    }
    Ok(())
}

fn read_webhook_secret(file: &str, a: &AlertSettings, base: &Path) -> Result<Option<String>, ConfigError> {
    if let Some(var) = &a.webhook_url_env {
        return match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
            _ => Err(ConfigError::new(
                file,
                "alerts.webhook_url_env",
                format!("environment variable {var} is not set"),
            )),
        };
    }
    if let Some(p) = &a.webhook_url_file {
        let p = if p.is_absolute() { p.clone() } else { base.join(p) };
        let text = std::fs::read_to_string(&p).map_err(|e| {
            ConfigError::new(
                file,
                "alerts.webhook_url_file",
                format!("cannot read {}: {e}", p.display()),
            )
        })?;
        let url = text.lines().next().unwrap_or("").trim().to_string();
        if url.is_empty() {
            return Err(ConfigError::new(file, "alerts.webhook_url_file", "the file is empty"));
        }
        return Ok(Some(url));
    }
    Ok(None)
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
    for part in ["{township}", "{period}"] {
        if !p.source_url.contains(part) {
            return Err(ConfigError::new(file, "source_url", format!("must contain {part}")));
        }
    }
    if !(p.source_url.starts_with("http://") || p.source_url.starts_with("https://")) {
        return Err(ConfigError::new(
            file,
            "source_url",
            "must be an http:// or https:// URL",
        ));
    }
    p.schedule.parse::<cron::Schedule>().map_err(|e| {
        ConfigError::new(
            file,
            "schedule",
            format!("{:?} is not a cron schedule: {e}", p.schedule),
        )
    })?;
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
        if let CheckConfig::Breakdown { indicators, .. } = c {
            for code in indicators {
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
        if let Err(reason) = crate::checks::build(c, catalog) {
            let line = check_line(text, i);
            return Err(ConfigError::new(file, format!("line {line}: checks[{i}]"), reason));
        }
    }
    Ok(())
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
        if catalog.get(f[2]).is_none() {
            return Err(ConfigError::new(file, &at, format!("unknown indicator {:?}", f[2])));
        }
        let quota: f64 = f[3]
            .parse()
            .ok()
            .filter(|q: &f64| q.is_finite() && *q >= 0.0)
            .ok_or_else(|| ConfigError::new(file, &at, format!("quota {:?} is not a non-negative number", f[3])))?;
        out.push(Quota {
            year,
            code: f[1].to_string(),
            indicator: f[2].to_string(),
            quota,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_configuration_is_valid() {
        let l = Loaded::from_texts(Settings::default(), None, &embedded_texts()).unwrap();
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
        let err = Loaded::from_texts(Settings::default(), None, &t)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("pipelines/cdpf-monthly.toml: line "), "{err}");
        assert!(err.contains("unknown field `deadline_day`"), "{err}");
    }

    #[test]
    fn bad_quota_row_is_rejected_with_line() {
        let mut t = embedded_texts();
        t.quotas[0].1.push_str("2026,341124999,cataract_surgery,3\n");
        let err = Loaded::from_texts(Settings::default(), None, &t)
            .unwrap_err()
            .to_string();
        assert!(err.contains("config/quotas/2026.csv: line 68"), "{err}");
    }
}
