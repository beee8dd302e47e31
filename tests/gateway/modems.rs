//! SMTP in, simulated modems out, through the real serial code on real PTYs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use smsgw::sms::{self, Body, Encoding, Pdu, Reassembler};

use crate::support::gateway::Gateway;
use crate::support::smtp::message;
use crate::support::wait::eventually;

/// A `[[modem]]` on the simulator; `extra` adds keys (and `sim` faults) to it.
fn sim_modem(name: &str, extra: &str) -> String {
    format!("[[modem]]\nname = \"{name}\"\nport = \"sim\"\n{extra}\n")
}

const FAST: &str = "sim = { latency_ms = 0, report_delay_ms = 50 }";

#[test]
fn an_accepted_mail_is_sent_by_the_modem_and_delivered() {
    let gateway = Gateway::start(&sim_modem("sim0", FAST));
    let reply = gateway
        .client()
        .mail(&["+33477858589@sms"], &message("Server down", "web1 since 03:12 €"));
    assert_eq!(reply.code, 250);
    let detail = gateway.wait_state(1, "delivered");
    let states: Vec<_> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["received", "queued", "sending", "sent", "delivered"]);
    let records = gateway.records("sim0");
    assert_eq!(records.len(), 1);
    let Pdu::Submit(submit) = sms::decode(records[0]["pdu"].as_str().unwrap()).unwrap() else {
        panic!("not a submit")
    };
    assert_eq!(submit.destination.number, "+33477858589");
    assert_eq!(submit.body.as_str(), "Server down\nweb1 since 03:12 €");
    assert!(submit.status_report, "a status report must be requested");
}

#[test]
fn a_long_unicode_text_arrives_as_concatenated_parts() {
    let gateway = Gateway::start(&sim_modem("sim0", FAST));
    let body = "Привет, это длинное сообщение 🙂 ".repeat(8);
    let reply = gateway.client().mail(
        &["+33477858589@sms"],
        &format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"),
    );
    assert_eq!(reply.code, 250);
    let detail = gateway.wait_state(1, "delivered");
    let parts = detail["parts"].as_u64().unwrap() as usize;
    assert!(parts >= 4, "{parts} parts");
    let records = gateway.records("sim0");
    assert_eq!(records.len(), parts);
    // Reassembled from the PDUs the modem received, in reverse order: the text comes back.
    let mut reassembler = Reassembler::new(4, 3600);
    let mut whole = None;
    let mut references = BTreeSet::new();
    for record in records.iter().rev() {
        let Pdu::Submit(submit) = sms::decode(record["pdu"].as_str().unwrap()).unwrap() else {
            panic!()
        };
        let concat = submit
            .udh
            .as_ref()
            .and_then(|u| u.concat)
            .expect("concatenation header");
        references.insert(concat.reference);
        assert!(
            matches!(
                submit.body,
                Body::Text {
                    encoding: Encoding::Ucs2,
                    ..
                }
            ),
            "{:?}",
            submit.body
        );
        whole = whole.or(reassembler.push_part("+33477858589", Some(concat), submit.body.as_str(), 0));
    }
    assert_eq!(references.len(), 1, "one reference for all parts");
    assert_eq!(whole.expect("all parts").text, body.trim_end());
}

