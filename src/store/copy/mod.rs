//! `smsgw store copy`: an instance's SQLite store copied into an empty PostgreSQL
//! database, so that the instance (and later others of its site) can run on it.
//!
//! The SQLite side ([`sqlite::copy`](super::sqlite::copy)) reads the file in one
//! transaction that holds its write lock (a gateway left running commits nothing
//! meanwhile), table by table in id order, a batch at a time; the PostgreSQL side
//! ([`postgres::copy`](super::postgres::copy)) writes each batch with one statement, all
//! in one transaction that commits only once the rows on both sides are counted equal:
//! a copy that fails leaves the database as empty as it was.

pub(in crate::store) mod rows;

use super::{StoreError, postgres, sqlite};
use crate::config::{Config, PostgresUrl};
pub use rows::{CopyCounts, TableCounts};

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
/// DSN's `instance` (the one that delivers it) is this instance, and so is a received
/// SMS's (the one that mails it).
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
    let mut after = 0;
    loop {
        let batch = source.inbox_parts(after)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        postgres::copy::inbox_parts(&tx, &batch).await?;
    }
    let mut after = String::new();
    loop {
        let batch = source.optouts(&after)?;
        let Some(last) = batch.last() else { break };
        after = last.number.clone();
        postgres::copy::optouts(&tx, &batch).await?;
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
