//! MIME mail → SMS text (README, "Text of the SMS").
//!
//! Keeps only what the recipient needs to read on a phone: the subject and/or
//! the body as configured, without signature, quoted reply or wasted space.

mod html;
mod tidy;

use mail_parser::{HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// Which parts of the mail make the SMS (`sms.compose` in the config).
#[derive(serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ComposeMode {
    /// `subject`: the Subject line only.
    Subject,
    /// `body`: the readable body only.
    Body,
    /// `subject+body`: the subject, then the body on the next line; either alone when the
    /// other is empty.
    #[serde(rename = "subject+body")]
    SubjectBody,
}

/// How the Message-ID of a mail smsgw made of an incoming SMS starts: a mail whose
/// `In-Reply-To` or `References` names one answers an SMS.
pub const SMS_MAIL_ID: &str = "smsgw-sms.";

/// The SMS text for the mail `raw` (RFC 5322 bytes, as received by `DATA`). A reply to
/// a mail smsgw made of an SMS (see [`SMS_MAIL_ID`]) is only its new text, whatever
/// `mode` says: its subject is "Re: " and the subject of the SMS's original mail.
///
/// Never fails: whatever text can be recovered is returned, possibly empty;
/// the caller decides what an empty text means.
pub fn compose(raw: &[u8], mode: ComposeMode) -> String {
    let parser = MessageParser::new()
        .with_mime_headers()
        .header_text(HeaderName::Subject)
        .header_id(HeaderName::InReplyTo)
        .header_id(HeaderName::References);
    let message = parser.parse(raw);
    let mode = match &message {
        Some(message) if answers_an_sms(message) => ComposeMode::Body,
        _ => mode,
    };
    let subject = || {
        let subject = message.as_ref().and_then(Message::subject);
        tidy::one_line(subject.unwrap_or_default())
    };
    let body = || match &message {
        Some(message) => tidy::body(&body_text(message)),
        // No header at all: the bytes may still be a readable note.
        None => tidy::body(&String::from_utf8_lossy(raw)),
    };
    match mode {
        ComposeMode::Subject => subject(),
        ComposeMode::Body => body(),
        ComposeMode::SubjectBody => {
            let (subject, body) = (subject(), body());
            match (subject.is_empty(), body.is_empty()) {
                (false, false) => format!("{subject}\n{body}"),
                (true, _) => body,
                (false, true) => subject,
            }
        }
    }
}

/// Whether `raw` is an automatic answer (RFC 3834 `Auto-Submitted` other than `no`,
/// `Precedence: bulk`/`junk`/`list`, or an `X-Autoreply`) to a mail smsgw made of an
/// SMS: an out-of-office reply must not become an SMS, nor start a loop between two
/// machines. Cheap for any other mail: the header is read only when the bytes name
/// such a mail at all.
pub fn automatic_answer_to_sms(raw: &[u8]) -> bool {
    if !raw.windows(SMS_MAIL_ID.len()).any(|w| w == SMS_MAIL_ID.as_bytes()) {
        return false;
    }
    let parser = MessageParser::new()
        .header_id(HeaderName::InReplyTo)
        .header_id(HeaderName::References);
    let Some(message) = parser.parse_headers(raw) else {
        return false;
    };
    let field = |name: &str| message.header_raw(name).map(|v| v.trim().to_ascii_lowercase());
    let automatic = field("Auto-Submitted").is_some_and(|v| !v.starts_with("no"))
        || field("Precedence").is_some_and(|v| matches!(v.as_str(), "bulk" | "junk" | "list"))
        || field("X-Autoreply").is_some()
        || field("X-Autorespond").is_some();
    automatic && answers_an_sms(&message)
}

/// Whether `In-Reply-To` or `References` names a mail smsgw made of an SMS.
fn answers_an_sms(message: &Message<'_>) -> bool {
    [message.in_reply_to(), message.references()].into_iter().any(|value| {
        let one = value.as_text().into_iter();
        let list = value.as_text_list().unwrap_or_default().iter().map(|id| id.as_ref());
        one.chain(list).any(|id| id.starts_with(SMS_MAIL_ID))
    })
}

/// The readable body parts, in order. mail-parser has already chosen
/// text/plain over HTML within multipart/alternative, kept HTML where it is
/// the only version, left attachments out and decoded transfer encodings and
/// charsets.
fn body_text(message: &Message<'_>) -> String {
    let texts: Vec<String> = body_parts(message)
        .into_iter()
        .filter_map(|part| match &part.body {
            PartType::Text(text) => Some(text.to_string()),
            PartType::Html(markup) => Some(html::to_text(markup)),
            _ => None,
        })
        .collect();
    texts.join("\n")
}

/// A mail cut short (no closing MIME boundary) has its last part filed as
/// an attachment and no body: then any text part not declared an attachment
/// is what can still be read.
fn body_parts<'m>(message: &'m Message<'m>) -> Vec<&'m MessagePart<'m>> {
    if message.text_body_count() > 0 {
        return message.text_bodies().collect();
    }
    let declared_attachment = |part: &MessagePart<'_>| {
        part.attachment_name().is_some() || part.content_disposition().is_some_and(|d| d.is_attachment())
    };
    message.parts.iter().filter(|part| !declared_attachment(part)).collect()
}
