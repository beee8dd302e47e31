//! One modem's serial port: commands with timeouts, the PDU send dialogue, and the
//! unsolicited codes that arrive at any moment (kept aside while a command runs). Every
//! write has a deadline, and no answer is trusted while the port is out of step with the
//! modem: `sync` decides how to get back in step, this file does its I/O.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use super::at::{self, Command, ESC, Event, Final, Refusal};
use super::sync::{Resync, Step, Stuck};

/// Reads `drain_pending` makes before a command at most (each up to 1 KiB).
const MAX_DRAIN_READS: usize = 16;

/// Why a command got no usable answer; the worker reopens the port after most of them.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    /// Reading or writing the port failed, or it would not open.
    #[error("serial port: {0}")]
    Io(std::io::Error),
    /// The port took no bytes within the deadline (a wedged USB port): the modem is down.
    #[error("serial port: writing took longer than {0:?}")]
    Stalled(Duration),
    /// No final result in time: the command as logged (PIN hidden), and the timeout.
    #[error("no answer to {0} within {1:?}")]
    Timeout(String, Duration),
    /// The command ended with something other than `OK`.
    #[error("{command} answered {result:?}")]
    Failed {
        /// The command as logged (PIN hidden).
        command: String,
        /// How it ended instead.
        result: Final,
    },
    /// An answer that cannot be the command's own (an `OK` without the line it must
    /// carry, a prompt where none is due): a late answer to another command. Not a
    /// result: the port is out of step until resynchronised.
    #[error("{command} got an answer that is not its own (expected {expected})")]
    Implausible {
        /// The command as logged (PIN hidden).
        command: String,
        /// What its answer lacked.
        expected: &'static str,
    },
    /// The modem could not be brought back in step (see `sync`).
    #[error("modem out of step: {0}")]
    OutOfStep(Stuck),
}

/// Where an `AT+CMGS` dialogue stopped: before the PDU went out it is safe to retry;
/// after, only the modem's own error answer says it was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No prompt came (timeout, port error): nothing left, a retry is safe.
    #[error("before the PDU was sent: {0}")]
    BeforePdu(AtError),
    /// The modem answered an error, before the prompt or after the PDU: not sent.
    #[error("the modem refused the SMS: {0:?}")]
    Refused(Refusal),
    /// The PDU was written but not confirmed (or `OK` came without a reference): the
    /// SMS may have been sent.
    #[error("after the PDU was sent: {0}")]
    AfterPdu(AtError),
}

// Not `#[from]`: the message already says it, a source would print it twice.
impl From<std::io::Error> for AtError {
    fn from(error: std::io::Error) -> AtError {
        AtError::Io(error)
    }
}

/// One modem's open serial port; one worker owns it.
pub struct Port {
    stream: SerialStream,
    reader: at::Reader,
    /// Events read but not consumed yet, in arrival order.
    events: VecDeque<Event>,
    /// Unsolicited codes that arrived during a command, for the worker to handle after.
    pub unsolicited: VecDeque<Event>,
    /// How long a command may wait for its answer, and a write for the port.
    timeout: Duration,
    /// No answer is owed but the next command's (see `sync`); false until the first
    /// resynchronisation.
    in_step: bool,
    /// The modem's name, for the logs.
    name: String,
}

impl Port {
    /// Opens the serial device at `baud` bits per second, without sending anything yet;
    /// `timeout` bounds each command and each write. Out of step until resynchronised.
    pub fn open(path: &Path, baud: u32, name: &str, timeout: Duration) -> Result<Port, AtError> {
        let stream = tokio_serial::new(path.to_string_lossy(), baud)
            .open_native_async()
            .map_err(|e| AtError::Io(std::io::Error::other(format!("cannot open {}: {e}", path.display()))))?;
        Ok(Port {
            stream,
            reader: at::Reader::default(),
            events: VecDeque::new(),
            unsolicited: VecDeque::new(),
            timeout,
            in_step: false,
            name: name.to_string(),
        })
    }

