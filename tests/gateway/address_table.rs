use phonenumber::country::Id;
use smsgw::address::{AddressError, AddressRules, Recipient, parse_recipient, warm_up};

fn rules(region: Option<Id>) -> AddressRules {
    AddressRules {
        domains: vec!["sms".into(), "sms.example.com".into()],
        default_region: region,
        deny_premium: true,
    }
}

fn accepted(mailbox: &str, region: Option<Id>) -> Recipient {
    parse_recipient(mailbox, &rules(region)).unwrap_or_else(|e| panic!("{mailbox:?} refused: {e}"))
}

fn refused(mailbox: &str, region: Option<Id>) -> AddressError {
    match parse_recipient(mailbox, &rules(region)) {
        Ok(r) => panic!("{mailbox:?} accepted as {r:?}"),
        Err(e) => e,
    }
}

#[test]
fn accepted_forms() {
    let fr = Some(Id::FR);
    let cases: &[(&str, Option<Id>, &str, Option<&str>)] = &[
        ("+33477858589@sms", None, "+33477858589", None),
        ("+33477858589@sms", fr, "+33477858589", None),
        ("0033477858589@sms", None, "+33477858589", None),
        ("0033477858589@sms", fr, "+33477858589", None),
        ("0033477858589@sms", Some(Id::US), "+33477858589", None),
        ("0477858589@sms", fr, "+33477858589", None),
        ("07400123456@sms", Some(Id::GB), "+447400123456", None),
        ("020 7946 0958@sms", Some(Id::GB), "+442079460958", None),
        ("+447400123456@sms", fr, "+447400123456", None),
        ("\"Paul@+33477858589\"@sms", None, "+33477858589", Some("Paul")),
        ("Paul@+33477858589@sms", None, "+33477858589", Some("Paul")),
        ("Paul.+33477858589@sms", None, "+33477858589", Some("Paul")),
        ("paul=+33477858589@sms", None, "+33477858589", Some("paul")),
        ("Paul.0477858589@sms", fr, "+33477858589", Some("Paul")),
        (
            "\"Paul Smith +33 4 77 85 85 89\"@sms",
            None,
            "+33477858589",
            Some("Paul Smith"),
        ),
        (
            "\"Paul\\\"s phone@+33477858589\"@sms",
            None,
            "+33477858589",
            Some("Paul\"s phone"),
        ),
        ("+33 4 77 85 85 89@sms", None, "+33477858589", None),
        ("\"+33 4 77 85 85 89\"@sms", None, "+33477858589", None),
        ("+33-4-77-85-85-89@sms", None, "+33477858589", None),
        ("+33(0)477858589@sms", None, "+33477858589", None),
        ("+33 (0)4 77 85 85 89@sms", None, "+33477858589", None),
        ("+33.4.77.85.85.89@sms", None, "+33477858589", None),
        ("04.77.85.85.89@sms", fr, "+33477858589", None),
        ("Paul.04.77.85.85.89@sms", fr, "+33477858589", Some("Paul")),
        ("+33477858589@SMS", None, "+33477858589", None),
        ("+33477858589@Sms.Example.Com", None, "+33477858589", None),
        ("+33612345678@sms", None, "+33612345678", None),
        // 17 digits: longer than E.164's 15, and valid to libphonenumber (a German
        // fixed line), so the gateway takes it and its store reads it back.
        ("+49301234567890123@sms", None, "+49301234567890123", None),
    ];
    for &(mailbox, region, number, name) in cases {
        let want = Recipient {
            number: number.parse().unwrap(),
            name: name.map(Into::into),
        };
        assert_eq!(accepted(mailbox, region), want, "{mailbox:?}");
    }
}

/// Mailbox, default region, expected reply, words the reply text must hold.
type Refusal = (&'static str, Option<Id>, (u16, &'static str), &'static str);

