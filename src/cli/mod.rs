//! The commands of `smsgw`, one module per command group. Each module declares its
//! subcommands (clap) and runs them; `main.rs` parses and dispatches. Errors are
//! `anyhow` here, at the edge, with what the operator should do about them.

pub(crate) mod check_config;
pub(crate) mod inbox;
pub(crate) mod modem;
pub(crate) mod optout;
pub(crate) mod pdu;
pub(crate) mod queue;
pub(crate) mod route;
pub(crate) mod serve;
pub(crate) mod store;
pub(crate) mod user;
