//! GSM modems: one worker per modem speaking AT commands in PDU mode over a serial port,
//! a dispatcher that gives each free modem the oldest due request it may send (the
//! cheapest modem first when several want the same one), and a simulated
//! modem on a pseudo-terminal for running without hardware.

pub mod at;
pub mod board;
pub mod driver;
mod errors;
mod pool;
mod protocol;
pub mod sim;
pub mod sync;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::e164::E164;
use crate::sms::Language;
use crate::store::Store;
pub use at::{Registration, SignalQuality};
pub use board::{Board, Health, ModemState};

/// A modem as the pool sees it: where it is and what it costs.
#[derive(Debug, Clone)]
pub(crate) struct ModemSpec {
    /// The `[[modem]]` name: in logs, on the board, and as the request's modem in the store.
    pub name: String,
    /// The serial port to open: the configured port, or the simulator's pseudo-terminal.
    pub device: PathBuf,
    /// Serial line speed, in bits per second.
    pub baud: u32,
    /// The SIM's PIN, entered only when `AT+CPIN?` asks for it; empty: none configured.
    /// Shown as `****` by `Debug`.
    pub pin: at::Secret,
    /// SMS centre number set with `AT+CSCA`; empty: the SIM's own.
    pub smsc: String,
    /// SMS parts per minute this modem may send; 0: no limit.
    pub per_minute: u32,
    /// How long the network may take to accept one part after its PDU.
    pub send_timeout: Duration,
    /// How long any other command may wait for its answer, and a write for the port.
    pub command_timeout: Duration,
    /// How often, while idle, signal quality and registration are read again.
    pub radio_poll: Duration,
    /// How status reports come: passed on (`+CDS`), stored (`+CDSI`), or not at all.
    pub reports: config::StatusReports,
    /// (prefix, cost), longest prefix first.
    tariff: Vec<(String, f64)>,
    /// The national language tables (TS 23.038 §6.2.1.2.4) its SMS may use.
    pub languages: Vec<Language>,
}

impl ModemSpec {
    /// The spec of a configured `[[modem]]`, opened at `device`, with the national
    /// language tables its SMS may use.
    pub(crate) fn new(modem: &config::Modem, device: PathBuf, languages: Vec<Language>) -> ModemSpec {
        let mut tariff: Vec<(String, f64)> = modem.tariff.iter().map(|(p, c)| (p.clone(), *c)).collect();
        tariff.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        ModemSpec {
            name: modem.name.clone(),
            device,
            baud: modem.baud,
            pin: at::Secret::new(modem.pin.clone()),
            smsc: modem.smsc.clone(),
            per_minute: modem.per_minute,
            send_timeout: Duration::from_secs(modem.send_timeout_secs),
            command_timeout: Duration::from_secs(modem.command_timeout_secs.get()),
            radio_poll: Duration::from_secs(modem.radio_poll_secs.get()),
            reports: modem.status_reports,
            tariff,
            languages,
        }
    }

    /// How long this modem holds a request per part, from the renewal just before the
    /// part's `AT+CMGS`. The worker resynchronises before renewing, but `send_pdu` may
    /// find the modem out of step again: its resynchronisation ([`sync::budget`], and a
    /// write begun before that ran out), the `AT+CMGS` write and its prompt (a command
    /// timeout each) come before the PDU, so a PDU is never written after the lease ran
    /// out; then the network's answer, and a margin for the store's own delays.
    pub(crate) fn lease(&self) -> Duration {
        // Bounded by config validation (command and send timeouts): no overflow.
        sync::budget(self.command_timeout) + self.command_timeout * 3 + self.send_timeout + Duration::from_secs(30)
    }

    /// The prefixes of its tariff: it sends only to numbers under one of them.
    pub(crate) fn prefixes(&self) -> Vec<String> {
        self.tariff.iter().map(|(prefix, _)| prefix.clone()).collect()
    }

