//! `smsgw check-config`: validates the configuration.

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;

use smsgw::config::Config;

/// Prints `<path>: ok` after any warnings (`warning: key: why`, which do not fail it),
/// or every problem as `key: problem` and fails.
pub(crate) fn run(path: &Path, config: Result<Config, impl Display>) -> ExitCode {
    match config {
        Ok(config) => {
            for warning in config.warnings() {
                println!("warning: {warning}");
            }
            println!("{}: ok", path.display());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{problems}");
            ExitCode::FAILURE
        }
    }
}
