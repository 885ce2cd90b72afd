//! Parquet encoding: polars frames to Parquet files with arrow-rs, so that
//! units and descriptions travel as Arrow field metadata and Parquet key-value
//! metadata, and the footer check every written file passes. Where the files
//! go, and when readers see them, is `sinks::snapshot`'s business.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::{Field, Float64Type, Int32Type, Int64Type, Schema, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::reader::{FileReader, SerializedFileReader};
use polars::prelude::{DataFrame, DataType, PolarsError};

pub use taizhang_model::schema::{ColSpec, ColType};

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

impl<'a> Table<'a> {
    /// The same table over other rows.
    pub fn clone_with_frame<'b>(&self, frame: &'b DataFrame) -> Table<'b> {
        Table {
            name: self.name.clone(),
            description: self.description.clone(),
            columns: self.columns.clone(),
            metadata: self.metadata.clone(),
            frame,
        }
    }
}

/// What publishing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PublishReport {
    /// Files written (new or changed).
    pub written: usize,
    /// Files carried over from the previous snapshot as they were (their
    /// rows and description did not change: not even encoded).
    pub unchanged: usize,
    /// Old snapshots removed (beyond `warehouse.keep_snapshots`).
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
    let ty = c.ty.arrow();
    let mut md = HashMap::from([("description".to_string(), c.description.clone())]);
    if let Some(u) = &c.unit {
        md.insert("unit".to_string(), u.clone());
    }
    Field::new(&c.name, ty, true).with_metadata(md)
}

/// The declared columns as the fields of a file: text is Arrow `Utf8`
/// (what readers are told in the file's Arrow schema).
fn file_schema(cols: &[ColSpec]) -> Arc<Schema> {
    Arc::new(Schema::new(cols.iter().map(arrow_field).collect::<Vec<_>>()))
}

/// Converts the declared columns of a frame to an Arrow record batch. Text
/// columns are `Utf8View` over polars' own buffers: polars keeps text as
/// views, Arrow's layout, so only the 16-byte views are copied, not the
/// text (copying every value's bytes into one `Utf8` buffer was a tenth of
/// encoding a national month's files). The Parquet writer takes a view
/// column for a field declared `Utf8` and writes the same bytes, so files
/// are made with [`file_schema`]; numbers, flags and nulls are copied a
/// buffer at a time, not value by value.
fn to_batch(table: &str, df: &DataFrame, cols: &[ColSpec]) -> Result<RecordBatch, PublishError> {
    let frame = |source| PublishError::Frame {
        table: table.to_string(),
        source,
    };
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(cols.len());
    let mut fields: Vec<Field> = Vec::with_capacity(cols.len());
    for spec in cols {
        let s = df
            .column(&spec.name)
            .map_err(frame)?
            .cast(&polars_type(spec.ty))
            .map_err(frame)?
            .as_materialized_series()
            .rechunk();
        let a: ArrayRef = match spec.ty {
            ColType::Str => Arc::new(string_view_array(s.str().map_err(frame)?)),
            ColType::I32 => Arc::new(primitive::<_, Int32Type>(s.i32().map_err(frame)?)),
            ColType::I64 => Arc::new(primitive::<_, Int64Type>(s.i64().map_err(frame)?)),
            ColType::F64 => Arc::new(primitive::<_, Float64Type>(s.f64().map_err(frame)?)),
            ColType::Bool => {
                let ca = s.bool().map_err(frame)?;
                let bits = ca.downcast_iter().next().map(|a| bit_buffer(a.values()));
                Arc::new(BooleanArray::new(
                    bits.unwrap_or_else(|| arrow::buffer::BooleanBuffer::new_unset(0)),
                    nulls(ca),
                ))
            }
            ColType::Timestamp => {
                Arc::new(primitive::<_, TimestampMicrosecondType>(s.i64().map_err(frame)?).with_timezone("UTC"))
            }
        };
        fields.push(arrow_field(spec).with_data_type(a.data_type().clone()));
        arrays.push(a);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| PublishError::Encode {
        table: table.to_string(),
        reason: e.to_string(),
    })
}

/// A one-chunk polars column of numbers as Arrow's, sharing its values'
/// buffer (copied when it is not one chunk), its nulls kept.
fn primitive<T, A>(ca: &polars::prelude::ChunkedArray<T>) -> arrow::array::PrimitiveArray<A>
where
    T: polars::prelude::PolarsNumericType,
    T::Native: arrow::datatypes::ArrowNativeType,
    A: arrow::datatypes::ArrowPrimitiveType<Native = T::Native>,
{
    let one = ca.downcast_iter().next().filter(|_| ca.chunks().len() == 1);
    let values = one.and_then(|one| {
        shared(
            one.values().as_slice(),
            Arc::new(std::panic::AssertUnwindSafe(one.clone())),
        )
    });
    let values = values.unwrap_or_else(|| {
        let copied: Vec<T::Native> = ca
            .downcast_iter()
            .flat_map(|a| a.values().as_slice())
            .copied()
            .collect();
        copied.into()
    });
    arrow::array::PrimitiveArray::new(values, nulls(ca))
}

/// `values` as an Arrow buffer of `U` sharing their memory, which `owner`
/// keeps alive; None when they are empty or not aligned for `U`.
fn shared<T, U: arrow::datatypes::ArrowNativeType>(
    values: &[T],
    owner: Arc<dyn arrow::alloc::Allocation>,
) -> Option<arrow::buffer::ScalarBuffer<U>> {
    let bytes = std::mem::size_of_val(values);
    if values.is_empty() || !values.as_ptr().cast::<U>().is_aligned() || !bytes.is_multiple_of(std::mem::size_of::<U>())
    {
        return None;
    }
    let ptr = std::ptr::NonNull::new(values.as_ptr().cast::<u8>().cast_mut())?;
    // SAFETY: `values` belong to an array `owner` holds (polars never
    // changes a shared buffer's bytes), valid for `bytes` bytes for as
    // long as `owner` lives, which the Arrow buffer keeps alive; the
    // pointer is aligned for `U` and `bytes` a whole number of `U`s.
    let buffer = unsafe { arrow::buffer::Buffer::from_custom_allocation(ptr, bytes, owner) };
    Some(arrow::buffer::ScalarBuffer::new(
        buffer,
        0,
        bytes / std::mem::size_of::<U>(),
    ))
}