    /// Cost of one part to `number` (E.164), by the longest matching prefix.
    pub(crate) fn tariff_for(&self, number: &E164) -> Option<f64> {
        self.tariff
            .iter()
            .find(|(prefix, _)| number.starts_with(prefix.as_str()))
            .map(|(_, cost)| *cost)
    }
}

/// The device of a configured modem: its serial port, or a simulated modem started for it.
/// The records file of simulated modem `name`: `<data_dir>/sim-<name>.jsonl`.
pub fn sim_records(config: &Config, name: &str) -> PathBuf {
    config.instance.data_dir.join(format!("sim-{name}.jsonl"))
}

async fn device(config: &Config, modem: &config::Modem, shutdown: &CancellationToken) -> std::io::Result<PathBuf> {
    if modem.port != "sim" {
        return Ok(PathBuf::from(&modem.port));
    }
    let records = sim_records(config, &modem.name);
    Ok(sim::start(&modem.name, modem.sim.clone(), records, shutdown.clone())
        .await?
        .device)
}

/// Why `smsgw modem probe` could not ask the modem.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No `[[modem]]` of that name: the names that exist.
    #[error("no modem named {0:?} in the config (known: {1})")]
    Unknown(String, String),
    /// The port would not open, or the modem did not answer the first commands.
    #[error(transparent)]
    At(#[from] driver::AtError),
}

/// `smsgw modem probe`: what a modem says about itself, as (question, answer) lines.
pub async fn probe(config: &Config, name: &str) -> Result<Vec<(&'static str, String)>, ProbeError> {
    let Some(modem) = config.modem.iter().find(|m| m.name == name) else {
        let names: Vec<&str> = config.modem.iter().map(|m| m.name.as_str()).collect();
        let known = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        return Err(ProbeError::Unknown(name.to_string(), known));
    };
    let shutdown = CancellationToken::new();
    let device = device(config, modem, &shutdown).await.map_err(driver::AtError::from)?;
    let timeout = Duration::from_secs(modem.command_timeout_secs.get());
    let mut port = driver::Port::open(&device, modem.baud, &modem.name, timeout)?;
    let questions = [
        ("device", None),
        ("manufacturer", Some(at::Command::Manufacturer)),
        ("model", Some(at::Command::Model)),
        ("serial (IMEI)", Some(at::Command::Serial)),
        ("SIM", Some(at::Command::PinQuery)),
        ("registration", Some(at::Command::Registration)),
        ("signal", Some(at::Command::SignalQuality)),
        ("SMS centre", Some(at::Command::ServiceCentreQuery)),
    ];
    port.command(&at::Command::EchoOff).await?;
    port.command(&at::Command::VerboseErrors).await?;
    let mut answers = Vec::new();
    for (question, command) in questions {
        let answer = match command {
            None => device.display().to_string(),
            Some(command) => match port.command(&command).await {
                Ok(lines) => lines.join(" "),
                Err(error) => format!("({error})"),
            },
        };
        answers.push((question, answer));
    }
    shutdown.cancel();
    Ok(answers)
}

/// Starts the simulated modems, then runs the pool until `shutdown`; the workers tell
/// `board` how each modem is.
pub async fn run(config: &Config, board: Arc<Board>, store: Store, shutdown: CancellationToken) -> std::io::Result<()> {
    let mut specs = Vec::new();
    for modem in &config.modem {
        let device = device(config, modem, &shutdown).await?;
        tracing::info!(modem = %modem.name, device = %device.display(), "modem configured");
        specs.push(Arc::new(ModemSpec::new(
            modem,
            device,
            config.sms.national_language_tables.clone(),
        )));
    }
    if specs.is_empty() {
        tracing::warn!("no [[modem]] configured: requests are accepted and wait in the queue");
    }
    let timing = protocol::Timing {
        retry: config.sms.retry_delays_secs.clone(),
        validity: Duration::from_secs(config.sms.validity_minutes * 60),
    };
    let inbound = Arc::new(crate::store::InboundRules::of(config));
    pool::run(specs, board, store, timing, inbound, shutdown).await;
    Ok(())
}
