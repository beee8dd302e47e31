//! The moves every stage shares, on PostgreSQL.

use super::site::QUEUED;
use super::{Tx, dsn};
use crate::store::lifecycle::FAILABLE;
use crate::store::{DsnAction, PartStatus, State, StoreError};

/// Appends one line to a request's history.
pub(in crate::store) async fn event(
    tx: &Tx,
    request: i64,
    now: i64,
    state: State,
    detail: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events (request_id, time, state, detail) VALUES ($1, $2, $3, $4)",
        &[&request, &now, &state, &detail],
    )
    .await?;
    Ok(())
}

/// Moves a request from one of `from` to `to` and records why; false if it was not in
/// any of `from`. The update locks the row: an instance moving it at the same time
/// waits, then finds it moved.
pub(in crate::store) async fn transition(
    tx: &Tx,
    id: i64,
    from: &[State],
    to: State,
    now: i64,
    detail: &str,
) -> Result<bool, StoreError> {
    // Names from the enum, never from input (one cached statement per set of states).
    let from: Vec<String> = from.iter().map(|s| format!("'{s}'")).collect();
    let sql = format!(
        "UPDATE requests SET state = $1, updated = $2 WHERE id = $3 AND state IN ({})",
        from.join(",")
    );
    let changed = tx.execute(&sql, &[&to, &now, &id]).await?;
    if changed == 1 {
        event(tx, id, now, to, detail).await?;
    }
    Ok(changed == 1)
}

/// A permanent failure, or validity run out (`to` = `Expired`).
pub(in crate::store) async fn fail(
    tx: &Tx,
    id: i64,
    to: State,
    status: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    fail_from(tx, id, &FAILABLE, to, status, reason, now).await
}

/// [`fail`], only from one of `from`.
pub(in crate::store) async fn fail_from(
    tx: &Tx,
    id: i64,
    from: &[State],
    to: State,
    status: &str,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    if transition(tx, id, from, to, now, &format!("{status} {reason}")).await? {
        tx.execute(
            "UPDATE requests SET status = $1, reason = $2, lease_until = NULL WHERE id = $3",
            &[&status, &reason, &id],
        )
        .await?;
        dsn::queue_for(tx, id, DsnAction::Failed, now).await?;
    }
    Ok(())
}

/// Requests waiting longer than their validity: `expired`.
pub(in crate::store) async fn expire_overdue(tx: &Tx, validity_ms: i64, now: i64) -> Result<usize, StoreError> {
    let since = now - validity_ms;
    let overdue: Vec<i64> = tx
        .query(
            "SELECT id FROM requests WHERE state IN ($1, $2) AND coalesce(valid_from, created) < $3",
            &[&State::Queued, &State::Received, &since],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    for &id in &overdue {
        fail(tx, id, State::Expired, "4.4.7", "not sent within its validity", now).await?;
    }
    Ok(overdue.len())
}

/// `smsgw queue retry`: as SQLite's `lifecycle::retry`.
pub(in crate::store) async fn retry(tx: &Tx, id: i64, now: i64) -> Result<bool, StoreError> {
    let unanswered: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM requests WHERE id = $1 AND state = $2 AND unanswered)",
            &[&id, &State::Forwarding],
        )
        .await?
        .try_get(0)?;
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
    let started: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM parts WHERE request_id = $1 AND status IN ($2, $3, $4))",
            &[&id, &PartStatus::Sent, &PartStatus::Delivered, &PartStatus::Submitting],
        )
        .await?
        .try_get(0)?;
    let to = if started { State::Queued } else { State::Received };
    if !transition(tx, id, from, to, now, detail).await? {
        return Ok(false);
    }
    tx.execute(
        "UPDATE requests SET tried = '', route = NULL, valid_from = $1, attempts = 0, unanswered = false,
                in_flight = false, next_attempt = NULL, status = NULL, reason = NULL
         WHERE id = $2",
        &[&now, &id],
    )
    .await?;
    // Parts the network accepted are not sent again; the uncertain one is.
    tx.execute(
        "DELETE FROM parts WHERE request_id = $1 AND status NOT IN ($2, $3)",
        &[&id, &PartStatus::Sent, &PartStatus::Delivered],
    )
    .await?;
    if to == State::Queued {
        tx.notify(QUEUED).await?;
    }
    Ok(true)
}
