//! Who may send, to which numbers, how much: one policy for every listener, as Postfix's
//! `permit_mynetworks, permit_sasl_authenticated, reject`. Every refusal names its rule.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::reply::Reply;
use crate::config::{Config, Network};
use crate::e164::E164;
use crate::store::{OptOutList, Usage as SiteUsage};

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Senders remembered before idle ones are dropped.
const PRUNE_AT: usize = 10_000;

/// Asked at `RCPT TO` whether any instance could ever send to a number: `Some(why
/// not)` when none can by what is known of the tariffs, `None` when one can or it is
/// not known yet. Given by whoever starts the listeners (the routing stage's view).
pub type Routes = Arc<dyn Fn(&E164) -> Option<String> + Send + Sync>;

/// The `[security]` rules and the abuse counters, shared by every session of every
/// listener.
pub struct Policy {
    /// Whether a number can be routed at all; `None`: every number can.
    /// The numbers that opted out (texted a stop word): refused at RCPT.
    optouts: Option<Arc<OptOutList>>,
    routes: Option<Routes>,
    trusted: Vec<Network>,
    /// Refuse MAIL and AUTH before STARTTLS, except from loopback.
    pub require_tls: bool,
    /// Offer AUTH without TLS on listeners that are not loopback-only.
    pub allow_plaintext_auth: bool,
    allow_prefixes: Vec<String>,
    deny_prefixes: Vec<String>,
    per_minute: u32,
    per_day: u32,
    numbers_per_day: u32,
    /// Count a trusted relay's mail per envelope sender (else not at all).
    pub per_sender: bool,
    max_auth_failures: u32,
    lockout: Duration,
    usage: Mutex<HashMap<String, Usage>>,
    /// What the site's other instances let each sender send lately (PostgreSQL), as they
    /// last said: added to this instance's own counts.
    elsewhere: Mutex<HashMap<String, SiteUsage>>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

/// What one sender (user or client address) did lately. In memory: a restart forgets it.
#[derive(Default)]
struct Usage {
    /// Times of the requests accepted in the last day, oldest first.
    requests: VecDeque<Instant>,
    /// Numbers sent to in the last day, with the last time.
    numbers: HashMap<E164, Instant>,
}

#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

impl Policy {
    /// The policy of `[security]`, with every counter at zero.
    pub fn from_config(config: &Config) -> Policy {
        let security = &config.security;
        Policy {
            optouts: None,
            routes: None,
            trusted: security.trusted_networks.clone(),
            require_tls: security.require_tls,
            allow_plaintext_auth: security.allow_plaintext_auth,
            allow_prefixes: security.allow_prefixes.clone(),
            deny_prefixes: security.deny_prefixes.clone(),
            per_minute: security.per_minute,
            per_day: security.per_day,
            numbers_per_day: security.numbers_per_day,
            per_sender: security.per_sender,
            max_auth_failures: security.max_auth_failures,
            lockout: Duration::from_secs(security.lockout_secs),
            usage: Mutex::default(),
            elsewhere: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// This policy, refusing the numbers `routes` says no instance can send to.
    pub fn with_routes(self, routes: Routes) -> Policy {
        Policy {
            routes: Some(routes),
            ..self
        }
    }

    /// This policy, refusing the numbers on `optouts` (they texted a stop word).
    pub fn with_optouts(self, optouts: Arc<OptOutList>) -> Policy {
        Policy {
            optouts: Some(optouts),
            ..self
        }
    }

    /// A number that opted out gets no SMS: `550 5.7.1`.
    pub fn check_optout(&self, number: &E164) -> Result<(), Reply> {
        match &self.optouts {
            Some(optouts) if optouts.contains(number) => {
                Err(Reply::new(550, "5.7.1", crate::store::opted_out_reason(number)))
            }
            _ => Ok(()),
        }
    }

    /// Refuses a number no instance could ever send to (`550 5.4.4`, RFC 3463: no
    /// route), rather than keeping it until it expires.
    pub fn check_route(&self, number: &E164) -> Result<(), Reply> {
        match self.routes.as_ref().and_then(|routes| routes(number)) {
            Some(why) => Err(Reply::new(550, "5.4.4", capitalised(&why))),
            None => Ok(()),
        }
    }

    /// May send without AUTH (a mail server using us as its smart host).
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|network| network.contains(ip))
    }

