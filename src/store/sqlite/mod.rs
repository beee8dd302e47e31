//! The store on SQLite, in WAL mode: one file in `instance.data_dir`, one instance.
//! Writes go through one writer thread that batches them ([`writer`]), so the fsync
//! that makes a `250` true is shared by every session committing at that moment; reads
//! for the CLI and `/metrics` use connections of their own, off the writer.

pub(super) mod copy;
pub(super) mod dispatch;
pub(super) mod dsn;
#[cfg(test)]
mod fixtures;
pub(super) mod forwarding;
pub(super) mod inbox;
pub(super) mod intake;
pub(super) mod lifecycle;
pub(super) mod optout;
pub(super) mod query;
pub(super) mod reach;
pub(super) mod routing;
pub(super) mod sending;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use super::StoreError;

/// Migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/0001_init.sql"),
    include_str!("../../../migrations/0002_dsn.sql"),
    include_str!("../../../migrations/0003_cluster.sql"),
    include_str!("../../../migrations/0004_meta.sql"),
    include_str!("../../../migrations/0005_sent_by_time.sql"),
    include_str!("../../../migrations/0006_valid_from.sql"),
    include_str!("../../../migrations/0007_unanswered_forward.sql"),
    include_str!("../../../migrations/0008_dispatch.sql"),
    include_str!("../../../migrations/0009_forward_in_flight.sql"),
    include_str!("../../../migrations/0010_site.sql"),
    include_str!("../../../migrations/0011_inbound.sql"),
];

/// The SQLite backend: the writer, and where the file is for readers.
#[derive(Clone)]
pub(super) struct Sqlite {
    writer: writer::Writer,
    path: Arc<PathBuf>,
    /// The soft cap (`store.max_size_mb`) in pages, if any: intake refuses a mail that
    /// would take the database past it (see [`cap_size`]).
    pub(super) max_pages: Option<i64>,
    /// This instance's name, written on the requests it accepts.
    pub(super) instance: Arc<str>,
}

impl Sqlite {
    /// Opens (creating if needed) the database, applies pending migrations and starts
    /// the writer; returns it with the database's id. With `max_bytes`
    /// (`store.max_size_mb`), intake refuses a mail that would take the database past
    /// that size ([`StoreError::Full`], `451 4.3.0`), while the stages keep a reserve
    /// beyond it to record their progress in. A database already larger opens, refuses
    /// mail, and still lets the stages write.
    pub(super) fn open(path: &Path, max_bytes: Option<u64>, instance: &str) -> Result<(Sqlite, String), StoreError> {
        let conn = connect(path)?;
        migrate(&conn)?;
        let max_pages = match max_bytes {
            Some(max_bytes) => Some(cap_size(&conn, max_bytes)?),
            None => None,
        };
        let id = store_id(&conn)?;
        let writer = writer::Writer::start(conn).map_err(|e| StoreError::DataDir(path.display().to_string(), e))?;
        let sqlite = Sqlite {
            writer,
            path: Arc::new(path.to_path_buf()),
            max_pages,
            instance: instance.into(),
        };
        Ok((sqlite, id))
    }

    /// Runs `work` inside the writer's next batch and returns its result once committed.
    pub(super) async fn write<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.writer.write(work).await
    }

    /// Runs `work` on a read-only connection of its own, on a blocking thread: long
    /// reads (the CLI's lists, `/metrics`' scan) never hold up the writer.
    pub(super) async fn read<R, F>(&self, work: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || work(&open_read_only(&path)?))
            .await
            .map_err(|_| StoreError::Closed)?
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

/// Opens the database for reading, as the CLI does beside a running gateway.
fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}
