//! One modem's task: open and initialise the port, send the requests the dispatcher
//! hands over, handle status reports and incoming SMS, and reopen with backoff when the
//! modem stops answering.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ModemSpec;
use super::at::{Command, Event, Final, Registration, SignalQuality};
use super::board::{Board, ModemState};
use super::driver::{AtError, Port, SendError};
use super::errors::{self, Outcome};
use super::protocol::{Assignment, Timing, WorkerEvent};
use crate::config::StatusReports;
use crate::metrics;
use crate::sms::{self, AddressKind, Deliver, Pdu, ReportStatus, StatusReport, SubmitOptions};
use crate::store::{InboundRules, PartOutcome, QueuedRequest, ReceivedPart, State, Store, StoreError};

/// What a worker is given when the pool starts it.
pub(super) struct Context {
    /// Its modem's place in the pool, as its events name it.
    pub index: usize,
    /// Its modem: device, PIN, tariff, timeouts.
    pub spec: Arc<ModemSpec>,
    /// Where it tells how its modem is (state, signal, counters).
    pub board: Arc<Board>,
    /// Where it records each part sent and each outcome.
    pub store: Store,
    /// To the dispatcher: when the worker is free for another assignment.
    pub events: mpsc::Sender<WorkerEvent>,
    /// Retry delays and validity, for requests it cannot send now.
    pub timing: Timing,
    /// `[inbound]`, applied by the store to the SMS its modem receives.
    pub inbound: Arc<InboundRules>,
    /// Stops the worker; the SMS in hand is finished first.
    pub shutdown: CancellationToken,
}

/// Why a modem stopped serving.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("{0}")]
    At(#[from] AtError),
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The SIM is not usable yet or not there (`NOT READY` for too long, `NOT INSERTED`,
    /// a state we do not know): reopened with backoff, as it may come right.
    #[error("{0}")]
    Sim(String),
    /// Retrying would make things worse (a wrong PIN locks the SIM after three tries).
    #[error("{0}")]
    Fatal(String),
}

/// How often, and how many times, `AT+CPIN?` is asked again in place while the SIM says
/// `NOT READY` (normal for a second or two after `RDY`), before the modem is reopened.
const SIM_NOT_READY_PAUSE: Duration = Duration::from_millis(500);
const SIM_NOT_READY_TRIES: u32 = 4;

/// What `+CPIN: <code>` says, for what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SimState {
    /// `READY`: no PIN owed.
    Ready,
    /// `SIM PIN`: the configured PIN is entered, once.
    Pin,
    /// `NOT READY`: still starting; asked again shortly.
    NotReady,
    /// Needs what only a person can give (`SIM PUK`, `PH-…` lock codes, `SIM PIN2`,
    /// `SIM PUK2`): disabled until restart, since retrying cannot help and wrong codes
    /// lock the SIM.
    Locked,
    /// `NOT INSERTED`, or a code we do not know: reopened with backoff.
    Unusable,
}

impl SimState {
    /// The state the `+CPIN:` line among `answer` gives.
    fn of(answer: &[String]) -> SimState {
        let code = answer
            .iter()
            .find_map(|line| line.strip_prefix("+CPIN:"))
            .unwrap_or_default()
            .trim();
        match code {
            "READY" => SimState::Ready,
            "SIM PIN" => SimState::Pin,
            "NOT READY" => SimState::NotReady,
            "SIM PUK" | "SIM PIN2" | "SIM PUK2" => SimState::Locked,
            _ if code.starts_with("PH-") => SimState::Locked,
            _ => SimState::Unusable,
        }
    }
}

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the board shows of the radio: `AT+CSQ` and `AT+CREG?`, typed.
type Radio = (Option<SignalQuality>, Option<Registration>);

