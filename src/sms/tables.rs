//! The shape of a GSM 7-bit alphabet (a main table and a single shift table reached by
//! ESC), and the default ones: the default alphabet (TS 23.038 §6.2.1) and its extension
//! table (§6.2.1.1). The national tables of annex A are in `national`.

/// Escape to the extension (or national single shift) table.
pub(crate) const ESC: u8 = 0x1B;

/// A 128-entry main table; position 0x1B holds ESC itself and is never looked up as a character.
pub(crate) type MainTable = [char; 128];

/// A single shift table as (code after ESC, character) pairs.
pub(crate) type ShiftTable = &'static [(u8, char)];

/// TS 23.038 §6.2.1 (0x09 is the capital Ç of the current tables).
pub(crate) const DEFAULT_ALPHABET: MainTable = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1B}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// TS 23.038 §6.2.1.1.
pub(crate) const DEFAULT_EXTENSION: ShiftTable = &[
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];
