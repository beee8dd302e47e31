//! SMS received by the modems.

use super::Tx;
use crate::store::StoreError;

/// One `inbox` row.
pub(in crate::store) async fn store_incoming_sms(
    tx: &Tx,
    modem: &str,
    originator: &str,
    text: &str,
    now: i64,
) -> Result<i64, StoreError> {
    Ok(tx
        .query_one(
            "INSERT INTO inbox (received, modem, originator, text) VALUES ($1, $2, $3, $4) RETURNING id",
            &[&now, &modem, &originator, &text],
        )
        .await?
        .try_get(0)?)
}
