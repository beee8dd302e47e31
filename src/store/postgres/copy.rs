//! `smsgw store copy`, the PostgreSQL side: each batch of rows from SQLite written with
//! one statement (`INSERT … SELECT FROM unnest(…)`, one array parameter a column), ids
//! kept, inside the copy's one transaction.

use super::Tx;
use crate::store::StoreError;
use crate::store::copy::rows::{
    DsnRow, EventRow, InboxPartRow, InboxRow, MessageRow, OptOutRow, PartRow, RequestRow, TABLES, TableCounts,
};

/// Locks the tables the copy writes against the site's instances (a gateway started on
/// the database meanwhile waits for the copy), then refuses a database where any has
/// a row: [`StoreError::NotEmpty`].
pub(in crate::store) async fn lock_empty(tx: &Tx) -> Result<(), StoreError> {
    tx.client()
        .batch_execute(&format!("LOCK TABLE {}, meta IN EXCLUSIVE MODE", TABLES.join(", ")))
        .await?;
    for table in TABLES {
        let found = tx.query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[]).await?;
        if found.is_some() {
            return Err(StoreError::NotEmpty(table));
        }
    }
    Ok(())
}

/// Writes `rows` of `messages`.
pub(in crate::store) async fn messages(tx: &Tx, rows: &[MessageRow]) -> Result<(), StoreError> {
    let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let received: Vec<i64> = rows.iter().map(|r| r.received).collect();
    let sender: Vec<&str> = rows.iter().map(|r| r.sender.as_str()).collect();
    let envid: Vec<Option<&str>> = rows.iter().map(|r| r.envid.as_deref()).collect();
    let ret: Vec<Option<&str>> = rows.iter().map(|r| r.ret.as_deref()).collect();
    let client: Vec<&str> = rows.iter().map(|r| r.client.as_str()).collect();
    let helo: Vec<&str> = rows.iter().map(|r| r.helo.as_str()).collect();
    let auth_user: Vec<Option<&str>> = rows.iter().map(|r| r.auth_user.as_deref()).collect();
    let size: Vec<i64> = rows.iter().map(|r| r.size).collect();
    let raw: Vec<&[u8]> = rows.iter().map(|r| r.raw.as_slice()).collect();
    let origin: Vec<Option<&str>> = rows.iter().map(|r| r.origin.as_deref()).collect();
    let trace: Vec<&str> = rows.iter().map(|r| r.trace.as_str()).collect();
    tx.execute(
        "INSERT INTO messages (id, received, sender, envid, ret, client, helo, auth_user, size, raw, origin, trace)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::bigint[], $10::bytea[], $11::text[], $12::text[])",
        &[
            &id, &received, &sender, &envid, &ret, &client, &helo, &auth_user, &size, &raw, &origin, &trace,
        ],
    )
    .await?;
    Ok(())
}

