//! User data header (TS 23.040 §9.2.3.24): concatenation (IEI 00, 08) and national
//! language shifts (IEI 24, 25) are understood; every other IE is kept raw.

use serde::Serialize;

use super::super::language::{Encoding, Language};
use super::{PduError, to_hex};

const IEI_CONCAT8: u8 = 0x00;
const IEI_CONCAT16: u8 = 0x08;
const IEI_SINGLE_SHIFT: u8 = 0x24;
const IEI_LOCKING_SHIFT: u8 = 0x25;

/// The IEs of a user data header that smsgw reads or writes; the rest kept raw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Udh {
    /// IEI 0x00 or 0x08: which part of a concatenated message this is; `None` when void.
    pub concat: Option<Concat>,
    /// National single shift table (IEI 0x24) when its language is known.
    pub single_shift: Option<Language>,
    /// National locking shift table (IEI 0x25) when its language is known.
    pub locking_shift: Option<Language>,
    /// Every other IE (and shift IEs of unknown languages), in order.
    pub other: Vec<RawIe>,
}

/// One part of a concatenated message; `part` counts from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Concat {
    /// Ties the parts of one message together, with the sender's number.
    pub reference: u16,
    /// How many parts the message has.
    pub parts: u8,
    /// This part's number, from 1.
    pub part: u8,
    /// The 16-bit reference IE (0x08) rather than the 8-bit one (0x00).
    pub wide: bool,
}

/// An IE smsgw does not interpret, kept for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RawIe {
    /// Its identifier (IEI).
    pub iei: u8,
    /// Its data, uppercase hex.
    pub data: String,
}

impl Udh {
    /// The header of one part of an outgoing message; empty when there is nothing to say.
    pub(super) fn for_part(encoding: Encoding, concat: Option<Concat>) -> Udh {
        let (locking_shift, single_shift) = match encoding {
            Encoding::Gsm7 { locking, single } => (locking, single),
            Encoding::Ucs2 => (None, None),
        };
        Udh {
            concat,
            single_shift,
            locking_shift,
            other: Vec::new(),
        }
    }

    /// Reads the IEs that follow the UDHL octet; `bytes` is exactly UDHL long.
    /// A repeated IE overrides the earlier one (§9.2.3.24, last occurrence wins).
    pub(super) fn read(mut bytes: &[u8]) -> Result<Udh, PduError> {
        let mut udh = Udh::default();
        while let Some((&iei, rest)) = bytes.split_first() {
            let (&len, rest) = rest.split_first().ok_or(PduError::BadUdh("IE length missing"))?;
            let (data, rest) = rest
                .split_at_checked(usize::from(len))
                .ok_or(PduError::BadUdh("IE longer than the header"))?;
            bytes = rest;
            udh.add(iei, data)?;
        }
        Ok(udh)
    }

    fn add(&mut self, iei: u8, data: &[u8]) -> Result<(), PduError> {
        match (iei, data) {
            (IEI_CONCAT8, &[reference, parts, part]) => {
                self.concat_ie(iei, data, u16::from(reference), parts, part, false)
            }
            (IEI_CONCAT16, &[high, low, parts, part]) => {
                self.concat_ie(iei, data, u16::from_be_bytes([high, low]), parts, part, true)
            }
            (IEI_CONCAT8 | IEI_CONCAT16, _) => return Err(PduError::BadUdh("concatenation IE of the wrong length")),
            (IEI_SINGLE_SHIFT | IEI_LOCKING_SHIFT, &[id]) => match Language::from_id(id) {
                Some(language) if iei == IEI_SINGLE_SHIFT => self.single_shift = Some(language),
                Some(language) => self.locking_shift = Some(language),
                // §6.2.1.2.4: an unknown language leaves the default table in force.
                None => self.other.push(RawIe {
                    iei,
                    data: to_hex(data),
                }),
            },
            (IEI_SINGLE_SHIFT | IEI_LOCKING_SHIFT, _) => {
                return Err(PduError::BadUdh("national language IE of the wrong length"));
            }
            _ => self.other.push(RawIe {
                iei,
                data: to_hex(data),
            }),
        }
        Ok(())
    }

    /// §9.2.3.24.1: a zero count, or a part number of zero or beyond the count, voids the IE.
    fn concat_ie(&mut self, iei: u8, data: &[u8], reference: u16, parts: u8, part: u8, wide: bool) {
        if parts == 0 || part == 0 || part > parts {
            self.other.push(RawIe {
                iei,
                data: to_hex(data),
            });
        } else {
            self.concat = Some(Concat {
                reference,
                parts,
                part,
                wide,
            });
        }
    }

    /// The header with its UDHL octet; empty if there are no IEs.
    pub(super) fn to_octets(&self) -> Vec<u8> {
        let mut ies = Vec::new();
        if let Some(c) = self.concat {
            if c.wide {
                let [high, low] = c.reference.to_be_bytes();
                ies.extend([IEI_CONCAT16, 4, high, low, c.parts, c.part]);
            } else {
                ies.extend([IEI_CONCAT8, 3, c.reference as u8, c.parts, c.part]);
            }
        }
        if let Some(language) = self.single_shift {
            ies.extend([IEI_SINGLE_SHIFT, 1, language.id()]);
        }
        if let Some(language) = self.locking_shift {
            ies.extend([IEI_LOCKING_SHIFT, 1, language.id()]);
        }
        if ies.is_empty() {
            return ies;
        }
        let mut out = vec![ies.len() as u8];
        out.extend(ies);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_and_write() {
        let concat = |reference, wide| {
            Some(Concat {
                reference,
                parts: 3,
                part: 2,
                wide,
            })
        };
        let table: [(&[u8], Udh); 4] = [
            // TS 23.040 §9.2.3.24.1 8-bit reference: 00 03 ref parts part.
            (
                &[0x05, 0x00, 0x03, 0x2A, 0x03, 0x02],
                Udh {
                    concat: concat(0x2A, false),
                    ..Udh::default()
                },
            ),
            (
                &[0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x02],
                Udh {
                    concat: concat(0x1234, true),
                    ..Udh::default()
                },
            ),
            (
                &[0x06, 0x24, 0x01, 0x01, 0x25, 0x01, 0x03],
                Udh {
                    single_shift: Some(Language::Turkish),
                    locking_shift: Some(Language::Portuguese),
                    ..Udh::default()
                },
            ),
            (
                &[0x04, 0x05, 0x02, 0x0B, 0x84],
                Udh {
                    other: vec![RawIe {
                        iei: 0x05,
                        data: "0B84".into(),
                    }],
                    ..Udh::default()
                },
            ),
        ];
        for (octets, udh) in table {
            assert_eq!(Udh::read(&octets[1..]).as_ref(), Ok(&udh));
            if udh.other.is_empty() {
                assert_eq!(udh.to_octets(), octets);
            }
        }
    }

    #[test]
    fn void_and_broken_ies() {
        let void = Udh::read(&[0x00, 0x03, 0x01, 0x02, 0x03]).unwrap();
        assert_eq!((void.concat, void.other.len()), (None, 1));
        let table: [(&[u8], &str); 4] = [
            (&[0x00], "IE length missing"),
            (&[0x00, 0x03, 0x01], "IE longer than the header"),
            (&[0x00, 0x02, 0x01, 0x01], "concatenation IE of the wrong length"),
            (&[0x24, 0x00], "national language IE of the wrong length"),
        ];
        for (octets, reason) in table {
            assert_eq!(Udh::read(octets), Err(PduError::BadUdh(reason)), "{octets:02X?}");
        }
    }
}
