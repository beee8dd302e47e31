//! The `[[modem]]` entries, and the simulated modem's behaviour (`sim = { … }`).

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;

use serde::Deserialize;

/// One GSM modem (`[[modem]]`). Its `Debug` hides the PIN.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modem {
    /// Unique among this instance's modems; names its records and its requests.
    pub name: String,
    /// A serial device such as "/dev/ttyUSB0", or "sim" for the built-in simulated modem.
    pub port: String,
    /// Speed of the serial line, in bits per second.
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// The SIM's PIN, if it asks for one; a wrong one is never retried.
    #[serde(default)]
    pub pin: String,
    /// SMS centre number to set with AT+CSCA; empty: the SIM's own.
    #[serde(default)]
    pub smsc: String,
    /// SMS parts per minute this modem may send; 0: no limit.
    #[serde(default)]
    pub per_minute: u32,
    /// How long the network may take to accept one part after its PDU; past it the
    /// request is `uncertain` (it may have been sent).
    #[serde(default = "default_send_timeout")]
    pub send_timeout_secs: u64,
    /// How long any other command may wait for its answer (and a write for the port);
    /// past it the modem is out of step and resynchronised, or reopened.
    #[serde(default = "default_command_timeout")]
    pub command_timeout_secs: NonZeroU64,
    /// How often an idle modem's signal quality and registration are read again.
    #[serde(default = "default_radio_poll")]
    pub radio_poll_secs: NonZeroU64,
    /// Cost of one SMS part by E.164 prefix (longest match wins); a number matching no
    /// prefix is not sent by this modem.
    #[serde(default = "default_tariff")]
    pub tariff: BTreeMap<String, f64>,
    /// How the modem hands over status reports: "direct" (`+CDS`, most modems) or
    /// "stored" (`+CDSI`, read from its memory: for modems that cannot pass them on).
    #[serde(default)]
    pub status_reports: StatusReports,
    /// The simulated modem's behaviour (`port = "sim"` only).
    #[serde(default)]
    pub sim: SimConfig,
}

/// How a modem hands over the status reports of the SMS it sent (`status_reports`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusReports {
    /// Passed on as they come (`+CDS`): most modems.
    #[default]
    Direct,
    /// Stored in the modem's memory and announced (`+CDSI`), then read from there.
    Stored,
    /// The modem or its network gives none: SMS are sent without asking for one, and
    /// their senders are told `relayed`.
    None,
}

fn default_baud() -> u32 {
    115_200
}

fn default_send_timeout() -> u64 {
    60
}

fn default_command_timeout() -> NonZeroU64 {
    NonZeroU64::new(10).unwrap_or(NonZeroU64::MIN)
}

fn default_radio_poll() -> NonZeroU64 {
    NonZeroU64::new(60).unwrap_or(NonZeroU64::MIN)
}

/// A PIN as logs may show it: whether there is one, never what it is.
fn redacted(pin: &str) -> &'static str {
    if pin.is_empty() { "" } else { "****" }
}

impl fmt::Debug for Modem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Modem")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("baud", &self.baud)
            .field("pin", &redacted(&self.pin))
            .field("smsc", &self.smsc)
            .field("per_minute", &self.per_minute)
            .field("send_timeout_secs", &self.send_timeout_secs)
            .field("command_timeout_secs", &self.command_timeout_secs)
            .field("radio_poll_secs", &self.radio_poll_secs)
            .field("tariff", &self.tariff)
            .field("status_reports", &self.status_reports)
            .field("sim", &self.sim)
            .finish()
    }
}

fn default_tariff() -> BTreeMap<String, f64> {
    BTreeMap::from([("+".to_string(), 0.0)])
}

/// The `sim = { … }` table of a `[[modem]]` whose port is "sim". Its `Debug` hides the
/// PIN.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Time per part before `+CMGS` answers; also the network time of each incoming part.
    pub latency_ms: u64,
    /// Delay of the status report after `+CMGS`.
    pub report_delay_ms: u64,
    /// "" for no PIN; else `AT+CPIN?` answers `SIM PIN` until `AT+CPIN="<pin>"`.
    pub pin: String,
    /// E.164 number → `+CMS ERROR` code answered to `AT+CMGS` for that number.
    pub cms_error: BTreeMap<String, u16>,
    /// Numbers whose status report says permanent failure (TP-ST 0x41).
    pub report_failure: Vec<String>,
    /// Numbers whose `AT+CMGS` closes the pseudo-terminal once the PDU is in, unanswered.
    pub hang_up: Vec<String>,
    /// Numbers whose `AT+CMGS` is never answered; the modem answers later commands.
    pub silent: Vec<String>,
    /// SMS that reach the modem after the first `AT+CNMI`.
    pub incoming: Vec<Incoming>,
    /// The answer to the first command line comes this many milliseconds late (input
    /// is held meanwhile, as a busy modem does); 0: on time.
    pub late_first_answer_ms: u64,
    /// Numbers whose `AT+CMGS` final answer (`+CMGS: <mr>` and `OK`) comes twice: the
    /// repeat is held until the next command line arrives, as a late answer would be.
    pub repeat_final: Vec<String>,
    /// Garbage bytes (NUL, 0xFF, BEL, ...) before every line the modem writes.
    pub garbage: bool,
    /// The first this many `AT+CMGS` get no `> ` prompt: the modem waits in silence for
    /// a PDU, until ESC (answered `OK`) or Ctrl-Z.
    pub no_prompt: u32,
    /// After accepting this many parts the port takes no more bytes, for good (a wedged
    /// USB port); 0: never.
    pub wedge_after_sends: u32,
    /// The first this many `AT+CPIN?` are answered `+CPIN: NOT READY`, as a modem
    /// answers for a moment after `RDY`; 0: ready at once.
    pub cpin_not_ready: u32,
    /// After the first `AT+CNMI`, announces an SMS that is not there (`+CMTI` for an
    /// empty slot, whose `AT+CMGR` is answered with a bare `OK`), once.
    pub phantom_sms: bool,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("latency_ms", &self.latency_ms)
            .field("report_delay_ms", &self.report_delay_ms)
            .field("pin", &redacted(&self.pin))
            .field("cms_error", &self.cms_error)
            .field("report_failure", &self.report_failure)
            .field("hang_up", &self.hang_up)
            .field("silent", &self.silent)
            .field("incoming", &self.incoming)
            .field("late_first_answer_ms", &self.late_first_answer_ms)
            .field("repeat_final", &self.repeat_final)
            .field("garbage", &self.garbage)
            .field("no_prompt", &self.no_prompt)
            .field("wedge_after_sends", &self.wedge_after_sends)
            .field("cpin_not_ready", &self.cpin_not_ready)
            .field("phantom_sms", &self.phantom_sms)
            .finish()
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency_ms: 100,
            report_delay_ms: 1000,
            pin: String::new(),
            cms_error: BTreeMap::new(),
            report_failure: Vec::new(),
            hang_up: Vec::new(),
            silent: Vec::new(),
            incoming: Vec::new(),
            late_first_answer_ms: 0,
            repeat_final: Vec::new(),
            garbage: false,
            no_prompt: 0,
            wedge_after_sends: 0,
            cpin_not_ready: 0,
            phantom_sms: false,
        }
    }
}

/// An SMS the network delivers to the modem; a long text arrives as concatenated parts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incoming {
    /// The sender's number, as the network gives it.
    pub from: String,
    /// The whole text.
    pub text: String,
}
