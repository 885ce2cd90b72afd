//! Reading one value string as townships write it: `4.5万元`, `60多人`,
//! `近4000`, `三千元`, `1,774`, `___`. Pure and total: every input gives a
//! number, a missing marker, or a reason it cannot be read; nothing panics.
//! Applied to distinct strings only; numbers sent as JSON numbers never come here.

use crate::fold::fold;

/// What a value string says.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The number in base units (元, not 万元), when there is one.
    pub value: Option<f64>,
    /// Unit written after the number, scale removed (`元`, `人`, `%`).
    pub unit: Option<String>,
    /// 多, 余, 近, 约, 左右: the number is approximate.
    pub approx: bool,
    /// A placeholder or blank: the value is missing, never zero.
    pub missing: bool,
    /// Why the string cannot be read, when it cannot.
    pub error: Option<String>,
}

impl Reading {
    fn missing() -> Reading {
        Reading {
            value: None,
            unit: None,
            approx: false,
            missing: true,
            error: None,
        }
    }
    fn error(msg: impl Into<String>) -> Reading {
        Reading {
            value: None,
            unit: None,
            approx: false,
            missing: false,
            error: Some(msg.into()),
        }
    }
}

const PLACEHOLDER: &[char] = &['_', 'x', 'X', '×', '-', '—', '/', '空', '无', '*', '?', '？'];
const UNITS: &[&str] = &[
    "人次", "元", "人", "户", "例", "辆", "件", "名", "个", "次", "台", "套", "份", "%",
];

/// Reads one value string.
pub fn read(raw: &str) -> Reading {
    let s: String = fold(raw).chars().filter(|&c| c != ',').collect();
    if s.is_empty() {
        return Reading::missing();
    }
    let approx_prefix = ["近", "约", "大约"].iter().find(|p| s.starts_with(**p));
    let body = approx_prefix.map_or(s.as_str(), |p| &s[p.len()..]);
    let (number, rest) = match split_number(body) {
        Some(x) => x,
        None => {
            let stripped = strip_unit(body).0;
            if stripped.chars().all(|c| PLACEHOLDER.contains(&c)) {
                return Reading::missing();
            }
            return Reading::error(format!("{raw:?} has no number"));
        }
    };
    let mut rest = rest;
    let mut approx = approx_prefix.is_some();
    for m in ["多", "余", "左右"] {
        if let Some(r) = rest.strip_prefix(m) {
            rest = r;
            approx = true;
        }
    }
    let mut scale = 1.0;
    for (w, f) in [("万", 1e4), ("亿", 1e8), ("千", 1e3)] {
        if let Some(r) = rest.strip_prefix(w) {
            rest = r;
            scale = f;
            break;
        }
    }
    for m in ["多", "余", "左右"] {
        if let Some(r) = rest.strip_prefix(m) {
            rest = r;
            approx = true;
        }
    }
    let (rest, unit) = strip_unit(rest);
    let rest = rest.trim_end_matches(['多', '余']);
    if rest.len() < strip_unit(rest).0.len() || !rest.is_empty() {
        return Reading::error(format!("{raw:?} has unexpected text {rest:?} after the number"));
    }
    let value = (number * scale * 100.0).round() / 100.0;
    if !value.is_finite() {
        return Reading::error(format!("{raw:?} is out of range"));
    }
    Reading {
        value: Some(value),
        unit,
        approx,
        missing: false,
        error: None,
    }
}

/// Takes the number at the start: ASCII digits with one decimal point, or
/// Chinese numerals (三千, 一万二千五百, 两百). Returns it and the rest.
fn split_number(s: &str) -> Option<(f64, &str)> {
    let end = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_digit() || c == '.'))
        .map_or(s.len(), |(i, _)| i);
    if end > 0 {
        let n: f64 = s[..end].parse().ok()?;
        return Some((n, &s[end..]));
    }
    chinese_number(s)
}

fn digit(c: char) -> Option<f64> {
    "零一二三四五六七八九"
        .chars()
        .position(|d| d == c)
        .map(|i| i as f64)
        .or((c == '两').then_some(2.0))
}

fn chinese_number(s: &str) -> Option<(f64, &str)> {
    let (mut total, mut section, mut current) = (0.0, 0.0, 0.0);
    let mut used = 0;
    let mut any = false;
    for (i, c) in s.char_indices() {
        if let Some(d) = digit(c) {
            current = d;
        } else {
            let unit = match c {
                '十' => 10.0,
                '百' => 100.0,
                '千' => 1000.0,
                '万' => 1e4,
                '亿' => 1e8,
                _ => break,
            };
            if unit >= 1e4 {
                section = (section + current) * unit;
                total += section;
                section = 0.0;
            } else {
                // 十二 = 12: a bare 十 means one ten.
                let c = if current == 0.0 && c == '十' { 1.0 } else { current };
                section += c * unit;
            }
            current = 0.0;
        }
        any = true;
        used = i + c.len_utf8();
    }
    any.then(|| (total + section + current, &s[used..]))
}

fn strip_unit(s: &str) -> (&str, Option<String>) {
    for u in UNITS {
        if let Some(r) = s.strip_suffix(u) {
            let unit = if *u == "名" { "人" } else { u };
            return (r, Some(unit.to_string()));
        }
    }
    (s, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> (Option<f64>, bool) {
        let r = read(s);
        assert!(r.error.is_none(), "{s}: {:?}", r.error);
        (r.value, r.approx)
    }

    #[test]
    fn scales_and_units() {
        assert_eq!(v("4.5万元"), (Some(45000.0), false));
        assert_eq!(v("5.018万元"), (Some(50180.0), false));
        assert_eq!(v("155.67萬元"), (Some(1556700.0), false));
        assert_eq!(v("1.2亿"), (Some(1.2e8), false));
        assert_eq!(v("200元"), (Some(200.0), false));
        assert_eq!(v("1,774"), (Some(1774.0), false));
        assert_eq!(v("１２人"), (Some(12.0), false));
        assert_eq!(read("90.33%").unit.as_deref(), Some("%"));
        assert_eq!(read("12名").unit.as_deref(), Some("人"));
    }

    #[test]
    fn chinese_numerals() {
        assert_eq!(v("三千元"), (Some(3000.0), false));
        assert_eq!(v("八千"), (Some(8000.0), false));
        assert_eq!(v("一万二千五百"), (Some(12500.0), false));
        assert_eq!(v("一万元"), (Some(10000.0), false));
        assert_eq!(v("十二"), (Some(12.0), false));
    }

    #[test]
    fn approximations_keep_the_number() {
        assert_eq!(v("60多人"), (Some(60.0), true));
        assert_eq!(v("100余人"), (Some(100.0), true));
        assert_eq!(v("近4000人"), (Some(4000.0), true));
        assert_eq!(v("1000多"), (Some(1000.0), true));
        assert_eq!(v("26多名"), (Some(26.0), true));
    }

    #[test]
    fn placeholders_are_missing_not_zero() {
        for s in ["___", "xx元", "x名", "名", "XX", "－", "空", ""] {
            let r = read(s);
            assert!(r.missing && r.value.is_none() && r.error.is_none(), "{s}: {r:?}");
        }
    }

    #[test]
    fn garbage_gets_a_reason() {
        for s in ["很多", "4万多万元", "12人12"] {
            assert!(read(s).error.is_some(), "{s} should not read");
        }
    }
}
