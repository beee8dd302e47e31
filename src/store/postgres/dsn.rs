//! DSNs owed to senders, on PostgreSQL.

use super::Tx;
use super::site::{DEAD_AFTER_MS, SERVER_NOW};
use crate::store::dsn::DSN_EVENT;
use crate::store::{DsnAction, DsnOutcome, DsnState, PendingDsn, ReportWait, State, StoreError};

/// The condition, on `r` joined with `m`, that the sender asked for a DSN of this
/// action and has none that supersedes it.
fn wanted(action: DsnAction) -> String {
    format!(
        "m.sender != '' AND strpos(coalesce(r.notify, 'FAILURE'), '{}') > 0
         AND NOT EXISTS (SELECT 1 FROM dsns d WHERE d.request_id = r.id AND d.action IN ({}))",
        action.notify_keyword(),
        action.superseded_by()
    )
}

/// Queues the DSN `action` for each request `candidates` selects (a condition on `r`
/// and `m`, with `$1` = now and `$2` = `arg`, both `bigint`) that wants it; returns how many.
async fn queue(tx: &Tx, action: DsnAction, candidates: &str, arg: i64, now: i64) -> Result<usize, StoreError> {
    let sql = format!(
        "INSERT INTO dsns (request_id, action, created, state, next_attempt)
         SELECT r.id, '{action}', $1::bigint, '{pending}', $1::bigint
         FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE ({candidates}) AND {wanted}
         RETURNING request_id",
        action = action.as_str(),
        pending = DsnState::Pending,
        wanted = wanted(action),
    );
    let ids: Vec<i64> = tx
        .query(&sql, &[&now, &arg])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    for &id in &ids {
        dsn_event(tx, id, now, &format!("{} DSN queued for the sender", action.as_str())).await?;
    }
    Ok(ids.len())
}

/// The DSN `action` for request `id`, if its sender wants one.
pub(in crate::store) async fn queue_for(tx: &Tx, id: i64, action: DsnAction, now: i64) -> Result<bool, StoreError> {
    Ok(queue(tx, action, "r.id = $2", id, now).await? == 1)
}

/// The DSNs that time brings (`delayed`, `relayed`), as SQLite's `dsn::queue_timed`.
pub(in crate::store) async fn queue_timed(
    tx: &Tx,
    delay_ms: Option<i64>,
    report_wait: Option<ReportWait>,
    now: i64,
) -> Result<usize, StoreError> {
    // One instance at a time: two sweeps at once would each see no DSN yet, and queue
    // one each. The second waits here, then sees the first's.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TIMED_DSN_LOCK])
        .await?;
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
            "r.state IN ({}) AND coalesce(r.valid_from, r.created) < $1::bigint - $2::bigint",
            unsent.join(", ")
        );
        queued += queue(tx, DsnAction::Delayed, &waiting, delay, now).await?;
    }
    if let Some(ReportWait { wait_ms, since }) = report_wait {
        let unreported = format!(
            "r.state = '{}' AND r.updated < $1::bigint - {wait_ms} AND r.updated >= $2::bigint",
            State::Sent
        );
        queued += queue(tx, DsnAction::Relayed, &unreported, since, now).await?;
    }
    Ok(queued)
}

async fn dsn_event(tx: &Tx, request: i64, now: i64, detail: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events (request_id, time, state, detail) VALUES ($1, $2, $3, $4)",
        &[&request, &now, &DSN_EVENT, &detail],
    )
    .await?;
    Ok(())
}

/// Pending DSNs whose time has come, oldest first, each made this instance's: one a
/// dead instance left is taken by one survivor, not by each.
pub(in crate::store) async fn dsns_due(tx: &Tx, now: i64, limit: usize) -> Result<Vec<PendingDsn>, StoreError> {
    let taken: Vec<i64> = tx
        .query(
            &format!(
                "UPDATE dsns SET instance = current_setting('smsgw.instance', true) WHERE id IN (
                     SELECT d.id FROM dsns d WHERE d.state = $3 AND d.next_attempt <= $1 AND {mine}
                     ORDER BY d.next_attempt, d.id LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id",
                mine = mine()
            ),
            &[&now, &(limit as i64), &DsnState::Pending],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let rows = tx
        .query(
            "SELECT d.id, d.action, d.created, d.attempts, r.id, m.sender, m.envid, m.ret, m.received, m.raw,
                    r.recipient, r.orcpt, r.number, r.text, r.parts, r.modem, r.status, r.reason, r.updated
             FROM dsns d JOIN requests r ON r.id = d.request_id JOIN messages m ON m.id = r.message_id
             WHERE d.id = ANY($1)
             ORDER BY d.next_attempt, d.id",
            &[&taken],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(PendingDsn {
                id: row.try_get(0)?,
                action: DsnAction::parse(row.try_get(1)?),
                created: row.try_get(2)?,
                attempts: row.try_get(3)?,
                request: row.try_get(4)?,
                sender: row.try_get(5)?,
                envid: row.try_get(6)?,
                ret: row.try_get(7)?,
                arrival: row.try_get(8)?,
                raw: row.try_get(9)?,
                recipient: row.try_get(10)?,
                orcpt: row.try_get(11)?,
                number: row.try_get(12)?,
                text: row.try_get(13)?,
                parts: row.try_get(14)?,
                modem: row.try_get(15)?,
                status: row.try_get(16)?,
                reason: row.try_get(17)?,
                updated: row.try_get(18)?,
            })
        })
        .collect()
}

/// The advisory lock of the sweep that queues the DSNs time brings.
const TIMED_DSN_LOCK: i64 = 0x736d_7367_775f_6473;

/// The DSNs an instance delivers: those it queued (the instance whose modem sent or
/// failed the request, or that made the decision), those from before the site's
/// columns, and those of an instance not alive (dead, or a name no longer run), so that
/// each goes out once and none waits for ever.
fn mine() -> String {
    format!(
        "(d.instance IS NULL OR d.instance = current_setting('smsgw.instance', true)
          OR d.instance NOT IN (SELECT name FROM instances WHERE seen >= {SERVER_NOW} - {DEAD_AFTER_MS}))"
    )
}

/// When the next pending DSN falls due, if any.
pub(in crate::store) async fn next_due(tx: &Tx) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .query_one(
            &format!("SELECT min(next_attempt) FROM dsns d WHERE state = $1 AND {}", mine()),
            &[&DsnState::Pending],
        )
        .await?
        .try_get(0)?)
}

/// Records one delivery attempt's outcome, with an event when it is final.
pub(in crate::store) async fn record_dsn_attempt(
    tx: &Tx,
    dsn: &PendingDsn,
    outcome: &DsnOutcome,
    now: i64,
) -> Result<(), StoreError> {
    let (state, next, error, detail) = outcome.record(dsn, now);
    // Only while it is still this instance's: one taken for dead meanwhile may have lost
    // it to a survivor, whose outcome stands.
    let recorded = tx
        .execute(
            "UPDATE dsns SET state = $1, next_attempt = $2, last_error = $3, attempts = attempts + 1
             WHERE id = $4 AND state = $5 AND instance IS NOT DISTINCT FROM current_setting('smsgw.instance', true)",
            &[&state, &next, &error, &dsn.id, &DsnState::Pending],
        )
        .await?;
    if recorded == 1
        && let Some(detail) = detail
    {
        dsn_event(tx, dsn.request, now, &detail).await?;
    }
    Ok(())
}
