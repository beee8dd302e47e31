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
//! `MAX_PROBES` probes, or `MAX_DISCARDED` answers discarded (a babbling modem), or once
//! the whole resynchronisation has taken its [`budget`], the driver gives up and the
//! modem is reopened. The probe's deadline is fixed when it is written: stray lines
//! heard meanwhile do not extend it, and the budget bounds the whole, so that a request
//! whose lease was renewed just before never outlives it here (see `ModemSpec::lease`).
//! An information line heard while awaiting the probe's answer marks the final result
//! after it as another command's (plain `AT` has none): drained, and probed again.
//!
//! The machine reads no clock: each call says how long the resynchronisation has run
//! (`elapsed`, from the driver's clock), and each `Listen` is what is left of its window.

use std::time::Duration;

use super::at::{ESC, Event, Final};

/// Probes sent before giving up.
pub const MAX_PROBES: u32 = 5;
/// Answers discarded in one resynchronisation before giving up.
pub const MAX_DISCARDED: u32 = 100;
/// How long the line must stay without answers to count as quiet.
pub const QUIET: Duration = Duration::from_millis(200);

/// The longest a resynchronisation with probes of `timeout` may run: one command
/// timeout per probe and one more for the writes, and two quiet windows per probe (the
/// drain before it, the confirmation after). Enough for every probe a silent modem
/// gets; a modem that keeps talking runs out of it instead.
pub fn budget(timeout: Duration) -> Duration {
    timeout
        .saturating_mul(MAX_PROBES + 1)
        .saturating_add(QUIET.saturating_mul(2 * MAX_PROBES))
}

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
    /// Its budget ran out (a modem that keeps talking, slowly): the time it had.
    #[error("not in step within {0:?}")]
    OutOfTime(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// ESC is being written.
    Escaping,
    /// Discarding until quiet.
    Draining,
    /// The probe is being written.
    Probing,
    /// Waiting for the probe's final result until `deadline` (elapsed time); `tainted`:
    /// an information line came meanwhile, so the next final result is not the probe's.
    AwaitingProbe { deadline: Duration, tainted: bool },
    /// The probe got this final result; listening for anything after it.
    Confirming(Final),
}

/// One resynchronisation, from ESC to in step (or giving up).
#[derive(Debug)]
pub struct Resync {
    phase: Phase,
    /// How long a probe may wait for its answer: the command timeout.
    timeout: Duration,
    /// How long the whole may run: [`budget`] of the timeout.
    budget: Duration,
    quiet: Duration,
    probes: u32,
    discarded: u32,
}

