//! Typed configuration: TOML file plus `SMSGW__SECTION__KEY` environment overrides.
//!
//! Every section is read on its own so that `check-config` reports every problem at once,
//! each as `key: problem`. Unknown keys are errors: a misspelt key silently ignored is a
//! setting the operator believes in and does not have.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::compose::ComposeMode;
use crate::sms::Language;

/// The whole configuration, validated.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub instance: Instance,
    pub smtp: Smtp,
    pub sms: Sms,
    pub modem: Vec<Modem>,
    pub http: Http,
    pub routing: Routing,
    pub peer: Vec<Peer>,
    pub dsn: Dsn,
    pub security: Security,
}

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
            max_errors: 10,
            command_timeout_secs: 300,
            data_timeout_secs: 300,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnTooLong {
    Truncate,
    Reject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sms {
    /// Region (ISO 3166 code, e.g. "GB") of national numbers such as `07700900123@sms`.
    pub default_region: String,
    /// What of the mail becomes the SMS text.
    pub compose: ComposeMode,
    /// Most parts one request may take (1..=255).
    pub max_parts: usize,
    /// What to do with a text longer than `max_parts`.
    pub on_too_long: OnTooLong,
    /// National language shift tables (TS 23.038 §6.2.1.2) that may keep a Turkish,
    /// Spanish or Portuguese text in 7-bit: any of "tr", "es", "pt".
    pub national_language_tables: Vec<String>,
    /// How long a request may wait to be sent (also the SMS's validity at the network).
    pub validity_minutes: u64,
    /// Delays before each new attempt after a temporary failure; the last one repeats.
    pub retry_delays_secs: Vec<u64>,
}

impl Default for Sms {
    fn default() -> Self {
        Self {
            default_region: "GB".into(),
            compose: ComposeMode::SubjectBody,
            max_parts: 6,
            on_too_long: OnTooLong::Truncate,
            national_language_tables: Vec::new(),
            validity_minutes: 24 * 60,
            retry_delays_secs: vec![30, 60, 300, 900, 1800, 3600],
        }
    }
}

/// One GSM modem (`[[modem]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modem {
    /// Unique among this instance's modems; names its records and its requests.
    pub name: String,
    /// A serial device such as "/dev/ttyUSB0", or "sim" for the built-in simulated modem.
    pub port: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// The SIM's PIN, if it asks for one; a wrong one is never retried.
    #[serde(default)]
    pub pin: String,
    /// SMS centre number to set with AT+CSCA; empty: the SIM's own.
    #[serde(default)]
    pub smsc: String,
    /// SMS parts per minute this modem may send; 0: no limit.
    #[serde(default)]
    pub per_minute: u32,
    /// How long the network may take to accept one part after its PDU; past it the
    /// request is `uncertain` (it may have been sent).
    #[serde(default = "default_send_timeout")]
    pub send_timeout_secs: u64,
    /// Cost of one SMS part by E.164 prefix (longest match wins); a number matching no
    /// prefix is not sent by this modem.
    #[serde(default = "default_tariff")]
    pub tariff: BTreeMap<String, f64>,
    /// How the modem hands over status reports: "direct" (`+CDS`, most modems) or
    /// "stored" (`+CDSI`, read from its memory: for modems that cannot pass them on).
    #[serde(default)]
    pub status_reports: StatusReports,
    /// The simulated modem's behaviour (`port = "sim"` only).
    #[serde(default)]
    pub sim: SimConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusReports {
    #[default]
    Direct,
    Stored,
    /// The modem or its network gives none: SMS are sent without asking for one, and
    /// their senders are told `relayed`.
    None,
}

/// The HTTP endpoint (`[http]`): `/status` (what peers poll) and `/metrics`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// "host:port"; empty: no HTTP endpoint (an instance alone needs none).
    pub listen: String,
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
    pub retry_delays_secs: Vec<u64>,
}

impl Default for Routing {
    fn default() -> Self {
        Self {
            workload_cost: 0.001,
            max_hops: 4,
            poll_secs: 5,
            retry_delays_secs: vec![5, 30, 120],
        }
    }
}

