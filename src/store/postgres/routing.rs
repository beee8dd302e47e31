//! Routing's side of the queue, on PostgreSQL.

use super::Tx;
use super::lifecycle::{fail, transition};
use super::site::QUEUED;
use crate::store::routing::names;
use crate::store::routing::refused_and_tried;
use crate::store::{Route, State, StoreError, UnroutedRequest};

/// `received → queued` for every received request.
pub(in crate::store) async fn queue_received(tx: &Tx, now: i64) -> Result<usize, StoreError> {
    // As on SQLite: the requests to numbers that opted out after their RCPT fail first.
    super::optout::fail_received(tx, now).await?;
    // One statement: the requests moved are exactly those whose event is written, even
    // while another instance moves some of them.
    let moved = tx
        .execute(
            "WITH moved AS (UPDATE requests SET state = $2, updated = $1 WHERE state = $3 RETURNING id)
             INSERT INTO events (request_id, time, state, detail)
             SELECT id, $1, $2, 'routed to this instance''s modems' FROM moved",
            &[&now, &State::Queued, &State::Received],
        )
        .await?;
    if moved > 0 {
        tx.notify(QUEUED).await?;
    }
    Ok(moved as usize)
}

/// Received requests due for routing, oldest first.
pub(in crate::store) async fn due_for_routing(
    tx: &Tx,
    now: i64,
    limit: usize,
) -> Result<Vec<UnroutedRequest>, StoreError> {
    let rows = tx
        .query(
            "SELECT r.id, r.number, m.trace, r.tried FROM requests r JOIN messages m ON m.id = r.message_id
             WHERE r.state = $3 AND (r.next_attempt IS NULL OR r.next_attempt <= $1)
             ORDER BY r.id LIMIT $2",
            &[&now, &(limit as i64), &State::Received],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let (refused, tried) = refused_and_tried(row.try_get(3)?);
            Ok(UnroutedRequest {
                id: row.try_get(0)?,
                number: row.try_get(1)?,
                trace: names(row.try_get(2)?),
                refused,
                tried,
            })
        })
        .collect()
}

/// Applies one routing decision to a received request.
pub(in crate::store) async fn route(tx: &Tx, id: i64, route: &Route, now: i64) -> Result<(), StoreError> {
    let from = [State::Received];
    match route {
        Route::Local { detail } => {
            if transition(tx, id, &from, State::Queued, now, detail).await? {
                tx.execute(
                    "UPDATE requests SET next_attempt = NULL, route = NULL WHERE id = $1",
                    &[&id],
                )
                .await?;
            }
        }
        Route::Peer { name, detail } => {
            if transition(tx, id, &from, State::Forwarding, now, detail).await? {
                tx.execute(
                    "UPDATE requests SET route = $1, next_attempt = NULL, attempts = 0, reason = NULL WHERE id = $2",
                    &[name, &id],
                )
                .await?;
            }
        }
        Route::Wait { at, detail } => {
            let row = tx
                .query_one("SELECT reason, tried FROM requests WHERE id = $1", &[&id])
                .await?;
            let (reason, tried): (Option<String>, String) = (row.try_get(0)?, row.try_get(1)?);
            // One event per reason, not one per look.
            if reason.as_deref() != Some(detail.as_str()) {
                transition(tx, id, &from, State::Received, now, detail).await?;
            }
            // After the wait, peers that only failed may be tried again; refusals stand.
            let (refused, _) = refused_and_tried(&tried);
            let refused: String = refused.iter().map(|n| format!("!{n},")).collect();
            tx.execute(
                "UPDATE requests SET next_attempt = $1, reason = $2, tried = $3 WHERE id = $4 AND state = $5",
                &[at, detail, &refused, &id, &State::Received],
            )
            .await?;
        }
        Route::Nowhere { reason } => fail(tx, id, State::Failed, "5.4.4", reason, now).await?,
    }
    Ok(())
}

/// Requests in each of `states`.
pub(in crate::store) async fn count_in_states(tx: &Tx, states: &[State]) -> Result<Vec<(String, i64)>, StoreError> {
    let names: Vec<String> = states.iter().map(|s| format!("'{s}'")).collect();
    let sql = format!(
        "SELECT state, count(*) FROM requests WHERE state IN ({}) GROUP BY state",
        names.join(",")
    );
    tx.query(&sql, &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Applies routing decisions, in one transaction; wakes every instance's modems if any
/// went to the queue.
pub(in crate::store) async fn route_all(tx: &Tx, routes: &[(i64, Route)], now: i64) -> Result<(), StoreError> {
    // As on SQLite: those whose number opted out after their RCPT fail first.
    super::optout::fail_received(tx, now).await?;
    for (id, to) in routes {
        route(tx, *id, to, now).await?;
    }
    if routes.iter().any(|(_, to)| matches!(to, Route::Local { .. })) {
        tx.notify(QUEUED).await?;
    }
    Ok(())
}
