//! One SMTP session as a state machine fed with bytes. It never touches the socket: the
//! connection loop feeds it what it read, writes what it answered, and stores the mail
//! when asked to ([`Step::Store`]), so the session can be driven by tests byte by byte.

use std::net::SocketAddr;
use std::slice::Iter;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::Error as ParseError;
use smtp_proto::request::receiver::{
    BdatReceiver, DataReceiver, DummyDataReceiver, DummyLineReceiver, RequestReceiver,
};

use super::Settings;
use super::budget::{Budget, insufficient_storage};
use super::policy::Policy;
use super::reply::{self, Reply};
use super::state::{FLUSH_AT, LineCheck, LineLength, SessionState, Step, Transaction, command_state};
use crate::store::StoreError;
use crate::users::User;

/// One client's SMTP session, from the greeting to QUIT: the state it is in, what the
/// client has said so far, and the limits it is held to.
pub struct Session {
    /// What the next bytes are: command lines, message data, an AUTH answer, or bytes to skip.
    pub(super) state: SessionState,
    /// The limits and rules from the config.
    pub(super) settings: Arc<Settings>,
    /// Who may send, to which numbers, how much: shared by every session.
    pub(super) policy: Arc<Policy>,
    /// The client's address, for logs and the per-address limits.
    pub(super) client: SocketAddr,
    /// The connection is encrypted (STARTTLS done, or an implicit-TLS listener).
    pub(super) tls: bool,
    /// The listener only takes loopback connections: AUTH without TLS is harmless there.
    pub(super) loopback_listener: bool,
    /// The authenticated user and what the users file says of them.
    pub(super) user: Option<(String, User)>,
    /// Failed AUTH in a row from this client address (for the delay before answering).
    pub(super) auth_failures: u32,
    /// Requests counted against the sender's limits for the mail in progress, and whom
    /// they were counted for: given back unless the mail is stored.
    pub(super) counted: usize,
    /// Whom `counted` counts (see [`Session::limits_key`]).
    pub(super) counted_for: String,
    /// The name given in EHLO/HELO; `None` until then.
    pub(super) helo: Option<String>,
    /// The envelope of the mail in progress; `None` outside MAIL … DATA.
    pub(super) transaction: Option<Transaction>,
    /// The message data received so far in DATA or BDAT.
    pub(super) message: Vec<u8>,
    /// The bytes all sessions may hold for messages in progress, shared.
    budget: Arc<Budget>,
    /// Bytes taken from `budget` for `message` (its capacity, or the mail being stored).
    reserved: usize,
    /// Whom `reserved` was taken for (see [`Session::budget_holder`]).
    holder: Option<String>,
    line_length: LineLength,
    errors: usize,
    /// Commands since the last transaction completed that did not move a transaction
    /// forward (see [`JUNK_COMMANDS`]).
    pub(super) junk: usize,
}

/// Commands that do not move a transaction forward (anything but the MAIL that starts
/// one, a RCPT that adds a recipient, the DATA answered `354`, a BDAT with a chunk of at
/// least one octet) a session may send between two completed transactions, on top of
/// `smtp.max_recipients` (a client may retry refused recipients), before each one more
/// counts as an error (Postfix's `smtpd_junk_command_limit`). Every answer written moves
/// the connection loop's deadline, so without this a client repeating EHLO, NOOP, a
/// refused MAIL or `BDAT 0` would hold its slot for ever; it is closed after
/// `smtp.max_errors` more.
pub(super) const JUNK_COMMANDS: usize = 100;

impl Session {
    /// A session for `client`, not greeted yet; `loopback_listener` when the listener
    /// only takes loopback connections.
    /// `budget` is `smtp.max_buffered_bytes`, shared by every session.
    pub fn new(
        settings: Arc<Settings>,
        policy: Arc<Policy>,
        budget: Arc<Budget>,
        client: SocketAddr,
        loopback_listener: bool,
    ) -> Session {
        Session {
            state: SessionState::Command(RequestReceiver::default()),
            settings,
            policy,
            client,
            tls: false,
            loopback_listener,
            user: None,
            auth_failures: 0,
            counted: 0,
            counted_for: String::new(),
            helo: None,
            transaction: None,
            message: Vec::new(),
            budget,
            reserved: 0,
            holder: None,
            line_length: LineLength::default(),
            errors: 0,
            junk: 0,
        }
    }

    /// The client's address, for the connection loop's logs.
    pub fn client(&self) -> SocketAddr {
        self.client
    }

    /// The `220` greeting, written before the client says anything.
    pub fn greeting(&self, out: &mut Vec<u8>) {
        let text = format!("{} ESMTP smsgw ready", self.settings.hostname);
        Reply::new(220, "2.0.0", text).write_to(out);
    }

    /// After the TLS handshake: everything said before is forgotten (RFC 3207 §4.2),
    /// the AUTH identity included: the session is as before EHLO, now encrypted.
    pub fn tls_started(&mut self) {
        self.tls = true;
        self.reset();
        self.helo = None;
        self.user = None;
        self.state = command_state();
    }

