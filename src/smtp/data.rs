//! DATA and BDAT: the message, then its text as SMS parts, then the store.

use smtp_proto::request::receiver::DummyDataReceiver;

use super::budget::insufficient_storage;
use super::reply::{self, Reply};
use super::session::Session;
use super::state::Step;
use crate::compose::compose;
use crate::config::OnTooLong;
use crate::store::NewMail;

impl Session {
    /// DATA: `354`, or why the transaction cannot take a message yet.
    pub(super) fn data(&mut self) -> Reply {
        if let Some(reply) = self.ready_for_data() {
            return reply;
        }
        if !self.message.is_empty() {
            return reply::bad_sequence("DATA after BDAT: finish with BDAT LAST (RFC 3030)");
        }
        self.start_data();
        Reply::new(354, "", "Send the message, end with <CRLF>.<CRLF>")
    }

    /// BDAT is answered once its chunk is read, so it replies nothing now.
    pub(super) fn bdat(&mut self, chunk_size: usize, last: bool) {
        let refusal = self.ready_for_data().or_else(|| {
            let total = self.message.len().saturating_add(chunk_size);
            if total > self.settings.max_message_size {
                Some(reply::too_big(self.settings.max_message_size))
            } else if !self.reserve_for(chunk_size) {
                tracing::warn!(client = %self.client, "chunk refused: smtp.max_buffered_bytes in use by messages in progress");
                Some(insufficient_storage())
            } else {
                None
            }
        });
        match refusal {
            // The chunk follows the command whatever we answer: read it, then answer.
            Some(answer) => {
                self.reset();
                self.discard(DummyDataReceiver::new_bdat(chunk_size), answer);
            }
            None => self.start_bdat(chunk_size, last),
        }
    }

    /// Refuses data without a sender and at least one accepted recipient.
    fn ready_for_data(&self) -> Option<Reply> {
        match &self.transaction {
            None => Some(reply::bad_sequence("Need MAIL and RCPT before data")),
            Some(t) if t.recipients.is_empty() => Some(Reply::new(554, "5.5.1", "No valid recipients")),
            Some(_) => None,
        }
    }

    /// After a BDAT chunk: the message ends with the LAST one.
    pub(super) fn end_of_chunk(&mut self, last: bool, out: &mut Vec<u8>) -> Option<Step> {
        if last {
            return self.end_of_message(out);
        }
        let text = format!("{} octets received", self.message.len());
        self.respond(Reply::new(250, "2.0.0", text), out)
    }

    /// The whole message is in: compose its SMS text, or refuse it with the reason.
    pub(super) fn end_of_message(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        // A message with data ends a transaction, accepted or refused: the junk count
        // starts again. An empty one (`BDAT 0 LAST` at once) does not, or MAIL, RCPT,
        // `BDAT 0 LAST` could be repeated for ever.
        if !self.message.is_empty() {
            self.junk = 0;
        }
        let step = self.finish_message(out);
        // A mail to store keeps its bytes (and their share of the budget) until stored.
        if !matches!(step, Some(Step::Store(_))) {
            self.give_back_budget();
        }
        step
    }

    /// The text of the message, and the mail to store; or why it is refused.
    fn finish_message(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        let (raw, internal) = strip_internal_headers(std::mem::take(&mut self.message));
        // Only another instance may say where a request comes from and where it has been.
        let (origin, trace) = match self.is_peer() {
            true => forwarded_from(&internal),
            false => {
                if let (Some((user, _)), false) = (&self.user, internal.is_empty()) {
                    // Likely a peer whose name here is not its user name there.
                    tracing::warn!(client = %self.client, %user, "X-Smsgw headers removed: this user is no [[peer]] here");
                }
                (None, Vec::new())
            }
        };
        let Some(transaction) = self.transaction.take() else {
            return self.respond(reply::bad_sequence("No transaction in progress"), out);
        };
        if raw.is_empty() {
            self.give_back_quota();
            let empty = Reply::new(554, "5.6.0", "The message is empty: there is no text to send as SMS");
            return self.respond(empty, out);
        }
        // A message that arrived in one read was not seen growing: check it whole.
        if raw.len() > self.settings.max_message_size {
            self.give_back_quota();
            return self.respond(reply::too_big(self.settings.max_message_size), out);
        }
        match self.sms_text(&raw) {
            Ok((text, encoding, parts)) => Some(Step::Store(Box::new(NewMail {
                sender: transaction.sender,
                envid: transaction.envid,
                ret: transaction.ret,
                client: self.client.ip().to_string(),
                helo: self.helo.clone().unwrap_or_default(),
                auth_user: self.user.as_ref().map(|(name, _)| name.clone()),
                raw,
                text,
                encoding,
                parts,
                requests: transaction.recipients,
                origin,
                trace,
            }))),
            Err(reply) => {
                self.give_back_quota();
                tracing::info!(client = %self.client, reason = %reply.text, "mail refused");
                self.respond(reply, out)
            }
        }
    }

