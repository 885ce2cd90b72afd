//! taizhang's shared vocabulary, below every stage: the records that pass
//! between stages and are remembered between runs ([`records`]), and the one
//! definition of every published table ([`schema`]). No polars, no IO.
#![warn(missing_docs)]

pub mod records;
pub mod schema;

use sha2::{Digest, Sha256};

pub use records::{AlertRecord, CheckRecord, Landing, OutboxEntry, Quota, Severity};

/// sha256 of `bytes`, lower-case hex: how landed bodies, kept results and
/// configuration texts are named.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
