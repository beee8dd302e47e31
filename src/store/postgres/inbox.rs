//! SMS received by the modems, their parts, and the mail each becomes, on PostgreSQL
//! (as SQLite's `inbox`).

use super::Tx;
use super::optout;
use super::site::{DEAD_AFTER_MS, SERVER_NOW};
use crate::store::inbox::{
    Candidate, SMS_COLUMN_COUNT, SMS_COLUMNS, decide, join_parts, missing_list, number_of, texted,
};
use crate::store::{
    InboundRules, InboxEntry, InboxKind, InboxState, OptOut, PartOutcome, PartStatus, PendingInbound, ReceivedPart,
    ReceivedSms, StoreError,
};

/// See [`Store::receive_part`](crate::store::Store::receive_part).
pub(in crate::store) async fn receive_part(
    tx: &Tx,
    part: &ReceivedPart,
    rules: &InboundRules,
    now: i64,
) -> Result<PartOutcome, StoreError> {
    let (reference, parts, number) = part.position();
    let group = Group {
        modem: part.modem.clone(),
        originator: part.originator.clone(),
        reference,
        parts,
    };
    // As on SQLite: a part number already there from another SMS that reused the
    // reference closes that one, as what arrived of it.
    let taken: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM inbox_parts
             WHERE modem = $1 AND originator = $2 AND reference IS NOT DISTINCT FROM $3 AND parts = $4
               AND part = $5 AND inbox_id IS NULL AND copy_key <> $6)",
            &[
                &group.modem,
                &group.originator,
                &reference,
                &parts,
                &number,
                &part.copy_key(),
            ],
        )
        .await?
        .try_get(0)?;
    if taken && reference.is_some() {
        let arrived = group.arrived(tx).await?;
        group.store_whole(tx, arrived, rules, now).await?;
    }
    let stored = tx
        .execute(
            "INSERT INTO inbox_parts (modem, originator, copy_key, reference, parts, part, text, sent, received)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            &[
                &part.modem,
                &part.originator,
                &part.copy_key(),
                &reference,
                &parts,
                &number,
                &part.text,
                &part.sent,
                &now,
            ],
        )
        .await?;
    if stored == 0 {
        return Ok(PartOutcome::Duplicate);
    }
    let arrived = group.arrived(tx).await?;
    if (arrived.len() as i64) < parts {
        return Ok(PartOutcome::Waiting);
    }
    Ok(PartOutcome::Complete(group.store_whole(tx, arrived, rules, now).await?))
}

/// The advisory lock of the sweep that stores overdue SMS: one instance at a time.
const OVERDUE_LOCK: i64 = 0x736d_7367_775f_696e;

/// See [`Store::complete_overdue`](crate::store::Store::complete_overdue).
pub(in crate::store) async fn complete_overdue(tx: &Tx, rules: &InboundRules, now: i64) -> Result<usize, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&OVERDUE_LOCK]).await?;
    let cutoff = now - rules.reassembly_timeout_ms;
    let overdue: Vec<Group> = tx
        .query(
            "SELECT modem, originator, reference, parts FROM inbox_parts
             WHERE inbox_id IS NULL AND received <= $1
             GROUP BY modem, originator, reference, parts",
            &[&cutoff],
        )
        .await?
        .iter()
        .map(|row| {
            Ok(Group {
                modem: row.try_get(0)?,
                originator: row.try_get(1)?,
                reference: row.try_get(2)?,
                parts: row.try_get(3)?,
            })
        })
        .collect::<Result<_, StoreError>>()?;
    for group in &overdue {
        let arrived = group.arrived(tx).await?;
        if !arrived.is_empty() {
            group.store_whole(tx, arrived, rules, now).await?;
        }
    }
    // As on SQLite: kept for copies (`InboundRules::copies_kept_ms`).
    tx.execute(
        "DELETE FROM inbox_parts WHERE inbox_id IS NOT NULL AND received <= $1",
        &[&(now - rules.copies_kept_ms())],
    )
    .await?;
    Ok(overdue.len())
}

