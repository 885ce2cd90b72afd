//! One case per check kind, with the numbers of the domain primer, each
//! declared exactly as a pipeline file would declare it.

use polars::prelude::*;
use serde_json::{Value, json};
use taizhang_model::Quota;

use super::CheckInput;
use crate::checks::CheckConfig;
use crate::definition::Definition as Loaded;
use crate::fixtures::{config, config_with, normalized};

const EXTRA: &str = r#"
[[indicator]]
code = "severe_share"
name = "重度残疾人占比"
unit = "%"
kind = "stock"

[[indicator]]
code = "holders"
name = "持证残疾人数"
unit = "人"
kind = "stock"

[[indicator]]
code = "fair_attendees"
name = "招聘会参会人数"
unit = "人"
kind = "flow"

[[indicator]]
code = "job_intentions"
name = "达成就业意向"
unit = "人"
kind = "flow"

[[indicator]]
code = "ytd_surgeries"
name = "累计白内障手术"
unit = "例"
kind = "cumulative"

[[indicator]]
code = "care_new"
name = "新增护理补贴人数"
unit = "人"
kind = "flow"
"#;

fn run_with(cfg: &Loaded, quotas: &[Quota], decl: &str, docs: &[(&str, &str, Value)], now: &str) -> DataFrame {
    let c: CheckConfig = toml::from_str(decl).unwrap_or_else(|e| panic!("{decl}: {e}"));
    let check = c.build(&cfg.catalog).unwrap();
    let n = normalized(cfg, docs);
    assert_eq!(n.quarantine.height(), 0, "{}", n.quarantine);
    let input = CheckInput {
        quotas,
        ..crate::fixtures::input(cfg, &cfg.pipelines[0], &n, now)
    };
    check.run(&input).unwrap()
}

/// The configuration's first program with exactly the checks `decls` declare.
fn pipeline_with(cfg: &Loaded, decls: &[&str]) -> crate::definition::Pipeline {
    let mut pipeline = cfg.pipelines[0].clone();
    pipeline.checks = decls
        .iter()
        .map(|d| toml::from_str(d).unwrap_or_else(|e| panic!("{d}: {e}")))
        .collect();
    pipeline
}

fn run(cfg: &Loaded, decl: &str, docs: &[(&str, &str, Value)]) -> DataFrame {
    run_with(cfg, &cfg.quotas, decl, docs, "2026-07-10T10:00:00+08:00")
}

fn doc(period: &str, values: Value) -> Value {
    json!({"period": period, "values": values})
}

fn col_str(df: &DataFrame, c: &str) -> Vec<String> {
    df.column(c)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap_or("").to_string())
        .collect()
}

#[test]
fn count_rate_193_households_at_260_holds_6084_at_50_for_six_months_fails() {
    let cfg = config();
    let fuel = r#"kind = "count_rate"
count = "燃油补贴户数"
amount = "燃油补贴金额"
rate = 260
per = "period"
severity = "warning""#;
    let holds = doc(
        "2026-06",
        json!([{"indicator": "燃油补贴户数", "value": 193}, {"indicator": "燃油补贴金额", "value": "5.018万元"}]),
    );
    assert_eq!(run(&cfg, fuel, &[("341124102", "2026-06", holds)]).height(), 0);
    let wrong = doc(
        "2026-06",
        json!([{"indicator": "燃油补贴户数", "value": 193}, {"indicator": "燃油补贴金额", "value": "5.2万元"}]),
    );
    assert_eq!(run(&cfg, fuel, &[("341124102", "2026-06", wrong)]).height(), 1);

    let care = "kind = \"count_rate\"\ncount = \"重度残疾人护理补贴人数\"\namount = \"重度残疾人护理补贴金额\"\nrate = 50\nseverity = \"error\"";
    let half = doc(
        "2026-H1",
        json!([{"indicator": "重度残疾人护理补贴人数", "value": 6084}, {"indicator": "护理补贴金额", "value": "155.67万元"}]),
    );
    let r = run(&cfg, care, &[("341124102", "2026-H1", half)]);
    assert_eq!(r.height(), 1);
    assert_eq!(r.column("observed").unwrap().f64().unwrap().get(0), Some(1_556_700.0));
    assert_eq!(r.column("expected").unwrap().f64().unwrap().get(0), Some(1_825_200.0));
    assert_eq!(col_str(&r, "indicator"), ["severe_care_amount"]);
    assert!(col_str(&r, "message")[0].contains("1825200"), "{r}");
    // A county with its own rate.
    let own = format!("{care}\ncounty_rates = {{ \"341124\" = 42.6370 }}");
    let half = doc(
        "2026-H1",
        json!([{"indicator": "重度残疾人护理补贴人数", "value": 6084}, {"indicator": "护理补贴金额", "value": "155.67万元"}]),
    );
    assert_eq!(run(&cfg, &own, &[("341124102", "2026-H1", half)]).height(), 0);
}

