//! What is delivered, and where to.

use crate::config::HostPort;

/// A server to deliver to: a host name or address, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// A DNS name (checked against the certificate under TLS) or an IP address.
    pub host: String,
    /// The SMTP port, usually 25.
    pub port: u16,
}

impl From<&HostPort> for Server {
    fn from(address: &HostPort) -> Server {
        Server {
            host: address.host().to_string(),
            port: address.port(),
        }
    }
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// One mail: the envelope and the message, CRLF lines.
#[derive(Debug, Clone, Default)]
pub struct Mail<'a> {
    /// The envelope sender; "" for the null sender of a DSN.
    pub from: &'a str,
    /// ESMTP parameters of MAIL FROM (RET, ENVID), each with its leading space.
    pub from_params: String,
    /// The envelope recipient.
    pub to: &'a str,
    /// ESMTP parameters of RCPT TO (NOTIFY, ORCPT), each with its leading space.
    pub to_params: String,
    /// The message, headers and body; bare LF line ends are sent as CRLF.
    pub message: &'a [u8],
}
