//! Outbound SMTP: one mail to one server, with STARTTLS as the [`TlsPolicy`] says.
//!
//! Every failure is sorted here, and only here, into temporary (try again, or another
//! server) and permanent (the server refused for good), as callers act on it.

pub mod tls;

use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use crate::config::OutboundTls;
pub use tls::{TlsPolicy, TlsSetupError};

/// Longest reply line we read, and most lines in one reply; a server sending more is
/// broken.
const MAX_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("{0}")]
    Temporary(String),
    #[error("{0}")]
    Permanent(String),
}

impl OutboundError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, OutboundError::Permanent(_))
    }
}

/// A server to deliver to: a host name or address, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One mail: the envelope and the message, CRLF lines.
#[derive(Debug, Clone, Default)]
pub struct Mail<'a> {
    /// The envelope sender; "" for the null sender of a DSN.
    pub from: &'a str,
    /// ESMTP parameters of MAIL FROM (RET, ENVID), each with its leading space.
    pub from_params: String,
    pub to: &'a str,
    /// ESMTP parameters of RCPT TO (NOTIFY, ORCPT), each with its leading space.
    pub to_params: String,
    pub message: &'a [u8],
}

/// How deliveries go: our name in EHLO, TLS, and the time any one step may take.
#[derive(Clone)]
pub struct Client {
    pub helo: String,
    pub tls: TlsPolicy,
    pub timeout: Duration,
}

/// A byte stream to a server: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open SMTP connection, greeted, past STARTTLS and AUTH: mails go one after the other.
pub struct Connection {
    session: Session<Box<dyn Io>>,
    extensions: Vec<String>,
    /// A transaction failed: RSET before the next one.
    dirty: bool,
}

impl Client {
    /// Delivers one `mail` to `server` on a connection of its own.
    pub async fn send(&self, server: &Server, mail: &Mail<'_>) -> Result<String, OutboundError> {
        let mut connection = self.connect(server, None).await?;
        let answer = connection.send(mail).await;
        connection.quit().await;
        answer
    }

    /// Connects, greets, upgrades to TLS as the policy says, and authenticates with
    /// `auth` (user, password) when given. No refusal here is about a mail: every error
    /// is temporary (another server, or later, may do).
    pub async fn connect(&self, server: &Server, auth: Option<(&str, &str)>) -> Result<Connection, OutboundError> {
        let opened = match self.open(server, auth, true).await {
            // Opportunistic TLS refused or failed: in clear, as Postfix's `may` does.
            Err((_, true)) if self.tls.mode == OutboundTls::Opportunistic => self.open(server, auth, false).await,
            other => other,
        };
        opened.map_err(|(error, _)| OutboundError::Temporary(error.to_string()))
    }

    /// The connection, or the error and whether it came from the TLS step.
    async fn open(
        &self,
        server: &Server,
        auth: Option<(&str, &str)>,
        tls_allowed: bool,
    ) -> Result<Connection, (OutboundError, bool)> {
        let plain = |error| (error, false);
        let over = |stream| Session {
            stream: BufStream::new(stream),
            server: server.clone(),
            timeout: self.timeout,
            broken: false,
        };
        let mut session = over(Box::new(self.tcp(server).await.map_err(plain)?) as Box<dyn Io>);
        session.expect("greeting", 2).await.map_err(plain)?;
        let extensions = session.ehlo(&self.helo).await.map_err(plain)?;
        let starttls = has(&extensions, "STARTTLS");
        let connector = match (self.tls.mode, self.tls.connector(), starttls) {
            (OutboundTls::None, ..) | (_, None, _) | (OutboundTls::Opportunistic, _, false) => None,
            _ if !tls_allowed => None,
            (OutboundTls::Verify, Some(_), false) => {
                let why = format!("{server} does not offer STARTTLS, and TLS with a verified certificate is required");
                return Err((OutboundError::Temporary(why), false));
            }
            (_, Some(connector), true) => Some(connector),
        };
        let (mut session, extensions) = match connector {
            None => (session, extensions),
            Some(connector) => {
                let tls_failed = |error| (error, true);
                session.command("STARTTLS", 2).await.map_err(tls_failed)?;
                let name = ServerName::try_from(server.host.clone())
                    .map_err(|_| tls_failed(OutboundError::Temporary(format!("{} is not a host name", server.host))))?;
                // Whatever the server sent after its 220 is dropped with the plain stream:
                // only what comes through TLS is read (no STARTTLS command injection).
                let clear = session.stream.into_inner();
                let tls = tokio::time::timeout(self.timeout, connector.connect(name, clear))
                    .await
                    .map_err(|_| tls_failed(OutboundError::Temporary(format!("{server}: TLS handshake timed out"))))?
                    .map_err(|e| tls_failed(OutboundError::Temporary(format!("{server}: TLS failed: {e}"))))?;
                let mut session = over(Box::new(tls));
                let extensions = session.ehlo(&self.helo).await.map_err(plain)?;
                (session, extensions)
            }
        };
        if let Some((user, password)) = auth {
            session.auth_plain(user, password, &extensions).await.map_err(plain)?;
        }
        Ok(Connection {
            session,
            extensions,
            dirty: false,
        })
    }

