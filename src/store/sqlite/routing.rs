//! SQLite: routing.

use super::lifecycle::{fail, transition};
use crate::store::routing::names;
use crate::store::routing::refused_and_tried;
use crate::store::{Route, UnroutedRequest};
use crate::store::{State, StoreError};
use rusqlite::{Connection, params};

/// `received → queued` for every received request.
pub(in crate::store) fn queue_received(conn: &Connection, now: i64) -> Result<usize, StoreError> {
    // In this transaction, so that none slips between: a request to a number that opted
    // out after its RCPT (its mail still in DATA when the STOP committed) fails instead;
    // one from the null sender passes (`inbound.stop_reply`'s confirmation is one).
    super::optout::fail_received(conn, now)?;
    // Set-wise: under load one statement moves a whole batch.
    conn.prepare_cached(
        "INSERT INTO events (request_id, time, state, detail)
         SELECT id, ?1, ?2, 'routed to this instance''s modems' FROM requests WHERE state = ?3",
    )?
    .execute(params![now, State::Queued, State::Received])?;
    let moved = conn
        .prepare_cached("UPDATE requests SET state = ?2, updated = ?1 WHERE state = ?3")?
        .execute(params![now, State::Queued, State::Received])?;
    Ok(moved)
}

/// Received requests due for routing, oldest first.
pub(in crate::store) fn due_for_routing(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<UnroutedRequest>, StoreError> {
    let mut statement = conn.prepare_cached(
        "SELECT r.id, r.number, m.trace, r.tried FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE r.state = ?3 AND (r.next_attempt IS NULL OR r.next_attempt <= ?1)
         ORDER BY r.id LIMIT ?2",
    )?;
    let rows = statement.query_map(params![now, limit as i64, State::Received], |row| {
        let (refused, tried) = refused_and_tried(&row.get::<_, String>(3)?);
        Ok(UnroutedRequest {
            id: row.get(0)?,
            number: row.get(1)?,
            trace: names(&row.get::<_, String>(2)?),
            refused,
            tried,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Applies one routing decision to a received request.
pub(in crate::store) fn route(conn: &Connection, id: i64, route: &Route, now: i64) -> Result<(), StoreError> {
    let from = [State::Received];
    match route {
        Route::Local { detail } => {
            if transition(conn, id, &from, State::Queued, now, detail)? {
                conn.prepare_cached("UPDATE requests SET next_attempt = NULL, route = NULL WHERE id = ?1")?
                    .execute(params![id])?;
            }
        }
        Route::Peer { name, detail } => {
            if transition(conn, id, &from, State::Forwarding, now, detail)? {
                conn.prepare_cached(
                    "UPDATE requests SET route = ?1, next_attempt = NULL, attempts = 0, reason = NULL WHERE id = ?2",
                )?
                .execute(params![name, id])?;
            }
        }
        Route::Wait { at, detail } => {
            let (reason, tried): (Option<String>, String) = conn
                .prepare_cached("SELECT reason, tried FROM requests WHERE id = ?1")?
                .query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            // One event per reason, not one per look.
            if reason.as_deref() != Some(detail.as_str()) {
                transition(conn, id, &from, State::Received, now, detail)?;
            }
            // After the wait, peers that only failed may be tried again; refusals stand.
            let (refused, _) = refused_and_tried(&tried);
            let refused: String = refused.iter().map(|n| format!("!{n},")).collect();
            // Only while it still waits: it may have expired since routing read it.
            conn.prepare_cached(
                "UPDATE requests SET next_attempt = ?1, reason = ?2, tried = ?3 WHERE id = ?4 AND state = ?5",
            )?
            .execute(params![at, detail, refused, id, State::Received])?;
        }
        Route::Nowhere { reason } => fail(conn, id, State::Failed, "5.4.4", reason, now)?,
    }
    Ok(())
}

/// Requests in each of `states` (which the index answers without reading rows).
pub(in crate::store) fn count_in_states(conn: &Connection, states: &[State]) -> Result<Vec<(String, i64)>, StoreError> {
    let names: Vec<String> = states.iter().map(|s| format!("'{s}'")).collect();
    let sql = format!(
        "SELECT state, count(*) FROM requests WHERE state IN ({}) GROUP BY state",
        names.join(",")
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Applies routing decisions, in one transaction.
pub(in crate::store) fn route_all(conn: &Connection, routes: &[(i64, Route)], now: i64) -> Result<(), StoreError> {
    // As in `queue_received`: a request to a number that opted out after its RCPT fails
    // here, and its route, guarded by `received`, then changes nothing.
    super::optout::fail_received(conn, now)?;
    routes.iter().try_for_each(|(id, to)| route(conn, *id, to, now))
}
