//! The modem stage's side of the queue once a request is chosen (`dispatch` chooses):
//! the lease a modem holds while it sends, each part's fate, status reports, and
//! recovery after a crash.
//!
//! A part is `submitting` from just before `AT+CMGS` until `+CMGS` answers; a request
//! holding such a part when its modem dies may have been sent, so it becomes
//! `uncertain` and is never sent again automatically.

use super::{Store, StoreError, now_ms, transact, until};
use std::time::Duration;

impl Store {
    /// Milliseconds until the next queued request waiting for its retry time falls due,
    /// if one does (those due already are not counted: they wait for a modem).
    pub async fn next_due_in(&self) -> Result<Option<u64>, StoreError> {
        Ok(until(transact!(self, sending::next_due(now_ms()))?))
    }

    /// `queued → sending` on `modem`, leased for `lease_ms`; false if another modem
    /// claimed it first.
    pub async fn claim(&self, id: i64, modem: &str, lease_ms: i64) -> Result<bool, StoreError> {
        let modem = modem.to_string();
        {
            let now = now_ms();
            transact!(self, sending::claim(id, &modem, now + lease_ms, now))
        }
    }

    /// Just before `AT+CMGS`: false if this modem no longer holds the request (do not
    /// send); else the lease is renewed for `lease_ms`.
    pub async fn mark_part_submitting(
        &self,
        id: i64,
        part: usize,
        modem: &str,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let modem = modem.to_string();
        {
            let now = now_ms();
            transact!(
                self,
                sending::mark_part_submitting(id, part, &modem, now + lease_ms, now)
            )
        }
    }

    /// `+CMGS` answered for one part; `unreported`: the modem gets no status reports, so
    /// the last part makes a `relayed` DSN due at once. When this part completed the
    /// request, returns how long after its acceptance it went out.
    pub async fn mark_part_sent(
        &self,
        id: i64,
        part: usize,
        parts: usize,
        mr: u8,
        unreported: bool,
    ) -> Result<Option<Duration>, StoreError> {
        let sent_after = transact!(self, sending::mark_part_sent(id, part, parts, mr, unreported, now_ms()))?;
        if unreported {
            self.wake.outbound.notify_one();
        }
        Ok(sent_after)
    }

    /// A claimed request with no part left to send (all went out before): `sent`;
    /// `unreported`, as for [`Store::mark_part_sent`], makes a `relayed` DSN due now.
    /// Returns, as that does, how long after its acceptance the request went out.
    pub async fn mark_sent_if_complete(
        &self,
        id: i64,
        parts: usize,
        unreported: bool,
    ) -> Result<Option<Duration>, StoreError> {
        let sent_after = transact!(self, sending::mark_sent_if_complete(id, parts, unreported, now_ms()))?;
        if unreported {
            self.wake.outbound.notify_one();
        }
        Ok(sent_after)
    }

    /// A temporary failure: `sending → queued`, due again in `delay_ms`.
    pub async fn requeue(&self, id: i64, delay_ms: i64, reason: String) -> Result<(), StoreError> {
        {
            let now = now_ms();
            transact!(self, sending::requeue(id, now + delay_ms, &reason, now))
        }?;
        self.wake.queued.notify_one();
        Ok(())
    }

    /// `AT+CMGS` went out and no answer came: `sending → uncertain`.
    pub async fn mark_uncertain(&self, id: i64, reason: String) -> Result<(), StoreError> {
        transact!(self, sending::mark_uncertain(id, &reason, now_ms()))
    }

    /// A status report from `modem` for message reference `mr` to `number`: marks its
    /// part, and the request once every part is delivered or one failed. Returns the
    /// part it matched, if any.
    pub async fn record_status_report(
        &self,
        modem: &str,
        mr: u8,
        number: String,
        delivered: bool,
        detail: String,
    ) -> Result<Option<ReportedPart>, StoreError> {
        let modem = modem.to_string();
        let matched = transact!(
            self,
            sending::record_status_report(&modem, mr, &number, delivered, &detail, now_ms())
        )?;
        self.wake.outbound.notify_one();
        Ok(matched)
    }

    /// Requests whose lease ended before `lease_before_ms` (all, at start: `i64::MAX`):
    /// back to the queue if no part reached a modem, else `uncertain`. Returns how many.
    pub async fn recover_leases(&self, lease_before_ms: i64) -> Result<usize, StoreError> {
        let count = transact!(self, sending::recover_leases(lease_before_ms, now_ms()))?;
        if count > 0 {
            self.wake.queued.notify_one();
        }
        Ok(count)
    }
}

/// A part that a status report matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedPart {
    /// Its request.
    pub request: i64,
    /// From the part's hand-over to the modem (`submitting`, just before `AT+CMGS`) to
    /// this report.
    pub after: Duration,
}

/// The history line of `sending → sent` for a request of `parts` parts.
pub(in crate::store) fn sent_detail(parts: usize) -> String {
    if parts == 1 {
        "sent".to_string()
    } else {
        format!("all {parts} parts sent")
    }
}

/// Why lease recovery made a request `uncertain`: a part was between `AT+CMGS` and its
/// answer.
pub(in crate::store) const INTERRUPTED_AFTER_CMGS: &str =
    "interrupted after AT+CMGS without an answer: may have been sent";

/// Why lease recovery put a request back in the queue: no part had reached the modem.
pub(in crate::store) const INTERRUPTED_BEFORE_CMGS: &str = "interrupted before any part reached the modem";

/// From `from` to `to`, unix milliseconds; nothing if the clock went back.
pub(in crate::store) fn elapsed(from: i64, to: i64) -> Duration {
    Duration::from_millis(u64::try_from(to - from).unwrap_or(0))
}
