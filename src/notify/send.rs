//! Where a DSN goes: the smart host, or the MX hosts of the sender's domain.

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use crate::config::HostPort;
use crate::outbound::{Client, Mail, OutboundError, Server};

/// Finds the servers for each DSN and hands it to the outbound client.
pub struct Sender {
    /// How a DSN is delivered once its server is known.
    pub client: Client,
    /// Which servers DSNs go to.
    pub destination: Destination,
}

/// The servers DSNs go to.
pub enum Destination {
    /// Every DSN to this one server (`dsn.smart_host`).
    SmartHost(Server),
    /// Each DSN to the MX hosts of its recipient's domain. `None` when the system's
    /// resolver could not be set up: every DSN then waits.
    Mx(Option<Box<TokioResolver>>),
}

impl Destination {
    /// The smart host when one is configured, else the MX hosts through the system's
    /// resolver.
    pub fn new(smart_host: Option<&HostPort>) -> Destination {
        match smart_host {
            Some(server) => Destination::SmartHost(Server {
                host: server.host().to_string(),
                port: server.port(),
            }),
            None => Destination::Mx(
                TokioResolver::builder_tokio()
                    .and_then(|builder| builder.build())
                    .inspect_err(|error| tracing::error!(%error, "no DNS resolver: DSNs cannot find MX hosts"))
                    .ok()
                    .map(Box::new),
            ),
        }
    }
}

impl Sender {
    /// Delivers `message` from the null sender to `to`, trying each server in turn until
    /// one takes it or one refuses it for good (a 5xx to the mail itself: a server that
    /// refuses the connection leaves the next one to try).
    pub async fn deliver(&self, to: &str, message: &[u8]) -> Result<String, OutboundError> {
        let servers = match &self.destination {
            Destination::SmartHost(server) => vec![server.clone()],
            Destination::Mx(resolver) => mx_servers(resolver.as_deref(), to).await?,
        };
        let mail = Mail {
            from: "",
            to,
            message,
            ..Mail::default()
        };
        let mut last = OutboundError::Temporary("no server to try".into());
        for server in &servers {
            match self.client.send(server, &mail).await {
                Ok(answer) => return Ok(answer),
                Err(error) if error.is_permanent() => return Err(error),
                Err(error) => last = error,
            }
        }
        Err(last)
    }
}

async fn mx_servers(resolver: Option<&TokioResolver>, to: &str) -> Result<Vec<Server>, OutboundError> {
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
    mx_hosts(domain, records)
}

/// The servers of a domain by MX preference (RFC 5321 §5.1): the domain itself when it
/// has no MX, none at all for a null MX (RFC 7505).
fn mx_hosts(domain: &str, mut records: Vec<(u16, String)>) -> Result<Vec<Server>, OutboundError> {
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
            port: 25,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(records: &[(u16, &str)]) -> Result<Vec<String>, OutboundError> {
        let records = records.iter().map(|(p, h)| (*p, h.to_string())).collect();
        mx_hosts("example.com", records).map(|servers| servers.into_iter().map(|s| s.host).collect())
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
