//! An analyst's view: DuckDB (the Python package) reads the published
//! warehouse with hive partitioning and gets the county totals of the rollup.

use std::collections::BTreeMap;

use std::process::Command;

use polars::prelude::*;

use crate::support::{python, read_year};

const SCRIPT: &str = r#"
import duckdb, json, sys
wh = sys.argv[1]
facts = f"read_parquet('{wh}/facts/*/*/*.parquet', hive_partitioning = true)"
checks = f"read_parquet('{wh}/check_results/*/*.parquet', hive_partitioning = true)"
roll = f"read_parquet('{wh}/rollup_county/*/*.parquet', hive_partitioning = true)"
analyst = duckdb.sql(f"""
    SELECT f.indicator, f.period, sum(f.value) AS v, any_value(f.year) AS year
    FROM {facts} f
    WHERE f.dimension IS NULL AND NOT EXISTS (
        SELECT 1 FROM {checks} c
        WHERE c.excluded AND c.township = f.township AND c.period = f.period AND c.indicator = f.indicator)
    GROUP BY ALL ORDER BY ALL""").fetchall()
rollup = duckdb.sql(f"""
    SELECT indicator, period, value FROM {roll} WHERE dimension IS NULL ORDER BY ALL""").fetchall()
one = duckdb.sql(f"""
    SELECT count(*), sum(value) FROM read_parquet('{wh}/facts/certificates_issued/*/*.parquet', hive_partitioning = true)
    WHERE dimension IS NULL AND year = 2026""").fetchall()[0]
print(json.dumps({"analyst": analyst, "rollup": rollup, "certificates": one}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_warehouse_and_gets_the_rollup_totals() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let (_cfg, summary) = taizhang::demo::demo(&wh).await.unwrap();
    assert!(summary.rows_published > 0);

    let out = Command::new(python()).arg("-c").arg(SCRIPT).arg(&wh).output().unwrap();
    assert!(
        out.status.success(),
        "duckdb script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let as_map = |rows: &serde_json::Value| -> BTreeMap<(String, String), f64> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().to_string()),
                    r[2].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let analyst = as_map(&v["analyst"]);
    let rollup_duck = as_map(&v["rollup"]);
    assert_eq!(
        analyst.len(),
        25 * 6 + 2 * 2,
        "every monthly indicator, every month; both quarterly ones, both quarters"
    );
    assert_eq!(analyst, rollup_duck);
    // Hive partitioning gives analysts the year column.
    assert_eq!(v["analyst"][0][3].as_i64(), Some(2026));

    // The same totals as taizhang's rollup read with polars.
    let roll = read_year(&wh, "rollup_county", 2026)
        .lazy()
        .filter(col("dimension").is_null())
        .collect()
        .unwrap();
    let (ind, per, val) = (
        roll.column("indicator").unwrap().str().unwrap().clone(),
        roll.column("period").unwrap().str().unwrap().clone(),
        roll.column("value").unwrap().f64().unwrap().clone(),
    );
    let ours: BTreeMap<(String, String), f64> = (0..roll.height())
        .map(|i| {
            (
                (ind.get(i).unwrap().to_string(), per.get(i).unwrap().to_string()),
                val.get(i).unwrap(),
            )
        })
        .collect();
    assert_eq!(ours, analyst);
    let certs_may = ours[&("certificates_issued".to_string(), "2026-05".to_string())];
    assert!(certs_may > 0.0);
    // 59 township-months of certificates (one June report never came).
    assert_eq!(v["certificates"][0].as_i64(), Some(59));
}
