//! Choosing the encoding of a text and cutting it into parts that each fit one SMS.

use super::gsm7::Charset;
use super::language::{Encoding, Language};

/// Octets of user data in one SMS (TS 23.040 §9.2.3.24).
pub(crate) const UD_OCTETS: usize = 140;

/// The parts of one text, all in one encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The encoding every part is written in.
    pub encoding: Encoding,
    /// The text of each part, in order; never empty (an empty text is one empty part).
    pub parts: Vec<String>,
}

/// Splits for a concatenation IE with an 8-bit reference. Callers that send with
/// `SubmitOptions::concat16` count parts with `split_with(…, true)`.
pub fn split(text: &str, languages: &[Language]) -> Split {
    split_with(text, languages, false)
}

/// GSM 7-bit with the extension table if every character fits; else the cheapest
/// combination of the enabled national tables that fits; else UCS-2.
pub fn split_with(text: &str, languages: &[Language], concat16: bool) -> Split {
    if let Some((parts, _)) = split_in(text, Encoding::GSM7, concat16) {
        return Split {
            encoding: Encoding::GSM7,
            parts,
        };
    }
    national_candidates(languages)
        .filter_map(|encoding| Some((encoding, split_in(text, encoding, concat16)?)))
        .min_by_key(|(encoding, (parts, septets))| {
            let udh = udh_octets(*encoding, parts.len() > 1, concat16);
            (parts.len(), udh * 8 * parts.len() + septets * 7)
        })
        .map(|(encoding, (parts, _))| Split { encoding, parts })
        .unwrap_or_else(|| Split {
            encoding: Encoding::Ucs2,
            parts: split_in(text, Encoding::Ucs2, concat16)
                .map(|(parts, _)| parts)
                .unwrap_or_default(),
        })
}

/// Every (locking, single) pair of enabled tables except the default pair.
fn national_candidates(languages: &[Language]) -> impl Iterator<Item = Encoding> {
    let mut enabled = languages.to_vec();
    enabled.sort_unstable();
    enabled.dedup();
    let locking: Vec<Option<Language>> = std::iter::once(None)
        .chain(enabled.iter().copied().filter(|l| l.has_locking_table()).map(Some))
        .collect();
    let single: Vec<Option<Language>> = std::iter::once(None).chain(enabled.into_iter().map(Some)).collect();
    locking
        .into_iter()
        .flat_map(move |l| single.clone().into_iter().map(move |s| (l, s)))
        .filter(|&(l, s)| l.is_some() || s.is_some())
        .map(|(locking, single)| Encoding::Gsm7 { locking, single })
}

/// Octets of the UDH (with its length octet) that a part in this encoding carries.
pub(crate) fn udh_octets(encoding: Encoding, concatenated: bool, concat16: bool) -> usize {
    let concat = match (concatenated, concat16) {
        (false, _) => 0,
        (true, false) => 5,
        (true, true) => 6,
    };
    let national = match encoding {
        Encoding::Gsm7 { locking, single } => 3 * (usize::from(locking.is_some()) + usize::from(single.is_some())),
        Encoding::Ucs2 => 0,
    };
    match concat + national {
        0 => 0,
        ies => ies + 1,
    }
}

/// Septets (GSM 7-bit) or UTF-16 units (UCS-2) left for text after the UDH.
pub(crate) fn capacity(encoding: Encoding, udh_octets: usize) -> usize {
    match encoding {
        Encoding::Gsm7 { .. } => UD_OCTETS * 8 / 7 - (udh_octets * 8).div_ceil(7),
        Encoding::Ucs2 => (UD_OCTETS - udh_octets) / 2,
    }
}

/// Cost of each character in septets or UTF-16 units; None if one is not encodable.
fn costs(text: &str, encoding: Encoding) -> Option<Vec<(char, usize)>> {
    match encoding {
        Encoding::Ucs2 => Some(text.chars().map(|c| (c, c.len_utf16())).collect()),
        Encoding::Gsm7 { locking, single } => {
            let charset = Charset::new(locking, single);
            text.chars().map(|c| Some((c, charset.septets(c)?.len()))).collect()
        }
    }
}

