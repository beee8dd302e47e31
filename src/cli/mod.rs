//! The commands of `smsgw`, one module per command group. Each module declares its
//! subcommands (clap) and runs them; `main.rs` parses and dispatches. Errors are
//! `anyhow` here, at the edge, with what the operator should do about them.

pub mod check_config;
pub mod modem;
pub mod pdu;
pub mod queue;
pub mod route;
pub mod serve;
pub mod user;