    /// Reads once from the port and parses what came.
    async fn fill(&mut self) -> Result<(), AtError> {
        let mut buffer = [0u8; 1024];
        let count = self.stream.read(&mut buffer).await?;
        if count == 0 {
            return Err(AtError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let mut events = Vec::new();
        self.reader.push(&buffer[..count], &mut events);
        self.events.extend(events);
        Ok(())
    }

    /// The next answer (final result, information line, prompt) read before `deadline`,
    /// or None; unsolicited codes are set aside for the worker.
    async fn answer_before(&mut self, deadline: Instant) -> Result<Option<Event>, AtError> {
        loop {
            while let Some(event) = self.events.pop_front() {
                match event {
                    Event::Final(_) | Event::Info(_) | Event::Prompt => return Ok(Some(event)),
                    other => self.unsolicited.push_back(other),
                }
            }
            match tokio::time::timeout_at(deadline, self.fill()).await {
                Ok(read) => read?,
                Err(_) => return Ok(None),
            }
        }
    }

    /// The next answer of the command in progress; a timeout leaves the port out of step.
    async fn next_reply(&mut self, deadline: Instant, timeout: Duration, command: &Command) -> Result<Event, AtError> {
        match self.answer_before(deadline).await? {
            Some(event) => Ok(event),
            None => {
                self.in_step = false;
                Err(AtError::Timeout(command.to_string(), timeout))
            }
        }
    }

    /// Waits for an unsolicited code while no command runs (cancel-safe).
    pub async fn next_unsolicited(&mut self) -> Result<Event, AtError> {
        loop {
            if let Some(event) = self.unsolicited.pop_front() {
                return Ok(event);
            }
            match self.events.pop_front() {
                // An answer nobody waits for (late, repeated): the next command
                // resynchronises before it trusts one.
                Some(Event::Final(_) | Event::Info(_) | Event::Prompt) => self.out_of_step("an answer while idle"),
                Some(event) => return Ok(event),
                None => self.fill().await?,
            }
        }
    }

    fn out_of_step(&mut self, why: &str) {
        if self.in_step {
            tracing::warn!(modem = %self.name, why, "out of step with the modem: resynchronising before the next command");
        }
        self.in_step = false;
    }

    /// Writes `bytes` within the timeout; a port that does not take them is `Stalled`.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), AtError> {
        match tokio::time::timeout(self.timeout, self.stream.write_all(bytes)).await {
            Ok(written) => Ok(written?),
            Err(_) => {
                self.in_step = false;
                Err(AtError::Stalled(self.timeout))
            }
        }
    }

    async fn write_command(&mut self, command: &Command) -> Result<(), AtError> {
        // The log line shows the PIN as ****; only the port gets `wire()`.
        tracing::trace!(modem = %self.name, %command, "to modem");
        self.write(format!("{}\r", command.wire()).as_bytes()).await
    }

    /// Reads what is already there without waiting: answers nobody waits for put the
    /// port out of step; unsolicited codes are kept. At most `MAX_DRAIN_READS` reads: a
    /// modem that never stops talking leaves the rest for the resynchronisation, which
    /// has a budget.
    async fn drain_pending(&mut self) -> Result<(), AtError> {
        let mut reads = 0;
        while let Ok(read) = tokio::time::timeout(Duration::ZERO, self.fill()).await {
            read?;
            reads += 1;
            if reads >= MAX_DRAIN_READS {
                self.out_of_step("the modem kept talking while drained");
                break;
            }
        }
        let mut stale = 0;
        for event in std::mem::take(&mut self.events) {
            match event {
                Event::Final(_) | Event::Info(_) | Event::Prompt => stale += 1,
                other => self.unsolicited.push_back(other),
            }
        }
        if stale > 0 {
            self.out_of_step("answers nobody waited for");
        }
        Ok(())
    }

    /// Before a command: drains what is pending, and resynchronises if out of step. At
    /// most [`super::sync::budget`] of the command timeout, and a write begun before it ran out.
    /// The worker calls it before it renews a request's lease, so that a send starts on a
    /// port already in step (see `ModemSpec::lease`).
    pub async fn prepare(&mut self) -> Result<(), AtError> {
        self.drain_pending().await?;
        if !self.in_step {
            self.resync().await?;
        }
        Ok(())
    }

    /// Brings the port in step with the modem (ESC, drain, `AT` until its lone `OK`:
    /// see `sync`); also leaves a `> ` prompt a send abandoned.
    pub async fn resync(&mut self) -> Result<(), AtError> {
        let (mut sync, mut step) = Resync::start(self.timeout);
        let started = Instant::now();
        loop {
            step = match step {
                Step::Write(bytes) => {
                    if bytes == [ESC] {
                        tracing::trace!(modem = %self.name, "ESC to modem");
                    } else {
                        tracing::trace!(modem = %self.name, command = "AT", "to modem (probe)");
                    }
                    self.write(&bytes).await?;
                    sync.written(started.elapsed())
                }
                Step::Listen(window) => match self.answer_before(Instant::now() + window).await? {
                    Some(answer) => sync.answer(&answer, started.elapsed()),
                    None => sync.quiet(started.elapsed()),
                },
                Step::InStep => break,
                Step::GiveUp(stuck) => {
                    self.in_step = false;
                    return Err(AtError::OutOfStep(stuck));
                }
            };
        }
        self.in_step = true;
        if sync.discarded() > 0 || sync.probes() > 1 {
            tracing::warn!(
                modem = %self.name,
                discarded = sync.discarded(),
                probes = sync.probes(),
                "late or stray answers discarded; back in step"
            );
        }
        Ok(())
    }

    /// Runs a command (after resynchronising if needed); returns its information lines
    /// if it ended with OK and they fit the command.
    pub async fn command(&mut self, command: &Command) -> Result<Vec<String>, AtError> {
        self.prepare().await?;
        self.write_command(command).await?;
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        let mut info = Vec::new();
        loop {
            match self.next_reply(deadline, timeout, command).await? {
                Event::Info(line) => info.push(line),
                Event::Final(Final::Ok) if at::plausible(command, &info) => return Ok(info),
                Event::Final(Final::Ok) => {
                    let expected = match command.expects() {
                        at::Expect::Line(prefix) => prefix,
                        _ => "an information line",
                    };
                    return Err(self.implausible(command, expected));
                }
                Event::Final(result) => {
                    return Err(AtError::Failed {
                        command: command.to_string(),
                        result,
                    });
                }
                // The modem waits for a PDU nobody will send: out of step (ESC next).
                Event::Prompt => return Err(self.implausible(command, "no prompt")),
                _ => {}
            }
        }
    }

    fn implausible(&mut self, command: &Command, expected: &'static str) -> AtError {
        self.in_step = false;
        AtError::Implausible {
            command: command.to_string(),
            expected,
        }
    }

    /// `AT+CMGS=<n>`, the PDU after the prompt, Ctrl-Z; returns the message reference.
    /// `timeout`: how long the network may take to accept the SMS after its PDU.
    pub async fn send_pdu(&mut self, hex: &str, tpdu_len: usize, timeout: Duration) -> Result<u8, SendError> {
        let command = Command::Send(tpdu_len);
        self.prepare().await.map_err(SendError::BeforePdu)?;
        self.write_command(&command).await.map_err(SendError::BeforePdu)?;
        let prompt_timeout = self.timeout;
        let deadline = Instant::now() + prompt_timeout;
        loop {
            // A timeout leaves the port out of step: the next resynchronisation starts
            // with ESC, which leaves the prompt should it come late.
            match self
                .next_reply(deadline, prompt_timeout, &command)
                .await
                .map_err(SendError::BeforePdu)?
            {
                Event::Prompt => break,
                // OK before the prompt ends no AT+CMGS: a late answer to another command.
                Event::Final(result) => match result.refusal() {
                    Some(refusal) => return Err(SendError::Refused(refusal)),
                    None => return Err(SendError::BeforePdu(self.implausible(&command, "the > prompt"))),
                },
                // A line before the prompt (a repeated +CMGS): not ours.
                _ => self.out_of_step("a line before the prompt"),
            }
        }
        let mut pdu = hex.as_bytes().to_vec();
        pdu.push(0x1A);
        // From the first byte of the PDU on, the SMS may leave even if we hear nothing.
        self.write(&pdu).await.map_err(SendError::AfterPdu)?;
        let deadline = Instant::now() + timeout;
        let mut info = Vec::new();
        loop {
            match self
                .next_reply(deadline, timeout, &command)
                .await
                .map_err(SendError::AfterPdu)?
            {
                Event::Info(line) => info.push(line),
                Event::Final(result) => match result.refusal() {
                    Some(refusal) => return Err(SendError::Refused(refusal)),
                    None => {
                        if let Some(mr) = at::message_reference(&info) {
                            return Ok(mr);
                        }
                        // OK without +CMGS is not this SMS's answer (a late or repeated
                        // one): wait on for it; if none comes in time, it is uncertain.
                        self.out_of_step("OK without +CMGS after a PDU");
                        info.clear();
                    }
                },
                _ => {}
            }
        }
    }
}
