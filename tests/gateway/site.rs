//! A site: several instances sharing one PostgreSQL database, so one queue. A mail taken
//! by any instance is sent by whichever instance's modem should send it; an instance
//! killed loses nothing and has nothing sent twice; one restarted never disturbs
//! another's sends; two cannot share a name; and PostgreSQL itself may restart under
//! load. Each test has a fresh database on `$SMSGW_TEST_POSTGRES` (skipped without one,
//! outside CI); the last starts a server of its own, which it stops and starts again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::TempDir;
use crate::support::gateway::{Gateway, event_details};
use crate::support::postgres;
use crate::support::smtp::{Client, message, queued_ids};
use crate::support::wait::eventually;

/// `[store] url` and `extra` (modems): an instance of the site on `url`.
fn site_config(url: &str, extra: &str) -> String {
    format!("[store]\nurl = {}\n\n{extra}", toml::Value::String(url.to_string()))
}

/// Instance `name` of the site on `url`, with `extra` TOML (its modems).
fn instance(name: &str, url: &str, extra: &str) -> Gateway {
    Gateway::options(&site_config(url, extra)).name(name).start()
}

/// A simulated `[[modem]]` whose tariff covers `prefix` only; `sim` is its sim table.
fn modem(name: &str, prefix: &str, sim: &str) -> String {
    format!("[[modem]]\nname = \"{name}\"\nport = \"sim\"\ntariff = {{ \"{prefix}\" = 0.05 }}\nsim = {{ {sim} }}\n\n")
}

/// The sim's answer and report delays of a modem that sends at once.
const FAST: &str = "latency_ms = 0, report_delay_ms = 50";

/// States a request ends in once a modem has dealt with it.
const SENT: [&str; 2] = ["sent", "delivered"];

/// What became of one mail offered to an instance.
#[derive(Debug)]
enum Offered {
    /// 250 at the end of data: the request ids.
    Queued(Vec<i64>),
    /// A reply that ended the transaction: its code and text.
    Refused(u16, String),
    /// No connection, or it broke (the instance died): what went wrong.
    Broken(String),
}

/// Offers one mail to `number` at `address`, in a session of its own, and says how the
/// session ended: never panics, as the instance may die during it.
fn offer(address: SocketAddr, number: &str) -> Offered {
    let session = || {
        let mut client = match Client::try_connect(address) {
            Ok(client) => client,
            Err(Some(reply)) => return Offered::Refused(reply.code, reply.text()),
            Err(None) => return Offered::Broken("no connection".to_string()),
        };
        let steps = [
            ("EHLO", "EHLO site.example\r\n".to_string(), 250),
            ("MAIL", "MAIL FROM:<sender@example.com>\r\n".to_string(), 250),
            ("RCPT", format!("RCPT TO:<{number}@sms>\r\n"), 250),
            ("DATA", "DATA\r\n".to_string(), 354),
            ("end of data", format!("{}\r\n.\r\n", message("site", number)), 250),
        ];
        let mut last = None;
        for (step, line, code) in steps {
            client.send(&line);
            match client.reply() {
                Some(reply) if reply.code == code => last = Some(reply),
                Some(reply) => return Offered::Refused(reply.code, reply.text()),
                None => return Offered::Broken(format!("closed at {step}")),
            }
        }
        Offered::Queued(queued_ids(&last.expect("a reply").text()))
    };
    // Writes to a connection the dying instance reset panic in the client.
    std::panic::catch_unwind(session).unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
        Offered::Broken(why.unwrap_or_default())
    })
}

/// Requests by id.
/// Waits until `gateway`'s `/status` shows the site's modem `modem` ready: each
/// instance reads the others' modems every second.
fn wait_ready_in_status(gateway: &Gateway, modem: &str) {
    eventually(Duration::from_secs(10), || {
        let status: Value = serde_json::from_str(&gateway.http_get("/status")).expect("JSON");
        let modems = status["modems"].as_array().expect("modems");
        match modems.iter().find(|m| m["name"] == modem) {
            Some(found) if found["state"] == "ready" => Ok(()),
            found => Err(format!("{modem} in /status: {found:?}")),
        }
    });
}

