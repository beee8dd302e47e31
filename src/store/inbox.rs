//! SMS received by the modems, kept for delivery as mail (two-way, still to come).

use super::{Store, StoreError, now_ms, transact};

impl Store {
    /// Stores an SMS received by `modem` from `originator`; returns its inbox id once
    /// committed, after which the modem may delete it from the SIM.
    pub async fn store_incoming_sms(&self, modem: &str, originator: String, text: String) -> Result<i64, StoreError> {
        let modem = modem.to_string();
        transact!(self, inbox::store_incoming_sms(&modem, &originator, &text, now_ms()))
    }
}
