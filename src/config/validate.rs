//! The rules a configuration must follow beyond each value's type: ranges, keys that go
//! together, names that must be unique. Each broken rule is reported by its key.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::OneOrList;
use super::{Config, HostPort, HttpUrl, NonEmpty, Outbound, OutboundTls, Peer, Pin, Problem};

/// A `[[peer]]` as written. Its addresses and pins are read in [`check_cluster`], so
/// that a bad one is reported beside the entry's other problems rather than hiding them
/// (serde would give up on the entry at its first bad value). The keys are [`Peer`]'s.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PeerEntry {
    name: String,
    smtp: OneOrList,
    status_url: OneOrList,
    #[serde(default)]
    link_cost: f64,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    tls: OutboundTls,
    #[serde(default)]
    tls_ca_file: PathBuf,
    #[serde(default)]
    tls_pin_sha256: Vec<String>,
}

/// Checks `config` as read, with its `[[peer]]` entries, and returns the peers once read.
pub(super) fn check(config: &Config, peers: &[PeerEntry], problems: &mut Vec<Problem>) -> Vec<Peer> {
    let (smtp, sms) = (&config.smtp, &config.sms);
    let domains_ok = smtp.sms_domains.iter().all(|d| is_domain(d));
    let rules = [
        (
            is_name(&config.instance.name),
            "instance.name",
            "must be letters, digits, '.', '-' or '_' (it names this instance to its peers)",
        ),
        (!smtp.listen.is_empty(), "smtp.listen", "needs at least one address"),
        (!smtp.hostname.is_empty(), "smtp.hostname", "must not be empty"),
        (
            !smtp.sms_domains.is_empty(),
            "smtp.sms_domains",
            "needs at least one domain, such as \"sms\"",
        ),
        (
            domains_ok,
            "smtp.sms_domains",
            "each entry must be a bare domain such as \"sms\" or \"sms.example.com\"",
        ),
        (
            smtp.max_message_size >= 1024,
            "smtp.max_message_size",
            "must be at least 1024 bytes",
        ),
        (smtp.max_recipients >= 1, "smtp.max_recipients", "must be at least 1"),
        (smtp.max_connections >= 1, "smtp.max_connections", "must be at least 1"),
        // Each session is a task and a socket: a million is far past any real server,
        // and keeps the semaphore (at most `usize::MAX >> 3` permits) from panicking.
        (
            smtp.max_connections <= 1_000_000,
            "smtp.max_connections",
            "must be at most 1000000",
        ),
        (smtp.max_errors >= 1, "smtp.max_errors", "must be at least 1"),
        (
            smtp.max_buffered_bytes >= smtp.max_message_size,
            "smtp.max_buffered_bytes",
            "must be at least smtp.max_message_size: one message must fit",
        ),
        (
            smtp.command_timeout_secs >= 1,
            "smtp.command_timeout_secs",
            "must be at least 1",
        ),
        // A day is already far longer than any client waits; a huge value would also
        // overflow the deadline's arithmetic.
        (
            smtp.command_timeout_secs <= 86_400,
            "smtp.command_timeout_secs",
            "must be at most 86400 (a day)",
        ),
        (
            smtp.data_timeout_secs >= 1,
            "smtp.data_timeout_secs",
            "must be at least 1",
        ),
        // A day is already far longer than any client waits; a huge value would also
        // overflow the deadline's arithmetic.
        (
            smtp.data_timeout_secs <= 86_400,
            "smtp.data_timeout_secs",
            "must be at most 86400 (a day)",
        ),
        (
            (1..=255).contains(&sms.max_parts),
            "sms.max_parts",
            "must be between 1 and 255 (a concatenated SMS counts its parts in one octet)",
        ),
        (sms.validity_minutes >= 5, "sms.validity_minutes", "must be at least 5"),
    ];
    report_broken(&rules, problems);
    check_modems(config, problems);
    let peers = check_cluster(config, peers, problems);
    check_dsn(config, problems);
    check_inbound(config, problems);
    check_security(config, problems);
    check_store(config, problems);
    peers
}

