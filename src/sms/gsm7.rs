//! GSM 7-bit character sets: the default alphabet and extension table, or the national
//! tables that replace them (TS 23.038 §6.2.1, annex A); and septet packing.

use super::language::Language;
use super::national;
use super::tables::{DEFAULT_ALPHABET, DEFAULT_EXTENSION, ESC, MainTable, ShiftTable};

/// The septets of one character: one code, or ESC and a code of the shift table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Septets {
    One(u8),
    Escaped(u8),
}

impl Septets {
    /// How many septets the character takes.
    pub(crate) fn len(self) -> usize {
        match self {
            Septets::One(_) => 1,
            Septets::Escaped(_) => 2,
        }
    }
}

/// The main table and shift table in force for one message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charset {
    main: &'static MainTable,
    shift: ShiftTable,
}

impl Charset {
    /// The default alphabet and extension table: what a message without national
    /// language IEs uses.
    pub(crate) const DEFAULT: Charset = Charset {
        main: &DEFAULT_ALPHABET,
        shift: DEFAULT_EXTENSION,
    };

    /// A language without a locking table (Spanish) leaves the default alphabet in force,
    /// as TS 23.038 §6.2.1.2.4 asks of a receiver that does not know the table.
    pub(crate) fn new(locking: Option<Language>, single: Option<Language>) -> Charset {
        Charset {
            main: locking.and_then(national::locking_table).unwrap_or(&DEFAULT_ALPHABET),
            shift: single.map_or(DEFAULT_EXTENSION, national::single_shift_table),
        }
    }

    /// The septets of `c` in this set, or None if it has none.
    pub(crate) fn septets(&self, c: char) -> Option<Septets> {
        // Most ASCII sits at its own code in every table (letters, digits, most signs): a
        // direct look first spares the intake a table scan per character.
        let ascii = usize::try_from(u32::from(c))
            .ok()
            .filter(|&i| i < 128 && i != usize::from(ESC));
        if let Some(code) = ascii.filter(|&i| self.main[i] == c) {
            return Some(Septets::One(code as u8));
        }
        let main = self.main.iter().position(|&m| m == c);
        if let Some(code) = main.and_then(|i| u8::try_from(i).ok()).filter(|&i| i != ESC) {
            return Some(Septets::One(code));
        }
        self.shift
            .iter()
            .find(|&&(_, s)| s == c)
            .map(|&(code, _)| Septets::Escaped(code))
    }

    /// Septets of the whole text, or None if a character is not in this set.
    pub(crate) fn encode(&self, text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.septets(c)? {
                Septets::One(code) => out.push(code),
                Septets::Escaped(code) => out.extend([ESC, code]),
            }
        }
        Some(out)
    }

    /// The text of septets in this set (high bits ignored).
    pub(crate) fn decode(&self, septets: &[u8]) -> String {
        let mut out = String::with_capacity(septets.len());
        let mut iter = septets.iter().map(|s| s & 0x7F);
        while let Some(s) = iter.next() {
            if s != ESC {
                out.push(self.main[usize::from(s)]);
                continue;
            }
            // §6.2.1.1: an ESC alone, or ESC ESC (reserved), shows as a space; an
            // undefined escape code shows the main table's character.
            out.push(match iter.next() {
                None | Some(ESC) => ' ',
                Some(code) => self.shifted(code),
            });
        }
        out
    }

    fn shifted(&self, code: u8) -> char {
        self.shift
            .iter()
            .find(|&&(c, _)| c == code)
            .map_or(self.main[usize::from(code & 0x7F)], |&(_, ch)| ch)
    }
}

/// Packs septets LSB first after `fill_bits` zero bits (TS 23.038 §6.1.2.1.1).
pub(crate) fn pack(septets: &[u8], fill_bits: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity((fill_bits + septets.len() * 7).div_ceil(8));
    let mut acc: u32 = 0;
    let mut bits = fill_bits;
    for &s in septets {
        acc |= u32::from(s & 0x7F) << bits;
        bits += 7;
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push(acc as u8);
    }
    out
}

