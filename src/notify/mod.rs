//! The outbound mail stage: mails each DSN the store has queued (RFC 3464, built by
//! [`build`]) to the original sender, and each incoming SMS to whom the store decided
//! (built by [`inbound`]), through one transport (`send`: `outbound.smart_host` or
//! the recipient domain's MX), retrying until `outbound.lifetime_hours` runs out.

pub mod build;
pub mod inbound;
mod send;

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics;
use crate::outbound::{Client, TlsPolicy, TlsSetupError};
use crate::retry::RetrySchedule;
use crate::stage::{self, Round};
use crate::store::{DsnAction, DsnOutcome, InboundRules, PendingDsn, PendingInbound, ReportWait, Store, now_ms};
use build::{Action, DsnContent, ReportingMta};

/// Looks for timed DSNs (delayed, relayed) this often.
const SWEEP: Duration = Duration::from_secs(1);
/// How the reason of a mail dropped because its lifetime ran out begins.
const EXPIRED: &str = "not delivered within its lifetime";
/// DSNs, and mails of incoming SMS, delivered at once.
const BATCH: usize = 16;

/// Everything the stage needs, built before the gateway starts so that a bad TLS
/// setting stops it at once.
pub struct Notifier {
    sender: send::Sender,
    hostname: String,
    instance: String,
    from: String,
    delay_after_ms: Option<i64>,
    report_wait_ms: Option<i64>,
    /// Sent requests before this time were already looked at for `relayed` DSNs.
    reports_seen_until: std::sync::atomic::AtomicI64,
    /// `outbound.retry_delays_secs`.
    retry: RetrySchedule,
    lifetime_ms: i64,
    grace: Duration,
    /// `[inbound]`: when an incomplete SMS is delivered as it is.
    inbound: InboundRules,
    /// The first of `smtp.sms_domains`: the domain of an SMS mail's From.
    sms_domain: String,
}

impl Notifier {
    /// The stage as configured by `[dsn]`, delivering through `[outbound]`; fails if the
    /// latter's TLS settings (CA file, pins) do not load.
    pub fn new(config: &Config) -> Result<Notifier, TlsSetupError> {
        let (dsn, outbound) = (&config.dsn, &config.outbound);
        let client = Client {
            helo: config.smtp.hostname.clone(),
            tls: TlsPolicy::new(config.outbound_tls(), &outbound.tls_ca_file, &outbound.tls_pin_sha256)?,
            timeout: Duration::from_secs(outbound.timeout_secs),
        };
        Ok(Notifier {
            sender: send::Sender {
                client,
                destination: send::Destination::new(outbound),
            },
            hostname: config.smtp.hostname.clone(),
            instance: config.instance.name.clone(),
            from: config.dsn_from(),
            delay_after_ms: (dsn.delay_after_secs > 0).then(|| secs_to_ms(dsn.delay_after_secs)),
            report_wait_ms: (dsn.report_wait_secs > 0).then(|| secs_to_ms(dsn.report_wait_secs)),
            reports_seen_until: std::sync::atomic::AtomicI64::new(0),
            retry: outbound.retry_delays_secs.clone(),
            lifetime_ms: secs_to_ms(outbound.lifetime_hours.saturating_mul(3600)),
            grace: Duration::from_secs(config.smtp.shutdown_grace_secs),
            inbound: InboundRules::of(config),
            sms_domain: config.smtp.sms_domains.first().cloned().unwrap_or_else(|| "sms".into()),
        })
    }

    /// Delivers DSNs until `shutdown`; deliveries under way then get the grace period.
    pub async fn run(self, store: Store, shutdown: CancellationToken) {
        let notifier = std::sync::Arc::new(self);
        let (notifier, store, shutdown) = (&notifier, &store, &shutdown);
        stage::run(&store.wake.outbound, SWEEP, shutdown, || async move {
            // A DSN delivered but not recorded is due again at once: the backoff keeps
            // it from being sent again in a loop.
            let round = notifier.round(store, shutdown).await;
            let next_due = async {
                let (dsn, inbound) = (store.next_dsn_in().await?, store.next_inbound_in().await?);
                Ok::<_, crate::store::StoreError>(dsn.into_iter().chain(inbound).min())
            };
            stage::after_round("outbound mail stage", round, next_due).await
        })
        .await;
    }