#[test]
fn breakdown_1012_certificates_holds_and_partial_breakdown_is_at_most_the_total() {
    let cfg = config();
    let decl = "kind = \"breakdown\"\nseverity = \"error\"";
    let cats = ["视力", "听力", "言语", "肢体", "智力", "精神", "多重"];
    let mut values = vec![json!({"indicator": "残疾人证核发", "value": 1012})];
    for (c, v) in cats.iter().zip([121, 128, 37, 630, 74, 22, 0]) {
        values.push(json!({"indicator": "残疾人证核发", "category": c, "value": v}));
    }
    assert_eq!(
        run(
            &cfg,
            decl,
            &[("341124102", "2026-06", doc("2026-06", json!(values.clone())))]
        )
        .height(),
        0
    );
    values[4] = json!({"indicator": "残疾人证核发", "category": "肢体", "value": 600});
    let r = run(
        &cfg,
        decl,
        &[("341124102", "2026-06", doc("2026-06", json!(values.clone())))],
    );
    assert_eq!(col_str(&r, "dimension"), ["类别"]);
    // One category missing: skip, not fail (skip-if-any-missing).
    values.remove(4);
    assert_eq!(
        run(&cfg, decl, &[("341124102", "2026-06", doc("2026-06", json!(values)))]).height(),
        0
    );

    // 其中: a partial breakdown may be less than the total, never more.
    let partial = config_with(
        "[[indicator]]\ncode = \"trained_total\"\nname = \"培训总数\"\nunit = \"人\"\nkind = \"flow\"\nbreakdowns = [{ dimension = \"类别\", categories = [\"肢体\", \"视力\"] }]\n",
    );
    let under = doc(
        "2026-06",
        json!([{"indicator": "培训总数", "value": 29}, {"indicator": "培训总数", "category": "肢体", "value": 20}, {"indicator": "培训总数", "category": "视力", "value": 6}]),
    );
    assert_eq!(run(&partial, decl, &[("341124102", "2026-06", under)]).height(), 0);
    let over = doc(
        "2026-06",
        json!([{"indicator": "培训总数", "value": 20}, {"indicator": "培训总数", "category": "肢体", "value": 20}, {"indicator": "培训总数", "category": "视力", "value": 6}]),
    );
    let r = run(&partial, decl, &[("341124102", "2026-06", over)]);
    assert!(col_str(&r, "message")[0].contains("parts exceed the total"), "{r}");
}

#[test]
fn ratio_90_33_percent_is_145_plus_350_over_548() {
    let cfg = config_with(EXTRA);
    let decl = r#"kind = "ratio"
ratio = "重度残疾人占比"
numerator = "重度残疾人护理补贴人数[一级] + 重度残疾人护理补贴人数[二级]"
denominator = "持证残疾人数"
severity = "warning""#;
    let values = |share: &str| {
        doc(
            "2026-06",
            json!([
            {"indicator": "重度残疾人占比", "value": share},
            {"indicator": "重度残疾人护理补贴人数", "category": "一级", "value": 145},
            {"indicator": "重度残疾人护理补贴人数", "category": "二级", "value": 350},
            {"indicator": "持证残疾人数", "value": 548}]),
        )
    };
    assert_eq!(
        run(&cfg, decl, &[("341124102", "2026-06", values("90.33%"))]).height(),
        0
    );
    let r = run(&cfg, decl, &[("341124102", "2026-06", values("93.5%"))]);
    assert_eq!(r.height(), 1);
    assert!((r.column("expected").unwrap().f64().unwrap().get(0).unwrap() - 90.328).abs() < 0.001);
}

#[test]
fn part_of_whole_26_intentions_among_29_attendees() {
    let cfg = config_with(EXTRA);
    let decl = "kind = \"part_of_whole\"\npart = \"达成就业意向\"\nwhole = \"招聘会参会人数\"\nseverity = \"warning\"";
    let v = |part: i64| {
        doc(
            "2026-06",
            json!([{"indicator": "达成就业意向", "value": part}, {"indicator": "招聘会参会人数", "value": 29}]),
        )
    };
    assert_eq!(run(&cfg, decl, &[("341124102", "2026-06", v(26))]).height(), 0);
    assert_eq!(run(&cfg, decl, &[("341124102", "2026-06", v(30))]).height(), 1);
    // A declared rule with a message template and never-skip strategy.
    let rule = "kind = \"rule\"\nname = \"intentions\"\nleft = \"job_intentions\"\nop = \"≤\"\nright = \"fair_attendees\"\nmissing = \"never\"\nseverity = \"info\"\nmessage = \"{township} {period}: {left} > {right}\"";
    let only_part = doc("2026-06", json!([{"indicator": "达成就业意向", "value": 3}]));
    let r = run(&cfg, rule, &[("341124102", "2026-06", only_part)]);
    assert_eq!(col_str(&r, "message"), ["大墅镇(341124102) 2026-06: 3 > 0"]);
}

#[test]
fn year_to_date_never_decreases_and_stock_moves_by_new_minus_exits() {
    let cfg = config_with(EXTRA);
    let ytd = |p: &str, v: i64| {
        (
            ("341124102"),
            p.to_string(),
            doc(p, json!([{"indicator": "累计白内障手术", "value": v}])),
        )
    };
    let docs: Vec<_> = [("2026-01", 5), ("2026-02", 9), ("2026-03", 7)]
        .iter()
        .map(|(p, v)| ytd(p, *v))
        .collect();
    let docs: Vec<(&str, &str, Value)> = docs.iter().map(|(t, p, d)| (*t, p.as_str(), d.clone())).collect();
    let r = run(&cfg, "kind = \"cumulative\"\nseverity = \"error\"", &docs);
    assert_eq!(col_str(&r, "period"), ["2026-03"]);

    // 2,577 recipients = 2,504 + 73 new holds; 2,600 ≠ 2,577 + 10 fails.
    let sf = |p: &str, stock: i64, new: i64| {
        doc(
            p,
            json!([{"indicator": "重度残疾人护理补贴人数", "value": stock}, {"indicator": "新增护理补贴人数", "value": new}]),
        )
    };
    let decl = "kind = \"stock_flow\"\nstock = \"severe_care_recipients\"\nnew = \"care_new\"\nseverity = \"warning\"";
    let r = run(
        &cfg,
        decl,
        &[
            ("341124102", "2026-05", sf("2026-05", 2504, 12)),
            ("341124102", "2026-06", sf("2026-06", 2577, 73)),
            ("341124102", "2026-07", sf("2026-07", 2600, 10)),
            // A gap in the months is not a failure: there is no previous stock.
            ("341124104", "2026-03", sf("2026-03", 100, 1)),
            ("341124104", "2026-06", sf("2026-06", 150, 1)),
        ],
    );
    assert_eq!(col_str(&r, "period"), ["2026-07"]);
    assert_eq!(r.column("expected").unwrap().f64().unwrap().get(0), Some(2587.0));
}

