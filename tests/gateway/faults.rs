//! Modem faults: after each, no request is lost and none is sent twice unless asked.

use std::time::Duration;

use serde_json::Value;

use crate::support::gateway::{Gateway, event_details};
use crate::support::smtp::message;
use crate::support::wait::eventually;

const NUMBER: &str = "+33477858589";
/// sim0 answers this one with a temporary error: it is sent by sim1 after a retry delay.
const MARKER: &str = "+447911123456";
/// The `sim` faults that make MARKER a marker.
const MARKER_FAULT: &str = "cms_error = { \"+447911123456\" = 38 }";

/// Two simulated modems: sim0 (cheaper, with `faults`) and sim1 (healthy); retries after 1 s.
fn two_modems(faults: &str, sim0_extra: &str) -> Gateway {
    let gateway = Gateway::start(&format!(
        "[sms]\nretry_delays_secs = [1]\n\n{}",
        modems(faults, sim0_extra)
    ));
    // Both ready before the first mail, so the cheaper one is tried first.
    gateway.wait_for_log("ready modem=sim0");
    gateway.wait_for_log("ready modem=sim1");
    gateway
}

/// The `[[modem]]` tables of `two_modems`.
fn modems(faults: &str, sim0_extra: &str) -> String {
    format!(
        "[[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {{ \"+\" = 0.01 }}\n{sim0_extra}\n\
         sim = {{ latency_ms = 0, report_delay_ms = 50, {faults} }}\n\n\
         [[modem]]\nname = \"sim1\"\nport = \"sim\"\ntariff = {{ \"+\" = 0.02 }}\n\
         sim = {{ latency_ms = 0, report_delay_ms = 50 }}\n"
    )
}

fn send(gateway: &Gateway) {
    send_to(gateway, NUMBER);
}

fn send_to(gateway: &Gateway, number: &str) {
    let reply = gateway
        .client()
        .mail(&[&format!("{number}@sms")], &message("fault", "test"));
    assert_eq!(reply.code, 250);
}

/// Sends request `id` to MARKER and waits until sim1 delivered it, after sim0's
/// temporary error and the retry delay: by then a request that was going to be retried
/// (wrongly) has been.
fn wait_past_a_retry(gateway: &Gateway, id: i64) {
    send_to(gateway, MARKER);
    let story = event_details(&gateway.wait_state(id, "delivered"));
    assert!(story.contains("retry in"), "the marker was not retried: {story}");
}

/// The history of a request without its DSN events (a failure's DSN is owed to
/// sender@example.com, whose delivery goes on by itself).
fn sending_story(detail: &Value) -> Vec<Value> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] != "dsn")
        .cloned()
        .collect()
}

