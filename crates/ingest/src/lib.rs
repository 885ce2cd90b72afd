//! taizhang-ingest: everything that reads bytes a township sent.
//!
//! Decoding (UTF-8, BOM, UTF-16, GB18030), the wire contract (JSON, CSV), the
//! county's Excel template, DHIS2 `dataValueSets`, value strings as people
//! write them (`4.5万元`, `60多`, `三千`), and the resolution of township and
//! indicator names. Pure and panic-free on any input; no polars and no IO, so
//! it builds in seconds and every parser here has a `cargo fuzz` target
//! (`fuzz/` at the repository root). The `taizhang` crate re-exports each
//! module under the same name.
#![warn(missing_docs)]

pub mod catalog;
pub mod dhis2;
pub mod document;
pub mod extract;
pub mod fold;
mod fold_table;
pub mod normalize_value;
pub mod parse;
pub mod period;
pub mod registry;
pub mod submission;
pub mod xlsx;
