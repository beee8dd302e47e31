//! Recipient address (`RCPT TO` path) → E.164 number.
//!
//! Accepts `<number>@<sms domain>` in the forms listed in the README
//! ("Recipients") and refuses everything else, relay tricks first: smsgw is
//! never an open relay.

use std::borrow::Cow;

use phonenumber::{Mode, PhoneNumber, Type, country, metadata::DATABASE};

use crate::e164::E164;

/// What `parse_recipient` accepts, from the `[smtp]`, `[sms]` and `[security]`
/// parts of the config.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressRules {
    /// Domains served, e.g. `["sms", "sms.example.com"]`; compared ignoring case.
    pub domains: Vec<String>,
    /// Country of national numbers such as `0477858589`.
    pub default_region: Option<country::Id>,
    /// Refuse numbers that libphonenumber classes as premium-rate.
    pub deny_premium: bool,
}

/// An accepted recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// E.164, e.g. `+33477858589`.
    pub number: E164,
    /// The name written beside the number (`"Paul@+33477858589"@sms`), if any.
    pub name: Option<String>,
}

/// Why a recipient is refused. `Display` is meant for the SMTP reply text:
/// it never contains a line break, even when the address does.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The domain is not one of `smtp.sms_domains`: smsgw relays nowhere else.
    #[error("{address}: relaying to {domain} is not allowed, only SMS numbers are served")]
    ForeignDomain {
        /// The address as given.
        address: String,
        /// Its domain.
        domain: String,
    },
    /// A routing syntax in the local part (source route, `%`, `!`, an inner `@`).
    #[error("{address}: relaying through {how} is not allowed")]
    Relay {
        /// The address as given.
        address: String,
        /// Which syntax, in words.
        how: &'static str,
    },
    /// No `@domain` at all.
    #[error("{address}: the address has no domain")]
    NoDomain {
        /// The address as given.
        address: String,
    },
    /// Nothing before the `@`.
    #[error("{address}: the local part is empty, it should be a phone number")]
    EmptyLocalPart {
        /// The address as given.
        address: String,
    },
    /// A control character anywhere in the address.
    #[error("{address}: control characters are not allowed in an address")]
    ControlCharacter {
        /// The address with its control characters escaped, so the reply stays one line.
        address: String,
    },
    /// The local part does not end in digits.
    #[error("no phone number in local part '{local}'")]
    NoNumber {
        /// The local part, unquoted.
        local: String,
    },
    /// Digits that libphonenumber does not take for a number of any country.
    #[error("{number} is not a valid phone number")]
    InvalidNumber {
        /// The number as read from the local part.
        number: String,
    },
    /// A national number, and no `sms.default_region` to say whose.
    #[error("national number {number} needs sms.default_region, or write it as +<country code><number>")]
    NeedsRegion {
        /// The number as read from the local part.
        number: String,
    },
    /// Dots leave more than one valid reading of name and number.
    #[error("'{local}' can be read as several phone numbers, write it as +<country code><number>")]
    Ambiguous {
        /// The local part, unquoted.
        local: String,
    },
    /// A premium-rate number, refused by `security.deny_premium`.
    #[error("{number}: premium-rate numbers are not served")]
    PremiumRate {
        /// The number, E.164.
        number: String,
    },
}

impl AddressError {
    /// SMTP reply code and enhanced status code for this refusal.
    pub fn reply(&self) -> (u16, &'static str) {
        match self {
            Self::ForeignDomain { .. } | Self::Relay { .. } | Self::PremiumRate { .. } => (550, "5.7.1"),
            Self::NoDomain { .. }
            | Self::EmptyLocalPart { .. }
            | Self::ControlCharacter { .. }
            | Self::NoNumber { .. }
            | Self::InvalidNumber { .. }
            | Self::NeedsRegion { .. }
            | Self::Ambiguous { .. } => (553, "5.1.3"),
        }
    }
}

