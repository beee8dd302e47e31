//! What each command does and answers, and how answers and unsolicited codes are framed
//! (TS 27.007 §4, TS 27.005 §3).

use super::clock::Now;
use super::command::{Cnmi, Command};
use super::modem::Modem;
use super::storage::Storage;
use super::types::{Answer, CommandResult, Encoded, Failure, Output, Profile};

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

fn ok() -> Answer {
    Ok(Vec::new())
}

impl Modem {
    /// Carries out one parsed command: its final answer, or the PDU prompt.
    pub(super) fn execute(&mut self, command: Command, now: Now) -> CommandResult {
        let answer = match command {
            Command::Send(tpdu_len) => {
                return match self.prompt(tpdu_len) {
                    Ok(()) => CommandResult::Prompt(tpdu_len),
                    Err(failure) => CommandResult::Answer(Err(failure)),
                };
            }
            Command::Attention => ok(),
            Command::Echo(on) => {
                self.profile.echo = on;
                ok()
            }
            Command::Reset => {
                self.profile = Profile::default();
                ok()
            }
            Command::ErrorMode(mode @ 0..=2) => {
                self.profile.cmee = mode;
                ok()
            }
            Command::ErrorMode(_) => Err(NOT_ALLOWED),
            Command::PinQuery => Ok(vec![format!("+CPIN: {}", self.sim_state())]),
            Command::PinEnter(pin) => self.enter_pin(&pin),
            Command::FormatQuery => Ok(vec!["+CMGF: 0".to_string()]),
            Command::Format(0) => ok(),
            Command::Format(_) => Err(NOT_SUPPORTED),
            Command::CentreQuery => self.centre(),
            Command::CentreSet(number) => self.set_centre(number),
            Command::IndicationsQuery => Ok(vec![format_cnmi(self.profile.cnmi)]),
            Command::Indications(cnmi) => self.set_indications(cnmi, now),
            Command::Registration => Ok(vec![format!(
                "+CREG: {},{}",
                self.profile.creg,
                if self.pin_ok { 1 } else { 0 }
            )]),
            // Only 0 is kept: this modem never changes cell, so it has nothing to report.
            Command::RegistrationMode(mode @ 0..=2) => {
                self.profile.creg = mode;
                ok()
            }
            Command::RegistrationMode(_) => Err(NOT_ALLOWED),
            Command::Signal => Ok(vec!["+CSQ: 20,99".to_string()]),
            Command::Manufacturer => Ok(vec!["smsgw".to_string()]),
            Command::Model => Ok(vec!["simulated GSM modem".to_string()]),
            Command::Serial => Ok(vec![self.imei.clone()]),
            Command::SelectMemory(memory) => self.select_memory(&memory),
            Command::MemoryQuery => Ok(vec![self.memory_use()]),
            Command::Read(index) => self.unlocked().and_then(|()| self.read(index)),
            Command::Delete { index, flag } => self
                .unlocked()
                .and_then(|()| self.selected().delete(index, flag))
                .map(|()| Vec::new()),
            Command::List(stat) => self.unlocked().and_then(|()| self.selected().list(stat)),
        };
        CommandResult::Answer(answer)
    }

    /// What `AT+CPIN?` says: `NOT READY` for the first `cpin_not_ready` queries (the
    /// fault), then whether the PIN is still owed.
    fn sim_state(&mut self) -> &'static str {
        if self.pin_queries < self.config.cpin_not_ready {
            self.pin_queries += 1;
            return "NOT READY";
        }
        if self.pin_ok { "READY" } else { "SIM PIN" }
    }

    /// The memory `AT+CPMS` selected for reading.
    fn selected(&mut self) -> &mut Storage {
        if self.profile.reports_selected {
            &mut self.reports
        } else {
            &mut self.storage
        }
    }

    fn select_memory(&mut self, memory: &str) -> Result<Vec<String>, Failure> {
        self.profile.reports_selected = match memory {
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

    /// Writes a final result, worded as `AT+CMEE` asks.
    pub(super) fn reply(&self, answer: Answer, out: &mut Output) {
        match answer {
            Ok(lines) => {
                if !lines.is_empty() {
                    out.say(&lines.join("\r\n"));
                }
                out.say("OK");
            }
            Err(failure) => out.say(&failure.text(self.profile.cmee)),
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
        self.profile.cnmi = cnmi;
        self.deliver_incoming(now);
        self.announce_phantom(now);
        ok()
    }

    /// `AT+CMGR=<index>` in the selected memory. The `phantom_sms` fault's slot, empty,
    /// reads as a bare `OK`, as many modems answer for an empty slot (others, and this
    /// one elsewhere, answer `+CMS ERROR: 321`).
    fn read(&mut self, index: u16) -> Answer {
        let phantom = self.phantom_announced && !self.profile.reports_selected && index == self.storage.capacity();
        match self.selected().read(index) {
            Err(_) if phantom => ok(),
            answer => answer,
        }
    }

    /// The `phantom_sms` fault: `+CMTI` for a slot that holds nothing (the last one), as
    /// a modem that lost the message says; announced once.
    pub(super) fn phantom_sms(&self, out: &mut Output) {
        out.say(&format!("+CMTI: \"SM\",{}", self.storage.capacity()));
    }

    /// A received SMS, announced as `AT+CNMI`'s `<mt>` says.
    pub(super) fn announce_sms(&mut self, pdu: Encoded, out: &mut Output) {
        if self.profile.cnmi.mt == 2 {
            return out.say(&format!("+CMT: ,{}\r\n{}", pdu.tpdu_len, pdu.hex));
        }
        match self.storage.store(pdu) {
            Some(index) if self.profile.cnmi.mt == 1 => out.say(&format!("+CMTI: \"SM\",{index}")),
            Some(_) => {}
            None => tracing::warn!(modem = %self.name, "message store full: incoming SMS lost"),
        }
    }

    /// A status report, announced as `AT+CNMI`'s `<ds>` says; with 0 the network keeps it.
    pub(super) fn announce_report(&mut self, pdu: Encoded, out: &mut Output) {
        match self.profile.cnmi.ds {
            1 => out.say(&format!("+CDS: {}\r\n{}", pdu.tpdu_len, pdu.hex)),
            2 => match self.reports.store(pdu) {
                Some(index) => out.say(&format!("+CDSI: \"SR\",{index}")),
                None => tracing::warn!(modem = %self.name, "message store full: status report lost"),
            },
            _ => tracing::debug!(modem = %self.name, "status report not routed (AT+CNMI ds=0)"),
        }
    }
}

fn format_cnmi(c: Cnmi) -> String {
    format!("+CNMI: {},{},{},{},{}", c.mode, c.mt, c.bm, c.ds, c.bfr)
}
