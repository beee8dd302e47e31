//! TS 23.040 PDUs as the modem exchanges them: the SMSC address field (TS 24.011
//! RP-address, `00` for none) followed by the TPDU.
//!
//! The TP-MTI of the first octet is read as the direction of a gateway sees it:
//! 00 SMS-DELIVER, 01 SMS-SUBMIT, 10 SMS-STATUS-REPORT (the reports and SMS-COMMAND
//! that share those values travel the other way and are never handed to us).

mod address;
mod deliver;
mod encode;
mod reader;
mod status;
mod submit;
mod timestamp;
mod udh;
mod user_data;

#[cfg(test)]
mod encode_vectors;
#[cfg(test)]
mod malformed;
#[cfg(test)]
mod vectors;

use serde::Serialize;

pub use address::{Address, AddressKind};
pub use deliver::Deliver;
pub use encode::{
    DeliverOptions, EncodeError, StatusReportOptions, SubmitOptions, SubmitPdu, encode_deliver, encode_status_report,
    encode_submit,
};
pub use status::{ReportStatus, StatusReport};
pub use submit::{Submit, Validity};
pub use timestamp::Timestamp;
pub use udh::{Concat, RawIe, Udh};
pub use user_data::Body;

use reader::Reader;

/// A decoded PDU; serialises as `{"type": "deliver" | "submit" | "status-report", …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Pdu {
    /// TP-MTI 00: an SMS received from the network.
    Deliver(Deliver),
    /// TP-MTI 01: an SMS as we hand it to the modem to send.
    Submit(Submit),
    /// TP-MTI 10: the network's report on an SMS we sent.
    StatusReport(StatusReport),
}

/// Why a PDU could not be decoded; each names the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// The hex has an odd number of digits.
    #[error("odd number of hex digits")]
    OddHex,
    /// Not a hex digit, at this position (from 0) in the hex.
    #[error("not a hex digit at position {0}")]
    BadHex(usize),
    /// The PDU ends inside the named field.
    #[error("PDU ends inside {0}")]
    Truncated(&'static str),
    /// A length field beyond what its field may hold.
    #[error("{field} of {value} is out of range")]
    BadLength {
        /// The length field, e.g. "TP-UDL".
        field: &'static str,
        /// The value it carried.
        value: usize,
    },
    /// Octets left over after the PDU: how many.
    #[error("{0} octets after the end of the PDU")]
    TrailingData(usize),
    /// TP-MTI 11 (reserved for future use).
    #[error("unsupported message type (TP-MTI {0})")]
    UnsupportedType(u8),
    /// An address field that cannot be read: what is wrong with it.
    #[error("bad address: {0}")]
    BadAddress(&'static str),
    /// A user data header that cannot be read: what is wrong with it.
    #[error("bad user data header: {0}")]
    BadUdh(&'static str),
    /// A timestamp field out of range: which one.
    #[error("bad timestamp: {0}")]
    BadTimestamp(&'static str),
    /// UCS-2 user data must be whole 16-bit characters.
    #[error("UCS-2 user data has an odd number of octets")]
    OddUcs2,
}

/// Decodes hex as written after the `> ` prompt or in `+CMGR`/`+CMT`/`+CDS`: SMSC field first.
/// Whitespace around the hex is ignored; case is not significant.
pub fn decode(hex: &str) -> Result<Pdu, PduError> {
    decode_bytes(&from_hex(hex.trim())?)
}

/// Like `decode`, for modems whose unsolicited `+CMT: ,<length>` / `+CDS: <length>`
/// may leave the SMSC field out: `<length>` counts TPDU octets only, so a PDU exactly
/// that long has no SMSC field and one longer starts with it.
pub fn decode_with_tpdu_len(hex: &str, tpdu_len: usize) -> Result<Pdu, PduError> {
    let bytes = from_hex(hex.trim())?;
    if bytes.len() == tpdu_len {
        decode_tpdu(None, &mut Reader::new(&bytes))
    } else {
        decode_bytes(&bytes)
    }
}

/// Decodes raw PDU octets, SMSC field first.
pub fn decode_bytes(bytes: &[u8]) -> Result<Pdu, PduError> {
    let mut reader = Reader::new(bytes);
    let smsc = address::read_smsc(&mut reader)?;
    decode_tpdu(smsc, &mut reader)
}

fn decode_tpdu(smsc: Option<Address>, reader: &mut Reader<'_>) -> Result<Pdu, PduError> {
    let first = reader.peek("first octet")?;
    let pdu = match first & 0x03 {
        0 => Pdu::Deliver(deliver::read(smsc, reader)?),
        1 => Pdu::Submit(submit::read(smsc, reader)?),
        2 => Pdu::StatusReport(status::read(smsc, reader)?),
        mti => return Err(PduError::UnsupportedType(mti)),
    };
    match reader.remaining() {
        0 => Ok(pdu),
        extra => Err(PduError::TrailingData(extra)),
    }
}

/// Two uppercase hex digits per octet, as PDUs travel on the AT interface.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0F)]])
        .map(char::from)
        .collect()
}

/// Either case; no whitespace.
pub fn from_hex(hex: &str) -> Result<Vec<u8>, PduError> {
    let digits = hex.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(PduError::OddHex);
    }
    let nibble = |i: usize, d: u8| char::from(d).to_digit(16).map(|v| v as u8).ok_or(PduError::BadHex(i));
    digits
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| Ok(nibble(2 * i, pair[0])? << 4 | nibble(2 * i + 1, pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        assert_eq!(to_hex(&[0x00, 0x0A, 0xFF]), "000AFF");
        assert_eq!(from_hex("000aFF"), Ok(vec![0x00, 0x0A, 0xFF]));
        assert_eq!(from_hex("ABC"), Err(PduError::OddHex));
        assert_eq!(from_hex("0G"), Err(PduError::BadHex(1)));
        assert_eq!(from_hex("+1"), Err(PduError::BadHex(0)));
        assert_eq!(from_hex("é0"), Err(PduError::OddHex));
        assert_eq!(from_hex("é"), Err(PduError::BadHex(0)));
    }
}
