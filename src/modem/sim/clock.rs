//! The two clocks the modem reads: a monotonic one for its timers, the wall clock (UTC)
//! for the time stamps it writes in records and PDUs.

use std::time::SystemTime;

use tokio::time::Instant;

use crate::sms::Timestamp;
pub(super) use crate::utc::Utc;

/// One reading of both clocks, taken together so that timers and time stamps agree.
#[derive(Debug, Clone, Copy)]
pub(super) struct Now {
    /// For the modem's timers (report delays, answers).
    pub at: Instant,
    /// For the time stamps of records and PDUs.
    pub wall: SystemTime,
}

impl Now {
    /// Both clocks, now.
    pub(super) fn read() -> Now {
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
