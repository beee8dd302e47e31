//! Requests waiting for a route or a modem whose number this instance's tariffs do not
//! cover: after a restart with narrower tariffs, routing fails those no peer can send.

use rusqlite::{Connection, params};

use super::{State, Store, StoreError};
use crate::e164::E164;

impl Store {
    /// Requests `received` or `queued` whose number starts with none of `prefixes`,
    /// oldest first.
    pub async fn waiting_outside(&self, prefixes: Vec<String>) -> Result<Vec<(i64, E164)>, StoreError> {
        self.writer.write(move |conn| waiting_outside(conn, &prefixes)).await
    }
}

/// See [`Store::waiting_outside`].
pub(super) fn waiting_outside(conn: &Connection, prefixes: &[String]) -> Result<Vec<(i64, E164)>, StoreError> {
    let prefixes = serde_json::Value::from(prefixes.to_vec()).to_string();
    let mut statement = conn.prepare_cached(
        "SELECT id, number FROM requests
         WHERE state IN (?2, ?3)
           AND NOT EXISTS (SELECT 1 FROM json_each(?1) WHERE substr(requests.number, 1, length(value)) = value)
         ORDER BY id",
    )?;
    let rows = statement.query_map(params![prefixes, State::Received, State::Queued], |row| {
        Ok((row.get(0)?, row.get(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {

    use super::waiting_outside;
    use crate::store::fixtures::{database, mail};
    use crate::store::intake::receive;
    use crate::store::routing::queue_received;

    #[test]
    fn only_waiting_requests_no_prefix_covers_are_listed() {
        let conn = database();
        // 1 and 2 queued, then 3 and 4 received.
        receive(&conn, &mail(&["+33477858589", "+447911123456"], 1), 0).unwrap();
        queue_received(&conn, 0).unwrap();
        receive(&conn, &mail(&["+33612345678", "+4915112345678"], 1), 0).unwrap();
        let listed = |prefixes: &[&str]| -> Vec<(i64, String)> {
            let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
            waiting_outside(&conn, &prefixes)
                .unwrap()
                .into_iter()
                .map(|(id, number)| (id, number.to_string()))
                .collect()
        };
        assert_eq!(
            listed(&["+44"]),
            [
                (1, "+33477858589".to_string()),
                (3, "+33612345678".into()),
                (4, "+4915112345678".into())
            ]
        );
        assert_eq!(listed(&["+44", "+33"]), [(4, "+4915112345678".to_string())]);
        assert_eq!(listed(&["+3361", "+4"]), [(1, "+33477858589".to_string())]);
        assert_eq!(listed(&[]).len(), 4);
        // A request sent, failed or forwarded is not waiting.
        conn.execute("UPDATE requests SET state = 'failed' WHERE id = 4", [])
            .unwrap();
        assert_eq!(listed(&["+3"]), [(2, "+447911123456".to_string())]);
    }
}
