//! The modem itself, without I/O: bytes and clock readings in, bytes and records out.
//! Timers are kept as a schedule that the session sleeps on.

use std::collections::BTreeMap;
use std::mem;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::clock::{Now, Utc};
use super::command;
use super::record::Record;
use super::report::{self, deliver_parts};
use super::storage::Storage;
use super::submit::{self, Submitted};
use super::types::{CommandResult, DEFAULT_SMSC, Encoded, Failure, Output, Profile};
use super::{Incoming, SimConfig, SimError};

/// Longer command lines are cut; what is left fails to parse.
const MAX_LINE: usize = 560;
/// Hex of the longest SMSC field and TPDU; a longer PDU cannot match `AT+CMGS=<n>`.
const MAX_PDU_HEX: usize = 2 * (12 + 164);
const CTRL_Z: u8 = 0x1A;
const ESC: u8 = 0x1B;
const BACKSPACE: u8 = 0x08;

#[derive(Debug)]
enum Input {
    Command(Vec<u8>),
    /// After the `> ` prompt of `AT+CMGS=<tpdu_len>`.
    Pdu {
        tpdu_len: usize,
        hex: Vec<u8>,
    },
}

/// What the network does later, on the modem's schedule.
#[derive(Debug)]
enum NetworkEvent {
    /// The network's answer to a submitted part: accepted, or a `+CMS ERROR` code.
    Answer(Result<Submitted, u16>),
    Report {
        mr: u8,
        recipient: String,
        submitted: SystemTime,
        status: u8,
    },
    Deliver(Encoded),
    /// The `late_first_answer_ms` fault: the first command's answer, written late.
    Late(Vec<u8>),
    /// The `phantom_sms` fault: an SMS announced that is not stored.
    Phantom,
}

/// One simulated modem: its SIM, profile, memories, and the network events it has
/// scheduled.
#[derive(Debug)]
pub(super) struct Modem {
    /// Its `[[modem]]` name, written in every record.
    pub(super) name: String,
    /// Its faults, delays, PIN and incoming SMS, from the config.
    pub(super) config: SimConfig,
    /// What `AT+CGSN` answers: a Luhn-valid IMEI derived from `name`, the same each run.
    pub(super) imei: String,
    /// Echo, error wording, indications and the selected memory; `ATZ` resets them.
    pub(super) profile: Profile,
    /// The SMS centre, as `AT+CSCA` last set it (a default until then).
    pub(super) smsc: String,
    /// The SIM is unlocked: no PIN configured, or `AT+CPIN` gave the right one.
    pub(super) pin_ok: bool,
    /// Received SMS ("SM").
    pub(super) storage: Storage,
    /// Status reports kept with `AT+CNMI=…,2,…` ("SR"): a memory apart, as on real
    /// modems, so a report is read only after `AT+CPMS="SR"`.
    pub(super) reports: Storage,
    /// Parts not yet delivered: they reach the modem after its first `AT+CNMI`.
    incoming: Vec<Encoded>,
    /// SMS injected so far, for their concatenation references.
    injected: u8,
    next_mr: u8,
    input: Input,
    /// A command awaits its answer; input meanwhile is held, as a modem's UART buffers it.
    busy: bool,
    held: Vec<u8>,
    schedule: BTreeMap<(Instant, u64), NetworkEvent>,
    sequence: u64,
    /// Command lines answered so far (the `late_first_answer_ms` fault delays the first).
    lines_answered: u64,
    /// `AT+CMGS` left without a prompt so far (the `no_prompt` fault).
    prompts_withheld: u32,
    /// Parts accepted so far (the `wedge_after_sends` fault).
    parts_accepted: u32,
    /// The `phantom_sms` fault's announcement is scheduled (it comes once).
    pub(super) phantom_announced: bool,
    /// `AT+CPIN?` answered `NOT READY` so far (the `cpin_not_ready` fault).
    pub(super) pin_queries: u32,
    /// The `repeat_final` fault's second answer, written when the next command line
    /// arrives: a late answer that lands while the gateway waits for another.
    repeat: Option<Vec<u8>>,
}

impl Modem {
    /// A modem just powered on: echo on, SIM locked if `config.pin` is set, the incoming
    /// SMS of `config` waiting for the first `AT+CNMI`.
    pub(super) fn new(name: &str, config: SimConfig, now: Now) -> Result<Modem, SimError> {
        let incoming = deliver_parts(&config.incoming, now.wall, 1)?;
        Ok(Modem {
            name: name.to_string(),
            imei: imei(name),
            pin_ok: config.pin.is_empty(),
            config,
            profile: Profile::default(),
            smsc: DEFAULT_SMSC.to_string(),
            storage: Storage::default(),
            reports: Storage::default(),
            incoming,
            injected: 0,
            next_mr: 0,
            input: Input::Command(Vec::new()),
            busy: false,
            held: Vec::new(),
            schedule: BTreeMap::new(),
            sequence: 0,
            lines_answered: 0,
            prompts_withheld: 0,
            parts_accepted: 0,
            pin_queries: 0,
            repeat: None,
            phantom_announced: false,
        })
    }

