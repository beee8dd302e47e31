//! The SMTP dialogue: extensions, order of commands, pipelining, limits, bad input.

use crate::support::gateway::Gateway;
use crate::support::smtp::message;
use crate::support::wait::eventually;

#[test]
fn ehlo_advertises_what_we_implement() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    let reply = client.command("EHLO client.example", 250);
    for extension in [
        "PIPELINING",
        "SIZE 1048576",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
        "DSN",
        "CHUNKING",
    ] {
        assert!(
            reply.lines.iter().any(|l| l == extension),
            "{extension} missing from {reply:?}"
        );
    }
    client.command("HELO client.example", 250);
    client.command("NOOP", 250);
    assert!(client.command("VRFY someone", 252).text().starts_with("2.5.0"));
    client.command("HELP", 214);
    client.command("QUIT", 221);
    assert!(client.is_closed());
}

#[test]
fn commands_out_of_order_are_refused_with_503() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    assert!(
        client
            .command("MAIL FROM:<a@example.com>", 503)
            .text()
            .starts_with("5.5.1")
    );
    client.command("EHLO client.example", 250);
    assert!(
        client
            .command("RCPT TO:<+33477858589@sms>", 503)
            .text()
            .starts_with("5.5.1")
    );
    assert!(client.command("DATA", 503).text().starts_with("5.5.1"));
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("MAIL FROM:<a@example.com>", 503);
    assert!(client.command("DATA", 554).text().contains("No valid recipients"));
    client.command("RSET", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("QUIT", 221);
    assert!(gateway.queue().is_empty());
}

#[test]
fn malformed_commands_get_500_and_501() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    assert!(client.command("FROBNICATE now", 500).text().starts_with("5.5.1"));
    assert!(
        client
            .command("MAIL FROM: a@example.com", 501)
            .text()
            .starts_with("5.5.2")
    );
    assert!(
        client
            .command("MAIL FROM:<a@example.com> FOO=BAR", 555)
            .text()
            .starts_with("5.5.4")
    );
    client.command("MAIL FROM:<a@example.com>", 250);
    assert!(
        client
            .command("RCPT TO:<+33477858589@sms> NOTIFY=NEVER,SUCCESS", 501)
            .text()
            .starts_with("5.5.4")
    );
    assert!(client.command("RCPT TO:<not an address>", 501).text().starts_with("5."));
    client.command("EXPN list", 502);
    assert!(client.command("STARTTLS", 454).text().contains("TLS not available"));
    client.send("\u{0}\u{1}binary garbage\r\n");
    client.expect(500);
    client.command("QUIT", 221);
}

#[test]
fn a_line_too_long_is_refused_and_the_session_goes_on() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    let long = format!("NOOP {}\r\n", "x".repeat(10_000));
    client.send(&long);
    assert!(client.expect(500).text().contains("too long"));
    client.command("NOOP", 250);
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let gateway = Gateway::start("");
    let mut client = gateway.client();
    client.send(&format!(
        "EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<+33477858589@sms>\r\n\
         RCPT TO:<someone@example.com>\r\nRCPT TO:<+447911123456@sms>\r\nDATA\r\n{}\r\n.\r\nQUIT\r\n",
        message("pipelined", "two numbers, one refused")
    ));
    client.expect(250);
    client.expect(250);
    client.expect(250);
    assert!(client.expect(550).text().starts_with("5.7.1"));
    client.expect(250);
    client.expect(354);
    client.expect(250);
    client.expect(221);
    let numbers: Vec<_> = gateway
        .queue()
        .iter()
        .map(|r| r["number"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(numbers, ["+33477858589", "+447911123456"]);
}

#[test]
fn too_many_errors_close_the_session_with_421() {
    let gateway = Gateway::start("[smtp]\nmax_errors = 3\n");
    let mut client = gateway.client();
    client.command("BAD1", 500);
    client.command("BAD2", 500);
    client.send("BAD3\r\n");
    client.expect(500);
    assert!(client.expect(421).text().starts_with("4.7.0"));
    assert!(client.is_closed());
}

#[test]
fn a_silent_client_is_dropped_with_421() {
    let gateway = Gateway::start("[smtp]\ncommand_timeout_secs = 1\n");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    let started = std::time::Instant::now();
    assert!(client.expect(421).text().starts_with("4.4.2"));
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert!(client.is_closed());
}

#[test]
fn a_client_silent_in_the_middle_of_data_is_dropped_and_nothing_is_stored() {
    let gateway = Gateway::start("[smtp]\ndata_timeout_secs = 1\n");
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("MAIL FROM:<a@example.com>", 250);
    client.command("RCPT TO:<+33477858589@sms>", 250);
    client.command("DATA", 354);
    client.send("Subject: half a message\r\n\r\nand then nothing");
    assert!(client.expect(421).text().starts_with("4.4.2"));
    assert!(client.is_closed());
    assert!(gateway.queue().is_empty());
}

#[test]
fn connections_beyond_the_limit_get_421() {
    let gateway = Gateway::start("[smtp]\nmax_connections = 1\n");
    let mut first = gateway.client();
    first.command("EHLO client.example", 250);
    let mut second = std::net::TcpStream::connect(gateway.smtp).unwrap();
    // Read to the end: the server must close, not leave the connection open.
    second
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut greeting = String::new();
    std::io::Read::read_to_string(&mut second, &mut greeting).expect("421, then closed");
    assert!(greeting.starts_with("421 4.7.0"), "{greeting}");
    first.command("QUIT", 221);
    // The slot is free again once the first session ended.
    eventually(std::time::Duration::from_secs(5), || {
        let mut stream = std::net::TcpStream::connect(gateway.smtp).unwrap();
        let mut code = [0u8; 3];
        std::io::Read::read_exact(&mut stream, &mut code).unwrap();
        match &code {
            b"220" => Ok(()),
            other => Err(format!("slot never freed: {}", String::from_utf8_lossy(other))),
        }
    });
}
