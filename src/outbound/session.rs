//! The SMTP conversation over any byte stream: commands out, replies in, and the one
//! place where what goes wrong becomes an [`OutboundError`] ([`classify`]).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};

use super::command::Command;
use super::data;
use super::error::OutboundError;
use super::mail::{Mail, Server};
use super::response::{Code, Extensions, Parser, Response, Severity};

/// Longest reply line read at once; the rest of a longer one reads as a line of its own
/// (and is then not SMTP).
const MAX_LINE: usize = 4096;

/// Where the conversation stands when a step fails: it decides what the failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Greeting, EHLO, STARTTLS, AUTH, RSET, NOOP: about the connection, never the mail,
    /// so another server or a later try may do.
    Connection,
    /// MAIL, RCPT, DATA and sending the message: a refusal is about this mail.
    Mail,
    /// The final dot has left and the answer is awaited: the server may have the mail.
    EndOfData,
}

/// A step that did not go as it should, before it is sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StepFailure {
    /// The server answered, with another kind of reply than the step needs.
    Refused(Response),
    /// No usable answer (I/O error, timeout, closed, not SMTP), with why: the
    /// conversation cannot go on.
    Broken(String),
}

/// What a failure of the step `what` at `phase` means for the mail: permanent only when
/// the server refuses the mail itself for good; unanswered when only the answer to the
/// final dot is missing; temporary otherwise.
pub(super) fn classify(server: &Server, what: &str, phase: Phase, failure: &StepFailure) -> OutboundError {
    match failure {
        StepFailure::Refused(response) => {
            let text = format!("{server} answered {response} to {what}");
            match phase {
                Phase::Mail | Phase::EndOfData if response.is_permanent() => OutboundError::Permanent(text),
                _ => OutboundError::Temporary(text),
            }
        }
        StepFailure::Broken(why) if phase == Phase::EndOfData => OutboundError::Unanswered(format!("{server}: {why}")),
        StepFailure::Broken(why) => OutboundError::Temporary(format!("{server}: {why}")),
    }
}

/// The phase a command's failure falls in.
fn phase(command: &Command<'_>) -> Phase {
    match command {
        Command::Mail { .. } | Command::Rcpt { .. } | Command::Data => Phase::Mail,
        _ => Phase::Connection,
    }
}

