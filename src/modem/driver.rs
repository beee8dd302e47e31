//! One modem's serial port: commands with timeouts, the PDU send dialogue, and the
//! unsolicited codes that arrive at any moment (kept aside while a command runs).

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

use super::at::{self, Command, Event, Final};

/// How long a plain command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a command got no usable answer; the worker reopens the port after most of them.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    /// Reading or writing the port failed, or it would not open.
    #[error("serial port: {0}")]
    Io(std::io::Error),
    /// No final result in time: the command as sent, and the timeout it had.
    #[error("no answer to {0} within {1:?}")]
    Timeout(String, Duration),
    /// The command ended with something other than `OK`.
    #[error("{command} answered {result:?}")]
    Failed {
        /// The command as sent.
        command: String,
        /// How it ended instead.
        result: Final,
    },
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
    Refused(Final),
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
}

impl Port {
    /// Opens the serial device at `baud` bits per second, without sending anything yet.
    pub fn open(path: &Path, baud: u32) -> Result<Port, AtError> {
        let stream = tokio_serial::new(path.to_string_lossy(), baud)
            .open_native_async()
            .map_err(|e| AtError::Io(std::io::Error::other(format!("cannot open {}: {e}", path.display()))))?;
        Ok(Port {
            stream,
            reader: at::Reader::default(),
            events: VecDeque::new(),
            unsolicited: VecDeque::new(),
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

    /// The next event of a command in progress; unsolicited ones are set aside.
    /// `timeout` is what the deadline was set from, for the error message.
    async fn next_reply(&mut self, deadline: Instant, timeout: Duration, command: &str) -> Result<Event, AtError> {
        loop {
            while let Some(event) = self.events.pop_front() {
                match event {
                    Event::Final(_) | Event::Info(_) | Event::Prompt => return Ok(event),
                    other => self.unsolicited.push_back(other),
                }
            }
            tokio::time::timeout_at(deadline, self.fill())
                .await
                .map_err(|_| AtError::Timeout(command.to_string(), timeout))??;
        }
    }

    /// Waits for an unsolicited code while no command runs (cancel-safe).
    pub async fn next_unsolicited(&mut self) -> Result<Event, AtError> {
        loop {
            if let Some(event) = self.unsolicited.pop_front() {
                return Ok(event);
            }
            match self.events.pop_front() {
                // A late answer to a command that timed out: nobody waits for it.
                Some(Event::Final(_) | Event::Info(_) | Event::Prompt) => continue,
                Some(event) => return Ok(event),
                None => self.fill().await?,
            }
        }
    }

    async fn write_line(&mut self, text: &str) -> Result<(), AtError> {
        tracing::trace!(command = text, "to modem");
        self.stream.write_all(format!("{text}\r").as_bytes()).await?;
        Ok(())
    }

    /// Runs a command; returns its information lines if it ended with OK.
    pub async fn command(&mut self, command: &Command, timeout: Duration) -> Result<Vec<String>, AtError> {
        let text = command.to_string();
        self.write_line(&text).await?;
        let deadline = Instant::now() + timeout;
        let mut info = Vec::new();
        loop {
            match self.next_reply(deadline, timeout, &text).await? {
                Event::Info(line) => info.push(line),
                Event::Final(Final::Ok) => return Ok(info),
                Event::Final(result) => return Err(AtError::Failed { command: text, result }),
                _ => {}
            }
        }
    }

    /// `AT+CMGS=<n>`, the PDU after the prompt, Ctrl-Z; returns the message reference.
    /// `timeout`: how long the network may take to accept the SMS after its PDU.
    pub async fn send_pdu(&mut self, hex: &str, tpdu_len: usize, timeout: Duration) -> Result<u8, SendError> {
        let command = Command::Send(tpdu_len).to_string();
        self.write_line(&command).await.map_err(SendError::BeforePdu)?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            match self
                .next_reply(deadline, COMMAND_TIMEOUT, &command)
                .await
                .map_err(SendError::BeforePdu)?
            {
                Event::Prompt => break,
                Event::Final(result) => return Err(SendError::Refused(result)),
                _ => {}
            }
        }
        let mut pdu = hex.as_bytes().to_vec();
        pdu.push(0x1A);
        // From the first byte of the PDU on, the SMS may leave even if we hear nothing.
        self.stream
            .write_all(&pdu)
            .await
            .map_err(|e| SendError::AfterPdu(e.into()))?;
        let deadline = Instant::now() + timeout;
        let mut info = Vec::new();
        loop {
            match self
                .next_reply(deadline, timeout, &command)
                .await
                .map_err(SendError::AfterPdu)?
            {
                Event::Info(line) => info.push(line),
                Event::Final(Final::Ok) => {
                    // OK without a reference: the SMS probably left; we cannot match a report.
                    let unconfirmed = SendError::AfterPdu(AtError::Failed {
                        command,
                        result: Final::Ok,
                    });
                    return at::message_reference(&info).ok_or(unconfirmed);
                }
                Event::Final(result) => return Err(SendError::Refused(result)),
                _ => {}
            }
        }
    }
}
