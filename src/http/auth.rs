//! HTTP Basic against the SMTP AUTH users (`security.users_file`), for the endpoints
//! `http.require_auth` guards.
//!
//! A password check is argon2: ~19 MiB and tens of milliseconds of a core. So that a
//! flood of bad attempts cannot starve the server or the peers that poll it:
//! - at most [`PASSWORD_CHECKS`] run at once, and a request waits at most
//!   [`CHECK_WAIT`] for its turn (then `503`, try again);
//! - a user and password that passed are remembered (as a keyed digest, never the
//!   password) until the users file is reloaded, so a peer polling every few seconds
//!   is not checked again and never queues behind the flood;
//! - a client address with `security.max_auth_failures` wrong passwords in a row is
//!   refused without a check (`429`) for `security.lockout_secs`.

use std::collections::HashMap;
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
/// forgotten (a spray from many addresses must not grow the map without bound).
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
    max_failures: u32,
    lockout: Duration,
    hashing: Semaphore,
    /// Digests of user:password pairs that passed, with the users they passed against.
    passed: Mutex<HashMap<String, (Arc<Users>, hmac::Tag)>>,
    /// A key of this process only, so the digests kept say nothing outside it.
    key: hmac::Key,
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
            max_failures: max_failures.max(1),
            lockout,
            hashing: Semaphore::new(PASSWORD_CHECKS),
            passed: Mutex::new(HashMap::new()),
            key,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the guarded endpoints want credentials at all.
    pub(super) fn required(&self) -> bool {
        self.required
    }

    /// The verdict on `authorization` (the `Authorization` header, if any) from `client`.
    pub(super) async fn check(&self, client: IpAddr, authorization: Option<&[u8]>) -> Verdict {
        if !self.required {
            return Verdict::Allowed;
        }
        if let Some(left) = self.locked(client, Instant::now()) {
            return Verdict::Locked(left);
        }
        let Some((user, password)) = authorization.and_then(basic) else {
            return Verdict::Denied;
        };
        let users = self.credentials.users();
        let pair = format!("{user}:{password}");
        if self.remembered(&user, &users, pair.as_bytes()) {
            return Verdict::Allowed;
        }
        let Ok(Ok(_permit)) = tokio::time::timeout(CHECK_WAIT, self.hashing.acquire()).await else {
            return Verdict::Busy;
        };
        let checked = users.clone();
        let name = user.clone();
        let matches = tokio::task::spawn_blocking(move || checked.verify(&name, &password).is_some())
            .await
            .unwrap_or(false);
        let mut failures = lock(&self.failures);
        if matches {
            failures.remove(&client);
            drop(failures);
            let tag = hmac::sign(&self.key, pair.as_bytes());
            lock(&self.passed).insert(user, (users, tag));
            Verdict::Allowed
        } else {
            self.failed(&mut failures, client, Instant::now());
            Verdict::Denied
        }
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

    fn failed(&self, failures: &mut HashMap<IpAddr, Failures>, client: IpAddr, now: Instant) {
        if failures.len() >= TRACKED_CLIENTS && !failures.contains_key(&client) {
            failures.retain(|_, f| f.locked_until.is_some_and(|until| until > now));
        }
        let entry = failures.entry(client).or_default();
        if entry.locked_until.is_some_and(|until| until <= now) {
            *entry = Failures::default();
        }
        entry.count += 1;
        if entry.count >= self.max_failures {
            entry.locked_until = Some(now + self.lockout);
            tracing::warn!(%client, failures = entry.count, "HTTP Basic: too many failures; address locked out");
        }
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

    use super::{Gate, Verdict, basic, lock};
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
        let _held = gate.hashing.acquire_many(super::PASSWORD_CHECKS as u32).await.unwrap();
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
