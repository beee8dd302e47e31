//! The DSN mail itself (RFC 3464 `multipart/report; report-type=delivery-status`): a
//! pure function of what the store knows of the request.

use base64::Engine;

use crate::utc::Utc;

/// RFC 3464 `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Every part of the SMS was confirmed delivered by the network's status reports.
    Delivered,
    /// Sent, but no status report confirms it (none asked, or none within
    /// `dsn.report_wait_secs`): the last word.
    Relayed,
    /// Failed or expired: no further attempts.
    Failed,
    /// Not sent yet after `dsn.delay_after_secs`; still being tried.
    Delayed,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
            Action::Failed => "failed",
            Action::Delayed => "delayed",
        }
    }

    /// The word in the subject, as other MTAs write it.
    fn subject(self) -> &'static str {
        match self {
            Action::Delivered => "Success",
            Action::Relayed => "Relayed",
            Action::Failed => "Failure",
            Action::Delayed => "Delay",
        }
    }
}

/// Who writes the DSN.
#[derive(Debug, Clone)]
pub struct ReportingMta<'a> {
    /// `smtp.hostname`: the Reporting-MTA and the Message-ID's domain.
    pub hostname: &'a str,
    /// `instance.name`, named in the human-readable part.
    pub instance: &'a str,
    /// `dsn.from`.
    pub from: &'a str,
}

/// What the DSN reports: one request of one mail.
#[derive(Debug, Clone)]
pub struct DsnContent<'a> {
    /// The DSN's own id, for its Message-ID.
    pub id: i64,
    /// Which of the four reports this is.
    pub action: Action,
    /// When the DSN was decided: its `Date` (unix milliseconds).
    pub date: i64,
    /// The original envelope sender: the DSN's recipient.
    pub sender: &'a str,
    /// ENVID of MAIL FROM, echoed as Original-Envelope-Id.
    pub envid: Option<&'a str>,
    /// RET=FULL: a failure DSN returns the whole message, else its header.
    pub return_full: bool,
    /// When the mail was accepted (unix milliseconds): its Arrival-Date.
    pub arrival: i64,
    /// The mail as received, returned whole or as its header.
    pub original: &'a [u8],
    /// The recipient address the report is about (`<number>@sms`), its Final-Recipient.
    pub recipient: &'a str,
    /// ORCPT as given, `type;address`.
    pub orcpt: Option<&'a str>,
    /// The E.164 number the SMS was for, named in the subject.
    pub number: &'a str,
    /// The SMS text, quoted in the human-readable part.
    pub text: &'a str,
    /// How many SMS parts the text took.
    pub parts: i64,
    /// The modem that sent it, if one did.
    pub modem: Option<&'a str>,
    /// Enhanced status code of a failure (or of the last temporary problem).
    pub status: Option<&'a str>,
    /// The reason in words: the human-readable part and the Diagnostic-Code.
    pub reason: Option<&'a str>,
    /// When the request last changed (unix milliseconds): its Last-Attempt-Date.
    pub last_attempt: i64,
}

/// The DSN as a complete RFC 5322 message with CRLF line ends.
pub fn build(report: &DsnContent<'_>, reporter: &ReportingMta<'_>) -> Vec<u8> {
    let returned = returned_part(report);
    let mut boundary = format!("=_smsgw-dsn-{}", report.id);
    while contains(&returned, boundary.as_bytes()) {
        boundary.push('_');
    }
    let human = human_text(report, reporter);
    let mut mail = String::new();
    let mut header = |name: &str, value: &str| mail.push_str(&format!("{name}: {}\r\n", clean(value)));
    header("From", &format!("Mail Delivery System <{}>", reporter.from));
    header("To", &format!("<{}>", report.sender));
    header(
        "Subject",
        &format!(
            "Delivery Status Notification ({}): SMS to {}",
            report.action.subject(),
            report.number
        ),
    );
    header("Date", &Utc::of_millis(report.date).rfc5322());
    header("Message-ID", &format!("<dsn-{}@{}>", report.id, reporter.hostname));
    header("Auto-Submitted", "auto-replied");
    header("MIME-Version", "1.0");
    header(
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\""),
    );
    mail.push_str("\r\nThis is a delivery status notification in MIME format.\r\n");
    mail.push_str(&format!("\r\n--{boundary}\r\n"));
    mail.push_str(&text_part(&human));
    mail.push_str(&format!(
        "\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
    ));
    mail.push_str(&delivery_status(report, reporter));
    mail.push_str(&format!("\r\n--{boundary}\r\n"));
    let mut bytes = mail.into_bytes();
    bytes.extend_from_slice(&returned);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

