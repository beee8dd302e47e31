//! Requests waiting for a route or a modem whose number this instance's tariffs do not
//! cover: after a restart with narrower tariffs, routing fails those no peer can send,
//! and gives those a peer can send back to routing.

use super::{State, Store, StoreError, now_ms, transact};
use crate::e164::E164;

impl Store {
    /// Requests `received` or `queued` whose number starts with none of `prefixes`,
    /// oldest first.
    pub async fn waiting_outside(&self, prefixes: Vec<String>) -> Result<Vec<(i64, E164)>, StoreError> {
        transact!(self, reach::waiting_outside(&prefixes))
    }

    /// Fails a request that no instance can send (`5.4.4`, with its DSN), if it still
    /// waits (`received` or `queued`) as it did when it was listed.
    pub async fn fail_unroutable(&self, id: i64, reason: String) -> Result<(), StoreError> {
        let waiting = [State::Received, State::Queued];
        transact!(
            self,
            lifecycle::fail_from(id, &waiting, State::Failed, "5.4.4", &reason, now_ms())
        )?;
        self.wake.outbound.notify_one();
        Ok(())
    }

    /// `queued → received` for a request that only a peer can send now, so that routing
    /// plans it afresh; false if it moved on, or a part of it already reached a modem
    /// (its parts must leave from one SIM: it stays, and expires if it must).
    pub async fn reroute_queued(&self, id: i64) -> Result<bool, StoreError> {
        let moved = transact!(self, reach::reroute_queued(id, now_ms()))?;
        if moved {
            self.wake.received.notify_one();
        }
        Ok(moved)
    }
}
