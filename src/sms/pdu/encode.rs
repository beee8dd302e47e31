//! SMS-SUBMIT encoding (TS 23.040 §9.2.2.2) for `AT+CMGS`, and SMS-DELIVER (§9.2.2.1)
//! and SMS-STATUS-REPORT (§9.2.2.3) encoding for the simulated modem's network side.

use serde::Serialize;

use super::super::language::{Encoding, Language};
use super::super::split::split_with;
use super::address::{self, Number};
use super::submit::relative_octet;
use super::timestamp::Timestamp;
use super::to_hex;
use super::udh::{Concat, Udh};
use super::user_data::{self, dcs_for};

/// How to encode an SMS-SUBMIT; `Default`: no report, no validity period, no national tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// SMSC number; None (or "") writes "00", the SIM's default centre.
    pub smsc: Option<String>,
    /// Relative TP-VP, rounded up to the next period the field can say (5 minutes to 63 weeks).
    pub validity_minutes: Option<u32>,
    /// TP-SRR: ask for a status report (`+CDS`).
    pub status_report: bool,
    /// Class 0: shown at once, not stored.
    pub flash: bool,
    /// 16-bit concatenation reference (IE 0x08); otherwise the low byte of `reference` (IE 0x00).
    pub concat16: bool,
    /// Concatenation reference, the same for every part of one request.
    pub reference: u16,
    /// TP-RD.
    pub reject_duplicates: bool,
    /// National tables the recipient's network is known to support.
    pub languages: Vec<Language>,
}

/// One part, ready for `AT+CMGS=<tpdu_len>` then `hex` after the `> ` prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubmitPdu {
    /// SMSC field then TPDU, uppercase hex.
    pub hex: String,
    /// TPDU octets (the SMSC field excluded).
    pub tpdu_len: usize,
    /// Counts from 1.
    pub part: u8,
    /// How many parts the text has, the same in each part.
    pub parts: u8,
}

/// Why a text or a number could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The destination (or originator) fits no address field: over 20 digits, or text
    /// longer than 11 septets or outside the GSM 7-bit alphabet.
    #[error("bad number {number:?}: {reason}")]
    BadNumber {
        /// The number as given.
        number: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The SMSC number cannot be written: it must be digits, "+" first or not.
    #[error("bad SMSC number {number:?}: {reason}")]
    BadSmsc {
        /// The number as given.
        number: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More parts than the concatenation IE can number: how many it needed.
    #[error("the text needs {0} parts; a concatenated SMS has at most 255")]
    TooManyParts(usize),
    /// Split and encoder disagree: a bug, reported rather than panicking.
    #[error("part {0} does not fit in one SMS")]
    PartDoesNotFit(u8),
}

/// Options for an SMS-DELIVER, as a network would send one to the modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverOptions {
    /// SMSC number; None (or "") writes "00", the SIM's default centre.
    pub smsc: Option<String>,
    /// TP-SCTS; fields are written as given.
    pub timestamp: Timestamp,
    /// 16-bit concatenation reference (IE 0x08); otherwise 8-bit (IE 0x00).
    pub concat16: bool,
    /// Concatenation reference, the same for every part; with 8 bits, only its low byte.
    pub reference: u16,
    /// National tables the text may be encoded with, as for `SubmitOptions::languages`.
    pub languages: Vec<Language>,
}

/// Options for an SMS-STATUS-REPORT, as a network would send one to the modem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReportOptions {
    /// SMSC number; None (or "") writes "00".
    pub smsc: Option<String>,
    /// TP-MR of the SMS-SUBMIT reported on.
    pub message_reference: u8,
    /// TP-SCTS: when the centre received the SMS-SUBMIT.
    pub sc_timestamp: Timestamp,
    /// TP-DT: when the message was delivered, or the last attempt failed.
    pub discharge_time: Timestamp,
    /// TP-ST, written as given.
    pub status: u8,
}

/// The user data of each part of a text, with its header.
struct EncodedPart {
    part: u8,
    parts: u8,
    has_udh: bool,
    encoding: Encoding,
    udl: u8,
    ud: Vec<u8>,
}

fn encode_parts(
    text: &str,
    languages: &[Language],
    concat16: bool,
    reference: u16,
) -> Result<Vec<EncodedPart>, EncodeError> {
    let split = split_with(text, languages, concat16);
    let parts = u8::try_from(split.parts.len()).map_err(|_| EncodeError::TooManyParts(split.parts.len()))?;
    let reference = if concat16 { reference } else { reference & 0xFF };
    (1..=parts)
        .zip(&split.parts)
        .map(|(part, text)| {
            let concat = (parts > 1).then_some(Concat {
                reference,
                parts,
                part,
                wide: concat16,
            });
            let udh = Udh::for_part(split.encoding, concat);
            let (udl, ud) = user_data::encode(text, split.encoding, &udh).ok_or(EncodeError::PartDoesNotFit(part))?;
            let has_udh = !udh.to_octets().is_empty();
            Ok(EncodedPart {
                part,
                parts,
                has_udh,
                encoding: split.encoding,
                udl,
                ud,
            })
        })
        .collect()
}

fn smsc_field(smsc: Option<&str>) -> Result<Vec<u8>, EncodeError> {
    let Some(number) = smsc.filter(|s| !s.is_empty()) else {
        return Ok(vec![0x00]);
    };
    let bad = |reason| EncodeError::BadSmsc {
        number: number.to_string(),
        reason,
    };
    let classified = address::classify(number).map_err(bad)?;
    address::encode_smsc(&classified).ok_or_else(|| bad("an SMSC number has digits only"))
}

fn destination(number: &str) -> Result<Vec<u8>, EncodeError> {
    let classified: Number<'_> = address::classify(number).map_err(|reason| EncodeError::BadNumber {
        number: number.to_string(),
        reason,
    })?;
    Ok(address::encode(&classified))
}