    async fn tcp(&self, server: &Server) -> Result<TcpStream, OutboundError> {
        let unreachable = |why: String| OutboundError::Temporary(format!("cannot connect to {server}: {why}"));
        let addresses = tokio::net::lookup_host((server.host.as_str(), server.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let mut last = "no address".to_string();
        for address in addresses {
            match tokio::time::timeout(self.timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(e)) => last = format!("{address}: {e}"),
                Err(_) => last = format!("{address}: timed out"),
            }
        }
        Err(unreachable(last))
    }
}

impl Connection {
    /// Whether a connection kept idle is still there (NOOP answered), before reuse.
    pub async fn alive(&mut self) -> bool {
        !self.session.broken && self.session.command("NOOP", 2).await.is_ok()
    }

    /// One transaction; `Ok` carries the server's final answer. After an error the
    /// connection may still serve (a refused recipient) or not (a lost connection:
    /// every later send fails too).
    pub async fn send(&mut self, mail: &Mail<'_>) -> Result<String, OutboundError> {
        if self.session.broken {
            return Err(self.session.temporary("the connection was lost"));
        }
        if std::mem::take(&mut self.dirty) && self.session.command("RSET", 2).await.is_err() {
            return Err(self.session.lost("RSET was not accepted"));
        }
        let result = self.session.transaction(mail, &self.extensions).await;
        self.dirty = result.is_err();
        result
    }

    /// The connection failed (lost, timed out, out of step): no more mails on it.
    pub fn is_broken(&self) -> bool {
        self.session.broken
    }

    /// Says goodbye; the mails are delivered whatever the answer.
    pub async fn quit(mut self) {
        let _ = self.session.write("QUIT\r\n").await;
    }
}

fn has(extensions: &[String], name: &str) -> bool {
    extensions.iter().any(|e| e.eq_ignore_ascii_case(name))
}

struct Session<S> {
    stream: BufStream<S>,
    server: Server,
    timeout: Duration,
    /// An I/O error, a timeout or an answer out of step: the conversation cannot go on.
    broken: bool,
}

/// A server's reply: its code and its lines of text.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// EHLO, and the extensions the server names (HELO for a server that knows no EHLO).
    async fn ehlo(&mut self, helo: &str) -> Result<Vec<String>, OutboundError> {
        self.write(&format!("EHLO {helo}\r\n")).await?;
        let reply = self.read().await?;
        if reply.code / 100 == 2 {
            return Ok(reply
                .lines
                .iter()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .map(str::to_string)
                .collect());
        }
        self.command(&format!("HELO {helo}"), 2).await?;
        Ok(Vec::new())
    }

    async fn auth_plain(&mut self, user: &str, password: &str, extensions: &[String]) -> Result<(), OutboundError> {
        if !has(extensions, "AUTH") {
            return Err(self.temporary("does not offer AUTH, and credentials are configured for it"));
        }
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.write(&format!("AUTH PLAIN {token}\r\n")).await?;
        // A refused password is the operator's to fix, not the mail's fault: retry later.
        match self.expect("AUTH", 2).await {
            Err(OutboundError::Permanent(text)) => Err(OutboundError::Temporary(text)),
            other => other.map(drop),
        }
    }

