//! Intake benchmark: N mails over M concurrent connections, one connection per mail
//! (as Postfix's `smtp-source -s M -m N` does), against the release binary with an
//! fsync'ed store. Prints accepted mails/s, p50/p99 latency per mail and the gateway's
//! peak memory, then checks that every mail is in the store.
//!
//!     cargo bench --bench intake -- [--mails 20000] [--connections 64] [--size 1024]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Options {
    mails: usize,
    connections: usize,
    size: usize,
}

fn options() -> Options {
    let mut options = Options {
        mails: 20_000,
        connections: 64,
        size: 1024,
    };
    let args: Vec<String> = std::env::args().collect();
    for pair in args.windows(2) {
        let value = || pair[1].parse().expect("a number");
        match pair[0].as_str() {
            "--mails" => options.mails = value(),
            "--connections" => options.connections = value(),
            "--size" => options.size = value(),
            _ => {}
        }
    }
    options
}

fn main() {
    let options = options();
    let dir = std::env::temp_dir().join(format!("smsgw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("smsgw.toml");
    std::fs::write(
        &config,
        format!(
            "[instance]\ndata_dir = {:?}\n[smtp]\nlisten = [\"127.0.0.1:0\"]\nmax_connections = 1024\n",
            dir.join("data")
        ),
    )
    .unwrap();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn,smsgw=info,smsgw::smtp=warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smsgw");
    let address = listening_address(gateway.stderr.take().unwrap());
    let body = body(options.size);

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..options.connections)
        .map(|_| {
            let (next, body, total) = (next.clone(), body.clone(), options.mails);
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    let begun = Instant::now();
                    send_one(address, &body);
                    latencies.push(begun.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let elapsed = started.elapsed();
    latencies.sort();
    let peak_kib = peak_memory_kib(gateway.id());

    let percentile = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{} mails of {} bytes over {} connections in {:.2} s: {:.0} mails/s accepted and stored",
        options.mails,
        options.size,
        options.connections,
        elapsed.as_secs_f64(),
        options.mails as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency per mail (connect to 250 after DATA): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(0.50).as_secs_f64() * 1e3,
        percentile(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    println!("gateway peak resident memory: {} MiB", peak_kib / 1024);

    let _ = gateway.kill();
    let _ = gateway.wait();
    let listed = Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .args(["queue", "list", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stored = serde_json::from_slice::<serde_json::Value>(&listed.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len();
    println!("stored after SIGKILL: {stored} of {} requests", options.mails);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(stored, options.mails, "mails lost");
}

fn listening_address(stderr: std::process::ChildStderr) -> SocketAddr {
    let mut lines = BufReader::new(stderr).lines();
    let address = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split("SMTP listening address=")
                .nth(1)
                .map(|a| a.trim().to_string())
        })
        .expect("gateway did not start");
    // Keep draining the log so the gateway never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    address.parse().unwrap()
}

fn body(size: usize) -> Arc<Vec<u8>> {
    let mut mail = b"From: bench@example.com\r\nTo: +33477858589@sms\r\nSubject: bench\r\n\r\n".to_vec();
    while mail.len() < size {
        mail.extend_from_slice(b"The quick brown fox jumps over the lazy dog 0123456789\r\n");
    }
    mail.extend_from_slice(b".\r\n");
    Arc::new(mail)
}

/// One mail on its own connection, one command at a time as smtp-source does.
fn send_one(address: SocketAddr, body: &[u8]) {
    let stream = TcpStream::connect(address).expect("connect");
    stream.set_nodelay(true).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut expect = |code: &str| {
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).expect("reply");
            assert!(line.starts_with(code), "expected {code}, got {line:?}");
            if line.as_bytes().get(3) == Some(&b' ') {
                return;
            }
        }
    };
    expect("220");
    for (command, code) in [
        ("EHLO bench.example\r\n", "250"),
        ("MAIL FROM:<bench@example.com>\r\n", "250"),
        ("RCPT TO:<+33477858589@sms>\r\n", "250"),
        ("DATA\r\n", "354"),
    ] {
        writer.write_all(command.as_bytes()).unwrap();
        expect(code);
    }
    writer.write_all(body).unwrap();
    expect("250");
    writer.write_all(b"QUIT\r\n").unwrap();
    expect("221");
}

fn peak_memory_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
