//! Address fields (TS 23.040 §9.1.2.5) and the SMSC field (TS 24.011 §8.2.5.1).

use serde::Serialize;

use super::super::gsm7::{self, Charset};
use super::PduError;
use super::reader::Reader;

/// A decoded address; `number` has a leading "+" when the type of number is international.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    /// The digits ("+" first when international), or the text of an alphanumeric sender.
    pub number: String,
    /// How to read `number`, from the type-of-address octet.
    pub kind: AddressKind,
    /// Type-of-address octet as received.
    pub toa: u8,
}

/// Type of number, bits 6–4 of the type-of-address octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressKind {
    /// Type 000: the network decides; the digits may carry their own prefix.
    Unknown,
    /// Type 001: international, the digits start with the country code.
    International,
    /// Type 010: national, the digits are in the country's own format.
    National,
    /// Type 101: alphanumeric, GSM 7-bit text such as a sender name.
    Alphanumeric,
    /// Network specific, subscriber, abbreviated or reserved: digits kept as they are.
    Other,
}

/// Type of address 1001 0001: international number, ISDN numbering plan.
pub(super) const TOA_INTERNATIONAL: u8 = 0x91;
/// Type of address 1000 0001: unknown type of number, ISDN numbering plan.
pub(super) const TOA_UNKNOWN: u8 = 0x81;
/// Type of address 1101 0000: alphanumeric (TS 23.038 GSM 7-bit).
pub(super) const TOA_ALPHANUMERIC: u8 = 0xD0;

/// Semi-octets of a TP address: 20 digits in 10 octets (TS 23.040 §9.1.2.5).
const MAX_SEMI_OCTETS: u8 = 20;
/// Octets of the SMSC field after its length octet: type-of-address and 10 octets of digits.
const MAX_SMSC_OCTETS: u8 = 11;
/// Septets of an alphanumeric address that fit in its 10 octets.
pub(super) const MAX_ALPHANUMERIC_SEPTETS: usize = 11;

impl AddressKind {
    fn of(toa: u8) -> AddressKind {
        match (toa >> 4) & 0x07 {
            0 => AddressKind::Unknown,
            1 => AddressKind::International,
            2 => AddressKind::National,
            5 => AddressKind::Alphanumeric,
            _ => AddressKind::Other,
        }
    }
}

/// The SMSC field: a length in octets, 0 meaning "the SIM's default centre".
pub(super) fn read_smsc(reader: &mut Reader<'_>) -> Result<Option<Address>, PduError> {
    let len = reader.u8("SMSC length")?;
    if len == 0 {
        return Ok(None);
    }
    if len > MAX_SMSC_OCTETS {
        return Err(PduError::BadLength {
            field: "SMSC length",
            value: len.into(),
        });
    }
    let toa = reader.u8("SMSC type of address")?;
    let digits = reader.take(usize::from(len - 1), "SMSC digits")?;
    Ok(Some(numeric(toa, digits, digits.len() * 2)?))
}

/// TP-OA, TP-DA, TP-RA: a length in semi-octets, the type of address, the digits.
pub(super) fn read(reader: &mut Reader<'_>) -> Result<Address, PduError> {
    let len = reader.u8("address length")?;
    if len > MAX_SEMI_OCTETS {
        return Err(PduError::BadLength {
            field: "address length",
            value: len.into(),
        });
    }
    let toa = reader.u8("type of address")?;
    let digits = reader.take(usize::from(len).div_ceil(2), "address digits")?;
    if AddressKind::of(toa) == AddressKind::Alphanumeric {
        let septets = gsm7::unpack(digits, 0, usize::from(len) * 4 / 7).ok_or(PduError::BadAddress("alphanumeric"))?;
        let number = Charset::DEFAULT.decode(&septets);
        return Ok(Address {
            number,
            kind: AddressKind::Alphanumeric,
            toa,
        });
    }
    numeric(toa, digits, usize::from(len))
}

fn numeric(toa: u8, octets: &[u8], semi_octets: usize) -> Result<Address, PduError> {
    let kind = AddressKind::of(toa);
    let mut number = String::with_capacity(semi_octets + 1);
    if kind == AddressKind::International {
        number.push('+');
    }
    let nibbles: Vec<u8> = octets
        .iter()
        .flat_map(|o| [o & 0x0F, o >> 4])
        .take(semi_octets)
        .collect();
    // Some senders count the filler of an odd number in the length: a final F is padding.
    let digits = match nibbles.split_last() {
        Some((0x0F, rest)) => rest,
        _ => &nibbles[..],
    };
    for &nibble in digits {
        number.push(match nibble {
            0..=9 => char::from(b'0' + nibble),
            0x0A => '*',
            0x0B => '#',
            0x0C => 'a',
            0x0D => 'b',
            0x0E => 'c',
            _ => return Err(PduError::BadAddress("filler digit inside the number")),
        });
    }
    Ok(Address { number, kind, toa })
}