/// The parts of one SMS: same modem, originator, reference and count, not stored whole.
struct Group {
    modem: String,
    originator: String,
    reference: Option<i64>,
    parts: i64,
}

/// One part as stored: its number, text, TP-SCTS.
type Arrived = (i64, String, String);

impl Group {
    /// Its parts so far, in part order, locked: the sweep and a late part do not both
    /// store them whole.
    async fn arrived(&self, tx: &Tx) -> Result<Vec<Arrived>, StoreError> {
        tx.query(
            "SELECT part, text, sent FROM inbox_parts
             WHERE modem = $1 AND originator = $2 AND reference IS NOT DISTINCT FROM $3 AND parts = $4
               AND inbox_id IS NULL
             ORDER BY part, id FOR UPDATE",
            &[&self.modem, &self.originator, &self.reference, &self.parts],
        )
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
    }

    /// As SQLite's `Group::store_whole`.
    async fn store_whole(
        &self,
        tx: &Tx,
        arrived: Vec<Arrived>,
        rules: &InboundRules,
        now: i64,
    ) -> Result<i64, StoreError> {
        let sent = arrived.first().map(|(_, _, sent)| sent.clone());
        let texts: Vec<(i64, String)> = arrived.into_iter().map(|(part, text, _)| (part, text)).collect();
        let (text, missing) = join_parts(&texts, self.parts);
        let kind = if missing.is_empty() {
            rules.kind(&text)
        } else {
            InboxKind::Text
        };
        let candidates = candidates(tx, &self.originator, now - rules.reply_window_ms).await?;
        let decision = decide(&candidates, &self.modem, &self.originator, rules);
        let state = if decision.recipient.is_some() {
            InboxState::Pending
        } else {
            InboxState::Kept
        };
        let id: i64 = tx
            .query_one(
                "INSERT INTO inbox (received, modem, originator, text, sent, parts, missing, kind, reply_to,
                                    recipient, others, state, outcome, next_attempt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $1) RETURNING id",
                &[
                    &now,
                    &self.modem,
                    &self.originator,
                    &text,
                    &sent,
                    &self.parts,
                    &missing_list(&missing),
                    &kind,
                    &decision.reply_to,
                    &decision.recipient,
                    &decision.others,
                    &state,
                    &decision.kept,
                ],
            )
            .await?
            .try_get(0)?;
        tx.execute(
            "UPDATE inbox_parts SET inbox_id = $1
             WHERE modem = $2 AND originator = $3 AND reference IS NOT DISTINCT FROM $4 AND parts = $5
               AND inbox_id IS NULL",
            &[&id, &self.modem, &self.originator, &self.reference, &self.parts],
        )
        .await?;
        if kind != InboxKind::Text
            && let Some(number) = number_of(&self.originator)
        {
            let change = OptOut {
                number,
                opted_out: kind == InboxKind::Stop,
                changed: now,
                source: texted(kind, &self.modem),
                origin: None,
                seq: None,
            };
            let confirm = rules.stop_reply_mail(&change.number).filter(|_| change.opted_out);
            if optout::apply(tx, &change, now).await?
                && let Some(mail) = confirm
            {
                super::intake::receive(tx, &mail, now).await?;
            }
        }
        Ok(id)
    }
}

/// As SQLite's `candidates`: the requests of the site sent to `originator` lately.
async fn candidates(tx: &Tx, originator: &str, since: i64) -> Result<Vec<Candidate>, StoreError> {
    tx.query(
        "SELECT r.id, m.sender, p.modem, max(p.submitted) AS at
         FROM requests r JOIN messages m ON m.id = r.message_id JOIN parts p ON p.request_id = r.id
         WHERE r.number = $1 AND m.sender != '' AND p.status IN ($2, $3) AND p.submitted >= $4
         GROUP BY r.id, m.sender, p.modem ORDER BY at DESC, r.id DESC LIMIT 100",
        &[&originator, &PartStatus::Sent, &PartStatus::Delivered, &since],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(Candidate {
            request: row.try_get(0)?,
            sender: row.try_get(1)?,
            modem: row.try_get(2)?,
        })
    })
    .collect()
}

