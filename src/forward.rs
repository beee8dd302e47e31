//! Forwarding to peers (README, "Cluster"): each request routed to a
//! peer is sent to its SMTP listener (the first of its `smtp` addresses that takes the
//! connection: the instances of a site) with the same envelope sender and DSN parameters,
//! and the headers `X-Smsgw-Request` (so a retried forward is taken once) and
//! `X-Smsgw-Trace` (so it never comes back). Requests to one peer share a few
//! connections, kept open between rounds.
//!
//! A forward whose end of data left without an answer may be held by the peer: it is
//! tried on that peer only (its request-id dedupe makes that safe) until the peer
//! answers or the validity ends, and then left `uncertain` for the operator, never
//! handed to another instance automatically. So is one the gateway stopped or crashed
//! during: a request is marked in flight when taken, and one still marked at the next
//! start is treated as unanswered.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics;
use crate::outbound::{Client, Connection, Mail, OutboundError, Server, TlsPolicy, TlsSetupError};
use crate::retry::RetrySchedule;
use crate::routing::view::Cluster;
use crate::stage::{self, Round};
use crate::store::{ForwardOutcome, ForwardRequest, Store, StoreError, now_ms};

/// Requests taken per round.
const BATCH: usize = 256;
/// Connections one round opens to one peer, at most; as many are kept open between
/// rounds (an AUTH costs the peer a password hash).
const CONNECTIONS_PER_PEER: usize = 8;
/// An idle connection older than this is closed rather than reused: servers close
/// theirs after a few minutes of silence (RFC 5321 §4.5.3.2).
const MAX_IDLE: Duration = Duration::from_secs(60);
/// Looks again this often even without a wake-up.
const SWEEP: Duration = Duration::from_secs(1);

/// How to reach one peer.
struct Link {
    /// Its `smtp` addresses, tried in order for each new connection.
    servers: Vec<Server>,
    client: Client,
    auth: Option<(String, String)>,
}

/// The forwarding stage: sends requests routed to a peer over SMTP, one link per `[[peer]]`.
pub struct Forwarder {
    /// Connections left open after a round, by peer, with when they were last used.
    idle: Mutex<HashMap<String, Vec<(Connection, Instant)>>>,
    instance: String,
    /// `Store::id`: request ids given to peers stay unique if the database is recreated.
    store_id: String,
    links: HashMap<String, Link>,
    cluster: Arc<Cluster>,
    /// `routing.retry_delays_secs`.
    retry: RetrySchedule,
    /// `sms.validity_minutes`: an unanswered forward is tried on its peer until then.
    validity_ms: i64,
    /// `smtp.shutdown_grace_secs`: how long forwards under way may finish at shutdown.
    grace: Duration,
}

impl Forwarder {
    /// The links to every `[[peer]]`; fails with the peer's name if its TLS settings do not load.
    pub fn new(config: &Config, cluster: Arc<Cluster>, store_id: &str) -> Result<Forwarder, (String, TlsSetupError)> {
        let mut links = HashMap::new();
        for peer in &config.peer {
            let tls = TlsPolicy::new(peer.tls, &peer.tls_ca_file, &peer.tls_pin_sha256)
                .map_err(|e| (peer.name.clone(), e))?;
            let auth = (!peer.user.is_empty()).then(|| (peer.user.clone(), peer.password.clone()));
            let client = Client {
                helo: config.smtp.hostname.clone(),
                tls,
                timeout: Duration::from_secs(60),
            };
            let link = Link {
                servers: peer.smtp.iter().map(Server::from).collect(),
                client,
                auth,
            };
            links.insert(peer.name.clone(), link);
        }
        Ok(Forwarder {
            idle: Mutex::default(),
            instance: config.instance.name.clone(),
            store_id: store_id.to_string(),
            links,
            cluster,
            retry: config.routing.retry_delays_secs.clone(),
            validity_ms: i64::try_from(config.sms.validity_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX / 2),
            grace: Duration::from_secs(config.smtp.shutdown_grace_secs),
        })
    }

