//! `smsgw route explain`: the least-cost plan for a number, as the running gateway sees
//! its cluster (`GET /route` on `http.listen`).

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use smsgw::config::{Config, HttpUrl, Pin};
use smsgw::outbound::HttpGet;
use smsgw::outbound::tls::fingerprint;
use smsgw::routing::explain::Explanation;

/// The subcommands of `smsgw route`.
#[derive(Subcommand)]
pub(crate) enum RouteCommand {
    /// Every instance that could send to NUMBER, cheapest first, and why the others
    /// cannot: asks the running gateway (`http.listen`) for its live view.
    Explain {
        number: String,
        #[arg(long)]
        json: bool,
    },
}

/// Asks the gateway for the plan and prints it as a table, or as the gateway's JSON.
pub(crate) fn run(config: &Config, command: RouteCommand) -> anyhow::Result<ExitCode> {
    let RouteCommand::Explain { number, json } = command;
    let Some(listen) = config.http.listen else {
        anyhow::bail!("route explain asks the running gateway: set http.listen in the config");
    };
    let domain = config.smtp.sms_domains.first().map_or("sms", String::as_str);
    let number = smsgw::address::parse_recipient(&format!("{number}@{domain}"), &config.address_rules())
        .map_err(|e| anyhow::anyhow!("{number}: {e}"))?
        .number;
    let path = format!("/route?number={}", number.replace('+', "%2B"));
    let getter = own_endpoint(config, listen, &path)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let body = runtime
        .block_on(getter.get(Duration::from_secs(10)))
        .map_err(|e| anyhow::anyhow!("{e} (is the gateway running?)"))?;
    let mut out = std::io::stdout().lock();
    if json {
        out.write_all(&body)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let plan: Explanation = serde_json::from_slice(&body)?;
    print_plan(&mut out, &number, &plan)?;
    Ok(ExitCode::SUCCESS)
}

/// GET `path` on this instance's own HTTP endpoint: on loopback when it listens on every
/// address; over HTTPS, trusting the certificate `security.tls_cert` names (the one it
/// serves), when `http.tls` is on; with `SMSGW_HTTP_USER` and `SMSGW_HTTP_PASSWORD` as
/// HTTP Basic when set (needed when `http.require_auth` is on).
fn own_endpoint(config: &Config, listen: SocketAddr, path: &str) -> anyhow::Result<HttpGet> {
    let mut address = listen;
    if address.ip().is_unspecified() {
        address.set_ip(if address.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        });
    }
    let mut url = HttpUrl::new(address.into(), path);
    let mut pins = Vec::new();
    if config.http.tls {
        url = url.with_tls();
        let cert = &config.security.tls_cert;
        let first = CertificateDer::pem_file_iter(cert)
            .and_then(|mut certs| certs.next().transpose())
            .map_err(|e| anyhow::anyhow!("security.tls_cert {}: {e}", cert.display()))?
            .ok_or_else(|| anyhow::anyhow!("security.tls_cert {}: no certificate in it", cert.display()))?;
        pins.push(Pin::from(fingerprint(&first)));
    }
    let user = std::env::var("SMSGW_HTTP_USER").ok();
    let password = std::env::var("SMSGW_HTTP_PASSWORD").unwrap_or_default();
    let basic = user.as_deref().map(|user| (user, password.as_str()));
    Ok(HttpGet::new(url, Path::new(""), &pins, basic)?)
}

fn print_plan(out: &mut impl Write, number: &str, plan: &Explanation) -> std::io::Result<()> {
    writeln!(out, "{number}, cheapest first:")?;
    writeln!(
        out,
        "  {:<16} {:>8} {:>8} {:>9} {:>8}",
        "instance", "tariff", "link", "workload", "total"
    )?;
    for (index, candidate) in plan.ranked.iter().enumerate() {
        let mark = match (index, candidate.local) {
            (0, true) => "  <- chosen: sent by this instance's modems",
            (0, false) => "  <- chosen: forwarded",
            _ => "",
        };
        writeln!(
            out,
            "  {:<16} {:>8.4} {:>8.4} {:>9.4} {:>8.4}{mark}",
            candidate.name, candidate.tariff, candidate.link, candidate.workload, candidate.total
        )?;
    }
    for skipped in &plan.skipped {
        writeln!(out, "  {:<16} skipped: {}", skipped.name, skipped.why)?;
    }
    Ok(())
}
