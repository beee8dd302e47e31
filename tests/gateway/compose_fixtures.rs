use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde::de::value::{Error as ValueError, StrDeserializer};
use smsgw::compose::{ComposeMode, compose};

use ComposeMode::{Body, Subject, SubjectBody};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.eml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn fixtures() {
    let cases: &[(&str, ComposeMode, &str)] = &[
        ("plain", Subject, "Meeting moved"),
        (
            "plain",
            Body,
            "The meeting is moved to 3pm.\n\nRoom 4, second floor.\nBring the slides.",
        ),
        (
            "plain",
            SubjectBody,
            "Meeting moved\nThe meeting is moved to 3pm.\n\nRoom 4, second floor.\nBring the slides.",
        ),
        (
            "html_only",
            Body,
            "Parcel on its way\n\nHello Paul, your parcel left our warehouse this morning and \
             will be delivered tomorrow between 9am and noon, weather permitting.\n\n\
             Track it here.\nThanks!\n- Item one\n- Item two\n\nExample Shop",
        ),
        ("html_only", Subject, "Your parcel"),
        ("alternative", Body, "Lunch at noon? (plain)"),
        (
            "quoted_printable",
            SubjectBody,
            "Réunion\nLa réunion de demain est déplacée à l'après-midi, salle B.\nMerci = thanks.",
        ),
        ("base64", Body, "Code: 4711\nValid for 10 minutes."),
        (
            "iso_8859_1",
            SubjectBody,
            "Café crème\nUn café crème à 2 euros ? Très bien, à tout à l'heure.",
        ),
        ("windows_1252", Body, "It costs 5€ – “cheap”."),
        (
            "utf8_emoji",
            SubjectBody,
            "Party 🎉\nSee you tonight 🎉👨\u{200d}👩\u{200d}👧 ça va?",
        ),
        ("attachment", Body, "Invoice attached."),
        ("signature", Body, "Call me when you land."),
        ("signature_trimmed", Body, "Call me when you land."),
        ("quoted_reply", Body, "Yes, noon works.\n\nSee you there."),
        ("html_reply", Body, "Yes, noon works."),
        ("subject_only", SubjectBody, "Server down: db01"),
        // A reply to a mail made of an SMS: only the new text, whatever the mode.
        ("reply_to_sms", SubjectBody, "Perfect, I will book a table."),
        ("reply_to_sms", Subject, "Perfect, I will book a table."),
        ("outlook_reply_to_sms", SubjectBody, "Perfect, I will book a table."),
        ("subject_only", Body, ""),
        ("no_subject", SubjectBody, "Just the body."),
        ("no_subject", Subject, ""),
    ];
    for &(name, mode, expected) in cases {
        assert_eq!(compose(&fixture(name), mode), expected, "{name} {mode:?}");
    }
}

fn text_mail(body: &str) -> Vec<u8> {
    format!("Subject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}").into_bytes()
}

#[test]
fn body_rules() {
    let cases: &[(&str, &str)] = &[
        ("a\n\n\n\nb", "a\n\nb"),
        ("\n\n  a \t b  \n\n", "a b"),
        ("a\rb", "a\nb"),
        (
            "zero\u{200B}width\u{FEFF} soft\u{AD}hyphen\u{7}",
            "zerowidth softhyphen",
        ),
        ("non\u{A0}breaking", "non breaking"),
        (
            "keep -- inline dashes\n--not a separator",
            "keep -- inline dashes\n--not a separator",
        ),
        ("hi\n-- \nsig\n-- \nlist footer", "hi"),
        ("hi\n\n-----Original Message-----\nFrom: x\nold text", "hi"),
        ("> only a quote", ""),
        ("Paul wrote:\n> q\nmine", "mine"),
        ("a line ending with a colon:\n> q", "a line ending with a colon:"),
        ("Am 24.11.2025 um 09:00 schrieb Anne:\n> Hallo\nJa.", "Ja."),
        ("top\n> q1\nmiddle\n> q2\nend", "top\nmiddle\nend"),
    ];
    for &(body, expected) in cases {
        assert_eq!(compose(&text_mail(body), Body), expected, "{body:?}");
    }
}

#[test]
fn subject_is_one_folded_line() {
    let raw = "Subject: =?UTF-8?Q?a?=\r\n   b\t\tc\u{200B}\r\n\r\nbody".as_bytes();
    assert_eq!(compose(raw, Subject), "a b c");
}

#[test]
fn unparseable_input_yields_what_can_be_read() {
    assert_eq!(compose(b"", SubjectBody), "");
    assert_eq!(compose(b"\r\n\r\n", SubjectBody), "");
    assert_eq!(compose(b"\r\nno headers here\r\n", Body), "no headers here");
    assert_eq!(compose(b"\xff\xfe\x00", Body), "");
    let truncated = b"Subject: cut\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\npartial";
    assert_eq!(compose(truncated, SubjectBody), "cut\npartial");
}

/// Crafted input must not hold a worker: nesting and alternating quote
/// blocks used to cost time in size × depth.
#[test]
fn pathological_input_stays_fast() {
    let started = std::time::Instant::now();
    let mut html = b"Subject: x\r\nContent-Type: text/html\r\n\r\n".to_vec();
    html.extend("<div>".repeat(200_000).bytes());
    html.extend(b"deep");
    assert_eq!(compose(&html, Body), "deep");
    let quotes = text_mail(&"\n\n>q\n".repeat(200_000));
    assert_eq!(compose(&quotes, Body), "");
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

/// No input may panic: a cheap deterministic walk over byte strings built
/// from fragments that steer the MIME parser.
#[test]
fn never_panics() {
    const FRAGMENTS: &[&[u8]] = &[
        b"Subject: x\r\n",
        b"Content-Type: multipart/alternative; boundary=b\r\n",
        b"Content-Type: text/html; charset=iso-8859-1\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"\r\n",
        b"--b\r\n",
        b"--b--\r\n",
        b"<blockquote><table><tr><td>",
        b"</td></tr></table>",
        b"=C3=A9=\r\n",
        b"> quoted\r\n",
        b"-- \r\n",
        b"\xff\xfe\x80",
        b"wrote:\r\n",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..1500 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut raw = Vec::new();
        for i in 0..(seed % 20) {
            let pick = seed.rotate_left(i as u32 * 3) % FRAGMENTS.len() as u64;
            raw.extend_from_slice(FRAGMENTS[pick as usize]);
        }
        for mode in [Subject, Body, SubjectBody] {
            compose(&raw, mode);
        }
    }
}

#[test]
fn modes_read_from_config_strings() {
    let read = |s: &str| {
        let deserializer: StrDeserializer<'_, ValueError> = s.into_deserializer();
        ComposeMode::deserialize(deserializer).ok()
    };
    assert_eq!(read("subject"), Some(Subject));
    assert_eq!(read("body"), Some(Body));
    assert_eq!(read("subject+body"), Some(SubjectBody));
    assert_eq!(read("subjectbody"), None);
    assert_eq!(read("Subject"), None);
}

#[test]
fn attachment_only_mail_has_no_body() {
    let raw = b"Subject: notes\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\n\
        Content-Type: text/plain; name=notes.txt\r\nContent-Disposition: attachment\r\n\r\n\
        secret notes\r\n--m--\r\n";
    assert_eq!(compose(raw, Body), "");
    assert_eq!(compose(raw, SubjectBody), "notes");
}
