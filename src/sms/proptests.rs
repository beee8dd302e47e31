//! Properties: every text survives encode → decode → reassembly in each alphabet, every
//! part fits one SMS, parts reassemble in any order, and decoding never panics.

use proptest::prelude::*;

use super::national::{locking_table, single_shift_table};
use super::tables::{DEFAULT_ALPHABET, DEFAULT_EXTENSION, ESC};
use super::{
    DeliverOptions, Encoding, Language, Pdu, Reassembler, Submit, SubmitOptions, Timestamp, decode, decode_bytes,
    encode_deliver, encode_submit, split_with,
};

const NUMBER: &str = "+33477858589";
/// First octet, TP-MR, TP-DA (0B 91 + 6 octets), TP-PID, TP-DCS: TP-UDL follows.
const UDL_OFFSET: usize = 12;

fn gsm_chars(language: Option<Language>) -> Vec<char> {
    let main = language.and_then(locking_table).unwrap_or(&DEFAULT_ALPHABET);
    let shift = language.map_or(DEFAULT_EXTENSION, single_shift_table);
    let main = main
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != usize::from(ESC))
        .map(|(_, &c)| c);
    main.chain(shift.iter().map(|&(_, c)| c)).collect()
}

fn text_of(chars: Vec<char>, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(chars), 0..max).prop_map(|v| v.into_iter().collect())
}

fn unicode_text() -> impl Strategy<Value = String> {
    let emoji = prop::sample::select(vec!['😀', '👍', '🇫', '🇷', '€', 'ж', '中', '\u{10FFFF}', 'a', ' ']);
    prop::collection::vec(prop_oneof![any::<char>(), emoji], 0..400).prop_map(|v| v.into_iter().collect())
}

/// Encodes, checks each part's size and header, decodes; returns the decoded parts in order.
fn submit_parts(text: &str, languages: &[Language], concat16: bool) -> (Encoding, Vec<Submit>) {
    let opts = SubmitOptions {
        concat16,
        reference: 0xBEEF,
        languages: languages.to_vec(),
        ..SubmitOptions::default()
    };
    let split = split_with(text, languages, concat16);
    let pdus = encode_submit(NUMBER, text, &opts).unwrap();
    assert_eq!(pdus.len(), split.parts.len());
    let submits = pdus
        .iter()
        .map(|pdu| {
            let octets = super::pdu::from_hex(&pdu.hex).unwrap();
            let tpdu = &octets[1..];
            assert_eq!(tpdu.len(), pdu.tpdu_len);
            let udl = usize::from(tpdu[UDL_OFFSET]);
            let ud_octets = tpdu.len() - UDL_OFFSET - 1;
            assert!(ud_octets <= 140, "{ud_octets} octets of user data");
            match split.encoding {
                Encoding::Gsm7 { .. } => assert!(udl <= 160 && ud_octets == (udl * 7).div_ceil(8)),
                Encoding::Ucs2 => assert_eq!(udl, ud_octets),
            }
            match decode(&pdu.hex).unwrap() {
                Pdu::Submit(submit) => submit,
                other => panic!("{other:?}"),
            }
        })
        .collect::<Vec<_>>();
    for (i, (submit, expected)) in submits.iter().zip(&split.parts).enumerate() {
        assert_eq!(submit.body.as_str(), expected);
        assert_eq!(submit.part(), (i as u8 + 1, pdus.len() as u8));
        assert_eq!(submit.destination.number, NUMBER);
        let concat = submit.udh.as_ref().and_then(|h| h.concat);
        assert_eq!(
            concat.map(|c| (c.reference, c.wide)),
            (pdus.len() > 1).then_some((if concat16 { 0xBEEF } else { 0xEF }, concat16))
        );
    }
    (split.encoding, submits)
}

fn joined(submits: &[Submit]) -> String {
    submits.iter().map(|s| s.body.as_str()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn gsm7_default_and_extension_round_trip(text in text_of(gsm_chars(None), 500), concat16 in any::<bool>()) {
        let (encoding, submits) = submit_parts(&text, &[], concat16);
        prop_assert_eq!(encoding, Encoding::GSM7);
        prop_assert_eq!(joined(&submits), text);
    }

    #[test]
    fn national_tables_round_trip(
        text in prop::sample::select(Language::ALL.to_vec()).prop_flat_map(|l| text_of(gsm_chars(Some(l)), 400)),
        concat16 in any::<bool>(),
    ) {
        let (encoding, submits) = submit_parts(&text, &Language::ALL, concat16);
        prop_assert_ne!(encoding, Encoding::Ucs2);
        prop_assert_eq!(joined(&submits), text);
    }

    #[test]
    fn one_enabled_language_is_enough(
        (language, text) in prop::sample::select(Language::ALL.to_vec()).prop_flat_map(|l| (Just(l), text_of(gsm_chars(Some(l)), 300))),
    ) {
        let (encoding, submits) = submit_parts(&text, &[language], false);
        prop_assert_ne!(encoding, Encoding::Ucs2);
        prop_assert_eq!(joined(&submits), text);
    }

    #[test]
    fn any_unicode_round_trips(text in unicode_text(), concat16 in any::<bool>()) {
        let (_, submits) = submit_parts(&text, &Language::ALL, concat16);
        prop_assert_eq!(joined(&submits), text);
    }

    #[test]
    fn delivered_parts_reassemble_in_any_order(
        (text, order) in unicode_text().prop_flat_map(|text| {
            let parts = split_with(&text, &[], false).parts.len();
            (Just(text), Just((0..parts).collect::<Vec<_>>()).prop_shuffle())
        }),
        duplicate in any::<prop::sample::Index>(),
    ) {
        let timestamp = Timestamp { year: 2026, month: 11, day: 25, hour: 9, minute: 30, second: 0, offset_quarters: 4 };
        let opts = DeliverOptions { smsc: None, timestamp, concat16: false, reference: 42, languages: vec![] };
        let pdus = encode_deliver(NUMBER, &text, &opts).unwrap();
        let mut reassembler = Reassembler::new(4, 60);
        let mut order = order;
        // A part repeated before the message completes is dropped (one repeated after it
        // would start a new group, and a single SMS is its own message each time).
        if order.len() > 1 {
            let repeated = duplicate.index(order.len() - 1);
            order.insert(repeated + 1, order[repeated]);
        }
        let mut done = Vec::new();
        for (t, &i) in order.iter().enumerate() {
            let Ok(Pdu::Deliver(deliver)) = decode(&pdus[i]) else { panic!("{}", pdus[i]) };
            prop_assert_eq!(&deliver.timestamp, "2026-11-25T09:30:00+01:00");
            done.extend(reassembler.push(&deliver, t as u64));
        }
        prop_assert_eq!(done.len(), 1);
        prop_assert_eq!(&done[0].text, &text);
        prop_assert_eq!(reassembler.pending(), 0);
    }

    #[test]
    fn split_parts_concatenate_to_the_text(text in unicode_text(), concat16 in any::<bool>()) {
        let split = split_with(&text, &Language::ALL, concat16);
        prop_assert!(!split.parts.is_empty());
        prop_assert_eq!(split.parts.concat(), text);
    }

    #[test]
    fn decoding_arbitrary_octets_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(pdu) = decode_bytes(&bytes) {
            prop_assert!(serde_json::to_string(&pdu).is_ok());
        }
    }
}
