//! AT commands as typed values, and the reader that splits a modem's byte stream into
//! final results, information lines, the `> ` prompt and unsolicited codes (3GPP TS
//! 27.007 / 27.005); which answers are plausible for which command; and the typed
//! answers the board shows (signal quality, network registration). Pure: the driver
//! feeds it bytes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::StatusReports;

/// The ESC byte: leaves the `> ` prompt of `AT+CMGS` without sending anything.
pub const ESC: u8 = 0x1B;

/// A value the modem must hear but no log may show: the SIM PIN. `Debug` and `Display`
/// print `****`; only [`Command::wire`] writes it out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `text`, which from now on is shown as `****`.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether there is no secret at all (no PIN configured).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Secret {
        Secret::new(text)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// A command. `Display` is for logs and errors (a PIN shows as `****`); [`Command::wire`]
/// is the line as sent (the driver appends `\r`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `AT`: checks that the modem answers at all.
    At,
    /// `ATE0`: stops the modem echoing our commands back.
    EchoOff,
    /// `AT+CMEE=1`: errors as `+CME ERROR`/`+CMS ERROR` codes instead of a bare `ERROR`.
    VerboseErrors,
    /// `AT+CPIN?`: whether the SIM is ready or waits for a PIN (or PUK).
    PinQuery,
    /// `AT+CPIN="<pin>"`: unlocks the SIM.
    PinEnter(Secret),
    /// `AT+CMGF=0`: PDU mode, the only one the gateway speaks.
    PduMode,
    /// `AT+CSCA="<number>",145`: the SMS centre, in international format.
    ServiceCentre(String),
    /// New-message indications: `+CMTI` for SMS; status reports as `+CDS` with their
    /// PDU, or, for modems that can only store them, as `+CDSI` with an index, or none.
    Indications(StatusReports),
    /// `AT+CREG?`: network registration, on the board (refreshed while idle).
    Registration,
    /// `AT+CREG=0`: no unsolicited `+CREG:` reports. A modem left with `AT+CREG=1` or
    /// `2` would report each cell change with a line shaped like `AT+CREG?`'s answer,
    /// which would read as a stray answer and put the driver out of step.
    RegistrationReportsOff,
    /// `AT+CSQ`: signal quality, on the board (refreshed while idle).
    SignalQuality,
    /// `AT+CGMI`: manufacturer, for the logs and `modem probe`.
    Manufacturer,
    /// `AT+CGMM`: model, for the logs and `modem probe`.
    Model,
    /// `AT+CGSN`: serial number (IMEI), for the logs and `modem probe`.
    Serial,
    /// `AT+CSCA?`: the SMS centre in use, for `modem probe`.
    ServiceCentreQuery,
    /// `AT+CMGS=<TPDU octets>`: the PDU follows the `> ` prompt.
    Send(usize),
    /// `AT+CPMS="<memory>"`: where the next reads and deletes look.
    SelectMemory(Memory),
    /// `AT+CMGR=<index>`: reads a stored message (its PDU) from the selected memory.
    Read(u32),
    /// `AT+CMGD=<index>`: deletes a stored message once read.
    Delete(u32),
    /// `AT+CPMS="SM","SM","SM"`: reads, writes and new messages all in the SIM's memory,
    /// the one listed at start: an SMS that arrives while no one listens is found there,
    /// whatever memory the modem stored new ones in before.
    SimMemoryForAll,
    /// `AT+CMGL=4`: every message in the selected memory, read or not, with its PDU:
    /// at start, what arrived while no one listened (or was not deleted before a crash).
    ListAll,
}

impl Command {
    /// The line as the modem must receive it, PIN included: for the port only, never a log.
    pub fn wire(&self) -> String {
        match self {
            Command::PinEnter(pin) => format!("AT+CPIN=\"{}\"", pin.expose()),
            other => other.to_string(),
        }
    }

