//! A real gateway process on port 0 with its own data directory, and a raw SMTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_smsgw");

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "smsgw-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Gateway {
    child: Option<Child>,
    pub smtp: SocketAddr,
    pub data: PathBuf,
    _dir: TempDir,
    pub config: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// A gateway with the default settings, plus `extra` TOML (whole sections).
    pub fn start(extra: &str) -> Gateway {
        Gateway::start_as("smsgw", extra)
    }

    /// A gateway whose `instance.name` is `name`.
    pub fn start_as(name: &str, extra: &str) -> Gateway {
        let dir = TempDir::new();
        let config = dir.0.join("smsgw.toml");
        let data = dir.0.join("data");
        let text = format!(
            "[instance]\nname = {name:?}\ndata_dir = {data:?}\n\n{}\n",
            with_default_smtp(extra)
        );
        std::fs::write(&config, text).expect("write config");
        let (child, smtp, logs) = spawn(&config);
        Gateway {
            child: Some(child),
            smtp,
            data,
            _dir: dir,
            config,
            logs,
        }
    }

    /// SIGKILL, as a crash or power cut would, then start again on the same data.
    pub fn crash_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// SIGKILL: the process is gone, its data stays.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill");
        child.wait().expect("wait");
    }

    /// Starts again on the same config and data (after `kill`).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let (child, smtp, logs) = spawn(&self.config);
        self.child = Some(child);
        self.smtp = smtp;
        self.logs = logs;
    }

    /// Runs the CLI and returns its standard output, asserting success.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert!(
            output.status.success(),
            "smsgw {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Sends a signal ("TERM", "INT", ...) to the gateway.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid)
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the gateway to exit on its own.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        wait_with_deadline(&mut child, Duration::from_secs(20))
    }

    pub fn client(&self) -> Client {
        Client::connect(self.smtp)
    }

    /// Runs the CLI against this gateway's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .expect("run smsgw")
    }

    pub fn queue(&self) -> Vec<Value> {
        let output = self.cli(&["queue", "list", "--json"]);
        assert!(
            output.status.success(),
            "queue list: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout)
            .expect("json")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn show(&self, id: i64) -> Value {
        let output = self.cli(&["queue", "show", &id.to_string(), "--json"]);
        assert!(
            output.status.success(),
            "queue show: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("json")
    }

    /// What the simulated modem `name` recorded: one JSON object per SMS part it accepted.
    pub fn records(&self, name: &str) -> Vec<Value> {
        let path = self.data.join(format!("sim-{name}.jsonl"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("record is JSON"))
            .collect()
    }

    /// Waits until every request is in one of `states`; returns the queue.
    pub fn wait_all(&self, states: &[&str]) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let queue = self.queue();
            if queue.iter().all(|r| states.iter().any(|s| r["state"] == *s)) {
                return queue;
            }
            assert!(Instant::now() < deadline, "requests never all reached {states:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until request `id` is in `state`; returns its details.
    pub fn wait_state(&self, id: i64, state: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let detail = self.show(id);
            if detail["state"] == state {
                return detail;
            }
            assert!(
                Instant::now() < deadline,
                "request {id} never reached {state}: {detail:#}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The implicit-TLS listener's address, from the log.
    pub fn tls_address(&self) -> SocketAddr {
        let line = self.wait_for_log("SMTP listening (implicit TLS) address=");
        line.rsplit('=').next().unwrap().trim().parse().unwrap()
    }

    /// Log lines so far that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.log_lines(needle).pop() {
                return line;
            }
            assert!(Instant::now() < deadline, "no log line with {needle:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
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

/// Tests listen on port 0 (unless they say where) and have no rate limits unless they
/// set them: many tests send more than the default 60 requests a minute.
fn with_default_smtp(extra: &str) -> String {
    let mut text = extra.to_string();
    if !text.contains("[security]") {
        text.push_str("\n[security]\n");
    }
    for (key, value) in [("per_minute", "0"), ("per_day", "0"), ("numbers_per_day", "0")] {
        if !text.contains(&format!("\n{key} =")) {
            text = text.replacen("[security]", &format!("[security]\n{key} = {value}"), 1);
        }
    }
    if !text.contains("[smtp]") {
        text = format!("[smtp]\n{text}");
    }
    if !text.contains("\nlisten =") {
        text = text.replacen("[smtp]", "[smtp]\nlisten = [\"127.0.0.1:0\"]", 1);
    }
    text
}

fn spawn(config: &Path) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
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
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("SMTP listening address=") {
                let _ = found.send(line[at + 23..].trim().to_string());
            }
            kept.lock().unwrap().push(line);
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("gateway did not start: {:?}", logs.lock().unwrap()));
    let address: SocketAddr = address.parse().expect("address");
    // A listener on 0.0.0.0 is reached on loopback.
    let address = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    (child, address, logs)
}

pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not exit in {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A byte stream a client talks over: TCP, or TLS on TCP.
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A raw SMTP client: send lines, read whole replies; STARTTLS and implicit TLS.
pub struct Client {
    reader: BufReader<Box<dyn Stream>>,
    /// The socket itself, for the TLS handshake after STARTTLS.
    tcp: TcpStream,
}

/// One SMTP reply: its code and its lines (text after `code-` / `code `).
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

impl Client {
    pub fn connect(address: SocketAddr) -> Client {
        Client::greeted(TcpStream::connect(address).expect("connect"))
    }

    /// Connects from another loopback address (127.0.0.2, ...), as a remote client would.
    pub fn connect_from(source: &str, address: SocketAddr) -> Client {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let stream = runtime
            .block_on(async {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(format!("{source}:0").parse().unwrap())?;
                socket.connect(address).await?.into_std()
            })
            .expect("connect from another address");
        stream.set_nonblocking(false).unwrap();
        Client::greeted(stream)
    }

    /// Connects to an implicit-TLS listener; the greeting comes after the handshake.
    pub fn connect_tls(address: SocketAddr, ca: &Path) -> Client {
        let tcp = TcpStream::connect(address).expect("connect");
        let mut client = Client::over_tls(tcp, ca);
        client.expect(220);
        client
    }

    fn greeted(tcp: TcpStream) -> Client {
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let reader = BufReader::new(Box::new(tcp.try_clone().unwrap()) as Box<dyn Stream>);
        let mut client = Client { reader, tcp };
        client.expect(220);
        client
    }

    fn over_tls(tcp: TcpStream, ca: &Path) -> Client {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(ca).expect("CA")).unwrap();
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connection = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
        let tls = StreamOwned::new(connection, tcp.try_clone().unwrap());
        Client {
            reader: BufReader::new(Box::new(tls)),
            tcp,
        }
    }

    /// STARTTLS and the handshake, verifying the server against `ca`; then EHLO again,
    /// as RFC 3207 requires.
    pub fn starttls(mut self, ca: &Path) -> Client {
        self.command("STARTTLS", 220);
        let mut client = Client::over_tls(self.tcp, ca);
        client.command("EHLO client.example", 250);
        client
    }

    pub fn send(&mut self, bytes: &str) {
        self.send_bytes(bytes.as_bytes());
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).and_then(|()| stream.flush()).expect("send");
    }

    /// Reads one reply (None if the server closed the connection).
    pub fn reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            let code = line.get(..3)?.parse().ok()?;
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Some(Reply { code, lines });
            }
        }
    }

    /// Reads one reply and checks its code.
    pub fn expect(&mut self, code: u16) -> Reply {
        let reply = self
            .reply()
            .unwrap_or_else(|| panic!("connection closed, expected {code}"));
        assert_eq!(reply.code, code, "unexpected reply: {reply:?}");
        reply
    }

    /// Sends a command line and checks the reply's code.
    pub fn command(&mut self, line: &str, code: u16) -> Reply {
        self.send(&format!("{line}\r\n"));
        self.expect(code)
    }

    /// True once the server has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }

    /// AUTH PLAIN with an initial response; returns the reply.
    pub fn auth_plain(&mut self, user: &str, password: &str) -> Reply {
        use base64::Engine;
        let response = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(&format!("AUTH PLAIN {response}\r\n"));
        self.reply().expect("reply to AUTH")
    }

    /// EHLO, MAIL, RCPT for each recipient, DATA with `body`: returns the final reply.
    pub fn mail(&mut self, recipients: &[&str], message: &str) -> Reply {
        self.command("EHLO test.example", 250);
        self.command("MAIL FROM:<sender@example.com>", 250);
        for recipient in recipients {
            self.command(&format!("RCPT TO:<{recipient}>"), 250);
        }
        self.command("DATA", 354);
        self.send(message);
        self.send("\r\n.\r\n");
        self.reply().expect("reply to end of data")
    }
}

/// A CA and a certificate for "localhost" signed by it, as PEM files.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let pki = Pki { dir: TempDir::new() };
        pki.issue();
        pki
    }

    /// A new CA, and a new "localhost" certificate from it, over the previous files.
    pub fn issue(&self) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = &self.dir;
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.0.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.0.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.0.join("key.pem"), key.serialize_pem()).unwrap();
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.0.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.0.join("key.pem")
    }
}

/// The history of a request (`queue show --json`), one `"state" "detail"` line an event.
pub fn event_details(detail: &Value) -> String {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}\n", e["state"], e["detail"]))
        .collect()
}

/// A small mail with a subject and a body.
pub fn message(subject: &str, body: &str) -> String {
    format!("From: sender@example.com\r\nTo: sms\r\nSubject: {subject}\r\n\r\n{body}")
}
