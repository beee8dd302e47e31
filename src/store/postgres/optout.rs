//! The opt-out list, on PostgreSQL (as SQLite's `optout`); a site's instances share it.

use super::Tx;
use super::lifecycle::fail_from;
use crate::store::State;
use crate::store::optout::opted_out_reason;
use crate::store::{OptOut, StoreError};

/// The numbers opted out, and the latest `seq`.
pub(in crate::store) async fn opted_out(tx: &Tx) -> Result<(Vec<String>, i64), StoreError> {
    let numbers = tx
        .query("SELECT number FROM optouts WHERE opted_out", &[])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok((numbers, latest_seq(tx).await?))
}

/// The latest `seq` of a change made in the site (0: none).
pub(in crate::store) async fn latest_seq(tx: &Tx) -> Result<i64, StoreError> {
    Ok(tx
        .query_one("SELECT coalesce(max(seq), 0)::bigint FROM optouts", &[])
        .await?
        .try_get(0)?)
}

fn read(row: &tokio_postgres::Row) -> Result<OptOut, StoreError> {
    Ok(OptOut {
        number: row.try_get(0)?,
        opted_out: row.try_get(1)?,
        changed: row.try_get(2)?,
        source: row.try_get(3)?,
        origin: row.try_get(4)?,
        seq: row.try_get(5)?,
    })
}

/// The list by number: the numbers opted out, or (`all`) every number it has seen.
pub(in crate::store) async fn list(tx: &Tx, all: bool) -> Result<Vec<OptOut>, StoreError> {
    tx.query(
        "SELECT number, opted_out, changed, source, origin, seq FROM optouts WHERE opted_out OR $1 ORDER BY number",
        &[&all],
    )
    .await?
    .iter()
    .map(read)
    .collect()
}

/// The site's own changes after `after`, in order.
pub(in crate::store) async fn feed(tx: &Tx, after: i64, limit: usize) -> Result<Vec<OptOut>, StoreError> {
    tx.query(
        "SELECT number, opted_out, changed, source, origin, seq FROM optouts
         WHERE seq > $1 AND origin IS NULL ORDER BY seq LIMIT $2",
        &[&after, &(limit as i64)],
    )
    .await?
    .iter()
    .map(read)
    .collect()
}

/// The advisory lock that orders the site's opt-out changes.
const OPTOUT_LOCK: i64 = 0x736d_7367_775f_6f6f;

/// As SQLite's `optout::apply`; changes take turns in the site.
pub(in crate::store) async fn apply(tx: &Tx, change: &OptOut, now: i64) -> Result<bool, StoreError> {
    let known: Option<(bool, i64)> = tx
        .query_opt(
            "SELECT opted_out, changed FROM optouts WHERE number = $1 FOR UPDATE",
            &[&change.number],
        )
        .await?
        .map(|row| Ok::<_, StoreError>((row.try_get(0)?, row.try_get(1)?)))
        .transpose()?;
    let moved = known.is_none_or(|(opted_out, _)| opted_out != change.opted_out);
    match (&change.origin, known) {
        (Some(_), Some((_, changed))) if changed >= change.changed => return Ok(false),
        (None, Some(_)) if !moved => return Ok(false),
        _ => {}
    }
    // One change at a time in the site, so that `seq` follows commit order: a peer that
    // read up to 42 never misses a 41 committed after it.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OPTOUT_LOCK]).await?;
    tx.execute(
        "INSERT INTO optouts (number, opted_out, changed, source, origin, seq)
         VALUES ($1, $2, $3, $4, $5, nextval('optouts_seq'))
         ON CONFLICT (number) DO UPDATE SET opted_out = $2, changed = $3, source = $4, origin = $5,
                                            seq = excluded.seq",
        &[
            &change.number,
            &change.opted_out,
            &change.changed,
            &change.source,
            &change.origin,
        ],
    )
    .await?;
    if change.opted_out && moved {
        fail_waiting_for(tx, change.number.as_str(), now).await?;
    }
    Ok(moved)
}

/// [`apply`] for each change; how many moved a number.
pub(in crate::store) async fn apply_all(tx: &Tx, changes: &[OptOut], now: i64) -> Result<usize, StoreError> {
    let mut moved = 0;
    for change in changes {
        moved += usize::from(apply(tx, change, now).await?);
    }
    Ok(moved)
}

/// Fails the requests still waiting for `number`, which just opted out (with DSNs).
async fn fail_waiting_for(tx: &Tx, number: &str, now: i64) -> Result<(), StoreError> {
    let waiting = [State::Received, State::Routed, State::Queued];
    let ids: Vec<i64> = tx
        .query(
            "SELECT id FROM requests WHERE number = $1 AND state IN ($2, $3, $4) FOR UPDATE",
            &[&number, &waiting[0], &waiting[1], &waiting[2]],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let reason = opted_out_reason(number);
    for id in ids {
        fail_from(tx, id, &waiting, State::Failed, "5.7.1", &reason, now).await?;
    }
    Ok(())
}

/// As SQLite's `optout::fail_received`.
pub(in crate::store) async fn fail_received(tx: &Tx, now: i64) -> Result<(), StoreError> {
    let late: Vec<(i64, String)> = tx
        .query(
            // As on SQLite: the mail read only for a number that opted out.
            "SELECT r.id, r.number FROM requests r
             WHERE r.state = $1
               AND EXISTS (SELECT 1 FROM optouts o WHERE o.number = r.number AND o.opted_out)
               AND (SELECT m.sender FROM messages m WHERE m.id = r.message_id) <> ''
             FOR UPDATE OF r SKIP LOCKED",
            &[&State::Received],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, StoreError>>()?;
    for (id, number) in &late {
        fail_from(
            tx,
            *id,
            &[State::Received],
            State::Failed,
            "5.7.1",
            &opted_out_reason(number),
            now,
        )
        .await?;
    }
    Ok(())
}
