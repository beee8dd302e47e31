//! Modem pool benchmark, through the real serial path (PTYs) to simulated modems.
//!
//! 1. Throughput: N requests to M zero-latency modems: SMS/s and CPU per SMS (the
//!    gateway's CPU, simulated modems included: they run in its process).
//! 2. Utilisation: modems that take `--slow-ms` per SMS (3 s, as a real network does):
//!    how much of their time they spend sending; the aim is 95% or more.
//!
//!     cargo bench --bench modems -- [--requests 3000] [--modems 3] [--slow-ms 3000] [--slow-requests 30]

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

fn main() {
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
}
