//! A real gateway process on port 0 with its own data directory and config.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::Value;

use super::smtp::Client;
use super::store::Store;
use super::wait::eventually;
use super::{BIN, TempDir};

/// How long a request may take to reach a state (modems, retries, peers included).
const STATE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a log line may take to appear.
const LOG_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Gateway {
    child: Option<Child>,
    pub smtp: SocketAddr,
    pub data: PathBuf,
    _dir: TempDir,
    pub config: PathBuf,
    /// Environment variables `serve` runs with (and runs with again after a restart).
    env: Vec<(String, String)>,
    logs: Arc<Mutex<Vec<String>>>,
}

/// How to start a gateway: its config is the harness defaults with the test's own
/// tables merged over them.
pub(crate) struct Options {
    name: String,
    extra: toml::Table,
    production_limits: bool,
    env: Vec<(String, String)>,
}

impl Options {
    /// `instance.name` (default "smsgw").
    pub(crate) fn name(mut self, name: &str) -> Options {
        self.name = name.to_string();
        self
    }

    /// Keeps the abuse limits of a production config (60 requests a minute, ...): by
    /// default the harness turns them off, as many tests send more than that.
    pub(crate) fn production_limits(mut self) -> Options {
        self.production_limits = true;
        self
    }

    /// An environment variable for `serve` (as `SMSGW__SECTION__KEY` overrides).
    pub(crate) fn env(mut self, name: &str, value: &str) -> Options {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub(crate) fn start(self) -> Gateway {
        let dir = TempDir::new();
        let config = dir.0.join("smsgw.toml");
        let data = dir.0.join("data");
        let mut table = defaults(&self.name, &data, self.production_limits);
        merge(&mut table, self.extra);
        std::fs::write(&config, table.to_string()).expect("write config");
        let (child, smtp, logs) = spawn(&config, &self.env);
        Gateway {
            child: Some(child),
            smtp,
            data,
            _dir: dir,
            config,
            env: self.env,
            logs,
        }
    }

    /// Writes the config and runs `serve` on it as `start` does, for a gateway that must
    /// refuse to start: waits (20 s at most) for it to exit by itself, and returns its
    /// exit status and log with the gateway, not running, which `restart` starts on the
    /// same config and data.
    pub(crate) fn start_refused(self) -> (Gateway, ExitStatus, String) {
        let dir = TempDir::new();
        let config = dir.0.join("smsgw.toml");
        let data = dir.0.join("data");
        let mut table = defaults(&self.name, &data, self.production_limits);
        merge(&mut table, self.extra);
        std::fs::write(&config, table.to_string()).expect("write config");
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start smsgw");
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut log = String::new();
            let _ = stderr.read_to_string(&mut log);
            log
        });
        let mut gateway = Gateway {
            child: Some(child),
            smtp: SocketAddr::from(([127, 0, 0, 1], 0)),
            data,
            _dir: dir,
            config,
            env: self.env,
            logs: Arc::default(),
        };
        // Killed when dropped if it never exits (the panic), like any gateway.
        let status = eventually(Duration::from_secs(20), || {
            let child = gateway.child.as_mut().expect("running");
            child
                .try_wait()
                .expect("try_wait")
                .ok_or_else(|| "the gateway started where it had to refuse".to_string())
        });
        gateway.child = None;
        let log = reader.join().expect("stderr reader");
        (gateway, status, log)
    }
}

/// What every test gateway has unless its test says otherwise: a listener on a free
/// loopback port, and (unless asked for) no abuse limits.
fn defaults(name: &str, data: &Path, production_limits: bool) -> toml::Table {
    let quoted = |text: &str| toml::Value::String(text.to_string()).to_string();
    let mut text = format!(
        "[instance]\nname = {}\ndata_dir = {}\n\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n",
        quoted(name),
        quoted(&data.display().to_string())
    );
    if !production_limits {
        text.push_str("\n[security]\nper_minute = 0\nper_day = 0\nnumbers_per_day = 0\n");
    }
    text.parse().expect("default config")
}

