//! The JSON documents of `/status` and `/route`.

use crate::routing::explain::Explanation;
use crate::routing::view::Status;

/// `/status`: this instance's status, as peers read it.
pub(super) fn status(status: &Status) -> Vec<u8> {
    serde_json::to_vec_pretty(status).unwrap_or_default()
}

/// `/route`: the number, the instances that could send it best first, and those left
/// out with why.
pub(super) fn route(explanation: &Explanation) -> Vec<u8> {
    serde_json::to_vec_pretty(explanation).unwrap_or_default()
}
