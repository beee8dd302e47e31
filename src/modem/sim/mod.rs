//! A simulated GSM modem on a pseudo-terminal, so that the gateway's real serial code
//! drives it exactly as it drives /dev/ttyUSB0: AT commands in PDU mode (3GPP TS 27.005,
//! 27.007), echo until `ATE0`, the `> ` prompt of `AT+CMGS`, status reports and incoming
//! SMS as unsolicited codes, and faults chosen by destination number (`cms_error`,
//! `report_failure`, `hang_up`, `silent`, `repeat_final`) or of the line itself
//! (`late_first_answer_ms`, `garbage`, `no_prompt`, `wedge_after_sends`) and of its SIM
//! (`cpin_not_ready`), and an SMS announced that is not there (`phantom_sms`).
//!
//! Every SMS part it accepts is appended as one JSON line to the records file, which is
//! how tests (and `smsgw modem sim` users) see what was "sent".
//!
//! A `hang_up` fault unplugs the modem for good: the pseudo-terminal is closed, the
//! gateway's reads end and its reopen fails (the device node is gone). The kernel may
//! later hand the same /dev/pts number to another pseudo-terminal.
//!
//! Bytes written while no one has the port open wait in the pseudo-terminal for the next
//! opener, as they would not on a USB modem; the gateway should drain or flush on open.

mod clock;
mod command;
mod execute;
mod modem;
mod pty;
mod record;
mod report;
mod session;
mod storage;
mod submit;
mod types;

use std::io;
use std::path::PathBuf;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::sms::EncodeError;

pub use crate::config::{Incoming, SimConfig};

/// Why a simulated modem stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Reading or writing its pseudo-terminal failed.
    #[error("pseudo-terminal: {0}")]
    Pty(#[source] io::Error),
    /// An accepted part could not be written to the records file.
    #[error("records file {path}: {source}")]
    Records {
        /// The records file (`sim-<name>.jsonl`).
        path: PathBuf,
        /// The write error.
        #[source]
        source: io::Error,
    },
    /// A configured incoming SMS cannot be encoded.
    #[error("incoming SMS from {from:?}: {source}")]
    Incoming {
        /// The configured sender (`from`) of the incoming SMS.
        from: String,
        /// Why it cannot be encoded.
        #[source]
        source: EncodeError,
    },
}

/// A running simulated modem.
#[derive(Debug)]
pub struct Sim {
    /// The pseudo-terminal slave to open as the modem's serial port.
    pub device: PathBuf,
    task: JoinHandle<Result<(), SimError>>,
}

impl Sim {
    /// Waits until the modem stops: on shutdown, a `hang_up` fault, or a failure.
    pub async fn stopped(self) -> Result<(), SimError> {
        self.task
            .await
            .unwrap_or_else(|join| std::panic::resume_unwind(join.into_panic()))
    }
}

/// Starts modem `name` on a new pseudo-terminal; it runs until `shutdown`.
/// `records` is `<data_dir>/sim-<name>.jsonl`, created if missing, appended to. The
/// network delivers to it every SMS written as a JSON file (`{"from": …, "text": …}`)
/// into [`inject_dir`]`(records)` (`smsgw modem inject`), and deletes the file.
pub async fn start(name: &str, config: SimConfig, records: PathBuf, shutdown: CancellationToken) -> io::Result<Sim> {
    let modem = modem::Modem::new(name, config, clock::Now::read())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let inject = inject_dir(&records);
    let records = record::Records::open(records).await?;
    let pty = pty::Pty::open()?;
    let device = pty.device.clone();
    tracing::info!(modem = name, device = %device.display(), "simulated modem started");
    let task = tokio::spawn(session::run(pty, modem, records, inject, shutdown));
    Ok(Sim { device, task })
}

/// Where the modem whose records file is `records` finds the SMS to receive: beside it,
/// named like it with `.inject` (`sim-<name>.inject/`).
pub fn inject_dir(records: &std::path::Path) -> PathBuf {
    records.with_extension("inject")
}
