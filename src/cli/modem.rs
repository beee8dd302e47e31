//! `smsgw modem`: a standalone simulated modem, or what a configured modem says.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use smsgw::config::Config;
use smsgw::modem::sim::SimConfig;
use tokio_util::sync::CancellationToken;

use super::serve::stop_on_signal;

/// The subcommands of `smsgw modem`.
#[derive(Subcommand)]
pub(crate) enum ModemCommand {
    /// Run a simulated modem on a pseudo-terminal until Ctrl-C (for another program, or
    /// a `[[modem]]` whose port is the link).
    Sim {
        /// Also make this path a symbolic link to the pseudo-terminal.
        #[arg(long)]
        link: Option<PathBuf>,
        /// Where to record the SMS parts it accepts (JSON lines).
        #[arg(long, default_value = "sim-standalone.jsonl")]
        records: PathBuf,
        /// Time per part before +CMGS answers.
        #[arg(long, default_value_t = 100)]
        latency_ms: u64,
        /// Delay of the +CDS status report.
        #[arg(long, default_value_t = 1000)]
        report_delay_ms: u64,
    },
    /// Print what a configured modem says: identity, SIM, registration, signal, SMS centre.
    /// Stop the gateway first: a serial port has one user at a time.
    Probe { name: String },
}

/// Runs the command; only `probe` needs the configuration to be valid.
pub(crate) fn run(command: ModemCommand, config: anyhow::Result<Config>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    match command {
        ModemCommand::Probe { name } => {
            let config = config?;
            let answers = runtime.block_on(smsgw::modem::probe(&config, &name))?;
            for (question, answer) in answers {
                println!("{question:>14}: {answer}");
            }
        }
        ModemCommand::Sim {
            link,
            records,
            latency_ms,
            report_delay_ms,
        } => runtime.block_on(async {
            let settings = SimConfig {
                latency_ms,
                report_delay_ms,
                ..SimConfig::default()
            };
            let shutdown = CancellationToken::new();
            let sim = smsgw::modem::sim::start("sim", settings, records.clone(), shutdown.clone()).await?;
            if let Some(link) = &link {
                let _ = std::fs::remove_file(link);
                std::os::unix::fs::symlink(&sim.device, link)
                    .with_context(|| format!("cannot link {} to {}", link.display(), sim.device.display()))?;
            }
            let shown = link.as_ref().unwrap_or(&sim.device);
            println!(
                "simulated modem on {} (records: {}); Ctrl-C stops it",
                shown.display(),
                records.display()
            );
            stop_on_signal(shutdown).await;
            let _ = sim.stopped().await;
            if let Some(link) = &link {
                let _ = std::fs::remove_file(link);
            }
            anyhow::Ok(())
        })?,
    }
    Ok(ExitCode::SUCCESS)
}
