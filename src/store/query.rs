//! Reads for `smsgw queue list` and `smsgw queue show`.

use super::{PartStatus, State, Store, StoreError, read_only};
use serde::Serialize;

/// One line of `queue list` (and the head of `queue show`); `--json` prints it as is.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    /// The request id.
    pub id: i64,
    /// Where it stands.
    pub state: State,
    /// The E.164 number.
    pub number: String,
    /// The recipient address as the client wrote it.
    pub recipient: String,
    /// The envelope sender.
    pub sender: String,
    /// How many SMS parts.
    pub parts: i64,
    /// The alphabet the text goes in.
    pub encoding: String,
    /// When it was accepted, RFC 3339 UTC.
    pub created: String,
    /// When it last changed, RFC 3339 UTC.
    pub updated: String,
    /// Attempts so far (modem or forwarding).
    pub attempts: i64,
    /// Enhanced status code of a failure.
    pub status: Option<String>,
    /// Why it failed, or why it waits.
    pub reason: Option<String>,
    /// The instance that accepted it (NULL: before the site's columns existed).
    pub instance: Option<String>,
    /// The modem of its last attempt.
    pub modem: Option<String>,
}

/// One line of a request's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryLine {
    /// When, RFC 3339 UTC.
    pub time: String,
    /// The state it entered, or `dsn` for a line about its DSN.
    pub state: String,
    /// What happened, in words.
    pub detail: String,
}

/// `queue show`: a request, its envelope, its parts and its whole history.
#[derive(Debug, Clone, Serialize)]
pub struct RequestDetail {
    /// The fields `queue list` shows.
    #[serde(flatten)]
    pub request: RequestRow,
    /// The SMS text.
    pub text: String,
    /// The SMTP client's address.
    pub client: String,
    /// The name the client gave in `EHLO`.
    pub helo: String,
    /// The authenticated user, if any.
    pub auth_user: Option<String>,
    /// RFC 3461 `ENVID`.
    pub envid: Option<String>,
    /// RFC 3461 `RET`.
    pub ret: Option<String>,
    /// RFC 3461 `NOTIFY`.
    pub notify: Option<String>,
    /// RFC 3461 `ORCPT`.
    pub orcpt: Option<String>,
    /// The SMS parts handed to modems so far.
    pub sent_parts: Vec<Part>,
    /// The history, oldest first.
    pub events: Vec<HistoryLine>,
}

/// One SMS part handed to a modem.
#[derive(Debug, Clone, Serialize)]
pub struct Part {
    /// Its number, from 1.
    pub part: i64,
    /// The modem it went to.
    pub modem: String,
    /// TP-MR from +CMGS, once the modem answered.
    pub mr: Option<i64>,
    /// Where it stands.
    pub status: PartStatus,
}

/// Which requests `queue list` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueFilter {
    /// Only those in this state.
    pub state: Option<State>,
}

impl Store {
    /// `smsgw queue list`: requests, oldest first.
    pub async fn list(&self, filter: QueueFilter) -> Result<Vec<RequestRow>, StoreError> {
        read_only!(self, query::list(filter))
    }

    /// `smsgw queue show`: one request, its parts and its history.
    pub async fn show(&self, id: i64) -> Result<RequestDetail, StoreError> {
        read_only!(self, query::show(id))
    }
}