/// A polars column's nulls as Arrow's (None when it has none).
fn nulls<T: polars::prelude::PolarsDataType>(
    ca: &polars::prelude::ChunkedArray<T>,
) -> Option<arrow::buffer::NullBuffer> {
    use polars_arrow::array::Array as _;
    if ca.null_count() == 0 {
        return None;
    }
    let arr = ca.downcast_iter().next()?;
    arr.validity().map(|v| arrow::buffer::NullBuffer::new(bit_buffer(v)))
}

/// A polars bitmap as Arrow bits (its bytes copied, its bit offset kept).
fn bit_buffer(b: &polars_arrow::bitmap::Bitmap) -> arrow::buffer::BooleanBuffer {
    let (bytes, offset, len) = b.as_slice();
    arrow::buffer::BooleanBuffer::new(arrow::buffer::Buffer::from(bytes), offset, len)
}

/// A one-chunk polars text column as an Arrow `Utf8View` array sharing its
/// text buffers (see [`to_batch`]).
fn string_view_array(ca: &polars::prelude::StringChunked) -> arrow::array::StringViewArray {
    use arrow::buffer::Buffer;
    let Some(arr) = ca.downcast_iter().next() else {
        return arrow::array::StringViewArray::new_null(0);
    };
    let owner = Arc::new(std::panic::AssertUnwindSafe(arr.clone()));
    // A view is four u32s in both (length, then the inline bytes or
    // prefix, buffer index and offset): on a little-endian machine polars'
    // views are Arrow's u128s as they lie in memory, shared when aligned
    // for a u128 (as allocated), else made again.
    let views = match cfg!(target_endian = "little") {
        true => shared::<_, u128>(arr.views().as_slice(), owner.clone()),
        false => None,
    };
    let views = views.unwrap_or_else(|| {
        let made: Vec<u128> = arr
            .views()
            .iter()
            .map(|v| {
                u128::from(v.length)
                    | (u128::from(v.prefix) << 32)
                    | (u128::from(v.buffer_idx) << 64)
                    | (u128::from(v.offset) << 96)
            })
            .collect();
        made.into()
    });
    let buffers: Vec<Buffer> = arr
        .data_buffers()
        .iter()
        .map(|b| shared::<u8, u8>(b, owner.clone()).map_or_else(|| Buffer::from(Vec::<u8>::new()), |s| s.into_inner()))
        .collect();
    let nulls = nulls(ca);
    // SAFETY: the views, buffers and nulls are polars' own for this array,
    // which holds the invariants Arrow states for them: each view of more
    // than 12 bytes names a buffer and a range inside it, and every string
    // is UTF-8 (polars' `str` arrays are built only from `&str`). Checking
    // them again, every string's UTF-8 above all, was half the cost of
    // this conversion.
    unsafe { arrow::array::StringViewArray::new_unchecked(views, buffers.into(), nulls) }
}

/// A Parquet writer of `t`'s table (zstd, with its description and column
/// metadata), into memory.
fn writer(t: &Table<'_>, schema: Arc<Schema>) -> Result<ArrowWriter<Vec<u8>>, PublishError> {
    writer_into(t, schema, Vec::new(), None)
}

/// A Parquet writer of `t`'s table into `out`, with row groups of at most
/// `row_group` rows (the writer's default when None).
fn writer_into<W: std::io::Write + Send>(
    t: &Table<'_>,
    schema: Arc<Schema>,
    out: W,
    row_group: Option<usize>,
) -> Result<ArrowWriter<W>, PublishError> {
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
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_created_by(concat!("taizhang ", env!("CARGO_PKG_VERSION")).into())
        .set_key_value_metadata(Some(kv));
    if let Some(rows) = row_group {
        props = props.set_max_row_group_row_count(Some(rows));
    }
    let path = |c: &&str| parquet::schema::types::ColumnPath::from(*c);
    for c in taizhang_model::schema::plain_columns(&t.name) {
        props = props.set_column_dictionary_enabled(path(c), false);
    }
    for c in taizhang_model::schema::unranged_columns(&t.name) {
        props = props.set_column_statistics_enabled(path(c), EnabledStatistics::None);
    }
    for c in taizhang_model::schema::uncompressed_columns(&t.name) {
        props = props.set_column_compression(path(c), Compression::UNCOMPRESSED);
    }
    ArrowWriter::try_new(out, schema, Some(props.build())).map_err(encode_err(t))
}

/// A file encoded by a [`YearEncoder`]: its bytes, or the file of its
/// spill directory they were written to (see [`YearEncoder::spill_into`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Encoded {
    /// Its bytes.
    Bytes(Vec<u8>),
    /// The file they were written to.
    File {
        /// The file.
        path: std::path::PathBuf,
        /// The sha256 (hex) of its bytes, hashed as they were written
        /// (not read back).
        sha256: String,
    },
}

/// Where a [`YearEncoder`] writes a year's file.
enum Out {
    Memory(Vec<u8>),
    File {
        file: std::io::BufWriter<std::fs::File>,
        path: std::path::PathBuf,
        sha256: sha2::Sha256,
    },
}

impl std::io::Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::Memory(v) => v.write(buf),
            Out::File { file, sha256, .. } => {
                let n = file.write(buf)?;
                sha2::Digest::update(sha256, &buf[..n]);
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Memory(_) => Ok(()),
            Out::File { file, .. } => file.flush(),
        }
    }
}

/// Rows in a row group of a file a [`YearEncoder`] spills: what it holds
/// in memory of the file besides what is written.
const SPILLED_ROW_GROUP: usize = 65_536;

fn encode_with<'b>(
    t: &Table<'_>,
    schema: Arc<Schema>,
    mut batches: impl Iterator<Item = Result<std::borrow::Cow<'b, RecordBatch>, PublishError>>,
) -> Result<Vec<u8>, PublishError> {
    let enc = encode_err(t);
    let mut w = writer(t, schema)?;
    batches.try_for_each(|b| w.write(b?.as_ref()).map_err(&enc))?;
    w.into_inner().map_err(enc)
}

