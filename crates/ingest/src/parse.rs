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
            indicator: Some(m.indicator.as_str().into()),
            dimension: m.dimension.as_deref().map(Into::into),
            category: m.category.as_deref().map(Into::into),
            value: Cell::Text(m.text.as_str().into()),
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
    if let Some(sub) = fast::read(text) {
        limits.check_rows(sub.values.len(), "value entries")?;
        return Ok(sub);
    }
    parse_json_careful(text, dhis2, limits)
}

/// Reads any JSON document: a DHIS2 data value set, or the wire contract's
/// report with whatever types its fields have (each mistake said).
fn parse_json_careful(
    text: &str,
    dhis2: &crate::dhis2::Mapping,
    limits: &ReadLimits,
) -> Result<Submission, ParseError> {
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
            value: Cell::Text(v.to_string().into()),
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
        Some(Value::Number(n)) => n.as_f64().map(Cell::Number).unwrap_or(Cell::Text(n.to_string().into())),
        Some(Value::String(s)) => Cell::Text(s.as_str().into()),
        Some(other) => {
            problems.push(format!("value is {}", kind(other)));
            Cell::Text(other.to_string().into())
        }
    };
    RawValue {
        indicator: indicator.map(Into::into),
        dimension: dimension.map(Into::into),
        category: category.map(Into::into),
        value,
        problem: (!problems.is_empty()).then(|| problems.join("; ")),
    }
}

/// The wire contract's JSON report as it almost always arrives, read
/// straight into a [`Submission`] (no `serde_json::Value` tree: a third of
/// the time). Text fields text or null, values numbers, text or null, every
/// entry an object, every key once and known. Anything else (a DHIS2 set,
/// a label written as a number, a key twice, an unknown key, an unreadable
/// time) is `None`, and
/// [`parse_json_careful`] reads the document and says what is wrong with it.
/// For every document this reads, the careful path reads the same
/// submission (tested on generated documents, well formed and not).
mod fast {
    use std::fmt;

    use chrono::DateTime;
    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    use crate::submission::{Cell, CompactString, Format, RawValue, Submission};

    pub(super) fn read(text: &str) -> Option<Submission> {
        let doc: Doc = serde_json::from_str(text).ok()?;
        let submitted_at = match doc.submitted_at.0 {
            None => None,
            Some(s) => Some(DateTime::parse_from_rfc3339(&s).ok()?),
        };
        Some(Submission {
            format: Format::Json,
            encoding: "utf-8",
            township: doc.township.0.map(String::from),
            township_name: doc.township_name.0.map(String::from),
            program: doc.program.0.map(String::from),
            period: doc.period.0.map(String::from),
            submitted_at,
            version: doc.version.0,
            explanation: doc.explanation.0.map(String::from),
            values: doc
                .values?
                .into_iter()
                .map(|Object(e)| RawValue {
                    indicator: e.indicator.0,
                    dimension: e.dimension.0,
                    category: e.category.0,
                    value: e.value.0,
                    problem: None,
                })
                .collect(),
            mentions: vec![],
            stated_quotas: vec![],
        })
    }