/// `[http]`, `[routing]` and the `[[peer]]` entries, read into [`Peer`]s.
fn check_cluster(config: &Config, entries: &[PeerEntry], problems: &mut Vec<Problem>) -> Vec<Peer> {
    // A listen address that did not parse was reported already.
    let listen_reported = problems.iter().any(|p| p.key == "http.listen");
    if config.http.listen.is_none() && !entries.is_empty() && !listen_reported {
        problems.push(Problem::new(
            "http.listen",
            "needed with [[peer]]s: they route by this instance's /status",
        ));
    }
    let listen_on_loopback = config.http.listen.is_some_and(|a| a.ip().is_loopback());
    let rules = [
        (
            !config.http.tls || config.has_tls(),
            "http.tls",
            "needs security.tls_cert and security.tls_key: HTTPS serves the SMTP side's certificate",
        ),
        (
            !config.http.require_auth || config.http.tls || listen_on_loopback,
            "http.require_auth",
            "needs http.tls = true unless http.listen is on loopback: HTTP Basic sends the password as it is",
        ),
        (
            config.http.users.is_empty() || config.http.require_auth,
            "http.users",
            "needs http.require_auth = true: without it /status and /route ask for no user",
        ),
    ];
    report_broken(&rules, problems);
    let routing = &config.routing;
    let rules = [
        (
            routing.workload_cost.is_finite() && routing.workload_cost >= 0.0,
            "routing.workload_cost",
            "must be a number >= 0",
        ),
        (routing.max_hops >= 1, "routing.max_hops", "must be at least 1"),
        (routing.poll_secs >= 1, "routing.poll_secs", "must be at least 1"),
    ];
    report_broken(&rules, problems);
    let mut peers = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let key = |field: &str| format!("peer[{index}].{field}");
        let taken = entry.name == config.instance.name || entries[..index].iter().any(|p| p.name == entry.name);
        if !is_name(&entry.name) || taken {
            problems.push(Problem::new(
                &key("name"),
                "must be the peer's instance.name (letters, digits, '.', '-', '_'), unique, and not this instance's own",
            ));
        }
        let smtp = parse_addresses::<HostPort>(&entry.smtp, &key("smtp"), problems, |_| {
            "must be host:port, such as \"fr-gw.example.net:25\"".to_string()
        });
        let status_url = parse_addresses::<HttpUrl>(&entry.status_url, &key("status_url"), problems, |e| e.to_string());
        if !entry.link_cost.is_finite() || entry.link_cost < 0.0 {
            problems.push(Problem::new(&key("link_cost"), "must be a number >= 0"));
        }
        if entry.user.is_empty() || entry.password.is_empty() {
            problems.push(Problem::new(
                &key("user"),
                "user and password are needed: a peer believes our X-Smsgw headers (request id, \
                 trace) only from an authenticated peer",
            ));
        }
        if entry.tls == OutboundTls::Opportunistic {
            problems.push(Problem::new(
                &key("tls"),
                "\"opportunistic\" would hand the peer password to anyone in the middle: use \"verify\" \
                 (with tls_ca_file or tls_pin_sha256 for a private or self-signed certificate), or \"none\" \
                 on a trusted network",
            ));
        }
        let pins = parse_list::<Pin>(&entry.tls_pin_sha256, &key("tls_pin_sha256"), problems);
        if let (Some(smtp), Some(status_url), Some(tls_pin_sha256)) = (smtp, status_url, pins) {
            peers.push(Peer {
                name: entry.name.clone(),
                smtp,
                status_url,
                link_cost: entry.link_cost,
                user: entry.user.clone(),
                password: entry.password.clone(),
                tls: entry.tls,
                tls_ca_file: entry.tls_ca_file.clone(),
                tls_pin_sha256,
            });
        }
    }
    peers
}

/// What [`Config::warnings`] finds: the keys still read where the last release had them
/// (`dsn.smart_host`, see `moved`); a peer's status polled in clear across a network,
/// where anyone on the path reads it or forges it (and so steers routing). Each URL of
/// a list is named by its index (`peer[0].status_url[1]`).
pub(super) fn warnings(config: &Config) -> Vec<Problem> {
    let mut warnings = super::moved::warnings(&config.moved);
    for (index, peer) in config.peer.iter().enumerate() {
        for (at, url) in peer.status_url.iter().enumerate() {
            if url.is_https() || url.is_loopback() {
                continue;
            }
            let key = match peer.status_url.len() {
                1 => format!("peer[{index}].status_url"),
                _ => format!("peer[{index}].status_url[{at}]"),
            };
            warnings.push(Problem::new(
                &key,
                "plain http:// to a host not on loopback: anyone on the path can read this status or \
                 forge one that steers routing, and the peer's user and password are not sent; use \
                 https:// (with http.tls and http.require_auth at the peer)",
            ));
        }
    }
    let inbound = &config.inbound;
    if inbound.ambiguous == super::Ambiguous::DefaultRecipient && inbound.default_recipient.is_none() {
        warnings.push(Problem::new(
            "inbound.ambiguous",
            "\"default_recipient\" while inbound.default_recipient is empty: an SMS from a number several \
             senders texted is kept in the inbox, mailed to no one",
        ));
    }
    if inbound.stop_words.words().next().is_none() {
        warnings.push(Problem::new(
            "inbound.stop_words",
            "empty: no SMS opts its number out (smsgw optout add still does)",
        ));
    }
    warnings
}

