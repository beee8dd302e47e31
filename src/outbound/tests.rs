//! The client against a scripted server over an in-memory pipe: what it writes, and how
//! it reads each answer.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

use super::client::{Client, Connection};
use super::error::OutboundError;
use super::mail::{Mail, Server};
use super::response::{Code, Response};
use super::session::{Phase, StepFailure, classify};
use super::tls::TlsPolicy;
use crate::config::OutboundTls;

/// One turn of the scripted server.
enum Turn {
    /// Sends this reply; several lines are joined by CRLF, the last CRLF is added.
    Say(&'static str),
    /// Reads one line and checks it is this one.
    Expect(&'static str),
    /// Reads the message up to and with its final dot line, and checks it is this.
    ExpectData(&'static str),
    /// Stays silent this long.
    Wait(Duration),
}
use Turn::*;

/// Plays `script`, then closes the connection.
async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(stream: S, script: Vec<Turn>) {
    let mut stream = BufReader::new(stream);
    for turn in script {
        match turn {
            Say(reply) => stream
                .get_mut()
                .write_all(format!("{reply}\r\n").as_bytes())
                .await
                .unwrap(),
            Expect(expected) => {
                let mut line = String::new();
                stream.read_line(&mut line).await.unwrap();
                assert_eq!(line, format!("{expected}\r\n"));
            }
            ExpectData(expected) => {
                let mut data = String::new();
                while !data.ends_with("\r\n.\r\n") && data != ".\r\n" {
                    assert_ne!(stream.read_line(&mut data).await.unwrap(), 0, "closed in {data:?}");
                }
                assert_eq!(data, expected);
            }
            Wait(time) => tokio::time::sleep(time).await,
        }
    }
}

fn peer() -> Server {
    Server {
        host: "peer.test".into(),
        port: 25,
    }
}

fn client(timeout: Duration) -> Client {
    Client {
        helo: "gw.test".into(),
        tls: TlsPolicy::new(OutboundTls::None, Path::new(""), &[]).unwrap(),
        timeout,
    }
}

/// A connection to a server playing `script`, and the server (await it: it panics if
/// the client wrote something else than the script expects).
async fn connect(script: Vec<Turn>, auth: Option<(&str, &str)>) -> (Result<Connection, OutboundError>, JoinHandle<()>) {
    connect_within(Duration::from_secs(5), script, auth).await
}

async fn connect_within(
    timeout: Duration,
    script: Vec<Turn>,
    auth: Option<(&str, &str)>,
) -> (Result<Connection, OutboundError>, JoinHandle<()>) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(serve(theirs, script));
    let connection = client(timeout).over(Box::new(ours), &peer(), auth, true).await;
    (connection.map_err(|not_opened| not_opened.error), server)
}

/// Greeting and EHLO, offering `extensions`.
fn hello(extensions: &'static str) -> Vec<Turn> {
    vec![Say("220 peer.test ESMTP"), Expect("EHLO gw.test"), Say(extensions)]
}

fn mail(message: &[u8]) -> Mail<'_> {
    Mail {
        from: "alice@example.com",
        to: "+33477858589@sms",
        message,
        ..Mail::default()
    }
}

#[tokio::test]
async fn a_plain_send_with_dsn_parameters() {
    let mut script = hello("250-peer.test\r\n250-8BITMIME\r\n250 SIZE 1000000");
    script.extend([
        Expect("MAIL FROM:<alice@example.com> RET=HDRS ENVID=QQ+201"),
        Say("250 2.1.0 ok"),
        Expect("RCPT TO:<+33477858589@sms> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;paul@example.com"),
        Say("250 2.1.5 ok"),
        Expect("DATA"),
        Say("354 go on"),
        ExpectData("Subject: hi\r\n\r\nhello\r\n.\r\n"),
        Say("250 2.0.0 queued as 42"),
        Expect("QUIT"),
    ]);
    let (connection, server) = connect(script, None).await;
    let mut connection = connection.unwrap();
    let mail = Mail {
        from_params: " RET=HDRS ENVID=QQ+201".into(),
        to_params: " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;paul@example.com".into(),
        ..mail(b"Subject: hi\n\nhello\n")
    };
    assert_eq!(
        connection.send(&mail).await.unwrap(),
        "peer.test:25 answered 250 2.0.0 queued as 42"
    );
    assert!(!connection.is_broken());
    connection.quit().await;
    server.await.unwrap();
}

#[tokio::test]
async fn a_multi_line_ehlo_names_the_extensions_used() {
    // 8BITMIME on the last line of four: a message that is not ASCII says BODY=8BITMIME.
    let mut script = hello("250-peer.test greets gw.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME");
    script.extend([
        Expect("MAIL FROM:<alice@example.com> BODY=8BITMIME"),
        Say("250 ok"),
        Expect("RCPT TO:<+33477858589@sms>"),
        Say("250 ok"),
        Expect("DATA"),
        Say("354 go on"),
        ExpectData("caf\u{e9}\r\n.\r\n"),
        Say("250 ok"),
    ]);
    let (connection, server) = connect(script, None).await;
    connection.unwrap().send(&mail("caf\u{e9}".as_bytes())).await.unwrap();
    server.await.unwrap();

    // A server that knows no EHLO gets HELO, and no extension is used.
    let script = vec![
        Say("220 old.test"),
        Expect("EHLO gw.test"),
        Say("502 5.5.1 what?"),
        Expect("HELO gw.test"),
        Say("250 old.test"),
        Expect("MAIL FROM:<alice@example.com>"),
        Say("550 5.6.0 no 8-bit here"),
    ];
    let (connection, server) = connect(script, None).await;
    let error = connection
        .unwrap()
        .send(&mail("caf\u{e9}".as_bytes()))
        .await
        .unwrap_err();
    assert!(error.is_permanent(), "{error:?}");
    server.await.unwrap();
}

#[tokio::test]
async fn a_4xx_at_rcpt_is_temporary_and_the_next_mail_resets() {
    let mut script = hello("250 peer.test");
    script.extend([
        Expect("MAIL FROM:<alice@example.com>"),
        Say("250 ok"),
        Expect("RCPT TO:<+33477858589@sms>"),
        Say("451 4.3.0 try again later"),
        Expect("RSET"),
        Say("250 ok"),
        Expect("MAIL FROM:<alice@example.com>"),
        Say("250 ok"),
        Expect("RCPT TO:<+33477858589@sms>"),
        Say("250 ok"),
        Expect("DATA"),
        Say("354 go on"),
        ExpectData("x\r\n.\r\n"),
        Say("250 ok"),
    ]);
    let (connection, server) = connect(script, None).await;
    let mut connection = connection.unwrap();
    let error = connection.send(&mail(b"x")).await.unwrap_err();
    assert_eq!(
        error,
        OutboundError::Temporary("peer.test:25 answered 451 4.3.0 try again later to RCPT TO".into())
    );
    assert!(
        !connection.is_broken(),
        "a refused recipient leaves the connection usable"
    );
    assert_eq!(
        connection.send(&mail(b"x")).await.unwrap(),
        "peer.test:25 answered 250 ok"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_5xx_at_mail_is_permanent() {
    let mut script = hello("250 peer.test");
    script.extend([Expect("MAIL FROM:<alice@example.com>"), Say("550 5.7.1 not from you")]);
    let (connection, server) = connect(script, None).await;
    let mut connection = connection.unwrap();
    let error = connection.send(&mail(b"x")).await.unwrap_err();
    assert_eq!(
        error,
        OutboundError::Permanent("peer.test:25 answered 550 5.7.1 not from you to MAIL FROM".into())
    );
    assert!(!connection.is_broken());
    server.await.unwrap();
}

#[tokio::test]
async fn a_421_ends_the_connection() {
    let mut script = hello("250 peer.test");
    script.extend([Expect("MAIL FROM:<alice@example.com>"), Say("421 4.3.2 shutting down")]);
    let (connection, server) = connect(script, None).await;
    let mut connection = connection.unwrap();
    let error = connection.send(&mail(b"x")).await.unwrap_err();
    assert!(matches!(error, OutboundError::Temporary(_)), "{error:?}");
    assert!(connection.is_broken());
    let again = connection.send(&mail(b"x")).await.unwrap_err();
    assert_eq!(
        again,
        OutboundError::Temporary("peer.test:25: the connection was lost".into())
    );
    server.await.unwrap();
}

/// A transaction up to the message, which the server reads whole.
/// A greeting, the envelope of [`mail`] accepted, and the client's `DATA`, unanswered.
fn up_to_data() -> Vec<Turn> {
    let mut script = hello("250 peer.test");
    script.extend([
        Expect("MAIL FROM:<alice@example.com>"),
        Say("250 ok"),
        Expect("RCPT TO:<+33477858589@sms>"),
        Say("250 ok"),
        Expect("DATA"),
    ]);
    script
}

fn up_to_the_final_dot() -> Vec<Turn> {
    let mut script = up_to_data();
    script.extend([Say("354 go on"), ExpectData("x\r\n.\r\n")]);
    script
}

#[tokio::test]
async fn a_break_after_the_final_dot_is_told_apart() {
    // The server reads the message with its final dot, then the connection closes.
    let (connection, server) = connect(up_to_the_final_dot(), None).await;
    let mut connection = connection.unwrap();
    let error = connection.send(&mail(b"x")).await.unwrap_err();
    assert_eq!(
        error,
        OutboundError::Unanswered("peer.test:25: connection closed without an answer".into())
    );
    assert!(error.is_unanswered() && !error.is_permanent());
    assert!(connection.is_broken());
    server.await.unwrap();

    // Silence after the final dot: the same.
    let mut script = up_to_the_final_dot();
    script.push(Wait(Duration::from_millis(600)));
    let (connection, server) = connect_within(Duration::from_millis(200), script, None).await;
    let error = connection.unwrap().send(&mail(b"x")).await.unwrap_err();
    assert_eq!(
        error,
        OutboundError::Unanswered("peer.test:25: timed out waiting for an answer".into())
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_break_before_the_final_dot_is_temporary() {
    let script = up_to_data();
    let (connection, server) = connect(script, None).await;
    let mut connection = connection.unwrap();
    let error = connection.send(&mail(b"x")).await.unwrap_err();
    assert_eq!(
        error,
        OutboundError::Temporary("peer.test:25: connection closed without an answer".into())
    );
    assert!(!error.is_unanswered());
    assert!(connection.is_broken());
    server.await.unwrap();
}

#[tokio::test]
async fn lines_starting_with_a_dot_are_stuffed_on_the_wire() {
    let mut script = up_to_data();
    script.extend([
        Say("354 go on"),
        ExpectData("..hidden\r\n..\r\nend\r\n.\r\n"),
        Say("250 ok"),
    ]);
    let (connection, server) = connect(script, None).await;
    connection.unwrap().send(&mail(b".hidden\r\n.\r\nend")).await.unwrap();
    server.await.unwrap();
}

#[tokio::test]
async fn auth_plain_sends_the_credentials_in_base64() {
    let mut script = hello("250-peer.test\r\n250 AUTH PLAIN LOGIN");
    script.extend([Expect("AUTH PLAIN AHVzZXIAcGFzcw=="), Say("235 2.7.0 ok")]);
    let (connection, server) = connect(script, Some(("user", "pass"))).await;
    connection.unwrap();
    server.await.unwrap();

    // A refused password is temporary: the operator fixes it, the mail waits.
    let mut script = hello("250-peer.test\r\n250 AUTH PLAIN");
    script.extend([Expect("AUTH PLAIN AHVzZXIAcGFzcw=="), Say("535 5.7.8 bad credentials")]);
    let (connection, server) = connect(script, Some(("user", "pass"))).await;
    assert_eq!(
        connection.err().unwrap(),
        OutboundError::Temporary("peer.test:25 answered 535 5.7.8 bad credentials to AUTH".into())
    );
    server.await.unwrap();

    let (connection, server) = connect(hello("250 peer.test"), Some(("user", "pass"))).await;
    assert_eq!(
        connection.err().unwrap(),
        OutboundError::Temporary("peer.test:25: does not offer AUTH, and credentials are configured for it".into())
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_refused_greeting_is_temporary() {
    let (connection, server) = connect(vec![Say("554 5.3.2 busy")], None).await;
    assert_eq!(
        connection.err().unwrap(),
        OutboundError::Temporary("peer.test:25 answered 554 5.3.2 busy to greeting".into())
    );
    server.await.unwrap();
}

#[tokio::test]
async fn noop_tells_whether_a_kept_connection_is_alive() {
    let mut script = hello("250 peer.test");
    script.extend([Expect("NOOP"), Say("250 ok")]);
    let (connection, server) = connect(script, None).await;
    let mut connection = connection.unwrap();
    assert!(connection.alive().await);
    server.await.unwrap();
    assert!(!connection.alive().await, "the server has gone");
}

#[test]
fn one_classifier_sorts_every_failure() {
    let refused = |code| {
        StepFailure::Refused(Response {
            code: Code::new(code).unwrap(),
            lines: vec!["why".into()],
        })
    };
    let broken = || StepFailure::Broken("connection lost".into());
    let table = [
        (Phase::Connection, refused(554), "Temporary"),
        (Phase::Connection, refused(421), "Temporary"),
        (Phase::Connection, broken(), "Temporary"),
        (Phase::Mail, refused(451), "Temporary"),
        (Phase::Mail, refused(550), "Permanent"),
        (Phase::Mail, broken(), "Temporary"),
        (Phase::EndOfData, refused(452), "Temporary"),
        (Phase::EndOfData, refused(554), "Permanent"),
        (Phase::EndOfData, broken(), "Unanswered"),
    ];
    for (phase, failure, kind) in table {
        let error = classify(&peer(), "DATA", phase, &failure);
        let (found, text) = match &error {
            OutboundError::Temporary(text) => ("Temporary", text),
            OutboundError::Permanent(text) => ("Permanent", text),
            OutboundError::Unanswered(text) => ("Unanswered", text),
        };
        assert_eq!(found, kind, "{phase:?} {failure:?}");
        let expected = match failure {
            StepFailure::Refused(response) => format!("peer.test:25 answered {} why to DATA", response.code),
            StepFailure::Broken(why) => format!("peer.test:25: {why}"),
        };
        assert_eq!(text, &expected);
    }
}

/// A TCP server on loopback playing `script` to one client.
async fn listen(script: Vec<Turn>) -> (Server, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        serve(tcp, script).await;
    });
    let server = Server {
        host: "127.0.0.1".into(),
        port,
    };
    (server, served)
}

/// The instances of a site, in order: one that cannot be reached and one that answers
/// `421` to the greeting are passed over; the first to take the connection is used; the
/// ones after it are not tried.
#[tokio::test]
async fn connect_first_takes_the_first_server_that_opens_a_session() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Server {
            host: "127.0.0.1".into(),
            port,
        }
    };
    let (busy, busy_served) = listen(vec![Say("421 4.3.2 busy")]).await;
    let mut live_script = hello("250 peer.test");
    live_script.extend([Expect("QUIT")]);
    let (live, live_served) = listen(live_script).await;
    let (never, _) = listen(Vec::new()).await;
    let servers = [dead.clone(), busy.clone(), live.clone(), never];
    let (connection, server) = client(Duration::from_secs(5))
        .connect_first(&servers, None)
        .await
        .unwrap();
    assert_eq!(server, &live);
    connection.quit().await;
    live_served.await.unwrap();
    drop(busy_served);
    let failed = client(Duration::from_secs(5))
        .connect_first(&[dead.clone(), dead.clone()], None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&failed, OutboundError::Temporary(why) if why.matches("cannot connect to").count() == 2),
        "{failed}"
    );
    let alone = client(Duration::from_secs(5))
        .connect_first(std::slice::from_ref(&dead), None)
        .await
        .err()
        .unwrap();
    assert!(
        alone.to_string().starts_with(&format!("cannot connect to {dead}")),
        "{alone}"
    );
}
