//! The operator's commands: check-config and queue.

use std::process::Command;

use crate::support::gateway::Gateway;
use crate::support::smtp::message;
use crate::support::{BIN, TempDir};

#[test]
fn check_config_names_every_bad_key() {
    let dir = TempDir::new();
    let path = dir.0.join("bad.toml");
    std::fs::write(
        &path,
        "[smtp]\nlisen = [\"127.0.0.1:25\"]\nmax_recipients = \"many\"\n[sms]\nmax_parts = 0\non_too_long = \"cut\"\n[modems]\nx = 1\n\
         [dsn]\nsmart_host = \"mail.example.com\"\ntls = \"sometimes\"\n[outbound]\nmx_port = 0\n\
         [inbound]\nstop_words = [\"STOP\", \"\"]\n[http]\nlisten = \"everywhere\"\n\
         [[peer]]\nname = \"smsgw\"\nsmtp = \"fr:25\"\nstatus_url = \"https://fr/status\"\nlink_cost = -1.0\n\
         tls_pin_sha256 = [\"00\"]\nuser = \"uk\"\ntls = \"opportunistic\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for key in [
        "smtp.lisen: unknown key",
        "smtp.max_recipients:",
        "sms.max_parts:",
        "sms.on_too_long:",
        "modems: unknown section",
        // Moved to [outbound], still read under [dsn], and named as written.
        "dsn.smart_host: must be host:port",
        "dsn.tls:",
        "outbound.mx_port: must be a port",
        "inbound.stop_words[1]: must not be empty",
        "http.listen: must be an address",
        "peer[0].name: must be the peer's instance.name",
        "peer[0].status_url: must be an http:// or https:// URL",
        "peer[0].link_cost: must be a number >= 0",
        "peer[0].user: user and password are needed",
        "peer[0].tls_pin_sha256[0]: must be a SHA-256 fingerprint",
        "peer[0].tls: \"opportunistic\" would hand the peer password to anyone in the middle",
    ] {
        assert!(text.contains(key), "{key:?} not in:\n{text}");
    }
}

#[test]
fn check_config_accepts_the_shipped_config_and_env_overrides() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config/smsgw.toml");
    let ok = Command::new(BIN)
        .args(["check-config", "--config", shipped])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(
        !String::from_utf8_lossy(&ok.stdout).contains("warning"),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let bad = Command::new(BIN)
        .args(["check-config", "--config", shipped])
        .env("SMSGW__SMTP__LISTEN", "127.0.0.1:2525,nowhere")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stdout).contains("smtp.listen[1]"));
    // A list of one from the environment stays a list of strings ("+3389", not 3389).
    let one = Command::new(BIN)
        .args(["check-config", "--config", shipped])
        .env("SMSGW__SECURITY__DENY_PREFIXES", "+3389")
        .env("SMSGW__SECURITY__TRUSTED_NETWORKS", "10.0.0.0/8,127.0.0.0/8")
        .env("SMSGW__SMTP__MAX_RECIPIENTS", "5")
        .env("SMSGW__OUTBOUND__NAMESERVERS", "192.0.2.53")
        .env("SMSGW__OUTBOUND__SMART_HOST", "mail.example.com:587")
        .env("SMSGW__INBOUND__STOP_WORDS", "STOP")
        .env("SMSGW__INBOUND__START_WORDS", "GO")
        .output()
        .unwrap();
    assert!(one.status.success(), "{}", String::from_utf8_lossy(&one.stdout));
    // The [outbound] and [inbound] lists, each element named by its index.
    let lists = Command::new(BIN)
        .args(["check-config", "--config", shipped])
        .env("SMSGW__OUTBOUND__NAMESERVERS", "192.0.2.53,nowhere")
        .env("SMSGW__INBOUND__START_WORDS", "GO,stop")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&lists.stdout);
    assert!(!lists.status.success(), "{text}");
    assert!(
        text.contains("outbound.nameservers[1]: \"nowhere\" is not a DNS server"),
        "{text}"
    );
    assert!(
        text.contains("inbound.start_words[1]: \"stop\" is also a stop word"),
        "{text}"
    );
    // A [dsn] transport key of the last release, from the environment too: read, and warned of.
    let old = Command::new(BIN)
        .args(["check-config", "--config", shipped])
        .env("SMSGW__DSN__MX_PORT", "2525")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&old.stdout);
    assert!(old.status.success(), "{text}");
    assert!(
        text.contains("warning: dsn.mx_port: moved to outbound.mx_port, which is also set and wins"),
        "{text}"
    );
}

#[test]
fn check_config_reads_the_last_release_s_dsn_transport_keys_with_a_warning_each() {
    let dir = TempDir::new();
    let path = dir.0.join("old.toml");
    std::fs::write(
        &path,
        "[dsn]\nsmart_host = \"mail.example.com:25\"\nfrom = \"bounces@example.com\"\nlifetime_hours = 2\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let warnings: Vec<&str> = text.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(
        warnings,
        [
            "warning: dsn.smart_host: moved to outbound.smart_host (still read; [outbound] now carries DSNs and \
             the mails made from incoming SMS)",
            "warning: dsn.lifetime_hours: moved to outbound.lifetime_hours (still read; [outbound] now carries \
             DSNs and the mails made from incoming SMS)",
        ],
        "{text}"
    );
}