    /// Failed AUTH attempts in a row from this address: the loop waits that many times
    /// `security.auth_failure_delay_ms` before answering, to slow password guessing.
    pub fn auth_failures(&self) -> u32 {
        self.auth_failures
    }

    /// The deadline on progress in the current state (not on silence: see the
    /// connection loop's `Clock`): the command timeout between commands and in an AUTH
    /// dialogue (a line, like a command), the data timeout while a message arrives.
    pub fn timeout(&self) -> Duration {
        match self.state {
            SessionState::Command(_) | SessionState::LongLine(_) | SessionState::Auth(..) => {
                self.settings.command_timeout
            }
            SessionState::Data(_) | SessionState::Bdat(_) | SessionState::Discard(..) => self.settings.data_timeout,
        }
    }

    /// Octets of the message in progress kept so far (the connection loop counts them
    /// as progress; data being discarded is not kept).
    pub fn buffered(&self) -> usize {
        self.message.len()
    }

    /// A mail transaction is open (MAIL accepted, not yet ended or reset): outside one,
    /// the session holds none of the budget.
    pub fn in_transaction(&self) -> bool {
        self.transaction.is_some()
    }

    /// Between commands: a shutdown may close the session without cutting a message.
    pub fn is_between_commands(&self) -> bool {
        matches!(self.state, SessionState::Command(_))
    }

    /// Consumes bytes until the session needs more, has a mail to store, or must close.
    pub fn ingest(&mut self, bytes: &mut Iter<'_, u8>, out: &mut Vec<u8>) -> Step {
        loop {
            // The message grows by at most what it is fed: room first (see `data_step`).
            let data_step = match self.state {
                SessionState::Data(_) => self.data_step(bytes.len()),
                _ => (0, false),
            };
            // Each state consumes what it can; `Some(Step::Read)` means the bytes ran out.
            let step = match &mut self.state {
                SessionState::Command(_) => self.command_bytes(bytes, out),
                SessionState::Data(receiver) => {
                    let rest = bytes.as_slice();
                    let (count, probe) = data_step;
                    let mut part = rest[..count].iter();
                    // A message of exactly the limit, with no room for one octet more:
                    // an octet more (not the end of data) makes it too big.
                    let mut past = Vec::new();
                    let into = if probe { &mut past } else { &mut self.message };
                    let ended = receiver.ingest(&mut part, into);
                    *bytes = rest[count - part.len()..].iter();
                    if !past.is_empty() {
                        self.refuse_too_big();
                        None
                    } else if ended {
                        self.state = command_state();
                        self.end_of_message(out)
                    } else {
                        self.check_data_size();
                        bytes.len().eq(&0).then_some(Step::Read)
                    }
                }
                SessionState::Bdat(receiver) => match receiver.ingest(bytes, &mut self.message) {
                    false => Some(Step::Read),
                    true => {
                        let last = receiver.is_last;
                        self.state = command_state();
                        self.end_of_chunk(last, out)
                    }
                },
                SessionState::Discard(receiver, _) => match receiver.ingest(bytes) {
                    false => Some(Step::Read),
                    true => match std::mem::replace(&mut self.state, command_state()) {
                        SessionState::Discard(_, answer) => self.respond(answer, out),
                        _ => unreachable!("matched Discard above"),
                    },
                },
                SessionState::LongLine(receiver) => match receiver.ingest(bytes) {
                    false => Some(Step::Read),
                    true => {
                        self.state = command_state();
                        self.respond(line_too_long(), out)
                    }
                },
                SessionState::Auth(_, receiver) => match receiver.ingest(bytes) {
                    false => Some(Step::Read),
                    true => {
                        let line = String::from_utf8_lossy(&receiver.buf).into_owned();
                        match std::mem::replace(&mut self.state, command_state()) {
                            SessionState::Auth(stage, _) => self.auth_line(stage, &line, out),
                            _ => unreachable!("matched Auth above"),
                        }
                    }
                },
            };
            if let Some(step) = step {
                return step;
            }
            if out.len() >= FLUSH_AT {
                return Step::Flush;
            }
        }
    }

