//! HTTP Basic against the SMTP AUTH users (`security.users_file`; only those
//! `http.users` lists, if it lists any), for the endpoints `http.require_auth` guards.
//!
//! A password check is argon2: ~19 MiB and tens of milliseconds of a core. So that a
//! flood of bad attempts cannot starve the server or the peers that poll it:
//! - at most [`PASSWORD_CHECKS`] run at once, and a request waits at most
//!   [`CHECK_WAIT`] for its turn (then `503`, try again); the turn belongs to the check
//!   itself, not to the request: a client that hangs up does not free it while argon2
//!   still runs;
//! - a user and password that passed are remembered (as a keyed digest, never the
//!   password) until the users file is reloaded, so a peer polling every few seconds
//!   is not checked again and never queues behind the flood;
//! - a client address (IPv6: its /64, which one client may rotate through) with
//!   `security.max_auth_failures` wrong passwords in a row is refused without a check
//!   (`429`) for `security.lockout_secs`. A check counts as a failure from the moment it
//!   starts, and is forgiven when it passes: a client that hangs up before the answer
//!   has still spent an attempt.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ring::hmac;
use tokio::sync::Semaphore;

use crate::credentials::Credentials;
use crate::users::Users;

/// Password checks at once for HTTP (the SMTP listeners have their own).
const PASSWORD_CHECKS: usize = 2;
/// The longest a request waits for a password check to start.
const CHECK_WAIT: Duration = Duration::from_secs(2);
/// Client addresses whose failures are counted; past it, those not locked out are
/// forgotten, and if all are locked out, the one whose lockout ends first (a spray from
/// many addresses must not grow the map, nor the scan of it, without bound).
const TRACKED_CLIENTS: usize = 4096;

/// What a request's credentials allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No credentials needed, or good ones given.
    Allowed,
    /// Missing, malformed, or wrong: `401` with the challenge.
    Denied,
    /// Too many wrong passwords from this address: `429`, for this long still.
    Locked(Duration),
    /// Every password check is busy: `503`, try again shortly.
    Busy,
}

/// The gate in front of the guarded endpoints.
pub(super) struct Gate {
    credentials: Credentials,
    required: bool,
    /// `http.users`: when not empty, the only users let through.
    only: HashSet<String>,
    max_failures: u32,
    lockout: Duration,
    /// Turns to run argon2; a turn moves into the blocking job, so it is held until the
    /// hash is done even if the request is gone.
    hashing: Arc<Semaphore>,
    /// Digests of user:password pairs that passed, with the users they passed against.
    passed: Mutex<HashMap<String, (Arc<Users>, hmac::Tag)>>,
    /// A key of this process only, so the digests kept say nothing outside it.
    key: hmac::Key,
    /// Failures by [`client_key`].
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

impl Gate {
    /// A gate asking for a user of `credentials` when `required`; `max_failures` wrong
    /// passwords in a row lock an address out for `lockout`.
    pub(super) fn new(credentials: Credentials, required: bool, max_failures: u32, lockout: Duration) -> Gate {
        let rng = ring::rand::SystemRandom::new();
        // Only fails without a system RNG, where TLS could not work either.
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system random number generator");
        Gate {
            credentials,
            required,
            only: HashSet::new(),
            max_failures: max_failures.max(1),
            lockout,
            hashing: Arc::new(Semaphore::new(PASSWORD_CHECKS)),
            passed: Mutex::new(HashMap::new()),
            key,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The gate letting through only `users` of the users file (`http.users`); all of
    /// them when `users` is empty.
    pub(super) fn only(mut self, users: &[String]) -> Gate {
        self.only = users.iter().cloned().collect();
        self
    }

    /// The verdict on `authorization` (the `Authorization` header, if any) from `client`.
    ///
    /// Safe to drop at any await: a password check under way keeps its turn until
    /// argon2 is done, and has already been counted as a failure.
    pub(super) async fn check(&self, client: IpAddr, authorization: Option<&[u8]>) -> Verdict {
        if !self.required {
            return Verdict::Allowed;
        }
        let client = client_key(client);
        if let Some(left) = self.locked(client, Instant::now()) {
            return Verdict::Locked(left);
        }
        let Some((user, password)) = authorization.and_then(basic) else {
            return Verdict::Denied;
        };
        if !self.only.is_empty() && !self.only.contains(&user) {
            // Refused before any check: whatever the password, this user may not read
            // these endpoints, so nothing is learnt and no argon2 is spent.
            return Verdict::Denied;
        }
        let users = self.credentials.users();
        let pair = format!("{user}:{password}");
        if self.remembered(&user, &users, pair.as_bytes()) {
            return Verdict::Allowed;
        }
        let Ok(Ok(permit)) = tokio::time::timeout(CHECK_WAIT, self.hashing.clone().acquire_owned()).await else {
            return Verdict::Busy;
        };
        // Counted before the check, with no await between this and the job starting: if
        // the request is dropped while argon2 runs, the attempt has still been paid for.
        self.failed(client, Instant::now());
        let checked = users.clone();
        let name = user.clone();
        let matches = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            checked.verify(&name, &password).is_some()
        })
        .await
        .unwrap_or(false);
        if !matches {
            return Verdict::Denied;
        }
        // Forgiven: the failure counted above, and those before it.
        lock(&self.failures).remove(&client);
        let tag = hmac::sign(&self.key, pair.as_bytes());
        lock(&self.passed).insert(user, (users, tag));
        Verdict::Allowed
    }