#[test]
fn quota_bands_at_2026_07_10_and_decomposition() {
    let cfg = config();
    let decl = "kind = \"quota_progress\"\nseverity = \"warning\"";
    let h1 = |n: i64| doc("2026-H1", json!([{"indicator": "白内障复明手术", "value": n}]));
    // Quota 24 each; half the year is due: 25% is behind, 50% on track, 167% far ahead.
    let r = run(
        &cfg,
        decl,
        &[
            ("341124102", "2026-H1", h1(6)),
            ("341124104", "2026-H1", h1(12)),
            ("341124105", "2026-H1", h1(40)),
        ],
    );
    let r = r
        .lazy()
        .filter(col("indicator").eq(lit("cataract_surgery")))
        .collect()
        .unwrap();
    let got: Vec<(String, String)> = col_str(&r, "township").into_iter().zip(col_str(&r, "rule")).collect();
    assert!(got.contains(&("341124102".into(), "quota_behind".into())), "{got:?}");
    assert!(got.contains(&("341124105".into(), "quota_far_ahead".into())), "{got:?}");
    assert!(
        !got.iter().any(|(t, _)| t == "341124104"),
        "on track is not a failure: {got:?}"
    );
    assert!(
        !got.iter().any(|(_, rule)| rule == "quota_decomposition"),
        "the shipped quotas add up"
    );
    // At 2026-03-10 (2 months due: 17%), 6 of 24 (25%) is on track.
    let early = run_with(
        &cfg,
        &cfg.quotas,
        decl,
        &[("341124102", "2026-H1", h1(6))],
        "2026-03-10T10:00:00+08:00",
    );
    assert_eq!(rows_for(&early, "341124102", "cataract_surgery"), 0);

    let mut quotas = cfg.quotas.clone();
    quotas.retain(|q| !(q.code == "341124109" && q.indicator == "cataract_surgery"));
    let r = run_with(&cfg, &quotas, decl, &[], "2026-07-10T10:00:00+08:00");
    let d = r
        .lazy()
        .filter(col("rule").eq(lit("quota_decomposition")))
        .collect()
        .unwrap();
    assert_eq!(col_str(&d, "township"), ["341124"]);
    assert_eq!(d.column("observed").unwrap().f64().unwrap().get(0), Some(222.0));
    assert_eq!(d.column("expected").unwrap().f64().unwrap().get(0), Some(240.0));
}

#[test]
fn quota_progress_is_made_by_the_batch_that_owns_the_year_only() {
    // A year's progress belongs to the province's last monthly batch:
    // the batches before it make none (and no decomposition either).
    let cfg = config();
    let decl = "kind = \"quota_progress\"\nseverity = \"warning\"";
    let pipeline = pipeline_with(&cfg, &[decl]);
    let mut quotas = cfg.quotas.clone();
    quotas.retain(|q| !(q.code == "341124109" && q.indicator == "cataract_surgery"));
    let month = |m: &str, n: i64| doc(m, json!([{"indicator": "白内障复明手术", "value": n}]));
    let n = normalized(
        &cfg,
        &[
            ("341124102", "2026-05", month("2026-05", 1)),
            ("341124105", "2026-06", month("2026-06", 40)),
        ],
    );
    let facts = super::quota::quota_facts(&n.facts, &cfg.catalog).unwrap();
    let periods = vec!["2026-05".to_string(), "2026-06".to_string()];
    let made = |part: Option<&super::Part>| {
        let input = CheckInput {
            quotas: &quotas,
            quota_facts: Some(&facts),
            part,
            ..crate::fixtures::input(&cfg, &pipeline, &n, "2026-07-10T10:00:00+08:00")
        };
        pipeline.checks[0].build(&cfg.catalog).unwrap().run(&input).unwrap()
    };
    let whole = made(None);
    let rules = col_str(&whole, "rule");
    assert!(rules.iter().any(|r| r == "quota_behind") && rules.iter().any(|r| r == "quota_decomposition"));
    let may = super::Part {
        period: Some("2026-05".into()),
        last: false,
        periods: periods.clone(),
    };
    assert_eq!(made(Some(&may)).height(), 0);
    let june = super::Part {
        period: Some("2026-06".into()),
        last: true,
        periods,
    };
    assert_eq!(made(Some(&june)), whole);
}

#[test]
fn quota_progress_with_earlier_rows_and_no_year_to_date_is_an_error_not_a_wrong_progress() {
    // The look-back rows a batch is given are not the year to date.
    let cfg = config();
    let pipeline = pipeline_with(&cfg, &["kind = \"quota_progress\"\nseverity = \"warning\""]);
    let month = |m: &str| doc(m, json!([{"indicator": "白内障复明手术", "value": 3}]));
    let n = normalized(&cfg, &[("341124102", "2026-05", month("2026-05"))]);
    let input = CheckInput {
        earlier: Some(&n.facts),
        ..crate::fixtures::input(&cfg, &pipeline, &n, "2026-07-10T10:00:00+08:00")
    };
    let err = super::run_raw(&input, true).unwrap_err().to_string();
    assert!(err.contains("year to date"), "{err}");
    let facts = super::quota::quota_facts(&n.facts, &cfg.catalog).unwrap();
    let input = CheckInput {
        quota_facts: Some(&facts),
        ..input
    };
    assert!(super::run_raw(&input, true).unwrap().height() > 0);
}

fn rows_for(df: &DataFrame, township: &str, indicator: &str) -> usize {
    df.clone()
        .lazy()
        .filter(
            col("township")
                .eq(lit(township))
                .and(col("indicator").eq(lit(indicator))),
        )
        .collect()
        .unwrap()
        .height()
}

