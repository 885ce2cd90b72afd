//! The `taizhang` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand};
use taizhang::args;
use taizhang::config::Loaded;
use taizhang::lock::{EXIT_BUSY, LockError};
use taizhang::model::Severity;
use taizhang::run::{RunError, RunOptions, RunSummary, run};

#[derive(Parser)]
#[command(
    name = "taizhang",
    version,
    about = "台账: township reports → checked Parquet tables, county rollups and alerts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr: `text` (colour only on a terminal) or `json`
    /// (one object per line, for journald/Loki/ELK).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

static LOG_FORMAT: std::sync::OnceLock<LogFormat> = std::sync::OnceLock::new();

#[derive(Subcommand)]
enum ReviewAction {
    /// Publish these values (flagged extracted) from the next run on.
    Accept {
        /// Review ids (taizhang review lists them).
        ids: Vec<String>,
        /// Settings file.
        #[arg(long, default_value = "config/taizhang.toml")]
        config: PathBuf,
    },
    /// Set these values aside (in the quarantine, with the note) from the next run on.
    Reject {
        /// Review ids.
        ids: Vec<String>,
        /// Why, for the quarantine's reason.
        #[arg(long, default_value = "")]
        note: String,
        /// Settings file.
        #[arg(long, default_value = "config/taizhang.toml")]
        config: PathBuf,
    },
}

/// What `run` and `backfill` share.
#[derive(clap::Args)]
struct RunArgs {
    /// Settings file (config/taizhang.toml).
    #[arg(long)]
    config: PathBuf,
    /// The run's clock, for tests and replays: RFC 3339, or a date
    /// (midnight China time). Periods not closed by then are not fetched.
    #[arg(long)]
    now: Option<String>,
    /// Only this pipeline (repeatable).
    #[arg(long = "pipeline")]
    pipelines: Vec<String>,
    /// Print what would be fetched; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// When another run holds the lock, wait this long for it before
    /// giving up with exit code 75.
    #[arg(long, default_value_t = 0)]
    wait_secs: u64,
    /// Compute every batch of the registry, even those whose inputs did not
    /// change since the last run (which are otherwise carried over).
    #[arg(long)]
    recompute: bool,
    /// Ask for every report, those of settled periods too (a program's
    /// `revisit_after_days`), as on the day each is due.
    #[arg(long)]
    revisit_all: bool,
}