/// Serves one modem until `shutdown`: opens it, sends what it is assigned, and reopens
/// it with backoff whenever it stops answering (not after a fatal SIM error).
pub(super) async fn run(context: Context, mut assignments: mpsc::Receiver<Assignment>) {
    let name = &context.spec.name;
    let mut backoff = Duration::from_secs(1);
    loop {
        let stop = match open(&context.spec).await {
            Ok((mut port, (signal, registration))) => {
                tracing::info!(modem = %name, "ready");
                context.board.ready(name, signal, registration);
                backoff = Duration::from_secs(1);
                let _ = context.events.send(WorkerEvent::Ready(context.index)).await;
                serve(&context, &mut port, &mut assignments).await
            }
            Err(stop) => Err(stop),
        };
        let _ = context.events.send(WorkerEvent::Down(context.index)).await;
        context.board.set_state(name, ModemState::Down);
        requeue_pending(&context, &mut assignments).await;
        match stop {
            Ok(()) => return,
            Err(Stop::Fatal(why)) => {
                context.board.set_state(name, ModemState::Disabled);
                tracing::error!(modem = %name, "{why}; this modem is disabled until restart");
                context.shutdown.cancelled().await;
                return;
            }
            Err(error) => tracing::warn!(modem = %name, %error, retry_in = ?backoff, "modem down, reopening"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = context.shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Assignments handed over while the modem went down go back to the queue untouched.
async fn requeue_pending(context: &Context, assignments: &mut mpsc::Receiver<Assignment>) {
    while let Ok(assignment) = assignments.try_recv() {
        let reason = format!("modem {} went down before sending", context.spec.name);
        let _ = context.store.requeue(assignment.request.id, 0, reason).await;
    }
}

/// The port, initialised, and the radio state it reported.
async fn open(spec: &ModemSpec) -> Result<(Port, Radio), Stop> {
    let mut port = Port::open(&spec.device, spec.baud, &spec.name, spec.command_timeout)?;
    let radio = init(&mut port, spec).await?;
    Ok((port, radio))
}

/// The init sequence below, in order; identity, registration and signal are logged.
async fn init(port: &mut Port, spec: &ModemSpec) -> Result<Radio, Stop> {
    // ESC first, then in step: a prompt left open, garbage or answers still owed from
    // before the port was closed are behind us before the first command.
    port.resync().await?;
    port.command(&Command::EchoOff).await?;
    port.command(&Command::VerboseErrors).await?;
    unlock(port, spec).await?;
    port.command(&Command::PduMode).await?;
    if !spec.smsc.is_empty() {
        port.command(&Command::ServiceCentre(spec.smsc.clone())).await?;
    }
    // Before the indications: new SMS go where the listing at start looks. A modem that
    // refuses is used as it is (`+CMTI` names the memory of each new one anyway).
    match port.command(&Command::SimMemoryForAll).await {
        Ok(_) => {}
        Err(AtError::Failed { result, .. }) => {
            tracing::warn!(modem = %spec.name, ?result, "AT+CPMS=\"SM\",\"SM\",\"SM\" refused: SMS that arrive while the gateway is down may be found only when announced again")
        }
        Err(error) => return Err(error.into()),
    }
    port.command(&Command::Indications(spec.reports)).await?;
    // Unsolicited +CREG: reports look like AT+CREG?'s answer: off, or each cell change
    // puts the driver out of step. A modem that refuses is used as it is.
    match port.command(&Command::RegistrationReportsOff).await {
        Ok(_) => {}
        Err(AtError::Failed { result, .. }) => {
            tracing::warn!(modem = %spec.name, ?result, "AT+CREG=0 refused: +CREG reports may put the driver out of step")
        }
        Err(error) => return Err(error.into()),
    }
    let mut identity = Vec::new();
    for command in [Command::Manufacturer, Command::Model, Command::Serial] {
        identity.push(port.command(&command).await?.join(" "));
    }
    let (signal, registration) = radio(port).await?;
    tracing::info!(
        modem = %spec.name,
        identity = %identity.join(" "),
        registration = ?registration,
        signal = %signal.map_or("unknown".to_string(), |s| s.to_string()),
        "initialised"
    );
    Ok((signal, registration))
}

/// `AT+CREG?` and `AT+CSQ`, typed; None for an answer that carries no usable value.
async fn radio(port: &mut Port) -> Result<Radio, AtError> {
    let registration = Registration::from_answer(&port.command(&Command::Registration).await?);
    let signal = SignalQuality::from_answer(&port.command(&Command::SignalQuality).await?);
    Ok((signal, registration))
}

/// The idle poll of signal and registration. A modem that answers badly once is kept
/// (the next command resynchronises first); a port that fails or a modem that cannot be
/// brought back in step is down.
async fn poll_radio(context: &Context, port: &mut Port) -> Result<(), Stop> {
    let name = &context.spec.name;
    match radio(port).await {
        Ok((signal, registration)) => {
            tracing::debug!(modem = %name, ?registration, signal = ?signal.map(|s| s.to_string()), "radio read");
            context.board.radio(name, signal, registration);
            Ok(())
        }
        Err(error @ (AtError::Timeout(..) | AtError::Failed { .. } | AtError::Implausible { .. })) => {
            tracing::warn!(modem = %name, %error, "signal and registration not read");
            Ok(())
        }
        Err(error) => Err(error.into()),
    }
}

async fn unlock(port: &mut Port, spec: &ModemSpec) -> Result<(), Stop> {
    // The driver returns only an answer with a `+CPIN:` line: anything else (a late
    // OK) is an error that reopens the modem, never a reason to disable it.
    let mut state = SimState::of(&port.command(&Command::PinQuery).await?);
    let mut tries = 1;
    while state == SimState::NotReady && tries < SIM_NOT_READY_TRIES {
        tokio::time::sleep(SIM_NOT_READY_PAUSE).await;
        state = SimState::of(&port.command(&Command::PinQuery).await?);
        tries += 1;
    }
    match state {
        SimState::Ready => return Ok(()),
        SimState::Pin => {}
        SimState::NotReady => {
            return Err(Stop::Sim(format!(
                "the SIM is not ready (+CPIN: NOT READY {tries} times)"
            )));
        }
        SimState::Unusable => {
            return Err(Stop::Sim(
                "the SIM is not usable (not inserted, or a state unknown to us)".into(),
            ));
        }
        SimState::Locked => {
            return Err(Stop::Fatal(
                "the SIM is locked (it wants a PUK, PIN2 or a phone lock code): unlock it first".into(),
            ));
        }
    }
    if spec.pin.is_empty() {
        return Err(Stop::Fatal("the SIM asks for a PIN: set modem.pin".into()));
    }
    match port.command(&Command::PinEnter(spec.pin.clone())).await {
        Ok(_) => Ok(()),
        Err(AtError::Failed { result, .. }) => Err(Stop::Fatal(format!(
            "the SIM refused modem.pin ({result:?}); not retried, a third wrong PIN would lock it"
        ))),
        Err(error) => Err(error.into()),
    }
}

async fn serve(context: &Context, port: &mut Port, assignments: &mut mpsc::Receiver<Assignment>) -> Result<(), Stop> {
    read_stored(context, port).await?;
    let mut next_poll = tokio::time::Instant::now() + context.spec.radio_poll;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_poll) => {
                poll_radio(context, port).await?;
                next_poll = tokio::time::Instant::now() + context.spec.radio_poll;
            }
            assignment = assignments.recv() => {
                let Some(assignment) = assignment else { return Ok(()) };
                let result = send(context, port, assignment.request).await;
                let _ = context.events.send(WorkerEvent::Done(context.index)).await;
                result?;
            }
            event = port.next_unsolicited() => unsolicited(context, port, event?).await?,
            () = context.shutdown.cancelled() => return Ok(()),
        }
        while let Some(event) = port.unsolicited.pop_front() {
            unsolicited(context, port, event).await?;
        }
    }
}

/// Sends every part not sent yet; the outcome is written to the store. An error return
/// means the modem itself is unwell.
async fn send(context: &Context, port: &mut Port, request: QueuedRequest) -> Result<(), Stop> {
    let (store, modem) = (&context.store, &context.spec.name);
    let options = SubmitOptions {
        status_report: context.spec.reports != StatusReports::None,
        validity_minutes: Some((context.timing.validity.as_secs() / 60) as u32),
        reference: (request.id & 0xFFFF) as u16,
        languages: context.spec.languages.clone(),
        ..Default::default()
    };
    let pdus = match sms::encode_submit(&request.number, &request.text, &options) {
        Ok(pdus) => pdus,
        Err(error) => {
            store
                .fail(
                    request.id,
                    State::Failed,
                    "5.6.0",
                    format!("cannot encode the SMS: {error}"),
                )
                .await?;
            return Ok(());
        }
    };
    let unreported = context.spec.reports == StatusReports::None;
    if (1..=pdus.len()).all(|part| request.sent_parts.contains(&part)) {
        let sent_after = persist(context, || {
            store.mark_sent_if_complete(request.id, pdus.len(), unreported)
        })
        .await?;
        sent_after
            .into_iter()
            .for_each(|after| metrics::SENT_AFTER.observe(after));
        return Ok(());
    }
    // Counted as they go, not as parts minus those sent before: a text split anew may
    // have fewer parts than were sent before (the language tables changed meanwhile).
    let mut sent_now = 0;
    for (index, pdu) in pdus.iter().enumerate() {
        let part = index + 1;
        if request.sent_parts.contains(&part) {
            continue;
        }
        // In step before the lease is renewed: a resynchronisation after the renewal
        // could outlive it, and the PDU would leave for a request the lease recovery has
        // called uncertain. `send_pdu` may resynchronise again; the lease covers that.
        if let Err(error) = port.prepare().await {
            return failed(context, &request, part, SendError::BeforePdu(error)).await;
        }
        let lease = context.spec.lease().as_millis() as i64;
        if !persist(context, || store.mark_part_submitting(request.id, part, modem, lease)).await? {
            tracing::warn!(modem = %modem, request = request.id, part, "lease lost: another attempt owns it, not sending");
            return Ok(());
        }
        match port.send_pdu(&pdu.hex, pdu.tpdu_len, context.spec.send_timeout).await {
            Ok(mr) => {
                let sent_after = persist(context, || {
                    store.mark_part_sent(request.id, part, pdus.len(), mr, unreported)
                })
                .await?;
                sent_after
                    .into_iter()
                    .for_each(|after| metrics::SENT_AFTER.observe(after));
                sent_now += 1;
            }
            Err(error) => return failed(context, &request, part, error).await,
        }
    }
    tracing::info!(modem = %modem, request = request.id, parts = pdus.len(), "sent");
    context.board.sent(modem, sent_now);
    Ok(())
}

async fn failed(context: &Context, request: &QueuedRequest, part: usize, error: SendError) -> Result<(), Stop> {
    let store = &context.store;
    let modem = &context.spec.name;
    tracing::warn!(modem = %modem, request = request.id, part, %error, "send failed");
    context.board.send_error(modem);
    match error {
        SendError::BeforePdu(at) => {
            retry_later(context, request, format!("modem {modem}: {at}")).await?;
            match at {
                // The port is out of step, and the next command resynchronises in place
                // (ESC leaves a prompt that came late): no reopen needed.
                AtError::Timeout(..) | AtError::Implausible { .. } => Ok(()),
                // The port failed, or could not be brought back in step: reopen it.
                other => Err(other.into()),
            }
        }
        SendError::AfterPdu(at) => {
            let reason = format!("modem {modem} sent part {part} but did not confirm it ({at}): may have been sent");
            persist(context, || store.mark_uncertain(request.id, reason.clone())).await?;
            Err(at.into())
        }
        SendError::Refused(result) => match errors::classify(result) {
            Outcome::Permanent { status, reason } => {
                let reason = format!("modem {modem}: {reason}");
                persist(context, || {
                    store.fail(request.id, State::Failed, status, reason.clone())
                })
                .await?;
                Ok(())
            }
            Outcome::Temporary { reason, modem_fault } => {
                retry_later(context, request, format!("modem {modem}: {reason}")).await?;
                if modem_fault {
                    Err(Stop::At(AtError::Failed {
                        command: "AT+CMGS".into(),
                        result: result.into(),
                    }))
                } else {
                    Ok(())
                }
            }
        },
    }
}

/// Back to the queue after the attempt's delay, or expired once validity ran out
/// (counted from the operator's retry, if there was one).
async fn retry_later(context: &Context, request: &QueuedRequest, reason: String) -> Result<(), StoreError> {
    let timing = &context.timing;
    let age = crate::store::now_ms().saturating_sub(request.valid_from);
    if age >= timing.validity.as_millis() as i64 {
        let why = format!("not sent within its validity: {reason}");
        return persist(context, || {
            context.store.fail(request.id, State::Expired, "4.4.7", why.clone())
        })
        .await;
    }
    // The dispatcher's claim counted this attempt: 1 after the first.
    let delay = timing.retry.delay(u64::try_from(request.attempts).unwrap_or(0));
    let reason = format!("{reason}; retry in {delay:?}");
    persist(context, || {
        context
            .store
            .requeue(request.id, delay.as_millis() as i64, reason.clone())
    })
    .await
}

/// Writes what the modem did (or is about to do) to the store, again and again while the
/// store is out of reach (PostgreSQL restarting), for as long as a lease lasts: what the
/// modem did is known, and a passing outage must not turn a sent SMS into an uncertain
/// one. Past that, or at shutdown, the error stands, and lease recovery decides, as
/// after a crash.
async fn persist<T, F, W>(context: &Context, mut write: W) -> Result<T, StoreError>
where
    W: FnMut() -> F,
    F: Future<Output = Result<T, StoreError>>,
{
    let give_up = tokio::time::Instant::now() + context.spec.lease();
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Err(error) if error.is_transient() && tokio::time::Instant::now() + pause < give_up => {
                tracing::warn!(modem = %context.spec.name, %error, retry_in = ?pause, "the store is out of reach: writing again");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = context.shutdown.cancelled() => return Err(error),
                }
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            result => return result,
        }
    }
}

