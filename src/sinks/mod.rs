//! Sinks: where results leave taizhang. `snapshot` is the warehouse (one
//! immutable snapshot per run, published by swapping one pointer); `parquet`
//! encodes its files; alert delivery lives in `crate::alerts`.

pub mod parquet;
pub mod snapshot;

use std::collections::BTreeSet;

use polars::prelude::{IntoLazy, col, lit};

use parquet::{PublishError, Table};

/// Whose rows a file holds: a program's (of one batch of the registry, or
/// of all of it), or every program's (shared tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    /// The program; None for shared tables.
    pub program: Option<&'a str>,
    /// The batch (a province and period, `34-2026-06`; a period for the
    /// rollups); None for a program's whole table.
    pub batch: Option<&'a str>,
}

impl<'a> Owner<'a> {
    /// Tables every program shares.
    pub const SHARED: Owner<'static> = Owner {
        program: None,
        batch: None,
    };

    /// A program's whole table.
    pub fn program(program: &'a str) -> Owner<'a> {
        Owner {
            program: Some(program),
            batch: None,
        }
    }

    /// One batch of a program's table.
    pub fn batch(program: &'a str, batch: &'a str) -> Owner<'a> {
        Owner {
            program: Some(program),
            batch: Some(batch),
        }
    }
}

/// Where a run's tables go.
///
/// Contract: a sink is given whole files: all rows of one table for one
/// partition (a year, or the whole table) and one [`Owner`] (a program, or
/// one batch of it, or none for tables every program shares). Nothing given to a sink is visible to a
/// reader until the run commits, and then all of it at once: a reader sees
/// either the previous run's warehouse or this one's, never a mix. A file
/// the run does not give keeps the previous run's content when it belongs to
/// a program the run did not replace, and is gone otherwise.
pub trait TableSink {
    /// Adds one file: `t.frame` holds exactly its rows.
    fn write_file(&mut self, t: &Table<'_>, year: Option<i32>, owner: Owner<'_>) -> Result<(), PublishError>;

    /// Adds `files` as they are in the warehouse the run started from
    /// (a batch whose inputs did not change), when every one of them is
    /// there exactly; returns false and adds nothing otherwise.
    fn carry(&mut self, files: &[snapshot::FileEntry]) -> Result<bool, PublishError>;

    /// The files added so far for one batch of one program.
    fn files_of(&self, program: &str, batch: &str) -> Vec<snapshot::FileEntry>;

    /// Adds several files of one owner, each `t.frame` exactly its rows; a
    /// sink may encode them at once.
    fn write_files(&mut self, files: &[(Table<'_>, Option<i32>)], owner: Owner<'_>) -> Result<(), PublishError> {
        for (t, year) in files {
            self.write_file(t, *year, owner)?;
        }
        Ok(())
    }

    /// Adds a table Hive-partitioned by its `year` column, one file per
    /// year. An empty table becomes an empty file in `empty_year`, so a
    /// reader always finds its schema.
    fn write_by_year(&mut self, t: &Table<'_>, owner: Owner<'_>, empty_year: i32) -> Result<(), PublishError> {
        for (y, part) in by_year(t, empty_year)? {
            self.write_file(&t.clone_with_frame(&part), Some(y), owner)?;
        }
        Ok(())
    }
}

/// A table's rows by its `year` column, one frame per year; an empty table
/// is one empty frame of `empty_year`.
pub fn by_year(t: &Table<'_>, empty_year: i32) -> Result<Vec<(i32, polars::prelude::DataFrame)>, PublishError> {
    let frame_err = |source| PublishError::Frame {
        table: t.name.clone(),
        source,
    };
    if t.frame.height() == 0 {
        return Ok(vec![(empty_year, t.frame.clone())]);
    }
    let years: BTreeSet<i32> = t
        .frame
        .column("year")
        .map_err(frame_err)?
        .i32()
        .map_err(frame_err)?
        .iter()
        .flatten()
        .collect();
    years
        .into_iter()
        .map(|y| {
            let part = t
                .frame
                .clone()
                .lazy()
                .filter(col("year").eq(lit(y)))
                .collect()
                .map_err(frame_err)?;
            Ok((y, part))
        })
        .collect()
}