/// Loads libphonenumber's metadata now rather than during the first mail
/// (about a second in a debug build).
pub fn warm_up() {
    let _ = phonenumber::parse(None, "+33477858589").map(|number| number.is_valid());
}

/// Reads the recipient in `mailbox`, the `RCPT TO` path without its angle
/// brackets; its local part may still be quoted.
pub fn parse_recipient(mailbox: &str, rules: &AddressRules) -> Result<Recipient, AddressError> {
    let address = || mailbox.to_owned();
    if mailbox.chars().any(char::is_control) {
        let address = mailbox.escape_debug().to_string();
        return Err(AddressError::ControlCharacter { address });
    }
    // The last '@' separates the domain: earlier ones belong to a (quoted) local part.
    let Some((local, domain)) = mailbox.rsplit_once('@').filter(|(_, d)| !d.is_empty()) else {
        return Err(AddressError::NoDomain { address: address() });
    };
    if !rules.domains.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
        let domain = domain.to_owned();
        return Err(AddressError::ForeignDomain {
            address: address(),
            domain,
        });
    }
    let local = unquote(local);
    if let Some(how) = relay_trick(&local) {
        return Err(AddressError::Relay {
            address: address(),
            how,
        });
    }
    if local.trim().is_empty() {
        return Err(AddressError::EmptyLocalPart { address: address() });
    }
    let (name, number) = read_local_part(&local, mailbox, rules.default_region)?;
    let e164 = number.format().mode(Mode::E164).to_string();
    if rules.deny_premium && number.number_type(&DATABASE) == Type::PremiumRate {
        return Err(AddressError::PremiumRate { number: e164 });
    }
    // libphonenumber's E.164 form of a valid number (at most 3 + 17 digits) always
    // passes; refusing is the answer should it ever not.
    let number = E164::parse(&e164).map_err(|_| AddressError::InvalidNumber { number: e164 })?;
    Ok(Recipient { number, name })
}

/// The E.164 number of an SMS originator the network gave in national (or unknown)
/// form, such as `0612345678`, read in `region`; `None` when it is no valid number.
pub fn originator_e164(digits: &str, region: Option<country::Id>) -> Option<E164> {
    let number = normalise(digits, region).ok()?;
    E164::parse(&number.format().mode(Mode::E164).to_string()).ok()
}

/// `"Paul@+33477858589"` → `Paul@+33477858589`; an unquoted local part is
/// returned as it is (an SMTP parser may have unquoted it already).
fn unquote(local: &str) -> Cow<'_, str> {
    let Some(inner) = local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) else {
        return Cow::Borrowed(local);
    };
    let mut unquoted = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        // RFC 5321 quoted-pair: a backslash escapes the next character.
        unquoted.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
    }
    Cow::Owned(unquoted)
}

/// Routing syntaxes that older MTAs still honour: refused even in our domain,
/// because a peer or a smart host downstream might follow them.
fn relay_trick(local: &str) -> Option<&'static str> {
    if local.starts_with('@') {
        Some("a source route")
    } else if local.contains('%') {
        Some("a '%' in the local part")
    } else if local.contains('!') {
        Some("a '!' bang path")
    } else {
        None
    }
}

fn is_number_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')' | '/')
}

fn is_name_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '.' | '=' | '@' | '-' | '_' | ':' | '/' | ',')
}

/// Splits the local part into an optional name and the number at its end.
fn read_local_part(
    local: &str,
    mailbox: &str,
    region: Option<country::Id>,
) -> Result<(Option<String>, PhoneNumber), AddressError> {
    // Domino style `Name@number`: what follows the last '@' must be all number,
    // else this is `user@host` smuggled into our domain.
    if let Some((_, tail)) = local.rsplit_once('@')
        && !tail.chars().all(is_number_char)
    {
        let how = "an address in the local part";
        return Err(AddressError::Relay {
            address: mailbox.to_owned(),
            how,
        });
    }
    let number_start = local
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_number_char(c))
        .last()
        .map_or(local.len(), |(i, _)| i);
    let suffix = &local[number_start..];
    if !suffix.chars().any(|c| c.is_ascii_digit()) {
        return Err(AddressError::NoNumber {
            local: local.to_owned(),
        });
    }
    let starts = number_starts(local, number_start);
    let start = pick_number(local, &starts, region)?;
    let number = normalise(&local[start..], region)?;
    Ok((name_of(&local[..start]), number))
}

