//! The gateway's side of the simulated modem: its device opened with tokio-serial, as the
//! gateway opens /dev/ttyUSB0, and reads that wait for expected bytes under a deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use smsgw::modem::sim::{self, Sim, SimConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};
use tokio_serial::{SerialPortBuilderExt, SerialStream};
use tokio_util::sync::CancellationToken;

/// Long enough for a loaded CI machine; tests wait for bytes, not for this.
const DEADLINE: Duration = Duration::from_secs(5);

pub(super) struct Port {
    stream: SerialStream,
    /// Read but not yet consumed by `until`.
    seen: Vec<u8>,
}

/// A running modem and what a test needs around it; the modem stops when this drops.
pub(super) struct Bench {
    pub sim: Option<Sim>,
    pub port: Port,
    pub records: PathBuf,
    pub shutdown: CancellationToken,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(dir) = self.records.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Bench {
    pub(super) async fn start(test: &str, config: SimConfig) -> Bench {
        let dir = std::env::temp_dir().join(format!("smsgw-sim-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let records = dir.join(format!("sim-{test}.jsonl"));
        let shutdown = CancellationToken::new();
        let sim = sim::start(test, config, records.clone(), shutdown.clone())
            .await
            .expect("simulated modem starts");
        let port = Port::open(&sim.device);
        Bench {
            sim: Some(sim),
            port,
            records,
            shutdown,
        }
    }

    /// The records file's lines as JSON; none if it is still empty.
    pub(super) fn records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.records)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a record is JSON"))
            .collect()
    }
}

impl Port {
    pub(super) fn open(device: &Path) -> Port {
        let stream = tokio_serial::new(device.to_string_lossy(), 115_200)
            .open_native_async()
            .expect("the PTY slave opens as a serial port");
        Port {
            stream,
            seen: Vec::new(),
        }
    }

    pub(super) async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to the modem");
    }

    /// Whether the port takes `bytes` within `period` (a wedged one does not).
    pub(super) async fn takes(&mut self, bytes: &[u8], period: Duration) -> bool {
        tokio::time::timeout(period, self.stream.write_all(bytes)).await.is_ok()
    }

    /// Reads until `needle` arrives; returns everything up to and including it.
    pub(super) async fn until(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(at) = find(&self.seen, needle.as_bytes()) {
                let rest = self.seen.split_off(at + needle.len());
                return String::from_utf8_lossy(&std::mem::replace(&mut self.seen, rest)).into_owned();
            }
            let mut buf = [0u8; 512];
            let read = timeout_at(deadline, self.stream.read(&mut buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.seen.extend_from_slice(&buf[..n]),
                other => panic!(
                    "waiting for {needle:?}: {other:?}; got {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    /// Sends `AT…\r`, returns the answer (with any echo) up to its final result code.
    pub(super) async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r").as_bytes()).await;
        let mut answer = String::new();
        loop {
            let line = self.until("\r\n").await;
            answer.push_str(&line);
            let code = line.trim_end();
            if code == "OK" || code == "ERROR" || code.starts_with("+CME ERROR: ") || code.starts_with("+CMS ERROR: ") {
                return answer;
            }
        }
    }

    /// The rest of the line that starts with `prefix`.
    pub(super) async fn line_after(&mut self, prefix: &str) -> String {
        self.until(prefix).await;
        self.until("\r\n").await.trim_end().to_string()
    }

    /// Whatever arrives within `period`: for checking that nothing does.
    pub(super) async fn quiet_for(&mut self, period: Duration) -> String {
        let deadline = Instant::now() + period;
        let mut buf = [0u8; 512];
        while let Ok(Ok(n)) = timeout_at(deadline, self.stream.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            self.seen.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&std::mem::take(&mut self.seen)).into_owned()
    }

    /// Reads until the modem hangs up: end of file or an error.
    pub(super) async fn until_hang_up(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 512];
        loop {
            match timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return,
                Ok(Ok(_)) => {}
                Err(_) => panic!("the modem did not hang up"),
            }
        }
    }

    /// The usual gateway init: no echo, numeric errors, PDU mode, `+CDS` and `+CMTI`.
    pub(super) async fn init(&mut self) {
        self.command("ATE0").await;
        for line in ["AT+CMEE=1", "AT+CMGF=0", "AT+CNMI=2,1,0,1,0"] {
            assert_eq!(self.command(line).await, "\r\nOK\r\n", "{line}");
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
