//! Publish: polars frames to Parquet tables with arrow-rs, so that units and
//! descriptions travel as Arrow field metadata and Parquet key-value metadata.
//! Every file is written aside, its footer read back and checked, then renamed
//! into place: a reader never sees a half-written file. A file whose bytes
//! would not change is not touched, so a rerun on the same inputs changes
//! nothing. Partitions no longer produced are removed (replaced, not appended).

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use polars::prelude::{DataFrame, DataType, IntoLazy, PolarsError, col, lit};

/// A publishing failure.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// polars could not shape the frame.
    #[error("table {table}: {source}")]
    Frame {
        /// Table.
        table: String,
        /// What polars said.
        source: PolarsError,
    },
    /// arrow or parquet could not encode it.
    #[error("table {table}: encoding failed: {reason}")]
    Encode {
        /// Table.
        table: String,
        /// What went wrong.
        reason: String,
    },
    /// The disk said no.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The footer read back does not match what was written.
    #[error("{path}: written file failed verification: {reason}")]
    Verify {
        /// File.
        path: String,
        /// What did not match.
        reason: String,
    },
}

/// Logical type of a published column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// UTF-8 text.
    Str,
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// Double.
    F64,
    /// Boolean.
    Bool,
    /// Instant, microseconds since the epoch, UTC (held as i64 in frames).
    Timestamp,
}

/// One published column: name, type, and the words that travel with it.
#[derive(Debug, Clone)]
pub struct ColSpec {
    /// Column name.
    pub name: String,
    /// Type.
    pub ty: ColType,
    /// What it holds.
    pub description: String,
    /// Unit of the values, if any.
    pub unit: Option<String>,
}

/// Shorthand for a column without a unit.
pub fn c(name: &str, ty: ColType, description: &str) -> ColSpec {
    ColSpec {
        name: name.into(),
        ty,
        description: description.into(),
        unit: None,
    }
}

/// A table to publish.
pub struct Table<'a> {
    /// Table name (`facts/certificates_issued`, `rollup_county`, …) = its directory.
    pub name: String,
    /// What the table holds.
    pub description: String,
    /// Columns in order.
    pub columns: Vec<ColSpec>,
    /// Extra key-value metadata.
    pub metadata: Vec<(String, String)>,
    /// The rows (must have every column; may have `year`).
    pub frame: &'a DataFrame,
}

/// What publishing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// Files written (new or changed).
    pub written: usize,
    /// Files left as they were.
    pub unchanged: usize,
    /// Stale partitions removed.
    pub removed: usize,
    /// Rows in all files.
    pub rows: usize,
}

impl PublishReport {
    /// Adds another report.
    pub fn add(&mut self, o: &PublishReport) {
        self.written += o.written;
        self.unchanged += o.unchanged;
        self.removed += o.removed;
        self.rows += o.rows;
    }
}

fn polars_type(t: ColType) -> DataType {
    match t {
        ColType::Str => DataType::String,
        ColType::I32 => DataType::Int32,
        ColType::I64 | ColType::Timestamp => DataType::Int64,
        ColType::F64 => DataType::Float64,
        ColType::Bool => DataType::Boolean,
    }
}

fn arrow_field(c: &ColSpec) -> Field {
    let ty = match c.ty {
        ColType::Str => ArrowType::Utf8,
        ColType::I32 => ArrowType::Int32,
        ColType::I64 => ArrowType::Int64,
        ColType::F64 => ArrowType::Float64,
        ColType::Bool => ArrowType::Boolean,
        ColType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    };
    let mut md = HashMap::from([("description".to_string(), c.description.clone())]);
    if let Some(u) = &c.unit {
        md.insert("unit".to_string(), u.clone());
    }
    Field::new(&c.name, ty, true).with_metadata(md)
}

