//! Intake: an accepted mail becomes one `received` request per recipient, committed
//! before the SMTP session answers `250`.

use super::{Backend, Store, StoreError, now_ms, postgres, sqlite};
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

impl NewMail {
    /// The history line of each of its requests' `received` event.
    pub(in crate::store) fn received_detail(&self) -> String {
        let mut detail = format!(
            "from <{}> via {} ({}), {} part(s) {}",
            self.sender, self.client, self.helo, self.parts, self.encoding
        );
        if let Some(origin) = &self.origin {
            detail.push_str(&format!(
                ", forwarded: request {origin}, through {}",
                self.trace.join(", ")
            ));
        }
        detail
    }
}

impl Store {
    /// Stores an accepted mail as one request per recipient; returns their ids once the
    /// rows are durably committed. A forwarded mail seen before (same origin) returns the
    /// ids it got then, so a peer's retry never makes a second request.
    pub async fn receive(&self, mail: NewMail) -> Result<Vec<i64>, StoreError> {
        let now = now_ms();
        let ids = match &self.backend {
            Backend::Sqlite(db) => {
                let (max_pages, instance) = (db.max_pages, db.instance.clone());
                db.write(move |conn| sqlite::intake::receive_within(conn, &mail, now, &instance, max_pages))
                    .await?
            }
            Backend::Postgres(db) => postgres::intake::receive_alone(db, &mail, now).await?,
        };
        self.wake.received.notify_one();
        Ok(ids)
    }
}
