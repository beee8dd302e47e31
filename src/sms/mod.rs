//! SMS text and PDUs: GSM 03.38 / TS 23.038 alphabets, splitting into parts,
//! SMS-SUBMIT / SMS-DELIVER / SMS-STATUS-REPORT encoding and decoding (TS 23.040),
//! and reassembly of concatenated messages. Pure: no I/O, no clock.

mod gsm7;
mod language;
mod national;
mod pdu;
#[cfg(test)]
mod proptests;
mod reassembly;
mod split;
mod tables;
mod ucs2;

pub use language::{Encoding, Language, UnknownEncoding, UnknownLanguage};
pub use pdu::{
    Address, AddressKind, Body, Concat, Deliver, DeliverOptions, EncodeError, Pdu, PduError, RawIe, ReportStatus,
    StatusReport, StatusReportOptions, Submit, SubmitOptions, SubmitPdu, Timestamp, Udh, Validity, decode,
    decode_bytes, decode_with_tpdu_len, encode_deliver, encode_status_report, encode_submit, from_hex, to_hex,
};
pub use reassembly::{Reassembled, Reassembler};
pub use split::{Split, split, split_with};
