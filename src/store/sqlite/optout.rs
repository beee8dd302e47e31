//! SQLite: optout.

use super::lifecycle::fail_from;
use crate::store::State;
use crate::store::optout::opted_out_reason;
use crate::store::{OptOut, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

/// The numbers opted out, and the latest `seq`.
pub(in crate::store) fn opted_out(conn: &Connection) -> Result<(Vec<String>, i64), StoreError> {
    let numbers = conn
        .prepare_cached("SELECT number FROM optouts WHERE opted_out")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok((numbers, latest_seq(conn)?))
}

/// The latest `seq` of a change made here (0: none).
pub(in crate::store) fn latest_seq(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT coalesce(max(seq), 0) FROM optouts")?
        .query_row([], |row| row.get(0))?)
}

fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<OptOut> {
    Ok(OptOut {
        number: row.get(0)?,
        opted_out: row.get(1)?,
        changed: row.get(2)?,
        source: row.get(3)?,
        origin: row.get(4)?,
        seq: row.get(5)?,
    })
}

/// The list by number: the numbers opted out, or (`all`) every number it has seen.
pub(in crate::store) fn list(conn: &Connection, all: bool) -> Result<Vec<OptOut>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT number, opted_out, changed, source, origin, seq FROM optouts
             WHERE opted_out OR ?1 ORDER BY number",
        )?
        .query_map([all], read)?
        .collect::<Result<_, _>>()?)
}

/// This instance's changes after `after`, in order.
pub(in crate::store) fn feed(conn: &Connection, after: i64, limit: usize) -> Result<Vec<OptOut>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT number, opted_out, changed, source, origin, seq FROM optouts INDEXED BY optouts_feed
             WHERE seq > ?1 AND origin IS NULL ORDER BY seq LIMIT ?2",
        )?
        .query_map(params![after, limit as i64], read)?
        .collect::<Result<_, _>>()?)
}

/// Applies one change: this instance's own (`origin` None: it always stands), or a
/// peer's (only if later than what the list has for the number); either gets the next
/// `seq`, and the feed gives this instance's own.
/// False if the number's place on the list did not change. Opting out fails the
/// requests waiting for the number.
pub(in crate::store) fn apply(conn: &Connection, change: &OptOut, now: i64) -> Result<bool, StoreError> {
    let known: Option<(bool, i64)> = conn
        .prepare_cached("SELECT opted_out, changed FROM optouts WHERE number = ?1")?
        .query_row([&change.number], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let moved = known.is_none_or(|(opted_out, _)| opted_out != change.opted_out);
    match (&change.origin, known) {
        (Some(_), Some((_, changed))) if changed >= change.changed => return Ok(false),
        (None, Some(_)) if !moved => return Ok(false),
        _ => {}
    }
    // Every change takes the next `seq`, a peer's too: the latest only grows, so the
    // feed never gives a number twice and every reader of `max(seq)` sees each change.
    let seq: i64 = conn
        .prepare_cached("SELECT coalesce(max(seq), 0) + 1 FROM optouts")?
        .query_row([], |row| row.get(0))?;
    conn.prepare_cached(
        "INSERT INTO optouts (number, opted_out, changed, source, origin, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (number) DO UPDATE SET opted_out = ?2, changed = ?3, source = ?4, origin = ?5, seq = ?6",
    )?
    .execute(params![
        change.number,
        change.opted_out,
        change.changed,
        change.source,
        change.origin,
        seq
    ])?;
    if change.opted_out && moved {
        fail_waiting_for(conn, change.number.as_str(), now)?;
    }
    Ok(moved)
}

/// [`apply`] for each change; how many moved a number.
pub(in crate::store) fn apply_all(conn: &Connection, changes: &[OptOut], now: i64) -> Result<usize, StoreError> {
    let mut moved = 0;
    for change in changes {
        moved += usize::from(apply(conn, change, now)?);
    }
    Ok(moved)
}

/// Fails the requests still waiting for `number`, which just opted out (with DSNs).
fn fail_waiting_for(conn: &Connection, number: &str, now: i64) -> Result<(), StoreError> {
    let waiting = [State::Received, State::Routed, State::Queued];
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM requests INDEXED BY requests_by_number WHERE number = ?1 AND state IN (?2, ?3, ?4)",
        )?
        .query_map(params![number, waiting[0], waiting[1], waiting[2]], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let reason = opted_out_reason(number);
    for id in ids {
        fail_from(conn, id, &waiting, State::Failed, "5.7.1", &reason, now)?;
    }
    Ok(())
}

/// Fails the `received` requests (with their DSNs) to numbers that opted out after their
/// RCPT, but those from the null sender. Run in the transactions that queue
/// and route requests.
pub(in crate::store) fn fail_received(conn: &Connection, now: i64) -> Result<(), StoreError> {
    let late: Vec<(i64, String)> = conn
        .prepare_cached(
            // On the hot path (every routing round): one key lookup per request received,
            // and the mail read only for a number that opted out.
            "SELECT r.id, r.number FROM requests r
             WHERE r.state = ?1
               AND EXISTS (SELECT 1 FROM optouts o WHERE o.number = r.number AND o.opted_out)
               AND (SELECT m.sender FROM messages m WHERE m.id = r.message_id) != ''",
        )?
        .query_map([State::Received], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (id, number) in &late {
        fail_from(
            conn,
            *id,
            &[State::Received],
            State::Failed,
            "5.7.1",
            &opted_out_reason(number),
            now,
        )?;
    }
    Ok(())
}