    /// What an `OK` answer to this command must carry to be its own and not a late
    /// answer to another: an answer without it is out of step, never a result.
    pub fn expects(&self) -> Expect {
        match self {
            Command::PinQuery => Expect::Line("+CPIN:"),
            Command::Registration => Expect::Line("+CREG:"),
            Command::SignalQuality => Expect::Line("+CSQ:"),
            Command::ServiceCentreQuery => Expect::Line("+CSCA:"),
            Command::Read(_) => Expect::Line("+CMGR:"),
            Command::Manufacturer | Command::Model | Command::Serial => Expect::AnyLine,
            _ => Expect::Nothing,
        }
    }
}

/// What an `OK` answer must carry (see [`Command::expects`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing in particular: a bare `OK` is its answer.
    Nothing,
    /// At least one information line.
    AnyLine,
    /// An information line starting with this prefix.
    Line(&'static str),
}

/// Whether `info`, ended by `OK`, can be the answer to `command`.
pub fn plausible(command: &Command, info: &[String]) -> bool {
    match command.expects() {
        Expect::Nothing => true,
        Expect::AnyLine => !info.is_empty(),
        Expect::Line(prefix) => info.iter().any(|line| line.starts_with(prefix)),
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::At => write!(f, "AT"),
            Command::EchoOff => write!(f, "ATE0"),
            Command::VerboseErrors => write!(f, "AT+CMEE=1"),
            Command::PinQuery => write!(f, "AT+CPIN?"),
            // The Secret displays as ****: logs and errors never carry the PIN.
            Command::PinEnter(pin) => write!(f, "AT+CPIN=\"{pin}\""),
            Command::PduMode => write!(f, "AT+CMGF=0"),
            Command::ServiceCentre(number) => write!(f, "AT+CSCA=\"{number}\",145"),
            Command::Indications(reports) => {
                let ds = match reports {
                    StatusReports::None => 0,
                    StatusReports::Direct => 1,
                    StatusReports::Stored => 2,
                };
                write!(f, "AT+CNMI=2,1,0,{ds},0")
            }
            Command::Registration => write!(f, "AT+CREG?"),
            Command::RegistrationReportsOff => write!(f, "AT+CREG=0"),
            Command::SignalQuality => write!(f, "AT+CSQ"),
            Command::Manufacturer => write!(f, "AT+CGMI"),
            Command::Model => write!(f, "AT+CGMM"),
            Command::Serial => write!(f, "AT+CGSN"),
            Command::ServiceCentreQuery => write!(f, "AT+CSCA?"),
            Command::Send(length) => write!(f, "AT+CMGS={length}"),
            Command::SelectMemory(memory) => write!(f, "AT+CPMS=\"{memory}\""),
            Command::Read(index) => write!(f, "AT+CMGR={index}"),
            Command::Delete(index) => write!(f, "AT+CMGD={index}"),
            Command::ListAll => write!(f, "AT+CMGL=4"),
            Command::SimMemoryForAll => write!(f, "AT+CPMS=\"SM\",\"SM\",\"SM\""),
        }
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// `OK`: the command succeeded.
    Ok,
    /// `ERROR` (or `NO CARRIER`): failed, without a code.
    Error,
    /// `+CME ERROR: n`: equipment (SIM, PIN, ...) errors.
    Cme(u16),
    /// `+CMS ERROR: n`: message service errors.
    Cms(u16),
}

/// A final result other than `OK`: how a command was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `ERROR` (or `NO CARRIER`).
    Error,
    /// `+CME ERROR: n`.
    Cme(u16),
    /// `+CMS ERROR: n`.
    Cms(u16),
}

impl Final {
    /// How the command was refused; None for `OK`.
    pub fn refusal(self) -> Option<Refusal> {
        match self {
            Final::Ok => None,
            Final::Error => Some(Refusal::Error),
            Final::Cme(code) => Some(Refusal::Cme(code)),
            Final::Cms(code) => Some(Refusal::Cms(code)),
        }
    }
}

impl From<Refusal> for Final {
    fn from(refusal: Refusal) -> Final {
        match refusal {
            Refusal::Error => Final::Error,
            Refusal::Cme(code) => Final::Cme(code),
            Refusal::Cms(code) => Final::Cms(code),
        }
    }
}