/// Greedy cut: a character (so an escape sequence or a surrogate pair) is never split.
/// Also gives the septets or UTF-16 units of the whole text.
fn split_in(text: &str, encoding: Encoding, concat16: bool) -> Option<(Vec<String>, usize)> {
    let costs = costs(text, encoding)?;
    let total = costs.iter().map(|&(_, n)| n).sum::<usize>();
    if total <= capacity(encoding, udh_octets(encoding, false, concat16)) {
        return Some((vec![text.to_string()], total));
    }
    let per_part = capacity(encoding, udh_octets(encoding, true, concat16));
    let mut parts = vec![String::new()];
    let mut used = 0;
    for (c, n) in costs {
        if used + n > per_part {
            parts.push(String::new());
            used = 0;
        }
        used += n;
        parts.last_mut()?.push(c);
    }
    Some((parts, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_match_ts_23_040() {
        let tr_both = Encoding::Gsm7 {
            locking: Some(Language::Turkish),
            single: Some(Language::Turkish),
        };
        let es_single = Encoding::Gsm7 {
            locking: None,
            single: Some(Language::Spanish),
        };
        let table = [
            (Encoding::GSM7, false, false, 160),
            (Encoding::GSM7, true, false, 153),
            (Encoding::GSM7, true, true, 152),
            (es_single, false, false, 155),
            (es_single, true, false, 149),
            (tr_both, false, false, 152),
            (tr_both, true, false, 146),
            (Encoding::Ucs2, false, false, 70),
            (Encoding::Ucs2, true, false, 67),
            (Encoding::Ucs2, true, true, 66),
        ];
        for (encoding, concatenated, concat16, expected) in table {
            let udh = udh_octets(encoding, concatenated, concat16);
            assert_eq!(
                capacity(encoding, udh),
                expected,
                "{encoding} {concatenated} {concat16}"
            );
        }
    }

    fn lengths(split: &Split) -> Vec<usize> {
        split.parts.iter().map(|p| p.chars().count()).collect()
    }

    #[test]
    fn part_boundaries() {
        let tr = [Language::Turkish];
        let table: [(String, &[Language], Encoding, Vec<usize>); 10] = [
            (String::new(), &[], Encoding::GSM7, vec![0]),
            ("a".repeat(160), &[], Encoding::GSM7, vec![160]),
            ("a".repeat(161), &[], Encoding::GSM7, vec![153, 8]),
            ("€".repeat(80), &[], Encoding::GSM7, vec![80]),
            // 153 septets hold 76 euro signs and one septet stays unused: ESC is never split off.
            ("€".repeat(81), &[], Encoding::GSM7, vec![76, 5]),
            ("é".repeat(70) + "ж", &[], Encoding::Ucs2, vec![67, 4]),
            ("ж".repeat(70), &[], Encoding::Ucs2, vec![70]),
            // U+1F600 takes two UTF-16 units: 33 of them fill 66 of a part's 67 units.
            ("😀".repeat(35), &[], Encoding::Ucs2, vec![35]),
            ("😀".repeat(36), &[], Encoding::Ucs2, vec![33, 3]),
            (
                "ş".repeat(151),
                &tr,
                Encoding::Gsm7 {
                    locking: Some(Language::Turkish),
                    single: None,
                },
                vec![151],
            ),
        ];
        for (text, languages, encoding, expected) in table {
            let split = split(&text, languages);
            assert_eq!((split.encoding, lengths(&split)), (encoding, expected), "{text:?}");
            assert_eq!(split.parts.concat(), text);
        }
    }

    #[test]
    fn cheapest_national_tables_win() {
        let all = Language::ALL;
        let gsm = |locking, single| Encoding::Gsm7 { locking, single };
        let (tr, es, pt) = (
            Some(Language::Turkish),
            Some(Language::Spanish),
            Some(Language::Portuguese),
        );
        let table = [
            ("Iñtërnâtiônàlizætiøn", &all[..], Encoding::Ucs2),
            ("Çalışma saatleri", &all[..], gsm(tr, None)),
            ("Çalışma saatleri", &[][..], Encoding::Ucs2),
            ("¿Cómo está?", &all[..], gsm(None, es)),
            ("Não há ação", &all[..], gsm(pt, None)),
            ("Não", &[Language::Spanish][..], Encoding::Ucs2),
            ("plain text", &all[..], Encoding::GSM7),
        ];
        for (text, languages, encoding) in table {
            assert_eq!(split(text, languages).encoding, encoding, "{text:?}");
        }
    }

    #[test]
    fn concat16_leaves_one_septet_less() {
        let text = "a".repeat(306);
        assert_eq!(lengths(&split_with(&text, &[], false)), vec![153, 153]);
        assert_eq!(lengths(&split_with(&text, &[], true)), vec![152, 152, 2]);
    }
}
