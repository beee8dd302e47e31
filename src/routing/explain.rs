//! The answer of `GET /route`: a plan in words, written by the gateway and read back by
//! `smsgw route explain`, one type on both sides of the wire.

use serde::{Deserialize, Serialize};

use super::plan::{Candidate, Plan};
use crate::e164::E164;

/// The plan for one number: the instances that could send it, best first, and those
/// left out with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The number planned for.
    pub number: E164,
    /// Instances that may send it, cheapest first: the first is chosen.
    pub ranked: Vec<Candidate>,
    /// Instances that may not, each with its reason.
    pub skipped: Vec<LeftOut>,
}

/// An instance the plan left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeftOut {
    /// The instance's name.
    pub name: String,
    /// Why, in words (the plan's `Skip`, as an operator reads it).
    pub why: String,
}

impl Explanation {
    /// The plan for `number`, in words.
    pub fn new(number: E164, plan: &Plan) -> Explanation {
        Explanation {
            number,
            ranked: plan.ranked.clone(),
            skipped: plan
                .skipped
                .iter()
                .map(|s| LeftOut {
                    name: s.name.clone(),
                    why: s.why.to_string(),
                })
                .collect(),
        }
    }
}
