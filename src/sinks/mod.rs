//! Sinks: where results leave taizhang. `snapshot` is the warehouse (one
//! immutable snapshot per run, published by swapping one pointer); `parquet`
//! encodes its files; alert delivery lives in `crate::alerts`.

pub mod parquet;
pub mod snapshot;

use std::collections::BTreeSet;

use polars::prelude::{IntoLazy, col, lit};

use parquet::{PublishError, Table};

/// Where a run's tables go.
///
/// Contract: a sink is given whole files: all rows of one table for one
/// partition (a year, or the whole table) and one program (or none, for
/// tables every program shares). Nothing given to a sink is visible to a
/// reader until the run commits, and then all of it at once: a reader sees
/// either the previous run's warehouse or this one's, never a mix. A file
/// the run does not give keeps the previous run's content when it belongs to
/// a program the run did not replace, and is gone otherwise.
pub trait TableSink {
    /// Adds one file: `t.frame` holds exactly its rows.
    fn write_file(&mut self, t: &Table<'_>, year: Option<i32>, program: Option<&str>) -> Result<(), PublishError>;

    /// Adds a table Hive-partitioned by its `year` column, one file per
    /// year. An empty table becomes an empty file in `empty_year`, so a
    /// reader always finds its schema.
    fn write_by_year(&mut self, t: &Table<'_>, program: Option<&str>, empty_year: i32) -> Result<(), PublishError> {
        let frame_err = |source| PublishError::Frame {
            table: t.name.clone(),
            source,
        };
        let years: BTreeSet<i32> = match t.frame.height() {
            0 => BTreeSet::from([empty_year]),
            _ => t
                .frame
                .column("year")
                .map_err(frame_err)?
                .i32()
                .map_err(frame_err)?
                .iter()
                .flatten()
                .collect(),
        };
        for y in years {
            let part = match t.frame.height() {
                0 => t.frame.clone(),
                _ => t
                    .frame
                    .clone()
                    .lazy()
                    .filter(col("year").eq(lit(y)))
                    .collect()
                    .map_err(frame_err)?,
            };
            self.write_file(&t.clone_with_frame(&part), Some(y), program)?;
        }
        Ok(())
    }
}
