//! Delivery status notifications: what arrives at a real SMTP sink, parsed with a MIME
//! parser, for each outcome of a request and each RFC 3461 parameter; and the outbound
//! TLS rules the DSN delivery obeys.

use std::collections::BTreeMap;
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders, PartType};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::support::dns::Dns;
use crate::support::gateway::Gateway;
use crate::support::pki::Pki;
use crate::support::sink::{Received, Sink, unused_address};
use crate::support::smtp::Client;
use crate::support::wait::eventually;

const DELIVERED: &str = "+447911123456";
/// The simulated network refuses this one in its status report.
const REFUSED: &str = "+33477858589";

/// A gateway whose DSNs go to `smart_host`, with one simulated modem; `outbound_extra`
/// are more `[outbound]` keys.
fn gateway(smart_host: &str, outbound_extra: &str, modem_extra: &str) -> Gateway {
    let gateway = Gateway::start(&format!(
        "[outbound]\nsmart_host = \"{smart_host}\"\nretry_delays_secs = [1]\n{outbound_extra}\n\n\
         [[modem]]\nname = \"sim0\"\nport = \"sim\"\n{modem_extra}\n\
         sim = {{ latency_ms = 0, report_delay_ms = 20, report_failure = [\"{REFUSED}\"] }}\n"
    ));
    gateway.wait_for_log("ready modem=sim0");
    gateway
}

/// Mails `number` from `from` with the given MAIL and RCPT parameters.
fn send(gateway: &Gateway, from: &str, mail_params: &str, number: &str, rcpt_params: &str) {
    let mut client: Client = gateway.client();
    client.command("EHLO test.example", 250);
    client.command(format!("MAIL FROM:<{from}> {mail_params}").trim_end(), 250);
    client.command(format!("RCPT TO:<{number}@sms> {rcpt_params}").trim_end(), 250);
    client.command("DATA", 354);
    client.send("From: alice@example.com\r\nSubject: Meeting\r\n\r\nSee you at 8, room 4\r\n.\r\n");
    client.expect(250);
}

/// A DSN taken apart: its header, its three parts, and the delivery-status fields
/// (the per-message block, then the per-recipient one).
#[derive(Debug)]
pub(crate) struct Dsn {
    pub subject: String,
    pub to: String,
    pub content_type: String,
    pub human: String,
    pub message_fields: BTreeMap<String, String>,
    pub recipient_fields: BTreeMap<String, String>,
    pub returned_type: String,
    pub returned: String,
}

pub(crate) fn parse(mail: &Received) -> Dsn {
    let message = MessageParser::default().parse(&mail.data).expect("DSN parses as MIME");
    let content_type = message.content_type().expect("content type");
    let content_type = format!(
        "{}/{}; report-type={}",
        content_type.ctype(),
        content_type.subtype().unwrap_or(""),
        content_type.attribute("report-type").unwrap_or("")
    );
    let parts: Vec<_> = message.parts.iter().skip(1).collect();
    assert_eq!(parts.len(), 3, "three parts: {}", String::from_utf8_lossy(&mail.data));
    let text = |index: usize| match &parts[index].body {
        PartType::Text(text) => text.to_string(),
        PartType::Message(inner) => String::from_utf8_lossy(inner.raw_message()).into_owned(),
        PartType::Binary(bytes) | PartType::InlineBinary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        other => panic!("unexpected part {other:?}"),
    };
    let status = text(1);
    let (per_message, per_recipient) = status.split_once("\r\n\r\n").expect("two blocks");
    let fields = |block: &str| {
        block
            .lines()
            .filter_map(|l| l.split_once(": "))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    };
    let ctype = |index: usize| {
        let c = parts[index].content_type().unwrap();
        format!("{}/{}", c.ctype(), c.subtype().unwrap_or(""))
    };
    assert_eq!(ctype(1), "message/delivery-status");
    Dsn {
        subject: message.subject().unwrap_or("").to_string(),
        to: message
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or("")
            .to_string(),
        content_type,
        human: text(0),
        message_fields: fields(per_message),
        recipient_fields: fields(per_recipient),
        returned_type: ctype(2),
        returned: text(2),
    }
}

/// The DSN history of request `id`, as `queue show` tells it.
fn dsn_events(gateway: &Gateway, id: i64) -> Vec<String> {
    gateway.show(id)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "dsn")
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect()
}