fn encode_err<'t>(t: &'t Table<'_>) -> impl Fn(parquet::errors::ParquetError) -> PublishError + 't {
    move |e| PublishError::Encode {
        table: t.name.clone(),
        reason: e.to_string(),
    }
}

/// A table's rows given a frame at a time and encoded as they come, one
/// file per `year` (as `TableSink::write_by_year` partitions them): a
/// program's check results are given a batch at a time, so that no more
/// than a batch of them is ever in memory, besides their encoded bytes
/// (a national year's: 1.7 million rows, a 30 MB file).
pub struct YearEncoder {
    /// The table, over no frame.
    spec: Table<'static>,
    /// The table's columns, no rows.
    empty: DataFrame,
    years: std::collections::BTreeMap<i32, (ArrowWriter<Out>, usize)>,
    /// Where each year's file is written as it is encoded (memory when
    /// None).
    spill: Option<std::path::PathBuf>,
}

impl YearEncoder {
    /// An encoder of `t`'s table (its rows are not written: give them to
    /// [`YearEncoder::write`]).
    pub fn new(t: &Table<'_>) -> YearEncoder {
        static NONE: std::sync::LazyLock<DataFrame> = std::sync::LazyLock::new(DataFrame::empty);
        YearEncoder {
            spec: t.clone_with_frame(&NONE),
            empty: t.frame.clear(),
            years: Default::default(),
            spill: None,
        }
    }

    /// This encoder writing each year's file into `dir` as it is encoded,
    /// in row groups of [`SPILLED_ROW_GROUP`] rows, instead of holding it in
    /// memory until [`YearEncoder::finish`] (a national year's
    /// `check_results` and `landings`: 47 MB held through every batch).
    /// `dir` is made when the first file is.
    pub fn spill_into(mut self, dir: Option<std::path::PathBuf>) -> YearEncoder {
        self.spill = dir;
        self
    }

    /// The table's columns, with no rows.
    pub fn empty(&self) -> DataFrame {
        self.empty.clone()
    }

    /// The table, over `frame`.
    pub fn table<'b>(&self, frame: &'b DataFrame) -> Table<'b> {
        self.spec.clone_with_frame(frame)
    }

    /// Encodes `frame`'s rows after those given before, in its year's file,
    /// converted to Arrow [`SLICE_ROWS`] at a time.
    pub fn write(&mut self, frame: &DataFrame) -> Result<(), PublishError> {
        if frame.height() == 0 {
            return Ok(());
        }
        let t = self.table(frame);
        let schema = file_schema(&t.columns);
        for (year, part) in super::by_year(&t, 0)? {
            let (w, rows) = match self.years.entry(year) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let out = spill_out(self.spill.as_deref(), &t.name, year)?;
                    let row_group = self.spill.as_ref().map(|_| SPILLED_ROW_GROUP);
                    e.insert((writer_into(&t, schema.clone(), out, row_group)?, 0))
                }
            };
            for at in (0..part.height()).step_by(SLICE_ROWS) {
                let slice = part.slice(at as i64, SLICE_ROWS);
                w.write(&to_batch(&t.name, &slice, &t.columns)?)
                    .map_err(encode_err(&t))?;
            }
            *rows += part.height();
        }
        Ok(())
    }

    /// This encoder on a thread of its own (see [`Beside`]).
    pub fn beside(self) -> Result<Beside, PublishError> {
        Beside::spawn(self)
    }

    /// Each year's file: (year, its bytes or spilled file, its rows), years
    /// in order; a table given no row is one empty file of `empty_year` (in
    /// memory), as `TableSink::write_by_year` makes it.
    pub fn finish(self, empty_year: i32) -> Result<Vec<(i32, Encoded, usize)>, PublishError> {
        let t = self.table(&self.empty);
        if self.years.is_empty() {
            return Ok(vec![(empty_year, Encoded::Bytes(encode_frame(&t)?), 0)]);
        }
        let enc = encode_err(&t);
        self.years
            .into_iter()
            .map(|(year, (w, rows))| {
                let held = w.memory_size()
                    + match w.inner() {
                        Out::Memory(bytes) => bytes.len(),
                        Out::File { .. } => 0,
                    };
                tracing::debug!(table = %t.name, year, rows, held_bytes = held, "Encoded; held in memory until now.");
                let encoded = match w.into_inner().map_err(&enc)? {
                    Out::Memory(bytes) => Encoded::Bytes(bytes),
                    Out::File { file, path, sha256 } => {
                        file.into_inner().map_err(|e| e.into_error()).map_err(io(&path))?;
                        let sha256 = hex::encode(sha2::Digest::finalize(sha256));
                        Encoded::File { path, sha256 }
                    }
                };
                Ok((year, encoded, rows))
            })
            .collect()
    }
}

/// Where a [`YearEncoder`] writes `table`'s file of `year`: a new file of
/// `spill`, or memory.
fn spill_out(spill: Option<&Path>, table: &str, year: i32) -> Result<Out, PublishError> {
    let Some(dir) = spill else {
        return Ok(Out::Memory(Vec::new()));
    };
    // One name per file a process spills (several programs' encoders spill
    // the same table and year).
    static SPILLED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SPILLED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(format!("{table}-{year}-{n}.parquet"));
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    Ok(Out::File {
        file: std::io::BufWriter::new(file),
        path,
        sha256: Default::default(),
    })
}

/// Frames waiting for a [`Beside`] encoder: a run's main thread gives a
/// batch's check results and goes on, and holds at most this many batches
/// of them besides the one being encoded.
const BESIDE_QUEUED: usize = 2;

/// A [`YearEncoder`] encoding on a thread of its own the frames given to
/// it, in the order given: a run that carries its batches spends its main
/// thread on them while the other core, idle otherwise, encodes their
/// check results (a national year: 1.7 million rows every run).
pub struct Beside {
    table: String,
    frames: Option<std::sync::mpsc::SyncSender<DataFrame>>,
    job: Option<std::thread::JoinHandle<Result<YearEncoder, PublishError>>>,
}