    /// Queues timed DSNs, stores overdue incomplete SMS, and delivers one batch of due
    /// DSNs and one of due SMS mails.
    async fn round(
        self: &std::sync::Arc<Self>,
        store: &Store,
        shutdown: &CancellationToken,
    ) -> Result<Round, crate::store::StoreError> {
        use std::sync::atomic::Ordering;
        // Each sweep looks at the requests sent since the last one (all of them at start).
        let report_wait = self.report_wait_ms.map(|wait_ms| ReportWait {
            wait_ms,
            since: self.reports_seen_until.load(Ordering::Relaxed),
        });
        let cutoff = now_ms() - self.report_wait_ms.unwrap_or(0);
        store.queue_timed_dsns(self.delay_after_ms, report_wait).await?;
        // A request sent just at the cutoff may be committed a little after this sweep
        // read: the next one looks a second further back.
        self.reports_seen_until.store(cutoff - 1000, Ordering::Relaxed);
        // Its failure holds no DSN back: they are delivered all the same.
        if let Err(error) = store.complete_overdue(&self.inbound).await {
            tracing::error!(%error, "cannot store the SMS whose parts are overdue");
        }
        let jobs = store.dsns_due(BATCH).await?;
        let mails = store.inbound_due(BATCH).await?;
        let full = jobs.len() == BATCH || mails.len() == BATCH;
        let mut deliveries = JoinSet::new();
        for mail in mails {
            let (notifier, store) = (self.clone(), store.clone());
            deliveries.spawn(async move {
                let outcome = notifier.deliver_sms(&store, &mail).await;
                let recorded = store.record_inbound_attempt(&mail, outcome).await;
                if let Err(error) = &recorded {
                    tracing::error!(%error, "cannot record the delivery of an SMS's mail");
                }
                recorded.is_ok()
            });
        }
        for job in jobs {
            let (notifier, store) = (self.clone(), store.clone());
            deliveries.spawn(async move {
                let outcome = notifier.attempt(&job).await;
                let recorded = store.record_dsn_attempt(job, outcome).await;
                if let Err(error) = &recorded {
                    tracing::error!(%error, "cannot record a DSN delivery");
                }
                recorded.is_ok()
            });
        }
        let mut unrecorded = false;
        let mut collect = async || {
            while let Some(done) = deliveries.join_next().await {
                unrecorded |= done.is_ok_and(|recorded| !recorded);
            }
        };
        tokio::select! {
            () = collect() => {}
            () = shutdown.cancelled() => {
                // Cut short, a delivery is tried again after the restart: a sender may
                // get a DSN twice, never none.
                let _ = tokio::time::timeout(self.grace, collect()).await;
            }
        }
        Ok(match (unrecorded, full) {
            (true, _) => Round::Unrecorded,
            (false, true) => Round::Full,
            (false, false) => Round::Done,
        })
    }

    /// One attempt at the mail of an incoming SMS.
    async fn deliver_sms(&self, store: &Store, mail: &PendingInbound) -> DsnOutcome {
        let writer = inbound::Writer {
            hostname: &self.hostname,
            sms_domain: &self.sms_domain,
            store_id: store.id(),
        };
        let message = inbound::build(mail, &writer);
        let outcome = self
            .outcome(&self.from, &mail.recipient, &message, mail.attempts, mail.sms.received)
            .await;
        let (inbox, from, to) = (mail.sms.id, &mail.sms.originator, &mail.recipient);
        match &outcome {
            DsnOutcome::Sent(answer) => {
                tracing::info!(inbox, %from, %to, %answer, "SMS mailed");
                metrics::bump(&metrics::SMS_MAILED);
            }
            DsnOutcome::Retry { error, .. } => tracing::warn!(inbox, %from, %to, %error, "SMS not mailed yet"),
            DsnOutcome::Dropped(why) => {
                tracing::error!(inbox, %from, %to, %why, "SMS mail dropped");
                metrics::bump(&metrics::SMS_MAIL_DROPPED);
            }
        }
        outcome
    }

