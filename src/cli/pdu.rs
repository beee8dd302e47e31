//! `smsgw pdu`: SMS PDUs encoded and decoded for operators, as modems exchange them.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;
use smsgw::sms;

/// The subcommands of `smsgw pdu`.
#[derive(Subcommand)]
pub(crate) enum PduCommand {
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

/// Prints the encoded parts (`AT+CMGS=<n> <hex>` lines) or the decoded PDU (JSON).
pub(crate) fn run(command: PduCommand) -> anyhow::Result<ExitCode> {
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
