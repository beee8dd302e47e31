//! Nothing acknowledged is lost: not on SIGKILL, not on SIGTERM.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::smtp::{Client, message, queued_ids};
use crate::support::wait::eventually;

#[test]
fn every_acknowledged_request_survives_sigkill() {
    let mut gateway = Gateway::start("");
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..8)
        .map(|_| {
            let (acknowledged, stop, address) = (acknowledged.clone(), stop.clone(), gateway.smtp);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Each session dies with the server at some point: that is the test.
                    let Ok(stream) = std::net::TcpStream::connect(address) else {
                        return;
                    };
                    drop(stream);
                    let result = std::panic::catch_unwind(|| {
                        let mut client = Client::connect(address);
                        client.mail(&["+33477858589@sms", "+447911123456@sms"], &message("crash", "test"))
                    });
                    match result {
                        Ok(reply) if reply.code == 250 => {
                            acknowledged.lock().unwrap().extend(queued_ids(&reply.text()))
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(60), || {
        let count = acknowledged.lock().unwrap().len();
        if count >= 200 {
            Ok(())
        } else {
            Err(format!("senders too slow: {count} of 200 acknowledged"))
        }
    });
    gateway.crash_and_restart();
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        let _ = sender.join();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let stored: BTreeSet<i64> = gateway.queue().iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let lost: Vec<_> = acknowledged.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged requests lost: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    // The restarted gateway takes mail again.
    assert_eq!(
        gateway
            .client()
            .mail(&["+33477858589@sms"], &message("after", "restart"))
            .code,
        250
    );
}

#[test]
fn sigterm_lets_a_message_in_progress_finish_then_exits_0() {
    let mut gateway = Gateway::start("");
    let mut sending = gateway.client();
    sending.command("EHLO client.example", 250);
    sending.command("MAIL FROM:<a@example.com>", 250);
    sending.command("RCPT TO:<+33477858589@sms>", 250);
    sending.command("DATA", 354);
    sending.send("Subject: last words\r\n\r\nsent during shutdown\r\n");
    let mut idle = gateway.client();
    idle.command("EHLO idle.example", 250);
    gateway.signal("TERM");
    gateway.wait_for_log("SIGTERM");
    assert!(idle.expect(421).text().starts_with("4.3.2"));
    assert!(idle.is_closed());
    sending.send(".\r\n");
    sending.expect(250);
    sending.expect(421);
    assert!(gateway.wait_exit().success());
    assert_eq!(gateway.queue().len(), 1);
}
