//! Typed configuration: TOML file plus `SMSGW__SECTION__KEY` environment overrides.
//!
//! Every section is read on its own so that `check-config` reports every problem at once,
//! each as `key: problem`. Unknown keys are errors: a misspelt key silently ignored is a
//! setting the operator believes in and does not have.
//!
//! Values with a syntax of their own (addresses, networks, pins, regions) are read into
//! their types ([`HostPort`], [`Network`], [`Pin`], ...) as the file is read, so the rest
//! of the program never parses them again.
//!
//! This file is the schema. `env` layers the environment over the file, `read` reads
//! the sections and reports their problems, `validate` checks what a type alone cannot,
//! `values` holds the typed values, `modem` the `[[modem]]` entries, `inbound` the
//! `[inbound]` section, `moved` the keys still read where an older release had them.

mod env;
mod inbound;
mod modem;
mod moved;
mod read;
#[cfg(test)]
mod tests;
mod validate;
mod values;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::compose::ComposeMode;
use crate::sms::Language;

/// The longest `security.lockout_secs` accepted: 30 days. Longer is surely a typo, and an
/// unbounded one would overflow the clock arithmetic of a lockout.
pub const MAX_LOCKOUT_SECS: u64 = 30 * 24 * 3600;

pub use inbound::{Ambiguous, AmbiguousError, Inbound, Keywords};
pub use modem::{Incoming, Modem, SimConfig, StatusReports};
pub use read::{ConfigError, Problem};
pub use values::{
    HostPort, HostPortError, HttpUrl, HttpUrlError, Nameserver, NameserverError, Network, NetworkError, NonEmpty, Pin,
    PinError, PostgresUrl, PostgresUrlError, Region, RegionError,
};

/// The whole configuration, validated.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// This instance (`[instance]`).
    pub instance: Instance,
    /// The SMTP server (`[smtp]`).
    pub smtp: Smtp,
    /// How mail becomes SMS (`[sms]`).
    pub sms: Sms,
    /// The GSM modems (`[[modem]]`).
    pub modem: Vec<Modem>,
    /// The HTTP endpoint (`[http]`).
    pub http: Http,
    /// Routing between instances (`[routing]`).
    pub routing: Routing,
    /// The other instances of the cluster (`[[peer]]`).
    pub peer: Vec<Peer>,
    /// Delivery status notifications (`[dsn]`).
    pub dsn: Dsn,
    /// The outbound mail transport of DSNs and of the mails made from incoming SMS
    /// (`[outbound]`).
    pub outbound: Outbound,
    /// What becomes of incoming SMS (`[inbound]`).
    pub inbound: Inbound,
    /// Who may send what (`[security]`).
    pub security: Security,
    /// The queue database (`[store]`).
    pub store: Store,
    /// The `[outbound]` keys this file set under `[dsn]`, where the last release had
    /// them: each is a warning of [`Config::warnings`].
    moved: Vec<moved::Moved>,
}

/// This instance (`[instance]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Instance {
    /// Unique name of this instance in the cluster.
    pub name: String,
    /// Directory of `smsgw.db` and the simulator's records; relative to the working directory.
    pub data_dir: PathBuf,
}

impl Default for Instance {
    fn default() -> Self {
        Self {
            name: "smsgw".into(),
            data_dir: "data".into(),
        }
    }
}

/// The SMTP server (`[smtp]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    /// Addresses the SMTP server listens on.
    pub listen: Vec<SocketAddr>,
    /// Name in the greeting and in EHLO.
    pub hostname: String,
    /// Domains whose addresses are phone numbers (`+33477858589@sms`).
    pub sms_domains: Vec<String>,
    /// Largest message accepted, in bytes (advertised as SIZE).
    pub max_message_size: usize,
    /// Recipients accepted in one transaction.
    pub max_recipients: usize,
    /// Simultaneous connections; more are answered `421` and closed.
    pub max_connections: usize,
    /// Simultaneous connections from one client address (Postfix's
    /// `smtpd_client_connection_count_limit`); more are answered `421` and closed. The
    /// `security.trusted_networks` are exempt; 0: no cap.
    pub max_connections_per_client: usize,
    /// Bytes of messages in progress held by all sessions together; past it a transaction
    /// is answered `452 4.3.1` (the client tries again later). At least `max_message_size`.
    pub max_buffered_bytes: usize,
    /// Errors in one session before it is closed with `421`.
    pub max_errors: usize,
    /// Seconds to wait for a command line.
    pub command_timeout_secs: u64,
    /// Seconds to wait for more message data during DATA or BDAT.
    pub data_timeout_secs: u64,
    /// Seconds sessions get to finish after a shutdown signal.
    pub shutdown_grace_secs: u64,
}

