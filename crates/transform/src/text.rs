//! A text column read row by row, its rows compared by their Arrow views:
//! most of a batch's texts are 12 bytes or fewer (codes, periods,
//! categories), held in the view itself, so two rows are the same text when
//! two 16-byte words are; only longer texts with different views are
//! compared byte by byte. A batch's facts come a report at a time, and the
//! loops that follow them ask "the same as the row before?" of every row:
//! as `&str` equality, a call to memcmp each time (a tenth of a national
//! recompute's samples).

use polars::prelude::*;
use polars_arrow::array::{Array, Utf8ViewArray, View};

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

/// Row `row` holds in every one of `keys` what the row before holds (never
/// the first row): the question the loops over a batch's facts, which come
/// a report at a time, ask of every row.
#[inline]
pub fn like_before(keys: &[&Texts], row: usize) -> bool {
    row > 0 && keys.iter().all(|k| k.same(row, row - 1))
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
}