/// Waits until the DSN history of request `id` tells `what`; returns that history. The
/// log line comes before the history is written.
fn wait_dsn_event(gateway: &Gateway, id: i64, what: &str) -> Vec<String> {
    eventually(Duration::from_secs(30), || {
        let events = dsn_events(gateway, id);
        if events.iter().any(|e| e.contains(what)) {
            Ok(events)
        } else {
            Err(format!("request {id}'s history never told {what:?}: {events:?}"))
        }
    })
}

#[test]
fn a_delivered_sms_gives_a_success_dsn_with_every_field() {
    let sink = Sink::start(None);
    let gateway = gateway(&sink.address.to_string(), "tls = \"none\"", "");
    send(
        &gateway,
        "alice@example.com",
        "RET=HDRS ENVID=QQ314159",
        DELIVERED,
        "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;paul@example.com",
    );
    let mails = sink.wait_for(1);
    assert_eq!(mails[0].mail_from, "<>", "a DSN has the null sender");
    assert_eq!(mails[0].rcpt_to, ["<alice@example.com>"]);
    let dsn = parse(&mails[0]);
    assert_eq!(dsn.content_type, "multipart/report; report-type=delivery-status");
    assert_eq!(dsn.to, "alice@example.com");
    assert_eq!(
        dsn.subject,
        format!("Delivery Status Notification (Success): SMS to {DELIVERED}")
    );
    assert_eq!(dsn.message_fields["Reporting-MTA"], "dns; smsgw.localdomain");
    assert_eq!(dsn.message_fields["Original-Envelope-Id"], "QQ314159");
    assert!(dsn.message_fields.contains_key("Arrival-Date"));
    let fields = &dsn.recipient_fields;
    assert_eq!(fields["Original-Recipient"], "rfc822; paul@example.com");
    assert_eq!(fields["Final-Recipient"], format!("rfc822; {DELIVERED}@sms"));
    assert_eq!(fields["Action"], "delivered");
    assert_eq!(fields["Status"], "2.0.0");
    assert!(fields.contains_key("Last-Attempt-Date"));
    assert!(!fields.contains_key("Diagnostic-Code"));
    assert!(
        dsn.human.contains("was delivered as an SMS") && dsn.human.contains("modem sim0"),
        "{}",
        dsn.human
    );
    assert!(
        dsn.human.contains("See you at 8, room 4"),
        "the human part quotes the SMS"
    );
    // RET=HDRS: the header of the original, not its body.
    assert_eq!(dsn.returned_type, "text/rfc822-headers");
    assert!(dsn.returned.contains("Subject: Meeting") && !dsn.returned.contains("room 4"));
    let events = wait_dsn_event(&gateway, 1, "delivered DSN delivered to <alice@example.com>");
    assert!(events[0].contains("delivered DSN queued"), "{events:?}");
    assert_eq!(gateway.store().dsns(1), ["delivered sent"]);
}

#[test]
fn a_refused_sms_gives_a_failure_dsn_by_default_with_the_whole_message_for_ret_full() {
    let sink = Sink::start(None);
    let gateway = gateway(&sink.address.to_string(), "tls = \"none\"", "");
    // No NOTIFY: failures only (RFC 3461 §4.1); the delivered one says nothing.
    send(&gateway, "bob@example.com", "", DELIVERED, "");
    send(&gateway, "alice@example.com", "RET=FULL", REFUSED, "");
    let mails = sink.wait_for(1);
    let dsn = parse(&mails[0]);
    assert_eq!(dsn.to, "alice@example.com");
    assert_eq!(dsn.recipient_fields["Action"], "failed");
    assert!(
        dsn.recipient_fields["Status"].starts_with("5."),
        "{:?}",
        dsn.recipient_fields
    );
    assert!(dsn.recipient_fields["Diagnostic-Code"].contains("not delivered"));
    assert!(
        !dsn.recipient_fields.contains_key("Original-Recipient"),
        "no ORCPT given"
    );
    assert!(
        !dsn.message_fields.contains_key("Original-Envelope-Id"),
        "no ENVID given"
    );
    assert!(dsn.human.contains("could not be delivered"), "{}", dsn.human);
    assert_eq!(dsn.returned_type, "message/rfc822");
    assert!(
        dsn.returned.contains("See you at 8, room 4"),
        "RET=FULL returns the body"
    );
    gateway.wait_state(1, "delivered");
    assert_eq!(dsn_events(&gateway, 1), Vec::<String>::new());
}

