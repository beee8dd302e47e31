//! MAIL FROM, with the RFC 3461 DSN parameters (RET, ENVID) and SIZE.

use smtp_proto::{MAIL_BODY_BINARYMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MailFrom};

use super::budget::insufficient_storage;
use super::reply::{self, Reply};
use super::session::Session;
use super::state::Transaction;

/// RFC 3461 §4.4: ENVID is at most 100 characters.
const MAX_ENVID: usize = 100;

impl Session {
    /// MAIL FROM: starts a transaction, with its DSN parameters.
    pub(super) fn mail(&mut self, from: MailFrom<String>) -> Reply {
        if self.helo.is_none() {
            return reply::bad_sequence("Say EHLO or HELO first");
        }
        if self.transaction.is_some() {
            return reply::bad_sequence("A transaction is already in progress: RSET first");
        }
        if let Some(refusal) = self.may_send(&from.address) {
            return refusal;
        }
        if from.size > self.settings.max_message_size {
            return reply::too_big(self.settings.max_message_size);
        }
        if !self.budget_has_room(from.size) {
            tracing::warn!(client = %self.client, "MAIL refused: smtp.max_buffered_bytes in use by messages in progress");
            return insufficient_storage();
        }
        if from.flags & MAIL_BODY_BINARYMIME != 0 {
            return Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported");
        }
        if from.env_id.as_ref().is_some_and(|id| id.len() > MAX_ENVID) {
            return Reply::new(501, "5.5.4", "ENVID is longer than 100 characters");
        }
        let ret = match (from.flags & MAIL_RET_FULL != 0, from.flags & MAIL_RET_HDRS != 0) {
            (true, false) => Some("FULL"),
            (false, true) => Some("HDRS"),
            (false, false) => None,
            (true, true) => return Reply::new(501, "5.5.4", "RET may be FULL or HDRS, not both"),
        };
        let sender = from.address;
        let text = format!("Sender <{sender}> ok");
        self.transaction = Some(Transaction {
            sender,
            envid: from.env_id,
            ret,
            recipients: Vec::new(),
        });
        Reply::new(250, "2.1.0", text)
    }

    /// The access policy: TLS where required, AUTH unless trusted, allowed senders.
    fn may_send(&self, sender: &str) -> Option<Reply> {
        let ip = self.client.ip();
        if self.policy.require_tls && !self.tls && !ip.is_loopback() {
            return Some(Reply::new(530, "5.7.0", "Must issue a STARTTLS command first"));
        }
        match &self.user {
            None if !self.policy.is_trusted(ip) => {
                tracing::info!(client = %self.client, "refused: not a trusted network and not authenticated");
                Some(Reply::new(530, "5.7.0", "Authentication required"))
            }
            Some((name, user)) if !user.may_send_as(sender) => {
                Some(Reply::new(550, "5.7.1", format!("{name} may not send as <{sender}>")))
            }
            _ => None,
        }
    }
}