impl RunArgs {
    /// The configuration and the run's options (every period since each
    /// program's start, or those within `periods`).
    fn options(self, periods: Option<(chrono::NaiveDate, chrono::NaiveDate)>) -> anyhow::Result<(Loaded, RunOptions)> {
        let now = self.now.as_deref().map(args::now).transpose()?;
        let cfg = Loaded::from_file(&self.config)?;
        let names: Vec<String> = cfg.def.pipelines.iter().map(|p| p.name.clone()).collect();
        args::pipelines(&names, &self.pipelines)?;
        let opts = RunOptions {
            now: now.unwrap_or_else(Utc::now),
            dry_run: self.dry_run,
            only: self.pipelines,
            lock_wait: std::time::Duration::from_secs(self.wait_secs),
            periods,
            progress: Some(progress()),
            recompute: self.recompute,
            revisit_all: self.revisit_all,
        };
        Ok((cfg, opts))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole pipeline against an embedded township portal (全椒县, Jan–Jun 2026).
    Demo {
        /// Warehouse directory to publish into.
        #[arg(long, default_value = "demo-warehouse")]
        warehouse: PathBuf,
    },
    /// One run of every pipeline: the nightly job for cron or systemd.
    Run(RunArgs),
    /// Fetch and publish the reports of past periods (a new deployment's
    /// history, or months before a program's start_period), with progress.
    Backfill {
        /// First period (2025-01, 2025-Q1, 2025-H1 or 2025).
        #[arg(long)]
        from: String,
        /// Last period.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run pipelines on their cron schedules until SIGINT/SIGTERM.
    Serve {
        /// Settings file.
        #[arg(long)]
        config: PathBuf,
        /// Start the service's clock at this time (RFC 3339 or a date) and
        /// run it at real speed: for replays and tests.
        #[arg(long)]
        clock: Option<String>,
    },
    /// Print the open check results grouped by township, in words county staff use.
    Checks {
        /// Settings file (for the warehouse location).
        #[arg(long, default_value = "config/taizhang.toml")]
        config: PathBuf,
        /// Read this warehouse instead of the one in the settings.
        #[arg(long)]
        warehouse: Option<PathBuf>,
        /// Only this period (2026-06; a year such as 2026 also shows year-to-date checks).
        #[arg(long)]
        period: Option<String>,
        /// Only this severity and above: error, warning or info.
        #[arg(long)]
        severity: Option<String>,
        /// Include resolved results.
        #[arg(long)]
        all: bool,
    },
    /// What was set aside and why, readable by county staff.
    Quarantine {
        /// Settings file.
        #[arg(long, default_value = "config/taizhang.toml")]
        config: PathBuf,
        /// Read this warehouse instead of the one in the settings.
        #[arg(long)]
        warehouse: Option<PathBuf>,
        /// Only this period.
        #[arg(long)]
        period: Option<String>,
        /// Only this township (9-digit code or name).
        #[arg(long)]
        township: Option<String>,
    },
    /// For one submission, every value from the raw bytes to the published row.
    Explain {
        /// Settings file.
        #[arg(long, default_value = "config/taizhang.toml")]
        config: PathBuf,
        /// Read the raw bodies of this warehouse instead of the one in the settings.
        #[arg(long)]
        warehouse: Option<PathBuf>,
        /// Township (9-digit code or name).
        #[arg(long)]
        township: String,
        /// Period.
        #[arg(long)]
        period: String,
    },
    /// Values read out of a work summary (.txt or .docx): one JSON object per line.
    Extract {
        /// The document.
        file: Option<PathBuf>,
        /// Settings file whose catalog to use (default: the catalog built in).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Instead: score every .txt/.docx of this directory against its
        /// `<name>.labels.tsv`; prints precision and recall per indicator.
        #[arg(long, conflicts_with = "file")]
        score: Option<PathBuf>,
    },
    /// The last runs: when, what they fetched, landed, published and raised,
    /// and which were interrupted.
    Runs {
        /// Settings file (for the state directory).
        #[arg(long, default_value = "config/taizhang.toml")]
        config: PathBuf,
        /// How many runs, newest first.
        #[arg(long, default_value_t = 10)]
        last: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Values read from work summaries that wait for a person: list them,
    /// or accept or reject them by id (applied by the next run).
    Review {
        #[command(subcommand)]
        action: Option<ReviewAction>,
        /// Settings file (for the warehouse and the state store).
        #[arg(long, default_value = "config/taizhang.toml")]
        config: PathBuf,
        /// Every value read from documents, not only what waits.
        #[arg(long)]
        all: bool,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Only this period.
        #[arg(long)]
        period: Option<String>,
        /// Only this township (9-digit code or name).
        #[arg(long)]
        township: Option<String>,
        /// Read this warehouse instead of the one in the settings.
        #[arg(long)]
        warehouse: Option<PathBuf>,
    },
    /// Write a working deployment for a county into a new directory: settings,
    /// its registry and a quota template with every township, the programs,
    /// the catalog, a systemd unit and a cron line.
    Init {
        /// 6-digit county code.
        #[arg(long)]
        county: String,
        /// The quota template's year (default: this year, China time).
        #[arg(long)]
        year: Option<i32>,
        /// Directory to create (must not exist, or be empty).
        dir: PathBuf,
    },
    /// The townships of a county from the official division table (2023
    /// edition), for writing `registry.toml` and the quota file.
    Townships {
        /// 6-digit county code (341124 for 全椒县).
        #[arg(long)]
        county: String,
    },
    /// Check all configuration; exit non-zero with file, key and reason on the first problem.
    Validate {
        /// Settings file.
        #[arg(long)]
        config: PathBuf,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if LOG_FORMAT.get() == Some(&LogFormat::Json) {
        tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
        return;
    }
    // Colour only for a person at a terminal; a log file or journal gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

fn print_summary(cfg: &Loaded, s: &RunSummary) {
    println!("taizhang run");
    println!(
        "  reports fetched     {} of {} expected ({} unchanged, {} not submitted, {} failed)",
        s.fetched, s.planned, s.not_modified, s.not_submitted, s.fetch_failed
    );
    if s.not_revisited > 0 {
        println!(
            "  not asked today     {} reports of settled periods (revisit_after_days: each is asked for on its own day)",
            s.not_revisited
        );
    }
    if s.listed + s.listings_failed > 0 {
        println!(
            "  listings            {} reports shown unchanged, not asked for ({} listings not read: their reports were asked for)",
            s.listed, s.listings_failed
        );
    }
    println!("  newly landed        {}", s.landed_new);
    println!("  bodies parsed       {}", s.bodies_parsed);
    println!(
        "  batches carried     {} (inputs unchanged since the last run)",
        s.batches_carried
    );
    println!(
        "  rows published      {} fact rows, {} county rollup rows",
        s.rows_published, s.rollup_rows
    );
    println!("  quarantined         {} values", s.quarantined);
    if s.in_review > 0 {
        println!(
            "  review queue        {} values read from documents wait (taizhang review)",
            s.in_review
        );
    }
    for u in &s.inbox_unmatched {
        println!("  inbox               not read: {u}");
    }
    let failures: Vec<String> = s.check_failures.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "  check failures      {}",
        if failures.is_empty() {
            "none".into()
        } else {
            failures.join(", ")
        }
    );
    println!(
        "  files               {} written, {} unchanged; {} old snapshots removed",
        s.publish.written, s.publish.unchanged, s.publish.removed
    );
    println!(
        "  alerts              {} new, {} resolved, {} open",
        s.alerts_raised.len(),
        s.alerts_resolved,
        s.alerts_open
    );
    for a in &s.alerts_raised {
        println!("    [{}] {}", a.kind, a.message);
    }
    if let Some(e) = &s.delivery_error {
        println!("  webhook             NOT delivered ({e}); retried next run");
    } else if cfg.webhook_url.is_some() {
        println!("  webhook             {} alerts delivered", s.alerts_delivered);
    }
    match s.snapshot {
        Some(n) => println!("  warehouse           {} (snapshot {n})", s.warehouse.display()),
        None => println!("  warehouse           {}", s.warehouse.display()),
    }
}

/// One run (or its plan, with `dry_run`), its summary printed; the exit code.
async fn run_and_report(cfg: &Loaded, opts: &RunOptions) -> anyhow::Result<ExitCode> {
    if opts.dry_run {
        print!("{}", taizhang::plan::plan(cfg, opts));
        return Ok(ExitCode::SUCCESS);
    }
    let summary = match run(cfg, opts).await {
        Err(RunError::Lock(e @ LockError::Busy { .. })) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_BUSY));
        }
        other => other?,
    };
    print_summary(cfg, &summary);
    Ok(match summary.partial() {
        true => ExitCode::from(taizhang::run::EXIT_PARTIAL),
        false => ExitCode::SUCCESS,
    })
}

/// Progress of a long run: a bar for a person at a terminal; otherwise a
/// log line at least every 10% or 30 s (a log file gets no bar).
fn progress() -> taizhang::run::Progress {
    use std::sync::{Arc, Mutex};
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} reports  {per_sec}  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        return taizhang::run::Progress(Arc::new(move |done, of| {
            bar.set_length(of as u64);
            bar.set_position(done as u64);
            if done == of {
                bar.finish();
            }
        }));
    }
    let last = Mutex::new((std::time::Instant::now(), 0usize));
    taizhang::run::Progress(Arc::new(move |done, of| {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        let step = (of / 10).max(1);
        if done == of || done >= last.1 + step || last.0.elapsed() >= std::time::Duration::from_secs(30) {
            *last = (std::time::Instant::now(), done);
            tracing::info!(
                done,
                of,
                percent = (done * 100).checked_div(of).unwrap_or(100),
                // The process's CPU so far: with the run's total, what
                // landing cost and what the rest did (scripts/bench).
                cpu_ms = taizhang::memory::cpu_time().map(|t| t.as_millis() as u64),
                "Reports handled."
            );
        }
    }))
}

async fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo { warehouse } => {
            init_logging("warn");
            let (cfg, summary) = taizhang::demo::demo(&warehouse).await.context("demo failed")?;
            print_summary(&cfg, &summary);
            let wh = summary.warehouse.display();
            println!();
            println!("Try it with DuckDB (pip install duckdb):");
            println!(
                "  python3 -c \"import duckdb; print(duckdb.sql(\\\"SELECT period, value, townships_reporting, townships_excluded, progress FROM read_parquet('{wh}/current/rollup_county/*/*.parquet', hive_partitioning = true) WHERE indicator = 'certificates_issued' AND dimension IS NULL ORDER BY period\\\"))\""
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(run) => {
            init_logging("info");
            let (cfg, opts) = run.options(None)?;
            run_and_report(&cfg, &opts).await
        }
        Command::Backfill { from, to, run } => {
            init_logging("info");
            let (from, to) = (args::period(&from)?, args::period(&to)?);
            let (from, to): (taizhang::period::Period, taizhang::period::Period) =
                (from.parse().expect("checked"), to.parse().expect("checked"));
            if to.end_date() < from.start_date() {
                return Err(args::UsageError {
                    flag: "--to",
                    reason: format!("{to} ends before {from} starts"),
                }
                .into());
            }
            let (cfg, opts) = run.options(Some((from.start_date(), to.end_date())))?;
            run_and_report(&cfg, &opts).await
        }
        Command::Serve { config, clock } => {
            init_logging("info");
            let clock = clock.as_deref().map(args::now).transpose()?;
            let cfg = Loaded::from_file(&config)?;
            if let Some(addr) = &cfg.settings.serve.listen
                && addr.parse::<std::net::SocketAddr>().is_err()
            {
                return Err(args::UsageError {
                    flag: "serve.listen",
                    reason: format!("{addr:?} is not an address such as 127.0.0.1:9464"),
                }
                .into());
            }
            let clock = taizhang::serve::Clock::starting_at(clock.unwrap_or_else(Utc::now));
            taizhang::serve::serve_with(cfg, clock).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Checks {
            config,
            warehouse,
            period,
            severity,
            all,
        } => {
            init_logging("warn");
            let period = period.as_deref().map(args::period).transpose()?;
            let warehouse = match warehouse {
                Some(w) => w,
                None => Loaded::from_file_read_only(&config)?.settings.paths.warehouse_dir,
            };
            let severity = match severity.as_deref() {
                None => None,
                Some("error") => Some(Severity::Error),
                Some("warning") => Some(Severity::Warning),
                Some("info") => Some(Severity::Info),
                Some(other) => anyhow::bail!("--severity {other:?} is not error, warning or info"),
            };
            print!(
                "{}",
                taizhang::inspect::checks_report(&warehouse, period.as_deref(), severity, all)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Quarantine {
            config,
            warehouse,
            period,
            township,
        } => {
            init_logging("warn");
            let period = period.as_deref().map(args::period).transpose()?;
            let cfg = Loaded::from_file_read_only(&config)?;
            let township = township
                .as_deref()
                .map(|t| args::township(&cfg.def.registry, t))
                .transpose()?;
            print!(
                "{}",
                taizhang::inspect::quarantine_report(
                    warehouse.as_ref().unwrap_or(&cfg.settings.paths.warehouse_dir),
                    &cfg.def.registry,
                    period.as_deref(),
                    township.as_deref()
                )?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain {
            config,
            warehouse,
            township,
            period,
        } => {
            init_logging("warn");
            let period = args::period(&period)?;
            let mut cfg = Loaded::from_file_read_only(&config)?;
            if let Some(w) = warehouse {
                cfg.settings.paths.warehouse_dir = w;
            }
            let township = args::township(&cfg.def.registry, &township)?;
            print!("{}", taizhang::inspect::explain(&cfg, &township, &period)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Extract { file, config, score } => {
            init_logging("warn");
            let catalog = match config {
                Some(c) => std::sync::Arc::unwrap_or_clone(Loaded::from_file_read_only(&c)?.def).catalog,
                None => std::sync::Arc::unwrap_or_clone(Loaded::embedded().def).catalog,
            };
            if let Some(dir) = score {
                let s = taizhang::prose::score_dir(&dir, &catalog)?;
                print!("{}", taizhang::prose::score_table(&s));
                return Ok(ExitCode::SUCCESS);
            }
            let Some(file) = file else {
                anyhow::bail!("give a document to read (taizhang extract FILE) or --score DIR");
            };
            let (mentions, sha) = taizhang::prose::extract_file(&file, &catalog)?;
            for m in &mentions {
                println!("{}", taizhang::prose::to_json(m, &sha));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Runs { config, last, json } => {
            init_logging("warn");
            let cfg = Loaded::from_file_read_only(&config)?;
            print!(
                "{}",
                taizhang::inspect::runs_report(&cfg.settings.paths.state_dir, last, json)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Review {
            action,
            config,
            all,
            json,
            period,
            township,
            warehouse,
        } => {
            init_logging("warn");
            let (config, verdict, ids) = match action {
                None => (config, None, vec![]),
                Some(ReviewAction::Accept { ids, config }) => (config, Some(taizhang::review::Verdict::Accept), ids),
                Some(ReviewAction::Reject { ids, note, config }) => {
                    (config, Some(taizhang::review::Verdict::Reject(note)), ids)
                }
            };
            let period = period.as_deref().map(args::period).transpose()?;
            let cfg = Loaded::from_file_read_only(&config)?;
            let state = taizhang::state::State::open(&cfg.settings.paths.state_dir)?;
            let wh = warehouse.as_ref().unwrap_or(&cfg.settings.paths.warehouse_dir);
            let Some(verdict) = verdict else {
                let township = township
                    .as_deref()
                    .map(|t| args::township(&cfg.def.registry, t))
                    .transpose()?;
                let filter = taizhang::review_queue::Filter {
                    all,
                    period: period.as_deref(),
                    township: township.as_deref(),
                };
                print!(
                    "{}",
                    taizhang::review_queue::list(wh, &state, &cfg.def.registry, &filter, json)?
                );
                return Ok(ExitCode::SUCCESS);
            };
            match taizhang::review_queue::decide(wh, &state, &ids, &verdict, Utc::now()) {
                Ok(out) => print!("{out}"),
                Err(taizhang::review_queue::DecideError::Refused(why)) => {
                    return Err(args::UsageError {
                        flag: "ID",
                        reason: why,
                    }
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Init { county, year, dir } => {
            init_logging("warn");
            let year =
                year.unwrap_or_else(|| chrono::Datelike::year(&Utc::now().with_timezone(&taizhang::period::china())));
            let binary = std::env::current_exe()
                .and_then(|p| p.canonicalize())
                .unwrap_or_else(|_| PathBuf::from("/usr/local/bin/taizhang"));
            let files = match taizhang::init::init(&county, &dir, year, &binary) {
                Ok(f) => f,
                Err(taizhang::init::InitError::Usage(u)) => return Err(u.into()),
                Err(e) => return Err(e.into()),
            };
            println!("wrote a deployment for county {county} in {}:", dir.display());
            for f in &files {
                println!("  {}", f.display());
            }
            let settings = dir.join("config/taizhang.toml");
            println!(
                "next:
  1. point source_url in pipelines/*.toml at the county's portal (or set inbox_dir)
  2. fill in config/registry.toml [population] and config/quotas/{year}.csv.template (save as {year}.csv)
  3. taizhang validate --config {}
  4. install deploy/taizhang.service (serve) or the line in deploy/taizhang.cron",
                settings.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Townships { county } => {
            init_logging("warn");
            print!("{}", args::townships(&county)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { config } => {
            init_logging("warn");
            match Loaded::from_file(&config) {
                Ok(cfg) => {
                    // Quotas that do not add up are data, not configuration:
                    // `run` accepts them and reports each as an error check
                    // result (quota_decomposition), so `validate` warns.
                    let bad = taizhang::checks::quota::decomposition(&cfg.def.quotas, &cfg.def.registry);
                    for d in &bad {
                        eprintln!(
                            "warning: {}: {} {} {}: township quotas add up to {}, not the county quota {} (each run reports this as check quota_decomposition)",
                            cfg.settings.paths.quotas_dir.display(),
                            d.year,
                            d.county,
                            d.indicator,
                            d.townships_sum,
                            d.county_quota,
                        );
                    }
                    println!(
                        "ok: {} pipelines, {} indicators, {} townships, {} quotas{}",
                        cfg.def.pipelines.len(),
                        cfg.def.catalog.indicators.len(),
                        cfg.def.registry.townships.len(),
                        cfg.def.quotas.len(),
                        match bad.len() {
                            0 => String::new(),
                            n => format!(" ({n} quota warnings)"),
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = LOG_FORMAT.set(cli.log_format);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(real_main(cli)) {
        Ok(code) => code,
        Err(e)
            if e.downcast_ref::<args::UsageError>().is_some()
                || e.downcast_ref::<taizhang::config::ConfigError>().is_some() =>
        {
            eprintln!("error: {e:#}");
            ExitCode::from(args::EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