    /// Forwards until `shutdown`; forwards under way then get the grace period. A forward
    /// cut short (by the end of the grace period or a crash) may have reached its peer:
    /// at the next start it is tried on that peer only, which, seeing its request id
    /// again, keeps one.
    pub async fn run(self, store: Store, shutdown: CancellationToken) {
        // Nothing is forwarded before: a forward cut off would otherwise fail over.
        loop {
            match store.recover_forwards().await {
                Ok(0) => break,
                Ok(count) => {
                    tracing::warn!(count, "forwards cut off by a stop: tried on their peer only");
                    break;
                }
                Err(error) => tracing::error!(%error, "forwarding cannot recover the forwards cut off by a stop"),
            }
            tokio::select! {
                () = tokio::time::sleep(SWEEP) => {}
                () = shutdown.cancelled() => return,
            }
        }
        let forwarder = Arc::new(self);
        let (forwarder, store, shutdown) = (&forwarder, &store, &shutdown);
        stage::run(&store.wake.forwarding, SWEEP, shutdown, || async move {
            let round = forwarder.round(store, shutdown).await;
            stage::after_round("forwarding", round, store.next_forward_in()).await
        })
        .await;
    }

    /// Forwards one batch of due requests, one connection per peer; true if full.
    async fn round(self: &Arc<Self>, store: &Store, shutdown: &CancellationToken) -> Result<Round, StoreError> {
        let jobs = store.due_for_forwarding(BATCH).await?;
        let full = jobs.len() == BATCH;
        let mut by_peer: BTreeMap<String, Vec<ForwardRequest>> = BTreeMap::new();
        for job in jobs {
            by_peer.entry(job.peer.clone()).or_default().push(job);
        }
        let mut tasks = JoinSet::new();
        for (peer, jobs) in by_peer {
            // Several connections to one peer: its commits are shared between sessions,
            // so they go through together instead of one fsync after the other.
            let size = jobs.len().div_ceil(CONNECTIONS_PER_PEER).max(1);
            let mut jobs = jobs.into_iter().peekable();
            while jobs.peek().is_some() {
                let share: Vec<ForwardRequest> = jobs.by_ref().take(size).collect();
                let (forwarder, store, peer) = (self.clone(), store.clone(), peer.clone());
                tasks.spawn(async move { forwarder.to_peer(&store, &peer, share).await });
            }
        }
        // True if an outcome could not be recorded.
        let all = async {
            let mut unrecorded = false;
            while let Some(result) = tasks.join_next().await {
                if let Ok(Err(error)) = result {
                    tracing::error!(%error, "cannot record a forward");
                    unrecorded = true;
                }
            }
            unrecorded
        };
        tokio::pin!(all);
        let unrecorded = tokio::select! {
            unrecorded = &mut all => unrecorded,
            () = shutdown.cancelled() => {
                // Those still on their way when the grace period ends stay in flight:
                // the next start keeps them on their peer.
                tokio::time::timeout(self.grace, all).await.unwrap_or(false)
            }
        };
        Ok(match (unrecorded, full) {
            (true, _) => Round::Unrecorded,
            (false, true) => Round::Full,
            (false, false) => Round::Done,
        })
    }

