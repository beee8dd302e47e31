//! The `[inbound]` section: what becomes of incoming SMS, and its opt-out keywords.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::values;

/// What becomes of incoming SMS (`[inbound]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inbound {
    /// A long SMS whose parts have not all arrived after this long is delivered as what
    /// did arrive: a lost part must not hold the rest back for ever. At least 1.
    pub reassembly_timeout_secs: u64,
    /// An SMS from a number goes to the sender of the latest mail sent to that number
    /// within this window: a reply, as the person texting back means it. At least 1.
    pub reply_window_hours: u64,
    /// Mailbox (`user@domain`) of the incoming SMS no sender is known for (none within
    /// the reply window); `None` (written "") keeps them in the inbox.
    #[serde(deserialize_with = "values::empty_is_none")]
    pub default_recipient: Option<String>,
    /// Who gets an SMS when mails from more than one sender went to its number within
    /// the reply window, so that whom it answers is a guess.
    pub ambiguous: Ambiguous,
    /// An SMS that is one of these words alone opts its number out: nothing more is
    /// to be sent to it (the `STOP` that people know from SMS services).
    pub stop_words: Keywords,
    /// An SMS that is one of these words alone opts its number back in.
    pub start_words: Keywords,
    /// The SMS sent back to a number that opted out, confirming it; empty: none.
    pub stop_reply: String,
}

impl Default for Inbound {
    fn default() -> Self {
        Self {
            reassembly_timeout_secs: 3600,
            reply_window_hours: 7 * 24,
            default_recipient: None,
            ambiguous: Ambiguous::Latest,
            stop_words: Keywords::of(&[
                "STOP",
                "STOPALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "END",
                "QUIT",
                "ARRET",
                "STOPP",
            ]),
            start_words: Keywords::of(&["START", "UNSTOP"]),
            stop_reply: String::new(),
        }
    }
}

/// Who gets an incoming SMS that may answer mails of several senders
/// (`inbound.ambiguous`): "latest" or "default_recipient". Read from text rather than
/// as a serde enum, whose error through the config crate names no choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Ambiguous {
    /// The sender of the latest mail to its number: most replies answer the last message.
    #[default]
    Latest,
    /// `inbound.default_recipient` (or the inbox when there is none): a person sorts it out.
    DefaultRecipient,
}

impl Ambiguous {
    /// Each value as written, in the order problems list them.
    const CHOICES: [(&str, Ambiguous); 2] = [
        ("latest", Ambiguous::Latest),
        ("default_recipient", Ambiguous::DefaultRecipient),
    ];
}

/// Why a text is not an [`Ambiguous`]: it names the choices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AmbiguousError(String);

impl fmt::Display for AmbiguousError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let choices: Vec<String> = Ambiguous::CHOICES.iter().map(|(name, _)| format!("{name:?}")).collect();
        write!(f, "{:?} is not one of {}", self.0, choices.join(", "))
    }
}

impl FromStr for Ambiguous {
    type Err = AmbiguousError;

    fn from_str(text: &str) -> Result<Ambiguous, AmbiguousError> {
        Ambiguous::CHOICES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, value)| *value)
            .ok_or_else(|| AmbiguousError(text.to_string()))
    }
}

impl TryFrom<String> for Ambiguous {
    type Error = AmbiguousError;

    fn try_from(text: String) -> Result<Ambiguous, AmbiguousError> {
        text.parse()
    }
}

/// Words that mean something when an SMS is one of them alone (`STOP`), in any case.
/// Each is kept as written, for messages, and lower-cased, to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keywords(Vec<Keyword>);

/// One word of [`Keywords`]: trimmed, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Keyword {
    /// As written (trimmed): what problems quote.
    written: String,
    /// Lower-cased: what a text is compared with.
    folded: String,
}

/// Why a text is not a keyword.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must not be empty")]
struct KeywordError;

impl FromStr for Keyword {
    type Err = KeywordError;

    fn from_str(text: &str) -> Result<Keyword, KeywordError> {
        let written = text.trim();
        if written.is_empty() {
            return Err(KeywordError);
        }
        Ok(Keyword {
            written: written.to_string(),
            folded: written.to_lowercase(),
        })
    }
}

impl Keywords {
    /// The list of `words`, each known not to be empty (the defaults).
    fn of(words: &[&str]) -> Keywords {
        Keywords(words.iter().filter_map(|word| word.parse().ok()).collect())
    }

    /// Whether the whole of `text`, trimmed of (Unicode) white space, is one of the
    /// words in any case: "Stop" and " stop\n" are STOP; "stop it" and "STOP." are not
    /// (a sentence may mean something else than the word alone).
    pub fn matches(&self, text: &str) -> bool {
        let text = text.trim().to_lowercase();
        self.0.iter().any(|word| word.folded == text)
    }

    /// The words, as written, in order.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|word| word.written.as_str())
    }
}

impl<'de> Deserialize<'de> for Keywords {
    /// A list of texts; an empty one is named by its index (`stop_words[2]`).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Keywords, D::Error> {
        values::parse_each(deserializer).map(Keywords)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyword_is_the_whole_text_trimmed_in_any_case() {
        let stop = Keywords::of(&["STOP", "Arrêt", "ΤΈΛΟΣ"]);
        let table = [
            ("STOP", true),
            ("stop", true),
            ("Stop", true),
            (" stop\n", true),
            ("\u{3000}STOP\u{a0}", true),
            ("\tsToP\r\n", true),
            ("ARRÊT", true),
            ("arrêt", true),
            ("τέλος", true),
            ("ARRET", false),
            ("stop it", false),
            ("STOP.", false),
            ("S TOP", false),
            ("STOPSTOP", false),
            ("please stop", false),
            ("", false),
            ("   ", false),
        ];
        for (text, expected) in table {
            assert_eq!(stop.matches(text), expected, "{text:?}");
        }
        assert!(!Keywords::of(&[]).matches(""));
    }

    #[test]
    fn words_are_trimmed_and_never_empty() {
        assert_eq!(" STOP ".parse::<Keyword>().map(|k| k.written), Ok("STOP".to_string()));
        assert_eq!("".parse::<Keyword>(), Err(KeywordError));
        assert_eq!(" \t".parse::<Keyword>(), Err(KeywordError));
        let words = Keywords::of(&[" Stop", "END "]);
        assert_eq!(words.words().collect::<Vec<_>>(), ["Stop", "END"]);
    }
}