/// Writes `rows` of `requests`: those SQLite does not say the instance of are
/// `instance`'s; a forward in flight is owned by `instance` (see
/// [`copy_to_postgres`](crate::store::copy::copy_to_postgres)), any other by none.
pub(in crate::store) async fn requests(tx: &Tx, rows: &[RequestRow], instance: &str) -> Result<(), StoreError> {
    let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let message_id: Vec<i64> = rows.iter().map(|r| r.message_id).collect();
    let recipient: Vec<&str> = rows.iter().map(|r| r.recipient.as_str()).collect();
    let number: Vec<&str> = rows.iter().map(|r| r.number.as_str()).collect();
    let notify: Vec<Option<&str>> = rows.iter().map(|r| r.notify.as_deref()).collect();
    let orcpt: Vec<Option<&str>> = rows.iter().map(|r| r.orcpt.as_deref()).collect();
    let text: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let encoding: Vec<&str> = rows.iter().map(|r| r.encoding.as_str()).collect();
    let parts: Vec<i64> = rows.iter().map(|r| r.parts).collect();
    let state: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    let status: Vec<Option<&str>> = rows.iter().map(|r| r.status.as_deref()).collect();
    let reason: Vec<Option<&str>> = rows.iter().map(|r| r.reason.as_deref()).collect();
    let attempts: Vec<i64> = rows.iter().map(|r| r.attempts).collect();
    let next_attempt: Vec<Option<i64>> = rows.iter().map(|r| r.next_attempt).collect();
    let lease_until: Vec<Option<i64>> = rows.iter().map(|r| r.lease_until).collect();
    let modem: Vec<Option<&str>> = rows.iter().map(|r| r.modem.as_deref()).collect();
    let created: Vec<i64> = rows.iter().map(|r| r.created).collect();
    let updated: Vec<i64> = rows.iter().map(|r| r.updated).collect();
    let route: Vec<Option<&str>> = rows.iter().map(|r| r.route.as_deref()).collect();
    let tried: Vec<&str> = rows.iter().map(|r| r.tried.as_str()).collect();
    let valid_from: Vec<Option<i64>> = rows.iter().map(|r| r.valid_from).collect();
    let unanswered: Vec<bool> = rows.iter().map(|r| r.unanswered).collect();
    let in_flight: Vec<bool> = rows.iter().map(|r| r.in_flight).collect();
    let accepted_by: Vec<&str> = rows.iter().map(|r| r.instance.as_deref().unwrap_or(instance)).collect();
    let owner: Vec<Option<&str>> = rows.iter().map(|r| r.in_flight.then_some(instance)).collect();
    tx.execute(
        "INSERT INTO requests (id, message_id, recipient, number, notify, orcpt, text, encoding, parts, state,
                               status, reason, attempts, next_attempt, lease_until, modem, created, updated,
                               route, tried, valid_from, unanswered, in_flight, instance, owner)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::text[],
                              $13::bigint[], $14::bigint[], $15::bigint[], $16::text[], $17::bigint[],
                              $18::bigint[], $19::text[], $20::text[], $21::bigint[], $22::boolean[],
                              $23::boolean[], $24::text[], $25::text[])",
        &[
            &id,
            &message_id,
            &recipient,
            &number,
            &notify,
            &orcpt,
            &text,
            &encoding,
            &parts,
            &state,
            &status,
            &reason,
            &attempts,
            &next_attempt,
            &lease_until,
            &modem,
            &created,
            &updated,
            &route,
            &tried,
            &valid_from,
            &unanswered,
            &in_flight,
            &accepted_by,
            &owner,
        ],
    )
    .await?;
    Ok(())
}

/// Writes `rows` of `events`.
pub(in crate::store) async fn events(tx: &Tx, rows: &[EventRow]) -> Result<(), StoreError> {
    let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let request_id: Vec<i64> = rows.iter().map(|r| r.request_id).collect();
    let time: Vec<i64> = rows.iter().map(|r| r.time).collect();
    let state: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    let detail: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
    tx.execute(
        "INSERT INTO events (id, request_id, time, state, detail)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[])",
        &[&id, &request_id, &time, &state, &detail],
    )
    .await?;
    Ok(())
}

/// Writes `rows` of `parts`.
pub(in crate::store) async fn parts(tx: &Tx, rows: &[PartRow]) -> Result<(), StoreError> {
    let request_id: Vec<i64> = rows.iter().map(|r| r.request_id).collect();
    let part: Vec<i64> = rows.iter().map(|r| r.part).collect();
    let modem: Vec<&str> = rows.iter().map(|r| r.modem.as_str()).collect();
    let mr: Vec<Option<i64>> = rows.iter().map(|r| r.mr).collect();
    let status: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
    let submitted: Vec<i64> = rows.iter().map(|r| r.submitted).collect();
    let reported: Vec<Option<i64>> = rows.iter().map(|r| r.reported).collect();
    tx.execute(
        "INSERT INTO parts (request_id, part, modem, mr, status, submitted, reported)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],
                              $6::bigint[], $7::bigint[])",
        &[&request_id, &part, &modem, &mr, &status, &submitted, &reported],
    )
    .await?;
    Ok(())
}

