use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use smsgw::config::Config;
use smsgw::store::{self, QueueFilter, State};
use tokio_util::sync::CancellationToken;

/// smsgw: mail to <phone>@sms becomes an SMS.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML); any key can be overridden as SMSGW__SECTION__KEY.
    #[arg(long, global = true, default_value = "config/smsgw.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Validate the configuration and print every problem as `key: problem`.
    CheckConfig,
    /// Inspect the requests in the store.
    #[command(subcommand)]
    Queue(QueueCommand),
}

#[derive(Subcommand)]
enum QueueCommand {
    /// List requests, oldest first.
    List {
        /// Only requests in this state (received, queued, sent, delivered, failed, ...).
        #[arg(long)]
        state: Option<State>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one request and its history.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        // `smsgw queue list | head` closes our stdout early: not an error of ours.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("smsgw: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let config = Config::load(&cli.config);
    match cli.command {
        Command::CheckConfig => match config {
            Ok(_) => {
                println!("{}: ok", cli.config.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => {
                println!("{problems}");
                Ok(ExitCode::FAILURE)
            }
        },
        Command::Serve => serve(
            config.with_context(|| format!("invalid configuration {}", cli.config.display()))?,
        ),
        Command::Queue(command) => queue(
            &config.with_context(|| format!("invalid configuration {}", cli.config.display()))?,
            command,
        ),
    }
}

fn serve(config: Config) -> anyhow::Result<ExitCode> {
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

async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

fn queue(config: &Config, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let path = config.database_path();
    anyhow::ensure!(
        path.exists(),
        "no database at {} (has the gateway run here?)",
        path.display()
    );
    let conn = store::open_read_only(&path)?;
    let mut out = std::io::stdout().lock();
    match command {
        QueueCommand::List { state, json } => {
            let rows = store::query::list(&conn, QueueFilter { state })?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                writeln!(
                    out,
                    "{:>6}  {:<10}  {:<16}  {:>5}  {:<24}  SENDER",
                    "ID", "STATE", "NUMBER", "PARTS", "CREATED"
                )?;
                for r in &rows {
                    writeln!(
                        out,
                        "{:>6}  {:<10}  {:<16}  {:>5}  {:<24}  {}",
                        r.id, r.state, r.number, r.parts, r.created, r.sender
                    )?;
                }
            }
        }
        QueueCommand::Show { id, json } => {
            let detail = store::query::show(&conn, id)?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&detail)?)?;
            } else {
                print_detail(&mut out, &detail)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_detail(out: &mut impl Write, d: &store::RequestDetail) -> std::io::Result<()> {
    let r = &d.request;
    writeln!(
        out,
        "request {}  {}  to {} (written {})",
        r.id, r.state, r.number, r.recipient
    )?;
    let user = d
        .auth_user
        .as_ref()
        .map(|u| format!(", user {u}"))
        .unwrap_or_default();
    writeln!(
        out,
        "from <{}> via {} (HELO {}){user}",
        r.sender, d.client, d.helo
    )?;
    writeln!(
        out,
        "{} part(s), {}, attempts {}",
        r.parts, r.encoding, r.attempts
    )?;
    if let (Some(status), Some(reason)) = (&r.status, &r.reason) {
        writeln!(out, "status {status}: {reason}")?;
    }
    writeln!(out, "text: {}", d.text)?;
    for e in &d.events {
        writeln!(out, "  {}  {:<10}  {}", e.time, e.state, e.detail)?;
    }
    Ok(())
}
