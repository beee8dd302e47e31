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
    pub(super) fn command(&mut self, request: Request<String>, out: &mut Vec<u8>) -> Option<Step> {
        let reply = match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat { chunk_size, is_last } => {
                self.bdat(chunk_size, is_last);
                return None;
            }
            Request::Rset => {
                self.reset();
                return self.respond_to_junk(Reply::new(250, "2.0.0", "Reset"), out);
            }
            Request::Noop { .. } => return self.respond_to_junk(Reply::new(250, "2.0.0", "OK"), out),
            Request::Vrfy { .. } => {
                let reply = Reply::new(
                    252,
                    "2.5.0",
                    "Cannot verify, but mail to <number>@sms will be attempted",
                );
                return self.respond_to_junk(reply, out);
            }
            Request::Help { .. } => {
                let reply = Reply::new(
                    214,
                    "2.0.0",
                    "smsgw turns mail to <phone>@sms into SMS\n\
                     Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT",
                );
                return self.respond_to_junk(reply, out);
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