#[test]
fn notify_never_and_the_null_sender_get_no_dsn() {
    let sink = Sink::start(None);
    let gateway = gateway(&sink.address.to_string(), "tls = \"none\"", "");
    send(&gateway, "alice@example.com", "", REFUSED, "NOTIFY=NEVER");
    send(&gateway, "", "", REFUSED, "NOTIFY=FAILURE");
    gateway.wait_state(1, "failed");
    gateway.wait_state(2, "failed");
    // A third failure that does want a DSN: once it has arrived, the first two had
    // their chance long before.
    send(&gateway, "carol@example.com", "", REFUSED, "NOTIFY=FAILURE");
    gateway.wait_state(3, "failed");
    let mails = sink.wait_for(1);
    gateway.wait_for_log("DSN delivered");
    assert_eq!(sink.mails().len(), 1);
    assert_eq!(mails[0].rcpt_to, ["<carol@example.com>"]);
    assert!(dsn_events(&gateway, 1).is_empty() && dsn_events(&gateway, 2).is_empty());
}

#[test]
fn a_modem_without_status_reports_gives_a_relayed_dsn() {
    let sink = Sink::start(None);
    let gateway = gateway(&sink.address.to_string(), "tls = \"none\"", "status_reports = \"none\"");
    send(&gateway, "alice@example.com", "", DELIVERED, "NOTIFY=SUCCESS");
    let dsn = parse(&sink.wait_for(1)[0]);
    assert_eq!(dsn.recipient_fields["Action"], "relayed");
    assert_eq!(dsn.recipient_fields["Status"], "2.0.0");
    assert!(dsn.human.contains("no delivery confirmation"), "{}", dsn.human);
    // Sent without asking for a report, and stays `sent`.
    let pdu = gateway.records("sim0")[0]["pdu"].as_str().unwrap().to_string();
    let decoded: serde_json::Value = serde_json::from_str(&gateway.cli_ok(&["pdu", "decode", &pdu])).unwrap();
    assert_eq!(decoded["status_report"], false);
    assert_eq!(gateway.show(1)["state"], "sent");
}

#[test]
fn a_status_report_that_never_comes_gives_a_relayed_dsn_after_the_wait() {
    let sink = Sink::start(None);
    let gateway = Gateway::start(&format!(
        "[dsn]\nreport_wait_secs = 1\n[outbound]\nsmart_host = \"{}\"\ntls = \"none\"\n\n\
         [[modem]]\nname = \"sim0\"\nport = \"sim\"\nsim = {{ latency_ms = 0, report_delay_ms = 600000 }}\n",
        sink.address
    ));
    send(&gateway, "alice@example.com", "", DELIVERED, "NOTIFY=SUCCESS");
    gateway.wait_state(1, "sent");
    let dsn = parse(&sink.wait_for(1)[0]);
    assert_eq!(dsn.recipient_fields["Action"], "relayed");
    wait_dsn_event(&gateway, 1, "relayed DSN delivered");
    // Each sweep looks a second further back than the previous one ended: a second
    // request sent now gets its DSN from a later sweep than that, so by the time it
    // arrives any second look at the first request has happened.
    send(&gateway, "bob@example.com", "", DELIVERED, "NOTIFY=SUCCESS");
    let mails = sink.wait_for(2);
    wait_dsn_event(&gateway, 2, "relayed DSN delivered");
    assert_eq!(mails[1].rcpt_to, ["<bob@example.com>"]);
    assert_eq!(sink.mails().len(), 2, "one relayed DSN each");
    assert_eq!(gateway.store().dsns(1), ["relayed sent"]);
    let story = dsn_events(&gateway, 1);
    assert_eq!(
        story.iter().filter(|e| e.contains("relayed DSN queued")).count(),
        1,
        "{story:?}"
    );
}

#[test]
fn a_request_waiting_too_long_gives_one_delayed_dsn() {
    let sink = Sink::start(None);
    // No modem: the request waits. The smart host is written as for the last release,
    // under [dsn]: still read, and warned of.
    let gateway = Gateway::start(&format!(
        "[dsn]\nsmart_host = \"{}\"\ntls = \"none\"\ndelay_after_secs = 1\n",
        sink.address
    ));
    gateway.wait_for_log("dsn.smart_host: moved to outbound.smart_host (still read");
    send(&gateway, "alice@example.com", "", DELIVERED, "NOTIFY=DELAY,FAILURE");
    let dsn = parse(&sink.wait_for(1)[0]);
    assert_eq!(dsn.recipient_fields["Action"], "delayed");
    assert!(dsn.recipient_fields["Status"].starts_with("4."));
    assert!(dsn.human.contains("has not been sent"), "{}", dsn.human);
    // A second request's delayed DSN comes a second later: by then the first request
    // has been looked at again, and got no second one.
    send(&gateway, "bob@example.com", "", DELIVERED, "NOTIFY=DELAY");
    let mails = sink.wait_for(2);
    wait_dsn_event(&gateway, 2, "delayed DSN delivered");
    assert_eq!(sink.mails().len(), 2);
    assert_eq!(mails[1].rcpt_to, ["<bob@example.com>"]);
    assert_eq!(gateway.store().dsns(1), ["delayed sent"]);
    assert_eq!(gateway.show(1)["state"], "queued");
}

