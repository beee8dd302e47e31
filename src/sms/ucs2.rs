//! UCS-2 user data, read as UTF-16 big-endian so that characters beyond the BMP survive.

/// UTF-16BE octets of the text.
pub(crate) fn encode(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Text of UTF-16BE octets; None for an odd count. A lone surrogate (a pair that another
/// sender split across parts) becomes U+FFFD rather than failing the whole message.
pub(crate) fn decode(octets: &[u8]) -> Option<String> {
    if !octets.len().is_multiple_of(2) {
        return None;
    }
    let units = octets
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    Some(
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_round_trips() {
        let cases: [(&str, &[u8]); 3] = [
            ("", &[]),
            ("Aé", &[0x00, 0x41, 0x00, 0xE9]),
            // U+1F600 is the surrogate pair D83D DE00.
            ("😀", &[0xD8, 0x3D, 0xDE, 0x00]),
        ];
        for (text, octets) in cases {
            assert_eq!(encode(text), octets);
            assert_eq!(decode(octets).as_deref(), Some(text));
        }
    }

    #[test]
    fn odd_octets_and_lone_surrogates() {
        assert_eq!(decode(&[0x00]), None);
        assert_eq!(decode(&[0xD8, 0x3D, 0x00, 0x41]).as_deref(), Some("\u{FFFD}A"));
    }
}
