//! Outbound SMTP: one mail to one server, with STARTTLS as the [`TlsPolicy`] says.
//!
//! The protocol is in [`command`] (what the client writes), [`response`] (what the
//! server answers) and [`data`] (the message as DATA sends it); `session` holds the
//! conversation and sorts every failure, there and only there, into an
//! [`OutboundError`]: temporary (try again, or another server), permanent (the server
//! refused the mail for good), or unanswered (the whole mail left, no answer came).
//! `client` is the delivery policy: connecting, TLS, authentication, reuse.

mod client;
pub mod command;
pub mod data;
pub mod response;
mod session;
pub mod tls;

#[cfg(test)]
mod tests;

pub use client::{Client, Connection};
pub use tls::{TlsPolicy, TlsSetupError};

/// How a delivery failed, as the callers act on it; each carries the whole story in one
/// line, naming the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// Nothing was delivered and the server did not refuse the mail for good: try again
    /// later, or another server.
    #[error("{0}")]
    Temporary(String),
    /// The server refused this mail for good (a 5xx to MAIL, RCPT, DATA or the message).
    #[error("{0}")]
    Permanent(String),
    /// The message and its final dot left, then the connection broke or went silent
    /// before the server answered: it may have taken the mail. Retried like a temporary
    /// failure, so a mail may arrive twice but is never lost.
    #[error("{0}")]
    Unanswered(String),
}

impl OutboundError {
    /// The server refused the mail for good: trying again would not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, OutboundError::Permanent(_))
    }

    /// The mail went out in full but no answer came: it may have been delivered.
    pub fn is_unanswered(&self) -> bool {
        matches!(self, OutboundError::Unanswered(_))
    }
}

/// A server to deliver to: a host name or address, and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// A DNS name (checked against the certificate under TLS) or an IP address.
    pub host: String,
    /// The SMTP port, usually 25.
    pub port: u16,
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
