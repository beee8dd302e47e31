//! TP-SCTS / TP-DT: seven semi-octet fields, the last a signed offset in quarter hours
//! (TS 23.040 §9.2.3.11).

use super::PduError;
use super::reader::Reader;

/// A service-centre time stamp as sent: local time plus its offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Full year; the field's two digits are read as 20YY.
    pub year: u16,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23, local time.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
    /// Offset from UTC in quarter hours, −79…79.
    pub offset_quarters: i8,
}

fn swapped(octet: u8, what: &'static str) -> Result<u8, PduError> {
    let (tens, units) = (octet & 0x0F, octet >> 4);
    if tens > 9 || units > 9 {
        return Err(PduError::BadTimestamp(what));
    }
    Ok(tens * 10 + units)
}

fn in_range(value: u8, range: std::ops::RangeInclusive<u8>, what: &'static str) -> Result<u8, PduError> {
    range
        .contains(&value)
        .then_some(value)
        .ok_or(PduError::BadTimestamp(what))
}

impl Timestamp {
    /// 2026-11-25 `hour`:30:05 at `offset_quarters`: the time the tests write.
    #[cfg(test)]
    pub(crate) fn sample(hour: u8, offset_quarters: i8) -> Timestamp {
        Timestamp {
            year: 2026,
            month: 11,
            day: 25,
            hour,
            minute: 30,
            second: 5,
            offset_quarters,
        }
    }

    /// Reads the seven semi-octet fields; a field that is not two digits, or out of its
    /// range, is `PduError::BadTimestamp`.
    pub(super) fn read(reader: &mut Reader<'_>) -> Result<Timestamp, PduError> {
        let octets = reader.take(7, "time stamp")?;
        let field = |i: usize, what| swapped(octets.get(i).copied().unwrap_or(0xFF), what);
        let zone = octets.get(6).copied().unwrap_or(0xFF);
        // The sign is bit 3 of the tens semi-octet, which travels in the low nibble.
        let quarters = swapped(zone & 0xF7, "time zone")?;
        let offset = if zone & 0x08 != 0 {
            -(quarters as i8)
        } else {
            quarters as i8
        };
        Ok(Timestamp {
            // Two-digit years: a gateway of this century reads them as 20YY.
            year: 2000 + u16::from(field(0, "year")?),
            month: in_range(field(1, "month")?, 1..=12, "month")?,
            day: in_range(field(2, "day")?, 1..=31, "day")?,
            hour: in_range(field(3, "hour")?, 0..=23, "hour")?,
            minute: in_range(field(4, "minute")?, 0..=59, "minute")?,
            second: in_range(field(5, "second")?, 0..=59, "second")?,
            offset_quarters: offset,
        })
    }

    /// The seven octets as TP-SCTS and TP-DT carry them.
    pub(super) fn to_octets(self) -> [u8; 7] {
        let swap = |v: u8| ((v % 10) << 4) | ((v / 10) % 10);
        let quarters = swap(self.offset_quarters.unsigned_abs());
        let sign = if self.offset_quarters < 0 { 0x08 } else { 0 };
        [
            swap((self.year % 100) as u8),
            swap(self.month),
            swap(self.day),
            swap(self.hour),
            swap(self.minute),
            swap(self.second),
            quarters | sign,
        ]
    }

    /// ISO 8601 with the offset, e.g. "2024-03-05T14:30:00+02:00".
    pub fn to_iso8601(self) -> String {
        let minutes = i32::from(self.offset_quarters) * 15;
        let sign = if minutes < 0 { '-' } else { '+' };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            sign,
            minutes.abs() / 60,
            minutes.abs() % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stamps_read_with_their_zone() {
        let table: [([u8; 7], &str); 4] = [
            // dreamfabric.com/sms/deliver_fo.html example SCTS 99 30 92 51 61 95 80.
            ([0x99, 0x30, 0x92, 0x51, 0x61, 0x95, 0x80], "2099-03-29T15:16:59+02:00"),
            ([0x42, 0x50, 0x11, 0x22, 0x33, 0x44, 0x0A], "2024-05-11T22:33:44-05:00"),
            ([0x42, 0x21, 0x13, 0x00, 0x00, 0x00, 0x00], "2024-12-31T00:00:00+00:00"),
            ([0x42, 0x21, 0x13, 0x00, 0x00, 0x00, 0x32], "2024-12-31T00:00:00+05:45"),
        ];
        for (octets, iso) in table {
            let ts = Timestamp::read(&mut Reader::new(&octets)).unwrap();
            assert_eq!(ts.to_iso8601(), iso);
            assert_eq!(ts.to_octets(), octets);
        }
    }

    #[test]
    fn impossible_fields_are_refused() {
        let table: [([u8; 7], &str); 4] = [
            ([0x42, 0x31, 0x11, 0x00, 0x00, 0x00, 0x00], "month"),
            ([0x42, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00], "day"),
            ([0x4A, 0x10, 0x10, 0x00, 0x00, 0x00, 0x00], "year"),
            ([0x42, 0x10, 0x10, 0x00, 0x00, 0x00, 0xA0], "time zone"),
        ];
        for (octets, what) in table {
            assert_eq!(
                Timestamp::read(&mut Reader::new(&octets)),
                Err(PduError::BadTimestamp(what))
            );
        }
        assert_eq!(
            Timestamp::read(&mut Reader::new(&[0x42; 6])),
            Err(PduError::Truncated("time stamp"))
        );
    }
}
