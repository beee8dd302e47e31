//! `smsgw store copy`: an instance's SQLite store copied into an empty PostgreSQL
//! database, so that the instance (and later others of its site) can run on it.
//!
//! The SQLite side ([`sqlite::copy`](super::sqlite::copy)) reads the file in one read
//! transaction, table by table in id order, a batch at a time; the PostgreSQL side
//! ([`postgres::copy`](super::postgres::copy)) writes each batch with one statement, all
//! in one transaction that commits only once the rows on both sides are counted equal:
//! a copy that fails leaves the database as empty as it was.

use std::fmt;

use super::{StoreError, postgres, sqlite};
use crate::config::{Config, PostgresUrl};

/// Most rows read and written at once.
pub(super) const BATCH_ROWS: usize = 2_000;
/// Most bytes of mail (`messages.raw`) read and written at once; a batch holds at least
/// one message, however large.
pub(super) const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// A row of `messages`.
pub(super) struct MessageRow {
    pub(super) id: i64,
    pub(super) received: i64,
    pub(super) sender: String,
    pub(super) envid: Option<String>,
    pub(super) ret: Option<String>,
    pub(super) client: String,
    pub(super) helo: String,
    pub(super) auth_user: Option<String>,
    pub(super) size: i64,
    pub(super) raw: Vec<u8>,
    pub(super) origin: Option<String>,
    pub(super) trace: String,
}

/// A row of `requests`, as SQLite has it.
pub(super) struct RequestRow {
    pub(super) id: i64,
    pub(super) message_id: i64,
    pub(super) recipient: String,
    pub(super) number: String,
    pub(super) notify: Option<String>,
    pub(super) orcpt: Option<String>,
    pub(super) text: String,
    pub(super) encoding: String,
    pub(super) parts: i64,
    pub(super) state: String,
    pub(super) status: Option<String>,
    pub(super) reason: Option<String>,
    pub(super) attempts: i64,
    pub(super) next_attempt: Option<i64>,
    pub(super) lease_until: Option<i64>,
    pub(super) modem: Option<String>,
    pub(super) created: i64,
    pub(super) updated: i64,
    pub(super) route: Option<String>,
    pub(super) tried: String,
    pub(super) valid_from: Option<i64>,
    pub(super) unanswered: bool,
    pub(super) in_flight: bool,
    /// NULL for requests accepted before SQLite recorded it.
    pub(super) instance: Option<String>,
}

/// A row of `events`.
pub(super) struct EventRow {
    pub(super) id: i64,
    pub(super) request_id: i64,
    pub(super) time: i64,
    pub(super) state: String,
    pub(super) detail: String,
}

/// A row of `parts`.
pub(super) struct PartRow {
    pub(super) request_id: i64,
    pub(super) part: i64,
    pub(super) modem: String,
    pub(super) mr: Option<i64>,
    pub(super) status: String,
    pub(super) submitted: i64,
    pub(super) reported: Option<i64>,
}

/// A row of `dsns`, as SQLite has it.
pub(super) struct DsnRow {
    pub(super) id: i64,
    pub(super) request_id: i64,
    pub(super) action: String,
    pub(super) created: i64,
    pub(super) state: String,
    pub(super) attempts: i64,
    pub(super) next_attempt: i64,
    pub(super) last_error: Option<String>,
}

/// A row of `inbox`.
pub(super) struct InboxRow {
    pub(super) id: i64,
    pub(super) received: i64,
    pub(super) modem: String,
    pub(super) originator: String,
    pub(super) text: String,
}

/// Rows per table of one store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// `messages`: mails accepted.
    pub messages: u64,
    /// `requests`: one per mail and recipient.
    pub requests: u64,
    /// `events`: the requests' history.
    pub events: u64,
    /// `parts`: SMS parts handed to modems.
    pub parts: u64,
    /// `dsns`: DSNs owed or delivered.
    pub dsns: u64,
    /// `inbox`: SMS received.
    pub inbox: u64,
}

impl fmt::Display for TableCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "messages {}, requests {}, events {}, parts {}, dsns {}, inbox {}",
            self.messages, self.requests, self.events, self.parts, self.dsns, self.inbox
        )
    }
}

/// What a copy found on each side: equal when it committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyCounts {
    /// Rows of the SQLite store.
    pub sqlite: TableCounts,
    /// Rows the PostgreSQL transaction held before its commit.
    pub postgres: TableCounts,
    /// Whether the copy committed (the counts agreed); if not, nothing was copied.
    pub committed: bool,
}

/// The tables copied, in the order they are written (each row's references first).
pub(super) const TABLES: [&str; 6] = ["messages", "requests", "events", "parts", "dsns", "inbox"];

/// Copies this instance's SQLite store (`instance.data_dir`) into the empty PostgreSQL
/// database `to`, keeping ids and the store's id, in one transaction. Refused when the
/// instance's store is PostgreSQL already ([`StoreError::NotSqlite`]), when there is no
/// SQLite file ([`StoreError::NoDatabase`]), while a request is being sent (the gateway
/// is running: [`StoreError::Sending`]), and when the database has rows
/// ([`StoreError::NotEmpty`]). The gateway must be stopped.
///
/// Columns SQLite does not have: a request's `instance` is SQLite's, or this instance's
/// name where SQLite has none; its `owner` is NULL, but for a forward SQLite marked in
/// flight (cut off by a stop or a crash): that one's owner is this instance, which finds
/// it at its next start and tries it on its peer only, as it would have on SQLite. A
/// DSN's `instance` (the one that delivers it) is this instance.
pub async fn copy_to_postgres(config: &Config, to: &PostgresUrl) -> Result<CopyCounts, StoreError> {
    if let Some(url) = &config.store.url {
        return Err(StoreError::NotSqlite(url.to_string()));
    }
    let path = config.database_path();
    if !path.exists() {
        return Err(StoreError::NoDatabase(path.display().to_string()));
    }
    let source = sqlite::copy::Source::open(&path)?;
    if let Some(id) = source.sending()? {
        return Err(StoreError::Sending(id));
    }
    let store_id = source.store_id()?;
    let sqlite_counts = source.counts()?;
    let instance = config.instance.name.as_str();

    let db = postgres::Pg::connect(to.config(), instance).await?;
    let tx = db.begin().await?;
    postgres::copy::lock_empty(&tx).await?;
    let mut after = 0;
    loop {
        let batch = source.messages(after)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        postgres::copy::messages(&tx, &batch).await?;
    }
    let mut after = 0;
    loop {
        let batch = source.requests(after)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        postgres::copy::requests(&tx, &batch, instance).await?;
    }
    let mut after = 0;
    loop {
        let batch = source.events(after)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        postgres::copy::events(&tx, &batch).await?;
    }
    let mut after = (0, 0);
    loop {
        let batch = source.parts(after)?;
        let Some(last) = batch.last() else { break };
        after = (last.request_id, last.part);
        postgres::copy::parts(&tx, &batch).await?;
    }
    let mut after = 0;
    loop {
        let batch = source.dsns(after)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        postgres::copy::dsns(&tx, &batch, instance).await?;
    }
    let mut after = 0;
    loop {
        let batch = source.inbox(after)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        postgres::copy::inbox(&tx, &batch).await?;
    }
    postgres::copy::finish(&tx, &store_id).await?;
    let postgres_counts = postgres::copy::counts(&tx).await?;
    let committed = postgres_counts == sqlite_counts;
    if committed {
        tx.commit().await?;
    }
    // Otherwise `tx` is dropped: the server rolls the copy back.
    Ok(CopyCounts {
        sqlite: sqlite_counts,
        postgres: postgres_counts,
        committed,
    })
}
