//! Modem pool benchmark, through the real serial path (PTYs) to simulated modems.
//!
//! 1. Throughput: N requests to M zero-latency modems: SMS/s and CPU per SMS (the
//!    gateway's CPU, simulated modems included: they run in its process).
//! 2. Utilisation: modems that take `--slow-ms` per SMS (3 s, as a real network does):
//!    how much of their time they spend sending; the aim is 95% or more.
//! 3. CPU while waiting: the gateway's CPU (user + system, from /proc/<pid>/stat) over
//!    `--cpu-secs` while (a) a modem at its `per_minute` limit has a backlog of
//!    `--backlog` requests beside an idle modem, (b) as many requests wait that no modem
//!    may send, and (c) nothing is queued. Near zero in each: the dispatcher sleeps
//!    until something changes. `--cpu-only 1` runs this part alone.
//!
//! Run:
//!
//!     cargo bench --bench modems -- [--requests 3000] [--modems 3] [--slow-ms 3000] [--slow-requests 30]
//!     cargo bench --bench modems -- --cpu-only 1 [--cpu-secs 30] [--backlog 3000]

mod common;

use std::time::{Duration, Instant};

fn config(modems: usize, latency_ms: usize) -> String {
    (0..modems)
        .map(|i| {
            format!("[[modem]]\nname = \"sim{i}\"\nport = \"sim\"\nsim = {{ latency_ms = {latency_ms}, report_delay_ms = 0 }}\n")
        })
        .collect()
}

/// Submits `requests` distinct numbers, 100 per mail; returns when all parts are recorded.
fn run(gateway: &common::Gateway, modems: usize, requests: usize) -> Duration {
    let numbers: Vec<String> = (0..requests)
        .map(|i| format!("+336{:08}@sms", 12_000_000 + i))
        .collect();
    let mail = common::mail(100);
    let started = Instant::now();
    for chunk in numbers.chunks(100) {
        common::send(gateway.smtp, chunk, &mail);
    }
    let deadline = started + Duration::from_secs(600);
    loop {
        let sent: usize = (0..modems).map(|i| gateway.recorded(&format!("sim{i}"))).sum();
        if sent >= requests {
            return started.elapsed();
        }
        assert!(Instant::now() < deadline, "only {sent} of {requests} sent");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A modem of the simulator with `extra` keys (its own `sim` table, or one that answers
/// at once).
fn modem(name: &str, extra: &str) -> String {
    let sim = if extra.contains("sim =") {
        ""
    } else {
        "sim = { latency_ms = 0, report_delay_ms = 0 }"
    };
    format!("[[modem]]\nname = \"{name}\"\nport = \"sim\"\n{extra}\n{sim}\n")
}

/// Submits `count` French numbers, 100 per mail, and waits until `queued` of them wait
/// in the queue and `sim0` recorded `sent` parts.
fn backlog(gateway: &common::Gateway, count: usize, queued: usize, sent: usize) {
    let numbers: Vec<String> = (0..count).map(|i| format!("+336{:08}@sms", 12_000_000 + i)).collect();
    let mail = common::mail(100);
    for chunk in numbers.chunks(100) {
        common::send(gateway.smtp, chunk, &mail);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while gateway.stored_in(Some("queued")) < queued || gateway.recorded("sim0") < sent {
        assert!(Instant::now() < deadline, "the backlog never settled");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The gateway's CPU over `window`, as a share of one core.
fn cpu_over(gateway: &common::Gateway, window: Duration) -> f64 {
    let before = gateway.cpu_seconds();
    std::thread::sleep(window);
    (gateway.cpu_seconds() - before) / window.as_secs_f64()
}

fn cpu_while_waiting() {
    let window = Duration::from_secs(common::option("--cpu-secs", 30) as u64);
    let count = common::option("--backlog", 3000);
    let report = |what: &str, share: f64| {
        println!(
            "{what}: gateway CPU {:.2}% of one core ({:.1} ms per second) over {} s",
            share * 100.0,
            share * 1000.0,
            window.as_secs()
        )
    };

    // (a) sim0 sends French numbers, three a minute; sim1, British ones only, is idle.
    // The first French number meets a temporary error: due again a second later, it
    // waits for sim0's minute with the others.
    let gateway = common::Gateway::start(&format!(
        "[sms]\nretry_delays_secs = [1]\n{}{}",
        modem(
            "sim0",
            "per_minute = 3\ntariff = { \"+33\" = 0.01 }\nsim = { latency_ms = 0, report_delay_ms = 0, cms_error = { \"+33612000000\" = 38 } }"
        ),
        modem("sim1", "tariff = { \"+44\" = 0.01 }")
    ));
    backlog(&gateway, count, count - 2, 2);
    let share = cpu_over(&gateway, window);
    let sent = gateway.recorded("sim0");
    assert!(sent <= 3 * (2 + window.as_secs() as usize / 60), "{sent} sent");
    report(
        &format!("a modem at its rate limit (3/min) with {count} queued (one of them retried), another idle"),
        share,
    );
    drop(gateway);

    // (b) The only modem sends British numbers: the French ones wait for validity.
    let gateway = common::Gateway::start(&modem("sim0", "tariff = { \"+44\" = 0.03 }"));
    backlog(&gateway, count, count, 0);
    report(
        &format!("{count} queued requests that no modem may send"),
        cpu_over(&gateway, window),
    );
    drop(gateway);

    // (c) Nothing queued.
    let gateway = common::Gateway::start(&modem("sim0", ""));
    while gateway.stored() > 0 {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    report("nothing queued", cpu_over(&gateway, window));
}

fn main() {
    if common::option("--cpu-only", 0) == 1 {
        return cpu_while_waiting();
    }
    let (requests, modems) = (common::option("--requests", 3000), common::option("--modems", 3));
    let gateway = common::Gateway::start(&config(modems, 0));
    let cpu_before = gateway.cpu_seconds();
    let elapsed = run(&gateway, modems, requests);
    let cpu = gateway.cpu_seconds() - cpu_before;
    println!(
        "{requests} SMS over {modems} zero-latency modems in {:.2} s: {:.0} SMS/s; gateway CPU {:.0} µs per SMS (intake, store, pool, serial I/O and the simulators)",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        cpu / requests as f64 * 1e6
    );
    drop(gateway);

    let (slow_ms, slow_requests) = (common::option("--slow-ms", 3000), common::option("--slow-requests", 30));
    let gateway = common::Gateway::start(&config(modems, slow_ms));
    let elapsed = run(&gateway, modems, slow_requests);
    let busy = Duration::from_millis((slow_requests * slow_ms) as u64);
    println!(
        "{slow_requests} SMS over {modems} modems taking {slow_ms} ms each in {:.2} s: modem utilisation {:.1}%",
        elapsed.as_secs_f64(),
        100.0 * busy.as_secs_f64() / (modems as f64 * elapsed.as_secs_f64())
    );
    drop(gateway);

    cpu_while_waiting();
}
