//! The wire contract: a township's submission as JSON or CSV, parsed from the
//! landed bytes into a [`Submission`]. Pure: bytes in, struct out. Parsing is
//! lenient per value (a bad entry is kept and quarantined later with its
//! reason) and strict per document (unreadable bytes are one clear error).

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

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
}

impl Format {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
            Format::Dhis2 => "dhis2",
        }
    }
}

/// One value as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A JSON number.
    Number(f64),
    /// A string, possibly with a unit, a scale or a placeholder.
    Text(String),
    /// null, or nothing at all.
    Null,
}

impl Cell {
    /// The value as the township wrote it.
    pub fn raw(&self) -> String {
        match self {
            Cell::Number(n) => format_number(*n),
            Cell::Text(s) => s.clone(),
            Cell::Null => String::new(),
        }
    }
}

/// Prints a number the way a person would read it (no trailing `.0`).
pub fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// One entry of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawValue {
    /// Indicator label as written.
    pub indicator: Option<String>,
    /// Dimension label as written.
    pub dimension: Option<String>,
    /// Category label as written.
    pub category: Option<String>,
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
    match std::str::from_utf8(bytes) {
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

/// Parses a landed body with no DHIS2 mapping and the default limits.
pub fn parse(bytes: &[u8]) -> Result<Submission, ParseError> {
    parse_with(bytes, &crate::dhis2::Mapping::default(), &ReadLimits::default())
}

/// Parses a landed body, detecting the format (JSON, DHIS2 dataValueSets,
/// CSV, the Excel template) and the text encoding.
pub fn parse_with(bytes: &[u8], dhis2: &crate::dhis2::Mapping, limits: &ReadLimits) -> Result<Submission, ParseError> {
    if crate::xlsx::is_xlsx(bytes) {
        return crate::xlsx::parse_limited(bytes, limits);
    }
    let (text, encoding) = decode(bytes)?;
    let mut sub = parse_text(&text, dhis2, limits)?;
    sub.encoding = encoding;
    Ok(sub)
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
            | "application/zip"
            | "application/x-zip-compressed"
    ) || essence.ends_with("+json");
    (!accepted)
        .then(|| format!("served as {content_type:?}, which is not a report format (JSON, CSV or the Excel template)"))
}

fn parse_text(text: &str, dhis2: &crate::dhis2::Mapping, limits: &ReadLimits) -> Result<Submission, ParseError> {
    let text = text.trim_start_matches('\u{feff}');
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(ParseError::Empty);
    }
    if trimmed.starts_with('{') {
        return parse_json(text, dhis2, limits);
    }
    let header = trimmed.lines().next().unwrap_or("").trim().to_ascii_lowercase();
    if header.replace(' ', "").starts_with("township,period,indicator") {
        return parse_csv(trimmed, limits);
    }
    Err(ParseError::UnknownFormat)
}

