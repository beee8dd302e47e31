//! Keys that moved to another section, still read where the last release had them, so
//! that a config written for it works unchanged: `[outbound]` took the transport keys
//! of `[dsn]` when it came to carry the mails made from incoming SMS too.
//!
//! The moved keys are taken out of `[dsn]` and read as an [`Outbound`] of their own,
//! named `dsn`, so that a problem with one is named as written (`dsn.smart_host`); each
//! one `[outbound]` does not set is then taken from it. Each is a warning, never an error.

use std::collections::HashMap;

use super::{Outbound, Problem};

/// Takes one key's value from one [`Outbound`] to another.
type Take = fn(&mut Outbound, &Outbound);

/// The `[dsn]` keys now in `[outbound]`, under the same names, each with how its value
/// is taken over.
const DSN_TO_OUTBOUND: &[(&str, Take)] = &[
    ("smart_host", |to, from| to.smart_host.clone_from(&from.smart_host)),
    ("tls", |to, from| to.tls = from.tls),
    ("tls_ca_file", |to, from| to.tls_ca_file.clone_from(&from.tls_ca_file)),
    ("tls_pin_sha256", |to, from| {
        to.tls_pin_sha256.clone_from(&from.tls_pin_sha256)
    }),
    ("retry_delays_secs", |to, from| {
        to.retry_delays_secs.clone_from(&from.retry_delays_secs);
    }),
    ("lifetime_hours", |to, from| to.lifetime_hours = from.lifetime_hours),
    ("timeout_secs", |to, from| to.timeout_secs = from.timeout_secs),
    ("nameservers", |to, from| to.nameservers.clone_from(&from.nameservers)),
    ("mx_port", |to, from| to.mx_port = from.mx_port),
];

/// An `[outbound]` key the file set under `[dsn]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Moved {
    /// Its name, the same in both sections.
    key: &'static str,
    /// `[outbound]` sets it too, and wins: the value under `[dsn]` is not used.
    overridden: bool,
}

/// Takes the moved keys out of `[dsn]` in `tables` (when it is a table, else it is
/// reported as it is), and returns them as a `[dsn]` of their own; empty when there
/// are none.
pub(super) fn take_from_dsn(tables: &mut HashMap<String, config::Value>) -> HashMap<String, config::Value> {
    let mut moved = config::Map::new();
    if let Some(config::ValueKind::Table(dsn)) = tables.get_mut("dsn").map(|value| &mut value.kind) {
        for (key, _) in DSN_TO_OUTBOUND {
            if let Some(value) = dsn.remove(*key) {
                moved.insert((*key).to_string(), value);
            }
        }
    }
    if moved.is_empty() {
        return HashMap::new();
    }
    let table = config::Value::new(None, config::ValueKind::Table(moved));
    HashMap::from([("dsn".to_string(), table)])
}

/// Takes into `outbound`, read from `[outbound]` in `tables`, each key of `old` (read
/// from the moved keys of [`take_from_dsn`]) that `[outbound]` does not set; returns
/// every moved key the file set.
pub(super) fn merge(
    tables: &HashMap<String, config::Value>,
    outbound: &mut Outbound,
    moved: &HashMap<String, config::Value>,
    old: &Outbound,
) -> Vec<Moved> {
    let set = |tables: &HashMap<String, config::Value>, section: &str, key: &str| {
        tables
            .get(section)
            .is_some_and(|value| matches!(&value.kind, config::ValueKind::Table(table) if table.contains_key(key)))
    };
    DSN_TO_OUTBOUND
        .iter()
        .filter(|(key, _)| set(moved, "dsn", key))
        .map(|&(key, take)| {
            let overridden = set(tables, "outbound", key);
            if !overridden {
                take(outbound, old);
            }
            Moved { key, overridden }
        })
        .collect()
}

/// One warning per moved key the file set, named as written.
pub(super) fn warnings(moved: &[Moved]) -> Vec<Problem> {
    moved
        .iter()
        .map(|Moved { key, overridden }| {
            let why = "[outbound] now carries DSNs and the mails made from incoming SMS";
            let problem = if *overridden {
                format!("moved to outbound.{key}, which is also set and wins: this value is not used ({why})")
            } else {
                format!("moved to outbound.{key} (still read; {why})")
            };
            Problem::new(&format!("dsn.{key}"), &problem)
        })
        .collect()
}
