//! The wire contract's shapes: a township's [`Submission`] as every format
//! parses to (see [`crate::parse`]), its cells and raw values, parse errors,
//! decoding of text bodies, and the limits a parser enforces. Types only, below
//! every parser.

use chrono::{DateTime, FixedOffset};
pub use compact_str::CompactString;

/// A submission's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The JSON document of the wire contract.
    Json,
    /// CSV with header `township,period,indicator,dimension,category,value`.
    Csv,
    /// The county's Excel template.
    Xlsx,
    /// DHIS2 dataValueSets JSON.
    Dhis2,
    /// A work summary as plain text, values read by the extractor.
    Text,
    /// A work summary as a Word .docx, values read by the extractor.
    Docx,
}

impl Format {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Dhis2 => "dhis2",
            Format::Text => "txt",
            Format::Docx => "docx",
        }
    }
}

/// One value as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A JSON number.
    Number(f64),
    /// A string, possibly with a unit, a scale or a placeholder.
    Text(CompactString),
    /// null, or nothing at all.
    Null,
}

impl Cell {
    /// The value as the township wrote it.
    pub fn raw(&self) -> String {
        let mut s = String::new();
        self.write_raw(&mut s);
        s
    }

    /// [`Cell::raw`], appended to `out` (no allocation of its own).
    pub fn write_raw(&self, out: &mut String) {
        match self {
            Cell::Number(n) => write_number(*n, out),
            Cell::Text(s) => out.push_str(s),
            Cell::Null => {}
        }
    }
}

/// Prints a number the way a person would read it (no trailing `.0`).
pub fn format_number(n: f64) -> String {
    let mut s = String::new();
    write_number(n, &mut s);
    s
}

/// [`format_number`], appended to `out`.
pub fn write_number(n: f64, out: &mut String) {
    use std::fmt::Write;
    if n.fract() == 0.0 && n.abs() < 1e15 {
        // Whole numbers (nearly every value): printed without `fmt`.
        out.push_str(itoa::Buffer::new().format(n as i64));
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{n}");
    }
}

/// One entry of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawValue {
    /// Indicator label as written.
    pub indicator: Option<CompactString>,
    /// Dimension label as written.
    pub dimension: Option<CompactString>,
    /// Category label as written.
    pub category: Option<CompactString>,
    /// The value.
    pub value: Cell,
    /// Why the entry cannot be used whatever its labels say, if so.
    pub problem: Option<String>,
}

/// A parsed submission.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// Format it arrived in.
    pub format: Format,
    /// Text encoding it arrived in (utf-8, utf-8-bom, utf-16le, utf-16be, gb18030).
    pub encoding: &'static str,
    /// 9-digit code, when given.
    pub township: Option<String>,
    /// Township name as written, when given.
    pub township_name: Option<String>,
    /// Program name, when given.
    pub program: Option<String>,
    /// Period as written.
    pub period: Option<String>,
    /// When the township says it submitted.
    pub submitted_at: Option<DateTime<FixedOffset>>,
    /// Submission version (resubmissions count up).
    pub version: Option<i64>,
    /// Force-submit explanation (强制上报说明).
    pub explanation: Option<String>,
    /// The values.
    pub values: Vec<RawValue>,
    /// A document's values as the extractor found them, one per entry of
    /// `values` (in the same order); empty for forms.
    pub mentions: Vec<crate::extract::Mention>,
    /// Quotas a document states (实施…改造任务30户): not values of the report.
    pub stated_quotas: Vec<crate::extract::Mention>,
}

impl Submission {
    /// A submission with no header fields and no values yet.
    pub fn empty(format: Format, encoding: &'static str) -> Submission {
        Submission {
            format,
            encoding,
            township: None,
            township_name: None,
            program: None,
            period: None,
            submitted_at: None,
            version: None,
            explanation: None,
            values: Vec::new(),
            mentions: Vec::new(),
            stated_quotas: Vec::new(),
        }
    }
}

