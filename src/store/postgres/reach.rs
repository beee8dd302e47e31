//! Requests waiting for a route or a modem that this instance's tariffs no longer cover,
//! on PostgreSQL.

use super::Tx;
use super::lifecycle::transition;
use crate::e164::E164;
use crate::store::{PartStatus, State, StoreError};

/// `queued → received`, unless a part of it reached a modem.
pub(in crate::store) async fn reroute_queued(tx: &Tx, id: i64, now: i64) -> Result<bool, StoreError> {
    let started: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM parts WHERE request_id = $1 AND status IN ($2, $3, $4))",
            &[&id, &PartStatus::Submitting, &PartStatus::Sent, &PartStatus::Delivered],
        )
        .await?
        .try_get(0)?;
    let detail = "no modem of this instance sends it any more: routed again";
    if started || !transition(tx, id, &[State::Queued], State::Received, now, detail).await? {
        return Ok(false);
    }
    tx.execute(
        "UPDATE requests SET route = NULL, next_attempt = NULL, attempts = 0 WHERE id = $1",
        &[&id],
    )
    .await?;
    Ok(true)
}

/// Requests `received` or `queued` whose number starts with none of `prefixes`.
pub(in crate::store) async fn waiting_outside(tx: &Tx, prefixes: &[String]) -> Result<Vec<(i64, E164)>, StoreError> {
    tx.query(
        "SELECT id, number FROM requests
         WHERE state IN ($2, $3)
           AND NOT EXISTS (SELECT 1 FROM unnest($1::text[]) AS p (value)
                           WHERE substr(requests.number, 1, length(value)) = value)
         ORDER BY id",
        &[&prefixes, &State::Received, &State::Queued],
    )
    .await?
    .iter()
    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
    .collect()
}