    async fn to_peer(&self, store: &Store, peer: &str, mut jobs: Vec<ForwardRequest>) -> Result<(), StoreError> {
        let Some(link) = self.links.get(peer) else {
            for job in jobs {
                let reason = format!("{peer} is no longer a configured peer");
                let outcome = if job.unanswered {
                    ForwardOutcome::Uncertain {
                        reason: format!("{reason}, and may hold it"),
                    }
                } else {
                    ForwardOutcome::Failover { reason, refused: true }
                };
                store.record_forward(job.id, peer.to_string(), outcome).await?;
            }
            return Ok(());
        };
        if self.cluster.is_down(peer) {
            // Those the peer may hold are tried on it all the same: only its answer
            // tells whether it holds them.
            let (unanswered, others): (Vec<_>, Vec<_>) = jobs.into_iter().partition(|job| job.unanswered);
            for job in others {
                let outcome = ForwardOutcome::Failover {
                    reason: "its status does not answer".into(),
                    refused: false,
                };
                store.record_forward(job.id, peer.to_string(), outcome).await?;
            }
            jobs = unanswered;
            if jobs.is_empty() {
                return Ok(());
            }
        }
        let mut pooled = None;
        while let Some(mut connection) = self.take_idle(peer) {
            if connection.alive().await {
                pooled = Some(connection);
                break;
            }
        }
        let pooled = match pooled {
            Some(connection) => Ok(connection),
            None => {
                // A site's instances share one queue and dedupe by request id: any of
                // its addresses is the same peer, for unanswered forwards too.
                let auth = link.auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
                let connected = link.client.connect_first(&link.servers, auth).await;
                connected.map(|(connection, server)| {
                    tracing::debug!(%peer, %server, "connected to the peer");
                    connection
                })
            }
        };
        let mut connection = match pooled {
            Ok(connection) => connection,
            Err(error) => {
                for job in &jobs {
                    let outcome = self.after(job, &error);
                    count(&outcome);
                    store.record_forward(job.id, peer.to_string(), outcome).await?;
                }
                return Ok(());
            }
        };
        for (done, job) in jobs.iter().enumerate() {
            let outcome = self.send(&mut connection, job).await;
            if let ForwardOutcome::Accepted(answer) = &outcome {
                tracing::info!(request = job.id, %peer, %answer, "forwarded");
            }
            count(&outcome);
            store.record_forward(job.id, peer.to_string(), outcome).await?;
            if connection.is_broken() {
                // The rest go next round, on a new connection; none of them left, so
                // none is in flight.
                let rest: Vec<i64> = jobs[done + 1..].iter().map(|job| job.id).collect();
                if !rest.is_empty() {
                    store.release_forwards(rest).await?;
                }
                return Ok(());
            }
        }
        self.keep_idle(peer, connection);
        Ok(())
    }

    /// A connection to `peer` kept from an earlier round, if one is fresh enough.
    fn take_idle(&self, peer: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.get_mut(peer)?;
        kept.retain(|(_, since)| since.elapsed() < MAX_IDLE);
        kept.pop().map(|(connection, _)| connection)
    }

    fn keep_idle(&self, peer: &str, connection: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let kept = idle.entry(peer.to_string()).or_default();
        if kept.len() < CONNECTIONS_PER_PEER {
            kept.push((connection, Instant::now()));
        }
    }

    async fn send(&self, connection: &mut Connection, job: &ForwardRequest) -> ForwardOutcome {
        let message = self.message(job);
        let to = format!("{}@{}", job.number, domain(&job.recipient));
        let mail = Mail {
            from: &job.sender,
            from_params: mail_params(job),
            to: &to,
            to_params: rcpt_params(job),
            message: &message,
        };
        match connection.send(&mail).await {
            Ok(answer) => ForwardOutcome::Accepted(answer),
            Err(error) => self.after(job, &error),
        }
    }

    /// A failed attempt, logged, and what it leads to ([`decide`]).
    fn after(&self, job: &ForwardRequest, error: &OutboundError) -> ForwardOutcome {
        tracing::warn!(request = job.id, peer = %job.peer, %error, "forward failed");
        decide(job, error, &self.retry, self.validity_ms, now_ms())
    }

    /// The message as stored, below the two headers a peer believes from a peer.
    fn message(&self, job: &ForwardRequest) -> Vec<u8> {
        let origin = job
            .origin
            .clone()
            .unwrap_or_else(|| format!("{}/{}/{}", self.instance, self.store_id, job.id));
        let mut trace = job.trace.clone();
        trace.push(self.instance.clone());
        let mut message = format!("X-Smsgw-Request: {origin}\r\nX-Smsgw-Trace: {}\r\n", trace.join(", ")).into_bytes();
        message.extend_from_slice(&job.raw);
        message
    }
}

