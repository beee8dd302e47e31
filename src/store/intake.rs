//! Intake: an accepted mail becomes one `received` request per recipient, committed
//! before the SMTP session answers `250`.

use rusqlite::{Connection, params};

use super::lifecycle::event;
use super::{State, Store, StoreError, now_ms};
use crate::e164::E164;

/// A mail accepted at end of DATA, with its recipients already parsed.
#[derive(Debug, Clone)]
pub struct NewMail {
    /// The envelope sender (`MAIL FROM`), empty for the null sender.
    pub sender: String,
    /// RFC 3461 `ENVID`, echoed in DSNs.
    pub envid: Option<String>,
    /// RFC 3461 `RET` (`FULL` or `HDRS`): how much of the mail a DSN returns.
    pub ret: Option<&'static str>,
    /// The client's address, for the events and `Received:`-style tracing.
    pub client: String,
    /// The name the client gave in `EHLO`/`HELO`.
    pub helo: String,
    /// The authenticated user, if the session authenticated.
    pub auth_user: Option<String>,
    /// The mail as received, kept for DSNs and for forwarding.
    pub raw: Vec<u8>,
    /// The SMS text composed from the mail.
    pub text: String,
    /// `GSM-7` or `UCS-2` (with the national shift tables, if any).
    pub encoding: String,
    /// How many SMS parts the text takes.
    pub parts: usize,
    /// One per recipient.
    pub requests: Vec<NewRequest>,
    /// A forwarded mail: where it was first accepted ("<instance>/<request id>").
    pub origin: Option<String>,
    /// A forwarded mail: the instances it passed through before this one.
    pub trace: Vec<String>,
}

/// One recipient of a mail: becomes one request.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// The recipient address as the client wrote it.
    pub recipient: String,
    /// The number it names.
    pub number: E164,
    /// RFC 3461 `NOTIFY`, as given.
    pub notify: Option<String>,
    /// RFC 3461 `ORCPT`, as given (xtext decoded).
    pub orcpt: Option<String>,
}

impl Store {
    /// Stores an accepted mail as one request per recipient; returns their ids once the
    /// rows are durably committed. A forwarded mail seen before (same origin) returns the
    /// ids it got then, so a peer's retry never makes a second request.
    pub async fn receive(&self, mail: NewMail) -> Result<Vec<i64>, StoreError> {
        let ids = self.writer.write(move |conn| receive(conn, &mail, now_ms())).await?;
        self.wake.received.notify_one();
        Ok(ids)
    }
}

/// `∅ → received`: the mail and one request per recipient.
pub(super) fn receive(conn: &Connection, mail: &NewMail, now: i64) -> Result<Vec<i64>, StoreError> {
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
            State::Received,
            now
        ])?;
        let id = conn.last_insert_rowid();
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
        event(conn, id, now, State::Received, &detail)?;
        ids.push(id);
    }
    Ok(ids)
}
