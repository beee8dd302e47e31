//! Getting back in step with a modem whose answers may be late, repeated or lost: which
//! bytes to write and how long to listen, decided from the answers heard. Pure: the
//! driver does the writing, the reading and the clock.
//!
//! A modem answers the command lines it reads in order, each with one final result,
//! however late. Plain `AT` answers carry nothing that says which command they end, so
//! a late `OK` cannot be told from the next command's own. Instead the driver knows when
//! it is *in step*: when no answer is owed but the one to the command it is about to
//! send. It is out of step after opening the port, after any timeout, after an answer
//! that does not fit its command, and when answers arrive that nobody waits for. Before
//! the next command it then resynchronises:
//!
//! 1. ESC: leaves an abandoned `> ` prompt (in command mode a modem ignores it: V.250
//!    drops what precedes `AT`).
//! 2. Drain: discard every answer until the line has been quiet for `quiet`.
//! 3. Probe: `AT`, and wait for one final result.
//! 4. Confirm: listen for `quiet` again. Another final result means the first was a
//!    late one (or a repeat): back to 2. Quiet after an `OK`: in step, since the modem
//!    had nothing owed but the probe's answer.
//!
//! A probe without an answer within the command timeout starts again at 1; after
//! `MAX_PROBES` probes, or `MAX_DISCARDED` answers discarded (a babbling modem), the
//! driver gives up and the modem is reopened.

use std::time::Duration;

use super::at::{ESC, Event, Final};

/// Probes sent before giving up.
pub const MAX_PROBES: u32 = 5;
/// Answers discarded in one resynchronisation before giving up.
pub const MAX_DISCARDED: u32 = 100;
/// How long the line must stay without answers to count as quiet.
pub const QUIET: Duration = Duration::from_millis(200);

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes (ESC, or the `AT` probe), then call [`Resync::written`].
    Write(Vec<u8>),
    /// Read for up to this long: each answer (final result, information line, prompt)
    /// to [`Resync::answer`], or [`Resync::quiet`] if none came.
    Listen(Duration),
    /// In step: the next answer is the next command's.
    InStep,
    /// The modem could not be brought back in step; why.
    GiveUp(Stuck),
}

/// Why a resynchronisation gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stuck {
    /// The probes were not answered, or not alone.
    #[error("no lone answer to {0} probes")]
    Unanswered(u32),
    /// More answers than any backlog explains: the modem babbles.
    #[error("{0} answers nobody asked for")]
    Babbling(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// ESC is being written.
    Escaping,
    /// Discarding until quiet.
    Draining,
    /// The probe is being written.
    Probing,
    /// Waiting for the probe's final result.
    AwaitingProbe,
    /// The probe got this final result; listening for anything after it.
    Confirming(Final),
}

/// One resynchronisation, from ESC to in step (or giving up).
#[derive(Debug)]
pub struct Resync {
    phase: Phase,
    /// How long a probe may wait for its answer: the command timeout.
    timeout: Duration,
    quiet: Duration,
    probes: u32,
    discarded: u32,
}

impl Resync {
    /// A resynchronisation whose probes wait `timeout` for their answer; the first step.
    pub fn start(timeout: Duration) -> (Resync, Step) {
        let resync = Resync {
            phase: Phase::Escaping,
            timeout,
            quiet: QUIET,
            probes: 0,
            discarded: 0,
        };
        (resync, Step::Write(vec![ESC]))
    }

    /// Answers discarded so far (late, repeated or stray).
    pub fn discarded(&self) -> u32 {
        self.discarded
    }

    /// Probes sent so far.
    pub fn probes(&self) -> u32 {
        self.probes
    }

    /// The bytes of the last `Step::Write` are written.
    pub fn written(&mut self) -> Step {
        match self.phase {
            Phase::Escaping => {
                self.phase = Phase::Draining;
                Step::Listen(self.quiet)
            }
            Phase::Probing => {
                self.phase = Phase::AwaitingProbe;
                Step::Listen(self.timeout)
            }
            // Nothing was asked to be written: go on listening.
            _ => self.listen(),
        }
    }

    /// An answer was read while listening (unsolicited codes are not answers).
    pub fn answer(&mut self, event: &Event) -> Step {
        match (self.phase, event) {
            (Phase::AwaitingProbe, Event::Final(result)) => {
                self.phase = Phase::Confirming(*result);
                Step::Listen(self.quiet)
            }
            // A prompt means the modem waits for a PDU: leave it first.
            (_, Event::Prompt) => self.discard_then(|resync| resync.escape()),
            (Phase::Confirming(_), _) => self.discard_then(|resync| {
                // Something after the probe's answer: that one may have been a late
                // answer to an earlier command. Drain and probe again.
                resync.phase = Phase::Draining;
                Step::Listen(resync.quiet)
            }),
            _ => self.discard_then(Resync::listen),
        }
    }

