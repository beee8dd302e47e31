//! PDUs the network sends the modem: SMS-DELIVER (the codec encodes those) and
//! SMS-STATUS-REPORT (TS 23.040 §9.2.2.3), which the codec decodes but, being the
//! gateway's, has no reason to encode.

use std::time::SystemTime;

use crate::sms::{DeliverOptions, Timestamp, encode_deliver};

use super::clock::Utc;
use super::modem::DEFAULT_SMSC;
use super::{Incoming, SimError, hex};

/// TP-ST of a delivered SMS.
pub(super) const DELIVERED: u8 = 0x00;
/// TP-ST "remote procedure error": permanent, the centre stopped trying.
pub(super) const PERMANENT_FAILURE: u8 = 0x41;

/// A PDU as `+CDS`/`+CMGR` give it: SMSC field then TPDU, and the TPDU's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Encoded {
    pub hex: String,
    pub tpdu_len: usize,
}

impl Encoded {
    /// Reads the TPDU length off a PDU whose first octet is the SMSC field's length.
    pub fn with_smsc(hex: String) -> Encoded {
        let smsc = hex.get(..2).and_then(|l| u8::from_str_radix(l, 16).ok()).unwrap_or(0);
        let tpdu_len = (hex.len() / 2).saturating_sub(1 + usize::from(smsc));
        Encoded { hex, tpdu_len }
    }
}

/// The report on the SMS-SUBMIT that `+CMGS` numbered `mr`, sent to `recipient` (TP-DA
/// octets as submitted), received by the centre at `submitted`, settled at `discharged`.
pub(super) fn status_report(
    smsc: &str,
    mr: u8,
    recipient: &[u8],
    submitted: Timestamp,
    discharged: Timestamp,
    status: u8,
) -> Encoded {
    // TP-MTI 10 (status report), TP-MMS set: no more messages waiting.
    let mut tpdu = vec![0x06, mr];
    tpdu.extend(recipient);
    tpdu.extend(semi_octets(submitted));
    tpdu.extend(semi_octets(discharged));
    tpdu.push(status);
    let tpdu_len = tpdu.len();
    Encoded {
        hex: hex::encode(&[smsc_field(smsc), tpdu].concat()),
        tpdu_len,
    }
}

/// Every part of every incoming SMS, as the centre received them at `wall`.
pub(super) fn deliver_parts(incoming: &[Incoming], wall: SystemTime) -> Result<Vec<Encoded>, SimError> {
    let mut parts = Vec::new();
    for (reference, sms) in (1..).zip(incoming) {
        let opts = DeliverOptions {
            smsc: Some(DEFAULT_SMSC.to_string()),
            timestamp: Utc::of(wall).timestamp(),
            concat16: false,
            reference,
            languages: Vec::new(),
        };
        let hexes = encode_deliver(&sms.from, &sms.text, &opts).map_err(|source| SimError::Incoming {
            from: sms.from.clone(),
            source,
        })?;
        parts.extend(hexes.into_iter().map(Encoded::with_smsc));
    }
    Ok(parts)
}

/// TS 24.011 RP address: length, type of address, BCD digits; `00` when there is none.
/// `smsc` is "+" and digits or digits, as `AT+CSCA` checked.
pub(super) fn smsc_field(smsc: &str) -> Vec<u8> {
    let (toa, digits) = match smsc.strip_prefix('+') {
        Some(digits) => (0x91, digits),
        None => (0x81, smsc),
    };
    if digits.is_empty() {
        return vec![0x00];
    }
    let bcd: Vec<u8> = digits
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let high = pair.get(1).map_or(0x0F, |d| d - b'0');
            high << 4 | (pair[0] - b'0')
        })
        .collect();
    [vec![bcd.len() as u8 + 1, toa], bcd].concat()
}

/// TP-SCTS/TP-DT (§9.2.3.11): each field as two swapped BCD digits, the zone in quarter
/// hours with its sign in bit 3.
fn semi_octets(t: Timestamp) -> [u8; 7] {
    let swap = |v: u8| ((v % 10) << 4) | ((v / 10) % 10);
    let zone = swap(t.offset_quarters.unsigned_abs()) | if t.offset_quarters < 0 { 0x08 } else { 0 };
    [
        swap((t.year % 100) as u8),
        swap(t.month),
        swap(t.day),
        swap(t.hour),
        swap(t.minute),
        swap(t.second),
        zone,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::{self, Pdu, ReportStatus};

    fn at(hour: u8, offset_quarters: i8) -> Timestamp {
        Timestamp {
            year: 2026,
            month: 11,
            day: 25,
            hour,
            minute: 30,
            second: 5,
            offset_quarters,
        }
    }

    #[test]
    fn reports_decode_with_the_codec() {
        let recipient = [0x0C, 0x91, 0x44, 0x77, 0x00, 0x09, 0x10, 0x32];
        let report = status_report(
            "+447785016005",
            42,
            &recipient,
            at(12, 0),
            at(13, -8),
            PERMANENT_FAILURE,
        );
        assert_eq!(report.hex.get(..16), Some("0791447758100650"));
        assert_eq!(Encoded::with_smsc(report.hex.clone()), report);
        let Ok(Pdu::StatusReport(decoded)) = sms::decode_with_tpdu_len(&report.hex, report.tpdu_len) else {
            panic!("not a status report: {}", report.hex);
        };
        assert_eq!(decoded.message_reference, 42);
        assert_eq!(decoded.recipient.number, "+447700900123");
        assert_eq!(decoded.sc_timestamp, "2026-11-25T12:30:05+00:00");
        assert_eq!(decoded.discharge_time, "2026-11-25T13:30:05-02:00");
        assert_eq!(decoded.result, ReportStatus::PermanentFailure);
        assert_eq!(decoded.smsc.map(|a| a.number).as_deref(), Some("+447785016005"));
    }

    #[test]
    fn smsc_fields() {
        assert_eq!(smsc_field(""), [0x00]);
        assert_eq!(
            smsc_field("+33609001390"),
            [0x07, 0x91, 0x33, 0x06, 0x09, 0x10, 0x93, 0xF0]
        );
        assert_eq!(smsc_field("1234"), [0x03, 0x81, 0x21, 0x43]);
    }
}
