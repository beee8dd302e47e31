//! What each modem is doing, as the workers last said: read by `/status`, `/metrics`
//! and the routing view of this instance. Observations only: requests never flow
//! through here.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::at::{Registration, SignalQuality};

/// What a modem's worker is doing, as shown by `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModemState {
    /// Being opened and initialised.
    Starting,
    /// Initialised: sends what it is given.
    Ready,
    /// Stopped answering; being reopened with backoff.
    Down,
    /// Will not be retried until restart (a SIM PIN problem).
    Disabled,
}

/// One modem as its worker last reported it.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Where the worker is in its open/serve/reopen cycle.
    pub state: ModemState,
    /// The last `AT+CSQ` answer as the modem words it, e.g. "+CSQ: 20,99": `/status`'s
    /// `signal`, kept in this form for peers that read it. Typed: [`Health::signal_quality`].
    pub signal: Option<String>,
    /// The last `AT+CSQ` answer, typed.
    quality: Option<SignalQuality>,
    /// The last `AT+CREG?` answer.
    registration: Option<Registration>,
    /// SMS parts accepted by the network since start.
    pub parts_sent: u64,
    /// Failed send attempts (of any part) since start.
    pub send_errors: u64,
}

impl Health {
    /// Signal strength and bit error rate from the last `AT+CSQ` (at initialisation,
    /// then every `radio_poll_secs` while idle); None before the first usable answer. For gauges:
    /// [`SignalQuality::rssi`] (0–31, None when the modem answered 99, unknown),
    /// [`SignalQuality::dbm`], [`SignalQuality::ber`].
    pub fn signal_quality(&self) -> Option<SignalQuality> {
        self.quality
    }

    /// Network registration from the last `AT+CREG?` (at initialisation, then every
    /// `radio_poll_secs` while idle); None before the first usable answer. For a gauge:
    /// [`Registration::code`] (0–5, TS 27.007 numbering), or
    /// [`Registration::is_registered`].
    pub fn registration(&self) -> Option<Registration> {
        self.registration
    }

    fn set_radio(&mut self, signal: Option<SignalQuality>, registration: Option<Registration>) {
        self.signal = signal.map(|quality| quality.to_string());
        self.quality = signal;
        self.registration = registration;
    }
}

/// The health of every configured modem, by name; shared by the workers and the readers.
#[derive(Debug, Default)]
pub struct Board {
    modems: Mutex<BTreeMap<String, Health>>,
}

impl Board {
    /// A board with every named modem `Starting`; names not given here are never tracked.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Board {
        let modems = names
            .into_iter()
            .map(|name| {
                let health = Health {
                    state: ModemState::Starting,
                    signal: None,
                    quality: None,
                    registration: None,
                    parts_sent: 0,
                    send_errors: 0,
                };
                (name.to_string(), health)
            })
            .collect();
        Board {
            modems: Mutex::new(modems),
        }
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Health)) {
        if let Some(health) = self.modems.lock().unwrap_or_else(|e| e.into_inner()).get_mut(name) {
            change(health);
        }
    }

    /// Records a new state (e.g. `Down` while reopening, `Disabled` for good). A modem
    /// down or disabled forgets its signal and registration: `/metrics` and `/status`
    /// must not show a modem that is not there as registered.
    pub fn set_state(&self, name: &str, state: ModemState) {
        self.update(name, |health| {
            health.state = state;
            if matches!(state, ModemState::Down | ModemState::Disabled) {
                health.set_radio(None, None);
            }
        });
    }

    /// Records that the modem is initialised, with the radio state its initialisation read.
    pub fn ready(&self, name: &str, signal: Option<SignalQuality>, registration: Option<Registration>) {
        self.update(name, |health| {
            health.state = ModemState::Ready;
            health.set_radio(signal, registration);
        });
    }

    /// Records the signal quality and registration read while the modem is idle (every
    /// `radio_poll_secs`): None where the modem's answer was unusable.
    pub fn radio(&self, name: &str, signal: Option<SignalQuality>, registration: Option<Registration>) {
        self.update(name, |health| health.set_radio(signal, registration));
    }

    /// Counts `parts` SMS parts accepted by the network.
    pub fn sent(&self, name: &str, parts: usize) {
        self.update(name, |health| health.parts_sent += parts as u64);
    }

    /// Counts one failed send attempt.
    pub fn send_error(&self, name: &str) {
        self.update(name, |health| health.send_errors += 1);
    }

    /// A copy of every modem's health, by name, for a report.
    pub fn snapshot(&self) -> BTreeMap<String, Health> {
        self.modems.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modem_down_shows_no_signal_nor_registration() {
        let board = Board::new(["sim0"]);
        board.ready("sim0", SignalQuality::new(20, 99), Some(Registration::Home));
        let sim0 = &board.snapshot()["sim0"];
        assert_eq!(sim0.registration(), Some(Registration::Home));
        assert_eq!(sim0.signal.as_deref(), Some("+CSQ: 20,99"));
        for state in [ModemState::Down, ModemState::Disabled] {
            board.ready("sim0", SignalQuality::new(20, 99), Some(Registration::Home));
            board.set_state("sim0", state);
            let sim0 = &board.snapshot()["sim0"];
            assert_eq!(sim0.state, state);
            assert_eq!(
                (sim0.registration(), sim0.signal_quality(), sim0.signal.as_deref()),
                (None, None, None)
            );
        }
    }
}