    /// The number policy: deny list first, then the allow list.
    pub fn check_number(&self, number: &E164) -> Result<(), Reply> {
        if let Some(prefix) = self.deny_prefixes.iter().find(|p| number.starts_with(p.as_str())) {
            let text = format!("{number}: numbers starting {prefix} are not served");
            return Err(Reply::new(550, "5.7.1", text));
        }
        if !self.allow_prefixes.is_empty() && !self.allow_prefixes.iter().any(|p| number.starts_with(p.as_str())) {
            let text = format!(
                "{number}: only numbers starting {} are served",
                self.allow_prefixes.join(", ")
            );
            return Err(Reply::new(550, "5.7.1", text));
        }
        Ok(())
    }

    /// Counts one request from `who` to `number`, or refuses it past a limit.
    pub fn take_request(&self, who: &str, number: &E164, now: Instant) -> Result<(), Reply> {
        if self.per_minute == 0 && self.per_day == 0 && self.numbers_per_day == 0 {
            return Ok(());
        }
        let mut all = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        // Senders idle for a day are forgotten, so the map stays as big as a day's senders.
        if all.len() >= PRUNE_AT {
            all.retain(|_, usage| usage.requests.back().is_some_and(|t| now.duration_since(*t) < DAY));
        }
        let usage = all.entry(who.to_string()).or_default();
        while usage.requests.front().is_some_and(|t| now.duration_since(*t) >= DAY) {
            usage.requests.pop_front();
        }
        usage.numbers.retain(|_, last| now.duration_since(*last) < DAY);
        let last_minute = usage
            .requests
            .iter()
            .rev()
            .take_while(|t| now.duration_since(**t) < MINUTE)
            .count();
        let elsewhere = self.elsewhere.lock().unwrap_or_else(|e| e.into_inner());
        let elsewhere = elsewhere
            .get(who)
            .map_or((0, 0, 0), |u| (u.minute as usize, u.day as usize, u.numbers as usize));
        let refuse = |what: String| Err(Reply::new(450, "4.7.1", format!("{who}: {what}, try again later")));
        if self.per_minute > 0 && last_minute + elsewhere.0 >= self.per_minute as usize {
            return refuse(format!("more than {} requests in a minute", self.per_minute));
        }
        if self.per_day > 0 && usage.requests.len() + elsewhere.1 >= self.per_day as usize {
            return refuse(format!("more than {} requests in a day", self.per_day));
        }
        let new_number = !usage.numbers.contains_key(number);
        // Numbers seen elsewhere are counted apart (one sent to through two instances
        // counts twice): the limit errs on the side of holding.
        if self.numbers_per_day > 0 && new_number && usage.numbers.len() + elsewhere.2 >= self.numbers_per_day as usize
        {
            return refuse(format!("more than {} different numbers in a day", self.numbers_per_day));
        }
        usage.requests.push_back(now);
        usage.numbers.insert(number.clone(), now);
        Ok(())
    }

    /// This instance's counts per sender (those with any in the last day), for the
    /// site's other instances.
    pub fn usage_here(&self, now: Instant) -> Vec<SiteUsage> {
        let all = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .filter_map(|(who, usage)| {
                let within = |span: Duration| usage.requests.iter().filter(|t| now.duration_since(**t) < span).count();
                let day = within(DAY);
                (day > 0).then(|| SiteUsage {
                    who: who.clone(),
                    minute: within(MINUTE) as u32,
                    day: day as u32,
                    numbers: usage.numbers.values().filter(|t| now.duration_since(**t) < DAY).count() as u32,
                })
            })
            .collect()
    }

