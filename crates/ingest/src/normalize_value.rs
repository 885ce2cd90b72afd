//! Reading one value string as people write it, by a small grammar rather
//! than a list of spellings:
//!
//! ```text
//! value    = prefix* quantity suffix* [magnitude] [unit] suffix*
//! quantity = number [range-sep number]            200-300, 200至300, 2-3万
//!          | chinese-range                        二三十, 十二三, 七八百
//! number   = ["-" | 负] term+ | 百分之 number      1,774 · 4.5万 · 3千5百 · 一万二千五百
//! term     = coefficient [magnitude]              coefficient: 12 · 1.5 · 三 · 叁 · 三点五 · 廿
//! magnitude= 十拾 百佰 千仟 万萬 亿億               (decreasing; 万 and 亿 close a section)
//! prefix   = 约 近 逾 超 超过 将近 …  (approximate) | 共计 累计 达 …  (exact)
//! suffix   = 多 余 来 许 左右 上下 以上 以内 以下 开外  (approximate)
//! unit     = 人 名 位 人次 例 户 辆 台 件 元 个 次 套 份 项 … %
//! ```
//!
//! Pure and total: every input gives a number, a missing marker, or a reason
//! it cannot be read; nothing panics. A value is 0 only when a zero is
//! written. A range is kept as its two bounds and never becomes one number;
//! placeholders (`___`, `xx`, `××`) are missing; garbled numbers (`近00多`,
//! `1,2`, 19 digits) get a reason. Applied to distinct strings only; numbers
//! sent as JSON numbers never come here.

use crate::fold::fold;

/// What a value string says.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The number in base units (元, not 万元), when there is one.
    pub value: Option<f64>,
    /// Unit written after the number, scale removed (`元`, `人`, `%`).
    pub unit: Option<String>,
    /// 多, 余, 近, 约, 左右, 逾, 以上 …: the number is approximate.
    pub approx: bool,
    /// A placeholder or blank: the value is missing, never zero.
    pub missing: bool,
    /// Why the string cannot be read as one number, when it cannot.
    pub error: Option<String>,
    /// Both bounds, when a range was written (200-300, 二三十). A range is
    /// never one number: `value` is None and `error` says why.
    pub range: Option<(f64, f64)>,
}

impl Reading {
    fn missing() -> Reading {
        Reading {
            value: None,
            unit: None,
            approx: false,
            missing: true,
            error: None,
            range: None,
        }
    }

    fn error(msg: impl Into<String>) -> Reading {
        Reading {
            value: None,
            unit: None,
            approx: false,
            missing: false,
            error: Some(msg.into()),
            range: None,
        }
    }
}

/// Characters a placeholder is made of (after folding: full-width is ASCII).
const PLACEHOLDER: &[char] = &[
    '_', 'x', 'X', '×', '-', '—', '/', '空', '无', '*', '?', '？', '.', '…', '略',
];
/// Words that stand for "not known" rather than a number.
const PLACEHOLDER_WORDS: &[&str] = &["不详", "暂无", "待定", "待统计", "未统计", "未知", "无数据"];
/// Units and classifiers, longest first where one is the end of another.
/// Each maps to the unit published (名 and 位 count people).
const UNITS: &[(&str, &str)] = &[
    ("人次", "人次"),
    ("户次", "户次"),
    ("元", "元"),
    ("人", "人"),
    ("名", "人"),
    ("位", "人"),
    ("户", "户"),
    ("例", "例"),
    ("辆", "辆"),
    ("件", "件"),
    ("个", "个"),
    ("次", "次"),
    ("台", "台"),
    ("套", "套"),
    ("份", "份"),
    ("项", "项"),
    ("所", "所"),
    ("家", "家"),
    ("处", "处"),
    ("场", "场"),
    ("期", "期"),
    ("批", "批"),
    ("张", "张"),
    ("间", "间"),
    ("座", "座"),
    ("%", "%"),
];
/// Approximation words before the number, longest first.
const APPROX_PREFIXES: &[&str] = &[
    "大约",
    "大概",
    "将近",
    "接近",
    "超过",
    "多于",
    "不少于",
    "不低于",
    "约为",
    "约",
    "近",
    "逾",
    "超",
    "达约",
];
/// Words before the number that leave it exact (totals, "reached").
const EXACT_PREFIXES: &[&str] = &["共计", "合计", "总计", "累计", "达到", "共", "计", "达", "为"];
/// Approximation words after the number (or after its unit), longest first.
const APPROX_SUFFIXES: &[&str] = &["左右", "上下", "以上", "以内", "以下", "开外", "多", "余", "来", "许"];
/// Range separators between two numbers (after folding).
const RANGE_SEPARATORS: &[&str] = &["--", "——", "~", "-", "—", "–", "至", "到"];
/// Largest magnitude a reported value can honestly have (ten trillion):
/// anything larger is a typo or an identifier, not a count or an amount.
const MAX_VALUE: f64 = 1e13;
/// A run of this many digits is an identifier (ID card, account), not a value.
const ID_DIGITS: usize = 15;

