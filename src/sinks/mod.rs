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

    /// Adds one file of `t`'s table already encoded (`encoded`, of `rows`
    /// rows: see `parquet::YearEncoder`); `t.frame` is not read. A spilled
    /// file (in [`TableSink::spill_dir`]) is moved, or removed.
    fn write_encoded(
        &mut self,
        t: &Table<'_>,
        year: Option<i32>,
        owner: Owner<'_>,
        encoded: parquet::Encoded,
        rows: usize,
    ) -> Result<(), PublishError>;

    /// Where an encoder may write the files it encodes before they are
    /// given to [`TableSink::write_encoded`] (None: in memory).
    fn spill_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Adds `files` as they are in the warehouse the run started from
    /// (a batch whose inputs did not change), when every one of them is
    /// there exactly; returns false and adds nothing otherwise.
    fn carry(&mut self, files: &[snapshot::FileEntry]) -> Result<bool, PublishError>;

    /// The files added so far for one batch of one program.
    fn files_of(&self, program: &str, batch: &str) -> Vec<snapshot::FileEntry>;

    /// The file added so far of `table`, a table every program shares
    /// (none where the sink does not say).
    fn shared_file(&self, _table: &str) -> Option<snapshot::FileEntry> {
        None
    }

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
    let column = t.frame.column("year").map_err(frame_err)?.i32().map_err(frame_err)?;
    let years: BTreeSet<i32> = column.iter().flatten().collect();
    // One year and no row without one (almost always): the frame itself,
    // not a filtered copy of it.
    if years.len() == 1 && column.null_count() == 0 {
        return Ok(years.into_iter().map(|y| (y, t.frame.clone())).collect());
    }
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

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::by_year;
    use super::parquet::Table;

    fn table(frame: &DataFrame) -> Table<'_> {
        Table {
            name: "t".into(),
            description: String::new(),
            columns: vec![],
            metadata: vec![],
            frame,
        }
    }

    fn years(frame: &DataFrame) -> Vec<(i32, Vec<Option<i32>>)> {
        by_year(&table(frame), 1999)
            .unwrap()
            .into_iter()
            .map(|(y, f)| (y, f.column("v").unwrap().i32().unwrap().iter().collect()))
            .collect()
    }

    #[test]
    fn a_tables_rows_are_split_by_year_and_a_row_without_one_is_in_none() {
        let frame =
            |years: &[Option<i32>]| df!("year" => years, "v" => (0..years.len() as i32).collect::<Vec<_>>()).unwrap();
        // One year: every row, as it is.
        assert_eq!(
            years(&frame(&[Some(2026), Some(2026)])),
            [(2026, vec![Some(0), Some(1)])]
        );
        // Two years: each its rows, in their order.
        assert_eq!(
            years(&frame(&[Some(2026), Some(2025), Some(2026)])),
            [(2025, vec![Some(1)]), (2026, vec![Some(0), Some(2)])]
        );
        // One year and a row without one: that row is in no file.
        assert_eq!(years(&frame(&[Some(2026), None])), [(2026, vec![Some(0)])]);
        // No rows: one empty frame of the year asked for.
        assert_eq!(years(&frame(&[])), [(1999, vec![])]);
    }
}
