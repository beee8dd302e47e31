//! Published PDUs, decoded and checked field by field (encode_vectors.rs rebuilds them).
//! Sources are named per case; "gsmmodem" is python-gsmmodem's test/test_pdu.py,
//! "ATLib" is HeboTech.ATLib's PduTests.cs and SmsStatusReportDecoderTests.cs,
//! "luasms" is the SMS-SUBMIT/STATUS-REPORT round-trip tests of lua-sms (tpdu tests).

use serde_json::{Value, json};

use super::decode;

fn decoded(hex: &str) -> Value {
    serde_json::to_value(decode(hex).unwrap_or_else(|e| panic!("{hex}: {e}"))).unwrap()
}

fn intl(number: &str) -> Value {
    json!({"number": number, "kind": "international", "toa": 0x91})
}

fn gsm7(text: &str) -> Value {
    json!({"coding": "text", "encoding": "gsm7", "text": text})
}

#[test]
fn submit_vectors_decode() {
    let table = [
        // dreamfabric.com/sms/hello.html (Nokia 6110 example) and ATLib.
        (
            "0011000B916407281553F80000AA0AE8329BFD4697D9EC37",
            None,
            0,
            intl("+46708251358"),
            json!(5760),
            false,
            gsm7("hellohello"),
        ),
        // ATLib: SMSC "87654321" of unknown type, VP 0x0B = 60 minutes.
        (
            "058178563412110008812143658700000B2B54741914AFA7C76B9058FEBEBB41E6371EA4AEB7E173D0DB5E9683E8E832881DD6E741E4F719",
            Some(json!({"number": "87654321", "kind": "unknown", "toa": 0x81})),
            0,
            json!({"number": "12345678", "kind": "unknown", "toa": 0x81}),
            json!(60),
            false,
            gsm7("The quick brown fox jumps over the lazy dog"),
        ),
        // ATLib: a type of address without bit 7 (0x02) is still read.
        (
            "0011000802231537180000AA0D5062154403D1CB68D03DED06",
            None,
            0,
            json!({"number": "32517381", "kind": "unknown", "toa": 2}),
            json!(5760),
            false,
            gsm7("PDU 4 teh win"),
        ),
        // gsmmodem: TP-MR 0x0D, TP-SRR, VP 0xA9 = 3 days.
        (
            "07911326040000F0310D0B911326880736F40000A90FF7FBDD454E87CDE1B0DB357EB701",
            Some(intl("+31624000000")),
            13,
            intl("+31628870634"),
            json!(4320),
            true,
            gsm7("www.diafaan.com"),
        ),
    ];
    for (hex, smsc, mr, destination, minutes, srr, body) in table {
        let expected = json!({
            "type": "submit", "smsc": smsc, "reject_duplicates": false, "status_report": srr,
            "reply_path": false, "message_reference": mr, "destination": destination, "pid": 0,
            "dcs": 0, "class": null, "validity": {"format": "relative", "minutes": minutes},
            "udh": null, "body": body,
        });
        assert_eq!(decoded(hex), expected, "{hex}");
    }
}

#[test]
fn submit_vectors_with_udh_ucs2_and_data_decode() {
    // luasms: 7-bit with an 8-bit concatenation IE (ref 0xCC, part 1 of 2) and one fill bit.
    let udh = decoded("0041000691214365000012050003CC0201906536FB0DBABFE56C32");
    assert_eq!(
        udh["udh"]["concat"],
        json!({"reference": 0xCC, "parts": 2, "part": 1, "wide": false})
    );
    assert_eq!(udh["body"], gsm7("Hello world"));
    assert_eq!(udh["destination"], intl("+123456"));
    // luasms: UCS-2 class 0 (DCS 0x18), VP 0xBC = 22 days.
    let flash = decoded("039121F33100039121F30018BC0C041F04400438043204350442");
    assert_eq!((&flash["dcs"], &flash["class"]), (&json!(0x18), &json!(0)));
    assert_eq!(flash["validity"], json!({"format": "relative", "minutes": 22 * 1440}));
    assert_eq!(
        flash["body"],
        json!({"coding": "text", "encoding": "ucs2", "text": "Привет"})
    );
    // gsmmodem: UCS-2 without validity.
    let ucs2 = decoded("07914346466554F601000B914316565811F9000806304253F68449");
    assert_eq!(
        (&ucs2["smsc"], &ucs2["destination"]),
        (&intl("+34646456456"), &intl("+34616585119"))
    );
    assert_eq!(ucs2["body"]["text"], "あ叶葉");
    // gsmmodem: 8-bit data (DCS 0x04) stays hex.
    let data = decoded("0591721891F101000B917228214365F700040C48656C6C6F20776F726C6421");
    assert_eq!(
        data["body"],
        json!({"coding": "binary", "hex": "48656C6C6F20776F726C6421"})
    );
}

