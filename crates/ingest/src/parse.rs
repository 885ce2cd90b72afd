//! Parsing: the landed bytes of a submission (JSON, CSV, the Excel template
//! or a DHIS2 data value set) into a [`Submission`]. Lenient per value (a bad
//! entry is kept and quarantined later with its reason), strict per document
//! (unreadable bytes are one clear error). Pure: bytes in, struct out.

use chrono::DateTime;
use serde_json::Value;

use crate::submission::{Cell, Format, ParseError, RawValue, ReadLimits, Submission, decode};

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

/// What a program's bodies are: forms (the wire contract's JSON, CSV, the
/// Excel template, DHIS2) or documents (work summaries, .txt or .docx, whose
/// values the extractor reads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A form in any of the wire contract's formats.
    #[default]
    Submission,
    /// A work summary (工作总结) as plain text or .docx.
    Document,
}

/// Parses a landed body of a program whose bodies are `kind`.
pub fn parse_body(
    kind: SourceKind,
    bytes: &[u8],
    catalog: &crate::catalog::Catalog,
    dhis2: &crate::dhis2::Mapping,
    limits: &ReadLimits,
) -> Result<Submission, ParseError> {
    match kind {
        SourceKind::Submission => parse_with(bytes, dhis2, limits),
        SourceKind::Document => parse_document(bytes, catalog, limits),
    }
}

/// Parses a work summary: its text ([`crate::document::read`]) and the
/// values the extractor finds in it ([`crate::extract::extract`]). Each
/// achievement becomes a value (indicator code, breakdown, the value as
/// written) with its mention beside it; stated quotas are kept apart. The
/// header fields are empty: who and when come from where it was fetched.
pub fn parse_document(
    bytes: &[u8],
    catalog: &crate::catalog::Catalog,
    limits: &ReadLimits,
) -> Result<Submission, ParseError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let doc = crate::document::read(bytes).map_err(ParseError::Document)?;
    let (format, encoding) = match doc.format {
        "docx" => (Format::Docx, "utf-8"),
        encoding => (Format::Text, encoding),
    };
    let mut sub = Submission::empty(format, encoding);
    let (mentions, quotas): (Vec<_>, Vec<_>) = crate::extract::extract(&doc.text, catalog)
        .into_iter()
        .partition(|m| m.kind == crate::extract::MentionKind::Achievement);
    limits.check_rows(mentions.len() + quotas.len(), "values found in the document")?;
    sub.values = mentions
        .iter()
        .map(|m| RawValue {
            indicator: Some(m.indicator.clone()),
            dimension: m.dimension.clone(),
            category: m.category.clone(),
            value: Cell::Text(m.text.clone()),
            problem: None,
        })
        .collect();
    sub.mentions = mentions;
    sub.stated_quotas = quotas;
    Ok(sub)
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
        mentions: vec![],
        stated_quotas: vec![],
    })
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
    use super::*;

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
