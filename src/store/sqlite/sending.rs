//! SQLite: sending.

use super::dsn;
use super::lifecycle::{fail, transition};
use crate::store::sending::{INTERRUPTED_AFTER_CMGS, INTERRUPTED_BEFORE_CMGS, elapsed, sent_detail};
use crate::store::{DsnAction, ReportedPart};
use crate::store::{PartStatus, State, StoreError};
use rusqlite::{Connection, OptionalExtension, params};
use std::time::Duration;

/// When the next queued request waiting for its retry time (after `now`) falls due.
pub(in crate::store) fn next_due(conn: &Connection, now: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_attempt) FROM requests WHERE state = ?1 AND next_attempt > ?2")?
        .query_row(params![State::Queued, now], |row| row.get(0))?)
}

/// `queued → sending` on `modem`, leased until `lease_until`.
pub(in crate::store) fn claim(
    conn: &Connection,
    id: i64,
    modem: &str,
    lease_until: i64,
    now: i64,
) -> Result<bool, StoreError> {
    if !transition(
        conn,
        id,
        &[State::Queued],
        State::Sending,
        now,
        &format!("claimed by modem {modem}"),
    )? {
        return Ok(false);
    }
    conn.prepare_cached("UPDATE requests SET modem = ?1, lease_until = ?2, attempts = attempts + 1 WHERE id = ?3")?
        .execute(params![modem, lease_until, id])?;
    Ok(true)
}

/// Just before `AT+CMGS` for one part: from here a crash makes the request uncertain.
pub(in crate::store) fn mark_part_submitting(
    conn: &Connection,
    id: i64,
    part: usize,
    modem: &str,
    lease_until: i64,
    now: i64,
) -> Result<bool, StoreError> {
    // Only the modem that still holds the lease may send: one whose lease ran out (and
    // whose request went back to the queue) must not send it a second time.
    let held = conn
        .prepare_cached(
            "UPDATE requests SET lease_until = ?1
             WHERE id = ?2 AND state = ?5 AND modem = ?3 AND lease_until >= ?4",
        )?
        .execute(params![lease_until, id, modem, now, State::Sending])?;
    if held == 0 {
        return Ok(false);
    }
    conn.prepare_cached(
        "INSERT INTO parts (request_id, part, modem, status, submitted) VALUES (?1, ?2, ?3, ?5, ?4)
         ON CONFLICT (request_id, part) DO UPDATE SET modem = ?3, mr = NULL, status = ?5, submitted = ?4, reported = NULL",
    )?
    .execute(params![id, part as i64, modem, now, PartStatus::Submitting])?;
    Ok(true)
}

/// `+CMGS: <mr>` came back for one part; once every part is in, the request is `sent`.
pub(in crate::store) fn mark_part_sent(
    conn: &Connection,
    id: i64,
    part: usize,
    parts: usize,
    mr: u8,
    unreported: bool,
    now: i64,
) -> Result<Option<Duration>, StoreError> {
    conn.prepare_cached("UPDATE parts SET mr = ?1, status = ?4 WHERE request_id = ?2 AND part = ?3")?
        .execute(params![mr, id, part as i64, PartStatus::Sent])?;
    mark_sent_if_complete(conn, id, parts, unreported, now)
}

/// `sending → sent` when every part reached the network, whatever the order they went
/// in (a retried request resends only the parts it lacks); `unreported`: the modem gets
/// no status reports, so the sender's `relayed` DSN is due now.
pub(in crate::store) fn mark_sent_if_complete(
    conn: &Connection,
    id: i64,
    parts: usize,
    unreported: bool,
    now: i64,
) -> Result<Option<Duration>, StoreError> {
    let in_network: i64 = conn
        .prepare_cached("SELECT count(*) FROM parts WHERE request_id = ?1 AND status IN (?2, ?3)")?
        .query_row(params![id, PartStatus::Sent, PartStatus::Delivered], |row| row.get(0))?;
    if in_network < parts as i64 {
        return Ok(None);
    }
    let detail = sent_detail(parts);
    if !transition(conn, id, &[State::Sending], State::Sent, now, &detail)? {
        return Ok(None);
    }
    let created: i64 = conn
        .prepare_cached("UPDATE requests SET reason = NULL WHERE id = ?1 RETURNING created")?
        .query_row(params![id], |row| row.get(0))?;
    if unreported {
        dsn::queue_for(conn, id, DsnAction::Relayed, now)?;
    }
    Ok(Some(elapsed(created, now)))
}

