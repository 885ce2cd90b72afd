//! Sinks: where results leave taizhang. `parquet` publishes warehouse tables;
//! alert delivery lives in `crate::alerts`.

pub mod parquet;
