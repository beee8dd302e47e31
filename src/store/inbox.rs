//! SMS received by the modems, and the mail each becomes.
//!
//! Each part is committed here before the modem deletes it from the SIM (`AT+CMGD`), so
//! a restart loses no half-received text. When the last part of an SMS arrives (or its
//! first one is older than `inbound.reassembly_timeout_secs`), the parts become one
//! inbox row, and in that same transaction the store decides who gets it by mail
//! ([`decide`]): the envelope sender of the latest request sent to that number within
//! `inbound.reply_window_hours`, else `inbound.default_recipient`, else no one (kept).
//! A stop or start word changes the opt-out list in that transaction too. The notify
//! stage delivers the mail ([`PendingInbound`]) with the DSNs' transport and retries.

use serde::Serialize;

use super::{
    DsnOutcome, InboxKind, InboxState, NewMail, NewRequest, Store, StoreError, now_ms, read_only, transact, until,
};
use crate::e164::E164;

/// One part of an incoming SMS, as the modem read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPart {
    /// The modem that received it.
    pub modem: String,
    /// TP-OA: "+" and digits when international, else as the network gave it.
    pub originator: String,
    /// TP-SCTS: when the centre received it, ISO 8601 with the centre's offset.
    pub sent: String,
    /// `(reference, parts, part)` of a concatenated SMS; `None` for a single one.
    pub concat: Option<(u16, u8, u8)>,
    /// The part's text.
    pub text: String,
}

impl ReceivedPart {
    /// What a copy of this part has in common with it, for `inbox_parts.copy_key`: a
    /// part the network delivers twice is kept once. The centre's time stamp is in it:
    /// a copy keeps it, while a later SMS whose sender reused the 8-bit reference has
    /// its own, and is not taken for a copy.
    pub(in crate::store) fn copy_key(&self) -> String {
        match self.concat {
            Some((reference, parts, part)) => format!("{reference}/{parts}/{part} {}", self.sent),
            None => format!("{} {}", self.sent, self.text),
        }
    }

    /// `(reference, parts, part)`, a single SMS being part 1 of 1 without a reference.
    pub(in crate::store) fn position(&self) -> (Option<i64>, i64, i64) {
        match self.concat {
            Some((reference, parts, part)) => (Some(i64::from(reference)), i64::from(parts), i64::from(part)),
            None => (None, 1, 1),
        }
    }
}

/// What became of a part handed to [`Store::receive_part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartOutcome {
    /// A copy of a part already stored: nothing changed.
    Duplicate,
    /// Stored; the SMS waits for its other parts.
    Waiting,
    /// It completed an SMS: this inbox row.
    Complete(i64),
}

/// `[inbound]`, as the store applies it when an SMS is complete.
#[derive(Debug, Clone)]
pub struct InboundRules {
    /// `inbound.reply_window_hours`, in milliseconds.
    pub reply_window_ms: i64,
    /// `inbound.reassembly_timeout_secs`, in milliseconds.
    pub reassembly_timeout_ms: i64,
    /// `inbound.default_recipient`.
    pub default_recipient: Option<String>,
    /// `inbound.ambiguous = "latest"`: when several senders texted the number, the
    /// latest gets the reply (else the default recipient does).
    pub latest_when_ambiguous: bool,
    /// `inbound.stop_words`.
    pub stop_words: crate::config::Keywords,
    /// `inbound.start_words`.
    pub start_words: crate::config::Keywords,
    /// `inbound.stop_reply`: the SMS a number that opted out gets back; `None`: none.
    pub stop_reply: Option<String>,
    /// `instance.name`: the instance that accepts the confirmation SMS.
    pub instance: String,
    /// The first of `smtp.sms_domains`: the domain of a confirmation's recipient.
    pub sms_domain: String,
    /// `sms.default_region`: the country of an originator the network gives in
    /// national form (the modem worker makes it E.164 before the store sees it).
    pub region: Option<phonenumber::country::Id>,
}

