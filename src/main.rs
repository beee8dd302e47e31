//! The `smsgw` command: parses the arguments, hands them to the command's module in
//! `cli/`, and turns its outcome into the exit code.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli::{check_config, inbox, modem, optout, pdu, queue, route, serve, store, user};
use smsgw::config::Config;

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
    Queue(queue::QueueCommand),
    /// The SMS the modems received, and to whom each was mailed.
    #[command(subcommand)]
    Inbox(inbox::InboxCommand),
    /// The numbers that opted out of SMS (texted STOP), by hand too.
    #[command(subcommand)]
    Optout(optout::OptOutCommand),
    /// Talk to modems: run a simulated one, make it receive an SMS, or ask a configured
    /// one about itself.
    #[command(subcommand)]
    Modem(modem::ModemCommand),
    /// Manage SMTP AUTH users (`security.users_file`); a running gateway rereads the file
    /// on SIGHUP.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Encode and decode SMS PDUs, as modems exchange them in PDU mode.
    #[command(subcommand)]
    Pdu(pdu::PduCommand),
    /// Least-cost routing between the instances of a cluster.
    #[command(subcommand)]
    Route(route::RouteCommand),
    /// The queue database itself: copy an instance's SQLite store into PostgreSQL.
    #[command(subcommand)]
    Store(store::StoreCommand),
}

fn main() -> ExitCode {
    match dispatch(Cli::parse()) {
        Ok(code) => code,
        // `smsgw queue list | head` closes our stdout early: not an error of ours.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("smsgw: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; all but `check-config`, `pdu` and `modem sim` need a valid config.
fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(&cli.config);
    match cli.command {
        Command::CheckConfig => Ok(check_config::run(&cli.config, config)),
        Command::Pdu(command) => pdu::run(command),
        Command::User(command) => user::run(command, &config.with_context(|| invalid(&cli.config))?),
        // `modem sim` runs without a config: only `modem probe` and `inject` read it.
        Command::Modem(command) => modem::run(command, config.with_context(|| invalid(&cli.config))),
        Command::Serve => serve::run(config.with_context(|| invalid(&cli.config))?),
        Command::Inbox(command) => inbox::run(&config.with_context(|| invalid(&cli.config))?, command),
        Command::Optout(command) => optout::run(&config.with_context(|| invalid(&cli.config))?, command),
        Command::Queue(command) => queue::run(&config.with_context(|| invalid(&cli.config))?, command),
        Command::Route(command) => route::run(&config.with_context(|| invalid(&cli.config))?, command),
        Command::Store(command) => store::run(&config.with_context(|| invalid(&cli.config))?, command),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn invalid(path: &Path) -> String {
    format!(
        "invalid configuration {} (smsgw check-config lists every problem)",
        path.display()
    )
}
