//! The county's Excel template (`schemas/template.xlsx`), filled in and sent
//! back: one sheet, a header block (乡镇（街道）, 乡镇代码, 报告期, 填报日期,
//! 说明), then a table with indicators as rows (by Chinese name) and the
//! total and breakdown categories as columns. Read with calamine, cell by
//! cell (a sheet that declares cells at A1 and XFD1048576 is two cells, not
//! a 17-billion-cell grid). Before calamine sees the bytes, the zip's declared
//! sizes are checked and then every entry is inflated into a counter that
//! stops at the limit, so a zip bomb — honest or lying about its sizes — is
//! refused before it costs memory.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use chrono::{Duration, NaiveDate, TimeZone};

use crate::submission::{Cell, Format, ParseError, RawValue, ReadLimits, Submission};

/// True when the bytes are a zip archive (xlsx).
pub fn is_xlsx(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Sum of the uncompressed sizes the zip's central directory declares.
fn declared_size(bytes: &[u8]) -> Result<u64, String> {
    let eocd = (0..bytes.len().saturating_sub(21))
        .rev()
        .take(65_557)
        .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))
        .ok_or("not a complete zip archive (no end of central directory)")?;
    let u16_at = |i: usize| bytes.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let entries = u16_at(eocd + 10).ok_or("truncated zip")?;
    let mut at = u32_at(eocd + 16).ok_or("truncated zip")? as usize;
    let mut total = 0u64;
    for _ in 0..entries {
        if !bytes.get(at..).is_some_and(|b| b.starts_with(b"PK\x01\x02")) {
            return Err("corrupt zip central directory".into());
        }
        total += u64::from(u32_at(at + 24).ok_or("truncated zip")?);
        let (n, m, k) = (
            u16_at(at + 28).ok_or("truncated zip")? as usize,
            u16_at(at + 30).ok_or("truncated zip")? as usize,
            u16_at(at + 32).ok_or("truncated zip")? as usize,
        );
        at += 46 + n + m + k;
    }
    Ok(total)
}

/// Inflates every entry, stopping as soon as the total passes `limit` (the
/// true size, whatever the directory declares), and checks the cell
/// references in its XML parts (see [`bad_reference`]).
fn inflate_and_scan(bytes: &[u8], limit: u64) -> Result<u64, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut total = 0u64;
    let mut buf = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let xml = entry.name().map_or(true, |n| n.ends_with(".xml"));
        let room = limit.saturating_sub(total) + 1;
        buf.clear();
        total += entry.take(room).read_to_end(&mut buf).map_err(|e| e.to_string())? as u64;
        if total > limit {
            return Err(format!(
                "inflates to more than the {limit}-byte limit (its directory declares less)"
            ));
        }
        if xml && let Some((r, why)) = bad_reference(&buf) {
            return Err(format!("cell reference {r:?} {why}"));
        }
    }
    Ok(total)
}

/// How calamine reads one cell reference: the leading letters (column) and
/// the digits right after them (row), counted even when junk follows (it
/// multiplies before it sees the junk), and the 1-based (column, row) when
/// the part is letters then digits and nothing else.
fn cell_ref(part: &[u8]) -> (usize, usize, Option<(u64, u64)>) {
    let letters = part.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    let digits = part[letters..].iter().take_while(|b| b.is_ascii_digit()).count();
    let whole = letters > 0 && digits > 0 && letters + digits == part.len() && letters <= 3 && digits <= 7;
    let pos = whole.then(|| {
        let col = part[..letters]
            .iter()
            .fold(0u64, |c, b| c * 26 + u64::from(b.to_ascii_uppercase() - b'A') + 1);
        let row = part[letters..].iter().fold(0u64, |r, b| r * 10 + u64::from(b - b'0'));
        (col, row)
    });
    (letters, digits, pos)
}

