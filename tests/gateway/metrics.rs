//! `/metrics` read as Prometheus would: parsed by the Prometheus project's own Python
//! parser (contrib/parse_metrics.py), after a modem whose name needs escaping has sent.

use serde_json::Value;

use crate::support::gateway::Gateway;
use crate::support::python;
use crate::support::smtp::message;

const HTTP: &str = "[http]\nlisten = \"127.0.0.1:0\"\n\n";

/// The samples of an exposition, as the independent parser reads them.
fn parse(python: &std::path::PathBuf, text: &str) -> Vec<Value> {
    python::run(python, "parse_metrics.py", text)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn value(samples: &[Value], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples
        .iter()
        .find(|s| s["name"] == name && labels.iter().all(|(k, v)| s["labels"][k] == *v));
    found.unwrap_or_else(|| panic!("no sample {name} {labels:?} in {samples:#?}"))["value"]
        .as_f64()
        .unwrap_or_else(|| panic!("{name} {labels:?}: not a number"))
}

#[test]
fn metrics_parse_after_a_modem_with_a_quote_in_its_name_sent_and_was_delivered() {
    let Some(python) = python::python("the /metrics parse check") else {
        return;
    };
    let modem = r#"m"x\y"#;
    let gateway = Gateway::start(&format!(
        "{HTTP}[[modem]]\nname = {}\nport = \"sim\"\nsim = {{ latency_ms = 0, report_delay_ms = 50 }}\n",
        toml_string(modem)
    ));
    let reply = gateway
        .client()
        .mail(&["+33477858589@sms"], &message("Disk full", "on web1"));
    assert_eq!(reply.code, 250);
    gateway.wait_state(1, "delivered");
    let samples = parse(&python, &gateway.http_get("/metrics"));
    assert_eq!(
        value(&samples, "smsgw_modem_parts_sent_total", &[("modem", modem)]),
        1.0
    );
    assert_eq!(value(&samples, "smsgw_modem_ready", &[("modem", modem)]), 1.0);
    assert_eq!(value(&samples, "smsgw_requests", &[("state", "delivered")]), 1.0);
    // The simulator answers +CSQ: 20,99 (-113 + 2 × 20 dBm) and +CREG: 0,1 (home).
    assert_eq!(value(&samples, "smsgw_modem_signal_dbm", &[("modem", modem)]), -73.0);
    assert_eq!(value(&samples, "smsgw_modem_registration", &[("modem", modem)]), 1.0);
    assert_eq!(value(&samples, "smsgw_modem_registered", &[("modem", modem)]), 1.0);
    assert_eq!(
        value(&samples, "smsgw_oldest_waiting_seconds", &[]),
        0.0,
        "nothing waits"
    );
    for histogram in ["smsgw_sent_after_seconds", "smsgw_delivered_after_seconds"] {
        assert_eq!(value(&samples, &format!("{histogram}_count"), &[]), 1.0, "{histogram}");
        assert_eq!(
            value(&samples, &format!("{histogram}_bucket"), &[("le", "+Inf")]),
            1.0,
            "{histogram}"
        );
        let sum = value(&samples, &format!("{histogram}_sum"), &[]);
        assert!(sum > 0.0 && sum < 60.0, "{histogram}: {sum} s");
    }
    // The report was due 50 ms after the send: it lands in the first bucket (1 s).
    assert_eq!(
        value(&samples, "smsgw_delivered_after_seconds_bucket", &[("le", "1")]),
        1.0
    );
}

#[test]
fn the_oldest_waiting_request_s_age_grows_while_no_modem_sends() {
    let Some(python) = python::python("the /metrics parse check") else {
        return;
    };
    // The modem never answers the send: the request waits in `sending`, and its age shows.
    let gateway = Gateway::start(&format!(
        "{HTTP}[[modem]]\nname = \"sim0\"\nport = \"sim\"\nsim = {{ latency_ms = 0, silent = [\"+33477858589\"] }}\n"
    ));
    let reply = gateway.client().mail(&["+33477858589@sms"], &message("Backup", "late"));
    assert_eq!(reply.code, 250);
    let age = crate::support::wait::eventually(std::time::Duration::from_secs(10), || {
        let samples = parse(&python, &gateway.http_get("/metrics"));
        let age = value(&samples, "smsgw_oldest_waiting_seconds", &[]);
        if age >= 1.0 {
            Ok(age)
        } else {
            Err(format!("oldest waiting {age} s"))
        }
    });
    assert!(age < 60.0, "{age}");
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
