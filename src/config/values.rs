//! Typed values of the configuration, each parsed once where the file is read.
//!
//! Every parse error's message is what `check-config` shows after the key, so it says
//! what the value must be.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A DNS server to ask: an IP address, with port 53 unless one is given
/// (`192.0.2.53`, `192.0.2.53:5353`, `[2001:db8::53]:53`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Nameserver(pub SocketAddr);

/// Why a text is not a [`Nameserver`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a DNS server address such as 192.0.2.53 or 192.0.2.53:5353")]
pub struct NameserverError(String);

impl FromStr for Nameserver {
    type Err = NameserverError;

    fn from_str(text: &str) -> Result<Nameserver, NameserverError> {
        let text = text.trim();
        text.parse::<SocketAddr>()
            .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
            .map(Nameserver)
            .map_err(|_| NameserverError(text.to_string()))
    }
}

impl TryFrom<String> for Nameserver {
    type Error = NameserverError;

    fn try_from(text: String) -> Result<Nameserver, NameserverError> {
        text.parse()
    }
}

/// An IP network in CIDR notation (`127.0.0.0/8`, `2001:db8::/32`); an address alone is
/// a network of that one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

/// Why a text is not a [`Network`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// The part before `/` is not an IP address.
    #[error("{0:?} is not an IP network such as 10.0.0.0/8")]
    Address(String),
    /// The part after `/` is not a number.
    #[error("{0:?}: bad prefix length")]
    Prefix(String),
    /// The prefix is longer than the address (32 bits for IPv4, 128 for IPv6).
    #[error("{0:?}: prefix length above {1}")]
    TooLong(String, u8),
}

impl Network {
    /// `127.0.0.0/8`, the IPv4 loopback network.
    pub const LOOPBACK_V4: Network = Network {
        address: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
        prefix: 8,
    };
    /// `::1/128`, the IPv6 loopback address.
    pub const LOOPBACK_V6: Network = Network {
        address: IpAddr::V6(Ipv6Addr::LOCALHOST),
        prefix: 128,
    };

    /// Whether `ip` is in this network; an IPv4 client seen as `::ffff:a.b.c.d` (on an
    /// IPv6 listener) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(net.to_bits().into(), 32, self.prefix) == masked(ip.to_bits().into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.to_bits(), 128, self.prefix) == masked(ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// The network part of `bits`, an address `width` bits wide.
fn masked(bits: u128, width: u32, prefix: u8) -> u128 {
    let host_bits = width - u32::from(prefix);
    if host_bits >= 128 { 0 } else { bits >> host_bits }
}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(text: &str) -> Result<Network, NetworkError> {
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let address: IpAddr = address.parse().map_err(|_| NetworkError::Address(text.into()))?;
        let width = if address.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            width
        } else {
            prefix.parse().map_err(|_| NetworkError::Prefix(text.into()))?
        };
        if prefix > width {
            return Err(NetworkError::TooLong(text.into(), width));
        }
        Ok(Network { address, prefix })
    }
}

impl TryFrom<String> for Network {
    type Error = NetworkError;

    fn try_from(text: String) -> Result<Network, NetworkError> {
        text.parse()
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// A server to connect to: a host name or IP address, and a port (not 0). Written
/// "host:port", an IPv6 address in brackets (`[2001:db8::1]:25`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPort {
    host: String,
    port: u16,
}

/// Why a text is not a [`HostPort`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be host:port, such as \"mail.example.com:25\"")]
pub struct HostPortError;

impl HostPort {
    /// The host name or IP address, without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl FromStr for HostPort {
    type Err = HostPortError;

    fn from_str(text: &str) -> Result<HostPort, HostPortError> {
        let (host, port) = text.rsplit_once(':').ok_or(HostPortError)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = port.parse().ok().filter(|p| *p > 0).ok_or(HostPortError)?;
        if host.is_empty() {
            return Err(HostPortError);
        }
        Ok(HostPort {
            host: host.into(),
            port,
        })
    }
}

impl TryFrom<String> for HostPort {
    type Error = HostPortError;