impl Beside {
    fn spawn(mut encoder: YearEncoder) -> Result<Beside, PublishError> {
        let (frames, given) = std::sync::mpsc::sync_channel::<DataFrame>(BESIDE_QUEUED);
        let table = encoder.spec.name.clone();
        let job = std::thread::Builder::new()
            .name(format!("encode {table}"))
            .spawn(move || {
                // The first error ends the thread: the next `write` or
                // `finish` returns it.
                for frame in given {
                    encoder.write(&frame)?;
                }
                Ok(encoder)
            })
            .map_err(|e| PublishError::Encode {
                table: table.clone(),
                reason: format!("cannot start the thread that encodes it: {e}"),
            })?;
        Ok(Beside {
            table,
            frames: Some(frames),
            job: Some(job),
        })
    }

    /// Gives `frame`'s rows to the encoder, after those given before (waits
    /// while [`BESIDE_QUEUED`] frames are waiting). An error of a frame
    /// given before is returned here or by [`Beside::finish`].
    pub fn write(&mut self, frame: DataFrame) -> Result<(), PublishError> {
        if frame.height() == 0 {
            return Ok(());
        }
        let sent = self.frames.as_ref().map(|f| f.send(frame).is_ok());
        match sent {
            Some(true) => Ok(()),
            // The thread has ended: with the error that ended it.
            _ => Err(self
                .finish_mut()
                .err()
                .unwrap_or_else(|| self.stopped("its encoder has stopped"))),
        }
    }

    /// Waits for every frame given to be encoded: the encoder, or the
    /// first error.
    pub fn finish(mut self) -> Result<YearEncoder, PublishError> {
        self.finish_mut()
    }

    fn finish_mut(&mut self) -> Result<YearEncoder, PublishError> {
        self.frames = None;
        let Some(job) = self.job.take() else {
            return Err(self.stopped("its encoder has stopped"));
        };
        job.join()
            .unwrap_or_else(|_| Err(self.stopped("the thread that encodes it panicked")))
    }

