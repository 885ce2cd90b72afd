//! Reading throughput of the ingest crate on the national-month report shape
//! (`../shared/bench/gen.py`: 150 values per township, about 3% written
//! messily): JSON, the same report as GB18030 CSV, the filled Excel template,
//! and the value strings. `cargo bench -p taizhang-ingest`; results in
//! BENCHMARKS.md. Under `cargo test` it runs each case once as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use taizhang_ingest::normalize_value::read;
use taizhang_ingest::parse::parse;
use taizhang_ingest::submission::Cell;

const CATS: [&str; 7] = ["视力", "听力", "言语", "肢体", "智力", "精神", "多重"];
const INDICATORS: [(&str, &str, u64); 25] = [
    ("白内障复明手术", "例", 3),
    ("基本康复服务", "人", 40),
    ("辅具适配", "人", 8),
    ("轮椅发放", "辆", 3),
    ("假肢安装", "例", 1),
    ("助听器配发", "件", 2),
    ("残疾人证核发", "人", 15),
    ("重度残疾人护理补贴人数", "人", 120),
    ("重度残疾人护理补贴金额", "元", 12000),
    ("困难残疾人生活补贴人数", "人", 90),
    ("困难残疾人生活补贴金额", "元", 9000),
    ("燃油补贴户数", "户", 2),
    ("燃油补贴金额", "元", 600),
    ("资助残疾学生", "人", 2),
    ("助学金额", "元", 3000),
    ("职业技能培训", "人次", 6),
    ("新增就业", "人", 2),
    ("危房改造", "户", 1),
    ("无障碍改造", "户", 3),
    ("无障碍改造金额", "元", 8000),
    ("阳光家园托养", "人", 10),
    ("走访慰问", "人次", 30),
    ("慰问金", "元", 15000),
    ("接待来访", "人次", 5),
    ("信访办结", "件", 4),
];

/// (indicator, category, value as written): one township's 150 values.
fn report() -> Vec<(&'static str, Option<&'static str>, String)> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::new();
    for (name, unit, mean) in INDICATORS {
        let v = mean / 2 + next() % (mean + 1);
        let write = |v: u64, n: u64| match n % 100 {
            0..=2 if unit == "元" => format!("{:.2}万元", v as f64 / 10_000.0),
            0..=1 if v >= 10 => format!("{}多", v / 10 * 10),
            2 => format!("{v}{unit}"),
            _ => v.to_string(),
        };
        out.push((name, None, write(v, next())));
        if !matches!(name, "接待来访" | "信访办结") && unit != "元" {
            for c in CATS {
                out.push((name, Some(c), write(v / 7, next())));
            }
        }
    }
    while out.len() < 150 {
        out.push(("残疾人证核发", Some("一级"), "1".into()));
    }
    out
}

fn json(values: &[(&str, Option<&str>, String)]) -> Vec<u8> {
    let vs: Vec<serde_json::Value> = values
        .iter()
        .map(|(i, c, v)| match c {
            Some(c) => serde_json::json!({"indicator": i, "dimension": "类别", "category": c, "value": v}),
            None => serde_json::json!({"indicator": i, "value": v}),
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "township": "341124102", "program": "cdpf-monthly", "period": "2026-06",
        "submitted_at": "2026-07-04T09:12:00+08:00", "version": 1, "values": vs
    }))
    .unwrap()
}

fn csv_gbk(values: &[(&str, Option<&str>, String)]) -> Vec<u8> {
    let mut t = String::from("township,period,indicator,dimension,category,value\n");
    for (i, c, v) in values {
        let d = if c.is_some() { "类别" } else { "" };
        t.push_str(&format!("大墅镇,2026-06,{i},{d},{},{v}\n", c.unwrap_or("")));
    }
    encoding_rs::GB18030.encode(&t).0.into_owned()
}

/// Median time of one call over `rounds` rounds of `n` calls.
fn time(label: &str, bytes: usize, n: usize, smoke: bool, mut f: impl FnMut()) {
    let (rounds, n) = if smoke { (1, 1) } else { (7, n) };
    let mut per: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                f();
            }
            t.elapsed() / n as u32
        })
        .collect();
    per.sort();
    let m = per[per.len() / 2];
    let per_s = 1.0 / m.as_secs_f64();
    let mb_s = match bytes {
        0 => "      -".to_string(),
        b => format!("{:>7.1}", b as f64 * per_s / 1e6),
    };
    println!(
        "{label:<34} {:>9.1} µs/call {:>9.0} calls/s {mb_s} MB/s   41,352 townships: {:>5.2} s on one core",
        m.as_secs_f64() * 1e6,
        per_s,
        41_352.0 / per_s
    );
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let values = report();
    assert_eq!(values.len(), 150);
    let j = json(&values);
    let c = csv_gbk(&values);
    let x = include_bytes!("../../../tests/cases/xlsx-template/input.xlsx");
    for body in [&j[..], &c[..], &x[..]] {
        assert!(!parse(body).unwrap().values.is_empty());
    }
    let strings: Vec<String> = parse(&j)
        .unwrap()
        .values
        .into_iter()
        .filter_map(|v| match v.value {
            Cell::Text(t) => Some(t.into_string()),
            _ => None,
        })
        .collect();
    println!(
        "one township-month: 150 values, JSON {} B, GB18030 CSV {} B, xlsx {} B",
        j.len(),
        c.len(),
        x.len()
    );
    time("parse JSON (150 values)", j.len(), 2_000, smoke, || {
        black_box(parse(black_box(&j)).unwrap());
    });
    time("parse GB18030 CSV (150 values)", c.len(), 2_000, smoke, || {
        black_box(parse(black_box(&c)).unwrap());
    });
    time("parse filled xlsx template", x.len(), 200, smoke, || {
        black_box(parse(black_box(x)).unwrap());
    });
    time("read 150 value strings", 0, 2_000, smoke, || {
        for s in &strings {
            black_box(read(black_box(s)));
        }
    });
}
