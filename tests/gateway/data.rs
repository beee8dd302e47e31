//! DATA and BDAT: what is stored, and what is refused before anything is stored.

use crate::support::gateway::Gateway;
use crate::support::smtp::message;

#[test]
fn a_mail_client_sends_an_sms_with_lettre() {
    use lettre::{Message, SmtpTransport, Transport};
    let gateway = Gateway::start("");
    let email = Message::builder()
        .from("Alice <alice@example.com>".parse().unwrap())
        .to("+33477858589@sms".parse().unwrap())
        .to("Bob.+447911123456@sms".parse().unwrap())
        .subject("Server down")
        .body("web1 does not answer since 03:12 €".to_string())
        .unwrap();
    let mailer = SmtpTransport::builder_dangerous(gateway.smtp.ip().to_string())
        .port(gateway.smtp.port())
        .build();
    let response = mailer.send(&email).expect("sent");
    assert!(response.is_positive());
    let queue = gateway.queue();
    assert_eq!(queue.len(), 2);
    for request in &queue {
        assert_eq!(request["sender"], "alice@example.com");
    }
    let detail = gateway.wait_state(queue[0]["id"].as_i64().unwrap(), "queued");
    assert_eq!(detail["number"], "+33477858589");
    assert_eq!(detail["text"], "Server down\nweb1 does not answer since 03:12 €");
    assert_eq!(detail["encoding"], "gsm7");
    assert_eq!(detail["events"][0]["state"], "received");
}

#[test]
fn dsn_parameters_are_kept_with_each_request() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ314159", 250);
    client.command(
        "RCPT TO:<+33477858589@sms> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;+2B33477858589@sms",
        250,
    );
    client.command("RCPT TO:<+447911123456@sms> NOTIFY=NEVER", 250);
    client.command("DATA", 354);
    client.send(&format!("{}\r\n.\r\n", message("dsn", "params")));
    client.expect(250);
    let queue = gateway.queue();
    let first = gateway.show(queue[0]["id"].as_i64().unwrap());
    assert_eq!(first["ret"], "HDRS");
    assert_eq!(first["envid"], "QQ314159");
    assert_eq!(first["notify"], "SUCCESS,FAILURE");
    assert_eq!(first["orcpt"], "rfc822;+33477858589@sms");
    let second = gateway.show(queue[1]["id"].as_i64().unwrap());
    assert_eq!(second["notify"], "NEVER");
    assert!(second["orcpt"].is_null());
}

#[test]
fn bdat_chunks_make_one_message() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    // A chunk without a transaction is read and refused; the session goes on.
    client.send("BDAT 5\r\nhello");
    client.expect(503);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    let head = "Subject: chunked\r\n\r\nfirst half, ";
    client.send(&format!("BDAT {}\r\n{head}", head.len()));
    client.expect(250);
    // RFC 3030: no DATA once BDAT has begun.
    assert!(client.command("DATA", 503).text().contains("DATA after BDAT"));
    let tail = "second half\r\n";
    client.send(&format!("BDAT {} LAST\r\n{tail}", tail.len()));
    assert!(client.expect(250).text().contains("queued as"));
    let queue = gateway.queue();
    assert_eq!(queue.len(), 1);
    let detail = gateway.show(queue[0]["id"].as_i64().unwrap());
    assert_eq!(detail["text"], "chunked\nfirst half, second half");
}

#[test]
fn oversized_mail_is_refused_with_552_and_not_stored() {
    let gateway = Gateway::start("[smtp]\nmax_message_size = 2048\n");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    let reply = client.command("MAIL FROM:<a@example.com> SIZE=4096", 552);
    assert!(reply.text().starts_with("5.3.4"));
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("DATA", 354);
    client.send(&format!("{}\r\n.\r\n", message("big", &"0123456789\r\n".repeat(400))));
    assert!(client.expect(552).text().starts_with("5.3.4"));
    // The session is usable again, and a BDAT past the limit is refused too.
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.send(&format!("BDAT 3000 LAST\r\n{}", "x".repeat(3000)));
    client.expect(552);
    client.command("NOOP", 250);
    assert!(gateway.queue().is_empty());
}

#[test]
fn a_mail_without_text_is_refused_with_554_5_6_0() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    let reply = client.mail(&["+33477858589@sms"], "From: a@example.com\r\n\r\n   \r\n");
    assert_eq!(reply.code, 554);
    assert!(reply.text().starts_with("5.6.0"), "{reply:?}");
    assert!(gateway.queue().is_empty());
}

#[test]
fn too_long_texts_are_refused_or_truncated_as_configured() {
    let long = "All work and no play makes Jack a dull boy. ".repeat(30);
    let strict = Gateway::start("[sms]\nmax_parts = 2\non_too_long = \"reject\"\n");
    let reply = strict.client().mail(&["+33477858589@sms"], &message("", &long));
    assert_eq!(reply.code, 554);
    assert!(reply.text().starts_with("5.3.4"), "{reply:?}");
    assert!(strict.queue().is_empty());

    let lenient = Gateway::start("[sms]\nmax_parts = 2\non_too_long = \"truncate\"\n");
    let reply = lenient.client().mail(&["+33477858589@sms"], &message("", &long));
    assert_eq!(reply.code, 250);
    let queue = lenient.queue();
    assert_eq!(queue[0]["parts"], 2);
    let text = lenient.show(queue[0]["id"].as_i64().unwrap())["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(text.chars().count(), 2 * 153);
    assert!(long.starts_with(&text));
}

#[test]
fn unicode_text_is_stored_as_ucs2_parts() {
    let gateway = Gateway::start("");
    let body = "Réunion à 15h 🙂 ".repeat(10);
    let reply = gateway.client().mail(
        &["+33477858589@sms"],
        &format!("Subject: =?UTF-8?B?w4l0YXQ=?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"),
    );
    assert_eq!(reply.code, 250);
    let request = &gateway.queue()[0];
    assert_eq!(request["encoding"], "ucs2");
    // "État\n" + 10 × 17 characters, each emoji two UTF-16 units: 5 + 180 - 1 units.
    assert_eq!(request["parts"], 3);
}
