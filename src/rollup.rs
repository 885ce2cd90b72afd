//! Roll up: township rows to the county, per indicator, breakdown cell and
//! period, from the rows that passed the error-severity checks; the excluded
//! townships are counted, not hidden. Year-to-date value and progress against
//! the county quota ride along on every row. Pure: no IO, no clock.

use polars::prelude::*;

use crate::catalog::{Catalog, Kind};
use crate::config::Quota;
use crate::registry::Registry;

/// Columns of the county rollup, in order.
pub const ROLLUP_COLUMNS: &[&str] = &[
    "program",
    "county",
    "county_name",
    "period",
    "year",
    "indicator",
    "dimension",
    "category",
    "value",
    "unit",
    "townships_expected",
    "townships_reporting",
    "townships_included",
    "townships_excluded",
    "quota",
    "ytd_value",
    "progress",
];

/// Builds the county rollup.
pub fn county(
    facts: &DataFrame,
    checks: &DataFrame,
    submissions: &DataFrame,
    registry: &Registry,
    quotas: &[Quota],
    catalog: &Catalog,
) -> PolarsResult<DataFrame> {
    let excluded = checks
        .clone()
        .lazy()
        .filter(col("excluded"))
        .select([col("township"), col("period"), col("indicator")])
        .unique(None, UniqueKeepStrategy::First)
        .with_column(lit(true).alias("is_excluded"));
    let keys = [col("township"), col("period"), col("indicator")];
    let marked = facts
        .clone()
        .lazy()
        .join(excluded, keys.clone(), keys, JoinArgs::new(JoinType::Left))
        .with_column(col("is_excluded").fill_null(lit(false)));

    let cell = [
        col("program"),
        col("county"),
        col("period"),
        col("year"),
        col("indicator"),
        col("dimension"),
        col("category"),
    ];
    // Every cell any township reported appears, even when every township
    // of it is excluded: value null, the exclusions counted.
    let kept = col("is_excluded").not();
    let included = marked.clone().group_by(cell.clone()).agg([
        when(col("value").filter(kept.clone()).count().gt(lit(0)))
            .then(col("value").filter(kept.clone()).sum())
            .otherwise(lit(NULL).cast(DataType::Float64))
            .alias("value"),
        col("unit").first().alias("unit"),
        col("township")
            .filter(kept)
            .n_unique()
            .cast(DataType::Int64)
            .alias("townships_included"),
    ]);
    let excluded_counts = marked
        .filter(col("is_excluded"))
        .group_by([col("county"), col("period"), col("indicator")])
        .agg([col("township")
            .n_unique()
            .cast(DataType::Int64)
            .alias("townships_excluded")]);

    // Townships expected per county, and reporting per (county, period).
    let counties = registry.counties();
    let (mut c_code, mut c_name, mut c_n) = (Vec::new(), Vec::new(), Vec::new());
    for (code, name) in &counties {
        c_code.push(code.clone());
        c_name.push(name.clone());
        c_n.push(registry.townships.values().filter(|t| &t.county == code).count() as i64);
    }
    let expected = DataFrame::new_infer_height(vec![
        Column::new("county".into(), c_code),
        Column::new("county_name".into(), c_name),
        Column::new("townships_expected".into(), c_n),
    ])?
    .lazy();
    let t_code: Vec<String> = registry.townships.keys().cloned().collect();
    let t_county: Vec<String> = registry.townships.values().map(|t| t.county.clone()).collect();
    let township_county = DataFrame::new_infer_height(vec![
        Column::new("township".into(), t_code),
        Column::new("county".into(), t_county),
    ])?
    .lazy();
    let reporting = submissions
        .clone()
        .lazy()
        .filter(col("status").neq(lit("quarantined")))
        .join(
            township_county,
            [col("township")],
            [col("township")],
            JoinArgs::new(JoinType::Inner),
        )
        .group_by([col("county"), col("period")])
        .agg([col("township")
            .n_unique()
            .cast(DataType::Int64)
            .alias("townships_reporting")]);

    // County quota: the county's own row, else the sum of its townships'.
    let (mut q_county, mut q_year, mut q_ind, mut q_val, mut q_own) = (vec![], vec![], vec![], vec![], vec![]);
    for q in quotas {
        let (county, own) = match registry.get(&q.code) {
            Some(t) => (t.county.clone(), false),
            None => (q.code.clone(), true),
        };
        q_county.push(county);
        q_year.push(q.year);
        q_ind.push(q.indicator.clone());
        q_val.push(q.quota);
        q_own.push(own);
    }
    let quota = DataFrame::new_infer_height(vec![
        Column::new("county".into(), q_county),
        Column::new("year".into(), q_year),
        Column::new("indicator".into(), q_ind),
        Column::new("q".into(), q_val),
        Column::new("own".into(), q_own),
    ])?
    .lazy()
    .group_by([col("county"), col("year"), col("indicator")])
    .agg([
        col("q").filter(col("own")).sum().alias("own_q"),
        col("own").any(true).alias("has_own"),
        col("q").filter(col("own").not()).sum().alias("sum_q"),
    ])
    .select([
        col("county"),
        col("year"),
        col("indicator"),
        when(col("has_own"))
            .then(col("own_q"))
            .otherwise(col("sum_q"))
            .alias("quota"),
        lit(true).alias("is_total_quota"),
    ]);

    let (codes, flows): (Vec<String>, Vec<bool>) = catalog
        .indicators
        .iter()
        .map(|i| (i.code.clone(), i.kind == Kind::Flow))
        .unzip();
    let kinds = DataFrame::new_infer_height(vec![
        Column::new("indicator".into(), codes),
        Column::new("is_flow".into(), flows),
    ])?
    .lazy();

    let group = [
        col("county"),
        col("year"),
        col("indicator"),
        col("dimension"),
        col("category"),
    ];
    included
        .join(
            excluded_counts,
            [col("county"), col("period"), col("indicator")],
            [col("county"), col("period"), col("indicator")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            expected,
            [col("county")],
            [col("county")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            reporting,
            [col("county"), col("period")],
            [col("county"), col("period")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            quota,
            [col("county"), col("year"), col("indicator")],
            [col("county"), col("year"), col("indicator")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            kinds,
            [col("indicator")],
            [col("indicator")],
            JoinArgs::new(JoinType::Left),
        )
        .sort(
            ["program", "county", "indicator", "dimension", "category", "period"],
            SortMultipleOptions::default().with_nulls_last(false),
        )
        .with_columns([
            col("townships_excluded").fill_null(lit(0i64)),
            col("townships_reporting").fill_null(lit(0i64)),
            when(col("dimension").is_null())
                .then(col("quota"))
                .otherwise(lit(NULL).cast(DataType::Float64))
                .alias("quota"),
            when(col("is_flow"))
                .then(col("value").fill_null(lit(0.0)).cum_sum(false).over(group)?)
                .otherwise(col("value"))
                .alias("ytd_value"),
        ])
        .with_column((col("ytd_value") / col("quota")).alias("progress"))
        .select(ROLLUP_COLUMNS.iter().map(|c| col(*c)).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;
    use crate::checks::{CheckInput, run_all};
    use crate::fixtures::{at, config, normalized};

    /// Every check of the shipped pipeline on normalized rows, as of 2026-06-01.
    fn checked(cfg: &crate::config::Loaded, n: &crate::normalize::Normalized) -> DataFrame {
        let unreachable = HashSet::new();
        let input = CheckInput {
            pipeline: &cfg.pipelines[0],
            catalog: &cfg.catalog,
            registry: &cfg.registry,
            quotas: &cfg.quotas,
            facts: &n.facts,
            submissions: &n.submissions,
            unreachable: &unreachable,
            now: at("2026-06-01T00:00:00+08:00"),
        };
        run_all(&input).unwrap()
    }

    fn certs(total: i64, parts: [i64; 7]) -> serde_json::Value {
        let cats = ["视力", "听力", "言语", "肢体", "智力", "精神", "多重"];
        let mut values = vec![json!({"indicator": "残疾人证核发", "value": total})];
        for (c, v) in cats.iter().zip(parts) {
            values.push(json!({"indicator": "残疾人证核发", "category": c, "value": v}));
        }
        json!({"period": "2026-05", "values": values})
    }

    #[test]
    fn excluded_township_is_counted_not_summed() {
        let cfg = config();
        // 101 = 12+13+4+63+7+2 (+0 多重) holds; 20 ≠ 18 fails.
        let n = normalized(
            &cfg,
            &[
                ("341124100", "2026-05", certs(101, [12, 13, 4, 63, 7, 2, 0])),
                ("341124101", "2026-05", certs(20, [3, 3, 3, 3, 3, 3, 0])),
                ("341124104", "2026-05", certs(7, [1, 1, 1, 1, 1, 1, 1])),
            ],
        );
        let checks = checked(&cfg, &n);
        let breakdown = checks
            .clone()
            .lazy()
            .filter(col("rule").eq(lit("breakdown")))
            .collect()
            .unwrap();
        assert_eq!(breakdown.height(), 1);
        assert_eq!(
            breakdown.column("township").unwrap().str().unwrap().get(0),
            Some("341124101")
        );

        let roll = county(
            &n.facts,
            &checks,
            &n.submissions,
            &cfg.registry,
            &cfg.quotas,
            &cfg.catalog,
        )
        .unwrap();
        let total = roll
            .lazy()
            .filter(
                col("indicator")
                    .eq(lit("certificates_issued"))
                    .and(col("dimension").is_null()),
            )
            .collect()
            .unwrap();
        assert_eq!(total.height(), 1);
        let get_i = |c: &str| total.column(c).unwrap().i64().unwrap().get(0);
        assert_eq!(total.column("value").unwrap().f64().unwrap().get(0), Some(108.0));
        assert_eq!(get_i("townships_excluded"), Some(1));
        assert_eq!(get_i("townships_included"), Some(2));
        assert_eq!(get_i("townships_reporting"), Some(3));
        assert_eq!(get_i("townships_expected"), Some(10));
        assert_eq!(total.column("quota").unwrap().f64().unwrap().get(0), Some(1200.0));
        assert_eq!(
            total.column("progress").unwrap().f64().unwrap().get(0),
            Some(108.0 / 1200.0)
        );
    }

    #[test]
    fn a_cell_whose_townships_are_all_excluded_still_appears() {
        let cfg = config();
        // The only township reporting May certificates fails its breakdown.
        let n = normalized(&cfg, &[("341124101", "2026-05", certs(20, [3, 3, 3, 3, 3, 3, 0]))]);
        let checks = checked(&cfg, &n);
        let roll = county(
            &n.facts,
            &checks,
            &n.submissions,
            &cfg.registry,
            &cfg.quotas,
            &cfg.catalog,
        )
        .unwrap();
        let total = roll
            .lazy()
            .filter(
                col("indicator")
                    .eq(lit("certificates_issued"))
                    .and(col("dimension").is_null()),
            )
            .collect()
            .unwrap();
        assert_eq!(total.height(), 1, "the cell is kept");
        let get_i = |c: &str| total.column(c).unwrap().i64().unwrap().get(0);
        assert_eq!(total.column("value").unwrap().f64().unwrap().get(0), None, "not 0");
        assert_eq!(get_i("townships_included"), Some(0));
        assert_eq!(get_i("townships_excluded"), Some(1));
        assert_eq!(get_i("townships_reporting"), Some(1));
    }

    #[test]
    fn force_submitted_explanation_lets_the_value_through() {
        let cfg = config();
        let mut doc = certs(20, [3, 3, 3, 3, 3, 3, 0]);
        doc["explanation"] = json!("2 certificates re-issued after appeal, category pending");
        let n = normalized(&cfg, &[("341124101", "2026-05", doc)]);
        let checks = checked(&cfg, &n);
        let bd = checks
            .clone()
            .lazy()
            .filter(col("rule").eq(lit("breakdown")))
            .collect()
            .unwrap();
        assert_eq!(bd.column("excluded").unwrap().bool().unwrap().get(0), Some(false));
        assert!(
            bd.column("explanation")
                .unwrap()
                .str()
                .unwrap()
                .get(0)
                .unwrap()
                .contains("appeal")
        );
        let roll = county(
            &n.facts,
            &checks,
            &n.submissions,
            &cfg.registry,
            &cfg.quotas,
            &cfg.catalog,
        )
        .unwrap();
        let total = roll
            .lazy()
            .filter(
                col("indicator")
                    .eq(lit("certificates_issued"))
                    .and(col("dimension").is_null()),
            )
            .collect()
            .unwrap();
        assert_eq!(total.column("value").unwrap().f64().unwrap().get(0), Some(20.0));
    }
}
