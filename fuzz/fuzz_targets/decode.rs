//! Any octets (and any text, as hex) decode to a PDU or an error, never a panic; a decoded
//! PDU serialises to JSON and formats for logs without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smsgw::sms::{decode, decode_bytes, decode_with_tpdu_len};

fuzz_target!(|data: &[u8]| {
    if let Ok(pdu) = decode_bytes(data) {
        let json = serde_json::to_string(&pdu).expect("a decoded PDU serialises");
        assert!(json.starts_with("{\"type\":"));
        let _ = format!("{pdu:?}");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode(text);
        let _ = decode_with_tpdu_len(text, data.len() / 2);
    }
});