    async fn transaction(&mut self, mail: &Mail<'_>, extensions: &[String]) -> Result<String, OutboundError> {
        let eight_bit = !mail.message.is_ascii() && has(extensions, "8BITMIME");
        let body = if eight_bit { " BODY=8BITMIME" } else { "" };
        self.command(&format!("MAIL FROM:<{}>{body}{}", mail.from, mail.from_params), 2)
            .await?;
        self.command(&format!("RCPT TO:<{}>{}", mail.to, mail.to_params), 2)
            .await?;
        self.command("DATA", 3).await?;
        let data = data_lines(mail.message);
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(&data).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| self.lost("timed out sending the message"))?
        .map_err(|e| self.lost(&format!("connection lost sending the message: {e}")))?;
        let reply = self.expect("the message", 2).await?;
        Ok(format!(
            "{} answered {} {}",
            self.server,
            reply.code,
            reply.lines.join(" ")
        ))
    }

    async fn command(&mut self, command: &str, class: u16) -> Result<Reply, OutboundError> {
        self.write(&format!("{command}\r\n")).await?;
        let what = command.split(':').next().unwrap_or(command);
        self.expect(what, class).await
    }

    /// Reads a reply and sorts it: the expected class, or a temporary (4xx, or nonsense)
    /// or permanent (5xx) failure naming what was refused.
    async fn expect(&mut self, what: &str, class: u16) -> Result<Reply, OutboundError> {
        let reply = self.read().await?;
        if reply.code / 100 == class {
            return Ok(reply);
        }
        if reply.code == 421 {
            // The server is closing the connection (RFC 5321 §3.8).
            self.broken = true;
        }
        let text = format!(
            "{} answered {} {} to {what}",
            self.server,
            reply.code,
            reply.lines.join(" ")
        );
        Err(if reply.code / 100 == 5 {
            OutboundError::Permanent(text)
        } else {
            OutboundError::Temporary(text)
        })
    }

    async fn write(&mut self, line: &str) -> Result<(), OutboundError> {
        tokio::time::timeout(self.timeout, async {
            self.stream.write_all(line.as_bytes()).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| self.lost("timed out writing"))?
        .map_err(|e| self.lost(&format!("connection lost: {e}")))
    }

    async fn read(&mut self) -> Result<Reply, OutboundError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let read = tokio::time::timeout(
                self.timeout,
                (&mut self.stream).take(MAX_LINE as u64).read_until(b'\n', &mut line),
            )
            .await
            .map_err(|_| self.lost("timed out waiting for an answer"))?
            .map_err(|e| self.lost(&format!("connection lost: {e}")))?;
            if read == 0 {
                return Err(self.lost("connection closed without an answer"));
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c));
            let Some(code) = code else {
                return Err(self.lost(&format!("answered something that is not SMTP: {line:?}")));
            };
            lines.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply { code, lines });
            }
            if lines.len() >= MAX_REPLY_LINES {
                return Err(self.lost("answered more lines than any server would"));
            }
        }
    }

    fn temporary(&self, what: &str) -> OutboundError {
        OutboundError::Temporary(format!("{}: {what}", self.server))
    }

    /// A temporary error after which the conversation cannot go on.
    fn lost(&mut self, what: &str) -> OutboundError {
        self.broken = true;
        self.temporary(what)
    }
}

/// The message as DATA sends it: CRLF line ends, leading dots doubled, and the final
/// `.` line.
fn data_lines(message: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            data.push(b'.');
        }
        data.extend_from_slice(line);
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_are_crlf_and_dot_stuffed() {
        let table: [(&[u8], &[u8]); 5] = [
            (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
            (b"a\nb", b"a\r\nb\r\n.\r\n"),
            (b".hidden\r\n..two\r\n", b"..hidden\r\n...two\r\n.\r\n"),
            (b"\r\n.\r\n", b"\r\n..\r\n.\r\n"),
            (b"", b".\r\n"),
        ];
        for (message, expected) in table {
            assert_eq!(
                String::from_utf8_lossy(&data_lines(message)),
                String::from_utf8_lossy(expected)
            );
        }
    }
}
