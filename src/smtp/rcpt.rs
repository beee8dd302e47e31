//! RCPT TO: the recipient becomes an E.164 number here, or is refused with the reason.

use smtp_proto::{RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, RcptTo};

use std::time::Instant;

use super::reply::{self, Reply};
use super::session::Session;
use crate::address::parse_recipient;
use crate::store::NewRequest;

impl Session {
    /// The answer to RCPT TO: the address is read as a number, checked by the policy,
    /// refused if no instance can send to it, and counted against the limits of whom
    /// [`Session::limits_key`] names, then added to the transaction.
    pub(super) fn rcpt(&mut self, to: RcptTo<String>) -> Reply {
        let who = self.limits_key();
        let Some(transaction) = &mut self.transaction else {
            return reply::bad_sequence("Need MAIL before RCPT");
        };
        if transaction.recipients.len() >= self.settings.max_recipients {
            return Reply::new(
                452,
                "4.5.3",
                format!("Too many recipients: at most {} per mail", self.settings.max_recipients),
            );
        }
        let notify = match notify(to.flags) {
            Ok(notify) => notify,
            Err(reply) => return reply,
        };
        let recipient = match parse_recipient(&to.address, &self.settings.rules) {
            Ok(recipient) => recipient,
            Err(error) => {
                let (code, status) = error.reply();
                tracing::info!(client = %self.client, rcpt = %to.address, %error, "recipient refused");
                return Reply::new(code, status, error.to_string());
            }
        };
        if transaction.recipients.iter().any(|r| r.number == recipient.number) {
            return Reply::new(
                250,
                "2.1.5",
                format!("{} is already a recipient: it gets one SMS", recipient.number),
            );
        }
        let allowed = self
            .policy
            .check_number(&recipient.number)
            .and_then(|()| self.policy.check_optout(&recipient.number))
            .and_then(|()| self.policy.check_route(&recipient.number))
            .and_then(|()| match &who {
                None => Ok(()),
                Some(who) => self.policy.take_request(who, &recipient.number, Instant::now()),
            });
        if let Err(reply) = allowed {
            tracing::info!(client = %self.client, rcpt = %to.address, reason = %reply.text, "recipient refused");
            return reply;
        }
        if let Some(who) = who {
            self.counted += 1;
            self.counted_for = who;
        }
        tracing::info!(client = %self.client, rcpt = %to.address, number = %recipient.number, "recipient accepted");
        let text = format!("Recipient ok: SMS to {}", recipient.number);
        transaction.recipients.push(NewRequest {
            recipient: to.address,
            number: recipient.number,
            notify,
            orcpt: to.orcpt.map(|address| format!("rfc822;{address}")),
        });
        Reply::new(250, "2.1.5", text)
    }
}

/// NOTIFY as stored: `None` when absent (the default: failures only, RFC 3461 §4.1).
fn notify(flags: u64) -> Result<Option<String>, Reply> {
    let kinds = [
        (RCPT_NOTIFY_SUCCESS, "SUCCESS"),
        (RCPT_NOTIFY_FAILURE, "FAILURE"),
        (RCPT_NOTIFY_DELAY, "DELAY"),
    ];
    let named: Vec<&str> = kinds
        .iter()
        .filter(|(flag, _)| flags & flag != 0)
        .map(|(_, name)| *name)
        .collect();
    match (flags & RCPT_NOTIFY_NEVER != 0, named.is_empty()) {
        (true, true) => Ok(Some("NEVER".into())),
        (true, false) => Err(Reply::new(
            501,
            "5.5.4",
            "NOTIFY=NEVER cannot be combined with SUCCESS, FAILURE or DELAY",
        )),
        (false, true) => Ok(None),
        (false, false) => Ok(Some(named.join(","))),
    }
}