fn opt_string(v: Option<&Value>) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(format!("is {} where text was expected", kind(other))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn parse_json(text: &str, dhis2: &crate::dhis2::Mapping, limits: &ReadLimits) -> Result<Submission, ParseError> {
    let doc: Value = serde_json::from_str(text).map_err(|e| ParseError::Json {
        line: e.line(),
        column: e.column(),
        message: e.to_string().split(" at line").next().unwrap_or("").to_string(),
    })?;
    let Value::Object(obj) = doc else {
        return Err(ParseError::Shape("is not an object".into()));
    };
    if obj.contains_key("dataValues") {
        if let Some(Value::Array(a)) = obj.get("dataValues") {
            limits.check_rows(a.len(), "dataValues")?;
        }
        return crate::dhis2::to_submission(&obj, dhis2);
    }
    let field = |name: &str| opt_string(obj.get(name)).map_err(|e| ParseError::Shape(format!("field {name:?} {e}")));
    let submitted_at = match field("submitted_at")? {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(&s)
                .map_err(|_| ParseError::Shape(format!("field \"submitted_at\" {s:?} is not an RFC 3339 time")))?,
        ),
    };
    let version = match obj.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_i64()
                .ok_or_else(|| ParseError::Shape(format!("field \"version\" {n} is not a whole number")))?,
        ),
        Some(Value::String(s)) => Some(
            s.trim()
                .parse()
                .map_err(|_| ParseError::Shape(format!("field \"version\" {s:?} is not a whole number")))?,
        ),
        Some(other) => return Err(ParseError::Shape(format!("field \"version\" is {}", kind(other)))),
    };
    let values = match obj.get("values") {
        Some(Value::Array(a)) => {
            limits.check_rows(a.len(), "value entries")?;
            a.iter().map(json_value).collect()
        }
        None | Some(Value::Null) => return Err(ParseError::Shape("has no \"values\" list".into())),
        Some(other) => {
            return Err(ParseError::Shape(format!(
                "field \"values\" is {}, not a list",
                kind(other)
            )));
        }
    };
    Ok(Submission {
        format: Format::Json,
        encoding: "utf-8",
        township: field("township")?,
        township_name: field("township_name")?,
        program: field("program")?,
        period: field("period")?,
        submitted_at,
        version,
        explanation: field("explanation")?,
        values,
    })
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

fn json_value(v: &Value) -> RawValue {
    let Value::Object(o) = v else {
        return RawValue {
            indicator: None,
            dimension: None,
            category: None,
            value: Cell::Text(v.to_string()),
            problem: Some(format!("value entry is {}, not an object", kind(v))),
        };
    };
    let mut problems = Vec::new();
    let mut text = |name: &str| match opt_string(o.get(name)) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("{name} {e}"));
            None
        }
    };
    let (indicator, dimension, category) = (text("indicator"), text("dimension"), text("category"));
    let value = match o.get("value") {
        None | Some(Value::Null) => Cell::Null,
        Some(Value::Number(n)) => n.as_f64().map(Cell::Number).unwrap_or(Cell::Text(n.to_string())),
        Some(Value::String(s)) => Cell::Text(s.clone()),
        Some(other) => {
            problems.push(format!("value is {}", kind(other)));
            Cell::Text(other.to_string())
        }
    };
    RawValue {
        indicator,
        dimension,
        category,
        value,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// Splits one CSV record (RFC 4180 quoting, no embedded newlines).
fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.trim().is_empty() && !was_quoted => {
                cur.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut cur).trim().to_string());
                was_quoted = false;
            }
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur.trim().to_string());
    Ok(out)
}

/// Splits CSV text into records with the line each starts on (1-based). A
/// newline inside a quoted field (Excel writes one for Alt+Enter) belongs to
/// the field; a quote opens a field only at its start, as in [`csv_fields`].
fn csv_records(text: &str) -> Vec<(usize, &str)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut line, mut start_line) = (0, 1, 1);
    let (mut quoted, mut field_start) = (false, true);
    let mut i = 0;
    while i < b.len() {
        match (quoted, b[i]) {
            (true, b'"') if b.get(i + 1) == Some(&b'"') => i += 1,
            (true, b'"') => quoted = false,
            (true, b'\n') => line += 1,
            (true, _) => {}
            (false, b'"') if field_start => (quoted, field_start) = (true, false),
            (false, b',') => field_start = true,
            (false, b'\n') => {
                out.push((start_line, text[start..i].trim_end_matches('\r')));
                line += 1;
                (start, start_line, field_start) = (i + 1, line, true);
            }
            (false, b' ' | b'\t' | b'\r') => {}
            (false, _) => field_start = false,
        }
        i += 1;
    }
    if start < b.len() {
        out.push((start_line, text[start..].trim_end_matches('\r')));
    }
    out
}

