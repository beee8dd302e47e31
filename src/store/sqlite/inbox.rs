//! SQLite: inbox (incoming SMS, their parts, and the mail each becomes).

use super::optout;
use crate::store::inbox::{
    Candidate, SMS_COLUMN_COUNT, SMS_COLUMNS, decide, join_parts, missing_list, number_of, texted,
};
use crate::store::{
    InboundRules, InboxEntry, InboxKind, InboxState, OptOut, PartOutcome, PartStatus, PendingInbound, ReceivedPart,
    ReceivedSms, StoreError,
};
use rusqlite::{Connection, Row, params};

/// See [`Store::receive_part`](crate::store::Store::receive_part).
pub(in crate::store) fn receive_part(
    conn: &Connection,
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
    // This part number is there already, from another SMS that reused the reference
    // (not a copy: its key differs): that one is stored as what arrived of it, and
    // this part starts a new one.
    let taken: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM inbox_parts
             WHERE modem = ?1 AND originator = ?2 AND reference IS ?3 AND parts = ?4 AND part = ?5
               AND inbox_id IS NULL AND copy_key != ?6)",
        )?
        .query_row(
            params![group.modem, group.originator, reference, parts, number, part.copy_key()],
            |row| row.get(0),
        )?;
    if taken && reference.is_some() {
        let arrived = group.arrived(conn)?;
        group.store_whole(conn, arrived, rules, now)?;
    }
    let stored = conn
        .prepare_cached(
            "INSERT INTO inbox_parts (modem, originator, copy_key, reference, parts, part, text, sent, received)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            part.modem,
            part.originator,
            part.copy_key(),
            reference,
            parts,
            number,
            part.text,
            part.sent,
            now
        ])?;
    if stored == 0 {
        return Ok(PartOutcome::Duplicate);
    }
    let arrived = group.arrived(conn)?;
    if (arrived.len() as i64) < parts {
        return Ok(PartOutcome::Waiting);
    }
    Ok(PartOutcome::Complete(group.store_whole(conn, arrived, rules, now)?))
}

/// See [`Store::complete_overdue`](crate::store::Store::complete_overdue).
pub(in crate::store) fn complete_overdue(
    conn: &Connection,
    rules: &InboundRules,
    now: i64,
) -> Result<usize, StoreError> {
    let cutoff = now - rules.reassembly_timeout_ms;
    let overdue: Vec<Group> = conn
        .prepare_cached(
            "SELECT modem, originator, reference, parts FROM inbox_parts INDEXED BY inbox_parts_waiting
             WHERE inbox_id IS NULL AND received <= ?1
             GROUP BY modem, originator, reference, parts",
        )?
        .query_map(params![cutoff], |row| {
            Ok(Group {
                modem: row.get(0)?,
                originator: row.get(1)?,
                reference: row.get(2)?,
                parts: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    for group in &overdue {
        let arrived = group.arrived(conn)?;
        group.store_whole(conn, arrived, rules, now)?;
    }
    // A whole SMS's parts are kept for the copies that may come again (see
    // `InboundRules::copies_kept_ms`).
    conn.prepare_cached("DELETE FROM inbox_parts WHERE inbox_id IS NOT NULL AND received <= ?1")?
        .execute(params![now - rules.copies_kept_ms()])?;
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
    /// Its parts so far, in part order.
    fn arrived(&self, conn: &Connection) -> Result<Vec<Arrived>, StoreError> {
        Ok(conn
            .prepare_cached(
                "SELECT part, text, sent FROM inbox_parts
                 WHERE modem = ?1 AND originator = ?2 AND reference IS ?3 AND parts = ?4 AND inbox_id IS NULL
                 ORDER BY part, id",
            )?
            .query_map(
                params![self.modem, self.originator, self.reference, self.parts],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )?
            .collect::<Result<_, _>>()?)
    }

    /// The inbox row of these parts, its mail decided and any stop or start word
    /// applied; the parts then name it.
    fn store_whole(
        &self,
        conn: &Connection,
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
        let candidates = candidates(conn, &self.originator, now - rules.reply_window_ms)?;
        let decision = decide(&candidates, &self.modem, &self.originator, rules);
        let state = if decision.recipient.is_some() {
            InboxState::Pending
        } else {
            InboxState::Kept
        };
        let id: i64 = conn
            .prepare_cached(
                "INSERT INTO inbox (received, modem, originator, text, sent, parts, missing, kind, reply_to,
                                    recipient, others, state, outcome, next_attempt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?1) RETURNING id",
            )?
            .query_row(
                params![
                    now,
                    self.modem,
                    self.originator,
                    text,
                    sent,
                    self.parts,
                    missing_list(&missing),
                    kind,
                    decision.reply_to,
                    decision.recipient,
                    decision.others,
                    state,
                    decision.kept
                ],
                |row| row.get(0),
            )?;
        conn.prepare_cached(
            "UPDATE inbox_parts SET inbox_id = ?1
             WHERE modem = ?2 AND originator = ?3 AND reference IS ?4 AND parts = ?5 AND inbox_id IS NULL",
        )?
        .execute(params![id, self.modem, self.originator, self.reference, self.parts])?;
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
            if optout::apply(conn, &change, now)?
                && let Some(mail) = confirm
            {
                super::intake::receive_within(conn, &mail, now, &rules.instance, None)?;
            }
        }
        Ok(id)
    }
}

/// The requests sent to `originator` since `since` by a mail with a sender, latest
/// first: whom an SMS from it may answer.
fn candidates(conn: &Connection, originator: &str, since: i64) -> Result<Vec<Candidate>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT r.id, m.sender, p.modem, max(p.submitted) AS at
             FROM requests r INDEXED BY requests_by_number
             JOIN messages m ON m.id = r.message_id JOIN parts p ON p.request_id = r.id
             WHERE r.number = ?1 AND m.sender != '' AND p.status IN (?2, ?3) AND p.submitted >= ?4
             GROUP BY r.id ORDER BY at DESC, r.id DESC LIMIT 100",
        )?
        .query_map(
            params![originator, PartStatus::Sent, PartStatus::Delivered, since],
            |row| {
                Ok(Candidate {
                    request: row.get(0)?,
                    sender: row.get(1)?,
                    modem: row.get(2)?,
                })
            },
        )?
        .collect::<Result<_, _>>()?)
}

