//! The one retry schedule: how long a stage waits before trying again after a
//! temporary failure. Modems (`sms.retry_delays_secs`), forwarding
//! (`routing.retry_delays_secs`) and DSNs (`outbound.retry_delays_secs`) each read theirs
//! from the config, where it is parsed once and never empty.
//!
//! Attempts are counted from 1: after the first attempt failed, the wait is the first
//! delay; after the second, the second; past the end, the last delay repeats.

use std::time::Duration;

use serde::Deserialize;

/// Delays before each new attempt, in order; never empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<u64>")]
pub struct RetrySchedule(Vec<Duration>);

/// Why a list of delays is not a [`RetrySchedule`]: it has none.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("needs at least one delay")]
pub struct EmptySchedule;

impl RetrySchedule {
    /// A schedule of `first`, then each of `then`, in seconds: never empty.
    pub fn from_secs(first: u64, then: &[u64]) -> RetrySchedule {
        let secs = std::iter::once(first).chain(then.iter().copied());
        RetrySchedule(secs.map(Duration::from_secs).collect())
    }

    /// The wait after attempt `failed` (1 for the first attempt) failed; the last delay
    /// repeats. An attempt 0 is read as 1.
    pub fn delay(&self, failed: u64) -> Duration {
        let index = usize::try_from(failed.saturating_sub(1)).unwrap_or(usize::MAX);
        self.0.get(index).or(self.0.last()).copied().unwrap_or_default()
    }

    /// As [`delay`](Self::delay) while the schedule lasts; `None` once attempt
    /// `failed` was past its last delay (a stage that gives up, or goes elsewhere, then).
    pub fn within(&self, failed: u64) -> Option<Duration> {
        let index = usize::try_from(failed.saturating_sub(1)).unwrap_or(usize::MAX);
        self.0.get(index).copied()
    }
}

impl TryFrom<Vec<u64>> for RetrySchedule {
    type Error = EmptySchedule;

    fn try_from(secs: Vec<u64>) -> Result<RetrySchedule, EmptySchedule> {
        match secs.split_first() {
            Some((&first, then)) => Ok(RetrySchedule::from_secs(first, then)),
            None => Err(EmptySchedule),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attempt_waits_its_delay_and_the_last_repeats() {
        let schedule = RetrySchedule::from_secs(5, &[30, 120]);
        // (attempt that failed, delay, within the schedule)
        let table = [
            (0, 5, Some(5)),
            (1, 5, Some(5)),
            (2, 30, Some(30)),
            (3, 120, Some(120)),
            (4, 120, None),
            (1000, 120, None),
            (u64::MAX, 120, None),
        ];
        for (failed, delay, within) in table {
            assert_eq!(schedule.delay(failed), Duration::from_secs(delay), "{failed}");
            assert_eq!(schedule.within(failed), within.map(Duration::from_secs), "{failed}");
        }
    }

    #[test]
    fn one_delay_is_every_delay() {
        let schedule = RetrySchedule::from_secs(1, &[]);
        for failed in [0, 1, 2, 9] {
            assert_eq!(schedule.delay(failed), Duration::from_secs(1));
        }
        assert_eq!(schedule.within(2), None);
    }

    #[test]
    fn a_list_of_delays_must_not_be_empty() {
        assert_eq!(RetrySchedule::try_from(Vec::new()), Err(EmptySchedule));
        assert_eq!(
            RetrySchedule::try_from(vec![60, 300]),
            Ok(RetrySchedule::from_secs(60, &[300]))
        );
    }
}
