//! The harness: real gateway processes ([`gateway`]) on port 0 with their own data
//! directories, read through their database ([`store`]); a raw SMTP client ([`smtp`]);
//! a test CA ([`pki`]); an SMTP server where DSNs arrive ([`sink`]) and a DNS server
//! naming their MX hosts ([`dns`]); a peer's `/status` stand-in ([`status`]); the venv of the independent Python
//! checkers ([`python`]); a fresh database on a PostgreSQL server ([`postgres`]); and the one way to wait for
//! something ([`wait`]).

pub(crate) mod dns;
pub(crate) mod gateway;
pub(crate) mod pki;
pub(crate) mod postgres;
pub(crate) mod python;
pub(crate) mod sink;
pub(crate) mod smtp;
pub(crate) mod status;
pub(crate) mod store;
pub(crate) mod wait;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The gateway's binary, as cargo built it for these tests.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_smsgw");

/// A directory removed when dropped.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "smsgw-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
