//! Delivery status notifications owed to senders: decided here, in the transaction of
//! the state change they report, and handed to the notify stage as [`DsnJob`]s.
//!
//! Which DSN a sender gets follows RFC 3461: NOTIFY=SUCCESS gives `delivered` (or
//! `relayed` when no status report can be had), FAILURE gives `failed`, DELAY gives one
//! `delayed`; without NOTIFY only failures are reported; NEVER and the null sender get
//! nothing (a DSN is never sent about a DSN).

use rusqlite::{Connection, params};

use super::StoreError;

/// What a DSN tells (RFC 3464 `Action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnAction {
    Delivered,
    Relayed,
    Failed,
    Delayed,
}

impl DsnAction {
    pub fn as_str(self) -> &'static str {
        match self {
            DsnAction::Delivered => "delivered",
            DsnAction::Relayed => "relayed",
            DsnAction::Failed => "failed",
            DsnAction::Delayed => "delayed",
        }
    }

    fn parse(s: &str) -> DsnAction {
        match s {
            "delivered" => DsnAction::Delivered,
            "relayed" => DsnAction::Relayed,
            "delayed" => DsnAction::Delayed,
            _ => DsnAction::Failed,
        }
    }

    /// The RFC 3461 NOTIFY keyword that asks for this DSN.
    fn notify_keyword(self) -> &'static str {
        match self {
            DsnAction::Delivered | DsnAction::Relayed => "SUCCESS",
            DsnAction::Failed => "FAILURE",
            DsnAction::Delayed => "DELAY",
        }
    }

    /// DSNs already queued that make this one pointless: after `relayed`, the sender is
    /// not told `delivered` again, but a later failure still reaches them.
    fn superseded_by(self) -> &'static str {
        match self {
            DsnAction::Delivered | DsnAction::Relayed => "'delivered', 'relayed'",
            DsnAction::Failed => "'failed'",
            DsnAction::Delayed => "'delayed'",
        }
    }
}

/// The condition, on `r` (requests) joined with `m` (messages), that the sender asked for
/// a DSN of this action and has none that supersedes it.
fn wanted(action: DsnAction) -> String {
    format!(
        "m.sender != '' AND instr(coalesce(r.notify, 'FAILURE'), '{}') > 0
         AND NOT EXISTS (SELECT 1 FROM dsns d WHERE d.request_id = r.id AND d.action IN ({}))",
        action.notify_keyword(),
        action.superseded_by()
    )
}

