//! SQLite: query.

use crate::store::query::Part;
use crate::store::{HistoryLine, QueueCounts, QueueFilter, RequestDetail, RequestRow};
use crate::store::{State, StoreError};
use rusqlite::{Connection, Row, params};

/// Times are shown as RFC 3339 UTC, formatted by SQLite from the stored milliseconds.
macro_rules! rfc3339 {
    ($column:literal) => {
        concat!("strftime('%Y-%m-%dT%H:%M:%fZ', ", $column, " / 1000.0, 'unixepoch')")
    };
}

/// The columns [`request_row`] reads, in its order.
const COLUMNS: &str = concat!(
    "r.id, r.state, r.number, r.recipient, m.sender, r.parts, r.encoding, ",
    rfc3339!("r.created"),
    ", ",
    rfc3339!("r.updated"),
    ", r.attempts, r.status, r.reason, r.instance, r.modem"
);

fn request_row(row: &Row<'_>) -> rusqlite::Result<RequestRow> {
    Ok(RequestRow {
        id: row.get(0)?,
        state: row.get(1)?,
        number: row.get(2)?,
        recipient: row.get(3)?,
        sender: row.get(4)?,
        parts: row.get(5)?,
        encoding: row.get(6)?,
        created: row.get(7)?,
        updated: row.get(8)?,
        attempts: row.get(9)?,
        status: row.get(10)?,
        reason: row.get(11)?,
        instance: row.get(12)?,
        modem: row.get(13)?,
    })
}

/// Requests, oldest first.
pub(in crate::store) fn list(conn: &Connection, filter: QueueFilter) -> Result<Vec<RequestRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE ?1 IS NULL OR r.state = ?1 ORDER BY r.id"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params![filter.state], request_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One request with its history.
pub(in crate::store) fn show(conn: &Connection, id: i64) -> Result<RequestDetail, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, r.text, m.client, m.helo, m.auth_user, m.envid, m.ret, r.notify, r.orcpt
         FROM requests r JOIN messages m ON m.id = r.message_id WHERE r.id = ?1"
    );
    let detail = conn
        .query_row(&sql, params![id], |row| {
            Ok(RequestDetail {
                request: request_row(row)?,
                text: row.get(14)?,
                client: row.get(15)?,
                helo: row.get(16)?,
                auth_user: row.get(17)?,
                envid: row.get(18)?,
                ret: row.get(19)?,
                notify: row.get(20)?,
                orcpt: row.get(21)?,
                sent_parts: Vec::new(),
                events: Vec::new(),
            })
        })
        .map_err(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => StoreError::NotFound(id),
            e => e.into(),
        })?;
    let mut statement = conn.prepare(concat!(
        "SELECT ",
        rfc3339!("time"),
        ", state, detail
         FROM events WHERE request_id = ?1 ORDER BY id"
    ))?;
    let events = statement
        .query_map(params![id], |row| {
            Ok(HistoryLine {
                time: row.get(0)?,
                state: row.get(1)?,
                detail: row.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut statement =
        conn.prepare("SELECT part, modem, mr, status FROM parts WHERE request_id = ?1 ORDER BY part")?;
    let sent_parts = statement
        .query_map(params![id], |row| {
            Ok(Part {
                part: row.get(0)?,
                modem: row.get(1)?,
                mr: row.get(2)?,
                status: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(RequestDetail {
        events,
        sent_parts,
        ..detail
    })
}

/// The queue's figures for `/metrics`: requests per state, and the oldest waiting.
pub(in crate::store) fn queue_summary(conn: &Connection) -> Result<QueueCounts, StoreError> {
    let by_state = conn
        .prepare("SELECT state, count(*) FROM requests GROUP BY state")?
        .query_map([], |row| Ok((row.get::<_, State>(0)?, row.get::<_, i64>(1)? as u64)))?
        .collect::<Result<_, _>>()?;
    let placeholders = vec!["?"; crate::store::WAITING.len()].join(", ");
    let oldest: Option<i64> = conn
        .prepare(&format!(
            "SELECT min(coalesce(valid_from, created)) FROM requests WHERE state IN ({placeholders})"
        ))?
        .query_row(rusqlite::params_from_iter(crate::store::WAITING), |row| row.get(0))?;
    Ok((by_state, oldest))
}
