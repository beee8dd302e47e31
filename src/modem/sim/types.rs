//! What the simulator's parts share: the modem's profile, what a step produces, result
//! codes, and PDUs as the modem holds them.

use super::command::Cnmi;
use super::record::Record;

/// The service centre the SIM starts with (any well-formed number does).
pub(super) const DEFAULT_SMSC: &str = "+447785016005";

/// The modem's user profile: the settings `ATZ` restores.
#[derive(Debug, Clone, Copy)]
pub(super) struct Profile {
    /// `ATE`: commands are echoed.
    pub echo: bool,
    /// `AT+CMEE`: how errors are worded (0 `ERROR`, 1 and 2 with their code).
    pub cmee: u8,
    /// `AT+CNMI`: how new SMS and status reports are announced.
    pub cnmi: Cnmi,
    /// `AT+CPMS`: reads, deletes and lists use the status-report memory ("SR").
    pub reports_selected: bool,
    /// `AT+CREG=<n>`: 0, no unsolicited registration reports (none are sent anyway).
    pub creg: u8,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            echo: true,
            cmee: 0,
            cnmi: Cnmi::default(),
            reports_selected: false,
            creg: 0,
        }
    }
}

/// What one step of the modem produced, in the order the session must apply it:
/// records first (so a test that sees `+CMGS` finds its record), then bytes.
#[derive(Debug, Default)]
pub(super) struct Output {
    /// Parts accepted, for the records file.
    pub records: Vec<Record>,
    /// For the gateway, in order.
    pub bytes: Vec<u8>,
    /// Close the pseudo-terminal after writing `bytes`.
    pub hang_up: bool,
    /// Take no more bytes from the gateway after writing `bytes` (a wedged port).
    pub wedge: bool,
    /// The `garbage` fault: junk before every line `say` writes.
    pub garbage: bool,
}

/// What the `garbage` fault writes before each line: bytes a line-noise burst or a
/// rebooting modem emits, none of them CR, LF or printable ASCII.
pub(super) const GARBAGE: &[u8] = b"\x00\xff\x07\xfe\x1b\x80";

impl Output {
    /// One line for the gateway, framed as the modem frames answers and unsolicited
    /// codes (TS 27.007 §4.1, V.250 `ATV1`).
    pub(super) fn say(&mut self, text: &str) {
        if !self.garbage {
            return self.bytes.extend_from_slice(format!("\r\n{text}\r\n").as_bytes());
        }
        for line in text.split("\r\n") {
            self.bytes.extend_from_slice(GARBAGE);
            self.bytes.extend_from_slice(format!("\r\n{line}\r\n").as_bytes());
        }
    }
}

/// A final result code other than OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// `ERROR`.
    Error,
    /// `+CME ERROR: <code>` (TS 27.007 §9.2).
    Cme(u16),
    /// `+CMS ERROR: <code>` (TS 27.005 §3.2.5).
    Cms(u16),
}

impl Failure {
    /// As `AT+CMEE=<mode>` asks; mode 2 (verbose) is answered numerically, as many
    /// modems do for SMS errors.
    pub(super) fn text(self, cmee: u8) -> String {
        match (cmee, self) {
            (0, _) | (_, Failure::Error) => "ERROR".to_string(),
            (_, Failure::Cme(code)) => format!("+CME ERROR: {code}"),
            (_, Failure::Cms(code)) => format!("+CMS ERROR: {code}"),
        }
    }
}

/// A command's final result: its information lines then OK, or a failure.
pub(super) type Answer = Result<Vec<String>, Failure>;

/// What a command line leads to.
pub(super) enum CommandResult {
    /// Its final result, to be written at once.
    Answer(Answer),
    /// `AT+CMGS=<tpdu_len>` prompts for its PDU.
    Prompt(usize),
}

/// A PDU as `+CDS`/`+CMGR` give it: SMSC field then TPDU, and the TPDU's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Encoded {
    /// SMSC field then TPDU, in hex.
    pub hex: String,
    /// TPDU octets, as `<length>` in `+CMGR`/`+CDS`.
    pub tpdu_len: usize,
}

impl Encoded {
    /// Reads the TPDU length off a PDU whose first octet is the SMSC field's length.
    pub(super) fn with_smsc(hex: String) -> Encoded {
        let smsc = hex.get(..2).and_then(|l| u8::from_str_radix(l, 16).ok()).unwrap_or(0);
        let tpdu_len = (hex.len() / 2).saturating_sub(1 + usize::from(smsc));
        Encoded { hex, tpdu_len }
    }
}
