//! TLS, AUTH, the access policy and the abuse limits, with a real TLS handshake against
//! a test CA, and clients from a second loopback address (127.0.0.2) standing for
//! remote clients outside `trusted_networks`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::BIN;
use crate::support::gateway::Gateway;
use crate::support::pki::Pki;
use crate::support::smtp::Client;

impl Pki {
    pub(crate) fn users(&self) -> PathBuf {
        self.dir.0.join("users.toml")
    }

    /// `smsgw user add`, the password on standard input.
    pub(crate) fn add_user(&self, name: &str, password: &str, senders: &[&str]) {
        let config = self.dir.0.join("cli.toml");
        std::fs::write(&config, format!("[security]\nusers_file = {:?}\n", self.users())).unwrap();
        let mut command = Command::new(BIN);
        command.args(["user", "add", name, "--config"]).arg(&config);
        for sender in senders {
            command.args(["--sender", sender]);
        }
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), format!("{password}\n").as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    }

    /// The `[security]` section, with `extra` keys.
    pub(crate) fn security(&self, extra: &str) -> String {
        format!(
            "[security]\ntls_cert = {:?}\ntls_key = {:?}\nusers_file = {:?}\n\
             trusted_networks = [\"127.0.0.1/32\"]\nauth_failure_delay_ms = 10\n{extra}\n",
            self.dir.0.join("cert.pem"),
            self.dir.0.join("key.pem"),
            self.users()
        )
    }
}

/// A listener that is not loopback-only, so AUTH needs TLS there.
const PUBLIC_LISTENER: &str = "[smtp]\nlisten = [\"0.0.0.0:0\"]\n";

