//! What each command does and answers, and how answers and unsolicited codes are framed
//! (TS 27.007 §4, TS 27.005 §3).

use super::clock::Now;
use super::command::{Cnmi, Command};
use super::modem::{Modem, Output, Settings};
use super::report::Encoded;
use super::storage::Storage;

/// A final result code other than OK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    Error,
    Cme(u16),
    Cms(u16),
}

/// `+CME ERROR: 3`, operation not allowed.
const NOT_ALLOWED: Failure = Failure::Cme(3);
/// `+CME ERROR: 16`, incorrect password.
const WRONG_PIN: Failure = Failure::Cme(16);
/// `+CMS ERROR: 303`, operation not supported.
const NOT_SUPPORTED: Failure = Failure::Cms(303);
/// `+CMS ERROR: 311`, SIM PIN required.
const PIN_REQUIRED: Failure = Failure::Cms(311);
/// Longest TPDU of an SMS-SUBMIT (TS 23.040 §9.2.2.2).
const MAX_TPDU: usize = 164;

impl Failure {
    /// As `AT+CMEE=<mode>` asks; mode 2 (verbose) is answered numerically, as many
    /// modems do for SMS errors.
    fn text(self, cmee: u8) -> String {
        match (cmee, self) {
            (0, _) | (_, Failure::Error) => "ERROR".to_string(),
            (_, Failure::Cme(code)) => format!("+CME ERROR: {code}"),
            (_, Failure::Cms(code)) => format!("+CMS ERROR: {code}"),
        }
    }
}

type Answer = Result<Vec<String>, Failure>;

/// What a command line leads to.
pub(super) enum Step {
    Answer(Answer),
    /// `AT+CMGS=<tpdu_len>` prompts for its PDU.
    Prompt(usize),
}

fn ok() -> Answer {
    Ok(Vec::new())
}

impl Modem {
    pub(super) fn execute(&mut self, command: Command, now: Now) -> Step {
        let answer = match command {
            Command::Send(tpdu_len) => {
                return match self.prompt(tpdu_len) {
                    Ok(()) => Step::Prompt(tpdu_len),
                    Err(failure) => Step::Answer(Err(failure)),
                };
            }
            Command::Attention => ok(),
            Command::Echo(on) => {
                self.settings.echo = on;
                ok()
            }
            Command::Reset => {
                self.settings = Settings::default();
                ok()
            }
            Command::ErrorMode(mode @ 0..=2) => {
                self.settings.cmee = mode;
                ok()
            }
            Command::ErrorMode(_) => Err(NOT_ALLOWED),
            Command::PinQuery => Ok(vec![format!(
                "+CPIN: {}",
                if self.pin_ok { "READY" } else { "SIM PIN" }
            )]),
            Command::PinEnter(pin) => self.enter_pin(&pin),
            Command::FormatQuery => Ok(vec!["+CMGF: 0".to_string()]),
            Command::Format(0) => ok(),
            Command::Format(_) => Err(NOT_SUPPORTED),
            Command::CentreQuery => self.centre(),
            Command::CentreSet(number) => self.set_centre(number),
            Command::IndicationsQuery => Ok(vec![format_cnmi(self.settings.cnmi)]),
            Command::Indications(cnmi) => self.set_indications(cnmi, now),
            Command::Registration => Ok(vec![format!("+CREG: 0,{}", if self.pin_ok { 1 } else { 0 })]),
            Command::Signal => Ok(vec!["+CSQ: 20,99".to_string()]),
            Command::Manufacturer => Ok(vec!["smsgw".to_string()]),
            Command::Model => Ok(vec!["simulated GSM modem".to_string()]),
            Command::Serial => Ok(vec![self.imei.clone()]),
            Command::SelectMemory(memory) => self.select_memory(&memory),
            Command::MemoryQuery => Ok(vec![self.memory_use()]),
            Command::Read(index) => self.unlocked().and_then(|()| self.selected().read(index)),
            Command::Delete { index, flag } => self
                .unlocked()
                .and_then(|()| self.selected().delete(index, flag))
                .map(|()| Vec::new()),
            Command::List(stat) => self.unlocked().and_then(|()| self.selected().list(stat)),
        };
        Step::Answer(answer)
    }

    /// The memory `AT+CPMS` selected for reading.
    fn selected(&mut self) -> &mut Storage {
        if self.settings.reports_selected {
            &mut self.reports
        } else {
            &mut self.storage
        }
    }

    fn select_memory(&mut self, memory: &str) -> Result<Vec<String>, Failure> {
        self.settings.reports_selected = match memory {
            "SM" | "ME" | "MT" => false,
            "SR" => true,
            _ => return Err(Failure::Cms(302)),
        };
        Ok(vec![self.memory_use()])
    }