    /// The last `Step::Listen` ran out with no answer.
    pub fn quiet(&mut self) -> Step {
        match self.phase {
            Phase::Draining => self.probe(),
            // The probe's answer is late or lost: start again, ESC first.
            Phase::AwaitingProbe => self.escape(),
            Phase::Confirming(Final::Ok) => Step::InStep,
            // A probe answered with an error: not the modem's answer to `AT`, so some
            // other command's; probe again.
            Phase::Confirming(_) => self.probe(),
            Phase::Escaping | Phase::Probing => self.written(),
        }
    }

    fn listen(&mut self) -> Step {
        match self.phase {
            Phase::AwaitingProbe => Step::Listen(self.timeout),
            _ => Step::Listen(self.quiet),
        }
    }

    fn discard_then(&mut self, next: impl FnOnce(&mut Resync) -> Step) -> Step {
        self.discarded += 1;
        if self.discarded > MAX_DISCARDED {
            return Step::GiveUp(Stuck::Babbling(self.discarded));
        }
        next(self)
    }

    fn escape(&mut self) -> Step {
        if self.probes >= MAX_PROBES {
            return Step::GiveUp(Stuck::Unanswered(self.probes));
        }
        self.phase = Phase::Escaping;
        Step::Write(vec![ESC])
    }

    fn probe(&mut self) -> Step {
        if self.probes >= MAX_PROBES {
            return Step::GiveUp(Stuck::Unanswered(self.probes));
        }
        self.probes += 1;
        self.phase = Phase::Probing;
        Step::Write(b"AT\r".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);
    const OK: Event = Event::Final(Final::Ok);

    fn probe() -> Step {
        Step::Write(b"AT\r".to_vec())
    }

    #[test]
    fn a_modem_in_step_is_escaped_drained_probed_and_confirmed() {
        let (mut sync, first) = Resync::start(TIMEOUT);
        assert_eq!(first, Step::Write(vec![ESC]));
        assert_eq!(sync.written(), Step::Listen(QUIET));
        assert_eq!(sync.quiet(), probe());
        assert_eq!(sync.written(), Step::Listen(TIMEOUT));
        assert_eq!(sync.answer(&OK), Step::Listen(QUIET));
        assert_eq!(sync.quiet(), Step::InStep);
        assert_eq!((sync.probes(), sync.discarded()), (1, 0));
    }

    #[test]
    fn a_late_answer_before_the_probe_s_own_is_discarded() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        sync.written();
        // The drain hears an answer left over, then quiet.
        assert_eq!(sync.answer(&Event::Info("+CPIN: READY".into())), Step::Listen(QUIET));
        assert_eq!(sync.answer(&OK), Step::Listen(QUIET));
        assert_eq!(sync.quiet(), probe());
        sync.written();
        // The late OK of a timed-out command, then the probe's: not in step yet.
        assert_eq!(sync.answer(&OK), Step::Listen(QUIET));
        assert_eq!(sync.answer(&OK), Step::Listen(QUIET));
        assert_eq!(sync.quiet(), probe());
        sync.written();
        assert_eq!(sync.answer(&OK), Step::Listen(QUIET));
        assert_eq!(sync.quiet(), Step::InStep);
        assert_eq!((sync.probes(), sync.discarded()), (2, 3));
    }

    #[test]
    fn an_unanswered_probe_starts_again_with_esc_and_gives_up_after_the_last() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        for _ in 0..MAX_PROBES {
            sync.written();
            assert_eq!(sync.quiet(), probe());
            assert_eq!(sync.written(), Step::Listen(TIMEOUT));
            let after = sync.quiet();
            assert_eq!(after, sync_give_up_or_esc(&sync));
        }
        assert_eq!(sync.probes(), MAX_PROBES);
    }

    /// After the last probe, the step after its silence is giving up; before, ESC.
    fn sync_give_up_or_esc(sync: &Resync) -> Step {
        if sync.probes() >= MAX_PROBES {
            Step::GiveUp(Stuck::Unanswered(MAX_PROBES))
        } else {
            Step::Write(vec![ESC])
        }
    }

    #[test]
    fn a_prompt_is_left_with_esc_and_an_error_to_the_probe_is_not_in_step() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        sync.written();
        assert_eq!(sync.answer(&Event::Prompt), Step::Write(vec![ESC]));
        assert_eq!(sync.written(), Step::Listen(QUIET));
        assert_eq!(sync.quiet(), probe());
        sync.written();
        assert_eq!(sync.answer(&Event::Final(Final::Error)), Step::Listen(QUIET));
        assert_eq!(sync.quiet(), probe());
    }

    #[test]
    fn a_babbling_modem_is_given_up() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        sync.written();
        let mut last = Step::InStep;
        for _ in 0..=MAX_DISCARDED {
            last = sync.answer(&Event::Info("babble".into()));
        }
        assert_eq!(last, Step::GiveUp(Stuck::Babbling(MAX_DISCARDED + 1)));
    }
}
