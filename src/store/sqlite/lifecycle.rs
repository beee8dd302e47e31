//! SQLite: lifecycle.

use super::dsn;
use crate::store::DsnAction;
use crate::store::lifecycle::FAILABLE;
use crate::store::{PartStatus, State, StoreError};
use rusqlite::{Connection, params};

/// Appends one line to a request's history (`queue show`).
pub(in crate::store) fn event(
    conn: &Connection,
    request: i64,
    now: i64,
    state: State,
    detail: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO events (request_id, time, state, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![request, now, state, detail])?;
    Ok(())
}

/// Moves a request from one of `from` to `to` and records why; false if it was not in
/// any of `from` (someone else moved it first).
pub(in crate::store) fn transition(
    conn: &Connection,
    id: i64,
    from: &[State],
    to: State,
    now: i64,
    detail: &str,
) -> Result<bool, StoreError> {
    // The names come from the enum, never from input, so they can be spelt into the
    // statement (one cached statement per set of `from` states).
    let from: Vec<String> = from.iter().map(|s| format!("'{s}'")).collect();
    let sql = format!(
        "UPDATE requests SET state = ?1, updated = ?2 WHERE id = ?3 AND state IN ({})",
        from.join(",")
    );
    let changed = conn.prepare_cached(&sql)?.execute(params![to, now, id])?;
    if changed == 1 {
        event(conn, id, now, to, detail)?;
    }
    Ok(changed == 1)
}

/// A permanent failure, or validity run out (`to` = `Expired`).
pub(in crate::store) fn fail(
    conn: &Connection,
    id: i64,
    to: State,
    status: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    fail_from(conn, id, &FAILABLE, to, status, reason, now)
}

/// [`fail`], only from one of `from`: a decision taken on a state read earlier must not
/// fail a request that moved on since (to `sending`, say).
pub(in crate::store) fn fail_from(
    conn: &Connection,
    id: i64,
    from: &[State],
    to: State,
    status: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    if transition(conn, id, from, to, now, &format!("{status} {reason}"))? {
        conn.prepare_cached("UPDATE requests SET status = ?1, reason = ?2, lease_until = NULL WHERE id = ?3")?
            .execute(params![status, reason, id])?;
        dsn::queue_for(conn, id, DsnAction::Failed, now)?;
    }
    Ok(())
}

/// Requests waiting (for a modem, or for a route) longer than their validity:
/// `expired` instead of sent late.
pub(in crate::store) fn expire_overdue(conn: &Connection, validity_ms: i64, now: i64) -> Result<usize, StoreError> {
    let overdue: Vec<i64> = conn
        .prepare_cached("SELECT id FROM requests WHERE state IN (?1, ?2) AND coalesce(valid_from, created) < ?3")?
        .query_map(params![State::Queued, State::Received, now - validity_ms], |row| {
            row.get(0)
        })?
        .collect::<Result<_, _>>()?;
    for &id in &overdue {
        fail(conn, id, State::Expired, "4.4.7", "not sent within its validity", now)?;
    }
    Ok(overdue.len())
}

/// `smsgw queue retry`: an uncertain, failed or expired request is sent again, on purpose.
/// One the network already took part of stays with this instance's modems (its parts
/// are not sent again); any other is routed afresh, in a cluster perhaps elsewhere. So is
/// a forward waiting on a peer that may hold it (`forwarding`, unanswered): released to
/// routing, which may choose that peer again.
pub(in crate::store) fn retry(conn: &Connection, id: i64, now: i64) -> Result<bool, StoreError> {
    let unanswered: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM requests WHERE id = ?1 AND state = ?2 AND unanswered)")?
        .query_row(params![id, State::Forwarding], |row| row.get(0))?;
    let (from, detail): (&[State], &str) = if unanswered {
        (
            &[State::Forwarding],
            "retried by the operator: released to routing, though its peer may hold it",
        )
    } else {
        (
            &[State::Uncertain, State::Failed, State::Expired],
            "retried by the operator",
        )
    };
    let started: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM parts WHERE request_id = ?1 AND status IN (?2, ?3, ?4))")?
        .query_row(
            params![id, PartStatus::Sent, PartStatus::Delivered, PartStatus::Submitting],
            |row| row.get(0),
        )?;
    let to = if started { State::Queued } else { State::Received };
    if !transition(conn, id, from, to, now, detail)? {
        return Ok(false);
    }
    // A new try gets a whole validity period of its own, and its retry delays start
    // again from the first.
    conn.prepare_cached(
        "UPDATE requests SET tried = '', route = NULL, valid_from = ?1, attempts = 0, unanswered = 0, in_flight = 0 WHERE id = ?2",
    )?
    .execute(params![now, id])?;
    // Parts the network accepted are not sent again; the uncertain one is.
    conn.prepare_cached("DELETE FROM parts WHERE request_id = ?1 AND status NOT IN (?2, ?3)")?
        .execute(params![id, PartStatus::Sent, PartStatus::Delivered])?;
    conn.prepare_cached("UPDATE requests SET next_attempt = NULL, status = NULL, reason = NULL WHERE id = ?1")?
        .execute(params![id])?;
    Ok(true)
}
