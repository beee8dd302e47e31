use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use smsgw::config::{Config, HttpUrl};
use smsgw::modem::sim::SimConfig;
use smsgw::sms;
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
    /// Talk to modems: run a simulated one, or ask a configured one about itself.
    #[command(subcommand)]
    Modem(ModemCommand),
    /// Manage SMTP AUTH users (`security.users_file`); a running gateway rereads the file
    /// on SIGHUP.
    #[command(subcommand)]
    User(UserCommand),
    /// Encode and decode SMS PDUs, as modems exchange them in PDU mode.
    #[command(subcommand)]
    Pdu(PduCommand),
    /// Least-cost routing between the instances of a cluster.
    #[command(subcommand)]
    Route(RouteCommand),
}

#[derive(Subcommand)]
enum RouteCommand {
    /// Every instance that could send to NUMBER, cheapest first, and why the others
    /// cannot: asks the running gateway (`http.listen`) for its live view.
    Explain {
        number: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum UserCommand {
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

#[derive(Subcommand)]
enum ModemCommand {
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

#[derive(Subcommand)]
enum PduCommand {
    /// Print the SMS-SUBMIT PDUs of a text, one per line after the `AT+CMGS=<n>` it needs.
    Encode {
        /// Destination: E.164 (+33477858589), national digits, or alphanumeric.
        #[arg(long)]
        to: String,
        #[arg(long)]
        text: String,
        /// Ask the network for a status report.
        #[arg(long)]
        status_report: bool,
        /// Class 0: shown on the screen, not stored.
        #[arg(long)]
        flash: bool,
        /// SMS centre number; default: the SIM's (`00`).
        #[arg(long)]
        smsc: Option<String>,
    },
    /// Decode a PDU (SMSC field first, as after `+CMGR`/`+CDS`) and print it as JSON.
    Decode {
        hex: String,
        /// TPDU octets, as `+CMGR`/`+CDS` give them: tells a PDU without SMSC field.
        #[arg(long)]
        tpdu_len: Option<usize>,
    },
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
    /// Queue an uncertain, failed or expired request again: it will be sent (again).
    Retry { id: i64 },
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

fn invalid(path: &std::path::Path) -> String {
    format!(
        "invalid configuration {} (smsgw check-config lists every problem)",
        path.display()
    )
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
        Command::Pdu(command) => pdu(command),
        Command::User(command) => user(command, &config.with_context(|| invalid(&cli.config))?),
        Command::Modem(command) => modem(command, config.with_context(|| invalid(&cli.config))),
        Command::Serve => serve(config.with_context(|| invalid(&cli.config))?),
        Command::Queue(command) => queue(&config.with_context(|| invalid(&cli.config))?, command),
        Command::Route(RouteCommand::Explain { number, json }) => {
            route_explain(&config.with_context(|| invalid(&cli.config))?, &number, json)
        }
    }
}

fn route_explain(config: &Config, number: &str, json: bool) -> anyhow::Result<ExitCode> {
    let Some(listen) = config.http.listen else {
        anyhow::bail!("route explain asks the running gateway: set http.listen in the config");
    };
    let domain = config.smtp.sms_domains.first().map_or("sms", String::as_str);
    let number = smsgw::address::parse_recipient(&format!("{number}@{domain}"), &config.address_rules())
        .map_err(|e| anyhow::anyhow!("{number}: {e}"))?
        .number;
    let path = format!("/route?number={}", number.replace('+', "%2B"));
    let url = HttpUrl::new(listen.into(), &path);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = runtime
        .block_on(smsgw::routing::view::get(&url, std::time::Duration::from_secs(10)))
        .map_err(|e| anyhow::anyhow!("{e} (is the gateway running?)"))?;
    if json {
        std::io::stdout().write_all(&body)?;
        println!();
        return Ok(ExitCode::SUCCESS);
    }
    let plan: serde_json::Value = serde_json::from_slice(&body)?;
    println!("{number}, cheapest first:");
    println!(
        "  {:<16} {:>8} {:>8} {:>9} {:>8}",
        "instance", "tariff", "link", "workload", "total"
    );
    let empty = Vec::new();
    for (index, candidate) in plan["ranked"].as_array().unwrap_or(&empty).iter().enumerate() {
        let cost = |key: &str| candidate[key].as_f64().unwrap_or(0.0);
        let name = candidate["name"].as_str().unwrap_or("?");
        let mark = match (index, candidate["local"].as_bool() == Some(true)) {
            (0, true) => "  <- chosen: sent by this instance's modems",
            (0, false) => "  <- chosen: forwarded",
            _ => "",
        };
        println!(
            "  {name:<16} {:>8.4} {:>8.4} {:>9.4} {:>8.4}{mark}",
            cost("tariff"),
            cost("link"),
            cost("workload"),
            cost("total")
        );
    }
    for skipped in plan["skipped"].as_array().unwrap_or(&empty) {
        let name = skipped["name"].as_str().unwrap_or("?");
        let why = skipped["why"].as_str().unwrap_or("?");
        println!("  {name:<16} skipped: {why}");
    }
    Ok(ExitCode::SUCCESS)
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
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

fn user(command: UserCommand, config: &Config) -> anyhow::Result<ExitCode> {
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

fn modem(command: ModemCommand, config: anyhow::Result<Config>) -> anyhow::Result<ExitCode> {
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

fn pdu(command: PduCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        PduCommand::Encode {
            to,
            text,
            status_report,
            flash,
            smsc,
        } => {
            let options = sms::SubmitOptions {
                smsc,
                status_report,
                flash,
                ..Default::default()
            };
            for pdu in sms::encode_submit(&to, &text, &options)? {
                writeln!(out, "AT+CMGS={} {}", pdu.tpdu_len, pdu.hex)?;
            }
        }
        PduCommand::Decode { hex, tpdu_len } => {
            let decoded = match tpdu_len {
                Some(length) => sms::decode_with_tpdu_len(hex.trim(), length)?,
                None => sms::decode(hex.trim())?,
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&decoded)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn queue(config: &Config, command: QueueCommand) -> anyhow::Result<ExitCode> {
    let path = config.database_path();
    anyhow::ensure!(
        path.exists(),
        "no database at {} (has the gateway run here?)",
        path.display()
    );
    if let QueueCommand::Retry { id } = command {
        anyhow::ensure!(
            store::retry(&path, id)?,
            "request {id} is not uncertain, failed or expired: not retried"
        );
        println!("request {id} queued again: it will be sent again");
        return Ok(ExitCode::SUCCESS);
    }
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
        QueueCommand::Retry { .. } => unreachable!("handled above"),
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
    let user = d.auth_user.as_ref().map(|u| format!(", user {u}")).unwrap_or_default();
    writeln!(out, "from <{}> via {} (HELO {}){user}", r.sender, d.client, d.helo)?;
    writeln!(out, "{} part(s), {}, attempts {}", r.parts, r.encoding, r.attempts)?;
    if let (Some(status), Some(reason)) = (&r.status, &r.reason) {
        writeln!(out, "status {status}: {reason}")?;
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