/// Another instance of the cluster (`[[peer]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its `instance.name`.
    pub name: String,
    /// Its SMTP listener, "host:port": where requests are forwarded.
    pub smtp: String,
    /// Its `/status` URL (plain HTTP), polled for its tariffs, modems and workload.
    pub status_url: String,
    /// Cost of forwarding one request to it.
    #[serde(default)]
    pub link_cost: f64,
    /// SMTP AUTH credentials at the peer (a user of its `users_file` named as this
    /// instance is in its `[[peer]]` list): only then are our `X-Smsgw-*` headers kept.
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
    /// TLS towards the peer: "verify" (default) or "none" (a trusted network only).
    #[serde(default)]
    pub tls: OutboundTls,
    /// CA certificates (PEM) trusted for this peer beside the system's.
    #[serde(default)]
    pub tls_ca_file: PathBuf,
    /// SHA-256 fingerprints of certificates accepted as they are (a self-signed peer).
    #[serde(default)]
    pub tls_pin_sha256: Vec<String>,
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

/// Delivery status notifications to senders (`[dsn]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dsn {
    /// "host:port" every DSN goes through; empty: straight to the sender domain's MX.
    pub smart_host: String,
    /// The DSN's `From`; empty: postmaster at `smtp.hostname`.
    pub from: String,
    /// TLS towards the smart host or MX: "verify", "opportunistic" or "none"; unset:
    /// "verify" for a smart host, "opportunistic" for MX hosts (see [`Config::dsn_tls`]).
    pub tls: Option<OutboundTls>,
    /// Extra CA certificates (PEM) trusted beside the system's, e.g. a company CA.
    pub tls_ca_file: PathBuf,
    /// SHA-256 fingerprints (hex) of certificates accepted as they are, self-signed or not.
    pub tls_pin_sha256: Vec<String>,
    /// A `delayed` DSN (NOTIFY=DELAY) once a request waits this long unsent; 0: never.
    pub delay_after_secs: u64,
    /// A request sent this long ago without a status report gets a `relayed` DSN; 0: never.
    pub report_wait_secs: u64,
    /// Delays before each new attempt to deliver a DSN; the last one repeats.
    pub retry_delays_secs: Vec<u64>,
    /// A DSN not delivered after this long is logged and dropped.
    pub lifetime_hours: u64,
    /// Time any one step of an SMTP delivery may take.
    pub timeout_secs: u64,
}

impl Default for Dsn {
    fn default() -> Self {
        Self {
            smart_host: String::new(),
            from: String::new(),
            tls: None,
            tls_ca_file: PathBuf::new(),
            tls_pin_sha256: Vec::new(),
            delay_after_secs: 4 * 3600,
            report_wait_secs: 3600,
            retry_delays_secs: vec![60, 300, 900, 1800, 3600],
            lifetime_hours: 5 * 24,
            timeout_secs: 60,
        }
    }
}

fn default_baud() -> u32 {
    115_200
}

fn default_send_timeout() -> u64 {
    60
}

fn default_tariff() -> BTreeMap<String, f64> {
    BTreeMap::from([("+".to_string(), 0.0)])
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Security {
    /// PEM certificate chain; with `tls_key`, STARTTLS is offered on every listener.
    /// Both files are read again on SIGHUP.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Extra listeners with implicit TLS (port 465 style).
    pub listen_tls: Vec<SocketAddr>,
    /// Refuse MAIL before STARTTLS, except from loopback.
    pub require_tls: bool,
    /// Networks that may send without AUTH (mail servers using us as their smart host);
    /// everyone else must authenticate first.
    pub trusted_networks: Vec<String>,
    /// Users for SMTP AUTH (argon2 hashes), managed with `smsgw user add|del`; relative
    /// to the working directory. Read again on SIGHUP.
    pub users_file: PathBuf,
    /// Allow AUTH without TLS on listeners that are not loopback-only (passwords in clear).
    pub allow_plaintext_auth: bool,
    /// Failed AUTH attempts from one client address before it is locked out.
    pub max_auth_failures: u32,
    /// How long a locked-out address is refused AUTH.
    pub lockout_secs: u64,
    /// Pause before answering a failed AUTH, times the failures in a row (at most 5).
    pub auth_failure_delay_ms: u64,
    /// E.164 prefixes; when set, only numbers starting with one of them are served.
    pub allow_prefixes: Vec<String>,
    /// E.164 prefixes refused, e.g. ["+3389"].
    pub deny_prefixes: Vec<String>,
    /// Refuse numbers of the premium-rate type.
    pub deny_premium: bool,
    /// Accepted requests per user (or per client address when unauthenticated); 0: no limit.
    pub per_minute: u32,
    pub per_day: u32,
    /// Distinct numbers one user (or client address) may send to per day; 0: no limit.
    pub numbers_per_day: u32,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            listen_tls: Vec::new(),
            require_tls: false,
            trusted_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
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
        }
    }
}

