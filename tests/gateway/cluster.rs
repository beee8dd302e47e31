//! The cluster: several real instances on loopback ports, each with its own simulated
//! modem and tariffs, polling each other's `/status` and forwarding over SMTP with AUTH.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::dsn::parse;
use crate::link::{Link, Mode};
use crate::support::gateway::{Gateway, event_details};
use crate::support::pki::Pki;
use crate::support::sink::{Sink, unused_address};
use crate::support::smtp::{Client, message};
use crate::support::status::static_status;
use crate::support::wait::eventually;
use crate::support::{BIN, TempDir};

const FRENCH: &str = "+33477858589";
const BRITISH: &str = "+447911123456";
const GERMAN: &str = "+4915112345678";

/// One instance to start: its name, its modem's tariff and time per part, how often it
/// polls its peers, and `[routing]` keys.
struct Node {
    name: &'static str,
    tariff: &'static str,
    latency_ms: u64,
    poll_secs: u64,
    routing: &'static str,
    /// Whole sections added to its config.
    sections: String,
    /// Lines added to its `[security]` section (which holds its peers' users file).
    security: &'static str,
    /// Runs with the abuse limits of a production config, not without any.
    production_limits: bool,
}

fn node(name: &'static str, tariff: &'static str) -> Node {
    Node {
        name,
        tariff,
        latency_ms: 0,
        poll_secs: 1,
        routing: "",
        sections: String::new(),
        security: "",
        production_limits: false,
    }
}

/// The three instances of the README: uk sends British numbers cheapest, fr French ones,
/// de German ones; every link costs 0.01.
fn uk_fr_de() -> Vec<Node> {
    vec![
        node("uk", "{ \"+\" = 0.10, \"+44\" = 0.02 }"),
        node("fr", "{ \"+33\" = 0.01, \"+\" = 0.09 }"),
        node("de", "{ \"+49\" = 0.01, \"+33\" = 0.04 }"),
    ]
}

/// An instance's listeners its peers reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Smtp,
    Http,
}

struct Cluster {
    gateways: Vec<Gateway>,
    _users: TempDir,
}

impl Cluster {
    /// Starts the nodes in order, each a peer of all the others (AUTH as its own name).
    fn start(nodes: Vec<Node>) -> Cluster {
        Cluster::start_via(nodes, |_, _, _, address| address)
    }

    /// The same, each instance reaching a peer's `smtp` and `http` listeners at the
    /// address `via(from, to, which, listener)` gives: a link the test can cut, or the
    /// listener itself.
    fn start_via(nodes: Vec<Node>, mut via: impl FnMut(&str, &str, Listener, SocketAddr) -> SocketAddr) -> Cluster {
        let users = TempDir::new();
        let smtp: Vec<SocketAddr> = nodes.iter().map(|_| unused_address()).collect();
        let http: Vec<SocketAddr> = nodes.iter().map(|_| unused_address()).collect();
        let mut gateways = Vec::new();
        for (index, node) in nodes.iter().enumerate() {
            let users_file = users.0.join(format!("{}.toml", node.name));
            let mut peers = String::new();
            for (other, peer) in nodes.iter().enumerate().filter(|(i, _)| *i != index) {
                add_user(&users_file, peer.name, &format!("password-{}", peer.name));
                peers.push_str(&format!(
                    "[[peer]]\nname = \"{}\"\nsmtp = \"{}\"\nstatus_url = \"http://{}/status\"\n\
                     link_cost = 0.01\nuser = \"{}\"\npassword = \"password-{}\"\ntls = \"none\"\n\n",
                    peer.name,
                    via(node.name, peer.name, Listener::Smtp, smtp[other]),
                    via(node.name, peer.name, Listener::Http, http[other]),
                    node.name,
                    node.name
                ));
            }
            let config = format!(
                "[smtp]\nlisten = [\"{}\"]\n\n[http]\nlisten = \"{}\"\n\n\
                 [routing]\npoll_secs = {}\nretry_delays_secs = [1]\n{}\n\n\
                 [security]\nusers_file = {users_file:?}\n{}\n\n\
                 [[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {}\n\
                 sim = {{ latency_ms = {}, report_delay_ms = 20 }}\n\n{peers}\n{}",
                smtp[index],
                http[index],
                node.poll_secs,
                node.routing,
                node.security,
                node.tariff,
                node.latency_ms,
                node.sections
            );
            let mut options = Gateway::options(&config).name(node.name);
            if node.production_limits {
                options = options.production_limits();
            }
            let gateway = options.start();
            gateway.wait_for_log("ready modem=sim0");
            gateways.push(gateway);
        }
        let cluster = Cluster {
            gateways,
            _users: users,
        };
        for (index, node) in nodes.iter().enumerate() {
            for peer in nodes.iter().filter(|p| p.name != node.name) {
                cluster.gateways[index].wait_for_log(&format!("peer up peer={}", peer.name));
            }
        }
        cluster
    }

