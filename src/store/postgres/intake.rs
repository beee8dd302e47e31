//! Intake on PostgreSQL: an accepted mail becomes one `received` request per recipient.

use deadpool_postgres::Object;

use super::{Pg, Tx};
use crate::store::{NewMail, State, StoreError};

/// `∅ → received`: the mail and one request per recipient, each recording the instance
/// that accepted it (the column's default). No size cap: a PostgreSQL server's disk is
/// its operator's to watch (`store.max_size_mb` is SQLite's).
pub(in crate::store) async fn receive(tx: &Tx, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
    if let Some(origin) = &mail.origin {
        // A peer retrying a forward we already took: the same request, not a new one.
        // One receive of an origin at a time (a retry may come while the first is
        // still being committed): the second waits here, then finds the first's.
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))", &[origin])
            .await?;
        let known: Vec<i64> = tx
            .query(
                "SELECT r.id FROM requests r JOIN messages m ON m.id = r.message_id WHERE m.origin = $1 ORDER BY r.id",
                &[origin],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        if !known.is_empty() {
            return Ok(known);
        }
    }
    insert(tx.client(), mail, now).await
}

/// `∅ → received` on a connection of the pool, outside any transaction: one statement
/// is atomic, and its commit the only wait (a mail seen before, from a peer, takes a
/// transaction: it is looked for first).
pub(in crate::store) async fn receive_alone(pg: &Pg, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
    if mail.origin.is_some() {
        let tx = pg.begin().await?;
        let ids = receive(&tx, mail, now).await?;
        tx.commit().await?;
        return Ok(ids);
    }
    // Not tried again on an error: the statement may have committed before the
    // connection broke, and the client's retry after `451` is the one that is safe.
    insert(&pg.connection().await?, mail, now).await
}

/// The mail, its requests and their `received` events, in one statement.
async fn insert(client: &Object, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
    let detail = mail.received_detail();
    let recipients: Vec<&str> = mail.requests.iter().map(|r| r.recipient.as_str()).collect();
    let numbers: Vec<&str> = mail.requests.iter().map(|r| r.number.as_str()).collect();
    let notify: Vec<Option<&str>> = mail.requests.iter().map(|r| r.notify.as_deref()).collect();
    let orcpt: Vec<Option<&str>> = mail.requests.iter().map(|r| r.orcpt.as_deref()).collect();
    let statement = client
        .prepare_cached(
            "WITH message AS (
                 INSERT INTO messages (received, sender, envid, ret, client, helo, auth_user, size, raw, origin, trace)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id
             ), request AS (
                 INSERT INTO requests (message_id, recipient, number, notify, orcpt, text, encoding, parts, state,
                                       created, updated)
                 SELECT message.id, r.recipient, r.number, r.notify, r.orcpt, $12, $13, $14, $15, $1, $1
                 FROM message, unnest($16::text[], $17::text[], $18::text[], $19::text[])
                      WITH ORDINALITY AS r (recipient, number, notify, orcpt, n)
                 ORDER BY r.n
                 RETURNING id
             ), event AS (
                 INSERT INTO events (request_id, time, state, detail) SELECT id, $1, $15, $20 FROM request
             )
             SELECT id FROM request ORDER BY id",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &now,
                &mail.sender,
                &mail.envid,
                &mail.ret,
                &mail.client,
                &mail.helo,
                &mail.auth_user,
                &(mail.raw.len() as i64),
                &mail.raw,
                &mail.origin,
                &mail.trace.join(","),
                &mail.text,
                &mail.encoding,
                &(mail.parts as i64),
                &State::Received,
                &recipients,
                &numbers,
                &notify,
                &orcpt,
                &detail,
            ],
        )
        .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}