#[test]
fn refusals_name_the_problem() {
    let fr = Some(Id::FR);
    let cases: &[Refusal] = &[
        (
            "+33477858589@example.com",
            fr,
            (550, "5.7.1"),
            "relaying to example.com is not allowed",
        ),
        (
            "+33477858589@sms.",
            fr,
            (550, "5.7.1"),
            "relaying to sms. is not allowed",
        ),
        ("+33477858589@smsx", fr, (550, "5.7.1"), "relaying to smsx"),
        (
            "+33477858589@[127.0.0.1]",
            fr,
            (550, "5.7.1"),
            "relaying to [127.0.0.1]",
        ),
        ("+33477858589%example.com@sms", fr, (550, "5.7.1"), "'%'"),
        ("@a.example:+33477858589@sms", fr, (550, "5.7.1"), "source route"),
        (
            "@a.example,@b.example:+33477858589@sms",
            fr,
            (550, "5.7.1"),
            "source route",
        ),
        (
            "\"+33477858589@example.com\"@sms",
            fr,
            (550, "5.7.1"),
            "address in the local part",
        ),
        (
            "+33477858589@example.com@sms",
            fr,
            (550, "5.7.1"),
            "address in the local part",
        ),
        ("example.com!+33477858589@sms", fr, (550, "5.7.1"), "bang path"),
        ("+33477858589!example.com@sms", fr, (550, "5.7.1"), "bang path"),
        (
            "+33899123456@sms",
            fr,
            (550, "5.7.1"),
            "+33899123456: premium-rate numbers are not served",
        ),
        ("@sms", fr, (553, "5.1.3"), "local part is empty"),
        ("\"\"@sms", fr, (553, "5.1.3"), "local part is empty"),
        ("+33477858589@", fr, (553, "5.1.3"), "has no domain"),
        ("+33477858589", fr, (553, "5.1.3"), "has no domain"),
        ("", fr, (553, "5.1.3"), "has no domain"),
        (
            "+33477858589\r\nRCPT TO:<x@example.com>@sms",
            fr,
            (553, "5.1.3"),
            "control characters",
        ),
        ("+3347785\u{0}8589@sms", fr, (553, "5.1.3"), "control characters"),
        (
            "+3347785858@sms",
            fr,
            (553, "5.1.3"),
            "+3347785858 is not a valid phone number",
        ),
        (
            "+33477858589000000@sms",
            fr,
            (553, "5.1.3"),
            "is not a valid phone number",
        ),
        ("+999477858589@sms", fr, (553, "5.1.3"), "is not a valid phone number"),
        ("12345@sms", fr, (553, "5.1.3"), "12345 is not a valid phone number"),
        ("paul@sms", fr, (553, "5.1.3"), "no phone number in local part 'paul'"),
        ("+@sms", fr, (553, "5.1.3"), "no phone number in local part '+'"),
        ("\"Paul@Smith\"@sms", fr, (550, "5.7.1"), "address in the local part"),
        (
            "0477858589@sms",
            None,
            (553, "5.1.3"),
            "national number 0477858589 needs sms.default_region",
        ),
        ("++33477858589@sms", fr, (553, "5.1.3"), "not a valid phone number"),
    ];
    for &(mailbox, region, reply, words) in cases {
        let err = refused(mailbox, region);
        let text = err.to_string();
        assert_eq!(err.reply(), reply, "{mailbox:?}: {text}");
        assert!(text.contains(words), "{mailbox:?}: {text:?} lacks {words:?}");
        assert!(!text.contains(['\r', '\n']), "{mailbox:?}: {text:?}");
    }
}

#[test]
fn refusals_name_the_address() {
    let err = refused("+33477858589%example.com@sms", None);
    assert!(err.to_string().starts_with("+33477858589%example.com@sms: "), "{err}");
    let err = refused("+33477858589@example.com", None);
    assert!(err.to_string().starts_with("+33477858589@example.com: "), "{err}");
}

#[test]
fn premium_rate_served_when_allowed() {
    let rules = AddressRules {
        deny_premium: false,
        ..rules(None)
    };
    let r = parse_recipient("+33899123456@sms", &rules).expect("premium allowed");
    assert_eq!(r.number, "+33899123456");
}

#[test]
fn dots_read_two_ways_are_refused() {
    // A valid reading of the whole beats invalid shorter ones...
    assert_eq!(accepted("06.0612345678@sms", Some(Id::FR)).name.as_deref(), Some("06"));
    // ...but here "0230123456" and "30123456" are both valid German numbers.
    let err = refused("02.30123456@sms", Some(Id::DE));
    assert!(matches!(err, AddressError::Ambiguous { .. }), "{err:?}");
    assert_eq!(err.reply(), (553, "5.1.3"));
    assert!(err.to_string().contains("'02.30123456'"), "{err}");
    // Written with its country code, the same digits are unambiguous.
    assert_eq!(accepted("+49.2.30123456@sms", Some(Id::DE)).number, "+49230123456");
}

#[test]
fn no_domain_is_served_when_none_is_configured() {
    let rules = AddressRules {
        domains: vec![],
        ..rules(None)
    };
    let err = parse_recipient("+33477858589@sms", &rules).unwrap_err();
    assert_eq!(err.reply(), (550, "5.7.1"));
}

#[test]
fn warm_up_is_harmless() {
    warm_up();
    warm_up();
}

/// No input may panic: a cheap deterministic walk over strings built from
/// the characters that matter to the parser.
#[test]
fn never_panics() {
    const ALPHABET: &[char] = &[
        '+', '0', '3', '4', '7', '8', '9', '@', '"', '\\', '.', '=', '(', ')', ' ', '-', '%', '!', ':', ',', 's', 'm',
        'S', 'é', '\u{0}', '\n', '/',
    ];
    let rules = rules(Some(Id::FR));
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..3000 {
        let mut mailbox = String::new();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (seed % 24) as usize;
        for i in 0..len {
            let pick = (seed.rotate_left(i as u32 * 5) % ALPHABET.len() as u64) as usize;
            mailbox.push(ALPHABET[pick]);
        }
        for candidate in [mailbox.clone(), format!("{mailbox}@sms"), format!("+33{mailbox}@sms")] {
            if let Err(e) = parse_recipient(&candidate, &rules) {
                assert!(!e.to_string().contains('\n'), "{candidate:?}");
            }
        }
    }
}