/// Why a number sent as a number (a JSON number) cannot be a value: not
/// finite, an identifier's digits, or a magnitude no count or amount has.
/// The number itself is not echoed: it may be an ID card number.
pub fn number_problem(n: f64) -> Option<String> {
    if !n.is_finite() {
        return Some("the number is not finite".into());
    }
    let digits = integer_digits(n);
    if n.fract() == 0.0 && (ID_DIGITS..=19).contains(&digits) {
        return Some(format!(
            "a number of {digits} digits: an identifier (ID card, account), not a value"
        ));
    }
    (n.abs() > MAX_VALUE).then(|| "an impossible magnitude (over 10^13)".to_string())
}

/// How many digits the integer part of finite `n` is written with (`0` and
/// `0.5` one, `-123.4` three).
fn integer_digits(n: f64) -> usize {
    let t = n.abs().trunc();
    // 10^19 is exact in an f64 and below 2^64: below it the integer part
    // is a u64 (no allocation: every JSON number of a report comes here).
    if t < 1e19 {
        (t as u64).checked_ilog10().map_or(1, |d| d as usize + 1)
    } else {
        t.to_string().len()
    }
}

/// Reads one value string.
pub fn read(raw: &str) -> Reading {
    let s = fold(raw);
    if s.is_empty() {
        return Reading::missing();
    }
    if s.chars().all(|c| PLACEHOLDER.contains(&c)) || PLACEHOLDER_WORDS.contains(&s.as_str()) {
        return Reading::missing();
    }
    match Grammar::new(raw).value(&s) {
        Ok(r) => r,
        Err(e) => e,
    }
}

/// One parsed quantity: a point or a range, and whether a magnitude
/// (十百千万亿) was written (so `100余万` may take one after its suffix and
/// `2-3万` can give the first bound the second's).
#[derive(Debug, Clone, Copy)]
struct Quantity {
    low: f64,
    high: f64,
    magnitude: bool,
    trailing_magnitude: Option<f64>,
}

/// One lexical unit of a number.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    /// ASCII digits (with separators and a decimal point), already a value.
    Arabic(f64),
    /// 〇 零 一 … 九 两 壹 … 玖.
    Digit(u8),
    /// 廿 卅 卌: twenty, thirty, forty.
    Tens(u8),
    /// 十 百 千 万 亿 (and 拾 佰 仟).
    Magnitude(f64),
    /// 点: the decimal point of a Chinese numeral.
    Point,
}

struct Grammar<'a> {
    raw: &'a str,
}