/// Converts the declared columns of a frame to an Arrow record batch.
// A copy per value; the national-scale issue replaces it with the Arrow C
// data interface if it shows up in profiles.
fn to_batch(table: &str, df: &DataFrame, cols: &[ColSpec]) -> Result<RecordBatch, PublishError> {
    let frame = |source| PublishError::Frame {
        table: table.to_string(),
        source,
    };
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(cols.len());
    for spec in cols {
        let s = df
            .column(&spec.name)
            .map_err(frame)?
            .cast(&polars_type(spec.ty))
            .map_err(frame)?;
        let a: ArrayRef = match spec.ty {
            ColType::Str => Arc::new(s.str().map_err(frame)?.iter().collect::<StringArray>()),
            ColType::I32 => Arc::new(s.i32().map_err(frame)?.iter().collect::<Int32Array>()),
            ColType::I64 => Arc::new(s.i64().map_err(frame)?.iter().collect::<Int64Array>()),
            ColType::F64 => Arc::new(s.f64().map_err(frame)?.iter().collect::<Float64Array>()),
            ColType::Bool => Arc::new(s.bool().map_err(frame)?.iter().collect::<BooleanArray>()),
            ColType::Timestamp => Arc::new(
                s.i64()
                    .map_err(frame)?
                    .iter()
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        };
        arrays.push(a);
    }
    let schema = Arc::new(Schema::new(cols.iter().map(arrow_field).collect::<Vec<_>>()));
    RecordBatch::try_new(schema, arrays).map_err(|e| PublishError::Encode {
        table: table.to_string(),
        reason: e.to_string(),
    })
}

fn encode(t: &Table<'_>, df: &DataFrame) -> Result<Vec<u8>, PublishError> {
    let enc = |e: parquet::errors::ParquetError| PublishError::Encode {
        table: t.name.clone(),
        reason: e.to_string(),
    };
    let batch = to_batch(&t.name, df, &t.columns)?;
    let columns: serde_json::Map<String, serde_json::Value> = t
        .columns
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                serde_json::json!({"description": c.description, "unit": c.unit}),
            )
        })
        .collect();
    let mut kv = vec![
        KeyValue::new("taizhang.table".into(), t.name.clone()),
        KeyValue::new("taizhang.description".into(), t.description.clone()),
        KeyValue::new(
            "taizhang.columns".into(),
            serde_json::Value::Object(columns).to_string(),
        ),
    ];
    kv.extend(t.metadata.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())));
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(concat!("taizhang ", env!("CARGO_PKG_VERSION")).into())
        .set_key_value_metadata(Some(kv))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).map_err(enc)?;
    w.write(&batch).map_err(enc)?;
    w.into_inner().map_err(enc)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to `path` atomically unless it already holds them; the
/// footer is read back and checked before the rename. Returns true if written.
fn put(path: &Path, bytes: &[u8], rows: usize, table: &str) -> Result<bool, PublishError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    let dir = path.parent().expect("table files have a directory");
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(".part-0.parquet.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    if let Err(e) = verify(&tmp, rows, table) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(true)
}

/// Reads a written file's footer: row count and table name must match.
pub fn verify(path: &Path, rows: usize, table: &str) -> Result<(), PublishError> {
    let bad = |reason: String| PublishError::Verify {
        path: path.display().to_string(),
        reason,
    };
    let f = std::fs::File::open(path).map_err(io(path))?;
    let reader = SerializedFileReader::new(f).map_err(|e| bad(e.to_string()))?;
    let md = reader.metadata().file_metadata();
    if md.num_rows() as usize != rows {
        return Err(bad(format!("{} rows in the footer, {rows} written", md.num_rows())));
    }
    let name = md
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|k| k.key == "taizhang.table"))
        .and_then(|k| k.value.clone());
    if name.as_deref() != Some(table) {
        return Err(bad(format!("footer names table {name:?}, expected {table:?}")));
    }
    Ok(())
}

