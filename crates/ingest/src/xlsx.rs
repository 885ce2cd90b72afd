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

/// Inflates every entry into a counter, stopping as soon as the total passes
/// `limit`: the true size, whatever the directory declares.
fn inflated_size(bytes: &[u8], limit: u64) -> Result<u64, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index(i).map_err(|e| e.to_string())?;
        let room = limit.saturating_sub(total) + 1;
        total += std::io::copy(&mut entry.take(room), &mut std::io::sink()).map_err(|e| e.to_string())?;
        if total > limit {
            return Err(format!(
                "inflates to more than the {limit}-byte limit (its directory declares less)"
            ));
        }
    }
    Ok(total)
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

/// Columns beyond this are no part of any template (the county's has a
/// dozen); a value out there is an error, not a reason to allocate.
const FAR_RIGHT: usize = 1024;

/// Parses a filled-in template with the default limits.
pub fn parse(bytes: &[u8]) -> Result<Submission, ParseError> {
    parse_limited(bytes, &ReadLimits::default())
}

/// Parses a filled-in template.
pub fn parse_limited(bytes: &[u8], limits: &ReadLimits) -> Result<Submission, ParseError> {
    let bad = |m: String| ParseError::Shape(format!("(xlsx) {m}"));
    let max = limits.max_uncompressed_bytes;
    let size = declared_size(bytes).map_err(bad)?;
    if size > max {
        return Err(ParseError::OverLimit(format!(
            "the .xlsx inflates to {size} bytes, over the {max}-byte limit"
        )));
    }
    inflated_size(bytes, max).map_err(|e| match e.starts_with("inflates") {
        true => ParseError::OverLimit(format!("the .xlsx {e}")),
        false => bad(e),
    })?;
    let mut wb: Xlsx<_> =
        open_workbook_from_rs(Cursor::new(bytes)).map_err(|e: calamine::XlsxError| bad(e.to_string()))?;
    let sheet = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| bad("the workbook has no sheet".into()))?;
    // Filled cells by row, then column; rows and columns start at 0.
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
    let mut sub = Submission {
        format: Format::Xlsx,
        encoding: "xlsx",
        township: None,
        township_name: None,
        program: None,
        period: None,
        submitted_at: None,
        version: None,
        explanation: None,
        values: Vec::new(),
    };
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
                    Some(t) => Cell::Text(t),
                    None => Cell::Text(format!("{other:?}")),
                },
            };
            let total = col.contains("合计") || col.contains("总数");
            sub.values.push(RawValue {
                indicator: Some(indicator.clone()),
                dimension: None,
                category: (!total).then_some(col),
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
