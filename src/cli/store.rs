//! `smsgw store`: the queue database itself (not its requests: that is `smsgw queue`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use smsgw::config::{Config, PostgresUrl};
use smsgw::store::copy::copy_to_postgres;

/// The subcommands of `smsgw store`.
#[derive(Subcommand)]
pub(crate) enum StoreCommand {
    /// Copy this instance's SQLite store into an empty PostgreSQL database, keeping
    /// request ids, states, history, DSNs and the store's id, in one transaction.
    /// Stop the gateway first (a request being sent refuses the copy); afterwards set
    /// `store.url` to the database in the config and start the gateway again. The
    /// SQLite file is left as it was.
    Copy {
        /// The PostgreSQL database, postgres://user:password@host:port/database; it
        /// must be empty (it is migrated by the copy). Its password is never printed.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

/// Runs `smsgw store …`.
pub(crate) fn run(config: &Config, command: StoreCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match command {
        StoreCommand::Copy { to } => runtime.block_on(copy(config, &to)),
    }
}

async fn copy(config: &Config, to: &str) -> anyhow::Result<ExitCode> {
    // Parsed here, not by clap: clap would repeat the text, password and all.
    let to: PostgresUrl = to.parse().context("--to")?;
    let counts = copy_to_postgres(config, &to)
        .await
        .with_context(|| format!("store copy of instance {:?} into {to}", config.instance.name))?;
    if counts.committed {
        println!("copied: {}", counts.postgres);
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("smsgw: the rows written are not the rows read: nothing was copied (rolled back)");
    eprintln!("  SQLite:     {}", counts.sqlite);
    eprintln!("  PostgreSQL: {}", counts.postgres);
    Ok(ExitCode::FAILURE)
}
