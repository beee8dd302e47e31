//! Which queued request each free modem gets: the oldest it may send, found by an
//! indexed probe per tariff lane, so that requests one modem cannot send never hold up
//! another (the modem stage's dispatcher asks this; `sending` does the rest).

use super::{Store, StoreError, now_ms, transact};
use crate::e164::E164;

/// A request waiting for a modem.
#[derive(Debug, Clone)]
pub struct QueuedRequest {
    /// The request id.
    pub id: i64,
    /// The number to send to.
    pub number: E164,
    /// The SMS text, split again into parts by the modem stage.
    pub text: String,
    /// How many parts the text takes.
    pub parts: usize,
    /// Attempts so far, for the retry schedule.
    pub attempts: i64,
    /// When its validity began, unix milliseconds: when it was accepted, or when the
    /// operator last retried it (`queue retry`).
    pub valid_from: i64,
    /// Parts that reached the network in an earlier attempt: never sent again.
    pub sent_parts: Vec<usize>,
    /// The modem of the last attempt: after a temporary failure, another one is preferred.
    pub last_modem: Option<String>,
}

impl Store {
    /// For each modem, given as (name, the prefixes its tariff covers), the oldest
    /// queued request it may send now: due, within its validity (`validity_ms` since it
    /// began), to a number under one of its prefixes, and with no part sent by another
    /// modem. One read of a few index probes per modem, however long the queue.
    pub async fn next_for_modems(
        &self,
        modems: Vec<(String, Vec<String>)>,
        validity_ms: i64,
    ) -> Result<Vec<Option<QueuedRequest>>, StoreError> {
        transact!(self, dispatch::next_for_modems(&modems, now_ms(), validity_ms))
    }
}

/// The lane of a number, as `requests_queued_by_lane` (migration 0008) indexes it: its
/// first `LANE` characters ("+44", "+1" and its next digit).
pub(in crate::store) const LANE: usize = 3;

/// The lanes a tariff prefix covers, and the range of numbers it names within them:
/// "+4" is the ten lanes "+40" to "+49", "+44" is one, "+447" is the part of lane "+44"
/// from "+447" up to "+448".
pub(in crate::store) fn lanes(prefix: &str) -> (Vec<String>, (String, String)) {
    let range = (prefix.to_string(), successor(prefix));
    if prefix.len() >= LANE {
        return (vec![prefix[..LANE].to_string()], range);
    }
    let mut lanes = vec![prefix.to_string()];
    while lanes[0].len() < LANE {
        lanes = lanes
            .iter()
            .flat_map(|lane| ('0'..='9').map(move |digit| format!("{lane}{digit}")))
            .collect();
    }
    (lanes, range)
}

/// The first string after every one that starts with `prefix` (ASCII digits and '+').
pub(in crate::store) fn successor(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    String::from_utf8(bytes).unwrap_or_default()
}

/// Tariff prefixes without those another one covers ("+447" under "+44"); `None`: one
/// is "+", every number.
pub(in crate::store) fn covering(prefixes: &[String]) -> Option<Vec<&str>> {
    if prefixes.iter().any(|p| p == "+") {
        return None;
    }
    let mut kept: Vec<&str> = prefixes
        .iter()
        .map(String::as_str)
        .filter(|p| !prefixes.iter().any(|q| q.len() < p.len() && p.starts_with(q.as_str())))
        .collect();
    kept.sort_unstable();
    kept.dedup();
    Some(kept)
}