/// Unpacks `count` septets that start `fill_bits` into `octets`; None if the octets are too few.
pub(crate) fn unpack(octets: &[u8], fill_bits: usize, count: usize) -> Option<Vec<u8>> {
    if (fill_bits + count * 7).div_ceil(8) > octets.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut skip = fill_bits;
    for &octet in octets {
        acc |= u32::from(octet) << bits;
        bits += 8;
        if skip > 0 {
            acc >>= skip;
            bits -= skip;
            skip = 0;
        }
        while bits >= 7 && out.len() < count {
            out.push((acc & 0x7F) as u8);
            acc >>= 7;
            bits -= 7;
        }
    }
    (out.len() == count).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_alphabet_positions_match_ts_23_038() {
        let table = [
            (0x00, '@'),
            (0x02, '$'),
            (0x09, 'Ç'),
            (0x10, 'Δ'),
            (0x11, '_'),
            (0x24, '¤'),
            (0x40, '¡'),
            (0x5F, '§'),
            (0x60, '¿'),
            (0x7F, 'à'),
        ];
        for (code, c) in table {
            assert_eq!(DEFAULT_ALPHABET[code], c);
            assert_eq!(Charset::DEFAULT.septets(c), Some(Septets::One(code as u8)));
        }
    }

    #[test]
    fn extension_characters_take_two_septets() {
        for (c, code) in [
            ('^', 0x14),
            ('{', 0x28),
            ('}', 0x29),
            ('\\', 0x2F),
            ('[', 0x3C),
            ('~', 0x3D),
            (']', 0x3E),
            ('|', 0x40),
            ('€', 0x65),
            ('\u{0C}', 0x0A),
        ] {
            assert_eq!(Charset::DEFAULT.septets(c), Some(Septets::Escaped(code)), "{c:?}");
        }
    }

    #[test]
    fn characters_outside_the_alphabet_are_refused() {
        for c in ['\u{1B}', 'ç', '`', 'ı', '😀', '\t'] {
            assert_eq!(Charset::DEFAULT.septets(c), None, "{c:?}");
        }
    }

    #[test]
    fn odd_escapes_decode_as_the_spec_says() {
        let cases: [(&[u8], &str); 4] = [
            (&[ESC], " "),
            (&[ESC, ESC, 0x41], " A"),
            (&[ESC, 0x41], "A"),
            (&[0x41, ESC, 0x65], "A€"),
        ];
        for (septets, text) in cases {
            assert_eq!(Charset::DEFAULT.decode(septets), text);
        }
    }

    #[test]
    fn packing_matches_published_examples() {
        // "hellohello" packs to E8329BFD4697D9EC37 (dreamfabric.com/sms/hello.html).
        let septets = Charset::DEFAULT.encode("hellohello").unwrap();
        assert_eq!(
            pack(&septets, 0),
            [0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37]
        );
        // "2 € par mois" packs to 32D0A60C8287E5A0F63B3D07 (smspdudecoder's doctests).
        let septets = Charset::DEFAULT.encode("2 € par mois").unwrap();
        let packed = pack(&septets, 0);
        assert_eq!(
            packed,
            [0x32, 0xD0, 0xA6, 0x0C, 0x82, 0x87, 0xE5, 0xA0, 0xF6, 0x3B, 0x3D, 0x07]
        );
        assert_eq!(unpack(&packed, 0, septets.len()), Some(septets));
    }

    #[test]
    fn unpack_refuses_too_few_octets() {
        assert_eq!(unpack(&[0xE8, 0x32], 0, 3), None);
        for fill in 0..7 {
            let septets = [0x7F, 0x00, 0x55, 0x2A, 0x01, 0x40, 0x7E, 0x33, 0x1B];
            let packed = pack(&septets, fill);
            assert_eq!(packed.len(), (fill + 7 * septets.len()).div_ceil(8));
            assert_eq!(unpack(&packed, fill, septets.len()).as_deref(), Some(&septets[..]));
        }
        assert_eq!(unpack(&[], 0, 0), Some(vec![]));
    }

    #[test]
    fn national_characters_have_their_annex_a_codes() {
        let tr = Some(Language::Turkish);
        let es = Some(Language::Spanish);
        let pt = Some(Language::Portuguese);
        let cases = [
            (Charset::new(tr, None), 'ş', Septets::One(0x1D)),
            (Charset::new(tr, None), 'İ', Septets::One(0x40)),
            (Charset::new(None, tr), 'ş', Septets::Escaped(0x73)),
            (Charset::new(None, tr), 'ğ', Septets::Escaped(0x67)),
            (Charset::new(None, es), 'ñ', Septets::One(0x7D)),
            (Charset::new(None, es), 'ú', Septets::Escaped(0x75)),
            (Charset::new(pt, None), 'õ', Septets::One(0x7C)),
            (Charset::new(pt, None), '^', Septets::One(0x16)),
            (Charset::new(None, pt), 'â', Septets::Escaped(0x7F)),
            (Charset::new(pt, pt), 'ç', Septets::One(0x09)),
            (Charset::new(es, None), 'è', Septets::One(0x04)),
        ];
        for (charset, c, septets) in cases {
            assert_eq!(charset.septets(c), Some(septets), "{c:?}");
        }
        assert_eq!(Charset::new(tr, None).septets('è'), None);
    }
}