impl<'a> Grammar<'a> {
    fn new(raw: &'a str) -> Grammar<'a> {
        Grammar { raw }
    }

    fn fail(&self, why: impl std::fmt::Display) -> Reading {
        Reading::error(format!("{:?} {why}", crate::submission::clip(self.raw, 40)))
    }

    fn value(&self, s: &str) -> Result<Reading, Reading> {
        let mut rest = s;
        let mut approx = false;
        // Prefix words, in any order: 共计约, 约为.
        'prefix: loop {
            for p in APPROX_PREFIXES {
                if let Some(r) = rest.strip_prefix(p) {
                    rest = r;
                    approx = true;
                    continue 'prefix;
                }
            }
            for p in EXACT_PREFIXES {
                if let Some(r) = rest.strip_prefix(p)
                    && r.chars().next().is_some_and(starts_number)
                {
                    rest = r;
                    continue 'prefix;
                }
            }
            break;
        }
        let (percent, body) = match rest.strip_prefix("百分之") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some((mut q, after)) = self.quantity(body)? else {
            if body.is_empty() {
                return Err(self.fail("has no number"));
            }
            let (stripped, _) = strip_unit(body);
            if stripped.is_empty() || stripped.chars().all(|c| PLACEHOLDER.contains(&c)) {
                return Ok(Reading::missing());
            }
            return Err(self.fail("has no number"));
        };
        let mut rest = after;
        rest = strip_suffixes(rest, &mut approx);
        // 100余万元: a magnitude after the suffix, when the number had none.
        if let Some((m, r)) = leading_magnitude(rest) {
            if q.magnitude {
                return Err(self.fail("has a second magnitude after the number"));
            }
            q.low *= m;
            q.high *= m;
            q.magnitude = true;
            rest = r;
            rest = strip_suffixes(rest, &mut approx);
        }
        let (after_unit, mut unit) = take_unit(rest);
        rest = strip_suffixes(after_unit, &mut approx);
        if percent {
            if unit.is_some() {
                return Err(self.fail("has a unit after a percentage"));
            }
            unit = Some("%".to_string());
        }
        if !rest.is_empty() {
            return Err(self.fail(format!("has unexpected text {:?} after the number", clip_str(rest))));
        }
        for v in [q.low, q.high] {
            if !v.is_finite() || v.abs() > MAX_VALUE {
                return Err(self.fail("is an impossible magnitude"));
            }
        }
        let round = |v: f64| (v * 100.0).round() / 100.0;
        if q.low != q.high {
            let (lo, hi) = (round(q.low), round(q.high));
            return Ok(Reading {
                value: None,
                unit,
                approx,
                missing: false,
                error: Some(format!(
                    "{:?} is a range, {lo} to {hi}: not one number",
                    crate::submission::clip(self.raw, 40)
                )),
                range: Some((lo, hi)),
            });
        }
        let value = round(q.low);
        if approx && value == 0.0 {
            return Err(self.fail("is an approximation of zero: no number can be read"));
        }
        Ok(Reading {
            value: Some(value),
            unit,
            approx,
            missing: false,
            error: None,
            range: None,
        })
    }

