//! The one place where a modem's error becomes temporary or permanent.
//!
//! `+CMS ERROR` codes: 0–127 are the network's RP cause values (3GPP TS 24.011 §8.2.5.4),
//! 128–255 the TP-FCS values (TS 23.040 §9.2.3.22), 300–511 the modem's own (TS 27.005
//! §3.2.5); above that, manufacturer-specific codes, treated as temporary.

use super::at::Refusal;

/// What to do with the request after an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Try again later, maybe on another modem; `modem_fault` says the modem itself is
    /// unwell (no SIM, no network) and should be re-initialised.
    Temporary {
        /// What went wrong, for the request's history.
        reason: String,
        /// The modem, not the network, is at fault: reopen it.
        modem_fault: bool,
    },
    /// The SMS cannot be sent: fail the request with this enhanced status code.
    Permanent {
        /// RFC 3463 enhanced status code for the DSN, e.g. "5.1.1".
        status: &'static str,
        /// What went wrong, for the request's history and the DSN.
        reason: String,
    },
}

/// Sorts the refusal of `AT+CMGS` (or its PDU) into temporary or permanent.
pub(super) fn classify(result: Refusal) -> Outcome {
    match result {
        Refusal::Cms(code) => cms(code),
        Refusal::Cme(code) => Outcome::Temporary {
            reason: format!("modem equipment error +CME ERROR: {code}"),
            modem_fault: true,
        },
        Refusal::Error => Outcome::Temporary {
            reason: "modem answered ERROR".into(),
            modem_fault: false,
        },
    }
}

fn cms(code: u16) -> Outcome {
    let permanent = |status, what: &str| Outcome::Permanent {
        status,
        reason: format!("{what} (+CMS ERROR: {code})"),
    };
    let temporary = |what: &str, modem_fault| Outcome::Temporary {
        reason: format!("{what} (+CMS ERROR: {code})"),
        modem_fault,
    };
    match code {
        1 | 28 | 30 => permanent("5.1.1", "the number is not assigned or unknown to the network"),
        8 | 10 => permanent("5.7.1", "the network bars SMS to this number"),
        21 => permanent("5.7.1", "the network rejected the SMS"),
        29 | 50 | 69 => permanent("5.3.3", "the network does not provide this service to our SIM"),
        96..=111 | 127 | 304 | 305 => permanent("5.6.0", "the network or modem refused the SMS as malformed"),
        128..=255 => permanent("5.6.0", "the SMS centre refused the message"),
        17 | 22 | 27 | 38 | 41 | 42 | 47 | 331 | 332 | 500 => temporary("the network is unavailable or busy", false),
        310..=316 | 318 | 330 => temporary("the modem's SIM or service centre is not usable", true),
        300..=303 | 320..=322 | 340 => temporary("the modem cannot send now", true),
        _ => temporary("the modem reported an error", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_temporary_and_permanent() {
        let table = [
            (Refusal::Cms(1), true),
            (Refusal::Cms(21), true),
            (Refusal::Cms(304), true),
            (Refusal::Cms(0xC0), true),
            (Refusal::Cms(38), false),
            (Refusal::Cms(42), false),
            (Refusal::Cms(331), false),
            (Refusal::Cms(310), false),
            (Refusal::Cms(500), false),
            (Refusal::Cms(520), false),
            (Refusal::Cme(10), false),
            (Refusal::Error, false),
        ];
        for (result, permanent) in table {
            let is_permanent = matches!(classify(result), Outcome::Permanent { .. });
            assert_eq!(is_permanent, permanent, "{result:?}");
        }
    }

    #[test]
    fn a_sick_modem_is_told_apart_from_a_busy_network() {
        assert!(matches!(
            classify(Refusal::Cms(310)),
            Outcome::Temporary { modem_fault: true, .. }
        ));
        assert!(matches!(
            classify(Refusal::Cms(38)),
            Outcome::Temporary { modem_fault: false, .. }
        ));
    }
}