    /// Unknown keys (`dataValues` among them) are left to the careful path:
    /// skipping one is not reading it (`1e400` there is unreadable JSON).
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        #[serde(default)]
        township: Text,
        #[serde(default)]
        township_name: Text,
        #[serde(default)]
        program: Text,
        #[serde(default)]
        period: Text,
        #[serde(default)]
        submitted_at: Text,
        #[serde(default)]
        version: Version,
        #[serde(default)]
        explanation: Text,
        #[serde(default)]
        values: Option<Vec<Object<Entry>>>,
    }

    /// A JSON object only (derived structs also read `[...]`, by position).
    struct Object<T>(T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<T>(std::marker::PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
                type Value = Object<T>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                    T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Object)
                }
            }
            d.deserialize_map(V(std::marker::PhantomData))
        }
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        #[serde(default)]
        indicator: Text,
        #[serde(default)]
        dimension: Text,
        #[serde(default)]
        category: Text,
        #[serde(default)]
        value: Value,
    }

    /// Text or null; trimmed, and nothing when blank.
    #[derive(Default)]
    struct Text(Option<CompactString>);

    impl<'de> Deserialize<'de> for Text {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Text;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("text or null")
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
                    let s = s.trim();
                    Ok(Text((!s.is_empty()).then(|| CompactString::from(s))))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                    Ok(Text(None))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A value: a number, text as written, or nothing.
    struct Value(Cell);

    impl Default for Value {
        fn default() -> Self {
            Value(Cell::Null)
        }
    }

    impl<'de> Deserialize<'de> for Value {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Value;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a number, text or null")
                }
                fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
                    Ok(Value(Cell::Number(n)))
                }
                fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
                    Ok(Value(Cell::Number(n as f64)))
                }
                fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
                    Ok(Value(Cell::Number(n as f64)))
                }
                fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
                    Ok(Value(Cell::Text(s.into())))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                    Ok(Value(Cell::Null))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A whole number or null.
    #[derive(Default)]
    struct Version(Option<i64>);

    impl<'de> Deserialize<'de> for Version {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Version;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a whole number or null")
                }
                fn visit_i64<E: de::Error>(self, n: i64) -> Result<Version, E> {
                    Ok(Version(Some(n)))
                }
                fn visit_u64<E: de::Error>(self, n: u64) -> Result<Version, E> {
                    i64::try_from(n)
                        .map(|n| Version(Some(n)))
                        .map_err(|_| E::custom("out of range"))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Version, E> {
                    Ok(Version(None))
                }
            }
            d.deserialize_any(V)
        }
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
            indicator: get(2).map(Into::into),
            dimension: get(3).map(Into::into),
            category: get(4).map(Into::into),
            value: get(5).map(|t| Cell::Text(t.into())).unwrap_or(Cell::Null),
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

    /// A JSON fragment for a field: any type, and text with blanks, escapes
    /// and Chinese around it.
    fn any_json() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("\"\"".to_string()),
            Just("\"  \"".to_string()),
            Just("\" 110101001 \"".to_string()),
            Just("\"\\u5927\\u5885\\u9547\\n\"".to_string()),
            Just("\"2026-06-30T18:00:00+08:00\"".to_string()),
            Just("\"2026-06-31\"".to_string()),
            Just("\"1.2万元\"".to_string()),
            Just("\"3\"".to_string()),
            Just("[]".to_string()),
            Just("{\"a\":[1,{}]}".to_string()),
            Just("18446744073709551615".to_string()),
            Just("9223372036854775807".to_string()),
            Just("-0.0".to_string()),
            Just("1e400".to_string()),
            (-1_000_000i64..1_000_000).prop_map(|n| n.to_string()),
            (-1e9f64..1e9).prop_map(|x| format!("{x:?}")),
            (0u32..1000, 0u32..4).prop_map(|(n, e)| format!("{n}.5e-{e}")),
        ]
    }

    /// An object of some of `keys` in order, each mostly written as its
    /// `good` JSON, now and then as any JSON; now and then a key twice or
    /// an unknown key.
    fn object(
        keys: &'static [(&'static str, &'static [&'static str])],
    ) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let field = |(k, good): (&'static str, &'static [&'static str])| {
            let value = prop_oneof![
                8 => proptest::sample::select(good).prop_map(str::to_string),
                1 => any_json(),
            ];
            (proptest::bool::weighted(0.7), value, proptest::bool::weighted(0.7)).prop_map(move |(there, v, sp)| {
                there.then(|| {
                    if sp {
                        format!("\"{k}\": {v}")
                    } else {
                        format!("\"{k}\":{v}")
                    }
                })
            })
        };
        let fields: Vec<_> = keys.iter().map(|&k| field(k)).collect();
        let extra = proptest::option::weighted(
            0.08,
            prop_oneof![
                Just(format!("\"{}\": 1", keys[0].0)),
                Just("\"unknown\": 1".to_string()),
                Just("\"unknown\": 1e400".to_string()),
                Just("\"dataValues\": []".to_string()),
            ],
        );
        (fields, extra).prop_map(|(fields, extra)| {
            let fields: Vec<String> = fields.into_iter().flatten().chain(extra).collect();
            format!("{{{}}}", fields.join(","))
        })
    }

    /// Documents shaped like the wire contract's report, fields of every
    /// type, entries not always objects, sometimes a DHIS2 key.
    fn document() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        const LABEL: &[&str] = &[
            "\"视力残疾\"",
            "\" 辅具适配 \"",
            "\"肢体\"",
            "null",
            "\"\"",
            "\"\\u8f85\\u5177\"",
        ];
        const VALUE: &[&str] = &[
            "12",
            "-3",
            "0.5",
            "1.5e3",
            "\"3人\"",
            "\" 1.2万 \"",
            "null",
            "\"\"",
            "\"——\"",
        ];
        const ENTRY: &[(&str, &[&str])] = &[
            ("indicator", LABEL),
            ("dimension", LABEL),
            ("category", LABEL),
            ("value", VALUE),
        ];
        const HEADER: &[(&str, &[&str])] = &[
            ("township", &["\"110101001\"", "\" 110101002\""]),
            ("township_name", &["\"东华门街道\"", "null"]),
            ("program", &["\"cdpf-monthly\""]),
            ("period", &["\"2026-06\"", "\"2026年6月\""]),
            (
                "submitted_at",
                &["\"2026-07-03T10:00:00+08:00\"", "\"2026-07-03T02:00:00Z\"", "null"],
            ),
            ("version", &["1", "2", "null"]),
            ("explanation", &["\"系统故障，强制上报\"", "null", "\"  \""]),
        ];
        let entry = prop_oneof![
            12 => object(ENTRY),
            1 => any_json(),
        ];
        let values = prop_oneof![
            12 => proptest::collection::vec(entry, 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            1 => any_json(),
        ];
        (
            object(HEADER),
            proptest::option::weighted(0.95, values),
            proptest::bool::ANY,
        )
            .prop_map(|(header, values, first)| {
                let inner = header.trim_start_matches('{').trim_end_matches('}').to_string();
                let mut fields: Vec<String> = (!inner.is_empty()).then_some(inner).into_iter().collect();
                if let Some(v) = values {
                    let v = format!("\"values\": {v}");
                    if first { fields.insert(0, v) } else { fields.push(v) }
                }
                format!("{{{}}}", fields.join(",\n "))
            })
    }

    /// Whatever the fast path reads, the careful path reads the same; and
    /// the fast path reads a good share of the generated documents (the
    /// comparison is not vacuous).
    #[test]
    fn the_fast_path_reads_what_the_careful_path_reads() {
        use proptest::strategy::{Strategy, ValueTree};
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut fast_read, cases) = (0, 4000);
        for _ in 0..cases {
            let text = document().new_tree(&mut runner).expect("a document").current();
            if let Some(fast) = fast::read(&text) {
                fast_read += 1;
                let careful = parse_json_careful(&text, &crate::dhis2::Mapping::default(), &ReadLimits::default());
                assert_eq!(Ok(fast), careful, "{text}");
            }
        }
        assert!(fast_read > cases / 10, "the fast path read {fast_read} of {cases}");
    }

    #[test]
    fn the_contract_report_is_read_by_the_fast_path_and_odd_ones_by_the_careful_one() {
        let report = r#"{"township":"110101001","township_name":"东华门街道","program":"cdpf-monthly","period":"2026-06",
            "submitted_at":"2026-07-03T10:00:00+08:00","version":2,"explanation":null,
            "values":[{"indicator":"辅具适配","value":12},{"indicator":"残疾人证核发","category":"视力","value":"3人"},
                      {"indicator":"慰问金","value":1.5e3},{"indicator":"走访慰问","value":null},{"indicator":"接待来访"}]}"#;
        let fast = fast::read(report).expect("the contract's report is read by the fast path");
        assert_eq!(fast.values.len(), 5);
        assert_eq!(fast.values[2].value, Cell::Number(1500.0));
        assert_eq!(fast.values[4].value, Cell::Null);
        assert_eq!(
            Ok(fast),
            parse_json_careful(report, &Default::default(), &ReadLimits::default())
        );
        // Each of these is left to the careful path, which reads it (or says
        // why it cannot).
        for odd in [
            r#"{"township":110101001,"values":[]}"#,
            r#"{"values":[{"indicator":"辅具适配","value":true}]}"#,
            r#"{"values":[{"indicator":"辅具适配","value":1,"value":2}]}"#,
            r#"{"values":[7]}"#,
            r#"{"version":"2","values":[]}"#,
            r#"{"version":2.5,"values":[]}"#,
            r#"{"submitted_at":"yesterday","values":[]}"#,
            r#"{"dataValues":null,"values":[]}"#,
            r#"{"values":null}"#,
        ] {
            assert!(fast::read(odd).is_none(), "{odd}");
        }
        let over = ReadLimits {
            max_rows: 4,
            ..ReadLimits::default()
        };
        assert!(matches!(
            parse_with(report.as_bytes(), &Default::default(), &over),
            Err(ParseError::OverLimit(_))
        ));
    }
}
