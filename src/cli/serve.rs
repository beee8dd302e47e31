//! `smsgw serve`: runs the gateway until SIGTERM or SIGINT.

use std::process::ExitCode;

use smsgw::config::Config;
use tokio_util::sync::CancellationToken;

/// Logs to stderr (`RUST_LOG`, default `info`) and runs the gateway on a multi-thread
/// runtime until a signal asks it to stop.
pub(crate) fn run(config: Config) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        smsgw::run(config, shutdown).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on the first SIGTERM or SIGINT (Ctrl-C).
pub(crate) async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}
