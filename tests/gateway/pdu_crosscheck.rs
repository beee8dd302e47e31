//! Cross-checks the encoder against independent decoders (python-gsmmodem-new and
//! smspdudecoder, see contrib/pdu_crosscheck.py): every PDU we write must read back as
//! the number, text and concatenation we meant, in both, except where one has a known
//! bug; there the other must agree.
//!
//! It needs the test venv (support/python.rs).

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::support::python;
use smsgw::sms::{
    DeliverOptions, Encoding, Language, SubmitOptions, Timestamp, encode_deliver, encode_submit, split, split_with,
};

fn crosscheck(python: &PathBuf, pdus: &[String]) -> Vec<Value> {
    python::run(python, "pdu_crosscheck.py", &(pdus.join("\n") + "\n"))
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Where a library's known bug (contrib/pdu_crosscheck.py) may make it differ.
fn excused(library: &str, concat16: bool, text: &str) -> bool {
    let gsm7 = split(text, &[]).encoding != Encoding::Ucs2;
    match library {
        // A 16-bit concatenation IE alone makes a 7-octet UDH: no fill bits.
        "gsmmodem" => gsm7 && concat16,
        "smspdudecoder" => gsm7 && text.chars().any(|c| "^{}\\[~]|€\u{0C}".contains(c)),
        _ => false,
    }
}

fn compare(got: &[Value], wanted: &[(&str, bool, Value)], pdus: &[String]) {
    assert_eq!(got.len(), wanted.len());
    let mut agreed = 0;
    for ((name, concat16, want), (views, pdu)) in wanted.iter().zip(got.iter().zip(pdus)) {
        let text = want["text"].as_str().unwrap_or_default();
        let mut matched = 0;
        for library in ["gsmmodem", "smspdudecoder"] {
            if &views[library] == want {
                matched += 1;
            } else {
                assert!(
                    excused(library, *concat16, text),
                    "{name}: {library} read {} for {pdu}",
                    views[library]
                );
            }
        }
        assert!(matched >= 1, "{name}: neither library reads {pdu} as {want}");
        agreed += usize::from(matched == 2);
    }
    assert!(
        agreed * 2 > wanted.len(),
        "both libraries agree on only {agreed} of {} PDUs",
        wanted.len()
    );
}

fn texts() -> Vec<(&'static str, String)> {
    vec![
        (
            "gsm",
            "Hello world, @ £ $ ¥ è é ù ì ò Ç Ø ø Å å Δ _ Φ Γ Λ Ω Π Ψ Σ Θ Ξ Æ æ ß É ¤ ¡ Ä Ö Ñ Ü § ¿ ä ö ñ ü à".into(),
        ),
        ("extension", "Braces {x} [y] ~z~ a|b c\\d ^e 10€ page\u{0C}break".into()),
        ("empty", String::new()),
        ("160 septets", "x".repeat(160)),
        ("long gsm", "The quick brown fox jumps over the lazy dog. ".repeat(12)),
        ("long with escapes", "€[]".repeat(120)),
        ("ucs2", "Привет, мир! 你好".into()),
        ("emoji", "Bonjour 😀👍🇫🇷 ça va ?".into()),
        ("long emoji", "😀a".repeat(60)),
        (
            "long ucs2",
            "Съешь же ещё этих мягких французских булок, да выпей чаю. ".repeat(5),
        ),
    ]
}

fn expected(number: &str, kind: &str, text: &str, reference: u16, concat16: bool) -> Vec<Value> {
    let parts = split_with(text, &[], concat16).parts;
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let concat = (count > 1).then(|| json!({"reference": reference, "part": i + 1, "parts": count}));
            json!({"type": kind, "number": number, "text": part, "concat": concat})
        })
        .collect()
}

#[test]
fn submits_read_back_in_python_gsmmodem() {
    let Some(python) = python::python("the PDU cross-check") else {
        return;
    };
    let mut pdus = Vec::new();
    let mut wanted = Vec::new();
    for (i, (name, text)) in texts().into_iter().enumerate() {
        for (number, concat16) in [("+33477858589", false), ("0477858589", true)] {
            let reference = 0x1234 + i as u16;
            let opts = SubmitOptions {
                concat16,
                reference,
                status_report: true,
                validity_minutes: Some(1440),
                ..SubmitOptions::default()
            };
            let encoded = encode_submit(number, &text, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
            pdus.extend(encoded.into_iter().map(|p| p.hex));
            let reference = if concat16 { reference } else { reference & 0xFF };
            wanted.extend(
                expected(number, "submit", &text, reference, concat16)
                    .into_iter()
                    .map(|v| (name, concat16, v)),
            );
        }
    }
    compare(&crosscheck(&python, &pdus), &wanted, &pdus);
}

#[test]
fn delivers_read_back_in_python_gsmmodem() {
    let Some(python) = python::python("the PDU cross-check") else {
        return;
    };
    let timestamp = Timestamp {
        year: 2026,
        month: 11,
        day: 25,
        hour: 18,
        minute: 5,
        second: 9,
        offset_quarters: -20,
    };
    let opts = DeliverOptions {
        smsc: Some("+447802000332".into()),
        timestamp,
        concat16: false,
        reference: 7,
        languages: Vec::<Language>::new(),
    };
    let mut pdus = Vec::new();
    let mut wanted = Vec::new();
    for (name, text) in texts() {
        pdus.extend(encode_deliver("+31641600986", &text, &opts).unwrap());
        wanted.extend(
            expected("+31641600986", "deliver", &text, 7, false)
                .into_iter()
                .map(|v| (name, false, v)),
        );
    }
    compare(&crosscheck(&python, &pdus), &wanted, &pdus);
}