impl Default for Smtp {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            hostname: "smsgw.localdomain".into(),
            sms_domains: vec!["sms".into()],
            max_message_size: 1024 * 1024,
            max_recipients: 100,
            max_connections: 512,
            max_connections_per_client: 50,
            max_buffered_bytes: 64 * 1024 * 1024,
            max_errors: 10,
            command_timeout_secs: 300,
            data_timeout_secs: 300,
            shutdown_grace_secs: 10,
        }
    }
}

/// What to do with a text longer than `sms.max_parts` parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTooLong {
    /// Send the first `max_parts` parts' worth of it.
    Truncate,
    /// Refuse the recipient (554 5.3.4).
    Reject,
}

/// How mail becomes SMS (`[sms]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sms {
    /// Region (ISO 3166 code, e.g. "GB") of national numbers such as `07700900123@sms`.
    pub default_region: Region,
    /// What of the mail becomes the SMS text.
    pub compose: ComposeMode,
    /// Most parts one request may take (1..=255).
    pub max_parts: usize,
    /// What to do with a text longer than `max_parts`.
    pub on_too_long: OnTooLong,
    /// National language shift tables (TS 23.038 §6.2.1.2) that may keep a Turkish,
    /// Spanish or Portuguese text in 7-bit: any of "tr", "es", "pt".
    #[serde(deserialize_with = "values::parse_each")]
    pub national_language_tables: Vec<Language>,
    /// How long a request may wait to be sent (also the SMS's validity at the network).
    pub validity_minutes: u64,
    /// Delays before each new attempt after a temporary failure; the last one repeats.
    pub retry_delays_secs: crate::retry::RetrySchedule,
}

impl Default for Sms {
    fn default() -> Self {
        Self {
            default_region: Region::from(phonenumber::country::Id::GB),
            compose: ComposeMode::SubjectBody,
            max_parts: 6,
            on_too_long: OnTooLong::Truncate,
            national_language_tables: Vec::new(),
            validity_minutes: 24 * 60,
            retry_delays_secs: crate::retry::RetrySchedule::from_secs(30, &[60, 300, 900, 1800, 3600]),
        }
    }
}

/// The HTTP endpoint (`[http]`): `/status` (what peers poll), `/metrics` and `/route`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Where it listens, "host:port"; empty: no HTTP endpoint (an instance alone needs none).
    #[serde(deserialize_with = "values::http_listen")]
    pub listen: Option<SocketAddr>,
    /// Serve HTTPS on `listen` with the SMTP side's certificate (`security.tls_cert`,
    /// reloaded on SIGHUP with it); peers then poll `https://`.
    pub tls: bool,
    /// `/status` and `/route` answer only a user of `security.users_file` (HTTP Basic,
    /// the SMTP AUTH users); `/metrics` stays open. Needs `tls` unless `listen` is on
    /// loopback: Basic sends the password as it is.
    pub require_auth: bool,
    /// With `require_auth`: when not empty, the only users of `security.users_file`
    /// that `/status` and `/route` answer (the peers' users, say), so that a mail
    /// sender's password does not open them. Empty: any user of the file.
    pub users: Vec<String>,
}

/// Least-cost routing between instances (`[routing]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// Cost added per request waiting, per working modem of an instance.
    pub workload_cost: f64,
    /// Instances a request may pass through; past them only local modems may send it.
    pub max_hops: usize,
    /// How often each peer's status is polled; a down peer is polled less often.
    pub poll_secs: u64,
    /// Delays before each new forwarding attempt to one peer after a temporary failure;
    /// when they run out, the next cheapest instance is tried.
    pub retry_delays_secs: crate::retry::RetrySchedule,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            workload_cost: 0.001,
            max_hops: 4,
            poll_secs: 5,
            retry_delays_secs: crate::retry::RetrySchedule::from_secs(5, &[30, 120]),
        }
    }
}

/// Another instance of the cluster (`[[peer]]`). Read as written first (see
/// `validate::PeerEntry`), so that a bad address does not hide the entry's other problems.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its `instance.name`; with several `status_url`s, the name of the site (its
    /// instances' names differ from it and from each other).
    pub name: String,
    /// Its SMTP listeners, "host:port" each (one, or the instances of a site): where
    /// requests are forwarded, tried in order until one takes the connection.
    pub smtp: NonEmpty<HostPort>,
    /// Its `/status` URLs (one, or the instances of a site), polled in order until one
    /// answers, for its tariffs, modems and workload. An `https://` one is checked with
    /// `tls_ca_file` and `tls_pin_sha256` (whatever `tls` says of the SMTP leg), and sent
    /// `user`/`password` as HTTP Basic; a plain `http://` one is sent them only on
    /// loopback.
    pub status_url: NonEmpty<HttpUrl>,
    /// Cost of forwarding one request to it.
    pub link_cost: f64,
    /// SMTP AUTH user at the peer (a user of its `users_file` named as this instance is
    /// in its `[[peer]]` list): only then are our `X-Smsgw-*` headers kept.
    pub user: String,
    /// That user's password.
    pub password: String,
    /// TLS towards the peer: "verify" (default) or "none" (a trusted network only).
    pub tls: OutboundTls,
    /// CA certificates (PEM) trusted for this peer beside the system's.
    pub tls_ca_file: PathBuf,
    /// SHA-256 fingerprints of certificates accepted as they are (a self-signed peer).
    pub tls_pin_sha256: Vec<Pin>,
}