/// Something the modem said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The line that ends the command in progress.
    Final(Final),
    /// An information line of the command in progress (`+CMGS: 12`, a PDU after `+CMGR`).
    Info(String),
    /// `> `: the modem waits for the PDU.
    Prompt,
    /// `+CDS: <len>` and its PDU line (SMSC field first, `len` counting the TPDU only).
    StatusReport {
        /// TPDU octets, as the modem counts them (without the SMSC field).
        length: usize,
        /// The PDU in hex, SMSC field first.
        pdu: String,
    },
    /// `+CMTI: "SM",3` (an SMS) or `+CDSI: "SR",4` (a status report): kept in the
    /// modem's `memory` at `index`. A memory name that is not a [`Memory`] makes the
    /// line an [`Event::Other`], logged and ignored.
    Stored {
        /// The modem's message storage, e.g. "SM" or "SR".
        memory: Memory,
        /// The message's place in that storage, as the modem numbers it.
        index: u32,
    },
    /// Other unsolicited codes (`RING`, `+CGREG: 1`, `Call Ready`, ...: see
    /// `is_unsolicited`), and `+CMTI`/`+CDSI` lines that cannot be read: logged. Not
    /// `+CREG:`, which cannot be told from `AT+CREG?`'s answer: the driver turns those
    /// reports off (`AT+CREG=0`) at initialisation.
    Other(String),
}

/// A modem's message storage as `+CMTI`/`+CDSI` name it ("SM", "SR", "ME", "MT"): one
/// to four upper-case letters or digits, so that `AT+CPMS="<memory>"` carries nothing
/// else (a `"` in a modem's line would otherwise write AT text of its choosing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory(String);

impl Memory {
    /// The name if it is one to four of `A`–`Z`, `0`–`9`; None otherwise.
    pub fn new(name: &str) -> Option<Memory> {
        let valid = (1..=4).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        valid.then(|| Memory(name.to_string()))
    }

    /// The name, e.g. "SM".
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest line kept: a PDU line is at most 2 × 176 hex digits. A longer one is babble,
/// dropped whole, so that a modem that never ends a line cannot grow the buffer.
pub const MAX_LINE: usize = 1024;

/// Splits the byte stream into events; keeps partial lines between reads. Garbage is
/// dropped: control bytes wherever they are, and lines that are not UTF-8 or too long.
#[derive(Debug, Default)]
pub struct Reader {
    line: Vec<u8>,
    /// The line in progress passed `MAX_LINE`: dropped at its end.
    overflow: bool,
    /// After `+CDS: n`, the next line is its PDU, of `n` TPDU octets.
    awaiting_report_pdu: Option<usize>,
}

impl Reader {
    /// Parses `bytes` as read from the port and appends the events they complete; an
    /// unfinished line waits for the next call.
    pub fn push(&mut self, bytes: &[u8], events: &mut Vec<Event>) {
        for &byte in bytes {
            match byte {
                b'\n' | b'\r' => self.end_line(events),
                // NUL, BEL, ESC, a Ctrl-Z echoed...: never part of an answer, and glued
                // to one they would hide it ("\0OK").
                0..=0x1F | 0x7F if byte != b'\t' => {}
                _ if self.overflow => {}
                _ if self.line.len() >= MAX_LINE => {
                    self.line.clear();
                    self.overflow = true;
                }
                _ => {
                    self.line.push(byte);
                    if self.line == b"> " {
                        self.line.clear();
                        events.push(Event::Prompt);
                    }
                }
            }
        }
    }

    /// Bytes of the unfinished line kept for the next call; never more than `MAX_LINE`.
    pub fn pending(&self) -> usize {
        self.line.len()
    }