    /// A number, or a range of two, at the start of `s`.
    fn quantity<'s>(&self, s: &'s str) -> Result<Option<(Quantity, &'s str)>, Reading> {
        let Some((first, rest)) = self.number(s)? else {
            return Ok(None);
        };
        for sep in RANGE_SEPARATORS {
            let Some(r) = rest.strip_prefix(sep) else { continue };
            // A separator not followed by a number is not a range (12-).
            let Some((second, rest)) = self.number(r)? else {
                continue;
            };
            let mut low = first;
            // 2-3万: the first bound takes the second's magnitude.
            if !first.magnitude
                && let Some(m) = second.trailing_magnitude
            {
                low.low *= m;
                low.high *= m;
            }
            if low.low >= second.high {
                return Err(self.fail("is a range whose bounds are not in order"));
            }
            return Ok(Some((
                Quantity {
                    low: low.low,
                    high: second.high,
                    magnitude: second.magnitude,
                    trailing_magnitude: second.trailing_magnitude,
                },
                rest,
            )));
        }
        Ok(Some((first, rest)))
    }

    /// One number (possibly a Chinese range such as 二三十) at the start of `s`.
    fn number<'s>(&self, s: &'s str) -> Result<Option<(Quantity, &'s str)>, Reading> {
        let (negative, s) = match s.strip_prefix('-').or_else(|| s.strip_prefix('负')) {
            Some(r) if r.chars().next().is_some_and(starts_number) => (true, r),
            _ => (false, s),
        };
        let (tokens, rest) = self.tokens(s)?;
        if tokens.is_empty() {
            return Ok(None);
        }
        // Two neighbouring digits (二三十, 十二三, 三五个) are a range.
        let pair = tokens.windows(2).position(|w| match (w[0], w[1]) {
            (Token::Digit(a), Token::Digit(b)) => a > 0 && b > a && b - a <= 2,
            _ => false,
        });
        let digits_only = tokens.iter().all(|t| matches!(t, Token::Digit(_)));
        let (low, high) = if digits_only && tokens.len() > 1 {
            // 二〇二六: digits read one by one, when they cannot be a range.
            let positional = tokens.len() >= 3 || tokens.contains(&Token::Digit(0));
            match (positional, pair) {
                (true, _) => {
                    let v = tokens.iter().fold(0.0, |acc, t| match t {
                        Token::Digit(d) => acc * 10.0 + f64::from(*d),
                        _ => acc,
                    });
                    (v, v)
                }
                (false, Some(_)) => {
                    let (Token::Digit(a), Token::Digit(b)) = (tokens[0], tokens[1]) else {
                        unreachable!("digits_only")
                    };
                    (f64::from(a), f64::from(b))
                }
                (false, None) => return Err(self.fail("has digits that are neither a number nor a range")),
            }
        } else if let Some(i) = pair {
            let mut lo = tokens.clone();
            lo.remove(i + 1);
            let mut hi = tokens.clone();
            hi.remove(i);
            (self.evaluate(&lo)?, self.evaluate(&hi)?)
        } else {
            let v = self.evaluate(&tokens)?;
            (v, v)
        };
        let (low, high) = if negative { (-high, -low) } else { (low, high) };
        let magnitude = tokens.iter().any(|t| matches!(t, Token::Magnitude(_) | Token::Tens(_)));
        let trailing_magnitude = match tokens.as_slice() {
            [.., Token::Arabic(_) | Token::Digit(_), Token::Magnitude(m)] => Some(*m),
            _ => None,
        };
        Ok(Some((
            Quantity {
                low,
                high,
                magnitude,
                trailing_magnitude,
            },
            rest,
        )))
    }

    /// The tokens of the number at the start of `s`, and what follows it.
    fn tokens<'s>(&self, s: &'s str) -> Result<(Vec<Token>, &'s str), Reading> {
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let c = s[i..].chars().next().expect("i is on a char boundary");
            if c.is_ascii_digit() {
                let (v, used) = self.arabic(&s[i..])?;
                tokens.push(Token::Arabic(v));
                i += used;
                continue;
            }
            let t = match c {
                '〇' | '零' => Token::Digit(0),
                '一' | '壹' | '幺' => Token::Digit(1),
                '二' | '贰' | '两' => Token::Digit(2),
                '三' | '叁' | '参' => Token::Digit(3),
                '四' | '肆' => Token::Digit(4),
                '五' | '伍' => Token::Digit(5),
                '六' | '陆' => Token::Digit(6),
                '七' | '柒' => Token::Digit(7),
                '八' | '捌' => Token::Digit(8),
                '九' | '玖' => Token::Digit(9),
                '廿' => Token::Tens(2),
                '卅' => Token::Tens(3),
                '卌' => Token::Tens(4),
                '十' | '拾' => Token::Magnitude(10.0),
                '百' | '佰' => Token::Magnitude(100.0),
                '千' | '仟' => Token::Magnitude(1000.0),
                '万' => Token::Magnitude(1e4),
                '亿' => Token::Magnitude(1e8),
                '点' if matches!(tokens.last(), Some(Token::Digit(_)))
                    && s[i + c.len_utf8()..].chars().next().is_some_and(is_cn_digit) =>
                {
                    Token::Point
                }
                _ => break,
            };
            // 参/两/幺 are digits only inside a number; 参加 is not 3加.
            if matches!(c, '参' | '幺') && tokens.is_empty() {
                break;
            }
            tokens.push(t);
            i += c.len_utf8();
        }
        Ok((tokens, &s[i..]))
    }

    /// ASCII digits with thousands separators and one decimal point.
    fn arabic(&self, s: &str) -> Result<(f64, usize), Reading> {
        let end = s
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_digit()
                    || ((c == ',' || c == '.') && s[i + 1..].chars().next().is_some_and(|d| d.is_ascii_digit())))
            })
            .map_or(s.len(), |(i, _)| i);
        let text = &s[..end];
        let (int, frac) = match text.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        if frac.is_some_and(|f| f.contains(['.', ','])) {
            return Err(self.fail(format!("has a garbled number {text:?}")));
        }
        let groups: Vec<&str> = int.split(',').collect();
        if groups.len() > 1 && (groups[0].is_empty() || groups[0].len() > 3 || groups[1..].iter().any(|g| g.len() != 3))
        {
            return Err(self.fail(format!("has misplaced thousands separators in {text:?}")));
        }
        let digits: String = groups.concat();
        if digits.len() >= ID_DIGITS {
            // Not echoed: an ID card number is personal data.
            return Err(Reading::error(format!(
                "a number of {} digits: an identifier (ID card, account), not a value",
                digits.len()
            )));
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(self.fail(format!("has a garbled number {text:?} (leading zero)")));
        }
        let number = match frac {
            Some(f) => format!("{digits}.{f}"),
            None => digits,
        };
        let v: f64 = number
            .parse()
            .map_err(|_| self.fail(format!("has a garbled number {text:?}")))?;
        Ok((v, end))
    }

    /// The value of a number's tokens: terms of coefficient × magnitude,
    /// magnitudes decreasing within a section that 万 or 亿 closes.
    fn evaluate(&self, tokens: &[Token]) -> Result<f64, Reading> {
        let bad = |why: &str| self.fail(why);
        let (mut total, mut section) = (0.0_f64, 0.0_f64);
        let mut current: Option<f64> = None;
        // Smallest magnitude used so far in the section, and in the number.
        let (mut small, mut big) = (f64::INFINITY, f64::INFINITY);
        let mut zero_gap = false;
        let mut last_magnitude: Option<f64> = None;
        let mut i = 0;
        while i < tokens.len() {
            match tokens[i] {
                Token::Arabic(v) => {
                    if current.is_some() {
                        return Err(bad("has two numbers side by side"));
                    }
                    current = Some(v);
                }
                Token::Digit(0) => {
                    if current.is_some() {
                        return Err(bad("has a zero inside a numeral"));
                    }
                    zero_gap = true;
                }
                Token::Digit(d) => {
                    if current.is_some() {
                        return Err(bad("has digits that are neither a number nor a range"));
                    }
                    current = Some(f64::from(d));
                    // 三点五: the Chinese decimal point.
                    if tokens.get(i + 1) == Some(&Token::Point) {
                        let mut frac = 0.0;
                        let mut scale = 0.1;
                        let mut j = i + 2;
                        while let Some(Token::Digit(d)) = tokens.get(j) {
                            frac += f64::from(*d) * scale;
                            scale /= 10.0;
                            j += 1;
                        }
                        current = Some(f64::from(d) + frac);
                        i = j;
                        continue;
                    }
                }
                Token::Tens(t) => {
                    if current.is_some() || small <= 10.0 {
                        return Err(bad("has a misplaced 廿/卅"));
                    }
                    section += f64::from(t) * 10.0;
                    small = 10.0;
                }
                Token::Point => return Err(bad("has a misplaced 点")),
                Token::Magnitude(m) if m < 1e4 => {
                    if m >= small {
                        return Err(bad("has magnitudes out of order"));
                    }
                    // 十二, 百余: a magnitude opening the number counts one.
                    let coefficient = match current.take() {
                        Some(c) => c,
                        None if i == 0 && !zero_gap => 1.0,
                        None => return Err(bad("has a magnitude without a number before it")),
                    };
                    section += coefficient * m;
                    small = m;
                    zero_gap = false;
                    last_magnitude = Some(m);
                }
                Token::Magnitude(m) => {
                    if m >= big {
                        return Err(bad("has magnitudes out of order"));
                    }
                    let value = section + current.take().unwrap_or(0.0);
                    let value = if value == 0.0 && i == 0 { 1.0 } else { value };
                    if value == 0.0 {
                        return Err(bad("has a magnitude without a number before it"));
                    }
                    total += value * m;
                    section = 0.0;
                    small = f64::INFINITY;
                    big = m;
                    zero_gap = false;
                    last_magnitude = Some(m);
                }
            }
            i += 1;
        }
        if let Some(c) = current {
            // 一万二, 三千五, 两百五: a last digit right after a magnitude
            // counts in the next magnitude down.
            let single_digit = match tokens.last() {
                Some(Token::Digit(_)) => true,
                Some(Token::Arabic(a)) => *a < 10.0 && a.fract() == 0.0,
                _ => false,
            };
            let implied = match last_magnitude {
                Some(m) if single_digit && !zero_gap && m >= 100.0 && tokens.len() >= 3 => m / 10.0,
                _ => 1.0,
            };
            section += c * implied;
        }
        Ok(total + section)
    }
}

