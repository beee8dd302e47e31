//! A peer's `/status` over HTTPS, its self-signed certificate pinned, with HTTP Basic:
//! the poller counts the peer up, and routes to it, only when both hold; the endpoint
//! answers `401` to a client without a user.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use smsgw::config::HttpUrl;
use smsgw::outbound::{HttpGet, HttpGetError};

use crate::cluster::add_user;
use crate::support::gateway::Gateway;
use crate::support::sink::unused_address;
use crate::support::smtp::message;
use crate::support::wait::eventually;
use crate::support::{BIN, TempDir};

const FRENCH: &str = "+33477858589";

/// A self-signed certificate for "localhost" and its key, as PEM files, and its SHA-256.
struct SelfSigned {
    dir: TempDir,
    pin: String,
}

impl SelfSigned {
    fn new() -> SelfSigned {
        let dir = TempDir::new();
        let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(dir.0.join("cert.pem"), issued.cert.pem()).unwrap();
        std::fs::write(dir.0.join("key.pem"), issued.signing_key.serialize_pem()).unwrap();
        let sha256 = smsgw::outbound::tls::fingerprint(issued.cert.der());
        let pin = sha256.iter().map(|b| format!("{b:02x}")).collect();
        SelfSigned { dir, pin }
    }

    fn cert(&self) -> PathBuf {
        self.dir.0.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.0.join("key.pem")
    }
}

/// fr: a French modem, SMTP with STARTTLS, and its HTTP endpoint on HTTPS with Basic
/// required; its users file knows "uk" (password "password-uk").
struct Fr {
    gateway: Gateway,
    smtp: SocketAddr,
    http: SocketAddr,
    cert: SelfSigned,
    _users: TempDir,
}

fn start_fr() -> Fr {
    let cert = SelfSigned::new();
    let users = TempDir::new();
    let users_file = users.0.join("users.toml");
    add_user(&users_file, "uk", "password-uk");
    let (smtp, http) = (unused_address(), unused_address());
    let config = format!(
        "[smtp]\nlisten = [\"{smtp}\"]\n\n[http]\nlisten = \"{http}\"\ntls = true\nrequire_auth = true\n\n\
         [security]\ntls_cert = {:?}\ntls_key = {:?}\nusers_file = {users_file:?}\n\n\
         [[modem]]\nname = \"sim0\"\nport = \"sim\"\ntariff = {{ \"+33\" = 0.01 }}\n\
         sim = {{ latency_ms = 0, report_delay_ms = 20 }}\n",
        cert.cert(),
        cert.key()
    );
    let gateway = Gateway::start_as("fr", &config);
    gateway.wait_for_log("ready modem=sim0");
    gateway.wait_for_log("HTTP access tls=true require_auth=true");
    Fr {
        gateway,
        smtp,
        http,
        cert,
        _users: users,
    }
}

/// uk: no modem of its own, fr its one peer, polled at `https://` with `pin` and
/// `password`; SMTP to fr verified by the same pin.
fn start_uk(fr: &Fr, pin: &str, password: &str) -> Gateway {
    // A port of its own, not 0: `route explain` finds the endpoint in the config.
    let config = format!(
        "[http]\nlisten = \"{}\"\n\n[routing]\npoll_secs = 1\n\n\
         [[peer]]\nname = \"fr\"\nsmtp = \"{}\"\nstatus_url = \"https://{}/status\"\nlink_cost = 0.01\n\
         user = \"uk\"\npassword = \"{password}\"\ntls = \"verify\"\ntls_pin_sha256 = [\"{pin}\"]\n",
        unused_address(),
        fr.smtp,
        fr.http
    );
    Gateway::start_as("uk", &config)
}

/// GET `path` at fr over HTTPS (its certificate pinned) with `basic`, if any.
fn get_from_fr(fr: &Fr, path: &str, basic: Option<(&str, &str)>) -> Result<Vec<u8>, HttpGetError> {
    let url: HttpUrl = format!("https://{}{path}", fr.http).parse().unwrap();
    let pins = [fr.cert.pin.parse().unwrap()];
    let getter = HttpGet::new(url, std::path::Path::new(""), &pins, basic).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(getter.get(Duration::from_secs(10)))
}

/// Waits until `gateway`'s `/metrics` says `smsgw_peer_up{peer="fr"} <up>`.
fn wait_peer_up_metric(gateway: &Gateway, up: u8) {
    let sample = format!("smsgw_peer_up{{peer=\"fr\"}} {up}");
    eventually(Duration::from_secs(10), || {
        let metrics = gateway.http_get("/metrics");
        metrics.contains(&sample).then_some(()).ok_or(metrics)
    });
}

