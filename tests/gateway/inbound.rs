//! Two-way: an SMS received by a modem comes back as a mail to whoever texted that
//! number last, threaded under their mail; a reply to that mail sends only its new
//! text; STOP puts a number on the opt-out list. Every mail arrives at a real SMTP sink
//! and is parsed as MIME; incoming SMS reach the gateway's real serial code through the
//! built-in simulated modem (`smsgw modem inject`) or an independent one
//! (contrib/fake_modem.py) that stores them and announces `+CMTI`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use mail_parser::{Message, MessageParser};
use serde_json::Value;

use crate::support::gateway::Gateway;
use crate::support::python::python;
use crate::support::sink::{Received, Sink, unused_address};
use crate::support::smtp::Client;
use crate::support::wait::eventually;

const NUMBER: &str = "+33612345678";

/// A gateway whose outbound mail goes to `smart_host`, with one simulated modem.
fn gateway(smart_host: &str, extra: &str) -> Gateway {
    let gateway = Gateway::start(&format!(
        "[outbound]\nsmart_host = \"{smart_host}\"\ntls = \"none\"\nretry_delays_secs = [1]\n\n\
         [sms]\ncompose = \"subject+body\"\n\n{extra}\n\n\
         [[modem]]\nname = \"sim0\"\nport = \"sim\"\nsim = {{ latency_ms = 0, report_delay_ms = 20 }}\n"
    ));
    gateway.wait_for_log("ready modem=sim0");
    gateway
}

/// Mails `number` from `from` with `headers` and `body`; waits until it is sent.
fn mail(gateway: &Gateway, from: &str, number: &str, headers: &str, body: &str) {
    let mut client: Client = gateway.client();
    client.command("EHLO test.example", 250);
    client.command(&format!("MAIL FROM:<{from}>"), 250);
    client.command(&format!("RCPT TO:<{number}@sms>"), 250);
    client.command("DATA", 354);
    client.send(&format!("From: <{from}>\r\n{headers}\r\n\r\n{body}\r\n.\r\n"));
    let id = crate::support::smtp::queued_ids(&client.expect(250).text())[0];
    // Sent, or already reported delivered.
    eventually(Duration::from_secs(30), || match gateway.show(id)["state"].as_str() {
        Some("sent" | "delivered") => Ok(()),
        state => Err(format!("request {id} is {state:?}")),
    });
}

/// Makes the simulated modem receive an SMS.
fn inject(gateway: &Gateway, from: &str, text: &str) {
    let said = gateway.cli_ok(&["modem", "inject", "sim0", "--from", from, "--text", text]);
    assert!(said.contains("received an SMS"), "{said}");
}

fn parse(mail: &Received) -> Message<'_> {
    MessageParser::default()
        .parse(&mail.data)
        .expect("the mail parses as MIME")
}

fn from_address(message: &Message<'_>) -> String {
    let from = message.from().and_then(|f| f.first()).expect("From");
    from.address().unwrap_or_default().to_string()
}

fn inbox(gateway: &Gateway) -> Vec<Value> {
    let json = gateway.cli_ok(&["inbox", "list", "--json"]);
    serde_json::from_str(&json).expect("inbox list --json is JSON")
}