#[test]
fn outlier_found_seasonal_zero_and_short_history_not_flagged() {
    let cfg = config();
    let decl = "kind = \"outlier\"\nseverity = \"warning\"";
    let series = |t: &'static str, vals: &[i64]| -> Vec<(&'static str, String, Value)> {
        vals.iter()
            .enumerate()
            .map(|(i, v)| {
                let p = format!("2026-{:02}", i + 1);
                (
                    t,
                    p.clone(),
                    doc(&p, json!([{"indicator": "基本康复服务", "value": v}])),
                )
            })
            .collect()
    };
    let mut all = series("341124100", &[30, 32, 29, 31, 33, 138]);
    all.extend(series("341124101", &[30, 0, 31, 29, 32, 30]));
    all.extend(series("341124104", &[5, 5, 90]));
    let docs: Vec<(&str, &str, Value)> = all.iter().map(|(t, p, d)| (*t, p.as_str(), d.clone())).collect();
    let r = run(&cfg, decl, &docs);
    let hist = r
        .lazy()
        .filter(col("rule").eq(lit("outlier_history")))
        .collect()
        .unwrap();
    assert_eq!(col_str(&hist, "township"), ["341124100"], "{hist}");
    assert_eq!(col_str(&hist, "period"), ["2026-06"]);
}

#[test]
fn implausible_magnitude_is_an_error_and_held_out() {
    let cfg = config();
    let decl = "kind = \"plausibility\"\nseverity = \"error\"";
    let d = doc(
        "2026-06",
        json!([{"indicator": "轮椅发放", "value": "138674万辆"}, {"indicator": "白内障复明手术", "value": 12}]),
    );
    let r = run(&cfg, decl, &[("341124102", "2026-06", d)]);
    assert_eq!(col_str(&r, "indicator"), ["wheelchairs"]);
    assert!(col_str(&r, "message")[0].contains("138674万辆"));
    let bounded = format!("{decl}\nbounds = {{ cataract_surgery = 10 }}");
    let d = doc("2026-06", json!([{"indicator": "白内障复明手术", "value": 12}]));
    assert_eq!(run(&cfg, &bounded, &[("341124102", "2026-06", d)]).height(), 1);
}

#[test]
fn population_is_the_default_ceiling_for_counts_of_people() {
    // 大墅镇 has 31,000 residents (config/registry.toml). With the catalog's
    // per-month bound lifted, 40,000 care recipients is still implausible and
    // the message says why; 20,000 is not.
    let cfg = config();
    assert_eq!(cfg.registry.get("341124102").unwrap().population, Some(31_000));
    let decl = "kind = \"plausibility\"\nseverity = \"error\"\nbounds = { severe_care_recipients = 1e9, severe_care_amount = 1e12 }";
    let d = doc(
        "2026-06",
        json!([{"indicator": "重度残疾人护理补贴人数", "value": 40000},
               {"indicator": "重度残疾人护理补贴金额", "value": 40000}]),
    );
    let r = run(&cfg, decl, &[("341124102", "2026-06", d)]);
    assert_eq!(
        col_str(&r, "indicator"),
        ["severe_care_recipients"],
        "元 is not a count of people"
    );
    assert_eq!(r.column("expected").unwrap().f64().unwrap().get(0), Some(31_000.0));
    assert!(col_str(&r, "message")[0].contains("常住人口"), "{r}");
    let d = doc(
        "2026-06",
        json!([{"indicator": "重度残疾人护理补贴人数", "value": 20000}]),
    );
    assert_eq!(run(&cfg, decl, &[("341124102", "2026-06", d)]).height(), 0);
}

#[test]
fn history_bounds_a_value_no_configured_bound_catches() {
    // 元 amounts: no population ceiling, the catalog bound lifted. After three
    // months near 50,000元, 5.018亿元 (万 typed for 元, twice) is flagged; a
    // month at 15× is a big month, not an implausible one.
    let cfg = config();
    let decl = "kind = \"plausibility\"\nseverity = \"error\"\nbounds = { fuel_amount = 1e12 }";
    let months = |june: Value| {
        [
            ("2026-03", json!(48_000)),
            ("2026-04", json!(50_180)),
            ("2026-05", json!(51_000)),
            ("2026-06", june),
        ]
        .into_iter()
        .map(|(p, v)| {
            (
                "341124102",
                p,
                doc(p, json!([{"indicator": "燃油补贴金额", "value": v}])),
            )
        })
        .collect::<Vec<_>>()
    };
    let r = run(&cfg, decl, &months(json!("5.018亿元")));
    assert_eq!(col_str(&r, "period"), ["2026-06"], "{r}");
    assert_eq!(
        r.column("expected").unwrap().f64().unwrap().get(0),
        Some(51_000.0 * 20.0)
    );
    assert!(col_str(&r, "message")[0].contains("以往最高月值的 20 倍"), "{r}");
    assert_eq!(run(&cfg, decl, &months(json!(765_000))).height(), 0);
    // Too little history: no history bound at all.
    let few = format!("{decl}\nmin_history = 4");
    assert_eq!(run(&cfg, &few, &months(json!("5.018亿元"))).height(), 0);
}

#[test]
fn a_rule_naming_an_unknown_indicator_or_category_does_not_build() {
    let cfg = config();
    for decl in [
        "kind = \"rule\"\nname = \"x\"\nleft = \"残疾人证核发\"\nop = \"=\"\nright = \"不存在的指标\"\nseverity = \"error\"",
        "kind = \"rule\"\nname = \"x\"\nleft = \"残疾人证核发[性别:男]\"\nop = \"=\"\nright = \"1\"\nseverity = \"error\"",
        "kind = \"rule\"\nname = \"x\"\nleft = \"1\"\nop = \"~\"\nright = \"1\"\nseverity = \"error\"",
    ] {
        let c: CheckConfig = toml::from_str(decl).unwrap();
        assert!(c.build(&cfg.catalog).is_err(), "{decl}");
    }
}

