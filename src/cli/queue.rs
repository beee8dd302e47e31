//! `smsgw queue`: the requests in the store, read through the store beside the gateway
//! (which may be running or not).

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use smsgw::config::Config;
use smsgw::store::{self, QueueFilter, State, Store};

/// The subcommands of `smsgw queue`.
#[derive(Subcommand)]
pub(crate) enum QueueCommand {
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
    /// Queue an uncertain, failed or expired request again: it will be sent (again).
    /// A forward waiting on a peer that may hold it is released to routing.
    Retry { id: i64 },
}

/// Lists or shows requests (read-only), or queues one again.
pub(crate) fn run(config: &Config, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(queue(config, command))
}

async fn queue(config: &Config, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open_existing(config).await?;
    if let QueueCommand::Retry { id } = command {
        // Only a forward its peer may hold can be retried from `forwarding`.
        let waiting_on_peer = store
            .show(id)
            .await
            .is_ok_and(|detail| detail.request.state == State::Forwarding);
        anyhow::ensure!(
            store.retry(id).await?,
            "request {id} is not uncertain, failed or expired, nor a forward its peer may hold: not retried"
        );
        if waiting_on_peer {
            println!("request {id} released to routing: it may be sent twice, if its peer holds it");
        } else {
            println!("request {id} queued again: it will be sent again");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    match command {
        QueueCommand::List { state, json } => {
            let rows = store.list(QueueFilter { state }).await?;
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
        QueueCommand::Retry { .. } => unreachable!("handled above"),
        QueueCommand::Show { id, json } => {
            let detail = store.show(id).await?;
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
    let user = d.auth_user.as_ref().map(|u| format!(", user {u}")).unwrap_or_default();
    writeln!(out, "from <{}> via {} (HELO {}){user}", r.sender, d.client, d.helo)?;
    writeln!(out, "{} part(s), {}, attempts {}", r.parts, r.encoding, r.attempts)?;
    match (&r.status, &r.reason) {
        (Some(status), Some(reason)) => writeln!(out, "status {status}: {reason}")?,
        // Why it waits (for a route, a peer, the operator).
        (None, Some(reason)) if matches!(r.state, State::Received | State::Forwarding | State::Uncertain) => {
            writeln!(out, "waiting: {reason}")?
        }
        _ => {}
    }
    writeln!(out, "text: {}", d.text.replace('\n', "\n      "))?;
    for p in &d.sent_parts {
        let mr = p.mr.map_or("-".to_string(), |mr| mr.to_string());
        writeln!(out, "part {}: modem {}, reference {mr}, {}", p.part, p.modem, p.status)?;
    }
    for e in &d.events {
        writeln!(out, "  {}  {:<10}  {}", e.time, e.state, e.detail)?;
    }
    Ok(())
}
