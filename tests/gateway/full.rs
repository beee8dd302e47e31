//! A queue that fills up (`store.max_size_mb`): intake answers `451 4.3.0` for what was
//! not stored, and every answer is the truth. The cap is a soft one, checked by intake
//! mail by mail: a mail that does not fit is refused alone, never by SQLite rolling back
//! the transaction it shares with other mails.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Barrier;

use crate::support::gateway::Gateway;
use crate::support::smtp::{Client, queued_ids};

/// Concurrent senders: enough that several mails share a writer batch when the cap hits.
const SENDERS: usize = 16;
/// `451` replies each sender waits for before it stops.
const REFUSALS: usize = 8;
/// Most mails one sender may send: the queue must be full well before.
const MOST_MAILS: usize = 200;
/// Body sizes. Once a large mail no longer fits, small ones still do for a while: in a
/// batch that holds both, the large one first, the small mail after it must neither
/// commit unheard nor be refused for it.
const SIZES: [usize; 8] = [480_000, 300, 300, 300, 200_000, 300, 300, 300];

/// What one mail heard at the end of its data.
struct Outcome {
    /// Its subject, unique to it.
    subject: String,
    code: u16,
    text: String,
}

/// A mail of `size` body bytes in 76-character lines.
fn mail(subject: &str, size: usize) -> String {
    let line = format!("{}\r\n", "x".repeat(76));
    let body = line.repeat(size / line.len() + 1);
    format!("From: sender@example.com\r\nTo: sms\r\nSubject: {subject}\r\n\r\n{body}")
}

/// The subject of a stored mail.
fn subject(raw: &str) -> String {
    raw.lines()
        .find_map(|line| line.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_string()
}

/// One sender: mails of every size to two numbers, on one connection, until the
/// gateway has refused `REFUSALS` of them.
fn send_until_refused(address: SocketAddr, sender: usize, start: &Barrier) -> Vec<Outcome> {
    let mut client = Client::connect(address);
    start.wait();
    let mut outcomes = Vec::new();
    while outcomes.iter().filter(|o: &&Outcome| o.code != 250).count() < REFUSALS {
        let n = outcomes.len();
        assert!(n < MOST_MAILS, "sender {sender}: {n} mails and the queue is not full");
        let subject = format!("full s{sender:02} m{n:03}");
        let size = SIZES[(sender + n) % SIZES.len()];
        let reply = client.mail(&["+33477858589@sms", "+447911123456@sms"], &mail(&subject, size));
        outcomes.push(Outcome {
            subject,
            code: reply.code,
            text: reply.text(),
        });
    }
    outcomes
}

#[test]
fn a_full_queue_refuses_with_451_and_every_answer_is_the_truth() {
    // The cap comes from the environment, as an operator may set it.
    let mut gateway = Gateway::options("[smtp]\nmax_message_size = 524288\n")
        .env("SMSGW__STORE__MAX_SIZE_MB", "2")
        .start();
    let start = Barrier::new(SENDERS);
    let mut outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..SENDERS)
            .map(|sender| {
                let (address, start) = (gateway.smtp, &start);
                scope.spawn(move || send_until_refused(address, sender, start))
            })
            .collect();
        senders.into_iter().flat_map(|s| s.join().expect("sender")).collect()
    });

    // Accepted or refused for now because the queue is full, nothing else: no batch was
    // rolled back by SQLite (that would read "Local storage error").
    for outcome in &outcomes {
        assert!(
            outcome.code == 250 || (outcome.code == 451 && outcome.text.starts_with("4.3.0 The queue is full")),
            "{}: {} {}",
            outcome.subject,
            outcome.code,
            outcome.text
        );
    }
    assert!(outcomes.iter().any(|o| o.code == 250), "nothing was accepted");
    assert_truthful(&gateway, &outcomes);

    // The gateway still answers.
    let mut client = gateway.client();
    client.command("EHLO client.example", 250);
    client.command("NOOP", 250);
    client.command("QUIT", 221);

    // A database at its cap opens again, answers, has lost nothing, and still tells
    // the truth about what fits.
    gateway.kill();
    gateway.restart();
    let mut client = gateway.client();
    client.command("NOOP", 250);
    let subject = "after restart".to_string();
    let reply = client.mail(&["+33477858589@sms", "+447911123456@sms"], &mail(&subject, SIZES[0]));
    assert!(reply.code == 451 || reply.code == 250, "{reply:?}");
    outcomes.push(Outcome {
        subject,
        code: reply.code,
        text: reply.text(),
    });
    assert_truthful(&gateway, &outcomes);
}

/// Every recipient answered 250 is in the store, and nothing else: no request and no
/// mail answered 451.
fn assert_truthful(gateway: &Gateway, outcomes: &[Outcome]) {
    let accepted: Vec<&Outcome> = outcomes.iter().filter(|o| o.code == 250).collect();
    let refused = outcomes.len() - accepted.len();
    let acknowledged: BTreeSet<i64> = accepted.iter().flat_map(|o| queued_ids(&o.text)).collect();
    assert_eq!(acknowledged.len(), 2 * accepted.len(), "two requests a mail");
    let stored: BTreeSet<i64> = gateway.queue().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(
        stored.difference(&acknowledged).count() + acknowledged.difference(&stored).count(),
        0,
        "stored but refused: {:?}; acknowledged but lost: {:?}",
        stored.difference(&acknowledged).collect::<Vec<_>>(),
        acknowledged.difference(&stored).collect::<Vec<_>>()
    );
    let stored: BTreeSet<String> = gateway.store().messages().iter().map(|raw| subject(raw)).collect();
    let refused_but_stored: Vec<_> = outcomes
        .iter()
        .filter(|o| o.code != 250 && stored.contains(&o.subject))
        .map(|o| &o.subject)
        .collect();
    assert!(
        refused_but_stored.is_empty(),
        "{} of {refused} mails answered 451 are stored: {refused_but_stored:?}",
        refused_but_stored.len()
    );
    let accepted_but_lost: Vec<_> = accepted
        .iter()
        .filter(|o| !stored.contains(&o.subject))
        .map(|o| &o.subject)
        .collect();
    assert!(accepted_but_lost.is_empty(), "accepted but lost: {accepted_but_lost:?}");
}