    fn stopped(&self, reason: &str) -> PublishError {
        PublishError::Encode {
            table: self.table.clone(),
            reason: reason.into(),
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A table's rows (`t.frame`) as an Arrow record batch of its declared columns.
pub fn table_batch(t: &Table<'_>) -> Result<RecordBatch, PublishError> {
    to_batch(&t.name, t.frame, &t.columns)
}

/// What a file of `t` would hold, as a digest: its rows (in Arrow's row
/// format, which encodes every value and null unambiguously) and everything
/// the file says about them (name, description, columns, metadata). Equal
/// fingerprints make equal files, so a file can be reused without encoding.
pub fn fingerprint(t: &Table<'_>, batch: &RecordBatch) -> Result<String, PublishError> {
    use sha2::{Digest, Sha256};
    let enc = |e: arrow::error::ArrowError| PublishError::Encode {
        table: t.name.clone(),
        reason: e.to_string(),
    };
    let mut h = Sha256::new();
    let about = serde_json::json!({
        "table": t.name, "description": t.description, "metadata": t.metadata,
        "columns": t.columns.iter().map(|c| (&c.name, format!("{:?}", c.ty), &c.description, &c.unit)).collect::<Vec<_>>(),
        "writer": env!("CARGO_PKG_VERSION"),
    });
    h.update(about.to_string().as_bytes());
    let fields = batch
        .schema()
        .fields()
        .iter()
        .map(|f| arrow::row::SortField::new(f.data_type().clone()))
        .collect();
    let rows = arrow::row::RowConverter::new(fields)
        .and_then(|c| c.convert_columns(batch.columns()))
        .map_err(enc)?;
    h.update((batch.num_rows() as u64).to_le_bytes());
    for r in rows.iter() {
        let b: &[u8] = r.as_ref();
        h.update((b.len() as u64).to_le_bytes());
        h.update(b);
    }
    Ok(hex::encode(h.finalize()))
}

/// Encodes a record batch of `t` as one Parquet file (zstd), with the
/// table's description and column metadata.
pub fn encode_batch(t: &Table<'_>, batch: &RecordBatch) -> Result<Vec<u8>, PublishError> {
    encode_with(
        t,
        file_schema(&t.columns),
        std::iter::once(Ok(std::borrow::Cow::Borrowed(batch))),
    )
}

/// Rows [`encode_frame`] converts to Arrow at a time: a multiple of the
/// Parquet writer's mini-batch (1,024 rows), so that the file's pages, and
/// its bytes, are those [`encode_batch`] makes of one batch of every row.
const SLICE_ROWS: usize = 64 * 1024;

/// [`encode_batch`] of `t`'s rows, converted to Arrow a slice at a time:
/// a national year's check results (1.7 million rows) took ~400 MB as one
/// Arrow copy beside their frame.
pub fn encode_frame(t: &Table<'_>) -> Result<Vec<u8>, PublishError> {
    let schema = file_schema(&t.columns);
    let rows = t.frame.height();
    // An empty table is one empty batch, as `encode_batch` writes it.
    let starts = (0..rows.max(1)).step_by(SLICE_ROWS);
    let batches = starts.map(|at| {
        let slice = t.frame.slice(at as i64, SLICE_ROWS);
        to_batch(&t.name, &slice, &t.columns).map(std::borrow::Cow::Owned)
    });
    encode_with(t, schema, batches)
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array, Int64Array, TimestampMicrosecondArray};
    use polars::prelude::*;

    /// A frame of every column type: two chunks, nulls, empty, short (inline
    /// in a view) and long multi-byte text.
    fn every_type() -> (DataFrame, Vec<ColSpec>) {
        let text = [
            Some("台账"),
            None,
            Some(""),
            Some("110105001"),
            Some("一二三四五六七八九十：超过十二个字节的文字"),
            Some("abcdefghijklm"),
        ];
        let mut df = df!(
            "text" => text,
            "i32" => [Some(1i32), None, Some(-3), Some(4), Some(5), None],
            "i64" => [Some(1i64 << 40), Some(2), None, Some(-4), Some(5), Some(6)],
            "f64" => [Some(1.5), None, Some(f64::NAN), Some(-0.0), Some(1e300), Some(2.25)],
            "bool" => [Some(true), Some(false), None, Some(true), Some(true), Some(false)],
            "at" => [Some(1_780_000_000_000_000i64), None, Some(0), Some(1), Some(2), Some(3)],
        )
        .unwrap();
        df.vstack_mut(&df.clone()).unwrap();
        let spec = |name: &str, ty| ColSpec {
            name: name.into(),
            ty,
            description: format!("the {name} column"),
            unit: None,
        };
        let cols = vec![
            spec("text", ColType::Str),
            spec("i32", ColType::I32),
            spec("i64", ColType::I64),
            spec("f64", ColType::F64),
            spec("bool", ColType::Bool),
            spec("at", ColType::Timestamp),
        ];
        (df, cols)
    }

    /// `df`'s columns collected value by value into Arrow's plain arrays
    /// (text as `Utf8`), with the file's schema.
    fn collected(df: &DataFrame, cols: &[ColSpec]) -> RecordBatch {
        let col = |n: &str| df.column(n).unwrap().as_materialized_series().clone();
        let arrays: Vec<arrow::array::ArrayRef> = vec![
            Arc::new(col("text").str().unwrap().iter().collect::<arrow::array::StringArray>()),
            Arc::new(col("i32").i32().unwrap().iter().collect::<Int32Array>()),
            Arc::new(col("i64").i64().unwrap().iter().collect::<Int64Array>()),
            Arc::new(col("f64").f64().unwrap().iter().collect::<Float64Array>()),
            Arc::new(col("bool").bool().unwrap().iter().collect::<BooleanArray>()),
            Arc::new(
                col("at")
                    .i64()
                    .unwrap()
                    .iter()
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        ];
        RecordBatch::try_new(file_schema(cols), arrays).unwrap()
    }

    #[test]
    fn a_frame_becomes_the_values_it_holds_and_the_file_plain_arrays_make() {
        let (df, cols) = every_type();
        for (at, len) in [(0, 12), (1, 10), (7, 3), (5, 0)] {
            // Sliced frames: bit offsets in the nulls and flags, views into
            // buffers that hold rows outside the slice.
            let part = df.slice(at, len);
            let t = Table {
                name: "facts/x".into(),
                description: "test".into(),
                columns: cols.clone(),
                metadata: vec![],
                frame: &part,
            };
            let views = to_batch("facts/x", &part, &cols).unwrap();
            assert_eq!(views.column(0).data_type(), &arrow::datatypes::DataType::Utf8View);
            let plain = collected(&part, &cols);
            for (i, c) in plain.columns().iter().enumerate() {
                let got = arrow::array::make_array(views.column(i).to_data());
                let texts = |a: &dyn arrow::array::Array| -> Vec<Option<String>> {
                    let own = |s: Option<&str>| s.map(str::to_string);
                    match a.as_any().downcast_ref::<arrow::array::StringViewArray>() {
                        Some(v) => v.iter().map(own).collect(),
                        None => a
                            .as_any()
                            .downcast_ref::<arrow::array::StringArray>()
                            .unwrap()
                            .iter()
                            .map(own)
                            .collect(),
                    }
                };
                // NaN is not equal to itself: compared by bits.
                let bits = |a: &dyn arrow::array::Array| -> Vec<Option<u64>> {
                    let f = a.as_any().downcast_ref::<Float64Array>().unwrap();
                    f.iter().map(|v| v.map(f64::to_bits)).collect()
                };
                match i {
                    0 => assert_eq!(texts(&got), texts(c), "slice {at}+{len}"),
                    3 => assert_eq!(bits(&got), bits(c), "slice {at}+{len}"),
                    _ => assert_eq!(&got, c, "column {i}, slice {at}+{len}"),
                }
            }
            // The same file, byte for byte, as plain arrays make, and the
            // same fingerprint: readers are told `Utf8`, as before.
            let bytes = encode_batch(&t, &views).unwrap();
            assert_eq!(bytes, encode_batch(&t, &plain).unwrap(), "slice {at}+{len}");
            assert_eq!(fingerprint(&t, &views).unwrap(), fingerprint(&t, &plain).unwrap());
            if len > 0 {
                let back = read_back(&bytes);
                assert_eq!(back[0].schema().field(0).data_type(), &arrow::datatypes::DataType::Utf8);
                assert_eq!(back[0].num_rows(), len);
            }
        }
    }

    /// A one-chunk frame's numbers and views become Arrow's without a
    /// copy: the Arrow arrays read polars' own memory (sliced too).
    #[test]
    fn a_one_chunk_frame_shares_its_numbers_and_views() {
        let (mut df, cols) = every_type();
        df.rechunk_mut();
        for (at, len) in [(0, 12), (3, 7)] {
            let part = df.slice(at, len);
            let batch = to_batch("facts/x", &part, &cols).unwrap();
            let text = part
                .column("text")
                .unwrap()
                .str()
                .unwrap()
                .downcast_iter()
                .next()
                .unwrap();
            let views = batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::StringViewArray>()
                .unwrap();
            assert_eq!(views.views().as_ptr().cast::<u8>(), text.views().as_ptr().cast::<u8>());
            let f64s = part
                .column("f64")
                .unwrap()
                .f64()
                .unwrap()
                .downcast_iter()
                .next()
                .unwrap();
            let values = batch.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
            assert_eq!(values.values().as_ptr(), f64s.values().as_ptr());
            // ... and they hold what a copy would.
            assert_eq!(views.value(1), text.value(1));
            assert_eq!(values.values().len(), len);
        }
        // Views not aligned for a u128 are made again, not shared.
        let four: Vec<u32> = vec![0; 9];
        let owner: Arc<dyn arrow::alloc::Allocation> = Arc::new(());
        let off = usize::from(four.as_ptr().cast::<u128>().is_aligned());
        assert!(shared::<_, u128>(&four[off..off + 8], owner.clone()).is_none());
        assert!(shared::<_, u128>(&four[..0], owner).is_none());
    }

    /// A check result's message (nearly every one distinct) is written
    /// plain, and a fact's value as written; a check's rule (a handful)
    /// with a dictionary; other tables' text with a dictionary too. The
    /// values read back the same.
    #[test]
    fn nearly_distinct_columns_are_written_plain_and_read_back_the_same() {
        use parquet::file::reader::FileReader;
        let n = 3_000;
        let message: Vec<String> = (0..n).map(|i| format!("{i:05} 合计与分项之和不符")).collect();
        let rule: Vec<&str> = (0..n).map(|i| ["breakdown", "outlier"][i % 2]).collect();
        // Which of the two columns, named so in `table`, have a dictionary.
        let dictionaries = |table: &str, names: [&str; 2]| -> Vec<bool> {
            let df = df!(names[0] => &rule, names[1] => &message).unwrap();
            let columns = names
                .iter()
                .map(|c| ColSpec {
                    name: c.to_string(),
                    ty: ColType::Str,
                    description: "d".into(),
                    unit: None,
                })
                .collect();
            let t = Table {
                name: table.into(),
                description: "test".into(),
                columns,
                metadata: vec![],
                frame: &df,
            };
            let bytes = encode_frame(&t).unwrap();
            let back = read_back(&bytes);
            assert_eq!(texts(&back, 1), message, "{table}");
            assert_eq!(texts(&back, 0), rule, "{table}");
            let file = parquet::file::reader::SerializedFileReader::new(file_of(&bytes)).unwrap();
            let group = file.metadata().row_group(0);
            (0..2)
                .map(|c| group.column(c).dictionary_page_offset().is_some())
                .collect()
        };
        assert_eq!(dictionaries("check_results", ["rule", "message"]), [true, false]);
        assert_eq!(dictionaries("facts/x", ["rule", "message"]), [true, true]);
        assert_eq!(dictionaries("facts/x", ["dimension", "value_raw"]), [true, false]);
        assert_eq!(
            dictionaries("submission_history", ["dimension", "value_raw"]),
            [true, true]
        );
    }

    /// A dictionary column written in runs (the vendored writer takes a
    /// value equal to the one before by its key, not hashing it again):
    /// every value reads back as it was, across nulls inside a run, values
    /// of one length differing only at their end, a value coming back after
    /// others, empty text, and runs over the writer's mini-batches (1,024
    /// rows) and the slices converted to Arrow (65,536); the dictionary
    /// holds each distinct value once.
    #[test]
    fn a_column_written_in_runs_reads_back_whole_with_each_value_once_in_its_dictionary() {
        use parquet::file::reader::FileReader;
        let pattern: [(Option<&str>, usize); 9] = [
            (Some("110105001"), 1_500),
            (None, 3),
            (Some("110105001"), 2),
            (Some("110105002"), 700),
            (Some(""), 5),
            (Some("110105001"), 1),
            (Some("无障碍改造（户）"), 2_048),
            (None, 1),
            (Some("110105002"), 1_100),
        ];
        let mut values: Vec<Option<&str>> = vec![];
        while values.len() < SLICE_ROWS + 10_000 {
            for (v, n) in pattern {
                values.extend(std::iter::repeat_n(v, n));
            }
        }
        let df = df!("township" => &values).unwrap();
        let bytes = township_file(&df);
        let want: Vec<Option<String>> = values.iter().map(|v| v.map(str::to_string)).collect();
        assert_eq!(optional_texts(&read_back(&bytes), 0), want);
        let file = parquet::file::reader::SerializedFileReader::new(file_of(&bytes)).unwrap();
        assert_eq!(file.metadata().num_row_groups(), 1);
        assert_eq!(dictionary_values(&file), 4);
    }

    /// A fact file of `df`'s one text column, `township`.
    fn township_file(df: &DataFrame) -> Vec<u8> {
        encode_frame(&Table {
            name: "facts/x".into(),
            description: "test".into(),
            columns: vec![ColSpec {
                name: "township".into(),
                ty: ColType::Str,
                description: "t".into(),
                unit: None,
            }],
            metadata: vec![],
            frame: df,
        })
        .unwrap()
    }

    /// The values of the dictionary of `file`'s first column (its first
    /// page), in its first row group.
    fn dictionary_values(file: &parquet::file::reader::SerializedFileReader<std::fs::File>) -> usize {
        use parquet::file::reader::FileReader;
        let mut pages = file.get_row_group(0).unwrap().get_column_page_reader(0).unwrap();
        match pages.get_next_page().unwrap() {
            Some(parquet::column::page::Page::DictionaryPage { num_values, .. }) => num_values as usize,
            other => panic!("the column's first page is not its dictionary: {other:?}"),
        }
    }

    /// Text handed to the writer as Arrow views (the vendored writer takes a
    /// value whose view is the one before's without comparing its bytes):
    /// rows sharing one view (a take repeating rows), the same text at
    /// other places of the buffers, texts of one length and prefix that
    /// differ after it, short (inline) and long ones, across two chunks.
    /// Every value reads back as it was, the dictionary holds each distinct
    /// text once, and the column's min and max are the texts' least and
    /// greatest.
    #[test]
    fn text_sharing_views_or_only_bytes_reads_back_with_each_value_once_and_true_min_max() {
        use parquet::file::reader::FileReader;
        use parquet::file::statistics::Statistics;
        let distinct = [
            "无障碍改造（户）A",
            "无障碍改造（户）B",
            "341124101",
            "341124102",
            "残疾人证核发数量（张）",
            // The greatest: one length and prefix with the one before.
            "残疾人证核发数量（本）",
            "",
        ];
        // Each text a copy of its own: same bytes, other views.
        let copies: Vec<String> = (0..3_000)
            .map(|i| distinct[(i / 7) % distinct.len()].to_string())
            .collect();
        let mut df = df!("township" => &copies).unwrap();
        // The distinct texts taken again and again: rows sharing a view.
        let base = df!("township" => &distinct).unwrap();
        let rows: Vec<IdxSize> = (0..3_000).map(|i| ((i / 5) % distinct.len()) as IdxSize).collect();
        let shared = base.take(&IdxCa::from_vec("rows".into(), rows.clone())).unwrap();
        df.vstack_mut(&shared).unwrap();
        let bytes = township_file(&df);
        let want: Vec<Option<String>> = copies
            .iter()
            .cloned()
            .chain(rows.iter().map(|r| distinct[*r as usize].to_string()))
            .map(Some)
            .collect();
        assert_eq!(optional_texts(&read_back(&bytes), 0), want);
        let file = parquet::file::reader::SerializedFileReader::new(file_of(&bytes)).unwrap();
        assert_eq!(dictionary_values(&file), distinct.len());
        let (least, greatest) = (distinct.iter().min().unwrap(), distinct.iter().max().unwrap());
        match file.metadata().row_group(0).column(0).statistics() {
            Some(Statistics::ByteArray(s)) => {
                assert_eq!(s.min_opt().map(|m| m.data()), Some(least.as_bytes()));
                assert_eq!(s.max_opt().map(|m| m.data()), Some(greatest.as_bytes()));
            }
            other => panic!("no text statistics: {other:?}"),
        }
    }

    /// A fact file's columns that no reader skips a file by are written
    /// without min/max, those with one value per file uncompressed; the
    /// others keep both, other tables keep both everywhere, and the values
    /// read back the same.
    #[test]
    fn a_fact_files_one_value_and_unranged_columns_are_written_as_such() {
        use parquet::basic::Compression;
        use parquet::file::reader::FileReader;
        let n = 2_000;
        let township: Vec<String> = (0..n).map(|i| format!("3411241{:02}", i / 100)).collect();
        let raw: Vec<String> = (0..n).map(|i| format!("{}人", i % 37)).collect();
        let unit: Vec<&str> = vec!["人"; n];
        let df = df!("township" => &township, "unit" => &unit, "value_raw" => &raw).unwrap();
        let columns: Vec<ColSpec> = ["township", "unit", "value_raw"]
            .iter()
            .map(|c| ColSpec {
                name: c.to_string(),
                ty: ColType::Str,
                description: "d".into(),
                unit: None,
            })
            .collect();
        // Per column: (has min/max, compression), and the texts read back.
        let written = |name: &str| -> Vec<(bool, Compression)> {
            let t = Table {
                name: name.into(),
                description: "test".into(),
                columns: columns.clone(),
                metadata: vec![],
                frame: &df,
            };
            let bytes = encode_frame(&t).unwrap();
            let back = read_back(&bytes);
            for (c, want) in [&township, &unit.iter().map(|u| u.to_string()).collect(), &raw]
                .into_iter()
                .enumerate()
            {
                let got = texts(&back, c);
                assert_eq!(&got, want, "{name} column {c}");
            }
            let file = parquet::file::reader::SerializedFileReader::new(file_of(&bytes)).unwrap();
            let group = file.metadata().row_group(0);
            (0..3)
                .map(|c| {
                    let col = group.column(c);
                    let ranged = col.statistics().is_some_and(|s| s.min_bytes_opt().is_some());
                    (ranged, col.compression())
                })
                .collect()
        };
        let zstd = Compression::ZSTD(ZstdLevel::default());
        assert_eq!(
            written("facts/certificates_issued"),
            [(true, zstd), (false, Compression::UNCOMPRESSED), (false, zstd)]
        );
        assert_eq!(written("check_results"), [(true, zstd), (true, zstd), (true, zstd)]);
    }

    #[test]
    fn encodes_units_and_verifies_the_footer() {
        let dir = tempfile::tempdir().unwrap();
        let df = df!("value" => [Some(1.5), None, Some(3.0)]).unwrap();
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
        let f = dir.path().join("x.parquet");
        let batch = table_batch(&t).unwrap();
        std::fs::write(&f, encode_batch(&t, &batch).unwrap()).unwrap();
        // The fingerprint follows the rows and what the file says about them.
        let same = fingerprint(&t, &batch).unwrap();
        assert_eq!(same, fingerprint(&t, &table_batch(&t).unwrap()).unwrap());
        let other = df!("value" => [Some(1.5), Some(0.0), Some(3.0)]).unwrap();
        let t2 = t.clone_with_frame(&other);
        assert_ne!(same, fingerprint(&t2, &table_batch(&t2).unwrap()).unwrap(), "null ≠ 0");
        verify(&f, 3, "facts/x").unwrap();
        assert!(verify(&f, 2, "facts/x").is_err());
        assert!(verify(&f, 3, "facts/y").is_err());
        // The unit travels in the Arrow field metadata.
        let file = std::fs::File::open(&f).unwrap();
        let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        assert_eq!(
            b.schema().field(0).metadata().get("unit").map(String::as_str),
            Some("元")
        );
    }

    /// A file holding `bytes`, for the readers that read files.
    fn file_of(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f
    }

    /// The texts of column `c` of batches read back, nulls as None.
    fn optional_texts(back: &[RecordBatch], c: usize) -> Vec<Option<String>> {
        back.iter()
            .flat_map(|b| {
                let a = b
                    .column(c)
                    .as_any()
                    .downcast_ref::<arrow::array::StringArray>()
                    .unwrap();
                a.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
            })
            .collect()
    }

    /// The texts of column `c` of batches read back (no nulls).
    fn texts(back: &[RecordBatch], c: usize) -> Vec<String> {
        optional_texts(back, c).into_iter().map(Option::unwrap).collect()
    }

    /// The record batches of a Parquet file's bytes.
    fn read_back(bytes: &[u8]) -> Vec<RecordBatch> {
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file_of(bytes))
            .unwrap()
            .build()
            .unwrap();
        r.map(Result::unwrap).collect()
    }

    #[test]
    fn a_frame_encoded_a_slice_at_a_time_holds_every_row_in_order() {
        let n = 2 * SLICE_ROWS + 1_234;
        let df = df!(
            "township" => (0..n).map(|i| format!("3411241{:05}", i % 99_991)).collect::<Vec<_>>(),
            "value" => (0..n).map(|i| (i % 7 != 0).then_some(i as f64 / 3.0)).collect::<Vec<_>>(),
        )
        .unwrap();
        let spec = |name: &str, ty| ColSpec {
            name: name.into(),
            ty,
            description: name.into(),
            unit: None,
        };
        let t = Table {
            name: "check_results".into(),
            description: "test".into(),
            columns: vec![spec("township", ColType::Str), spec("value", ColType::F64)],
            metadata: vec![("k".into(), "v".into())],
            frame: &df,
        };
        let sliced = read_back(&encode_frame(&t).unwrap());
        let whole = read_back(&encode_batch(&t, &table_batch(&t).unwrap()).unwrap());
        let rows = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
        assert_eq!((rows(&sliced), rows(&whole)), (n, n));
        let concat = |b: &[RecordBatch]| arrow::compute::concat_batches(&b[0].schema(), b).unwrap();
        assert_eq!(concat(&sliced), concat(&whole), "the same rows, in the same order");
        // An empty table is the same file either way.
        let empty = df.clear();
        let t = t.clone_with_frame(&empty);
        assert_eq!(
            encode_frame(&t).unwrap(),
            encode_batch(&t, &table_batch(&t).unwrap()).unwrap()
        );
    }

    #[test]
    fn rows_given_a_frame_at_a_time_make_one_file_per_year_in_the_order_given() {
        let spec = |name: &str, ty| ColSpec {
            name: name.into(),
            ty,
            description: name.into(),
            unit: None,
        };
        let frame = |years: &[i32], from: usize| {
            df!(
                "year" => years.to_vec(),
                "n" => (from..from + years.len()).map(|i| i as i64).collect::<Vec<_>>(),
            )
            .unwrap()
        };
        let empty = frame(&[], 0);
        let t = Table {
            name: "check_results".into(),
            description: "test".into(),
            columns: vec![spec("n", ColType::I64)],
            metadata: vec![],
            frame: &empty,
        };
        let read = |bytes: &[u8]| -> Vec<i64> {
            read_back(bytes)
                .into_iter()
                .flat_map(|b| {
                    let c = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().clone();
                    c.iter().map(Option::unwrap).collect::<Vec<_>>()
                })
                .collect()
        };
        let bytes = |e: &Encoded| match e {
            Encoded::Bytes(b) => b.clone(),
            Encoded::File { path, sha256 } => {
                let bytes = std::fs::read(path).unwrap();
                assert_eq!(*sha256, crate::land::sha256_hex(&bytes), "hashed as written");
                bytes
            }
        };
        // In memory, and spilled into a directory (in row groups of
        // SPILLED_ROW_GROUP rows: 2026's file has two).
        let dir = tempfile::tempdir().unwrap();
        for spill in [None, Some(dir.path().join("spill"))] {
            let mut e = YearEncoder::new(&t).spill_into(spill.clone());
            let big: Vec<i32> = vec![2026; SLICE_ROWS + 5];
            e.write(&frame(&[2026, 2025, 2026], 0)).unwrap();
            e.write(&frame(&[], 0)).unwrap();
            e.write(&frame(&big, 3)).unwrap();
            let files = e.finish(1999).unwrap();
            assert_eq!(
                files.iter().map(|f| (f.0, f.2)).collect::<Vec<_>>(),
                [(2025, 1), (2026, SLICE_ROWS + 7)]
            );
            for (_, f, _) in &files {
                assert_eq!(
                    matches!(f, Encoded::File { path, .. } if path.starts_with(dir.path())),
                    spill.is_some()
                );
            }
            assert_eq!(read(&bytes(&files[0].1)), [1]);
            let expected: Vec<i64> = [0, 2].into_iter().chain(3..3 + big.len() as i64).collect();
            assert_eq!(read(&bytes(&files[1].1)), expected);
            let mut f = tempfile::tempfile().unwrap();
            std::io::Write::write_all(&mut f, &bytes(&files[1].1)).unwrap();
            let groups = SerializedFileReader::new(f).unwrap().metadata().num_row_groups();
            assert_eq!(groups, if spill.is_some() { 2 } else { 1 });
            // Nothing given: one empty file of the year asked for (in
            // memory), as a whole empty table is written.
            let none = YearEncoder::new(&t).spill_into(spill).finish(1999).unwrap();
            assert_eq!(none.len(), 1);
            assert_eq!((none[0].0, none[0].2), (1999, 0));
            assert_eq!(bytes(&none[0].1), encode_frame(&t).unwrap());
        }
    }

    #[test]
    fn an_encoder_beside_makes_the_files_it_would_make_here_and_gives_back_its_error() {
        let spec = ColSpec {
            name: "n".into(),
            ty: ColType::I64,
            description: "n".into(),
            unit: None,
        };
        let frame = |years: Vec<i32>, from: i64| {
            let n: Vec<i64> = (from..from + years.len() as i64).collect();
            df!("year" => years, "n" => n).unwrap()
        };
        let empty = frame(vec![], 0);
        let t = Table {
            name: "check_results".into(),
            description: "test".into(),
            columns: vec![spec],
            metadata: vec![],
            frame: &empty,
        };
        // More frames than wait in the queue, over two years.
        let frames: Vec<DataFrame> = (0..2 * BESIDE_QUEUED as i64 + 3)
            .map(|i| frame(vec![2025 + (i % 2) as i32; 100 + i as usize], i * 1000))
            .collect();
        let mut here = YearEncoder::new(&t);
        let mut beside = YearEncoder::new(&t).beside().unwrap();
        for f in &frames {
            here.write(f).unwrap();
            beside.write(f.clone()).unwrap();
        }
        let beside = beside.finish().unwrap().finish(1999).unwrap();
        assert_eq!(beside.len(), 2);
        assert_eq!(beside, here.finish(1999).unwrap(), "the same bytes, years and rows");

        // A frame it cannot encode (no `year`): its error comes back, from
        // a later `write` or from `finish`, never a lost frame.
        let mut beside = YearEncoder::new(&t).beside().unwrap();
        beside.write(df!("n" => [1i64]).unwrap()).unwrap();
        let mut later = Ok(());
        for f in &frames {
            later = beside.write(f.clone());
            if later.is_err() {
                break;
            }
        }
        let err = match later {
            Err(e) => e,
            Ok(()) => beside.finish().err().expect("the bad frame's error"),
        };
        assert!(err.to_string().contains("year"), "{err}");
    }
}
