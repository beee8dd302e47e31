//! Checking the PDU typed after the `> ` prompt of `AT+CMGS=<n>`, as a modem does
//! before it hands the SMS-SUBMIT to the network.

use crate::sms::{self, Pdu, PduError};

/// An SMS-SUBMIT the modem accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Submitted {
    /// The hex exactly as received.
    pub pdu: String,
    /// TP-DA, "+" first when international.
    pub number: String,
    /// The decoded text of this part.
    pub text: String,
    /// This part's number, from 1; 1 when not concatenated.
    pub part: u8,
    /// How many parts its message has; 1 when not concatenated.
    pub parts: u8,
    /// TP-SRR.
    pub status_report: bool,
}

/// Why the modem refuses a PDU typed after the prompt (it answers `+CMS ERROR: 304`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum SubmitError {
    #[error("not hex")]
    NotHex,
    #[error("AT+CMGS={declared} but the TPDU has {actual} octets")]
    Length { declared: usize, actual: usize },
    #[error(transparent)]
    Pdu(#[from] PduError),
    #[error("not an SMS-SUBMIT")]
    NotSubmit,
}

/// Validates `pdu` against the `<n>` of `AT+CMGS=<n>`. As TS 27.005 §3.5.1 lets a modem do,
/// a PDU exactly `n` octets long has no SMSC field (the SIM's centre is used).
pub(super) fn validate(pdu: &str, tpdu_len: usize) -> Result<Submitted, SubmitError> {
    let octets = sms::from_hex(pdu).map_err(|_| SubmitError::NotHex)?;
    check_length(&octets, tpdu_len)?;
    let Pdu::Submit(submit) = sms::decode_with_tpdu_len(pdu, tpdu_len)? else {
        return Err(SubmitError::NotSubmit);
    };
    let (part, parts) = submit.part();
    Ok(Submitted {
        pdu: pdu.to_string(),
        number: submit.destination.number,
        text: submit.body.as_str().to_string(),
        part,
        parts,
        status_report: submit.status_report,
    })
}

fn check_length(octets: &[u8], tpdu_len: usize) -> Result<(), SubmitError> {
    if octets.len() == tpdu_len {
        return Ok(());
    }
    let smsc = octets.first().map_or(0, |&len| 1 + usize::from(len));
    let actual = octets.len().saturating_sub(smsc);
    if actual != tpdu_len {
        return Err(SubmitError::Length {
            declared: tpdu_len,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::{SubmitOptions, encode_submit};

    #[test]
    fn an_encoded_submit_is_accepted_with_or_without_smsc_field() {
        let opts = SubmitOptions {
            status_report: true,
            ..SubmitOptions::default()
        };
        let part = &encode_submit("+447700900123", "hello", &opts).unwrap()[0];
        let submitted = validate(&part.hex, part.tpdu_len).unwrap();
        assert_eq!(submitted.number, "+447700900123");
        assert_eq!(submitted.text, "hello");
        assert_eq!((submitted.part, submitted.parts, submitted.status_report), (1, 1, true));
        let tpdu_only = &part.hex[2..];
        assert_eq!(validate(tpdu_only, part.tpdu_len).unwrap().number, "+447700900123");
    }

    #[test]
    fn bad_pdus_are_refused() {
        let part = &encode_submit("+447700900123", "hello", &SubmitOptions::default()).unwrap()[0];
        // One more than the TPDU is the whole PDU read without SMSC field: refused too.
        assert!(validate(&part.hex, part.tpdu_len + 1).is_err());
        for declared in [part.tpdu_len - 1, part.tpdu_len + 2] {
            assert_eq!(
                validate(&part.hex, declared),
                Err(SubmitError::Length {
                    declared,
                    actual: part.tpdu_len
                })
            );
        }
        assert_eq!(validate("00zz", 1), Err(SubmitError::NotHex));
        assert!(matches!(validate("0001", 1), Err(SubmitError::Pdu(_))));
        // An SMS-DELIVER (TP-MTI 00) is not something a gateway may submit.
        let deliver = concat!("00", "04", "0B914477000910F2", "0000", "42111221000000", "00");
        assert!(validate(deliver, deliver.len() / 2 - 1).is_err());
    }
}