/// Merges `over` into `base`: tables key by key, any other value (arrays of tables such
/// as `[[modem]]` included) replaced whole.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => merge(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

impl Gateway {
    /// A gateway with the default settings, plus `extra` TOML (whole tables, merged
    /// over the defaults).
    pub(crate) fn start(extra: &str) -> Gateway {
        Gateway::options(extra).start()
    }

    /// A gateway whose `instance.name` is `name`.
    pub(crate) fn start_as(name: &str, extra: &str) -> Gateway {
        Gateway::options(extra).name(name).start()
    }

    /// Options for a gateway whose config adds `extra` TOML to the defaults.
    pub(crate) fn options(extra: &str) -> Options {
        Options {
            name: "smsgw".to_string(),
            extra: extra
                .parse()
                .unwrap_or_else(|e| panic!("the test's config is not TOML: {e}\n{extra}")),
            production_limits: false,
            env: Vec::new(),
        }
    }

    /// SIGKILL, as a crash or power cut would, then start again on the same data.
    pub(crate) fn crash_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// SIGKILL: the process is gone, its data stays.
    pub(crate) fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill");
        child.wait().expect("wait");
    }

    /// Starts again on the same config and data (after `kill`).
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let (child, smtp, logs) = spawn(&self.config, &self.env);
        self.child = Some(child);
        self.smtp = smtp;
        self.logs = logs;
    }

    /// Sends a signal ("TERM", "INT", ...) to the gateway.
    pub(crate) fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid)
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the gateway to exit on its own.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_for_exit(&mut child, Duration::from_secs(20))
    }

    /// The gateway's process id (for its memory in /proc).
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub(crate) fn client(&self) -> Client {
        Client::connect(self.smtp)
    }

    /// Runs the CLI against this gateway's config.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run smsgw")
    }

    /// Runs the CLI and returns its standard output, asserting success.
    pub(crate) fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "smsgw {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The gateway's database, read-only.
    pub(crate) fn store(&self) -> Store {
        Store::of(&self.config, &self.data)
    }

    /// Every request, oldest first (as `queue list --json`).
    pub(crate) fn queue(&self) -> Vec<Value> {
        self.store().requests()
    }

    /// Request `id` with its parts and history (as `queue show --json`).
    pub(crate) fn show(&self, id: i64) -> Value {
        self.store().request(id).unwrap_or_else(|| panic!("no request {id}"))
    }

    /// What the simulated modem `name` recorded: one JSON object per SMS part it accepted.
    pub(crate) fn records(&self, name: &str) -> Vec<Value> {
        let path = self.data.join(format!("sim-{name}.jsonl"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("record is JSON"))
            .collect()
    }

    /// Waits until the simulated modem `name` has recorded at least `count` parts;
    /// returns them.
    pub(crate) fn wait_records(&self, name: &str, count: usize) -> Vec<Value> {
        eventually(STATE_TIMEOUT, || {
            let records = self.records(name);
            if records.len() >= count {
                Ok(records)
            } else {
                Err(format!("{name} recorded {} of {count} SMS", records.len()))
            }
        })
    }

    /// Waits until every request is in one of `states`; returns the queue.
    pub(crate) fn wait_all(&self, states: &[&str]) -> Vec<Value> {
        eventually(Duration::from_secs(60), || {
            let queue = self.queue();
            if queue.iter().all(|r| states.iter().any(|s| r["state"] == *s)) {
                Ok(queue)
            } else {
                Err(format!("requests never all reached {states:?}: {queue:#?}"))
            }
        })
    }

    /// Waits until request `id` is in `state`; returns its details.
    pub(crate) fn wait_state(&self, id: i64, state: &str) -> Value {
        eventually(STATE_TIMEOUT, || match self.store().request(id) {
            Some(detail) if detail["state"] == state => Ok(detail),
            other => Err(format!("request {id} never reached {state}: {other:#?}")),
        })
    }

    /// The implicit-TLS listener's address, from the log.
    pub(crate) fn tls_address(&self) -> SocketAddr {
        self.logged_address("SMTP listening (implicit TLS) address=")
    }

    /// The HTTP endpoint's address (`http.listen`), from the log.
    pub(crate) fn http_address(&self) -> SocketAddr {
        self.logged_address("HTTP listening address=")
    }

    fn logged_address(&self, prefix: &str) -> SocketAddr {
        let line = self.wait_for_log(prefix);
        let address = &line[line.find(prefix).unwrap() + prefix.len()..];
        loopback(address.trim().parse().expect("address"))
    }

    /// `GET path` on the HTTP endpoint: the body of a 200.
    pub(crate) fn http_get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(self.http_address()).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        body.to_string()
    }

    /// Log lines so far that contain `needle`.
    pub(crate) fn log_lines(&self, needle: &str) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits until a log line contains `needle`; returns the last such line.
    pub(crate) fn wait_for_log(&self, needle: &str) -> String {
        self.wait_for_logs(needle, 1).pop().unwrap()
    }

    /// Waits until `count` log lines contain `needle`; returns them.
    pub(crate) fn wait_for_logs(&self, needle: &str, count: usize) -> Vec<String> {
        eventually(LOG_TIMEOUT, || {
            let lines = self.log_lines(needle);
            if lines.len() >= count {
                Ok(lines)
            } else {
                Err(format!("{} of {count} log lines with {needle:?}", lines.len()))
            }
        })
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(config: &Path, env: &[(String, String)]) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smsgw");
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(Vec::new()));
    let (found, address) = mpsc::channel::<String>();
    let kept = logs.clone();
    std::thread::spawn(move || {
        const LISTENING: &str = "SMTP listening address=";
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find(LISTENING) {
                let _ = found.send(line[at + LISTENING.len()..].trim().to_string());
            }
            kept.lock().unwrap().push(line);
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("gateway did not start: {:?}", logs.lock().unwrap()));
    (child, loopback(address.parse().expect("address")), logs)
}

