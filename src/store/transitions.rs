//! State transitions: one function each, one statement per row changed, and an event
//! appended for every change so that `queue show` tells the whole story.

use rusqlite::{Connection, params};

use super::{State, StoreError};

/// A mail accepted at end of DATA, with its recipients already parsed.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<&'static str>,
    pub client: String,
    pub helo: String,
    pub auth_user: Option<String>,
    pub raw: Vec<u8>,
    pub text: String,
    pub encoding: String,
    pub parts: usize,
    pub requests: Vec<NewRequest>,
}

/// One recipient of a mail: becomes one request.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub recipient: String,
    pub number: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// `∅ → received`: the mail and one request per recipient.
pub(super) fn receive(conn: &Connection, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
    conn.prepare_cached(
        "INSERT INTO messages (received, sender, envid, ret, client, helo, auth_user, size, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
        mail.raw
    ])?;
    let message_id = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO requests (message_id, recipient, number, notify, orcpt, text, encoding,
                               parts, state, created, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
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
            State::Received.as_str(),
            now
        ])?;
        let id = conn.last_insert_rowid();
        let detail = format!(
            "from <{}> via {} ({}), {} part(s) {}",
            mail.sender, mail.client, mail.helo, mail.parts, mail.encoding
        );
        event(conn, id, now, State::Received, &detail)?;
        ids.push(id);
    }
    Ok(ids)
}

fn event(
    conn: &Connection,
    request: i64,
    now: i64,
    state: State,
    detail: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO events (request_id, time, state, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![request, now, state.as_str(), detail])?;
    Ok(())
}
