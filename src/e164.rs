//! An international phone number in E.164 form, checked once where it enters (the
//! recipient address, the store, a peer's status) and carried typed from there on.

use std::fmt;
use std::ops::Deref;

/// `+`, a country code and subscriber number: 2 to 20 digits, the first not 0.
///
/// ITU-T E.164 allows 15 digits, but libphonenumber, which `address` asks once at
/// `RCPT` whether the number exists, takes national numbers of up to 17 digits (some
/// German ones) behind a country code of up to 3: every number it writes in E.164 form
/// must pass here, or a stored request could not be read back. It derefs to `&str` so that text-level code (PDU encoding,
/// tariff prefixes) reads it without a copy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// Why a text is not an E.164 number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an E.164 number (+ then 2 to 20 digits, the first not 0)")]
pub struct NotE164(pub String);

/// A country code (up to 3 digits) and libphonenumber's longest national number (17).
const MAX_DIGITS: usize = 20;

impl E164 {
    /// Checks the form of `text`, which must already be `+<digits>`.
    pub fn parse(text: &str) -> Result<E164, NotE164> {
        let digits = text.strip_prefix('+').unwrap_or("");
        let well_formed = (2..=MAX_DIGITS).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if well_formed {
            Ok(E164(text.to_owned()))
        } else {
            Err(NotE164(text.to_owned()))
        }
    }

    /// The number with its `+`, e.g. `+33477858589`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the `+`, as a PDU's international address holds them.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl Deref for E164 {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl PartialEq<str> for E164 {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for E164 {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl std::str::FromStr for E164 {
    type Err = NotE164;

    fn from_str(text: &str) -> Result<E164, NotE164> {
        E164::parse(text)
    }
}

impl TryFrom<String> for E164 {
    type Error = NotE164;

    fn try_from(text: String) -> Result<E164, NotE164> {
        E164::parse(&text)
    }
}

impl From<E164> for String {
    fn from(number: E164) -> String {
        number.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_e164_form_is_taken() {
        let cases = [
            ("+33477858589", true),
            ("+447911123456", true),
            ("+12", true),
            ("+123456789012345", true),
            ("+49301234567890123", true),
            ("+12345678901234567890", true),
            ("+123456789012345678901", false),
            ("+1", false),
            ("+0477858589", false),
            ("33477858589", false),
            ("0477858589", false),
            ("+33 4 77 85 85 89", false),
            ("+33477858589x", false),
            ("++33477858589", false),
            ("+", false),
            ("", false),
            ("+３３477858589", false),
        ];
        for (text, ok) in cases {
            assert_eq!(E164::parse(text).is_ok(), ok, "{text:?}");
        }
    }

    #[test]
    fn it_reads_as_text_and_round_trips_through_serde() {
        let number = E164::parse("+33477858589").unwrap();
        assert_eq!(number.digits(), "33477858589");
        assert!(number.starts_with("+33"), "derefs to str");
        assert_eq!(format!("{number}"), "+33477858589");
        let json = serde_json::to_string(&number).unwrap();
        assert_eq!(json, "\"+33477858589\"");
        assert_eq!(serde_json::from_str::<E164>(&json).unwrap(), number);
        assert!(serde_json::from_str::<E164>("\"0477\"").is_err());
    }
}