    /// Whether `pair` ("user:password") passed the check before, against `users` (a
    /// reload may have changed or removed the user: then it is checked again).
    fn remembered(&self, user: &str, users: &Arc<Users>, pair: &[u8]) -> bool {
        let mut passed = lock(&self.passed);
        match passed.get(user) {
            Some((against, _)) if !Arc::ptr_eq(against, users) => {
                passed.retain(|_, (against, _)| Arc::ptr_eq(against, users));
                false
            }
            Some((_, kept)) => hmac::verify(&self.key, pair, kept.as_ref()).is_ok(),
            None => false,
        }
    }

    fn locked(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let until = lock(&self.failures).get(&client)?.locked_until?;
        until.checked_duration_since(now).filter(|left| !left.is_zero())
    }

    /// Counts one failure from `client` (a [`client_key`]), locking it out at the
    /// limit.
    fn failed(&self, client: IpAddr, now: Instant) {
        let mut failures = lock(&self.failures);
        if failures.len() >= TRACKED_CLIENTS && !failures.contains_key(&client) {
            failures.retain(|_, f| f.locked_until.is_some_and(|until| until > now));
            if failures.len() >= TRACKED_CLIENTS {
                // All locked out: the lockout that ends first goes early, so the map
                // stays bounded.
                let first = failures.iter().min_by_key(|(_, f)| f.locked_until).map(|(key, _)| *key);
                if let Some(first) = first {
                    failures.remove(&first);
                }
            }
        }
        let entry = failures.entry(client).or_default();
        if entry.locked_until.is_some_and(|until| until <= now) {
            *entry = Failures::default();
        }
        entry.count = entry.count.saturating_add(1);
        if entry.count >= self.max_failures {
            // Config validation bounds lockout_secs; an Instant that cannot be reached
            // still must not panic: the longest lockout that can be written then.
            let until = now
                .checked_add(self.lockout)
                .or_else(|| now.checked_add(Duration::from_secs(crate::config::MAX_LOCKOUT_SECS)));
            entry.locked_until = Some(until.unwrap_or(now));
            tracing::warn!(%client, failures = entry.count, "HTTP Basic: too many failures; address locked out");
        }
    }
}

/// The address failures are counted against: an IPv4 address (IPv4-mapped IPv6
/// included) as it is; an IPv6 address by its /64, the block one subscriber or host is
/// usually given, so rotating through it does not start a fresh count.
pub(super) fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The user and password of a `Basic` authorization (RFC 7617), if it is one.
fn basic(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(token.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;

    use super::{Gate, PASSWORD_CHECKS, TRACKED_CLIENTS, Verdict, basic, client_key, lock};
    use crate::config::Config;
    use crate::credentials::Credentials;

    /// A gate over a users file holding "uk" (password "password-uk"), locking an
    /// address out after two wrong passwords.
    fn gate(name: &str, required: bool) -> Gate {
        let dir = std::env::temp_dir().join(format!("smsgw-http-auth-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = Config::default();
        config.security.users_file = dir.join("users.toml");
        crate::users::add(&config.security.users_file, "uk", "password-uk", Vec::new()).unwrap();
        let credentials = Credentials::load(&config).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        Gate::new(credentials, required, 2, Duration::from_secs(60))
    }

    fn header(pair: &str) -> Vec<u8> {
        format!("Basic {}", BASE64.encode(pair)).into_bytes()
    }

    #[tokio::test]
    async fn a_user_of_the_users_file_passes_and_is_remembered() {
        let gate = gate("passes", true);
        let client: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(gate.check(client, None).await, Verdict::Denied);
        assert_eq!(gate.check(client, Some(b"Basic !")).await, Verdict::Denied);
        let good = header("uk:password-uk");
        assert_eq!(gate.check(client, Some(&good)).await, Verdict::Allowed);
        assert_eq!(lock(&gate.passed).len(), 1);
        // Remembered: allowed again without a check, but only for that password.
        assert_eq!(gate.check(client, Some(&good)).await, Verdict::Allowed);
        assert_eq!(
            gate.check(client, Some(&header("uk:password-fr"))).await,
            Verdict::Denied
        );
    }

    #[tokio::test]
    async fn wrong_passwords_lock_the_address_out_and_no_one_else() {
        let gate = gate("locks", true);
        let (mallory, peer): (IpAddr, IpAddr) = ([192, 0, 2, 66].into(), [192, 0, 2, 1].into());
        let wrong = header("uk:guess");
        assert_eq!(gate.check(mallory, Some(&wrong)).await, Verdict::Denied);
        assert_eq!(gate.check(mallory, Some(&wrong)).await, Verdict::Denied);
        let good = header("uk:password-uk");
        assert!(matches!(gate.check(mallory, Some(&good)).await, Verdict::Locked(_)));
        assert_eq!(gate.check(peer, Some(&good)).await, Verdict::Allowed);
        // Missing credentials cost no check and count as no failure.
        assert_eq!(gate.check(peer, None).await, Verdict::Denied);
        assert_eq!(gate.check(peer, None).await, Verdict::Denied);
        assert_eq!(gate.check(peer, Some(&good)).await, Verdict::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_already_checked_passes_while_a_flood_holds_every_check() {
        let gate = gate("flood", true);
        let (peer, flood): (IpAddr, IpAddr) = ([192, 0, 2, 1].into(), [198, 51, 100, 7].into());
        let good = header("uk:password-uk");
        assert_eq!(gate.check(peer, Some(&good)).await, Verdict::Allowed);
        // Every password check taken, as bad attempts arriving faster than argon2 would.
        let _held = gate.hashing.acquire_many(PASSWORD_CHECKS as u32).await.unwrap();
        assert_eq!(gate.check(flood, Some(&header("uk:guess"))).await, Verdict::Busy);
        assert_eq!(gate.check(peer, Some(&good)).await, Verdict::Allowed);
    }

    #[tokio::test]
    async fn a_password_changed_and_reloaded_is_checked_again() {
        let dir = std::env::temp_dir().join(format!("smsgw-http-auth-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = Config::default();
        config.security.users_file = dir.join("users.toml");
        crate::users::add(&config.security.users_file, "uk", "password-uk", Vec::new()).unwrap();
        let credentials = Credentials::load(&config).unwrap();
        let gate = Gate::new(credentials.clone(), true, 5, Duration::from_secs(60));
        let (client, old) = ([192, 0, 2, 1].into(), header("uk:password-uk"));
        assert_eq!(gate.check(client, Some(&old)).await, Verdict::Allowed);
        crate::users::add(&config.security.users_file, "uk", "password-new", Vec::new()).unwrap();
        credentials.reload();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(gate.check(client, Some(&old)).await, Verdict::Denied);
        assert_eq!(
            gate.check(client, Some(&header("uk:password-new"))).await,
            Verdict::Allowed
        );
    }

    /// A client that sends a wrong password and hangs up: hyper drops the request's
    /// future while argon2 runs. The check keeps its turn until the hash is done, and
    /// the attempt counts, so hanging up neither lifts the bound nor dodges the lockout.
    #[tokio::test]
    async fn a_check_dropped_halfway_keeps_its_turn_and_counts_as_a_failure() {
        let gate = gate("dropped", true);
        let mallory: IpAddr = [192, 0, 2, 66].into();
        let wrong = header("uk:guess");
        for attempt in 1..=2 {
            // Boxed, so that dropping it below drops the future itself.
            let mut check = Box::pin(gate.check(mallory, Some(&wrong)));
            // One poll: the turn is taken and argon2 started (tens of milliseconds, far
            // more than this poll), then the request is gone.
            tokio::select! {
                biased;
                verdict = &mut check => panic!("attempt {attempt}: answered before argon2 could run: {verdict:?}"),
                () = std::future::ready(()) => {}
            }
            drop(check);
            assert_eq!(
                gate.hashing.available_permits(),
                PASSWORD_CHECKS - 1,
                "attempt {attempt}: the hash still runs and holds its turn"
            );
            assert_eq!(lock(&gate.failures)[&mallory].count, attempt);
            // The turn comes back when argon2 is done.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while gate.hashing.available_permits() < PASSWORD_CHECKS {
                assert!(std::time::Instant::now() < deadline, "the turn never came back");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        assert!(matches!(
            gate.check(mallory, Some(&header("uk:password-uk"))).await,
            Verdict::Locked(_)
        ));
    }

    #[tokio::test]
    async fn a_good_password_forgives_the_failures_before_it() {
        let gate = gate("forgives", true);
        let client: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(gate.check(client, Some(&header("uk:guess"))).await, Verdict::Denied);
        assert_eq!(
            gate.check(client, Some(&header("uk:password-uk"))).await,
            Verdict::Allowed
        );
        assert!(lock(&gate.failures).is_empty());
        assert_eq!(gate.check(client, Some(&header("uk:guess"))).await, Verdict::Denied);
        assert_eq!(lock(&gate.failures)[&client].count, 1);
    }

    #[tokio::test]
    async fn an_ipv6_client_is_locked_out_by_its_64() {
        let gate = gate("ipv6", true);
        let first: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let rotated: IpAddr = "2001:db8:1:2:ffff::7".parse().unwrap();
        let neighbour: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let wrong = header("uk:guess");
        assert_eq!(gate.check(first, Some(&wrong)).await, Verdict::Denied);
        assert_eq!(gate.check(rotated, Some(&wrong)).await, Verdict::Denied);
        let good = header("uk:password-uk");
        assert!(matches!(gate.check(first, Some(&good)).await, Verdict::Locked(_)));
        assert!(matches!(gate.check(rotated, Some(&good)).await, Verdict::Locked(_)));
        assert_eq!(gate.check(neighbour, Some(&good)).await, Verdict::Allowed);
    }

    #[test]
    fn client_keys() {
        let table = [
            ("192.0.2.1", "192.0.2.1"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("::1", "::"),
        ];
        for (client, key) in table {
            let (client, key): (IpAddr, IpAddr) = (client.parse().unwrap(), key.parse().unwrap());
            assert_eq!(client_key(client), key, "{client}");
        }
    }

    #[tokio::test]
    async fn the_failure_map_stays_bounded_when_every_address_is_locked_out() {
        let gate = gate("bounded", true);
        let now = std::time::Instant::now();
        // max_failures is 2: two failures each lock TRACKED_CLIENTS + 100 addresses out.
        for n in 0..(TRACKED_CLIENTS as u32 + 100) {
            let client = IpAddr::from((0x0a00_0000 + n).to_be_bytes());
            gate.failed(client, now);
            gate.failed(client, now);
        }
        assert_eq!(lock(&gate.failures).len(), TRACKED_CLIENTS);
    }

    #[tokio::test]
    async fn an_absurd_lockout_does_not_panic() {
        let dir = std::env::temp_dir().join(format!("smsgw-http-auth-absurd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut config = Config::default();
        config.security.users_file = dir.join("users.toml");
        crate::users::add(&config.security.users_file, "uk", "password-uk", Vec::new()).unwrap();
        let credentials = Credentials::load(&config).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let gate = Gate::new(credentials, true, 1, Duration::from_secs(u64::MAX));
        let client: IpAddr = [192, 0, 2, 66].into();
        assert_eq!(gate.check(client, Some(&header("uk:guess"))).await, Verdict::Denied);
        assert!(matches!(gate.check(client, None).await, Verdict::Locked(_)));
    }

    #[tokio::test]
    async fn with_http_users_a_user_not_listed_is_refused_unchecked() {
        let peers_only = gate("only", true).only(&["peer".to_string()]);
        let client: IpAddr = [192, 0, 2, 1].into();
        assert_eq!(
            peers_only.check(client, Some(&header("uk:password-uk"))).await,
            Verdict::Denied
        );
        assert!(lock(&peers_only.failures).is_empty(), "no check, no failure");
        assert!(lock(&peers_only.passed).is_empty());
        let uk_only = gate("only-uk", true).only(&["uk".to_string()]);
        assert_eq!(
            uk_only.check(client, Some(&header("uk:password-uk"))).await,
            Verdict::Allowed
        );
    }

    #[tokio::test]
    async fn nothing_is_asked_when_not_required() {
        let gate = gate("open", false);
        assert_eq!(gate.check([192, 0, 2, 1].into(), None).await, Verdict::Allowed);
    }

    #[test]
    fn basic_credentials_are_read_from_the_header() {
        type Case<'a> = (&'a [u8], Option<(&'a str, &'a str)>);
        let table: [Case<'_>; 7] = [
            (b"Basic dWs6c2VjcmV0", Some(("uk", "secret"))),
            (b"basic dWs6c2VjcmV0", Some(("uk", "secret"))),
            // The password may hold a colon; the user may not.
            (b"Basic dWs6YTpi", Some(("uk", "a:b"))),
            (b"Bearer dWs6c2VjcmV0", None),
            (b"Basic !!!", None),
            (b"Basic dWs=", None),
            (b"Basic", None),
        ];
        for (header, expected) in table {
            let found = basic(header);
            assert_eq!(
                found.as_ref().map(|(u, p)| (u.as_str(), p.as_str())),
                expected,
                "{:?}",
                String::from_utf8_lossy(header)
            );
        }
    }
}
