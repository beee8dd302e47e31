//! The delivery policy: which server, TLS as the policy says (verify, opportunistic,
//! none), authentication, and connections kept for more mails.

use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::command::Command;
use super::error::OutboundError;
use super::mail::{Mail, Server};
use super::response::Extensions;
use super::session::Conversation;
use super::tls::TlsPolicy;
use crate::config::OutboundTls;

/// How deliveries go: our name in EHLO, TLS, and the time any one step may take.
#[derive(Clone)]
pub struct Client {
    /// Our host name, in EHLO.
    pub helo: String,
    /// Whether and how STARTTLS is used, and which certificates are accepted.
    pub tls: TlsPolicy,
    /// The longest any one step (connect, handshake, a read, a write) may take.
    pub timeout: Duration,
}

/// A byte stream to a server: TCP, or TLS over TCP.
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open SMTP connection, greeted, past STARTTLS and AUTH: mails go one after the other.
pub struct Connection {
    session: Conversation<Box<dyn Io>>,
    extensions: Extensions,
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
            Err(NotOpened { tls: true, .. }) if self.tls.mode == OutboundTls::Opportunistic => {
                self.open(server, auth, false).await
            }
            other => other,
        };
        opened.map_err(|not_opened| not_opened.error)
    }

    /// Connects to the first of `servers` that takes the connection ([`Client::connect`]
    /// to each in order): a server that cannot be reached, or that fails or refuses
    /// anything before the first mail (greeting, EHLO, STARTTLS, AUTH; a `4xx` there most
    /// often), leaves the next one to try. These are the instances of one site, sharing
    /// one queue: whichever takes the connection is the same peer. With none, the
    /// (temporary) error says why for each.
    pub async fn connect_first<'s>(
        &self,
        servers: &'s [Server],
        auth: Option<(&str, &str)>,
    ) -> Result<(Connection, &'s Server), OutboundError> {
        let mut failed = Vec::new();
        for server in servers {
            match self.connect(server, auth).await {
                Ok(connection) => return Ok((connection, server)),
                Err(error) => {
                    if servers.len() > 1 {
                        tracing::warn!(%server, %error, "cannot open a session, trying the next server");
                    }
                    failed.push(error);
                }
            }
        }
        match failed.len() {
            0 => Err(OutboundError::Temporary("no server to try".into())),
            1 => Err(failed.remove(0)),
            _ => Err(OutboundError::Temporary(
                failed.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
            )),
        }
    }

    /// A new TCP connection and the conversation up to the first mail.
    async fn open(
        &self,
        server: &Server,
        auth: Option<(&str, &str)>,
        tls_allowed: bool,
    ) -> Result<Connection, NotOpened> {
        let tcp = self.tcp(server).await.map_err(NotOpened::plain)?;
        self.over(Box::new(tcp), server, auth, tls_allowed).await
    }

    /// The conversation on `stream` up to the first mail: greeting, EHLO, STARTTLS when
    /// `tls_allowed` and the policy wants it, AUTH.
    pub(super) async fn over(
        &self,
        stream: Box<dyn Io>,
        server: &Server,
        auth: Option<(&str, &str)>,
        tls_allowed: bool,
    ) -> Result<Connection, NotOpened> {
        let mut session = Conversation::new(stream, server.clone(), self.timeout);
        session.greeting().await.map_err(NotOpened::plain)?;
        let extensions = session.ehlo(&self.helo).await.map_err(NotOpened::plain)?;
        let connector = match upgrade(self.tls.mode, extensions.has("STARTTLS"), tls_allowed) {
            Upgrade::Clear => None,
            Upgrade::StartTls => self.tls.connector(),
            Upgrade::Refuse => {
                let why = format!("{server} does not offer STARTTLS, and TLS with a verified certificate is required");
                return Err(NotOpened::plain(OutboundError::Temporary(why)));
            }
        };
        let (mut session, extensions) = match connector {
            None => (session, extensions),
            Some(connector) => {
                session.command(&Command::StartTls).await.map_err(NotOpened::tls)?;
                let name = ServerName::try_from(server.host.clone()).map_err(|_| {
                    NotOpened::tls(OutboundError::Temporary(format!("{} is not a host name", server.host)))
                })?;
                let handshake = connector.connect(name, session.into_inner());
                let tls = tokio::time::timeout(self.timeout, handshake)
                    .await
                    .map_err(|_| {
                        NotOpened::tls(OutboundError::Temporary(format!("{server}: TLS handshake timed out")))
                    })?
                    .map_err(|e| NotOpened::tls(OutboundError::Temporary(format!("{server}: TLS failed: {e}"))))?;
                let mut session = Conversation::new(Box::new(tls) as Box<dyn Io>, server.clone(), self.timeout);
                let extensions = session.ehlo(&self.helo).await.map_err(NotOpened::plain)?;
                (session, extensions)
            }
        };
        if let Some((user, password)) = auth {
            if !extensions.has("AUTH") {
                let why = format!("{server}: does not offer AUTH, and credentials are configured for it");
                return Err(NotOpened::plain(OutboundError::Temporary(why)));
            }
            // A refused password is the operator's to fix, not the mail's fault: like
            // every failure before the first mail, it is temporary.
            let auth = Command::AuthPlain { user, password };
            session.command(&auth).await.map_err(NotOpened::plain)?;
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

/// What to do about TLS once EHLO has told whether the server offers STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    /// Go on in clear.
    Clear,
    /// STARTTLS, then EHLO again.
    StartTls,
    /// Give up on this server: TLS with a verified certificate is required and not
    /// offered.
    Refuse,
}

/// The policy: `verify` insists on STARTTLS; `opportunistic` takes it when offered,
/// unless `tls_allowed` is false (the second try, in clear, after TLS failed); `none`
/// never uses it.
fn upgrade(mode: OutboundTls, offered: bool, tls_allowed: bool) -> Upgrade {
    match (mode, offered) {
        (OutboundTls::None, _) | (OutboundTls::Opportunistic, false) => Upgrade::Clear,
        _ if !tls_allowed => Upgrade::Clear,
        (OutboundTls::Verify, false) => Upgrade::Refuse,
        (_, true) => Upgrade::StartTls,
    }
}

/// A connection that could not be set up: the error, and whether the TLS step failed
/// (opportunistic TLS then tries again in clear).
#[derive(Debug)]
pub(super) struct NotOpened {
    pub(super) error: OutboundError,
    pub(super) tls: bool,
}

impl NotOpened {
    fn plain(error: OutboundError) -> NotOpened {
        NotOpened { error, tls: false }
    }

    fn tls(error: OutboundError) -> NotOpened {
        NotOpened { error, tls: true }
    }
}

impl Connection {
    /// Whether a connection kept idle is still there (NOOP answered), before reuse.
    pub async fn alive(&mut self) -> bool {
        !self.session.is_broken() && self.session.command(&Command::Noop).await.is_ok()
    }

    /// One transaction; `Ok` carries the server's final answer. After an error the
    /// connection may still serve (a refused recipient) or not (a lost connection:
    /// every later send fails too).
    pub async fn send(&mut self, mail: &Mail<'_>) -> Result<String, OutboundError> {
        if self.session.is_broken() {
            return Err(self.session.lost("the connection was lost"));
        }
        if std::mem::take(&mut self.dirty) && self.session.command(&Command::Rset).await.is_err() {
            return Err(self.session.lost("RSET was not accepted"));
        }
        let result = self.session.transaction(mail, &self.extensions).await;
        self.dirty = result.is_err();
        result
    }

    /// The connection failed (lost, timed out, out of step): no more mails on it.
    pub fn is_broken(&self) -> bool {
        self.session.is_broken()
    }

    /// Says goodbye; the mails are delivered whatever the answer.
    pub async fn quit(mut self) {
        self.session.quit().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starttls_as_the_policy_says() {
        use OutboundTls::{None as Off, Opportunistic, Verify};
        use Upgrade::{Clear, Refuse, StartTls};
        let table = [
            // mode, offered, tls_allowed
            ((Off, true, true), Clear),
            ((Off, false, true), Clear),
            ((Opportunistic, true, true), StartTls),
            ((Opportunistic, false, true), Clear),
            ((Opportunistic, true, false), Clear),
            ((Verify, true, true), StartTls),
            ((Verify, false, true), Refuse),
        ];
        for ((mode, offered, tls_allowed), expected) in table {
            assert_eq!(
                upgrade(mode, offered, tls_allowed),
                expected,
                "{mode:?} {offered} {tls_allowed}"
            );
        }
    }
}
