//! The store: SQLite in WAL mode, the only way stages talk to each other.
//!
//! [`Store`] is the contract between stages: each stage reads what is due for it and
//! records what became of it, and every state change is one transaction that also
//! appends an event (`queue show`) and, where the sender asked, queues a DSN. Writes go
//! through one writer thread that batches them ([`writer`]), so the fsync that makes a
//! `250` true is shared by every session committing at that moment.
//!
//! Files by job, each named for the stage it serves: [`intake`] (mail in), [`routing`],
//! [`reach`] (requests a narrower tariff leaves without a route), [`forwarding`] (to
//! peers), [`dispatch`] (which request each free modem gets), [`sending`] (modems:
//! leases, parts, reports, recovery), [`lifecycle`] (the moves all share, expiry, the
//! operator's retry), [`dsn`] (what senders are owed), [`inbox`] (SMS received),
//! [`query`] (the CLI's reads), [`state`] (the names).

mod dispatch;
mod dsn;
#[cfg(test)]
mod fixtures;
mod forwarding;
mod inbox;
mod intake;
mod lifecycle;
mod postgres;
pub mod query;
mod reach;
mod routing;
mod sending;
mod state;
#[cfg(test)]
mod tests;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tokio::sync::Notify;

pub use dispatch::QueuedRequest;
pub use dsn::{DsnAction, DsnOutcome, PendingDsn, ReportWait};
pub use forwarding::{ForwardOutcome, ForwardRequest};
pub use intake::{NewMail, NewRequest};
pub use query::{HistoryLine, QueueFilter, RequestDetail, RequestRow};
pub use routing::{Route, UnroutedRequest};
pub use sending::ReportedPart;
pub use state::{DsnState, PartStatus, State};

/// Migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_init.sql"),
    include_str!("../../migrations/0002_dsn.sql"),
    include_str!("../../migrations/0003_cluster.sql"),
    include_str!("../../migrations/0004_meta.sql"),
    include_str!("../../migrations/0005_sent_by_time.sql"),
    include_str!("../../migrations/0006_valid_from.sql"),
    include_str!("../../migrations/0007_unanswered_forward.sql"),
    include_str!("../../migrations/0008_dispatch.sql"),
    include_str!("../../migrations/0009_forward_in_flight.sql"),
];

/// Why the store could not do what was asked. Intake turns any of these into
/// `451 4.3.0`: nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused a statement.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused a statement, or the connection broke during it.
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had (it is down, or unreachable).
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// The database's directory could not be made, or the writer thread not started.
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    /// The batch holding this write did not commit: nothing of it is stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writer has stopped (shutdown).
    #[error("the store is shut down")]
    Closed,
    /// The database has migrations this binary does not know: refuse to touch it.
    #[error("the database was written by a newer smsgw (schema {found}, this one knows {known})")]
    TooNew {
        /// Migrations applied to the database.
        found: usize,
        /// Migrations this binary has.
        known: usize,
    },
    /// No request with this id.
    #[error("no request {0}")]
    NotFound(i64),
    /// Intake only: the mail would take the queue past `store.max_size_mb`. Nothing of
    /// it was written, and the rest of its batch commits.
    #[error("the queue is full (store.max_size_mb): try again later")]
    Full,
}

/// A handle on the store; cheap to clone, one per task. Its methods, grouped by the
/// stage that calls them, live beside their SQL in the files named in the module docs.
#[derive(Clone)]
pub struct Store {
    writer: writer::Writer,
    /// The soft cap (`store.max_size_mb`) in pages, if any: intake refuses a mail that
    /// would take the database past it (see [`Store::open`]).
    max_pages: Option<i64>,
    /// Random, chosen when the database was created: see [`Store::id`].
    id: Arc<str>,
    /// Stages wake each other through these after writing a new state.
    pub wake: Arc<Wakeups>,
}

/// One wake-up per stage: a store method that hands a stage new work notifies it, so
/// no stage polls faster than its own timers.
#[derive(Debug, Default)]
pub struct Wakeups {
    /// New requests in `received`.
    pub received: Notify,
    /// New requests in `queued`.
    pub queued: Notify,
    /// New DSNs to deliver.
    pub dsn: Notify,
    /// New requests in `forwarding`.
    pub forwarding: Notify,
}

impl Store {
    /// Opens (creating if needed) the database, applies pending migrations and starts
    /// the writer. With `max_bytes` (`store.max_size_mb`), intake refuses a mail that
    /// would take the database past that size ([`StoreError::Full`], `451 4.3.0`), while
    /// the stages keep a reserve beyond it to record their progress in. A database
    /// already larger opens, refuses mail, and still lets the stages write.
    pub fn open(path: &Path, max_bytes: Option<u64>) -> Result<Store, StoreError> {
        let conn = connect(path)?;
        migrate(&conn)?;
        let max_pages = match max_bytes {
            Some(max_bytes) => Some(cap_size(&conn, max_bytes)?),
            None => None,
        };
        let id = store_id(&conn)?.into();
        let writer = writer::Writer::start(conn).map_err(|e| StoreError::DataDir(path.display().to_string(), e))?;
        Ok(Store {
            writer,
            max_pages,
            id,
            wake: Arc::default(),
        })
    }

