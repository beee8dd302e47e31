//! The moves every stage shares: a state change with its event, a failure with its DSN,
//! expiry of what waited too long, and the operator's retry.

use super::{State, Store, StoreError, now_ms, transact};

/// The states a request fails or expires from: any not final, and `sent` (a status
/// report said the network could not deliver it).
pub(in crate::store) const FAILABLE: [State; 5] = [
    State::Received,
    State::Forwarding,
    State::Queued,
    State::Sending,
    State::Sent,
];

impl Store {
    /// A permanent failure (`to` = `Failed`), or validity run out (`to` = `Expired`),
    /// with its enhanced status code and reason; queues the sender's DSN.
    pub async fn fail(&self, id: i64, to: State, status: &'static str, reason: String) -> Result<(), StoreError> {
        transact!(self, lifecycle::fail(id, to, status, &reason, now_ms()))?;
        self.wake.outbound.notify_one();
        Ok(())
    }

    /// Expires every request that waited (for a route or a modem) longer than
    /// `validity_ms` since its validity began; returns how many.
    pub async fn expire_overdue(&self, validity_ms: i64) -> Result<usize, StoreError> {
        let expired = transact!(self, lifecycle::expire_overdue(validity_ms, now_ms()))?;
        if expired > 0 {
            self.wake.outbound.notify_one();
        }
        Ok(expired)
    }

    /// `smsgw queue retry`: queues an uncertain, failed or expired request again (or
    /// releases a forward its peer may hold); false if it is none of those. A running
    /// gateway picks it up at its next sweep.
    pub async fn retry(&self, id: i64) -> Result<bool, StoreError> {
        let retried = transact!(self, lifecycle::retry(id, now_ms()))?;
        if retried {
            self.wake.received.notify_one();
            self.wake.queued.notify_one();
        }
        Ok(retried)
    }
}
