//! The opt-out list: numbers that texted a stop word (or that an operator added). Mail
//! to them is refused at RCPT, from memory ([`OptOutList`]), and requests already
//! queued for one fail with a DSN when it opts out.
//!
//! Each change gets the next sequence number (`seq`), so that its peers can poll this
//! instance's own changes since the last they saw (`GET /optouts?after=N`, beside
//! `/status`) and apply them: a change learnt from a peer is stored with its origin and
//! not passed on (every instance polls every peer). That every change, a peer's too,
//! moves `max(seq)` is how the instances of a site see each other's changes. A number that texted a start word keeps its row,
//! `opted_out` false, so that the change reaches the peers too; between two changes of
//! one number, the later one stands.

use std::collections::HashSet;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, now_ms, read_only, transact};
use crate::e164::E164;

/// One number's place on the list, and where the change came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOut {
    /// The number.
    pub number: E164,
    /// True: no SMS to it; false: it opted in again.
    pub opted_out: bool,
    /// When it changed (unix milliseconds, the changing instance's clock).
    pub changed: i64,
    /// What changed it, in words ("STOP texted to modem sim0", "smsgw optout add").
    pub source: String,
    /// The peer it was learnt from; `None`: this instance (or its site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The order of the changes, for the peers' feed (which gives only `origin` None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// The numbers opted out, in memory: RCPT asks it for each recipient without a query.
/// The store reloads it after each change it makes, and whenever the latest `seq` moves
/// (looked at every second: the CLI's changes, another instance's of the site).
#[derive(Debug, Default)]
pub struct OptOutList {
    numbers: RwLock<HashSet<String>>,
    /// The latest `seq` when the numbers were read: a change made elsewhere (the CLI,
    /// another instance of the site) shows as a new one.
    seq: std::sync::atomic::AtomicI64,
}

impl OptOutList {
    /// Whether `number` opted out.
    pub fn contains(&self, number: &E164) -> bool {
        self.numbers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(number.as_str())
    }

    pub(in crate::store) fn replace(&self, numbers: HashSet<String>) {
        *self.numbers.write().unwrap_or_else(std::sync::PoisonError::into_inner) = numbers;
    }
}

/// Why mail to `number` is refused at RCPT, and why a request waiting for it failed.
pub fn opted_out_reason(number: &str) -> String {
    format!("{number}: the recipient has opted out of SMS from this gateway")
}

/// Changes the feed hands a peer at once.
pub const FEED_BATCH: usize = 1000;

impl Store {
    /// The list RCPT checks, kept current by the store.
    pub fn optout_list(&self) -> std::sync::Arc<OptOutList> {
        self.optouts.clone()
    }

    /// Reads the numbers opted out into [`Store::optout_list`] again.
    pub async fn reload_optouts(&self) -> Result<(), StoreError> {
        let (numbers, seq) = read_only!(self, optout::opted_out())?;
        self.optouts.replace(numbers.into_iter().collect());
        self.optouts.seq.store(seq, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Keeps [`Store::optout_list`] current until `shutdown`: every second it reads the
    /// latest change's `seq` (one index lookup), and the list again when it moved: so a
    /// change made by `smsgw optout` or by another instance of the site holds here
    /// within a second. Changes this instance makes reload it at once.
    pub async fn keep_optouts_current(self, shutdown: tokio_util::sync::CancellationToken) {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(error) = self.reload_optouts_if_changed().await {
                tracing::warn!(%error, "cannot read the opt-out list");
            }
        }
    }

    /// Reads the list again if its latest `seq` moved since it was last read (one index
    /// lookup when it did not).
    pub(in crate::store) async fn reload_optouts_if_changed(&self) -> Result<(), StoreError> {
        let latest = read_only!(self, optout::latest_seq())?;
        if latest != self.optouts.seq.load(std::sync::atomic::Ordering::Relaxed) {
            self.reload_optouts().await?;
        }
        Ok(())
    }

    /// Every number on the list (opted in again ones too, with `all`), by number.
    pub async fn optouts(&self, all: bool) -> Result<Vec<OptOut>, StoreError> {
        read_only!(self, optout::list(all))
    }

    /// Opts `number` out (`opted_out`) or in again, as this instance's change; false if
    /// it already was. Opting out fails the requests waiting for it, with their DSNs.
    pub async fn set_optout(&self, number: E164, opted_out: bool, source: String) -> Result<bool, StoreError> {
        let change = OptOut {
            number,
            opted_out,
            changed: now_ms(),
            source,
            origin: None,
            seq: None,
        };
        let changed = transact!(self, optout::apply(&change, now_ms()))?;
        if changed {
            self.wake.outbound.notify_one();
            self.reload_optouts().await?;
        }
        Ok(changed)
    }

    /// This instance's own changes after `after` (a `seq`), in order, at most
    /// [`FEED_BATCH`]: what its peers poll.
    pub async fn optout_feed(&self, after: i64) -> Result<Vec<OptOut>, StoreError> {
        read_only!(self, optout::feed(after, FEED_BATCH))
    }

    /// Applies changes polled from `peer`'s feed (each only if later than what the list
    /// has for its number, a time ahead of this instance's clock counting as now);
    /// returns how many changed the list.
    pub async fn apply_peer_optouts(&self, peer: &str, changes: Vec<OptOut>) -> Result<usize, StoreError> {
        // A peer's words are shown by `smsgw optout list`: no control characters, and
        // a length a person reads; a time from its future is taken as now, so that no
        // peer (or clock) can pin a number's place for good.
        let now = now_ms();
        let changes: Vec<OptOut> = changes
            .into_iter()
            .map(|change| OptOut {
                origin: Some(peer.to_string()),
                seq: None,
                source: change.source.chars().filter(|c| !c.is_control()).take(200).collect(),
                changed: change.changed.min(now),
                ..change
            })
            .collect();
        let changed = transact!(self, optout::apply_all(&changes, now_ms()))?;
        if changed > 0 {
            self.wake.outbound.notify_one();
            self.reload_optouts().await?;
        }
        Ok(changed)
    }
}
