//! The JSON documents of `/status` and `/route`.

use crate::routing::plan::Plan;
use crate::routing::view::Status;

/// `/status`: this instance's status, as peers read it.
pub(super) fn status(status: &Status) -> Vec<u8> {
    serde_json::to_vec_pretty(status).unwrap_or_default()
}

/// `/route`: the number, the instances that could send it best first, and those left
/// out with why.
pub(super) fn route(number: &str, plan: &Plan) -> Vec<u8> {
    let skipped: Vec<_> = plan
        .skipped
        .iter()
        .map(|s| serde_json::json!({ "name": s.name, "why": s.why.to_string() }))
        .collect();
    let body = serde_json::json!({ "number": number, "ranked": plan.ranked, "skipped": skipped });
    serde_json::to_vec_pretty(&body).unwrap_or_default()
}
