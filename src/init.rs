//! `taizhang init --county CODE DIR`: a working deployment for any county:
//! the settings, the county's registry (its townships from the division
//! table compiled in, population to fill in), a quota template with every
//! township, the shipped programs and catalog, and a systemd unit and a cron
//! line. What it writes validates as it is; the operator then points the
//! programs at the county's portal and fills in what only the county knows.

use std::path::{Path, PathBuf};

use crate::args::UsageError;
use crate::registry::{Divisions, Registry, RegistryConfig};

/// Why a deployment cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The county code or the directory cannot be used.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Writing failed.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

fn usage(flag: &'static str, reason: String) -> InitError {
    InitError::Usage(UsageError { flag, reason })
}

/// The shipped files a deployment starts from.
const SETTINGS: &str = include_str!("../config/taizhang.toml");
const CATALOG: &str = include_str!("../schemas/indicators.toml");
const MONTHLY: &str = include_str!("../pipelines/cdpf-monthly.toml");
const QUARTERLY: &str = include_str!("../pipelines/cdpf-quarterly.toml");
const QUOTAS: &str = include_str!("../config/quotas/2026.csv");

/// Writes a deployment for county `code` into `dir` (which must not exist
/// or be empty); returns the files written, relative to `dir`.
pub fn init(code: &str, dir: &Path, year: i32, binary: &Path) -> Result<Vec<PathBuf>, InitError> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(usage(
            "--county",
            format!("{code:?} is not a 6-digit county code (341124)"),
        ));
    }
    let divisions = Divisions::embedded();
    let config = RegistryConfig {
        counties: vec![code.to_string()],
        aliases: vec![],
        population: Default::default(),
    };
    let registry = Registry::build("--county", &config, &divisions).map_err(|_| {
        usage(
            "--county",
            format!("{code} is not a county code of the 2023 division table"),
        )
    })?;
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(usage(
            "DIR",
            format!(
                "{} exists and is not empty; init writes into a new directory",
                dir.display()
            ),
        ));
    }
    let first = registry.townships.values().next().expect("a county has townships");
    let (county_name, city, province) = (&first.county_name, &first.city_name, &first.province_name);

    let mut reg = format!(
        "# The county's township registry, written by `taizhang init --county {code}`.\n\
         #\n\
         # Townships come from the official division table shipped in\n\
         # schemas/divisions/ (NBS 2023 edition) for the counties listed here.\n\n\
         # 6-digit county codes this deployment reports for.\n\
         counties = [\"{code}\"] # {county_name}, {city}, {province}\n\n\
         # Names that no longer appear in the official table but still turn up in\n\
         # reports: merged or renamed townships.\n\
         # [[aliases]]\n\
         # name = \"旧乡名\"\n\
         # township = \"{}\"\n\n\
         # Resident population (常住人口) per township, from the county's statistics\n\
         # bureau: the plausibility ceiling for counts of people and households.\n\
         # Fill in each township's figure and remove the leading `# `; a township\n\
         # left out has no ceiling but the catalog's.\n\
         [population]\n",
        first.code
    );
    for t in registry.townships.values() {
        reg.push_str(&format!("# {} =  # {}\n", t.code, t.name));
    }

    // Quotas: every indicator the shipped quota file has, for the county and
    // each of its townships, left empty.
    let mut indicators: Vec<&str> = QUOTAS.lines().skip(1).filter_map(|l| l.split(',').nth(2)).collect();
    indicators.sort_unstable();
    indicators.dedup();
    let mut quotas = String::from(
        "# Yearly quotas handed down (下达任务数): fill in the fourth column, delete the rows\n\
         # without a quota, and save as <year>.csv (taizhang reads *.csv in this folder).\n\
         # The townships' quotas of an indicator should add up to the county's.\n\
         year,code,indicator,quota\n",
    );
    for ind in &indicators {
        quotas.push_str(&format!("{year},{code},{ind},\n"));
        for t in registry.townships.keys() {
            quotas.push_str(&format!("{year},{t},{ind},\n"));
        }
    }

    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let root_abs = if root.is_absolute() {
        root.clone()
    } else {
        std::env::current_dir().map(|c| c.join(&root)).unwrap_or(root.clone())
    };
    let settings = format!("{}/config/taizhang.toml", root_abs.display());
    let unit = format!(
        "# systemd unit for taizhang serve (runs every program on its schedule).\n\
         # Install: cp taizhang.service /etc/systemd/system/ && systemctl enable --now taizhang\n\
         [Unit]\n\
         Description=taizhang ({county_name} township reports)\n\
         After=network-online.target\n\
         Wants=network-online.target\n\n\
         [Service]\n\
         Type=simple\n\
         User=taizhang\n\
         ExecStart={binary} serve --config {settings} --log-format json\n\
         # The webhook URL (it carries a key): keep it out of the settings file.\n\
         # Environment=TAIZHANG_WEBHOOK_URL=...   or   EnvironmentFile=/etc/taizhang/secrets\n\
         Restart=on-failure\n\
         RestartSec=30\n\
         NoNewPrivileges=true\n\
         ProtectSystem=strict\n\
         ReadWritePaths={root}\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        binary = binary.display(),
        root = root_abs.display(),
    );
    let cron = format!(
        "# Instead of the service: one run a night from cron (02:00 China time).\n\
         # Exit codes: 0 done, 3 partial (some reports not fetched or alerts not\n\
         # delivered; retried next run), 75 another run holds the lock, 2 a\n\
         # configuration problem, 1 failed.\n\
         CRON_TZ=Asia/Shanghai\n\
         0 2 * * * taizhang {binary} run --config {settings} --log-format json >> /var/log/taizhang/run.log 2>&1\n",
        binary = binary.display(),
    );

    let mut files: Vec<(PathBuf, String)> = vec![
        ("config/taizhang.toml".into(), SETTINGS.to_string()),
        ("config/registry.toml".into(), reg),
        (format!("config/quotas/{year}.csv.template").into(), quotas),
        ("pipelines/cdpf-monthly.toml".into(), MONTHLY.to_string()),
        ("pipelines/cdpf-quarterly.toml".into(), QUARTERLY.to_string()),
        ("schemas/indicators.toml".into(), CATALOG.to_string()),
        ("deploy/taizhang.service".into(), unit),
        ("deploy/taizhang.cron".into(), cron),
    ];
    for (name, text) in [
        ("provinces.csv", divisions.provinces),
        ("cities.csv", divisions.cities),
        ("areas.csv", divisions.areas),
        ("streets.csv", divisions.streets),
    ] {
        files.push((Path::new("schemas/divisions").join(name), text.to_string()));
    }
    for (rel, text) in &files {
        let path = dir.join(rel);
        let io = |source| InitError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, text).map_err(io)?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}
