//! Hex as PDUs travel on the AT interface: two uppercase digits per octet.

pub(super) fn encode(octets: &[u8]) -> String {
    octets.iter().map(|o| format!("{o:02X}")).collect()
}

/// None for an odd count or a non-hex digit; either case accepted.
pub(super) fn decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            let pair = hex.get(i..i + 2).filter(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(encode(&[0x00, 0x0A, 0xFF]), "000AFF");
        assert_eq!(decode("000aFF"), Some(vec![0x00, 0x0A, 0xFF]));
        assert_eq!(decode("ABC"), None);
        assert_eq!(decode("0G"), None);
        assert_eq!(decode("+1"), None);
        assert_eq!(decode("é0"), None);
    }
}