/// Bytes that are not a submission at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("the body is empty")]
    Empty,
    /// Not UTF-8.
    #[error("the body is not text in UTF-8, UTF-16 or GB18030 (first bad byte at {offset})")]
    NotUtf8 {
        /// First bad byte.
        offset: usize,
    },
    /// UTF-8 that ends in the middle of a character.
    #[error("the body ends in the middle of a character at byte {offset}: it was cut off")]
    CutOff {
        /// Where the last, incomplete character starts.
        offset: usize,
    },
    /// Neither JSON nor the CSV header.
    #[error(
        "the body is neither a JSON submission nor CSV with header township,period,indicator,dimension,category,value"
    )]
    UnknownFormat,
    /// Malformed JSON.
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Json {
        /// Line, 1-based.
        line: usize,
        /// Column, 1-based.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// JSON of the wrong shape.
    #[error("JSON submission {0}")]
    Shape(String),
    /// An .xlsx that is not a readable workbook in the template's shape.
    #[error("Excel workbook: {0}")]
    Xlsx(String),
    /// Over one of the [`ReadLimits`].
    #[error("over a limit: {0}")]
    OverLimit(String),
    /// A document (work summary) that cannot be read as text.
    #[error("document: {0}")]
    Document(String),
    /// Malformed CSV.
    #[error("CSV line {line}: {reason}")]
    Csv {
        /// Line, 1-based.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Decodes a body as text: UTF-8 (with or without BOM), UTF-16 with a BOM,
/// or GB18030 (which covers GBK and GB2312: what Chinese Excel exports by
/// default). Returns the text and the encoding found.
pub fn decode(bytes: &[u8]) -> Result<(std::borrow::Cow<'_, str>, &'static str), ParseError> {
    use std::borrow::Cow;
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(|t| (Cow::Borrowed(t), "utf-8-bom"))
            .map_err(|e| ParseError::NotUtf8 {
                offset: e.valid_up_to() + 3,
            });
    }
    for (bom, enc, name) in [
        (&b"\xFF\xFE"[..], encoding_rs::UTF_16LE, "utf-16le"),
        (&b"\xFE\xFF"[..], encoding_rs::UTF_16BE, "utf-16be"),
    ] {
        if let Some(rest) = bytes.strip_prefix(bom) {
            return enc
                .decode_without_bom_handling_and_without_replacement(rest)
                .map(|t| (Cow::Owned(t.into_owned()), name))
                .ok_or(ParseError::NotUtf8 { offset: 2 });
        }
    }
    // The vectorized check says only whether; std's says where it fails.
    let checked = match simdutf8::basic::from_utf8(bytes) {
        Ok(t) => Ok(t),
        Err(_) => std::str::from_utf8(bytes),
    };
    match checked {
        Ok(t) => Ok((Cow::Borrowed(t), "utf-8")),
        // Valid UTF-8 up to a character cut in half at the very end.
        Err(e) if e.error_len().is_none() && e.valid_up_to() + 4 > bytes.len() && e.valid_up_to() > 0 => {
            Err(ParseError::CutOff {
                offset: e.valid_up_to(),
            })
        }
        Err(e) => encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|t| (Cow::Owned(t.into_owned()), "gb18030"))
            .ok_or(ParseError::NotUtf8 {
                offset: e.valid_up_to(),
            }),
    }
}

/// How much of a document a parser will read before it gives up on it. A
/// document over a limit is one clear [`ParseError::OverLimit`], so the whole
/// submission is quarantined with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLimits {
    /// Rows in one submission: JSON `values` entries, DHIS2 `dataValues`,
    /// CSV records, rows of the Excel sheet.
    pub max_rows: usize,
    /// Values on one row: CSV fields, filled cells on one row of the sheet.
    pub max_row_values: usize,
    /// Size an .xlsx may inflate to, bytes (checked from the zip directory
    /// before anything is inflated).
    pub max_uncompressed_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_rows: 20_000,
            max_row_values: 64,
            max_uncompressed_bytes: 64 * 1024 * 1024,
        }
    }
}

impl ReadLimits {
    /// The error for `n` rows when there may be at most `max_rows`.
    pub(crate) fn check_rows(&self, n: usize, what: &str) -> Result<(), ParseError> {
        if n > self.max_rows {
            return Err(ParseError::OverLimit(format!(
                "{n} {what}; a submission may have at most {} rows",
                self.max_rows
            )));
        }
        Ok(())
    }

    /// The error for `n` values on one row (`at` names the row).
    pub(crate) fn check_row_values(&self, n: usize, at: &str) -> Result<(), ParseError> {
        if n > self.max_row_values {
            return Err(ParseError::OverLimit(format!(
                "{at} has {n} values; a row may have at most {}",
                self.max_row_values
            )));
        }
        Ok(())
    }
}

