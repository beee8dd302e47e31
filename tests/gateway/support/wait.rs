//! Waiting for something to happen, with a deadline: the one way tests poll.

use std::time::{Duration, Instant};

/// How often `eventually` looks again.
const POLL: Duration = Duration::from_millis(20);

/// Calls `check` until it gives `Ok`, and returns that value; panics with the last
/// `Err` (what was seen instead) once `limit` has passed.
pub(crate) fn eventually<T>(limit: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) => assert!(Instant::now() < deadline, "not within {limit:?}: {seen}"),
        }
        std::thread::sleep(POLL);
    }
}