#[test]
fn three_modems_send_hundreds_of_requests_once_each() {
    let config = ["sim0", "sim1", "sim2"]
        .map(|name| sim_modem(name, "sim = { latency_ms = 2, report_delay_ms = 10 }"))
        .concat();
    let gateway = Gateway::start(&config);
    let numbers: Vec<String> = (0..300).map(|i| format!("+336120{i:05}")).collect();
    for chunk in numbers.chunks(100) {
        let recipients: Vec<String> = chunk.iter().map(|n| format!("{n}@sms")).collect();
        let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
        assert_eq!(
            gateway.client().mail(&recipients, &message("load", "one of many")).code,
            250
        );
    }
    gateway.wait_all(&["delivered"]);
    let mut sent: BTreeMap<String, usize> = BTreeMap::new();
    for name in ["sim0", "sim1", "sim2"] {
        let records = gateway.records(name);
        assert!(records.len() >= 30, "{name} sent only {} of 300", records.len());
        for record in records {
            *sent.entry(record["number"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    assert_eq!(sent.len(), 300);
    assert!(sent.values().all(|&count| count == 1), "some number got two SMS");
}

#[test]
fn a_modem_never_exceeds_its_rate_limit() {
    // sim0 sends the French numbers, within its limit. sim1 sends only British ones, and
    // answers MARKER with a temporary error: its retries (one a second) tell the time.
    const MARKER: &str = "+447911123456";
    let gateway = Gateway::start(&format!(
        "[sms]\nretry_delays_secs = [1]\n\n{}{}",
        sim_modem(
            "sim0",
            &format!("per_minute = 5\ntariff = {{ \"+33\" = 0.01 }}\n{FAST}")
        ),
        sim_modem(
            "sim1",
            &format!(
                "tariff = {{ \"+44\" = 0.01 }}\n\
                 sim = {{ latency_ms = 0, report_delay_ms = 50, cms_error = {{ \"{MARKER}\" = 38 }} }}"
            )
        ),
    ));
    let numbers: Vec<String> = (0..8).map(|i| format!("+336120{i:05}@sms")).collect();
    let recipients: Vec<&str> = numbers.iter().map(String::as_str).collect();
    assert_eq!(
        gateway.client().mail(&recipients, &message("rate", "limited")).code,
        250
    );
    gateway.wait_records("sim0", 5);
    // The other three wait for the minute to pass: still waiting once the marker was
    // tried again twice, more than two seconds later.
    let marker = format!("{MARKER}@sms");
    assert_eq!(gateway.client().mail(&[&marker], &message("rate", "clock")).code, 250);
    eventually(Duration::from_secs(20), || {
        let detail = gateway.show(9);
        let tries = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["detail"].as_str().unwrap().contains("+CMS ERROR: 38"))
            .count();
        if tries >= 3 {
            Ok(())
        } else {
            Err(format!("the marker was tried {tries} times: {detail:#}"))
        }
    });
    assert_eq!(gateway.records("sim0").len(), 5);
    // The marker goes from queued to sending and back at each retry: both count.
    let waiting = gateway
        .queue()
        .iter()
        .filter(|r| r["state"] == "queued" || r["state"] == "sending")
        .count();
    assert_eq!(waiting, 4, "three French requests and the marker");
}

/// Sends one mail per hundred of `numbers` (E.164), each accepted with `250`.
fn mail_in_hundreds(gateway: &Gateway, numbers: &[String]) {
    for chunk in numbers.chunks(100) {
        let recipients: Vec<String> = chunk.iter().map(|n| format!("{n}@sms")).collect();
        let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
        assert_eq!(
            gateway
                .client()
                .mail(&recipients, &message("backlog", "one of many"))
                .code,
            250
        );
    }
}

/// Waits (a few seconds at most) until `modem` recorded SMS to exactly `expected`, in
/// any order.
fn wait_sent_to(gateway: &Gateway, modem: &str, expected: &[String]) {
    let expected: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    eventually(Duration::from_secs(10), || {
        let records = gateway.records(modem);
        let sent: BTreeSet<&str> = records.iter().map(|r| r["number"].as_str().unwrap()).collect();
        if sent == expected && records.len() == expected.len() {
            Ok(())
        } else {
            Err(format!("{modem} sent to {sent:?}, not {expected:?}"))
        }
    });
}

/// How many requests are in `state`.
fn count_in(gateway: &Gateway, state: &str) -> usize {
    gateway.queue().iter().filter(|r| r["state"] == state).count()
}

#[test]
fn a_request_the_modem_can_send_overtakes_hundreds_it_cannot() {
    // sim0 sends British numbers. sim1 alone sends French ones, and is busy for the
    // whole test with the first of 300 French requests accepted before the British one:
    // the 299 others wait, and must not hold up the request sim0 can take.
    let gateway = Gateway::start(&format!(
        "{}{}",
        sim_modem("sim0", &format!("tariff = {{ \"+44\" = 0.03 }}\n{FAST}")),
        sim_modem(
            "sim1",
            "tariff = { \"+33\" = 0.01 }\nsend_timeout_secs = 600\nsim = { latency_ms = 300000 }"
        ),
    ));
    gateway.wait_for_log("ready modem=sim0");
    gateway.wait_for_log("ready modem=sim1");
    let french: Vec<String> = (0..300).map(|i| format!("+336120{i:05}")).collect();
    mail_in_hundreds(&gateway, &french);
    let uk = ["+447911123456".to_string()];
    mail_in_hundreds(&gateway, &uk);
    wait_sent_to(&gateway, "sim0", &uk);
    gateway.wait_state(301, "delivered");
    assert_eq!(count_in(&gateway, "sending"), 1, "sim1 is busy with one French request");
    assert_eq!(count_in(&gateway, "queued"), 299, "the other French requests wait");
}

#[test]
fn a_rate_limited_modem_with_a_backlog_does_not_hold_up_another() {
    // sim0 sends French numbers, three a minute; sim1 British ones. The 300 French
    // requests come first, then five British ones: sim1 sends those at once.
    let gateway = Gateway::start(&format!(
        "{}{}",
        sim_modem(
            "sim0",
            &format!("per_minute = 3\ntariff = {{ \"+33\" = 0.01 }}\n{FAST}")
        ),
        sim_modem("sim1", &format!("tariff = {{ \"+44\" = 0.01 }}\n{FAST}")),
    ));
    gateway.wait_for_log("ready modem=sim0");
    gateway.wait_for_log("ready modem=sim1");
    let french: Vec<String> = (0..300).map(|i| format!("+336120{i:05}")).collect();
    mail_in_hundreds(&gateway, &french);
    let uk: Vec<String> = (0..5).map(|i| format!("+4479111{i:05}")).collect();
    mail_in_hundreds(&gateway, &uk);
    wait_sent_to(&gateway, "sim1", &uk);
    gateway.wait_records("sim0", 3);
    // One more British request: once sim1 has sent it, the dispatcher has looked at the
    // queue again since sim0's third SMS, and sim0 must still be at its limit.
    let more = ["+447911199999".to_string()];
    mail_in_hundreds(&gateway, &more);
    wait_sent_to(&gateway, "sim1", &[uk.as_slice(), more.as_slice()].concat());
    assert_eq!(gateway.records("sim0").len(), 3, "sim0 keeps to its limit");
    assert_eq!(count_in(&gateway, "queued"), 297);
}

#[test]
fn a_modem_on_a_device_path_works_like_a_real_one() {
    // A standalone simulated modem behind a symlink, as /dev/ttyUSB0 would be.
    let dir = crate::support::TempDir::new();
    let link = dir.0.join("ttyUSB0");
    let records = dir.0.join("records.jsonl");
    let mut sim = std::process::Command::new(crate::support::BIN)
        .args(["modem", "sim", "--latency-ms", "0", "--report-delay-ms", "50", "--link"])
        .arg(&link)
        .arg("--records")
        .arg(&records)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    eventually(Duration::from_secs(10), || {
        link.exists()
            .then_some(())
            .ok_or_else(|| "no link to the simulated modem".to_string())
    });
    let gateway = Gateway::start(&format!(
        "[[modem]]\nname = \"usb0\"\nport = {:?}\n",
        link.display().to_string()
    ));
    assert_eq!(
        gateway
            .client()
            .mail(&["+33477858589@sms"], &message("usb", "modem"))
            .code,
        250
    );
    gateway.wait_state(1, "delivered");
    assert!(std::fs::read_to_string(&records).unwrap().contains("+33477858589"));
    let _ = sim.kill();
    let _ = sim.wait();
}

#[test]
fn modem_probe_prints_what_the_modem_says() {
    let gateway = Gateway::start(&sim_modem("sim0", FAST));
    // For port = "sim" the probe starts a simulated modem of its own.
    let text = gateway.cli_ok(&["modem", "probe", "sim0"]);
    for expected in ["manufacturer: smsgw", "+CPIN: READY", "+CREG: 0,1", "+CSQ:", "+CSCA:"] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let unknown = gateway.cli(&["modem", "probe", "nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no modem named \"nope\" in the config (known: sim0)"));
}

#[test]
fn status_reports_kept_in_the_modem_memory_are_read_and_matched() {
    let gateway = Gateway::start(&sim_modem("sim0", &format!("status_reports = \"stored\"\n{FAST}")));
    assert_eq!(
        gateway
            .client()
            .mail(&["+33477858589@sms"], &message("stored", "report"))
            .code,
        250
    );
    let detail = gateway.wait_state(1, "delivered");
    assert_eq!(detail["sent_parts"][0]["status"], "delivered");
}

#[test]
fn incoming_sms_are_read_reassembled_and_stored() {
    let long = "An answer long enough to need two parts. ".repeat(5);
    let gateway = Gateway::start(&sim_modem(
        "sim0",
        &format!(
            "sim = {{ latency_ms = 0, report_delay_ms = 50, incoming = [\
             {{ from = \"+447700900123\", text = \"OK, on my way\" }}, {{ from = \"+33612345678\", text = \"{long}\" }}] }}"
        ),
    ));
    eventually(Duration::from_secs(10), || {
        let rows = gateway.store().inbox();
        if rows.len() >= 2 {
            Ok(rows)
        } else {
            Err(format!("the inbox has {rows:?}"))
        }
    });
    // An SMS sent and reported delivered afterwards: the modem has been read since, and
    // nothing it received was stored twice.
    assert_eq!(
        gateway
            .client()
            .mail(&["+33477858589@sms"], &message("reply", "thanks"))
            .code,
        250
    );
    gateway.wait_state(1, "delivered");
    assert_eq!(
        gateway.store().inbox(),
        [
            ("+447700900123".to_string(), "OK, on my way".to_string()),
            ("+33612345678".to_string(), long)
        ]
    );
}

#[test]
fn a_wrong_sim_pin_is_tried_once_and_the_modem_disabled() {
    // sim1 answers MARKER with a temporary error: its retries (one a second) tell the
    // time, during which a retried PIN would have been tried again.
    const MARKER: &str = "+447911123456";
    let gateway = Gateway::start(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[sms]\nretry_delays_secs = [1]\n\n{}{}",
        sim_modem(
            "sim0",
            "pin = \"0000\"\nsim = { latency_ms = 0, report_delay_ms = 50, pin = \"1234\" }"
        ),
        sim_modem(
            "sim1",
            &format!("sim = {{ latency_ms = 0, report_delay_ms = 50, cms_error = {{ \"{MARKER}\" = 38 }} }}")
        ),
    ));
    gateway.wait_for_log("ready modem=sim1");
    let disabled = gateway.wait_for_log("this modem is disabled until restart");
    assert!(
        disabled.contains("modem=sim0") && disabled.contains("the SIM refused modem.pin"),
        "{disabled}"
    );
    assert_eq!(
        gateway
            .client()
            .mail(&[&format!("{MARKER}@sms")], &message("pin", "clock"))
            .code,
        250
    );
    eventually(Duration::from_secs(20), || {
        let story = gateway.show(1)["events"].to_string();
        match story.matches("+CMS ERROR: 38").count() {
            tries if tries >= 3 => Ok(()),
            tries => Err(format!("the marker was tried {tries} times: {story}")),
        }
    });
    assert_eq!(gateway.log_lines("the SIM refused modem.pin").len(), 1);
    assert!(
        gateway
            .log_lines("modem down, reopening")
            .iter()
            .all(|line| !line.contains("modem=sim0")),
        "sim0 was reopened"
    );
    let status: serde_json::Value = serde_json::from_str(&gateway.http_get("/status")).unwrap();
    let sim0 = &status["modems"][0];
    assert_eq!((&sim0["name"], &sim0["state"]), (&"sim0".into(), &"disabled".into()));
    assert!(gateway.records("sim0").is_empty());
}