/// The human-readable part: what happened, in plain words.
fn human_text(report: &DsnContent<'_>, reporter: &ReportingMta<'_>) -> String {
    let to = format!("Your message to <{}>", report.recipient);
    let parts = match report.parts {
        1 => "one SMS".to_string(),
        n => format!("{n} concatenated SMS parts"),
    };
    let by = match report.modem {
        Some(modem) => format!("by modem {modem} of smsgw instance \"{}\"", reporter.instance),
        None => format!("by smsgw instance \"{}\"", reporter.instance),
    };
    let when = Utc::of_millis(report.last_attempt).rfc5322();
    let reason = report.reason.unwrap_or("no reason was given");
    let what = match report.action {
        Action::Delivered => format!(
            "{to} was delivered as an SMS to {}.\r\nIt went as {parts} {by}, and the mobile network confirmed \
             delivery of every part ({when}).",
            report.number
        ),
        Action::Relayed => format!(
            "{to} was handed to the mobile network as an SMS to {} ({parts}, {by}, {when}).\r\nThe network gives \
             no delivery confirmation for it, so this is the last report you will get.",
            report.number
        ),
        Action::Failed => format!(
            "{to} could not be delivered as an SMS to {}.\r\nReason: {reason}.\r\nNo further attempts will be \
             made.",
            report.number
        ),
        Action::Delayed => format!(
            "{to} has not been sent as an SMS to {} yet; it arrived {}.\r\nsmsgw instance \"{}\" keeps trying, \
             and tells you if it gives up. Last problem: {reason}.",
            report.number,
            Utc::of_millis(report.arrival).rfc5322(),
            reporter.instance
        ),
    };
    let mut text = format!("{what}\r\n\r\nThe text of the SMS:\r\n\r\n");
    for line in report.text.lines() {
        text.push_str(&format!("    {line}\r\n"));
    }
    text
}

/// RFC 5322 §2.1.1: no line of a message may be longer than this, CRLF excluded.
const MAX_LINE: usize = 998;