/// What encode_submit accepts as a destination or SMSC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Number<'a> {
    International(&'a str),
    Digits(&'a str),
    Alphanumeric(Vec<u8>),
}

/// "+" and digits, digits, or up to 11 septets of the default alphabet.
pub(super) fn classify(number: &str) -> Result<Number<'_>, &'static str> {
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(digits) = number.strip_prefix('+') {
        return match all_digits(digits) && digits.len() <= usize::from(MAX_SEMI_OCTETS) {
            true => Ok(Number::International(digits)),
            false => Err("\"+\" must be followed by 1 to 20 digits"),
        };
    }
    if all_digits(number) {
        return match number.len() <= usize::from(MAX_SEMI_OCTETS) {
            true => Ok(Number::Digits(number)),
            false => Err("more than 20 digits"),
        };
    }
    match Charset::DEFAULT.encode(number) {
        Some(septets) if !septets.is_empty() && septets.len() <= MAX_ALPHANUMERIC_SEPTETS => {
            Ok(Number::Alphanumeric(septets))
        }
        Some(_) if number.is_empty() => Err("empty"),
        Some(_) => Err("alphanumeric address longer than 11 septets"),
        None => Err("alphanumeric address outside the GSM 7-bit alphabet"),
    }
}

fn bcd(digits: &str) -> Vec<u8> {
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let low = pair[0] - b'0';
            let high = pair.get(1).map_or(0x0F, |d| d - b'0');
            high << 4 | low
        })
        .collect()
}

/// TP-DA octets for a classified number.
pub(super) fn encode(number: &Number<'_>) -> Vec<u8> {
    let (len, toa, body) = match number {
        Number::International(d) => (d.len(), TOA_INTERNATIONAL, bcd(d)),
        Number::Digits(d) => (d.len(), TOA_UNKNOWN, bcd(d)),
        Number::Alphanumeric(septets) => (
            (septets.len() * 7).div_ceil(4),
            TOA_ALPHANUMERIC,
            gsm7::pack(septets, 0),
        ),
    };
    let mut out = vec![len as u8, toa];
    out.extend(body);
    out
}

/// SMSC field octets: "00" for the SIM's default centre.
pub(super) fn encode_smsc(number: &Number<'_>) -> Option<Vec<u8>> {
    let (toa, body) = match number {
        Number::International(d) => (TOA_INTERNATIONAL, bcd(d)),
        Number::Digits(d) => (TOA_UNKNOWN, bcd(d)),
        Number::Alphanumeric(_) => return None,
    };
    let mut out = vec![body.len() as u8 + 1, toa];
    out.extend(body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_encode_as_ts_23_040_says() {
        let table: [(&str, &[u8]); 4] = [
            // dreamfabric.com/sms/hello.html: 0B 91 6407281553F8 is +46708251358.
            ("+46708251358", &[0x0B, 0x91, 0x64, 0x07, 0x28, 0x15, 0x53, 0xF8]),
            ("0477858589", &[0x0A, 0x81, 0x40, 0x77, 0x58, 0x58, 0x98]),
            // "Design@Home" as in smspdudecoder 2.2.0's Address.decode doctest: 14 D0 C4F23C7D760390EF7619.
            (
                "Design@Home",
                &[0x14, 0xD0, 0xC4, 0xF2, 0x3C, 0x7D, 0x76, 0x03, 0x90, 0xEF, 0x76, 0x19],
            ),
            ("A", &[0x02, 0xD0, 0x41]),
        ];
        for (number, octets) in table {
            let classified = classify(number).unwrap();
            assert_eq!(encode(&classified), octets, "{number}");
            let decoded = read(&mut Reader::new(octets)).unwrap();
            assert_eq!(decoded.number, number);
        }
    }

    #[test]
    fn bad_numbers_are_named() {
        let table = [
            ("", "empty"),
            ("+", "\"+\" must be followed by 1 to 20 digits"),
            ("+33 4", "\"+\" must be followed by 1 to 20 digits"),
            ("123456789012345678901", "more than 20 digits"),
            ("TwelveLetter", "alphanumeric address longer than 11 septets"),
            ("Zürich€€€€€", "alphanumeric address longer than 11 septets"),
            ("Şirket", "alphanumeric address outside the GSM 7-bit alphabet"),
        ];
        for (number, reason) in table {
            assert_eq!(classify(number), Err(reason), "{number:?}");
        }
    }

    #[test]
    fn smsc_fields() {
        let classified = classify("+33609001390").unwrap();
        let octets = encode_smsc(&classified).unwrap();
        assert_eq!(octets, [0x07, 0x91, 0x33, 0x06, 0x09, 0x10, 0x93, 0xF0]);
        let decoded = read_smsc(&mut Reader::new(&octets)).unwrap().unwrap();
        assert_eq!(
            (decoded.number.as_str(), decoded.kind),
            ("+33609001390", AddressKind::International)
        );
        assert_eq!(read_smsc(&mut Reader::new(&[0x00])).unwrap(), None);
        let too_long = read_smsc(&mut Reader::new(&[0x0C])).unwrap_err();
        assert_eq!(
            too_long,
            PduError::BadLength {
                field: "SMSC length",
                value: 12
            }
        );
    }
}