/// A listener on 0.0.0.0 is reached on loopback.
fn loopback(address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    }
}

/// Waits for `child` to exit; its status.
pub(crate) fn wait_for_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    eventually(limit, || {
        child
            .try_wait()
            .expect("try_wait")
            .ok_or_else(|| "the process has not exited".to_string())
    })
}

/// The history of a request (as `queue show` gives it), one `"state" "detail"` line an
/// event.
pub(crate) fn event_details(detail: &Value) -> String {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}\n", e["state"], e["detail"]))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{defaults, merge};

    fn config(extra: &str) -> toml::Table {
        let mut table = defaults("smsgw", Path::new("/data"), false);
        merge(&mut table, extra.parse().unwrap());
        table
    }

    #[test]
    fn a_test_s_tables_are_merged_key_by_key_over_the_defaults() {
        let table = config(
            "[http]\nlisten = \"127.0.0.1:0\"\n\n[security]\nper_minute = 3\n\n\
             [[modem]]\nname = \"sim0\"\nport = \"sim\"\nper_minute = 5\n",
        );
        // Another table's `listen` leaves the SMTP listener on port 0.
        assert_eq!(table["smtp"]["listen"][0].as_str(), Some("127.0.0.1:0"));
        assert_eq!(table["http"]["listen"].as_str(), Some("127.0.0.1:0"));
        // A modem's own `per_minute` is the modem's; the test's security limit is kept
        // and the limits it did not name stay off.
        assert_eq!(table["modem"][0]["per_minute"].as_integer(), Some(5));
        assert_eq!(table["security"]["per_minute"].as_integer(), Some(3));
        assert_eq!(table["security"]["per_day"].as_integer(), Some(0));
        assert_eq!(table["instance"]["data_dir"].as_str(), Some("/data"));
    }

    #[test]
    fn production_limits_are_left_to_the_gateway_s_defaults() {
        let table = defaults("smsgw", Path::new("/data"), true);
        assert!(!table.contains_key("security"), "{table}");
    }
}
