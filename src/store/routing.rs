//! Routing's side of the queue: a received request is routed to this instance's
//! modems, to a peer (then [`forwarding`](super::forwarding) takes it), or nowhere.

use super::{State, Store, StoreError, now_ms, transact};
use crate::e164::E164;

/// A received request waiting for a route.
#[derive(Debug, Clone)]
pub struct UnroutedRequest {
    /// The request id.
    pub id: i64,
    /// The number to route.
    pub number: E164,
    /// Instances it passed through before this one.
    pub trace: Vec<String>,
    /// Peers that refused it for good.
    pub refused: Vec<String>,
    /// Peers that failed it since it last waited for a route.
    pub tried: Vec<String>,
}

/// The names of a comma-separated list column.
pub(super) fn names(list: &str) -> Vec<String> {
    list.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect()
}

/// The `tried` column: peers that failed the request, comma-separated, those that
/// refused it for good marked `!`.
pub(in crate::store) fn refused_and_tried(list: &str) -> (Vec<String>, Vec<String>) {
    let (refused, tried): (Vec<String>, Vec<String>) = names(list).into_iter().partition(|n| n.starts_with('!'));
    (refused.into_iter().map(|n| n[1..].to_string()).collect(), tried)
}

impl Store {
    /// `received → queued` for all received requests (an instance without peers: its
    /// modems are the only route); wakes the modems.
    pub async fn queue_received(&self) -> Result<usize, StoreError> {
        let count = transact!(self, routing::queue_received(now_ms()))?;
        if count > 0 {
            self.wake.queued.notify_one();
        }
        Ok(count)
    }

    /// Received requests due for routing, oldest first.
    pub async fn due_for_routing(&self, limit: usize) -> Result<Vec<UnroutedRequest>, StoreError> {
        transact!(self, routing::due_for_routing(now_ms(), limit))
    }

    /// Applies routing decisions; wakes the stage each request goes to.
    pub async fn route(&self, routes: Vec<(i64, Route)>) -> Result<(), StoreError> {
        let wakes = (
            routes.iter().any(|(_, r)| matches!(r, Route::Local { .. })),
            routes.iter().any(|(_, r)| matches!(r, Route::Peer { .. })),
            routes.iter().any(|(_, r)| matches!(r, Route::Nowhere { .. })),
        );
        transact!(self, routing::route_all(&routes, now_ms()))?;
        let (local, peer, failed) = wakes;
        if local {
            self.wake.queued.notify_one();
        }
        if peer {
            self.wake.forwarding.notify_one();
        }
        if failed {
            self.wake.outbound.notify_one();
        }
        Ok(())
    }

    /// How many requests are in each of `states` (for `/status`).
    pub async fn count_in_states(&self, states: &'static [State]) -> Result<Vec<(String, i64)>, StoreError> {
        transact!(self, routing::count_in_states(states))
    }
}

/// Where the routing stage sends a received request.
#[derive(Debug, Clone)]
pub enum Route {
    /// This instance's modems.
    Local {
        /// Why, for the request's history.
        detail: String,
    },
    /// A peer, by name.
    Peer {
        /// The peer's `[[peer]]` name.
        name: String,
        /// Why, for the request's history.
        detail: String,
    },
    /// Nowhere for now (every candidate down): look again at `at`.
    Wait {
        /// When to look again, unix milliseconds.
        at: i64,
        /// Why it waits, shown by `queue show` and in a `delayed` DSN.
        detail: String,
    },
    /// Nowhere ever: fail with this reason.
    Nowhere {
        /// Why no instance can send it (the DSN's diagnostic).
        reason: String,
    },
}