    fn end_line(&mut self, events: &mut Vec<Event>) {
        let bytes = std::mem::take(&mut self.line);
        if std::mem::take(&mut self.overflow) {
            return;
        }
        // Not UTF-8: line noise (a real answer is ASCII), dropped like an empty line.
        let Ok(text) = std::str::from_utf8(&bytes) else {
            return;
        };
        let line = text.trim();
        if line.is_empty() {
            return;
        }
        // A line after `+CDS: n` that is not hex is not its PDU: the report is lost, and
        // the line is read for what it is.
        if let Some(length) = self.awaiting_report_pdu.take()
            && is_hex(line)
        {
            events.push(Event::StatusReport {
                length,
                pdu: line.to_string(),
            });
            return;
        }
        if line == ">" {
            events.push(Event::Prompt);
            return;
        }
        match classify(line) {
            Line::Event(event) => events.push(event),
            Line::ReportHeader(length) => self.awaiting_report_pdu = Some(length),
            Line::Echo => {}
        }
    }
}

enum Line {
    Event(Event),
    /// `+CDS: <len>`: its PDU is on the next line.
    ReportHeader(usize),
    /// Our own command echoed back (before `ATE0` takes effect).
    Echo,
}

fn is_hex(line: &str) -> bool {
    line.bytes().all(|b| b.is_ascii_hexdigit())
}

fn classify(line: &str) -> Line {
    let number = |text: &str| text.trim().parse::<u16>().ok();
    Line::Event(match line {
        "OK" => Event::Final(Final::Ok),
        "ERROR" | "NO CARRIER" => Event::Final(Final::Error),
        _ if line.starts_with("AT") || line.starts_with("at") => return Line::Echo,
        _ if line.starts_with("+CDS:") => {
            let length = line[5..].trim().parse().unwrap_or(0);
            return Line::ReportHeader(length);
        }
        _ => {
            if let Some(code) = line.strip_prefix("+CME ERROR:").and_then(number) {
                Event::Final(Final::Cme(code))
            } else if let Some(code) = line.strip_prefix("+CMS ERROR:").and_then(number) {
                Event::Final(Final::Cms(code))
            } else if let Some(stored) = line.strip_prefix("+CMTI:").or_else(|| line.strip_prefix("+CDSI:")) {
                let parsed = stored.split_once(',').and_then(|(m, i)| {
                    let m = m.trim();
                    let memory = m.strip_prefix('"').and_then(|q| q.strip_suffix('"')).unwrap_or(m);
                    Some((Memory::new(memory)?, i.trim().parse::<u32>().ok()?))
                });
                match parsed {
                    Some((memory, index)) => Event::Stored { memory, index },
                    None => Event::Other(line.to_string()),
                }
            } else if is_unsolicited(line) {
                Event::Other(line.to_string())
            } else {
                Event::Info(line.to_string())
            }
        }
    })
}

/// Unsolicited result codes that are not answers to any command we send: calls and
/// cell broadcasts (TS 27.007/27.005), Huawei's `^…`, and what common modems say of
/// themselves at start-up or when the network changes (SIMCom's `Call Ready`, Quectel's
/// `RDY` and `+QIND:`, network time, `+CGREG`/`+CEREG`, which we never ask for). Taken
/// for answers, each would put the driver out of step for nothing.
fn is_unsolicited(line: &str) -> bool {
    const PREFIXES: [&str; 24] = [
        "RING",
        "+CRING:",
        "+CLIP:",
        "^",
        "+CUSD:",
        "+CMT:",
        "+CBM:",
        "+CIEV:",
        "RDY",
        "Call Ready",
        "SMS Ready",
        "PB DONE",
        "SMS DONE",
        "+QIND:",
        "+QUSIM:",
        "+CGREG:",
        "+CEREG:",
        "+CTZV:",
        "+CTZE:",
        "*PSUTTZ:",
        "DST:",
        "+CFUN:",
        "+PACSP",
        "+STIN:",
    ];
    PREFIXES.iter().any(|prefix| line.starts_with(prefix))
}

/// `AT+CSQ`'s answer: received signal strength and channel bit error rate (TS 27.007
/// §8.5), as the modem last reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalQuality {
    rssi: u8,
    ber: u8,
}

impl SignalQuality {
    /// `rssi` 0–31 or 99 (unknown), `ber` 0–7 or 99 (unknown); None for other values.
    pub fn new(rssi: u8, ber: u8) -> Option<SignalQuality> {
        let rssi_ok = rssi <= 31 || rssi == 99;
        let ber_ok = ber <= 7 || ber == 99;
        (rssi_ok && ber_ok).then_some(SignalQuality { rssi, ber })
    }