#[test]
fn a_dsn_waits_for_its_server_across_a_restart_and_arrives_once() {
    let address = unused_address();
    let mut gateway = gateway(&address.to_string(), "tls = \"none\"", "");
    send(&gateway, "alice@example.com", "", REFUSED, "");
    gateway.wait_for_log("DSN not delivered yet");
    gateway.crash_and_restart();
    let sink = Sink::start_on(address, None);
    let mails = sink.wait_for(1);
    assert_eq!(parse(&mails[0]).recipient_fields["Action"], "failed");
    wait_dsn_event(&gateway, 1, "DSN delivered");
    // A DSN queued now goes out in a later round than the first: once it is in, a
    // second delivery of the first would have happened.
    send(&gateway, "bob@example.com", "", REFUSED, "");
    let mails = sink.wait_for(2);
    wait_dsn_event(&gateway, 2, "DSN delivered");
    let to: Vec<_> = mails.iter().map(|m| m.rcpt_to.concat()).collect();
    assert_eq!(to, ["<alice@example.com>", "<bob@example.com>"]);
    let delivered: Vec<_> = dsn_events(&gateway, 1)
        .into_iter()
        .filter(|e| e.contains("DSN delivered"))
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(gateway.store().dsns(1), ["failed sent"]);
}

#[test]
fn a_dsn_refused_for_good_is_dropped_and_told_in_the_history() {
    let sink = Sink::start(None);
    let gateway = gateway(&sink.address.to_string(), "tls = \"none\"", "");
    send(&gateway, "refuse-me@example.com", "", REFUSED, "");
    gateway.wait_for_log("DSN refused; dropped");
    let events = wait_dsn_event(&gateway, 1, "dropped");
    assert!(
        events.iter().any(|e| e.contains("dropped") && e.contains("550 5.1.1")),
        "{events:?}"
    );
    assert_eq!(gateway.store().dsns(1), ["failed dropped"]);
    assert!(sink.mails().is_empty());
}

#[test]
fn dsn_delivery_verifies_the_server_certificate_unless_told_otherwise() {
    let pki = Pki::new();
    let sink = Sink::start(Some((&pki.cert(), &pki.key())));
    let host = format!("localhost:{}", sink.address.port());
    // Trusted through tls_ca_file: delivered over TLS.
    let trusted = gateway(&host, &format!("tls_ca_file = {:?}", pki.ca()), "");
    send(&trusted, "alice@example.com", "", REFUSED, "");
    assert!(sink.wait_for(1)[0].tls, "the DSN came over TLS");
    drop(trusted);
    // Not trusted (its CA is not ours): never delivered, and the log says why.
    let stranger = Pki::new();
    let untrusted = gateway(&host, &format!("tls_ca_file = {:?}", stranger.ca()), "");
    send(&untrusted, "alice@example.com", "", REFUSED, "");
    let line = untrusted.wait_for_log("DSN not delivered yet");
    assert!(line.contains("certificate"), "{line}");
    // Pinned by its fingerprint: accepted though no CA vouches for it.
    let der = CertificateDer::from_pem_file(pki.cert()).unwrap();
    let pin = smsgw::outbound::tls::fingerprint(&der);
    let hex: String = pin.iter().map(|b| format!("{b:02x}")).collect();
    let pinned = gateway(&host, &format!("tls_pin_sha256 = [\"{hex}\"]"), "");
    send(&pinned, "alice@example.com", "", REFUSED, "");
    assert!(sink.wait_for(2)[1].tls);
    // Opportunistic: encrypted, certificate unchecked.
    let opportunistic = gateway(&host, "tls = \"opportunistic\"", "");
    send(&opportunistic, "alice@example.com", "", REFUSED, "");
    assert!(sink.wait_for(3)[2].tls);
    assert_eq!(sink.mails().len(), 3, "the untrusted server never got its DSN");
}