/// A text/plain part: 7bit when ASCII in lines a relay takes, else base64 (an SMS of
/// 255 parts without a line break is one line of 39,000 characters).
pub(super) fn text_part(text: &str) -> String {
    if text.is_ascii() && text.lines().all(|line| line.len() <= MAX_LINE) {
        return format!("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n{text}");
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(76)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    format!(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
        lines.join("\r\n")
    )
}

/// The machine-readable `message/delivery-status` body (RFC 3464 §2.2 and §2.3).
fn delivery_status(report: &DsnContent<'_>, reporter: &ReportingMta<'_>) -> String {
    let mut fields: Vec<(&str, String)> = vec![("Reporting-MTA", format!("dns; {}", reporter.hostname))];
    if let Some(envid) = report.envid {
        fields.push(("Original-Envelope-Id", envid.to_string()));
    }
    fields.push(("Arrival-Date", Utc::of_millis(report.arrival).rfc5322()));
    let mut text = render(&fields);
    text.push_str("\r\n");
    let mut fields: Vec<(&str, String)> = Vec::new();
    if let Some(orcpt) = report.orcpt {
        fields.push(("Original-Recipient", orcpt.replacen(';', "; ", 1)));
    }
    fields.push(("Final-Recipient", format!("rfc822; {}", report.recipient)));
    fields.push(("Action", report.action.name().to_string()));
    fields.push(("Status", status(report).to_string()));
    if matches!(report.action, Action::Failed | Action::Delayed)
        && let Some(reason) = report.reason
    {
        fields.push(("Diagnostic-Code", format!("X-Smsgw; {reason}")));
    }
    fields.push(("Last-Attempt-Date", Utc::of_millis(report.last_attempt).rfc5322()));
    text.push_str(&render(&fields));
    text
}

fn render(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{name}: {}\r\n", clean(value)))
        .collect()
}

/// The enhanced status code (RFC 3463): a failure is permanent (5.x.x) even when its
/// cause was a temporary one that ran out of time (4.4.7 → 5.4.7).
fn status(report: &DsnContent<'_>) -> String {
    let stored = report.status.filter(|s| s.len() >= 5 && s.as_bytes()[1] == b'.');
    match (report.action, stored) {
        (Action::Delivered | Action::Relayed, _) => "2.0.0".into(),
        (Action::Delayed, Some(code)) if code.starts_with('4') => code.into(),
        (Action::Delayed, _) => "4.0.0".into(),
        (Action::Failed, Some(code)) => format!("5{}", &code[1..]),
        (Action::Failed, None) => "5.0.0".into(),
    }
}

/// The third part: the whole message for a failure with RET=FULL, else its header.
fn returned_part(report: &DsnContent<'_>) -> Vec<u8> {
    let (content_type, body) = if report.return_full && report.action == Action::Failed {
        ("message/rfc822", report.original)
    } else {
        ("text/rfc822-headers", header_section(report.original))
    };
    let mut part = format!("Content-Type: {content_type}\r\n\r\n").into_bytes();
    part.extend_from_slice(body);
    if !body.ends_with(b"\n") {
        part.extend_from_slice(b"\r\n");
    }
    part
}

/// The header lines of a message, without the blank line that ends them.
fn header_section(message: &[u8]) -> &[u8] {
    let end = (0..message.len())
        .find(|&i| message[i..].starts_with(b"\r\n\r\n") || message[i..].starts_with(b"\n\n"))
        .map_or(message.len(), |i| i + if message[i] == b'\r' { 2 } else { 1 });
    &message[..end]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// A header value on one line: no control characters can break the header out.
pub(super) fn clean(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(900)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &[u8] = b"From: alice@example.com\r\nSubject: Hello\r\n\r\nSee you at 8\r\n";

    fn report(action: Action) -> DsnContent<'static> {
        DsnContent {
            id: 7,
            action,
            date: 1_795_608_000_000,
            sender: "alice@example.com",
            envid: Some("QQ314159"),
            return_full: true,
            arrival: 1_795_607_990_000,
            original: ORIGINAL,
            recipient: "+33477858589@sms",
            orcpt: Some("rfc822;paul@example.com"),
            number: "+33477858589",
            text: "Hello\nSee you at 8",
            parts: 1,
            modem: Some("sim0"),
            status: Some("5.4.0"),
            reason: Some("part 1 not delivered: rejected by the network"),
            last_attempt: 1_795_607_995_000,
        }
    }

    const REPORTING_MTA: ReportingMta<'static> = ReportingMta {
        hostname: "gw.example.net",
        instance: "uk",
        from: "postmaster@gw.example.net",
    };

    fn text(action: Action) -> String {
        String::from_utf8(build(&report(action), &REPORTING_MTA)).unwrap()
    }

    #[test]
    fn a_failure_has_every_field_and_the_whole_message() {
        let dsn = text(Action::Failed);
        for expected in [
            "From: Mail Delivery System <postmaster@gw.example.net>\r\n",
            "To: <alice@example.com>\r\n",
            "Subject: Delivery Status Notification (Failure): SMS to +33477858589\r\n",
            "Date: Wed, 25 Nov 2026 12:00:00 +0000\r\n",
            "Auto-Submitted: auto-replied\r\n",
            "Content-Type: multipart/report; report-type=delivery-status; boundary=\"=_smsgw-dsn-7\"\r\n",
            "Reporting-MTA: dns; gw.example.net\r\n",
            "Original-Envelope-Id: QQ314159\r\n",
            "Arrival-Date: Wed, 25 Nov 2026 11:59:50 +0000\r\n\r\n",
            "Original-Recipient: rfc822; paul@example.com\r\n",
            "Final-Recipient: rfc822; +33477858589@sms\r\n",
            "Action: failed\r\n",
            "Status: 5.4.0\r\n",
            "Diagnostic-Code: X-Smsgw; part 1 not delivered: rejected by the network\r\n",
            "Last-Attempt-Date: Wed, 25 Nov 2026 11:59:55 +0000\r\n",
            "Content-Type: message/rfc822\r\n\r\nFrom: alice@example.com\r\nSubject: Hello\r\n\r\nSee you at 8\r\n",
            "Reason: part 1 not delivered: rejected by the network.",
            "    See you at 8\r\n",
            "\r\n--=_smsgw-dsn-7--\r\n",
        ] {
            assert!(dsn.contains(expected), "{expected:?} missing from:\n{dsn}");
        }
    }

    #[test]
    fn success_returns_the_header_only_and_no_diagnostic() {
        for action in [Action::Delivered, Action::Relayed] {
            let dsn = text(action);
            assert!(dsn.contains(&format!("Action: {}\r\nStatus: 2.0.0\r\n", action.name())));
            assert!(!dsn.contains("Diagnostic-Code"));
            assert!(dsn.contains(
                "Content-Type: text/rfc822-headers\r\n\r\nFrom: alice@example.com\r\nSubject: Hello\r\n\r\n--"
            ));
            let returned = dsn.split("text/rfc822-headers").nth(1).unwrap();
            assert!(!returned.contains("See you at 8"), "the body is not returned");
        }
    }

    #[test]
    fn status_codes() {
        let table = [
            (Action::Failed, Some("4.4.7"), "5.4.7"),
            (Action::Failed, None, "5.0.0"),
            (Action::Failed, Some("5.1.1"), "5.1.1"),
            (Action::Delayed, Some("4.4.1"), "4.4.1"),
            (Action::Delayed, Some("5.4.0"), "4.0.0"),
            (Action::Delayed, None, "4.0.0"),
            (Action::Delivered, Some("5.4.0"), "2.0.0"),
        ];
        for (action, stored, expected) in table {
            let report = DsnContent {
                status: stored,
                ..report(action)
            };
            assert_eq!(status(&report), expected, "{action:?} {stored:?}");
        }
    }

    #[test]
    fn no_line_of_the_dsn_is_longer_than_a_relay_takes() {
        let long = "x".repeat(255 * 153);
        let report = DsnContent {
            text: &long,
            ..report(Action::Failed)
        };
        let dsn = String::from_utf8(build(&report, &REPORTING_MTA)).unwrap();
        let longest = dsn.split("\r\n").map(str::len).max().unwrap();
        assert!(longest <= MAX_LINE, "a line of {longest} octets");
        assert!(dsn.contains("Content-Transfer-Encoding: base64"));
    }

    #[test]
    fn a_boundary_never_appears_in_the_returned_message() {
        let original = b"Subject: x\r\n\r\n--=_smsgw-dsn-7\r\n";
        let report = DsnContent {
            original,
            ..report(Action::Failed)
        };
        let dsn = String::from_utf8(build(&report, &REPORTING_MTA)).unwrap();
        assert!(dsn.contains("boundary=\"=_smsgw-dsn-7_\""));
    }

    #[test]
    fn a_text_that_is_not_ascii_goes_in_base64_and_headers_stay_on_one_line() {
        let report = DsnContent {
            text: "Réunion à 8h €",
            reason: Some("bad\r\nInjected: yes"),
            ..report(Action::Failed)
        };
        let dsn = String::from_utf8(build(&report, &REPORTING_MTA)).unwrap();
        assert!(dsn.contains("Content-Transfer-Encoding: base64\r\n"));
        assert!(dsn.contains("Diagnostic-Code: X-Smsgw; bad  Injected: yes\r\n"));
        assert!(!dsn.contains("\r\nInjected"));
    }

    #[test]
    fn header_section_ends_at_the_blank_line() {
        assert_eq!(header_section(b"A: 1\r\nB: 2\r\n\r\nbody"), b"A: 1\r\nB: 2\r\n");
        assert_eq!(header_section(b"A: 1\n\nbody"), b"A: 1\n");
        assert_eq!(header_section(b"A: 1\r\n"), b"A: 1\r\n");
    }
}
