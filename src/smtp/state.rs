//! Where an SMTP session stands between two reads: what it is reading, the transaction
//! in progress, the command line being counted, and what the connection loop must do
//! next. [`Session`](super::Session) moves between these states.

use std::slice::Iter;

use smtp_proto::request::receiver::{
    BdatReceiver, DataReceiver, DummyDataReceiver, DummyLineReceiver, LineReceiver, RequestReceiver,
};

use super::reply::Reply;
use crate::store::{NewMail, NewRequest};

/// What the session is reading.
pub(super) enum SessionState {
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

/// Where a multi-line AUTH dialogue stands.
#[derive(Debug)]
pub(super) enum AuthStage {
    PlainResponse,
    LoginUser,
    LoginPassword { user: String },
}

/// What the connection loop must do next.
#[derive(Debug)]
pub enum Step {
    /// Read more bytes (after writing what was answered).
    Read,
    /// Commit this mail, then call [`Session::stored`](super::Session::stored) and keep
    /// ingesting.
    Store(Box<NewMail>),
    /// Check this password (slowly, off the runtime), then call
    /// [`Session::authenticated`](super::Session::authenticated).
    Authenticate {
        /// The user name as the client gave it.
        user: String,
        /// The password to check against the users file.
        password: String,
    },
    /// `220` was answered to STARTTLS: drop any bytes already read (RFC 3207 §4.2),
    /// do the handshake, then call [`Session::tls_started`](super::Session::tls_started).
    StartTls,
    /// Write what was answered so far (it reached 8 KiB), then call
    /// [`Session::ingest`](super::Session::ingest) again with the rest of the bytes.
    Flush,
    /// Write what was answered and close the connection.
    Close,
}

/// Answers a session may build from one read before the connection loop writes them:
/// a read of 16 KiB of pipelined `EHLO x` would otherwise build some 350 KB of answers,
/// held while a client that does not read blocks the write (see [`Step::Flush`]).
pub(super) const FLUSH_AT: usize = 8 * 1024;

/// The envelope of the transaction in progress.
#[derive(Debug, Default)]
pub(super) struct Transaction {
    /// The reverse-path of MAIL FROM.
    pub sender: String,
    /// ENVID of MAIL FROM (RFC 3461), as decoded from xtext.
    pub envid: Option<String>,
    /// RET of MAIL FROM (RFC 3461): `FULL` or `HDRS`.
    pub ret: Option<&'static str>,
    /// One request per accepted RCPT TO.
    pub recipients: Vec<NewRequest>,
}

/// Longest command line accepted, CRLF included (RFC 5321 §4.5.3.1.4 allows 512 octets
/// plus extension parameters; this is what smtp-proto buffers at most).
const MAX_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;

/// Counts the bytes of the command line in progress, across reads.
#[derive(Default)]
pub(super) struct LineLength {
    pending: usize,
}

/// Whether the command line in progress is within [`MAX_LINE`].
pub(super) enum LineCheck {
    /// The next line is within the limit (or still arriving within it).
    Ok,
    /// The next line is complete in `bytes` but too long: it has been skipped.
    TooLong,
    /// The line in progress is already too long and its end is not here yet.
    Unterminated,
}

impl LineLength {
    /// Looks for the end of the line in progress in `bytes`; a line that ends too long
    /// is consumed from `bytes`.
    pub(super) fn check(&mut self, bytes: &mut Iter<'_, u8>) -> LineCheck {
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

/// Reading command lines again, after any other state ends.
pub(super) fn command_state() -> SessionState {
    SessionState::Command(RequestReceiver::default())
}