#[test]
fn check_config_warns_of_a_peer_status_polled_in_clear_across_a_network() {
    let dir = TempDir::new();
    let peer = |status_url: &str| {
        format!(
            "[http]\nlisten = \"127.0.0.1:8025\"\n[[peer]]\nname = \"fr\"\nsmtp = \"fr-gw.example.net:25\"\n\
             status_url = \"{status_url}\"\nuser = \"uk\"\npassword = \"secret\"\n"
        )
    };
    let check = |name: &str, config: String| {
        let path = dir.0.join(name);
        std::fs::write(&path, config).unwrap();
        let output = Command::new(BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        // A warning does not refuse the config.
        assert!(output.status.success(), "{text}");
        text
    };
    let clear = check("clear.toml", peer("http://fr-gw.example.net:8025/status"));
    assert!(
        clear.contains("warning: peer[0].status_url: plain http:// to a host not on loopback"),
        "{clear}"
    );
    for (name, url) in [
        ("tls.toml", "https://fr-gw.example.net:8443/status"),
        ("loopback.toml", "http://127.0.0.1:8026/status"),
    ] {
        let quiet = check(name, peer(url));
        assert!(!quiet.contains("warning"), "{url}: {quiet}");
    }
}

#[test]
fn queue_list_filters_by_state_and_show_tells_the_story() {
    let gateway = Gateway::start("");
    assert_eq!(
        gateway
            .client()
            .mail(&["+33477858589@sms"], &message("hello", "world"))
            .code,
        250
    );
    // With no modem configured, the request waits in the queue.
    gateway.wait_state(1, "queued");
    let queued = gateway.cli(&["queue", "list", "--state", "queued"]);
    assert!(String::from_utf8_lossy(&queued.stdout).contains("+33477858589"));
    let failed = gateway.cli(&["queue", "list", "--state", "failed", "--json"]);
    assert_eq!(String::from_utf8_lossy(&failed.stdout).trim(), "[]");
    let bogus = gateway.cli(&["queue", "list", "--state", "lost"]);
    assert!(!bogus.status.success());
    let shown = gateway.cli(&["queue", "show", "1"]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("queued") && text.contains("text: hello"), "{text}");
    // The JSON forms say what the database holds (as the harness reads it).
    let listed: serde_json::Value = serde_json::from_str(&gateway.cli_ok(&["queue", "list", "--json"])).unwrap();
    assert_eq!(listed, serde_json::Value::Array(gateway.queue()));
    let detail: serde_json::Value = serde_json::from_str(&gateway.cli_ok(&["queue", "show", "1", "--json"])).unwrap();
    assert_eq!(detail, gateway.show(1));
    assert_eq!(detail["events"][0]["state"], "received");
    let missing = gateway.cli(&["queue", "show", "99"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no request 99"));
}

#[test]
fn pdu_encode_and_decode_for_operators() {
    let encoded = Command::new(BIN)
        .args([
            "pdu",
            "encode",
            "--to",
            "+46708251358",
            "--text",
            "hellohello",
            "--status-report",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&encoded.stdout);
    let (command, hex) = text.trim().split_once(' ').expect("AT+CMGS=<n> <hex>");
    assert_eq!(command, "AT+CMGS=22");
    // The dreamfabric "hellohello" example, with TP-SRR set and no validity period.
    assert_eq!(hex, "0021000B916407281553F800000AE8329BFD4697D9EC37");
    let decoded = Command::new(BIN).args(["pdu", "decode", hex]).output().unwrap();
    let json: serde_json::Value = serde_json::from_slice(&decoded.stdout).unwrap();
    assert_eq!(json["type"], "submit");
    assert_eq!(json["destination"]["number"], "+46708251358");
    assert_eq!(json["status_report"], true);
    let bad = Command::new(BIN).args(["pdu", "decode", "0011"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("smsgw: "));
}

#[test]
fn serve_applies_environment_overrides() {
    // A number and a list, over what the config file says (no limit, the domain "sms").
    let gateway = Gateway::options("[smtp]\nmax_recipients = 100\n")
        .env("SMSGW__SMTP__MAX_RECIPIENTS", "2")
        .env("SMSGW__SMTP__SMS_DOMAINS", "sms,text.example")
        .start();
    let mut client = gateway.client();
    client.command("EHLO mta.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@text.example>", 250);
    client.command("RCPT TO:<+447911123456@sms>", 250);
    let reply = client.command("RCPT TO:<+447911123457@sms>", 452);
    assert!(reply.text().starts_with("4.5.3"), "{reply:?}");
}