impl InboundRules {
    /// The rules of `[inbound]`, as instance `instance` applies them (no region: see
    /// [`InboundRules::of`]).
    pub fn new(inbound: &crate::config::Inbound, instance: &str) -> InboundRules {
        let ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
        InboundRules {
            reply_window_ms: ms(inbound.reply_window_hours.saturating_mul(3600)),
            reassembly_timeout_ms: ms(inbound.reassembly_timeout_secs),
            default_recipient: inbound.default_recipient.clone(),
            latest_when_ambiguous: inbound.ambiguous == crate::config::Ambiguous::Latest,
            stop_words: inbound.stop_words.clone(),
            start_words: inbound.start_words.clone(),
            stop_reply: Some(inbound.stop_reply.trim().to_string()).filter(|text| !text.is_empty()),
            instance: instance.to_string(),
            sms_domain: "sms".into(),
            region: None,
        }
    }

    /// The mail that sends `inbound.stop_reply` to `number`, which just opted out: from
    /// the null sender (no DSN about it), queued in the transaction of the opt-out, and
    /// sent like any request (RCPT's opt-out check is behind it).
    pub(in crate::store) fn stop_reply_mail(&self, number: &E164) -> Option<NewMail> {
        let text = self.stop_reply.clone()?;
        let split = crate::sms::split(&text, &[]);
        Some(NewMail {
            sender: String::new(),
            envid: None,
            ret: None,
            client: "127.0.0.1".into(),
            helo: "smsgw".into(),
            auth_user: None,
            raw: format!("Subject: inbound.stop_reply\r\n\r\n{text}\r\n").into_bytes(),
            encoding: split.encoding.as_str().to_string(),
            parts: split.parts.len(),
            text,
            requests: vec![NewRequest {
                recipient: format!("{number}@{}", self.sms_domain),
                number: number.clone(),
                notify: Some("NEVER".into()),
                orcpt: None,
            }],
            origin: None,
            trace: Vec::new(),
        })
    }

    /// The rules of a running instance's config.
    pub fn of(config: &crate::config::Config) -> InboundRules {
        InboundRules {
            region: Some(config.sms.default_region.id()),
            sms_domain: config.smtp.sms_domains.first().cloned().unwrap_or_else(|| "sms".into()),
            ..InboundRules::new(&config.inbound, &config.instance.name)
        }
    }

    /// How long the parts of an SMS stored whole are kept for the copies the network (or
    /// a SIM that a crash left undeleted, read again at the next start) may deliver:
    /// twice the reassembly timeout, and at least a week, so a gateway down for days
    /// does not mail an SMS twice. Their rows are small.
    pub(in crate::store) fn copies_kept_ms(&self) -> i64 {
        self.reassembly_timeout_ms.saturating_mul(2).max(7 * 24 * 3_600_000)
    }

    /// What the whole text says: a stop word, a start word, or a message.
    pub(in crate::store) fn kind(&self, text: &str) -> InboxKind {
        if self.stop_words.matches(text) {
            InboxKind::Stop
        } else if self.start_words.matches(text) {
            InboxKind::Start
        } else {
            InboxKind::Text
        }
    }
}

/// A request sent lately to the number an SMS came from: whom it may answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) struct Candidate {
    /// The request.
    pub request: i64,
    /// Its mail's envelope sender.
    pub sender: String,
    /// The modem that sent it.
    pub modem: String,
}

/// Whom an incoming SMS is mailed to, as [`decide`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::store) struct Decision {
    /// The request it answers, whose mail it is threaded under.
    pub reply_to: Option<i64>,
    /// The mailbox it goes to; `None`: kept in the inbox.
    pub recipient: Option<String>,
    /// How many other senders texted that number within the window.
    pub others: i64,
    /// Why it is kept, when it is.
    pub kept: Option<String>,
}

