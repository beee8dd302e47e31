//! Published PDUs rebuilt by the encoders, octet for octet. Sources as in vectors.rs.

use super::super::language::{Encoding, Language};
use super::timestamp::Timestamp;
use super::udh::{Concat, Udh};
use super::{
    DeliverOptions, StatusReportOptions, SubmitOptions, encode_deliver, encode_status_report, encode_submit, user_data,
};

#[test]
fn submit_vectors_encode_octet_for_octet() {
    let opts = |smsc: Option<&str>, minutes: Option<u32>| SubmitOptions {
        smsc: smsc.map(String::from),
        validity_minutes: minutes,
        ..SubmitOptions::default()
    };
    let flash = SubmitOptions {
        flash: true,
        status_report: true,
        ..opts(Some("+123"), Some(22 * 1440))
    };
    let diafaan = SubmitOptions {
        status_report: true,
        ..opts(Some("+31624000000"), Some(3 * 1440))
    };
    let table = [
        // dreamfabric / ATLib; AT+CMGS=23.
        (
            "+46708251358",
            "hellohello",
            opts(None, Some(4 * 1440)),
            "0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
        ),
        // ATLib.
        (
            "12345678",
            "The quick brown fox jumps over the lazy dog",
            opts(Some("87654321"), Some(60)),
            "058178563412110008812143658700000B2B54741914AFA7C76B9058FEBEBB41E6371EA4AEB7E173D0DB5E9683E8E832881DD6E741E4F719",
        ),
        // gsmmodem test_encodeSmsSubmit.
        (
            "+27820001111",
            "Hello World!",
            opts(None, None),
            "0001000B917228001011F100000CC8329BFD065DDF72363904",
        ),
        (
            "+123456789",
            "世界您好！",
            opts(Some("+44000000000"), Some(52 * 7 * 1440)),
            "07914400000000F01100099121436587F90008F40A4E16754C60A8597DFF01",
        ),
        // gsmmodem, with TP-MR 00 where the test has 0D: the modem, not smsgw, numbers messages.
        (
            "+31628870634",
            "www.diafaan.com",
            diafaan,
            "07911326040000F031000B911326880736F40000A90FF7FBDD454E87CDE1B0DB357EB701",
        ),
        // luasms: UCS-2 flash with status report.
        (
            "+123",
            "Привет",
            flash,
            "039121F33100039121F30018BC0C041F04400438043204350442",
        ),
    ];
    for (number, text, opts, hex) in table {
        let pdus = encode_submit(number, text, &opts).unwrap();
        let smsc_octets = usize::from(u8::from_str_radix(&hex[..2], 16).unwrap()) + 1;
        assert_eq!(pdus.len(), 1);
        assert_eq!(pdus[0].hex, hex, "{text}");
        assert_eq!(pdus[0].tpdu_len, hex.len() / 2 - smsc_octets, "{text}");
        assert_eq!((pdus[0].part, pdus[0].parts), (1, 1));
    }
}

#[test]
fn user_data_with_header_encodes_as_published() {
    // luasms "SMS-SUBMIT 7bit udh": UDL 0x12, UDH 05 00 03 CC 02 01, one fill bit, "Hello world".
    let concat = Concat {
        reference: 0xCC,
        parts: 2,
        part: 1,
        wide: false,
    };
    let (udl, ud) = user_data::encode(
        "Hello world",
        Encoding::GSM7,
        &Udh::for_part(Encoding::GSM7, Some(concat)),
    )
    .unwrap();
    assert_eq!(udl, 0x12);
    assert_eq!(super::to_hex(&ud), "050003CC0201906536FB0DBABFE56C32");
}

#[test]
fn deliver_vector_encodes_octet_for_octet() {
    // ATLib's "How are you?" SMS-DELIVER, rebuilt from its fields.
    let opts = DeliverOptions {
        smsc: Some("+31624000000".into()),
        timestamp: Timestamp {
            year: 2002,
            month: 8,
            day: 26,
            hour: 19,
            minute: 37,
            second: 41,
            offset_quarters: 8,
        },
        concat16: false,
        reference: 0,
        languages: vec![Language::Turkish],
    };
    let pdus = encode_deliver("+31641600986", "How are you?", &opts).unwrap();
    assert_eq!(
        pdus,
        ["07911326040000F0040B911346610089F60000208062917314800CC8F71D14969741F977FD07"]
    );
}

#[test]
fn status_report_vector_encodes_octet_for_octet() {
    // ATLib, gsmmodem, lua-sms: the report with TP-MR 0xD6 on a message to +31628870634.
    let at = |second| Timestamp {
        year: 2011,
        month: 1,
        day: 11,
        hour: 17,
        minute: 59,
        second,
        offset_quarters: 4,
    };
    let opts = StatusReportOptions {
        smsc: None,
        message_reference: 0xD6,
        sc_timestamp: at(15),
        discharge_time: at(17),
        status: 0x00,
    };
    assert_eq!(
        encode_status_report("+31628870634", &opts).unwrap(),
        "0006D60B911326880736F4111011719551401110117195714000"
    );
}
