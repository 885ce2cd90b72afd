//! The run state store (SQLite, `<state_dir>/taizhang.sqlite`): what was
//! landed from where and when, fetch failures, alert state (so an alert fires
//! once per state change, not every night) and run history.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::land::Durable;

pub use taizhang_model::{AlertRecord, CheckRecord, Landing, OutboxEntry};

/// A state store failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite said no.
    #[error("state store {path}: {source}")]
    Sqlite {
        /// Database file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The state directory cannot be created.
    #[error("state directory {path}: {source}")]
    Io {
        /// Directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// What the store holds cannot be made into a table.
    #[error("state store {path}: {message}")]
    Columns {
        /// Database file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// What a run commits to the state store, all at once (see [`State::commit`]).
pub struct Commit<'a> {
    /// The run's id (from [`State::start_run`]).
    pub run_id: i64,
    /// Check results to remember: new ones and those that changed in more
    /// than `last_seen`.
    pub checks: &'a [CheckRecord],
    /// The programs whose every open check result (not resolved, not in
    /// `checks`) was seen failing again at this time: their `last_seen`
    /// moves to it in one statement instead of each being written again.
    pub seen_again: (&'a [String], DateTime<Utc>),
    /// Alert records that changed.
    pub alerts: &'a [AlertRecord],
    /// Alert state changes to deliver.
    pub outbox: &'a [OutboxEntry],
    /// The snapshot holding the run's tables; None when the tables did not
    /// change and the published snapshot stays.
    pub snapshot: Option<u64>,
    /// When the run finished.
    pub finished_at: DateTime<Utc>,
    /// The run's summary line (JSON).
    pub summary: &'a str,
}

/// What a portal's validators describe, without their (township, period):
/// see [`State::validators_picked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The portal's validators of the body.
    pub validators: crate::sources::Validators,
    /// The sha256 of the landed body they describe.
    pub sha256: String,
    /// That body's length as landed (None: it is not landed, or not asked
    /// for).
    pub bytes: Option<u64>,
}

/// How long a statement waits for another connection's write to end
/// before it fails as busy.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a review decision waits before it says that it waits for a run.
const REVIEW_FIRST_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// How long a review decision waits for a run's commit in all: a national
/// year's month computes for under a minute.
const REVIEW_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The open state store.
pub struct State {
    conn: Connection,
    path: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fetch_failures (
    pipeline TEXT NOT NULL, township TEXT NOT NULL, period TEXT NOT NULL,
    url TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,
    first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    PRIMARY KEY (pipeline, township, period));
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, severity TEXT NOT NULL,
    township TEXT NOT NULL, period TEXT NOT NULL, indicator TEXT NOT NULL, message TEXT NOT NULL,
    first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, notified_at TEXT, resolved_at TEXT,
    program TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, now TEXT NOT NULL,
    finished_at TEXT, summary TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    idempotency_key TEXT PRIMARY KEY, alert_key TEXT NOT NULL, program TEXT NOT NULL,
    change TEXT NOT NULL, alert TEXT NOT NULL, created_at TEXT NOT NULL, run_id INTEGER NOT NULL,
    delivered_at TEXT, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE TABLE IF NOT EXISTS absences (
    pipeline TEXT NOT NULL, township TEXT NOT NULL, period TEXT NOT NULL, seen_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, township, period));
CREATE TABLE IF NOT EXISTS reviews (
    review_id TEXT PRIMARY KEY, verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'reject')),
    note TEXT NOT NULL DEFAULT '', decided_at TEXT NOT NULL);
";

/// The columns [`landing_row`] reads, in its order.
const LANDING_COLUMNS: &str = "pipeline, township, period, sha256, url, bytes, content_type, version, submitted_at,
     first_fetched_at, last_fetched_at, defect";

/// The text at column `i` of a row (null: none), borrowed from SQLite's
/// row instead of copied out: for the readers that hash or pass on a
/// year's worth of rows without keeping them.
fn text_at<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    r.get_ref(i)?
        .as_str_or_null()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into()))
}

/// A text column's bytes as SQLite holds them (null: none).
fn bytes_or_null(v: rusqlite::types::ValueRef<'_>, i: usize) -> rusqlite::Result<Option<&[u8]>> {
    use rusqlite::types::{FromSqlError, Type, ValueRef};
    match v {
        ValueRef::Text(b) => Ok(Some(b)),
        ValueRef::Null => Ok(None),
        _ => Err(rusqlite::Error::FromSqlConversionFailure(
            i,
            Type::Text,
            FromSqlError::InvalidType.into(),
        )),
    }
}

/// A landing from a row of [`LANDING_COLUMNS`].
fn landing_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Landing> {
    Ok(Landing {
        pipeline: r.get(0)?,
        township: r.get(1)?,
        period: r.get(2)?,
        sha256: r.get(3)?,
        url: r.get(4)?,
        bytes: r.get(5)?,
        content_type: r.get(6)?,
        version: r.get(7)?,
        submitted_at: r.get(8)?,
        first_fetched_at: parse_ts_at(r, 9)?,
        last_fetched_at: parse_ts_at(r, 10)?,
        defect: r.get(11)?,
    })
}

/// The timestamp at column `i` of a row, parsed where SQLite holds it
/// (as [`parse_ts`]; null as unreadable).
fn parse_ts_at(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<DateTime<Utc>> {
    Ok(parse_ts(text_at(r, i)?.unwrap_or_default()))
}

/// Outcomes recorded per transaction while a run lands (see
/// [`State::begin_landings`]).
pub const LANDING_BATCH: usize = 256;

/// An open transaction of landing records.
#[must_use = "a transaction of landing records is committed by State::end_landings"]
pub struct LandingBatch {
    recorded: usize,
}

impl LandingBatch {
    /// One more outcome recorded; true once the batch holds
    /// [`LANDING_BATCH`] outcomes and is due to commit.
    pub fn recorded(&mut self) -> bool {
        self.recorded += 1;
        self.is_full()
    }

    /// The batch holds [`LANDING_BATCH`] outcomes (or more).
    pub fn is_full(&self) -> bool {
        self.recorded >= LANDING_BATCH
    }
}

/// The state store's schema version (`PRAGMA user_version`). 2: alerts carry
/// their program and every check and alert key starts with it; the outbox and
/// the published snapshot exist. 3: a check result is unique by its period
/// and key ([`check_state_table`]). 4: the validators are kept in their
/// key's order, each with its body's length ([`validators_table`]).
const SCHEMA_VERSION: i64 = 4;

/// The landings' table, `CREATE TABLE` of `name`: its rows in the order
/// they were written (a night's landings together, so that the nightly
/// `last_fetched_at` of the reports seen again moves on few pages), found
/// by their key's index. Kept in the key's order instead (`WITHOUT ROWID`,
/// for a few hours of schema 4), a national year's December wrote every
/// page of the table for its 99,752 reports seen again: 622 MB, the run
/// 7.6 → 12.7 s.
fn landings_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
    pipeline TEXT NOT NULL, township TEXT NOT NULL, period TEXT NOT NULL, sha256 TEXT NOT NULL,
    url TEXT NOT NULL, bytes INTEGER NOT NULL, content_type TEXT,
    version INTEGER, submitted_at TEXT,
    first_fetched_at TEXT NOT NULL, last_fetched_at TEXT NOT NULL, defect TEXT,
    PRIMARY KEY (pipeline, township, period, sha256));"
    )
}

/// The portals' validators of each (township, period), `CREATE TABLE` of
/// `name`, in their key's order, with the length of the landed body they
/// describe (`bytes`, what a listing is compared with; NULL when written
/// by a version before schema 4).
fn validators_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
    pipeline TEXT NOT NULL, township TEXT NOT NULL, period TEXT NOT NULL,
    etag TEXT, last_modified TEXT, sha256 TEXT NOT NULL, bytes INTEGER,
    PRIMARY KEY (pipeline, township, period)) WITHOUT ROWID;"
    )
}

/// Whether `table` is kept in its key's order (`WITHOUT ROWID`).
fn without_rowid(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, String>(0),
    )
    .map(|sql| sql.to_uppercase().contains("WITHOUT ROWID"))
}

/// Whether the validators carry the length of their body (schema 4).
fn validators_have_bytes(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_table_info('validators') WHERE name = 'bytes'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The remembered check results' table, `CREATE TABLE` of `name`
/// (without the index that keeps them unique, [`CHECK_STATE_INDEX`]).
fn check_state_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
    key TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, program TEXT NOT NULL,
    township TEXT NOT NULL, period TEXT NOT NULL, year INTEGER NOT NULL, indicator TEXT, dimension TEXT,
    observed REAL, expected REAL, message TEXT NOT NULL, explanation TEXT,
    first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, resolved_at TEXT);"
    )
}

/// A check result is one by its key (which has its period in it), and is
/// looked up and kept unique by `(period, key)`: a run's new results are
/// nearly all of its newest period, so they go to the end of this index
/// instead of all over it. Keyed by `key` alone, a national year's
/// November run wrote its 157,617 new results into an index of 1.6
/// million and dirtied most of its pages (a replay of its inserts: 178 MB
/// of write-ahead log against 64 MB, the commit 0.62 s against 0.19 s).
const CHECK_STATE_INDEX: &str = "CREATE UNIQUE INDEX IF NOT EXISTS check_state_by_period ON check_state (period, key);";

