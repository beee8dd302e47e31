//! The modem stage's side of the queue once a request is chosen, on PostgreSQL.

use std::time::Duration;

use super::lifecycle::{fail, transition};
use super::site::{DEAD_AFTER_MS, QUEUED, SERVER_NOW};
use super::{Tx, dsn};
use crate::store::sending::{INTERRUPTED_AFTER_CMGS, INTERRUPTED_BEFORE_CMGS, elapsed, sent_detail};
use crate::store::{DsnAction, PartStatus, ReportedPart, State, StoreError};

/// When the next queued request waiting for its retry time (after `now`) falls due.
pub(in crate::store) async fn next_due(tx: &Tx, now: i64) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .query_one(
            "SELECT min(next_attempt) FROM requests WHERE state = $1 AND next_attempt > $2",
            &[&State::Queued, &now],
        )
        .await?
        .try_get(0)?)
}

/// `queued → sending` on `modem`, leased until `lease_until`.
pub(in crate::store) async fn claim(
    tx: &Tx,
    id: i64,
    modem: &str,
    lease_until: i64,
    now: i64,
) -> Result<bool, StoreError> {
    let detail = format!("claimed by modem {modem}");
    if !transition(tx, id, &[State::Queued], State::Sending, now, &detail).await? {
        return Ok(false);
    }
    tx.execute(
        "UPDATE requests SET modem = $1, lease_until = $2, attempts = attempts + 1,
                             owner = current_setting('smsgw.instance', true)
         WHERE id = $3",
        &[&modem, &lease_until, &id],
    )
    .await?;
    Ok(true)
}

/// Just before `AT+CMGS` for one part: from here a crash makes the request uncertain.
pub(in crate::store) async fn mark_part_submitting(
    tx: &Tx,
    id: i64,
    part: usize,
    modem: &str,
    lease_until: i64,
    now: i64,
) -> Result<bool, StoreError> {
    // Only the modem that still holds the lease may send.
    let held = tx
        .execute(
            "UPDATE requests SET lease_until = $1
             WHERE id = $2 AND state = $5 AND modem = $3 AND lease_until >= $4
               AND owner IS NOT DISTINCT FROM current_setting('smsgw.instance', true)",
            &[&lease_until, &id, &modem, &now, &State::Sending],
        )
        .await?;
    if held == 0 {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO parts (request_id, part, modem, status, submitted) VALUES ($1, $2, $3, $5, $4)
         ON CONFLICT (request_id, part) DO UPDATE SET modem = $3, mr = NULL, status = $5, submitted = $4, reported = NULL",
        &[&id, &(part as i64), &modem, &now, &PartStatus::Submitting],
    )
    .await?;
    Ok(true)
}

/// `+CMGS: <mr>` came back for one part; once every part is in, the request is `sent`.
pub(in crate::store) async fn mark_part_sent(
    tx: &Tx,
    id: i64,
    part: usize,
    parts: usize,
    mr: u8,
    unreported: bool,
    now: i64,
) -> Result<Option<Duration>, StoreError> {
    if !held(tx, id).await? {
        return Ok(None);
    }
    tx.execute(
        "UPDATE parts SET mr = $1, status = $4 WHERE request_id = $2 AND part = $3",
        &[&i64::from(mr), &id, &(part as i64), &PartStatus::Sent],
    )
    .await?;
    mark_sent_if_complete(tx, id, parts, unreported, now).await
}

/// `sending → sent` when every part reached the network.
pub(in crate::store) async fn mark_sent_if_complete(
    tx: &Tx,
    id: i64,
    parts: usize,
    unreported: bool,
    now: i64,
) -> Result<Option<Duration>, StoreError> {
    if !held(tx, id).await? {
        return Ok(None);
    }
    let in_network: i64 = tx
        .query_one(
            "SELECT count(*) FROM parts WHERE request_id = $1 AND status IN ($2, $3)",
            &[&id, &PartStatus::Sent, &PartStatus::Delivered],
        )
        .await?
        .try_get(0)?;
    if in_network < parts as i64 {
        return Ok(None);
    }
    let detail = sent_detail(parts);
    if !transition(tx, id, &[State::Sending], State::Sent, now, &detail).await? {
        return Ok(None);
    }
    let created: i64 = tx
        .query_one(
            "UPDATE requests SET reason = NULL WHERE id = $1 RETURNING created",
            &[&id],
        )
        .await?
        .try_get(0)?;
    if unreported {
        dsn::queue_for(tx, id, DsnAction::Relayed, now).await?;
    }
    Ok(Some(elapsed(created, now)))
}

/// Whether this instance still holds `id`'s lease (locked until the transaction ends).
/// Another instance that took this one for dead may have recovered the request and
/// claimed it again: what this instance's modem reports then no longer applies, and a
/// requeue from here would take the request from under the new holder's modem.
async fn held(tx: &Tx, id: i64) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            "SELECT 1 FROM requests WHERE id = $1 AND state = $2
               AND owner IS NOT DISTINCT FROM current_setting('smsgw.instance', true)
             FOR UPDATE",
            &[&id, &State::Sending],
        )
        .await?
        .is_some())
}

/// A temporary failure: back to the queue until `next_attempt`; parts not yet sent are
/// forgotten. Only while this instance holds the lease.
pub(in crate::store) async fn requeue(
    tx: &Tx,
    id: i64,
    next_attempt: i64,
    reason: &str,
    now: i64,
) -> Result<(), StoreError> {
    if held(tx, id).await? {
        back_to_queue(tx, id, next_attempt, reason, now).await?;
    }
    Ok(())
}

