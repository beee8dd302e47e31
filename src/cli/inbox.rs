//! `smsgw inbox`: the SMS the modems received, and what became of each (read through
//! the store beside the gateway, which may be running or not).

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use smsgw::config::Config;
use smsgw::store::{InboxEntry, InboxState, Store};
use smsgw::utc::Utc;

/// The subcommands of `smsgw inbox`.
#[derive(Subcommand)]
pub(crate) enum InboxCommand {
    /// List the latest incoming SMS, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one incoming SMS: from, text, modem, when, to whom it was mailed and what the
    /// server answered, or why it is kept.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

/// Lists or shows incoming SMS (read-only).
pub(crate) fn run(config: &Config, command: InboxCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(inbox(config, command))
}

async fn inbox(config: &Config, command: InboxCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open_existing(config).await?;
    let mut out = std::io::stdout().lock();
    match command {
        InboxCommand::List { limit, json } => {
            let entries = store.inbox(limit).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&entries)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:>6}  {:<16}  {:<10}  {:<8}  {:<31}  {:<30}  TEXT",
                "ID", "FROM", "MODEM", "STATE", "RECEIVED", "MAILED TO"
            )?;
            for e in &entries {
                let text: String = e.sms.text.replace('\n', " ").chars().take(40).collect();
                writeln!(
                    out,
                    "{:>6}  {:<16}  {:<10}  {:<8}  {:<31}  {:<30}  {text}",
                    e.sms.id,
                    e.sms.originator,
                    e.sms.modem,
                    e.state,
                    Utc::of_millis(e.sms.received).rfc5322(),
                    e.recipient.as_deref().unwrap_or("-"),
                )?;
            }
        }
        InboxCommand::Show { id, json } => {
            let Some(entry) = store.inbox_entry(id).await? else {
                anyhow::bail!("no incoming SMS {id} (smsgw inbox list shows them)");
            };
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&entry)?)?;
            } else {
                print_entry(&mut out, &entry)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entry(out: &mut impl Write, e: &InboxEntry) -> std::io::Result<()> {
    writeln!(out, "SMS {}  from {}  ({})", e.sms.id, e.sms.originator, e.sms.kind)?;
    writeln!(
        out,
        "received {} by modem {} (sent {})",
        Utc::of_millis(e.sms.received).rfc5322(),
        e.sms.modem,
        e.sms.sent.as_deref().unwrap_or("at an unknown time")
    )?;
    match &e.sms.missing {
        Some(missing) => writeln!(
            out,
            "{} part(s), incomplete: part(s) {missing} never arrived",
            e.sms.parts
        )?,
        None => writeln!(out, "{} part(s)", e.sms.parts)?,
    }
    writeln!(out, "text: {}", e.sms.text.replace('\n', "\n      "))?;
    if let Some(request) = e.reply_to {
        writeln!(out, "answers request {request} (smsgw queue show {request})")?;
    }
    if e.sms.others > 0 {
        writeln!(
            out,
            "{} other sender(s) also wrote to {} lately",
            e.sms.others, e.sms.originator
        )?;
    }
    let outcome = e.outcome.as_deref().unwrap_or("");
    match (e.state, &e.recipient) {
        (InboxState::Kept, _) => writeln!(out, "kept, not mailed: {outcome}")?,
        (InboxState::Pending, Some(to)) if e.attempts == 0 => writeln!(out, "to be mailed to <{to}>")?,
        (InboxState::Pending, Some(to)) => writeln!(
            out,
            "to be mailed to <{to}>; {} attempt(s) so far, the last: {outcome}",
            e.attempts
        )?,
        (_, _) => writeln!(out, "{}: {outcome}", e.state)?,
    }
    Ok(())
}