#[test]
fn a_reply_comes_back_threaded_and_replying_to_it_sends_only_the_new_text() {
    let sink = Sink::start(None);
    let gateway = gateway(&sink.address.to_string(), "");
    mail(
        &gateway,
        "alice@example.com",
        NUMBER,
        "Subject: Dinner\r\nMessage-ID: <dinner-1@example.com>",
        "At 8 tonight?",
    );
    inject(&gateway, NUMBER, "Yes, see you there");
    let mails = sink.wait_for(1);
    let reply = parse(&mails[0]);
    assert_eq!(mails[0].rcpt_to, ["<alice@example.com>"]);
    assert_eq!(from_address(&reply), format!("{NUMBER}@sms"), "Reply texts back");
    assert_eq!(reply.subject(), Some("Re: Dinner"));
    assert_eq!(reply.in_reply_to().as_text(), Some("dinner-1@example.com"));
    let body = reply.body_text(0).expect("a text body");
    assert!(body.starts_with("Yes, see you there\r\n"), "{body:?}");
    assert!(body.contains("by modem sim0"), "footer: {body:?}");
    let id = reply.message_id().expect("a Message-ID").to_string();

    // Replying from a mail client: "Re: …", the quote and the signature; with
    // sms.compose = "subject+body", only the new text goes.
    let headers = format!("Subject: Re: Dinner\r\nIn-Reply-To: <{id}>\r\nReferences: <dinner-1@example.com> <{id}>");
    let body =
        "Perfect, I will book a table.\r\n\r\nOn Thu, +33612345678 wrote:\r\n> Yes, see you there\r\n\r\n-- \r\nAlice";
    mail(&gateway, "alice@example.com", NUMBER, &headers, body);
    let records = gateway.wait_records("sim0", 2);
    // An out-of-office answer to that mail is no SMS (RFC 3834): refused at the end of data.
    let mut client = gateway.client();
    client.command("EHLO test.example", 250);
    client.command("MAIL FROM:<alice@example.com>", 250);
    client.command(&format!("RCPT TO:<{NUMBER}@sms>"), 250);
    client.command("DATA", 354);
    client.send(&format!(
        "Subject: Out of office\r\nAuto-Submitted: auto-replied\r\nIn-Reply-To: <{id}>\r\n\r\nBack on Monday.\r\n.\r\n"
    ));
    let refused = client.expect(550);
    assert!(
        refused.text().starts_with("5.7.1 An automatic reply to an SMS"),
        "{refused:?}"
    );
    assert_eq!(
        reply.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    assert_eq!(records[1]["text"], "Perfect, I will book a table.", "{records:#?}");
    assert_eq!(
        records[0]["text"], "Dinner\nAt 8 tonight?",
        "the first mail had its subject"
    );

    let entries = inbox(&gateway);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["from"], NUMBER);
    assert_eq!(entries[0]["state"], "sent");
    assert_eq!(entries[0]["recipient"], "alice@example.com");
    let shown = gateway.cli_ok(&["inbox", "show", &entries[0]["id"].to_string()]);
    assert!(shown.contains("mailed to <alice@example.com>: "), "{shown}");
}

#[test]
fn without_a_known_sender_a_reply_goes_to_the_default_recipient_or_is_kept() {
    let sink = Sink::start(None);
    let with_default = gateway(
        &sink.address.to_string(),
        "[inbound]\ndefault_recipient = \"desk@example.com\"",
    );
    inject(&with_default, "+447700900123", "Who is this?");
    let mails = sink.wait_for(1);
    assert_eq!(mails[0].rcpt_to, ["<desk@example.com>"]);
    let message = parse(&mails[0]);
    assert_eq!(message.subject(), Some("SMS from +447700900123"));
    assert!(message.in_reply_to().is_empty(), "nothing to thread under");

    let without = gateway(&sink.address.to_string(), "");
    inject(&without, "+447700900123", "Who is this?");
    let kept = eventually(Duration::from_secs(10), || match inbox(&without).pop() {
        Some(entry) => Ok(entry),
        None => Err("no inbox row yet".to_string()),
    });
    assert_eq!(kept["state"], "kept", "{kept:#?}");
    let why = kept["outcome"].as_str().unwrap_or_default();
    assert!(why.contains("inbound.default_recipient is empty"), "{why}");
    assert_eq!(sink.mails().len(), 1, "nothing more was mailed");
}

#[test]
fn when_two_senders_texted_the_number_the_latest_gets_the_reply() {
    let sink = Sink::start(None);
    let gateway = gateway(&sink.address.to_string(), "");
    mail(&gateway, "alice@example.com", NUMBER, "Subject: First", "one");
    mail(&gateway, "bob@example.com", NUMBER, "Subject: Second", "two");
    inject(&gateway, NUMBER, "Got it");
    let mails = sink.wait_for(1);
    assert_eq!(mails[0].rcpt_to, ["<bob@example.com>"]);
    let message = parse(&mails[0]);
    assert_eq!(message.subject(), Some("Re: Second"));
    let body = message.body_text(0).unwrap();
    assert!(body.contains("1 other sender(s) also wrote to +33612345678"), "{body}");
}

