//! A fixed corpus of malformed PDUs: each must give its typed error, none may panic.

use super::{PduError, decode, decode_bytes, from_hex};

/// Valid PDUs of each type whose every prefix is invalid.
const VALID: [&str; 6] = [
    "0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
    "0041000691214365000012050003CC0201906536FB0DBABFE56C32",
    "039121F33100039121F30018BC0C041F04400438043204350442",
    "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B",
    "0591721891F1400781721881F800003160526104848059050003C30101916536FB1DCABEEB2074D85E064941B19CAB060319A5C522289C96D3D3ED32286C0FA7D96131BBEC024941B19CAB0603DDD36C36A88C87A7E565D0DB0D82C55EB0DB4B068BCD5C20",
    "07911326040000F006D60B911326880736F4111011719551401110117195714000",
];

#[test]
fn every_truncation_of_a_valid_pdu_is_an_error() {
    for hex in VALID {
        let bytes = from_hex(hex).unwrap();
        assert!(decode_bytes(&bytes).is_ok(), "{hex}");
        for len in 0..bytes.len() {
            assert!(decode_bytes(&bytes[..len]).is_err(), "{hex} cut to {len} octets");
        }
    }
}

#[test]
fn every_single_octet_change_decodes_or_errs_without_panicking() {
    for hex in VALID {
        let bytes = from_hex(hex).unwrap();
        for i in 0..bytes.len() {
            for value in [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF] {
                let mut changed = bytes.clone();
                changed[i] = value;
                let _ = decode_bytes(&changed).map(|pdu| serde_json::to_string(&pdu).unwrap());
            }
        }
    }
}

#[test]
fn malformed_corpus_gives_typed_errors() {
    use PduError::*;
    let table: [(&str, &str, PduError); 22] = [
        ("empty", "", Truncated("SMSC length")),
        ("odd hex", "001", OddHex),
        ("non-hex", "0G11", BadHex(1)),
        (
            "SMSC length 12",
            "0C91",
            BadLength {
                field: "SMSC length",
                value: 12,
            },
        ),
        ("SMSC cut short", "07911326", Truncated("SMSC digits")),
        ("no first octet", "00", Truncated("first octet")),
        ("reserved TP-MTI 11", "0003", UnsupportedType(3)),
        (
            "address of 21 digits",
            "0001001591",
            BadLength {
                field: "address length",
                value: 21,
            },
        ),
        (
            "filler inside a number",
            "0001000491F23100000141",
            BadAddress("filler digit inside the number"),
        ),
        (
            "7-bit UDL 161",
            "000100039121F30000A1",
            BadLength {
                field: "TP-UDL",
                value: 161,
            },
        ),
        (
            "UCS-2 UDL 141",
            "000100039121F300088D",
            BadLength {
                field: "TP-UDL",
                value: 141,
            },
        ),
        ("UDL beyond the data", "000100039121F300000541", Truncated("user data")),
        (
            "data after the user data",
            "000100039121F3000001410000",
            TrailingData(2),
        ),
        ("UDHI with UDL 0", "004100039121F3000000", BadUdh("UDHL missing")),
        (
            "UDH longer than UD",
            "004100039121F30000020600",
            BadUdh("header longer than the user data"),
        ),
        (
            "7-bit UDH septets beyond UDL",
            "004100039121F3000006050003010201",
            BadUdh("header longer than the user data"),
        ),
        (
            "IE beyond the UDH",
            "004100039121F300000403000300",
            BadUdh("IE longer than the header"),
        ),
        (
            "concat IE of length 2",
            "004100039121F3000006040002010100",
            BadUdh("concatenation IE of the wrong length"),
        ),
        ("UCS-2 odd octets", "000100039121F300080141", OddUcs2),
        ("month 13", "0004039121F30000421311000000000141", BadTimestamp("month")),
        (
            "status report cut in TP-DT",
            "0006D60B911326880736F411101171955140111011",
            Truncated("time stamp"),
        ),
        // gsmmodem test_pdu.py: "User data length is invalid in this PDU (too long)": UCS-2 UDL 0xA0.
        (
            "gsmmodem invalid UDL",
            "0041010C910661345542F60008A0050003000301306F3044",
            BadLength {
                field: "TP-UDL",
                value: 160,
            },
        ),
    ];
    for (what, hex, error) in table {
        assert_eq!(decode(hex), Err(error), "{what}: {hex}");
    }
}
