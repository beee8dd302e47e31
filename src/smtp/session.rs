//! One SMTP session as a state machine fed with bytes. It never touches the socket: the
//! connection loop feeds it what it read, writes what it answered, and stores the mail
//! when asked to ([`Step::Store`]), so the session can be driven by tests byte by byte.

use std::net::SocketAddr;
use std::slice::Iter;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::request::receiver::{
    BdatReceiver, DataReceiver, DummyDataReceiver, DummyLineReceiver, LineReceiver, RequestReceiver,
};
use smtp_proto::{Error as ParseError, Request};

use super::Settings;
use super::auth::AuthStage;
use super::policy::Policy;
use super::reply::{self, Reply};
use crate::store::{NewMail, NewRequest, StoreError};
use crate::users::User;

pub(super) enum State {
    /// Reading command lines.
    Command(RequestReceiver),
    /// Reading a DATA message into `Session::message`.
    Data(DataReceiver),
    /// Reading one BDAT chunk into `Session::message`.
    Bdat(BdatReceiver),
    /// Reading data that will not be kept; `Reply` is the answer once it ends.
    Discard(DummyDataReceiver, Reply),
    /// Skipping the rest of a command line that was too long.
    LongLine(DummyLineReceiver),
    /// Reading the client's next base64 line of an AUTH dialogue.
    Auth(AuthStage, LineReceiver<()>),
}

/// What the connection loop must do next.
#[derive(Debug)]
pub enum Step {
    /// Read more bytes (after writing what was answered).
    Read,
    /// Commit this mail, then call [`Session::stored`] and keep ingesting.
    Store(Box<NewMail>),
    /// Check this password (slowly, off the runtime), then call [`Session::authenticated`].
    Authenticate { user: String, password: String },
    /// `220` was answered to STARTTLS: drop any bytes already read (RFC 3207 §4.2),
    /// do the handshake, then call [`Session::tls_started`].
    StartTls,
    /// Write what was answered and close the connection.
    Close,
}

/// The envelope of the transaction in progress.
#[derive(Debug, Default)]
pub(super) struct Transaction {
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<&'static str>,
    pub recipients: Vec<NewRequest>,
}

pub struct Session {
    pub(super) state: State,
    pub(super) settings: Arc<Settings>,
    pub(super) policy: Arc<Policy>,
    pub(super) client: SocketAddr,
    /// The connection is encrypted (STARTTLS done, or an implicit-TLS listener).
    pub(super) tls: bool,
    /// The listener only takes loopback connections: AUTH without TLS is harmless there.
    pub(super) loopback_listener: bool,
    /// The authenticated user and what the users file says of them.
    pub(super) user: Option<(String, User)>,
    /// Failed AUTH in a row from this client address (for the delay before answering).
    pub(super) auth_failures: u32,
    /// Requests counted against the sender's limits for the mail in progress: given back
    /// unless the mail is stored.
    pub(super) counted: usize,
    pub(super) helo: Option<String>,
    pub(super) transaction: Option<Transaction>,
    pub(super) message: Vec<u8>,
    line_length: LineLength,
    errors: usize,
}

/// Longest command line accepted, CRLF included (RFC 5321 §4.5.3.1.4 allows 512 octets
/// plus extension parameters; this is what smtp-proto buffers at most).
const MAX_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;

/// Counts the bytes of the command line in progress, across reads.
#[derive(Default)]
struct LineLength {
    pending: usize,
}

enum LineCheck {
    /// The next line is within the limit (or still arriving within it).
    Ok,
    /// The next line is complete in `bytes` but too long: it has been skipped.
    TooLong,
    /// The line in progress is already too long and its end is not here yet.
    Unterminated,
}

impl LineLength {
    fn check(&mut self, bytes: &mut Iter<'_, u8>) -> LineCheck {
        let rest = bytes.as_slice();
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) if self.pending + end + 1 > MAX_LINE => {
                self.pending = 0;
                *bytes = rest[end + 1..].iter();
                LineCheck::TooLong
            }
            Some(_) => {
                self.pending = 0;
                LineCheck::Ok
            }
            None if self.pending + rest.len() > MAX_LINE => {
                self.pending = 0;
                LineCheck::Unterminated
            }
            None => {
                self.pending += rest.len();
                LineCheck::Ok
            }
        }
    }
}