#[test]
fn deliver_vectors_decode() {
    let table = [
        // dreamfabric.com/sms/deliver.html: subscriber-type originator (TOA 0xC8), SCTS 99-03-29 (read as 2099).
        (
            "07917283010010F5040BC87238880900F10000993092516195800AE8329BFD4697D9EC37",
            intl("+27381000015"),
            json!({"number": "27838890001", "kind": "other", "toa": 0xC8}),
            false,
            "2099-03-29T15:16:59+02:00",
            "hellohello",
        ),
        // ATLib.
        (
            "07911326040000F0040B911346610089F60000208062917314800CC8F71D14969741F977FD07",
            intl("+31624000000"),
            intl("+31641600986"),
            false,
            "2002-08-26T19:37:41+02:00",
            "How are you?",
        ),
        // gsmmodem / lua-sms: alphanumeric originators "diafaan" (13 semi-octets) and "FACEBOOK".
        (
            "0791448720003023240DD0E474D81C0EBB010000111011315214000BE474D81C0EBB5DE3771B",
            intl("+447802000332"),
            json!({"number": "diafaan", "kind": "alphanumeric", "toa": 0xD0}),
            true,
            "2011-01-11T13:25:41+00:00",
            "diafaan.com",
        ),
        (
            "0791448720003023240ED0C6E0B0287C3E970000111011315214000BE474D81C0EBB5DE3771B",
            intl("+447802000332"),
            json!({"number": "FACEBOOK", "kind": "alphanumeric", "toa": 0xD0}),
            true,
            "2011-01-11T13:25:41+00:00",
            "diafaan.com",
        ),
        // gsmmodem: extension characters and é.
        (
            "06917228195339040B917228214365F70000313062315352800A800D8A5E98D337A910",
            intl("+2782913593"),
            intl("+27821234567"),
            false,
            "2013-03-26T13:35:25+02:00",
            "@{tést}!",
        ),
        // gsmmodem: +08:00 time zone.
        (
            "07915892000000F0040B915892214365F700007040213252242331493A283D0795C3F33C88FE06C9CB6132885EC6D341EDF27C1E3E97E7207B3A0C0A5241E377BB1D7693E72E",
            intl("+85290000000"),
            intl("+85291234567"),
            false,
            "2007-04-12T23:25:42+08:00",
            "It is easy to read text messages via AT commands.",
        ),
    ];
    for (hex, smsc, originator, sri, timestamp, text) in table {
        let expected = json!({
            "type": "deliver", "smsc": smsc, "more_messages": false, "status_report_indication": sri,
            "reply_path": false, "originator": originator, "pid": 0, "dcs": 0, "class": null,
            "timestamp": timestamp, "udh": null, "body": gsm7(text),
        });
        assert_eq!(decoded(hex), expected, "{hex}");
    }
}

#[test]
fn concatenated_deliver_vector_decodes() {
    // gsmmodem: 8-bit concatenation IE 00 03 C3 01 01, TP-MMS clear (more messages waiting).
    let hex = "0591721891F1400781721881F800003160526104848059050003C30101916536FB1DCABEEB2074D85E064941B19CAB060319A5C522289C96D3D3ED32286C0FA7D96131BBEC024941B19CAB0603DDD36C36A88C87A7E565D0DB0D82C55EB0DB4B068BCD5C20";
    let expected = json!({
        "type": "deliver", "smsc": intl("+2781191"), "more_messages": true, "status_report_indication": false,
        "reply_path": false, "originator": {"number": "2781188", "kind": "unknown", "toa": 0x81}, "pid": 0,
        "dcs": 0, "class": null, "timestamp": "2013-06-25T16:40:48+02:00",
        "udh": {"concat": {"reference": 0xC3, "parts": 1, "part": 1, "wide": false}, "single_shift": null, "locking_shift": null, "other": []},
        "body": gsm7("Hello!You have R 19.50 FREE airtime available. R 19.50 will expire on 01/07/2013. "),
    });
    assert_eq!(decoded(hex), expected);
}

#[test]
fn status_report_vectors_decode() {
    // ATLib SmsStatusReportDecoderTests, gsmmodem, lua-sms: TP-MR 0xD6, TP-ST 00, with and without SMSC.
    for (hex, smsc) in [
        ("0006D60B911326880736F4111011719551401110117195714000", Value::Null),
        (
            "07911326040000F006D60B911326880736F4111011719551401110117195714000",
            intl("+31624000000"),
        ),
    ] {
        let expected = json!({
            "type": "status-report", "smsc": smsc, "message_reference": 214, "recipient": intl("+31628870634"),
            "sc_timestamp": "2011-01-11T17:59:15+01:00", "discharge_time": "2011-01-11T17:59:17+01:00",
            "status": 0, "result": "delivered", "for_command": false, "pid": null, "dcs": null, "udh": null, "body": null,
        });
        assert_eq!(decoded(hex), expected, "{hex}");
    }
}
