//! The two clocks the modem reads: a monotonic one for its timers, the wall clock (UTC)
//! for the time stamps it writes in records and PDUs.

use std::time::SystemTime;

use tokio::time::Instant;

use crate::sms::Timestamp;
pub(super) use crate::utc::Utc;

#[derive(Debug, Clone, Copy)]
pub(super) struct Now {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Now {
    pub fn read() -> Now {
        Now {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }
}

impl Utc {
    /// TP-SCTS / TP-DT as a service centre keeping UTC would send it.
    pub fn timestamp(&self) -> Timestamp {
        Timestamp {
            year: self.year.clamp(2000, 2099) as u16,
            month: self.month,
            day: self.day,
            hour: self.hour,
            minute: self.minute,
            second: self.second,
            offset_quarters: 0,
        }
    }
}
