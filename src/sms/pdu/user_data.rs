//! TP-DCS (TS 23.038 §4) and TP-UDL/TP-UD (TS 23.040 §9.2.3.16, §9.2.3.24).

use serde::Serialize;

use super::super::gsm7::{self, Charset};
use super::super::language::Encoding;
use super::super::split::UD_OCTETS;
use super::super::ucs2;
use super::reader::Reader;
use super::udh::Udh;
use super::{PduError, to_hex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alphabet {
    Gsm7,
    Eight,
    Ucs2,
}

/// Compressed text (bit 5 of the general group) is passed on as data: nobody sends it.
fn alphabet(dcs: u8) -> Alphabet {
    match dcs >> 4 {
        0x0..=0x7 if dcs & 0x20 != 0 => Alphabet::Eight,
        0x0..=0x7 => match (dcs >> 2) & 0x03 {
            1 => Alphabet::Eight,
            2 => Alphabet::Ucs2,
            _ => Alphabet::Gsm7,
        },
        0xE => Alphabet::Ucs2,
        0xF if dcs & 0x04 != 0 => Alphabet::Eight,
        // 0xC, 0xD (message waiting) and the reserved groups 0x8–0xB, which §4 says to read as GSM 7-bit.
        _ => Alphabet::Gsm7,
    }
}

/// Message class 0–3 when the DCS gives one (0 is a flash SMS).
pub(super) fn message_class(dcs: u8) -> Option<u8> {
    match dcs >> 4 {
        0x0..=0x7 if dcs & 0x10 != 0 => Some(dcs & 0x03),
        0xF => Some(dcs & 0x03),
        _ => None,
    }
}

/// DCS for an outgoing part: general data coding, class 0 when flashing.
pub(super) fn dcs_for(encoding: Encoding, flash: bool) -> u8 {
    let alphabet = match encoding {
        Encoding::Gsm7 { .. } => 0x00,
        Encoding::Ucs2 => 0x08,
    };
    if flash { alphabet | 0x10 } else { alphabet }
}

/// The content of TP-UD after its header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "coding", rename_all = "lowercase")]
pub enum Body {
    /// Text in one of the alphabets smsgw decodes (TP-DCS and the shift IEs say which).
    Text {
        /// The alphabet and national tables it was decoded with.
        encoding: Encoding,
        /// The decoded text.
        text: String,
    },
    /// 8-bit data (or compressed text), as uppercase hex.
    Binary {
        /// The octets, uppercase hex.
        hex: String,
    },
}

impl Body {
    /// The text, or the hex of binary data.
    pub fn as_str(&self) -> &str {
        match self {
            Body::Text { text, .. } => text,
            Body::Binary { hex } => hex,
        }
    }
}

/// Reads TP-UDL and TP-UD; `udhi` is the TP-UDHI bit of the first octet.
pub(super) fn read(reader: &mut Reader<'_>, udhi: bool, dcs: u8) -> Result<(Option<Udh>, Body), PduError> {
    let udl = usize::from(reader.u8("TP-UDL")?);
    let alphabet = alphabet(dcs);
    let octets = match alphabet {
        Alphabet::Gsm7 => (udl * 7).div_ceil(8),
        Alphabet::Eight | Alphabet::Ucs2 => udl,
    };
    if octets > UD_OCTETS {
        return Err(PduError::BadLength {
            field: "TP-UDL",
            value: udl,
        });
    }
    let ud = reader.take(octets, "user data")?;
    let (udh, header_octets) = match udhi {
        false => (None, 0),
        true => {
            let (&udhl, ies) = ud.split_first().ok_or(PduError::BadUdh("UDHL missing"))?;
            let ies = ies
                .get(..usize::from(udhl))
                .ok_or(PduError::BadUdh("header longer than the user data"))?;
            (Some(Udh::read(ies)?), 1 + usize::from(udhl))
        }
    };
    let payload = ud.get(header_octets..).unwrap_or_default();
    let body = match alphabet {
        Alphabet::Gsm7 => gsm7_body(ud, udl, header_octets, udh.as_ref())?,
        Alphabet::Ucs2 => Body::Text {
            encoding: Encoding::Ucs2,
            text: ucs2::decode(payload).ok_or(PduError::OddUcs2)?,
        },
        Alphabet::Eight => Body::Binary { hex: to_hex(payload) },
    };
    Ok((udh, body))
}

/// Septet i of the user data sits at bits 7i…7i+6 whatever the header, so the text is
/// what follows the septets that the header and its fill bits cover.
fn gsm7_body(ud: &[u8], udl: usize, header_octets: usize, udh: Option<&Udh>) -> Result<Body, PduError> {
    let header_septets = (header_octets * 8).div_ceil(7);
    if header_septets > udl {
        return Err(PduError::BadUdh("header longer than the user data"));
    }
    let septets = gsm7::unpack(ud, 0, udl).ok_or(PduError::Truncated("user data"))?;
    let (locking, single) = udh.map_or((None, None), |h| (h.locking_shift, h.single_shift));
    let text = Charset::new(locking, single).decode(septets.get(header_septets..).unwrap_or_default());
    let encoding = Encoding::Gsm7 { locking, single };
    Ok(Body::Text { encoding, text })
}

/// TP-UDL and TP-UD for one part; None if the text does not fit the encoding or one SMS.
pub(super) fn encode(text: &str, encoding: Encoding, udh: &Udh) -> Option<(u8, Vec<u8>)> {
    let mut ud = udh.to_octets();
    let udl = match encoding {
        Encoding::Gsm7 { locking, single } => {
            let septets = Charset::new(locking, single).encode(text)?;
            let header_septets = (ud.len() * 8).div_ceil(7);
            let fill_bits = header_septets * 7 - ud.len() * 8;
            ud.extend(gsm7::pack(&septets, fill_bits));
            header_septets + septets.len()
        }
        Encoding::Ucs2 => {
            ud.extend(ucs2::encode(text));
            ud.len()
        }
    };
    (ud.len() <= UD_OCTETS).then_some(())?;
    Some((u8::try_from(udl).ok()?, ud))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_coding_schemes_of_ts_23_038() {
        use Alphabet::*;
        let table = [
            (0x00, Gsm7, None),
            (0x04, Eight, None),
            (0x08, Ucs2, None),
            (0x0C, Gsm7, None),
            (0x10, Gsm7, Some(0)),
            (0x18, Ucs2, Some(0)),
            (0x11, Gsm7, Some(1)),
            (0x24, Eight, None),
            (0x48, Ucs2, None),
            (0x80, Gsm7, None),
            (0xC8, Gsm7, None),
            (0xE0, Ucs2, None),
            (0xF0, Gsm7, Some(0)),
            (0xF6, Eight, Some(2)),
        ];
        for (dcs, expected_alphabet, class) in table {
            assert_eq!(
                (alphabet(dcs), message_class(dcs)),
                (expected_alphabet, class),
                "DCS {dcs:02X}"
            );
        }
        assert_eq!(dcs_for(Encoding::GSM7, false), 0x00);
        assert_eq!(dcs_for(Encoding::Ucs2, false), 0x08);
        assert_eq!(dcs_for(Encoding::GSM7, true), 0x10);
        assert_eq!(dcs_for(Encoding::Ucs2, true), 0x18);
    }

    #[test]
    fn fill_bits_put_the_text_on_a_septet_boundary() {
        // 6-octet header = 48 bits: one fill bit, text starts at septet 7.
        let udh = Udh {
            concat: Some(super::super::Concat {
                reference: 1,
                parts: 2,
                part: 1,
                wide: false,
            }),
            ..Udh::default()
        };
        let (udl, ud) = encode("A", Encoding::GSM7, &udh).unwrap();
        assert_eq!(udl, 8);
        assert_eq!(ud, [0x05, 0x00, 0x03, 0x01, 0x02, 0x01, 0x41 << 1]);
        let mut bytes = vec![udl];
        bytes.extend(&ud);
        let (read_udh, body) = read(&mut Reader::new(&bytes), true, 0x00).unwrap();
        assert_eq!(read_udh, Some(udh));
        assert_eq!(body.as_str(), "A");
    }
}
