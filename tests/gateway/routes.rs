//! Numbers no instance can send to: refused at `RCPT TO` by what is known of every
//! instance's tariffs, and failed at once when a restart narrows the tariffs under
//! requests already waiting.

use std::net::SocketAddr;
use std::time::Duration;

use crate::dsn::parse;
use crate::support::gateway::{Gateway, event_details};
use crate::support::sink::{Sink, unused_address};
use crate::support::smtp::message;
use crate::support::status::static_status;
use crate::support::wait::eventually;

const FRENCH: &str = "+33477858589";
const BRITISH: &str = "+447911123456";
const GERMAN: &str = "+4915112345678";

/// A simulated modem with `tariff`.
fn modem(tariff: &str) -> String {
    format!(
        "[[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {tariff}\n\
         sim = {{ latency_ms = 0, report_delay_ms = 20 }}\n"
    )
}

/// A gateway with a British modem and one peer, fr, whose status is polled at
/// `status` (every second).
fn british_with_peer(status: SocketAddr) -> Gateway {
    let config = format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[routing]\npoll_secs = 1\n\n{}\n\
         [[peer]]\nname = \"fr\"\nsmtp = \"{}\"\nstatus_url = \"http://{status}/status\"\n\
         user = \"smsgw\"\npassword = \"password\"\ntls = \"none\"\n",
        modem("{ \"+44\" = 0.02 }"),
        unused_address()
    );
    let gateway = Gateway::start(&config);
    gateway.wait_for_log("ready modem=sim0");
    gateway
}

/// The status of fr: one modem, down now, with a tariff for French numbers only.
fn french_status() -> String {
    serde_json::json!({
        "name": "fr", "version": "0", "time": "", "queued": 0, "sending": 0,
        "modems": [{ "name": "sim0", "state": "down", "signal": null, "per_minute": 0,
                     "tariff": { "+33": 0.01 }, "parts_sent": 0, "send_errors": 0 }]
    })
    .to_string()
}

/// The reply to `RCPT TO:<number@sms>` in a new transaction.
fn rcpt(gateway: &Gateway, number: &str) -> (u16, String) {
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.send(&format!("RCPT TO:<{number}@sms>\r\n"));
    let reply = client.reply().expect("a reply to RCPT");
    (reply.code, reply.text())
}

#[test]
fn a_number_a_peer_has_a_tariff_for_is_accepted_and_one_nobody_has_is_refused() {
    let gateway = british_with_peer(static_status(french_status()));
    gateway.wait_for_log("peer up peer=fr");
    assert_eq!(rcpt(&gateway, BRITISH).0, 250, "this instance's modem");
    // fr's only modem is down, but its tariff says it sends French numbers when it is back.
    assert_eq!(rcpt(&gateway, FRENCH).0, 250, "fr's modem");
    assert_eq!(
        rcpt(&gateway, GERMAN),
        (
            550,
            format!("5.4.4 No route to {GERMAN}: no modem of smsgw, fr has a tariff for it")
        )
    );
    assert!(gateway.queue().is_empty());
}

#[test]
fn a_peer_whose_tariffs_are_not_known_makes_the_answer_unknown_so_the_number_is_accepted() {
    // Nothing listens where fr's status should be: never polled at first, then never
    // answering. What fr could send is not known, so a German number may be its.
    let gateway = british_with_peer(unused_address());
    assert_eq!(rcpt(&gateway, GERMAN).0, 250);
    let mut client = gateway.client();
    assert_eq!(
        client
            .mail(&[&format!("{GERMAN}@sms")], &message("unknown", "fr may send it"))
            .code,
        250
    );
    // Routing waits for fr rather than failing it.
    eventually(Duration::from_secs(30), || {
        let detail = gateway.show(1);
        let story = event_details(&detail);
        match detail["state"] == "received" && story.contains("waiting") {
            true => Ok(()),
            false => Err(format!("request 1 does not wait for fr: {story}")),
        }
    });
}

#[test]
fn an_instance_without_modems_or_peers_accepts_and_keeps_every_number() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    let reply = client.mail(&[&format!("{GERMAN}@sms")], &message("kept", "until modems come"));
    assert_eq!(reply.code, 250, "{reply:?}");
    gateway.wait_state(1, "queued");
}

#[test]
fn a_request_a_restart_leaves_without_a_route_fails_at_once_with_its_dsn() {
    let sink = Sink::start(None);
    // No modem yet: both requests are kept, queued.
    let mut gateway = Gateway::start(&format!(
        "[dsn]\nsmart_host = \"{}\"\ntls = \"none\"\nretry_delays_secs = [1]\n",
        sink.address
    ));
    let recipients = [format!("{FRENCH}@sms"), format!("{BRITISH}@sms")];
    let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
    assert_eq!(gateway.client().mail(&recipients, &message("later", "text")).code, 250);
    gateway.wait_all(&["queued"]);
    // Restarted with a modem that sends British numbers only.
    gateway.kill();
    let mut config = std::fs::read_to_string(&gateway.config).unwrap();
    config.push_str(&format!("\n{}", modem("{ \"+44\" = 0.02 }")));
    std::fs::write(&gateway.config, config).unwrap();
    gateway.restart();
    let french = gateway.wait_state(1, "failed");
    assert_eq!(french["status"], "5.4.4");
    assert_eq!(
        french["reason"],
        format!("no route to {FRENCH}: no modem of smsgw has a tariff for it")
    );
    gateway.wait_state(2, "delivered");
    let dsn = parse(&sink.wait_for(1)[0]);
    assert_eq!(dsn.recipient_fields["Action"], "failed", "{dsn:#?}");
    assert_eq!(dsn.recipient_fields["Status"], "5.4.4", "{dsn:#?}");
    assert!(dsn.recipient_fields["Final-Recipient"].contains(FRENCH), "{dsn:#?}");
}