/// What is wrong with a Content-Type for a report, if anything. Reports come
/// as JSON, CSV or the Excel template; generic types (`text/plain`,
/// `application/octet-stream`) and a missing header are accepted and the body
/// is sniffed. An HTML page, an image or a PDF is not a report.
pub fn content_type_problem(content_type: &str) -> Option<String> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let accepted = matches!(
        essence.as_str(),
        "" | "application/json"
            | "text/json"
            | "text/csv"
            | "application/csv"
            | "text/comma-separated-values"
            | "text/plain"
            | "application/octet-stream"
            | "binary/octet-stream"
            | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/vnd.ms-excel"
            | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            | "application/zip"
            | "application/x-zip-compressed"
    ) || essence.ends_with("+json");
    (!accepted)
        .then(|| format!("served as {content_type:?}, which is not a report format (JSON, CSV, the Excel template, or a .txt/.docx work summary)"))
}

/// Longest township-controlled text echoed into a reason, message or log.
pub const ECHO_CHARS: usize = 64;

/// `text` cut to `max` characters for echoing (a reason, an alert, a log
/// line), saying how much was cut: a township controls what it sends, and a
/// 3 MB field must not be repeated into every row that names it.
pub fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…(+{} chars)", &text[..end], text[end..].chars().count()),
    }
}

/// Text a township sent with personal data masked: an ID card number
/// (18 digits, the last may be X, or the old 15) keeps its 6-digit region
/// code, a mobile number (11 digits from 13–19) its first 3, a name written
/// after a label word (联系人, 户主, 姓名, 经办人 …) its first character; the
/// rest are `*`. Applied to everything township-written that reaches an analyst
/// table or a message; the clear text stays only in `raw/`.
pub fn mask_personal(text: &str) -> std::borrow::Cow<'_, str> {
    // ASCII with fewer digits than a phone number (nearly every value, as
    // `12` or `4.5`): no name (names are Chinese), no number to mask.
    if text.is_ascii() && text.bytes().filter(u8::is_ascii_digit).count() < 11 {
        return std::borrow::Cow::Borrowed(text);
    }
    match mask_names(text) {
        std::borrow::Cow::Borrowed(_) => mask_numbers(text),
        std::borrow::Cow::Owned(masked) => std::borrow::Cow::Owned(mask_numbers(&masked).into_owned()),
    }
}

/// Words after which a person's name is written (simplified; traditional
/// is folded): 联系人张三, 户主：李四, 经办人 王小明.
const NAME_LABELS: &[&str] = &[
    "姓名",
    "联系人",
    "户主",
    "负责人",
    "经办人",
    "填报人",
    "填表人",
    "申请人",
    "监护人",
    "审核人",
    "联络员",
];
/// Words that end a name written after a label (联系人张三电话…).
const AFTER_NAME: &[&str] = &[
    "电话", "手机", "身份", "联系", "同志", "先生", "女士", "等", "的", "和", "及",
];

/// A name after a label word keeps its first character (the surname):
/// 联系人张三丰 → 联系人张**. Two to three Chinese characters are a name;
/// one is not.
fn mask_names(text: &str) -> std::borrow::Cow<'_, str> {
    // Fast path: no label's first character, no name (most values are numbers).
    let firsts = "姓联聯户戶负負经經填申监監审審";
    if !text.chars().any(|c| firsts.contains(c)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let folded: Vec<char> = chars.iter().map(|c| crate::fold::fold_char(*c)).collect();
    let cjk = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
    let starts = |at: usize, w: &str| {
        let w: Vec<char> = w.chars().collect();
        folded.len() >= at + w.len() && folded[at..at + w.len()] == w[..]
    };
    let mut mask = vec![false; chars.len()];
    for i in 0..chars.len() {
        let Some(label) = NAME_LABELS.iter().find(|l| starts(i, l)) else {
            continue;
        };
        let mut j = i + label.chars().count();
        while j < chars.len() && matches!(folded[j], ':' | '：' | ' ' | '　' | '为' | '是') {
            j += 1;
        }
        let begin = j;
        while j < chars.len() && j - begin < 3 && cjk(folded[j]) && !AFTER_NAME.iter().any(|w| starts(j, w)) {
            j += 1;
        }
        if j - begin >= 2 {
            for m in &mut mask[begin + 1..j] {
                *m = true;
            }
        }
    }
    if !mask.iter().any(|m| *m) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(chars.iter().zip(mask).map(|(c, m)| if m { '*' } else { *c }).collect())
}

