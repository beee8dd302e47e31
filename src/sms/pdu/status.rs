//! SMS-STATUS-REPORT (TS 23.040 §9.2.2.3): what `+CDS` gives after a submit with TP-SRR.

use serde::Serialize;

use super::PduError;
use super::address::{self, Address};
use super::reader::Reader;
use super::timestamp::Timestamp;
use super::udh::Udh;
use super::user_data::{self, Body};

/// The network's report on an SMS we sent: matched to the part by TP-MR and recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    /// The SMS centre that sent the report; `None` when the modem left the field out.
    pub smsc: Option<Address>,
    /// TP-MR of the SMS-SUBMIT reported on, as `+CMGS` returned it.
    pub message_reference: u8,
    /// TP-RA: the recipient of the SMS reported on.
    pub recipient: Address,
    /// TP-SCTS: when the centre received the SMS-SUBMIT.
    pub sc_timestamp: String,
    /// TP-DT: when the message was delivered, or the last attempt failed.
    pub discharge_time: String,
    /// TP-ST as received.
    pub status: u8,
    /// What TP-ST means for the request.
    pub result: ReportStatus,
    /// TP-SRQ: the report answers an SMS-COMMAND rather than an SMS-SUBMIT.
    pub for_command: bool,
    /// TP-PID, when TP-PI announces it.
    pub pid: Option<u8>,
    /// TP-DCS, when TP-PI announces it.
    pub dcs: Option<u8>,
    /// The user data header, when TP-PI announces user data and TP-UDHI is set.
    pub udh: Option<Udh>,
    /// TP-UD, when TP-PI announces it.
    pub body: Option<Body>,
}

/// The four outcomes of TP-ST (§9.2.3.15) that the gateway acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportStatus {
    /// 0x00–0x1F: transaction completed (received, forwarded unconfirmed, replaced).
    Delivered,
    /// 0x20–0x3F: temporary error, the centre still tries.
    StillTrying,
    /// 0x40–0x5F: permanent error, the centre stopped. Also the reserved 0x80–0xFF,
    /// which promise neither delivery nor a further attempt.
    PermanentFailure,
    /// 0x60–0x7F: temporary error, but the centre stopped trying.
    TemporaryFailure,
}

impl ReportStatus {
    /// The outcome a TP-ST value stands for.
    pub fn of(status: u8) -> ReportStatus {
        match status {
            0x00..=0x1F => ReportStatus::Delivered,
            0x20..=0x3F => ReportStatus::StillTrying,
            0x60..=0x7F => ReportStatus::TemporaryFailure,
            _ => ReportStatus::PermanentFailure,
        }
    }

    /// Whether the centre has finished with the message (no later report will come).
    pub fn is_final(self) -> bool {
        self != ReportStatus::StillTrying
    }
}

/// Reads the TPDU of an SMS-STATUS-REPORT, from its first octet; the optional fields
/// after TP-ST are read only when present.
pub(super) fn read(smsc: Option<Address>, reader: &mut Reader<'_>) -> Result<StatusReport, PduError> {
    let first = reader.u8("first octet")?;
    let message_reference = reader.u8("TP-MR")?;
    let recipient = address::read(reader)?;
    let sc_timestamp = Timestamp::read(reader)?.to_iso8601();
    let discharge_time = Timestamp::read(reader)?.to_iso8601();
    let status = reader.u8("TP-ST")?;
    let mut report = StatusReport {
        smsc,
        message_reference,
        recipient,
        sc_timestamp,
        discharge_time,
        status,
        result: ReportStatus::of(status),
        for_command: first & 0x20 != 0,
        pid: None,
        dcs: None,
        udh: None,
        body: None,
    };
    if reader.remaining() > 0 {
        read_optional(&mut report, first, reader)?;
    }
    Ok(report)
}

/// TP-PI and the fields it announces (§9.2.3.27); extension octets carry nothing we use.
fn read_optional(report: &mut StatusReport, first: u8, reader: &mut Reader<'_>) -> Result<(), PduError> {
    let pi = reader.u8("TP-PI")?;
    let mut extension = pi;
    while extension & 0x80 != 0 {
        extension = reader.u8("TP-PI extension")?;
    }
    if pi & 0x01 != 0 {
        report.pid = Some(reader.u8("TP-PID")?);
    }
    if pi & 0x02 != 0 {
        report.dcs = Some(reader.u8("TP-DCS")?);
    }
    if pi & 0x04 != 0 {
        let (udh, body) = user_data::read(reader, first & 0x40 != 0, report.dcs.unwrap_or(0))?;
        report.udh = udh;
        report.body = Some(body);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_range_is_classified() {
        let table = [
            (0x00, ReportStatus::Delivered),
            (0x01, ReportStatus::Delivered),
            (0x1F, ReportStatus::Delivered),
            (0x20, ReportStatus::StillTrying),
            (0x30, ReportStatus::StillTrying),
            (0x40, ReportStatus::PermanentFailure),
            (0x45, ReportStatus::PermanentFailure),
            (0x60, ReportStatus::TemporaryFailure),
            (0x65, ReportStatus::TemporaryFailure),
            (0x80, ReportStatus::PermanentFailure),
            (0xFF, ReportStatus::PermanentFailure),
        ];
        for (status, expected) in table {
            assert_eq!(ReportStatus::of(status), expected, "TP-ST {status:02X}");
        }
        assert!(!ReportStatus::StillTrying.is_final());
        assert!(ReportStatus::TemporaryFailure.is_final());
    }
}