/// A temporary failure: back to the queue until `next_attempt`; parts not yet sent are
/// forgotten (a part already sent is never sent again: the whole request restarts only
/// when none was).
pub(in crate::store) fn requeue(
    conn: &Connection,
    id: i64,
    next_attempt: i64,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    if transition(conn, id, &[State::Sending], State::Queued, now, reason)? {
        conn.prepare_cached("DELETE FROM parts WHERE request_id = ?1 AND status = ?2")?
            .execute(params![id, PartStatus::Submitting])?;
        // The reason stays until the request is sent: a `delayed` DSN tells it.
        conn.prepare_cached("UPDATE requests SET next_attempt = ?1, lease_until = NULL, reason = ?2 WHERE id = ?3")?
            .execute(params![next_attempt, reason, id])?;
    }
    Ok(())
}

/// `AT+CMGS` went out but no `+CMGS` came back: maybe sent, maybe not. Not resent
/// unless an operator says so (`smsgw queue retry`).
pub(in crate::store) fn mark_uncertain(conn: &Connection, id: i64, reason: &str, now: i64) -> Result<(), StoreError> {
    if transition(conn, id, &[State::Sending], State::Uncertain, now, reason)? {
        conn.prepare_cached("UPDATE requests SET lease_until = NULL, reason = ?1 WHERE id = ?2")?
            .execute(params![reason, id])?;
    }
    Ok(())
}

/// A status report for (modem, mr, number): marks its part, and the request once every
/// part is delivered or one failed. Returns the request id it matched.
pub(in crate::store) fn record_status_report(
    conn: &Connection,
    modem: &str,
    mr: u8,
    number: &str,
    delivered: bool,
    detail: &str,
    now: i64,
) -> Result<Option<ReportedPart>, StoreError> {
    // References wrap at 256: the most recent part with this one is meant. SMS centres
    // may write the recipient in national form: its last eight digits must match.
    let found: Option<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT p.request_id, p.part, p.submitted FROM parts p JOIN requests r ON r.id = p.request_id
             WHERE p.modem = ?1 AND p.mr = ?2 AND p.status = ?4 AND substr(r.number, -8) = substr(?3, -8)
             ORDER BY p.submitted DESC LIMIT 1",
        )?
        .query_row(params![modem, mr, number, PartStatus::Sent], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()?;
    let Some((id, part, submitted)) = found else {
        return Ok(None);
    };
    let reported = ReportedPart {
        request: id,
        after: elapsed(submitted, now),
    };
    let status = if delivered {
        PartStatus::Delivered
    } else {
        PartStatus::Failed
    };
    conn.prepare_cached("UPDATE parts SET status = ?1, reported = ?2 WHERE request_id = ?3 AND part = ?4")?
        .execute(params![status, now, id, part])?;
    if !delivered {
        fail(
            conn,
            id,
            State::Failed,
            "5.4.0",
            &format!("part {part} not delivered: {detail}"),
            now,
        )?;
        return Ok(Some(reported));
    }
    let pending: i64 = conn
        .prepare_cached("SELECT count(*) FROM parts WHERE request_id = ?1 AND status != ?2")?
        .query_row(params![id, PartStatus::Delivered], |row| row.get(0))?;
    if pending == 0 && transition(conn, id, &[State::Sent], State::Delivered, now, detail)? {
        dsn::queue_for(conn, id, DsnAction::Delivered, now)?;
    }
    Ok(Some(reported))
}

/// At start, or when a lease ran out: requests left `sending` by a crash go back to the
/// queue if no part had reached the modem, else become uncertain.
pub(in crate::store) fn recover_leases(conn: &Connection, lease_before: i64, now: i64) -> Result<usize, StoreError> {
    let stuck: Vec<(i64, bool)> = conn
        .prepare_cached(
            "SELECT id, EXISTS (SELECT 1 FROM parts WHERE request_id = requests.id AND status = ?2)
             FROM requests WHERE state = ?3 AND lease_until < ?1",
        )?
        .query_map(params![lease_before, PartStatus::Submitting, State::Sending], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    // Parts already `sent` are kept and never sent again; only a part caught between
    // AT+CMGS and its answer makes the request uncertain.
    for &(id, reached_modem) in &stuck {
        if reached_modem {
            mark_uncertain(conn, id, INTERRUPTED_AFTER_CMGS, now)?;
        } else {
            requeue(conn, id, now, INTERRUPTED_BEFORE_CMGS, now)?;
        }
    }
    Ok(stuck.len())
}
