//! `smsgw optout`: the numbers that opted out (texted a stop word), read and changed
//! through the store; a running gateway sees a change within a second.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use smsgw::config::Config;
use smsgw::e164::E164;
use smsgw::store::Store;
use smsgw::utc::Utc;

/// The subcommands of `smsgw optout`.
#[derive(Subcommand)]
pub(crate) enum OptOutCommand {
    /// List the numbers that opted out.
    List {
        /// Also the numbers that opted in again.
        #[arg(long)]
        all: bool,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Opt a number out: mail to it is refused, and requests waiting for it fail.
    Add { number: E164 },
    /// Opt a number in again.
    Del { number: E164 },
}

/// Lists, adds or removes opt-outs.
pub(crate) fn run(config: &Config, command: OptOutCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(optout(config, command))
}

async fn optout(config: &Config, command: OptOutCommand) -> anyhow::Result<ExitCode> {
    let store = Store::open_existing(config).await?;
    match command {
        OptOutCommand::List { all, json } => {
            let list = store.optouts(all).await?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(out, "{:<16}  {:<9}  {:<29}  SOURCE", "NUMBER", "OPTED OUT", "SINCE")?;
            for entry in &list {
                let source = match &entry.origin {
                    Some(peer) => format!("{} (from peer {peer})", entry.source),
                    None => entry.source.clone(),
                };
                writeln!(
                    out,
                    "{:<16}  {:<9}  {:<29}  {source}",
                    entry.number.as_str(),
                    if entry.opted_out { "yes" } else { "no" },
                    Utc::of_millis(entry.changed).rfc5322()
                )?;
            }
        }
        OptOutCommand::Add { number } => {
            if store
                .set_optout(number.clone(), true, "smsgw optout add".into())
                .await?
            {
                println!("{number} opted out: mail to it is refused, and requests waiting for it failed");
            } else {
                println!("{number} had opted out already");
            }
        }
        OptOutCommand::Del { number } => {
            if store
                .set_optout(number.clone(), false, "smsgw optout del".into())
                .await?
            {
                println!("{number} opted in again");
            } else {
                println!("{number} was not opted out");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