fn parse_csv(text: &str, limits: &ReadLimits) -> Result<Submission, ParseError> {
    let mut lines = csv_records(text).into_iter();
    let (_, header) = lines.next().ok_or(ParseError::Empty)?;
    let cols: Vec<String> = csv_fields(header)
        .map_err(|reason| ParseError::Csv { line: 1, reason })?
        .into_iter()
        .map(|c| c.to_ascii_lowercase())
        .collect();
    limits.check_row_values(cols.len(), "CSV line 1")?;
    let want = ["township", "period", "indicator", "dimension", "category", "value"];
    let idx: Vec<usize> = want
        .iter()
        .map(|w| {
            cols.iter().position(|c| c == w).ok_or_else(|| ParseError::Csv {
                line: 1,
                reason: format!("header has no column {w:?}"),
            })
        })
        .collect::<Result<_, _>>()?;
    let mut sub = Submission::empty(Format::Csv, "utf-8");
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        limits.check_rows(sub.values.len() + 1, "CSV records")?;
        let f = csv_fields(line).map_err(|reason| ParseError::Csv { line: i, reason })?;
        limits.check_row_values(f.len(), &format!("CSV line {i}"))?;
        let get = |k: usize| f.get(idx[k]).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let (township, period) = (get(0), get(1));
        let mut problem = None;
        if sub.values.is_empty() {
            // The first row names the submission's township and period.
            if township
                .as_deref()
                .is_some_and(|t| t.len() == 9 && t.bytes().all(|b| b.is_ascii_digit()))
            {
                sub.township = township.clone();
            } else {
                sub.township_name = township.clone();
            }
            sub.period = period.clone();
        } else if township != sub.township.clone().or(sub.township_name.clone()) || period != sub.period {
            problem = Some(format!(
                "CSV line {i} is for {}/{}, not the submission's township and period",
                township.as_deref().unwrap_or("?"),
                period.as_deref().unwrap_or("?")
            ));
        }
        sub.values.push(RawValue {
            indicator: get(2),
            dimension: get(3),
            category: get(4),
            value: get(5).map(Cell::Text).unwrap_or(Cell::Null),
            problem,
        });
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clip_keeps_short_text_and_says_how_much_it_cut() {
        assert_eq!(super::clip("大墅镇", 3), "大墅镇");
        assert_eq!(super::clip("大墅镇镇镇", 3), "大墅镇…(+2 chars)");
        assert_eq!(
            super::clip(&"x".repeat(3_000_000), 64).len(),
            64 + "…(+2999936 chars)".len()
        );
    }

    use super::*;

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
            assert_eq!(content_type_problem(ok), None, "{ok}");
        }
        for bad in [
            "text/html; charset=utf-8",
            "image/png",
            "application/pdf",
            "application/xml",
        ] {
            let why = content_type_problem(bad).unwrap();
            assert!(why.contains(bad) && why.contains("not a report format"), "{why}");
        }
    }

    #[test]
    fn csv_cells_with_line_breaks_from_excel() {
        // Alt+Enter in a cell: Excel quotes the field and keeps the newline.
        let text = "township,period,indicator,dimension,category,value\r\n\
                    大墅镇,2026-06,\"残疾人证\r\n核发\",,,\"1,774\"\r\n\
                    大墅镇,2026-06,白内障复明手术,,,12\r\n\
                    古河镇,2026-06,白内障复明手术,,,1\r\n";
        let s = parse(text.as_bytes()).unwrap();
        assert_eq!(s.values.len(), 3);
        assert_eq!(s.values[0].indicator.as_deref(), Some("残疾人证\r\n核发"));
        assert_eq!(s.values[0].value, Cell::Text("1,774".into()));
        assert_eq!(s.values[1].value, Cell::Text("12".into()));
        // Line numbers count the physical lines: the third record starts on line 5.
        let p = s.values[2].problem.as_deref().unwrap();
        assert!(p.starts_with("CSV line 5 is for 古河镇/2026-06"), "{p}");
        // A quote in the middle of a field is a character, not a field opener.
        let s = parse("township,period,indicator,dimension,category,value\n大墅镇,2026-06,轮椅,,,5\"\n大墅镇,2026-06,白内障复明手术,,,1\n".as_bytes()).unwrap();
        assert_eq!(s.values.len(), 2);
        let err = parse("township,period,indicator,dimension,category,value\n大墅镇,2026-06,\"未闭合,,,1\n".as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("CSV line 2") && err.contains("unterminated"), "{err}");
    }

    #[test]
    fn utf8_cut_mid_character_says_so() {
        let body = "{\"township\": \"大墅镇\"".as_bytes();
        let cut = &body[..body.len() - 2];
        let err = parse(cut).unwrap_err().to_string();
        assert!(err.contains("cut off"), "{err}");
    }

    #[test]
    fn parses_the_contract_example() {
        let body = r#"{"township":"341124102","township_name":"大墅镇","program":"cdpf-monthly","period":"2026-06",
            "submitted_at":"2026-07-04T09:12:00+08:00","version":1,"explanation":null,
            "values":[{"indicator":"白内障复明手术","value":12},
                      {"indicator":"残疾人证核发","dimension":"类别","category":"视力","value":3},
                      {"indicator":"重度残疾人护理补贴金额","value":"4.5万元"}]}"#;
        let s = parse(body.as_bytes()).unwrap();
        assert_eq!(s.township.as_deref(), Some("341124102"));
        assert_eq!(s.version, Some(1));
        assert_eq!(s.values.len(), 3);
        assert_eq!(s.values[0].value, Cell::Number(12.0));
        assert_eq!(s.values[1].category.as_deref(), Some("视力"));
        assert_eq!(s.values[2].value, Cell::Text("4.5万元".into()));
    }

    #[test]
    fn csv_with_bom_and_quotes() {
        let body = "\u{feff}township,period,indicator,dimension,category,value\n\
                    341124101,2026-06,白内障复明手术,,,5\n\
                    341124101,2026-06,\"残疾人证核发\",类别,视力,\"1,774\"\n\
                    341124109,2026-06,白内障复明手术,,,1\n";
        let s = parse(body.as_bytes()).unwrap();
        assert_eq!(s.format, Format::Csv);
        assert_eq!(s.township.as_deref(), Some("341124101"));
        assert_eq!(s.values[1].value, Cell::Text("1,774".into()));
        assert!(s.values[1].problem.is_none());
        assert!(s.values[2].problem.as_deref().unwrap().contains("not the submission's"));
    }

    #[test]
    fn gbk_utf16_and_bom_csv_are_detected() {
        let text = "township,period,indicator,dimension,category,value\n大墅镇,2026-06,残疾人证核发,类别,视力,3人\n";
        let (gbk, _, bad) = encoding_rs::GB18030.encode(text);
        assert!(!bad);
        assert!(std::str::from_utf8(&gbk).is_err(), "the fixture really is GBK");
        let s = parse(&gbk).unwrap();
        assert_eq!((s.encoding, s.township_name.as_deref()), ("gb18030", Some("大墅镇")));
        assert_eq!(s.values[0].value, Cell::Text("3人".into()));
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.encode_utf16().flat_map(|u| u.to_le_bytes()));
        assert_eq!(parse(&utf16).unwrap().encoding, "utf-16le");
        let bom = [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat();
        assert_eq!(parse(&bom).unwrap().encoding, "utf-8-bom");
    }

    #[test]
    fn bad_documents_get_clear_errors() {
        assert_eq!(parse(b"  \n"), Err(ParseError::Empty));
        assert_eq!(parse(b"<html>"), Err(ParseError::UnknownFormat));
        assert!(matches!(
            parse(b"{\"values\": [1,"),
            Err(ParseError::Json { line: 1, .. })
        ));
        assert!(matches!(parse(b"{\"period\":\"2026-06\"}"), Err(ParseError::Shape(_))));
        assert!(matches!(
            parse(&[0x81, 0x20, b'{']),
            Err(ParseError::NotUtf8 { offset: 0 })
        ));
        let bad_entry = parse(br#"{"values":[{"indicator":{"x":1},"value":[1]}, 7]}"#).unwrap();
        assert!(bad_entry.values.iter().all(|v| v.problem.is_some()));
    }
}
