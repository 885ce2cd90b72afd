//! taizhang's pure middle: everything between the bytes a township sent and
//! the tables that are published, with no IO and no clock (the run's `now`
//! is passed in). [`definition`] validates a county's texts; [`normalize`]
//! turns parsed submissions into fact, quarantine and submission rows;
//! [`checks`] finds what does not add up; [`rollup`] sums what passed up the
//! hierarchy. The binary crate does all fetching, storing and publishing.
#![warn(missing_docs)]

pub use taizhang_ingest::{catalog, dhis2, extract, fold, normalize_value, parse, period, registry, submission, xlsx};

pub mod checks;
pub mod definition;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod normalize;
pub mod review;
pub mod rollup;
pub mod text;
pub mod timeliness;

/// The frames the stages make have the columns [`taizhang_model::schema`]
/// defines, in its order (with `year` until it becomes the partition).
#[cfg(test)]
mod frame_columns {
    use taizhang_model::schema::*;

    #[test]
    fn the_frames_the_stages_make_have_exactly_the_published_columns() {
        use polars::prelude::DataFrame;
        let cfg = crate::fixtures::config();
        let doc = serde_json::json!({"period": "2026-05", "values": [
            {"indicator": "残疾人证核发", "value": 3},
            {"indicator": "残疾人证核发", "category": "视力", "value": 3},
            {"indicator": "无此指标", "value": 1}]});
        let n = crate::fixtures::normalized(&cfg, &[("341124100", "2026-05", doc)]);
        let names = |df: &DataFrame| -> Vec<String> {
            let mut v: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
            v.retain(|c| c != "year");
            v
        };
        let spec = |cols: Vec<ColSpec>| cols.into_iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(names(&n.facts), spec(fact_columns("人")));
        assert_eq!(names(&n.quarantine), spec(quarantine_columns()));
        assert_eq!(names(&n.submissions), spec(submission_columns()));
        let checks = crate::fixtures::checked(&cfg, &n, "2026-06-10T00:00:00Z");
        let levels = crate::fixtures::levels(&cfg, &n, &checks);
        for (level, frame) in LEVELS.iter().zip(&levels) {
            assert_eq!(names(frame), spec(rollup_columns(*level)), "{}", level.table);
        }
    }
}
