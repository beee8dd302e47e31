//! SQLite: intake.

use super::lifecycle::event;
use crate::store::NewMail;
use crate::store::{State, StoreError};
use rusqlite::{Connection, params};

/// Bytes counted for each request beyond its text: its row, its `received` event and
/// their index entries.
const REQUEST_MARGIN: usize = 1024;

/// Bytes counted for the mail's row beyond its raw text: envelope, client, trace.
const MAIL_MARGIN: usize = 1024;

/// `∅ → received`: the mail and one request per recipient, with no cap.
#[cfg(test)]
pub(in crate::store) fn receive(conn: &Connection, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
    receive_within(conn, mail, now, "smsgw", None)
}

/// `∅ → received`, refused with [`StoreError::Full`] before anything is written if the
/// mail would take the database past `max_pages` (the soft cap, `store.max_size_mb`).
/// The error rolls back this job's savepoint only: the stages' writes batched with it
/// commit, in the reserve the hard cap keeps beyond the soft one.
pub(in crate::store) fn receive_within(
    conn: &Connection,
    mail: &NewMail,
    now: i64,
    instance: &str,
    max_pages: Option<i64>,
) -> Result<Vec<i64>, StoreError> {
    if let Some(origin) = &mail.origin {
        // A peer retrying a forward we already took: the same request, not a new one.
        let known: Vec<i64> = conn
            .prepare_cached("SELECT r.id FROM requests r JOIN messages m ON m.id = r.message_id WHERE m.origin = ?1")?
            .query_map(params![origin], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        if !known.is_empty() {
            return Ok(known);
        }
    }
    if let Some(max_pages) = max_pages
        && pages_in_use(conn)? + estimated_pages(conn, mail)? > max_pages
    {
        return Err(StoreError::Full);
    }
    conn.prepare_cached(
        "INSERT INTO messages (received, sender, envid, ret, client, helo, auth_user, size, raw, origin, trace)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        now,
        mail.sender,
        mail.envid,
        mail.ret,
        mail.client,
        mail.helo,
        mail.auth_user,
        mail.raw.len() as i64,
        mail.raw,
        mail.origin,
        mail.trace.join(",")
    ])?;
    let message_id = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO requests (message_id, recipient, number, notify, orcpt, text, encoding,
                               parts, state, created, updated, instance)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11)",
    )?;
    let mut ids = Vec::with_capacity(mail.requests.len());
    for request in &mail.requests {
        insert.execute(params![
            message_id,
            request.recipient,
            request.number,
            request.notify,
            request.orcpt,
            mail.text,
            mail.encoding,
            mail.parts as i64,
            State::Received,
            now,
            instance
        ])?;
        let id = conn.last_insert_rowid();
        let detail = mail.received_detail();
        event(conn, id, now, State::Received, &detail)?;
        ids.push(id);
    }
    Ok(ids)
}

/// The pages the database uses, in this transaction: its size less its free pages
/// (which a new row reuses before the file grows).
fn pages_in_use(conn: &Connection) -> Result<i64, StoreError> {
    let page_count: i64 = conn.pragma_query_value(None, "page_count", |row| row.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |row| row.get(0))?;
    Ok(page_count - free)
}

/// A generous guess at the pages `mail` takes once stored: its raw text, and its SMS
/// text once per request, each with a margin for rows, events and indexes.
fn estimated_pages(conn: &Connection, mail: &NewMail) -> Result<i64, StoreError> {
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
    let bytes = mail.raw.len() + MAIL_MARGIN + mail.requests.len() * (mail.text.len() + REQUEST_MARGIN);
    let pages = (bytes as u64).div_ceil(page_size.max(1).unsigned_abs());
    Ok(i64::try_from(pages).unwrap_or(i64::MAX))
}