    /// `+CPMS: <used>,<total>` for the read, write and receive memories (all one here).
    fn memory_use(&mut self) -> String {
        let (used, total) = self.selected().usage();
        format!("+CPMS: {used},{total},{used},{total},{used},{total}")
    }

    /// Whether `AT+CMGS=<tpdu_len>` may prompt for its PDU.
    fn prompt(&self, tpdu_len: usize) -> Result<(), Failure> {
        self.unlocked()?;
        match tpdu_len {
            1..=MAX_TPDU => Ok(()),
            _ => Err(Failure::Cms(304)),
        }
    }

    pub(super) fn reply(&self, answer: Answer, out: &mut Output) {
        match answer {
            Ok(lines) => {
                if !lines.is_empty() {
                    out.say(&lines.join("\r\n"));
                }
                out.say("OK");
            }
            Err(failure) => out.say(&failure.text(self.settings.cmee)),
        }
    }

    /// The SMS commands need the SIM, and the SIM its PIN.
    fn unlocked(&self) -> Result<(), Failure> {
        if self.pin_ok { Ok(()) } else { Err(PIN_REQUIRED) }
    }

    fn enter_pin(&mut self, pin: &str) -> Answer {
        if self.pin_ok {
            return Err(NOT_ALLOWED);
        }
        if pin != self.config.pin {
            return Err(WRONG_PIN);
        }
        self.pin_ok = true;
        ok()
    }

    fn centre(&self) -> Answer {
        self.unlocked()?;
        let toa = if self.smsc.starts_with('+') { 145 } else { 129 };
        Ok(vec![format!("+CSCA: \"{}\",{toa}", self.smsc)])
    }

    fn set_centre(&mut self, number: String) -> Answer {
        self.unlocked()?;
        let digits = number.strip_prefix('+').unwrap_or(&number);
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::Cms(304));
        }
        self.smsc = number;
        ok()
    }

    /// The first `AT+CNMI` is when the network starts delivering the incoming SMS.
    fn set_indications(&mut self, cnmi: Cnmi, now: Now) -> Answer {
        self.unlocked()?;
        if cnmi.mode > 3 || cnmi.mt > 2 || cnmi.bm != 0 || cnmi.ds > 2 || cnmi.bfr > 1 {
            return Err(NOT_SUPPORTED);
        }
        self.settings.cnmi = cnmi;
        self.deliver_incoming(now);
        ok()
    }

    /// A received SMS, announced as `AT+CNMI`'s `<mt>` says.
    pub(super) fn announce_sms(&mut self, pdu: Encoded, out: &mut Output) {
        if self.settings.cnmi.mt == 2 {
            return out.say(&format!("+CMT: ,{}\r\n{}", pdu.tpdu_len, pdu.hex));
        }
        match self.storage.store(pdu) {
            Some(index) if self.settings.cnmi.mt == 1 => out.say(&format!("+CMTI: \"SM\",{index}")),
            Some(_) => {}
            None => tracing::warn!(modem = %self.name, "message store full: incoming SMS lost"),
        }
    }

    /// A status report, announced as `AT+CNMI`'s `<ds>` says; with 0 the network keeps it.
    pub(super) fn announce_report(&mut self, pdu: Encoded, out: &mut Output) {
        match self.settings.cnmi.ds {
            1 => out.say(&format!("+CDS: {}\r\n{}", pdu.tpdu_len, pdu.hex)),
            2 => match self.reports.store(pdu) {
                Some(index) => out.say(&format!("+CDSI: \"SR\",{index}")),
                None => tracing::warn!(modem = %self.name, "message store full: status report lost"),
            },
            _ => tracing::debug!(modem = %self.name, "status report not routed (AT+CNMI ds=0)"),
        }
    }
}

/// A 15-digit IMEI that stays the same for a modem name: FNV-1a of the name, Luhn digit.
pub(super) fn imei(name: &str) -> String {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let body = format!("35{:012}", hash % 1_000_000_000_000);
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 0 { (2 * d) / 10 + (2 * d) % 10 } else { d }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn format_cnmi(c: Cnmi) -> String {
    format!("+CNMI: {},{},{},{},{}", c.mode, c.mt, c.bm, c.ds, c.bfr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imeis_are_stable_and_luhn_valid() {
        let luhn = |digits: &str| {
            let sum: u32 = (digits.bytes().rev().enumerate())
                .map(|(i, d)| {
                    let d = u32::from(d - b'0') * if i % 2 == 1 { 2 } else { 1 };
                    d / 10 + d % 10
                })
                .sum();
            sum.is_multiple_of(10)
        };
        for name in ["sim0", "sim1", ""] {
            let imei = imei(name);
            assert_eq!(imei, super::imei(name));
            assert!(imei.len() == 15 && imei.starts_with("35") && luhn(&imei), "{imei}");
        }
        assert_ne!(imei("sim0"), imei("sim1"));
    }
}