/// A Chinese digit, lower case or financial capital (〇 零 一 … 九 两 壹 … 玖).
pub fn is_cn_digit(c: char) -> bool {
    "〇零一二三四五六七八九两壹贰叁肆伍陆柒捌玖".contains(c)
}

/// A Chinese magnitude (十 百 千 万 亿, 拾 佰 仟).
pub fn is_magnitude(c: char) -> bool {
    "十拾百佰千仟万亿".contains(c)
}

/// Whether `c` can open a number.
fn starts_number(c: char) -> bool {
    c.is_ascii_digit() || is_cn_digit(c) || is_magnitude(c) || "廿卅卌-负".contains(c)
}

fn strip_suffixes<'s>(mut s: &'s str, approx: &mut bool) -> &'s str {
    'again: loop {
        for m in APPROX_SUFFIXES {
            if let Some(r) = s.strip_prefix(m) {
                s = r;
                *approx = true;
                continue 'again;
            }
        }
        return s;
    }
}

fn leading_magnitude(s: &str) -> Option<(f64, &str)> {
    for (w, m) in [("万", 1e4), ("亿", 1e8), ("千", 1e3), ("百", 1e2)] {
        if let Some(r) = s.strip_prefix(w) {
            return Some((m, r));
        }
    }
    None
}