#[test]
fn a_declaration_with_a_misspelt_key_is_rejected_naming_it_and_defaults_fill_the_rest() {
    for (kind, extra) in [
        ("breakdown", "severity = \"error\""),
        ("outlier", "severity = \"warning\""),
        ("plausibility", "severity = \"warning\""),
        (
            "count_rate",
            "count = \"a\"\namount = \"b\"\nrate = 1.0\nseverity = \"error\"",
        ),
    ] {
        let decl = format!("kind = \"{kind}\"\n{extra}\ntolerence = 1");
        let err = toml::from_str::<CheckConfig>(&decl).unwrap_err().to_string();
        assert!(err.contains("unknown field `tolerence`"), "{kind}: {err}");
    }
    let c: CheckConfig = toml::from_str("kind = \"outlier\"\nseverity = \"warning\"").unwrap();
    let CheckConfig::Outlier(o) = c else { panic!("{c:?}") };
    assert_eq!((o.threshold, o.min_points), (3.5, 6));
    let err = toml::from_str::<CheckConfig>("kind = \"outlyer\"\nseverity = \"warning\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant `outlyer`"), "{err}");
}

#[test]
fn a_typo_in_a_shaped_rule_names_the_key_it_is_in() {
    let cfg = config();
    for (decl, key) in [
        (
            "kind = \"count_rate\"\ncount = \"燃油补贴户\"\namount = \"燃油补贴金额\"\nrate = 260.0\nseverity = \"error\"",
            "count: ",
        ),
        (
            "kind = \"count_rate\"\ncount = \"燃油补贴户数\"\namount = \"燃油补贴金\"\nrate = 260.0\nseverity = \"error\"",
            "amount: ",
        ),
        (
            "kind = \"part_of_whole\"\npart = \"新增就业\"\nwhole = \"职业技能培\"\nseverity = \"error\"",
            "whole: ",
        ),
    ] {
        let c: CheckConfig = toml::from_str(decl).unwrap();
        let e = c.build(&cfg.catalog).err().unwrap_or_else(|| panic!("{decl} built"));
        assert!(e.starts_with(key) && e.contains("unknown indicator"), "{decl}: {e}");
    }
}

/// 强制上报 + 说明 holds an overridable failure in; an impossible value
/// (below zero, over a hard bound) is held out whatever the explanation.
#[test]
fn an_explanation_holds_in_what_may_be_explained_and_never_an_impossible_value() {
    let cfg = config();
    let explained = |period: &str, values: Value| json!({"period": period, "explanation": "已核实", "values": values});
    let docs = [
        (
            "341124102",
            "2026-05",
            explained(
                "2026-05",
                json!([{"indicator": "白内障复明手术", "value": -5},
                       {"indicator": "轮椅发放", "value": 1e9}]),
            ),
        ),
        (
            "341124103",
            "2026-05",
            explained(
                "2026-05",
                json!([{"indicator": "残疾人证核发", "value": 11},
                       {"indicator": "残疾人证核发", "category": "视力", "value": 9},
                       {"indicator": "残疾人证核发", "category": "听力", "value": 0},
                       {"indicator": "残疾人证核发", "category": "言语", "value": 0},
                       {"indicator": "残疾人证核发", "category": "肢体", "value": 0},
                       {"indicator": "残疾人证核发", "category": "智力", "value": 0},
                       {"indicator": "残疾人证核发", "category": "精神", "value": 0},
                       {"indicator": "残疾人证核发", "category": "多重", "value": 0}]),
            ),
        ),
    ];
    let n = normalized(&cfg, &docs);
    let r = crate::fixtures::checked(&cfg, &n, "2026-06-10T00:00:00Z");
    let rows: Vec<(String, String, bool)> = (0..r.height())
        .map(|i| {
            (
                r.column("rule").unwrap().str().unwrap().get(i).unwrap().to_string(),
                r.column("indicator")
                    .unwrap()
                    .str()
                    .unwrap()
                    .get(i)
                    .unwrap_or("")
                    .to_string(),
                r.column("excluded").unwrap().bool().unwrap().get(i).unwrap(),
            )
        })
        .collect();
    for ind in ["cataract_surgery", "wheelchairs"] {
        assert!(
            rows.contains(&("impossible".into(), ind.into(), true)),
            "{ind} not held out: {rows:?}"
        );
    }
    assert!(
        rows.contains(&("breakdown".into(), "certificates_issued".into(), false)),
        "{rows:?}"
    );
}

/// A mobile number written where a count goes is an impossible value, and
/// its messages (which reach alerts and chat groups) mask it as every echo
/// of what a township wrote is masked.
#[test]
fn a_phone_number_written_as_a_count_is_masked_in_its_message() {
    let cfg = config();
    let docs = [(
        "341124102",
        "2026-05",
        json!({"period": "2026-05", "values": [
            {"indicator": "白内障复明手术", "value": 13812345678i64},
            {"indicator": "残疾人证核发", "value": 250}]}),
    )];
    let n = normalized(&cfg, &docs);
    let r = crate::fixtures::checked(&cfg, &n, "2026-06-10T00:00:00Z");
    let messages = col_str(&r, "message");
    let about = |what: &str| {
        let mine = messages
            .iter()
            .filter(|m| m.contains("(341124102)") && m.contains(what));
        mine.cloned().collect::<Vec<_>>()
    };
    let phone = about("白内障复明手术");
    assert!(!phone.is_empty(), "{messages:#?}");
    assert!(
        phone
            .iter()
            .all(|m| m.contains("138********") && !m.contains("13812345678")),
        "{phone:#?}"
    );
    // (An ID card number is too large to be read as a number: its value
    // is quarantined, its text masked, as `normalize` tests.)
    // Counts are not numbers to mask.
    assert_eq!(super::num(250.0), "250");
    assert_eq!(super::num(12345678901.0), "12345678901", "11 digits not a mobile");
    assert_eq!(super::num(4.567), "4.57");
}