/// The `sim = { … }` table of a `[[modem]]` whose port is "sim".
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Time per part before `+CMGS` answers; also the network time of each incoming part.
    pub latency_ms: u64,
    /// Delay of the status report after `+CMGS`.
    pub report_delay_ms: u64,
    /// "" for no PIN; else `AT+CPIN?` answers `SIM PIN` until `AT+CPIN="<pin>"`.
    pub pin: String,
    /// E.164 number → `+CMS ERROR` code answered to `AT+CMGS` for that number.
    pub cms_error: BTreeMap<String, u16>,
    /// Numbers whose status report says permanent failure (TP-ST 0x41).
    pub report_failure: Vec<String>,
    /// Numbers whose `AT+CMGS` closes the pseudo-terminal once the PDU is in, unanswered.
    pub hang_up: Vec<String>,
    /// Numbers whose `AT+CMGS` is never answered; the modem answers later commands.
    pub silent: Vec<String>,
    /// SMS that reach the modem after the first `AT+CNMI`.
    pub incoming: Vec<Incoming>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency_ms: 100,
            report_delay_ms: 1000,
            pin: String::new(),
            cms_error: BTreeMap::new(),
            report_failure: Vec::new(),
            hang_up: Vec::new(),
            silent: Vec::new(),
            incoming: Vec::new(),
        }
    }
}

/// An SMS the network delivers to the modem; a long text arrives as concatenated parts.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incoming {
    pub from: String,
    pub text: String,
}

/// One problem in the configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub problem: String,
}

impl Problem {
    fn new(key: &str, problem: &str) -> Problem {
        Problem {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Every problem found, so the operator fixes them in one go.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError(pub Vec<Problem>);

const SECTIONS: &[&str] = &[
    "instance", "smtp", "sms", "modem", "http", "routing", "peer", "dsn", "security",
];
/// Keys whose value is a list: from the environment, comma-separated.
const LIST_KEYS: &[&str] = &[
    "smtp.listen",
    "smtp.sms_domains",
    "sms.national_language_tables",
    "sms.retry_delays_secs",
    "routing.retry_delays_secs",
    "dsn.tls_pin_sha256",
    "dsn.retry_delays_secs",
    "security.listen_tls",
    "security.trusted_networks",
    "security.allow_prefixes",
    "security.deny_prefixes",
];

const ENV_PREFIX: &str = "SMSGW__";

impl Config {
    /// Reads the file (which must exist) and the environment, then validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let whole_file =
            |e: config::ConfigError| ConfigError(vec![Problem::new(&path.display().to_string(), &e.to_string())]);
        // Lists are split here rather than by the config crate, which would read a lone
        // "+3389" as the number 3389 before it saw a list.
        let (lists, scalars): (Vec<_>, Vec<_>) = std::env::vars()
            .filter_map(|(name, value)| {
                let key = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase().replace("__", ".");
                Some((name, key, value))
            })
            .partition(|(_, key, _)| LIST_KEYS.contains(&key.as_str()));
        let env = config::Environment::with_prefix("SMSGW")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(
                scalars.into_iter().map(|(name, _, value)| (name, value)).collect(),
            ));
        let mut builder = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(env);
        for (_, key, value) in lists {
            let items: Vec<String> = value
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty())
                .map(String::from)
                .collect();
            builder = builder.set_override(key, items).map_err(whole_file)?;
        }
        Self::from_raw(&builder.build().map_err(whole_file)?)
    }

