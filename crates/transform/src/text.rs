//! A text column read row by row, its rows compared by their Arrow views:
//! most of a batch's texts are 12 bytes or fewer (codes, periods,
//! categories), held in the view itself, so two rows are the same text when
//! two 16-byte words are; only longer texts with different views are
//! compared byte by byte. A batch's facts come a report at a time, and the
//! loops that follow them ask "the same as the row before?" of every row:
//! as `&str` equality, a call to memcmp each time (a tenth of a national
//! recompute's samples).

use polars::prelude::*;
use polars_arrow::array::{Array, PrimitiveArray, Utf8ViewArray, View};

/// A text column as one array (rechunked when it was several).
pub struct Texts {
    array: Utf8ViewArray,
}

impl Texts {
    /// The column `name` of `frame`.
    pub fn of(frame: &DataFrame, name: &str) -> PolarsResult<Texts> {
        Ok(Texts::new(frame.column(name)?.str()?))
    }

    /// `column` as one array.
    pub fn new(column: &StringChunked) -> Texts {
        let one = column.rechunk();
        let array = match one.downcast_iter().next() {
            Some(a) => a.clone(),
            None => Utf8ViewArray::new_empty(ArrowDataType::Utf8View),
        };
        Texts { array }
    }

    /// Rows.
    #[inline]
    pub fn len(&self) -> usize {
        self.array.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.array.len() == 0
    }

    /// Row `i`'s text; None when null. Panics when `i` is not a row.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        self.array.get(i)
    }

    /// Rows `i` and `j` hold the same text, or are both null.
    #[inline]
    pub fn same(&self, i: usize, j: usize) -> bool {
        let (vi, vj) = (self.array.is_valid(i), self.array.is_valid(j));
        if !vi || !vj {
            return vi == vj;
        }
        let views = self.array.views();
        let (a, b) = (views[i], views[j]);
        if a.length != b.length {
            return false;
        }
        if a.length <= View::MAX_INLINE_SIZE {
            // The length and the inline bytes; what pads them is not
            // compared (zeros as polars writes them, but not promised).
            let mask = match a.length {
                12 => u128::MAX,
                n => (1u128 << (32 + 8 * n)) - 1,
            };
            return a.as_u128() & mask == b.as_u128() & mask;
        }
        // The same bytes of the same buffer, or else compared.
        (a.prefix == b.prefix && a.buffer_idx == b.buffer_idx && a.offset == b.offset)
            || (a.prefix == b.prefix && self.array.value(i) == self.array.value(j))
    }
}

/// A numeric column read row by row, as one array (rechunked when it was
/// several): what [`Texts`] is for text, for the loops that read a fact
/// row's value or year beside its texts (a `ChunkedArray::get` finds the
/// row's chunk every time).
pub struct Numbers<T: PolarsNumericType> {
    array: PrimitiveArray<T::Native>,
}

impl<T: PolarsNumericType> Numbers<T> {
    /// The column `name` of `frame`, of type `T`.
    pub fn of(frame: &DataFrame, name: &str) -> PolarsResult<Numbers<T>> {
        let series = frame.column(name)?.as_materialized_series().rechunk();
        let one: &ChunkedArray<T> = series.unpack::<T>()?;
        let array = match one.downcast_iter().next() {
            Some(a) => a.clone(),
            None => PrimitiveArray::new_empty(T::get_static_dtype().to_arrow(CompatLevel::newest())),
        };
        Ok(Numbers { array })
    }

    /// Row `i`'s number; None when null. Panics when `i` is not a row.
    #[inline]
    pub fn get(&self, i: usize) -> Option<T::Native> {
        self.array.get(i)
    }
}

/// Row `row` holds in every one of `keys` what the row before holds (never
/// the first row): the question the loops over a batch's facts, which come
/// a report at a time, ask of every row.
#[inline]
pub fn like_before(keys: &[&Texts], row: usize) -> bool {
    row > 0 && keys.iter().all(|k| k.same(row, row - 1))
}

