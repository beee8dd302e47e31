//! Intake benchmark: N mails over M concurrent connections, one connection per mail
//! (as Postfix's `smtp-source -s M -m N` does), against the release binary with an
//! fsync'ed store. Prints accepted mails/s, p50/p99 latency per mail and the gateway's
//! peak memory, then kills the gateway and checks that every mail is in the store.
//!
//!     cargo bench --bench intake -- [--mails 20000] [--connections 64] [--size 1024]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let (mails, connections, size) = (
        common::option("--mails", 20_000),
        common::option("--connections", 64),
        common::option("--size", 1024),
    );
    let mut gateway = common::Gateway::start("");
    let mail = Arc::new(common::mail(size));
    let recipients = Arc::new(vec!["+33477858589@sms".to_string()]);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (next, mail, recipients, address) = (next.clone(), mail.clone(), recipients.clone(), gateway.smtp);
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < mails {
                    let begun = Instant::now();
                    common::send(address, &recipients, &mail);
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{mails} mails of {size} bytes over {connections} connections in {:.2} s: {:.0} mails/s accepted and stored",
        elapsed.as_secs_f64(),
        mails as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency per mail (connect to 250 after DATA): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(0.50)),
        ms(percentile(0.99)),
        ms(*latencies.last().unwrap())
    );
    println!("gateway peak resident memory: {} MiB", gateway.peak_memory_kib() / 1024);
    let _ = gateway.child.kill();
    let _ = gateway.child.wait();
    let stored = gateway.stored();
    println!("stored after SIGKILL: {stored} of {mails} requests");
    assert_eq!(stored, mails, "mails lost");
}