#[test]
fn a_remote_client_must_starttls_then_auth_and_may_only_use_its_senders() {
    let pki = Pki::new();
    pki.add_user("alice", "correct horse", &["alice@example.com"]);
    let gateway = Gateway::start(&format!("{PUBLIC_LISTENER}{}", pki.security("")));
    let mut client = Client::connect_from("127.0.0.2", gateway.smtp);
    let ehlo = client.command("EHLO remote.example", 250);
    assert!(ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    assert!(
        !ehlo.lines.iter().any(|l| l.starts_with("AUTH")),
        "no AUTH in clear: {ehlo:?}"
    );
    assert!(
        client
            .command("MAIL FROM:<alice@example.com>", 530)
            .text()
            .contains("Authentication required")
    );
    assert_eq!(client.auth_plain("alice", "correct horse").code, 538);

    let mut client = client.starttls(&pki.ca());
    let ehlo = client.command("EHLO remote.example", 250);
    assert!(ehlo.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{ehlo:?}");
    assert!(!ehlo.lines.iter().any(|l| l == "STARTTLS"), "{ehlo:?}");
    let wrong = client.auth_plain("alice", "wrong");
    assert_eq!(
        (wrong.code, wrong.text()),
        (535, "5.7.8 Authentication credentials invalid".to_string())
    );
    // AUTH LOGIN: user name and password in two steps.
    client.command("AUTH LOGIN", 334);
    client.command("YWxpY2U=", 334);
    assert!(client.command("Y29ycmVjdCBob3JzZQ==", 235).text().starts_with("2.7.0"));
    assert!(
        client
            .command("MAIL FROM:<mallory@example.com>", 550)
            .text()
            .contains("alice may not send as")
    );
    client.command("MAIL FROM:<alice@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("DATA", 354);
    client.send("Subject: over TLS\r\nX-Smsgw-Trace: forged\r\n\r\nhello\r\n.\r\n");
    client.expect(250);
    let detail = gateway.show(1);
    assert_eq!(detail["auth_user"], "alice");
    assert_eq!(detail["client"], "127.0.0.2");
}

#[test]
fn a_trusted_network_sends_without_auth_and_others_with_it() {
    let pki = Pki::new();
    pki.add_user("relay", "relay password", &[]);
    let gateway = Gateway::start(&pki.security(""));
    let mut trusted = Client::connect(gateway.smtp);
    trusted.command("EHLO mta.example", 250);
    trusted.command("MAIL FROM:<anyone@example.com>", 250);
    let mut outsider = Client::connect_from("127.0.0.2", gateway.smtp);
    outsider.command("EHLO outside.example", 250);
    outsider.command("MAIL FROM:<anyone@example.com>", 530);
    // The listener is loopback-only: AUTH is allowed without TLS there.
    assert_eq!(outsider.auth_plain("relay", "relay password").code, 235);
    outsider.command("MAIL FROM:<anyone@example.com>", 250);
    assert!(gateway.wait_for_log("not a trusted network").contains("127.0.0.2"));
}

#[test]
fn repeated_auth_failures_lock_the_address_out() {
    let pki = Pki::new();
    pki.add_user("alice", "correct horse", &[]);
    let gateway = Gateway::start(&pki.security("max_auth_failures = 3\nlockout_secs = 600"));
    let mut client = Client::connect_from("127.0.0.2", gateway.smtp);
    client.command("EHLO remote.example", 250);
    for _ in 0..3 {
        assert_eq!(client.auth_plain("alice", "guess").code, 535);
    }
    let locked = client.auth_plain("alice", "correct horse");
    assert_eq!(locked.code, 454, "{locked:?}");
    assert!(locked.text().starts_with("4.7.0"));
    // Another address is not locked.
    let mut other = Client::connect_from("127.0.0.3", gateway.smtp);
    other.command("EHLO other.example", 250);
    assert_eq!(other.auth_plain("alice", "correct horse").code, 235);
}

#[test]
fn rate_limits_and_number_lists_refuse_exactly_at_their_thresholds() {
    let pki = Pki::new();
    let gateway = Gateway::start(&pki.security(
        "per_minute = 3\nper_day = 100\nnumbers_per_day = 100\nper_sender = true\ndeny_prefixes = [\"+3389\"]\nallow_prefixes = [\"+33\", \"+44\"]",
    ));
    let mut client = gateway.client();
    client.command("EHLO mta.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    let denied = client.command("RCPT TO:<+33899123456@sms>", 550);
    assert!(
        denied.text().contains("+33899123456") && denied.text().starts_with("5.7.1"),
        "{denied:?}"
    );
    let outside = client.command("RCPT TO:<+4915112345678@sms>", 550);
    assert!(outside.text().contains("only numbers starting +33, +44"), "{outside:?}");
    for number in ["+33477858589", "+33612345678", "+447911123456"] {
        client.command(&format!("RCPT TO:<{number}@sms>"), 250);
    }
    let limited = client.command("RCPT TO:<+33612345679@sms>", 450);
    assert_eq!(
        limited.text(),
        "4.7.1 <a@example.com>: more than 3 requests in a minute, try again later"
    );
    assert!(gateway.wait_for_log("more than 3 requests").contains("refused"));
}

#[test]
fn implicit_tls_listener_and_sighup_reload_of_users() {
    let pki = Pki::new();
    let gateway = Gateway::start(&pki.security("listen_tls = [\"127.0.0.1:0\"]"));
    let mut client = Client::connect_tls(gateway.tls_address(), &pki.ca());
    let ehlo = client.command("EHLO tls.example", 250);
    assert!(ehlo.lines.iter().any(|l| l == "AUTH PLAIN LOGIN"), "{ehlo:?}");
    assert_eq!(client.auth_plain("bob", "bob's password").code, 535);
    pki.add_user("bob", "bob's password", &[]);
    gateway.signal("HUP");
    gateway.wait_for_log("users reloaded");
    let mut client = Client::connect_tls(gateway.tls_address(), &pki.ca());
    client.command("EHLO tls.example", 250);
    assert_eq!(client.auth_plain("bob", "bob's password").code, 235);
}

#[test]
fn no_relay_trick_gets_through() {
    let gateway = Gateway::start("[smtp]\nsms_domains = [\"sms\", \"sms.example.com\"]\nmax_errors = 100\n");
    let mut client = gateway.client();
    client.command("EHLO mta.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    let tricks = [
        "user@example.org",
        "+33477858589@example.org",
        "+33477858589%example.org@sms",
        "\"+33477858589%example.org\"@sms",
        "example.org!+33477858589@sms",
        "\"user@example.org\"@sms",
        "\"+33477858589@example.org\"@sms",
        "@sms:user@example.org",
        "@sms,@sms.example.com:user@example.org",
        "+33477858589@sms.",
        "+33477858589@sms.example.com.",
        "+33477858589@other.sms",
        "+33477858589@example.com",
        "postmaster",
    ];
    for address in tricks {
        client.send(&format!("RCPT TO:<{address}>\r\n"));
        let reply = client.reply().expect("reply");
        assert!(reply.code >= 500, "{address} was accepted: {reply:?}");
    }
    for ours in ["+33477858589@SMS", "+33477858589@Sms.Example.Com"] {
        client.command(&format!("RCPT TO:<{ours}>"), 250);
    }
    client.command("RSET", 250);
    assert!(gateway.queue().is_empty());
}

#[test]
fn user_add_and_del_manage_the_users_file() {
    let pki = Pki::new();
    pki.add_user("carol", "carol password", &["@example.com"]);
    let text = std::fs::read_to_string(pki.users()).unwrap();
    assert!(text.contains("[users.carol]") && text.contains("$argon2id$") && !text.contains("carol password"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(pki.users()).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the users file is for the owner only");
    let config = pki.dir.0.join("cli.toml");
    let removed = Command::new(BIN)
        .args(["user", "del", "carol", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(removed.status.success());
    assert!(!std::fs::read_to_string(pki.users()).unwrap().contains("carol"));
    let again = Command::new(BIN)
        .args(["user", "del", "carol", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!again.status.success());
}

#[test]
fn a_message_is_stored_without_forged_internal_headers() {
    let gateway = Gateway::start("");
    let mail = "Subject: hi\r\nX-Smsgw-Request: forged-1\r\n\r\nbody\r\n";
    assert_eq!(gateway.client().mail(&["+33477858589@sms"], mail).code, 250);
    let raw = gateway.store().messages().pop().expect("the message is stored");
    assert!(raw.contains("Subject: hi") && !raw.contains("forged-1"), "{raw}");
}

#[test]
fn a_mail_refused_after_rcpt_does_not_use_up_the_sender_s_quota() {
    // A trusted relay is counted per envelope sender only when asked.
    let gateway = Gateway::start("[security]\nper_minute = 2\nper_sender = true\n");
    let recipients = ["+33477858589@sms", "+447911123456@sms"];
    let mut client = gateway.client();
    // No text: refused at the end of DATA, so its two recipients do not count...
    assert_eq!(client.mail(&recipients, "Subject:\r\n\r\n").code, 554);
    client.command("RSET", 250);
    // ...and neither do those of a transaction reset before DATA.
    client.command("MAIL FROM:<sender@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("RSET", 250);
    assert_eq!(
        gateway.client().mail(&recipients, "Subject: hi\r\n\r\nthere\r\n").code,
        250
    );
    let mut third = gateway.client();
    third.command("EHLO mta.example", 250);
    third.command("MAIL FROM:<sender@example.com>", 250);
    assert!(
        third
            .command("RCPT TO:<+33612345678@sms>", 450)
            .text()
            .contains("more than 2 requests in a minute")
    );
}

#[test]
fn sighup_reloads_the_certificate() {
    let pki = Pki::new();
    let gateway = Gateway::start(&pki.security("listen_tls = [\"127.0.0.1:0\"]"));
    Client::connect_tls(gateway.tls_address(), &pki.ca()).command("QUIT", 221);
    // A certificate from another CA: clients that trust only the new CA get through.
    pki.issue();
    gateway.signal("HUP");
    gateway.wait_for_log("TLS certificate reloaded");
    Client::connect_tls(gateway.tls_address(), &pki.ca()).command("QUIT", 221);
}

#[test]
fn the_default_abuse_limits_hold_for_an_authenticated_user_without_any_setting() {
    let pki = Pki::new();
    pki.add_user("alice", "correct horse", &[]);
    let users = format!("[security]\nusers_file = {:?}\n", pki.users());
    let gateway = Gateway::options(&users).production_limits().start();
    let numbers: Vec<String> = (0..61).map(|i| format!("+33612{:06}@sms", 100_000 + i)).collect();
    // Not a trusted network: AUTH (in clear on this loopback-only listener).
    let mut client = Client::connect_from("127.0.0.2", gateway.smtp);
    client.command("EHLO mua.example", 250);
    assert_eq!(client.auth_plain("alice", "correct horse").code, 235);
    client.command("MAIL FROM:<a@example.com>", 250);
    for number in &numbers[..60] {
        client.command(&format!("RCPT TO:<{number}>"), 250);
    }
    let limited = client.command(&format!("RCPT TO:<{}>", numbers[60]), 450);
    assert_eq!(
        limited.text(),
        "4.7.1 alice: more than 60 requests in a minute, try again later"
    );
    client.command("DATA", 354);
    client.send("Subject: sixty\r\n\r\nof them\r\n.\r\n");
    client.expect(250);
    assert_eq!(gateway.queue().len(), 60);
}

#[test]
fn sighup_with_a_bad_certificate_and_users_file_keeps_the_old_ones() {
    let pki = Pki::new();
    pki.add_user("alice", "correct horse", &[]);
    let gateway = Gateway::start(&pki.security("listen_tls = [\"127.0.0.1:0\"]"));
    std::fs::write(pki.cert(), "not a certificate\n").unwrap();
    std::fs::write(pki.users(), "[users.alice\nbroken").unwrap();
    gateway.signal("HUP");
    gateway.wait_for_log("TLS certificate not reloaded; keeping the previous one");
    gateway.wait_for_log("users not reloaded; keeping the previous ones");
    // The old certificate still serves TLS, and the old users still log in over it.
    let mut client = Client::connect_tls(gateway.tls_address(), &pki.ca());
    client.command("EHLO tls.example", 250);
    assert_eq!(client.auth_plain("alice", "correct horse").code, 235);
    let mut remote = Client::connect_from("127.0.0.2", gateway.smtp);
    remote.command("EHLO remote.example", 250);
    let mut remote = remote.starttls(&pki.ca());
    assert_eq!(remote.auth_plain("alice", "correct horse").code, 235);
}

#[test]
fn internal_headers_from_a_user_who_is_no_peer_are_removed_with_a_warning() {
    let pki = Pki::new();
    pki.add_user("alice", "correct horse", &[]);
    let gateway = Gateway::start(&pki.security(""));
    let mut client = Client::connect_from("127.0.0.2", gateway.smtp);
    client.command("EHLO remote.example", 250);
    assert_eq!(client.auth_plain("alice", "correct horse").code, 235);
    client.command("MAIL FROM:<alice@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("DATA", 354);
    client.send("X-Smsgw-Request: uk/1/41\r\nX-Smsgw-Trace: uk,\r\n fr\r\nSubject: hi\r\n\r\nthere\r\n.\r\n");
    client.expect(250);
    let raw = gateway.store().messages().pop().expect("the message is stored");
    assert!(
        raw.contains("Subject: hi") && !raw.contains("X-Smsgw") && !raw.contains(" fr\r\n"),
        "{raw}"
    );
    let story = gateway.show(1)["events"].to_string();
    assert!(!story.contains("forwarded"), "taken for a forward: {story}");
    let warning = gateway.wait_for_log("X-Smsgw headers removed");
    assert!(
        warning.contains("WARN") && warning.contains("alice") && warning.contains("127.0.0.2"),
        "{warning}"
    );
}

/// An address of this machine that is not loopback, as a remote client's would be; None
/// if it has no route off loopback.
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // Connecting a UDP socket sends nothing: it only picks the route and source address.
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

#[test]
fn require_tls_refuses_auth_and_mail_before_starttls_on_a_real_listener() {
    let Some(ip) = non_loopback_address() else {
        let why = "no address off loopback to connect from";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("skipping the require_tls test: {why}\n").as_bytes(),
        );
        return;
    };
    let pki = Pki::new();
    pki.add_user("alice", "correct horse", &[]);
    let gateway = Gateway::start(&format!("{PUBLIC_LISTENER}{}", pki.security("require_tls = true")));
    let address = std::net::SocketAddr::new(ip, gateway.smtp.port());
    let mut client = Client::connect_from(&ip.to_string(), address);
    client.command("EHLO remote.example", 250);
    let refused = client.command("MAIL FROM:<alice@example.com>", 530);
    assert_eq!(refused.text(), "5.7.0 Must issue a STARTTLS command first");
    let auth = client.auth_plain("alice", "correct horse");
    assert_eq!(
        (auth.code, auth.text()),
        (538, "5.7.11 Encryption required: STARTTLS first".to_string())
    );
    let mut client = client.starttls(&pki.ca());
    assert_eq!(client.auth_plain("alice", "correct horse").code, 235);
    client.command("MAIL FROM:<alice@example.com>", 250);
    // Loopback is exempt: a local mail server (trusted) sends in clear.
    let mut local = gateway.client();
    local.command("EHLO mta.example", 250);
    local.command("MAIL FROM:<a@example.com>", 250);
}
