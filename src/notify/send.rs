//! Where a DSN goes: the smart host, or the MX hosts of the sender's domain.

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::config::{Nameserver, Outbound};
use crate::outbound::{Client, Mail, OutboundError, Server};

/// Finds the servers for each DSN and hands it to the outbound client.
pub(super) struct Sender {
    /// How a DSN is delivered once its server is known.
    pub client: Client,
    /// Which servers DSNs go to.
    pub destination: Destination,
}

/// The servers DSNs go to.
pub(super) enum Destination {
    /// Every DSN to this one server (`outbound.smart_host`).
    SmartHost(Server),
    /// Each DSN to the MX hosts of its recipient's domain, on `port`. `resolver` is
    /// `None` when the system's resolver could not be set up: every DSN then waits.
    Mx {
        /// Asks for the MX records.
        resolver: Option<Box<TokioResolver>>,
        /// `outbound.mx_port`.
        port: u16,
    },
}

impl Destination {
    /// The smart host when one is configured, else the MX hosts through
    /// `outbound.nameservers` (or the system's resolver).
    pub(super) fn new(outbound: &Outbound) -> Destination {
        match &outbound.smart_host {
            Some(server) => Destination::SmartHost(server.into()),
            None => Destination::Mx {
                resolver: resolver(&outbound.nameservers).map(Box::new),
                port: outbound.mx_port,
            },
        }
    }
}

impl Sender {
    /// Delivers `message` from `from` (`""`: the null sender) to `to`, trying each server in turn until
    /// one takes it or one refuses it for good (a 5xx to the mail itself: a server that
    /// refuses the connection leaves the next one to try). A server that fell silent
    /// after the message's final dot may hold it: the attempt ends there instead of
    /// handing the DSN to the next server at once, and is retried later (the sender may
    /// then get it twice, as with any mail after a lost answer; never not at all).
    pub(super) async fn deliver(&self, from: &str, to: &str, message: &[u8]) -> Result<String, OutboundError> {
        let servers = match &self.destination {
            Destination::SmartHost(server) => vec![server.clone()],
            Destination::Mx { resolver, port } => mx_servers(resolver.as_deref(), to, *port).await?,
        };
        let mail = Mail {
            from,
            to,
            message,
            ..Mail::default()
        };
        let mut last = OutboundError::Temporary("no server to try".into());
        for server in &servers {
            match self.client.send(server, &mail).await {
                Ok(answer) => return Ok(answer),
                Err(error) if error.is_permanent() || error.is_unanswered() => return Err(error),
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

/// A resolver asking `nameservers` (UDP, then TCP for long answers), or the system's
/// when there are none; `None`, logged, when it cannot be set up.
fn resolver(nameservers: &[Nameserver]) -> Option<TokioResolver> {
    let builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio()
    } else {
        let servers = nameservers
            .iter()
            .map(|Nameserver(address)| {
                let mut connections = vec![ConnectionConfig::udp(), ConnectionConfig::tcp()];
                for connection in &mut connections {
                    connection.port = address.port();
                }
                NameServerConfig::new(address.ip(), true, connections)
            })
            .collect();
        let config = ResolverConfig::from_name_servers(servers);
        Ok(TokioResolver::builder_with_config(
            config,
            TokioRuntimeProvider::default(),
        ))
    };
    builder
        .and_then(|builder| builder.build())
        .inspect_err(|error| tracing::error!(%error, "no DNS resolver: DSNs cannot find MX hosts"))
        .ok()
}

async fn mx_servers(resolver: Option<&TokioResolver>, to: &str, port: u16) -> Result<Vec<Server>, OutboundError> {
    let Some(resolver) = resolver else {
        return Err(OutboundError::Temporary("no DNS resolver to find MX hosts".into()));
    };
    let domain = to
        .rsplit_once('@')
        .map(|(_, domain)| domain.trim_start_matches('[').trim_end_matches(']'))
        .filter(|domain| !domain.is_empty())
        .ok_or_else(|| OutboundError::Permanent(format!("<{to}> has no domain to deliver to")))?;
    let records = match resolver.mx_lookup(format!("{domain}.")).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.to_utf8())),
                _ => None,
            })
            .collect(),
        Err(error) if error.is_nx_domain() => {
            return Err(OutboundError::Permanent(format!("{domain} does not exist (DNS)")));
        }
        Err(error) if error.is_no_records_found() => Vec::new(),
        Err(error) => {
            return Err(OutboundError::Temporary(format!(
                "MX lookup of {domain} failed: {error}"
            )));
        }
    };
    mx_hosts(domain, records, port)
}

/// The servers of a domain by MX preference (RFC 5321 §5.1): the domain itself when it
/// has no MX, none at all for a null MX (RFC 7505).
fn mx_hosts(domain: &str, mut records: Vec<(u16, String)>, port: u16) -> Result<Vec<Server>, OutboundError> {
    if records.iter().any(|(_, host)| host == "." || host.is_empty()) {
        return Err(OutboundError::Permanent(format!("{domain} accepts no mail (null MX)")));
    }
    if records.is_empty() {
        records.push((0, domain.to_string()));
    }
    records.sort_by_key(|(preference, _)| *preference);
    Ok(records
        .into_iter()
        .map(|(_, host)| Server {
            host: host.trim_end_matches('.').to_string(),
            port,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(records: &[(u16, &str)]) -> Result<Vec<String>, OutboundError> {
        let records = records.iter().map(|(p, h)| (*p, h.to_string())).collect();
        mx_hosts("example.com", records, 2525).map(|servers| {
            assert!(servers.iter().all(|s| s.port == 2525), "outbound.mx_port");
            servers.into_iter().map(|s| s.host).collect()
        })
    }

    #[test]
    fn mx_preference_order_implicit_mx_and_null_mx() {
        assert_eq!(
            hosts(&[(20, "b.example.com."), (10, "a.example.com."), (20, "c.example.com.")]).unwrap(),
            ["a.example.com", "b.example.com", "c.example.com"]
        );
        assert_eq!(hosts(&[]).unwrap(), ["example.com"], "no MX: the domain itself");
        assert!(hosts(&[(0, ".")]).unwrap_err().is_permanent(), "null MX");
    }
}
