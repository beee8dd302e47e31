//! UTC calendar times from the wall clock, as mail headers and records write them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar time to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// Gregorian year, e.g. 2026.
    pub year: i64,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59: Unix time has no leap seconds.
    pub second: u8,
    /// 0–999.
    pub millis: u16,
    /// 0 for Sunday.
    pub weekday: u8,
}

impl Utc {
    /// Times before 1970 read as 1970: no modem runs then.
    pub fn of(time: SystemTime) -> Utc {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since.as_secs();
        let of_day = seconds % 86_400;
        let days = (seconds / 86_400) as i64;
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: (of_day / 3600) as u8,
            minute: (of_day / 60 % 60) as u8,
            second: (of_day % 60) as u8,
            millis: since.subsec_millis() as u16,
            // 1970-01-01 was a Thursday.
            weekday: ((days + 4) % 7) as u8,
        }
    }

    /// RFC 3339, e.g. "2026-11-25T12:00:00.123Z".
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// A time in unix milliseconds, as the store keeps them.
    pub fn of_millis(millis: i64) -> Utc {
        Utc::of(UNIX_EPOCH + Duration::from_millis(millis.max(0) as u64))
    }

    /// RFC 5322 (mail headers), e.g. "Wed, 25 Nov 2026 12:00:00 +0000".
    pub fn rfc5322(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{}, {} {} {:04} {:02}:{:02}:{:02} +0000",
            DAYS[usize::from(self.weekday)],
            self.day,
            MONTHS[usize::from(self.month - 1)],
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// Year, month, day of a count of days since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u8;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u8;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_calendar() {
        let table = [
            (0, "1970-01-01T00:00:00.000Z", "Thu, 1 Jan 1970 00:00:00 +0000"),
            (
                951_782_400_250,
                "2000-02-29T00:00:00.250Z",
                "Tue, 29 Feb 2000 00:00:00 +0000",
            ),
            (
                1_735_689_599_999,
                "2024-12-31T23:59:59.999Z",
                "Tue, 31 Dec 2024 23:59:59 +0000",
            ),
            (
                1_795_608_000_000,
                "2026-11-25T12:00:00.000Z",
                "Wed, 25 Nov 2026 12:00:00 +0000",
            ),
        ];
        for (millis, rfc3339, rfc5322) in table {
            let utc = Utc::of_millis(millis);
            assert_eq!(utc.rfc3339(), rfc3339);
            assert_eq!(utc.rfc5322(), rfc5322);
        }
    }
}
