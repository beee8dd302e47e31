//! Forwarding benchmark: requests accepted by an instance without modems ("uk") and
//! forwarded over SMTP (AUTH, loopback, no TLS) to the peer that sends them ("fr", three
//! zero-latency simulated modems). Measures forwards per second, the time until fr
//! has sent them all, and each instance's peak memory. The mail goes to 100 numbers at
//! a time; `--size` sets its size in bytes (uk holds one copy of a mail, however many
//! of its requests are forwarded at once).
//!
//!     cargo bench --bench cluster -- [--requests 3000] [--size 1024]
//!     cargo bench --bench cluster -- --requests 100 --size 1000000

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `smsgw user add NAME` into `users_file`, the password on stdin.
fn add_user(users_file: &std::path::Path, name: &str, password: &str) {
    let config = users_file.with_extension("cli.toml");
    std::fs::write(&config, format!("[security]\nusers_file = {users_file:?}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_smsgw"))
        .args(["user", "add", name, "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

fn main() {
    let requests = common::option("--requests", 3000);
    let users = std::env::temp_dir().join(format!("smsgw-bench-users-{}", std::process::id()));
    std::fs::create_dir_all(&users).unwrap();
    let (fr_users, uk_users) = (users.join("fr.toml"), users.join("uk.toml"));
    add_user(&fr_users, "uk", "password-uk");
    add_user(&uk_users, "fr", "password-fr");
    let (uk_smtp, uk_http, fr_smtp, fr_http) = (free_port(), free_port(), free_port(), free_port());
    let modems: String = (0..3)
        .map(|i| {
            format!(
                "[[modem]]\nname = \"sim{i}\"\nport = \"sim\"\ntariff = {{ \"+33\" = 0.01 }}\n\
                 sim = {{ latency_ms = 0, report_delay_ms = 0 }}\n"
            )
        })
        .collect();
    let peer = |name: &str, smtp: u16, http: u16, user: &str| {
        format!(
            "[[peer]]\nname = \"{name}\"\nsmtp = \"127.0.0.1:{smtp}\"\nstatus_url = \"http://127.0.0.1:{http}/status\"\n\
             user = \"{user}\"\npassword = \"password-{user}\"\ntls = \"none\"\n"
        )
    };
    let fr = common::Gateway::start_named(
        "fr",
        &format!("127.0.0.1:{fr_smtp}"),
        &format!(
            "users_file = {fr_users:?}\n[http]\nlisten = \"127.0.0.1:{fr_http}\"\n[routing]\npoll_secs = 1\n\
             {modems}{}",
            peer("uk", uk_smtp, uk_http, "fr")
        ),
    );
    let uk = common::Gateway::start_named(
        "uk",
        &format!("127.0.0.1:{uk_smtp}"),
        &format!(
            "users_file = {uk_users:?}\n[http]\nlisten = \"127.0.0.1:{uk_http}\"\n[routing]\npoll_secs = 1\n{}",
            peer("fr", fr_smtp, fr_http, "uk")
        ),
    );
    // Let uk see fr up before the load.
    std::thread::sleep(Duration::from_secs(2));
    let numbers: Vec<String> = (0..requests)
        .map(|i| format!("+336{:08}@sms", 12_000_000 + i))
        .collect();
    let mail = common::mail(common::option("--size", 1024));
    let started = Instant::now();
    for chunk in numbers.chunks(100) {
        common::send(uk.smtp, chunk, &mail);
    }
    let accepted = started.elapsed();
    let deadline = started + Duration::from_secs(600);
    let forwarded = loop {
        if uk.stored_in(Some("forwarded")) >= requests {
            break started.elapsed();
        }
        assert!(Instant::now() < deadline, "not all forwarded");
        std::thread::sleep(Duration::from_millis(100));
    };
    let sent = loop {
        let recorded: usize = (0..3).map(|i| fr.recorded(&format!("sim{i}"))).sum();
        if recorded >= requests {
            break started.elapsed();
        }
        assert!(Instant::now() < deadline, "not all sent");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "{requests} requests accepted by uk in {:.2} s; all forwarded to fr after {:.2} s: {:.0} forwards/s; \
         all sent by fr's 3 modems after {:.2} s",
        accepted.as_secs_f64(),
        forwarded.as_secs_f64(),
        requests as f64 / forwarded.as_secs_f64(),
        sent.as_secs_f64()
    );
    println!(
        "CPU: uk {:.1} s ({:.2} ms per forward), fr {:.1} s; peak memory uk {} MiB, fr {} MiB",
        uk.cpu_seconds(),
        uk.cpu_seconds() * 1000.0 / requests as f64,
        fr.cpu_seconds(),
        uk.peak_memory_kib() / 1024,
        fr.peak_memory_kib() / 1024
    );
    let _ = std::fs::remove_dir_all(&users);
}