impl Session {
    pub fn new(settings: Arc<Settings>, policy: Arc<Policy>, client: SocketAddr, loopback_listener: bool) -> Session {
        Session {
            state: State::Command(RequestReceiver::default()),
            settings,
            policy,
            client,
            tls: false,
            loopback_listener,
            user: None,
            auth_failures: 0,
            counted: 0,
            helo: None,
            transaction: None,
            message: Vec::new(),
            line_length: LineLength::default(),
            errors: 0,
        }
    }

    pub fn client(&self) -> SocketAddr {
        self.client
    }

    pub fn greeting(&self, out: &mut Vec<u8>) {
        let text = format!("{} ESMTP smsgw ready", self.settings.hostname);
        Reply::new(220, "2.0.0", text).write_to(out);
    }

    /// After the TLS handshake: everything said before is forgotten (RFC 3207 §4.2).
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.helo = None;
        self.reset();
        self.state = command_state();
    }

    /// Failed AUTH attempts in a row from this address: the loop waits that many times
    /// `security.auth_failure_delay_ms` before answering, to slow password guessing.
    pub fn auth_failures(&self) -> u32 {
        self.auth_failures
    }

    /// How long the peer may stay silent in the current state.
    pub fn timeout(&self) -> Duration {
        match self.state {
            State::Command(_) | State::LongLine(_) => self.settings.command_timeout,
            _ => self.settings.data_timeout,
        }
    }

    /// Between commands: a shutdown may close the session without cutting a message.
    pub fn is_between_commands(&self) -> bool {
        matches!(self.state, State::Command(_))
    }

    /// Consumes bytes until the session needs more, has a mail to store, or must close.
    pub fn ingest(&mut self, bytes: &mut Iter<'_, u8>, out: &mut Vec<u8>) -> Step {
        loop {
            // Each state consumes what it can; `Some(Step::Read)` means the bytes ran out.
            let step = match &mut self.state {
                State::Command(_) => self.command_bytes(bytes, out),
                State::Data(receiver) => {
                    if receiver.ingest(bytes, &mut self.message) {
                        self.state = command_state();
                        self.end_of_message(out)
                    } else {
                        self.check_data_size();
                        Some(Step::Read)
                    }
                }
                State::Bdat(receiver) => match receiver.ingest(bytes, &mut self.message) {
                    false => Some(Step::Read),
                    true => {
                        let last = receiver.is_last;
                        self.state = command_state();
                        self.end_of_chunk(last, out)
                    }
                },
                State::Discard(receiver, _) => match receiver.ingest(bytes) {
                    false => Some(Step::Read),
                    true => match std::mem::replace(&mut self.state, command_state()) {
                        State::Discard(_, answer) => self.respond(answer, out),
                        _ => unreachable!("matched Discard above"),
                    },
                },
                State::LongLine(receiver) => match receiver.ingest(bytes) {
                    false => Some(Step::Read),
                    true => {
                        self.state = command_state();
                        self.respond(line_too_long(), out)
                    }
                },
                State::Auth(_, receiver) => match receiver.ingest(bytes) {
                    false => Some(Step::Read),
                    true => {
                        let line = String::from_utf8_lossy(&receiver.buf).into_owned();
                        match std::mem::replace(&mut self.state, command_state()) {
                            State::Auth(stage, _) => self.auth_line(stage, &line, out),
                            _ => unreachable!("matched Auth above"),
                        }
                    }
                },
            };
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// Command lines: one parsed and answered per call, within the line length limit.
    fn command_bytes(&mut self, bytes: &mut Iter<'_, u8>, out: &mut Vec<u8>) -> Option<Step> {
        let State::Command(receiver) = &mut self.state else {
            unreachable!("called in the command state")
        };
        match self.line_length.check(bytes) {
            LineCheck::TooLong => {
                *receiver = RequestReceiver::default();
                self.respond(line_too_long(), out)
            }
            LineCheck::Unterminated => {
                self.state = State::LongLine(DummyLineReceiver::default());
                None
            }
            LineCheck::Ok => match receiver.ingest(bytes) {
                Ok(request) => {
                    let request = request.into_owned();
                    self.command(request, out)
                }
                Err(ParseError::NeedsMoreData { .. }) => Some(Step::Read),
                Err(error) => self.parse_error(error, out),
            },
        }
    }

    fn command(&mut self, request: Request<String>, out: &mut Vec<u8>) -> Option<Step> {
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
                Reply::new(250, "2.0.0", "Reset")
            }
            Request::Noop { .. } => Reply::new(250, "2.0.0", "OK"),
            Request::Vrfy { .. } => Reply::new(
                252,
                "2.5.0",
                "Cannot verify, but mail to <number>@sms will be attempted",
            ),
            Request::Help { .. } => Reply::new(
                214,
                "2.0.0",
                "smsgw turns mail to <phone>@sms into SMS\n\
                 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT",
            ),
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

    /// Writes a reply; too many errors end the session.
    pub(super) fn respond(&mut self, reply: Reply, out: &mut Vec<u8>) -> Option<Step> {
        reply.write_to(out);
        if reply.is_protocol_error() {
            self.errors += 1;
            if self.errors >= self.settings.max_errors {
                Reply::new(421, "4.7.0", "Too many errors, closing connection").write_to(out);
                return Some(Step::Close);
            }
        }
        None
    }

    fn parse_error(&mut self, error: ParseError, out: &mut Vec<u8>) -> Option<Step> {
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
                self.state = State::LongLine(DummyLineReceiver::default());
                return None;
            }
            ParseError::InvalidResponse { .. } => Reply::new(500, "5.5.2", "Syntax error"),
        };
        self.respond(reply, out)
    }

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

    /// Forgets the transaction in progress (RSET, a new HELO, after a mail).
    pub(super) fn reset(&mut self) {
        self.transaction = None;
        self.message = Vec::new();
        self.give_back_quota();
    }

    /// Authenticated as one of our `[[peer]]`s: another instance forwarding requests.
    pub(super) fn is_peer(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|(name, _)| self.settings.peers.contains(name))
    }

    /// Whom the limits count: the user, or the client address when unauthenticated.
    pub(super) fn sender_key(&self) -> String {
        self.user
            .as_ref()
            .map_or_else(|| self.client.ip().to_string(), |(name, _)| name.clone())
    }

    /// The mail in progress was not accepted: its requests do not count.
    pub(super) fn give_back_quota(&mut self) {
        if self.counted > 0 {
            self.policy.give_back(&self.sender_key(), self.counted);
            self.counted = 0;
        }
    }

    /// After `Step::Store`: answer the end of data with the commit's outcome.
    pub fn stored(&mut self, result: Result<Vec<i64>, StoreError>, out: &mut Vec<u8>) -> Option<Step> {
        let reply = match result {
            Ok(ids) => {
                self.counted = 0;
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                Reply::new(250, "2.0.0", format!("Ok: queued as {}", ids.join(" ")))
            }
            Err(error) => {
                self.give_back_quota();
                tracing::error!(client = %self.client, %error, "mail not stored");
                Reply::new(451, "4.3.0", "Local storage error, mail not accepted: try again later")
            }
        };
        self.respond(reply, out)
    }

    pub(super) fn discard(&mut self, receiver: DummyDataReceiver, answer: Reply) {
        self.state = State::Discard(receiver, answer);
    }

    pub(super) fn start_data(&mut self) {
        self.state = State::Data(DataReceiver::new());
    }

    pub(super) fn start_bdat(&mut self, chunk_size: usize, last: bool) {
        self.state = State::Bdat(BdatReceiver::new(chunk_size, last));
    }

    /// A DATA message past the size limit: keep reading to its end, keep nothing.
    fn check_data_size(&mut self) {
        if self.message.len() > self.settings.max_message_size
            && let State::Data(receiver) = &self.state
        {
            let rest = DummyDataReceiver::new_data(receiver);
            self.reset();
            self.discard(rest, reply::too_big(self.settings.max_message_size));
        }
    }
}

