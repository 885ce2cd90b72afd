//! Property tests of the value grammar: random numbers rendered in each
//! notation a county writes (ASCII, thousands separators, full-width digits,
//! Chinese numerals, financial capitals, 1.2万 and 3千5百 mixtures), with
//! approximation words, totals words and units around them, read back to
//! the same number, flags and unit. Ranges read back as both bounds and
//! never as one number.

use proptest::prelude::*;
use taizhang_ingest::normalize_value::read;

const LOWER: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
const UPPER: [&str; 10] = ["零", "壹", "贰", "叁", "肆", "伍", "陆", "柒", "捌", "玖"];
const LOWER_MAGS: [&str; 3] = ["十", "百", "千"];
const UPPER_MAGS: [&str; 3] = ["拾", "佰", "仟"];

/// One four-digit section in Chinese numerals, zeros spoken as 零 once.
fn section(n: u64, digits: &[&str; 10], mags: &[&str; 3], out: &mut String, first: bool) {
    let d = [n / 1000, n / 100 % 10, n / 10 % 10, n % 10];
    let mut pending_zero = false;
    let mut written = false;
    for (i, &x) in d.iter().enumerate() {
        if x == 0 {
            pending_zero = written;
            continue;
        }
        if pending_zero {
            out.push_str(digits[0]);
            pending_zero = false;
        }
        let mag = match i {
            0 => mags[2],
            1 => mags[1],
            2 => mags[0],
            _ => "",
        };
        // 十二, not 一十二, at the very start (lower case only).
        if !(i == 2 && x == 1 && !written && first && digits[1] == "一") {
            out.push_str(digits[x as usize]);
        }
        out.push_str(mag);
        written = true;
    }
}

/// `n` in Chinese numerals (up to 10^12 − 1).
fn chinese(n: u64, upper: bool) -> String {
    let (digits, mags, wan, yi) = match upper {
        true => (&UPPER, &UPPER_MAGS, "萬", "億"),
        false => (&LOWER, &LOWER_MAGS, "万", "亿"),
    };
    if n == 0 {
        return digits[0].to_string();
    }
    let parts = [(n / 100_000_000, yi), (n / 10_000 % 10_000, wan), (n % 10_000, "")];
    let mut out = String::new();
    let mut started = false;
    let mut zero_needed = false;
    for (p, unit) in parts {
        if p == 0 {
            zero_needed = started;
            continue;
        }
        if started && (zero_needed || p < 1000) {
            out.push_str(digits[0]);
        }
        section(p, digits, mags, &mut out, !started);
        out.push_str(unit);
        started = true;
        zero_needed = false;
    }
    out
}

fn separated(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap(),
            ',' => '，',
            '.' => '．',
            c => c,
        })
        .collect()
}

/// `n` as a coefficient of 万 with a decimal (12000 → 1.2万), when exact.
fn wan(n: u64) -> Option<String> {
    (n >= 10_000 && n.is_multiple_of(100)).then(|| {
        let w = n as f64 / 1e4;
        format!("{}万", w)
    })
}

/// `n` below 10,000 as ASCII coefficients of 千百十 (3千5百, 4千零5 is not
/// written this way: only numbers whose non-zero digits are contiguous).
fn qian_bai(n: u64) -> Option<String> {
    let d = [n / 1000, n / 100 % 10, n / 10 % 10, n % 10];
    if n >= 10_000 || d[0] == 0 {
        return None;
    }
    let last = d.iter().rposition(|&x| x != 0).unwrap();
    if d[..=last].contains(&0) {
        return None;
    }
    let mut out = String::new();
    for (i, x) in d[..=last].iter().enumerate() {
        out.push_str(&x.to_string());
        out.push_str(["千", "百", "十", ""][i]);
    }
    Some(out)
}

#[derive(Debug, Clone)]
enum Notation {
    Ascii,
    Separated,
    FullWidth,
    Lower,
    Upper,
    Wan,
    QianBai,
}

fn notation() -> impl Strategy<Value = Notation> {
    prop_oneof![
        Just(Notation::Ascii),
        Just(Notation::Separated),
        Just(Notation::FullWidth),
        Just(Notation::Lower),
        Just(Notation::Upper),
        Just(Notation::Wan),
        Just(Notation::QianBai),
    ]
}

/// `n` (or the nearest number the notation writes) rendered in `how`.
fn render(n: u64, how: &Notation) -> (String, u64) {
    match how {
        Notation::Ascii => (n.to_string(), n),
        Notation::Separated => (separated(n), n),
        Notation::FullWidth => (full_width(&separated(n)), n),
        Notation::Lower => (chinese(n, false), n),
        Notation::Upper => (chinese(n, true), n),
        Notation::Wan => {
            let n = (n.max(10_000) / 100) * 100;
            (wan(n).expect("a multiple of 100 from 10,000"), n)
        }
        Notation::QianBai => {
            // 1–4 leading non-zero digits, then zeros: 3千, 3千5百, 3千5百2十, 3千5百2十1.
            let digits: Vec<u64> = (0..4).map(|i| 1 + (n / 10u64.pow(i)) % 9).collect();
            let keep = 1 + (n % 4) as usize;
            let n = (0..4).fold(0, |acc, i| acc * 10 + if i < keep { digits[i] } else { 0 });
            (qian_bai(n).expect("contiguous digits"), n)
        }
    }
}