/// ID card and mobile numbers masked (see [`mask_personal`]).
fn mask_numbers(text: &str) -> std::borrow::Cow<'_, str> {
    let digit = |c: char| c.is_ascii_digit() || ('０'..='９').contains(&c);
    // Counted before anything is allocated: nearly every value has fewer
    // digits than a phone number (a national month: 6.2 million values).
    if text.chars().filter(|c| digit(*c)).count() < 11 {
        return std::borrow::Cow::Borrowed(text);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i;
        while j < chars.len() && digit(chars[j]) {
            j += 1;
        }
        // 17 digits and an X: an ID card number too.
        if j - i == 17 && j < chars.len() && matches!(chars[j], 'X' | 'x') {
            j += 1;
        }
        let run: String = chars[i..j].iter().collect();
        let ascii: String = run.chars().map(crate::fold::fold_char).collect();
        let keep = match j - i {
            18 | 15 => Some(6),
            11 if ascii.starts_with('1') && ascii[1..2] >= *"3" => Some(3),
            _ => None,
        };
        match keep {
            Some(k) => {
                out.extend(chars[i..i + k].iter());
                out.extend(std::iter::repeat_n('*', j - i - k));
            }
            None => out.push_str(&run),
        }
        i = j;
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_after_a_label_keep_only_the_surname() {
        let m = |t: &str| super::mask_personal(t).into_owned();
        assert_eq!(m("联系人张三丰"), "联系人张**");
        assert_eq!(m("聯繫人：李四，電話13812345678"), "聯繫人：李*，電話138********");
        assert_eq!(m("户主王小明的家庭"), "户主王**的家庭");
        assert_eq!(m("经办人 赵六电话"), "经办人 赵*电话");
        // Not a name: one character, or no label.
        assert_eq!(m("负责人1名"), "负责人1名");
        assert_eq!(m("发放轮椅9辆"), "发放轮椅9辆");
        assert!(matches!(super::mask_personal("12"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn clip_keeps_short_text_and_says_how_much_it_cut() {
        assert_eq!(super::clip("大墅镇", 3), "大墅镇");
        assert_eq!(super::clip("大墅镇镇镇", 3), "大墅镇…(+2 chars)");
        assert_eq!(
            super::clip(&"x".repeat(3_000_000), 64).len(),
            64 + "…(+2999936 chars)".len()
        );
    }

    #[test]
    fn report_content_types_pass_and_pages_do_not() {
        for ok in [
            "application/json; charset=utf-8",
            "text/csv",
            "TEXT/PLAIN;charset=gbk",
            "application/octet-stream",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.api+json",
            "",
        ] {
            assert_eq!(super::content_type_problem(ok), None, "{ok}");
        }
        for bad in [
            "text/html; charset=utf-8",
            "image/png",
            "application/pdf",
            "application/xml",
        ] {
            let why = super::content_type_problem(bad).unwrap();
            assert!(why.contains(bad) && why.contains("not a report format"), "{why}");
        }
    }

    #[test]
    fn personal_numbers_are_masked_and_counts_are_not() {
        assert_eq!(
            super::mask_personal("张三 340102199001011234 已核实"),
            "张三 340102************ 已核实"
        );
        assert_eq!(super::mask_personal("34010219900101123X"), "340102************");
        assert_eq!(super::mask_personal("联系电话13812345678"), "联系电话138********");
        assert_eq!(super::mask_personal("发放1556700元,共6084人"), "发放1556700元,共6084人");
        assert_eq!(
            super::mask_personal("12345678901"),
            "12345678901",
            "11 digits not a mobile"
        );
        // ASCII, as most values are written: masked the same.
        assert_eq!(super::mask_personal("tel 13812345678"), "tel 138********");
        assert_eq!(super::mask_personal("ID:340102199001011234"), "ID:340102************");
        assert_eq!(super::mask_personal("1556700"), "1556700");
    }

    proptest::proptest! {
        /// What the checks that skip work for ASCII text and whole numbers
        /// give is what the whole way gives.
        #[test]
        fn the_quick_ways_give_what_the_whole_way_gives(
            text in "([0-9]{1,19}|[a-zA-Z .:,xX-]{1,4}){0,5}",
            n in proptest::prelude::any::<i64>(),
            f in proptest::prelude::any::<f64>(),
        ) {
            let whole = match super::mask_names(&text) {
                std::borrow::Cow::Borrowed(_) => super::mask_numbers(&text).into_owned(),
                std::borrow::Cow::Owned(m) => super::mask_numbers(&m).into_owned(),
            };
            proptest::prop_assert_eq!(super::mask_personal(&text).into_owned(), whole);
            for v in [n as f64, (n % 1_000_000_000_000_000) as f64, f] {
                let fmt = if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v}") };
                proptest::prop_assert_eq!(super::format_number(v), fmt);
            }
        }
    }
}