impl Drop for Session {
    /// A connection that ends in the middle of a mail took nothing.
    fn drop(&mut self) {
        self.give_back_quota();
    }
}

fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "Line too long")
}

pub(super) fn command_state() -> State {
    State::Command(RequestReceiver::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use proptest::prelude::*;

    fn session() -> Session {
        let config = Config::default();
        let settings = super::super::Settings::from_config(&config);
        let policy = Policy::from_config(&config);
        Session::new(
            Arc::new(settings),
            Arc::new(policy),
            "127.0.0.1:1".parse().unwrap(),
            true,
        )
    }

    /// Feeds `chunks` as successive reads; returns everything answered.
    fn converse(chunks: &[&[u8]]) -> String {
        let mut session = session();
        let mut out = Vec::new();
        session.greeting(&mut out);
        'reads: for chunk in chunks {
            let mut bytes = chunk.iter();
            loop {
                match session.ingest(&mut bytes, &mut out) {
                    Step::Read => break,
                    Step::Store(_) => {
                        if session.stored(Ok(vec![1]), &mut out).is_some() {
                            break 'reads;
                        }
                    }
                    Step::Close | Step::StartTls | Step::Authenticate { .. } => break 'reads,
                }
            }
        }
        String::from_utf8(out).expect("replies are text")
    }

    const DIALOGUE: &[u8] = b"EHLO a.example\r\nMAIL FROM:<a@example.com>\r\n\
        RCPT TO:<+33477858589@sms>\r\nDATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n";

    #[test]
    fn replies_do_not_depend_on_how_reads_split_the_bytes() {
        let whole = converse(&[DIALOGUE]);
        assert!(whole.contains("250 2.0.0 Ok: queued as 1"), "{whole}");
        assert!(whole.ends_with("221 2.0.0 Bye\r\n"), "{whole}");
        let bytewise: Vec<&[u8]> = DIALOGUE.chunks(1).collect();
        assert_eq!(converse(&bytewise), whole);
    }

    #[test]
    fn require_tls_refuses_mail_in_clear_from_a_remote_client() {
        let mut config = Config::default();
        config.security.require_tls = true;
        config.security.trusted_networks = vec!["0.0.0.0/0".parse().unwrap()];
        let settings = Arc::new(super::super::Settings::from_config(&config));
        let policy = Arc::new(Policy::from_config(&config));
        let mut out = Vec::new();
        for (client, code) in [
            ("192.0.2.1:25", "530 5.7.0 Must issue a STARTTLS"),
            ("127.0.0.1:25", "250 2.1.0"),
        ] {
            let mut session = Session::new(settings.clone(), policy.clone(), client.parse().unwrap(), false);
            out.clear();
            let mut bytes = b"EHLO a.example\r\nMAIL FROM:<a@example.com>\r\n".iter();
            assert!(matches!(session.ingest(&mut bytes, &mut out), Step::Read));
            let text = String::from_utf8(out.clone()).unwrap();
            assert!(text.lines().last().unwrap().starts_with(code), "{client}: {text}");
        }
    }

    proptest! {
        #[test]
        fn any_input_gets_well_formed_replies_and_no_panic(
            noise in proptest::collection::vec(any::<u8>(), 0..2048),
            cut in 0usize..2048,
        ) {
            let mut input = DIALOGUE[..DIALOGUE.len() - 6].to_vec();
            input.extend_from_slice(&noise);
            let cut = cut.min(input.len());
            let out = converse(&[&input[..cut], &input[cut..]]);
            for line in out.lines() {
                prop_assert!(line.len() >= 3 && line.as_bytes()[..3].iter().all(u8::is_ascii_digit), "{line:?}");
            }
        }
    }
}