/// (written, published) units.
const UNITS: &[(&str, &str)] = &[
    ("人", "人"),
    ("名", "人"),
    ("位", "人"),
    ("户", "户"),
    ("元", "元"),
    ("例", "例"),
    ("辆", "辆"),
    ("台", "台"),
    ("件", "件"),
    ("人次", "人次"),
];
const APPROX_BEFORE: &[&str] = &["近", "约", "逾", "超过", "大约", "将近"];
const APPROX_AFTER_NUMBER: &[&str] = &["多", "余"];
const APPROX_AFTER_UNIT: &[&str] = &["左右", "上下", "以上", "以内"];
const TOTALS: &[&str] = &["共计", "累计", "合计"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn every_notation_reads_back_to_the_number(
        n in prop_oneof![0u64..100, 0u64..10_000, 0u64..100_000_000, 0u64..999_999_999_999],
        how in notation(),
        unit in proptest::option::of(0..UNITS.len()),
        approx in 0usize..4,
        which in 0usize..6,
        total in any::<bool>(),
    ) {
        let (number, n) = render(n, &how);
        // An approximation of zero is no reading; those are tested apart.
        let approx = if n == 0 { 0 } else { approx };
        let mut s = String::new();
        if total && approx != 1 {
            s.push_str(TOTALS[which % TOTALS.len()]);
        }
        if approx == 1 {
            s.push_str(APPROX_BEFORE[which % APPROX_BEFORE.len()]);
        }
        s.push_str(&number);
        if approx == 2 {
            s.push_str(APPROX_AFTER_NUMBER[which % APPROX_AFTER_NUMBER.len()]);
        }
        if let Some(u) = unit {
            s.push_str(UNITS[u].0);
        }
        if approx == 3 {
            s.push_str(APPROX_AFTER_UNIT[which % APPROX_AFTER_UNIT.len()]);
        }
        let r = read(&s);
        prop_assert_eq!(r.error.as_deref(), None, "{} ({:?})", s, how);
        prop_assert_eq!(r.value, Some(n as f64), "{}", s);
        prop_assert_eq!(r.approx, approx != 0, "{}", s);
        prop_assert_eq!(r.unit.as_deref(), unit.map(|u| UNITS[u].1), "{}", s);
        prop_assert!(!r.missing);
    }

    #[test]
    fn decimals_read_back_to_the_cent(cents in 0u64..10_000_000_000, percent in any::<bool>()) {
        let s = format!("{}.{:02}{}", cents / 100, cents % 100, if percent { "%" } else { "" });
        let r = read(&s);
        prop_assert_eq!(r.error.as_deref(), None, "{}", s);
        prop_assert!((r.value.unwrap() - cents as f64 / 100.0).abs() < 1e-6, "{} → {:?}", s, r.value);
        prop_assert_eq!(r.unit.as_deref(), percent.then_some("%"));
    }

    #[test]
    fn ranges_keep_both_bounds_and_never_one_number(
        lo in 1u64..1_000_000,
        gap in 1u64..1_000_000,
        sep in prop_oneof![Just("-"), Just("--"), Just("至"), Just("~"), Just("到"), Just("～")],
        unit in proptest::option::of(0..UNITS.len()),
    ) {
        let hi = lo + gap;
        let s = format!("{lo}{sep}{hi}{}", unit.map_or("", |u| UNITS[u].0));
        let r = read(&s);
        prop_assert_eq!(r.value, None, "{}", s);
        prop_assert_eq!(r.range, Some((lo as f64, hi as f64)), "{}", s);
        prop_assert!(r.error.is_some());
    }

    /// Whatever the string, a value of 0 means a zero was written.
    #[test]
    fn zero_only_when_a_zero_is_written(s in "[0-9零〇一二三百千万多余近约xX_.,-]{0,8}") {
        let r = read(&s);
        if r.value == Some(0.0) {
            prop_assert!(s.contains(['0', '零', '〇']), "{} read as 0", s);
        }
        if let Some(v) = r.value {
            prop_assert!(v.is_finite());
            prop_assert!(r.error.is_none() && !r.missing);
        }
    }
}

#[test]
fn the_renderer_writes_what_people_write() {
    assert_eq!(chinese(10, false), "十");
    assert_eq!(chinese(12, false), "十二");
    assert_eq!(chinese(105, false), "一百零五");
    assert_eq!(chinese(110, false), "一百一十");
    assert_eq!(chinese(1005, false), "一千零五");
    assert_eq!(chinese(10_010, false), "一万零一十");
    assert_eq!(chinese(12_500, false), "一万二千五百");
    assert_eq!(chinese(200_000_300, false), "二亿零三百");
    assert_eq!(chinese(1234, true), "壹仟贰佰叁拾肆");
    assert_eq!(separated(1_234_567), "1,234,567");
    assert_eq!(qian_bai(3500).as_deref(), Some("3千5百"));
    assert_eq!(wan(12_000).as_deref(), Some("1.2万"));
}