    fn from_raw(raw: &config::Config) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let tables: HashMap<String, config::Value> = raw.clone().try_deserialize().unwrap_or_default();
        for key in tables.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
            let known = SECTIONS.join(", ");
            problems.push(Problem::new(key, &format!("unknown section (known: {known})")));
        }
        let config = Config {
            instance: section(&tables, "instance", &mut problems),
            smtp: section(&tables, "smtp", &mut problems),
            sms: section(&tables, "sms", &mut problems),
            modem: list(&tables, "modem", &mut problems),
            http: section(&tables, "http", &mut problems),
            routing: section(&tables, "routing", &mut problems),
            peer: list(&tables, "peer", &mut problems),
            dsn: section(&tables, "dsn", &mut problems),
            security: section(&tables, "security", &mut problems),
        };
        config.validate(&mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }

    fn validate(&self, problems: &mut Vec<Problem>) {
        let (smtp, sms) = (&self.smtp, &self.sms);
        let domains_ok = smtp.sms_domains.iter().all(|d| is_domain(d));
        let rules = [
            (
                is_name(&self.instance.name),
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
            (smtp.max_errors >= 1, "smtp.max_errors", "must be at least 1"),
            (
                smtp.command_timeout_secs >= 1,
                "smtp.command_timeout_secs",
                "must be at least 1",
            ),
            (
                smtp.data_timeout_secs >= 1,
                "smtp.data_timeout_secs",
                "must be at least 1",
            ),
            (
                (1..=255).contains(&sms.max_parts),
                "sms.max_parts",
                "must be between 1 and 255 (a concatenated SMS counts its parts in one octet)",
            ),
            (sms.validity_minutes >= 5, "sms.validity_minutes", "must be at least 5"),
            (
                !sms.retry_delays_secs.is_empty(),
                "sms.retry_delays_secs",
                "needs at least one delay",
            ),
            (
                self.region().is_some(),
                "sms.default_region",
                "must be an ISO 3166 region code known to libphonenumber, such as \"GB\" or \"FR\"",
            ),
        ];
        report_broken(&rules, problems);
        for (index, code) in sms.national_language_tables.iter().enumerate() {
            if let Err(e) = code.parse::<Language>() {
                problems.push(Problem::new(
                    &format!("sms.national_language_tables[{index}]"),
                    &e.to_string(),
                ));
            }
        }
        self.validate_modems(problems);
        self.validate_cluster(problems);
        self.validate_dsn(problems);
        self.validate_security(problems);
    }

    fn validate_cluster(&self, problems: &mut Vec<Problem>) {
        let (http, routing) = (&self.http, &self.routing);
        if !http.listen.is_empty() && http.listen.parse::<SocketAddr>().is_err() {
            problems.push(Problem::new(
                "http.listen",
                "must be an address such as \"127.0.0.1:8025\"",
            ));
        }
        if http.listen.is_empty() && !self.peer.is_empty() {
            problems.push(Problem::new(
                "http.listen",
                "needed with [[peer]]s: they route by this instance's /status",
            ));
        }
        let rules = [
            (
                routing.workload_cost.is_finite() && routing.workload_cost >= 0.0,
                "routing.workload_cost",
                "must be a number >= 0",
            ),
            (routing.max_hops >= 1, "routing.max_hops", "must be at least 1"),
            (routing.poll_secs >= 1, "routing.poll_secs", "must be at least 1"),
            (
                !routing.retry_delays_secs.is_empty(),
                "routing.retry_delays_secs",
                "needs at least one delay",
            ),
        ];
        report_broken(&rules, problems);
        for (index, peer) in self.peer.iter().enumerate() {
            let key = |field: &str| format!("peer[{index}].{field}");
            let taken = peer.name == self.instance.name || self.peer[..index].iter().any(|p| p.name == peer.name);
            if !is_name(&peer.name) || taken {
                problems.push(Problem::new(
                    &key("name"),
                    "must be the peer's instance.name (letters, digits, '.', '-', '_'), unique, and not this instance's own",
                ));
            }
            if host_port(&peer.smtp).is_none() {
                problems.push(Problem::new(
                    &key("smtp"),
                    "must be host:port, such as \"fr-gw.example.net:25\"",
                ));
            }
            if !peer.status_url.starts_with("http://") || host_port(http_authority(&peer.status_url)).is_none() {
                problems.push(Problem::new(
                    &key("status_url"),
                    "must be an http:// URL with a port, such as \"http://fr-gw.example.net:8025/status\"",
                ));
            }
            if !peer.link_cost.is_finite() || peer.link_cost < 0.0 {
                problems.push(Problem::new(&key("link_cost"), "must be a number >= 0"));
            }
            if peer.user.is_empty() || peer.password.is_empty() {
                problems.push(Problem::new(
                    &key("user"),
                    "user and password are needed: a peer believes our X-Smsgw headers (request id, \
                     trace) only from an authenticated peer",
                ));
            }
            if peer.tls == OutboundTls::Opportunistic {
                problems.push(Problem::new(
                    &key("tls"),
                    "\"opportunistic\" would hand the peer password to anyone in the middle: use \"verify\" \
                     (with tls_ca_file or tls_pin_sha256 for a private or self-signed certificate), or \"none\" \
                     on a trusted network",
                ));
            }
            validate_pins(&peer.tls_pin_sha256, &key("tls_pin_sha256"), problems);
        }
    }

    fn validate_dsn(&self, problems: &mut Vec<Problem>) {
        let dsn = &self.dsn;
        if !dsn.smart_host.is_empty() && host_port(&dsn.smart_host).is_none() {
            problems.push(Problem::new(
                "dsn.smart_host",
                "must be host:port, such as \"mail.example.com:25\"",
            ));
        }
        if !dsn.from.is_empty() && !dsn.from.contains('@') {
            problems.push(Problem::new(
                "dsn.from",
                "must be a mail address such as \"postmaster@example.com\"",
            ));
        }
        validate_pins(&dsn.tls_pin_sha256, "dsn.tls_pin_sha256", problems);
        let rules = [
            (
                !dsn.retry_delays_secs.is_empty(),
                "dsn.retry_delays_secs",
                "needs at least one delay",
            ),
            (dsn.lifetime_hours >= 1, "dsn.lifetime_hours", "must be at least 1"),
            (dsn.timeout_secs >= 1, "dsn.timeout_secs", "must be at least 1"),
        ];
        report_broken(&rules, problems);
    }

    /// TLS for DSN delivery: as set, else verified towards a smart host (one server the
    /// operator chose) and opportunistic towards senders' MX hosts, as MTAs deliver on
    /// the internet (many MX certificates name no host a CA vouched for).
    pub fn dsn_tls(&self) -> OutboundTls {
        match (self.dsn.tls, self.dsn.smart_host.is_empty()) {
            (Some(tls), _) => tls,
            (None, false) => OutboundTls::Verify,
            (None, true) => OutboundTls::Opportunistic,
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

    fn validate_modems(&self, problems: &mut Vec<Problem>) {
        for (index, modem) in self.modem.iter().enumerate() {
            let key = |field: &str| format!("modem[{index}].{field}");
            if modem.name.is_empty() || self.modem[..index].iter().any(|m| m.name == modem.name) {
                problems.push(Problem::new(&key("name"), "must be unique and not empty"));
            }
            if modem.send_timeout_secs == 0 {
                problems.push(Problem::new(&key("send_timeout_secs"), "must be at least 1"));
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

    fn validate_security(&self, problems: &mut Vec<Problem>) {
        let security = &self.security;
        for (index, network) in security.trusted_networks.iter().enumerate() {
            if let Err(e) = network.parse::<crate::net::Network>() {
                problems.push(Problem::new(&format!("security.trusted_networks[{index}]"), &e));
            }
        }
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
    }

    /// Whether TLS is configured (a certificate and its key).
    pub fn has_tls(&self) -> bool {
        !self.security.tls_cert.as_os_str().is_empty()
    }

    /// How recipients are read (`smtp.sms_domains`, `sms.default_region`).
    pub fn address_rules(&self) -> crate::address::AddressRules {
        crate::address::AddressRules {
            domains: self.smtp.sms_domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            default_region: self.region(),
            deny_premium: self.security.deny_premium,
        }
    }

    /// The region of national numbers, if `sms.default_region` names one.
    pub fn region(&self) -> Option<phonenumber::country::Id> {
        self.sms.default_region.to_ascii_uppercase().parse().ok()
    }

    /// The national language tables enabled (invalid codes are reported by validation).
    pub fn languages(&self) -> Vec<Language> {
        self.sms
            .national_language_tables
            .iter()
            .filter_map(|code| code.parse().ok())
            .collect()
    }

    /// Where the SQLite database lives.
    pub fn database_path(&self) -> PathBuf {
        self.instance.data_dir.join("smsgw.db")
    }
}

/// "host:port" (IPv6 in brackets) as (host, port).
pub fn host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host.to_string(), port.parse().ok().filter(|p| *p > 0)?))
}

/// The "host:port" of an http:// URL.
pub fn http_authority(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.split('/').next().unwrap_or(rest)
}

/// The pins of a `tls_pin_sha256` list (bad ones are reported by validation).
pub fn pins(list: &[String]) -> Vec<[u8; 32]> {
    list.iter().filter_map(|pin| parse_pin(pin)).collect()
}

/// Reads a pin: 64 hex digits, colons allowed ("AB:CD:..." as openssl prints them).
pub fn parse_pin(text: &str) -> Option<[u8; 32]> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut pin = [0u8; 32];
    for (index, byte) in pin.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(pin)
}

fn validate_pins(pins: &[String], key: &str, problems: &mut Vec<Problem>) {
    for (index, pin) in pins.iter().enumerate() {
        if parse_pin(pin).is_none() {
            let problem = "must be a SHA-256 fingerprint: 64 hex digits, colons allowed";
            problems.push(Problem::new(&format!("{key}[{index}]"), problem));
        }
    }
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

/// Reads one section, reporting every bad key in it: the key at fault is taken out and
/// the rest is read again, so one typo does not hide the next.
fn section<T: DeserializeOwned + Default>(
    tables: &HashMap<String, config::Value>,
    name: &str,
    problems: &mut Vec<Problem>,
) -> T {
    let Some(value) = tables.get(name) else {
        return T::default();
    };
    let mut table = match value.clone().into_table() {
        Ok(table) => table,
        Err(_) => {
            problems.push(Problem::new(name, &format!("must be a table such as [{name}]")));
            return T::default();
        }
    };
    loop {
        let value = config::Value::new(None, config::ValueKind::Table(table.clone()));
        match value.try_deserialize::<T>() {
            Ok(section) => return section,
            Err(error) => {
                let (key, problem) = describe(&error);
                let full = key.as_ref().map_or(name.to_string(), |k| format!("{name}.{k}"));
                problems.push(Problem::new(&full, &problem));
                let field = key.as_deref().map(|k| k.split(['.', '[']).next().unwrap_or(k));
                if field.and_then(|f| table.remove(f)).is_none() {
                    return T::default();
                }
            }
        }
    }
}

/// Reads `[[name]]` entries, each as a section of its own (`modem[0]`, ...).
fn list<T: DeserializeOwned>(
    tables: &HashMap<String, config::Value>,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Vec<T> {
    let Some(value) = tables.get(name) else {
        return Vec::new();
    };
    let Ok(entries) = value.clone().into_array() else {
        problems.push(Problem::new(name, &format!("must be a list of [[{name}]] tables")));
        return Vec::new();
    };
    let mut items = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let key = format!("{name}[{index}]");
        let wrapped = HashMap::from([(key.clone(), entry)]);
        let before = problems.len();
        let item: Option<T> = section(&wrapped, &key, problems);
        if problems.len() == before {
            items.extend(item);
        }
    }
    items
}

/// The key an error is about (relative to its section) and what is wrong with it.
fn describe(error: &config::ConfigError) -> (Option<String>, String) {
    use config::ConfigError;
    match error {
        ConfigError::Type {
            key,
            unexpected,
            expected,
            ..
        } => (key.clone(), format!("expected {expected}, found {unexpected}")),
        ConfigError::At { key, error, .. } => (key.clone(), describe(error).1),
        ConfigError::Message(message) => match message.strip_prefix("unknown field `") {
            Some(rest) => {
                let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
                let expected = expected.trim_start_matches(", ");
                (Some(field.to_string()), format!("unknown key ({expected})"))
            }
            None => (None, message.clone()),
        },
        other => (None, other.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_64_hex_digits_with_or_without_colons() {
        let plain = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let pin = parse_pin(plain).unwrap();
        assert_eq!(pin[0], 0x00);
        assert_eq!(pin[15], 0xff);
        assert_eq!(pin[31], 0xff);
        let colons: Vec<String> = pin.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(parse_pin(&colons.join(":")), Some(pin));
        for bad in ["", "00", &plain[1..], &format!("{}zz", &plain[2..])] {
            assert_eq!(parse_pin(bad), None, "{bad:?}");
        }
    }
}
