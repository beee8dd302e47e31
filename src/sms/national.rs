//! National language locking and single shift tables (TS 23.038 annex A.2 and A.3).

use super::language::Language;
use super::tables::{MainTable, ShiftTable};

/// TS 23.038 A.3.1.
const TURKISH_LOCKING: MainTable = [
    '@', '£', '$', '¥', '€', 'é', 'ù', 'ı', 'ò', 'Ç', '\n', 'Ğ', 'ğ', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Ş', 'ş', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    'İ', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    'ç', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// TS 23.038 A.3.3.
const PORTUGUESE_LOCKING: MainTable = [
    '@', '£', '$', '¥', 'ê', 'é', 'ú', 'í', 'ó', 'ç', '\n', 'Ô', 'ô', '\r', 'Á', 'á', //
    'Δ', '_', 'ª', 'Ç', 'À', '∞', '^', '\\', '€', 'Ó', '|', '\u{1B}', 'Â', 'â', 'Ê', 'É', //
    ' ', '!', '"', '#', 'º', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    'Í', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ã', 'Õ', 'Ú', 'Ü', '§', //
    '~', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ã', 'õ', '`', 'ü', 'à', //
];

/// TS 23.038 A.2.1.
const TURKISH_SINGLE: ShiftTable = &[
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x47, 'Ğ'),
    (0x49, 'İ'),
    (0x53, 'Ş'),
    (0x63, 'ç'),
    (0x65, '€'),
    (0x67, 'ğ'),
    (0x69, 'ı'),
    (0x73, 'ş'),
];

/// TS 23.038 A.2.2.
const SPANISH_SINGLE: ShiftTable = &[
    (0x09, 'ç'),
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x41, 'Á'),
    (0x49, 'Í'),
    (0x4F, 'Ó'),
    (0x55, 'Ú'),
    (0x61, 'á'),
    (0x65, '€'),
    (0x69, 'í'),
    (0x6F, 'ó'),
    (0x75, 'ú'),
];

/// TS 23.038 A.2.3.
const PORTUGUESE_SINGLE: ShiftTable = &[
    (0x05, 'ê'),
    (0x09, 'ç'),
    (0x0A, '\u{0C}'),
    (0x0B, 'Ô'),
    (0x0C, 'ô'),
    (0x0E, 'Á'),
    (0x0F, 'á'),
    (0x12, 'Φ'),
    (0x13, 'Γ'),
    (0x14, '^'),
    (0x15, 'Ω'),
    (0x16, 'Π'),
    (0x17, 'Ψ'),
    (0x18, 'Σ'),
    (0x19, 'Θ'),
    (0x1F, 'Ê'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x41, 'À'),
    (0x49, 'Í'),
    (0x4F, 'Ó'),
    (0x55, 'Ú'),
    (0x5B, 'Ã'),
    (0x5C, 'Õ'),
    (0x61, 'Â'),
    (0x65, '€'),
    (0x69, 'í'),
    (0x6F, 'ó'),
    (0x75, 'ú'),
    (0x7B, 'ã'),
    (0x7C, 'õ'),
    (0x7F, 'â'),
];

/// The locking shift table of `language`, which replaces the default alphabet; None
/// for a language that has none (Spanish).
pub(crate) fn locking_table(language: Language) -> Option<&'static MainTable> {
    match language {
        Language::Turkish => Some(&TURKISH_LOCKING),
        Language::Spanish => None,
        Language::Portuguese => Some(&PORTUGUESE_LOCKING),
    }
}

/// The single shift table of `language`, which replaces the extension table.
pub(crate) fn single_shift_table(language: Language) -> ShiftTable {
    match language {
        Language::Turkish => TURKISH_SINGLE,
        Language::Spanish => SPANISH_SINGLE,
        Language::Portuguese => PORTUGUESE_SINGLE,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables::{DEFAULT_ALPHABET, ESC};
    use super::*;

    #[test]
    fn locking_tables_keep_escape_and_line_breaks_in_place() {
        for language in Language::ALL {
            assert_eq!(locking_table(language).is_some(), language.has_locking_table());
            if let Some(table) = locking_table(language) {
                assert_eq!(table[usize::from(ESC)], '\u{1B}');
                assert_eq!((table[0x0A], table[0x0D], table[0x20]), ('\n', '\r', ' '));
            }
        }
    }

    #[test]
    fn no_table_maps_two_codes_to_one_character() {
        let mains = [&DEFAULT_ALPHABET, &TURKISH_LOCKING, &PORTUGUESE_LOCKING];
        for table in mains {
            let mut chars = table.to_vec();
            chars.sort_unstable();
            chars.dedup();
            assert_eq!(chars.len(), 128);
        }
        for language in Language::ALL {
            let table = single_shift_table(language);
            let mut codes: Vec<u8> = table.iter().map(|&(c, _)| c).collect();
            let mut chars: Vec<char> = table.iter().map(|&(_, c)| c).collect();
            codes.dedup();
            chars.sort_unstable();
            chars.dedup();
            assert_eq!((codes.len(), chars.len()), (table.len(), table.len()), "{language}");
            assert!(table.windows(2).all(|w| w[0].0 < w[1].0), "{language} sorted");
        }
    }
}