#[test]
fn stop_refuses_mail_at_rcpt_fails_what_waits_and_start_lifts_it() {
    let sink = Sink::start(None);
    // One part a minute: the second mail waits in the queue when STOP arrives.
    let gateway = Gateway::start(&format!(
        "[outbound]\nsmart_host = \"{}\"\ntls = \"none\"\nretry_delays_secs = [1]\n\n\
         [[modem]]\nname = \"sim0\"\nport = \"sim\"\nper_minute = 1\n\
         sim = {{ latency_ms = 0, report_delay_ms = 20 }}\n",
        sink.address
    ));
    gateway.wait_for_log("ready modem=sim0");
    mail(&gateway, "alice@example.com", NUMBER, "Subject: Offer", "50% off");
    let mut client = gateway.client();
    client.command("EHLO test.example", 250);
    client.command("MAIL FROM:<alice@example.com>", 250);
    client.command(&format!("RCPT TO:<{NUMBER}@sms>"), 250);
    client.command("DATA", 354);
    client.send("Subject: Another offer\r\n\r\n60% off\r\n.\r\n");
    let waiting = crate::support::smtp::queued_ids(&client.expect(250).text())[0];
    gateway.wait_state(waiting, "queued");

    inject(&gateway, NUMBER, " Stop\n");
    // The STOP is mailed to the sender too, and the waiting request fails with a DSN.
    let mails = sink.wait_for(2);
    let failed = gateway.wait_state(waiting, "failed");
    assert_eq!(failed["status"], "5.7.1", "{failed:#}");
    let subjects: Vec<String> = mails
        .iter()
        .map(|m| parse(m).subject().unwrap_or_default().to_string())
        .collect();
    assert!(subjects.iter().any(|s| s == "Re: Offer"), "{subjects:?}");
    assert!(
        subjects
            .iter()
            .any(|s| s.starts_with("Delivery Status Notification (Failure)")),
        "{subjects:?}"
    );

    let mut client = gateway.client();
    client.command("EHLO test.example", 250);
    client.command("MAIL FROM:<alice@example.com>", 250);
    let refused = client.command(&format!("RCPT TO:<{NUMBER}@sms>"), 550);
    assert_eq!(
        refused.text(),
        format!("5.7.1 {NUMBER}: the recipient has opted out of SMS from this gateway")
    );
    let listed = gateway.cli_ok(&["optout", "list"]);
    assert!(
        listed.contains(NUMBER) && listed.contains("STOP texted to modem sim0"),
        "{listed}"
    );

    inject(&gateway, NUMBER, "start");
    eventually(Duration::from_secs(10), || {
        let mut client = gateway.client();
        client.command("EHLO test.example", 250);
        client.command("MAIL FROM:<alice@example.com>", 250);
        client.send(&format!("RCPT TO:<{NUMBER}@sms>\r\n"));
        match client.reply() {
            Some(reply) if reply.code == 250 => Ok(()),
            other => Err(format!("still refused: {other:?}")),
        }
    });
}

#[test]
fn the_sink_down_across_a_restart_gets_the_reply_exactly_once() {
    let address = unused_address();
    let mut gateway = gateway(&address.to_string(), "");
    mail(&gateway, "alice@example.com", NUMBER, "Subject: Ping", "ping");
    inject(&gateway, NUMBER, "pong");
    eventually(Duration::from_secs(10), || match inbox(&gateway).pop() {
        Some(entry) if entry["attempts"].as_i64() >= Some(1) => Ok(()),
        other => Err(format!("not tried yet: {other:?}")),
    });
    gateway.crash_and_restart();
    gateway.wait_for_log("ready modem=sim0");
    let sink = Sink::start_on(address, None);
    let mails = sink.wait_for(1);
    assert_eq!(parse(&mails[0]).subject(), Some("Re: Ping"));
    eventually(Duration::from_secs(10), || match inbox(&gateway).pop() {
        Some(entry) if entry["state"] == "sent" => Ok(()),
        other => Err(format!("not recorded as sent: {other:?}")),
    });
    // Another retry round would have come within a second.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.mails().len(), 1, "mailed once");
}

/// The independent modem of contrib/fake_modem.py, on a pseudo-terminal linked at
/// `link`; `deliver` and the events it reports.
struct FakeModem {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
}

