//! The SMTP edge under abuse and at its borders: what the protocol says of an empty
//! message and of STARTTLS, and the limits that keep one client from starving the others.

use crate::support::gateway::Gateway;
use crate::support::pki::Pki;
use crate::support::smtp::Client;

#[test]
fn a_dot_at_once_after_data_is_an_empty_message_refused_with_554_and_the_session_goes_on() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    client.command("EHLO mta.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("DATA", 354);
    client.send(".\r\n");
    let refused = client.expect(554);
    assert_eq!(
        refused.text(),
        "5.6.0 The message is empty: there is no text to send as SMS"
    );
    // The first line is unstuffed like any other: `..x` is `.x`.
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("DATA", 354);
    client.send("..x\r\n\r\n..first of the body\r\n.\r\n");
    client.expect(250);
    let raw = gateway.store().messages().pop().expect("stored");
    assert!(raw.starts_with(".x\r\n\r\n.first"), "{raw:?}");
    assert_eq!(gateway.queue().len(), 1);
}

#[test]
fn starttls_forgets_an_auth_identity_learned_in_clear() {
    let pki = Pki::new();
    pki.add_user("alice", "correct horse", &[]);
    let gateway = Gateway::start(&pki.security(""));
    // The listener is loopback-only: AUTH in clear is allowed there, from 127.0.0.2,
    // which is not a trusted network.
    let mut client = Client::connect_from("127.0.0.2", gateway.smtp);
    client.command("EHLO remote.example", 250);
    assert_eq!(client.auth_plain("alice", "correct horse").code, 235);
    let mut client = client.starttls(&pki.ca());
    let refused = client.command("MAIL FROM:<alice@example.com>", 530);
    assert_eq!(refused.text(), "5.7.0 Authentication required");
    assert_eq!(client.auth_plain("alice", "correct horse").code, 235);
    client.command("MAIL FROM:<alice@example.com>", 250);
}

#[test]
fn a_smart_host_on_a_trusted_network_relays_a_burst_of_200_sms_with_the_default_limits() {
    let gateway = Gateway::options("").production_limits().start();
    let mut client = gateway.client();
    client.command("EHLO postfix.example", 250);
    for i in 0..200 {
        client.command(&format!("MAIL FROM:<user{i}@example.com>"), 250);
        client.command(&format!("RCPT TO:<+33612{:06}@sms>", 100_000 + i), 250);
        client.command("DATA", 354);
        client.send("Subject: burst\r\n\r\none of many\r\n.\r\n");
        client.expect(250);
    }
    assert_eq!(gateway.queue().len(), 200);
}
