//! The bytes every session together may hold for messages in progress
//! (`smtp.max_buffered_bytes`). A session takes from it before its message buffer grows
//! and gives back when the message is stored, refused or dropped; when it is spent, the
//! transaction is answered `452 4.3.1` and the client tries again later. Without it each
//! of `smtp.max_connections` sessions could hold `smtp.max_message_size`.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::reply::Reply;

/// A shared count of bytes, never past its maximum.
#[derive(Debug)]
pub struct Budget {
    max: usize,
    used: AtomicUsize,
}

impl Budget {
    /// A budget of `max` bytes, none used.
    pub fn new(max: usize) -> Budget {
        Budget {
            max,
            used: AtomicUsize::new(0),
        }
    }

    /// Takes `bytes`, or nothing and `false` if they would pass the maximum.
    pub fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    /// Gives back `bytes` taken before.
    pub fn give_back(&self, bytes: usize) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            Some(used.saturating_sub(bytes))
        });
    }

    /// Bytes that may still be taken.
    pub fn room(&self) -> usize {
        self.max.saturating_sub(self.used.load(Ordering::Acquire))
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// `452 4.3.1`: the budget is spent (RFC 3463: mail system full), for now.
pub(super) fn insufficient_storage() -> Reply {
    Reply::new(
        452,
        "4.3.1",
        "Insufficient system storage: too many messages in progress, try again later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_never_pass_the_maximum_and_come_back() {
        let budget = Budget::new(100);
        assert!(budget.take(60));
        assert!(!budget.take(41));
        assert!(budget.take(40));
        assert_eq!(budget.room(), 0);
        budget.give_back(60);
        assert_eq!((budget.used(), budget.room()), (40, 60));
        assert!(!budget.take(usize::MAX), "no overflow");
    }
}