impl FakeModem {
    fn start(link: &std::path::Path) -> Option<FakeModem> {
        let python = python("the independent modem")?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/fake_modem.py");
        let mut child = Command::new(python)
            .arg(script)
            .arg("--link")
            .arg(link)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start contrib/fake_modem.py");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && sender.send(event).is_err()
                {
                    return;
                }
            }
        });
        let mut modem = FakeModem { child, stdin, events };
        modem.wait_for(|e| e["event"] == "ready");
        Some(modem)
    }

    fn deliver(&mut self, from: &str, text: &str, reference: u8, parts: &[u8]) {
        let command =
            serde_json::json!({"deliver": {"from": from, "text": text, "reference": reference, "parts": parts}});
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Waits for an event `matches` accepts; returns it.
    fn wait_for(&mut self, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) if matches(&event) => return event,
                Ok(_) => {}
                Err(error) => panic!("the fake modem never said what was awaited: {error}"),
            }
        }
    }
}

impl Drop for FakeModem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_long_reply_in_reverse_order_across_a_sigkill_is_mailed_once_and_whole() {
    let sink = Sink::start(None);
    let dir = tempdir();
    let link = dir.join("modem");
    let Some(mut modem) = FakeModem::start(&link) else {
        return;
    };
    let mut gateway = Gateway::start(&format!(
        "[outbound]\nsmart_host = \"{}\"\ntls = \"none\"\nretry_delays_secs = [1]\n\n\
         [[modem]]\nname = \"fake\"\nport = \"{}\"\nstatus_reports = \"none\"\n",
        sink.address,
        link.display()
    ));
    gateway.wait_for_log("ready modem=fake");
    mail(
        &gateway,
        "alice@example.com",
        NUMBER,
        "Subject: Plans",
        "What are the plans?",
    );

    let text = "We meet at the station at nine, then walk to the old harbour for lunch; \
                after that the museum until four, and dinner at Marco's at eight. \
                Bring a coat: the forecast says rain in the afternoon, and the wind will be strong.";
    assert!(text.len() > 160, "two parts");
    // Part 2 first: stored, read and deleted; then the gateway is killed.
    modem.deliver(NUMBER, text, 42, &[2]);
    let slot = modem.wait_for(|e| e["event"] == "stored")["index"].clone();
    modem.wait_for(|e| e["event"] == "read" && e["index"] == slot);
    modem.wait_for(|e| e["event"] == "deleted" && e["index"] == slot);
    gateway.kill();
    // Part 1 arrives while no gateway listens; the restarted one finds it in the SIM.
    modem.deliver(NUMBER, text, 42, &[1]);
    gateway.restart();
    let slot = modem.wait_for(|e| e["event"] == "stored")["index"].clone();
    modem.wait_for(|e| e["event"] == "deleted" && e["index"] == slot);

    let mails = sink.wait_for(1);
    let message = parse(&mails[0]);
    let body = message.body_text(0).unwrap();
    assert!(body.starts_with(&format!("{text}\r\n")), "whole and in order: {body:?}");
    assert_eq!(message.subject(), Some("Re: Plans"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.mails().len(), 1, "mailed once");
    let entries = inbox(&gateway);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["parts"], 2);
    assert!(entries[0]["missing"].is_null());
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("smsgw-inbound-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn a_stop_is_confirmed_by_sms_when_inbound_stop_reply_says_so() {
    let sink = Sink::start(None);
    let reply = "You will get no more SMS from us. Text START to get them again.";
    let gateway = gateway(
        &sink.address.to_string(),
        &format!("[inbound]\nstop_reply = \"{reply}\""),
    );
    inject(&gateway, NUMBER, "STOP");
    let records = gateway.wait_records("sim0", 1);
    assert_eq!(
        (records[0]["number"].as_str(), records[0]["text"].as_str()),
        (Some(NUMBER), Some(reply))
    );
    let queue = gateway.wait_all(&["sent", "delivered"]);
    assert_eq!(queue.len(), 1, "{queue:#?}");
    assert_eq!(queue[0]["sender"], "", "from the null sender: no DSN about it");
    // Texted again, STOP changes nothing and is not confirmed twice.
    inject(&gateway, NUMBER, "stop");
    eventually(Duration::from_secs(10), || match inbox(&gateway).len() {
        2 => Ok(()),
        n => Err(format!("{n} SMS in the inbox")),
    });
    assert_eq!(gateway.queue().len(), 1);
}