/// Encodes `text` to `number` as one SMS-SUBMIT per part (see `split_with` for the parts).
/// TP-MR is 00: the modem assigns it and `+CMGS` returns it.
pub fn encode_submit(number: &str, text: &str, opts: &SubmitOptions) -> Result<Vec<SubmitPdu>, EncodeError> {
    let destination = destination(number)?;
    let smsc = smsc_field(opts.smsc.as_deref())?;
    let vp = opts.validity_minutes.map(relative_octet);
    let first = 0x01
        | if opts.reject_duplicates { 0x04 } else { 0 }
        | if vp.is_some() { 0x10 } else { 0 }
        | if opts.status_report { 0x20 } else { 0 };
    let parts = encode_parts(text, &opts.languages, opts.concat16, opts.reference)?;
    Ok(parts
        .into_iter()
        .map(|p| {
            let mut tpdu = vec![first | if p.has_udh { 0x40 } else { 0 }, 0x00];
            tpdu.extend(&destination);
            tpdu.extend([0x00, dcs_for(p.encoding, opts.flash)]);
            tpdu.extend(vp);
            tpdu.push(p.udl);
            tpdu.extend(p.ud);
            let hex = to_hex(&[smsc.as_slice(), &tpdu].concat());
            SubmitPdu {
                hex,
                tpdu_len: tpdu.len(),
                part: p.part,
                parts: p.parts,
            }
        })
        .collect())
}

/// Encodes `text` from `originator` as one SMS-DELIVER hex string per part.
pub fn encode_deliver(originator: &str, text: &str, opts: &DeliverOptions) -> Result<Vec<String>, EncodeError> {
    let originator = destination(originator)?;
    let smsc = smsc_field(opts.smsc.as_deref())?;
    let parts = encode_parts(text, &opts.languages, opts.concat16, opts.reference)?;
    Ok(parts
        .into_iter()
        .map(|p| {
            // TP-MMS set: no more messages waiting.
            let mut pdu = smsc.clone();
            pdu.push(0x04 | if p.has_udh { 0x40 } else { 0 });
            pdu.extend(&originator);
            pdu.extend([0x00, dcs_for(p.encoding, false)]);
            pdu.extend(opts.timestamp.to_octets());
            pdu.push(p.udl);
            pdu.extend(p.ud);
            to_hex(&pdu)
        })
        .collect())
}

/// Encodes the report on an SMS-SUBMIT to `recipient` (TP-RA) as hex, SMSC field first.
pub fn encode_status_report(recipient: &str, opts: &StatusReportOptions) -> Result<String, EncodeError> {
    let recipient = destination(recipient)?;
    // TP-MTI 10, TP-MMS set: no more messages waiting.
    let mut pdu = smsc_field(opts.smsc.as_deref())?;
    pdu.extend([0x06, opts.message_reference]);
    pdu.extend(recipient);
    pdu.extend(opts.sc_timestamp.to_octets());
    pdu.extend(opts.discharge_time.to_octets());
    pdu.push(opts.status);
    Ok(to_hex(&pdu))
}

#[cfg(test)]
mod tests {
    use super::super::{Pdu, decode};
    use super::*;

    #[test]
    fn status_reports_decode_to_their_fields() {
        let table = [
            (
                None,
                0,
                "+447700900123",
                Timestamp::sample(12, 0),
                Timestamp::sample(12, 0),
                0x00,
            ),
            (
                Some("+33609001390"),
                42,
                "0477858589",
                Timestamp::sample(12, 0),
                Timestamp::sample(13, -8),
                0x41,
            ),
            (
                Some("1234"),
                255,
                "Design@Home",
                Timestamp::sample(23, 39),
                Timestamp::sample(0, 79),
                0x30,
            ),
            (
                Some(""),
                7,
                "+1",
                Timestamp::sample(0, -79),
                Timestamp::sample(9, 0),
                0x62,
            ),
        ];
        for (smsc, mr, recipient, submitted, discharged, status) in table {
            let opts = StatusReportOptions {
                smsc: smsc.map(String::from),
                message_reference: mr,
                sc_timestamp: submitted,
                discharge_time: discharged,
                status,
            };
            let hex = encode_status_report(recipient, &opts).unwrap();
            let Ok(Pdu::StatusReport(report)) = decode(&hex) else {
                panic!("not a status report: {hex}");
            };
            let smsc = smsc.filter(|s| !s.is_empty());
            assert_eq!(report.smsc.map(|a| a.number).as_deref(), smsc, "{hex}");
            assert_eq!(report.message_reference, mr, "{hex}");
            assert_eq!(report.recipient.number, recipient, "{hex}");
            assert_eq!(report.sc_timestamp, submitted.to_iso8601(), "{hex}");
            assert_eq!(report.discharge_time, discharged.to_iso8601(), "{hex}");
            assert_eq!(report.status, status, "{hex}");
            assert!(!report.for_command, "{hex}");
        }
    }

    #[test]
    fn status_reports_refuse_bad_numbers() {
        let opts = StatusReportOptions {
            smsc: None,
            message_reference: 1,
            sc_timestamp: Timestamp::sample(12, 0),
            discharge_time: Timestamp::sample(12, 0),
            status: 0,
        };
        assert!(matches!(
            encode_status_report("+", &opts),
            Err(EncodeError::BadNumber { .. })
        ));
        let alphanumeric_smsc = StatusReportOptions {
            smsc: Some("Centre".into()),
            ..opts
        };
        assert!(matches!(
            encode_status_report("+447700900123", &alphanumeric_smsc),
            Err(EncodeError::BadSmsc { .. })
        ));
    }
}