    /// Reads the `+CSQ: <rssi>,<ber>` line among a command's information lines.
    pub fn from_answer(info: &[String]) -> Option<SignalQuality> {
        let line = info.iter().find_map(|line| line.strip_prefix("+CSQ:"))?;
        let (rssi, ber) = line.split_once(',')?;
        SignalQuality::new(rssi.trim().parse().ok()?, ber.trim().parse().ok()?)
    }

    /// Signal strength, 0 (−113 dBm or less) to 31 (−51 dBm or more); None when the
    /// modem does not know (it answered 99).
    pub fn rssi(self) -> Option<u8> {
        (self.rssi <= 31).then_some(self.rssi)
    }

    /// The same strength in dBm (−113 to −51); None when unknown.
    pub fn dbm(self) -> Option<i16> {
        self.rssi().map(|rssi| -113 + 2 * i16::from(rssi))
    }

    /// Channel bit error rate as RXQUAL, 0 (best) to 7; None when unknown (99), as it
    /// is on most modems while idle.
    pub fn ber(self) -> Option<u8> {
        (self.ber <= 7).then_some(self.ber)
    }
}

/// As the modem says it: `+CSQ: 20,99` (the `signal` of `/status`).
impl fmt::Display for SignalQuality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+CSQ: {},{}", self.rssi, self.ber)
    }
}

/// `AT+CREG?`'s `<stat>`: whether the modem is registered on a network (TS 27.007 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    /// 0: not registered, and not searching for an operator.
    NotRegistered,
    /// 1: registered on its home network.
    Home,
    /// 2: not registered, searching for an operator.
    Searching,
    /// 3: registration denied.
    Denied,
    /// 4: unknown (e.g. out of coverage).
    Unknown,
    /// 5: registered, roaming.
    Roaming,
}

impl Registration {
    /// The `<stat>` code 0–5; None for the codes of other access technologies (6–11).
    pub fn from_code(code: u8) -> Option<Registration> {
        Some(match code {
            0 => Registration::NotRegistered,
            1 => Registration::Home,
            2 => Registration::Searching,
            3 => Registration::Denied,
            4 => Registration::Unknown,
            5 => Registration::Roaming,
            _ => return None,
        })
    }

    /// The `<stat>` code, 0–5, as TS 27.007 numbers it (for a gauge).
    pub fn code(self) -> u8 {
        match self {
            Registration::NotRegistered => 0,
            Registration::Home => 1,
            Registration::Searching => 2,
            Registration::Denied => 3,
            Registration::Unknown => 4,
            Registration::Roaming => 5,
        }
    }

    /// Registered, at home or roaming: SMS can be sent.
    pub fn is_registered(self) -> bool {
        matches!(self, Registration::Home | Registration::Roaming)
    }

    /// Reads `+CREG: <n>,<stat>[,<lac>,<ci>[,<AcT>]]`, the answer to `AT+CREG?`, among
    /// a command's information lines.
    pub fn from_answer(info: &[String]) -> Option<Registration> {
        let line = info.iter().find_map(|line| line.strip_prefix("+CREG:"))?;
        let stat = line.split(',').nth(1)?;
        Registration::from_code(stat.trim().parse().ok()?)
    }
}

/// The message reference in `+CMGS: <mr>`.
pub fn message_reference(info: &[String]) -> Option<u8> {
    info.iter()
        .find_map(|line| line.strip_prefix("+CMGS:"))
        .and_then(|mr| mr.split(',').next()?.trim().parse().ok())
}

/// One message of an `AT+CMGL` answer: its index, TPDU length and PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its slot, for `AT+CMGR` and `AT+CMGD`.
    pub index: u32,
    /// `<stat>`: 0 received unread, 1 received read, 2 and 3 stored to send (a SIM
    /// that was in a phone keeps its drafts there).
    pub stat: u8,
    /// TPDU octets (the last field of its `+CMGL:` line).
    pub length: usize,
    /// The PDU, hex, SMSC address first.
    pub pdu: String,
}

