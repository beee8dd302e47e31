//! GSM modems: one worker per modem speaking AT commands in PDU mode over a serial port,
//! a dispatcher that gives each due request to the cheapest free modem, and a simulated
//! modem on a pseudo-terminal for running without hardware.

pub mod at;
pub mod driver;
pub mod errors;
pub mod pool;
pub mod sim;
mod worker;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config};
use crate::sms::Language;
use crate::store::Store;

/// A modem as the pool sees it: where it is and what it costs.
#[derive(Debug, Clone)]
pub struct ModemSpec {
    pub name: String,
    pub device: PathBuf,
    pub baud: u32,
    pub pin: String,
    pub smsc: String,
    pub per_minute: u32,
    /// How long the network may take to accept one part after its PDU.
    pub send_timeout: Duration,
    /// (prefix, cost), longest prefix first.
    tariff: Vec<(String, f64)>,
    pub languages: Vec<Language>,
}

impl ModemSpec {
    pub fn new(modem: &config::Modem, device: PathBuf, languages: Vec<Language>) -> ModemSpec {
        let mut tariff: Vec<(String, f64)> = modem.tariff.iter().map(|(p, c)| (p.clone(), *c)).collect();
        tariff.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        ModemSpec {
            name: modem.name.clone(),
            device,
            baud: modem.baud,
            pin: modem.pin.clone(),
            smsc: modem.smsc.clone(),
            per_minute: modem.per_minute,
            send_timeout: Duration::from_secs(modem.send_timeout_secs),
            tariff,
            languages,
        }
    }

    /// Cost of one part to `number` (E.164), by the longest matching prefix.
    pub fn tariff_for(&self, number: &str) -> Option<f64> {
        self.tariff
            .iter()
            .find(|(prefix, _)| number.starts_with(prefix.as_str()))
            .map(|(_, cost)| *cost)
    }
}

/// Starts the simulated modems, then runs the pool until `shutdown`.
pub async fn run(config: &Config, store: Store, shutdown: CancellationToken) -> std::io::Result<()> {
    let mut specs = Vec::new();
    for modem in &config.modem {
        let device = if modem.port == "sim" {
            let records = config.instance.data_dir.join(format!("sim-{}.jsonl", modem.name));
            sim::start(&modem.name, modem.sim.clone(), records, shutdown.clone())
                .await?
                .device
        } else {
            PathBuf::from(&modem.port)
        };
        tracing::info!(modem = %modem.name, device = %device.display(), "modem configured");
        specs.push(Arc::new(ModemSpec::new(modem, device, config.languages())));
    }
    if specs.is_empty() {
        tracing::warn!("no [[modem]] configured: requests are accepted and wait in the queue");
    }
    let timing = pool::Timing {
        retry_delays: config
            .sms
            .retry_delays_secs
            .iter()
            .map(|s| Duration::from_secs(*s))
            .collect(),
        validity: Duration::from_secs(config.sms.validity_minutes * 60),
    };
    pool::run(specs, store, timing, shutdown).await;
    Ok(())
}
