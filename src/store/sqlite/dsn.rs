//! SQLite: dsn.

use crate::store::dsn::DSN_EVENT;
use crate::store::{DsnAction, DsnOutcome, PendingDsn, ReportWait};
use crate::store::{DsnState, State, StoreError};
use rusqlite::{Connection, params};

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
         SELECT r.id, '{action}', ?1, '{pending}', ?1
         FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE ({candidates}) AND {wanted}
         RETURNING request_id",
        action = action.as_str(),
        pending = DsnState::Pending,
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
pub(in crate::store) fn queue_for(conn: &Connection, id: i64, action: DsnAction, now: i64) -> Result<bool, StoreError> {
    Ok(queue(conn, action, "r.id = CAST(?2 AS INTEGER)", &id.to_string(), now)? == 1)
}

/// The DSNs that time brings: `delayed` for requests still not handed to the network
/// after `delay_ms`, and `relayed` for requests sent without a status report for longer
/// than the report wait (only those sent since the last sweep: the rest were seen).
/// `None`: never.
pub(in crate::store) fn queue_timed(
    conn: &Connection,
    delay_ms: Option<i64>,
    report_wait: Option<ReportWait>,
    now: i64,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    if let Some(delay) = delay_ms {
        let unsent = [
            State::Received,
            State::Routed,
            State::Forwarding,
            State::Queued,
            State::Sending,
            State::Uncertain,
        ];
        let unsent: Vec<String> = unsent.iter().map(|s| format!("'{s}'")).collect();
        let waiting = format!(
            "r.state IN ({}) AND coalesce(r.valid_from, r.created) < ?1 - CAST(?2 AS INTEGER)",
            unsent.join(", ")
        );
        queued += queue(conn, DsnAction::Delayed, &waiting, &delay.to_string(), now)?;
    }
    if let Some(ReportWait { wait_ms, since }) = report_wait {
        let unreported = format!(
            "r.state = '{}' AND r.updated < ?1 - {wait_ms} AND r.updated >= CAST(?2 AS INTEGER)",
            State::Sent
        );
        queued += queue(conn, DsnAction::Relayed, &unreported, &since.to_string(), now)?;
    }
    Ok(queued)
}

fn dsn_event(conn: &Connection, request: i64, now: i64, detail: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO events (request_id, time, state, detail) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![request, now, DSN_EVENT, detail])?;
    Ok(())
}

/// Pending DSNs whose time has come, oldest first.
pub(in crate::store) fn dsns_due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<PendingDsn>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT d.id, d.action, d.created, d.attempts, r.id, m.sender, m.envid, m.ret, m.received, m.raw,
                r.recipient, r.orcpt, r.number, r.text, r.parts, r.modem, r.status, r.reason, r.updated
         FROM dsns d JOIN requests r ON r.id = d.request_id JOIN messages m ON m.id = r.message_id
         WHERE d.state = ?3 AND d.next_attempt <= ?1
         ORDER BY d.next_attempt, d.id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit as i64, DsnState::Pending], |row| {
        Ok(PendingDsn {
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
pub(in crate::store) fn next_due(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_attempt) FROM dsns WHERE state = ?1")?
        .query_row([DsnState::Pending], |row| row.get(0))?)
}

/// Records one delivery attempt's outcome, with an event when it is final.
pub(in crate::store) fn record_dsn_attempt(
    conn: &Connection,
    dsn: &PendingDsn,
    outcome: &DsnOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let (state, next, error, detail) = outcome.record(dsn, now);
    conn.prepare_cached(
        "UPDATE dsns SET state = ?1, next_attempt = ?2, last_error = ?3, attempts = attempts + 1 WHERE id = ?4",
    )?
    .execute(params![state, next, error, dsn.id])?;
    if let Some(detail) = detail {
        dsn_event(conn, dsn.request, now, &detail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::fixtures::{database, mail};
    use crate::store::sqlite::intake::receive;
    use crate::store::sqlite::lifecycle::{fail, retry};

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_delay_counts_from_the_operator_s_retry_not_from_the_mail() {
        let conn = database();
        let mut mail = mail(&["+33477858589"], 1);
        mail.requests[0].notify = Some("DELAY,FAILURE".into());
        let id = receive(&conn, &mail, 0).unwrap()[0];
        fail(&conn, id, State::Failed, "5.4.0", "refused", HOUR).unwrap();
        // Retried a day later: it has waited no time since.
        assert!(retry(&conn, id, 24 * HOUR).unwrap());
        let delayed = |now| queue_timed(&conn, Some(4 * HOUR), None, now).unwrap();
        assert_eq!(delayed(24 * HOUR + 1_000), 0, "just retried");
        assert_eq!(delayed(28 * HOUR + 1_000), 1, "four hours after the retry");
    }
}