/// What a failed attempt leads to. A forward the peer may hold (its end of data left
/// and no answer came, on this attempt or an earlier one) is tried on that peer only,
/// at the retry schedule (its last delay repeating) until the validity ends, then left
/// `uncertain`; so is one the peer refuses when tried again. Any other is tried again
/// on the same peer while the schedule lasts, then (or at once when refused) routed
/// again without it.
fn decide(
    job: &ForwardRequest,
    error: &OutboundError,
    retry: &RetrySchedule,
    validity_ms: i64,
    now: i64,
) -> ForwardOutcome {
    // The attempts recorded before this one, then this one.
    let failed = u64::try_from(job.attempts).map_or(u64::MAX, |made| made.saturating_add(1));
    let later = |delay: Duration| now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2));
    if job.unanswered || error.is_unanswered() {
        let peer = &job.peer;
        if error.is_permanent() {
            return ForwardOutcome::Uncertain {
                reason: format!("{peer} refused it when tried again ({error}), and may hold it from before"),
            };
        }
        let ends = job.valid_from.saturating_add(validity_ms);
        if now >= ends {
            return ForwardOutcome::Uncertain {
                reason: format!("{peer} did not answer within its validity ({error}), and may hold it"),
            };
        }
        return ForwardOutcome::Unanswered {
            at: later(retry.delay(failed)).min(ends),
            reason: error.to_string(),
        };
    }
    match retry.within(failed) {
        Some(delay) if !error.is_permanent() => ForwardOutcome::Retry {
            at: later(delay),
            reason: error.to_string(),
        },
        _ => ForwardOutcome::Failover {
            reason: error.to_string(),
            refused: error.is_permanent(),
        },
    }
}

fn count(outcome: &ForwardOutcome) {
    metrics::bump(match outcome {
        ForwardOutcome::Accepted(_) => &metrics::FORWARD_ACCEPTED,
        // Tried again on the same peer.
        ForwardOutcome::Retry { .. } => &metrics::FORWARD_RETRIED,
        ForwardOutcome::Unanswered { .. } => &metrics::FORWARD_UNANSWERED,
        ForwardOutcome::Failover { .. } => &metrics::FORWARD_FAILED_OVER,
        // Not tried again: the operator decides.
        ForwardOutcome::Uncertain { .. } => return,
    });
}

/// The SMS domain the recipient was written with: the peer serves the same ones.
fn domain(recipient: &str) -> &str {
    recipient.rsplit_once('@').map_or("sms", |(_, domain)| domain)
}

fn mail_params(job: &ForwardRequest) -> String {
    let mut params = String::new();
    if let Some(ret) = &job.ret {
        params.push_str(&format!(" RET={ret}"));
    }
    if let Some(envid) = &job.envid {
        params.push_str(&format!(" ENVID={}", xtext(envid)));
    }
    params
}

/// NOTIFY as given, and ORCPT: as given, else the recipient as the sender wrote it, so
/// that the DSN from the peer names it.
fn rcpt_params(job: &ForwardRequest) -> String {
    let mut params = String::new();
    if let Some(notify) = &job.notify {
        params.push_str(&format!(" NOTIFY={notify}"));
    }
    let (kind, address) = job
        .orcpt
        .as_deref()
        .and_then(|orcpt| orcpt.split_once(';'))
        .unwrap_or(("rfc822", &job.recipient));
    params.push_str(&format!(" ORCPT={kind};{}", xtext(address)));
    params
}