#[test]
fn verify_refuses_a_server_without_starttls() {
    let sink = Sink::start(None);
    let pki = Pki::new();
    let gateway = gateway(&sink.address.to_string(), &format!("tls_ca_file = {:?}", pki.ca()), "");
    send(&gateway, "alice@example.com", "", REFUSED, "");
    let line = gateway.wait_for_log("DSN not delivered yet");
    assert!(line.contains("does not offer STARTTLS"), "{line}");
    assert!(sink.mails().is_empty());
}

#[test]
fn opportunistic_tls_refused_by_the_server_goes_in_clear_and_verify_does_not() {
    let sink = Sink::start_refusing_tls();
    let opportunistic = gateway(&sink.address.to_string(), "tls = \"opportunistic\"", "");
    send(&opportunistic, "alice@example.com", "", REFUSED, "");
    assert!(!sink.wait_for(1)[0].tls, "delivered in clear after the 454");
    let pki = Pki::new();
    let verify = gateway(&sink.address.to_string(), &format!("tls_ca_file = {:?}", pki.ca()), "");
    send(&verify, "bob@example.com", "", REFUSED, "");
    let line = verify.wait_for_log("DSN not delivered yet");
    assert!(line.contains("454"), "{line}");
    assert_eq!(sink.mails().len(), 1);
}

#[test]
fn a_dsn_not_delivered_within_its_lifetime_is_dropped_and_told_in_the_history() {
    let address = unused_address();
    let mut gateway = gateway(&address.to_string(), "tls = \"none\"\nlifetime_hours = 1", "");
    send(&gateway, "alice@example.com", "", REFUSED, "");
    gateway.wait_for_log("DSN not delivered yet");
    // Two hours pass, as far as the DSN can tell, while the gateway is stopped.
    gateway.kill();
    let db = rusqlite::Connection::open(gateway.store().path()).unwrap();
    let aged = db
        .execute("UPDATE dsns SET created = created - 2 * 3600 * 1000", [])
        .unwrap();
    assert_eq!(aged, 1);
    drop(db);
    gateway.restart();
    let line = gateway.wait_for_log("not delivered within its lifetime");
    assert!(line.contains("dropped") && line.contains("alice@example.com"), "{line}");
    let events = wait_dsn_event(&gateway, 1, "dropped");
    assert!(
        events.iter().any(|e| e.contains("not delivered within its lifetime")),
        "{events:?}"
    );
    assert_eq!(gateway.store().dsns(1), ["failed dropped"]);
    // Its server is back: a newer DSN reaches it, the dropped one never does.
    let sink = Sink::start_on(address, None);
    send(&gateway, "bob@example.com", "", REFUSED, "");
    let mails = sink.wait_for(1);
    wait_dsn_event(&gateway, 2, "DSN delivered");
    assert_eq!(sink.mails().len(), 1);
    assert_eq!(mails[0].rcpt_to, ["<bob@example.com>"]);
}

#[test]
fn without_a_smart_host_a_dsn_goes_to_the_mx_of_the_sender_s_domain() {
    let sink = Sink::start(None);
    // "localhost" resolves to the sink's address without the test's DNS.
    let dns = Dns::start(&[("example.test", "localhost."), ("null.test", ".")]);
    let gateway = Gateway::start(&format!(
        "[outbound]\nnameservers = [\"{}\"]\nmx_port = {}\ntls = \"opportunistic\"\nretry_delays_secs = [1]\n\n\
         [[modem]]\nname = \"sim0\"\nport = \"sim\"\n\
         sim = {{ latency_ms = 0, report_delay_ms = 20, report_failure = [\"{REFUSED}\"] }}\n",
        dns.address,
        sink.address.port()
    ));
    send(&gateway, "alice@example.test", "", REFUSED, "");
    let mails = sink.wait_for(1);
    assert_eq!(mails[0].rcpt_to, ["<alice@example.test>"]);
    assert_eq!(parse(&mails[0]).recipient_fields["Action"], "failed");
    wait_dsn_event(&gateway, 1, "delivered to <alice@example.test>");
    // A null MX: the domain takes no mail, and the DSN is dropped at once.
    send(&gateway, "bob@null.test", "", REFUSED, "");
    let events = wait_dsn_event(&gateway, 2, "dropped");
    assert!(events.iter().any(|e| e.contains("null MX")), "{events:?}");
    assert_eq!(sink.mails().len(), 1);
}