#[test]
fn a_year_reported_without_quotas_says_progress_is_not_checked() {
    let cfg = config();
    let decl = "kind = \"quota_progress\"\nseverity = \"warning\"";
    let docs = [
        (
            "341124102",
            "2026-05",
            doc("2026-05", json!([{"indicator": "白内障复明手术", "value": 3}])),
        ),
        (
            "341124102",
            "2027-01",
            doc("2027-01", json!([{"indicator": "白内障复明手术", "value": 2}])),
        ),
    ];
    let missing = |r: &DataFrame| -> Vec<String> {
        let rule = col_str(r, "rule");
        let period = col_str(r, "period");
        let township = col_str(r, "township");
        (0..r.height())
            .filter(|&i| rule[i] == "quota_missing")
            .map(|i| format!("{}/{}", township[i], period[i]))
            .collect()
    };
    // The shipped quotas cover 2026 only.
    let r = run_with(&cfg, &cfg.quotas, decl, &docs, "2027-02-10T10:00:00+08:00");
    assert_eq!(missing(&r), ["341124/2027"], "{r}");
    assert!(
        col_str(&r, "message")
            .iter()
            .any(|m| m.contains("全椒县(341124) 2027年: 没有任务数"))
    );
    let r = run_with(&cfg, &[], decl, &docs, "2027-02-10T10:00:00+08:00");
    assert_eq!(missing(&r), ["341124/2026", "341124/2027"], "{r}");
}

#[test]
fn a_period_checked_with_the_rows_before_it_that_its_checks_read_fails_as_checked_with_all_history() {
    // What a run does with a (province, period) batch: the period's facts,
    // and of the periods before only what the batch before carries
    // (`look_back`) and the year to date.
    let cfg = config_with(EXTRA);
    let decls = [
        "kind = \"cumulative\"\nseverity = \"error\"",
        "kind = \"stock_flow\"\nstock = \"severe_care_recipients\"\nnew = \"care_new\"\nseverity = \"warning\"",
        "kind = \"plausibility\"\nseverity = \"error\"\nbounds = { fuel_amount = 1e12 }",
        "kind = \"quota_progress\"\nseverity = \"warning\"",
        "kind = \"outlier\"\nseverity = \"warning\"",
    ];
    let pipeline = pipeline_with(&cfg, &decls);
    let months = ["2026-03", "2026-04", "2026-05", "2026-06", "2026-07"];
    // A township's months: cumulative, stock, new, fuel amount; and its
    // cataract surgeries each month.
    struct Months {
        code: &'static str,
        ytd: [i64; 5],
        stock: [i64; 5],
        new: [i64; 5],
        fuel: [Value; 5],
        surgeries: i64,
    }
    let series = [
        Months {
            code: "341124102",
            ytd: [5, 9, 12, 11, 10],
            stock: [2500, 2504, 2510, 2520, 2530],
            new: [0, 4, 6, 5, 10],
            fuel: [
                json!(48_000),
                json!(50_180),
                json!(51_000),
                json!(49_000),
                json!("5.018亿元"),
            ],
            surgeries: 1,
        },
        Months {
            code: "341124104",
            ytd: [1, 2, 3, 4, 5],
            stock: [100, 101, 102, 103, 110],
            new: [0, 1, 1, 1, 1],
            fuel: [json!(900), json!(950), json!(1000), json!(980), json!(990)],
            surgeries: 3,
        },
        Months {
            code: "341124105",
            ytd: [2, 2, 3, 3, 4],
            stock: [50, 51, 52, 53, 54],
            new: [0, 1, 1, 1, 1],
            fuel: [json!(500), json!(520), json!(510), json!(530), json!(525)],
            surgeries: 10,
        },
    ];
    let mut docs = vec![];
    for Months {
        code,
        ytd,
        stock,
        new,
        fuel,
        surgeries,
    } in &series
    {
        for (i, m) in months.iter().enumerate() {
            // A breakdown no look-back check reads.
            let values = json!([
                {"indicator": "残疾人证核发", "value": 30},
                {"indicator": "残疾人证核发", "category": "视力", "value": 10},
                {"indicator": "残疾人证核发", "category": "听力", "value": 8},
                {"indicator": "残疾人证核发", "category": "肢体", "value": 12},
                {"indicator": "累计白内障手术", "value": ytd[i]},
                {"indicator": "重度残疾人护理补贴人数", "value": stock[i]},
                {"indicator": "新增护理补贴人数", "value": new[i]},
                {"indicator": "燃油补贴金额", "value": fuel[i]},
                {"indicator": "白内障复明手术", "value": surgeries},
            ]);
            docs.push((*code, *m, doc(m, values)));
        }
    }
    let n = normalized(&cfg, &docs);
    assert_eq!(n.quarantine.height(), 0, "{}", n.quarantine);
    // July's failures checked over all periods, and checked as a run's
    // batch: July's rows with what the batches before carried.
    let split_as_whole = |pipeline: &crate::definition::Pipeline| -> DataFrame {
        let (all, batches) = whole_and_batches(&cfg, pipeline, &n, &months, "2026-08-10T10:00:00+08:00");
        let (july, carried) = batches.last().unwrap();
        assert_eq!(july, &all[months.len() - 1], "{:?}", pipeline.checks);
        // No more than the rows the look-back checks read.
        let read = n
            .facts
            .clone()
            .lazy()
            .filter(col("period").neq(lit("2026-07")))
            .filter(
                super::earlier_rows(pipeline, &cfg.catalog)
                    .unwrap()
                    .unwrap_or(lit(false)),
            )
            .collect()
            .unwrap();
        assert!(carried.height() <= read.height());
        all[months.len() - 1].clone()
    };
    let all = split_as_whole(&pipeline);
    let rules = col_str(&all, "rule");
    for rule in [
        "ytd_decreased",
        "stock_flow",
        "implausible",
        "quota_behind",
        "quota_far_ahead",
    ] {
        assert!(rules.iter().any(|r| r == rule), "{rule} not in {all}");
    }
    // Each look-back check alone: the rows it selects are enough for it.
    for decl in &decls[..4] {
        let alone = pipeline_with(&cfg, &[decl]);
        assert!(split_as_whole(&alone).height() > 0, "{decl}");
    }
}

