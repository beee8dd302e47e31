//! Forwarding's side of the queue, on PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use super::Tx;
use super::lifecycle::transition;
use super::site::{DEAD_AFTER_MS, SERVER_NOW};
use crate::store::forwarding::{cut_off, held_by};
use crate::store::routing::names;
use crate::store::{ForwardOutcome, ForwardRequest, State, StoreError};

/// Forwarding requests that are due, oldest first, each marked in flight; each mail is
/// read once however many of its requests are due.
pub(in crate::store) async fn due_for_forwarding(
    tx: &Tx,
    now: i64,
    limit: usize,
) -> Result<Vec<ForwardRequest>, StoreError> {
    // Those another instance is taking right now are skipped, and only those marked
    // here are read back: two instances never forward one request at once. One in
    // flight already (this instance could not record its outcome, or its instance
    // died) may have reached its peer: it is taken again as unanswered, tried on that
    // peer only, which keeps one copy by its origin.
    let taken: Vec<i64> = tx
        .query(
            &format!(
                "UPDATE requests SET unanswered = unanswered OR in_flight, in_flight = true,
                                     owner = current_setting('smsgw.instance', true)
                 WHERE id IN (
                     SELECT id FROM requests WHERE state = $3 AND (next_attempt IS NULL OR next_attempt <= $1)
                       AND (NOT in_flight OR owner IS NULL OR owner = current_setting('smsgw.instance', true)
                            OR owner NOT IN (SELECT name FROM instances WHERE seen >= {SERVER_NOW} - {DEAD_AFTER_MS}))
                     ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id"
            ),
            &[&now, &(limit as i64), &State::Forwarding],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let rows = tx
        .query(
            "SELECT r.id, r.route, r.attempts, r.number, r.recipient, r.notify, r.orcpt,
                    m.sender, m.envid, m.ret, m.id, m.origin, m.trace,
                    r.unanswered, coalesce(r.valid_from, r.created)
             FROM requests r JOIN messages m ON m.id = r.message_id
             WHERE r.id = ANY($1)
             ORDER BY r.id",
            &[&taken],
        )
        .await?;
    let mut mails: HashMap<i64, Arc<[u8]>> = HashMap::new();
    let mut due = Vec::with_capacity(rows.len());
    for row in &rows {
        let message: i64 = row.try_get(10)?;
        let raw = match mails.get(&message) {
            Some(raw) => raw.clone(),
            None => {
                let raw: Arc<[u8]> = tx
                    .query_one("SELECT raw FROM messages WHERE id = $1", &[&message])
                    .await?
                    .try_get::<_, Vec<u8>>(0)?
                    .into();
                mails.insert(message, raw.clone());
                raw
            }
        };
        due.push(ForwardRequest {
            id: row.try_get(0)?,
            peer: row.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
            attempts: row.try_get(2)?,
            number: row.try_get(3)?,
            recipient: row.try_get(4)?,
            notify: row.try_get(5)?,
            orcpt: row.try_get(6)?,
            sender: row.try_get(7)?,
            envid: row.try_get(8)?,
            ret: row.try_get(9)?,
            raw,
            origin: row.try_get(11)?,
            trace: names(row.try_get(12)?),
            unanswered: row.try_get(13)?,
            valid_from: row.try_get(14)?,
        });
    }
    Ok(due)
}

/// When the next forwarding attempt falls due, if one waits.
pub(in crate::store) async fn next_forward(tx: &Tx) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT min(next_attempt) FROM requests WHERE state = $1",
            &[&State::Forwarding],
        )
        .await?
        .try_get(0)?)
}

/// At start: this instance's forwards taken and never recorded (`in_flight`) become
/// unanswered, tried on their peer only (another live instance's are its own; a dead
/// one's are taken again by `due_for_forwarding`, to the same peer, which keeps one
/// copy by its origin). Returns how many.
pub(in crate::store) async fn recover_forwards(tx: &Tx, now: i64) -> Result<usize, StoreError> {
    let cut: Vec<(i64, String)> = tx
        .query(
            "SELECT id, coalesce(route, '') FROM requests
             WHERE state = $1 AND in_flight AND owner = current_setting('smsgw.instance', true)",
            &[&State::Forwarding],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, StoreError>>()?;
    for (id, peer) in &cut {
        let detail = cut_off(peer);
        let why = held_by(
            peer,
            *id,
            &format!("the gateway stopped during a forward, before {peer} answered"),
        );
        if transition(tx, *id, &[State::Forwarding], State::Forwarding, now, &detail).await? {
            tx.execute(
                "UPDATE requests SET in_flight = false, unanswered = true, reason = $1 WHERE id = $2",
                &[&why, id],
            )
            .await?;
        }
    }
    Ok(cut.len())
}

/// Clears the in-flight mark of forwards taken and never attempted.
pub(in crate::store) async fn release_forwards(tx: &Tx, ids: &[i64]) -> Result<(), StoreError> {
    for id in ids {
        tx.execute("UPDATE requests SET in_flight = false WHERE id = $1", &[id])
            .await?;
    }
    Ok(())
}

/// Records one forwarding attempt's outcome, if the request is still `forwarding` to
/// `peer`; clears its in-flight mark.
pub(in crate::store) async fn record_forward(
    tx: &Tx,
    id: i64,
    peer: &str,
    outcome: &ForwardOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let cleared = tx
        .execute(
            "UPDATE requests SET in_flight = false WHERE id = $1 AND state = $2 AND route = $3",
            &[&id, &State::Forwarding, &peer],
        )
        .await?;
    if cleared == 0 {
        tracing::info!(request = id, %peer, "a forward's outcome came for a request no longer routed there: ignored");
        return Ok(());
    }
    let from = [State::Forwarding];
    let detail = outcome.detail(id, peer, now);
    match outcome {
        ForwardOutcome::Accepted(_) => {
            if transition(tx, id, &from, State::Forwarded, now, &detail).await? {
                tx.execute(
                    "UPDATE requests SET unanswered = false, reason = NULL WHERE id = $1",
                    &[&id],
                )
                .await?;
            }
        }
        ForwardOutcome::Retry { at, .. } => {
            if transition(tx, id, &from, State::Forwarding, now, &detail).await? {
                tx.execute(
                    "UPDATE requests SET next_attempt = $1, attempts = attempts + 1 WHERE id = $2",
                    &[at, &id],
                )
                .await?;
            }
        }
        ForwardOutcome::Failover { refused, .. } => {
            let mark = if *refused { "!" } else { "" };
            if transition(tx, id, &from, State::Received, now, &detail).await? {
                tx.execute(
                    "UPDATE requests SET tried = tried || $1 || ',', route = NULL, next_attempt = NULL, attempts = 0
                     WHERE id = $2",
                    &[&format!("{mark}{peer}"), &id],
                )
                .await?;
            }
        }
        ForwardOutcome::Unanswered { at, .. } => {
            let why = held_by(peer, id, "a forward's end of data left, no answer came");
            if transition(tx, id, &from, State::Forwarding, now, &detail).await? {
                tx.execute(
                    "UPDATE requests SET next_attempt = $1, attempts = attempts + 1, unanswered = true, reason = $2
                     WHERE id = $3",
                    &[at, &why, &id],
                )
                .await?;
            }
        }
        ForwardOutcome::Uncertain { reason } => {
            if transition(tx, id, &from, State::Uncertain, now, &detail).await? {
                tx.execute(
                    "UPDATE requests SET next_attempt = NULL, reason = $1 WHERE id = $2",
                    &[reason, &id],
                )
                .await?;
            }
        }
    }
    Ok(())
}