    /// `route explain` of instance `index`, as JSON.
    fn explain(&self, index: usize, number: &str) -> Value {
        let output = self.gateways[index].cli(&["route", "explain", number, "--json"]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

/// `smsgw user add`, the password on standard input.
pub(crate) fn add_user(users_file: &Path, name: &str, password: &str) {
    let config = users_file.with_extension("cli.toml");
    std::fs::write(&config, format!("[security]\nusers_file = {users_file:?}\n")).unwrap();
    let mut child = Command::new(BIN)
        .args(["user", "add", name, "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn send(gateway: &Gateway, number: &str) {
    let reply = gateway
        .client()
        .mail(&[&format!("{number}@sms")], &message("cluster", "test"));
    assert_eq!(reply.code, 250, "{reply:?}");
}

/// Waits until the simulated modem of `gateway` has recorded `count` parts; returns them.
fn wait_records(gateway: &Gateway, count: usize) -> Vec<Value> {
    gateway.wait_records("sim0", count)
}

fn story(gateway: &Gateway, id: i64) -> String {
    event_details(&gateway.show(id))
}

#[test]
fn each_number_is_sent_by_the_instance_where_it_costs_least() {
    let cluster = Cluster::start(uk_fr_de());
    let [uk, fr, de] = &cluster.gateways[..] else {
        unreachable!()
    };
    let plan = cluster.explain(0, FRENCH);
    let ranked: Vec<&str> = plan["ranked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(ranked, ["fr", "de", "uk"], "{plan:#}");
    send(uk, FRENCH);
    send(uk, BRITISH);
    send(uk, GERMAN);
    assert_eq!(wait_records(fr, 1)[0]["number"], FRENCH);
    assert_eq!(wait_records(uk, 1)[0]["number"], BRITISH);
    assert_eq!(wait_records(de, 1)[0]["number"], GERMAN);
    let uk_queue = uk.wait_all(&["forwarded", "delivered"]);
    let states: Vec<&str> = uk_queue.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["forwarded", "delivered", "forwarded"]);
    fr.wait_state(1, "delivered");
    let told = story(fr, 1);
    assert!(
        told.contains("forwarded: request uk/") && told.contains("/1, through uk"),
        "{told}"
    );
    // Nothing sent twice, nothing sent elsewhere.
    for (gateway, count) in [(uk, 1), (fr, 1), (de, 1)] {
        assert_eq!(gateway.records("sim0").len(), count);
    }
    let routed = story(uk, 1);
    assert!(routed.contains("routed to fr (cost 0.0200"), "{routed}");
    // What uk publishes, and what it counts.
    let status: Value = serde_json::from_str(&cluster.gateways[0].http_get("/status")).unwrap();
    assert_eq!(status["name"], "uk");
    assert_eq!(status["modems"][0]["state"], "ready");
    assert_eq!(status["modems"][0]["tariff"]["+44"], 0.02);
    assert_eq!(status["modems"][0]["parts_sent"], 1);
    let metrics = cluster.gateways[0].http_get("/metrics");
    for line in [
        "smsgw_requests{state=\"forwarded\"} 2",
        "smsgw_requests{state=\"delivered\"} 1",
        "smsgw_smtp_mails_total 3",
        "smsgw_forward_attempts_total{result=\"accepted\"} 2",
        "smsgw_modem_parts_sent_total{modem=\"sim0\"} 1",
        "smsgw_peer_up{peer=\"fr\"} 1",
        "# TYPE smsgw_requests gauge",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} not in:\n{metrics}");
    }
}

#[test]
fn the_dsn_of_a_forwarded_request_comes_from_the_instance_that_sent_it() {
    let sink = Sink::start(None);
    let mut nodes = uk_fr_de();
    nodes.truncate(2);
    for node in &mut nodes {
        node.sections = format!("[dsn]\nsmart_host = \"{}\"\ntls = \"none\"\n", sink.address);
    }
    let cluster = Cluster::start(nodes);
    let mut client = cluster.gateways[0].client();
    client.command("EHLO test.example", 250);
    client.command("MAIL FROM:<alice@example.com> RET=HDRS ENVID=E-77", 250);
    client.command(
        &format!("RCPT TO:<\"Paul@{FRENCH}\"@sms> NOTIFY=SUCCESS ORCPT=rfc822;paul@example.com"),
        250,
    );
    client.command("DATA", 354);
    client.send("Subject: dinner\r\n\r\nat 8\r\n.\r\n");
    client.expect(250);
    let mails = sink.wait_for(1);
    cluster.gateways[1].wait_for_log("DSN delivered");
    assert_eq!(sink.mails().len(), 1, "one DSN, from fr only");
    // A DSN is owed in the same transaction as the state it reports: uk owes none.
    assert!(cluster.gateways[0].store().dsns(1).is_empty());
    assert_eq!(mails[0].rcpt_to, ["<alice@example.com>"]);
    let dsn = parse(&mails[0]);
    assert_eq!(dsn.recipient_fields["Action"], "delivered");
    assert_eq!(dsn.recipient_fields["Original-Recipient"], "rfc822; paul@example.com");
    assert_eq!(dsn.message_fields["Original-Envelope-Id"], "E-77");
    assert!(dsn.human.contains("smsgw instance \"fr\""), "{}", dsn.human);
    assert_eq!(dsn.returned_type, "text/rfc822-headers");
    assert!(
        !dsn.returned.contains("X-Smsgw"),
        "internal headers stay inside the cluster"
    );
}

#[test]
fn a_dead_peer_is_routed_around_until_it_comes_back() {
    let mut cluster = Cluster::start(uk_fr_de());
    cluster.gateways[1].kill();
    let uk = &cluster.gateways[0];
    uk.wait_for_log("peer down peer=fr");
    send(uk, FRENCH);
    assert_eq!(wait_records(&cluster.gateways[2], 1)[0]["number"], FRENCH);
    uk.wait_state(1, "forwarded");
    cluster.gateways[1].restart();
    let uk = &cluster.gateways[0];
    uk.wait_for_logs("peer up peer=fr", 2);
    send(uk, FRENCH);
    assert_eq!(wait_records(&cluster.gateways[1], 1).len(), 1);
    assert_eq!(cluster.gateways[2].records("sim0").len(), 1, "de sent only the first");
}

#[test]
fn requests_on_their_way_to_a_peer_that_died_fail_over_to_the_next_cheapest() {
    // uk, started last, polls once a minute: it still believes fr is up when fr is gone.
    let mut nodes = uk_fr_de();
    nodes.rotate_left(1);
    nodes[2].poll_secs = 60;
    let mut cluster = Cluster::start(nodes);
    cluster.gateways[0].kill();
    let uk = &cluster.gateways[2];
    send(uk, FRENCH);
    assert_eq!(wait_records(&cluster.gateways[1], 1)[0]["number"], FRENCH);
    uk.wait_state(1, "forwarded");
    let told = story(uk, 1);
    assert!(
        told.contains("routed to fr") && told.contains("fr failed it") && told.contains("routed to de"),
        "{told}"
    );
    assert!(uk.records("sim0").is_empty());
}

#[test]
fn a_long_queue_sends_new_requests_elsewhere_as_the_formula_says() {
    let mut nodes = uk_fr_de();
    // The same everywhere, as a cluster's routing settings should be: else de, with a
    // cheaper view of fr's queue, would pass the request on to fr.
    for node in &mut nodes {
        node.routing = "workload_cost = 0.01";
    }
    // fr's modem takes 5 s a part: what is sent to it waits.
    nodes[1].latency_ms = 5000;
    let cluster = Cluster::start(nodes);
    // At uk, fr costs 0.01 + 0.01 + waiting × 0.01; de 0.04 + 0.01 = 0.05.
    for _ in 0..6 {
        send(&cluster.gateways[1], FRENCH);
    }
    let plan = eventually(Duration::from_secs(30), || {
        let plan = cluster.explain(0, FRENCH);
        if plan["ranked"][0]["name"] == "de" {
            Ok(plan)
        } else {
            Err(format!("fr's queue never outweighed: {plan:#}"))
        }
    });
    let cost = |name: &str, what: &str| {
        let candidate = plan["ranked"].as_array().unwrap().iter().find(|c| c["name"] == name);
        candidate.unwrap()[what].as_f64().unwrap()
    };
    // From 3 waiting on, fr costs as much as de or more (ties go to the first name).
    const ROUNDING: f64 = 1e-9;
    assert!(cost("fr", "workload") >= 0.03 - ROUNDING, "{plan:#}");
    assert!(cost("fr", "total") >= cost("de", "total") - ROUNDING, "{plan:#}");
    send(&cluster.gateways[0], FRENCH);
    assert_eq!(wait_records(&cluster.gateways[2], 1)[0]["number"], FRENCH);
}

/// A status saying `name` sends French numbers for almost nothing.
fn cheap_status(name: &str) -> String {
    serde_json::json!({
        "name": name, "version": "0", "time": "", "queued": 0, "sending": 0,
        "modems": [{ "name": "sim0", "state": "ready", "signal": null, "per_minute": 0,
                     "tariff": { "+33": 0.001 }, "parts_sent": 0, "send_errors": 0 }]
    })
    .to_string()
}

#[test]
fn two_instances_that_each_think_the_other_cheaper_send_once_and_do_not_loop() {
    let users = TempDir::new();
    let (a_smtp, b_smtp) = (unused_address(), unused_address());
    let mut gateways = Vec::new();
    for (name, other, other_smtp, own_smtp) in [("a", "b", b_smtp, a_smtp), ("b", "a", a_smtp, b_smtp)] {
        let users_file = users.0.join(format!("{name}.toml"));
        add_user(&users_file, other, &format!("password-{other}"));
        // Each one's view of the other is a status that lies: very cheap.
        let status = static_status(cheap_status(other));
        let config = format!(
            "[smtp]\nlisten = [\"{own_smtp}\"]\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[routing]\npoll_secs = 1\n\n\
             [security]\nusers_file = {users_file:?}\n\n\
             [[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {{ \"+33\" = 0.05 }}\n\
             sim = {{ latency_ms = 0, report_delay_ms = 20 }}\n\n\
             [[peer]]\nname = \"{other}\"\nsmtp = \"{other_smtp}\"\nstatus_url = \"http://{status}/status\"\n\
             user = \"{name}\"\npassword = \"password-{name}\"\ntls = \"none\"\n"
        );
        let gateway = Gateway::start_as(name, &config);
        gateway.wait_for_log(&format!("peer up peer={other}"));
        gateways.push(gateway);
    }
    let [a, b] = &gateways[..] else { unreachable!() };
    send(a, FRENCH);
    a.wait_state(1, "forwarded");
    b.wait_state(1, "delivered");
    let told = story(b, 1);
    assert!(told.contains("routed to this instance's modems"), "{told}");
    assert_eq!(b.records("sim0").len(), 1);
    assert!(a.records("sim0").is_empty());
    assert_eq!(b.queue().len(), 1, "b did not send it back to a");
}

#[test]
fn a_peer_keeps_one_copy_of_a_request_forwarded_twice_and_believes_only_peers() {
    let users = TempDir::new();
    let users_file = users.0.join("fr.toml");
    add_user(&users_file, "uk", "password-uk");
    let fr = Gateway::start_as(
        "fr",
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[security]\nusers_file = {users_file:?}\n\n\
             [[peer]]\nname = \"uk\"\nsmtp = \"{}\"\nstatus_url = \"http://{}/status\"\n\
             user = \"fr\"\npassword = \"password-fr\"\n",
            unused_address(),
            unused_address()
        ),
    );
    let forwarded = |client: &mut Client| {
        client.command("MAIL FROM:<alice@example.com>", 250);
        client.command(&format!("RCPT TO:<{FRENCH}@sms>"), 250);
        client.command("DATA", 354);
        client.send("X-Smsgw-Request: uk/41\r\nX-Smsgw-Trace: uk\r\nSubject: twice\r\n\r\nonce\r\n.\r\n");
        client.expect(250);
    };
    let mut peer = fr.client();
    peer.command("EHLO uk.example", 250);
    assert_eq!(peer.auth_plain("uk", "password-uk").code, 235);
    forwarded(&mut peer);
    forwarded(&mut peer);
    assert_eq!(fr.queue().len(), 1, "the retried forward is the same request");
    assert!(story(&fr, 1).contains("forwarded: request uk/41, through uk"));
    // From anyone else the same headers mean nothing.
    let mut stranger = fr.client();
    stranger.command("EHLO mta.example", 250);
    forwarded(&mut stranger);
    assert_eq!(fr.queue().len(), 2);
    assert!(!story(&fr, 2).contains("forwarded"));
}

#[test]
fn forwarding_verifies_the_peer_certificate() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let users = TempDir::new();
    let users_file = users.0.join("fr.toml");
    add_user(&users_file, "uk", "password-uk");
    let (fr_smtp, fr_http) = (unused_address(), unused_address());
    // fr listens beyond loopback: AUTH there needs TLS.
    let fr = Gateway::start_as(
        "fr",
        &format!(
            "[smtp]\nlisten = [\"0.0.0.0:{}\"]\n\n[http]\nlisten = \"{fr_http}\"\n\n\
             [security]\nusers_file = {users_file:?}\ntls_cert = {:?}\ntls_key = {:?}\n\n\
             [[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {{ \"+33\" = 0.01 }}\n\
             sim = {{ latency_ms = 0, report_delay_ms = 20 }}\n\n\
             [[peer]]\nname = \"uk\"\nsmtp = \"{}\"\nstatus_url = \"http://{}/status\"\n\
             user = \"fr\"\npassword = \"password-fr\"\n",
            fr_smtp.port(),
            pki.cert(),
            pki.key(),
            unused_address(),
            unused_address()
        ),
    );
    fr.wait_for_log("ready modem=sim0");
    let uk = |ca: &Path| {
        Gateway::start_as(
            "uk",
            &format!(
                "[http]\nlisten = \"127.0.0.1:0\"\n\n[routing]\npoll_secs = 1\nretry_delays_secs = [1]\n\n\
                 [[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {{ \"+\" = 0.10 }}\n\
                 sim = {{ latency_ms = 0, report_delay_ms = 20 }}\n\n\
                 [[peer]]\nname = \"fr\"\nsmtp = \"localhost:{}\"\nstatus_url = \"http://{fr_http}/status\"\n\
                 user = \"uk\"\npassword = \"password-uk\"\ntls = \"verify\"\ntls_ca_file = {ca:?}\n",
                fr_smtp.port()
            ),
        )
    };
    let trusting = uk(&pki.ca());
    trusting.wait_for_log("peer up peer=fr");
    send(&trusting, FRENCH);
    trusting.wait_state(1, "forwarded");
    assert_eq!(wait_records(&fr, 1).len(), 1);
    drop(trusting);
    // A certificate from a CA uk does not know: not forwarded; uk sends it itself.
    let doubting = uk(&stranger.ca());
    doubting.wait_for_log("peer up peer=fr");
    send(&doubting, FRENCH);
    let line = doubting.wait_for_log("forward failed");
    assert!(line.contains("certificate"), "{line}");
    assert_eq!(wait_records(&doubting, 1).len(), 1);
    assert!(story(&doubting, 1).contains("fr failed it"));
    assert_eq!(fr.records("sim0").len(), 1);
}

#[test]
fn an_instance_killed_while_forwarding_loses_nothing_and_its_peer_sends_nothing_twice() {
    let mut nodes = uk_fr_de();
    nodes.truncate(2);
    let mut cluster = Cluster::start(nodes);
    let numbers: Vec<String> = (0..40).map(|i| format!("+33612{:06}@sms", 345_600 + i)).collect();
    let recipients: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let reply = cluster.gateways[0]
        .client()
        .mail(&recipients, &message("many", "at once"));
    assert_eq!(reply.code, 250);
    // Kill uk once the first forward is through and the others are on their way.
    cluster.gateways[0].wait_for_log("forwarded");
    cluster.gateways[0].kill();
    cluster.gateways[0].restart();
    let uk = &cluster.gateways[0];
    let states = uk.wait_all(&["forwarded"]);
    assert_eq!(states.len(), 40);
    let fr = &cluster.gateways[1];
    fr.wait_all(&["delivered"]);
    assert_eq!(
        fr.queue().len(),
        40,
        "a forward repeated after the crash is one request at fr"
    );
    let mut sent: Vec<String> = wait_records(fr, 40)
        .iter()
        .map(|r| r["number"].as_str().unwrap().to_string())
        .collect();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), 40, "every number once");
    assert_eq!(fr.records("sim0").len(), 40, "nothing sent twice");
}

#[test]
fn a_number_no_instance_has_a_tariff_for_is_refused_at_rcpt_saying_why() {
    let mut nodes = uk_fr_de();
    nodes.truncate(2);
    nodes[0].tariff = "{ \"+44\" = 0.02 }";
    nodes[1].tariff = "{ \"+33\" = 0.01 }";
    let cluster = Cluster::start(nodes);
    let uk = &cluster.gateways[0];
    let mut client = uk.client();
    client.command("EHLO mta.example", 250);
    client.command("MAIL FROM:<sender@example.com>", 250);
    let refused = client.command(&format!("RCPT TO:<{GERMAN}@sms>"), 550);
    let text = refused.text();
    assert!(
        text.contains("5.4.4") && text.contains(GERMAN) && text.contains("uk") && text.contains("fr"),
        "{text}"
    );
    client.command("QUIT", 221);
    assert!(uk.queue().is_empty());
}

#[test]
fn a_request_a_peer_refused_fails_saying_why_and_the_operator_s_retry_routes_it_afresh() {
    let mut nodes = uk_fr_de();
    nodes.truncate(2);
    nodes[0].tariff = "{ \"+44\" = 0.02 }";
    nodes[1].tariff = "{ \"+33\" = 0.01 }";
    // fr's tariff covers the number, so uk accepts it; fr's own policy refuses it.
    nodes[1].security = "deny_prefixes = [\"+3347\"]";
    let cluster = Cluster::start(nodes);
    let uk = &cluster.gateways[0];
    send(uk, FRENCH);
    let detail = uk.wait_state(1, "failed");
    assert_eq!(detail["status"], "5.4.4");
    let reason = detail["reason"].as_str().unwrap();
    assert!(
        reason.contains("uk: no tariff for this number") && reason.contains("fr"),
        "{reason}"
    );
    // Retried by the operator, it is routed afresh: fr is tried again (and refuses again).
    assert!(uk.cli_ok(&["queue", "retry", "1"]).contains("queued again"));
    let again = uk.wait_state(1, "failed");
    let story = event_details(&again);
    assert!(story.contains("retried by the operator"), "{story}");
    assert_eq!(story.matches("fr refused it").count(), 2, "{story}");
}

#[test]
fn a_peer_is_exempt_from_the_abuse_limits_that_hold_for_everyone_else() {
    let mut nodes = uk_fr_de();
    nodes.truncate(2);
    // fr counts requests as a production instance would: 60 a minute per sender, and
    // (so that a client on its trusted loopback is counted at all) per envelope sender.
    nodes[1].production_limits = true;
    nodes[1].security = "per_sender = true";
    let cluster = Cluster::start(nodes);
    let [uk, fr] = &cluster.gateways[..] else {
        unreachable!()
    };
    let numbers: Vec<String> = (0..70).map(|i| format!("+33612{:06}@sms", 100_000 + i)).collect();
    let recipients: Vec<&str> = numbers.iter().map(String::as_str).collect();
    assert_eq!(uk.client().mail(&recipients, &message("many", "through uk")).code, 250);
    // All 70 went to fr as uk (a peer), none was refused there and sent back.
    let forwarded = uk.wait_all(&["forwarded"]);
    assert_eq!(forwarded.len(), 70);
    assert_eq!(fr.queue().len(), 70);
    assert!(uk.records("sim0").is_empty());
    assert!(fr.log_lines("requests in a minute").is_empty());
    // The same 70 straight to fr from a client that is no peer: the 61st is refused.
    let mut client = fr.client();
    client.command("EHLO mta.example", 250);
    client.command("MAIL FROM:<sender@example.com>", 250);
    for recipient in &recipients[..60] {
        client.command(&format!("RCPT TO:<{recipient}>"), 250);
    }
    let refused = client.command(&format!("RCPT TO:<{}>", recipients[60]), 450);
    assert_eq!(
        refused.text(),
        "4.7.1 <sender@example.com>: more than 60 requests in a minute, try again later"
    );
}

/// uk, fr and de for the lost-answer faults: from uk, fr is cheapest for French numbers
/// (0.02 + 0.01) and de next (0.025 + 0.01); de sends them itself rather than through fr.
fn lost_answer_nodes() -> Vec<Node> {
    vec![
        node("uk", "{ \"+\" = 0.10, \"+44\" = 0.02 }"),
        node("fr", "{ \"+33\" = 0.02 }"),
        node("de", "{ \"+49\" = 0.01, \"+33\" = 0.025 }"),
    ]
}

/// Starts `nodes` with uk reaching fr's SMTP listener and fr's status through links the
/// test cuts: when the SMTP link cuts a connection, fr's status stops answering uk too.
fn with_links_from_uk_to_fr(nodes: Vec<Node>) -> (Cluster, Link, Link) {
    let (mut smtp, mut status) = (None, None);
    let cluster = Cluster::start_via(nodes, |from, to, which, address| {
        if (from, to) != ("uk", "fr") {
            return address;
        }
        let link = Link::start(address);
        let through = link.address;
        match which {
            Listener::Smtp => smtp = Some(link),
            Listener::Http => status = Some(link),
        }
        through
    });
    let (smtp, status) = (smtp.expect("uk reaches fr"), status.expect("uk polls fr"));
    smtp.cuts_with(&status);
    (cluster, smtp, status)
}

/// Mails `number` to `gateway`, asking for a DSN of success and of failure.
fn send_noting_all(gateway: &Gateway, number: &str) {
    let mut client = gateway.client();
    client.command("EHLO test.example", 250);
    client.command("MAIL FROM:<alice@example.com>", 250);
    client.command(&format!("RCPT TO:<{number}@sms> NOTIFY=SUCCESS,FAILURE"), 250);
    client.command("DATA", 354);
    client.send("Subject: once\r\n\r\nonly once\r\n.\r\n");
    client.expect(250);
}

/// Request 1 waits on uk for fr, which may hold it, and says so; de never saw it.
/// Returns what `queue show` gives.
fn waits_for_fr(uk: &Gateway, de: &Gateway) -> Value {
    let waiting = uk.show(1);
    assert_eq!(waiting["state"], "forwarding", "{}", event_details(&waiting));
    let reason = waiting["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("fr may hold it"), "{reason}");
    let shown = uk.cli_ok(&["queue", "show", "1"]);
    assert!(shown.contains("waiting: fr may hold it"), "{shown}");
    assert!(de.queue().is_empty(), "never handed to de");
    waiting
}

/// Once fr answers again, request 1 ends `forwarded` on uk, and fr alone sends it, once.
fn sent_once_by_fr(uk: &Gateway, fr: &Gateway, de: &Gateway) {
    uk.wait_state(1, "forwarded");
    fr.wait_state(1, "delivered");
    assert_eq!(fr.queue().len(), 1, "the retried forward is the request fr holds");
    assert_eq!(fr.records("sim0").len(), 1, "sent once");
    assert!(de.records("sim0").is_empty() && de.queue().is_empty());
}

/// Waits until `gateway` has failed to forward request `id` `more` times beyond what
/// it logged so far, or has moved the request on (to some other instance).
fn wait_more_failed_forwards(gateway: &Gateway, id: i64, more: usize) {
    let before = gateway.log_lines("forward failed").len();
    eventually(Duration::from_secs(30), || {
        let failed = gateway.log_lines("forward failed").len() - before;
        let state = gateway.show(id)["state"].clone();
        if failed >= more || state != "forwarding" {
            Ok(())
        } else {
            Err(format!("{failed} of {more} more failed forwards, request {id} {state}"))
        }
    });
}

#[test]
fn a_forward_whose_answer_is_lost_is_sent_once_by_the_peer_that_holds_it_and_told_once() {
    let sink = Sink::start(None);
    let mut nodes = lost_answer_nodes();
    for node in &mut nodes {
        node.sections = format!("[dsn]\nsmart_host = \"{}\"\ntls = \"none\"\n", sink.address);
    }
    let (cluster, smtp, _status) = with_links_from_uk_to_fr(nodes);
    let [uk, fr, de] = &cluster.gateways[..] else {
        unreachable!()
    };
    smtp.set(Mode::CutAfterEndOfData);
    send_noting_all(uk, FRENCH);
    // fr committed it before its lost 250, and sends it.
    assert_eq!(wait_records(fr, 1)[0]["number"], FRENCH);
    uk.wait_for_log("peer down peer=fr");
    // fr is down and out of reach: before, uk routed the request again, to de.
    wait_more_failed_forwards(uk, 1, 2);
    waits_for_fr(uk, de);
    let metrics = uk.http_get("/metrics");
    let attempts = |result: &str| -> u64 {
        let prefix = format!("smsgw_forward_attempts_total{{result=\"{result}\"}} ");
        let line = metrics.lines().find_map(|l| l.strip_prefix(&prefix));
        line.unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    assert!(attempts("unanswered") >= 1, "{metrics}");
    assert_eq!(attempts("failed_over"), 0, "{metrics}");
    // The link is back (fr's status still is not): the retry is fr's one request.
    smtp.set(Mode::Open);
    sent_once_by_fr(uk, fr, de);
    // One story for the sender: fr's `delivered`, nothing from uk.
    let mails = sink.wait_for(1);
    fr.wait_for_log("DSN delivered");
    assert!(uk.store().dsns(1).is_empty(), "uk owes no DSN");
    assert_eq!(sink.mails().len(), 1, "one DSN");
    let dsn = parse(&mails[0]);
    assert_eq!(dsn.recipient_fields["Action"], "delivered");
    assert!(dsn.human.contains("smsgw instance \"fr\""), "{}", dsn.human);
}

#[test]
fn a_forward_cut_before_the_end_of_data_fails_over_and_is_sent_once() {
    let (cluster, smtp, _status) = with_links_from_uk_to_fr(lost_answer_nodes());
    let [uk, fr, de] = &cluster.gateways[..] else {
        unreachable!()
    };
    smtp.set(Mode::CutBeforeEndOfData);
    send(uk, FRENCH);
    assert_eq!(wait_records(de, 1)[0]["number"], FRENCH);
    uk.wait_state(1, "forwarded");
    let told = story(uk, 1);
    assert!(
        told.contains("routed to fr") && told.contains("fr failed it") && told.contains("routed to de"),
        "{told}"
    );
    assert!(fr.queue().is_empty(), "fr never had the whole mail");
    assert!(fr.records("sim0").is_empty() && uk.records("sim0").is_empty());
    assert_eq!(de.records("sim0").len(), 1, "sent once");
}

#[test]
fn an_operator_may_release_a_forward_whose_answer_was_lost_to_routing() {
    let mut nodes = lost_answer_nodes();
    nodes.truncate(2);
    let (cluster, smtp, _status) = with_links_from_uk_to_fr(nodes);
    let [uk, fr] = &cluster.gateways[..] else {
        unreachable!()
    };
    smtp.set(Mode::CutAfterEndOfData);
    send(uk, FRENCH);
    wait_records(fr, 1);
    uk.wait_for_log("peer down peer=fr");
    wait_more_failed_forwards(uk, 1, 1);
    assert_eq!(uk.show(1)["state"], "forwarding", "{}", story(uk, 1));
    // On purpose: fr is out of reach, so uk's own modem sends it, a second time.
    let said = uk.cli_ok(&["queue", "retry", "1"]);
    assert!(said.contains("released to routing"), "{said}");
    assert_eq!(wait_records(uk, 1)[0]["number"], FRENCH);
    uk.wait_state(1, "delivered");
    let told = story(uk, 1);
    assert!(
        told.contains("retried by the operator") && told.contains("routed to this instance's modems"),
        "{told}"
    );
}

#[test]
fn a_forward_cut_off_by_a_crash_after_its_end_of_data_waits_for_the_peer_that_may_hold_it() {
    let (mut cluster, smtp, _status) = with_links_from_uk_to_fr(lost_answer_nodes());
    smtp.set(Mode::HoldAfterEndOfData);
    send(&cluster.gateways[0], FRENCH);
    // fr commits it; its 250 is held, and uk dies waiting for it.
    eventually(Duration::from_secs(30), || match cluster.gateways[1].queue().len() {
        1 => Ok(()),
        n => Err(format!("fr holds {n} requests")),
    });
    assert_eq!(cluster.gateways[0].show(1)["state"], "forwarding");
    cluster.gateways[0].crash_and_restart();
    let [uk, fr, de] = &cluster.gateways[..] else {
        unreachable!()
    };
    assert_eq!(wait_records(fr, 1)[0]["number"], FRENCH);
    // fr's status does not answer after the restart (never polled up, so never logged
    // down): before, uk routed it to de.
    wait_more_failed_forwards(uk, 1, 3);
    let waiting = waits_for_fr(uk, de);
    let told = event_details(&waiting);
    assert!(told.contains("the gateway stopped during a forward to fr"), "{told}");
    // The link is back: the retry is the request fr holds.
    smtp.set(Mode::Open);
    sent_once_by_fr(uk, fr, de);
}

/// A peer that is a site of several instances: uk lists fr's SMTP addresses, a dead one
/// first; the forward goes to the live one, and fr sends it.
#[test]
fn a_forward_to_a_site_goes_to_its_first_smtp_address_that_answers() {
    let users = TempDir::new();
    let users_file = users.0.join("fr.toml");
    add_user(&users_file, "uk", "password-uk");
    let (fr_smtp, fr_http) = (unused_address(), unused_address());
    let fr = Gateway::start_as(
        "fr",
        &format!(
            "[smtp]\nlisten = [\"{fr_smtp}\"]\n\n[http]\nlisten = \"{fr_http}\"\n\n\
             [security]\nusers_file = {users_file:?}\n\n\
             [[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {{ \"+33\" = 0.01 }}\n\
             sim = {{ latency_ms = 0, report_delay_ms = 20 }}\n\n\
             [[peer]]\nname = \"uk\"\nsmtp = \"{}\"\nstatus_url = \"http://{}/status\"\n\
             user = \"fr\"\npassword = \"password-fr\"\ntls = \"none\"\n",
            unused_address(),
            unused_address()
        ),
    );
    fr.wait_for_log("ready modem=sim0");
    let dead = unused_address();
    let uk = Gateway::start_as(
        "uk",
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[routing]\npoll_secs = 1\nretry_delays_secs = [1]\n\n\
             [[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {{ \"+\" = 0.10 }}\n\
             sim = {{ latency_ms = 0, report_delay_ms = 20 }}\n\n\
             [[peer]]\nname = \"fr\"\nsmtp = [\"{dead}\", \"{fr_smtp}\"]\nstatus_url = \"http://{fr_http}/status\"\n\
             user = \"uk\"\npassword = \"password-uk\"\ntls = \"none\"\n"
        ),
    );
    uk.wait_for_log("peer up peer=fr");
    send(&uk, FRENCH);
    uk.wait_state(1, "forwarded");
    assert_eq!(wait_records(&fr, 1)[0]["number"], FRENCH);
    fr.wait_state(1, "delivered");
    let skipped = uk.wait_for_log("trying the next server");
    assert!(skipped.contains(&dead.to_string()), "{skipped}");
    assert!(
        uk.log_lines("forward failed").is_empty(),
        "the live address took it at once"
    );
    assert!(story(&uk, 1).contains("routed to fr"), "{}", story(&uk, 1));
    assert!(uk.records("sim0").is_empty());
}

/// A site's status URLs, a dead one first: the next one answers, for the site, naming
/// one of its instances (fr-b): the peer fr is up and routed to. A peer with one URL
/// whose status names another instance is still down.
#[test]
fn a_site_is_up_when_any_of_its_status_urls_answers() {
    let dead = unused_address();
    let fr_b = static_status(cheap_status("fr-b"));
    let other = static_status(cheap_status("fr-b"));
    // A port of its own, not 0: `route explain` finds the endpoint in the config.
    let uk = Gateway::start_as(
        "uk",
        &format!(
            "[http]\nlisten = \"{}\"\n\n[routing]\npoll_secs = 1\n\n\
             [[peer]]\nname = \"fr\"\nsmtp = \"{}\"\n\
             status_url = [\"http://{dead}/status\", \"http://{fr_b}/status\"]\n\
             user = \"uk\"\npassword = \"password-uk\"\ntls = \"none\"\n\n\
             [[peer]]\nname = \"de\"\nsmtp = \"{}\"\nstatus_url = \"http://{other}/status\"\n\
             user = \"uk\"\npassword = \"password-uk\"\ntls = \"none\"\n",
            unused_address(),
            unused_address(),
            unused_address()
        ),
    );
    uk.wait_for_log("peer up peer=fr");
    eventually(Duration::from_secs(10), || {
        let metrics = uk.http_get("/metrics");
        let up = ["smsgw_peer_up{peer=\"fr\"} 1", "smsgw_peer_up{peer=\"de\"} 0"];
        up.iter()
            .all(|line| metrics.lines().any(|l| l == *line))
            .then_some(())
            .ok_or(metrics)
    });
    let plan: Value = serde_json::from_str(&uk.cli_ok(&["route", "explain", FRENCH, "--json"])).unwrap();
    assert_eq!(plan["ranked"][0]["name"], "fr", "{plan:#}");
    let down = uk.wait_for_log("peer not up at the first poll peer=de");
    assert!(down.contains("its status names it") && down.contains("fr-b"), "{down}");
}

/// A STOP texted to one instance's modem is honoured by its peer within a status poll
/// (the peer reads `/optouts` beside `/status`), and START lifts it there too.
#[test]
fn an_opt_out_received_by_one_instance_is_refused_at_its_peer_within_a_poll() {
    let mut nodes = uk_fr_de();
    nodes.truncate(2);
    let cluster = Cluster::start(nodes);
    let [uk, fr] = &cluster.gateways[..] else {
        unreachable!()
    };
    let number = "+33612345678";
    let rcpt = |gateway: &Gateway| {
        let mut client = gateway.client();
        client.command("EHLO mta.example", 250);
        client.command("MAIL FROM:<sender@example.com>", 250);
        client.send(&format!("RCPT TO:<{number}@sms>\r\n"));
        client.reply().expect("an answer to RCPT")
    };
    assert_eq!(rcpt(uk).code, 250);
    let said = fr.cli_ok(&["modem", "inject", "sim0", "--from", number, "--text", "STOP"]);
    assert!(said.contains("received an SMS"), "{said}");
    let refused = eventually(Duration::from_secs(10), || match rcpt(uk) {
        reply if reply.code == 550 => Ok(reply),
        reply => Err(format!("uk still accepts: {reply:?}")),
    });
    assert_eq!(
        refused.text(),
        format!("5.7.1 {number}: the recipient has opted out of SMS from this gateway")
    );
    let listed = uk.cli_ok(&["optout", "list"]);
    assert!(listed.contains("(from peer fr)"), "{listed}");
    fr.cli_ok(&["modem", "inject", "sim0", "--from", number, "--text", "start"]);
    eventually(Duration::from_secs(10), || match rcpt(uk) {
        reply if reply.code == 250 => Ok(()),
        reply => Err(format!("uk still refuses: {reply:?}")),
    });
}