/// Reads a `[[peer]]` address key, one text or a list of them, into at least one `T`,
/// reporting each text that is not one (`key`, or `key[1]` in a list; `problem` says
/// why) and an empty list; `None` if any is not.
fn parse_addresses<T: std::str::FromStr>(
    written: &OneOrList,
    key: &str,
    problems: &mut Vec<Problem>,
    problem: impl Fn(T::Err) -> String,
) -> Option<NonEmpty<T>> {
    let texts = match written {
        OneOrList::One(text) => {
            return text
                .parse::<T>()
                .map(NonEmpty::from)
                .map_err(|e| problems.push(Problem::new(key, &problem(e))))
                .ok();
        }
        OneOrList::List(texts) => texts,
    };
    if texts.is_empty() {
        problems.push(Problem::new(
            key,
            "needs at least one address (one text, or a list of the site's instances)",
        ));
        return None;
    }
    let before = problems.len();
    let items: Vec<T> = texts
        .iter()
        .enumerate()
        .filter_map(|(at, text)| {
            text.parse::<T>()
                .map_err(|e| problems.push(Problem::new(&format!("{key}[{at}]"), &problem(e))))
                .ok()
        })
        .collect();
    if problems.len() == before {
        NonEmpty::new(items)
    } else {
        None
    }
}

/// Reads every text of the list `key` as a `T`, reporting each that is not one; `None`
/// if any is not.
fn parse_list<T: std::str::FromStr>(texts: &[String], key: &str, problems: &mut Vec<Problem>) -> Option<Vec<T>>
where
    T::Err: std::fmt::Display,
{
    let before = problems.len();
    let items = texts
        .iter()
        .enumerate()
        .filter_map(|(index, text)| {
            text.parse()
                .map_err(|e: T::Err| problems.push(Problem::new(&format!("{key}[{index}]"), &e.to_string())))
                .ok()
        })
        .collect();
    (problems.len() == before).then_some(items)
}

fn check_dsn(config: &Config, problems: &mut Vec<Problem>) {
    let dsn = &config.dsn;
    if !dsn.from.is_empty() && !dsn.from.contains('@') {
        problems.push(Problem::new(
            "dsn.from",
            "must be a mail address such as \"postmaster@example.com\"",
        ));
    }
}

/// The rules of one read of `[outbound]`'s keys, `section` naming where they were
/// written: `outbound`, or `dsn` for the keys still read there (see `moved`). Keys
/// the section does not set have their defaults, which pass.
pub(super) fn check_outbound(outbound: &Outbound, section: &str, problems: &mut Vec<Problem>) {
    let rules = [
        (outbound.lifetime_hours >= 1, "lifetime_hours", "must be at least 1"),
        (outbound.timeout_secs >= 1, "timeout_secs", "must be at least 1"),
        (outbound.mx_port >= 1, "mx_port", "must be a port, 1 to 65535"),
    ];
    problems.extend(
        rules
            .iter()
            .filter(|(ok, ..)| !ok)
            .map(|(_, key, problem)| Problem::new(&format!("{section}.{key}"), problem)),
    );
}

/// `[inbound]`: a mailbox to deliver to, times that are not nothing, and no word that
/// both opts out and opts back in.
fn check_inbound(config: &Config, problems: &mut Vec<Problem>) {
    let inbound = &config.inbound;
    if inbound.default_recipient.as_ref().is_some_and(|to| !to.contains('@')) {
        problems.push(Problem::new(
            "inbound.default_recipient",
            "must be a mail address such as \"sms@example.com\", or \"\" to keep such SMS in the inbox",
        ));
    }
    let rules = [
        (
            inbound.reassembly_timeout_secs >= 1,
            "inbound.reassembly_timeout_secs",
            "must be at least 1",
        ),
        (
            inbound.reply_window_hours >= 1,
            "inbound.reply_window_hours",
            "must be at least 1",
        ),
    ];
    report_broken(&rules, problems);
    // A list with a bad word was reported and read as its default: not compared.
    let words_reported = problems
        .iter()
        .any(|p| p.key.starts_with("inbound.stop_words") || p.key.starts_with("inbound.start_words"));
    if words_reported {
        return;
    }
    for (index, word) in inbound.start_words.words().enumerate() {
        if inbound.stop_words.matches(word) {
            problems.push(Problem::new(
                &format!("inbound.start_words[{index}]"),
                &format!("{word:?} is also a stop word"),
            ));
        }
    }
}