impl Resync {
    /// A resynchronisation whose probes wait `timeout` for their answer and which runs
    /// at most [`budget`]`(timeout)`; the first step.
    pub fn start(timeout: Duration) -> (Resync, Step) {
        let resync = Resync {
            phase: Phase::Escaping,
            timeout,
            budget: budget(timeout),
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

    /// The bytes of the last `Step::Write` are written, `elapsed` after the start.
    pub fn written(&mut self, elapsed: Duration) -> Step {
        match self.phase {
            Phase::Escaping => self.phase = Phase::Draining,
            Phase::Probing => {
                // Fixed now: nothing heard later moves it.
                self.phase = Phase::AwaitingProbe {
                    deadline: elapsed.saturating_add(self.timeout),
                    tainted: false,
                }
            }
            // Nothing was asked to be written: go on listening.
            _ => {}
        }
        self.listen(elapsed)
    }

    /// An answer was read while listening, `elapsed` after the start (unsolicited codes
    /// are not answers).
    pub fn answer(&mut self, event: &Event, elapsed: Duration) -> Step {
        match (self.phase, event) {
            // A final result after an information line: the line and it were another
            // command's answer (plain `AT` has no information line). Drain, probe again.
            (Phase::AwaitingProbe { tainted: true, .. }, Event::Final(_)) => self.discard_then(|resync| {
                resync.phase = Phase::Draining;
                resync.listen(elapsed)
            }),
            (Phase::AwaitingProbe { .. }, Event::Final(result)) => {
                self.phase = Phase::Confirming(*result);
                self.listen(elapsed)
            }
            (Phase::AwaitingProbe { deadline, .. }, Event::Info(_)) => self.discard_then(|resync| {
                resync.phase = Phase::AwaitingProbe {
                    deadline,
                    tainted: true,
                };
                resync.listen(elapsed)
            }),
            // A prompt means the modem waits for a PDU: leave it first.
            (_, Event::Prompt) => self.discard_then(Resync::escape_now(elapsed)),
            (Phase::Confirming(_), _) => self.discard_then(|resync| {
                // Something after the probe's answer: that one may have been a late
                // answer to an earlier command. Drain and probe again.
                resync.phase = Phase::Draining;
                resync.listen(elapsed)
            }),
            _ => self.discard_then(|resync| resync.listen(elapsed)),
        }
    }

    /// The last `Step::Listen` ran out with no answer, `elapsed` after the start.
    pub fn quiet(&mut self, elapsed: Duration) -> Step {
        if let Some(give_up) = self.over_budget(elapsed) {
            return give_up;
        }
        match self.phase {
            Phase::Draining => self.probe(),
            // The probe's answer is late or lost: start again, ESC first.
            Phase::AwaitingProbe { deadline, .. } if elapsed >= deadline => self.escape(),
            // Woken before the deadline (the driver's read ended early): listen on.
            Phase::AwaitingProbe { .. } => self.listen(elapsed),
            Phase::Confirming(Final::Ok) => Step::InStep,
            // A probe answered with an error: not the modem's answer to `AT`, so some
            // other command's; probe again.
            Phase::Confirming(_) => self.probe(),
            Phase::Escaping | Phase::Probing => self.written(elapsed),
        }
    }

    fn over_budget(&self, elapsed: Duration) -> Option<Step> {
        (elapsed >= self.budget).then_some(Step::GiveUp(Stuck::OutOfTime(self.budget)))
    }

    /// Listen for what is left of the phase's window, never past the budget.
    fn listen(&mut self, elapsed: Duration) -> Step {
        if let Some(give_up) = self.over_budget(elapsed) {
            return give_up;
        }
        let window = match self.phase {
            Phase::AwaitingProbe { deadline, .. } => deadline.saturating_sub(elapsed),
            _ => self.quiet,
        };
        Step::Listen(window.min(self.budget - elapsed))
    }

    fn discard_then(&mut self, next: impl FnOnce(&mut Resync) -> Step) -> Step {
        self.discarded += 1;
        if self.discarded > MAX_DISCARDED {
            return Step::GiveUp(Stuck::Babbling(self.discarded));
        }
        next(self)
    }

    fn escape_now(elapsed: Duration) -> impl FnOnce(&mut Resync) -> Step {
        move |resync| resync.over_budget(elapsed).unwrap_or_else(|| resync.escape())
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
    const T0: Duration = Duration::ZERO;

    fn probe() -> Step {
        Step::Write(b"AT\r".to_vec())
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[test]
    fn a_modem_in_step_is_escaped_drained_probed_and_confirmed() {
        let (mut sync, first) = Resync::start(TIMEOUT);
        assert_eq!(first, Step::Write(vec![ESC]));
        assert_eq!(sync.written(T0), Step::Listen(QUIET));
        assert_eq!(sync.quiet(ms(200)), probe());
        assert_eq!(sync.written(ms(200)), Step::Listen(TIMEOUT));
        assert_eq!(sync.answer(&OK, ms(210)), Step::Listen(QUIET));
        assert_eq!(sync.quiet(ms(410)), Step::InStep);
        assert_eq!((sync.probes(), sync.discarded()), (1, 0));
    }

    #[test]
    fn a_late_answer_before_the_probe_s_own_is_discarded() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        sync.written(T0);
        // The drain hears an answer left over, then quiet.
        assert_eq!(
            sync.answer(&Event::Info("+CPIN: READY".into()), T0),
            Step::Listen(QUIET)
        );
        assert_eq!(sync.answer(&OK, T0), Step::Listen(QUIET));
        assert_eq!(sync.quiet(ms(200)), probe());
        sync.written(ms(200));
        // The late OK of a timed-out command, then the probe's: not in step yet.
        assert_eq!(sync.answer(&OK, ms(210)), Step::Listen(QUIET));
        assert_eq!(sync.answer(&OK, ms(220)), Step::Listen(QUIET));
        assert_eq!(sync.quiet(ms(420)), probe());
        sync.written(ms(420));
        assert_eq!(sync.answer(&OK, ms(430)), Step::Listen(QUIET));
        assert_eq!(sync.quiet(ms(630)), Step::InStep);
        assert_eq!((sync.probes(), sync.discarded()), (2, 3));
    }

    #[test]
    fn an_unanswered_probe_starts_again_with_esc_and_gives_up_after_the_last() {
        let (mut sync, _) = Resync::start(Duration::from_millis(100));
        let mut now = T0;
        for probe_number in 1..=MAX_PROBES {
            sync.written(now);
            now += QUIET;
            assert_eq!(sync.quiet(now), probe());
            assert_eq!(sync.written(now), Step::Listen(ms(100)));
            now += ms(100);
            let expected = if probe_number == MAX_PROBES {
                Step::GiveUp(Stuck::Unanswered(MAX_PROBES))
            } else {
                Step::Write(vec![ESC])
            };
            assert_eq!(sync.quiet(now), expected, "after probe {probe_number}");
        }
        assert_eq!(sync.probes(), MAX_PROBES);
    }

    #[test]
    fn stray_lines_do_not_extend_the_probe_s_deadline() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        sync.written(T0);
        sync.quiet(ms(200));
        assert_eq!(sync.written(ms(200)), Step::Listen(TIMEOUT));
        // A line at 0.9 s leaves 0.3 s, not another whole timeout.
        assert_eq!(
            sync.answer(&Event::Info("stray".into()), ms(900)),
            Step::Listen(ms(300))
        );
        assert_eq!(sync.quiet(ms(1200)), Step::Write(vec![ESC]));
    }

    #[test]
    fn a_slow_talker_is_given_up_when_the_budget_runs_out() {
        // One stray line just before each probe's deadline, for ever: within the
        // budget, never in step, and then given up (not held for minutes).
        let (mut sync, mut step) = Resync::start(TIMEOUT);
        let mut now = T0;
        for _ in 0..1000 {
            step = match step {
                Step::Write(_) => sync.written(now),
                Step::Listen(window) if window > ms(10) => {
                    now += window - ms(10);
                    sync.answer(&Event::Info("+CSQ: 20,99".into()), now)
                }
                Step::Listen(window) => {
                    now += window;
                    sync.quiet(now)
                }
                Step::InStep | Step::GiveUp(_) => break,
            };
        }
        assert!(matches!(step, Step::GiveUp(_)), "{step:?}");
        assert!(now <= budget(TIMEOUT), "{now:?}");
    }

    #[test]
    fn a_listen_never_runs_past_the_budget() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        let late = budget(TIMEOUT) - ms(50);
        sync.written(T0);
        assert_eq!(sync.answer(&OK, late), Step::Listen(ms(50)));
        assert_eq!(
            sync.quiet(budget(TIMEOUT)),
            Step::GiveUp(Stuck::OutOfTime(budget(TIMEOUT)))
        );
    }

    #[test]
    fn a_final_result_after_an_information_line_is_not_the_probe_s() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        sync.written(T0);
        sync.quiet(ms(200));
        sync.written(ms(200));
        // A late "+CSQ: 20,99" and its OK: that OK is not the probe's.
        assert_eq!(
            sync.answer(&Event::Info("+CSQ: 20,99".into()), ms(210)),
            Step::Listen(ms(990))
        );
        assert_eq!(sync.answer(&OK, ms(220)), Step::Listen(QUIET));
        // Drained, probed again: the probe's own OK, alone, is in step.
        assert_eq!(sync.quiet(ms(420)), probe());
        sync.written(ms(420));
        assert_eq!(sync.answer(&OK, ms(430)), Step::Listen(QUIET));
        assert_eq!(sync.quiet(ms(630)), Step::InStep);
        assert_eq!((sync.probes(), sync.discarded()), (2, 2));
    }

    #[test]
    fn a_prompt_is_left_with_esc_and_an_error_to_the_probe_is_not_in_step() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        sync.written(T0);
        assert_eq!(sync.answer(&Event::Prompt, T0), Step::Write(vec![ESC]));
        assert_eq!(sync.written(T0), Step::Listen(QUIET));
        assert_eq!(sync.quiet(ms(200)), probe());
        sync.written(ms(200));
        assert_eq!(sync.answer(&Event::Final(Final::Error), ms(210)), Step::Listen(QUIET));
        assert_eq!(sync.quiet(ms(410)), probe());
    }

    #[test]
    fn a_babbling_modem_is_given_up() {
        let (mut sync, _) = Resync::start(TIMEOUT);
        sync.written(T0);
        let mut last = Step::InStep;
        for _ in 0..=MAX_DISCARDED {
            last = sync.answer(&Event::Info("babble".into()), T0);
        }
        assert_eq!(last, Step::GiveUp(Stuck::Babbling(MAX_DISCARDED + 1)));
    }
}
