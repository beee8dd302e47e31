//! `smsgw store copy`: a gateway's SQLite store copied into PostgreSQL, and the gateway
//! carrying on there with the same requests, history and DSNs.

use std::process::Command;

use rusqlite::Connection;
use serde_json::Value;

use crate::support::gateway::Gateway;
use crate::support::postgres;
use crate::support::sink::Sink;
use crate::support::smtp::{message, queued_ids};
use crate::support::wait::eventually;
use crate::support::{BIN, TempDir};

const DELIVERED: &str = "+447911123456";
/// The simulated network refuses this one in its status report.
const REFUSED: &str = "+33477858589";

/// Texts STOP before the copy.
const OPTED_OUT: &str = "+33699000111";

/// `url` with a password, if it has none (the throwaway server trusts any): the copy
/// must never print it.
fn with_password(url: &str) -> (String, Option<&'static str>) {
    const PASSWORD: &str = "pw-never-shown";
    let authority = url.split("://").nth(1).unwrap_or("");
    match authority.split_once('@') {
        Some((user, _)) if !user.contains(':') => (url.replacen('@', &format!(":{PASSWORD}@"), 1), Some(PASSWORD)),
        _ => (url.to_string(), None),
    }
}

/// Rows per table of a SQLite store, as `store copy` prints them.
fn sqlite_counts(path: &std::path::Path) -> String {
    let connection = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let counts: Vec<String> = [
        "messages",
        "requests",
        "events",
        "parts",
        "dsns",
        "inbox",
        "inbox_parts",
        "optouts",
    ]
    .iter()
    .map(|table| {
        let n: i64 = connection
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0))
            .unwrap();
        format!("{table} {n}")
    })
    .collect();
    format!("copied: {}", counts.join(", "))
}

#[test]
fn a_sqlite_store_copied_into_postgres_carries_on_there() {
    let Some(url) = postgres::database() else { return };
    let (to, password) = with_password(&url);
    let sink = Sink::start(None);
    let mut gateway = Gateway::start(&format!(
        "[dsn]\nsmart_host = \"{}\"\ntls = \"none\"\nretry_delays_secs = [1]\n\n\
         [[modem]]\nname = \"sim0\"\nport = \"sim\"\n\
         sim = {{ latency_ms = 0, report_delay_ms = 20, report_failure = [\"{REFUSED}\"] }}\n",
        sink.address
    ));
    gateway.wait_for_log("ready modem=sim0");
    let mut ids = Vec::new();
    for (recipients, body) in [
        (vec![format!("{DELIVERED}@sms")], "first"),
        (vec![format!("{REFUSED}@sms")], "refused"),
        (vec![format!("{DELIVERED}@sms"), format!("{REFUSED}@sms")], "both"),
    ] {
        let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
        let reply = gateway.client().mail(&recipients, &message("copy", body));
        assert_eq!(reply.code, 250, "{reply:?}");
        ids.extend(queued_ids(&reply.text()));
    }
    assert_eq!(ids, [1, 2, 3, 4]);
    gateway.wait_all(&["delivered", "failed"]);
    // Two failures, two DSNs (by default only failures are reported), delivered.
    sink.wait_for(2);
    eventually(std::time::Duration::from_secs(10), || {
        let dsns: Vec<String> = ids.iter().flat_map(|id| gateway.store().dsns(*id)).collect();
        if dsns == ["failed sent", "failed sent"] {
            Ok(())
        } else {
            Err(format!("DSNs: {dsns:?}"))
        }
    });
    // A number that opted out, and an SMS received: the list and the inbox go along.
    gateway.cli_ok(&["modem", "inject", "sim0", "--from", OPTED_OUT, "--text", "STOP"]);
    eventually(std::time::Duration::from_secs(10), || {
        let list = gateway.cli_ok(&["optout", "list"]);
        if list.contains(OPTED_OUT) { Ok(()) } else { Err(list) }
    });
    gateway.signal("TERM");
    assert!(gateway.wait_exit().success());
    let inbox = gateway.cli_ok(&["inbox", "list", "--json"]);
    let listed = gateway.queue();
    let shown: Vec<Value> = ids.iter().map(|id| gateway.show(*id)).collect();
    let expected = sqlite_counts(gateway.store().path());
    assert!(expected.starts_with("copied: messages 3, requests 4, "), "{expected}");

    let copied = gateway.cli(&["store", "copy", "--to", &to]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&copied.stdout).into_owned(),
        String::from_utf8_lossy(&copied.stderr).into_owned(),
    );
    assert!(copied.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.trim(), expected);
    if let Some(password) = password {
        assert!(
            !stdout.contains(password) && !stderr.contains(password),
            "{stdout}{stderr}"
        );
    }

    // The same config, but on PostgreSQL.
    let sqlite_config = std::fs::read_to_string(&gateway.config).unwrap();
    std::fs::write(
        &gateway.config,
        format!("{sqlite_config}\n[store]\nurl = {}\n", toml::Value::String(url.clone())),
    )
    .unwrap();
    gateway.restart();
    gateway.wait_for_log("ready modem=sim0");
    assert_eq!(gateway.queue(), listed, "queue list --json on PostgreSQL");
    for (id, before) in ids.iter().zip(&shown) {
        assert_eq!(&gateway.show(*id), before, "queue show {id} on PostgreSQL");
    }
    let listed_by_cli: Value = serde_json::from_str(&gateway.cli_ok(&["queue", "list", "--json"])).unwrap();
    assert_eq!(listed_by_cli, Value::Array(listed));
    assert_eq!(
        gateway.cli_ok(&["inbox", "list", "--json"]),
        inbox,
        "inbox list --json on PostgreSQL"
    );
    let mut client = gateway.client();
    client.command("EHLO test.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command(&format!("RCPT TO:<{OPTED_OUT}@sms>"), 550);

    // A new mail: ids go on after the copied ones, and it is sent from PostgreSQL.
    let reply = gateway
        .client()
        .mail(&[&format!("{DELIVERED}@sms")], &message("copy", "after"));
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(queued_ids(&reply.text()), [5]);
    let detail = gateway.wait_state(5, "delivered");
    assert_eq!(detail["instance"], "smsgw");

    // Copying again: refused by the config that names the database, and into a database
    // that is no longer empty; neither writes anything.
    let again = gateway.cli(&["store", "copy", "--to", &to]);
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains("PostgreSQL already (store.url"), "{said}");
    let dir = TempDir::new();
    let old_config = dir.0.join("sqlite.toml");
    std::fs::write(&old_config, &sqlite_config).unwrap();
    let again = Command::new(BIN)
        .args(["store", "copy", "--to", &to, "--config"])
        .arg(&old_config)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        said.contains("the PostgreSQL database is not empty (table messages has rows)"),
        "{said}"
    );
    if let Some(password) = password {
        assert!(!said.contains(password), "{said}");
    }
    assert_eq!(gateway.queue().len(), 5);
}
