//! The mail an incoming SMS becomes: a pure function of what the store knows of it.
//!
//! It comes `From: "+33612345678" <+33612345678@sms>` (the first of
//! `smtp.sms_domains`), so that Reply in any mail client sends an SMS back through
//! smsgw; it answers the mail that the SMS answers (`Subject: Re: …`, `In-Reply-To`,
//! `References`), so that clients thread it; and its Message-ID starts with
//! [`SMS_MAIL_ID`], by which smsgw knows a reply to it and sends only the new text.

use base64::Engine;
use mail_parser::{HeaderValue, MessageParser};

use super::build::{clean, text_part};
use crate::compose::SMS_MAIL_ID;
use crate::store::{InboxKind, PendingInbound, ReceivedSms};
use crate::utc::Utc;

/// Who writes the mail.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// `smtp.hostname`: the Message-ID's domain, named in the footer.
    pub hostname: &'a str,
    /// The first of `smtp.sms_domains`: the From address's domain.
    pub sms_domain: &'a str,
    /// The store's id: with the inbox id, it makes the Message-ID unique in the cluster.
    pub store_id: &'a str,
}

/// What the mail answers, read from the original mail's header.
#[derive(Debug, Default, PartialEq, Eq)]
struct Original {
    subject: Option<String>,
    message_id: Option<String>,
    references: Vec<String>,
}

impl Original {
    fn read(raw: &[u8]) -> Original {
        let Some(message) = MessageParser::new().parse_headers(raw) else {
            return Original::default();
        };
        Original {
            subject: message
                .subject()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            message_id: message.message_id().map(str::to_string),
            references: ids(message.references()),
        }
    }
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(id) => vec![id.to_string()],
        HeaderValue::TextList(ids) => ids.iter().map(|id| id.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The Message-ID of the mail made of inbox row `id`, without its angle brackets.
pub fn message_id(id: i64, writer: &Writer<'_>) -> String {
    format!("{SMS_MAIL_ID}{id}.{}@{}", writer.store_id, writer.hostname)
}

/// The mail, RFC 5322 bytes with CRLF line ends.
pub fn build(mail: &PendingInbound, writer: &Writer<'_>) -> Vec<u8> {
    let sms = &mail.sms;
    let original = mail.original.as_deref().map(Original::read).unwrap_or_default();
    let subject = match &original.subject {
        Some(subject) if subject.to_ascii_lowercase().starts_with("re:") => subject.clone(),
        Some(subject) => format!("Re: {subject}"),
        None => format!("SMS from {}", sms.originator),
    };
    let mut text = String::new();
    let mut header = |name: &str, value: &str| text.push_str(&format!("{name}: {}\r\n", clean(value)));
    let local = address_local_part(&sms.originator);
    let name = sms.originator.replace(['"', '\\'], "");
    let name = if name.is_ascii() {
        format!("\"{name}\"")
    } else {
        encoded_word(&name)
    };
    header("From", &format!("{name} <{local}@{}>", writer.sms_domain));
    header("To", &format!("<{}>", mail.recipient));
    header("Subject", &encoded_word(&subject));
    header("Date", &Utc::of_millis(sms.received).rfc5322());
    header("Message-ID", &format!("<{}>", message_id(sms.id, writer)));
    if let Some(id) = &original.message_id {
        header("In-Reply-To", &format!("<{id}>"));
        // The first (the thread's root) and the latest: enough for every client to
        // thread it, in a header that stays short however long the conversation.
        let mut references = original.references.clone();
        if references.len() > 10 {
            references.drain(1..references.len() - 9);
        }
        references.push(id.clone());
        let references: Vec<String> = references.iter().map(|id| format!("<{id}>")).collect();
        header("References", &references.join(" "));
    }
    // No out-of-office reply to it (RFC 3834; Exchange's own header): one would go back
    // to the phone as an SMS. A person's reply carries neither.
    header("Auto-Submitted", "auto-generated");
    header("X-Auto-Response-Suppress", "All");
    header("MIME-Version", "1.0");
    text.push_str(&text_part(&body(sms, writer)));
    text.into_bytes()
}

/// The SMS text, then a signature (`-- `, which mail clients leave out of a reply, and
/// smsgw drops from one anyway): when and where it was received, and what else to know.
fn body(sms: &ReceivedSms, writer: &Writer<'_>) -> String {
    let mut notes = vec![format!(
        "SMS from {}, received {} by modem {} of {}.",
        sms.originator,
        Utc::of_millis(sms.received).rfc5322(),
        sms.modem,
        writer.hostname
    )];
    if let Some(missing) = &sms.missing {
        notes.push(format!(
            "Incomplete: part(s) {missing} of {} never arrived and are shown as [\u{2026}].",
            sms.parts
        ));
    }
    if sms.others > 0 {
        notes.push(format!(
            "{} other sender(s) also wrote to {} lately; this reply went to you as the latest.",
            sms.others, sms.originator
        ));
    }
    match sms.kind {
        InboxKind::Stop => notes.push(format!(
            "{} has opted out: smsgw refuses mail to it until it texts a start word.",
            sms.originator
        )),
        InboxKind::Start => notes.push(format!("{} has opted in again.", sms.originator)),
        InboxKind::Text => {}
    }
    let text = sms.text.replace("\r\n", "\n").replace('\r', "\n");
    format!("{text}\n\n-- \n{}\n", notes.join("\n")).replace('\n', "\r\n")
}

/// The From address's local part: the number as it is, or an alphanumeric sender with
/// anything an atom cannot hold replaced.
fn address_local_part(originator: &str) -> String {
    let local: String = originator
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if local.is_empty() { "unknown".into() } else { local }
}

/// A header text as is when ASCII, else one RFC 2047 encoded-word per chunk of UTF-8.
fn encoded_word(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 45 bytes of UTF-8 make 60 of base64: each word stays within 75 characters.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| format!("=?utf-8?b?{}?=", base64::engine::general_purpose::STANDARD.encode(w)))
        .collect::<Vec<_>>()
        .join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    const ORIGINAL: &[u8] = b"From: alice@example.com\r\nSubject: Dinner\r\nMessage-ID: <m1@example.com>\r\n\
References: <m0@example.com>\r\n\r\nAt 8?\r\n";

    fn sms(original: Option<&[u8]>) -> PendingInbound {
        PendingInbound {
            sms: ReceivedSms {
                id: 42,
                received: 1_795_000_000_000,
                sent: Some("2026-11-18T10:00:00+01:00".into()),
                modem: "sim0".into(),
                originator: "+33612345678".into(),
                text: "Yes, see you there \u{1F600}".into(),
                parts: 1,
                missing: None,
                kind: InboxKind::Text,
                others: 0,
            },
            recipient: "alice@example.com".into(),
            attempts: 0,
            original: original.map(<[u8]>::to_vec),
        }
    }

    const WRITER: Writer<'static> = Writer {
        hostname: "gw.example.com",
        sms_domain: "sms",
        store_id: "00ff",
    };