/// `n`'s failures of each of `months` (and of its year), checked over every
/// period at once, and checked as a run checks a province's batches, oldest
/// first: each month's rows with what the batch before carried (its
/// look-back rows and year to date), with those look-back rows.
fn whole_and_batches(
    cfg: &Loaded,
    pipeline: &crate::definition::Pipeline,
    n: &crate::normalize::Normalized,
    months: &[&str],
    now: &str,
) -> (Vec<DataFrame>, Vec<(DataFrame, DataFrame)>) {
    let failures = |i: &CheckInput<'_>, month: &str| {
        let mut both = super::run_raw(i, false).unwrap();
        both.vstack_mut(&super::run_raw(i, true).unwrap()).unwrap();
        // The year's results with its last month (a run's last batch of
        // the province has them).
        let year = &month[..4];
        let last = months.iter().rev().find(|m| m.starts_with(year)) == Some(&month);
        let of_year = col("period").eq(lit(year)).and(lit(last));
        both.lazy()
            .filter(col("period").eq(lit(month)).or(of_year))
            .sort(["township", "period", "rule", "indicator"], Default::default())
            .collect()
            .unwrap()
    };
    let base = crate::fixtures::input(cfg, pipeline, n, now);
    let whole = months.iter().map(|m| failures(&base, m)).collect();
    let (mut carried, mut ytd): (Option<DataFrame>, Option<super::quota::QuotaFacts>) = (None, None);
    let mut series: Option<DataFrame> = None;
    let mut batches = vec![];
    for m in months {
        let facts = n
            .facts
            .clone()
            .lazy()
            .filter(col("period").eq(lit(*m)))
            .select(super::CHECKED_COLUMNS.map(col))
            .collect()
            .unwrap();
        let own = super::quota::quota_facts(&facts, &cfg.catalog).unwrap();
        let year_to_date = match &ytd {
            Some(y) => y.then(&own, &cfg.catalog).unwrap(),
            None => own,
        };
        let input = CheckInput {
            facts: &facts,
            earlier: carried.as_ref(),
            quota_facts: Some(&year_to_date),
            series: series.as_ref(),
            ..base.clone()
        };
        let got = failures(&input, m);
        let before = carried.clone().unwrap_or_default();
        carried = Some(super::look_back(pipeline, &cfg.catalog, carried.as_ref(), &facts).unwrap());
        series = Some(super::plausibility::series_after(series.as_ref(), &facts).unwrap());
        ytd = Some(year_to_date);
        batches.push((got, before));
    }
    (whole, batches)
}

#[test]
fn fourteen_months_checked_batch_by_batch_fail_as_checked_whole_and_carry_a_few_months_of_rows() {
    // Two townships from July 2025 to August 2026 (a new year in between):
    // one that reports every month, one that skips March; a surgery month
    // far over its history, a year to date that goes down, a stock that
    // does not follow from the one before.
    let cfg = config_with(EXTRA);
    let decls = [
        "kind = \"cumulative\"\nseverity = \"error\"",
        "kind = \"stock_flow\"\nstock = \"severe_care_recipients\"\nnew = \"care_new\"\nseverity = \"warning\"",
        "kind = \"plausibility\"\nseverity = \"error\"",
        "kind = \"quota_progress\"\nseverity = \"warning\"",
    ];
    let pipeline = pipeline_with(&cfg, &decls);
    let months = [
        "2025-07", "2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01", "2026-02", "2026-03", "2026-04",
        "2026-05", "2026-06", "2026-07", "2026-08",
    ];
    let surgeries = [3, 0, 5, 2, 0, 4, 150, 3, 0, 2, 6, 1, 4000, 2];
    let ytd = [5, 9, 8, 10, 12, 15, 1, 3, 2, 4, 6, 6, 5, 7];
    let stock = [100, 102, 103, 103, 110, 111, 111, 115, 116, 116, 120, 121, 121, 130];
    let new = [0, 2, 1, 0, 7, 1, 0, 4, 1, 0, 4, 1, 3, 9];
    let mut docs = vec![];
    for (i, m) in months.iter().enumerate() {
        for (township, scale) in [("341124102", 1), ("341124104", 2)] {
            if township == "341124104" && *m == "2026-03" {
                continue;
            }
            let values = json!([
                {"indicator": "白内障复明手术", "value": surgeries[i] * scale},
                {"indicator": "累计白内障手术", "value": ytd[i] * scale},
                {"indicator": "重度残疾人护理补贴人数", "value": stock[i] * scale},
                {"indicator": "新增护理补贴人数", "value": new[i] * scale},
                {"indicator": "残疾人证核发", "category": "视力", "value": i},
            ]);
            docs.push((township, *m, doc(m, values)));
        }
    }
    let n = normalized(&cfg, &docs);
    assert_eq!(n.quarantine.height(), 0, "{}", n.quarantine);
    let (whole, batches) = whole_and_batches(&cfg, &pipeline, &n, &months, "2026-09-10T10:00:00+08:00");
    let mut rules = std::collections::BTreeSet::new();
    for ((m, all), (got, carried)) in months.iter().zip(&whole).zip(&batches) {
        assert_eq!(got, all, "{m}");
        rules.extend(col_str(all, "rule"));
        // However long the history, a few rows of each series are carried:
        // its largest month, its last three non-zero ones, its last value
        // of the year before.
        if carried.width() > 0 {
            let per_series = carried
                .clone()
                .lazy()
                .group_by([col("township"), col("indicator"), col("dimension"), col("category")])
                .agg([len().alias("n")])
                .select([col("n").max()])
                .collect()
                .unwrap();
            let most = per_series.column("n").unwrap().u32().unwrap().get(0).unwrap();
            assert!(most <= 5, "{m}: {most} rows of a series carried: {carried}");
        }
    }
    for rule in ["ytd_decreased", "stock_flow", "implausible", "quota_behind"] {
        assert!(rules.contains(rule), "{rule} not in {rules:?}");
    }
    // What August is checked with: not the 13 months before it.
    let read = n
        .facts
        .clone()
        .lazy()
        .filter(col("period").neq(lit("2026-08")))
        .filter(super::earlier_rows(&pipeline, &cfg.catalog).unwrap().unwrap())
        .collect()
        .unwrap();
    let heights: Vec<usize> = batches.iter().map(|(_, c)| c.height()).collect();
    assert!(heights[13] * 2 < read.height(), "{heights:?} of {}", read.height());
    assert!(heights[13] <= heights[6] + 6, "{heights:?}");
}