/// How an outbound SMTP connection uses TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTls {
    /// STARTTLS required, and the certificate checked (CAs and host name, or a pin).
    #[default]
    Verify,
    /// STARTTLS when offered, any certificate; in clear when not offered.
    Opportunistic,
    /// Never TLS.
    None,
}

/// Delivery status notifications to senders (`[dsn]`). They go out through
/// [`Outbound`], which until that section came held here its transport keys: their old
/// spellings (`dsn.smart_host`, ...) are still read (see `moved`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dsn {
    /// The DSN's `From`; empty: postmaster at `smtp.hostname`.
    pub from: String,
    /// A `delayed` DSN (NOTIFY=DELAY) once a request waits this long unsent; 0: never.
    pub delay_after_secs: u64,
    /// A request sent this long ago without a status report gets a `relayed` DSN; 0: never.
    pub report_wait_secs: u64,
}

impl Default for Dsn {
    fn default() -> Self {
        Self {
            from: String::new(),
            delay_after_secs: 4 * 3600,
            report_wait_secs: 3600,
        }
    }
}

/// The one outbound mail transport (`[outbound]`): how DSNs, and the mails made from
/// incoming SMS, reach their recipients. Where they go is decided here too: a smart
/// host, or each recipient domain's MX hosts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// "host:port" every mail goes through; empty: straight to the recipient domain's MX.
    #[serde(deserialize_with = "values::empty_is_none")]
    pub smart_host: Option<HostPort>,
    /// TLS towards the smart host or MX: "verify", "opportunistic" or "none"; unset:
    /// "verify" for a smart host, "opportunistic" for MX hosts (see [`Config::outbound_tls`]).
    pub tls: Option<OutboundTls>,
    /// Extra CA certificates (PEM) trusted beside the system's, e.g. a company CA.
    pub tls_ca_file: PathBuf,
    /// SHA-256 fingerprints (hex) of certificates accepted as they are, self-signed or not.
    pub tls_pin_sha256: Vec<Pin>,
    /// Delays before each new attempt to deliver a mail; the last one repeats.
    pub retry_delays_secs: crate::retry::RetrySchedule,
    /// A mail not delivered after this long is logged and dropped.
    pub lifetime_hours: u64,
    /// Time any one step of an SMTP delivery may take.
    pub timeout_secs: u64,
    /// DNS servers asked for the MX records of recipients' domains; empty: the system's
    /// (`/etc/resolv.conf`). The MX hosts' own addresses come from the system's resolver.
    pub nameservers: Vec<Nameserver>,
    /// The port MX hosts are reached on (Postfix's `smtp_tcp_port`); not the smart host's.
    pub mx_port: u16,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            smart_host: None,
            tls: None,
            tls_ca_file: PathBuf::new(),
            tls_pin_sha256: Vec::new(),
            retry_delays_secs: crate::retry::RetrySchedule::from_secs(60, &[300, 900, 1800, 3600]),
            lifetime_hours: 5 * 24,
            timeout_secs: 60,
            nameservers: Vec::new(),
            mx_port: 25,
        }
    }
}

