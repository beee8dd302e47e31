//! SMS received by the modems, kept for delivery as mail (two-way, still to come).

use rusqlite::{Connection, params};

use super::{Store, StoreError, now_ms};

impl Store {
    /// Stores an SMS received by `modem` from `originator`; returns its inbox id once
    /// committed, after which the modem may delete it from the SIM.
    pub async fn store_incoming_sms(&self, modem: &str, originator: String, text: String) -> Result<i64, StoreError> {
        let modem = modem.to_string();
        self.writer
            .write(move |conn| store_incoming_sms(conn, &modem, &originator, &text, now_ms()))
            .await
    }
}

/// One `inbox` row.
pub(super) fn store_incoming_sms(
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