/// The first `r="…"` or `ref="…"` attribute calamine would overflow on, with
/// why: a cell reference over 3 column letters or 7 row digits (Excel stops
/// at XFD1048576), or a range whose end is above or left of its start
/// (`AA1:N30`). Excel writes neither; calamine 0.38 panics on both (found by
/// the fuzz targets), so they are refused before calamine reads the sheet.
fn bad_reference(xml: &[u8]) -> Option<(String, &'static str)> {
    let ws = |b: u8| b.is_ascii_whitespace();
    let mut i = 0;
    while i < xml.len() {
        if !ws(xml[i]) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        i += 1;
        if xml[j..].starts_with(b"ref") {
            j += 3;
        } else if xml[j..].starts_with(b"r") {
            j += 1;
        } else {
            continue;
        }
        while j < xml.len() && ws(xml[j]) {
            j += 1;
        }
        if xml.get(j) != Some(&b'=') {
            continue;
        }
        j += 1;
        while j < xml.len() && ws(xml[j]) {
            j += 1;
        }
        let Some(&q) = xml.get(j).filter(|&&q| q == b'"' || q == b'\'') else {
            continue;
        };
        let start = j + 1;
        let end = xml[start..]
            .iter()
            .position(|&b| b == q)
            .map_or(xml.len(), |n| start + n);
        let value = &xml[start..end];
        let shown = || String::from_utf8_lossy(&value[..value.len().min(40)]).into_owned();
        let parts: Vec<_> = value.split(|&b| b == b':').map(cell_ref).collect();
        if parts.iter().any(|&(letters, digits, _)| letters > 3 || digits > 7) {
            return Some((shown(), "is outside any worksheet (Excel stops at XFD1048576)"));
        }
        if let [(_, _, Some((c0, r0))), (_, _, Some((c1, r1)))] = parts[..]
            && (c1 < c0 || r1 < r0)
        {
            return Some((shown(), "is a range that ends before it starts"));
        }
        i = end;
    }
    None
}

fn cell_text(d: &Data) -> Option<String> {
    match d {
        Data::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) => Some(crate::submission::format_number(*f)),
        Data::DateTimeIso(s) => Some(s.clone()),
        Data::DateTime(dt) => {
            let day = NaiveDate::from_ymd_opt(1899, 12, 30)? + Duration::days(dt.as_f64().floor() as i64);
            Some(day.format("%Y-%m-%d").to_string())
        }
        _ => None,
    }
}

/// A period written in a header cell: 2026-06, 2026年6月, 2026/6, or a date Excel made of it.
fn period_of(s: &str) -> String {
    let digits: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .collect();
    match (digits.first(), digits.get(1)) {
        (Some(y), Some(m)) if y.len() == 4 && m.len() <= 2 && !s.contains(['Q', 'q', 'H', 'h']) => {
            format!("{y}-{:0>2}", m)
        }
        _ => s.to_string(),
    }
}

/// Filled cells of the first sheet by row, then column (0-based).
fn read_cells(bytes: &[u8], limits: &ReadLimits) -> Result<BTreeMap<u32, BTreeMap<u32, Data>>, ParseError> {
    let bad = ParseError::Xlsx;
    let mut wb: Xlsx<_> =
        open_workbook_from_rs(Cursor::new(bytes)).map_err(|e: calamine::XlsxError| bad(e.to_string()))?;
    let sheet = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| bad("the workbook has no sheet".into()))?;
    let mut grid: BTreeMap<u32, BTreeMap<u32, Data>> = BTreeMap::new();
    {
        let mut cells = wb.worksheet_cells_reader(&sheet).map_err(|e| bad(e.to_string()))?;
        while let Some(cell) = cells.next_cell().map_err(|e| bad(e.to_string()))? {
            let value = Data::from(cell.get_value().clone());
            if value == Data::Empty {
                continue;
            }
            let (r, c) = cell.get_position();
            if c as usize >= FAR_RIGHT {
                return Err(bad(format!(
                    "a value at row {}, column {} lies far outside the template's table",
                    r + 1,
                    c + 1
                )));
            }
            let row = grid.entry(r).or_default();
            row.insert(c, value);
            limits.check_row_values(row.len(), &format!("sheet row {}", r + 1))?;
            limits.check_rows(grid.len(), "sheet rows")?;
        }
    }
    Ok(grid)
}

/// Columns beyond this are no part of any template (the county's has a
/// dozen); a value out there is an error, not a reason to allocate.
const FAR_RIGHT: usize = 1024;

/// Parses a filled-in template with the default limits.
pub fn parse(bytes: &[u8]) -> Result<Submission, ParseError> {
    parse_limited(bytes, &ReadLimits::default())
}

