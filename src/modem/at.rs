//! AT commands as typed values, and the reader that splits a modem's byte stream into
//! final results, information lines, the `> ` prompt and unsolicited codes (3GPP TS
//! 27.007 / 27.005). Pure: the driver feeds it bytes.

use std::fmt;

use crate::config::StatusReports;

/// A command, displayed exactly as sent (the driver appends `\r`).
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
    PinEnter(String),
    /// `AT+CMGF=0`: PDU mode, the only one the gateway speaks.
    PduMode,
    /// `AT+CSCA="<number>",145`: the SMS centre, in international format.
    ServiceCentre(String),
    /// New-message indications: `+CMTI` for SMS; status reports as `+CDS` with their
    /// PDU, or, for modems that can only store them, as `+CDSI` with an index, or none.
    Indications(StatusReports),
    /// `AT+CREG?`: network registration, logged at start and shown by `modem probe`.
    Registration,
    /// `AT+CSQ`: signal quality, shown on the board.
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
    SelectMemory(String),
    /// `AT+CMGR=<index>`: reads a stored message (its PDU) from the selected memory.
    Read(u32),
    /// `AT+CMGD=<index>`: deletes a stored message once read.
    Delete(u32),
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::At => write!(f, "AT"),
            Command::EchoOff => write!(f, "ATE0"),
            Command::VerboseErrors => write!(f, "AT+CMEE=1"),
            Command::PinQuery => write!(f, "AT+CPIN?"),
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
            Command::SignalQuality => write!(f, "AT+CSQ"),
            Command::Manufacturer => write!(f, "AT+CGMI"),
            Command::Model => write!(f, "AT+CGMM"),
            Command::Serial => write!(f, "AT+CGSN"),
            Command::ServiceCentreQuery => write!(f, "AT+CSCA?"),
            Command::Send(length) => write!(f, "AT+CMGS={length}"),
            Command::SelectMemory(memory) => write!(f, "AT+CPMS=\"{memory}\""),
            Command::Read(index) => write!(f, "AT+CMGR={index}"),
            Command::Delete(index) => write!(f, "AT+CMGD={index}"),
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
    /// modem's `memory` at `index`.
    Stored {
        /// The modem's message storage, e.g. "SM" or "SR".
        memory: String,
        /// The message's place in that storage, as the modem numbers it.
        index: u32,
    },
    /// Other unsolicited codes (RING, +CREG: 1, ...): logged.
    Other(String),
}

/// Splits the byte stream into events; keeps partial lines between reads.
#[derive(Debug, Default)]
pub struct Reader {
    line: Vec<u8>,
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

    fn end_line(&mut self, events: &mut Vec<Event>) {
        let line = String::from_utf8_lossy(&self.line).trim().to_string();
        self.line.clear();
        if line.is_empty() {
            return;
        }
        if let Some(length) = self.awaiting_report_pdu.take() {
            events.push(Event::StatusReport { length, pdu: line });
            return;
        }
        if line == ">" {
            events.push(Event::Prompt);
            return;
        }
        match classify(&line) {
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
                let parsed = stored
                    .split_once(',')
                    .and_then(|(m, i)| Some((m, i.trim().parse::<u32>().ok()?)));
                match parsed {
                    Some((memory, index)) => Event::Stored {
                        memory: memory.trim().trim_matches('"').to_string(),
                        index,
                    },
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

/// Unsolicited result codes that are not answers to any command we send.
fn is_unsolicited(line: &str) -> bool {
    ["RING", "+CRING:", "+CLIP:", "^", "+CUSD:", "+CMT:", "+CBM:", "+CIEV:"]
        .iter()
        .any(|prefix| line.starts_with(prefix))
}

/// The message reference in `+CMGS: <mr>`.
pub fn message_reference(info: &[String]) -> Option<u8> {
    info.iter()
        .find_map(|line| line.strip_prefix("+CMGS:"))
        .and_then(|mr| mr.split(',').next()?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
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
            (Command::PinEnter("1234".into()), "AT+CPIN=\"1234\""),
            (
                Command::ServiceCentre("+447785016005".into()),
                "AT+CSCA=\"+447785016005\",145",
            ),
            (Command::Send(23), "AT+CMGS=23"),
            (Command::Read(3), "AT+CMGR=3"),
        ];
        for (command, text) in table {
            assert_eq!(command.to_string(), text);
        }
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
                    memory: "SM".into(),
                    index: 3,
                }],
            ),
            (
                &["\r\n+CDSI: \"SR\",4\r\n"],
                vec![Event::Stored {
                    memory: "SR".into(),
                    index: 4,
                }],
            ),
            (&["\r\nRING\r\n"], vec![Event::Other("RING".into())]),
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
}
