//! `smsgw store copy`, the SQLite side: the rows of each table, a batch at a time in
//! key order, all read in one transaction that holds the file's write lock.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, params};

use super::{connect, migrate};
use crate::store::StoreError;
use crate::store::copy::rows::{
    BATCH_BYTES, BATCH_ROWS, DsnRow, EventRow, InboxPartRow, InboxRow, MessageRow, OptOutRow, PartRow, RequestRow,
    TableCounts,
};

/// The SQLite store being copied, inside its transaction.
pub(in crate::store) struct Source {
    conn: Connection,
}

impl Source {
    /// Opens the file (migrated to this binary's schema, as the gateway would at its
    /// start) and begins the transaction every later read shares.
    pub(in crate::store) fn open(path: &Path) -> Result<Source, StoreError> {
        let conn = connect(path)?;
        migrate(&conn)?;
        // Immediate: the file's write lock is held until the copy ends, so a gateway left
        // running cannot commit a mail the copy would miss (it answers 451 meanwhile).
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Source { conn })
    }

    /// The lowest id of a request being sent (`sending`: a modem holds its lease), if any.
    pub(in crate::store) fn sending(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT min(id) FROM requests WHERE state = 'sending'", [], |row| {
                row.get(0)
            })?)
    }

    /// The store's id (`meta`), made if the file has none yet.
    pub(in crate::store) fn store_id(&self) -> Result<String, StoreError> {
        let id: Option<String> =
            self.conn
                .query_row("SELECT max(value) FROM meta WHERE key = 'store_id'", [], |row| {
                    row.get(0)
                })?;
        match id {
            Some(id) => Ok(id),
            // Every file the gateway opened has one; a file made otherwise gets one now.
            None => super::store_id(&self.conn),
        }
    }

    /// Rows per table.
    pub(in crate::store) fn counts(&self) -> Result<TableCounts, StoreError> {
        let count = |table: &str| -> Result<u64, StoreError> {
            let n: i64 = self
                .conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))?;
            Ok(n.unsigned_abs())
        };
        Ok(TableCounts {
            messages: count("messages")?,
            requests: count("requests")?,
            events: count("events")?,
            parts: count("parts")?,
            dsns: count("dsns")?,
            inbox: count("inbox")?,
            inbox_parts: count("inbox_parts")?,
            optouts: count("optouts")?,
        })
    }

    /// The messages after id `after`, in id order: at most [`BATCH_ROWS`], and no more
    /// than [`BATCH_BYTES`] of mail once the first is in.
    pub(in crate::store) fn messages(&self, after: i64) -> Result<Vec<MessageRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, received, sender, envid, ret, client, helo, auth_user, size, raw, origin, trace
             FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let mut rows = statement.query(params![after, BATCH_ROWS as i64])?;
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(row) = rows.next()? {
            let message = MessageRow {
                id: row.get(0)?,
                received: row.get(1)?,
                sender: row.get(2)?,
                envid: row.get(3)?,
                ret: row.get(4)?,
                client: row.get(5)?,
                helo: row.get(6)?,
                auth_user: row.get(7)?,
                size: row.get(8)?,
                raw: bytes_of(row, 9)?,
                origin: row.get(10)?,
                trace: row.get(11)?,
            };
            bytes += message.raw.len();
            batch.push(message);
            if bytes >= BATCH_BYTES {
                break;
            }
        }
        Ok(batch)
    }

    /// The requests after id `after`, in id order.
    pub(in crate::store) fn requests(&self, after: i64) -> Result<Vec<RequestRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, message_id, recipient, number, notify, orcpt, text, encoding, parts, state,
                    status, reason, attempts, next_attempt, lease_until, modem, created, updated,
                    route, tried, valid_from, unanswered, in_flight, instance
             FROM requests WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, BATCH_ROWS as i64], |row| {
            Ok(RequestRow {
                id: row.get(0)?,
                message_id: row.get(1)?,
                recipient: row.get(2)?,
                number: row.get(3)?,
                notify: row.get(4)?,
                orcpt: row.get(5)?,
                text: row.get(6)?,
                encoding: row.get(7)?,
                parts: row.get(8)?,
                state: row.get(9)?,
                status: row.get(10)?,
                reason: row.get(11)?,
                attempts: row.get(12)?,
                next_attempt: row.get(13)?,
                lease_until: row.get(14)?,
                modem: row.get(15)?,
                created: row.get(16)?,
                updated: row.get(17)?,
                route: row.get(18)?,
                tried: row.get(19)?,
                valid_from: row.get(20)?,
                unanswered: row.get::<_, i64>(21)? != 0,
                in_flight: row.get::<_, i64>(22)? != 0,
                instance: row.get(23)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The events after id `after`, in id order.
    pub(in crate::store) fn events(&self, after: i64) -> Result<Vec<EventRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, request_id, time, state, detail FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, BATCH_ROWS as i64], |row| {
            Ok(EventRow {
                id: row.get(0)?,
                request_id: row.get(1)?,
                time: row.get(2)?,
                state: row.get(3)?,
                detail: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The parts after (request, part) `after`, in that order.
    pub(in crate::store) fn parts(&self, after: (i64, i64)) -> Result<Vec<PartRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT request_id, part, modem, mr, status, submitted, reported FROM parts
             WHERE (request_id, part) > (?1, ?2) ORDER BY request_id, part LIMIT ?3",
        )?;
        let rows = statement.query_map(params![after.0, after.1, BATCH_ROWS as i64], |row| {
            Ok(PartRow {
                request_id: row.get(0)?,
                part: row.get(1)?,
                modem: row.get(2)?,
                mr: row.get(3)?,
                status: row.get(4)?,
                submitted: row.get(5)?,
                reported: row.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The DSNs after id `after`, in id order.
    pub(in crate::store) fn dsns(&self, after: i64) -> Result<Vec<DsnRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, request_id, action, created, state, attempts, next_attempt, last_error
             FROM dsns WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, BATCH_ROWS as i64], |row| {
            Ok(DsnRow {
                id: row.get(0)?,
                request_id: row.get(1)?,
                action: row.get(2)?,
                created: row.get(3)?,
                state: row.get(4)?,
                attempts: row.get(5)?,
                next_attempt: row.get(6)?,
                last_error: row.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The SMS received after id `after`, in id order.
    pub(in crate::store) fn inbox(&self, after: i64) -> Result<Vec<InboxRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, received, modem, originator, text, sent, parts, missing, kind, reply_to, recipient, others,
                    state, outcome, attempts, next_attempt
             FROM inbox WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, BATCH_ROWS as i64], |row| {
            Ok(InboxRow {
                id: row.get(0)?,
                received: row.get(1)?,
                modem: row.get(2)?,
                originator: row.get(3)?,
                text: row.get(4)?,
                sent: row.get(5)?,
                parts: row.get(6)?,
                missing: row.get(7)?,
                kind: row.get(8)?,
                reply_to: row.get(9)?,
                recipient: row.get(10)?,
                others: row.get(11)?,
                state: row.get(12)?,
                outcome: row.get(13)?,
                attempts: row.get(14)?,
                next_attempt: row.get(15)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The parts of SMS received after id `after`, in id order.
    pub(in crate::store) fn inbox_parts(&self, after: i64) -> Result<Vec<InboxPartRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT id, modem, originator, copy_key, reference, parts, part, text, sent, received, inbox_id
             FROM inbox_parts WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, BATCH_ROWS as i64], |row| {
            Ok(InboxPartRow {
                id: row.get(0)?,
                modem: row.get(1)?,
                originator: row.get(2)?,
                copy_key: row.get(3)?,
                reference: row.get(4)?,
                parts: row.get(5)?,
                part: row.get(6)?,
                text: row.get(7)?,
                sent: row.get(8)?,
                received: row.get(9)?,
                inbox_id: row.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The opt-out list after number `after`, in number order.
    pub(in crate::store) fn optouts(&self, after: &str) -> Result<Vec<OptOutRow>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT number, opted_out, changed, source, origin, seq FROM optouts
             WHERE number > ?1 ORDER BY number LIMIT ?2",
        )?;
        let rows = statement.query_map(params![after, BATCH_ROWS as i64], |row| {
            Ok(OptOutRow {
                number: row.get(0)?,
                opted_out: row.get(1)?,
                changed: row.get(2)?,
                source: row.get(3)?,
                origin: row.get(4)?,
                seq: row.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A column of bytes: a BLOB, or TEXT (SQLite keeps what it was given).
fn bytes_of(row: &Row<'_>, column: usize) -> Result<Vec<u8>, StoreError> {
    match row.get_ref(column)? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes.to_vec()),
        other => Err(rusqlite::Error::InvalidColumnType(column, "raw".into(), other.data_type()).into()),
    }
}
