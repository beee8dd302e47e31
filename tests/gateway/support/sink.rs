//! A small SMTP server that keeps what it receives: where the gateway's DSNs arrive.
//! It offers STARTTLS when given a certificate, and refuses recipients containing
//! "refuse" with a 550.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::wait::eventually;

/// One mail as the sink received it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
    /// Whether it came over TLS.
    pub tls: bool,
}

pub(crate) struct Sink {
    pub address: SocketAddr,
    mails: Arc<Mutex<Vec<Received>>>,
}

/// What the sink does with STARTTLS.
#[derive(Clone)]
enum Tls {
    /// Not offered.
    Off,
    /// Offered, with this certificate.
    On(Arc<ServerConfig>),
    /// Offered, then refused with a 454.
    Refused,
}

impl Sink {
    pub(crate) fn start(tls: Option<(&Path, &Path)>) -> Sink {
        Sink::start_on("127.0.0.1:0".parse().unwrap(), tls)
    }

    /// A sink that offers STARTTLS and refuses it when asked.
    pub(crate) fn start_refusing_tls() -> Sink {
        Sink::serve(TcpListener::bind("127.0.0.1:0").unwrap(), Tls::Refused)
    }

    pub(crate) fn start_on(address: SocketAddr, tls: Option<(&Path, &Path)>) -> Sink {
        let listener = TcpListener::bind(address).expect("sink: bind");
        let tls = tls.map_or(Tls::Off, |(cert, key)| {
            let certs = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            Tls::On(Arc::new(
                ServerConfig::builder()
                    .with_no_client_auth()
                    .with_single_cert(certs, key)
                    .unwrap(),
            ))
        });
        Sink::serve(listener, tls)
    }

    fn serve(listener: TcpListener, tls: Tls) -> Sink {
        let address = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let kept = mails.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().map_while(Result::ok) {
                let (mails, tls) = (kept.clone(), tls.clone());
                std::thread::spawn(move || {
                    let _ = serve(tcp, tls, mails);
                });
            }
        });
        Sink { address, mails }
    }

    pub(crate) fn mails(&self) -> Vec<Received> {
        self.mails.lock().unwrap().clone()
    }

    /// Waits until at least `count` mails have arrived; returns them all.
    pub(crate) fn wait_for(&self, count: usize) -> Vec<Received> {
        eventually(Duration::from_secs(30), || {
            let mails = self.mails();
            if mails.len() >= count {
                Ok(mails)
            } else {
                Err(format!("the sink got {} of {count} mails", mails.len()))
            }
        })
    }
}

/// A free loopback port with nothing listening on it (yet), below the kernel's range of
/// ephemeral ports (32768 and up): an instance restarted on it does not find it taken
/// as the source port of some outgoing connection meanwhile.
pub(crate) fn unused_address() -> SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Test binaries run one at a time, but start from a spread of the process id anyway.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % 1000) as u16 * 10;
    loop {
        let port = 20_000 + (offset + NEXT.fetch_add(1, Ordering::Relaxed) % 12_000) % 12_000;
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        if TcpListener::bind(address).is_ok() {
            return address;
        }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    fn stream(&mut self) -> &mut dyn ReadWrite {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(tls) => tls.as_mut(),
        }
    }

    fn line(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            if self.stream().read(&mut byte).ok()? == 0 {
                return None;
            }
            line.push(byte[0]);
        }
        Some(line)
    }

    fn say(&mut self, text: &str) -> Option<()> {
        self.stream().write_all(text.as_bytes()).ok()?;
        self.stream().flush().ok()
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn serve(tcp: TcpStream, tls: Tls, mails: Arc<Mutex<Vec<Received>>>) -> Option<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut conn = Conn::Plain(tcp.try_clone().ok()?);
    let mut mail: Option<Received> = None;
    conn.say("220 sink.test ESMTP\r\n")?;
    loop {
        let line = String::from_utf8_lossy(&conn.line()?).trim_end().to_string();
        let verb = line.split([' ', ':']).next().unwrap_or("").to_ascii_uppercase();
        let secure = matches!(conn, Conn::Tls(_));
        match verb.as_str() {
            "EHLO" => {
                let offered = !matches!(tls, Tls::Off) && !secure;
                let starttls = if offered { "250-STARTTLS\r\n" } else { "" };
                conn.say(&format!(
                    "250-sink.test\r\n{starttls}250-8BITMIME\r\n250 PIPELINING\r\n"
                ))?;
            }
            "STARTTLS" if matches!(tls, Tls::Refused) => conn.say("454 4.7.0 TLS not available now\r\n")?,
            "STARTTLS" if !secure => {
                let Tls::On(config) = &tls else { return None };
                conn.say("220 go ahead\r\n")?;
                let session = ServerConnection::new(config.clone()).ok()?;
                conn = Conn::Tls(Box::new(StreamOwned::new(session, tcp.try_clone().ok()?)));
            }
            "MAIL" => {
                let from = line.split_once(':').map(|(_, f)| f.trim()).unwrap_or("");
                mail = Some(Received {
                    mail_from: from.to_string(),
                    rcpt_to: Vec::new(),
                    data: Vec::new(),
                    tls: secure,
                });
                conn.say("250 ok\r\n")?;
            }
            "RCPT" if line.contains("refuse") => conn.say("550 5.1.1 no such mailbox\r\n")?,
            "RCPT" => {
                let to = line
                    .split_once(':')
                    .map(|(_, t)| t.trim().to_string())
                    .unwrap_or_default();
                mail.as_mut()?.rcpt_to.push(to);
                conn.say("250 ok\r\n")?;
            }
            "DATA" => {
                conn.say("354 go on\r\n")?;
                let mut received = mail.take()?;
                loop {
                    let line = conn.line()?;
                    if line == b".\r\n" {
                        break;
                    }
                    let line = line.strip_prefix(b".").unwrap_or(&line);
                    received.data.extend_from_slice(line);
                }
                mails.lock().unwrap().push(received);
                conn.say("250 2.0.0 kept\r\n")?;
            }
            "QUIT" => {
                conn.say("221 bye\r\n")?;
                return Some(());
            }
            _ => conn.say("250 ok\r\n")?,
        }
    }
}
