//! Configuration: deployment settings (`config/taizhang.toml`, overridable by
//! `TAIZHANG_<SECTION>__<KEY>` environment variables), reporting programs
//! (`pipelines/*.toml`), the catalog, the township registry and the quotas.
//! Everything is loaded and validated before a run starts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use taizhang_transform::normalize::Limits;

use crate::registry::Divisions;

pub use taizhang_transform::definition::{ConfigError, Definition, Pipeline, Texts, embedded_texts};

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
    /// Seconds one township's report may take over all its attempts and
    /// backoffs: a hung township holds a fetch slot at most this long, so a
    /// night with hung townships ends within one budget of the rest.
    pub township_budget_secs: u64,
    /// Requests in flight to one host (scheme, host and port) at once; 0:
    /// as many as `concurrency`. Townships on their own portals are fetched
    /// side by side while a shared county portal is not hammered.
    pub per_host_concurrency: usize,
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
            township_budget_secs: 45,
            per_host_concurrency: 0,
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
    /// Who may read the published tables: `world` (0755/0644), `group`
    /// (the warehouse directory's group: 2750/0640) or `owner` (0700/0600).
    /// `raw/` (bodies as sent) is always the service's only.
    pub access: crate::private::Access,
}

impl Default for WarehouseSettings {
    fn default() -> Self {
        WarehouseSettings {
            keep_snapshots: 3,
            access: crate::private::Access::default(),
        }
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
    /// `taizhang serve`.
    pub serve: ServeSettings,
}

/// What `taizhang serve` does besides running on schedule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSettings {
    /// Address for `/healthz`, `/metrics` and `/runs` (e.g. 127.0.0.1:9464);
    /// none: no endpoints.
    pub listen: Option<String>,
    /// Run every pipeline once at start (besides the catch-up of pipelines
    /// that missed a tick while the service was down, which always happens).
    pub run_at_start: bool,
}

/// Everything a run needs, loaded and validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Deployment settings with paths made absolute.
    pub settings: Settings,
    /// Webhook URL, read from the secret source; never logged.
    pub webhook_url: Option<String>,
    /// The county's catalog, registry, programs, quotas and DHIS2 mapping,
    /// shared with the threads that land and normalize (a national
    /// registry is not copied per run: 70–85 ms). Changed through
    /// [`Loaded::def_mut`].
    pub def: std::sync::Arc<Definition>,
}

/// Bumped whenever normalization itself changes what it makes of a body, so
/// that kept results from an older binary are made again.
pub const NORMALIZE_VERSION: u32 = 6;

impl Loaded {
    /// The embedded configuration (the demo's) with default settings.
    pub fn embedded() -> Loaded {
        Loaded::from_texts(Settings::default(), None, &embedded_texts()).expect("the embedded configuration is valid")
    }

    /// Validates the texts and pairs them with `settings`.
    pub fn from_texts(settings: Settings, webhook_url: Option<String>, t: &Texts<'_>) -> Result<Loaded, ConfigError> {
        Ok(Loaded {
            settings,
            webhook_url,
            def: std::sync::Arc::new(Definition::from_texts(t)?),
        })
    }

    /// The definition, to change (copied first if a thread shares it).
    pub fn def_mut(&mut self) -> &mut Definition {
        std::sync::Arc::make_mut(&mut self.def)
    }

    /// What one pipeline's normalization of a body depends on besides the
    /// body and its landing record: configuration and code. Kept results
    /// are valid for one fingerprint; a catalog, registry, mapping, limit or
    /// program change makes them again.
    pub fn normalize_fingerprint(&self, p: &Pipeline) -> String {
        let text = format!(
            "v{NORMALIZE_VERSION} {} {} {} {:?} {} {:?} {:?} {:?}",
            env!("CARGO_PKG_VERSION"),
            self.def.texts_digest,
            p.name,
            p.indicators,
            p.deadline_days,
            self.settings.limits,
            p.period_type,
            p.source_kind,
        );
        crate::land::sha256_hex(text.as_bytes())[..16].to_string()
    }

    /// Loads the settings file, then everything it points at, and validates it all.
    pub fn from_file(path: &Path) -> Result<Loaded, ConfigError> {
        Loaded::load(path, true)
    }

    /// [`Loaded::from_file`] for commands that only read (checks,
    /// quarantine, explain, review, runs, extract): delivery secrets are
    /// not read, so an analyst or a careless shell without them can still
    /// look.
    pub fn from_file_read_only(path: &Path) -> Result<Loaded, ConfigError> {
        Loaded::load(path, false)
    }

    fn load(path: &Path, secrets: bool) -> Result<Loaded, ConfigError> {
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
            .map_err(|e| settings_error(&file, e))?;
        let mut settings: Settings = raw.try_deserialize().map_err(|e| settings_error(&file, e))?;
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
        let webhook_url = match secrets {
            true => read_webhook_secret(&file, &settings.alerts, &base)?,
            false => None,
        };
        if let Some(url) = &webhook_url {
            check_webhook_url(&file, &settings.alerts, url)?;
        }

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
        let mut loaded = Loaded::from_texts(settings.clone(), webhook_url, &texts)?;
        // An inbox folder is relative to this file, like every other path.
        for p in &mut loaded.def_mut().pipelines {
            if let Some(dir) = &p.inbox_dir {
                p.inbox_dir = Some(abs(&PathBuf::from(dir)).display().to_string());
            }
        }
        Ok(loaded)
    }
}

/// A settings error with the key it names (the config crate writes it as
/// "for key `http.timeout_secs`"), not "-".
fn settings_error(file: &str, e: config::ConfigError) -> ConfigError {
    let msg = e.to_string();
    let key = msg
        .split_once("for key `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(key, _)| key.to_string())
        .or_else(|| {
            // unknown field `concurency`: the field itself is the key.
            msg.split_once("unknown field `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(key, _)| key.to_string())
        })
        .unwrap_or_else(|| "-".into());
    let reason = msg.split(" for key `").next().unwrap_or(&msg).trim().to_string();
    ConfigError::new(file, key, reason)
}

fn validate_http(file: &str, h: &HttpSettings) -> Result<(), ConfigError> {
    if h.concurrency == 0 {
        return Err(ConfigError::new(file, "http.concurrency", "must be at least 1"));
    }
    if h.timeout_secs == 0 {
        return Err(ConfigError::new(file, "http.timeout_secs", "must be at least 1"));
    }
    if h.township_budget_secs == 0 {
        return Err(ConfigError::new(
            file,
            "http.township_budget_secs",
            "must be at least 1",
        ));
    }
    if h.max_body_bytes == 0 {
        return Err(ConfigError::new(
            file,
            "http.max_body_bytes",
            "must be at least 1 (0 would set every report aside)",
        ));
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

/// A webhook URL that cannot be posted to fails at load, not every night.
/// The URL is a secret: the error names where it came from, never it.
fn check_webhook_url(file: &str, a: &AlertSettings, url: &str) -> Result<(), ConfigError> {
    let key = match a.webhook_url_env {
        Some(_) => "alerts.webhook_url_env",
        None => "alerts.webhook_url_file",
    };
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(ConfigError::new(
            file,
            key,
            "the webhook URL it gives is not an http:// or https:// URL (the value is not shown: it is a secret)",
        )),
    }
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