/// Whom an SMS from `originator`, received by `modem`, is mailed to. `candidates` are
/// the requests sent to that number within the window, latest first. Those sent by the
/// receiving modem come first (the reply went to the SIM that sent the message); among
/// them the latest wins, unless several senders wrote and `inbound.ambiguous` says the
/// default recipient should have it.
pub(in crate::store) fn decide(
    candidates: &[Candidate],
    modem: &str,
    originator: &str,
    rules: &InboundRules,
) -> Decision {
    let same_modem: Vec<&Candidate> = candidates.iter().filter(|c| c.modem == modem).collect();
    let pool: Vec<&Candidate> = if same_modem.is_empty() {
        candidates.iter().collect()
    } else {
        same_modem
    };
    let mut senders: Vec<&str> = pool.iter().map(|c| c.sender.as_str()).collect();
    senders.sort_unstable();
    senders.dedup();
    let others = senders.len().saturating_sub(1) as i64;
    let default = |why: String| Decision {
        reply_to: None,
        recipient: rules.default_recipient.clone(),
        others,
        kept: rules
            .default_recipient
            .is_none()
            .then(|| format!("{why}, and inbound.default_recipient is empty")),
    };
    match pool.first() {
        Some(latest) if others == 0 || rules.latest_when_ambiguous => Decision {
            reply_to: Some(latest.request),
            recipient: Some(latest.sender.clone()),
            others,
            kept: None,
        },
        Some(_) => default(format!(
            "{} senders texted {originator} within inbound.reply_window_hours (inbound.ambiguous = \"default_recipient\")",
            others + 1
        )),
        None => default(format!(
            "no mail was sent to {originator} within inbound.reply_window_hours"
        )),
    }
}

/// The text of an SMS from its parts (`(part, text)`, in part order) out of `parts`:
/// each missing part is shown as `[…]`. Returns the text and the missing part numbers.
pub(in crate::store) fn join_parts(arrived: &[(i64, String)], parts: i64) -> (String, Vec<i64>) {
    let mut text = String::new();
    let mut missing = Vec::new();
    for part in 1..=parts {
        match arrived.iter().find(|(number, _)| *number == part) {
            Some((_, piece)) => text.push_str(piece),
            None => {
                missing.push(part);
                text.push_str("[…]");
            }
        }
    }
    (text, missing)
}

/// `inbox.missing`: "2,3", or `None` when every part arrived.
pub(in crate::store) fn missing_list(missing: &[i64]) -> Option<String> {
    (!missing.is_empty()).then(|| missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
}

/// What the opt-out list records of a stop or start texted to `modem`.
pub(in crate::store) fn texted(kind: InboxKind, modem: &str) -> String {
    format!("{} texted to modem {modem}", kind.as_str().to_uppercase())
}

/// An incoming SMS as stored whole: what its mail and `smsgw inbox` are made of.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedSms {
    /// The inbox row.
    pub id: i64,
    /// When it was stored whole (unix milliseconds).
    pub received: i64,
    /// TP-SCTS of its first part.
    pub sent: Option<String>,
    /// The modem that received it.
    pub modem: String,
    /// Who texted it.
    #[serde(rename = "from")]
    pub originator: String,
    /// The text (missing parts shown as `[…]`).
    pub text: String,
    /// How many parts.
    pub parts: i64,
    /// The parts that never came ("2,3"); `None` when whole.
    pub missing: Option<String>,
    /// A stop or start word, or a message.
    pub kind: InboxKind,
    /// How many other senders texted that number within the window.
    pub others: i64,
}

/// The columns of `inbox` (alias `i`) a [`ReceivedSms`] is read from, in its fields'
/// order: both backends read them with one function.
pub(in crate::store) const SMS_COLUMNS: &str =
    "i.id, i.received, i.sent, i.modem, i.originator, i.text, i.parts, i.missing, i.kind, i.others";

/// How many [`SMS_COLUMNS`]: the columns after them start here.
pub(in crate::store) const SMS_COLUMN_COUNT: usize = 10;

/// A mail to deliver, made from an incoming SMS.
#[derive(Debug, Clone)]
pub struct PendingInbound {
    /// The SMS.
    pub sms: ReceivedSms,
    /// The mailbox it goes to.
    pub recipient: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The mail it answers, as received, for its Subject and Message-ID.
    pub original: Option<Vec<u8>>,
}

