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
    /// Make a running gateway's simulated modem NAME receive an SMS (a long text
    /// arrives as concatenated parts), as if the network delivered it.
    Inject {
        /// The `[[modem]]` (its port must be "sim").
        name: String,
        /// The sender's number, e.g. +33612345678.
        #[arg(long)]
        from: String,
        /// The text.
        #[arg(long)]
        text: String,
    },
}

/// Runs the command; only `probe` needs the configuration to be valid.
pub(crate) fn run(command: ModemCommand, config: anyhow::Result<Config>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    match command {
        ModemCommand::Inject { name, from, text } => return inject(&config?, &name, from, text),
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

/// Writes the SMS where the simulated modem looks for them, and waits (a few seconds)
/// for it to take it.
fn inject(config: &Config, name: &str, from: String, text: String) -> anyhow::Result<ExitCode> {
    let Some(modem) = config.modem.iter().find(|m| m.name == name) else {
        let names: Vec<&str> = config.modem.iter().map(|m| m.name.as_str()).collect();
        anyhow::bail!("no modem named {name:?} in the config (known: {})", names.join(", "));
    };
    anyhow::ensure!(
        modem.port == "sim",
        "modem {name:?} is a real modem (port {}): only a simulated one (port = \"sim\") can be made to receive an SMS",
        modem.port
    );
    let folder = smsgw::modem::sim::inject_dir(&smsgw::modem::sim_records(config, name));
    std::fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let file = folder.join(format!("{stamp:032}-{}.json", std::process::id()));
    let partial = file.with_extension("part");
    let sms = serde_json::json!({ "from": from, "text": text });
    std::fs::write(&partial, sms.to_string()).with_context(|| format!("cannot write {}", partial.display()))?;
    // Renamed whole: the modem never reads half a file.
    std::fs::rename(&partial, &file).with_context(|| format!("cannot write {}", file.display()))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while file.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if file.exists() {
        eprintln!(
            "the simulated modem {name} has not taken the SMS yet (is the gateway running?): it will when it starts ({})",
            file.display()
        );
    } else {
        println!("modem {name} received an SMS from {from}");
    }
    Ok(ExitCode::SUCCESS)
}