/// RFC 3461 §4: printable ASCII but `+` and `=` as they are, the rest as `+HH`. The
/// SMTP parser decoded each `+HH` into the character U+00HH, so such characters go back
/// to their byte: a value crosses any number of instances unchanged.
fn xtext(text: &str) -> String {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(byte) => bytes.push(byte),
            Err(_) => bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    bytes
        .iter()
        .map(|&b| match b {
            b'!'..=b'~' if b != b'+' && b != b'=' => (b as char).to_string(),
            _ => format!("+{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_what_rfc_3461_reserves() {
        let table = [
            ("QQ314159", "QQ314159"),
            ("a+b=c", "a+2Bb+3Dc"),
            ("two words", "two+20words"),
            ("\"Paul@+33477858589\"@sms", "\"Paul@+2B33477858589\"@sms"),
            // As the parser hands over "+C3+A9" (UTF-8 "é"): two characters, two bytes.
            ("\u{c3}\u{a9}", "+C3+A9"),
            ("€", "+E2+82+AC"),
        ];
        for (text, encoded) in table {
            assert_eq!(xtext(text), encoded, "{text}");
        }
    }

    /// A request to fr, valid from 0, not yet tried.
    fn job() -> ForwardRequest {
        ForwardRequest {
            id: 7,
            peer: "fr".into(),
            attempts: 0,
            number: "+33477858589".parse().unwrap(),
            recipient: "+33477858589@sms".into(),
            notify: None,
            orcpt: None,
            sender: "alice@example.com".into(),
            envid: None,
            ret: None,
            raw: Vec::new().into(),
            origin: None,
            trace: Vec::new(),
            unanswered: false,
            valid_from: 0,
        }
    }

    #[test]
    fn a_forward_the_peer_may_hold_is_tried_on_that_peer_only() {
        let refused = || OutboundError::Temporary("fr:25: connection refused".into());
        let lost = || OutboundError::Unanswered("fr:25: connection closed without an answer".into());
        let bounced = || OutboundError::Permanent("fr:25 answered 550 5.1.1 to RCPT".into());
        // (attempts so far, unanswered before, this attempt's error, now) → outcome, with
        // delays of 1 s then 5 s and a validity of 60 s.
        let table = [
            (0, false, refused(), 1_000, "retry at 2000"),
            (1, false, refused(), 1_000, "retry at 6000"),
            (2, false, refused(), 1_000, "failover"),
            (0, false, bounced(), 1_000, "refused"),
            // The end of data left: never elsewhere, the last delay repeating.
            (0, false, lost(), 1_000, "unanswered at 2000"),
            (2, false, lost(), 1_000, "unanswered at 6000"),
            (9, true, refused(), 1_000, "unanswered at 6000"),
            (9, true, lost(), 58_000, "unanswered at 60000"),
            // Validity over, or refused when tried again: the operator decides.
            (9, true, refused(), 60_000, "uncertain"),
            (9, false, lost(), 60_000, "uncertain"),
            (1, true, bounced(), 1_000, "uncertain"),
        ];
        for (attempts, unanswered, error, now, expected) in table {
            let job = ForwardRequest {
                attempts,
                unanswered,
                ..job()
            };
            let outcome = match decide(&job, &error, &RetrySchedule::from_secs(1, &[5]), 60_000, now) {
                ForwardOutcome::Accepted(_) => "accepted".to_string(),
                ForwardOutcome::Retry { at, .. } => format!("retry at {at}"),
                ForwardOutcome::Failover { refused: false, .. } => "failover".into(),
                ForwardOutcome::Failover { refused: true, .. } => "refused".into(),
                ForwardOutcome::Unanswered { at, .. } => format!("unanswered at {at}"),
                ForwardOutcome::Uncertain { .. } => "uncertain".into(),
            };
            assert_eq!(outcome, expected, "{attempts} {unanswered} {error} {now}");
        }
    }

    #[test]
    fn dsn_parameters_travel_with_the_request() {
        let job = ForwardRequest {
            recipient: "\"Paul@+33477858589\"@sms".into(),
            notify: Some("SUCCESS,FAILURE".into()),
            envid: Some("QQ 1".into()),
            ret: Some("HDRS".into()),
            ..job()
        };
        assert_eq!(mail_params(&job), " RET=HDRS ENVID=QQ+201");
        assert_eq!(
            rcpt_params(&job),
            " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;\"Paul@+2B33477858589\"@sms"
        );
        let given = ForwardRequest {
            orcpt: Some("rfc822;paul@example.com".into()),
            notify: None,
            ..job
        };
        assert_eq!(rcpt_params(&given), " ORCPT=rfc822;paul@example.com");
        assert_eq!(domain(&given.recipient), "sms");
    }
}
