//! smsgw: a mail-to-SMS gateway. Mail to `<phone>@sms` comes in over SMTP, is stored,
//! and is sent as SMS. Each stage talks to the next only through the store.

pub mod address;
pub mod compose;
pub mod config;
pub mod modem;
pub mod net;
pub mod notify;
pub mod outbound;
pub mod routing;
pub mod sms;
pub mod smtp;
pub mod store;
pub mod users;
pub mod utc;

use tokio_util::sync::CancellationToken;

use config::Config;
use store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Listen(#[from] std::io::Error),
    #[error("{0}")]
    Credentials(#[from] smtp::tls::CredentialsError),
    #[error("dsn: {0}")]
    DsnTls(#[from] outbound::TlsSetupError),
}

/// Runs the gateway until `shutdown` is cancelled, then drains: listeners close first,
/// open sessions get `smtp.shutdown_grace_secs` to finish, and everything they were
/// told was accepted is already committed.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let store = Store::open(&config.database_path())?;
    address::warm_up();
    let credentials = smtp::Credentials::load(&config)?;
    let notifier = notify::Notifier::new(&config)?;
    let listeners = smtp::bind_all(&config).await?;
    let routing = tokio::spawn(routing::run(store.clone(), shutdown.clone()));
    let notify = tokio::spawn(notifier.run(store.clone(), shutdown.clone()));
    let modems = {
        let (config, store, shutdown) = (config.clone(), store.clone(), shutdown.clone());
        tokio::spawn(async move { modem::run(&config, store, shutdown).await })
    };
    for listener in &listeners {
        let address = listener.socket.local_addr()?;
        if listener.implicit_tls {
            tracing::info!(%address, "SMTP listening (implicit TLS)");
        } else {
            tracing::info!(%address, "SMTP listening");
        }
    }
    smtp::serve(listeners, &config, credentials, store, shutdown.clone()).await;
    // Intake is closed; the other stages stop at the same signal and finish what they hold.
    let _ = routing.await;
    let _ = notify.await;
    if let Ok(Err(error)) = modems.await {
        tracing::error!(%error, "modems stopped with an error");
    }
    tracing::info!("stopped");
    Ok(())
}