    /// What the site's other instances let each sender send lately, summed.
    pub fn set_usage_elsewhere(&self, elsewhere: Vec<SiteUsage>) {
        let elsewhere = elsewhere.into_iter().map(|u| (u.who.clone(), u)).collect();
        *self.elsewhere.lock().unwrap_or_else(|e| e.into_inner()) = elsewhere;
    }

    /// Returns the last `count` requests taken by `who` (its mail was not accepted after all).
    pub fn give_back(&self, who: &str, count: usize) {
        let mut all = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(usage) = all.get_mut(who) {
            let keep = usage.requests.len().saturating_sub(count);
            usage.requests.truncate(keep);
        }
    }

    /// How long `ip` is still locked out of AUTH, if it is.
    pub fn auth_locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let until = failures.get(&ip)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failed AUTH; returns how many in a row this address has failed.
    pub fn auth_failed(&self, ip: IpAddr, now: Instant) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.entry(ip).or_default();
        if entry.locked_until.is_some_and(|until| until <= now) {
            *entry = Failures::default();
        }
        entry.count += 1;
        if entry.count >= self.max_auth_failures {
            entry.locked_until = Some(now + self.lockout);
        }
        entry.count
    }

    /// A successful login from `ip`: its failures are forgotten.
    pub fn auth_succeeded(&self, ip: IpAddr) {
        // Also the moment to forget addresses whose lock-out has ended.
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.retain(|_, f| f.locked_until.is_none_or(|until| until > now) && f.count > 0);
        drop(failures);
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(&ip);
    }
}