/// The longest a modem's command or send may take: an hour.
const MAX_MODEM_TIMEOUT_SECS: u64 = 3600;
/// The longest pause between two reads of a modem's radio: a day.
const MAX_RADIO_POLL_SECS: u64 = 86_400;

fn check_modems(config: &Config, problems: &mut Vec<Problem>) {
    for (index, modem) in config.modem.iter().enumerate() {
        let key = |field: &str| format!("modem[{index}].{field}");
        if modem.name.is_empty() || config.modem[..index].iter().any(|m| m.name == modem.name) {
            problems.push(Problem::new(&key("name"), "must be unique and not empty"));
        }
        if modem.send_timeout_secs == 0 {
            problems.push(Problem::new(&key("send_timeout_secs"), "must be at least 1"));
        }
        // Upper bounds keep deadlines (now + the value) and the lease (a sum of
        // multiples of them) far from overflowing; none has a use beyond them.
        for (field, value, max) in [
            ("send_timeout_secs", modem.send_timeout_secs, MAX_MODEM_TIMEOUT_SECS),
            (
                "command_timeout_secs",
                modem.command_timeout_secs.get(),
                MAX_MODEM_TIMEOUT_SECS,
            ),
            ("radio_poll_secs", modem.radio_poll_secs.get(), MAX_RADIO_POLL_SECS),
        ] {
            if value > max {
                problems.push(Problem::new(&key(field), &format!("must be at most {max}")));
            }
        }
        if modem.port.is_empty() {
            problems.push(Problem::new(
                &key("port"),
                "a serial device such as /dev/ttyUSB0, or \"sim\"",
            ));
        }
        for (prefix, cost) in &modem.tariff {
            // "+" alone is the catch-all tariff.
            if !(prefix == "+" || is_e164_prefix(prefix)) || !cost.is_finite() || *cost < 0.0 {
                problems.push(Problem::new(
                    &key(&format!("tariff.\"{prefix}\"")),
                    "keys are E.164 prefixes such as \"+\" or \"+44\", values costs >= 0",
                ));
            }
        }
    }
}

fn check_security(config: &Config, problems: &mut Vec<Problem>) {
    let security = &config.security;
    for (key, prefixes) in [
        ("allow_prefixes", &security.allow_prefixes),
        ("deny_prefixes", &security.deny_prefixes),
    ] {
        for (index, prefix) in prefixes.iter().enumerate() {
            if !is_e164_prefix(prefix) {
                let problem = "must be an E.164 prefix such as \"+44\" or \"+3389\"";
                problems.push(Problem::new(&format!("security.{key}[{index}]"), problem));
            }
        }
    }
    let (cert, key) = (
        security.tls_cert.as_os_str().is_empty(),
        security.tls_key.as_os_str().is_empty(),
    );
    if cert != key {
        problems.push(Problem::new("security.tls_key", "tls_cert and tls_key go together"));
    }
    if cert && (security.require_tls || !security.listen_tls.is_empty()) {
        problems.push(Problem::new(
            "security.tls_cert",
            "require_tls and listen_tls need a certificate",
        ));
    }
    if security.max_auth_failures == 0 {
        problems.push(Problem::new("security.max_auth_failures", "must be at least 1"));
    }
    if security.lockout_secs > super::MAX_LOCKOUT_SECS {
        problems.push(Problem::new(
            "security.lockout_secs",
            &format!("at most {} (30 days)", super::MAX_LOCKOUT_SECS),
        ));
    }
}

/// "+" and at least one digit: the start of an E.164 number.
fn is_e164_prefix(prefix: &str) -> bool {
    prefix
        .strip_prefix('+')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// An instance name: it travels in comma-separated headers and lists.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

fn is_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Adds a problem for each rule `(holds, key, problem)` that does not hold.
fn report_broken(rules: &[(bool, &str, &str)], problems: &mut Vec<Problem>) {
    problems.extend(
        rules
            .iter()
            .filter(|(ok, ..)| !ok)
            .map(|(_, key, problem)| Problem::new(key, problem)),
    );
}

/// `[store]`: a cap must leave room for the largest mail, or every mail is refused.
fn check_store(config: &Config, problems: &mut Vec<Problem>) {
    if let Some(cap) = config.store_max_bytes()
        && cap <= config.smtp.max_message_size as u64
    {
        problems.push(Problem::new(
            "store.max_size_mb",
            "must be 0 (no cap) or larger than smtp.max_message_size: one mail must fit",
        ));
    }
}