/// Who may send what (`[security]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// PEM certificate chain; with `tls_key`, STARTTLS is offered on every listener.
    /// Both files are read again on SIGHUP.
    pub tls_cert: PathBuf,
    /// The certificate's private key (PEM).
    pub tls_key: PathBuf,
    /// Extra listeners with implicit TLS (port 465 style).
    pub listen_tls: Vec<SocketAddr>,
    /// Refuse MAIL before STARTTLS, except from loopback.
    pub require_tls: bool,
    /// Networks that may send without AUTH (mail servers using us as their smart host);
    /// everyone else must authenticate first.
    pub trusted_networks: Vec<Network>,
    /// Users for SMTP AUTH (argon2 hashes), managed with `smsgw user add|del`; relative
    /// to the working directory. Read again on SIGHUP.
    pub users_file: PathBuf,
    /// Allow AUTH without TLS on listeners that are not loopback-only (passwords in clear).
    pub allow_plaintext_auth: bool,
    /// Failed AUTH attempts from one client address before it is locked out.
    pub max_auth_failures: u32,
    /// How long a locked-out address is refused AUTH (and HTTP Basic); at most
    /// [`MAX_LOCKOUT_SECS`].
    pub lockout_secs: u64,
    /// Pause before answering a failed AUTH, times the failures in a row (at most 5).
    pub auth_failure_delay_ms: u64,
    /// E.164 prefixes; when set, only numbers starting with one of them are served.
    pub allow_prefixes: Vec<String>,
    /// E.164 prefixes refused, e.g. ["+3389"].
    pub deny_prefixes: Vec<String>,
    /// Refuse numbers of the premium-rate type.
    pub deny_premium: bool,
    /// Accepted requests per authenticated user (or per envelope sender of a trusted
    /// network's mail, with `per_sender`) in a minute; 0: no limit.
    pub per_minute: u32,
    /// The same in a day; 0: no limit.
    pub per_day: u32,
    /// Distinct numbers one user (or envelope sender) may send to per day; 0: no limit.
    pub numbers_per_day: u32,
    /// Count the limits of mail relayed by a trusted network (no AUTH) per envelope
    /// sender; false: such mail is not counted (the relay has its own users and limits).
    pub per_sender: bool,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            listen_tls: Vec::new(),
            require_tls: false,
            trusted_networks: vec![Network::LOOPBACK_V4, Network::LOOPBACK_V6],
            users_file: "users.toml".into(),
            allow_plaintext_auth: false,
            max_auth_failures: 5,
            lockout_secs: 900,
            auth_failure_delay_ms: 1000,
            allow_prefixes: Vec::new(),
            deny_prefixes: Vec::new(),
            deny_premium: true,
            per_minute: 60,
            per_day: 1000,
            numbers_per_day: 200,
            per_sender: false,
        }
    }
}

/// The queue database (`[store]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Store {
    /// Largest size of the queue database, in MiB; 0: no cap. Past it intake answers
    /// `451 4.3.0` (the sender's server tries again later), so a runaway sender cannot
    /// fill the disk. A database already larger opens and only refuses to grow. SQLite
    /// only: a PostgreSQL server's disk is watched by its own operator.
    pub max_size_mb: u64,
    /// Empty: SQLite in `instance.data_dir`. `postgres://user:password@host:port/db`:
    /// the queue on PostgreSQL, shared by every instance of the site that names it.
    #[serde(deserialize_with = "values::empty_is_none")]
    pub url: Option<PostgresUrl>,
}

impl Config {
    /// Reads the file (which must exist) and the environment, then validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let layered = env::layered(path).map_err(|error| ConfigError::whole_file(path, &error))?;
        read::from_raw(&layered)
    }

    /// TLS for outbound mail (`[outbound]`): as set, else verified towards a smart host
    /// (one server the operator chose) and opportunistic towards recipients' MX hosts, as
    /// MTAs deliver on the internet (many MX certificates name no host a CA vouched for).
    pub fn outbound_tls(&self) -> OutboundTls {
        match (self.outbound.tls, &self.outbound.smart_host) {
            (Some(tls), _) => tls,
            (None, Some(_)) => OutboundTls::Verify,
            (None, None) => OutboundTls::Opportunistic,
        }
    }

    /// The `From` of DSNs.
    pub fn dsn_from(&self) -> String {
        if self.dsn.from.is_empty() {
            format!("postmaster@{}", self.smtp.hostname)
        } else {
            self.dsn.from.clone()
        }
    }

    /// What is allowed but probably a mistake, each as `key: why`: `check-config` prints
    /// them and `serve` logs them, and neither refuses the config for them.
    pub fn warnings(&self) -> Vec<Problem> {
        validate::warnings(self)
    }

    /// Whether TLS is configured (a certificate and its key).
    pub fn has_tls(&self) -> bool {
        !self.security.tls_cert.as_os_str().is_empty()
    }

    /// How recipients are read (`smtp.sms_domains`, `sms.default_region`).
    pub fn address_rules(&self) -> crate::address::AddressRules {
        crate::address::AddressRules {
            domains: self.smtp.sms_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            default_region: Some(self.sms.default_region.id()),
            deny_premium: self.security.deny_premium,
        }
    }

    /// Where the SQLite database lives.
    pub fn database_path(&self) -> PathBuf {
        self.instance.data_dir.join("smsgw.db")
    }

    /// The cap on the queue database in bytes (`store.max_size_mb`), if any.
    pub fn store_max_bytes(&self) -> Option<u64> {
        (self.store.max_size_mb > 0).then(|| self.store.max_size_mb.saturating_mul(1024 * 1024))
    }
}
