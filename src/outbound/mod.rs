//! Outbound SMTP: one mail to one server, with STARTTLS as the [`TlsPolicy`] says.
//!
//! The protocol is in [`command`] (what the client writes), [`response`] (what the
//! server answers) and [`data`] (the message as DATA sends it); `session` holds the
//! conversation and sorts every failure, there and only there, into an
//! [`OutboundError`]: temporary (try again, or another server), permanent (the server
//! refused the mail for good), or unanswered (the whole mail left, no answer came).
//! `client` is the delivery policy: connecting, TLS, authentication, reuse.
//!
//! [`http`] is the one other client: GET of a peer's `/status` (and the CLI's `/route`),
//! over the same TLS verifier.

mod client;
pub mod command;
pub mod data;
mod error;
pub mod http;
mod mail;
pub mod response;
mod session;
pub mod tls;

#[cfg(test)]
mod tests;

pub use client::{Client, Connection};
pub use error::OutboundError;
pub use http::{HttpGet, HttpGetError};
pub use mail::{Mail, Server};
pub use tls::{TlsPolicy, TlsSetupError};
