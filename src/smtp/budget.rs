//! The bytes every session together may hold for messages in progress
//! (`smtp.max_buffered_bytes`). A session takes from it before its message buffer grows
//! and gives back when the message is stored, refused or dropped; when it is spent, the
//! transaction is answered `452 4.3.1` and the client tries again later. Without it each
//! of `smtp.max_connections` sessions could hold `smtp.max_message_size`. One client
//! (an address, or a user once authenticated) may hold at most a share of it
//! ([`Budget::with_share`]; the server uses two `smtp.max_message_size`); a smart host on
//! a trusted network, which relays for many users at once, holds no share of its own.

use std::collections::HashMap;
use std::sync::Mutex;

use super::reply::Reply;

/// A shared count of bytes, never past its maximum, of which one holder (a client
/// address or a user, see [`Budget::take`]) may hold at most a share: without it, one
/// client with a few sessions could take the whole budget and keep everyone else's
/// mail out.
#[derive(Debug)]
pub struct Budget {
    max: usize,
    share: usize,
    /// Bytes taken in all, and by each holder that holds some.
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    total: usize,
    by: HashMap<String, usize>,
}

impl Budget {
    /// A budget of `max` bytes, none used, that one holder may take all of.
    pub fn new(max: usize) -> Budget {
        Budget::with_share(max, max)
    }

    /// A budget of `max` bytes of which one holder may hold at most `share`.
    pub fn with_share(max: usize, share: usize) -> Budget {
        Budget {
            max,
            share: share.min(max),
            used: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        // A panic elsewhere while holding the lock leaves consistent counts (each
        // update is one assignment): go on with them.
        self.used.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes` for `holder` (None: a holder with no share of its own, bound by the
    /// maximum only), or nothing and `false` if they would pass the maximum or the
    /// holder's share.
    pub fn take(&self, holder: Option<&str>, bytes: usize) -> bool {
        let mut used = self.lock();
        let held = holder.map_or(0, |holder| used.by.get(holder).copied().unwrap_or(0));
        let fits = |now: usize, limit: usize| now.checked_add(bytes).is_some_and(|total| total <= limit);
        if !fits(used.total, self.max) || (holder.is_some() && !fits(held, self.share)) {
            return false;
        }
        used.total += bytes;
        if let Some(holder) = holder
            && bytes > 0
        {
            used.by.insert(holder.to_string(), held + bytes);
        }
        true
    }

    /// Gives back `bytes` that `holder` took before.
    pub fn give_back(&self, holder: Option<&str>, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut used = self.lock();
        debug_assert!(used.total >= bytes, "giving back more than was taken");
        used.total = used.total.saturating_sub(bytes);
        if let Some(holder) = holder
            && let Some(held) = used.by.get_mut(holder)
        {
            debug_assert!(*held >= bytes, "{holder} gives back more than it took");
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                used.by.remove(holder);
            }
        }
    }

    /// Bytes `holder` may still take (None, as for [`Budget::take`]).
    pub fn room_for(&self, holder: Option<&str>) -> usize {
        let used = self.lock();
        let room = self.max.saturating_sub(used.total);
        match holder {
            Some(holder) => room.min(self.share.saturating_sub(used.by.get(holder).copied().unwrap_or(0))),
            None => room,
        }
    }

    /// Bytes taken now, by all holders.
    pub fn used(&self) -> usize {
        self.lock().total
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
        assert!(budget.take(Some("a"), 60));
        assert!(!budget.take(Some("b"), 41));
        assert!(budget.take(Some("b"), 40));
        assert_eq!(budget.room_for(Some("c")), 0);
        budget.give_back(Some("a"), 60);
        assert_eq!((budget.used(), budget.room_for(Some("c"))), (40, 60));
        assert!(!budget.take(Some("a"), usize::MAX), "no overflow");
    }

    #[test]
    fn one_holder_takes_at_most_its_share() {
        let budget = Budget::with_share(100, 30);
        assert!(budget.take(Some("a"), 20));
        assert!(!budget.take(Some("a"), 11));
        assert_eq!(budget.room_for(Some("a")), 10);
        assert!(budget.take(Some("b"), 30));
        budget.give_back(Some("a"), 20);
        assert!(budget.take(Some("a"), 30));
        assert_eq!(budget.used(), 60);
    }
}