fn by_id(queue: &[Value]) -> BTreeMap<i64, &Value> {
    queue.iter().map(|r| (r["id"].as_i64().unwrap(), r)).collect()
}

/// How many SMS each number got, from the sim records of `modems` (gateway, modem name).
fn sms_per_number(modems: &[(&Gateway, &str)]) -> BTreeMap<String, usize> {
    let mut count = BTreeMap::new();
    for (gateway, name) in modems {
        for record in gateway.records(name) {
            *count
                .entry(record["number"].as_str().expect("number").to_string())
                .or_default() += 1;
        }
    }
    count
}

/// Waits (up to `limit`) until every request is in one of `states`; the queue.
fn wait_all_within(gateway: &Gateway, states: &[&str], limit: Duration) -> Vec<Value> {
    eventually(limit, || {
        let queue = gateway.queue();
        let waiting: Vec<_> = queue
            .iter()
            .filter(|r| !states.iter().any(|s| r["state"] == *s))
            .map(|r| format!("{} {} {}", r["id"], r["state"], r["modem"]))
            .collect();
        if waiting.is_empty() {
            Ok(queue)
        } else {
            Err(format!(
                "{} of {} requests not yet {states:?}: {waiting:?}",
                waiting.len(),
                queue.len()
            ))
        }
    })
}

#[test]
fn a_mail_to_one_instance_is_sent_by_the_other_instances_modem() {
    let Some(url) = postgres::database() else { return };
    let a = instance(
        "a",
        &url,
        &format!("[http]\nlisten = \"127.0.0.1:0\"\n\n{}", modem("a1", "+44", FAST)),
    );
    // No status report for a long while: the request stays `sent`.
    let b = instance(
        "b",
        &url,
        &modem("b1", "+33", "latency_ms = 0, report_delay_ms = 600000"),
    );
    a.wait_for_log("ready modem=a1");
    b.wait_for_log("ready modem=b1");
    // a reads the site's modems every second: b1 is the site's once a's /status shows it.
    wait_ready_in_status(&a, "b1");
    let reply = a.client().mail(&["+33612345678@sms"], &message("site", "sent by b"));
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = queued_ids(&reply.text())[0];
    let detail = a.wait_state(id, "sent");
    assert_eq!(detail["number"], "+33612345678");
    let records = b.wait_records("b1", 1);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["number"], "+33612345678");
    let pdu = records[0]["pdu"].as_str().expect("pdu");
    let smsgw::sms::Pdu::Submit(submit) = smsgw::sms::decode(pdu).expect("a PDU") else {
        panic!("not a submit: {pdu}")
    };
    assert_eq!(submit.destination.number, "+33612345678");
    assert!(a.records("a1").is_empty(), "a1 sent: {:#?}", a.records("a1"));
    for gateway in [&a, &b] {
        let listed: Value = serde_json::from_str(&gateway.cli_ok(&["queue", "list", "--json"])).expect("JSON");
        for queue in [gateway.queue(), listed.as_array().expect("a list").clone()] {
            assert_eq!(queue.len(), 1, "{queue:#?}");
            assert_eq!(queue[0]["state"], "sent", "{queue:#?}");
            assert_eq!(queue[0]["instance"], "a", "{queue:#?}");
            assert_eq!(queue[0]["modem"], "b1", "{queue:#?}");
        }
    }
}

