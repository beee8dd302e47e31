//! National languages (TS 23.038 §6.2.1.2, annex A) and the encoding chosen for a text.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A national language whose shift tables smsgw can use (TS 23.038 annex A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Language {
    /// Turkish (tables A.2.1, A.3.1): code "tr", identifier 1.
    #[serde(rename = "tr")]
    Turkish,
    /// Spanish (table A.2.2; no locking table): code "es", identifier 2.
    #[serde(rename = "es")]
    Spanish,
    /// Portuguese (tables A.2.3, A.3.3): code "pt", identifier 3.
    #[serde(rename = "pt")]
    Portuguese,
}

impl Language {
    /// Every language smsgw has tables for, in identifier order.
    pub const ALL: [Language; 3] = [Language::Turkish, Language::Spanish, Language::Portuguese];

    /// The code used in configuration files and in `Encoding::as_str`.
    pub fn code(self) -> &'static str {
        match self {
            Language::Turkish => "tr",
            Language::Spanish => "es",
            Language::Portuguese => "pt",
        }
    }

    /// National Language Identifier carried in the 0x24/0x25 IEs (TS 23.038 §6.2.1.2.4).
    pub fn id(self) -> u8 {
        match self {
            Language::Turkish => 1,
            Language::Spanish => 2,
            Language::Portuguese => 3,
        }
    }

    /// The language of a National Language Identifier; `None` for one smsgw has no tables for.
    pub fn from_id(id: u8) -> Option<Language> {
        Language::ALL.into_iter().find(|l| l.id() == id)
    }

    /// Spanish has a single shift table only: its locking shift table is void (annex A.3.2).
    pub fn has_locking_table(self) -> bool {
        self != Language::Spanish
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A language code in the config or on the command line that is not tr, es or pt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SMS language {0:?}: expected one of tr, es, pt")]
pub struct UnknownLanguage(pub String);

impl FromStr for Language {
    type Err = UnknownLanguage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Language::ALL
            .into_iter()
            .find(|l| l.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownLanguage(s.to_string()))
    }
}

/// How the text of an SMS is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 7-bit; `locking` replaces the default alphabet, `single` replaces the extension table.
    Gsm7 {
        /// The national locking shift table used instead of the default alphabet; `None`: default.
        locking: Option<Language>,
        /// The national single shift table used instead of the default extension table; `None`: default.
        single: Option<Language>,
    },
    /// UCS-2 (TS 23.038 §6.2.3): 16 bits per character, for text no GSM 7-bit table covers.
    Ucs2,
}

/// Names by `[locking][single]`, index 0 meaning none then `Language::ALL` order.
const GSM7_NAMES: [[&str; 4]; 4] = [
    ["gsm7", "gsm7-single-tr", "gsm7-single-es", "gsm7-single-pt"],
    [
        "gsm7-locking-tr",
        "gsm7-tr",
        "gsm7-locking-tr-single-es",
        "gsm7-locking-tr-single-pt",
    ],
    [
        "gsm7-locking-es",
        "gsm7-locking-es-single-tr",
        "gsm7-es",
        "gsm7-locking-es-single-pt",
    ],
    [
        "gsm7-locking-pt",
        "gsm7-locking-pt-single-tr",
        "gsm7-locking-pt-single-es",
        "gsm7-pt",
    ],
];

fn table_index(language: Option<Language>) -> usize {
    match language {
        None => 0,
        Some(Language::Turkish) => 1,
        Some(Language::Spanish) => 2,
        Some(Language::Portuguese) => 3,
    }
}

impl Encoding {
    /// Plain GSM 7-bit: the default alphabet and extension table, no language IEs.
    pub const GSM7: Encoding = Encoding::Gsm7 {
        locking: None,
        single: None,
    };

    /// Stable name for storage and display: "gsm7", "gsm7-tr" (both Turkish tables),
    /// "gsm7-single-es", "gsm7-locking-pt-single-es", "ucs2"…
    pub fn as_str(&self) -> &'static str {
        match *self {
            Encoding::Ucs2 => "ucs2",
            Encoding::Gsm7 { locking, single } => {
                let row = GSM7_NAMES[table_index(locking)];
                row[table_index(single)]
            }
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Encoding {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// An encoding name (in the store or on the command line) that `Encoding::from_str` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown SMS encoding {0:?}")]
pub struct UnknownEncoding(pub String);

impl FromStr for Encoding {
    type Err = UnknownEncoding;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let languages = [
            None,
            Some(Language::Turkish),
            Some(Language::Spanish),
            Some(Language::Portuguese),
        ];
        let gsm7 = languages.into_iter().flat_map(|locking| {
            languages
                .into_iter()
                .map(move |single| Encoding::Gsm7 { locking, single })
        });
        std::iter::once(Encoding::Ucs2)
            .chain(gsm7)
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEncoding(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_parse_from_their_codes() {
        let cases = [
            ("tr", Ok(Language::Turkish)),
            ("ES", Ok(Language::Spanish)),
            (" pt ", Ok(Language::Portuguese)),
            ("fr", Err(UnknownLanguage("fr".into()))),
            ("", Err(UnknownLanguage("".into()))),
        ];
        for (input, expected) in cases {
            assert_eq!(input.parse::<Language>(), expected, "{input:?}");
        }
        let message = "xx".parse::<Language>().unwrap_err().to_string();
        assert_eq!(message, "unknown SMS language \"xx\": expected one of tr, es, pt");
    }

    #[test]
    fn language_ids_follow_ts_23_038() {
        for (language, id) in [
            (Language::Turkish, 1),
            (Language::Spanish, 2),
            (Language::Portuguese, 3),
        ] {
            assert_eq!(language.id(), id);
            assert_eq!(Language::from_id(id), Some(language));
        }
        assert_eq!(Language::from_id(0), None);
        assert_eq!(Language::from_id(4), None);
    }

    #[test]
    fn every_encoding_name_is_unique_and_parses_back() {
        let table = [
            (Encoding::GSM7, "gsm7"),
            (Encoding::Ucs2, "ucs2"),
            (
                Encoding::Gsm7 {
                    locking: Some(Language::Turkish),
                    single: Some(Language::Turkish),
                },
                "gsm7-tr",
            ),
            (
                Encoding::Gsm7 {
                    locking: None,
                    single: Some(Language::Spanish),
                },
                "gsm7-single-es",
            ),
            (
                Encoding::Gsm7 {
                    locking: Some(Language::Portuguese),
                    single: Some(Language::Spanish),
                },
                "gsm7-locking-pt-single-es",
            ),
        ];
        for (encoding, name) in table {
            assert_eq!(encoding.as_str(), name);
            assert_eq!(name.parse::<Encoding>(), Ok(encoding));
        }
        let mut names: Vec<&str> = GSM7_NAMES.iter().flatten().copied().collect();
        names.push("ucs2");
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 17);
        assert!("gsm8".parse::<Encoding>().is_err());
    }
}