/// Whether `check_state` is kept unique by its key alone (stores before
/// schema 3): one of its unique indexes has `key` as its only column.
fn check_state_unique_by_key(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM pragma_index_list('check_state') AS l
         WHERE l.\"unique\" AND (SELECT group_concat(name) FROM pragma_index_info(l.name)) = 'key'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

impl State {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<State, StateError> {
        crate::private::dir(dir).map_err(|source| StateError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("taizhang.sqlite");
        let p = path.display().to_string();
        let wrap = |source| StateError::Sqlite {
            path: p.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(wrap)?;
        // SQLite gives its -wal and -shm files the database's mode.
        crate::private::restrict(&path, 0o600).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })?;
        conn.busy_timeout(BUSY_WAIT).map_err(wrap)?;
        // Every commit durable when it returns (the write-ahead log synced),
        // but landing's (see `State::begin_landings`).
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(wrap)?;
        conn.execute_batch(SCHEMA).map_err(wrap)?;
        conn.execute_batch(&landings_table("landings")).map_err(wrap)?;
        conn.execute_batch(&validators_table("validators")).map_err(wrap)?;
        conn.execute_batch(&check_state_table("check_state")).map_err(wrap)?;
        // Stores created before landings had a `defect` column.
        let has_defect: bool = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('landings') WHERE name = 'defect'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(wrap)?
            > 0;
        if !has_defect {
            conn.execute_batch("ALTER TABLE landings ADD COLUMN defect TEXT")
                .map_err(wrap)?;
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(wrap)?;
        if version < 2 {
            // Stores from before programs were independent: alerts gain a
            // program (adopted by the first run, see `adopt_legacy_alerts`),
            // check keys gain their program as a prefix.
            let has_program: bool = conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('alerts') WHERE name = 'program'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(wrap)?
                > 0;
            let add = if has_program {
                ""
            } else {
                "ALTER TABLE alerts ADD COLUMN program TEXT NOT NULL DEFAULT '';"
            };
            conn.execute_batch(&format!(
                "BEGIN; {add} UPDATE check_state SET key = program || '/' || key; PRAGMA user_version = 2; COMMIT;"
            ))
            .map_err(wrap)?;
        }
        if version < 3 {
            if check_state_unique_by_key(&conn).map_err(wrap)? {
                // A store whose check results are unique by key alone:
                // the table made again, each row at its row id (a run
                // reads a resolved result back by it), then indexed by
                // (period, key) (a national year's: ~8 s, once).
                tracing::info!(path = %p, "Upgrading the state store: remembered check results indexed by period.");
                let columns = check_columns("last_seen");
                conn.execute_batch(&format!(
                    "BEGIN; DROP TABLE IF EXISTS check_state_3; {}
                     INSERT INTO check_state_3 (rowid, {columns}) SELECT rowid, {columns} FROM check_state ORDER BY rowid;
                     DROP TABLE check_state; ALTER TABLE check_state_3 RENAME TO check_state; {CHECK_STATE_INDEX}
                     PRAGMA user_version = 3; COMMIT;",
                    check_state_table("check_state_3")
                ))
                .map_err(wrap)?;
            } else {
                conn.execute_batch(&format!("BEGIN; {CHECK_STATE_INDEX} PRAGMA user_version = 3; COMMIT;"))
                    .map_err(wrap)?;
            }
        }
        // Schema 4: the validators in their key's order, each with its
        // body's length; the landings in the order they were written (a
        // store of the hours when they were kept in their key's order too
        // gets them back in the order they were landed).
        let keyed_landings = without_rowid(&conn, "landings").map_err(wrap)?;
        let validators_4 =
            validators_have_bytes(&conn).map_err(wrap)? && without_rowid(&conn, "validators").map_err(wrap)?;
        if keyed_landings || !validators_4 {
            tracing::info!(path = %p, "Upgrading the state store: validators kept in their key's order, each with its body's length.");
            let landings = match keyed_landings {
                true => format!(
                    "DROP TABLE IF EXISTS landings_4; {}
                     INSERT INTO landings_4 ({LANDING_COLUMNS}) SELECT {LANDING_COLUMNS} FROM landings
                         ORDER BY first_fetched_at, pipeline, township, period, sha256;
                     DROP TABLE landings; ALTER TABLE landings_4 RENAME TO landings;",
                    landings_table("landings_4")
                ),
                false => String::new(),
            };
            let validators = match validators_4 {
                true => String::new(),
                false => format!(
                    "DROP TABLE IF EXISTS validators_4; {}
                     INSERT INTO validators_4 (pipeline, township, period, etag, last_modified, sha256, bytes)
                         SELECT v.pipeline, v.township, v.period, v.etag, v.last_modified, v.sha256, l.bytes
                         FROM validators v LEFT JOIN landings l ON l.pipeline = v.pipeline
                             AND l.township = v.township AND l.period = v.period AND l.sha256 = v.sha256
                         ORDER BY v.pipeline, v.township, v.period;
                     DROP TABLE validators; ALTER TABLE validators_4 RENAME TO validators;",
                    validators_table("validators_4")
                ),
            };
            conn.execute_batch(&format!(
                "BEGIN; {landings} {validators} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            ))
            .map_err(wrap)?;
        } else if version < 4 {
            conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .map_err(wrap)?;
        }
        Ok(State { conn, path: p })
    }

    /// A second, read-only connection to the same store, for another
    /// thread: it sees what this one has committed (write-ahead log), and
    /// cannot write.
    pub fn reader(&self) -> Result<State, StateError> {
        use rusqlite::OpenFlags;
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|c| c.busy_timeout(BUSY_WAIT).map(|()| c))
        .map_err(|e| self.err(e))?;
        Ok(State {
            conn,
            path: self.path.clone(),
        })
    }

    fn err(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Begins a transaction of landing records (what [`State::record_landing`],
    /// the validators, absences and fetch failures write while a run lands).
    /// It is committed only with proof that every body it records is
    /// durable in the raw store ([`Durable`]): a kill or a power loss loses
    /// the records of the transaction, never a recorded body.
    ///
    /// Landing's transactions commit without a sync of the write-ahead log
    /// of their own (`synchronous=NORMAL`): a power loss may take the last
    /// of them, whose bodies are durable in the raw store and are fetched
    /// and recorded again by the next run, as the open one's are. The next
    /// commit made with a sync (every other, the run's among them) makes
    /// them durable with it: the log is synced from its start.
    pub fn begin_landings(&self) -> Result<LandingBatch, StateError> {
        self.conn
            .execute_batch("PRAGMA synchronous=NORMAL; BEGIN")
            .map_err(|e| self.err(e))?;
        Ok(LandingBatch { recorded: 0 })
    }

    /// Commits a transaction of landing records and begins the next.
    pub fn commit_landings(&self, batch: &mut LandingBatch, durable: Durable) -> Result<(), StateError> {
        let _ = durable;
        self.conn.execute_batch("COMMIT; BEGIN").map_err(|e| self.err(e))?;
        batch.recorded = 0;
        Ok(())
    }

    /// Ends landing: closes the open transaction, whose records have all
    /// been committed with their [`Durable`] by [`State::commit_landings`].
    /// Records still in it (none, as the run lands) are rolled back, never
    /// committed without that proof: the next run fetches them again.
    pub fn end_landings(&self, batch: LandingBatch) -> Result<(), StateError> {
        let end = if batch.recorded == 0 { "COMMIT" } else { "ROLLBACK" };
        self.conn
            .execute_batch(&format!("{end}; PRAGMA synchronous=FULL"))
            .map_err(|e| self.err(e))
    }

    /// Records a fetched body; returns true when this body is new for its
    /// (pipeline, township, period).
    pub fn record_landing(&self, l: &Landing) -> Result<bool, StateError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO landings (pipeline, township, period, sha256, url, bytes, content_type, version,
                                       submitted_at, first_fetched_at, last_fetched_at, defect)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?10,?11)
                 ON CONFLICT (pipeline, township, period, sha256) DO NOTHING",
            )
            .and_then(|mut st| {
                st.execute(params![
                    l.pipeline,
                    l.township,
                    l.period,
                    l.sha256,
                    l.url,
                    l.bytes,
                    l.content_type,
                    l.version,
                    l.submitted_at,
                    ts(&l.first_fetched_at),
                    l.defect
                ])
            })
            .map_err(|e| self.err(e))?;
        if n == 0 {
            self.conn
                .prepare_cached(
                    "UPDATE landings SET last_fetched_at = max(last_fetched_at, ?5)
                     WHERE pipeline=?1 AND township=?2 AND period=?3 AND sha256=?4",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        l.pipeline,
                        l.township,
                        l.period,
                        l.sha256,
                        ts(&l.last_fetched_at)
                    ])
                })
                .map_err(|e| self.err(e))?;
        }
        self.clear_fetch_failure(&l.pipeline, &l.township, &l.period)?;
        Ok(n > 0)
    }

    /// Whether this body was landed before for (pipeline, township, period).
    pub fn has_landing(&self, pipeline: &str, township: &str, period: &str, sha256: &str) -> Result<bool, StateError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM landings WHERE pipeline=?1 AND township=?2 AND period=?3 AND sha256=?4",
            )
            .and_then(|mut st| st.query_row(params![pipeline, township, period, sha256], |r| r.get::<_, i64>(0)))
            .map(|n| n > 0)
            .map_err(|e| self.err(e))
    }

    /// Every landing of a pipeline, all versions, oldest first.
    pub fn landings(&self, pipeline: &str) -> Result<Vec<Landing>, StateError> {
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT {LANDING_COLUMNS} FROM landings WHERE pipeline = ?1
                 ORDER BY township, period, first_fetched_at, sha256"
            ))
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([pipeline], landing_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Every body landed for `pipeline` from `townships` (in the order
    /// given), in the order of [`State::landings`] within each: a run
    /// holds one province's at a time instead of a national year's 455,000
    /// (~210 MB) through its batches.
    pub fn landings_of<'t>(
        &self,
        pipeline: &str,
        townships: impl IntoIterator<Item = &'t str>,
    ) -> Result<Vec<Landing>, StateError> {
        // In the key's order (period, sha256), as its index gives them:
        // ordered by SQLite (`ORDER BY period, first_fetched_at, sha256`),
        // each township's query made a sorter, a fifth of reading a
        // national year's 455,000 landings. A period with several bodies is
        // put in that order here, by the texts as stored (SQLite's BINARY
        // order is the bytes').
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {LANDING_COLUMNS} FROM landings WHERE pipeline = ?1 AND township = ?2
                 ORDER BY period, sha256"
            ))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        // Each landing's first_fetched_at as stored (reused buffers).
        let mut first: Vec<String> = Vec::new();
        for t in townships {
            let from = out.len();
            let mut rows = st.query([pipeline, t]).map_err(|e| self.err(e))?;
            while let Some(r) = rows.next().map_err(|e| self.err(e))? {
                let n = out.len() - from;
                if first.len() == n {
                    first.push(String::new());
                }
                first[n].clear();
                first[n].push_str(text_at(r, 9).map_err(|e| self.err(e))?.unwrap_or_default());
                out.push(landing_row(r).map_err(|e| self.err(e))?);
            }
            if out[from..].windows(2).any(|w| w[0].period == w[1].period) {
                let mut mine: Vec<(usize, Landing)> = out.drain(from..).enumerate().collect();
                mine.sort_by(|(a, x), (b, y)| {
                    (x.period.as_str(), first[*a].as_str(), x.sha256.as_str()).cmp(&(
                        y.period.as_str(),
                        first[*b].as_str(),
                        y.sha256.as_str(),
                    ))
                });
                out.extend(mine.into_iter().map(|(_, l)| l));
            }
        }
        out.shrink_to_fit();
        Ok(out)
    }

    /// The townships with a body landed for `pipeline`, in order (read
    /// from the key's index alone).
    pub fn landed_townships(&self, pipeline: &str) -> Result<Vec<String>, StateError> {
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT township FROM landings WHERE pipeline = ?1 ORDER BY township")
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([pipeline], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The (township, period, sha256) of every body landed for `pipeline`:
    /// what a run needs to know which fetched bodies are new, read from the
    /// key's index alone (no row, no timestamp parsed, no sort: a year's
    /// 455,000 landings), each given to `each` borrowed from SQLite's row.
    pub fn landed_keys(&self, pipeline: &str, mut each: impl FnMut(&str, &str, &str)) -> Result<(), StateError> {
        let mut st = self
            .conn
            .prepare("SELECT township, period, sha256 FROM landings WHERE pipeline = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = st.query([pipeline]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            // The key's columns are NOT NULL.
            let text = |i| text_at(r, i).map(Option::unwrap_or_default).map_err(|e| self.err(e));
            each(text(0)?, text(1)?, text(2)?);
        }
        Ok(())
    }

    /// Records a failed fetch (after retries).
    pub fn record_fetch_failure(
        &self,
        target: &crate::sources::FetchTarget,
        error: &str,
        attempts: u32,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let (pipeline, township, period, url) = (&target.pipeline, &target.township, &target.period, &target.url);
        self.conn
            .execute(
                "INSERT INTO fetch_failures VALUES (?1,?2,?3,?4,?5,?6,?7,?7)
                 ON CONFLICT (pipeline, township, period) DO UPDATE SET
                   url=excluded.url, error=excluded.error, attempts=excluded.attempts, last_seen=excluded.last_seen",
                params![pipeline, township, period, url, error, attempts, ts(&now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Current fetch failures of a pipeline: (township, period, url, error).
    pub fn fetch_failures(&self, pipeline: &str) -> Result<Vec<(String, String, String, String)>, StateError> {
        let mut st = self
            .conn
            .prepare("SELECT township, period, url, error FROM fetch_failures WHERE pipeline=?1 ORDER BY 1, 2")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([pipeline], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Clears a fetch failure (the township answered 404: nothing submitted, no error).
    pub fn clear_fetch_failure(&self, pipeline: &str, township: &str, period: &str) -> Result<(), StateError> {
        self.conn
            .prepare_cached("DELETE FROM fetch_failures WHERE pipeline=?1 AND township=?2 AND period=?3")
            .and_then(|mut st| st.execute(params![pipeline, township, period]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every alert ever raised, by key.
    pub fn alerts(&self) -> Result<Vec<AlertRecord>, StateError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT key, kind, severity, township, period, indicator, message, first_seen, last_seen,
                        notified_at, resolved_at, program FROM alerts ORDER BY key",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(AlertRecord {
                    key: r.get(0)?,
                    kind: r.get(1)?,
                    severity: r.get(2)?,
                    township: r.get(3)?,
                    period: r.get(4)?,
                    indicator: r.get(5)?,
                    message: r.get(6)?,
                    first_seen: parse_ts(&r.get::<_, String>(7)?),
                    last_seen: parse_ts(&r.get::<_, String>(8)?),
                    notified_at: r.get::<_, Option<String>>(9)?.as_deref().map(parse_ts),
                    resolved_at: r.get::<_, Option<String>>(10)?.as_deref().map(parse_ts),
                    program: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Alerts left by a store from before programs were independent (no
    /// program, keys without one) are adopted by the only program when there
    /// is one; otherwise they are closed, and the conditions that still hold
    /// are raised again under their program's keys.
    pub fn adopt_legacy_alerts(&mut self, programs: &[String], now: DateTime<Utc>) -> Result<(), StateError> {
        let n = match programs {
            [only] => self.conn.execute(
                "UPDATE alerts SET program = ?1, key = ?1 || '/' || key WHERE program = ''",
                params![only],
            ),
            _ => self.conn.execute(
                "UPDATE alerts SET program = '(none)', resolved_at = coalesce(resolved_at, ?1) WHERE program = ''",
                params![ts(&now)],
            ),
        }
        .map_err(|e| self.err(e))?;
        if n > 0 {
            tracing::info!(alerts = n, "Alerts from an earlier version adopted by their program.");
        }
        Ok(())
    }

    /// Every check result remembered for one program, as records (what
    /// [`State::check_frame`] reads).
    pub fn check_records(&self, program: &str) -> Result<Vec<CheckRecord>, StateError> {
        crate::checks::track::records(&self.check_frame(program)?).map_err(|e| StateError::Columns {
            path: self.path.clone(),
            message: format!("check_state of {program}: {e}"),
        })
    }

    /// Every check result remembered for one program, as columns
    /// (`checks::track::known_schema`).
    pub fn check_frame(&self, program: &str) -> Result<polars::prelude::DataFrame, StateError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM check_state WHERE program = ?1",
                check_columns(LAST_SEEN_OF_PROGRAM)
            ))
            .map_err(|e| self.err(e))?;
        let mut frame = CheckFrame::default();
        let seen = self.checks_seen_at(program)?;
        let mut rows = st.query(params![program, seen]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            frame.push(r).map_err(|e| self.err(e))?;
        }
        frame.finish().map_err(|e| StateError::Columns {
            path: self.path.clone(),
            message: format!("check_state of {program}: {e}"),
        })
    }

    /// When `program`'s open check results were last seen failing ('' when
    /// never recorded so: each row's own `last_seen` counts), as stored.
    fn checks_seen_at(&self, program: &str) -> Result<String, StateError> {
        self.conn
            .query_row(
                &format!("SELECT value FROM meta WHERE key = '{CHECKS_SEEN_AT}' || ?1"),
                [program],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(|e| self.err(e))
    }

    /// Every check result remembered for one program, without its text
    /// (what tracking compares, hashed, and where each is kept): what a run
    /// tracks its results against. A national year remembers ~1.7 million.
    pub fn remembered(&self, program: &str) -> Result<Vec<crate::checks::track::Remembered>, StateError> {
        use crate::checks::track::{Remembered, key_hash_of_bytes, said_of_bytes};
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT rowid, key, severity, year, observed, expected, message, explanation,
                        first_seen, {LAST_SEEN_OF_PROGRAM}, resolved_at
                     FROM check_state WHERE program = ?1"
            ))
            .map_err(|e| self.err(e))?;
        let mut instants = Instants::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        let seen = self.checks_seen_at(program)?;
        let mut rows = st.query(params![program, seen]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            // Borrowed from SQLite's row: the text is hashed as bytes, not
            // kept (nor checked for UTF-8).
            let text = |i| r.get_ref(i).and_then(|v| bytes_or_null(v, i));
            let got = (|| -> rusqlite::Result<Remembered> {
                Ok(Remembered {
                    row: r.get(0)?,
                    key: key_hash_of_bytes(text(1)?.unwrap_or(b"")),
                    said: said_of_bytes(&mut buf, text(2)?, r.get(3)?, r.get(4)?, r.get(5)?, text(6)?, text(7)?),
                    first_seen: instants.micros(r.get_ref(8)?).unwrap_or(0),
                    last_seen: instants.micros(r.get_ref(9)?).unwrap_or(0),
                    resolved: r.get_ref(10)? != rusqlite::types::ValueRef::Null,
                })
            })();
            out.push(got.map_err(|e| self.err(e))?);
        }
        // Held through the run's batches: not the doubling's spare room.
        out.shrink_to_fit();
        Ok(out)
    }

    /// The remembered check results kept at `rows` (row ids from
    /// [`State::remembered`]), whole, in that order, as columns
    /// (`checks::track::known_schema`).
    pub fn check_rows(&self, rows: &[i64]) -> Result<polars::prelude::DataFrame, StateError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {} FROM check_state WHERE rowid = ?1",
                check_columns(&last_seen_of_row())
            ))
            .map_err(|e| self.err(e))?;
        let mut frame = CheckFrame::default();
        for id in rows {
            let mut found = st.query([id]).map_err(|e| self.err(e))?;
            match found.next().map_err(|e| self.err(e))? {
                Some(r) => frame.push(r).map_err(|e| self.err(e))?,
                // The run holds the lock, and only its commit writes results.
                None => {
                    return Err(StateError::Columns {
                        path: self.path.clone(),
                        message: format!("check_state: the remembered result at row {id} is gone"),
                    });
                }
            }
        }
        frame.finish().map_err(|e| StateError::Columns {
            path: self.path.clone(),
            message: format!("check_state: {e}"),
        })
    }

    /// The run's commit: check and alert state, the alerts to deliver and
    /// the snapshot that publishes the run's tables, in one SQLite
    /// transaction. Before it nothing of the run counts; after it the run
    /// happened (the warehouse pointer is rolled forward to `snapshot` by
    /// whoever comes next if the process dies before swapping it).
    pub fn commit(&self, c: &Commit<'_>) -> Result<(), StateError> {
        self.begin_commit()?.commit(c)
    }

    /// Begins a run's commit (see [`State::commit`]) before its batches are
    /// computed, so that their check results are written as each batch is
    /// finished ([`Pending::write_checks`]), beside the computing of the
    /// next, instead of all at the end (a national month's 160,700 were a
    /// third of a second after the last batch). Nothing is committed before
    /// [`Pending::commit`]; readers on other connections see none of it; a
    /// `Pending` dropped uncommitted (the run failed) is rolled back.
    pub fn begin_commit(&self) -> Result<Pending<'_>, StateError> {
        // Immediate: the write lock now, not at the first row. Synced when
        // it commits, whatever came before: the warehouse's pointer moves
        // and alerts are sent only after it.
        self.conn
            .execute_batch("PRAGMA synchronous=FULL; BEGIN IMMEDIATE")
            .map_err(|e| self.err(e))?;
        Ok(Pending {
            state: self,
            done: false,
        })
    }

    /// Records a snapshot that changes no state but the published tables
    /// (the alerts table after delivery).
    pub fn commit_snapshot(&self, seq: u64) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT INTO meta VALUES ('published_snapshot', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![seq.to_string()],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The snapshot the last committed run published, if any.
    pub fn published_snapshot(&self) -> Result<Option<u64>, StateError> {
        let v: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'published_snapshot'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(v.and_then(|v| v.parse().ok()))
    }

    /// Alert state changes committed but not yet delivered, oldest first.
    pub fn pending_outbox(&self) -> Result<Vec<OutboxEntry>, StateError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT idempotency_key, alert_key, program, change, alert, created_at FROM outbox
                 WHERE delivered_at IS NULL ORDER BY created_at, idempotency_key",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                let alert: String = r.get(4)?;
                Ok(OutboxEntry {
                    idempotency_key: r.get(0)?,
                    alert_key: r.get(1)?,
                    program: r.get(2)?,
                    change: r.get(3)?,
                    alert: serde_json::from_str(&alert).unwrap_or(serde_json::Value::Null),
                    created_at: parse_ts(&r.get::<_, String>(5)?),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Marks outbox entries delivered (the receiver answered 2xx), and the
    /// alerts they raised as notified, in one transaction.
    pub fn mark_delivered(&mut self, entries: &[OutboxEntry], at: DateTime<Utc>) -> Result<(), StateError> {
        self.outbox_update(entries, |tx, e| {
            tx.execute(
                "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE idempotency_key = ?1",
                params![e.idempotency_key, ts(&at)],
            )?;
            if e.change == "raised" {
                tx.execute(
                    "UPDATE alerts SET notified_at = coalesce(notified_at, ?2) WHERE key = ?1",
                    params![e.alert_key, ts(&at)],
                )?;
            }
            Ok(())
        })
    }

    /// Records a failed delivery attempt; the entries stay pending.
    pub fn delivery_failed(&mut self, entries: &[OutboxEntry], error: &str) -> Result<(), StateError> {
        self.outbox_update(entries, |tx, e| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE idempotency_key = ?1",
                params![e.idempotency_key, error],
            )
            .map(|_| ())
        })
    }

    fn outbox_update(
        &mut self,
        entries: &[OutboxEntry],
        f: impl Fn(&rusqlite::Transaction<'_>, &OutboxEntry) -> rusqlite::Result<()>,
    ) -> Result<(), StateError> {
        let path = self.path.clone();
        let wrap = |source| StateError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(wrap)?;
        for e in entries {
            f(&tx, e).map_err(wrap)?;
        }
        tx.commit().map_err(wrap)
    }

    /// What the portal said of the body landed last for (township, period)
    /// (None: nothing to ask with; the body is downloaded whole).
    pub fn set_validators(
        &self,
        pipeline: &str,
        township: &str,
        period: &str,
        v: Option<(&crate::sources::Validators, &str, u64)>,
    ) -> Result<(), StateError> {
        let r = match v {
            Some((v, sha, bytes)) => self
                .conn
                .prepare_cached(
                    "INSERT INTO validators (pipeline, township, period, etag, last_modified, sha256, bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (pipeline, township, period)
                         DO UPDATE SET etag = ?4, last_modified = ?5, sha256 = ?6, bytes = ?7",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        pipeline,
                        township,
                        period,
                        v.etag,
                        v.last_modified,
                        sha,
                        i64::try_from(bytes).ok()
                    ])
                }),
            None => self
                .conn
                .prepare_cached("DELETE FROM validators WHERE pipeline = ?1 AND township = ?2 AND period = ?3")
                .and_then(|mut st| st.execute(params![pipeline, township, period])),
        };
        r.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The validators of a program's (township, period)s that `pick`
    /// gives a value for, with the landed body's length when `sizes` (for a
    /// program with listings: kept with them; looked up among the landings
    /// only for validators written by a version before schema 4; else
    /// None), each pushed into `out` with its value: the rows are read
    /// borrowed from SQLite, and only those picked are made (a run's
    /// targets' among a national year's 454,872, into room it made for
    /// them: made whole and then copied, a rerun's start-up spent ~0.6 s
    /// zeroing the pages of the vectors they grew in).
    pub fn validators_picked<T>(
        &self,
        pipeline: &str,
        sizes: bool,
        mut pick: impl FnMut(&str, &str) -> Option<T>,
        out: &mut Vec<(T, Described)>,
    ) -> Result<(), StateError> {
        let sql = match sizes {
            true => {
                "SELECT v.township, v.period, v.etag, v.last_modified, v.sha256,
                        coalesce(v.bytes, (SELECT l.bytes FROM landings l WHERE l.pipeline = v.pipeline
                            AND l.township = v.township AND l.period = v.period AND l.sha256 = v.sha256))
                 FROM validators v WHERE v.pipeline = ?1"
            }
            false => "SELECT township, period, etag, last_modified, sha256, NULL FROM validators WHERE pipeline = ?1",
        };
        let mut stmt = self.conn.prepare(sql).map_err(|e| self.err(e))?;
        let mut rows = stmt.query(params![pipeline]).map_err(|e| self.err(e))?;
        while let Some(r) = rows.next().map_err(|e| self.err(e))? {
            let got = (|| -> rusqlite::Result<Option<(T, Described)>> {
                // The key's columns are NOT NULL.
                let (township, period) = (text_at(r, 0)?.unwrap_or_default(), text_at(r, 1)?.unwrap_or_default());
                let Some(picked) = pick(township, period) else {
                    return Ok(None);
                };
                Ok(Some((
                    picked,
                    Described {
                        validators: crate::sources::Validators {
                            etag: r.get(2)?,
                            last_modified: r.get(3)?,
                        },
                        sha256: r.get(4)?,
                        bytes: r.get::<_, Option<i64>>(5)?.and_then(|b| u64::try_from(b).ok()),
                    },
                )))
            })();
            if let Some(one) = got.map_err(|e| self.err(e))? {
                out.push(one);
            }
        }
        Ok(())
    }

    /// A 304 for (township, period): the body its validators describe,
    /// `described` (the sha256 read with them when the run began, see
    /// [`State::validators_picked`]), is still served; it was fetched (seen) again
    /// at `at`. False when that body is not landed (its validators are then
    /// dropped).
    pub fn still_served(
        &self,
        pipeline: &str,
        township: &str,
        period: &str,
        described: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        // Called once per report a night (a national year: 455,000 times):
        // the statements are prepared once, the body looked up by its key.
        let n = self
            .conn
            .prepare_cached(
                "UPDATE landings SET last_fetched_at = max(last_fetched_at, ?5)
                 WHERE pipeline = ?1 AND township = ?2 AND period = ?3 AND sha256 = ?4",
            )
            .and_then(|mut s| s.execute(params![pipeline, township, period, described, ts(&at)]))
            .map_err(|e| self.err(e))?;
        if n == 0 {
            self.set_validators(pipeline, township, period, None)?;
        } else {
            self.conn
                .prepare_cached("DELETE FROM fetch_failures WHERE pipeline=?1 AND township=?2 AND period=?3")
                .and_then(|mut s| s.execute(params![pipeline, township, period]))
                .map_err(|e| self.err(e))?;
        }
        Ok(n > 0)
    }

    /// Records that a fetch after the deadline found nothing for (township,
    /// period): evidence that a report first seen later is late. Only the
    /// first such fetch is kept.
    pub fn record_absence(
        &self,
        pipeline: &str,
        township: &str,
        period: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO absences (pipeline, township, period, seen_at) VALUES (?1, ?2, ?3, ?4)",
                params![pipeline, township, period, ts(&at)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The first fetch after the deadline that found nothing, by (township, period).
    pub fn absences(
        &self,
        pipeline: &str,
    ) -> Result<std::collections::HashMap<(String, String), DateTime<Utc>>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT township, period, seen_at FROM absences WHERE pipeline = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![pipeline], |r| {
                Ok(((r.get(0)?, r.get(1)?), parse_ts(&r.get::<_, String>(2)?)))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Records a reviewer's decision about a document's value (the last
    /// decision about an id counts). Applied by the next run.
    pub fn decide_review(
        &self,
        review_id: &str,
        verdict: &crate::review::Verdict,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let (v, note) = match verdict {
            crate::review::Verdict::Accept => ("accept", ""),
            crate::review::Verdict::Reject(note) => ("reject", note.as_str()),
        };
        let write = || {
            self.conn.execute(
                "INSERT INTO reviews (review_id, verdict, note, decided_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (review_id) DO UPDATE SET verdict = ?2, note = ?3, decided_at = ?4",
                params![review_id, v, note, ts(&at)],
            )
        };
        // A run holds the store from its first computed batch to its commit
        // (see `State::begin_commit`): a decision waits for it, saying so.
        let busy = |e: &rusqlite::Error| e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy);
        let set_wait = |d: std::time::Duration| self.conn.busy_timeout(d).map_err(|e| self.err(e));
        set_wait(REVIEW_FIRST_WAIT)?;
        let mut written = write();
        if written.as_ref().is_err_and(busy) {
            tracing::info!("A run is computing and holds the state store until it commits; the decision waits for it.");
            set_wait(REVIEW_WAIT)?;
            written = write();
        }
        set_wait(BUSY_WAIT)?;
        written.map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every review decision, by review id, with when it was made.
    pub fn review_log(&self) -> Result<Vec<(String, crate::review::Verdict, DateTime<Utc>)>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT review_id, verdict, note, decided_at FROM reviews ORDER BY decided_at, review_id")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let verdict = match r.get::<_, String>(1)?.as_str() {
                    "accept" => crate::review::Verdict::Accept,
                    _ => crate::review::Verdict::Reject(r.get(2)?),
                };
                Ok((r.get(0)?, verdict, parse_ts(&r.get::<_, String>(3)?)))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The decisions a run applies ([`crate::review::apply`]).
    pub fn review_decisions(&self) -> Result<crate::review::Decisions, StateError> {
        Ok(self.review_log()?.into_iter().map(|(id, v, _)| (id, v)).collect())
    }

    /// Starts a run record; returns its id.
    pub fn start_run(&self, started_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<i64, StateError> {
        self.conn
            .execute(
                "INSERT INTO runs (started_at, now) VALUES (?1, ?2)",
                params![ts(&started_at), ts(&now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks a committed run partial (reports not fetched or alerts not
    /// delivered), in its summary.
    pub fn mark_partial(&self, run_id: i64) -> Result<(), StateError> {
        self.conn
            .execute(
                "UPDATE runs SET summary = json_set(summary, '$.partial', json('true')) WHERE id = ?1 AND summary IS NOT NULL",
                params![run_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// When each program last ran to a commit (the run's clock).
    pub fn last_runs(&self) -> Result<std::collections::BTreeMap<String, DateTime<Utc>>, StateError> {
        let mut out = std::collections::BTreeMap::new();
        for r in self.runs(usize::MAX >> 1)?.into_iter().rev() {
            let (Some(_), Some(summary)) = (r.finished_at, r.summary) else {
                continue;
            };
            let programs = summary
                .get("programs")
                .and_then(|p| p.as_array())
                .cloned()
                .unwrap_or_default();
            for p in programs.iter().filter_map(|p| p.as_str()) {
                out.insert(p.to_string(), r.now);
            }
        }
        Ok(out)
    }

    /// The last `n` runs, newest first.
    pub fn runs(&self, n: usize) -> Result<Vec<RunRecord>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, started_at, now, finished_at, summary FROM runs ORDER BY id DESC LIMIT ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![n as i64], |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    started_at: parse_ts(&r.get::<_, String>(1)?),
                    now: parse_ts(&r.get::<_, String>(2)?),
                    finished_at: r.get::<_, Option<String>>(3)?.as_deref().map(parse_ts),
                    summary: r
                        .get::<_, Option<String>>(4)?
                        .and_then(|s| serde_json::from_str(&s).ok()),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }
}

/// One run as the state store remembers it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Run id.
    pub id: i64,
    /// When it started (wall clock).
    pub started_at: DateTime<Utc>,
    /// The run's clock (`--now`, or the start).
    pub now: DateTime<Utc>,
    /// When it committed; None when it was interrupted (or still runs).
    pub finished_at: Option<DateTime<Utc>>,
    /// What it did (the JSON summary committed with it).
    pub summary: Option<serde_json::Value>,
}

/// A run's commit begun by [`State::begin_commit`]: one open transaction.
pub struct Pending<'s> {
    state: &'s State,
    /// Committed: nothing to roll back when dropped.
    done: bool,
}

impl Pending<'_> {
    /// Writes check results to remember (new ones, and those that changed
    /// in more than `last_seen`) into the commit.
    pub fn write_checks(&self, checks: &[CheckRecord]) -> Result<(), StateError> {
        let (conn, wrap) = (&self.state.conn, |e| self.state.err(e));
        let mut st = conn
            .prepare_cached(
                "INSERT INTO check_state VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)
                     ON CONFLICT (period, key) DO UPDATE SET severity=excluded.severity, observed=excluded.observed,
                       expected=excluded.expected, message=excluded.message, explanation=excluded.explanation,
                       first_seen=excluded.first_seen, last_seen=excluded.last_seen, resolved_at=excluded.resolved_at",
            )
            .map_err(wrap)?;
        for c in checks {
            st.execute(params![
                c.key,
                c.rule,
                c.severity,
                c.program,
                c.township,
                c.period,
                c.year,
                c.indicator,
                c.dimension,
                c.observed,
                c.expected,
                c.message,
                c.explanation,
                ts(&c.first_seen),
                ts(&c.last_seen),
                c.resolved_at.as_ref().map(ts)
            ])
            .map_err(wrap)?;
        }
        Ok(())
    }

    /// Writes the rest of `c` (its `checks` too) and commits: the run
    /// happened.
    pub fn commit(mut self, c: &Commit<'_>) -> Result<(), StateError> {
        let (conn, wrap) = (&self.state.conn, |e| self.state.err(e));
        // The records seen again (the program's clock, once: a
        // national year's 1.7 million rows were each written again),
        // then the changed ones not written yet.
        let (programs, at) = c.seen_again;
        let mut st = conn
            .prepare_cached(&format!(
                "INSERT INTO meta VALUES ('{CHECKS_SEEN_AT}' || ?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"
            ))
            .map_err(wrap)?;
        for p in programs {
            st.execute(params![p, ts(&at)]).map_err(wrap)?;
        }
        self.write_checks(c.checks)?;
        let mut st = conn
            .prepare_cached(
                "INSERT INTO alerts (key, kind, severity, township, period, indicator, message, first_seen,
                                     last_seen, notified_at, resolved_at, program)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)
                 ON CONFLICT (key) DO UPDATE SET kind=excluded.kind, severity=excluded.severity,
                   message=excluded.message, first_seen=excluded.first_seen, last_seen=excluded.last_seen,
                   notified_at=excluded.notified_at, resolved_at=excluded.resolved_at, program=excluded.program",
            )
            .map_err(wrap)?;
        for a in c.alerts {
            st.execute(params![
                a.key,
                a.kind,
                a.severity,
                a.township,
                a.period,
                a.indicator,
                a.message,
                ts(&a.first_seen),
                ts(&a.last_seen),
                a.notified_at.as_ref().map(ts),
                a.resolved_at.as_ref().map(ts),
                a.program
            ])
            .map_err(wrap)?;
        }
        let mut st = conn
            .prepare_cached(
                "INSERT INTO outbox (idempotency_key, alert_key, program, change, alert, created_at, run_id)
                 VALUES (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT (idempotency_key) DO NOTHING",
            )
            .map_err(wrap)?;
        for o in c.outbox {
            st.execute(params![
                o.idempotency_key,
                o.alert_key,
                o.program,
                o.change,
                o.alert.to_string(),
                ts(&o.created_at),
                c.run_id
            ])
            .map_err(wrap)?;
        }
        if let Some(seq) = c.snapshot {
            conn.execute(
                "INSERT INTO meta VALUES ('published_snapshot', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![seq.to_string()],
            )
            .map_err(wrap)?;
        }
        conn.execute(
            "UPDATE runs SET finished_at=?2, summary=?3 WHERE id=?1",
            params![c.run_id, ts(&c.finished_at), c.summary],
        )
        .map_err(wrap)?;
        conn.execute_batch("COMMIT").map_err(wrap)?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Nothing of the run counts; a failure here leaves the
            // transaction to the connection's close, which rolls it back.
            let _ = self.state.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The columns of `check_state` that [`CheckFrame`] reads, in its order,
/// `last_seen` read as `last_seen` says.
fn check_columns(last_seen: &str) -> String {
    format!(
        "key, rule, severity, program, township, period, year, indicator, dimension, observed,
         expected, message, explanation, first_seen, {last_seen}, resolved_at"
    )
}

/// Where `meta` keeps, after this prefix and a program's name, when the
/// program's open check results were last seen failing: every run of the
/// program sees each of its open results again (or resolves it), so the
/// run's clock is kept once per program instead of on every row (see
/// `Commit::seen_again`); a row's own `last_seen` is when it was written.
const CHECKS_SEEN_AT: &str = "checks_seen_at/";

/// `check_state.last_seen` as read for one program, its clock of
/// [`CHECKS_SEEN_AT`] bound as `?2` ('' when it has none). Timestamps are
/// stored in one format, so text order is time order.
const LAST_SEEN_OF_PROGRAM: &str = "CASE WHEN resolved_at IS NULL THEN max(last_seen, ?2) ELSE last_seen END";

/// [`LAST_SEEN_OF_PROGRAM`] for a row of any program (its clock looked up
/// per row: for the few rows read one by one).
fn last_seen_of_row() -> String {
    format!(
        "CASE WHEN resolved_at IS NULL THEN max(last_seen, coalesce(
         (SELECT value FROM meta WHERE key = '{CHECKS_SEEN_AT}' || program), '')) ELSE last_seen END"
    )
}

/// The instants of the state's rows (the few runs' clocks), each parsed
/// once.
#[derive(Default)]
struct Instants(polars::prelude::PlHashMap<Box<[u8]>, i64>);

impl Instants {
    /// Microseconds since the epoch of a stored instant (null: none), by
    /// its bytes (a handful of distinct instants, each parsed once).
    fn micros(&mut self, v: rusqlite::types::ValueRef<'_>) -> Option<i64> {
        let rusqlite::types::ValueRef::Text(b) = v else {
            return None;
        };
        if let Some(&us) = self.0.get(b) {
            return Some(us);
        }
        let us = parse_ts(std::str::from_utf8(b).ok()?).timestamp_micros();
        self.0.insert(b.into(), us);
        Some(us)
    }
}

/// Remembered check results read into columns
/// (`checks::track::known_schema`), a row of [`CHECK_COLUMNS`] at a time.
struct CheckFrame {
    text: Vec<polars::prelude::StringChunkedBuilder>,
    year: Vec<i32>,
    observed: Vec<Option<f64>>,
    expected: Vec<Option<f64>>,
    first: Vec<i64>,
    last: Vec<i64>,
    resolved: Vec<Option<i64>>,
    instants: Instants,
}

/// The text columns of [`CHECK_COLUMNS`], by position.
const CHECK_TEXT: [(&str, usize); 10] = [
    ("key", 0),
    ("rule", 1),
    ("severity", 2),
    ("program", 3),
    ("township", 4),
    ("period", 5),
    ("indicator", 7),
    ("dimension", 8),
    ("message", 11),
    ("explanation", 12),
];

impl Default for CheckFrame {
    fn default() -> CheckFrame {
        CheckFrame {
            text: CHECK_TEXT
                .iter()
                .map(|(name, _)| polars::prelude::StringChunkedBuilder::new((*name).into(), 1024))
                .collect(),
            year: vec![],
            observed: vec![],
            expected: vec![],
            first: vec![],
            last: vec![],
            resolved: vec![],
            instants: Instants::default(),
        }
    }
}

impl CheckFrame {
    fn push(&mut self, r: &rusqlite::Row<'_>) -> rusqlite::Result<()> {
        // Borrowed from SQLite's row, not copied out: a national year's
        // results are ~270 MB of keys and messages.
        for (b, (_, i)) in self.text.iter_mut().zip(CHECK_TEXT) {
            b.append_option(text_at(r, i)?);
        }
        self.year.push(r.get(6)?);
        self.observed.push(r.get(9)?);
        self.expected.push(r.get(10)?);
        self.first.push(self.instants.micros(r.get_ref(13)?).unwrap_or(0));
        self.last.push(self.instants.micros(r.get_ref(14)?).unwrap_or(0));
        let resolved = self.instants.micros(r.get_ref(15)?);
        self.resolved.push(resolved);
        Ok(())
    }

    fn finish(self) -> polars::prelude::PolarsResult<polars::prelude::DataFrame> {
        use polars::prelude::*;
        let mut text: Vec<Column> = self.text.into_iter().map(|b| b.finish().into_column()).collect();
        let (explanation, message) = (text.pop(), text.pop());
        let (dimension, indicator) = (text.pop(), text.pop());
        let mut columns = text;
        columns.push(Column::new("year".into(), self.year));
        columns.extend(indicator);
        columns.extend(dimension);
        columns.push(Column::new("observed".into(), self.observed));
        columns.push(Column::new("expected".into(), self.expected));
        columns.extend(message);
        columns.extend(explanation);
        columns.push(Column::new("first_seen".into(), self.first));
        columns.push(Column::new("last_seen".into(), self.last));
        columns.push(Column::new("resolved_at".into(), self.resolved));
        DataFrame::new_infer_height(columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn landing_twice_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let mut l = landing("341124102");
        assert!(st.record_landing(&l).unwrap());
        l.last_fetched_at = t("2026-07-11T00:00:00Z");
        assert!(!st.record_landing(&l).unwrap());
        let all = st.landings("p").unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].first_fetched_at, t("2026-07-10T00:00:00Z"));
        assert_eq!(all[0].last_fetched_at, t("2026-07-11T00:00:00Z"));
    }

    fn landing(township: &str) -> Landing {
        Landing {
            pipeline: "p".into(),
            township: township.into(),
            period: "2026-06".into(),
            sha256: format!("sha-{township}"),
            url: "http://x".into(),
            bytes: 3,
            content_type: None,
            defect: None,
            version: Some(1),
            submitted_at: None,
            first_fetched_at: t("2026-07-10T00:00:00Z"),
            last_fetched_at: t("2026-07-10T00:00:00Z"),
        }
    }

    #[test]
    fn a_provinces_landings_are_its_townships_in_the_order_of_all_landings() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let at = |township: &str, period: &str, sha: &str, fetched: &str| {
            let mut l = landing(township);
            (l.period, l.sha256) = (period.into(), sha.into());
            (l.first_fetched_at, l.last_fetched_at) = (t(fetched), t(fetched));
            l
        };
        let mut other = at("341124101", "2026-05", "a", "2026-06-01T00:00:00Z");
        other.pipeline = "q".into();
        for l in [
            at("341124102", "2026-06", "b", "2026-07-02T00:00:00Z"),
            at("341124101", "2026-06", "z", "2026-07-01T00:00:00Z"),
            at("341124101", "2026-06", "a", "2026-07-03T00:00:00Z"),
            at("341124101", "2026-05", "c", "2026-06-01T00:00:00Z"),
            at("341124103", "2026-06", "d", "2026-07-01T00:00:00Z"),
            other,
        ] {
            st.record_landing(&l).unwrap();
        }
        let key = |l: &Landing| format!("{} {} {}", l.township, l.period, l.sha256);
        let all: Vec<String> = st.landings("p").unwrap().iter().map(key).collect();
        let of = |t: &[&str]| -> Vec<String> {
            st.landings_of("p", t.iter().copied())
                .unwrap()
                .iter()
                .map(key)
                .collect()
        };
        assert_eq!(
            of(&["341124101", "341124102"]),
            all[..4],
            "the same landings, in the same order: period, first fetched, sha256"
        );
        assert_eq!(
            all[..3],
            ["341124101 2026-05 c", "341124101 2026-06 z", "341124101 2026-06 a"]
        );
        assert_eq!(
            of(&["341124103", "341124199"]),
            ["341124103 2026-06 d"],
            "only the townships asked for"
        );
        assert!(of(&[]).is_empty());
    }

    #[test]
    fn landed_keys_are_the_keys_of_the_programs_landings_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let mut second = landing("341124101");
        second.sha256 = "sha-other".into();
        second.period = "2026-05".into();
        let mut elsewhere = landing("341124103");
        elsewhere.pipeline = "q".into();
        for l in [landing("341124101"), landing("341124102"), second, elsewhere] {
            st.record_landing(&l).unwrap();
        }
        let keys_of = |pipeline: &str| {
            let mut keys: Vec<(String, String, String)> = vec![];
            st.landed_keys(pipeline, |t, p, s| keys.push((t.into(), p.into(), s.into())))
                .unwrap();
            keys.sort();
            keys
        };
        let keys = keys_of("p");
        let mut expected: Vec<(String, String, String)> = st
            .landings("p")
            .unwrap()
            .into_iter()
            .map(|l| (l.township, l.period, l.sha256))
            .collect();
        expected.sort();
        assert_eq!(keys, expected);
        assert_eq!(
            keys,
            [
                ("341124101", "2026-05", "sha-other"),
                ("341124101", "2026-06", "sha-341124101"),
                ("341124102", "2026-06", "sha-341124102"),
            ]
            .map(|(t, p, s)| (t.to_string(), p.to_string(), s.to_string()))
        );
        assert_eq!(keys_of("q").len(), 1);
        assert!(keys_of("none").is_empty());
    }

    /// A program's validators as a run reads them, with their (township, period).
    struct Read {
        township: String,
        period: String,
        validators: crate::sources::Validators,
        sha256: String,
        bytes: Option<u64>,
    }

    fn validators(st: &State, pipeline: &str, sizes: bool) -> Vec<Read> {
        let mut out = Vec::new();
        st.validators_picked(pipeline, sizes, |t, p| Some((t.to_string(), p.to_string())), &mut out)
            .unwrap();
        out.into_iter()
            .map(|((township, period), d)| Read {
                township,
                period,
                validators: d.validators,
                sha256: d.sha256,
                bytes: d.bytes,
            })
            .collect()
    }

    #[test]
    fn a_body_still_served_is_seen_again_by_the_sha_its_validators_described() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let v = crate::sources::Validators {
            etag: Some("\"e1\"".into()),
            last_modified: None,
        };
        for township in ["341124101", "341124102"] {
            st.record_landing(&landing(township)).unwrap();
            let bytes = landing(township).bytes as u64;
            st.set_validators("p", township, "2026-06", Some((&v, &format!("sha-{township}"), bytes)))
                .unwrap();
        }
        // Kept with the validators; one as a version before schema 4 wrote
        // it, without the body's length: looked up among the landings.
        let kept: Option<i64> = st
            .conn
            .query_row("SELECT bytes FROM validators WHERE township = '341124101'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(kept, Some(landing("341124101").bytes));
        st.conn
            .execute("UPDATE validators SET bytes = NULL WHERE township = '341124102'", [])
            .unwrap();
        // What a run reads when it begins: each target's validators and the body they describe.
        assert!(validators(&st, "p", false).iter().all(|r| r.bytes.is_none()));
        let read = validators(&st, "p", true);
        assert_eq!(read.len(), 2);
        assert!(read.iter().all(|r| r.period == "2026-06"
            && r.validators == v
            && r.sha256 == format!("sha-{}", r.township)
            && r.bytes == Some(landing(&r.township).bytes as u64)));
        let last = |township: &str| {
            let all = st.landings("p").unwrap();
            all.into_iter()
                .find(|l| l.township == township)
                .unwrap()
                .last_fetched_at
        };
        let later = t("2026-07-11T00:00:00Z");
        // Found by the sha the run read with the validators.
        for r in &read {
            assert!(st.still_served("p", &r.township, "2026-06", &r.sha256, later).unwrap());
        }
        assert_eq!((last("341124101"), last("341124102")), (later, later));
        // Never moved back by an earlier clock.
        assert!(
            st.still_served("p", "341124102", "2026-06", "sha-341124102", t("2026-07-01T00:00:00Z"))
                .unwrap()
        );
        assert_eq!(last("341124102"), later);
        // A sha that is not landed (a state restored from an older backup):
        // not served, and its validators are dropped so that the next run
        // downloads the report whole.
        let even_later = t("2026-07-12T00:00:00Z");
        assert!(
            !st.still_served("p", "341124102", "2026-06", "sha-other", even_later)
                .unwrap()
        );
        assert_eq!(last("341124102"), later);
        let left: Vec<String> = validators(&st, "p", true).into_iter().map(|r| r.township).collect();
        assert_eq!(left, ["341124101"]);
    }

    #[test]
    fn a_reader_sees_what_is_committed_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        st.record_landing(&landing("341124101")).unwrap();
        let reader = st.reader().unwrap();
        let seen = |r: &State| r.landings_of("p", ["341124101", "341124102"]).unwrap().len();
        assert_eq!(seen(&reader), 1);
        st.record_landing(&landing("341124102")).unwrap();
        assert_eq!(seen(&reader), 2);
        assert!(reader.record_landing(&landing("341124103")).is_err(), "read only");
        assert_eq!(st.landings("p").unwrap().len(), 2);
    }

    #[test]
    fn landings_are_committed_in_batches_and_lost_with_their_open_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        // What another process (`taizhang serve`, a reviewer) sees.
        let other = || State::open(dir.path()).unwrap().landings("p").unwrap().len();
        let raw = crate::land::RawStore::new(dir.path());
        let mut batch = st.begin_landings().unwrap();
        for i in 0..LANDING_BATCH - 1 {
            st.record_landing(&landing(&format!("34112410{i:04}"))).unwrap();
            assert!(!batch.recorded());
        }
        assert_eq!(other(), 0, "not committed yet");
        st.record_landing(&landing("341124109999")).unwrap();
        assert!(batch.recorded(), "a full batch is due");
        st.commit_landings(&mut batch, raw.sync().unwrap()).unwrap();
        assert_eq!(other(), LANDING_BATCH, "a committed batch is seen");
        // One landing, committed early (the run waited long enough for more).
        st.record_landing(&landing("341124108888")).unwrap();
        assert!(!batch.recorded());
        st.commit_landings(&mut batch, raw.sync().unwrap()).unwrap();
        assert_eq!(other(), LANDING_BATCH + 1);
        // A kill with a batch open loses its records (their bodies are in
        // the raw store; the next run records them again).
        st.record_landing(&landing("341124107777")).unwrap();
        let _ = batch.recorded();
        // Nor is a record ever committed without its bodies' sync, even
        // when landing ends with it still open.
        st.end_landings(batch).unwrap();
        drop(st);
        assert_eq!(other(), LANDING_BATCH + 1);
    }

    fn check(program: &str, key: &str, seen: &str, resolved: Option<&str>) -> CheckRecord {
        CheckRecord {
            key: format!("{program}/{key}"),
            rule: "breakdown".into(),
            severity: "error".into(),
            program: program.into(),
            township: "341124102".into(),
            period: "2026-06".into(),
            year: 2026,
            indicator: Some("certificates_issued".into()),
            dimension: None,
            observed: Some(3.0),
            expected: Some(2.0),
            message: "合计不符".into(),
            explanation: None,
            first_seen: t("2026-07-01T00:00:00Z"),
            last_seen: t(seen),
            resolved_at: resolved.map(t),
        }
    }

    #[test]
    fn open_checks_seen_again_move_their_last_seen_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::open(dir.path()).unwrap();
        let run = st
            .start_run(t("2026-07-02T00:00:00Z"), t("2026-07-02T00:00:00Z"))
            .unwrap();
        let first = [
            check("p", "open", "2026-07-02T00:00:00Z", None),
            check("p", "resolved", "2026-07-01T00:00:00Z", Some("2026-07-02T00:00:00Z")),
            check("q", "open", "2026-07-02T00:00:00Z", None),
        ];
        let commit = |st: &mut State, run, checks: &[CheckRecord], programs: &[String], at: &str| {
            st.commit(&Commit {
                run_id: run,
                checks,
                seen_again: (programs, t(at)),
                alerts: &[],
                outbox: &[],
                snapshot: None,
                finished_at: t(at),
                summary: "{}",
            })
            .unwrap()
        };
        commit(&mut st, run, &first, &[], "2026-07-02T00:00:00Z");
        // A run of p the next day writes no record: p's open one was seen again.
        let run = st
            .start_run(t("2026-07-03T00:00:00Z"), t("2026-07-03T00:00:00Z"))
            .unwrap();
        commit(&mut st, run, &[], &["p".to_string()], "2026-07-03T00:00:00Z");
        let p = st.check_records("p").unwrap();
        let by = |k: &str| p.iter().find(|r| r.key == k).unwrap().clone();
        assert_eq!(by("p/open"), check("p", "open", "2026-07-03T00:00:00Z", None));
        assert_eq!(by("p/resolved"), first[1], "a resolved check keeps its last_seen");
        // Read as tracking reads them: hashed, and back whole by row.
        let remembered = st.remembered("p").unwrap();
        let open = remembered.iter().find(|r| !r.resolved).unwrap();
        let micros = |at: &str| t(at).timestamp_micros();
        assert_eq!(open.last_seen, micros("2026-07-03T00:00:00Z"));
        let resolved = remembered.iter().find(|r| r.resolved).unwrap();
        assert_eq!(resolved.last_seen, micros("2026-07-01T00:00:00Z"));
        let back = crate::checks::track::records(&st.check_rows(&[open.row, resolved.row]).unwrap()).unwrap();
        assert_eq!(back, [by("p/open"), first[1].clone()]);
        assert_eq!(
            st.check_records("q").unwrap(),
            vec![first[2].clone()],
            "another program's are not touched"
        );
        // A clock set back never moves last_seen back; a changed record is
        // written over.
        let run = st
            .start_run(t("2026-07-04T00:00:00Z"), t("2026-07-01T12:00:00Z"))
            .unwrap();
        let mut changed = check("p", "open", "2026-07-03T00:00:00Z", None);
        changed.observed = Some(4.0);
        commit(
            &mut st,
            run,
            std::slice::from_ref(&changed),
            &["p".to_string()],
            "2026-07-01T12:00:00Z",
        );
        let p = st.check_records("p").unwrap();
        assert_eq!(p.iter().find(|r| r.key == "p/open").unwrap(), &changed);
        // (The records are read as the columns tracking reads.)
        assert_eq!(
            st.check_frame("p").unwrap().schema().as_ref(),
            &crate::checks::track::known_schema()
        );
    }

    #[test]
    fn remembered_results_are_the_frames_results_hashed_and_read_back_whole_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let run = st
            .start_run(t("2026-07-02T00:00:00Z"), t("2026-07-02T00:00:00Z"))
            .unwrap();
        let mut explained = check("p", "explained", "2026-07-02T00:00:00Z", None);
        explained.explanation = Some("强制上报: 台风".into());
        explained.observed = None;
        let checks = [
            check("p", "open", "2026-07-02T00:00:00Z", None),
            check("q", "other", "2026-07-02T00:00:00Z", None),
            check("p", "resolved", "2026-07-01T00:00:00Z", Some("2026-07-02T00:00:00Z")),
            explained,
        ];
        st.commit(&Commit {
            run_id: run,
            checks: &checks,
            seen_again: (&[], t("2026-07-02T00:00:00Z")),
            alerts: &[],
            outbox: &[],
            snapshot: None,
            finished_at: t("2026-07-02T00:00:00Z"),
            summary: "{}",
        })
        .unwrap();
        let frame = st.check_frame("p").unwrap();
        let from_frame = crate::checks::track::remembered(&frame).unwrap();
        let from_state = st.remembered("p").unwrap();
        assert_eq!(from_state.len(), 3, "p's results only");
        let without_row = |r: &[crate::checks::track::Remembered]| {
            r.iter()
                .map(|r| (r.key, r.said, r.first_seen, r.last_seen, r.resolved))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            without_row(&from_state),
            without_row(&from_frame),
            "hashed from the row as from its columns"
        );
        assert!(from_state[1].resolved && !from_state[0].resolved);
        // Read back whole by row, in the order asked for.
        let rows: Vec<i64> = from_state.iter().rev().map(|r| r.row).collect();
        let back = st.check_rows(&rows).unwrap();
        let keys = back.column("key").unwrap().str().unwrap().clone();
        assert_eq!(
            keys.iter().collect::<Vec<_>>(),
            [Some("p/explained"), Some("p/resolved"), Some("p/open")]
        );
        assert_eq!(
            crate::checks::track::records(&back).unwrap(),
            [checks[3].clone(), checks[2].clone(), checks[0].clone()]
        );
        assert!(st.check_rows(&[9_999]).is_err(), "a row that is not there is an error");
        assert_eq!(
            st.check_rows(&[]).unwrap().schema().as_ref(),
            &crate::checks::track::known_schema()
        );
    }

    /// A commit of `run` at `at` with nothing in it but the run's end.
    fn bare_commit(run: i64, at: &str) -> Commit<'static> {
        Commit {
            run_id: run,
            checks: &[],
            seen_again: (&[], t(at)),
            alerts: &[],
            outbox: &[],
            snapshot: None,
            finished_at: t(at),
            summary: "{}",
        }
    }

    /// Landing's transactions commit without a sync of their own; every
    /// other commit, the run's above all, is synced when it returns (and
    /// with it the landings before it), even after a landing that failed
    /// before it was ended.
    #[test]
    fn only_landings_commit_without_a_sync_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let sync = |s: &State| -> i64 { s.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap() };
        let (normal, full) = (1, 2);
        assert_eq!(sync(&st), full, "a store opened");
        let batch = st.begin_landings().unwrap();
        assert_eq!(sync(&st), normal, "while landing");
        st.end_landings(batch).unwrap();
        assert_eq!(sync(&st), full, "after landing");
        // A landing left open (its run failed): the commit is synced anyway.
        let _open = st.begin_landings().unwrap();
        st.conn.execute_batch("ROLLBACK").unwrap();
        let pending = st.begin_commit().unwrap();
        assert_eq!(sync(&st), full, "the run's commit");
        drop(pending);
    }

    /// The commit of a run begun before its batches: what its batches
    /// write is seen by no one else until it commits; dropped uncommitted
    /// (the run failed), none of it is left and the store takes the next.
    #[test]
    fn a_commit_begun_early_is_seen_only_once_committed_and_not_at_all_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let other = State::open(dir.path()).unwrap();
        let keys = |s: &State| -> Vec<String> { s.check_records("p").unwrap().into_iter().map(|r| r.key).collect() };
        let at = "2026-07-02T00:00:00Z";
        let run = st.start_run(t(at), t(at)).unwrap();
        let pending = st.begin_commit().unwrap();
        pending.write_checks(&[check("p", "a", at, None)]).unwrap();
        pending.write_checks(&[check("p", "b", at, None)]).unwrap();
        assert!(keys(&other).is_empty(), "nothing before the commit");
        assert!(other.runs(1).unwrap()[0].finished_at.is_none());
        pending.commit(&bare_commit(run, at)).unwrap();
        assert_eq!(keys(&other), ["p/a", "p/b"]);
        assert!(other.runs(1).unwrap()[0].finished_at.is_some());

        let run = st.start_run(t(at), t(at)).unwrap();
        let pending = st.begin_commit().unwrap();
        pending.write_checks(&[check("p", "c", at, None)]).unwrap();
        drop(pending);
        assert_eq!(keys(&st), ["p/a", "p/b"], "rolled back");
        assert!(st.runs(1).unwrap()[0].finished_at.is_none(), "the run never committed");
        // No transaction is left open: the next commit is the store's.
        st.commit(&Commit {
            checks: &[check("p", "d", at, None)],
            ..bare_commit(run, at)
        })
        .unwrap();
        assert_eq!(keys(&other), ["p/a", "p/b", "p/d"]);
    }

    /// A review decision made while a run holds the store (from its first
    /// batch to its commit) waits for the commit instead of failing, and
    /// other commands still open and read the store meanwhile.
    #[test]
    fn a_review_decision_waits_for_a_runs_commit() {
        let dir = tempfile::tempdir().unwrap();
        let st = State::open(dir.path()).unwrap();
        let at = "2026-07-02T00:00:00Z";
        let run = st.start_run(t(at), t(at)).unwrap();
        let pending = st.begin_commit().unwrap();
        pending.write_checks(&[check("p", "a", at, None)]).unwrap();
        let held = std::time::Duration::from_millis(1_500);
        let reviewer = std::thread::spawn({
            let dir = dir.path().to_path_buf();
            move || {
                let started = std::time::Instant::now();
                let st = State::open(&dir).unwrap();
                assert_eq!(st.runs(5).unwrap().len(), 1, "read while the run holds the store");
                let decided = st.decide_review("r1", &crate::review::Verdict::Accept, t(at));
                (decided, started.elapsed())
            }
        });
        std::thread::sleep(held);
        pending.commit(&bare_commit(run, at)).unwrap();
        let (decided, waited) = reviewer.join().unwrap();
        decided.unwrap();
        assert!(waited >= held - std::time::Duration::from_millis(300), "{waited:?}");
        assert_eq!(st.review_log().unwrap().len(), 1);
    }

    #[test]
    fn a_run_that_never_committed_reads_as_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path()).unwrap();
        let t = DateTime::parse_from_rfc3339("2026-07-10T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = state.start_run(t, t).unwrap();
        let runs = state.runs(5).unwrap();
        assert_eq!((runs.len(), runs[0].id, runs[0].finished_at), (1, id, None));
        let report = crate::inspect::runs_report(dir.path(), 5, false).unwrap();
        assert!(report.lines().nth(1).unwrap().contains("interrupted"), "{report}");
        let empty = tempfile::tempdir().unwrap();
        assert!(
            crate::inspect::runs_report(empty.path(), 5, false)
                .unwrap()
                .starts_with("no runs yet")
        );
        assert!(!empty.path().join("taizhang.sqlite").exists(), "a read creates nothing");
    }
}
