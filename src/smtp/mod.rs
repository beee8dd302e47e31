//! Inbound SMTP: listeners, the connection limit, and the loop between a socket and its
//! [`Session`].

mod auth;
pub mod budget;
mod command;
mod data;
mod deadline;
mod ehlo;
mod load;
mod mail;
pub mod policy;
mod rcpt;
pub mod reply;
mod session;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use budget::Budget;
use deadline::{Clock, DATA_PROGRESS, LAST_WORDS, bounded};
use load::{Load, Seat};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::address::AddressRules;
use crate::compose::ComposeMode;
use crate::config::{Config, OnTooLong};
pub use crate::credentials::Credentials;
use crate::sms::Language;
use crate::store::Store;
use policy::{Policy, Routes};
use reply::Reply;
pub use session::Session;
pub use state::Step;

/// Password checks at once (each takes ~19 MiB and a core for tens of milliseconds).
const PASSWORD_CHECKS: usize = 4;

/// What a session needs to know, taken once from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our name in the greeting and the EHLO answer.
    pub hostname: String,
    /// Which recipient addresses are phone numbers, and how to read them.
    pub rules: AddressRules,
    /// Largest message accepted, in bytes (advertised as SIZE).
    pub max_message_size: usize,
    /// Recipients accepted in one transaction.
    pub max_recipients: usize,
    /// Errors in one session before it is closed with `421`.
    pub max_errors: usize,
    /// The deadline on progress between commands: a command must arrive whole and its
    /// answer be written within it (a deadline, not a limit on silence).
    pub command_timeout: Duration,
    /// The deadline on progress during DATA or BDAT: 64 KiB more of the message kept
    /// within it; a whole message gets at most three of them.
    pub data_timeout: Duration,
    /// What of the mail becomes the SMS text.
    pub compose: ComposeMode,
    /// Most SMS parts one request may take.
    pub max_parts: usize,
    /// Whether a longer text is truncated to `max_parts` or refused.
    pub on_too_long: OnTooLong,
    /// National language tables the text may be encoded with, for counting its parts.
    pub languages: Vec<Language>,
    /// A certificate is configured: STARTTLS is offered.
    pub tls_offered: bool,
    /// Pause before answering a failed AUTH, times the failures in a row.
    pub auth_failure_delay: Duration,
    /// Users that are other instances (the names of our `[[peer]]`s): their
    /// `X-Smsgw-*` headers are believed, and the abuse limits (applied where the mail
    /// first came in) do not count their requests again.
    pub peers: Vec<String>,
}

impl Settings {
    /// The settings of the `[smtp]`, `[sms]` and `[security]` sections, and the peers.
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            hostname: config.smtp.hostname.clone(),
            rules: config.address_rules(),
            max_message_size: config.smtp.max_message_size,
            max_recipients: config.smtp.max_recipients,
            max_errors: config.smtp.max_errors,
            command_timeout: Duration::from_secs(config.smtp.command_timeout_secs),
            data_timeout: Duration::from_secs(config.smtp.data_timeout_secs),
            compose: config.sms.compose,
            max_parts: config.sms.max_parts,
            on_too_long: config.sms.on_too_long,
            languages: config.sms.national_language_tables.clone(),
            tls_offered: config.has_tls(),
            auth_failure_delay: Duration::from_millis(config.security.auth_failure_delay_ms),
            peers: config.peer.iter().map(|p| p.name.clone()).collect(),
        }
    }
}

/// Binds every configured listener (before anything else starts, so a port in use is
/// reported at once).
async fn bind(addresses: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for address in addresses {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {address}: {e}")))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A bound listener, and whether TLS starts at once on it (port 465 style).
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// TLS starts at once on connect, without STARTTLS.
    pub implicit_tls: bool,
}

/// Binds the plain and the implicit-TLS listeners (before anything else starts, so a
/// port in use is reported at once).
pub async fn bind_all(config: &Config) -> std::io::Result<Vec<Listener>> {
    let plain = bind(&config.smtp.listen).await?.into_iter().map(|socket| Listener {
        socket,
        implicit_tls: false,
    });
    let tls = bind(&config.security.listen_tls)
        .await?
        .into_iter()
        .map(|socket| Listener {
            socket,
            implicit_tls: true,
        });
    Ok(plain.chain(tls).collect())
}

/// Serves the listeners until `shutdown`, then lets sessions finish for `grace`.
/// SIGHUP (`hangups`, registered by the caller before any listener is announced)
/// reloads the TLS certificate and the users file. `routes` says at `RCPT TO` which
/// numbers no instance can send to.
pub async fn serve(
    listeners: Vec<Listener>,
    config: &Config,
    credentials: Credentials,
    store: Store,
    routes: Routes,
    hangups: std::io::Result<tokio::signal::unix::Signal>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        settings: Arc::new(Settings::from_config(config)),
        policy: Arc::new(
            Policy::from_config(config)
                .with_routes(routes)
                .with_optouts(store.optout_list()),
        ),
        credentials,
        store,
        load: Arc::new(Load::new(
            config.smtp.max_connections,
            config.smtp.max_connections_per_client,
        )),
        // One client may hold two of the largest messages at once: a smart host relaying
        // several large mails gets `452` past it and retries, but no one client can hold
        // the whole budget and keep everyone else's mail out.
        budget: Arc::new(Budget::with_share(
            config.smtp.max_buffered_bytes,
            // (At least 128 KiB: a buffer grows by a whole read past the message.)
            config.smtp.max_message_size.max(64 * 1024).saturating_mul(2),
        )),
        hashing: Semaphore::new(PASSWORD_CHECKS),
        sessions: TaskTracker::new(),
        shutdown: shutdown.clone(),
    });
    let reloads = tokio::spawn(reload_on_hangup(hangups, shared.clone()));
    let usage = tokio::spawn(share_usage(shared.clone()));
    let accepting: Vec<_> = listeners
        .into_iter()
        .map(|l| tokio::spawn(accept_loop(l, shared.clone())))
        .collect();
    for task in accepting {
        let _ = task.await;
    }
    reloads.abort();
    usage.abort();
    shared.sessions.close();
    let grace = Duration::from_secs(config.smtp.shutdown_grace_secs);
    if tokio::time::timeout(grace, shared.sessions.wait()).await.is_err() {
        tracing::warn!(
            open = shared.sessions.len(),
            "sessions still open after the grace period; closing them"
        );
    }
}