    #[test]
    fn a_reply_is_threaded_under_the_original_and_from_an_address_that_texts_back() {
        let raw = build(&sms(Some(ORIGINAL)), &WRITER);
        let mail = MessageParser::new().parse(&raw).unwrap();
        assert_eq!(
            mail.from().unwrap().first().unwrap().address(),
            Some("+33612345678@sms")
        );
        assert_eq!(mail.from().unwrap().first().unwrap().name(), Some("+33612345678"));
        assert_eq!(mail.to().unwrap().first().unwrap().address(), Some("alice@example.com"));
        assert_eq!(mail.subject(), Some("Re: Dinner"));
        assert_eq!(mail.in_reply_to().as_text(), Some("m1@example.com"));
        assert_eq!(ids(mail.references()), ["m0@example.com", "m1@example.com"]);
        assert_eq!(mail.message_id(), Some("smsgw-sms.42.00ff@gw.example.com"));
        let body = mail.body_text(0).unwrap();
        assert!(
            body.starts_with("Yes, see you there \u{1F600}\r\n\r\n-- \r\n"),
            "{body:?}"
        );
        assert!(body.contains("by modem sim0 of gw.example.com"), "{body:?}");
    }

    #[test]
    fn without_an_original_the_subject_names_the_number_and_nothing_is_threaded() {
        let raw = build(&sms(None), &WRITER);
        let mail = MessageParser::new().parse(&raw).unwrap();
        assert_eq!(mail.subject(), Some("SMS from +33612345678"));
        assert!(mail.in_reply_to().is_empty());
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("In-Reply-To"), "{text}");
    }

    #[test]
    fn notes_say_what_is_missing_who_else_wrote_and_an_opt_out() {
        let mut stop = sms(Some(b"Subject: Re: Sal\xc3\xbct\r\nMessage-ID: <x@y>\r\n\r\nhi"));
        stop.sms.text = "STOP".into();
        stop.sms.kind = InboxKind::Stop;
        stop.sms.others = 2;
        stop.sms.missing = Some("2".into());
        stop.sms.parts = 3;
        let raw = build(&stop, &WRITER);
        let mail = MessageParser::new().parse(&raw).unwrap();
        assert_eq!(mail.subject(), Some("Re: Salüt"), "no second Re:, and UTF-8 kept");
        let body = mail.body_text(0).unwrap();
        for note in [
            "part(s) 2 of 3 never arrived",
            "2 other sender(s) also wrote to +33612345678",
            "+33612345678 has opted out",
        ] {
            assert!(body.contains(note), "{note:?} in {body:?}");
        }
    }

    #[test]
    fn odd_senders_long_subjects_and_long_threads_make_valid_headers() {
        assert_eq!(address_local_part("My Bank \"Ltd\""), "My_Bank__Ltd_");
        let mut bank = sms(None);
        bank.sms.originator = "Banque Société".into();
        let raw = build(&bank, &WRITER);
        let mail = MessageParser::new().parse(&raw).unwrap();
        let from = mail.from().unwrap().first().unwrap();
        assert_eq!(
            (from.name(), from.address()),
            (Some("Banque Société"), Some("Banque_Soci_t_@sms"))
        );
        // A long thread keeps its root and its latest ids.
        let ids_sent: Vec<String> = (0..30).map(|n| format!("<m{n}@example.com>")).collect();
        let original = format!(
            "Subject: x\r\nMessage-ID: <m30@example.com>\r\nReferences: {}\r\n\r\nx",
            ids_sent.join(" ")
        );
        let raw = build(&sms(Some(original.as_bytes())), &WRITER);
        let mail = MessageParser::new().parse(&raw).unwrap();
        let kept = ids(mail.references());
        assert_eq!(kept.len(), 11, "{kept:?}");
        assert_eq!(
            (kept[0].as_str(), kept[1].as_str()),
            ("m0@example.com", "m21@example.com")
        );
        assert_eq!(kept[10], "m30@example.com");
        let long = "é".repeat(100);
        let encoded = encoded_word(&long);
        assert!(encoded.lines().all(|line| line.trim_start().len() <= 75), "{encoded}");
        let raw = format!("Subject: {encoded}\r\n\r\n");
        let parsed = MessageParser::new().parse(raw.as_bytes()).unwrap();
        assert_eq!(parsed.subject(), Some(long.as_str()));
    }
}