/// The [`ReceivedSms`] of a row that begins with [`SMS_COLUMNS`].
fn sms_of(row: &Row<'_>) -> rusqlite::Result<ReceivedSms> {
    Ok(ReceivedSms {
        id: row.get(0)?,
        received: row.get(1)?,
        sent: row.get(2)?,
        modem: row.get(3)?,
        originator: row.get(4)?,
        text: row.get(5)?,
        parts: row.get(6)?,
        missing: row.get(7)?,
        kind: row.get(8)?,
        others: row.get(9)?,
    })
}

/// Mails of incoming SMS due at `now`, oldest first.
pub(in crate::store) fn inbound_due(
    conn: &Connection,
    now: i64,
    limit: usize,
) -> Result<Vec<PendingInbound>, StoreError> {
    let after = SMS_COLUMN_COUNT;
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SMS_COLUMNS}, i.recipient, i.attempts, m.raw
             FROM inbox i LEFT JOIN requests r ON r.id = i.reply_to LEFT JOIN messages m ON m.id = r.message_id
             WHERE i.state = ?1 AND i.next_attempt <= ?2
             ORDER BY i.next_attempt, i.id LIMIT ?3"
        ))?
        .query_map(params![InboxState::Pending, now, limit as i64], |row| {
            Ok(PendingInbound {
                sms: sms_of(row)?,
                recipient: row.get(after)?,
                attempts: row.get(after + 1)?,
                original: row.get(after + 2)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

/// When the next mail of an incoming SMS falls due, if one waits.
pub(in crate::store) fn next_due(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT min(next_attempt) FROM inbox WHERE state = ?1")?
        .query_row([InboxState::Pending], |row| row.get(0))?)
}

/// Records one delivery attempt.
pub(in crate::store) fn record_attempt(
    conn: &Connection,
    id: i64,
    state: InboxState,
    next: i64,
    outcome: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE inbox SET state = ?1, next_attempt = ?2, outcome = ?3, attempts = attempts + 1
         WHERE id = ?4 AND state = ?5",
    )?
    .execute(params![state, next, outcome, id, InboxState::Pending])?;
    Ok(())
}

/// Inbox rows, newest first: row `id` only, or the latest `limit`.
pub(in crate::store) fn entries(
    conn: &Connection,
    id: Option<i64>,
    limit: usize,
) -> Result<Vec<InboxEntry>, StoreError> {
    let after = SMS_COLUMN_COUNT;
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SMS_COLUMNS}, i.reply_to, i.recipient, i.state, i.outcome, i.attempts
             FROM inbox i WHERE ?1 IS NULL OR i.id = ?1 ORDER BY i.id DESC LIMIT ?2"
        ))?
        .query_map(params![id, limit as i64], |row| {
            Ok(InboxEntry {
                sms: sms_of(row)?,
                reply_to: row.get(after)?,
                recipient: row.get(after + 1)?,
                state: row.get(after + 2)?,
                outcome: row.get(after + 3)?,
                attempts: row.get(after + 4)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}