    /// This database's own random id (16 hex digits): with a request id, it names the
    /// request uniquely across the cluster, even after the database is recreated.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A connection with the settings every user of the database needs.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::DataDir(dir.display().to_string(), e))?;
    }
    let conn = Connection::open(path)?;
    // WAL lets the CLI read while the gateway writes; synchronous=FULL makes every
    // commit reach the disk before we say 250 (NORMAL would not survive a power cut).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Most bytes kept beyond the soft cap for the stages: the larger of this and
/// [`RESERVE_SHARE`] of the cap.
const RESERVE_BYTES: u64 = 16 * 1024 * 1024;
/// The reserve as a share of the cap (1/20: 5%).
const RESERVE_SHARE: u64 = 20;

/// Caps the database this connection writes, in two steps; returns the soft cap in
/// pages (`max_bytes` rounded down to whole pages).
///
/// The soft cap is intake's: a mail that would take the database past it is refused in
/// its own savepoint ([`StoreError::Full`]), and the rest of its batch commits. The hard
/// cap, `PRAGMA max_page_count`, lies a reserve beyond it (the larger of 16 MiB and 5%
/// of the cap; beyond the current size, if that is larger): the stages' writes (every
/// transition inserts an event) land there, so the queue drains at the cap. Past the
/// hard cap SQLite rolls back the whole transaction (`SQLITE_FULL`), which the writer
/// reports to every job of its batch; in normal operation that does not happen. The
/// WAL file beside the database is not counted (checkpoints keep it near 4 MiB).
fn cap_size(conn: &Connection, max_bytes: u64) -> Result<i64, StoreError> {
    // SQLite's own ceiling on max_page_count.
    const MOST_PAGES: i64 = 4_294_967_294;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
    let page_count: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0))?;
    let pages = |bytes: u64| i64::try_from(bytes / page_size.max(1).unsigned_abs()).unwrap_or(MOST_PAGES);
    let soft = pages(max_bytes).min(MOST_PAGES);
    let reserve = pages(RESERVE_BYTES.max(max_bytes / RESERVE_SHARE));
    let hard = soft.max(page_count).saturating_add(reserve).min(MOST_PAGES);
    conn.pragma_update(None, "max_page_count", hard)?;
    if page_count >= soft {
        tracing::warn!(
            size = page_count * page_size,
            max_bytes,
            "the queue database is at or past store.max_size_mb: mail is refused until it drains"
        );
    } else {
        tracing::info!(max_bytes, reserve = reserve * page_size, "queue database capped");
    }
    Ok(soft)
}

/// The database's random id, chosen on first use.
fn store_id(conn: &Connection) -> Result<String, StoreError> {
    let mut random = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| StoreError::Commit("no randomness for the store id".into()))?;
    let fresh: String = random.iter().map(|b| format!("{b:02x}")).collect();
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('store_id', ?1) ON CONFLICT (key) DO NOTHING",
        [&fresh],
    )?;
    Ok(conn.query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |row| row.get(0))?)
}

/// Applies the migrations the database lacks, each in its own transaction.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::TooNew {
            found: applied,
            known: MIGRATIONS.len(),
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", index + 1))?;
    }
    Ok(())
}

/// `smsgw queue retry`: queues an uncertain, failed or expired request again, from the
/// CLI beside a running gateway (which picks it up at its next sweep).
pub fn retry(path: &Path, id: i64) -> Result<bool, StoreError> {
    let conn = connect(path)?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let retried = lifecycle::retry(&conn, id, now_ms())?;
    conn.execute_batch("COMMIT")?;
    Ok(retried)
}

/// What `/metrics` shows of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSummary {
    /// Requests per state (states with none are absent).
    pub by_state: Vec<(State, u64)>,
    /// How long the oldest request not yet handed to a modem's network or a peer has
    /// waited since it was accepted, or since an operator's retry.
    pub oldest_waiting: Option<Duration>,
}

/// States in which a request still waits for this site to send or hand it on.
const WAITING: [State; 5] = [
    State::Received,
    State::Routed,
    State::Forwarding,
    State::Queued,
    State::Sending,
];

/// The queue's figures, read beside the gateway (for `/metrics`: a scan of the whole
/// table, kept off the writer so that intake commits never wait for it).
pub fn queue_summary(path: &Path) -> Result<QueueSummary, StoreError> {
    let conn = open_read_only(path)?;
    let by_state = conn
        .prepare("SELECT state, count(*) FROM requests GROUP BY state")?
        .query_map([], |row| Ok((row.get::<_, State>(0)?, row.get::<_, i64>(1)? as u64)))?
        .collect::<Result<_, _>>()?;
    let placeholders = vec!["?"; WAITING.len()].join(", ");
    let oldest: Option<i64> = conn
        .prepare(&format!(
            "SELECT min(coalesce(valid_from, created)) FROM requests WHERE state IN ({placeholders})"
        ))?
        .query_row(rusqlite::params_from_iter(WAITING), |row| row.get(0))?;
    Ok(QueueSummary {
        by_state,
        oldest_waiting: oldest.map(|since| Duration::from_millis(now_ms().saturating_sub(since).max(0) as u64)),
    })
}

/// Opens the database for reading, as the CLI does beside a running gateway.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Milliseconds from now until `at` (0 if past).
fn until(at: Option<i64>) -> Option<u64> {
    at.map(|at| at.saturating_sub(now_ms()).max(0) as u64)
}

/// The store's clock: unix milliseconds, as every time column holds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
