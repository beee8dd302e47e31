//! A raw SMTP client: send lines, read whole replies; STARTTLS and implicit TLS.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server that is about to close a connection may take to do it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A byte stream a client talks over: TCP, or TLS on TCP.
pub(crate) trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

pub(crate) struct Client {
    reader: BufReader<Box<dyn Stream>>,
    /// The socket itself, for the TLS handshake after STARTTLS and for timeouts.
    tcp: TcpStream,
}

/// One SMTP reply: its code and its lines (text after `code-` / `code `).
#[derive(Debug)]
pub(crate) struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// Request ids from a `250 2.0.0 Ok: queued as 1 2` reply's text.
pub(crate) fn queued_ids(text: &str) -> Vec<i64> {
    text.split("queued as")
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|id| id.parse().ok())
        .collect()
}

/// A TCP connection from `source` (another loopback address, 127.0.0.2, ...), with a
/// receive buffer of `receive_buffer` bytes if given (small: a client that does not read
/// soon makes the gateway's writes block).
pub(crate) fn tcp_from(source: &str, address: SocketAddr, receive_buffer: Option<u32>) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            if let Some(size) = receive_buffer {
                socket.set_recv_buffer_size(size)?;
            }
            socket.bind(format!("{source}:0").parse().unwrap())?;
            socket.connect(address).await?.into_std()
        })
        .expect("connect from another address");
    stream.set_nonblocking(false).unwrap();
    stream
}

impl Client {
    pub(crate) fn connect(address: SocketAddr) -> Client {
        Client::greeted(TcpStream::connect(address).expect("connect"))
    }

    /// Connects from another loopback address (127.0.0.2, ...), as a remote client would.
    pub(crate) fn connect_from(source: &str, address: SocketAddr) -> Client {
        Client::greeted(tcp_from(source, address, None))
    }

    /// Connects and returns the client if greeted with 220, else the reply it got
    /// instead (a 421 when the gateway refuses the connection).
    pub(crate) fn try_connect(address: SocketAddr) -> Result<Client, Option<Reply>> {
        let tcp = TcpStream::connect(address).map_err(|_| None)?;
        tcp.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let reader = BufReader::new(Box::new(tcp.try_clone().unwrap()) as Box<dyn Stream>);
        let mut client = Client { reader, tcp };
        match client.reply() {
            Some(reply) if reply.code == 220 => Ok(client),
            other => Err(other),
        }
    }

    /// Connects to an implicit-TLS listener; the greeting comes after the handshake.
    pub(crate) fn connect_tls(address: SocketAddr, ca: &Path) -> Client {
        let tcp = TcpStream::connect(address).expect("connect");
        let mut client = Client::over_tls(tcp, ca);
        client.expect(220);
        client
    }

    fn greeted(tcp: TcpStream) -> Client {
        tcp.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let reader = BufReader::new(Box::new(tcp.try_clone().unwrap()) as Box<dyn Stream>);
        let mut client = Client { reader, tcp };
        client.expect(220);
        client
    }

    fn over_tls(tcp: TcpStream, ca: &Path) -> Client {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
        tcp.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
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
    pub(crate) fn starttls(mut self, ca: &Path) -> Client {
        self.command("STARTTLS", 220);
        let mut client = Client::over_tls(self.tcp, ca);
        client.command("EHLO client.example", 250);
        client
    }

    pub(crate) fn send(&mut self, bytes: &str) {
        self.send_bytes(bytes.as_bytes());
    }

    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).and_then(|()| stream.flush()).expect("send");
    }

    /// Reads one reply (None if the server closed the connection).
    pub(crate) fn reply(&mut self) -> Option<Reply> {
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
    pub(crate) fn expect(&mut self, code: u16) -> Reply {
        let reply = self
            .reply()
            .unwrap_or_else(|| panic!("connection closed, expected {code}"));
        assert_eq!(reply.code, code, "unexpected reply: {reply:?}");
        reply
    }

    /// Sends a command line and checks the reply's code.
    pub(crate) fn command(&mut self, line: &str, code: u16) -> Reply {
        self.send(&format!("{line}\r\n"));
        self.expect(code)
    }

    /// True once the server has closed the connection (end of stream or reset) within
    /// a few seconds; false if it sends more, or keeps the connection open and silent.
    pub(crate) fn is_closed(&mut self) -> bool {
        self.closed_within(CLOSE_TIMEOUT)
    }

    /// `is_closed`, waiting at most `limit`.
    pub(crate) fn closed_within(&mut self, limit: Duration) -> bool {
        self.tcp.set_read_timeout(Some(limit)).unwrap();
        let mut byte = [0u8; 1];
        let result = self.reader.read(&mut byte);
        self.tcp.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        match result {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => match error.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => false,
                // A TLS stream ended without close_notify is closed all the same.
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::UnexpectedEof => true,
                _ => panic!("reading from the server: {error}"),
            },
        }
    }

    /// AUTH PLAIN with an initial response; returns the reply.
    pub(crate) fn auth_plain(&mut self, user: &str, password: &str) -> Reply {
        use base64::Engine;
        let response = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.send(&format!("AUTH PLAIN {response}\r\n"));
        self.reply().expect("reply to AUTH")
    }

    /// EHLO, MAIL, RCPT for each recipient, DATA with `message`: returns the final reply.
    pub(crate) fn mail(&mut self, recipients: &[&str], message: &str) -> Reply {
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

/// A small mail with a subject and a body.
pub(crate) fn message(subject: &str, body: &str) -> String {
    format!("From: sender@example.com\r\nTo: sms\r\nSubject: {subject}\r\n\r\n{body}")
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::Client;

    /// A server that answers 421 and then keeps the connection open: the client must not
    /// take that for a closed connection.
    #[test]
    fn a_connection_left_open_after_421_is_not_closed() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (looked, close) = mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(b"220 hello\r\n421 4.7.0 bye\r\n").unwrap();
            let _ = close.recv();
            drop(stream);
        });
        let mut client = Client::connect(address);
        client.expect(421);
        assert!(!client.closed_within(Duration::from_millis(200)), "still open");
        looked.send(()).unwrap();
        assert!(client.is_closed(), "closed once the server let go");
        server.join().unwrap();
    }
}