/// The numbers a modem sent to.
fn numbers(gateway: &Gateway, modem: &str) -> Vec<String> {
    gateway
        .records(modem)
        .iter()
        .map(|r| r["number"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_temporary_error_is_retried_on_another_modem() {
    let gateway = two_modems(&format!("cms_error = {{ \"{NUMBER}\" = 38 }}"), "");
    send(&gateway);
    let detail = gateway.wait_state(1, "delivered");
    let story = event_details(&detail);
    assert!(
        story.contains("+CMS ERROR: 38") && story.contains("retry in"),
        "{story}"
    );
    assert_eq!(gateway.records("sim0").len(), 0);
    assert_eq!(gateway.records("sim1").len(), 1);
}

#[test]
fn a_permanent_error_fails_the_request_with_its_reason() {
    let gateway = two_modems(&format!("cms_error = {{ \"{NUMBER}\" = 21, \"{MARKER}\" = 38 }}"), "");
    send(&gateway);
    let detail = gateway.wait_state(1, "failed");
    assert_eq!(detail["status"], "5.7.1");
    assert!(
        detail["reason"].as_str().unwrap().contains("+CMS ERROR: 21"),
        "{detail}"
    );
    wait_past_a_retry(&gateway, 2);
    assert_eq!(
        sending_story(&gateway.show(1)),
        sending_story(&detail),
        "a permanent failure is not retried"
    );
    assert_eq!(numbers(&gateway, "sim1"), [MARKER]);
}

#[test]
fn a_failed_status_report_fails_the_request() {
    let gateway = two_modems(&format!("report_failure = [\"{NUMBER}\"]"), "");
    send(&gateway);
    let detail = gateway.wait_state(1, "failed");
    assert!(
        event_details(&detail).contains("\"sent\""),
        "it was sent before it failed"
    );
    assert!(detail["reason"].as_str().unwrap().contains("not delivered"), "{detail}");
    assert_eq!(gateway.records("sim0").len(), 1);
}

#[test]
fn a_modem_hanging_up_mid_send_leaves_the_request_uncertain_until_retried() {
    let gateway = two_modems(&format!("hang_up = [\"{NUMBER}\"]"), "");
    send(&gateway);
    let detail = gateway.wait_state(1, "uncertain");
    assert!(
        detail["reason"].as_str().unwrap().contains("may have been sent"),
        "{detail}"
    );
    // Nobody resends it on their own: sim0, gone with the line it hung up, fails to
    // reopen twice (after backoffs of 1 and 2 s: longer than the retry delay)...
    let down = gateway.wait_for_logs("modem down, reopening", 3);
    assert!(down.iter().all(|line| line.contains("modem=sim0")), "{down:?}");
    assert_eq!(sending_story(&gateway.show(1)), sending_story(&detail));
    assert_eq!(gateway.records("sim1").len(), 0);
    // ...until the operator says so; then it goes out once, on the modem still working.
    assert!(gateway.cli_ok(&["queue", "retry", "1"]).contains("queued again"));
    gateway.wait_state(1, "delivered");
    assert_eq!(numbers(&gateway, "sim1"), [NUMBER]);
    assert!(
        !gateway.cli(&["queue", "retry", "1"]).status.success(),
        "a delivered request is not retried"
    );
}

#[test]
fn no_answer_to_a_send_makes_the_request_uncertain() {
    let gateway = two_modems(&format!("silent = [\"{NUMBER}\"]"), "send_timeout_secs = 1");
    send(&gateway);
    let detail = gateway.wait_state(1, "uncertain");
    assert_eq!(detail["sent_parts"][0]["status"], "submitting");
    assert_eq!(gateway.records("sim1").len(), 0);
    // The modem that stopped answering is closed, reopened and initialised again.
    gateway.wait_for_log("modem down, reopening");
    gateway.wait_for_logs("ready modem=sim0", 2);
}

#[test]
fn a_gateway_killed_between_cmgs_and_its_answer_does_not_send_twice() {
    let mut gateway = two_modems(&format!("silent = [\"{NUMBER}\"], {MARKER_FAULT}"), "");
    send(&gateway);
    eventually(Duration::from_secs(10), || {
        let detail = gateway.show(1);
        if detail["sent_parts"][0]["status"] == "submitting" {
            Ok(())
        } else {
            Err(format!("AT+CMGS never went out: {detail:#}"))
        }
    });
    gateway.crash_and_restart();
    let detail = gateway.wait_state(1, "uncertain");
    assert!(
        detail["reason"].as_str().unwrap().contains("interrupted after AT+CMGS"),
        "{detail}"
    );
    // Both ready again, so that the cheaper sim0 tries the marker first.
    gateway.wait_for_log("ready modem=sim0");
    gateway.wait_for_log("ready modem=sim1");
    wait_past_a_retry(&gateway, 2);
    assert_eq!(sending_story(&gateway.show(1)), sending_story(&detail));
    assert_eq!(numbers(&gateway, "sim1"), [MARKER]);
    gateway.cli_ok(&["queue", "retry", "1"]);
    gateway.wait_state(1, "delivered");
    assert_eq!(numbers(&gateway, "sim1"), [MARKER, NUMBER]);
}

#[test]
fn a_request_waiting_for_a_modem_is_sent_after_a_restart() {
    let mut gateway = Gateway::start("[[modem]]\nname = \"sim0\"\nport = \"sim\"\nper_minute = 1\n");
    let recipients = ["+33477858589@sms", "+447911123456@sms"];
    assert_eq!(
        gateway.client().mail(&recipients, &message("two", "requests")).code,
        250
    );
    gateway.wait_state(1, "delivered");
    assert_eq!(gateway.show(2)["state"], "queued");
    gateway.crash_and_restart();
    // The rate limit starts afresh with the process: the waiting one goes out now.
    gateway.wait_state(2, "delivered");
    assert_eq!(gateway.records("sim0").len(), 2);
}

#[test]
fn a_retried_request_older_than_its_validity_is_retried_after_a_temporary_error() {
    // Accepted with no modem to send it, then (the gateway down) made two days old,
    // past its validity, with five attempts behind it.
    let mut gateway = Gateway::start("[sms]\nretry_delays_secs = [1, 3600]\n");
    send(&gateway);
    gateway.wait_state(1, "queued");
    gateway.kill();
    let database = rusqlite::Connection::open(gateway.store().path()).unwrap();
    let aged = database
        .execute(
            "UPDATE requests SET created = created - 2 * 86400000, attempts = 5 WHERE id = 1",
            [],
        )
        .unwrap();
    assert_eq!(aged, 1);
    drop(database);
    let mut config = std::fs::read_to_string(&gateway.config).unwrap();
    config.push_str(&modems(&format!("cms_error = {{ \"{NUMBER}\" = 38 }}"), ""));
    std::fs::write(&gateway.config, config).unwrap();
    gateway.restart();
    gateway.wait_state(1, "expired");
    gateway.wait_for_log("ready modem=sim0");
    gateway.wait_for_log("ready modem=sim1");
    // Retried, it has a validity of its own and its attempts start again: sim0's
    // temporary error puts it back in the queue after the first delay (not the last,
    // 3600 s), and sim1 sends it.
    assert!(gateway.cli_ok(&["queue", "retry", "1"]).contains("again"));
    let detail = gateway.wait_state(1, "delivered");
    let story = event_details(&detail);
    let after_retry = &story[story.find("retried by the operator").expect("retried")..];
    assert!(
        after_retry.contains("+CMS ERROR: 38") && after_retry.contains("retry in 1s"),
        "{story}"
    );
    assert!(!after_retry.contains("expired"), "{story}");
    assert_eq!(numbers(&gateway, "sim1"), [NUMBER]);
    assert!(gateway.records("sim0").is_empty());
}

// A modem that lags, repeats or babbles: the driver never takes an answer for another
// command's. Commands time out after 1 s here (`command_timeout_secs`).

/// One simulated modem, sim0, with `faults` and 1 s command timeouts; retries after 1 s;
/// `/status` served.
fn one_modem(faults: &str) -> Gateway {
    let gateway = Gateway::start(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[sms]\nretry_delays_secs = [1]\n\n\
         [[modem]]\nname = \"sim0\"\nport = \"sim\"\ncommand_timeout_secs = 1\n\
         sim = {{ latency_ms = 0, report_delay_ms = 50, {faults} }}\n"
    ));
    gateway.wait_for_log("ready modem=sim0");
    gateway
}

/// sim0's entry in `/status`.
fn sim0_status(gateway: &Gateway) -> Value {
    let status: Value = serde_json::from_str(&gateway.http_get("/status")).unwrap();
    status["modems"][0].clone()
}

#[test]
fn a_first_answer_after_its_timeout_is_not_taken_for_the_next_command_s() {
    // The first AT is answered 1.5 s late, past its 1 s timeout: that OK must not end
    // AT+CPIN? (which would read as "the SIM is locked ()" and disable the modem).
    let gateway = one_modem("late_first_answer_ms = 1500");
    let line = gateway.wait_for_log("late or stray answers discarded; back in step");
    assert!(line.contains("modem=sim0"), "{line}");
    assert!(gateway.log_lines("disabled until restart").is_empty());
    assert!(gateway.log_lines("modem down").is_empty(), "in step without a reopen");
    send(&gateway);
    gateway.wait_state(1, "delivered");
    assert_eq!(numbers(&gateway, "sim0"), [NUMBER]);
    assert_eq!(sim0_status(&gateway)["state"], "ready");
}

#[test]
fn a_repeated_final_result_is_not_taken_for_the_next_send_s() {
    // sim0 answers NUMBER's AT+CMGS twice ("+CMGS: 0", OK, then "+CMGS: 0", OK again
    // when the next command line arrives: here MARKER's AT+CMGS, or a probe before it).
    // Taken for that send's answer, MARKER would be "sent" with NUMBER's reference, and
    // its status report would match nothing: both must be delivered, each sent once.
    let gateway = one_modem(&format!("repeat_final = [\"{NUMBER}\"]"));
    send(&gateway);
    gateway.wait_state(1, "delivered");
    send_to(&gateway, MARKER);
    gateway.wait_state(2, "delivered");
    assert_eq!(numbers(&gateway, "sim0"), [NUMBER, MARKER]);
    let line = gateway.wait_for_log("out of step with the modem");
    assert!(line.contains("modem=sim0"), "{line}");
    let mrs: Vec<_> = [1, 2]
        .map(|id| gateway.show(id)["sent_parts"][0]["mr"].clone())
        .to_vec();
    assert_ne!(mrs[0], mrs[1], "each part has its own reference: {mrs:?}");
}

#[test]
fn garbage_between_lines_is_ignored() {
    let gateway = one_modem("garbage = true");
    send(&gateway);
    // The status report is read past the garbage before its PDU line.
    gateway.wait_state(1, "delivered");
    assert_eq!(numbers(&gateway, "sim0"), [NUMBER]);
    assert!(gateway.log_lines("modem down").is_empty());
    let sim0 = sim0_status(&gateway);
    assert_eq!(sim0["state"], "ready");
    // The signal read through garbage, as `/status` has always worded it.
    assert_eq!(sim0["signal"], "+CSQ: 20,99");
}

#[test]
fn a_prompt_that_never_comes_is_left_with_esc_and_the_sms_sent_once() {
    // sim0's first AT+CMGS gets no prompt: the modem waits for a PDU. Without ESC it
    // would take every later command for that PDU and never answer again. The ESC is
    // the next command's resynchronisation, in place: the port is not reopened.
    let gateway = one_modem("no_prompt = 1");
    send(&gateway);
    let detail = gateway.wait_state(1, "delivered");
    let story = event_details(&detail);
    assert!(
        story.contains("no answer to AT+CMGS") && story.contains("retry in"),
        "{story}"
    );
    gateway.wait_for_log("late or stray answers discarded; back in step");
    assert!(
        gateway.log_lines("modem down").is_empty(),
        "resynchronised without a reopen"
    );
    assert_eq!(gateway.log_lines("ready modem=sim0").len(), 1);
    assert_eq!(numbers(&gateway, "sim0"), [NUMBER], "sent once");
}

#[test]
fn an_announced_sms_that_is_not_there_is_deleted_and_the_modem_kept() {
    // sim0 announces +CMTI for an empty slot, whose AT+CMGR gets a bare OK: logged,
    // deleted, and the modem goes on without a reopen.
    let gateway = one_modem("phantom_sms = true");
    let line = gateway.wait_for_log("unreadable stored message");
    assert!(line.contains("modem=sim0"), "{line}");
    send(&gateway);
    gateway.wait_state(1, "delivered");
    assert!(gateway.log_lines("modem down").is_empty(), "kept without a reopen");
    assert_eq!(numbers(&gateway, "sim0"), [NUMBER]);
}

#[test]
fn a_sim_not_ready_yet_is_waited_for_not_disabled() {
    // AT+CPIN? says NOT READY six times (as for a moment after RDY): asked again in
    // place, then the modem is reopened with backoff, and is ready once the SIM is.
    let gateway = one_modem("cpin_not_ready = 6");
    let down = gateway.wait_for_log("modem down, reopening");
    assert!(down.contains("modem=sim0") && down.contains("NOT READY"), "{down}");
    assert!(gateway.log_lines("disabled until restart").is_empty());
    send(&gateway);
    gateway.wait_state(1, "delivered");
    assert_eq!(numbers(&gateway, "sim0"), [NUMBER]);
    assert_eq!(sim0_status(&gateway)["state"], "ready");
}

#[test]
fn a_port_that_takes_no_more_bytes_marks_the_modem_down() {
    // After its first SMS, sim0's port takes no more bytes (a wedged USB port): the
    // next write times out, the modem is down (not "ready" in /status) and reopened
    // with backoff, and its request is sent by sim1.
    let gateway = Gateway::start(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\n\n[sms]\nretry_delays_secs = [1]\n\n{}",
        modems("wedge_after_sends = 1", "command_timeout_secs = 1")
    ));
    gateway.wait_for_log("ready modem=sim0");
    gateway.wait_for_log("ready modem=sim1");
    send(&gateway);
    gateway.wait_state(1, "delivered");
    send_to(&gateway, MARKER);
    let detail = gateway.wait_state(2, "delivered");
    assert!(
        event_details(&detail).contains("writing took longer than 1s"),
        "{detail:#}"
    );
    let down = gateway.wait_for_logs("modem down, reopening", 2);
    assert!(
        down.iter()
            .all(|line| line.contains("modem=sim0") && line.contains("writing took longer")),
        "{down:?}"
    );
    assert_eq!(sim0_status(&gateway)["state"], "down");
    assert_eq!(numbers(&gateway, "sim0"), [NUMBER]);
    assert_eq!(numbers(&gateway, "sim1"), [MARKER]);
}

#[test]
fn the_sim_pin_is_in_no_log_line() {
    let gateway = Gateway::options(
        "[[modem]]\nname = \"sim0\"\nport = \"sim\"\npin = \"7391\"\n\
         sim = { latency_ms = 0, report_delay_ms = 50, pin = \"7391\" }\n",
    )
    .env("RUST_LOG", "trace")
    .start();
    gateway.wait_for_log("ready modem=sim0");
    gateway.wait_for_log("command=AT+CPIN=\"****\"");
    // Unsolicited +CREG reports are turned off at init.
    gateway.wait_for_log("command=AT+CREG=0");
    assert_eq!(gateway.log_lines("7391"), Vec::<String>::new());
}

#[test]
fn signal_and_registration_are_read_again_while_idle_through_garbage() {
    let gateway = Gateway::options(
        "[[modem]]\nname = \"sim0\"\nport = \"sim\"\nradio_poll_secs = 1\n\
         sim = { latency_ms = 0, report_delay_ms = 50, garbage = true }\n",
    )
    .env("RUST_LOG", "info,smsgw::modem=debug")
    .start();
    gateway.wait_for_log("ready modem=sim0");
    let polls = gateway.wait_for_logs("radio read modem=sim0", 2);
    assert!(
        polls
            .iter()
            .all(|line| line.contains("registration=Some(Home)") && line.contains("signal=Some(\"+CSQ: 20,99\")")),
        "{polls:?}"
    );
    // The polls leave the modem in step: it still sends.
    send(&gateway);
    gateway.wait_state(1, "delivered");
    assert_eq!(numbers(&gateway, "sim0"), [NUMBER]);
    assert!(gateway.log_lines("out of step").is_empty());
}