/// The mails an instance delivers: those of SMS its modems received, and those of an
/// instance not alive (as DSNs).
fn mine() -> String {
    format!(
        "(i.instance IS NULL OR i.instance = current_setting('smsgw.instance', true)
          OR i.instance NOT IN (SELECT name FROM instances WHERE seen >= {SERVER_NOW} - {DEAD_AFTER_MS}))"
    )
}

/// Mails of incoming SMS due at `now`, oldest first, each made this instance's.
pub(in crate::store) async fn inbound_due(tx: &Tx, now: i64, limit: usize) -> Result<Vec<PendingInbound>, StoreError> {
    let taken: Vec<i64> = tx
        .query(
            &format!(
                "UPDATE inbox SET instance = current_setting('smsgw.instance', true) WHERE id IN (
                     SELECT i.id FROM inbox i WHERE i.state = $3 AND i.next_attempt <= $1 AND {mine}
                     ORDER BY i.next_attempt, i.id LIMIT $2 FOR UPDATE SKIP LOCKED)
                 RETURNING id",
                mine = mine()
            ),
            &[&now, &(limit as i64), &InboxState::Pending],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let after = SMS_COLUMN_COUNT;
    tx.query(
        &format!(
            "SELECT {SMS_COLUMNS}, i.recipient, i.attempts, m.raw
             FROM inbox i LEFT JOIN requests r ON r.id = i.reply_to LEFT JOIN messages m ON m.id = r.message_id
             WHERE i.id = ANY($1) ORDER BY i.next_attempt, i.id"
        ),
        &[&taken],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(PendingInbound {
            sms: sms_of(row)?,
            recipient: row.try_get(after)?,
            attempts: row.try_get(after + 1)?,
            original: row.try_get(after + 2)?,
        })
    })
    .collect()
}

/// When the next mail of an incoming SMS falls due, if one waits.
pub(in crate::store) async fn next_due(tx: &Tx) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .query_one(
            &format!("SELECT min(next_attempt) FROM inbox i WHERE state = $1 AND {}", mine()),
            &[&InboxState::Pending],
        )
        .await?
        .try_get(0)?)
}

/// Records one delivery attempt, while the mail is still this instance's.
pub(in crate::store) async fn record_attempt(
    tx: &Tx,
    id: i64,
    state: InboxState,
    next: i64,
    outcome: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE inbox SET state = $1, next_attempt = $2, outcome = $3, attempts = attempts + 1
         WHERE id = $4 AND state = $5 AND instance IS NOT DISTINCT FROM current_setting('smsgw.instance', true)",
        &[&state, &next, &outcome, &id, &InboxState::Pending],
    )
    .await?;
    Ok(())
}

/// Inbox rows, newest first: row `id` only, or the latest `limit`.
pub(in crate::store) async fn entries(tx: &Tx, id: Option<i64>, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
    let after = SMS_COLUMN_COUNT;
    tx.query(
        &format!(
            "SELECT {SMS_COLUMNS}, i.reply_to, i.recipient, i.state, i.outcome, i.attempts
             FROM inbox i WHERE $1::bigint IS NULL OR i.id = $1 ORDER BY i.id DESC LIMIT $2"
        ),
        &[&id, &(limit as i64)],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(InboxEntry {
            sms: sms_of(row)?,
            reply_to: row.try_get(after)?,
            recipient: row.try_get(after + 1)?,
            state: row.try_get(after + 2)?,
            outcome: row.try_get(after + 3)?,
            attempts: row.try_get(after + 4)?,
        })
    })
    .collect()
}

/// The [`ReceivedSms`] of a row that begins with [`SMS_COLUMNS`].
fn sms_of(row: &tokio_postgres::Row) -> Result<ReceivedSms, StoreError> {
    Ok(ReceivedSms {
        id: row.try_get(0)?,
        received: row.try_get(1)?,
        sent: row.try_get(2)?,
        modem: row.try_get(3)?,
        originator: row.try_get(4)?,
        text: row.try_get(5)?,
        parts: row.try_get(6)?,
        missing: row.try_get(7)?,
        kind: row.try_get(8)?,
        others: row.try_get(9)?,
    })
}