/// `sending → queued`, whoever holds the lease (recovery).
async fn back_to_queue(tx: &Tx, id: i64, next_attempt: i64, reason: &str, now: i64) -> Result<(), StoreError> {
    if transition(tx, id, &[State::Sending], State::Queued, now, reason).await? {
        tx.execute(
            "DELETE FROM parts WHERE request_id = $1 AND status = $2",
            &[&id, &PartStatus::Submitting],
        )
        .await?;
        tx.execute(
            "UPDATE requests SET next_attempt = $1, lease_until = NULL, reason = $2 WHERE id = $3",
            &[&next_attempt, &reason, &id],
        )
        .await?;
        tx.notify(QUEUED).await?;
    }
    Ok(())
}

/// `AT+CMGS` went out but no `+CMGS` came back: maybe sent, maybe not. Only while this
/// instance holds the lease.
pub(in crate::store) async fn mark_uncertain(tx: &Tx, id: i64, reason: &str, now: i64) -> Result<(), StoreError> {
    if held(tx, id).await? {
        make_uncertain(tx, id, reason, now).await?;
    }
    Ok(())
}

/// `sending → uncertain`, whoever holds the lease (recovery).
async fn make_uncertain(tx: &Tx, id: i64, reason: &str, now: i64) -> Result<(), StoreError> {
    if transition(tx, id, &[State::Sending], State::Uncertain, now, reason).await? {
        tx.execute(
            "UPDATE requests SET lease_until = NULL, reason = $1 WHERE id = $2",
            &[&reason, &id],
        )
        .await?;
    }
    Ok(())
}

/// A status report for (modem, mr, number): marks its part, and the request once every
/// part is delivered or one failed.
pub(in crate::store) async fn record_status_report(
    tx: &Tx,
    modem: &str,
    mr: u8,
    number: &str,
    delivered: bool,
    detail: &str,
    now: i64,
) -> Result<Option<ReportedPart>, StoreError> {
    // References wrap at 256: the most recent part with this one is meant. SMS centres
    // may write the recipient in national form: its last eight digits must match.
    let found = tx
        .query_opt(
            "SELECT p.request_id, p.part, p.submitted FROM parts p JOIN requests r ON r.id = p.request_id
             WHERE p.modem = $1 AND p.mr = $2 AND p.status = $4 AND right(r.number, 8) = right($3, 8)
             ORDER BY p.submitted DESC LIMIT 1",
            &[&modem, &i64::from(mr), &number, &PartStatus::Sent],
        )
        .await?;
    let Some(row) = found else {
        return Ok(None);
    };
    let (id, part, submitted): (i64, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    let reported = ReportedPart {
        request: id,
        after: elapsed(submitted, now),
    };
    let status = if delivered {
        PartStatus::Delivered
    } else {
        PartStatus::Failed
    };
    tx.execute(
        "UPDATE parts SET status = $1, reported = $2 WHERE request_id = $3 AND part = $4",
        &[&status, &now, &id, &part],
    )
    .await?;
    if !delivered {
        let reason = format!("part {part} not delivered: {detail}");
        fail(tx, id, State::Failed, "5.4.0", &reason, now).await?;
        return Ok(Some(reported));
    }
    let pending: i64 = tx
        .query_one(
            "SELECT count(*) FROM parts WHERE request_id = $1 AND status != $2",
            &[&id, &PartStatus::Delivered],
        )
        .await?
        .try_get(0)?;
    if pending == 0 && transition(tx, id, &[State::Sent], State::Delivered, now, detail).await? {
        dsn::queue_for(tx, id, DsnAction::Delivered, now).await?;
    }
    Ok(Some(reported))
}

/// Requests left `sending` go back to the queue if no part had reached the modem,
/// else become uncertain. At start (`lease_before` = `i64::MAX`), this instance's own
/// leases, all of them (whoever held them in this instance died with it), never another
/// live instance's; later, every lease that ran out before `lease_before`, and every
/// lease of an instance that stopped beating (killed: its modems hold nothing now).
pub(in crate::store) async fn recover_leases(tx: &Tx, lease_before: i64, now: i64) -> Result<usize, StoreError> {
    // The rows first, each locked: a holder's `mark_part_submitting` committed meanwhile
    // is then seen by the look at its parts below, made after the lock.
    let stuck: Vec<i64> = tx
        .query(
            &format!(
                "SELECT id FROM requests WHERE state = $2 AND CASE WHEN $1 = {max}
                   THEN owner = current_setting('smsgw.instance', true)
                   ELSE lease_until < $1 OR (owner <> current_setting('smsgw.instance', true)
                        AND owner NOT IN (SELECT name FROM instances WHERE seen >= {SERVER_NOW} - {DEAD_AFTER_MS})) END
                 FOR UPDATE SKIP LOCKED",
                max = i64::MAX
            ),
            &[&lease_before, &State::Sending],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    for &id in &stuck {
        let reached_modem: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM parts WHERE request_id = $1 AND status = $2)",
                &[&id, &PartStatus::Submitting],
            )
            .await?
            .try_get(0)?;
        if reached_modem {
            make_uncertain(tx, id, INTERRUPTED_AFTER_CMGS, now).await?;
        } else {
            back_to_queue(tx, id, now, INTERRUPTED_BEFORE_CMGS, now).await?;
        }
    }
    Ok(stuck.len())
}