/// Parses a filled-in template.
pub fn parse_limited(bytes: &[u8], limits: &ReadLimits) -> Result<Submission, ParseError> {
    let bad = ParseError::Xlsx;
    let max = limits.max_uncompressed_bytes;
    let size = declared_size(bytes).map_err(bad)?;
    if size > max {
        return Err(ParseError::OverLimit(format!(
            "the .xlsx inflates to {size} bytes, over the {max}-byte limit"
        )));
    }
    inflate_and_scan(bytes, max).map_err(|e| match e.starts_with("inflates") {
        true => ParseError::OverLimit(format!("the .xlsx {e}")),
        false => bad(e),
    })?;
    // calamine is third-party code reading hostile bytes: a panic in it is
    // one more unreadable workbook, not a crashed run.
    let grid = std::panic::catch_unwind(|| read_cells(bytes, limits)).unwrap_or_else(|_| {
        Err(bad(
            "the workbook could not be read (the xlsx reader failed on it)".into()
        ))
    })?;
    // Dense rows from column A, as the template lays them out.
    let dense: Vec<Vec<Data>> = grid
        .values()
        .map(|cells| {
            let mut row = Vec::new();
            for (&c, d) in cells {
                row.resize(c as usize, Data::Empty);
                row.push(d.clone());
            }
            row
        })
        .collect();
    let rows: Vec<&[Data]> = dense.iter().map(Vec::as_slice).collect();
    let mut sub = Submission::empty(Format::Xlsx, "xlsx");
    let header_row = rows
        .iter()
        .position(|r| r.first().and_then(cell_text).is_some_and(|t| t.contains("指标")))
        .ok_or_else(|| bad("no table header row starting with 指标".into()))?;
    // Header block: label cells followed by their value.
    for r in &rows[..header_row] {
        let cells: Vec<Option<String>> = r.iter().map(cell_text).collect();
        for (i, c) in cells.iter().enumerate() {
            let Some(label) = c else { continue };
            // The value is the cell right of its label.
            let Some(Some(value)) = cells.get(i + 1).cloned() else {
                continue;
            };
            if label.contains("代码") {
                sub.township = Some(value);
            } else if label.contains("乡镇") || label.contains("街道") {
                sub.township_name = Some(value);
            } else if label.contains("报告期") || label.contains("期别") {
                sub.period = Some(period_of(&value));
            } else if label.contains("填报日期") {
                sub.submitted_at = NaiveDate::parse_from_str(&value, "%Y-%m-%d").ok().and_then(|d| {
                    crate::period::china()
                        .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
                        .single()
                });
            } else if label.contains("说明") {
                sub.explanation = Some(value);
            } else if label.contains("版本") {
                sub.version = value.parse().ok();
            }
        }
    }
    let columns: Vec<Option<String>> = rows[header_row].iter().map(cell_text).collect();
    for r in &rows[header_row + 1..] {
        let Some(indicator) = r.first().and_then(cell_text) else {
            continue;
        };
        for (i, d) in r.iter().cloned().enumerate().skip(1) {
            let Some(col) = columns.get(i).cloned().flatten() else {
                continue;
            };
            if col.contains("单位") || col.contains("备注") {
                continue;
            }
            let value = match d {
                Data::Empty => continue,
                Data::Int(n) => Cell::Number(n as f64),
                Data::Float(f) => Cell::Number(f),
                other => match cell_text(&other) {
                    Some(t) => Cell::Text(t.into()),
                    None => Cell::Text(format!("{other:?}").into()),
                },
            };
            let total = col.contains("合计") || col.contains("总数");
            sub.values.push(RawValue {
                indicator: Some(indicator.as_str().into()),
                dimension: None,
                category: (!total).then(|| col.into()),
                value,
                problem: None,
            });
        }
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_template_is_readable_and_empty() {
        let s = parse(include_bytes!("../../../schemas/template.xlsx")).unwrap();
        assert!(s.values.is_empty(), "an unfilled template has no values");
    }

    const TEMPLATE: &[u8] = include_bytes!("../../../schemas/template.xlsx");

    /// The shipped template with its parts rewritten by `edit` (name, bytes).
    fn rezip(edit: impl Fn(&str, Vec<u8>) -> Vec<u8>) -> Vec<u8> {
        let mut zin = zip::ZipArchive::new(Cursor::new(TEMPLATE)).unwrap();
        let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for i in 0..zin.len() {
            let mut e = zin.by_index(i).unwrap();
            let name = e.name().unwrap().to_string();
            let mut buf = Vec::new();
            e.read_to_end(&mut buf).unwrap();
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            out.start_file(name.as_str(), opts).unwrap();
            std::io::Write::write_all(&mut out, &edit(&name, buf)).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    fn sheet_edit(find: &'static str, put: String) -> impl Fn(&str, Vec<u8>) -> Vec<u8> {
        move |name: &str, b: Vec<u8>| {
            if name == "xl/worksheets/sheet1.xml" {
                let t = String::from_utf8(b).unwrap();
                assert!(t.contains(find), "template sheet has {find}");
                t.replacen(find, &put, 1).into_bytes()
            } else {
                b
            }
        }
    }

    #[test]
    fn rezipped_template_still_reads() {
        let s = parse(&rezip(|_, b| b)).unwrap();
        assert_eq!(s.format, Format::Xlsx);
    }

    #[test]
    fn overflowing_cell_reference_is_refused_not_a_panic() {
        // calamine's reference parser overflows on 7+ column letters (found by
        // the xlsx fuzz target); it never gets to see one.
        let z = rezip(sheet_edit("r=\"A1\"", "r=\"AAAAAAAAAAAA1\"".into()));
        let err = parse(&z).unwrap_err().to_string();
        assert!(
            err.contains("outside any worksheet") && err.contains("AAAAAAAAAAAA1"),
            "{err}"
        );
        let z = rezip(sheet_edit("r=\"A1\"", "r = 'A99999999999'".into()));
        assert!(parse(&z).unwrap_err().to_string().contains("outside any worksheet"));
        // The fuzzer's own input (a mutated template) is refused too.
        assert!(parse(include_bytes!("../tests/data/fuzz-overflowing-cell-ref.xlsx")).is_err());
    }

    #[test]
    fn backwards_range_is_refused_not_a_panic() {
        // calamine subtracts the start from the end of the sheet's dimension
        // (found by the xlsx_sheet fuzz target).
        let z = rezip(sheet_edit("<dimension ref=\"A1", "<dimension ref=\"AA1".into()));
        let err = parse(&z).unwrap_err().to_string();
        assert!(err.contains("ends before it starts"), "{err}");
        assert!(
            parse(include_bytes!("../tests/data/fuzz-backwards-dimension.xlsx")).is_err(),
            "the fuzzer's own input"
        );
        // Forward ranges and single cells are fine.
        assert_eq!(bad_reference(b"<dimension ref=\"A1:N30\"/><c r=\"B2\">"), None);
        assert_eq!(bad_reference(b"<x r=\"$A$1:$B$2\"/>"), None);
        // Letters followed by junk still overflow calamine's column (fuzz find #3).
        assert!(bad_reference(b"<sheetView ref=\"A1:NbookViewId=\"0\">").is_some());
        assert!(parse(include_bytes!("../tests/data/fuzz-letters-then-junk.xlsx")).is_err());
    }

    #[test]
    fn far_away_cell_is_an_error_not_a_huge_grid() {
        // A1 plus XFD1048576 would be a 17-billion-cell range for calamine.
        let far = r#"<c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c>"#;
        let z = rezip(sheet_edit(
            "</sheetData>",
            format!(r#"<row r="1048576">{far}</row></sheetData>"#),
        ));
        let err = parse(&z).unwrap_err().to_string();
        assert!(err.contains("far outside the template"), "{err}");
    }

    #[test]
    fn lying_zip_bomb_is_counted_not_trusted() {
        let limits = ReadLimits {
            max_uncompressed_bytes: 1024 * 1024,
            ..ReadLimits::default()
        };
        let big = |name: &str, b: Vec<u8>| match name {
            "docProps/app.xml" => vec![b' '; 4 * 1024 * 1024],
            _ => b,
        };
        let honest = rezip(big);
        let err = parse_limited(&honest, &limits).unwrap_err().to_string();
        assert!(err.contains("over the 1048576-byte limit"), "{err}");
        // The same archive with every directory entry claiming 10 bytes.
        let mut lying = honest.clone();
        let mut at = 0;
        while let Some(p) = lying[at..].windows(4).position(|w| w == b"PK\x01\x02") {
            let h = at + p;
            lying[h + 24..h + 28].copy_from_slice(&10u32.to_le_bytes());
            at = h + 4;
        }
        let err = parse_limited(&lying, &limits).unwrap_err().to_string();
        // zip itself stops at the declared size; the counter is the second line.
        assert!(err.contains("declare"), "{err}");
        assert!(parse(&honest).is_ok(), "within the default limit it reads");
    }

    #[test]
    fn rows_and_values_per_row_are_limited() {
        let filled = include_bytes!("../../../tests/cases/xlsx-template/input.xlsx");
        assert!(parse(filled).is_ok());
        let few = ReadLimits {
            max_row_values: 2,
            ..ReadLimits::default()
        };
        let err = parse_limited(filled, &few).unwrap_err().to_string();
        assert!(
            err.starts_with("over a limit: sheet row") && err.contains("at most 2"),
            "{err}"
        );
        let short = ReadLimits {
            max_rows: 3,
            ..ReadLimits::default()
        };
        let err = parse_limited(filled, &short).unwrap_err().to_string();
        assert!(err.contains("at most 3 rows"), "{err}");
    }

    #[test]
    fn not_a_zip_or_a_bomb_is_refused() {
        assert!(parse(b"PK\x03\x04garbage").is_err());
        // A central directory claiming 4 GiB.
        let mut z = b"PK\x03\x04".to_vec();
        let cd = z.len();
        z.extend(b"PK\x01\x02");
        z.extend([0u8; 20]);
        z.extend(u32::MAX.to_le_bytes());
        z.extend([0u8; 18]);
        z.extend(b"PK\x05\x06\0\0\0\0\x01\0\x01\0");
        z.extend(46u32.to_le_bytes());
        z.extend((cd as u32).to_le_bytes());
        z.extend([0u8; 2]);
        let err = parse(&z).unwrap_err().to_string();
        assert!(err.contains("over the"), "{err}");
    }
}