/// What arrived in the SIM's memory while no one listened, or was read but not deleted
/// before the gateway stopped: each message is stored (a part stored before is known
/// as a copy), then deleted. A modem that cannot list is used as it is.
async fn read_stored(context: &Context, port: &mut Port) -> Result<(), Stop> {
    let modem = &context.spec.name;
    let memory = super::at::Memory::new("SM").expect("SM is a memory name");
    let listed = match port.command(&Command::SelectMemory(memory)).await {
        Ok(_) => port.command(&Command::ListAll).await,
        Err(error) => Err(error),
    };
    let lines = match listed {
        Ok(lines) => lines,
        Err(error @ (AtError::Implausible { .. } | AtError::Failed { .. })) => {
            tracing::warn!(modem = %modem, %error, "cannot list the SMS stored in the SIM; only new ones are read");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    // Received ones only: the messages a phone stored to send are left alone.
    for message in super::at::listed(&lines).into_iter().filter(|m| m.stat <= 1) {
        tracing::info!(modem = %modem, index = message.index, "SMS found in the SIM");
        if stored_or_direct(context, &message.pdu, message.length).await? {
            port.command(&Command::Delete(message.index)).await?;
        }
    }
    Ok(())
}

async fn unsolicited(context: &Context, port: &mut Port, event: Event) -> Result<(), Stop> {
    let modem = &context.spec.name;
    match event {
        Event::StatusReport { length, pdu } => _ = stored_or_direct(context, &pdu, length).await?,
        // An SMS, or a status report (`+CNMI` with ds=2), kept in the modem's memory.
        Event::Stored { memory, index } => {
            // Reports are often kept apart from SMS ("SR" beside "SM"): look where it is.
            port.command(&Command::SelectMemory(memory)).await?;
            let lines = match port.command(&Command::Read(index)).await {
                Ok(lines) => lines,
                // An empty slot (a bare OK, or 321, invalid index): nothing to read, but
                // the index is deleted all the same, and the modem goes on.
                Err(
                    error @ (AtError::Implausible { .. }
                    | AtError::Failed {
                        result: Final::Cms(321),
                        ..
                    }),
                ) => {
                    tracing::debug!(modem = %modem, index, %error, "stored message not read");
                    Vec::new()
                }
                // Not read now (the SIM busy, say): left there, read from the listing at
                // the next start rather than deleted unread.
                Err(error @ AtError::Failed { .. }) => {
                    tracing::warn!(modem = %modem, index, %error, "stored message not read now: left in the SIM");
                    return Ok(());
                }
                Err(error) => return Err(error.into()),
            };
            // `+CMGR: <stat>,[<alpha>],<length>` then the PDU (the first hex line after).
            let header = lines.iter().position(|l| l.starts_with("+CMGR:"));
            let length = header.and_then(|at| lines[at].rsplit(',').next()?.trim().parse().ok());
            let pdu = header.and_then(|at| {
                lines[at + 1..]
                    .iter()
                    .find(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_hexdigit()))
            });
            let stored = match (length, pdu) {
                (Some(length), Some(pdu)) => stored_or_direct(context, pdu, length).await?,
                _ => {
                    tracing::warn!(modem = %modem, index, ?lines, "unreadable stored message");
                    true
                }
            };
            if stored {
                port.command(&Command::Delete(index)).await?;
            }
        }
        // Includes +CMTI/+CDSI lines whose memory name is not one (see `at::Memory`).
        other => tracing::debug!(modem = %modem, ?other, "unsolicited"),
    }
    Ok(())
}

/// A PDU the modem passed on: an incoming SMS part goes to the store (which makes it an
/// inbox row once whole), a status report to the part it reports on. Returns once that
/// is committed, saying whether the modem may delete it now (false: the store refused
/// the part for good, and it stays in the SIM).
async fn stored_or_direct(context: &Context, pdu: &str, length: usize) -> Result<bool, StoreError> {
    let modem = &context.spec.name;
    match sms::decode_with_tpdu_len(pdu, length) {
        Ok(Pdu::StatusReport(report)) => status_report(context, report).await.map(|()| true),
        Ok(Pdu::Deliver(deliver)) => {
            let part = received_part(modem, deliver, &context.inbound);
            let (from, concat) = (part.originator.clone(), part.concat);
            let outcome = match persist(context, || context.store.receive_part(part.clone(), &context.inbound)).await {
                Ok(outcome) => outcome,
                // Refused for good (not a connection lost): left in the SIM, and the
                // modem goes on sending; the operator sees why.
                Err(error) if !error.is_transient() => {
                    tracing::error!(modem = %modem, %from, %error, "cannot store an SMS part: left in the SIM");
                    return Ok(false);
                }
                Err(error) => return Err(error),
            };
            if outcome != PartOutcome::Duplicate {
                metrics::bump(&metrics::SMS_PARTS_RECEIVED);
            }
            match outcome {
                PartOutcome::Duplicate => {
                    tracing::info!(modem = %modem, %from, ?concat, "SMS part received again: kept once")
                }
                PartOutcome::Waiting => {
                    tracing::info!(modem = %modem, %from, ?concat, "SMS part received; waiting for the others")
                }
                PartOutcome::Complete(inbox) => tracing::info!(modem = %modem, %from, inbox, "SMS received"),
            }
            Ok(true)
        }
        other => {
            tracing::warn!(modem = %modem, pdu, ?other, "unreadable PDU from the modem");
            Ok(true)
        }
    }
}

/// The part an SMS-DELIVER is, for the store. A number the network gave in national
/// (or unknown) form becomes E.164 in `sms.default_region`, so that replies, threads
/// and stop words find it; an alphanumeric sender stays a name. Control characters
/// (a NUL a UCS-2 sender can put in) are replaced: neither the store nor a mail
/// should carry them.
fn received_part(modem: &str, deliver: Deliver, rules: &InboundRules) -> ReceivedPart {
    let concat = deliver
        .udh
        .as_ref()
        .and_then(|h| h.concat)
        .filter(|c| c.parts > 1 && (1..=c.parts).contains(&c.part))
        .map(|c| (c.reference, c.parts, c.part));
    let address = deliver.originator;
    let originator = match address.kind {
        AddressKind::Unknown | AddressKind::National => {
            crate::address::originator_e164(&address.number, rules.region).map_or(address.number, |n| n.to_string())
        }
        _ => address.number,
    };
    let text = deliver
        .body
        .as_str()
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    ReceivedPart {
        modem: modem.to_string(),
        originator,
        sent: deliver.timestamp,
        concat,
        text,
    }
}

async fn status_report(context: &Context, report: StatusReport) -> Result<(), StoreError> {
    let modem = &context.spec.name;
    let (delivered, detail) = match report.result {
        ReportStatus::Delivered => (true, format!("delivered at {}", report.discharge_time)),
        ReportStatus::StillTrying => return Ok(()),
        failure => (
            false,
            format!(
                "{failure:?} (TP-ST {:#04x}) at {}",
                report.status, report.discharge_time
            ),
        ),
    };
    let number = report.recipient.number.clone();
    let matched = persist(context, || {
        context.store.record_status_report(
            modem,
            report.message_reference,
            number.clone(),
            delivered,
            detail.clone(),
        )
    })
    .await?;
    match matched {
        Some(part) if delivered => metrics::DELIVERED_AFTER.observe(part.after),
        Some(_) => {}
        None => {
            tracing::warn!(modem = %modem, mr = report.message_reference, number = %report.recipient.number, "status report matches no sent part")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sim_that_needs_a_person_is_locked() {
        let table = [
            ("+CPIN: READY", SimState::Ready),
            ("+CPIN: SIM PIN", SimState::Pin),
            ("+CPIN: NOT READY", SimState::NotReady),
            ("+CPIN: NOT INSERTED", SimState::Unusable),
            ("+CPIN: SIM BUSY", SimState::Unusable),
            ("+CPIN: SIM PUK", SimState::Locked),
            ("+CPIN: SIM PIN2", SimState::Locked),
            ("+CPIN: SIM PUK2", SimState::Locked),
            ("+CPIN: PH-SIM PIN", SimState::Locked),
            ("+CPIN: PH-NET PUK", SimState::Locked),
        ];
        for (line, expected) in table {
            assert_eq!(SimState::of(&[line.to_string()]), expected, "{line}");
        }
        assert_eq!(SimState::of(&[]), SimState::Unusable);
    }
}
