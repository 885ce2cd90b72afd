//! taizhang (台账): township reports for county Disabled Persons' Federations.
//!
//! The flow, one module per stage: `sources` (fetch) → `land` → `normalize`
//! → `checks` → `publish` (via `sinks`) → `rollup` → `alerts`; `run`
//! sequences them. Only sources, sinks, `state`, `run` and `serve` touch the
//! network, the disk or the clock.
#![warn(missing_docs)]

pub use taizhang_ingest::{
    catalog, dhis2, document, extract, fold, normalize_value, parse, period, registry, submission, xlsx,
};
pub use taizhang_model as model;
pub use taizhang_simulator as simulator;
pub use taizhang_transform::{checks, definition, normalize, review, rollup, timeliness};

pub mod alerts;
pub mod args;
pub mod config;
pub mod demo;
pub mod init;
pub mod inspect;
pub mod kept;
pub mod land;
pub mod lock;
pub mod memo;
pub mod memory;
pub mod plan;
pub mod private;
pub mod prose;
pub mod publish;
pub mod review_queue;
pub mod run;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod state;
