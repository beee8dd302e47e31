//! Inbound SMTP: listeners, the connection limit, and the loop between a socket and its
//! [`Session`].

mod data;
mod ehlo;
mod mail;
mod rcpt;
pub mod reply;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::address::AddressRules;
use crate::compose::ComposeMode;
use crate::config::{Config, OnTooLong};
use crate::sms::Language;
use crate::store::Store;
use reply::Reply;
pub use session::{Session, Step};

/// What a session needs to know, taken once from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub hostname: String,
    pub rules: AddressRules,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_errors: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub compose: ComposeMode,
    pub max_parts: usize,
    pub on_too_long: OnTooLong,
    pub languages: Vec<Language>,
}

impl Settings {
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            hostname: config.smtp.hostname.clone(),
            rules: AddressRules {
                domains: config.smtp.sms_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
                default_region: config.region(),
                deny_premium: config.security.deny_premium,
            },
            max_message_size: config.smtp.max_message_size,
            max_recipients: config.smtp.max_recipients,
            max_errors: config.smtp.max_errors,
            command_timeout: Duration::from_secs(config.smtp.command_timeout_secs),
            data_timeout: Duration::from_secs(config.smtp.data_timeout_secs),
            compose: config.sms.compose,
            max_parts: config.sms.max_parts,
            on_too_long: config.sms.on_too_long,
            languages: config.languages(),
        }
    }
}

/// Binds every configured listener (before anything else starts, so a port in use is
/// reported at once).
pub async fn bind(addresses: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for address in addresses {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {address}: {e}")))?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Serves the listeners until `shutdown`, then lets sessions finish for `grace`.
pub async fn serve(
    listeners: Vec<TcpListener>,
    settings: Settings,
    store: Store,
    max_connections: usize,
    grace: Duration,
    shutdown: CancellationToken,
) {
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(max_connections));
    let sessions = TaskTracker::new();
    let mut accepting = Vec::new();
    for listener in listeners {
        let shared = Shared {
            settings: settings.clone(),
            store: store.clone(),
            slots: slots.clone(),
            sessions: sessions.clone(),
            shutdown: shutdown.clone(),
        };
        accepting.push(tokio::spawn(accept_loop(listener, shared)));
    }
    for task in accepting {
        let _ = task.await;
    }
    sessions.close();
    if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
        tracing::warn!(
            open = sessions.len(),
            "sessions still open after the grace period; closing them"
        );
    }
}

/// What every accept loop shares.
struct Shared {
    settings: Arc<Settings>,
    store: Store,
    /// One permit per open session (`smtp.max_connections`).
    slots: Arc<Semaphore>,
    sessions: TaskTracker,
    shutdown: CancellationToken,
}

async fn accept_loop(listener: TcpListener, shared: Shared) {
    let Shared {
        settings,
        store,
        slots,
        sessions,
        shutdown,
    } = shared;
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
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
        let settings = settings.clone();
        let store = store.clone();
        let shutdown = shutdown.clone();
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                sessions.spawn(async move {
                    connection(stream, peer, settings, store, shutdown).await;
                    drop(permit);
                });
            }
            Err(_) => {
                sessions.spawn(refuse(
                    stream,
                    Reply::new(421, "4.7.0", "Too many connections, try again later"),
                ));
            }
        }
    }
}

async fn refuse(mut stream: TcpStream, reply: Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = stream.write_all(&out).await;
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    settings: Arc<Settings>,
    store: Store,
    shutdown: CancellationToken,
) {
    tracing::debug!(%peer, "connection opened");
    let mut session = Session::new(settings, peer);
    let mut out = Vec::with_capacity(512);
    session.greeting(&mut out);
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        let read = tokio::select! {
            read = tokio::time::timeout(session.timeout(), stream.read(&mut buffer)) => read,
            () = shutdown.cancelled(), if session.is_between_commands() => {
                Reply::new(421, "4.3.2", "Shutting down, try again later").write_to(&mut out);
                break;
            }
        };
        let count = match read {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(count)) => count,
            Err(_) => {
                Reply::new(421, "4.4.2", "Timeout, closing connection").write_to(&mut out);
                break;
            }
        };
        let mut bytes = buffer[..count].iter();
        loop {
            match session.ingest(&mut bytes, &mut out) {
                Step::Read => break,
                Step::Store(mail) => {
                    let result = store.receive(*mail).await;
                    if let Some(Step::Close) = session.stored(result, &mut out) {
                        let _ = stream.write_all(&out).await;
                        return;
                    }
                }
                Step::Close => {
                    let _ = stream.write_all(&out).await;
                    return;
                }
            }
        }
    }
    let _ = stream.write_all(&out).await;
}