/// One incoming SMS, as `smsgw inbox list` and `show` print it.
#[derive(Debug, Clone, Serialize)]
pub struct InboxEntry {
    /// The SMS.
    #[serde(flatten)]
    pub sms: ReceivedSms,
    /// The request it answers.
    pub reply_to: Option<i64>,
    /// Whom it is mailed to.
    pub recipient: Option<String>,
    /// Where its mail stands.
    pub state: InboxState,
    /// Why it is kept, what the receiving server answered, or the last error.
    pub outcome: Option<String>,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// What an attempt with `outcome` writes: the state, the next attempt, the outcome text.
pub(in crate::store) fn attempt_record(outcome: &DsnOutcome, recipient: &str, now: i64) -> (InboxState, i64, String) {
    match outcome {
        DsnOutcome::Sent(answer) => (InboxState::Sent, now, format!("mailed to <{recipient}>: {answer}")),
        DsnOutcome::Retry { at, error } => (InboxState::Pending, *at, error.clone()),
        DsnOutcome::Dropped(why) => (InboxState::Dropped, now, format!("not mailed to <{recipient}>: {why}")),
    }
}

impl Store {
    /// Stores one part an instance's modem read; once committed, the modem may delete it
    /// from the SIM. When it completes an SMS, the SMS is stored whole and its mail
    /// decided (and a stop or start word applied) in the same transaction.
    pub async fn receive_part(&self, part: ReceivedPart, rules: &InboundRules) -> Result<PartOutcome, StoreError> {
        let rules = rules.clone();
        let outcome = transact!(self, inbox::receive_part(&part, &rules, now_ms()))?;
        if let PartOutcome::Complete(_) = outcome {
            self.after_completing().await;
        }
        Ok(outcome)
    }

    /// Stores as what arrived the SMS whose first part is older than the reassembly
    /// timeout, and forgets the parts of whole ones kept as long for their copies.
    pub async fn complete_overdue(&self, rules: &InboundRules) -> Result<usize, StoreError> {
        let rules = rules.clone();
        let completed = transact!(self, inbox::complete_overdue(&rules, now_ms()))?;
        if completed > 0 {
            self.after_completing().await;
        }
        Ok(completed)
    }

    /// An SMS was stored whole: its mail (and a DSN for a request failed by a stop
    /// word) is for the notify stage, and the opt-out list may have changed.
    async fn after_completing(&self) {
        self.wake.outbound.notify_one();
        // A stop word's confirmation SMS, when one was queued.
        self.wake.received.notify_one();
        if let Err(error) = self.reload_optouts_if_changed().await {
            tracing::warn!(%error, "cannot read the opt-out list again");
        }
    }

    /// Mails of incoming SMS whose time has come, oldest first, at most `limit`.
    pub async fn inbound_due(&self, limit: usize) -> Result<Vec<PendingInbound>, StoreError> {
        transact!(self, inbox::inbound_due(now_ms(), limit))
    }

    /// Milliseconds until the next mail of an incoming SMS falls due, if one waits.
    pub async fn next_inbound_in(&self) -> Result<Option<u64>, StoreError> {
        Ok(until(transact!(self, inbox::next_due())?))
    }

    /// Records what became of one delivery attempt of `mail`.
    pub async fn record_inbound_attempt(&self, mail: &PendingInbound, outcome: DsnOutcome) -> Result<(), StoreError> {
        let (state, next, text) = attempt_record(&outcome, &mail.recipient, now_ms());
        let id = mail.sms.id;
        transact!(self, inbox::record_attempt(id, state, next, &text))
    }

    /// The latest `limit` incoming SMS, newest first (`smsgw inbox list`).
    pub async fn inbox(&self, limit: usize) -> Result<Vec<InboxEntry>, StoreError> {
        read_only!(self, inbox::entries(None, limit))
    }