    /// The text, its encoding and its part count, within `sms.max_parts`.
    fn sms_text(&self, raw: &[u8]) -> Result<(String, String, usize), Reply> {
        if crate::compose::automatic_answer_to_sms(raw) {
            return Err(Reply::new(
                550,
                "5.7.1",
                "An automatic reply to an SMS (Auto-Submitted, Precedence) is not sent back as SMS",
            ));
        }
        let text = compose(raw, self.settings.compose);
        if text.trim().is_empty() {
            return Err(Reply::new(554, "5.6.0", "The mail has no text to send as SMS"));
        }
        let split = crate::sms::split(&text, &self.settings.languages);
        let max = self.settings.max_parts;
        if split.parts.len() <= max {
            return Ok((text, split.encoding.as_str().to_string(), split.parts.len()));
        }
        if self.settings.on_too_long == OnTooLong::Reject {
            return Err(Reply::new(
                554,
                "5.3.4",
                format!(
                    "The text needs {} SMS parts, more than the {max} allowed",
                    split.parts.len()
                ),
            ));
        }
        // The cut may drop the only characters that needed UCS-2: split again.
        let truncated = split.parts[..max].concat();
        let split = crate::sms::split(&truncated, &self.settings.languages);
        Ok((truncated, split.encoding.as_str().to_string(), split.parts.len()))
    }
}

/// `X-Smsgw-Request` (the origin) and `X-Smsgw-Trace` (comma-separated instances)
/// among the internal header fields.
fn forwarded_from(internal: &[String]) -> (Option<String>, Vec<String>) {
    let value = |name: &str| {
        internal.iter().find_map(|field| {
            let (field_name, value) = field.split_once(':')?;
            field_name
                .trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let trace = value("X-Smsgw-Trace")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    (value("X-Smsgw-Request").filter(|o| !o.is_empty()), trace)
}

/// Removes `X-Smsgw-*` header fields (and their folded lines): only smsgw writes them,
/// and they are believed from a peer only (trace, request id), so nobody may bring
/// their own. Returns the message without them, and them, unfolded.
fn strip_internal_headers(raw: Vec<u8>) -> (Vec<u8>, Vec<String>) {
    let is_internal = |line: &[u8]| line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"x-smsgw-");
    if !raw.split(|&b| b == b'\n').any(is_internal) {
        return (raw, Vec::new());
    }
    let mut kept = Vec::with_capacity(raw.len());
    let mut internal: Vec<String> = Vec::new();
    let mut dropping = false;
    let mut offset = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        // The header ends at the first empty line (CRLF or bare LF); the body is kept whole.
        if line == b"\r\n" || line == b"\n" {
            kept.extend_from_slice(&raw[offset..]);
            return (kept, internal);
        }
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            if dropping && let Some(last) = internal.last_mut() {
                last.push_str(text);
            }
        } else {
            dropping = is_internal(line);
            if dropping {
                internal.push(text.to_string());
            }
        }
        if !dropping {
            kept.extend_from_slice(line);
        }
        offset += line.len();
    }
    (kept, internal)
}

#[cfg(test)]
mod tests {
    use super::{forwarded_from, strip_internal_headers};

    #[test]
    fn internal_headers_are_removed_with_their_folded_lines() {
        let raw = b"Subject: hi\r\nX-Smsgw-Trace: uk,\r\n fr\r\nx-smsgw-request: uk/7\r\nTo: a\r\n\r\nX-Smsgw-Trace: in the body stays\r\n";
        let (kept, internal) = strip_internal_headers(raw.to_vec());
        assert_eq!(
            String::from_utf8(kept).unwrap(),
            "Subject: hi\r\nTo: a\r\n\r\nX-Smsgw-Trace: in the body stays\r\n"
        );
        assert_eq!(
            forwarded_from(&internal),
            (Some("uk/7".to_string()), vec!["uk".to_string(), "fr".to_string()])
        );
        let bare = b"Subject: hi\nX-Smsgw-Trace: x\n\nx-smsgw-stays: body\n".to_vec();
        assert_eq!(strip_internal_headers(bare).0, b"Subject: hi\n\nx-smsgw-stays: body\n");
        let clean = b"Subject: hi\r\n\r\nbody".to_vec();
        assert_eq!(strip_internal_headers(clean.clone()), (clean, Vec::new()));
    }
}