#[test]
fn a_batch_reports_overdue_for_its_period_and_the_last_one_for_periods_no_batch_has() {
    // 2026-01 … 2026-06 are overdue at 2026-07-10 for whoever did not
    // report; the province has batches for March and May only.
    let cfg = config();
    let decl = "kind = \"overdue\"\nseverity = \"error\"";
    let c: CheckConfig = toml::from_str(decl).unwrap();
    let mut pipeline = cfg.pipelines[0].clone();
    pipeline.checks = vec![c];
    let n = normalized(&cfg, &[]);
    let periods = |part: Option<&super::Part>| {
        let input = CheckInput {
            part,
            ..crate::fixtures::input(&cfg, &pipeline, &n, "2026-07-10T10:00:00+08:00")
        };
        // The check itself skips what is not its batch's (not only run_raw's
        // filter after it): each batch of a year would otherwise make every
        // period's rows again.
        let r = pipeline.checks[0].build(&cfg.catalog).unwrap().run(&input).unwrap();
        assert_eq!(r.height() % cfg.registry.townships.len(), 0, "every township");
        let mut p = col_str(&r, "period");
        p.dedup();
        p
    };
    let batch = |period: &str, last: bool| super::Part {
        period: Some(period.to_string()),
        last,
        periods: vec!["2026-03".into(), "2026-05".into()],
    };
    assert_eq!(
        periods(None),
        ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
    );
    assert_eq!(periods(Some(&batch("2026-03", false))), ["2026-03"]);
    assert_eq!(
        periods(Some(&batch("2026-05", true))),
        ["2026-01", "2026-02", "2026-04", "2026-05", "2026-06"]
    );
}

#[test]
fn overdue_names_who_neither_reported_nor_was_unreachable_and_a_late_report_as_late() {
    // June is due by July 5th: at July 10th, of four townships, one sent
    // June on time, one late, one could not be reached, one sent nothing.
    let cfg = config();
    let pipeline = pipeline_with(&cfg, &["kind = \"overdue\"\nseverity = \"error\""]);
    let towns: Vec<&str> = cfg.registry.townships.keys().take(4).map(String::as_str).collect();
    let values = json!([{"indicator": "残疾人证核发", "value": 1}]);
    let mut n = normalized(
        &cfg,
        &[
            (towns[0], "2026-06", doc("2026-06", values.clone())),
            (towns[1], "2026-06", doc("2026-06", values)),
        ],
    );
    let status: Vec<&str> = col_str(&n.submissions, "township")
        .iter()
        .map(|t| if t == towns[1] { "late" } else { "on_time" })
        .collect();
    n.submissions.with_column(Column::new("status".into(), status)).unwrap();
    let unreachable = std::collections::HashSet::from([(towns[2].to_string(), "2026-06".to_string())]);
    let input = CheckInput {
        unreachable: &unreachable,
        ..crate::fixtures::input(&cfg, &pipeline, &n, "2026-07-10T10:00:00+08:00")
    };
    let r = pipeline.checks[0].build(&cfg.catalog).unwrap().run(&input).unwrap();
    let june = r.lazy().filter(col("period").eq(lit("2026-06"))).collect().unwrap();
    let of = |t: &str| -> Vec<String> {
        let rows = june
            .clone()
            .lazy()
            .filter(col("township").eq(lit(t)))
            .collect()
            .unwrap();
        col_str(&rows, "rule")
    };
    assert_eq!(of(towns[0]), Vec::<String>::new(), "on time");
    assert_eq!(of(towns[1]), ["late"], "late, not overdue");
    assert_eq!(
        of(towns[2]),
        Vec::<String>::new(),
        "unreachable: a fetch failure, not overdue"
    );
    assert_eq!(of(towns[3]), ["overdue"], "nothing sent");
}

#[test]
fn only_an_error_about_an_indicator_may_hold_a_cell_out_and_finish_agrees() {
    use super::{Failure, Rows};
    use taizhang_model::Severity;
    let raw = |severity: Severity, indicator: Option<&str>| {
        let mut rows = Rows::default();
        rows.push(Failure {
            rule: "r",
            severity,
            program: "p",
            township: "341124102",
            period: "2026-05",
            year: 2026,
            indicator,
            dimension: None,
            observed: None,
            expected: None,
            message: "m".into(),
        });
        rows.finish().unwrap()
    };
    // No explanation: an error about an indicator is held out.
    let submissions = df!(
        "township" => ["341124102"],
        "period" => ["2026-05"],
        "explanation" => [None::<&str>],
    )
    .unwrap();
    for (severity, indicator, may) in [
        (Severity::Error, Some("certificates_issued"), true),
        (Severity::Error, None, false),
        (Severity::Warning, Some("certificates_issued"), false),
        (Severity::Info, None, false),
    ] {
        let r = raw(severity, indicator);
        assert_eq!(super::may_hold_out(&r).unwrap(), may, "{severity:?} {indicator:?}");
        let finished = super::finish(&[r], &submissions).unwrap();
        let held = finished.column("excluded").unwrap().bool().unwrap().any();
        assert_eq!(held, may, "finish holds out what may_hold_out says it may");
    }
    assert!(!super::may_hold_out(&Rows::default().finish().unwrap()).unwrap());
}
