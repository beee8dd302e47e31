//! PDUs the network sends the modem, SMS-DELIVER and SMS-STATUS-REPORT, as `+CMT`,
//! `+CDS` and `+CMGR` give them.

use std::time::SystemTime;

use crate::sms::{DeliverOptions, EncodeError, StatusReportOptions, Timestamp, encode_deliver, encode_status_report};

use super::clock::Utc;
use super::types::{DEFAULT_SMSC, Encoded};
use super::{Incoming, SimError};

/// TP-ST of a delivered SMS.
pub(super) const DELIVERED: u8 = 0x00;
/// TP-ST "remote procedure error": permanent, the centre stopped trying.
pub(super) const PERMANENT_FAILURE: u8 = 0x41;

/// The report on the SMS-SUBMIT that `+CMGS` numbered `mr`, sent to `recipient`, received
/// by the centre at `submitted`, settled at `discharged`.
pub(super) fn status_report(
    smsc: &str,
    mr: u8,
    recipient: &str,
    submitted: Timestamp,
    discharged: Timestamp,
    status: u8,
) -> Result<Encoded, EncodeError> {
    let opts = StatusReportOptions {
        smsc: Some(smsc.to_string()),
        message_reference: mr,
        sc_timestamp: submitted,
        discharge_time: discharged,
        status,
    };
    encode_status_report(recipient, &opts).map(Encoded::with_smsc)
}

/// Every part of every incoming SMS, as the centre received them at `wall`; their
/// concatenation references count from `first`.
pub(super) fn deliver_parts(incoming: &[Incoming], wall: SystemTime, first: u16) -> Result<Vec<Encoded>, SimError> {
    let mut parts = Vec::new();
    for (reference, sms) in (first..).zip(incoming) {
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

#[cfg(test)]
mod tests {
    use super::super::submit;
    use super::*;
    use crate::sms::{self, Pdu, ReportStatus, SubmitOptions, encode_submit};

    #[test]
    fn reports_decode_with_the_codec() {
        let report = status_report(
            "+447785016005",
            42,
            "+447700900123",
            Timestamp::sample(12, 0),
            Timestamp::sample(13, -8),
            PERMANENT_FAILURE,
        )
        .unwrap();
        assert_eq!(
            report.hex,
            "0791447758100650062A0C91447700091032621152210350006211523103508841"
        );
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

    /// The report is built from the decoded number, so TP-RA must come out as the TP-DA
    /// that the gateway's encoder wrote.
    #[test]
    fn tp_ra_repeats_the_submitted_tp_da() {
        for number in ["+447700900123", "+1", "0477858589", "Design@Home"] {
            let part = &encode_submit(number, "hi", &SubmitOptions::default()).unwrap()[0];
            let submitted = submit::validate(&part.hex, part.tpdu_len).unwrap();
            let report = status_report(
                DEFAULT_SMSC,
                1,
                &submitted.number,
                Timestamp::sample(12, 0),
                Timestamp::sample(12, 0),
                DELIVERED,
            )
            .unwrap();
            // TP-DA follows the empty SMSC field, the first octet and TP-MR; TP-RA follows
            // the 8-octet field of DEFAULT_SMSC, the first octet and TP-MR.
            let semi_octets = usize::from_str_radix(&part.hex[6..8], 16).unwrap();
            let tp_da = &part.hex[6..6 + 4 + 2 * semi_octets.div_ceil(2)];
            assert_eq!(&report.hex[20..20 + tp_da.len()], tp_da, "{number}");
        }
    }
}
