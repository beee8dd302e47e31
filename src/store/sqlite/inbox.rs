//! SQLite: inbox.

use crate::store::StoreError;
use rusqlite::{Connection, params};

/// One `inbox` row.
pub(in crate::store) fn store_incoming_sms(
    conn: &Connection,
    modem: &str,
    originator: &str,
    text: &str,
    now: i64,
) -> Result<i64, StoreError> {
    conn.prepare_cached("INSERT INTO inbox (received, modem, originator, text) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![now, modem, originator, text])?;
    Ok(conn.last_insert_rowid())
}
