//! One command line, parsed: handed to the handler of its command (EHLO in ehlo.rs, MAIL
//! in mail.rs, ...), or answered here for the commands that need no more (RSET, NOOP,
//! VRFY, HELP, QUIT, STARTTLS), or refused with the reason the parser gave.

use smtp_proto::request::receiver::DummyLineReceiver;
use smtp_proto::{Error as ParseError, Request};

use super::reply::{self, Reply};
use super::session::Session;
use super::state::{SessionState, Step};

impl Session {
    /// Answers one command, or starts what it begins (data, a chunk, AUTH, TLS).
    /// Every command but those that move a transaction forward counts towards the junk
    /// limit (see [`JUNK_COMMANDS`](super::session::JUNK_COMMANDS)).
    pub(super) fn command(&mut self, request: Request<String>, out: &mut Vec<u8>) -> Option<Step> {
        let before = self.forward_marks();
        let bdat_chunk = match &request {
            Request::Bdat { chunk_size, .. } => Some(*chunk_size),
            _ => None,
        };
        let step = self.answer(request, out);
        let forward = match (before, self.forward_marks()) {
            // MAIL accepted, or one more recipient.
            ((false, _), (true, _)) => true,
            ((true, was), (true, now)) => now > was,
            _ => false,
        } || matches!(self.state, SessionState::Data(_))
            || (matches!(self.state, SessionState::Bdat(_)) && bdat_chunk.is_some_and(|size| size > 0));
        match step {
            Some(step) => Some(step),
            None if forward => None,
            None => self.count_junk(out),
        }
    }

    /// Whether a transaction is open, and its recipients: what moving forward changes.
    fn forward_marks(&self) -> (bool, usize) {
        match &self.transaction {
            Some(t) => (true, t.recipients.len()),
            None => (false, 0),
        }
    }

    /// Answers one command, or starts what it begins (data, a chunk, AUTH, TLS).
    fn answer(&mut self, request: Request<String>, out: &mut Vec<u8>) -> Option<Step> {
        let reply = match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Mail { from } => {
                // A refused MAIL is an error (AUTH required, sender not allowed, too big),
                // except `452` for the shared budget: the server is busy, not the client
                // wrong, and a smart host retrying then is not to be closed for it (the
                // junk limit still bounds how often it may retry on one connection).
                let reply = self.mail(from);
                return match reply.code {
                    400.. if reply.code != 452 => self.refuse(reply, out),
                    _ => self.respond(reply, out),
                };
            }
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat { chunk_size, is_last } => {
                self.bdat(chunk_size, is_last);
                return None;
            }
            Request::Rset => {
                self.reset();
                return self.respond(Reply::new(250, "2.0.0", "Reset"), out);
            }
            Request::Noop { .. } => return self.respond(Reply::new(250, "2.0.0", "OK"), out),
            Request::Vrfy { .. } => {
                let reply = Reply::new(
                    252,
                    "2.5.0",
                    "Cannot verify, but mail to <number>@sms will be attempted",
                );
                return self.respond(reply, out);
            }
            Request::Help { .. } => {
                let reply = Reply::new(
                    214,
                    "2.0.0",
                    "smsgw turns mail to <phone>@sms into SMS\n\
                     Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT",
                );
                return self.respond(reply, out);
            }
            Request::Quit => {
                Reply::new(221, "2.0.0", "Bye").write_to(out);
                return Some(Step::Close);
            }
            Request::Auth {
                mechanism,
                initial_response,
            } => return self.auth(mechanism, initial_response, out),
            Request::StartTls => return self.start_tls(out),
            other => reply::not_implemented(other.name()),
        };
        self.respond(reply, out)
    }

    /// The reply to a line the parser refused; an overlong one is skipped to its end.
    pub(super) fn parse_error(&mut self, error: ParseError, out: &mut Vec<u8>) -> Option<Step> {
        let reply = match error {
            ParseError::NeedsMoreData { .. } => return None, // handled by the caller
            ParseError::UnknownCommand => Reply::new(500, "5.5.1", "Unknown command"),
            ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "Bad sender address syntax"),
            ParseError::InvalidRecipientAddress => Reply::new(501, "5.1.3", "Bad recipient address syntax"),
            ParseError::SyntaxError { syntax } => Reply::new(501, "5.5.2", format!("Syntax error, expected: {syntax}")),
            ParseError::InvalidParameter { param } => {
                Reply::new(501, "5.5.4", format!("Invalid value for parameter {param}"))
            }
            ParseError::UnsupportedParameter { param } => {
                Reply::new(555, "5.5.4", format!("Unsupported parameter {param:?}"))
            }
            ParseError::ResponseTooLong => {
                self.state = SessionState::LongLine(DummyLineReceiver::default());
                return None;
            }
            ParseError::InvalidResponse { .. } => Reply::new(500, "5.5.2", "Syntax error"),
        };
        self.respond(reply, out)
    }

    /// STARTTLS once, when a certificate is configured.
    fn start_tls(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        let refusal = if self.tls {
            reply::bad_sequence("TLS is already active")
        } else if !self.settings.tls_offered {
            Reply::new(454, "4.7.0", "TLS not available")
        } else {
            Reply::new(220, "2.0.0", "Ready to start TLS").write_to(out);
            return Some(Step::StartTls);
        };
        self.respond(refusal, out)
    }
}
