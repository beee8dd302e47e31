//! SMS-DELIVER (TS 23.040 §9.2.2.1): what `+CMT` and `+CMGR` give for a received SMS.

use serde::Serialize;

use super::PduError;
use super::address::{self, Address};
use super::reader::Reader;
use super::timestamp::Timestamp;
use super::udh::Udh;
use super::user_data::{self, Body};

/// A received SMS (or one part of it), as decoded for the inbox and `smsgw pdu decode`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deliver {
    /// The SMS centre that delivered it; `None` when the modem left the field out.
    pub smsc: Option<Address>,
    /// TP-MMS inverted: true when the centre has more messages waiting.
    pub more_messages: bool,
    /// TP-SRI: the sender asked for a status report.
    pub status_report_indication: bool,
    /// TP-RP.
    pub reply_path: bool,
    /// TP-OA: who sent it.
    pub originator: Address,
    /// TP-PID, as received (0: a plain SMS).
    pub pid: u8,
    /// TP-DCS, as received; `body` is already decoded by it.
    pub dcs: u8,
    /// Message class from the DCS; 0 is a flash SMS.
    pub class: Option<u8>,
    /// TP-SCTS as ISO 8601 with the centre's offset, e.g. "2024-03-05T14:30:00+02:00".
    pub timestamp: String,
    /// The user data header, when TP-UDHI is set: concatenation and other IEs.
    pub udh: Option<Udh>,
    /// The text, or the raw octets of 8-bit data.
    pub body: Body,
}

/// Reads the TPDU of an SMS-DELIVER, from its first octet.
pub(super) fn read(smsc: Option<Address>, reader: &mut Reader<'_>) -> Result<Deliver, PduError> {
    let first = reader.u8("first octet")?;
    let originator = address::read(reader)?;
    let pid = reader.u8("TP-PID")?;
    let dcs = reader.u8("TP-DCS")?;
    let timestamp = Timestamp::read(reader)?.to_iso8601();
    let (udh, body) = user_data::read(reader, first & 0x40 != 0, dcs)?;
    Ok(Deliver {
        smsc,
        more_messages: first & 0x04 == 0,
        status_report_indication: first & 0x20 != 0,
        reply_path: first & 0x80 != 0,
        originator,
        pid,
        dcs,
        class: user_data::message_class(dcs),
        timestamp,
        udh,
        body,
    })
}

impl Deliver {
    /// (part, parts), counting from 1; (1, 1) for a message that is not concatenated.
    pub fn part(&self) -> (u8, u8) {
        self.udh
            .as_ref()
            .and_then(|h| h.concat)
            .map_or((1, 1), |c| (c.part, c.parts))
    }
}