/// Queues the DSN `action` for each request `candidates` selects (a `SELECT r.id FROM
/// requests r JOIN messages m ... WHERE ...` with `?1` = now and `?2` free for the
/// caller) that wants it; returns how many were queued.
fn queue(conn: &Connection, action: DsnAction, candidates: &str, arg: &str, now: i64) -> Result<usize, StoreError> {
    let sql = format!(
        "INSERT INTO dsns (request_id, action, created, state, next_attempt)
         SELECT r.id, '{action}', ?1, 'pending', ?1
         FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE ({candidates}) AND {wanted}
         RETURNING request_id",
        action = action.as_str(),
        wanted = wanted(action),
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let ids: Vec<i64> = statement
        .query_map(params![now, arg], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for &id in &ids {
        dsn_event(conn, id, now, &format!("{} DSN queued for the sender", action.as_str()))?;
    }
    Ok(ids.len())
}

/// The DSN `action` for request `id`, if its sender wants one: called by the transition
/// that reached the final state, inside its transaction.
pub(super) fn queue_for(conn: &Connection, id: i64, action: DsnAction, now: i64) -> Result<bool, StoreError> {
    Ok(queue(conn, action, "r.id = CAST(?2 AS INTEGER)", &id.to_string(), now)? == 1)
}

/// How long a sent request may wait for its status report before its sender is told
/// `relayed`, and the send times already looked at.
#[derive(Debug, Clone, Copy)]
pub struct ReportWait {
    pub wait_ms: i64,
    /// Requests sent before this were looked at by an earlier sweep.
    pub since: i64,
}

/// The DSNs that time brings: `delayed` for requests still not handed to the network
/// after `delay_ms`, and `relayed` for requests sent without a status report for longer
/// than the report wait (only those sent since the last sweep: the rest were seen).
/// `None`: never.
pub(super) fn queue_timed(
    conn: &Connection,
    delay_ms: Option<i64>,
    report_wait: Option<ReportWait>,
    now: i64,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    if let Some(delay) = delay_ms {
        let waiting = "r.state IN ('received', 'routed', 'forwarding', 'queued', 'sending', 'uncertain')
                       AND r.created < ?1 - CAST(?2 AS INTEGER)";
        queued += queue(conn, DsnAction::Delayed, waiting, &delay.to_string(), now)?;
    }
    if let Some(ReportWait { wait_ms, since }) = report_wait {
        let unreported =
            format!("r.state = 'sent' AND r.updated < ?1 - {wait_ms} AND r.updated >= CAST(?2 AS INTEGER)");
        queued += queue(conn, DsnAction::Relayed, &unreported, &since.to_string(), now)?;
    }
    Ok(queued)
}

fn dsn_event(conn: &Connection, request: i64, now: i64, detail: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO events (request_id, time, state, detail) VALUES (?1, ?2, 'dsn', ?3)")?
        .execute(params![request, now, detail])?;
    Ok(())
}

/// A DSN to deliver, with everything its mail is made of.
#[derive(Debug, Clone)]
pub struct DsnJob {
    pub id: i64,
    pub action: DsnAction,
    /// When the DSN was decided (its `Date`), unix milliseconds.
    pub created: i64,
    pub attempts: i64,
    pub request: i64,
    /// The envelope sender of the original mail: the DSN's recipient.
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<String>,
    pub arrival: i64,
    pub raw: Vec<u8>,
    pub recipient: String,
    pub orcpt: Option<String>,
    pub number: String,
    pub text: String,
    pub parts: i64,
    pub modem: Option<String>,
    /// Enhanced status code and words of a failure.
    pub status: Option<String>,
    pub reason: Option<String>,
    /// When the request last changed (its last attempt), unix milliseconds.
    pub updated: i64,
}

/// Pending DSNs whose time has come, oldest first.
pub(super) fn due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<DsnJob>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT d.id, d.action, d.created, d.attempts, r.id, m.sender, m.envid, m.ret, m.received, m.raw,
                r.recipient, r.orcpt, r.number, r.text, r.parts, r.modem, r.status, r.reason, r.updated
         FROM dsns d JOIN requests r ON r.id = d.request_id JOIN messages m ON m.id = r.message_id
         WHERE d.state = 'pending' AND d.next_attempt <= ?1
         ORDER BY d.next_attempt, d.id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit as i64], |row| {
        Ok(DsnJob {
            id: row.get(0)?,
            action: DsnAction::parse(&row.get::<_, String>(1)?),
            created: row.get(2)?,
            attempts: row.get(3)?,
            request: row.get(4)?,
            sender: row.get(5)?,
            envid: row.get(6)?,
            ret: row.get(7)?,
            arrival: row.get(8)?,
            raw: row.get(9)?,
            recipient: row.get(10)?,
            orcpt: row.get(11)?,
            number: row.get(12)?,
            text: row.get(13)?,
            parts: row.get(14)?,
            modem: row.get(15)?,
            status: row.get(16)?,
            reason: row.get(17)?,
            updated: row.get(18)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// When the next pending DSN falls due, if any.
pub(super) fn next_due(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_attempt) FROM dsns WHERE state = 'pending'")?
        .query_row([], |row| row.get(0))?)
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
pub enum DsnOutcome {
    /// Accepted by the receiving server; the text says by whom and what it answered.
    Sent(String),
    /// Try again at this time (unix milliseconds).
    Retry { at: i64, error: String },
    /// Never delivered: refused for good, or its lifetime ran out.
    Dropped(String),
}

pub(super) fn record(conn: &Connection, job: &DsnJob, outcome: &DsnOutcome, now: i64) -> Result<(), StoreError> {
    let action = job.action.as_str();
    let (state, next, error, detail) = match outcome {
        DsnOutcome::Sent(how) => (
            "sent",
            now,
            None,
            Some(format!("{action} DSN delivered to <{}>: {how}", job.sender)),
        ),
        DsnOutcome::Retry { at, error } => ("pending", *at, Some(error.as_str()), None),
        DsnOutcome::Dropped(why) => (
            "dropped",
            now,
            Some(why.as_str()),
            Some(format!("{action} DSN to <{}> dropped: {why}", job.sender)),
        ),
    };
    conn.prepare_cached(
        "UPDATE dsns SET state = ?1, next_attempt = ?2, last_error = ?3, attempts = attempts + 1 WHERE id = ?4",
    )?
    .execute(params![state, next, error, job.id])?;
    if let Some(detail) = detail {
        dsn_event(conn, job.request, now, &detail)?;
    }
    Ok(())
}
