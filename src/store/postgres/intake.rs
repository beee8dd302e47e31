//! Intake on PostgreSQL: an accepted mail becomes one `received` request per recipient.

use super::Tx;
use super::lifecycle::event;
use crate::store::{NewMail, State, StoreError};

/// `∅ → received`: the mail and one request per recipient, each recording the instance
/// that accepted it (the column's default). No size cap: a PostgreSQL server's disk is
/// its operator's to watch (`store.max_size_mb` is SQLite's).
pub(in crate::store) async fn receive(tx: &Tx, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
    if let Some(origin) = &mail.origin {
        // A peer retrying a forward we already took: the same request, not a new one.
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
    let ret = mail.ret;
    let message_id: i64 = tx
        .query_one(
            "INSERT INTO messages (received, sender, envid, ret, client, helo, auth_user, size, raw, origin, trace)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            &[
                &now,
                &mail.sender,
                &mail.envid,
                &ret,
                &mail.client,
                &mail.helo,
                &mail.auth_user,
                &(mail.raw.len() as i64),
                &mail.raw,
                &mail.origin,
                &mail.trace.join(","),
            ],
        )
        .await?
        .try_get(0)?;
    let mut ids = Vec::with_capacity(mail.requests.len());
    for request in &mail.requests {
        let id: i64 = tx
            .query_one(
                "INSERT INTO requests (message_id, recipient, number, notify, orcpt, text, encoding,
                                       parts, state, created, updated)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING id",
                &[
                    &message_id,
                    &request.recipient,
                    &request.number,
                    &request.notify,
                    &request.orcpt,
                    &mail.text,
                    &mail.encoding,
                    &(mail.parts as i64),
                    &State::Received,
                    &now,
                ],
            )
            .await?
            .try_get(0)?;
        let mut detail = format!(
            "from <{}> via {} ({}), {} part(s) {}",
            mail.sender, mail.client, mail.helo, mail.parts, mail.encoding
        );
        if let Some(origin) = &mail.origin {
            detail.push_str(&format!(
                ", forwarded: request {origin}, through {}",
                mail.trace.join(", ")
            ));
        }
        event(tx, id, now, State::Received, &detail).await?;
        ids.push(id);
    }
    Ok(ids)
}
