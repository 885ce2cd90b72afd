//! What a run would do, worked out without doing it: the reports it would
//! fetch, the landed bodies it would still have to parse, the files it would
//! replace, the alerts waiting for delivery and what an interrupted run left
//! to clean up. `taizhang run --dry-run` prints it; nothing is fetched,
//! written or locked.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::Loaded;
use crate::kept::Kept;
use crate::run::{RunOptions, current_landings, leave_for_later, may_wait, plan as targets};
use crate::sinks::snapshot::Snapshots;
use crate::sources::FetchTarget;
use crate::state::State;

/// One program's part of the plan.
#[derive(Debug, Clone, Default)]
pub struct ProgramPlan {
    /// Program name.
    pub name: String,
    /// Reports to fetch.
    pub targets: Vec<FetchTarget>,
    /// Of those, how many already have a landed body (a fetch may still
    /// bring a new version).
    pub landed: usize,
    /// Current landed bodies without a kept normalization (they would be
    /// parsed: a new deployment, or a catalog/registry/limits change).
    pub to_parse: usize,
    /// The program's files in the published snapshot, all replaced (or
    /// linked unchanged) by the run.
    pub files: usize,
    /// Reports of settled periods left for another day (see
    /// `Pipeline::revisits`).
    pub later: usize,
}

/// Everything the plan says.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Per selected program.
    pub programs: Vec<ProgramPlan>,
    /// The published snapshot.
    pub snapshot: Option<u64>,
    /// Alert state changes committed but not yet delivered.
    pub outbox_pending: usize,
    /// What an interrupted run left behind (removed first).
    pub leftovers: Vec<String>,
}

/// Works out the plan; reads the state store and the warehouse if they
/// exist, creates nothing.
pub fn plan(cfg: &Loaded, opts: &RunOptions) -> Plan {
    let wh = &cfg.settings.paths.warehouse_dir;
    let state_file = cfg.settings.paths.state_dir.join("taizhang.sqlite");
    let state = state_file
        .exists()
        .then(|| State::open(&cfg.settings.paths.state_dir).ok())
        .flatten();
    let snaps = Snapshots::new(wh);
    let snapshot = snaps.current();
    let manifest = snapshot.and_then(|s| snaps.manifest(s).ok());
    let mut by_program: BTreeMap<String, ProgramPlan> = BTreeMap::new();
    let mut planned = targets(cfg, opts);
    // Settled periods' landed reports not due today (see
    // `run::leave_for_later`).
    let waiting: std::collections::HashSet<u128> = state
        .as_ref()
        .map(|s| {
            cfg.def
                .pipelines
                .iter()
                .filter(|p| p.revisit_after_days.is_some())
                .flat_map(|p| may_wait(s, &p.name, |_, _, _| {}).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    let later = leave_for_later(cfg, opts, &mut planned, &waiting);
    for (name, n) in later {
        by_program.entry(name.clone()).or_insert_with(|| ProgramPlan {
            name,
            later: n,
            ..Default::default()
        });
    }
    for t in planned {
        let p = by_program.entry(t.pipeline.clone()).or_insert_with(|| ProgramPlan {
            name: t.pipeline.clone(),
            ..Default::default()
        });
        p.targets.push(t);
    }
    for p in by_program.values_mut() {
        let Some(pipeline) = cfg.def.pipelines.iter().find(|x| x.name == p.name) else {
            continue;
        };
        if let Some(state) = &state {
            let all = state.landings(&p.name).unwrap_or_default();
            let current = current_landings(&all);
            // A set, not a scan of every landing per report: a national
            // year plans 455,000 reports against as many landings.
            let landed: std::collections::HashSet<(&str, &str)> = current
                .iter()
                .map(|(l, _)| (l.township.as_str(), l.period.as_str()))
                .collect();
            p.landed = p
                .targets
                .iter()
                .filter(|t| landed.contains(&(t.township.as_str(), t.period.as_str())))
                .count();
            let kept = Kept::at(
                &cfg.settings.paths.state_dir,
                &p.name,
                &cfg.normalize_fingerprint(pipeline),
            );
            p.to_parse = current.iter().filter(|(l, _)| !kept.has(l)).count();
        }
        p.files = manifest.as_ref().map_or(0, |m| {
            m.files
                .iter()
                .filter(|f| f.program.as_deref() == Some(p.name.as_str()))
                .count()
        });
    }
    let outbox_pending = state
        .as_ref()
        .and_then(|s| s.pending_outbox().ok())
        .map_or(0, |o| o.len());
    Plan {
        programs: by_program.into_values().collect(),
        snapshot,
        outbox_pending,
        leftovers: snaps.leftovers(),
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n: usize = self.programs.iter().map(|p| p.targets.len()).sum();
        writeln!(f, "dry run: {n} reports would be fetched")?;
        for p in &self.programs {
            let mut periods: Vec<&str> = p.targets.iter().map(|t| t.period.as_str()).collect();
            periods.dedup();
            let span = match (periods.first(), periods.last()) {
                (Some(a), Some(b)) if a != b => format!("{a} … {b}"),
                (Some(a), _) => a.to_string(),
                _ => "no period closed yet".into(),
            };
            writeln!(
                f,
                "  {}: {} reports ({span}); {} already landed; {} landed bodies to parse; {} published files replaced",
                p.name,
                p.targets.len(),
                p.landed,
                p.to_parse,
                p.files
            )?;
            if p.later > 0 {
                writeln!(
                    f,
                    "    {} reports of settled periods are asked for on another day (revisit_after_days; --revisit-all asks for them now)",
                    p.later
                )?;
            }
            for t in p.targets.iter().take(5) {
                writeln!(f, "    {} {} {}", t.township, t.period, t.url)?;
            }
            if p.targets.len() > 5 {
                writeln!(f, "    … and {} more", p.targets.len() - 5)?;
            }
        }
        match self.snapshot {
            Some(s) => writeln!(
                f,
                "  published snapshot {s}; a run that changes anything publishes the next"
            )?,
            None => writeln!(f, "  nothing published yet; the run publishes the first snapshot")?,
        }
        writeln!(f, "  alerts waiting for delivery: {}", self.outbox_pending)?;
        if !self.leftovers.is_empty() {
            writeln!(
                f,
                "  left by an interrupted run (removed first): {}",
                self.leftovers.join(", ")
            )?;
        }
        Ok(())
    }
}
