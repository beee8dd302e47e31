//! SMS-SUBMIT as decoded (TS 23.040 §9.2.2.2), so that the simulated modem can check
//! every field that `encode_submit` writes.

use serde::Serialize;

use super::address::{self, Address};
use super::reader::Reader;
use super::timestamp::Timestamp;
use super::udh::Udh;
use super::user_data::{self, Body};
use super::{PduError, to_hex};

/// An SMS-SUBMIT as the modem was given it: what the simulator checks and records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Submit {
    /// The SMSC field; `None` for "00", the SIM's default centre.
    pub smsc: Option<Address>,
    /// TP-RD.
    pub reject_duplicates: bool,
    /// TP-SRR.
    pub status_report: bool,
    /// TP-RP.
    pub reply_path: bool,
    /// TP-MR; 0 when the modem assigns it.
    pub message_reference: u8,
    /// TP-DA: where the SMS goes.
    pub destination: Address,
    /// TP-PID (0: a plain SMS).
    pub pid: u8,
    /// TP-DCS: the alphabet and class of `body`.
    pub dcs: u8,
    /// Message class from the DCS; 0 is a flash SMS.
    pub class: Option<u8>,
    /// TP-VP, when TP-VPF says one is present.
    pub validity: Option<Validity>,
    /// The user data header, when TP-UDHI is set: concatenation and other IEs.
    pub udh: Option<Udh>,
    /// The text, or the raw octets of 8-bit data.
    pub body: Body,
}

/// TP-VP in the format TP-VPF announces (§9.2.3.12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum Validity {
    /// TP-VPF 10: a period from submission, in minutes.
    Relative {
        /// What the TP-VP octet stands for, in minutes.
        minutes: u32,
    },
    /// TP-VPF 11: an absolute time (TS 23.040 §9.2.3.11), ISO 8601 with its offset.
    Absolute {
        /// The expiry time, e.g. "2024-03-05T14:30:00+02:00".
        time: String,
    },
    /// TP-VPF 01: the enhanced format (§9.2.3.12.3), kept as its 7 octets in hex.
    Enhanced {
        /// The 7 TP-VP octets, uppercase hex.
        hex: String,
    },
}

/// Minutes that a relative TP-VP octet stands for (§9.2.3.12.1).
pub(super) fn relative_minutes(vp: u8) -> u32 {
    let vp = u32::from(vp);
    match vp {
        0..=143 => (vp + 1) * 5,
        144..=167 => 12 * 60 + (vp - 143) * 30,
        168..=196 => (vp - 166) * 24 * 60,
        _ => (vp - 192) * 7 * 24 * 60,
    }
}

/// The shortest relative TP-VP that lasts at least `minutes`; 63 weeks at most.
pub(super) fn relative_octet(minutes: u32) -> u8 {
    (0..=u8::MAX)
        .find(|&vp| relative_minutes(vp) >= minutes)
        .unwrap_or(u8::MAX)
}

/// Reads the TPDU of an SMS-SUBMIT, from its first octet.
pub(super) fn read(smsc: Option<Address>, reader: &mut Reader<'_>) -> Result<Submit, PduError> {
    let first = reader.u8("first octet")?;
    let message_reference = reader.u8("TP-MR")?;
    let destination = address::read(reader)?;
    let pid = reader.u8("TP-PID")?;
    let dcs = reader.u8("TP-DCS")?;
    let validity = match (first >> 3) & 0x03 {
        0 => None,
        2 => Some(Validity::Relative {
            minutes: relative_minutes(reader.u8("TP-VP")?),
        }),
        3 => Some(Validity::Absolute {
            time: Timestamp::read(reader)?.to_iso8601(),
        }),
        _ => Some(Validity::Enhanced {
            hex: to_hex(reader.take(7, "TP-VP")?),
        }),
    };
    let (udh, body) = user_data::read(reader, first & 0x40 != 0, dcs)?;
    Ok(Submit {
        smsc,
        reject_duplicates: first & 0x04 != 0,
        status_report: first & 0x20 != 0,
        reply_path: first & 0x80 != 0,
        message_reference,
        destination,
        pid,
        dcs,
        class: user_data::message_class(dcs),
        validity,
        udh,
        body,
    })
}

impl Submit {
    /// (part, parts), counting from 1; (1, 1) for a message that is not concatenated.
    pub fn part(&self) -> (u8, u8) {
        self.udh
            .as_ref()
            .and_then(|h| h.concat)
            .map_or((1, 1), |c| (c.part, c.parts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_validity_periods() {
        // §9.2.3.12.1 boundaries; 4 days is 0xAA as in the dreamfabric "hellohello" PDU.
        let table = [
            (0, 0x00, 5),
            (5, 0x00, 5),
            (6, 0x01, 10),
            (720, 143, 720),
            (721, 144, 750),
            (1440, 167, 1440),
            (2 * 1440, 168, 2 * 1440),
            (4 * 1440, 0xAA, 4 * 1440),
            (30 * 1440, 196, 30 * 1440),
            (30 * 1440 + 1, 197, 5 * 7 * 1440),
            (63 * 7 * 1440, 255, 63 * 7 * 1440),
            (u32::MAX, 255, 63 * 7 * 1440),
        ];
        for (minutes, octet, lasts) in table {
            assert_eq!(relative_octet(minutes), octet, "{minutes} minutes");
            assert_eq!(relative_minutes(octet), lasts);
        }
    }
}