#[test]
fn an_instance_killed_under_load_loses_nothing_and_sends_nothing_twice() {
    const MAILS: usize = 1000;
    const SENDERS: usize = 4;
    let Some(url) = postgres::database() else { return };
    // Modems slower than intake: a queue builds up, and a's modems are in the middle of
    // sends when `a` dies.
    let sim = "latency_ms = 10, report_delay_ms = 50";
    let mut a = instance("a", &url, &[modem("a1", "+33", sim), modem("a2", "+33", sim)].concat());
    let b = instance("b", &url, &[modem("b1", "+33", sim), modem("b2", "+33", sim)].concat());
    for (gateway, name) in [(&a, "a1"), (&a, "a2"), (&b, "b1"), (&b, "b2")] {
        gateway.wait_for_log(&format!("ready modem={name}"));
    }
    let started = Instant::now();
    // Mail i goes to +33613<i>: one number a request, to match sim records to requests.
    let next = Arc::new(AtomicUsize::new(0));
    let a_dead = Arc::new(AtomicBool::new(false));
    // (id, number, the instance that acknowledged it)
    let acknowledged = Arc::new(Mutex::new(Vec::<(i64, String, char)>::new()));
    // Sessions with `a` that the kill broke: why.
    let broken = Arc::new(Mutex::new(Vec::<String>::new()));
    let (to_a, to_b) = (a.smtp, b.smtp);
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (next, a_dead, acknowledged, broken) =
                (next.clone(), a_dead.clone(), acknowledged.clone(), broken.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= MAILS {
                        return;
                    }
                    // Once `a` is gone the rest go to `b`; a number whose session broke
                    // is not offered again (`a` may have stored it).
                    let (address, to) = if a_dead.load(Ordering::Relaxed) {
                        (to_b, 'b')
                    } else {
                        (to_a, 'a')
                    };
                    let number = format!("+33613{i:06}");
                    match offer(address, &number) {
                        Offered::Queued(ids) => {
                            assert_eq!(ids.len(), 1, "{number}: {ids:?}");
                            acknowledged.lock().unwrap().push((ids[0], number, to));
                        }
                        Offered::Broken(why) if to == 'a' => broken.lock().unwrap().push(why),
                        Offered::Refused(code, text) => panic!("{number} to {to}: {code} {text}"),
                        Offered::Broken(why) => panic!("{number} to {to}: {why}"),
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(60), || {
        let count = acknowledged.lock().unwrap().len();
        if count >= MAILS / 2 {
            Ok(())
        } else {
            Err(format!("senders too slow: {count} of {} acknowledged", MAILS / 2))
        }
    });
    // A modem of a holds a lease (a send in flight) and a queue is waiting: then SIGKILL.
    let leased = eventually(Duration::from_secs(10), || {
        let seen = postgres::query(
            &url,
            "SELECT (SELECT string_agg(id::text, ',') FROM requests WHERE state = 'sending' AND modem IN ('a1', 'a2')),
                    (SELECT count(*) FROM requests WHERE state = 'queued')",
        );
        match seen.split_once('|') {
            Some((leased, queued)) if !leased.is_empty() && queued != "0" => Ok(leased.to_string()),
            _ => Err(format!("leased by a's modems, and queued: {seen}")),
        }
    });
    // New sessions go to b from now on; those under way with a break.
    a_dead.store(true, Ordering::Relaxed);
    a.kill();
    let killed_at = started.elapsed();
    for sender in senders {
        sender.join().expect("sender");
    }
    let pumped_in = started.elapsed();
    let queue = wait_all_within(&b, &["sent", "delivered", "uncertain"], Duration::from_secs(120));
    let drained_in = started.elapsed();

    let requests = by_id(&queue);
    let acknowledged = acknowledged.lock().unwrap().clone();
    let acknowledged_by_a = acknowledged.iter().filter(|(_, _, to)| *to == 'a').count();
    assert!(
        acknowledged_by_a >= MAILS / 2 && acknowledged.len() > acknowledged_by_a,
        "a was to be killed midway: {acknowledged_by_a} of {} acknowledged by a",
        acknowledged.len()
    );
    for (id, number, to) in &acknowledged {
        let request = requests
            .get(id)
            .unwrap_or_else(|| panic!("request {id} ({number}, acknowledged by {to}) lost"));
        assert_eq!(request["number"], number.as_str(), "request {id}");
        assert_eq!(request["instance"], to.to_string(), "request {id}");
    }
    // Requests acknowledged once each: one request a number.
    let numbers: BTreeSet<&str> = queue.iter().map(|r| r["number"].as_str().unwrap()).collect();
    assert_eq!(numbers.len(), queue.len(), "a number in two requests");
    let uncertain: Vec<&Value> = queue.iter().filter(|r| r["state"] == "uncertain").collect();
    for request in &uncertain {
        // Only what a's modems had in hand when `a` died may be uncertain.
        assert!(request["modem"] == "a1" || request["modem"] == "a2", "{request:#?}");
        let id = request["id"].as_i64().unwrap();
        let history = event_details(&b.show(id));
        assert!(
            history.contains("interrupted after AT+CMGS"),
            "request {id}:\n{history}"
        );
    }
    assert!(uncertain.len() <= 2, "a modem sends one SMS at a time: {uncertain:#?}");
    let sms = sms_per_number(&[(&a, "a1"), (&a, "a2"), (&b, "b1"), (&b, "b2")]);
    for request in &queue {
        let number = request["number"].as_str().unwrap();
        let got = sms.get(number).copied().unwrap_or(0);
        if request["state"] == "uncertain" {
            assert!(got <= 1, "{number} got {got} SMS: {request:#?}");
        } else {
            assert_eq!(got, 1, "{number} got {got} SMS: {request:#?}");
        }
    }
    let strays: Vec<_> = sms.keys().filter(|n| !numbers.contains(n.as_str())).collect();
    assert!(strays.is_empty(), "SMS to numbers of no request: {strays:?}");
    // What happened, for the record.
    let sent_by = |name: &str| queue.iter().filter(|r| r["modem"] == name).count();
    let interrupted = postgres::query(
        &url,
        "SELECT count(DISTINCT request_id) FROM events WHERE detail LIKE 'interrupted%'",
    );
    eprintln!(
        "{} acknowledged ({acknowledged_by_a} by a), {} requests, sessions the kill broke: {:?}; \
         a killed at {killed_at:?} \
         (a's modems leasing {leased} just before); a1 sent {}, a2 {}, b1 {}, b2 {}; \
         {} uncertain, {interrupted} interrupted; \
         senders done at {pumped_in:?}, all sent at {drained_in:?}",
        acknowledged.len(),
        queue.len(),
        broken.lock().unwrap(),
        sent_by("a1"),
        sent_by("a2"),
        sent_by("b1"),
        sent_by("b2"),
        uncertain.len(),
    );
}

#[test]
fn an_instance_restarted_never_disturbs_another_instances_sends() {
    const MAILS: usize = 40;
    const CRASHES: usize = 4;
    let Some(url) = postgres::database() else { return };
    let mut a = instance("a", &url, &modem("a1", "+44", FAST));
    // A slow modem: b holds a lease most of the time.
    let b = instance("b", &url, &modem("b1", "+33", "latency_ms = 250, report_delay_ms = 50"));
    a.wait_for_log("ready modem=a1");
    b.wait_for_log("ready modem=b1");
    let numbers: Vec<String> = (0..MAILS).map(|i| format!("+33614{i:06}@sms")).collect();
    let recipients: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let reply = b.client().mail(&recipients, &message("stream", "from b"));
    assert_eq!(reply.code, 250, "{reply:?}");
    let sent = |gateway: &Gateway| gateway.records("b1").len();
    let mut crashes = 0;
    while crashes < CRASHES {
        // Crash `a` while b1 is in the middle of the stream.
        let before = sent(&b);
        let sending = eventually(Duration::from_secs(20), || {
            let queue = b.queue();
            if queue.iter().any(|r| r["state"] == "sending" && r["modem"] == "b1") {
                Ok(true)
            } else if queue.iter().all(|r| SENT.iter().any(|s| r["state"] == *s)) {
                Ok(false)
            } else {
                Err(format!("b1 holds no lease: {queue:#?}"))
            }
        });
        if !sending {
            break;
        }
        a.crash_and_restart();
        crashes += 1;
        a.wait_for_log("ready modem=a1");
        // b sends on meanwhile, and a's start (its own recovery, its sweeps) has run.
        eventually(Duration::from_secs(20), || {
            let now = sent(&b);
            if now >= before + 3 || now == MAILS {
                Ok(())
            } else {
                Err(format!("crash {crashes}: b1 sent {now}, {before} before"))
            }
        });
    }
    assert!(
        crashes >= 2,
        "b1 sent everything after {crashes} crashes of a: too fast to tell"
    );
    eprintln!("a crashed and restarted {crashes} times while b1 sent");
    let queue = b.wait_all(&SENT);
    assert_eq!(queue.len(), MAILS);
    let sms = sms_per_number(&[(&a, "a1"), (&b, "b1")]);
    for request in &queue {
        let id = request["id"].as_i64().unwrap();
        let history = event_details(&b.show(id));
        let number = request["number"].as_str().unwrap();
        assert_eq!(sms.get(number), Some(&1), "{number}:\n{history}");
        assert_eq!(request["modem"], "b1", "{history}");
        assert!(!history.contains("interrupted"), "request {id}:\n{history}");
        assert!(!history.contains("uncertain"), "request {id}:\n{history}");
        assert_eq!(
            history.matches("\"sending\"").count(),
            1,
            "request {id} claimed more than once:\n{history}"
        );
    }
    assert!(a.records("a1").is_empty());
    assert_eq!(sms.len(), MAILS);
}

#[test]
fn two_instances_cannot_share_a_name() {
    let Some(url) = postgres::database() else { return };
    let mut first = instance("a", &url, "");
    let (mut second, status, log) = Gateway::options(&site_config(&url, "")).name("a").start_refused();
    assert!(!status.success(), "{status:?}\n{log}");
    assert!(
        log.contains("another running instance of the site is named \"a\""),
        "{status:?}\n{log}"
    );
    // The first still runs, and takes mail.
    assert_eq!(first.client().command("EHLO x", 250).code, 250);
    first.kill();
    // The name is free once its holder is gone.
    second.restart();
    assert_eq!(second.client().command("EHLO x", 250).code, 250);
}

/// A PostgreSQL server of the test's own (contrib/postgres/throwaway), stopped when
/// dropped, even when the test fails.
struct Server {
    dir: TempDir,
    url: String,
}

impl Server {
    fn start() -> Server {
        let dir = TempDir::new();
        let url = throwaway("start", &dir.0).trim().to_string();
        assert!(url.starts_with("postgres://"), "{url}");
        Server { dir, url }
    }

    /// Stops the server, keeping its cluster.
    fn pause(&self) {
        throwaway("pause", &self.dir.0);
    }

    /// Starts it again, on the same port.
    fn resume(&self) {
        throwaway("resume", &self.dir.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir.0).output();
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/postgres/throwaway")
}

/// Runs `throwaway <command> <dir>` from the repository; its standard output.
fn throwaway(command: &str, dir: &Path) -> String {
    let output = Command::new(script())
        .arg(command)
        .arg(dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run contrib/postgres/throwaway");
    assert!(
        output.status.success(),
        "throwaway {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Tells a client thread to stop when dropped: at the end, or when the test fails.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn postgresql_restarted_under_load() {
    // Only where the PostgreSQL tests run at all: the server here is the test's own.
    if postgres::server().is_none() {
        return;
    }
    let server = Server::start();
    // The network takes its time to accept each SMS, as a real one does (a second or
    // more): the modem is all but sure to be in the middle of a send when the server
    // goes down.
    let gateway = instance(
        "a",
        &server.url,
        &modem("a1", "+33", "latency_ms = 300, report_delay_ms = 50"),
    );
    gateway.wait_for_log("ready modem=a1");
    // One client, a mail every few milliseconds, each to a number of its own: (when its
    // session began, when it ended, number, outcome).
    let outcomes = Arc::new(Mutex::new(Vec::<(Instant, Instant, String, Offered)>::new()));
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let sender = {
        let (outcomes, stop, address) = (outcomes.clone(), stop.0.clone(), gateway.smtp);
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let number = format!("+33615{i:06}");
                let began = Instant::now();
                let outcome = offer(address, &number);
                outcomes.lock().unwrap().push((began, Instant::now(), number, outcome));
                i += 1;
                // A steady flow, not a flood: pacing, not waiting for an outcome.
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let queued = |outcomes: &Mutex<Vec<(Instant, Instant, String, Offered)>>, since: Instant| {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(began, _, _, o)| *began >= since && matches!(o, Offered::Queued(_)))
            .count()
    };
    let started = Instant::now();
    eventually(Duration::from_secs(30), || match queued(&outcomes, started) {
        n if n >= 10 => Ok(()),
        n => Err(format!("{n} of 10 mails queued before the restart")),
    });
    server.pause();
    let down = Instant::now();
    // While it is down, new mails are refused with 451 4.3.0: nothing is stored.
    eventually(Duration::from_secs(30), || {
        let refused = outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(began, _, _, o)| *began >= down && matches!(o, Offered::Refused(451, _)))
            .count();
        if refused >= 5 {
            Ok(())
        } else {
            Err(format!(
                "{refused} of 5 mails refused with 451 while PostgreSQL is down"
            ))
        }
    });
    let up = Instant::now();
    server.resume();
    eventually(Duration::from_secs(30), || match queued(&outcomes, up) {
        n if n >= 10 => Ok(()),
        n => Err(format!("{n} of 10 mails queued since PostgreSQL came back")),
    });
    drop(stop);
    sender.join().expect("sender");

    let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    // Sessions wholly within the outage.
    let during: Vec<_> = outcomes
        .iter()
        .filter(|(began, ended, _, _)| *began >= down && *ended < up)
        .collect();
    for (_, _, number, outcome) in &during {
        match outcome {
            Offered::Refused(451, text) if text.starts_with("4.3.0") => {}
            other => panic!("{number}, offered while PostgreSQL was down: {other:?}"),
        }
    }
    let queue = eventually(Duration::from_secs(60), || {
        let queue = gateway.queue();
        let waiting: Vec<String> = queue
            .iter()
            .filter(|r| !SENT.iter().any(|s| r["state"] == *s))
            .map(|r| {
                let id = r["id"].as_i64().unwrap();
                let number = r["number"].as_str().unwrap();
                let sms = sms_per_number(&[(&gateway, "a1")]).get(number).copied().unwrap_or(0);
                format!(
                    "request {id} to {number}, {sms} SMS in a1's records:\n{}",
                    event_details(&gateway.show(id))
                )
            })
            .collect();
        if waiting.is_empty() {
            Ok(queue)
        } else {
            Err(format!(
                "{} of {} requests not sent after PostgreSQL came back:\n{}the gateway's warnings:\n{}",
                waiting.len(),
                queue.len(),
                waiting.join(""),
                gateway
                    .log_lines("WARN")
                    .into_iter()
                    .filter(|line| line.contains("smsgw::"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ))
        }
    });
    let requests = by_id(&queue);
    let mut acknowledged = 0;
    for (_, _, number, outcome) in &outcomes {
        if let Offered::Queued(ids) = outcome {
            acknowledged += 1;
            let request = requests
                .get(&ids[0])
                .unwrap_or_else(|| panic!("request {ids:?} ({number}) lost"));
            assert_eq!(request["number"], number.as_str());
        }
    }
    let sms = sms_per_number(&[(&gateway, "a1")]);
    for request in &queue {
        let number = request["number"].as_str().unwrap();
        let id = request["id"].as_i64().unwrap();
        assert_eq!(
            sms.get(number),
            Some(&1),
            "{number}:\n{}",
            event_details(&gateway.show(id))
        );
    }
    eprintln!(
        "{} mails offered, {acknowledged} queued, {} refused while PostgreSQL was down ({:?})",
        outcomes.len(),
        during.len(),
        up - down
    );
}

/// `security.per_minute` holds for a sender across the site: what one instance let it
/// send counts at the other.
#[test]
fn a_senders_rate_limit_holds_across_the_site() {
    let Some(url) = postgres::database() else { return };
    let limits = "[security]\nper_minute = 3\nper_day = 0\nnumbers_per_day = 0\nper_sender = true\n\n";
    let a = instance("a", &url, &format!("{limits}{}", modem("a1", "+33", FAST)));
    let b = instance("b", &url, &format!("{limits}{}", modem("b1", "+33", FAST)));
    for n in 0..2 {
        let offered = offer(a.smtp, &format!("+3361700000{n}"));
        assert!(matches!(offered, Offered::Queued(_)), "{offered:?}");
    }
    // The instances share their counts every second: no event says b has read a's.
    eventually(Duration::from_secs(10), || {
        match postgres::query(&url, "SELECT minute FROM usage WHERE instance = 'a'").as_str() {
            "2" => Ok(()),
            other => Err(format!("a's count in the site: {other:?}")),
        }
    });
    std::thread::sleep(Duration::from_millis(2500));
    let third = offer(b.smtp, "+33617000002");
    assert!(matches!(third, Offered::Queued(_)), "{third:?}");
    match offer(b.smtp, "+33617000003") {
        Offered::Refused(450, text) => assert!(
            text.contains("<sender@example.com>: more than 3 requests in a minute"),
            "{text}"
        ),
        other => panic!("the fourth in a minute, through the other instance: {other:?}"),
    }
}

/// A cheaper modem of the site that fails sends for a while does not keep its prefixes
/// to itself: after a failed send it is not shown ready for a minute, and the site's
/// other modems take its retries.
#[test]
fn a_failing_cheaper_modem_leaves_its_retries_to_the_site() {
    let Some(url) = postgres::database() else { return };
    let number = "+33618000000";
    let retry = "[sms]\nretry_delays_secs = [1]\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n";
    let a = instance(
        "a",
        &url,
        &format!(
            "{retry}[[modem]]\nname = \"a1\"\nport = \"sim\"\ntariff = {{ \"+33\" = 0.01 }}\n\
             sim = {{ latency_ms = 0, cms_error = {{ \"{number}\" = 38 }} }}\n"
        ),
    );
    let b = instance(
        "b",
        &url,
        &format!(
            "{retry}[[modem]]\nname = \"b1\"\nport = \"sim\"\ntariff = {{ \"+33\" = 0.05 }}\nsim = {{ {FAST} }}\n"
        ),
    );
    // Each knows the other's modem before the mail: b1 leaves +33 to the cheaper a1.
    wait_ready_in_status(&a, "b1");
    wait_ready_in_status(&b, "a1");
    let reply = a
        .client()
        .mail(&[&format!("{number}@sms")], &message("site", "retried elsewhere"));
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = queued_ids(&reply.text())[0];
    let detail = wait_all_within(&a, &SENT, Duration::from_secs(30))
        .into_iter()
        .find(|r| r["id"] == id)
        .expect("the request");
    assert_eq!(detail["modem"], "b1", "{detail:#?}");
    let story = event_details(&a.show(id));
    assert!(story.contains("+CMS ERROR: 38"), "a1 tried it first: {story}");
    assert!(a.records("a1").is_empty());
    assert_eq!(b.records("b1").len(), 1);
}
