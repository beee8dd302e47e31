//! A DNS server on loopback (UDP) that answers MX queries from a fixed table, and any
//! other query with no record: where a gateway finds the MX hosts of a DSN's domain.

use std::net::{SocketAddr, UdpSocket};

pub(crate) struct Dns {
    pub address: SocketAddr,
}

impl Dns {
    /// Serves `mx`: (domain, exchange) pairs, each an MX record of preference 10; an
    /// exchange "." is a null MX (RFC 7505).
    pub(crate) fn start(mx: &[(&str, &str)]) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("dns: bind");
        let address = socket.local_addr().unwrap();
        let mx: Vec<(String, String)> = mx
            .iter()
            .map(|(domain, exchange)| (domain.to_ascii_lowercase(), exchange.to_string()))
            .collect();
        std::thread::spawn(move || {
            let mut query = [0u8; 1500];
            while let Ok((length, client)) = socket.recv_from(&mut query) {
                if let Some(response) = answer(&query[..length], &mx) {
                    let _ = socket.send_to(&response, client);
                }
            }
        });
        Dns { address }
    }
}

const MX: u16 = 15;

/// The response to one query (RFC 1035 §4.1), or None if it cannot be read.
fn answer(query: &[u8], mx: &[(String, String)]) -> Option<Vec<u8>> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*query.get(at)?);
        at += 1;
        if length == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(at..at + length)?).to_ascii_lowercase());
        at += length;
    }
    let question = query.get(12..at + 4)?;
    let qtype = u16::from_be_bytes([query[at], query[at + 1]]);
    let name = labels.join(".");
    let exchange = mx
        .iter()
        .find(|(domain, _)| qtype == MX && *domain == name)
        .map(|(_, exchange)| exchange);
    // The query's id; a response, recursion desired and available, no error.
    let mut response = vec![
        query[0],
        query[1],
        0x81,
        0x80,
        0,
        1,
        0,
        u8::from(exchange.is_some()),
        0,
        0,
        0,
        0,
    ];
    response.extend_from_slice(question);
    if let Some(exchange) = exchange {
        let mut data = 10u16.to_be_bytes().to_vec();
        for label in exchange.split('.').filter(|l| !l.is_empty()) {
            data.push(u8::try_from(label.len()).ok()?);
            data.extend_from_slice(label.as_bytes());
        }
        data.push(0);
        // The question's name (a pointer to offset 12), MX, IN, a TTL of 60 s.
        response.extend_from_slice(&[0xC0, 12, 0, 15, 0, 1, 0, 0, 0, 60]);
        response.extend_from_slice(&u16::try_from(data.len()).ok()?.to_be_bytes());
        response.extend_from_slice(&data);
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use hickory_resolver::TokioResolver;
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    use hickory_resolver::proto::rr::RData;

    use super::Dns;

    /// The resolver the gateway uses reads these answers as MX records.
    #[test]
    fn a_resolver_reads_the_mx_records_served() {
        let dns = Dns::start(&[("example.test", "mx.example.test."), ("null.test", ".")]);
        let mut udp = ConnectionConfig::udp();
        udp.port = dns.address.port();
        let server = NameServerConfig::new(dns.address.ip(), true, vec![udp]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let resolver = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![server]),
                TokioRuntimeProvider::default(),
            )
            .build()
            .unwrap();
            let exchanges = |lookup: hickory_resolver::lookup::Lookup| -> Vec<String> {
                lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::MX(mx) => Some(mx.exchange.to_utf8()),
                        _ => None,
                    })
                    .collect()
            };
            let found = resolver.mx_lookup("Example.test.").await.unwrap();
            assert_eq!(exchanges(found), ["mx.example.test."]);
            let null = resolver.mx_lookup("null.test.").await.unwrap();
            assert_eq!(exchanges(null), ["."]);
            assert!(resolver.mx_lookup("other.test.").await.is_err(), "no record");
        });
    }
}