/// The unit at the start of `s`.
fn take_unit(s: &str) -> (&str, Option<String>) {
    for (written, unit) in UNITS {
        if let Some(r) = s.strip_prefix(written) {
            return (r, Some((*unit).to_string()));
        }
    }
    (s, None)
}

/// The unit at the end of `s` (for `xx元`, `名`: a placeholder with a unit).
fn strip_unit(s: &str) -> (&str, Option<String>) {
    for (written, unit) in UNITS {
        if let Some(r) = s.strip_suffix(written) {
            return (r, Some((*unit).to_string()));
        }
    }
    (s, None)
}

fn clip_str(s: &str) -> String {
    crate::submission::clip(s, 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_digits_are_those_the_number_is_printed_with() {
        let mut edges = vec![0.0, -0.0, 0.5, 1.0, 9.0, 9.999, 10.0, 99.5, 1e14, 1e15 - 1.0, 1e15];
        for e in 0..=22 {
            let p = 10f64.powi(e);
            edges.extend([p, p - 1.0, p + 1.0, p * 9.99, p.next_down(), p.next_up()]);
        }
        edges.extend([u64::MAX as f64, 1.8e19, 2f64.powi(63), 2f64.powi(64), 1e300, f64::MAX]);
        // And a spread of magnitudes and fractions.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mantissa = (x >> 11) as f64 / (1u64 << 53) as f64;
            edges.push(mantissa * 10f64.powi((x % 25) as i32));
        }
        for n in edges {
            for n in [n, -n] {
                let printed = n.abs().trunc().to_string().len();
                assert_eq!(integer_digits(n), printed, "{n:e}");
            }
        }
    }

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
        assert_eq!(read("3位").unit.as_deref(), Some("人"));
        assert_eq!(v("3千5百"), (Some(3500.0), false));
        assert_eq!(v("1万2千"), (Some(12000.0), false));
        assert_eq!(v("2亿3000万"), (Some(2.3e8), false));
        assert_eq!(v("12万5千元"), (Some(125000.0), false));
    }

    #[test]
    fn chinese_numerals() {
        assert_eq!(v("三千元"), (Some(3000.0), false));
        assert_eq!(v("八千"), (Some(8000.0), false));
        assert_eq!(v("一万二千五百"), (Some(12500.0), false));
        assert_eq!(v("一万元"), (Some(10000.0), false));
        assert_eq!(v("十二"), (Some(12.0), false));
        assert_eq!(v("一千零五"), (Some(1005.0), false));
        assert_eq!(v("一万二"), (Some(12000.0), false));
        assert_eq!(v("三千五"), (Some(3500.0), false));
        assert_eq!(v("两百五十"), (Some(250.0), false));
        assert_eq!(v("廿五"), (Some(25.0), false));
        assert_eq!(v("二〇二六"), (Some(2026.0), false));
        assert_eq!(v("三点五万"), (Some(35000.0), false));
        assert_eq!(v("百分之九十"), (Some(90.0), false));
        assert_eq!(read("百分之九十").unit.as_deref(), Some("%"));
    }

    #[test]
    fn financial_capitals() {
        assert_eq!(v("壹仟贰佰叁拾肆元"), (Some(1234.0), false));
        assert_eq!(v("伍萬元"), (Some(50000.0), false));
        assert_eq!(v("玖佰零伍"), (Some(905.0), false));
        assert_eq!(v("贰拾"), (Some(20.0), false));
    }

    #[test]
    fn approximations_keep_the_number() {
        assert_eq!(v("60多人"), (Some(60.0), true));
        assert_eq!(v("100余人"), (Some(100.0), true));
        assert_eq!(v("近4000人"), (Some(4000.0), true));
        assert_eq!(v("1000多"), (Some(1000.0), true));
        assert_eq!(v("26多名"), (Some(26.0), true));
        assert_eq!(v("逾300户"), (Some(300.0), true));
        assert_eq!(v("超过2万元"), (Some(20000.0), true));
        assert_eq!(v("500人左右"), (Some(500.0), true));
        assert_eq!(v("30人以上"), (Some(30.0), true));
        assert_eq!(v("十来个"), (Some(10.0), true));
        assert_eq!(v("100余万元"), (Some(1e6), true));
        assert_eq!(v("共计4.5万元"), (Some(45000.0), false));
        assert_eq!(v("累计1012人"), (Some(1012.0), false));
    }

    /// The bug this grammar replaced: a quantity word with no digit and an
    /// approximation suffix (百余人) was read as 0.
    #[test]
    fn a_magnitude_word_alone_counts_one_of_it_never_zero() {
        assert_eq!(v("百余人"), (Some(100.0), true));
        assert_eq!(v("千余元"), (Some(1000.0), true));
        assert_eq!(v("万余元"), (Some(10000.0), true));
        assert_eq!(v("十余户"), (Some(10.0), true));
        // 数百 (several hundred) names no number.
        let r = read("数百人");
        assert!(r.value.is_none() && r.error.is_some(), "{r:?}");
    }

    #[test]
    fn ranges_keep_both_bounds_and_no_one_number() {
        for (s, lo, hi) in [
            ("200-300", 200.0, 300.0),
            ("200--300人", 200.0, 300.0),
            ("200至300", 200.0, 300.0),
            ("200~300", 200.0, 300.0),
            ("2-3万元", 20000.0, 30000.0),
            ("二三十人", 20.0, 30.0),
            ("十二三", 12.0, 13.0),
            ("七八百", 700.0, 800.0),
            ("三五个", 3.0, 5.0),
        ] {
            let r = read(s);
            assert_eq!((r.value, r.range), (None, Some((lo, hi))), "{s}: {r:?}");
            assert!(r.error.as_deref().is_some_and(|e| e.contains("range")), "{s}: {r:?}");
        }
    }

    #[test]
    fn numbers_sent_as_numbers_that_cannot_be_values() {
        assert!(number_problem(340102199001011234.0).unwrap().contains("18 digits"));
        assert!(number_problem(1e308).unwrap().contains("impossible magnitude"));
        assert!(number_problem(f64::NAN).is_some());
        assert!(number_problem(5.5e13).is_some());
        assert_eq!(number_problem(-5.0), None);
        assert_eq!(number_problem(1_556_700.0), None);
    }

    #[test]
    fn zero_only_when_a_zero_is_written() {
        assert_eq!(v("0"), (Some(0.0), false));
        assert_eq!(v("零"), (Some(0.0), false));
        assert_eq!(v("0人"), (Some(0.0), false));
        for s in ["近00多", "0多", "约0"] {
            let r = read(s);
            assert!(r.value.is_none() && r.error.is_some(), "{s}: {r:?}");
        }
    }

    #[test]
    fn placeholders_are_missing_not_zero() {
        for s in ["___", "xx元", "x名", "名", "XX", "－", "空", "", "××", "不详", "…"] {
            let r = read(s);
            assert!(r.missing && r.value.is_none() && r.error.is_none(), "{s}: {r:?}");
        }
    }

    #[test]
    fn garbage_gets_a_reason() {
        for s in [
            "很多",
            "4万多万元",
            "12人12",
            "1,2",
            "12,34,567",
            "1.2.3",
            "340102199001011234",
            "五百千",
            "1e308",
            "99999999999999",
            "3万万",
        ] {
            let r = read(s);
            assert!(r.error.is_some() && r.value.is_none(), "{s} should not read: {r:?}");
        }
    }
}
