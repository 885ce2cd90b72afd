//! Documents written as prose (工作总结): plain text in any encoding a county
//! uses, or a Word .docx, read to one text whose character offsets the
//! extractor reports. A .docx is read straight from its zip (the paragraphs
//! of `word/document.xml`, one line each): no external converter. Pure and
//! panic-free on any bytes.

use std::io::{Cursor, Read};

use crate::submission::decode;

/// Bytes a .docx's document part may inflate to.
pub const MAX_DOCUMENT_BYTES: u64 = 32 * 1024 * 1024;

/// A document as text, and what it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The text: paragraphs separated by `\n`.
    pub text: String,
    /// `docx`, or the encoding of a text file (utf-8, gb18030, …).
    pub format: &'static str,
}

/// Reads a document's bytes: a .docx (zip signature) or text.
pub fn read(bytes: &[u8]) -> Result<Document, String> {
    if bytes.starts_with(b"PK\x03\x04") {
        return docx(bytes).map(|text| Document { text, format: "docx" });
    }
    if let Some(what) = not_a_summary(bytes) {
        return Err(what.to_string());
    }
    let (text, encoding) = decode(bytes).map_err(|e| e.to_string())?;
    // GB18030 decodes almost any bytes; text has no control characters
    // besides tabs, line and page breaks.
    let controls = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\u{c}'))
        .count();
    if controls > 0 {
        return Err(format!(
            "binary data, not text ({controls} control characters); taizhang reads work summaries as .txt or .docx"
        ));
    }
    Ok(Document {
        text: text.replace("\r\n", "\n").replace('\r', "\n"),
        format: encoding,
    })
}

/// What the bytes are when they are a file people send instead of a
/// summary taizhang reads: the reason, naming what to send instead.
fn not_a_summary(bytes: &[u8]) -> Option<&'static str> {
    let head: Vec<u8> = bytes
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take(16)
        .map(u8::to_ascii_lowercase)
        .collect();
    if head.starts_with(b"%pdf-") {
        Some("a PDF document; taizhang reads work summaries as .txt or .docx (save it as .docx)")
    } else if bytes.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        Some("a Word 97-2003 .doc (or another OLE file); taizhang reads .docx (save it as .docx)")
    } else if head.starts_with(b"<!doctype html") || head.starts_with(b"<html") {
        Some("an HTML page, not a work summary")
    } else {
        None
    }
}

fn docx(bytes: &[u8]) -> Result<String, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a readable .docx: {e}"))?;
    let part = zip
        .by_name("word/document.xml")
        .map_err(|_| "a zip without word/document.xml: not a Word document".to_string())?;
    if part.size() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "the document inflates to {} bytes, over the limit of {MAX_DOCUMENT_BYTES}",
            part.size()
        ));
    }
    let mut xml = String::new();
    part.take(MAX_DOCUMENT_BYTES + 1)
        .read_to_string(&mut xml)
        .map_err(|e| format!("document.xml is not readable text: {e}"))?;
    if xml.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err("the document inflates past its declared size".into());
    }
    Ok(paragraphs(&xml))
}

/// The text of WordprocessingML: `<w:t>` runs, `<w:tab/>` as a tab,
/// `<w:br/>` and the end of each `<w:p>` as a line break.
fn paragraphs(xml: &str) -> String {
    let mut out = String::new();
    let mut rest = xml;
    while let Some(lt) = rest.find('<') {
        let Some(gt) = rest[lt..].find('>').map(|g| lt + g) else {
            break;
        };
        let tag = &rest[lt + 1..gt];
        let name = tag.split([' ', '/']).next().unwrap_or("");
        rest = &rest[gt + 1..];
        match name {
            "w:t" if !tag.ends_with('/') => {
                let end = rest.find("</w:t>").unwrap_or(rest.len());
                out.push_str(&unescape(&rest[..end]));
                rest = &rest[end..];
            }
            "w:tab" => out.push('\t'),
            "w:br" | "w:cr" => out.push('\n'),
            _ if tag == "/w:p" => out.push('\n'),
            _ => {}
        }
    }
    out.trim_end_matches('\n').to_string()
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..semi];
        let ch = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A minimal .docx with these paragraphs (runs split as Word splits them).
    pub fn docx_of(paragraphs: &[&[&str]]) -> Vec<u8> {
        let mut body = String::new();
        for runs in paragraphs {
            body.push_str("<w:p><w:pPr><w:jc w:val=\"left\"/></w:pPr>");
            for r in *runs {
                body.push_str(&format!(
                    "<w:r><w:rPr><w:b/></w:rPr><w:t xml:space=\"preserve\">{r}</w:t></w:r>"
                ));
            }
            body.push_str("</w:p>");
        }
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?><w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\"><w:body>{body}<w:sectPr/></w:body></w:document>"
        );
        let mut buf = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("[Content_Types].xml", opts).unwrap();
        zip.write_all(b"<Types/>").unwrap();
        zip.start_file("word/document.xml", opts).unwrap();
        zip.write_all(xml.as_bytes()).unwrap();
        zip.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn docx_paragraphs_are_lines_and_runs_join() {
        let bytes = docx_of(&[&["一、上半年", "工作情况"], &["完成白内障复明手术", "233", "例&amp;"]]);
        let d = read(&bytes).unwrap();
        assert_eq!(d.format, "docx");
        assert_eq!(d.text, "一、上半年工作情况\n完成白内障复明手术233例&");
    }

    #[test]
    fn text_in_gb18030_is_decoded_and_junk_gets_a_reason() {
        let (gbk, _, _) = encoding_rs::GB18030.encode("發放輪椅9輛\r\n");
        let d = read(&gbk).unwrap();
        assert_eq!((d.text.as_str(), d.format), ("發放輪椅9輛\n", "gb18030"));
    }

    #[test]
    fn files_sent_instead_of_a_summary_say_what_they_are() {
        let err = |b: &[u8]| read(b).unwrap_err();
        assert!(err(b"%PDF-1.7\n%\xe2\xe3").contains("a PDF document"));
        assert!(err(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1\0\0").contains("Word 97-2003"));
        assert!(err(b"  <!DOCTYPE html><html>").contains("HTML page"));
        // GB18030 would decode these; NULs and other controls are no text.
        assert!(err(b"\x80\x81\xfe\x00\x00garbage").contains("binary data, not text"));
        assert!(read("一、工作情况\t\r\n\u{c}".as_bytes()).is_ok());
        assert!(read(b"PK\x03\x04garbage").unwrap_err().contains(".docx"));
    }
}
