//! Which queued request each free modem gets, on PostgreSQL: one indexed probe per
//! tariff lane, as on SQLite, each skipping the rows another instance is claiming.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Tx;
use crate::store::dispatch::{LANE, covering, lanes};
use crate::store::{PartStatus, QueuedRequest, State, StoreError};

/// The columns of a `QueuedRequest`, read from `requests r`; `$3`, `$4`: the part
/// statuses that mean sent.
const QUEUED_COLUMNS: &str = "r.id, r.number, r.text, r.parts, r.attempts, coalesce(r.valid_from, r.created), r.modem,
     (SELECT string_agg(part::text, ',' ORDER BY part) FROM parts WHERE request_id = r.id AND status IN ($3, $4))";

/// What makes a queued request sendable by modem `$5` now (`$1`): as SQLite's
/// `dispatch::SENDABLE`.
const SENDABLE: &str = "(r.next_attempt IS NULL OR r.next_attempt <= $1)
     AND coalesce(r.valid_from, r.created) >= $2
     AND NOT EXISTS (SELECT 1 FROM parts p WHERE p.request_id = r.id AND p.status IN ($3, $4) AND p.modem != $5)";

// The state is spelt into these statements (from the enum, never from input): the
// planner uses a partial index only for a statement whose own words imply its condition.
// A row another instance has locked (claiming it) is skipped, not waited for.

/// The oldest sendable queued request, whatever its number.
fn any_number_sql() -> String {
    format!(
        "SELECT {QUEUED_COLUMNS} FROM requests r
         WHERE r.state = '{}' AND {SENDABLE} ORDER BY r.id LIMIT 1 FOR UPDATE OF r SKIP LOCKED",
        State::Queued
    )
}

/// The oldest sendable queued request in lane `$6`, its number from `$7` up to `$8`.
fn lane_sql() -> String {
    format!(
        "SELECT {QUEUED_COLUMNS} FROM requests r
         WHERE r.state = '{}' AND substr(r.number, 1, {LANE}) = $6 AND r.number >= $7 AND r.number < $8
           AND {SENDABLE}
         ORDER BY r.id LIMIT 1 FOR UPDATE OF r SKIP LOCKED",
        State::Queued
    )
}

/// The oldest sendable request with a part sent by modem `$5`, whatever its number (as
/// SQLite's `pinned_sql`: its other parts must leave from the same SIM).
fn pinned_sql() -> String {
    format!(
        "SELECT {QUEUED_COLUMNS} FROM requests r
         WHERE r.state = '{}' AND {SENDABLE}
           AND r.id IN (SELECT request_id FROM parts WHERE modem = $5 AND status IN ($3, $4))
         ORDER BY r.id LIMIT 1 FOR UPDATE OF r SKIP LOCKED",
        State::Queued
    )
}

/// [`next_for_modem`] for each modem, in one transaction.
pub(in crate::store) async fn next_for_modems(
    tx: &Tx,
    modems: &[(String, Vec<String>)],
    now: i64,
    validity_ms: i64,
) -> Result<Vec<Option<QueuedRequest>>, StoreError> {
    let mut found = Vec::with_capacity(modems.len());
    for (name, prefixes) in modems {
        found.push(next_for_modem(tx, name, prefixes, now, validity_ms).await?);
    }
    Ok(found)
}

/// The oldest queued request `modem` may send now, as SQLite's `dispatch::next_for_modem`.
pub(in crate::store) async fn next_for_modem(
    tx: &Tx,
    modem: &str,
    prefixes: &[String],
    now: i64,
    validity_ms: i64,
) -> Result<Option<QueuedRequest>, StoreError> {
    let since = now - validity_ms;
    let common: [&(dyn ToSql + Sync); 5] = [&now, &since, &PartStatus::Sent, &PartStatus::Delivered, &modem];
    let Some(prefixes) = covering(prefixes) else {
        return tx
            .query_opt(&any_number_sql(), &common)
            .await?
            .map(|row| queued_request(&row))
            .transpose();
    };
    let mut oldest = tx
        .query_opt(&pinned_sql(), &common)
        .await?
        .map(|row| queued_request(&row))
        .transpose()?;
    let sql = lane_sql();
    for prefix in prefixes {
        let (lanes, (from, to)) = lanes(prefix);
        for lane in &lanes {
            let arguments: Vec<&(dyn ToSql + Sync)> = common
                .iter()
                .copied()
                .chain([lane as _, &from as _, &to as _])
                .collect();
            if let Some(row) = tx.query_opt(&sql, &arguments).await? {
                let found = queued_request(&row)?;
                if oldest.as_ref().is_none_or(|o| found.id < o.id) {
                    oldest = Some(found);
                }
            }
        }
    }
    Ok(oldest)
}

fn queued_request(row: &Row) -> Result<QueuedRequest, StoreError> {
    let sent: Option<String> = row.try_get(7)?;
    Ok(QueuedRequest {
        id: row.try_get(0)?,
        number: row.try_get(1)?,
        text: row.try_get(2)?,
        parts: row.try_get::<_, i64>(3)? as usize,
        attempts: row.try_get(4)?,
        valid_from: row.try_get(5)?,
        last_modem: row.try_get(6)?,
        sent_parts: sent
            .iter()
            .flat_map(|s| s.split(','))
            .filter_map(|p| p.parse().ok())
            .collect(),
    })
}