/// A text column built row by row straight into Arrow views, for the rows
/// normalization makes: a text of 12 bytes or fewer is held in its view;
/// a longer one is written to the column's buffer once for as long as it
/// repeats (a report's rows carry the same sha256 and, a category after
/// another, the same indicator code), its rows' views naming that one
/// place. Built as a list of strings and copied into polars after, every
/// row's sha256 was written twice and 400 MB of a national month's
/// buffers held the same 64 bytes over and over.
#[derive(Default)]
pub struct TextBuilder {
    views: Vec<View>,
    /// Row by row, whether it holds a text; None while none is null.
    validity: Option<polars_arrow::bitmap::MutableBitmap>,
    /// Buffers filled.
    full: Vec<Vec<u8>>,
    /// The buffer being filled (buffer `full.len()`).
    current: Vec<u8>,
    /// The last text longer than a view holds, written in `current`.
    last: Option<View>,
    /// Bytes of every text (as polars counts them: nulls hold none).
    total_bytes: usize,
}

/// Bytes after which a buffer is full and the next one begun (polars'
/// own builders hold texts in buffers of at most 16 MiB as well; a view's
/// offset into its buffer is a u32).
const BUFFER_BYTES: usize = 16 << 20;

impl TextBuilder {
    /// Room for `rows` more rows.
    pub fn reserve(&mut self, rows: usize) {
        self.views.reserve(rows);
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.views.len()
    }

    /// No rows so far.
    pub fn is_empty(&self) -> bool {
        self.views.is_empty()
    }

    /// A row holding `v`.
    #[inline]
    pub fn push(&mut self, v: &str) {
        let bytes = v.as_bytes();
        self.total_bytes += bytes.len();
        if let Some(validity) = &mut self.validity {
            validity.push(true);
        }
        if bytes.len() <= View::MAX_INLINE_SIZE as usize {
            self.views.push(View::new_inline(bytes));
            return;
        }
        if let Some(last) = self.last
            && last.length as usize == bytes.len()
            && &self.current[last.offset as usize..][..bytes.len()] == bytes
        {
            self.views.push(last);
            return;
        }
        if self.current.len() + bytes.len() > BUFFER_BYTES && !self.current.is_empty() {
            let full = std::mem::take(&mut self.current);
            self.full.push(full);
        }
        let (buffer, offset) = (self.full.len(), self.current.len());
        self.current.extend_from_slice(bytes);
        // Texts are under 4 GiB and buffers fewer than 4 billion: both fit.
        let view = View::new_from_bytes(bytes, buffer as u32, offset as u32);
        self.last = Some(view);
        self.views.push(view);
    }

    /// A row holding no text.
    #[inline]
    pub fn push_null(&mut self) {
        let rows = self.views.len();
        let validity = self.validity.get_or_insert_with(|| {
            let mut all = polars_arrow::bitmap::MutableBitmap::with_capacity(self.views.capacity());
            all.extend_constant(rows, true);
            all
        });
        validity.push(false);
        self.views.push(View::default());
    }

    /// A row holding `v`, or no text.
    #[inline]
    pub fn push_opt(&mut self, v: Option<&str>) {
        match v {
            Some(v) => self.push(v),
            None => self.push_null(),
        }
    }

    /// `n` rows holding `v` (or no text): pushed once, its view copied for
    /// the rest (a landing's township or sha256 on each of its rows).
    pub fn push_repeated(&mut self, v: Option<&str>, n: usize) {
        if n == 0 {
            return;
        }
        self.push_opt(v);
        let view = *self.views.last().expect("a row was just pushed");
        self.views.extend(std::iter::repeat_n(view, n - 1));
        if let Some(validity) = &mut self.validity {
            validity.extend_constant(n - 1, v.is_some());
        }
        self.total_bytes += v.map_or(0, str::len) * (n - 1);
    }