/// `text` with its first letter upper case, as a reply's words begin.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> E164 {
        text.parse().unwrap()
    }

    fn policy(edit: impl FnOnce(&mut Config)) -> Policy {
        let mut config = Config::default();
        edit(&mut config);
        Policy::from_config(&config)
    }

    #[test]
    fn limits_hit_exactly_at_their_thresholds() {
        let policy = policy(|c| {
            c.security.per_minute = 3;
            c.security.per_day = 5;
            c.security.numbers_per_day = 0;
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert!(policy.take_request("alice", &n("+33477858589"), start).is_ok());
        }
        let refused = policy.take_request("alice", &n("+33477858589"), start).unwrap_err();
        assert_eq!((refused.code, refused.status), (450, "4.7.1"));
        assert_eq!(refused.text, "alice: more than 3 requests in a minute, try again later");
        assert!(
            policy.take_request("bob", &n("+33477858589"), start).is_ok(),
            "limits are per sender"
        );
        let later = start + MINUTE;
        assert!(policy.take_request("alice", &n("+33477858589"), later).is_ok());
        assert!(policy.take_request("alice", &n("+33477858589"), later).is_ok());
        let refused = policy.take_request("alice", &n("+33477858589"), later).unwrap_err();
        assert!(
            refused.text.contains("more than 5 requests in a day"),
            "{}",
            refused.text
        );
        assert!(policy.take_request("alice", &n("+33477858589"), start + DAY).is_ok());
    }

    #[test]
    fn the_site_s_other_instances_count_towards_the_limits() {
        let policy = policy(|c| {
            c.security.per_minute = 3;
            c.security.per_day = 5;
            c.security.numbers_per_day = 2;
        });
        let start = Instant::now();
        assert!(policy.take_request("alice", &n("+33477858589"), start).is_ok());
        let here = policy.usage_here(start);
        assert_eq!(
            here,
            [SiteUsage {
                who: "alice".into(),
                minute: 1,
                day: 1,
                numbers: 1
            }]
        );
        // Another instance let alice send 2 in this minute, to one other number.
        policy.set_usage_elsewhere(vec![SiteUsage {
            who: "alice".into(),
            minute: 2,
            day: 2,
            numbers: 1,
        }]);
        let refused = policy.take_request("alice", &n("+33477858589"), start).unwrap_err();
        assert_eq!(refused.text, "alice: more than 3 requests in a minute, try again later");
        let later = start + MINUTE;
        let refused = policy.take_request("alice", &n("+33612345678"), later).unwrap_err();
        assert_eq!(
            refused.text,
            "alice: more than 2 different numbers in a day, try again later"
        );
        assert!(
            policy.take_request("bob", &n("+33477858589"), start).is_ok(),
            "per sender"
        );
        policy.set_usage_elsewhere(Vec::new());
        assert!(policy.take_request("alice", &n("+33612345678"), later).is_ok());
    }

    #[test]
    fn a_number_no_instance_can_send_to_is_refused_with_no_route() {
        let open = policy(|_| {});
        assert!(
            open.check_route(&n("+4915112345678")).is_ok(),
            "without routes, every number"
        );
        let routes: Routes = Arc::new(|number: &E164| {
            (!number.starts_with("+44")).then(|| format!("no route to {number}: no modem of uk has a tariff for it"))
        });
        let policy = policy(|_| {}).with_routes(routes);
        assert!(policy.check_route(&n("+447911123456")).is_ok());
        let refused = policy.check_route(&n("+4915112345678")).unwrap_err();
        assert_eq!((refused.code, refused.status), (550, "5.4.4"));
        assert_eq!(
            refused.text,
            "No route to +4915112345678: no modem of uk has a tariff for it"
        );
    }

    #[test]
    fn requests_given_back_count_no_more() {
        let policy = policy(|c| c.security.per_minute = 2);
        let now = Instant::now();
        assert!(policy.take_request("alice", &n("+10"), now).is_ok());
        assert!(policy.take_request("alice", &n("+10"), now).is_ok());
        assert!(policy.take_request("alice", &n("+10"), now).is_err());
        policy.give_back("alice", 1);
        assert!(policy.take_request("alice", &n("+10"), now).is_ok());
    }

    #[test]
    fn distinct_numbers_per_day() {
        let policy = policy(|c| {
            c.security.per_minute = 0;
            c.security.per_day = 0;
            c.security.numbers_per_day = 2;
        });
        let now = Instant::now();
        assert!(policy.take_request("alice", &n("+10"), now).is_ok());
        assert!(policy.take_request("alice", &n("+20"), now).is_ok());
        assert!(
            policy.take_request("alice", &n("+10"), now).is_ok(),
            "a number already used is fine"
        );
        assert!(
            policy
                .take_request("alice", &n("+30"), now)
                .unwrap_err()
                .text
                .contains("2 different numbers")
        );
    }

    #[test]
    fn number_lists() {
        let policy = policy(|c| {
            c.security.deny_prefixes = vec!["+3389".into()];
            c.security.allow_prefixes = vec!["+33".into(), "+44".into()];
        });
        assert!(policy.check_number(&n("+33477858589")).is_ok());
        assert!(
            policy
                .check_number(&n("+33899123456"))
                .unwrap_err()
                .text
                .contains("starting +3389 are not served")
        );
        assert!(
            policy
                .check_number(&n("+4915112345678"))
                .unwrap_err()
                .text
                .contains("only numbers starting +33, +44")
        );
    }

    #[test]
    fn lock_out_after_max_failures_then_release() {
        let policy = policy(|c| {
            c.security.max_auth_failures = 3;
            c.security.lockout_secs = 60;
        });
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = Instant::now();
        assert_eq!(policy.auth_failed(ip, now), 1);
        assert_eq!(policy.auth_failed(ip, now), 2);
        assert!(policy.auth_locked(ip, now).is_none());
        policy.auth_failed(ip, now);
        assert!(policy.auth_locked(ip, now).is_some());
        assert!(policy.auth_locked(ip, now + MINUTE).is_none());
        assert!(policy.auth_locked("192.0.2.8".parse().unwrap(), now).is_none());
    }
}