/// Writes `rows` of `dsns`, each to be delivered by `instance`.
pub(in crate::store) async fn dsns(tx: &Tx, rows: &[DsnRow], instance: &str) -> Result<(), StoreError> {
    let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let request_id: Vec<i64> = rows.iter().map(|r| r.request_id).collect();
    let action: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    let created: Vec<i64> = rows.iter().map(|r| r.created).collect();
    let state: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    let attempts: Vec<i64> = rows.iter().map(|r| r.attempts).collect();
    let next_attempt: Vec<i64> = rows.iter().map(|r| r.next_attempt).collect();
    let last_error: Vec<Option<&str>> = rows.iter().map(|r| r.last_error.as_deref()).collect();
    tx.execute(
        "INSERT INTO dsns (id, request_id, action, created, state, attempts, next_attempt, last_error, instance)
         SELECT *, $9::text FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[],
                                  $6::bigint[], $7::bigint[], $8::text[])",
        &[
            &id,
            &request_id,
            &action,
            &created,
            &state,
            &attempts,
            &next_attempt,
            &last_error,
            &instance,
        ],
    )
    .await?;
    Ok(())
}

/// Writes `rows` of `inbox` (each mailed by this instance, the column's default).
pub(in crate::store) async fn inbox(tx: &Tx, rows: &[InboxRow]) -> Result<(), StoreError> {
    let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let received: Vec<i64> = rows.iter().map(|r| r.received).collect();
    let modem: Vec<&str> = rows.iter().map(|r| r.modem.as_str()).collect();
    let originator: Vec<&str> = rows.iter().map(|r| r.originator.as_str()).collect();
    let text: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let sent: Vec<Option<&str>> = rows.iter().map(|r| r.sent.as_deref()).collect();
    let parts: Vec<i64> = rows.iter().map(|r| r.parts).collect();
    let missing: Vec<Option<&str>> = rows.iter().map(|r| r.missing.as_deref()).collect();
    let kind: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let reply_to: Vec<Option<i64>> = rows.iter().map(|r| r.reply_to).collect();
    let recipient: Vec<Option<&str>> = rows.iter().map(|r| r.recipient.as_deref()).collect();
    let others: Vec<i64> = rows.iter().map(|r| r.others).collect();
    let state: Vec<&str> = rows.iter().map(|r| r.state.as_str()).collect();
    let outcome: Vec<Option<&str>> = rows.iter().map(|r| r.outcome.as_deref()).collect();
    let attempts: Vec<i64> = rows.iter().map(|r| r.attempts).collect();
    let next_attempt: Vec<Option<i64>> = rows.iter().map(|r| r.next_attempt).collect();
    tx.execute(
        "INSERT INTO inbox (id, received, modem, originator, text, sent, parts, missing, kind, reply_to, recipient,
                            others, state, outcome, attempts, next_attempt)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                              $7::bigint[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::bigint[],
                              $13::text[], $14::text[], $15::bigint[], $16::bigint[])",
        &[
            &id,
            &received,
            &modem,
            &originator,
            &text,
            &sent,
            &parts,
            &missing,
            &kind,
            &reply_to,
            &recipient,
            &others,
            &state,
            &outcome,
            &attempts,
            &next_attempt,
        ],
    )
    .await?;
    Ok(())
}