    fn try_from(text: String) -> Result<HostPort, HostPortError> {
        text.parse()
    }
}

/// A listener's address as a server to connect to (its port as it is, even 0).
impl From<SocketAddr> for HostPort {
    fn from(address: SocketAddr) -> HostPort {
        HostPort {
            host: address.ip().to_string(),
            port: address.port(),
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An `http://` or `https://` URL with a port, such as a peer's
/// `https://fr-gw.example.net:8025/status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HttpUrl {
    https: bool,
    authority: HostPort,
    path: String,
}

/// Why a text is not an [`HttpUrl`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an http:// or https:// URL with a port, such as \"https://fr-gw.example.net:8025/status\"")]
pub struct HttpUrlError;

impl HttpUrl {
    /// The plain-HTTP URL of `path` (with its query, if any) at `authority`; a path not
    /// starting with '/' is taken from the root.
    pub fn new(authority: HostPort, path: &str) -> HttpUrl {
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        HttpUrl {
            https: false,
            authority,
            path,
        }
    }

    /// The URL of `path` (with its query, if any) beside this one: same scheme and
    /// authority, the last segment of the path replaced (`…/status` → `…/optouts`).
    pub fn beside(&self, path: &str) -> HttpUrl {
        let folder = self.path.rsplit_once('/').map_or("", |(folder, _)| folder);
        HttpUrl {
            https: self.https,
            authority: self.authority.clone(),
            path: format!("{folder}/{}", path.trim_start_matches('/')),
        }
    }

    /// The same URL over TLS (`https://`).
    pub fn with_tls(self) -> HttpUrl {
        HttpUrl { https: true, ..self }
    }

    /// Whether it is an `https://` URL: the server's certificate is checked.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// Whether its host is this machine ("localhost" or a loopback address): what
    /// travels to it in clear never crosses a network.
    pub fn is_loopback(&self) -> bool {
        let host = self.authority.host();
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The server to connect to, also the `Host` header.
    pub fn authority(&self) -> &HostPort {
        &self.authority
    }

    /// The request target: the path and query, "/" at least.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl FromStr for HttpUrl {
    type Err = HttpUrlError;

    fn from_str(text: &str) -> Result<HttpUrl, HttpUrlError> {
        let (https, rest) = match (text.strip_prefix("http://"), text.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => return Err(HttpUrlError),
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
        Ok(HttpUrl {
            https,
            authority: authority.parse().map_err(|_| HttpUrlError)?,
            path: path.into(),
        })
    }
}

impl TryFrom<String> for HttpUrl {
    type Error = HttpUrlError;

    fn try_from(text: String) -> Result<HttpUrl, HttpUrlError> {
        text.parse()
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority, self.path)
    }
}

/// A list of at least one value, in the order written: a `[[peer]]`'s `smtp` and
/// `status_url`, each written as one text or as a list of them (the instances of a site).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonEmpty<T>(Vec<T>);

impl<T> NonEmpty<T> {
    /// The list of `items`; `None` if there are none.
    pub fn new(items: Vec<T>) -> Option<NonEmpty<T>> {
        (!items.is_empty()).then_some(NonEmpty(items))
    }

    /// The first value.
    pub fn first(&self) -> &T {
        &self.0[0]
    }

    /// How many there are: 1 at least.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never: a `NonEmpty` has at least one value.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The values, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// The values, in order.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
}

impl<T> From<T> for NonEmpty<T> {
    fn from(one: T) -> NonEmpty<T> {
        NonEmpty(vec![one])
    }
}

impl<'a, T> IntoIterator for &'a NonEmpty<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A value written either as one text or as a list of texts (`smtp = "fr:25"` or
/// `smtp = ["fr-a:25", "fr-b:25"]`), read as written: [`validate`](super::validate)
/// parses each text, naming it by its index when it is in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OneOrList {
    /// A single text.
    One(String),
    /// A list, possibly empty (refused by the validation, naming the key).
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for OneOrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<OneOrList, D::Error> {
        struct OneOrListVisitor;

        impl<'de> Visitor<'de> for OneOrListVisitor {
            type Value = OneOrList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<OneOrList, E> {
                Ok(OneOrList::One(text.to_string()))
            }

            // Other scalars as text, as a `String` key reads them: then refused by
            // their parse, with its message.
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<OneOrList, E> {
                Ok(OneOrList::One(value.to_string()))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<OneOrList, E> {
                Ok(OneOrList::One(value.to_string()))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<OneOrList, E> {
                Ok(OneOrList::One(value.to_string()))
            }

            fn visit_bool<E: serde::de::Error>(self, value: bool) -> Result<OneOrList, E> {
                Ok(OneOrList::One(value.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(OneOrList::List(items))
            }
        }

        deserializer.deserialize_any(OneOrListVisitor)
    }
}

/// The SHA-256 fingerprint of a certificate accepted as it is (a self-signed one).
/// Written as 64 hex digits, colons allowed ("AB:CD:..." as openssl prints them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Pin([u8; 32]);

/// Why a text is not a [`Pin`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a SHA-256 fingerprint: 64 hex digits, colons allowed")]
pub struct PinError;

impl From<[u8; 32]> for Pin {
    fn from(sha256: [u8; 32]) -> Pin {
        Pin(sha256)
    }
}

impl FromStr for Pin {
    type Err = PinError;

    fn from_str(text: &str) -> Result<Pin, PinError> {
        let hex: String = text.chars().filter(|c| *c != ':').collect();
        if hex.len() != 64 {
            return Err(PinError);
        }
        let mut pin = [0u8; 32];
        for (index, byte) in pin.iter_mut().enumerate() {
            let digits = hex.get(index * 2..index * 2 + 2).ok_or(PinError)?;
            *byte = u8::from_str_radix(digits, 16).map_err(|_| PinError)?;
        }
        Ok(Pin(pin))
    }
}

impl TryFrom<String> for Pin {
    type Error = PinError;

    fn try_from(text: String) -> Result<Pin, PinError> {
        text.parse()
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// A region (ISO 3166 code, such as "GB") known to libphonenumber: how national numbers
/// are read. Any case is accepted ("fr" is FR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Region(phonenumber::country::Id);

/// Why a text is not a [`Region`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an ISO 3166 region code known to libphonenumber, such as \"GB\" or \"FR\"")]
pub struct RegionError;

impl Region {
    /// The region as libphonenumber names it.
    pub fn id(self) -> phonenumber::country::Id {
        self.0
    }
}

impl From<phonenumber::country::Id> for Region {
    fn from(id: phonenumber::country::Id) -> Region {
        Region(id)
    }
}

impl FromStr for Region {
    type Err = RegionError;

    fn from_str(text: &str) -> Result<Region, RegionError> {
        // libphonenumber's names are upper case only.
        text.to_ascii_uppercase().parse().map(Region).map_err(|_| RegionError)
    }
}

impl TryFrom<String> for Region {
    type Error = RegionError;

    fn try_from(text: String) -> Result<Region, RegionError> {
        text.parse()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_ref())
    }
}

/// Reads an optional value written as text, "" for none.
pub(super) fn empty_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(D::Error::custom)
}

/// Reads `http.listen`: a socket address, "" for none.
pub(super) fn http_listen<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    let problem = "must be an address such as \"127.0.0.1:8025\"";
    text.parse().map(Some).map_err(|_| D::Error::custom(problem))
}

/// Reads a list of values written as text with [`FromStr`], for types that do not
/// implement `Deserialize` themselves (`sms::Language`).
pub(super) fn parse_each<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    deserializer.deserialize_seq(ParseEach(std::marker::PhantomData))
}

/// [`parse_each`]'s visitor, and its seed for each element: an element is parsed inside
/// its own deserialization, so that its error names its index (`key[1]`).
struct ParseEach<T>(std::marker::PhantomData<T>);

impl<'de, T: FromStr> Visitor<'de> for ParseEach<T>
where
    T::Err: fmt::Display,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ParseEach::<T>(std::marker::PhantomData))? {
            items.push(item);
        }
        Ok(items)
    }
}

impl<'de, T: FromStr> DeserializeSeed<'de> for ParseEach<T>
where
    T::Err: fmt::Display,
{
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        String::deserialize(deserializer)?.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_take_port_53_unless_told() {
        let table = [
            ("192.0.2.53", Some("192.0.2.53:53")),
            (" 192.0.2.53:5353 ", Some("192.0.2.53:5353")),
            ("::1", Some("[::1]:53")),
            ("[2001:db8::53]:54", Some("[2001:db8::53]:54")),
            ("dns.example.com", None),
            ("192.0.2.53:", None),
            ("", None),
        ];
        for (text, want) in table {
            let got = text.parse::<Nameserver>().ok().map(|n| n.0.to_string());
            assert_eq!(got.as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn network_membership() {
        let table = [
            ("127.0.0.0/8", "127.0.0.2", true),
            ("127.0.0.1/32", "127.0.0.2", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("10.0.0.0/8", "::ffff:10.1.2.3", true),
            ("0.0.0.0/0", "192.0.2.1", true),
            ("::1/128", "::1", true),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "127.0.0.1", false),
        ];
        for (network, ip, inside) in table {
            let network: Network = network.parse().unwrap();
            assert_eq!(network.contains(ip.parse().unwrap()), inside, "{network:?} {ip}");
        }
    }

    #[test]
    fn network_errors_quote_the_text() {
        let table = [
            ("10.0.0.0/33", "\"10.0.0.0/33\": prefix length above 32"),
            ("nonsense", "\"nonsense\" is not an IP network such as 10.0.0.0/8"),
            ("::1/129", "\"::1/129\": prefix length above 128"),
            ("10.0.0.0/x", "\"10.0.0.0/x\": bad prefix length"),
        ];
        for (bad, message) in table {
            assert_eq!(bad.parse::<Network>().unwrap_err().to_string(), message);
        }
    }

    #[test]
    fn loopback_networks_are_the_loopback_addresses() {
        assert_eq!("127.0.0.0/8".parse(), Ok(Network::LOOPBACK_V4));
        assert_eq!("::1/128".parse(), Ok(Network::LOOPBACK_V6));
    }

    #[test]
    fn network_display_reads_back() {
        for (text, shown) in [("127.0.0.1", "127.0.0.1/32"), ("2001:db8::/32", "2001:db8::/32")] {
            let network: Network = text.parse().unwrap();
            assert_eq!(network.to_string(), shown);
            assert_eq!(shown.parse::<Network>(), Ok(network));
        }
    }

    #[test]
    fn host_port_takes_names_addresses_and_bracketed_ipv6() {
        let table = [
            ("mail.example.com:25", "mail.example.com", 25, "mail.example.com:25"),
            ("127.0.0.1:2525", "127.0.0.1", 2525, "127.0.0.1:2525"),
            ("[2001:db8::1]:587", "2001:db8::1", 587, "[2001:db8::1]:587"),
        ];
        for (text, host, port, shown) in table {
            let parsed: HostPort = text.parse().unwrap();
            assert_eq!((parsed.host(), parsed.port()), (host, port), "{text}");
            assert_eq!(parsed.to_string(), shown);
        }
        for bad in ["", "mail.example.com", ":25", "[]:25", "host:0", "host:65536", "host:x"] {
            assert_eq!(bad.parse::<HostPort>(), Err(HostPortError), "{bad:?}");
        }
        let from_socket = HostPort::from(SocketAddr::from(([127, 0, 0, 1], 8025)));
        assert_eq!(from_socket.to_string(), "127.0.0.1:8025");
    }

    #[test]
    fn http_url_splits_authority_and_path() {
        let url: HttpUrl = "http://fr-gw.example.net:8025/status".parse().unwrap();
        assert_eq!(url.authority().host(), "fr-gw.example.net");
        assert_eq!(url.authority().port(), 8025);
        assert_eq!(url.path(), "/status");
        assert_eq!(url.to_string(), "http://fr-gw.example.net:8025/status");
        let root: HttpUrl = "http://[::1]:8025".parse().unwrap();
        assert_eq!((root.authority().host(), root.path()), ("::1", "/"));
        let query: HttpUrl = "http://127.0.0.1:8025/route?number=%2B33".parse().unwrap();
        assert_eq!(query.path(), "/route?number=%2B33");
        let secure: HttpUrl = "https://fr:8443/status".parse().unwrap();
        assert!(secure.is_https() && !url.is_https());
        assert_eq!(secure.to_string(), "https://fr:8443/status");
        assert!(root.is_loopback() && query.is_loopback() && !url.is_loopback());
        assert!("http://LocalHost:80/".parse::<HttpUrl>().unwrap().is_loopback());
        for bad in [
            "https://fr/status",
            "ftp://fr:8025/status",
            "fr:8025/status",
            "http://fr/status",
            "http://:8025/",
        ] {
            assert_eq!(bad.parse::<HttpUrl>(), Err(HttpUrlError), "{bad:?}");
        }
        let built = HttpUrl::new("fr:8025".parse().unwrap(), "route?number=1");
        assert_eq!(built.to_string(), "http://fr:8025/route?number=1");
    }

    #[test]
    fn pins_are_64_hex_digits_with_or_without_colons() {
        let plain = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let pin: Pin = plain.parse().unwrap();
        assert_eq!(pin.0[0], 0x00);
        assert_eq!(pin.0[15], 0xff);
        assert_eq!(pin.0[31], 0xff);
        assert_eq!(pin.to_string(), plain.to_ascii_lowercase());
        let colons: Vec<String> = pin.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(colons.join(":").parse(), Ok(pin));
        for bad in [
            "",
            "00",
            &plain[1..],
            &format!("{}zz", &plain[2..]),
            &format!("é{}", &plain[2..]),
        ] {
            assert_eq!(bad.parse::<Pin>(), Err(PinError), "{bad:?}");
        }
    }

    #[test]
    fn regions_are_libphonenumber_codes_in_any_case() {
        for (text, shown) in [("GB", "GB"), ("fr", "FR"), ("Xk", "XK")] {
            assert_eq!(text.parse::<Region>().unwrap().to_string(), shown);
        }
        assert_eq!("fr".parse::<Region>().unwrap().id(), phonenumber::country::Id::FR);
        for bad in ["", "XX", "GBR", "001", " GB"] {
            assert_eq!(bad.parse::<Region>(), Err(RegionError), "{bad:?}");
        }
    }
}

/// A PostgreSQL URL, `postgres://user:password@host:port/database` (or
/// `postgresql://…`, with libpq's query parameters), parsed once. Shown with its
/// password hidden.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct PostgresUrl {
    config: tokio_postgres::Config,
    shown: String,
}

/// Why a text is not a [`PostgresUrl`]; never repeats the text, which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be a PostgreSQL URL naming a host and a database, such as \"postgres://smsgw:secret@127.0.0.1:5432/smsgw\" ({0})"
)]
pub struct PostgresUrlError(String);

impl PostgresUrl {
    /// The connection settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl FromStr for PostgresUrl {
    type Err = PostgresUrlError;

    fn from_str(text: &str) -> Result<PostgresUrl, PostgresUrlError> {
        let rest = text
            .strip_prefix("postgres://")
            .or_else(|| text.strip_prefix("postgresql://"))
            .ok_or_else(|| PostgresUrlError("it does not start with postgres://".into()))?;
        let config: tokio_postgres::Config = text
            .parse()
            .map_err(|e: tokio_postgres::Error| PostgresUrlError(e.to_string()))?;
        if config.get_hosts().is_empty() {
            return Err(PostgresUrlError("no host".into()));
        }
        if config.get_dbname().is_none_or(str::is_empty) {
            return Err(PostgresUrlError("no database".into()));
        }
        if config.get_user().is_none_or(str::is_empty) {
            return Err(PostgresUrlError("no user".into()));
        }
        // The password sits between "user:" and the last '@' of the authority.
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let shown = match rest[..authority_end].rfind('@') {
            Some(at) if rest[..at].contains(':') => {
                let colon = rest[..at].find(':').unwrap_or(at);
                format!(
                    "{}{}:****{}",
                    &text[..text.len() - rest.len()],
                    &rest[..colon],
                    &rest[at..]
                )
            }
            _ => text.to_string(),
        };
        // Or in the query, as libpq also takes it: `?password=…`.
        let shown = match shown.split_once('?') {
            Some((head, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, _)) if key == "password" => format!("{key}=****"),
                        _ => pair.to_string(),
                    })
                    .collect();
                format!("{head}?{}", query.join("&"))
            }
            None => shown,
        };
        Ok(PostgresUrl { config, shown })
    }
}

impl TryFrom<String> for PostgresUrl {
    type Error = PostgresUrlError;

    fn try_from(text: String) -> Result<PostgresUrl, PostgresUrlError> {
        text.parse()
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", self.shown)
    }
}