    /// When the next scheduled event (answer, report, incoming part) is due.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.schedule.keys().next().map(|&(at, _)| at)
    }

    /// The incoming SMS reach the modem once, one part per `latency_ms`.
    pub(super) fn deliver_incoming(&mut self, now: Now) {
        let latency = self.latency();
        for (n, pdu) in (1..).zip(mem::take(&mut self.incoming)) {
            self.push(now.at + latency * n, NetworkEvent::Deliver(pdu));
        }
    }

    /// An SMS the network delivers now (`smsgw modem inject`): its parts reach the modem
    /// one per `latency_ms`, with a concatenation reference of their own.
    pub(super) fn inject(&mut self, sms: &Incoming, now: Now) -> Result<(), SimError> {
        self.injected = self.injected.wrapping_add(1);
        // After the configured SMS' references (1, 2, …), from the other end of the range.
        let reference = 255 - self.injected % 128;
        let parts = deliver_parts(std::slice::from_ref(sms), now.wall, u16::from(reference))?;
        let latency = self.latency();
        tracing::info!(modem = %self.name, from = %sms.from, parts = parts.len(), "SMS injected");
        for (n, pdu) in (1..).zip(parts) {
            self.push(now.at + latency * n, NetworkEvent::Deliver(pdu));
        }
        Ok(())
    }

    /// The `phantom_sms` fault: once, one latency after the first `AT+CNMI`.
    pub(super) fn announce_phantom(&mut self, now: Now) {
        if self.config.phantom_sms && !self.phantom_announced {
            self.phantom_announced = true;
            self.push(now.at + self.latency(), NetworkEvent::Phantom);
        }
    }

    fn push(&mut self, at: Instant, event: NetworkEvent) {
        self.sequence += 1;
        self.schedule.insert((at, self.sequence), event);
    }

    /// Bytes from the gateway.
    pub(super) fn input(&mut self, bytes: &[u8], now: Now, out: &mut Output) {
        for (i, &byte) in bytes.iter().enumerate() {
            if self.busy {
                self.held.extend_from_slice(&bytes[i..]);
                return;
            }
            if self.profile.echo && !(byte == ESC && matches!(self.input, Input::Command(_))) {
                out.bytes.push(byte);
            }
            match &mut self.input {
                Input::Command(line) => match byte {
                    // ESC leaves a prompt; in command mode it is ignored, as V.250
                    // ignores what precedes "AT".
                    ESC => {}
                    b'\r' => {
                        let line = String::from_utf8_lossy(&mem::take(line)).into_owned();
                        if let Some(repeat) = self.repeat.take() {
                            out.bytes.extend_from_slice(&repeat);
                        }
                        self.run_line(line.trim(), now, out);
                    }
                    b'\n' => {}
                    BACKSPACE => _ = line.pop(),
                    _ if line.len() < MAX_LINE => line.push(byte),
                    _ => {}
                },
                Input::Pdu { tpdu_len, hex } => match byte {
                    CTRL_Z => {
                        let (tpdu_len, hex) = (*tpdu_len, mem::take(hex));
                        self.input = Input::Command(Vec::new());
                        self.submit(&String::from_utf8_lossy(&hex), tpdu_len, now, out);
                    }
                    ESC => {
                        self.input = Input::Command(Vec::new());
                        self.reply(Ok(Vec::new()), out);
                    }
                    _ if hex.len() < MAX_PDU_HEX => hex.push(byte),
                    _ => {}
                },
            }
            if out.hang_up {
                return;
            }
        }
    }

    fn run_line(&mut self, line: &str, now: Now, out: &mut Output) {
        if !command::is_command(line) {
            return;
        }
        let response = match command::parse(line) {
            Some(command) => self.execute(command, now),
            None => CommandResult::Answer(Err(Failure::Error)),
        };
        let answered_from = out.bytes.len();
        match response {
            CommandResult::Answer(answer) => self.reply(answer, out),
            CommandResult::Prompt(tpdu_len) => {
                self.input = Input::Pdu {
                    tpdu_len,
                    hex: Vec::new(),
                };
                if self.prompts_withheld < self.config.no_prompt {
                    self.prompts_withheld += 1;
                    tracing::info!(modem = %self.name, "no-prompt fault: waiting for a PDU in silence");
                } else {
                    out.bytes.extend_from_slice(b"\r\n> ");
                }
            }
        }
        self.lines_answered += 1;
        if self.lines_answered == 1 && self.config.late_first_answer_ms > 0 {
            // Echo goes out at once; the answer later, and input waits for it.
            let late = out.bytes.split_off(answered_from);
            tracing::info!(modem = %self.name, "late-answer fault: the first answer is held");
            self.busy = true;
            let at = now.at + Duration::from_millis(self.config.late_first_answer_ms);
            self.push(at, NetworkEvent::Late(late));
        }
    }

    /// The PDU after the prompt, up to Ctrl-Z: checked, then answered after `latency_ms`
    /// unless a fault applies to its destination.
    fn submit(&mut self, pdu: &str, tpdu_len: usize, now: Now, out: &mut Output) {
        let submitted = match submit::validate(pdu.trim(), tpdu_len) {
            Ok(submitted) => submitted,
            Err(error) => {
                tracing::debug!(modem = %self.name, %error, pdu, "PDU refused");
                return self.reply(Err(Failure::Cms(304)), out);
            }
        };
        let number = submitted.number.as_str();
        if self.config.hang_up.iter().any(|n| n == number) {
            tracing::info!(modem = %self.name, number, "hang-up fault: closing the port");
            out.hang_up = true;
            return;
        }
        if self.config.silent.iter().any(|n| n == number) {
            tracing::info!(modem = %self.name, number, "silent fault: no answer");
            return;
        }
        let answer = match self.config.cms_error.get(number) {
            Some(&code) => Err(code),
            None => Ok(submitted),
        };
        self.busy = true;
        self.push(now.at + self.latency(), NetworkEvent::Answer(answer));
    }

    fn latency(&self) -> Duration {
        Duration::from_millis(self.config.latency_ms)
    }

    /// Fires every event due at `now`, then feeds the input held meanwhile.
    pub(super) fn fire_due(&mut self, now: Now, out: &mut Output) {
        while let Some(entry) = self.schedule.first_entry() {
            if entry.key().0 > now.at {
                break;
            }
            match entry.remove() {
                NetworkEvent::Answer(answer) => self.answer(answer, now, out),
                NetworkEvent::Report {
                    mr,
                    recipient,
                    submitted,
                    status,
                } => {
                    let submitted = Utc::of(submitted).timestamp();
                    let discharged = Utc::of(now.wall).timestamp();
                    match report::status_report(&self.smsc, mr, &recipient, submitted, discharged, status) {
                        Ok(pdu) => self.announce_report(pdu, out),
                        Err(error) => tracing::warn!(modem = %self.name, %error, "status report not sent"),
                    }
                }
                NetworkEvent::Deliver(pdu) => self.announce_sms(pdu, out),
                NetworkEvent::Phantom => self.phantom_sms(out),
                NetworkEvent::Late(bytes) => {
                    self.busy = false;
                    out.bytes.extend_from_slice(&bytes);
                }
            }
        }
        if !self.busy && !self.held.is_empty() {
            let held = mem::take(&mut self.held);
            self.input(&held, now, out);
        }
    }

    fn answer(&mut self, answer: Result<Submitted, u16>, now: Now, out: &mut Output) {
        self.busy = false;
        let submitted = match answer {
            Ok(submitted) => submitted,
            Err(code) => return self.reply(Err(Failure::Cms(code)), out),
        };
        let mr = self.next_mr;
        self.next_mr = mr.wrapping_add(1);
        if submitted.status_report {
            let failed = self.config.report_failure.contains(&submitted.number);
            let status = if failed {
                report::PERMANENT_FAILURE
            } else {
                report::DELIVERED
            };
            let delay = Duration::from_millis(self.config.report_delay_ms);
            let recipient = submitted.number.clone();
            let submitted = now.wall;
            self.push(
                now.at + delay,
                NetworkEvent::Report {
                    mr,
                    recipient,
                    submitted,
                    status,
                },
            );
        }
        let repeat = self.config.repeat_final.contains(&submitted.number);
        out.records.push(Record::new(&self.name, mr, submitted, now.wall));
        self.reply(Ok(vec![format!("+CMGS: {mr}")]), out);
        if repeat {
            tracing::info!(modem = %self.name, mr, "repeat fault: the answer comes again with the next command");
            let mut again = Output {
                garbage: out.garbage,
                ..Output::default()
            };
            self.reply(Ok(vec![format!("+CMGS: {mr}")]), &mut again);
            self.repeat = Some(again.bytes);
        }
        self.parts_accepted += 1;
        if self.parts_accepted == self.config.wedge_after_sends {
            tracing::info!(modem = %self.name, "wedge fault: the port takes no more bytes");
            out.wedge = true;
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
