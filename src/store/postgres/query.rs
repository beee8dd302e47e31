//! Reads for `smsgw queue list` and `smsgw queue show`, on PostgreSQL.

use tokio_postgres::Row;

use super::Tx;
use crate::store::query::Part;
use crate::store::{HistoryLine, QueueCounts, QueueFilter, RequestDetail, RequestRow, State, StoreError};

/// Times are shown as RFC 3339 UTC with milliseconds, as SQLite's `strftime` shows them.
macro_rules! rfc3339 {
    ($column:literal) => {
        concat!(
            "to_char(timestamp 'epoch' + ",
            $column,
            " * interval '1 millisecond', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}

/// The columns [`request_row`] reads, in its order.
const COLUMNS: &str = concat!(
    "r.id, r.state, r.number, r.recipient, m.sender, r.parts, r.encoding, ",
    rfc3339!("r.created"),
    ", ",
    rfc3339!("r.updated"),
    ", r.attempts, r.status, r.reason, r.instance, r.modem"
);

fn request_row(row: &Row) -> Result<RequestRow, StoreError> {
    Ok(RequestRow {
        id: row.try_get(0)?,
        state: row.try_get(1)?,
        number: row.try_get(2)?,
        recipient: row.try_get(3)?,
        sender: row.try_get(4)?,
        parts: row.try_get(5)?,
        encoding: row.try_get(6)?,
        created: row.try_get(7)?,
        updated: row.try_get(8)?,
        attempts: row.try_get(9)?,
        status: row.try_get(10)?,
        reason: row.try_get(11)?,
        instance: row.try_get(12)?,
        modem: row.try_get(13)?,
    })
}

/// Requests, oldest first.
pub(in crate::store) async fn list(tx: &Tx, filter: QueueFilter) -> Result<Vec<RequestRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM requests r JOIN messages m ON m.id = r.message_id
         WHERE $1::text IS NULL OR r.state = $1::text ORDER BY r.id"
    );
    tx.query(&sql, &[&filter.state])
        .await?
        .iter()
        .map(request_row)
        .collect()
}

/// One request with its history.
pub(in crate::store) async fn show(tx: &Tx, id: i64) -> Result<RequestDetail, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS}, r.text, m.client, m.helo, m.auth_user, m.envid, m.ret, r.notify, r.orcpt
         FROM requests r JOIN messages m ON m.id = r.message_id WHERE r.id = $1"
    );
    let row = tx.query_opt(&sql, &[&id]).await?.ok_or(StoreError::NotFound(id))?;
    let events = tx
        .query(
            concat!(
                "SELECT ",
                rfc3339!("time"),
                ", state, detail FROM events WHERE request_id = $1 ORDER BY id"
            ),
            &[&id],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(HistoryLine {
                time: row.try_get(0)?,
                state: row.try_get(1)?,
                detail: row.try_get(2)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    let sent_parts = tx
        .query(
            "SELECT part, modem, mr, status FROM parts WHERE request_id = $1 ORDER BY part",
            &[&id],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(Part {
                part: row.try_get(0)?,
                modem: row.try_get(1)?,
                mr: row.try_get(2)?,
                status: row.try_get(3)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(RequestDetail {
        request: request_row(&row)?,
        text: row.try_get(14)?,
        client: row.try_get(15)?,
        helo: row.try_get(16)?,
        auth_user: row.try_get(17)?,
        envid: row.try_get(18)?,
        ret: row.try_get(19)?,
        notify: row.try_get(20)?,
        orcpt: row.try_get(21)?,
        sent_parts,
        events,
    })
}

/// The queue's figures for `/metrics`: requests per state, and the oldest waiting.
pub(in crate::store) async fn queue_summary(tx: &Tx) -> Result<QueueCounts, StoreError> {
    let by_state = tx
        .query("SELECT state, count(*) FROM requests GROUP BY state", &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get::<_, State>(0)?, row.try_get::<_, i64>(1)? as u64)))
        .collect::<Result<_, StoreError>>()?;
    let waiting: Vec<State> = crate::store::WAITING.to_vec();
    let oldest: Option<i64> = tx
        .query_one(
            "SELECT min(coalesce(valid_from, created)) FROM requests WHERE state = ANY($1)",
            &[&waiting],
        )
        .await?
        .try_get(0)?;
    Ok((by_state, oldest))
}