/// Writes `rows` of `inbox_parts`.
pub(in crate::store) async fn inbox_parts(tx: &Tx, rows: &[InboxPartRow]) -> Result<(), StoreError> {
    let id: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let modem: Vec<&str> = rows.iter().map(|r| r.modem.as_str()).collect();
    let originator: Vec<&str> = rows.iter().map(|r| r.originator.as_str()).collect();
    let copy_key: Vec<&str> = rows.iter().map(|r| r.copy_key.as_str()).collect();
    let reference: Vec<Option<i64>> = rows.iter().map(|r| r.reference).collect();
    let parts: Vec<i64> = rows.iter().map(|r| r.parts).collect();
    let part: Vec<i64> = rows.iter().map(|r| r.part).collect();
    let text: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    let sent: Vec<&str> = rows.iter().map(|r| r.sent.as_str()).collect();
    let received: Vec<i64> = rows.iter().map(|r| r.received).collect();
    let inbox_id: Vec<Option<i64>> = rows.iter().map(|r| r.inbox_id).collect();
    tx.execute(
        "INSERT INTO inbox_parts (id, modem, originator, copy_key, reference, parts, part, text, sent, received,
                                  inbox_id)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                              $7::bigint[], $8::text[], $9::text[], $10::bigint[], $11::bigint[])",
        &[
            &id,
            &modem,
            &originator,
            &copy_key,
            &reference,
            &parts,
            &part,
            &text,
            &sent,
            &received,
            &inbox_id,
        ],
    )
    .await?;
    Ok(())
}

/// Writes `rows` of `optouts`.
pub(in crate::store) async fn optouts(tx: &Tx, rows: &[OptOutRow]) -> Result<(), StoreError> {
    let number: Vec<&str> = rows.iter().map(|r| r.number.as_str()).collect();
    let opted_out: Vec<bool> = rows.iter().map(|r| r.opted_out).collect();
    let changed: Vec<i64> = rows.iter().map(|r| r.changed).collect();
    let source: Vec<&str> = rows.iter().map(|r| r.source.as_str()).collect();
    let origin: Vec<Option<&str>> = rows.iter().map(|r| r.origin.as_deref()).collect();
    let seq: Vec<Option<i64>> = rows.iter().map(|r| r.seq).collect();
    tx.execute(
        "INSERT INTO optouts (number, opted_out, changed, source, origin, seq)
         SELECT * FROM unnest($1::text[], $2::boolean[], $3::bigint[], $4::text[], $5::text[], $6::bigint[])",
        &[&number, &opted_out, &changed, &source, &origin, &seq],
    )
    .await?;
    Ok(())
}

/// The store's id becomes SQLite's (the request ids this instance gave its peers stay
/// unique), and each table's ids continue after the largest copied.
pub(in crate::store) async fn finish(tx: &Tx, store_id: &str) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('store_id', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&store_id],
    )
    .await?;
    // The feed's sequence goes on after the largest change copied (its peers saw it).
    tx.query_one("SELECT setval('optouts_seq', max(seq)) FROM optouts", &[])
        .await?;
    for table in TABLES
        .into_iter()
        .filter(|table| !matches!(*table, "parts" | "optouts"))
    {
        // No rows: max is NULL, and setval (strict) leaves the sequence at its start.
        tx.query_one(
            &format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"),
            &[],
        )
        .await?;
    }
    Ok(())
}

/// Rows per table, as this transaction sees them.
pub(in crate::store) async fn counts(tx: &Tx) -> Result<TableCounts, StoreError> {
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM requests),
                    (SELECT count(*) FROM events), (SELECT count(*) FROM parts),
                    (SELECT count(*) FROM dsns), (SELECT count(*) FROM inbox),
                    (SELECT count(*) FROM inbox_parts), (SELECT count(*) FROM optouts)",
            &[],
        )
        .await?;
    let count = |column: usize| -> Result<u64, StoreError> { Ok(row.try_get::<_, i64>(column)?.unsigned_abs()) };
    Ok(TableCounts {
        messages: count(0)?,
        requests: count(1)?,
        events: count(2)?,
        parts: count(3)?,
        dsns: count(4)?,
        inbox: count(5)?,
        inbox_parts: count(6)?,
        optouts: count(7)?,
    })
}