    /// One incoming SMS (`smsgw inbox show`).
    pub async fn inbox_entry(&self, id: i64) -> Result<Option<InboxEntry>, StoreError> {
        Ok(read_only!(self, inbox::entries(Some(id), 1))?.pop())
    }
}

/// The number an originator is, when it is one (an alphanumeric sender is not).
pub(in crate::store) fn number_of(originator: &str) -> Option<E164> {
    originator.parse().ok().filter(|_| originator.starts_with('+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(default: Option<&str>, latest: bool) -> InboundRules {
        let inbound = crate::config::Inbound::default();
        InboundRules {
            default_recipient: default.map(str::to_string),
            latest_when_ambiguous: latest,
            ..InboundRules::new(&inbound, "smsgw")
        }
    }

    fn sent(request: i64, sender: &str, modem: &str) -> Candidate {
        Candidate {
            request,
            sender: sender.into(),
            modem: modem.into(),
        }
    }

    #[test]
    fn a_reply_goes_to_the_latest_sender_from_the_receiving_modem_first() {
        let to = |candidates: &[Candidate], modem, rules: &InboundRules| {
            let d = decide(candidates, modem, "+33612345678", rules);
            (d.recipient, d.reply_to, d.others, d.kept.is_some())
        };
        let latest = rules(Some("desk@example.com"), true);
        let by_default = rules(Some("desk@example.com"), false);
        let nobody = rules(None, false);
        let alice = sent(9, "alice@example.com", "m1");
        let bob = sent(7, "bob@example.com", "m2");
        let alice_earlier = sent(3, "alice@example.com", "m1");
        // (candidates, receiving modem, rules) → (recipient, reply_to, others, kept)
        type Expected<'a> = (Option<&'a str>, Option<i64>, i64, bool);
        let table: Vec<(Vec<Candidate>, &str, &InboundRules, Expected<'_>)> = vec![
            (
                vec![alice.clone()],
                "m1",
                &latest,
                (Some("alice@example.com"), Some(9), 0, false),
            ),
            (
                vec![alice.clone(), alice_earlier.clone()],
                "m1",
                &by_default,
                (Some("alice@example.com"), Some(9), 0, false),
            ),
            // The SIM that sent bob's message got the reply: bob's, though alice's is later.
            (
                vec![alice.clone(), bob.clone()],
                "m2",
                &latest,
                (Some("bob@example.com"), Some(7), 0, false),
            ),
            // Neither sent from the receiving modem: the latest of all.
            (
                vec![alice.clone(), bob.clone()],
                "m3",
                &latest,
                (Some("alice@example.com"), Some(9), 1, false),
            ),
            (
                vec![alice.clone(), bob.clone()],
                "m3",
                &by_default,
                (Some("desk@example.com"), None, 1, false),
            ),
            (vec![alice.clone(), bob.clone()], "m3", &nobody, (None, None, 1, true)),
            (vec![], "m1", &latest, (Some("desk@example.com"), None, 0, false)),
            (vec![], "m1", &nobody, (None, None, 0, true)),
        ];
        for (candidates, modem, rules, (recipient, reply_to, others, kept)) in table {
            assert_eq!(
                to(&candidates, modem, rules),
                (recipient.map(str::to_string), reply_to, others, kept),
                "{candidates:?} received by {modem}"
            );
        }
        let why = decide(&[], "m1", "+33612345678", &nobody).kept.unwrap();
        assert_eq!(
            why,
            "no mail was sent to +33612345678 within inbound.reply_window_hours, and inbound.default_recipient is empty"
        );
    }

    #[test]
    fn missing_parts_are_shown_where_they_belong() {
        let arrived = |parts: &[(i64, &str)]| parts.iter().map(|(n, t)| (*n, t.to_string())).collect::<Vec<_>>();
        assert_eq!(join_parts(&arrived(&[(2, "b"), (1, "a")]), 2), ("ab".into(), vec![]));
        assert_eq!(
            join_parts(&arrived(&[(1, "a"), (3, "c")]), 3),
            ("a[…]c".into(), vec![2])
        );
        assert_eq!(join_parts(&arrived(&[(2, "b")]), 3), ("[…]b[…]".into(), vec![1, 3]));
        assert_eq!(missing_list(&[1, 3]).as_deref(), Some("1,3"));
        assert_eq!(missing_list(&[]), None);
    }

    #[test]
    fn a_copy_of_a_part_shares_its_key_and_single_sms_differ_by_time_and_text() {
        let part = |concat, sent: &str, text: &str| ReceivedPart {
            modem: "m1".into(),
            originator: "+33612345678".into(),
            sent: sent.into(),
            concat,
            text: text.into(),
        };
        // A copy has the part's centre time stamp; its text is not compared.
        assert_eq!(
            part(Some((7, 3, 2)), "t1", "x").copy_key(),
            part(Some((7, 3, 2)), "t1", "y").copy_key()
        );
        // The same reference and part number later: another SMS.
        assert_ne!(
            part(Some((7, 3, 2)), "t1", "x").copy_key(),
            part(Some((7, 3, 2)), "t2", "x").copy_key()
        );
        assert_ne!(
            part(Some((7, 3, 2)), "t1", "x").copy_key(),
            part(Some((7, 3, 1)), "t1", "x").copy_key()
        );
        assert_ne!(part(None, "t1", "ok").copy_key(), part(None, "t2", "ok").copy_key());
        assert_eq!(part(None, "t1", "ok").position(), (None, 1, 1));
    }
}