/// One conversation with one server, on one stream (TCP, TLS, or a test's pipe).
pub(super) struct Conversation<S> {
    stream: BufStream<S>,
    server: Server,
    timeout: Duration,
    /// An I/O error, a timeout, an answer out of step or a 421: the conversation cannot
    /// go on.
    broken: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conversation<S> {
    /// A conversation with `server` on `stream`; any one read or write may take `timeout`.
    pub(super) fn new(stream: S, server: Server, timeout: Duration) -> Conversation<S> {
        Conversation {
            stream: BufStream::new(stream),
            server,
            timeout,
            broken: false,
        }
    }

    /// The conversation failed (lost, timed out, out of step, 421): nothing more on it.
    pub(super) fn is_broken(&self) -> bool {
        self.broken
    }

    /// The stream, for STARTTLS. Whatever the server sent past its last reply is dropped
    /// with the buffer: no command injection before the handshake.
    pub(super) fn into_inner(self) -> S {
        self.stream.into_inner()
    }

    /// Reads the server's greeting.
    pub(super) async fn greeting(&mut self) -> Result<Response, OutboundError> {
        self.expect("greeting", Phase::Connection, Severity::PositiveCompletion)
            .await
    }

    /// EHLO, and the extensions the server names (HELO, and none, for a server that
    /// knows no EHLO).
    pub(super) async fn ehlo(&mut self, helo: &str) -> Result<Extensions, OutboundError> {
        let ehlo = Command::Ehlo(helo);
        self.write_command(&ehlo).await?;
        let response = match self.read().await {
            Ok(response) => response,
            Err(why) => return Err(self.fail(&ehlo.name(), Phase::Connection, StepFailure::Broken(why))),
        };
        if response.code.severity() == Severity::PositiveCompletion {
            return Ok(Extensions::of(&response));
        }
        self.command(&Command::Helo(helo)).await?;
        Ok(Extensions::default())
    }

    /// One mail: MAIL, RCPT, DATA and the message; `Ok` carries the server's final answer.
    pub(super) async fn transaction(
        &mut self,
        mail: &Mail<'_>,
        extensions: &Extensions,
    ) -> Result<String, OutboundError> {
        let eight_bit = !mail.message.is_ascii() && extensions.has("8BITMIME");
        let from = Command::Mail {
            from: mail.from,
            eight_bit,
            params: &mail.from_params,
        };
        self.command(&from).await?;
        let to = Command::Rcpt {
            to: mail.to,
            params: &mail.to_params,
        };
        self.command(&to).await?;
        self.command(&Command::Data).await?;
        if let Err(why) = self
            .write(&data::dot_stuff(mail.message), Some("sending the message"))
            .await
        {
            return Err(self.fail("the message", Phase::Mail, StepFailure::Broken(why)));
        }
        let response = self
            .expect("the message", Phase::EndOfData, Severity::PositiveCompletion)
            .await?;
        Ok(format!("{} answered {response}", self.server))
    }

    /// Sends `command` and reads its reply, which must be of the kind the command expects.
    pub(super) async fn command(&mut self, command: &Command<'_>) -> Result<Response, OutboundError> {
        self.write_command(command).await?;
        self.expect(&command.name(), phase(command), command.expects()).await
    }

    /// Says goodbye without waiting for the answer: the mails are delivered whatever it is.
    pub(super) async fn quit(&mut self) {
        let _ = self.write(Command::Quit.line().as_bytes(), None).await;
    }

    async fn write_command(&mut self, command: &Command<'_>) -> Result<(), OutboundError> {
        match self.write(command.line().as_bytes(), None).await {
            Ok(()) => Ok(()),
            Err(why) => Err(self.fail(&command.name(), phase(command), StepFailure::Broken(why))),
        }
    }

    /// Reads a reply and sorts it: the `expected` kind, or a failure of `what`.
    async fn expect(&mut self, what: &str, phase: Phase, expected: Severity) -> Result<Response, OutboundError> {
        match self.read().await {
            Ok(response) if response.code.severity() == expected => Ok(response),
            Ok(response) => Err(self.fail(what, phase, StepFailure::Refused(response))),
            Err(why) => Err(self.fail(what, phase, StepFailure::Broken(why))),
        }
    }

    /// Ends the conversation, because `why`: a temporary error.
    pub(super) fn lost(&mut self, why: &str) -> OutboundError {
        self.fail("", Phase::Connection, StepFailure::Broken(why.to_string()))
    }

    /// Marks the conversation broken when the failure ends it, and sorts the failure.
    fn fail(&mut self, what: &str, phase: Phase, failure: StepFailure) -> OutboundError {
        match &failure {
            StepFailure::Broken(_) => self.broken = true,
            // The server is closing the connection (RFC 5321 §3.8).
            StepFailure::Refused(response) if response.code == Code::CLOSING => self.broken = true,
            StepFailure::Refused(_) => {}
        }
        classify(&self.server, what, phase, &failure)
    }

    /// Writes and flushes `bytes`; on failure, why, naming what was being written
    /// (`doing`; nothing for a command line).
    async fn write(&mut self, bytes: &[u8], doing: Option<&str>) -> Result<(), String> {
        let written = tokio::time::timeout(self.timeout, async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await;
        match (written, doing) {
            (Ok(Ok(())), _) => Ok(()),
            (Ok(Err(e)), None) => Err(format!("connection lost: {e}")),
            (Ok(Err(e)), Some(doing)) => Err(format!("connection lost {doing}: {e}")),
            (Err(_), None) => Err("timed out writing".into()),
            (Err(_), Some(doing)) => Err(format!("timed out {doing}")),
        }
    }

    /// Reads one whole reply; on failure, why.
    async fn read(&mut self) -> Result<Response, String> {
        let mut parser = Parser::default();
        loop {
            let mut line = Vec::new();
            let read = tokio::time::timeout(
                self.timeout,
                (&mut self.stream).take(MAX_LINE as u64).read_until(b'\n', &mut line),
            )
            .await
            .map_err(|_| "timed out waiting for an answer".to_string())?
            .map_err(|e| format!("connection lost: {e}"))?;
            if read == 0 {
                return Err("connection closed without an answer".into());
            }
            if let Some(response) = parser.line(&line).map_err(|e| e.to_string())? {
                return Ok(response);
            }
        }
    }
}