#[test]
fn a_peer_whose_status_is_served_over_pinned_tls_with_basic_is_up_and_routed_to() {
    let fr = start_fr();
    let uk = start_uk(&fr, &fr.cert.pin, "password-uk");
    uk.wait_for_log("peer up peer=fr");
    wait_peer_up_metric(&uk, 1);
    let plan: Value = serde_json::from_str(&uk.cli_ok(&["route", "explain", FRENCH, "--json"])).unwrap();
    assert_eq!(plan["ranked"][0]["name"], "fr", "{plan:#}");
    let reply = uk
        .client()
        .mail(&[&format!("{FRENCH}@sms")], &message("peer", "over TLS"));
    assert_eq!(reply.code, 250, "{reply:?}");
    assert_eq!(fr.gateway.wait_records("sim0", 1)[0]["number"], FRENCH);
    uk.wait_state(1, "forwarded");

    // fr's own endpoint: /status and /route want a user, /metrics does not.
    match get_from_fr(&fr, "/status", None) {
        Err(HttpGetError::Status(_, code)) => assert_eq!(code.as_u16(), 401),
        other => panic!("/status without a user: {other:?}"),
    }
    match get_from_fr(&fr, "/route?number=%2B33477858589", Some(("uk", "wrong"))) {
        Err(HttpGetError::Status(_, code)) => assert_eq!(code.as_u16(), 401),
        other => panic!("/route with a wrong password: {other:?}"),
    }
    let status: Value =
        serde_json::from_slice(&get_from_fr(&fr, "/status", Some(("uk", "password-uk"))).unwrap()).unwrap();
    assert_eq!(status["name"], "fr");
    let metrics = String::from_utf8(get_from_fr(&fr, "/metrics", None).unwrap()).unwrap();
    assert!(metrics.contains("smsgw_requests"), "{metrics}");

    // `route explain` on fr itself: HTTPS to its own certificate, the user from the
    // environment.
    let explain = |user: Option<(&str, &str)>| {
        let mut command = Command::new(BIN);
        command
            .args(["route", "explain", FRENCH, "--json", "--config"])
            .arg(&fr.gateway.config);
        if let Some((user, password)) = user {
            command
                .env("SMSGW_HTTP_USER", user)
                .env("SMSGW_HTTP_PASSWORD", password);
        }
        command.output().unwrap()
    };
    let refused = explain(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("HTTP 401"),
        "{refused:?}"
    );
    let answered = explain(Some(("uk", "password-uk")));
    assert!(answered.status.success(), "{answered:?}");
    let plan: Value = serde_json::from_slice(&answered.stdout).unwrap();
    assert_eq!(plan["ranked"][0]["name"], "fr", "{plan:#}");
}

#[test]
fn a_peer_with_another_certificate_or_refusing_the_password_is_down_and_the_log_says_why() {
    let fr = start_fr();
    let stranger = SelfSigned::new();
    let pinned_wrong = start_uk(&fr, &stranger.pin, "password-uk");
    let line = pinned_wrong.wait_for_log("peer not up at the first poll peer=fr");
    assert!(line.contains("TLS") && line.contains("certificate"), "{line}");
    wait_peer_up_metric(&pinned_wrong, 0);

    let wrong_password = start_uk(&fr, &fr.cert.pin, "password-fr");
    let line = wrong_password.wait_for_log("peer not up at the first poll peer=fr");
    assert!(line.contains("HTTP 401"), "{line}");
    wait_peer_up_metric(&wrong_password, 0);
    let reply = wrong_password
        .client()
        .mail(&[&format!("{FRENCH}@sms")], &message("peer", "down"));
    assert_eq!(
        reply.code, 250,
        "fr's tariffs are not known: the answer is unknown, so accepted"
    );
    assert!(
        wrong_password.log_lines("peer up peer=fr").is_empty(),
        "a peer refusing our password never counts as up"
    );
}

/// The raw answer to `GET path` on `address` with `headers`: its head and body.
fn raw_get(address: SocketAddr, path: &str, headers: &str) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

#[test]
fn status_and_route_without_a_user_are_refused_with_a_basic_challenge() {
    let users = TempDir::new();
    let users_file = users.0.join("users.toml");
    add_user(&users_file, "ops", "password-ops");
    // Plain HTTP with Basic is allowed on loopback only (check-config refuses it elsewhere).
    let gateway = Gateway::start(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nrequire_auth = true\n\n[security]\nusers_file = {users_file:?}\n"
    ));
    let address = gateway.http_address();
    for path in ["/status", "/route?number=%2B33477858589"] {
        for headers in ["", "Authorization: Basic b3BzOndyb25n\r\n"] {
            let (head, _) = raw_get(address, path, headers);
            let head = head.to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 401"), "{path} {headers:?}: {head}");
            assert!(
                head.contains("\r\nwww-authenticate: basic realm=\"smsgw\""),
                "{path}: {head}"
            );
        }
    }
    // ops:password-ops
    let (head, body) = raw_get(address, "/status", "Authorization: Basic b3BzOnBhc3N3b3JkLW9wcw==\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("\"name\": \"smsgw\""), "{body}");
    assert!(gateway.http_get("/metrics").contains("smsgw_requests"));
    let (head, _) = raw_get(address, "/nowhere", "");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

