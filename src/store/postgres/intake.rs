//! Intake on PostgreSQL: an accepted mail becomes one `received` request per recipient.

use super::Tx;
use super::lifecycle::event;
use crate::store::{NewMail, State, StoreError};

/// Bytes counted for each request beyond its text (as SQLite's intake counts).
const REQUEST_MARGIN: usize = 1024;
/// Bytes counted for the mail's row beyond its raw text.
const MAIL_MARGIN: usize = 1024;

/// `∅ → received`, with no cap.
#[cfg(test)]
pub(in crate::store) async fn receive(tx: &Tx, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
    receive_within(tx, mail, now, None).await
}

/// `∅ → received`, refused with [`StoreError::Full`] before anything is written if the
/// mail would take the database past `max_pages` (pages of the server's block size).
pub(in crate::store) async fn receive_within(
    tx: &Tx,
    mail: &NewMail,
    now: i64,
    max_pages: Option<i64>,
) -> Result<Vec<i64>, StoreError> {
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
    if let Some(max_pages) = max_pages {
        let (in_use, page_size) = pages_in_use(tx).await?;
        if in_use + estimated_pages(page_size, mail) > max_pages {
            return Err(StoreError::Full);
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

/// The pages the database uses (its size over the block size), and the block size.
async fn pages_in_use(tx: &Tx) -> Result<(i64, i64), StoreError> {
    let row = tx
        .query_one(
            "SELECT pg_database_size(current_database()), current_setting('block_size')::bigint",
            &[],
        )
        .await?;
    let (size, page_size): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok((size / page_size.max(1), page_size))
}

/// A generous guess at the pages `mail` takes once stored.
fn estimated_pages(page_size: i64, mail: &NewMail) -> i64 {
    let bytes = mail.raw.len() + MAIL_MARGIN + mail.requests.len() * (mail.text.len() + REQUEST_MARGIN);
    let pages = (bytes as u64).div_ceil(page_size.max(1).unsigned_abs());
    i64::try_from(pages).unwrap_or(i64::MAX)
}
