//! Reads for `smsgw queue list` and `smsgw queue show`.

use rusqlite::{Connection, Row, params};
use serde::Serialize;

use super::{PartStatus, State, StoreError};

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
    ", r.attempts, r.status, r.reason"
);

/// One line of `queue list` (and the head of `queue show`); `--json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    /// The request id.
    pub id: i64,
    /// Where it stands.
    pub state: State,
    /// The E.164 number.
    pub number: String,
    /// The recipient address as the client wrote it.
    pub recipient: String,
    /// The envelope sender.
    pub sender: String,
    /// How many SMS parts.
    pub parts: i64,
    /// The alphabet the text goes in.
    pub encoding: String,
    /// When it was accepted, RFC 3339 UTC.
    pub created: String,
    /// When it last changed, RFC 3339 UTC.
    pub updated: String,
    /// Attempts so far (modem or forwarding).
    pub attempts: i64,
    /// Enhanced status code of a failure.
    pub status: Option<String>,
    /// Why it failed, or why it waits.
    pub reason: Option<String>,
}

/// One line of a request's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryLine {
    /// When, RFC 3339 UTC.
    pub time: String,
    /// The state it entered, or `dsn` for a line about its DSN.
    pub state: String,
    /// What happened, in words.
    pub detail: String,
}

/// `queue show`: a request, its envelope, its parts and its whole history.
#[derive(Debug, Clone, Serialize)]
pub struct RequestDetail {
    /// The fields `queue list` shows.
    #[serde(flatten)]
    pub request: RequestRow,
    /// The SMS text.
    pub text: String,
    /// The SMTP client's address.
    pub client: String,
    /// The name the client gave in `EHLO`.
    pub helo: String,
    /// The authenticated user, if any.
    pub auth_user: Option<String>,
    /// RFC 3461 `ENVID`.
    pub envid: Option<String>,
    /// RFC 3461 `RET`.
    pub ret: Option<String>,
    /// RFC 3461 `NOTIFY`.
    pub notify: Option<String>,
    /// RFC 3461 `ORCPT`.
    pub orcpt: Option<String>,
    /// The SMS parts handed to modems so far.
    pub sent_parts: Vec<Part>,
    /// The history, oldest first.
    pub events: Vec<HistoryLine>,
}

/// One SMS part handed to a modem.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// Its number, from 1.
    pub part: i64,
    /// The modem it went to.
    pub modem: String,
    /// TP-MR from +CMGS, once the modem answered.
    pub mr: Option<i64>,
    /// Where it stands.
    pub status: PartStatus,
}

/// Which requests `queue list` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueFilter {
    /// Only those in this state.
    pub state: Option<State>,
}

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
    })
}

/// Requests, oldest first.
pub fn list(conn: &Connection, filter: QueueFilter) -> Result<Vec<RequestRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE ?1 IS NULL OR r.state = ?1 ORDER BY r.id"
    );
    let mut statement = conn.prepare(&sql)?;
    let rows = statement.query_map(params![filter.state], request_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One request with its history.
pub fn show(conn: &Connection, id: i64) -> Result<RequestDetail, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, r.text, m.client, m.helo, m.auth_user, m.envid, m.ret, r.notify, r.orcpt
         FROM requests r JOIN messages m ON m.id = r.message_id WHERE r.id = ?1"
    );
    let detail = conn
        .query_row(&sql, params![id], |row| {
            Ok(RequestDetail {
                request: request_row(row)?,
                text: row.get(12)?,
                client: row.get(13)?,
                helo: row.get(14)?,
                auth_user: row.get(15)?,
                envid: row.get(16)?,
                ret: row.get(17)?,
                notify: row.get(18)?,
                orcpt: row.get(19)?,
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
