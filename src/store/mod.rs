//! The store: SQLite in WAL mode, the only way stages talk to each other.
//!
//! Writes go through one writer thread that batches them ([`writer`]); each state change
//! is one function in [`transitions`]; reads for the CLI are in [`query`].

pub mod query;
mod transitions;
mod writer;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

pub use query::{Event, QueueFilter, RequestDetail, RequestRow};
pub use transitions::{NewMail, NewRequest};

/// Migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/0001_init.sql")];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the data directory {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("commit failed: {0}")]
    Commit(String),
    #[error("the store is shut down")]
    Closed,
    #[error("the database was written by a newer smsgw (schema {found}, this one knows {known})")]
    TooNew { found: usize, known: usize },
    #[error("no request {0}")]
    NotFound(i64),
}

/// The states of a request (DESIGN.md, "Message states").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Received,
    Routed,
    Forwarding,
    Forwarded,
    Queued,
    Sending,
    Sent,
    Delivered,
    Uncertain,
    Failed,
    Expired,
}

impl State {
    pub const ALL: [State; 11] = [
        State::Received,
        State::Routed,
        State::Forwarding,
        State::Forwarded,
        State::Queued,
        State::Sending,
        State::Sent,
        State::Delivered,
        State::Uncertain,
        State::Failed,
        State::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Routed => "routed",
            State::Forwarding => "forwarding",
            State::Forwarded => "forwarded",
            State::Queued => "queued",
            State::Sending => "sending",
            State::Sent => "sent",
            State::Delivered => "delivered",
            State::Uncertain => "uncertain",
            State::Failed => "failed",
            State::Expired => "expired",
        }
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state {s:?} (one of: {})", names.join(", "))
            })
    }
}

/// A handle on the store; cheap to clone, one per task.
#[derive(Clone)]
pub struct Store {
    writer: writer::Writer,
}

impl Store {
    /// Opens (creating if needed) the database, applies pending migrations and starts
    /// the writer.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = connect(path)?;
        migrate(&conn)?;
        let writer = writer::Writer::start(conn)
            .map_err(|e| StoreError::DataDir(path.display().to_string(), e))?;
        Ok(Store { writer })
    }

    /// Stores an accepted mail as one request per recipient; returns their ids once the
    /// rows are durably committed.
    pub async fn receive(&self, mail: NewMail) -> Result<Vec<i64>, StoreError> {
        self.writer
            .write(move |conn| transitions::receive(conn, &mail, now_ms()))
            .await
    }
}

/// A connection with the settings every user of the database needs.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::DataDir(dir.display().to_string(), e))?;
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
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            index + 1
        ))?;
    }
    Ok(())
}

/// Opens the database for reading, as the CLI does beside a running gateway.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
