//! `smsgw user`: the SMTP AUTH users of `security.users_file`.

use std::process::ExitCode;

use clap::Subcommand;
use smsgw::config::Config;

/// The subcommands of `smsgw user`.
#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Add a user, or set a new password: the password is read from standard input.
    Add {
        name: String,
        /// An address (or `@domain`) this user may send from; repeat for more. None: any.
        #[arg(long = "sender")]
        senders: Vec<String>,
    },
    /// Remove a user.
    Del { name: String },
}

/// Adds or removes a user in the users file; a running gateway rereads it on SIGHUP.
pub(crate) fn run(command: UserCommand, config: &Config) -> anyhow::Result<ExitCode> {
    let path = &config.security.users_file;
    match command {
        UserCommand::Add { name, senders } => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("password for {name}: ");
            }
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(password.len() >= 8, "the password must have at least 8 characters");
            smsgw::users::add(path, &name, password, senders)?;
            println!(
                "user {name} saved in {} (send SIGHUP to a running gateway)",
                path.display()
            );
        }
        UserCommand::Del { name } => {
            anyhow::ensure!(
                smsgw::users::remove(path, &name)?,
                "no user {name} in {}",
                path.display()
            );
            println!("user {name} removed from {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