/// With `http.users`, a user of the users file who is not listed (a mail sender) is
/// refused `/status` and `/route`, its password right or not; a listed one passes.
#[test]
fn http_users_keeps_mail_senders_out_of_status_and_route() {
    let users = TempDir::new();
    let users_file = users.0.join("users.toml");
    add_user(&users_file, "ops", "password-ops");
    add_user(&users_file, "sender", "password-sender");
    let gateway = Gateway::start(&format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nrequire_auth = true\nusers = [\"ops\"]\n\n\
         [security]\nusers_file = {users_file:?}\n"
    ));
    let address = gateway.http_address();
    // sender:password-sender
    for path in ["/status", "/route?number=%2B33477858589"] {
        let (head, _) = raw_get(
            address,
            path,
            "Authorization: Basic c2VuZGVyOnBhc3N3b3JkLXNlbmRlcg==\r\n",
        );
        assert!(head.starts_with("HTTP/1.1 401"), "{path}: {head}");
    }
    // ops:password-ops
    let (head, _) = raw_get(address, "/status", "Authorization: Basic b3BzOnBhc3N3b3JkLW9wcw==\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}

#[test]
fn the_https_certificate_is_the_smtp_one_and_is_reloaded_on_sighup_with_it() {
    let mut fr = start_fr();
    let uk = start_uk(&fr, &fr.cert.pin, "password-uk");
    uk.wait_for_log("peer up peer=fr");
    // A new certificate over the files fr serves, and a SIGHUP: uk, still pinning the
    // old one, no longer believes fr's status.
    let renewed = SelfSigned::new();
    std::fs::copy(renewed.cert(), fr.cert.cert()).unwrap();
    std::fs::copy(renewed.key(), fr.cert.key()).unwrap();
    fr.gateway.signal("HUP");
    fr.gateway.wait_for_log("TLS certificate reloaded");
    let line = uk.wait_for_log("peer down peer=fr");
    assert!(line.contains("certificate"), "{line}");
    wait_peer_up_metric(&uk, 0);
    fr.cert.pin = renewed.pin;
    let status: Value =
        serde_json::from_slice(&get_from_fr(&fr, "/status", Some(("uk", "password-uk"))).unwrap()).unwrap();
    assert_eq!(status["name"], "fr");
}

/// A TCP connection to `address` from `source` (another loopback address than the
/// 127.0.0.1 a plain connect uses).
fn connect_from(source: [u8; 4], address: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        let stream = socket.connect(address).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// One address holding more idle connections than the endpoint answers at once takes
/// only its share: another address's `/status` (a peer's poll) is answered at once, not
/// after the idle connections' head timeout, and the idle ones past the share are
/// closed unanswered.
#[test]
fn idle_connections_from_one_address_do_not_keep_another_s_status_unanswered() {
    let gateway = Gateway::start("[http]\nlisten = \"127.0.0.1:0\"\n");
    let address = gateway.http_address();
    // More than every slot (32), from 127.0.0.1, sending nothing.
    let idle: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(address).unwrap()).collect();
    // From 127.0.0.2, with a deadline well under the head timeout that once freed a slot
    // (5 s): the answer did not wait for one.
    let mut stream = connect_from([127, 0, 0, 2], address);
    stream.set_read_timeout(Some(Duration::from_millis(1500))).unwrap();
    write!(stream, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .unwrap_or_else(|e| panic!("/status from 127.0.0.2 while 127.0.0.1 idles: {e}"));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // All but 127.0.0.1's share were closed without a word.
    let closed = idle
        .into_iter()
        .filter(|mut stream| {
            stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
            let mut byte = [0u8; 1];
            match stream.read(&mut byte) {
                Ok(0) => true,
                Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
                Ok(_) => false,
            }
        })
        .count();
    assert!(closed >= 36, "{closed} of 40 idle connections closed");
}

/// SIGHUP's handler exists before the HTTP endpoint says it listens: a SIGHUP sent the
/// moment "HTTP listening" is logged reloads, and does not end the process.
#[test]
fn a_sighup_as_soon_as_http_listens_is_a_reload() {
    let mut gateway = Gateway::start("[http]\nlisten = \"127.0.0.1:0\"\n");
    let config = gateway.config.clone();
    gateway.kill();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    // Waits until every needle has been seen in some line, in any order: the reload may
    // be logged before or after "SMTP listening".
    let mut wait_for = |needles: &[&str]| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !needles
            .iter()
            .all(|needle| seen.iter().any(|line| line.contains(needle)))
        {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            // Fails at the deadline, or at the log's end: the process ended.
            let line = lines
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("not all of {needles:?} ({e}): {seen:#?}"));
            seen.push(line);
        }
    };
    wait_for(&["HTTP listening"]);
    let hup = Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(hup.success());
    wait_for(&["SMTP listening", "users reloaded"]);
    assert!(child.try_wait().unwrap().is_none(), "the gateway ended");
    child.kill().unwrap();
    child.wait().unwrap();
}
