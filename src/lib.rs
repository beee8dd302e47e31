//! smsgw: a mail-to-SMS gateway. Mail to `<phone>@sms` comes in over SMTP, is stored,
//! and is sent as SMS. Each stage talks to the next only through the store.

pub mod address;
pub mod compose;
pub mod config;
pub mod credentials;
pub mod e164;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod modem;
pub mod notify;
pub mod outbound;
pub mod retry;
pub mod routing;
pub mod sms;
pub mod smtp;
pub mod stage;
pub mod store;
pub mod users;
pub mod utc;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use config::Config;
use store::{Store, StoreError};

/// Why the gateway could not start; each says its whole cause in one line.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not be opened or migrated.
    #[error("store: {0}")]
    Store(StoreError),
    /// A listener (SMTP or HTTP) could not bind.
    #[error(transparent)]
    Listen(#[from] std::io::Error),
    /// The TLS certificate or the users file could not be read.
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    /// `outbound.tls_ca_file` or its pins (DSNs' transport) are unusable.
    #[error("outbound: {0}")]
    DsnTls(outbound::TlsSetupError),
    /// A `[[peer]]`'s CA file or pins are unusable.
    #[error("peer {0}: {1}")]
    PeerTls(String, outbound::TlsSetupError),
}

impl From<StoreError> for RunError {
    fn from(error: StoreError) -> Self {
        RunError::Store(error)
    }
}

impl From<outbound::TlsSetupError> for RunError {
    fn from(error: outbound::TlsSetupError) -> Self {
        RunError::DsnTls(error)
    }
}

/// Runs the gateway until `shutdown` is cancelled, then drains: listeners close first,
/// open sessions get `smtp.shutdown_grace_secs` to finish, and everything they were
/// told was accepted is already committed.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    for warning in config.warnings() {
        tracing::warn!(%warning, "config");
    }
    let store = Store::join(&config).await?;
    address::warm_up();
    let credentials = credentials::Credentials::load(&config)?;
    let notifier = notify::Notifier::new(&config)?;
    let board = Arc::new(modem::Board::new(config.modem.iter().map(|m| m.name.as_str())));
    let cluster = Arc::new(routing::view::Cluster::new(&config, board.clone(), store.clone()));
    // In a site, this instance's modems are recorded (a name another live instance has
    // is refused here, before any listener) and the others' read, before any RCPT.
    store
        .register_modems(
            config
                .modem
                .iter()
                .map(|m| (m.name.clone(), m.tariff.clone(), false))
                .collect(),
        )
        .await?;
    cluster.refresh_site().await?;
    let forwarder = forward::Forwarder::new(&config, cluster.clone(), store.id())
        .map_err(|(peer, error)| RunError::PeerTls(peer, error))?;
    let mut status_getters = Vec::new();
    for peer in &config.peer {
        let getter = routing::view::status_getter(peer).map_err(|e| RunError::PeerTls(peer.name.clone(), e))?;
        status_getters.push((peer.name.clone(), getter));
    }
    let listeners = smtp::bind_all(&config).await?;
    let http = match config.http.listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| std::io::Error::new(e.kind(), format!("http.listen: cannot listen on {address}: {e}")))?,
        ),
        None => None,
    };
    // SIGHUP's handler exists before any listener is announced (HTTP's and SMTP's below):
    // until then a SIGHUP ends the process, and whoever waits for a "listening" line may
    // send one next.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let poll = Duration::from_secs(config.routing.poll_secs);
    let mut stages = JoinSet::new();
    stages.spawn(routing::run(cluster.clone(), store.clone(), poll, shutdown.clone()));
    stages.spawn(routing::view::poll(
        cluster.clone(),
        status_getters,
        poll,
        store.clone(),
        shutdown.clone(),
    ));
    stages.spawn(forwarder.run(store.clone(), shutdown.clone()));
    stages.spawn(notifier.run(store.clone(), shutdown.clone()));
    stages.spawn(store.clone().keep_optouts_current(shutdown.clone()));
    if let Some(listener) = http {
        tracing::info!(address = %listener.local_addr()?, "HTTP listening");
        if config.http.tls || config.http.require_auth {
            tracing::info!(
                tls = config.http.tls,
                require_auth = config.http.require_auth,
                "HTTP access"
            );
        }
        let sources = Arc::new(http::Sources {
            cluster: cluster.clone(),
            store: store.clone(),
            board: board.clone(),
        });
        let access = http::Access::new(&config, credentials.clone());
        stages.spawn(http::serve(listener, sources, access, shutdown.clone()));
    }
    {
        let (config, store, shutdown) = (config.clone(), store.clone(), shutdown.clone());
        stages.spawn(async move {
            if let Err(error) = modem::run(&config, board, store, shutdown).await {
                tracing::error!(%error, "modems stopped with an error");
            }
        });
    }
    for listener in &listeners {
        let address = listener.socket.local_addr()?;
        if listener.implicit_tls {
            tracing::info!(%address, "SMTP listening (implicit TLS)");
        } else {
            tracing::info!(%address, "SMTP listening");
        }
    }
    let routes: smtp::policy::Routes = Arc::new(move |number| match cluster.reach(number) {
        routing::plan::Reach::Nowhere(why) => Some(why),
        routing::plan::Reach::Covered | routing::plan::Reach::Unknown => None,
    });
    smtp::serve(
        listeners,
        &config,
        credentials,
        store,
        routes,
        hangups,
        shutdown.clone(),
    )
    .await;
    // Intake is closed; the other stages stop at the same signal and finish what they hold.
    while stages.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}