/// The messages of an `AT+CMGL` answer in PDU mode: each `+CMGL: <index>,<stat>,
/// [<alpha>],<length>` line and the hex line after it. A header whose fields do not
/// read, or without a PDU line, is left out (its slot is left alone).
pub fn listed(lines: &[String]) -> Vec<Listed> {
    let mut found = Vec::new();
    for (at, line) in lines.iter().enumerate() {
        let Some(fields) = line.strip_prefix("+CMGL:") else {
            continue;
        };
        let mut fields = fields.split(',').map(str::trim);
        let index = fields.next().and_then(|f| f.parse().ok());
        let stat = fields.next().and_then(|f| f.parse().ok());
        let length = fields.next_back().and_then(|f| f.parse().ok());
        let pdu = lines
            .get(at + 1)
            .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_hexdigit()));
        if let (Some(index), Some(stat), Some(length), Some(pdu)) = (index, stat, length, pdu) {
            found.push(Listed {
                index,
                stat,
                length,
                pdu: pdu.clone(),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_listing_gives_each_message_s_slot_length_and_pdu() {
        let lines: Vec<String> = [
            "+CMGL: 1,0,,24",
            "07913396050066F0040B913316325476F800002211",
            "+CMGL: 4,1,\"Bob\",30",
            "0791ABCD",
            "+CMGL: x,1,,30",
            "0791",
            "+CMGL: 7,1,,12",
        ]
        .iter()
        .map(|l| l.to_string())
        .collect();
        let found = listed(&lines);
        assert_eq!(
            found,
            [
                Listed {
                    index: 1,
                    stat: 0,
                    length: 24,
                    pdu: "07913396050066F0040B913316325476F800002211".into()
                },
                Listed {
                    index: 4,
                    stat: 1,
                    length: 30,
                    pdu: "0791ABCD".into()
                },
            ]
        );
        assert_eq!(Command::ListAll.to_string(), "AT+CMGL=4");
        assert_eq!(Command::SimMemoryForAll.to_string(), "AT+CPMS=\"SM\",\"SM\",\"SM\"");
    }
    use super::*;

    fn events(chunks: &[&str]) -> Vec<Event> {
        let mut reader = Reader::default();
        let mut events = Vec::new();
        for chunk in chunks {
            reader.push(chunk.as_bytes(), &mut events);
        }
        events
    }

    #[test]
    fn commands_display_as_sent() {
        let table = [
            (Command::EchoOff, "ATE0"),
            (
                Command::ServiceCentre("+447785016005".into()),
                "AT+CSCA=\"+447785016005\",145",
            ),
            (Command::Send(23), "AT+CMGS=23"),
            (Command::Read(3), "AT+CMGR=3"),
        ];
        for (command, text) in table {
            assert_eq!(command.to_string(), text);
            assert_eq!(command.wire(), text);
        }
    }

    #[test]
    fn the_pin_goes_to_the_wire_only() {
        let command = Command::PinEnter("1234".into());
        assert_eq!(command.wire(), "AT+CPIN=\"1234\"");
        assert_eq!(command.to_string(), "AT+CPIN=\"****\"");
        let debug = format!("{command:?} {:?}", Secret::new("1234"));
        assert!(!debug.contains("1234"), "{debug}");
        let timeout = crate::modem::driver::AtError::Timeout(command.to_string(), std::time::Duration::from_secs(1));
        assert!(!format!("{timeout} {timeout:?}").contains("1234"));
    }

    #[test]
    fn an_ok_is_a_command_s_answer_only_with_the_line_it_must_carry() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let table = [
            (Command::PinQuery, lines(&["+CPIN: READY"]), true),
            // A late OK read as the answer to AT+CPIN? is not "locked": it is not its answer.
            (Command::PinQuery, lines(&[]), false),
            (Command::PinQuery, lines(&["+CSQ: 20,99"]), false),
            (Command::SignalQuality, lines(&["+CSQ: 20,99"]), true),
            (Command::Registration, lines(&["+CREG: 0,1"]), true),
            (Command::Registration, lines(&[]), false),
            (Command::Read(1), lines(&["+CMGR: 0,,20", "0791"]), true),
            (Command::Read(1), lines(&[]), false),
            (Command::Model, lines(&[]), false),
            (Command::Model, lines(&["simulated GSM modem"]), true),
            (Command::PduMode, lines(&[]), true),
            (Command::At, lines(&[]), true),
        ];
        for (command, info, expected) in table {
            assert_eq!(plausible(&command, &info), expected, "{command} {info:?}");
        }
    }

    #[test]
    fn garbage_between_and_inside_lines_is_dropped() {
        let got = events(&[
            "\x00\x07\r\n\x00OK\r\n",
            "\r\n+CS\x00Q: 20,99\r\n\x1b\r\nOK\r\n",
            "\x00> ",
        ]);
        assert_eq!(
            got,
            vec![
                Event::Final(Final::Ok),
                Event::Info("+CSQ: 20,99".into()),
                Event::Final(Final::Ok),
                Event::Prompt,
            ]
        );
        // Not UTF-8: noise, not an answer.
        let mut reader = Reader::default();
        let mut events = Vec::new();
        reader.push(b"\xff\xfe\x80\r\n\r\nOK\r\n", &mut events);
        assert_eq!(events, vec![Event::Final(Final::Ok)]);
    }

    #[test]
    fn a_line_too_long_is_dropped_whole_and_the_next_one_read() {
        let mut reader = Reader::default();
        let mut events = Vec::new();
        reader.push(&vec![b'A'; 3 * MAX_LINE], &mut events);
        reader.push(b"BOK\r\nOK\r\n", &mut events);
        assert_eq!(events, vec![Event::Final(Final::Ok)]);
        assert!(reader.line.capacity() <= 2 * MAX_LINE);
    }

    #[test]
    fn a_status_report_pdu_is_found_past_noise_and_not_taken_from_another_line() {
        let pdu = "0006D60B911326880736F4111011719551401110117195714000";
        let mut reader = Reader::default();
        let mut got = Vec::new();
        reader.push(b"\r\n+CDS: 25\r\n", &mut got);
        reader.push(b"\x00\xff\r\n", &mut got);
        reader.push(format!("{pdu}\r\n").as_bytes(), &mut got);
        assert_eq!(
            got,
            vec![Event::StatusReport {
                length: 25,
                pdu: pdu.into()
            }]
        );
        let got = events(&["\r\n+CDS: 25\r\n\r\nOK\r\n"]);
        assert_eq!(got, vec![Event::Final(Final::Ok)], "the OK is not a PDU");
    }

    #[test]
    fn signal_quality_and_registration_are_typed() {
        let line = |l: &str| vec!["garbage".to_string(), l.to_string()];
        let csq = SignalQuality::from_answer(&line("+CSQ: 20,99")).unwrap();
        assert_eq!((csq.rssi(), csq.dbm(), csq.ber()), (Some(20), Some(-73), None));
        assert_eq!(csq.to_string(), "+CSQ: 20,99");
        let unknown = SignalQuality::from_answer(&line("+CSQ: 99,99")).unwrap();
        assert_eq!((unknown.rssi(), unknown.dbm()), (None, None));
        assert_eq!(SignalQuality::from_answer(&line("+CSQ: 32,0")), None);
        assert_eq!(SignalQuality::from_answer(&line("+CSQ: x")), None);
        assert_eq!(SignalQuality::from_answer(&line("+CSQ: 31,7")).unwrap().ber(), Some(7));
        let table = [
            ("+CREG: 0,1", Some(Registration::Home)),
            ("+CREG: 2,5,\"00C3\",\"0000A13F\"", Some(Registration::Roaming)),
            ("+CREG: 0,0", Some(Registration::NotRegistered)),
            ("+CREG: 0,2", Some(Registration::Searching)),
            ("+CREG: 0,3", Some(Registration::Denied)),
            ("+CREG: 0,4", Some(Registration::Unknown)),
            ("+CREG: 0,9", None),
            ("+CREG: 1", None),
        ];
        for (answer, expected) in table {
            assert_eq!(Registration::from_answer(&line(answer)), expected, "{answer}");
        }
        for code in 0..=5 {
            assert_eq!(Registration::from_code(code).map(Registration::code), Some(code));
        }
        assert!(Registration::Roaming.is_registered() && !Registration::Denied.is_registered());
    }

    #[test]
    fn finals_infos_prompt_and_unsolicited_codes() {
        let table: &[(&[&str], Vec<Event>)] = &[
            (&["\r\nOK\r\n"], vec![Event::Final(Final::Ok)]),
            (
                &["AT+CGMI\r\r\nQuectel\r\n\r\nOK\r\n"],
                vec![Event::Info("Quectel".into()), Event::Final(Final::Ok)],
            ),
            (&["\r\n+CMS ERROR: 38\r\n"], vec![Event::Final(Final::Cms(38))]),
            (&["\r\n+CME ERROR: 16\r\n"], vec![Event::Final(Final::Cme(16))]),
            (&["\r\n> "], vec![Event::Prompt]),
            (
                &["\r\n+CMGS: 12\r\n\r\nOK\r\n"],
                vec![Event::Info("+CMGS: 12".into()), Event::Final(Final::Ok)],
            ),
            (
                &["\r\n+CMTI: \"SM\",3\r\n"],
                vec![Event::Stored {
                    memory: Memory::new("SM").unwrap(),
                    index: 3,
                }],
            ),
            (
                &["\r\n+CDSI: \"SR\",4\r\n"],
                vec![Event::Stored {
                    memory: Memory::new("SR").unwrap(),
                    index: 4,
                }],
            ),
            (&["\r\nRING\r\n"], vec![Event::Other("RING".into())]),
            // A memory that is not [A-Z0-9]{1,4} would inject AT text into AT+CPMS.
            (
                &["\r\n+CMTI: \"SM\";AT+CMGD=1,4;\"\",3\r\n"],
                vec![Event::Other("+CMTI: \"SM\";AT+CMGD=1,4;\"\",3".into())],
            ),
            (
                &["\r\n+CMTI: \"SM\"\",3\r\n"],
                vec![Event::Other("+CMTI: \"SM\"\",3".into())],
            ),
            (
                &["\r\n+CDSI: \"sr\",4\r\n"],
                vec![Event::Other("+CDSI: \"sr\",4".into())],
            ),
            (
                &["\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n"],
                vec![
                    Event::Other("RDY".into()),
                    Event::Other("+CFUN: 1".into()),
                    // Also the answer to AT+CPIN?: an information line.
                    Event::Info("+CPIN: READY".into()),
                ],
            ),
            (
                &["\r\nCall Ready\r\n\r\n+CGREG: 1\r\n\r\n^RSSI: 17\r\n"],
                vec![
                    Event::Other("Call Ready".into()),
                    Event::Other("+CGREG: 1".into()),
                    Event::Other("^RSSI: 17".into()),
                ],
            ),
        ];
        for (chunks, expected) in table {
            assert_eq!(&events(chunks), expected, "{chunks:?}");
        }
    }

    #[test]
    fn a_status_report_inside_a_command_answer_split_across_reads() {
        let got = events(&[
            "\r\n+CMGS: 7\r\n\r\n+CD",
            "S: 25\r\n0006D60B911326880736F4111011719551401110117195714000\r",
            "\n\r\nOK\r\n",
        ]);
        assert_eq!(
            got,
            vec![
                Event::Info("+CMGS: 7".into()),
                Event::StatusReport {
                    length: 25,
                    pdu: "0006D60B911326880736F4111011719551401110117195714000".into()
                },
                Event::Final(Final::Ok),
            ]
        );
        assert_eq!(message_reference(&["+CMGS: 7".to_string()]), Some(7));
    }

    proptest::proptest! {
        /// The fuzz target's property (`fuzz/fuzz_targets/at_reader.rs`) on every test
        /// run: any bytes, read in any chunks, give events without a panic, and no more
        /// than `MAX_LINE` bytes of a line are kept.
        #[test]
        fn any_bytes_in_any_chunks_are_read_without_panic(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
            chunk in 1usize..64,
        ) {
            let mut reader = Reader::default();
            let mut events = Vec::new();
            for piece in bytes.chunks(chunk) {
                reader.push(piece, &mut events);
                proptest::prop_assert!(reader.pending() <= MAX_LINE);
            }
            let info: Vec<String> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Info(line) => Some(line.clone()),
                    _ => None,
                })
                .collect();
            let _ = (SignalQuality::from_answer(&info), Registration::from_answer(&info));
            let _ = message_reference(&info);
        }
    }
}