    /// Delivers `message` from `from` to `to`, and says what became of the attempt
    /// after `attempts` earlier ones: sent, dropped (refused for good, or its lifetime
    /// from `created` would run out before the next), or to retry.
    async fn outcome(&self, from: &str, to: &str, message: &[u8], attempts: i64, created: i64) -> DsnOutcome {
        match self.sender.deliver(from, to, message).await {
            Ok(answer) => DsnOutcome::Sent(answer),
            Err(error) if error.is_permanent() => DsnOutcome::Dropped(error.to_string()),
            Err(error) => {
                // The attempts recorded before this one, then this one.
                let failed = u64::try_from(attempts).map_or(u64::MAX, |made| made.saturating_add(1));
                let delay = self.retry.delay(failed);
                let at = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                if at > created + self.lifetime_ms {
                    return DsnOutcome::Dropped(format!("{EXPIRED}, last error: {error}"));
                }
                DsnOutcome::Retry {
                    at,
                    error: error.to_string(),
                }
            }
        }
    }

    async fn attempt(&self, job: &PendingDsn) -> DsnOutcome {
        let reporter = ReportingMta {
            hostname: &self.hostname,
            instance: &self.instance,
            from: &self.from,
        };
        let message = build::build(&content(job), &reporter);
        let action = job.action.as_str();
        // The null sender: a DSN is never answered with a DSN (RFC 3461 §6.2).
        let outcome = self.outcome("", &job.sender, &message, job.attempts, job.created).await;
        match &outcome {
            DsnOutcome::Sent(answer) => {
                tracing::info!(request = job.request, action, to = %job.sender, %answer, "DSN delivered");
                metrics::bump(&metrics::DSN_DELIVERED);
            }
            DsnOutcome::Retry { at, error } => {
                let retry_in_secs = (at - now_ms()).max(0) / 1000;
                tracing::warn!(request = job.request, action, to = %job.sender, %error, retry_in_secs, "DSN not delivered yet");
            }
            DsnOutcome::Dropped(why) if why.starts_with(EXPIRED) => {
                tracing::error!(request = job.request, action, to = %job.sender, "DSN {why}; dropped");
                metrics::bump(&metrics::DSN_DROPPED);
            }
            DsnOutcome::Dropped(error) => {
                tracing::warn!(request = job.request, action, to = %job.sender, %error, "DSN refused; dropped");
                metrics::bump(&metrics::DSN_DROPPED);
            }
        }
        outcome
    }
}

fn content(job: &PendingDsn) -> DsnContent<'_> {
    DsnContent {
        id: job.id,
        action: match job.action {
            DsnAction::Delivered => Action::Delivered,
            DsnAction::Relayed => Action::Relayed,
            DsnAction::Failed => Action::Failed,
            DsnAction::Delayed => Action::Delayed,
        },
        date: job.created,
        sender: &job.sender,
        envid: job.envid.as_deref(),
        return_full: job.ret.as_deref() == Some("FULL"),
        arrival: job.arrival,
        original: &job.raw,
        recipient: &job.recipient,
        orcpt: job.orcpt.as_deref(),
        number: &job.number,
        text: &job.text,
        parts: job.parts,
        modem: job.modem.as_deref(),
        status: job.status.as_deref(),
        reason: job.reason.as_deref(),
        last_attempt: job.updated,
    }
}

fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2)
}