/// Where the number may begin. A '+' begins it for sure; otherwise a '.' is
/// either a separator inside the number or the one after the name, so every
/// dot gives a candidate (longest first).
fn number_starts(local: &str, suffix_start: usize) -> Vec<usize> {
    let suffix = &local[suffix_start..];
    if let Some(plus) = suffix.find('+') {
        return vec![suffix_start + plus];
    }
    let first = suffix_start + suffix.find(|c: char| c.is_ascii_digit() || c == '(').unwrap_or(0);
    let mut starts = vec![first];
    starts.extend(
        suffix
            .match_indices('.')
            .map(|(dot, _)| suffix_start + dot + 1)
            .filter(|&start| start > first),
    );
    starts
}

/// The one start that gives a valid number; the longest one when none does,
/// so that the error names what the sender wrote.
fn pick_number(local: &str, starts: &[usize], region: Option<country::Id>) -> Result<usize, AddressError> {
    let mut found: Option<(usize, String)> = None;
    for &start in starts {
        let Ok(number) = normalise(&local[start..], region) else {
            continue;
        };
        let e164 = number.format().mode(Mode::E164).to_string();
        match &found {
            Some((_, earlier)) if *earlier != e164 => {
                return Err(AddressError::Ambiguous {
                    local: local.to_owned(),
                });
            }
            Some(_) => {}
            None => found = Some((start, e164)),
        }
    }
    Ok(found.map_or(starts[0], |(start, _)| start))
}

fn name_of(prefix: &str) -> Option<String> {
    let name = prefix.trim_end_matches(is_name_separator).trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// No valid E.164 number has more digits than this; longer input is refused
/// before libphonenumber spends time on it.
const MAX_WRITTEN_LEN: usize = 40;

fn normalise(written: &str, region: Option<country::Id>) -> Result<PhoneNumber, AddressError> {
    let written = written.trim_matches(|c: char| is_name_separator(c) && c != '/');
    let invalid = || AddressError::InvalidNumber {
        number: written.to_owned(),
    };
    // libphonenumber reads "++33…" as "+33…"; a typo in a number is not worth guessing at.
    if written.len() > MAX_WRITTEN_LEN || written.get(1..).is_some_and(|rest| rest.contains('+')) {
        return Err(invalid());
    }
    let international = written.strip_prefix("00").map(|rest| format!("+{rest}"));
    if !written.starts_with('+') && international.is_none() && region.is_none() {
        return Err(AddressError::NeedsRegion {
            number: written.to_owned(),
        });
    }
    // "00" is the international prefix almost everywhere, but not in every
    // default region (011 in the US): try the region's reading first.
    let attempts = [Some(written.to_owned()), international];
    attempts
        .into_iter()
        .flatten()
        .filter_map(|text| phonenumber::parse(region, without_trunk_zero(&text)).ok())
        .find(PhoneNumber::is_valid)
        .ok_or_else(invalid)
}

/// `+33(0)477858589`: the "(0)" is the national trunk prefix, written for
/// callers inside the country; it is not part of the international number.
fn without_trunk_zero(text: &str) -> Cow<'_, str> {
    if text.starts_with('+') && text.contains("(0)") {
        Cow::Owned(text.replacen("(0)", "", 1))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_national_originator_becomes_its_e164_number() {
        let fr = Some(country::Id::FR);
        let e164 = |digits| originator_e164(digits, fr).map(|n| n.to_string());
        assert_eq!(e164("0612345678").as_deref(), Some("+33612345678"));
        assert_eq!(e164("12"), None);
        assert_eq!(e164("06"), None);
    }
}