    /// Command lines: one parsed and answered per call, within the line length limit.
    fn command_bytes(&mut self, bytes: &mut Iter<'_, u8>, out: &mut Vec<u8>) -> Option<Step> {
        let SessionState::Command(receiver) = &mut self.state else {
            unreachable!("called in the command state")
        };
        match self.line_length.check(bytes) {
            LineCheck::TooLong => {
                *receiver = RequestReceiver::default();
                self.respond(line_too_long(), out)
            }
            LineCheck::Unterminated => {
                self.state = SessionState::LongLine(DummyLineReceiver::default());
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

    /// Writes a reply; too many errors end the session.
    pub(super) fn respond(&mut self, reply: Reply, out: &mut Vec<u8>) -> Option<Step> {
        reply.write_to(out);
        if reply.is_protocol_error() {
            return self.count_error(out);
        }
        None
    }

    /// One more command that did not move a transaction forward: past the limit (see
    /// [`JUNK_COMMANDS`]) it counts as an error.
    pub(super) fn count_junk(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        self.junk += 1;
        if self.junk > JUNK_COMMANDS.saturating_add(self.settings.max_recipients) {
            return self.count_error(out);
        }
        None
    }

    /// Writes a refusal that counts as an error whatever its code (a refused MAIL or
    /// AUTH: a client that keeps being refused is not sending mail).
    pub(super) fn refuse(&mut self, reply: Reply, out: &mut Vec<u8>) -> Option<Step> {
        let protocol_error = reply.is_protocol_error();
        let step = self.respond(reply, out);
        match (step, protocol_error) {
            (None, false) => self.count_error(out),
            (step, _) => step,
        }
    }

    pub(super) fn count_error(&mut self, out: &mut Vec<u8>) -> Option<Step> {
        self.errors += 1;
        if self.errors >= self.settings.max_errors {
            Reply::new(421, "4.7.0", "Too many errors, closing connection").write_to(out);
            return Some(Step::Close);
        }
        None
    }

    /// Forgets the transaction in progress (RSET, a new HELO, after a mail).
    pub(super) fn reset(&mut self) {
        self.transaction = None;
        self.message = Vec::new();
        self.give_back_budget();
        self.give_back_quota();
    }

    /// Makes room in the message buffer for `incoming` more octets, taken from the
    /// shared budget first; `false` when the budget is spent. The buffer grows by
    /// doubling up to `smtp.max_message_size`, and only ever within what was taken, so
    /// the budget bounds the memory the buffers really hold.
    pub(super) fn reserve_for(&mut self, incoming: usize) -> bool {
        let needed = self.message.len().saturating_add(incoming);
        if needed <= self.message.capacity() {
            return true;
        }
        let doubled = (self.message.capacity().saturating_mul(2))
            .max(MIN_BUFFER)
            .min(self.settings.max_message_size)
            .max(needed);
        // Doubled if the budget allows (fewer reallocations), else just what is needed.
        if self.reserved == 0 {
            self.holder = self.budget_holder();
        }
        let take = |target: usize| {
            let more = target.saturating_sub(self.reserved);
            (more == 0 || self.budget.take(self.holder.as_deref(), more)).then_some(target)
        };
        let Some(target) = take(doubled).or_else(|| take(needed)) else {
            return false;
        };
        self.reserved = self.reserved.max(target);
        self.message.reserve_exact(target - self.message.len());
        true
    }

    /// How many of the `incoming` octets the DATA receiver may be fed now, with room
    /// made for them: no more than would take the message one octet past
    /// `smtp.max_message_size` (so a limit passed is seen, and pipelined commands after
    /// the final dot are never counted as message), and, when the budget has no room for
    /// that, what the buffer already has room for. A message of exactly the limit is
    /// fed one octet at a time to be thrown away (`true`: the budget may be exactly
    /// `smtp.max_message_size`, with no room for the octet that shows it too big). With
    /// no room at all below the limit, the message is refused `452`
    /// ([`Session::out_of_room`]) and nothing fed.
    fn data_step(&mut self, incoming: usize) -> (usize, bool) {
        let len = self.message.len();
        let max = self.settings.max_message_size;
        let wanted = incoming.min(max.saturating_add(1).saturating_sub(len));
        if self.reserve_for(wanted) {
            return (wanted, false);
        }
        match self.message.capacity() - len {
            0 if len >= max => (wanted.min(1), true),
            0 => {
                self.out_of_room();
                (0, false)
            }
            room => (room.min(wanted), false),
        }
    }

    /// No room for more octets of a DATA message still within `smtp.max_message_size`:
    /// the rest is read and thrown away, then answered `452 4.3.1` (it is not known to
    /// be too big: `552` is for a message past the limit, see `check_data_size`).
    fn out_of_room(&mut self) {
        let SessionState::Data(receiver) = std::mem::replace(&mut self.state, command_state()) else {
            unreachable!("called in the DATA state")
        };
        let rest = DummyDataReceiver::new_data(&receiver);
        self.reset();
        // A message was sent, refused after its data: a completed transaction.
        self.junk = 0;
        tracing::warn!(client = %self.client, "message refused: smtp.max_buffered_bytes in use by messages in progress");
        self.discard(rest, insufficient_storage());
    }

    /// The message's bytes are no longer held (stored, refused, or forgotten): their
    /// share of the budget is given back (the buffer itself is freed by whoever took it).
    pub(super) fn give_back_budget(&mut self) {
        self.budget
            .give_back(self.holder.as_deref(), std::mem::take(&mut self.reserved));
    }

    /// Whose share of the budget this session's message counts against: the
    /// authenticated user (who may connect from many addresses), else the client's
    /// address (an IPv6 one by its /64, which one host usually has whole); none for a
    /// trusted network's smart host, which relays many users' mail at once (as it is
    /// exempt from the per-address connection cap).
    fn budget_holder(&self) -> Option<String> {
        match &self.user {
            Some((name, _)) => Some(format!("user {name}")),
            None if self.policy.is_trusted(self.client.ip()) => None,
            None => Some(super::load::client_key(self.client.ip()).to_string()),
        }
    }

    /// Whether the budget has room for a message of `size` octets (at least a small one)
    /// for this client now: asked at MAIL, so that a client is told at once rather than
    /// after its data.
    pub(super) fn budget_has_room(&self, size: usize) -> bool {
        let wanted = size.max(MIN_BUFFER).min(self.settings.max_message_size);
        self.budget.room_for(self.budget_holder().as_deref()) >= wanted
    }

    /// Whether this session holds part of the budget (a message in progress, or being
    /// stored): the connection loop bounds how long it may (see `MESSAGE_TIMEOUTS`).
    pub fn holds_budget(&self) -> bool {
        self.reserved > 0
    }

    /// Authenticated as one of our `[[peer]]`s: another instance forwarding requests.
    pub(super) fn is_peer(&self) -> bool {
        self.user
            .as_ref()
            .is_some_and(|(name, _)| self.settings.peers.contains(name))
    }

    /// Whom the abuse limits count for the mail in progress: the authenticated user; for
    /// mail a trusted network relays without AUTH, its envelope sender with
    /// `security.per_sender`, else nobody (a smart host sends for many users, who would
    /// share one count: it has its own limits, as Postfix exempts `$mynetworks`); a peer:
    /// nobody (its requests were counted where they came in). A client neither
    /// trusted nor authenticated cannot open a transaction (MAIL refuses it `530`); it
    /// gets here only with a RCPT before MAIL, refused anyway, so its address is as
    /// good an answer as any.
    pub(super) fn limits_key(&self) -> Option<String> {
        if self.is_peer() {
            return None;
        }
        if let Some((name, _)) = &self.user {
            return Some(name.clone());
        }
        if !self.policy.is_trusted(self.client.ip()) {
            return Some(self.client.ip().to_string());
        }
        let sender = self.transaction.as_ref().map(|t| t.sender.as_str())?;
        self.policy.per_sender.then(|| format!("<{sender}>"))
    }

    /// The mail in progress was not accepted: its requests do not count.
    pub(super) fn give_back_quota(&mut self) {
        if self.counted > 0 {
            self.policy.give_back(&self.counted_for, self.counted);
            self.counted = 0;
        }
    }

    /// After `Step::Store`: answer the end of data with the commit's outcome.
    pub fn stored(&mut self, result: Result<Vec<i64>, StoreError>, out: &mut Vec<u8>) -> Option<Step> {
        self.give_back_budget();
        // The transaction is complete, stored or not: the junk count starts again.
        self.junk = 0;
        let reply = match result {
            Ok(ids) => {
                self.counted = 0;
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                Reply::new(250, "2.0.0", format!("Ok: queued as {}", ids.join(" ")))
            }
            Err(StoreError::Full) => {
                self.give_back_quota();
                tracing::warn!(client = %self.client, "mail not stored: the queue is full (store.max_size_mb)");
                Reply::new(451, "4.3.0", "The queue is full, mail not accepted: try again later")
            }
            Err(error) => {
                self.give_back_quota();
                tracing::error!(client = %self.client, %error, "mail not stored");
                Reply::new(451, "4.3.0", "Local storage error, mail not accepted: try again later")
            }
        };
        self.respond(reply, out)
    }

    /// Reads the rest of a message without keeping it, then answers `answer`.
    pub(super) fn discard(&mut self, receiver: DummyDataReceiver, answer: Reply) {
        self.state = SessionState::Discard(receiver, answer);
    }

    /// After `354`: the message follows.
    pub(super) fn start_data(&mut self) {
        let mut receiver = DataReceiver::new();
        // The receiver knows a line's start only from the CRLF before it, and starts as if
        // in the middle of a line: without the CRLF that ended the DATA command, a `.` at
        // once would not end the message and a first line `..x` would stay stuffed.
        let mut seen = Vec::new();
        receiver.ingest(&mut b"\r\n".iter(), &mut seen);
        self.state = SessionState::Data(receiver);
    }

    /// A BDAT chunk of `chunk_size` octets follows.
    pub(super) fn start_bdat(&mut self, chunk_size: usize, last: bool) {
        self.state = SessionState::Bdat(BdatReceiver::new(chunk_size, last));
    }

    /// A DATA message past the size limit: keep reading to its end, keep nothing.
    fn check_data_size(&mut self) {
        if self.message.len() > self.settings.max_message_size {
            self.refuse_too_big();
        }
    }

    /// The DATA message passed `smtp.max_message_size`: read the rest, keep nothing,
    /// answer `552`.
    fn refuse_too_big(&mut self) {
        if let SessionState::Data(receiver) = &self.state {
            let rest = DummyDataReceiver::new_data(receiver);
            self.reset();
            // A message was sent, refused after its data: a completed transaction.
            self.junk = 0;
            self.discard(rest, reply::too_big(self.settings.max_message_size));
        }
    }
}

impl Drop for Session {
    /// A connection that ends in the middle of a mail took nothing.
    fn drop(&mut self) {
        self.give_back_budget();
        self.give_back_quota();
    }
}

/// The smallest message buffer: most mails that become SMS are a few KiB.
const MIN_BUFFER: usize = 8 * 1024;

fn line_too_long() -> Reply {
    Reply::new(500, "5.5.2", "Line too long")
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
            Arc::new(Budget::new(config.smtp.max_buffered_bytes)),
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
                    Step::Read => {
                        // As the fuzz target checks: outside a transaction nothing is held.
                        if session.is_between_commands() && !session.in_transaction() {
                            assert_eq!(session.budget.used(), 0, "budget held outside a transaction");
                        }
                        break;
                    }
                    Step::Flush => continue,
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

    /// Commands a session may send between two transactions before they count as errors.
    fn junk_limit() -> usize {
        JUNK_COMMANDS + Config::default().smtp.max_recipients
    }

    /// The answers' tail, for assertion messages.
    fn tail(text: &str) -> &str {
        &text[text.len().saturating_sub(300)..]
    }

    const CLOSED: &str = "421 4.7.0 Too many errors, closing connection\r\n";

    #[test]
    fn junk_commands_past_the_limit_count_as_errors_until_a_transaction_completes() {
        let max_errors = Config::default().smtp.max_errors;
        let noops = |count: usize| "NOOP\r\n".repeat(count);
        // At the limit (EHLO is one), every NOOP is answered and the session goes on.
        let within = converse(&[format!("EHLO a.example\r\n{}QUIT\r\n", noops(junk_limit() - 1)).as_bytes()]);
        assert!(within.ends_with("221 2.0.0 Bye\r\n"), "{}", tail(&within));
        // Past it, each is still answered, and max_errors of them close the session.
        let past =
            converse(&[format!("EHLO a.example\r\n{}QUIT\r\n", noops(junk_limit() - 1 + max_errors)).as_bytes()]);
        assert!(past.ends_with(&format!("250 2.0.0 OK\r\n{CLOSED}")), "{}", tail(&past));
        // A mail stored in between starts the count again: a smart host that sends RSET
        // between its mails on one connection is never closed for it.
        let mail = "MAIL FROM:<a@example.com>\r\nRCPT TO:<+33477858589@sms>\r\nDATA\r\nhi\r\n.\r\n";
        let relay = format!(
            "EHLO a.example\r\n{}{mail}{}QUIT\r\n",
            noops(junk_limit() - 1),
            noops(junk_limit())
        );
        let relayed = converse(&[relay.as_bytes()]);
        assert!(relayed.ends_with("221 2.0.0 Bye\r\n"), "{}", tail(&relayed));
        // So does a mail refused after its data (here: no text to send).
        let refused = "MAIL FROM:<a@example.com>\r\nRCPT TO:<+33477858589@sms>\r\nDATA\r\n\r\n.\r\n";
        let relay = format!(
            "EHLO a.example\r\n{}{refused}{}QUIT\r\n",
            noops(junk_limit() - 1),
            noops(junk_limit())
        );
        let relayed = converse(&[relay.as_bytes()]);
        assert!(relayed.contains("554 5.6.0"), "{}", tail(&relayed));
        assert!(relayed.ends_with("221 2.0.0 Bye\r\n"), "{}", tail(&relayed));
    }

    #[test]
    fn repeating_ehlo_or_bdat_0_or_a_duplicate_recipient_is_junk_too() {
        let max_errors = Config::default().smtp.max_errors;
        let envelope = "EHLO a.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<+33477858589@sms>\r\n";
        for (start, repeated) in [
            ("", "EHLO a.example\r\n"),
            (envelope, "BDAT 0\r\n"),
            (envelope, "RCPT TO:<+33477858589@sms>\r\n"),
            ("EHLO a.example\r\n", "HELO a.example\r\n"),
        ] {
            let input = format!("{start}{}", repeated.repeat(junk_limit() + max_errors));
            let out = converse(&[input.as_bytes()]);
            assert!(out.ends_with(CLOSED), "{repeated}: {}", tail(&out));
        }
    }

    #[test]
    fn a_refused_mail_from_counts_as_an_error() {
        let max_errors = Config::default().smtp.max_errors;
        let config = Config::default();
        let settings = Arc::new(super::super::Settings::from_config(&config));
        let policy = Arc::new(Policy::from_config(&config));
        let budget = Arc::new(Budget::new(1 << 20));
        // Not trusted, not authenticated: `530` each time.
        let mut session = Session::new(settings, policy, budget, "192.0.2.1:25".parse().unwrap(), false);
        let input = format!(
            "EHLO a.example\r\n{}",
            "MAIL FROM:<a@example.com>\r\n".repeat(max_errors)
        );
        let mut out = Vec::new();
        let step = session.ingest(&mut input.as_bytes().iter(), &mut out);
        let out = String::from_utf8(out).unwrap();
        assert!(matches!(step, Step::Close), "{step:?}: {out}");
        assert!(
            out.ends_with(&format!("530 5.7.0 Authentication required\r\n{CLOSED}")),
            "{out}"
        );
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
            let budget = Arc::new(Budget::new(1 << 20));
            let mut session = Session::new(settings.clone(), policy.clone(), budget, client.parse().unwrap(), false);
            out.clear();
            let mut bytes = b"EHLO a.example\r\nMAIL FROM:<a@example.com>\r\n".iter();
            assert!(matches!(session.ingest(&mut bytes, &mut out), Step::Read));
            let text = String::from_utf8(out.clone()).unwrap();
            assert!(text.lines().last().unwrap().starts_with(code), "{client}: {text}");
        }
    }

    /// The texts of the mails stored in a conversation of `chunks`, fed read by read.
    fn stored_messages(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, String) {
        let mut session = session();
        let (mut all_out, mut all_stored) = (String::new(), Vec::new());
        for chunk in chunks {
            let (out, stored) = feed(&mut session, chunk);
            all_out.push_str(&out);
            all_stored.extend(stored);
        }
        (all_stored, all_out)
    }

    const ENVELOPE: &[u8] = b"EHLO a.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<+33477858589@sms>\r\n";

    #[test]
    fn a_dot_at_once_after_data_ends_an_empty_message_refused_with_554() {
        for split in [false, true] {
            let (stored, out) = match split {
                false => stored_messages(&[ENVELOPE, b"DATA\r\n.\r\nNOOP\r\n"]),
                true => stored_messages(&[ENVELOPE, b"DATA\r\n", b".", b"\r", b"\nNOOP\r\n"]),
            };
            assert!(stored.is_empty(), "{stored:?}");
            assert!(
                out.contains("554 5.6.0 The message is empty: there is no text to send as SMS\r\n250 2.0.0 OK\r\n"),
                "{out}"
            );
        }
    }

    #[test]
    fn the_first_line_is_unstuffed_like_any_other() {
        let (stored, out) = stored_messages(&[ENVELOPE, b"DATA\r\n..x\r\n\r\n..y\r\n.\r\n"]);
        assert_eq!(stored, vec![b".x\r\n\r\n.y\r\n".to_vec()], "{out}");
        let (stored, _) = stored_messages(&[ENVELOPE, b"DATA\r\n", b".", b".x\r\n\r\nbody\r\n.\r\n"]);
        assert_eq!(stored, vec![b".x\r\n\r\nbody\r\n".to_vec()]);
    }

    #[test]
    fn starttls_forgets_the_auth_identity_and_the_greeting() {
        let mut session = session();
        let mut out = Vec::new();
        let mut bytes = b"EHLO a.example\r\n".iter();
        assert!(matches!(session.ingest(&mut bytes, &mut out), Step::Read));
        let alice: crate::users::User = toml::from_str("password = \"x\"").unwrap();
        session.user = Some(("alice".into(), alice));
        session.tls_started();
        assert!(session.user.is_none() && session.helo.is_none());
        out.clear();
        let mut bytes = b"MAIL FROM:<a@example.com>\r\n".iter();
        assert!(matches!(session.ingest(&mut bytes, &mut out), Step::Read));
        assert!(String::from_utf8(out).unwrap().starts_with("503 5.5.1 Say EHLO"));
    }

    /// Answers to `RCPT` for two numbers from a session of `client` under `config`, with
    /// a limit of one request a minute.
    fn two_recipients(client: &str, edit: impl FnOnce(&mut Config), user: Option<&str>) -> String {
        let mut config = Config::default();
        config.security.per_minute = 1;
        config.security.trusted_networks = vec!["127.0.0.1/32".parse().unwrap()];
        edit(&mut config);
        let settings = Arc::new(super::super::Settings::from_config(&config));
        let policy = Arc::new(Policy::from_config(&config));
        let budget = Arc::new(Budget::new(1 << 20));
        let mut session = Session::new(settings, policy, budget, client.parse().unwrap(), true);
        if let Some(name) = user {
            let user: crate::users::User = toml::from_str("password = \"x\"").unwrap();
            session.user = Some((name.to_string(), user));
        }
        let mut out = Vec::new();
        let mut bytes = b"EHLO a.example\r\nMAIL FROM:<a@example.com>\r\n\
            RCPT TO:<+33477858589@sms>\r\nRCPT TO:<+447911123456@sms>\r\n"
            .iter();
        assert!(matches!(session.ingest(&mut bytes, &mut out), Step::Read));
        let text = String::from_utf8(out).unwrap();
        text.lines()
            .skip_while(|l| !l.contains("Sender"))
            .skip(1)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_trusted_relay_is_not_limited_per_address_but_per_sender_if_asked_and_users_always() {
        let relayed = two_recipients("127.0.0.1:25", |_| {}, None);
        assert_eq!(relayed.matches("250 2.1.5").count(), 2, "{relayed}");
        let per_sender = two_recipients("127.0.0.1:25", |c| c.security.per_sender = true, None);
        assert!(
            per_sender.ends_with("450 4.7.1 <a@example.com>: more than 1 requests in a minute, try again later"),
            "{per_sender}"
        );
        let user = two_recipients("192.0.2.1:25", |_| {}, Some("alice"));
        assert!(
            user.ends_with("450 4.7.1 alice: more than 1 requests in a minute, try again later"),
            "{user}"
        );
        let user_on_trusted = two_recipients("127.0.0.1:25", |_| {}, Some("alice"));
        assert!(user_on_trusted.contains("450 4.7.1 alice:"), "{user_on_trusted}");
    }

    /// A session sharing `budget`, through the envelope (and `more`), and its answers.
    fn session_with(budget: &Arc<Budget>, more: &[u8]) -> (Session, String, Vec<Vec<u8>>) {
        let config = Config::default();
        let settings = Arc::new(super::super::Settings::from_config(&config));
        let policy = Arc::new(Policy::from_config(&config));
        let mut session = Session::new(settings, policy, budget.clone(), "127.0.0.1:1".parse().unwrap(), true);
        let (out, stored) = feed(&mut session, &[ENVELOPE, more].concat());
        (session, out, stored)
    }

    /// Feeds `bytes` to `session`: its answers, and the mails stored.
    fn feed(session: &mut Session, bytes: &[u8]) -> (String, Vec<Vec<u8>>) {
        let mut out = Vec::new();
        let mut stored = Vec::new();
        let mut bytes = bytes.iter();
        loop {
            match session.ingest(&mut bytes, &mut out) {
                Step::Read => break,
                Step::Flush => continue,
                Step::Store(mail) => {
                    stored.push(mail.raw.clone());
                    let _ = session.stored(Ok(vec![1]), &mut out);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        (String::from_utf8(out).unwrap(), stored)
    }

    #[test]
    fn messages_in_progress_share_one_budget_and_past_it_get_452_and_the_session_goes_on() {
        let budget = Arc::new(Budget::new(20 * 1024));
        let body = "x".repeat(76) + "\r\n";
        let half = format!("DATA\r\nSubject: a\r\n\r\n{}", body.repeat(170));
        let (mut first, out, _) = session_with(&budget, half.as_bytes());
        assert!(
            out.ends_with("354 Send the message, end with <CRLF>.<CRLF>\r\n"),
            "{out}"
        );
        let held = budget.used();
        assert!((13_000..=16 * 1024).contains(&held), "{held}");
        // A second session is told at MAIL: the budget has no room for a message now.
        let (mut second, out, _) = session_with(&budget, b"");
        assert!(
            out.contains("452 4.3.1 Insufficient system storage: too many messages in progress, try again later"),
            "{out}"
        );
        // The first ends its message: stored, and its bytes given back.
        let (out, stored) = feed(&mut first, b".\r\n");
        assert!(out.starts_with("250 2.0.0 Ok: queued as 1"), "{out}");
        assert_eq!(stored.len(), 1);
        assert_eq!(budget.used(), 0);
        // A message that outgrows the budget is read to its end, refused, and forgotten.
        let (out, _) = feed(
            &mut second,
            b"MAIL FROM:<a@example.com>\r\nRCPT TO:<+33477858589@sms>\r\nDATA\r\n",
        );
        assert!(
            out.ends_with("354 Send the message, end with <CRLF>.<CRLF>\r\n"),
            "{out}"
        );
        let big = format!("Subject: b\r\n\r\n{}.\r\nNOOP\r\n", body.repeat(400));
        let (out, stored) = feed(&mut second, big.as_bytes());
        assert!(stored.is_empty());
        assert_eq!(
            out,
            "452 4.3.1 Insufficient system storage: too many messages in progress, try again later\r\n250 2.0.0 OK\r\n"
        );
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_user_holds_at_most_its_share_of_the_budget_and_a_trusted_relay_no_share_of_its_own() {
        let budget = Arc::new(Budget::with_share(1 << 20, 20 * 1024));
        let mut config = Config::default();
        config.security.trusted_networks = vec!["127.0.0.1/32".parse().unwrap()];
        let settings = Arc::new(super::super::Settings::from_config(&config));
        let policy = Arc::new(Policy::from_config(&config));
        let open = |client: &str, user: Option<&str>, bytes: &[u8]| {
            let mut session = Session::new(
                settings.clone(),
                policy.clone(),
                budget.clone(),
                client.parse().unwrap(),
                true,
            );
            if let Some(name) = user {
                let user: crate::users::User = toml::from_str("password = \"x\"").unwrap();
                session.user = Some((name.to_string(), user));
            }
            let (out, _) = feed(&mut session, &[ENVELOPE, bytes].concat());
            (session, out)
        };
        let body = format!("DATA\r\nSubject: a\r\n\r\n{}", "x".repeat(13_000));
        let (_first, out) = open("127.0.0.2:1", Some("alice"), body.as_bytes());
        assert!(
            out.ends_with("354 Send the message, end with <CRLF>.<CRLF>\r\n"),
            "{out}"
        );
        // alice's second session is told at MAIL, wherever from; bob's is not.
        let (_second, out) = open("127.0.0.3:1", Some("alice"), b"");
        assert!(out.contains("452 4.3.1"), "{out}");
        let (_bob, out) = open("127.0.0.2:2", Some("bob"), b"");
        assert!(out.contains("250 2.1.0"), "{out}");
        // A smart host on a trusted network relays for many users at once: bound by the
        // whole budget only.
        let relayed: Vec<_> = (1..=3)
            .map(|port| open(&format!("127.0.0.1:{port}"), None, body.as_bytes()))
            .collect();
        for (_, out) in &relayed {
            assert!(
                out.ends_with("354 Send the message, end with <CRLF>.<CRLF>\r\n"),
                "{out}"
            );
        }
        assert!(budget.used() > 3 * 13_000, "{}", budget.used());
    }

    #[test]
    fn answers_are_flushed_before_they_pass_flush_at() {
        let mut session = session();
        let mut out = Vec::new();
        let input = "EHLO x\r\n".repeat(2048);
        let mut bytes = input.as_bytes().iter();
        let mut flushes = 0;
        loop {
            match session.ingest(&mut bytes, &mut out) {
                Step::Flush => {
                    // At most one answer past the mark (an EHLO answer is ~200 octets).
                    assert!((FLUSH_AT..FLUSH_AT + 512).contains(&out.len()), "{}", out.len());
                    out.clear();
                    flushes += 1;
                }
                Step::Read | Step::Close => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(out.len() < FLUSH_AT + 512);
        assert!(flushes > 1, "{flushes}");
    }

    /// Answers to a message of `body_size` octets under `max_message_size`, with a budget
    /// of `budget` of which `held` is taken by someone else, fed in reads of 16 KiB as the
    /// connection loop does, with a command pipelined after the final dot.
    fn message_under_limit(max_message_size: usize, budget: usize, held: usize, body_size: usize) -> String {
        let mut config = Config::default();
        config.smtp.max_message_size = max_message_size;
        let settings = Arc::new(super::super::Settings::from_config(&config));
        let policy = Arc::new(Policy::from_config(&config));
        let budget = Arc::new(Budget::new(budget));
        assert!(budget.take(Some("someone else"), held));
        let mut session = Session::new(settings, policy, budget, "127.0.0.1:1".parse().unwrap(), true);
        let line = format!("{}\r\n", "x".repeat(98));
        let body = line.repeat(body_size / line.len());
        let input = [
            ENVELOPE,
            b"DATA\r\nSubject: a\r\n\r\n",
            body.as_bytes(),
            b".\r\nNOOP\r\n",
        ]
        .concat();
        let mut out = String::new();
        for read in input.chunks(16 * 1024) {
            out.push_str(&feed(&mut session, read).0);
        }
        out
    }

    #[test]
    fn a_message_within_the_limit_is_never_refused_as_too_big() {
        // max_buffered_bytes == max_message_size (allowed), idle server: it fits.
        let out = message_under_limit(64 * 1024, 64 * 1024, 0, 60 * 1024);
        assert!(out.contains("250 2.0.0 Ok: queued as 1"), "{out}");
        // The budget nearly spent: 452 (try later), not 552 (never).
        let out = message_under_limit(64 * 1024, 64 * 1024, 40 * 1024, 60 * 1024);
        assert!(out.ends_with("452 4.3.1 Insufficient system storage: too many messages in progress, try again later\r\n250 2.0.0 OK\r\n"), "{out}");
        // Past the limit: 552.
        let out = message_under_limit(64 * 1024, 64 * 1024, 0, 70 * 1024);
        assert!(out.contains("552 5.3.4"), "{out}");
    }

    #[test]
    fn an_auth_dialogue_has_the_command_timeout() {
        let mut config = Config::default();
        config.smtp.command_timeout_secs = 30;
        config.smtp.data_timeout_secs = 600;
        let settings = Arc::new(super::super::Settings::from_config(&config));
        let policy = Arc::new(Policy::from_config(&config));
        let budget = Arc::new(Budget::new(1 << 20));
        let mut session = Session::new(settings, policy, budget, "127.0.0.1:1".parse().unwrap(), true);
        let (out, _) = feed(&mut session, b"EHLO a.example\r\nAUTH LOGIN\r\n");
        assert!(out.ends_with("334 VXNlcm5hbWU6\r\n"), "{out}");
        assert_eq!(session.timeout(), Duration::from_secs(30));
    }

    #[test]
    fn a_dropped_session_gives_its_bytes_back() {
        let budget = Arc::new(Budget::new(1 << 20));
        let (session, _, _) = session_with(&budget, b"DATA\r\nSubject: a\r\n\r\nbody");
        assert!(budget.used() > 0);
        drop(session);
        assert_eq!(budget.used(), 0);
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