    /// The column `name`, its rows as pushed.
    pub fn finish(mut self, name: &str) -> Column {
        if !self.current.is_empty() {
            self.full.push(std::mem::take(&mut self.current));
        }
        let buffer_bytes = self.full.iter().map(Vec::len).sum();
        let buffers: Vec<_> = self.full.into_iter().map(Into::into).collect();
        // SAFETY: every view of a text longer than 12 bytes names the
        // buffer it was written to and where in it (a buffer is pushed to
        // `full` whole, never changed after), and every text is UTF-8 (it
        // came as a `&str`); a null's view is the empty one, marked null
        // in `validity`, which has a bit for every view. `total_bytes` is
        // the sum of the texts' lengths and `buffer_bytes` of the buffers'.
        let array = unsafe {
            Utf8ViewArray::new_unchecked(
                ArrowDataType::Utf8View,
                self.views.into(),
                buffers.into(),
                self.validity.map(Into::into),
                Some(self.total_bytes),
                buffer_bytes,
            )
        };
        StringChunked::with_chunk(name.into(), array).into_column()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of rows of texts short and long, inline and in buffers,
    /// repeated, in two chunks, with nulls: same exactly when the texts
    /// are equal.
    #[test]
    fn rows_are_the_same_exactly_when_their_texts_are() {
        let values = [
            Some(""),
            Some("a"),
            Some("340101001"),
            Some("340101002"),
            Some("类别"),
            Some("twelve bytes"),
            Some("twelve bytez"),
            Some("thirteen byte"),
            Some("thirteen bytf"),
            Some("a much longer text than twelve bytes"),
            Some("a much longer text than twelve bytes!"),
            None,
        ];
        let mut rows: Vec<Option<&str>> = vec![];
        for v in values.iter().chain(values.iter().rev()) {
            rows.push(*v);
        }
        let half = rows.len() / 2;
        let mut column = StringChunked::new("c".into(), &rows[..half]);
        column.append(&StringChunked::new("c".into(), &rows[half..])).unwrap();
        assert!(column.chunks().len() > 1);
        let texts = Texts::new(&column);
        assert_eq!(texts.len(), rows.len());
        let mut same = 0;
        for i in 0..rows.len() {
            assert_eq!(texts.get(i), rows[i]);
            for j in 0..rows.len() {
                assert_eq!(texts.same(i, j), rows[i] == rows[j], "{:?} {:?}", rows[i], rows[j]);
                same += usize::from(rows[i] == rows[j]);
            }
        }
        assert_eq!(same, 2 * 2 * values.len());
    }

    /// Like the row before exactly when every key is: never the first row,
    /// a null like a null.
    #[test]
    fn a_row_is_like_the_one_before_when_every_key_is() {
        let texts = |v: &[Option<&str>]| Texts::new(&StringChunked::new("c".into(), v));
        let a = texts(&[Some("1"), Some("1"), Some("1"), None, None]);
        let b = texts(&[Some("x"), Some("x"), Some("y"), Some("y"), Some("y")]);
        let like: Vec<bool> = (0..5).map(|row| like_before(&[&a, &b], row)).collect();
        assert_eq!(like, [false, true, false, false, true]);
        let only_b: Vec<bool> = (0..5).map(|row| like_before(&[&b], row)).collect();
        assert_eq!(only_b, [false, true, false, true, true]);
    }

    /// A built column holds exactly the texts pushed, nulls where pushed,
    /// whatever their lengths and repeats, across full buffers; a long
    /// text repeated is written once.
    #[test]
    fn a_built_column_holds_the_rows_pushed() {
        let long: String = "长".repeat(40);
        let mut rows: Vec<Option<String>> = vec![];
        for i in 0..2_000 {
            rows.push(Some(format!("{i}")));
            rows.push(Some(long.clone()));
            rows.push(Some(long.clone()));
            rows.push(if i % 7 == 0 {
                None
            } else {
                Some(format!("a text of row {i} over twelve"))
            });
            rows.push(Some(String::new()));
            rows.push(Some("twelve bytes".into()));
        }
        // Enough distinct long texts to fill more than one buffer.
        let wide = "x".repeat(4_000);
        for i in 0..5_000 {
            rows.push(Some(format!("{i}{wide}")));
        }
        rows.push(Some(long.clone()));
        rows.push(None);
        let mut built = TextBuilder::default();
        // The first null after many rows, and rows reserved before.
        built.reserve(10);
        for r in &rows {
            built.push_opt(r.as_deref());
        }
        assert_eq!(built.len(), rows.len());
        let column = built.finish("c");
        let expected = StringChunked::from_iter_options("c".into(), rows.iter().map(|r| r.as_deref()));
        let got = column.str().unwrap();
        assert_eq!(got.len(), rows.len());
        assert_eq!(got.null_count(), rows.iter().filter(|r| r.is_none()).count());
        assert!(got.equal_missing(&expected).all());
        let array = got.downcast_iter().next().unwrap();
        assert!(array.data_buffers().len() > 1, "more than one buffer");
        // A long text is written once for as long as it repeats (no other
        // long text between); 12 bytes or fewer, never.
        let mut last: Option<&str> = None;
        let mut once = 0;
        for r in rows.iter().flatten().filter(|r| r.len() > 12) {
            once += if last == Some(r.as_str()) { 0 } else { r.len() };
            last = Some(r);
        }
        let written: usize = array.data_buffers().iter().map(|b| b.len()).sum();
        assert_eq!(written, once);
        assert_eq!(
            array.total_bytes_len(),
            rows.iter().flatten().map(String::len).sum::<usize>()
        );
        // Equal to polars' own column in every way polars asks of it.
        let frame = DataFrame::new_infer_height(vec![column.clone()]).unwrap();
        let sorted = frame.sort(["c"], Default::default()).unwrap();
        let expected_sorted = DataFrame::new_infer_height(vec![expected.into_column()])
            .unwrap()
            .sort(["c"], Default::default())
            .unwrap();
        assert!(sorted.equals_missing(&expected_sorted));
    }

    /// Runs of a text (none, one or many rows; short, long, null; a null
    /// first and after rows) built by `push_repeated` are the rows pushed
    /// one by one, a long text written once per run.
    #[test]
    fn a_repeated_row_is_that_many_rows() {
        let long = "一个超过十二个字节的文字".to_string();
        let runs: Vec<(Option<String>, usize)> = (0..300)
            .map(|i| {
                let text = match i % 5 {
                    0 => None,
                    1 => Some(format!("{i}")),
                    2 => Some(format!("{long}{i}")),
                    3 => Some(long.clone()),
                    _ => Some(String::new()),
                };
                (text, (i * 7) % 11)
            })
            .collect();
        let mut built = TextBuilder::default();
        let mut rows: Vec<Option<&str>> = vec![];
        for (text, n) in &runs {
            built.push_repeated(text.as_deref(), *n);
            rows.extend(std::iter::repeat_n(text.as_deref(), *n));
        }
        assert_eq!(built.len(), rows.len());
        let column = built.finish("c");
        let got = column.str().unwrap();
        let expected = StringChunked::from_iter_options("c".into(), rows.iter().copied());
        assert_eq!(got.null_count(), expected.null_count());
        assert!(got.equal_missing(&expected).all());
        let array = got.downcast_iter().next().unwrap();
        assert_eq!(
            array.total_bytes_len(),
            rows.iter().flatten().map(|r| r.len()).sum::<usize>()
        );
        // A long text is written once for as long as no other long text
        // comes between (short texts and nulls do not count).
        let mut last: Option<&str> = None;
        let mut once = 0;
        for (text, _) in runs.iter().filter(|(_, n)| *n > 0) {
            if let Some(t) = text.as_deref().filter(|t| t.len() > 12) {
                once += if last == Some(t) { 0 } else { t.len() };
                last = Some(t);
            }
        }
        let written: usize = array.data_buffers().iter().map(|b| b.len()).sum();
        assert_eq!(written, once);
    }

    /// A numeric column's rows as polars holds them, across chunks, nulls
    /// as None; an empty column has no rows.
    #[test]
    fn numbers_are_the_rows_of_every_chunk() {
        let mut v = Float64Chunked::new("v".into(), &[Some(1.5), None]);
        v.append(&Float64Chunked::new("v".into(), &[Some(f64::NAN), Some(-2.0), None]))
            .unwrap();
        let frame = DataFrame::new_infer_height(vec![v.clone().into_column()]).unwrap();
        let n = Numbers::<Float64Type>::of(&frame, "v").unwrap();
        let got: Vec<Option<f64>> = (0..5).map(|i| n.get(i)).collect();
        assert_eq!(got[..2], [Some(1.5), None]);
        assert!(got[2].is_some_and(f64::is_nan));
        assert_eq!(got[3..], [Some(-2.0), None]);
        assert!(Numbers::<Int32Type>::of(&frame, "v").is_err(), "not of that type");
        let empty = frame.clear();
        assert!(Numbers::<Float64Type>::of(&empty, "v").is_ok());
    }
}