/// Publishes an unpartitioned table as `<root>/<name>/<file>`.
pub fn publish_single(root: &Path, t: &Table<'_>, file: &str) -> Result<PublishReport, PublishError> {
    let bytes = encode(t, t.frame)?;
    let written = put(&root.join(&t.name).join(file), &bytes, t.frame.height(), &t.name)?;
    Ok(PublishReport {
        written: usize::from(written),
        unchanged: usize::from(!written),
        removed: 0,
        rows: t.frame.height(),
    })
}

/// Publishes a table Hive-partitioned by its `year` column as
/// `<root>/<name>/year=YYYY/part-0.parquet`. An empty table is written as an
/// empty partition for `empty_year`, so readers always find a schema.
pub fn publish_by_year(root: &Path, t: &Table<'_>, empty_year: i32) -> Result<PublishReport, PublishError> {
    let frame = |source| PublishError::Frame {
        table: t.name.clone(),
        source,
    };
    let years: BTreeSet<i32> = match t.frame.height() {
        0 => BTreeSet::from([empty_year]),
        _ => t
            .frame
            .column("year")
            .map_err(frame)?
            .i32()
            .map_err(frame)?
            .iter()
            .flatten()
            .collect(),
    };
    let dir = root.join(&t.name);
    let mut report = PublishReport::default();
    for y in &years {
        let part = t
            .frame
            .clone()
            .lazy()
            .filter(col("year").eq(lit(*y)))
            .collect()
            .map_err(frame)?;
        let bytes = encode(t, &part)?;
        let path = dir.join(format!("year={y}")).join("part-0.parquet");
        let written = put(&path, &bytes, part.height(), &t.name)?;
        report.written += usize::from(written);
        report.unchanged += usize::from(!written);
        report.rows += part.height();
    }
    report.removed += remove_stale(&dir, |name| {
        name.strip_prefix("year=")
            .and_then(|y| y.parse::<i32>().ok())
            .is_some_and(|y| !years.contains(&y))
    })?;
    Ok(report)
}

/// Removes subdirectories of `dir` whose name `stale` accepts.
pub fn remove_stale(dir: &Path, stale: impl Fn(&str) -> bool) -> Result<usize, PublishError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let p: PathBuf = e.path();
        if p.is_dir() && stale(&name) {
            std::fs::remove_dir_all(&p).map_err(io(&p))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use polars::prelude::*;

    #[test]
    fn writes_verifies_and_skips_identical_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        let df = df!("year" => [2026i32, 2026, 2025], "value" => [Some(1.5), None, Some(3.0)]).unwrap();
        let t = Table {
            name: "facts/x".into(),
            description: "test".into(),
            columns: vec![ColSpec {
                name: "value".into(),
                ty: ColType::F64,
                description: "v".into(),
                unit: Some("元".into()),
            }],
            metadata: vec![],
            frame: &df,
        };
        let r = publish_by_year(dir.path(), &t, 2026).unwrap();
        assert_eq!((r.written, r.unchanged, r.rows), (2, 0, 3));
        let r = publish_by_year(dir.path(), &t, 2026).unwrap();
        assert_eq!((r.written, r.unchanged), (0, 2));
        let f = dir.path().join("facts/x/year=2026/part-0.parquet");
        verify(&f, 2, "facts/x").unwrap();
        assert!(verify(&f, 3, "facts/x").is_err());
        // The unit travels in the Arrow field metadata.
        let file = std::fs::File::open(&f).unwrap();
        let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(
            b.schema().field(0).metadata().get("unit").map(String::as_str),
            Some("元")
        );
        // A year no longer produced is removed.
        let only = df!("year" => [2026i32], "value" => [Some(1.0)]).unwrap();
        let t2 = Table { frame: &only, ..t };
        assert_eq!(publish_by_year(dir.path(), &t2, 2026).unwrap().removed, 1);
        assert!(!dir.path().join("facts/x/year=2025").exists());
    }
}
