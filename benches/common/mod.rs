//! What the benchmarks share: a release gateway in a temporary directory, and SMTP.

#![allow(dead_code)] // each bench uses its own part of this

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The value after `name` on the command line (`-- --requests 3000`), or `default`.
pub(crate) fn option(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|pair| pair[0] == name)
        .map_or(default, |pair| pair[1].parse().expect("a number"))
}

pub(crate) struct Gateway {
    pub child: Child,
    pub smtp: SocketAddr,
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl Gateway {
    /// Starts `smsgw serve` with `extra` TOML after the instance and SMTP sections.
    pub(crate) fn start(extra: &str) -> Gateway {
        Gateway::start_named("smsgw", "127.0.0.1:0", extra)
    }

    /// The same, as instance `name` (its own directory: several may run at once)
    /// listening on `listen`.
    pub(crate) fn start_named(name: &str, listen: &str, extra: &str) -> Gateway {
        let dir = std::env::temp_dir().join(format!("smsgw-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("smsgw.toml");
        let text = format!(
            "[instance]\nname = {name:?}\ndata_dir = {:?}\n[smtp]\nlisten = [\"{listen}\"]\nmax_connections = 1024\n\
             [security]\nper_minute = 0\nper_day = 0\nnumbers_per_day = 0\n{extra}\n",
            dir.join("data")
        );
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_smsgw"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn,smsgw=info,smsgw::smtp=warn,smsgw::modem::worker=warn")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start smsgw");
        let smtp = listening_address(child.stderr.take().unwrap());
        Gateway {
            child,
            smtp,
            dir,
            config,
        }
    }

    /// Requests in the store, counted by the CLI.
    pub(crate) fn stored(&self) -> usize {
        self.stored_in(None)
    }

    /// Requests in the store in `state` (all when `None`), counted by the CLI.
    pub(crate) fn stored_in(&self, state: Option<&str>) -> usize {
        let mut command = Command::new(env!("CARGO_BIN_EXE_smsgw"));
        command.args(["queue", "list", "--json", "--config"]).arg(&self.config);
        if let Some(state) = state {
            command.args(["--state", state]);
        }
        let listed = command.output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&listed.stdout)
            .unwrap()
            .as_array()
            .map_or(0, Vec::len)
    }

    /// Lines in a simulated modem's records: the parts it accepted.
    pub(crate) fn recorded(&self, modem: &str) -> usize {
        let path = self.dir.join("data").join(format!("sim-{modem}.jsonl"));
        std::fs::read(path)
            .map(|text| text.iter().filter(|&&b| b == b'\n').count())
            .unwrap_or(0)
    }

    /// Peak resident memory so far, in KiB.
    pub(crate) fn peak_memory_kib(&self) -> u64 {
        proc_status_field(self.child.id(), "VmHWM:")
    }

    /// User + system CPU time used so far, in seconds.
    pub(crate) fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)
            .map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
        ticks / 100.0
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

fn proc_status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(field))?.to_string();
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

/// A mail of about `size` bytes (headers included, dot-terminated).
pub(crate) fn mail(size: usize) -> Vec<u8> {
    let mut mail = b"From: bench@example.com\r\nTo: sms\r\nSubject: bench\r\n\r\n".to_vec();
    while mail.len() < size {
        mail.extend_from_slice(b"The quick brown fox jumps over the lazy dog 0123456789\r\n");
    }
    mail.extend_from_slice(b".\r\n");
    mail
}

/// One mail on its own connection, one command at a time as smtp-source does.
pub(crate) fn send(address: SocketAddr, recipients: &[String], mail: &[u8]) {
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
    let mut dialogue = vec![
        ("EHLO bench.example\r\n".to_string(), "250"),
        ("MAIL FROM:<bench@example.com>\r\n".into(), "250"),
    ];
    dialogue.extend(recipients.iter().map(|r| (format!("RCPT TO:<{r}>\r\n"), "250")));
    dialogue.push(("DATA\r\n".into(), "354"));
    for (command, code) in dialogue {
        writer.write_all(command.as_bytes()).unwrap();
        expect(code);
    }
    writer.write_all(mail).unwrap();
    expect("250");
    writer.write_all(b"QUIT\r\n").unwrap();
    expect("221");
}