/// In a site (PostgreSQL), every second: tells the other instances what each sender was
/// let send here, and adds what they let it send to the limits here. Alone, stops at once.
async fn share_usage(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let here = shared.policy.usage_here(std::time::Instant::now());
        match shared.store.share_usage(here).await {
            Ok(Some(elsewhere)) => shared.policy.set_usage_elsewhere(elsewhere),
            Ok(None) => return,
            Err(error) => tracing::warn!(%error, "cannot share the abuse limits' counts with the site"),
        }
    }
}

/// What every accept loop and session shares.
struct Shared {
    settings: Arc<Settings>,
    policy: Arc<Policy>,
    credentials: Credentials,
    store: Store,
    /// The sessions open, in all and per address, and whether that is stress.
    load: Arc<Load>,
    /// The bytes sessions may hold for messages in progress (`smtp.max_buffered_bytes`).
    budget: Arc<Budget>,
    /// Password checks running at once.
    hashing: Semaphore,
    sessions: TaskTracker,
    shutdown: CancellationToken,
}

async fn reload_on_hangup(hangups: std::io::Result<tokio::signal::unix::Signal>, shared: Arc<Shared>) {
    let Ok(mut hangups) = hangups else {
        tracing::error!("cannot listen for SIGHUP: reloading is disabled");
        return;
    };
    while hangups.recv().await.is_some() {
        shared.credentials.reload();
    }
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(10);
    let loopback = listener.socket.local_addr().is_ok_and(|a| a.ip().is_loopback());
    loop {
        let accepted = tokio::select! {
            accepted = listener.socket.accept() => accepted,
            () = shared.shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let _ = stream.set_nodelay(true);
        let trusted = shared.policy.is_trusted(peer.ip());
        match shared.load.admit(peer.ip(), trusted) {
            Ok(seat) => {
                let shared_for_session = shared.clone();
                let session = Session::new(
                    shared.settings.clone(),
                    shared.policy.clone(),
                    shared.budget.clone(),
                    peer,
                    loopback,
                );
                shared.sessions.spawn(async move {
                    let _open = crate::metrics::OpenSession::start();
                    connection(stream, session, listener.implicit_tls, &shared_for_session, seat).await;
                });
            }
            Err(busy) => {
                tracing::info!(client = %peer, reason = %busy.text, "connection refused");
                shared.sessions.spawn(refuse(stream, busy));
            }
        }
    }
}

async fn refuse(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = bounded(LAST_WORDS, stream.write_all(&out)).await;
}

/// How a conversation on one stream ended.
enum Ended {
    Closed,
    /// STARTTLS was accepted: continue on the same socket, encrypted.
    StartTls,
}

/// One connection, from the greeting (or the TLS handshake) to its close; `_seat` is
/// its place among the open sessions, given back when it ends.
async fn connection(mut stream: TcpStream, mut session: Session, implicit_tls: bool, shared: &Shared, _seat: Seat) {
    let mut clock = Clock::new(shared.settings.command_timeout, shared.load.stress());
    let mut out = Vec::with_capacity(512);
    if !implicit_tls {
        session.greeting(&mut out);
        if let Ended::Closed = converse(&mut stream, &mut session, out, shared, &mut clock).await {
            return;
        }
        out = Vec::new();
    }
    let Some(acceptor) = shared.credentials.acceptor() else {
        return;
    };
    // The handshake is one exchange: it must end within the command timeout.
    let mut tls = match clock.within(acceptor.accept(stream)).await {
        Some(Ok(tls)) => tls,
        Some(Err(error)) => {
            tracing::info!(client = %session.client(), %error, "TLS handshake failed");
            return;
        }
        None => return,
    };
    clock.progress(shared.settings.command_timeout);
    session.tls_started();
    if implicit_tls {
        session.greeting(&mut out);
    }
    converse(&mut tls, &mut session, out, shared, &mut clock).await;
    let _ = bounded(LAST_WORDS, tls.shutdown()).await;
}

/// Reads, feeds the session, writes its answers; stores mail and checks passwords when
/// it asks. Answers are written once per read, so pipelined commands get one write.
/// Every read and write is held to `clock`: answers written, or [`DATA_PROGRESS`] more
/// octets of a message kept, are progress; nothing else is.
async fn converse<S>(
    stream: &mut S,
    session: &mut Session,
    mut out: Vec<u8>,
    shared: &Shared,
    clock: &mut Clock,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buffer = vec![0u8; 16 * 1024];
    // The message octets kept when progress was last counted.
    let mut kept = 0;
    loop {
        if !out.is_empty() {
            // A client that does not read its answers blocks this write: the deadline
            // ends it.
            if !write_out(stream, &mut out, clock).await {
                tracing::info!(client = %session.client(), "closed: answers not read in time");
                return Ended::Closed;
            }
            clock.progress(session.timeout());
            kept = session.buffered();
        }
        let read = tokio::select! {
            read = clock.within(stream.read(&mut buffer)) => read,
            () = shared.shutdown.cancelled(), if session.is_between_commands() => {
                Reply::new(421, "4.3.2", "Shutting down, try again later").write_to(&mut out);
                break;
            }
        };
        let count = match read {
            Some(Ok(0)) | Some(Err(_)) => return Ended::Closed,
            Some(Ok(count)) => count,
            None => {
                tracing::info!(client = %session.client(), "closed: no progress in time");
                Reply::new(421, "4.4.2", "Timeout, closing connection").write_to(&mut out);
                break;
            }
        };
        let mut bytes = buffer[..count].iter();
        loop {
            let after = match session.ingest(&mut bytes, &mut out) {
                Step::Read => break,
                Step::Store(mail) => {
                    let result = shared.store.receive(*mail).await;
                    if result.is_ok() {
                        crate::metrics::bump(&crate::metrics::SMTP_MAILS);
                    }
                    session.stored(result, &mut out)
                }
                Step::Authenticate { user, password } => authenticate(session, user, password, &mut out, shared).await,
                Step::StartTls => {
                    // Bytes pipelined after STARTTLS were sent in clear: never act on them.
                    if !write_out(stream, &mut out, clock).await {
                        return Ended::Closed;
                    }
                    clock.progress(shared.settings.command_timeout);
                    return Ended::StartTls;
                }
                Step::Flush => {
                    // Answers are not left to pile up while the rest of the read is
                    // answered: a client that does not read blocks here, holding 8 KiB.
                    if !write_out(stream, &mut out, clock).await {
                        tracing::info!(client = %session.client(), "closed: answers not read in time");
                        return Ended::Closed;
                    }
                    clock.progress(session.timeout());
                    kept = session.buffered();
                    continue;
                }
                Step::Close => Some(Step::Close),
            };
            if let Some(Step::Close) = after {
                let _ = bounded(LAST_WORDS, async {
                    stream.write_all(&out).await?;
                    stream.flush().await
                })
                .await;
                return Ended::Closed;
            }
        }
        // A message holding part of the budget must end within its own deadline.
        clock.holding(session.holds_budget(), shared.settings.data_timeout);
        // Message data kept is progress (data being discarded is not).
        let buffered = session.buffered();
        if buffered < kept {
            kept = buffered;
        } else if buffered - kept >= DATA_PROGRESS {
            clock.progress(session.timeout());
            kept = buffered;
        }
    }
    let _ = bounded(LAST_WORDS, async {
        stream.write_all(&out).await?;
        stream.flush().await
    })
    .await;
    Ended::Closed
}

/// Writes `out` whole and flushes it (over TLS, rustls may otherwise keep the answers
/// queued) within `clock`; `false` if that failed or the deadline passed. `out` is
/// emptied when written.
async fn write_out<S>(stream: &mut S, out: &mut Vec<u8>, clock: &mut Clock) -> bool
where
    S: AsyncWrite + Unpin,
{
    let written = clock
        .within(async {
            stream.write_all(out).await?;
            stream.flush().await
        })
        .await;
    out.clear();
    matches!(written, Some(Ok(())))
}

/// Checks a password off the runtime, a few at a time; each failure in a row from this
/// address makes the answer slower.
async fn authenticate(
    session: &mut Session,
    user: String,
    password: String,
    out: &mut Vec<u8>,
    shared: &Shared,
) -> Option<Step> {
    let users = shared.credentials.users();
    let name = user.clone();
    let found = {
        let _turn = shared.hashing.acquire().await;
        tokio::task::spawn_blocking(move || users.verify(&user, &password).cloned())
            .await
            .unwrap_or(None)
    };
    let after = session.authenticated(&name, found, out);
    tokio::time::sleep(shared.settings.auth_failure_delay * session.auth_failures().min(5)).await;
    after
}
