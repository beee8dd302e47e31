use std::net::SocketAddr;

use super::*;

const PIN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// Reads `toml` as the configuration file, without the environment.
fn load(toml: &str) -> Result<Config, Vec<String>> {
    let raw = ::config::Config::builder()
        .add_source(::config::File::from_str(toml, ::config::FileFormat::Toml))
        .build()
        .unwrap();
    read::from_raw(&raw).map_err(|error| error.0.iter().map(ToString::to_string).collect())
}

/// The problems of `toml`, sorted: within a section, the order keys are read in is not
/// the file's.
fn problems(toml: &str) -> Vec<String> {
    let mut problems = load(toml).expect_err("the configuration should be refused");
    problems.sort();
    problems
}

fn peer(extra: &str) -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:8025\"\n[[peer]]\nname = \"fr\"\nsmtp = \"[2001:db8::1]:25\"\n\
         status_url = \"http://fr-gw.example.net:8025/status\"\nuser = \"uk\"\npassword = \"secret\"\n{extra}\n"
    )
}

#[test]
fn an_empty_file_is_the_defaults() {
    let config = load("").unwrap();
    assert_eq!(
        config.security.trusted_networks,
        [Network::LOOPBACK_V4, Network::LOOPBACK_V6]
    );
    assert_eq!(config.sms.default_region.to_string(), "GB");
    assert_eq!(config.http.listen, None);
    assert_eq!(config.outbound.smart_host, None);
    assert_eq!(config.outbound_tls(), OutboundTls::Opportunistic);
    assert!(config.peer.is_empty());
}

#[test]
fn values_are_read_into_their_types() {
    let config = load(&format!(
        "[sms]\ndefault_region = \"fr\"\nnational_language_tables = [\"tr\", \"PT\"]\n\
         [outbound]\nsmart_host = \"mail.example.com:587\"\ntls_pin_sha256 = [\"{PIN}\"]\n\
         [security]\ntrusted_networks = [\"10.0.0.0/8\", \"2001:db8::1\"]\n{}",
        peer(&format!("tls_pin_sha256 = [\"{}\"]", PIN.to_ascii_uppercase()))
    ))
    .unwrap();
    assert_eq!(config.sms.default_region.id(), phonenumber::country::Id::FR);
    assert_eq!(
        config.sms.national_language_tables,
        [Language::Turkish, Language::Portuguese]
    );
    assert_eq!(config.http.listen, Some(SocketAddr::from(([127, 0, 0, 1], 8025))));
    let smart_host = config.outbound.smart_host.as_ref().unwrap();
    assert_eq!((smart_host.host(), smart_host.port()), ("mail.example.com", 587));
    assert_eq!(config.outbound_tls(), OutboundTls::Verify);
    assert_eq!(config.outbound.tls_pin_sha256, [PIN.parse::<Pin>().unwrap()]);
    let networks: Vec<String> = config
        .security
        .trusted_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(networks, ["10.0.0.0/8", "2001:db8::1/128"]);
    let [fr] = &config.peer[..] else {
        panic!("{:?}", config.peer)
    };
    assert_eq!(fr.smtp.first().to_string(), "[2001:db8::1]:25");
    assert_eq!(fr.status_url.first().authority().to_string(), "fr-gw.example.net:8025");
    assert_eq!(fr.status_url.first().path(), "/status");
    assert_eq!(fr.tls_pin_sha256, config.outbound.tls_pin_sha256);
}

#[test]
fn every_bad_element_of_a_list_is_named_by_its_index_as_written() {
    let found = problems(&format!(
        "[security]\ntrusted_networks = [\"10.0.0.0/8\", \"x\", \"10.0.0.0/33\", \"::1\", \"y\"]\n\
         [outbound]\ntls_pin_sha256 = [\"00\", \"{PIN}\", \"zz\"]\n",
    ));
    let pin = "must be a SHA-256 fingerprint: 64 hex digits, colons allowed";
    assert_eq!(
        found,
        sorted([
            format!("outbound.tls_pin_sha256[0]: {pin}"),
            format!("outbound.tls_pin_sha256[2]: {pin}"),
            "security.trusted_networks[1]: \"x\" is not an IP network such as 10.0.0.0/8".into(),
            "security.trusted_networks[2]: \"10.0.0.0/33\": prefix length above 32".into(),
            "security.trusted_networks[4]: \"y\" is not an IP network such as 10.0.0.0/8".into(),
        ])
    );
}

#[test]
fn a_bad_value_is_named_by_its_key() {
    let found = problems(
        "[sms]\ndefault_region = \"XX\"\nnational_language_tables = [\"es\", \"xx\"]\n\
         [outbound]\nsmart_host = \"mail.example.com\"\n[http]\nlisten = \"everywhere\"\n",
    );
    assert_eq!(
        found,
        sorted([
            "sms.default_region: must be an ISO 3166 region code known to libphonenumber, such as \"GB\" or \"FR\"",
            "sms.national_language_tables[1]: unknown SMS language \"xx\": expected one of tr, es, pt",
            "http.listen: must be an address such as \"127.0.0.1:8025\"",
            "outbound.smart_host: must be host:port, such as \"mail.example.com:25\"",
        ])
    );
}

#[test]
fn a_peer_with_bad_addresses_still_has_its_other_problems_reported() {
    let found = problems(&format!(
        "[http]\nlisten = \"nowhere\"\n[[peer]]\nname = \"smsgw\"\nsmtp = \"fr\"\n\
         status_url = \"https://fr/status\"\nlink_cost = -1.0\ntls_pin_sha256 = [\"{PIN}\", \"00\"]\n",
    ));
    assert_eq!(
        found,
        sorted([
            "http.listen: must be an address such as \"127.0.0.1:8025\"",
            "peer[0].name: must be the peer's instance.name (letters, digits, '.', '-', '_'), unique, and not this \
             instance's own",
            "peer[0].smtp: must be host:port, such as \"fr-gw.example.net:25\"",
            "peer[0].status_url: must be an http:// or https:// URL with a port, such as \
             \"https://fr-gw.example.net:8025/status\"",
            "peer[0].link_cost: must be a number >= 0",
            "peer[0].user: user and password are needed: a peer believes our X-Smsgw headers (request id, trace) \
             only from an authenticated peer",
            "peer[0].tls_pin_sha256[1]: must be a SHA-256 fingerprint: 64 hex digits, colons allowed",
        ])
    );
}

#[test]
fn https_serves_the_smtp_certificate_and_basic_auth_crosses_a_network_only_over_it() {
    let found = problems("[http]\nlisten = \"192.0.2.1:8443\"\ntls = true\nrequire_auth = true\n");
    assert_eq!(
        found,
        ["http.tls: needs security.tls_cert and security.tls_key: HTTPS serves the SMTP side's certificate"]
    );
    let found = problems("[http]\nlisten = \"192.0.2.1:8025\"\nrequire_auth = true\n");
    assert_eq!(
        found,
        [
            "http.require_auth: needs http.tls = true unless http.listen is on loopback: HTTP Basic sends the \
          password as it is"
        ]
    );
    let on_loopback = load("[http]\nlisten = \"127.0.0.1:8025\"\nrequire_auth = true\n").unwrap();
    assert!(on_loopback.http.require_auth && !on_loopback.http.tls);
}

#[test]
fn a_peer_status_polled_in_clear_across_a_network_is_a_warning() {
    let remote = load(&peer("")).unwrap();
    let warnings: Vec<String> = remote.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("peer[0].status_url: plain http:// to a host not on loopback"),
        "{warnings:?}"
    );
    let secure = load(&peer("").replace("http://fr-gw", "https://fr-gw")).unwrap();
    assert!(secure.peer[0].status_url.first().is_https());
    assert!(secure.warnings().is_empty());
    let local = load(&peer("").replace("fr-gw.example.net", "127.0.0.1")).unwrap();
    assert!(local.warnings().is_empty());
}

#[test]
fn peers_need_an_http_listener() {
    let found = problems(&peer("").replace("listen = \"127.0.0.1:8025\"", "listen = \"\""));
    assert_eq!(
        found,
        ["http.listen: needed with [[peer]]s: they route by this instance's /status"]
    );
}

#[test]
fn a_list_with_a_bad_element_falls_back_to_its_default_as_a_whole() {
    // As any bad key: what follows from its value is not reported on top of it.
    let found = problems("[smtp]\nlisten = [\"nowhere\"]\n");
    assert_eq!(found, ["smtp.listen[0]: invalid socket address syntax"]);
}

#[test]
fn the_store_cap_is_off_by_default_and_must_leave_room_for_one_mail() {
    assert_eq!(load("").unwrap().store_max_bytes(), None);
    let config = load("[store]\nmax_size_mb = 64\n").unwrap();
    assert_eq!(config.store_max_bytes(), Some(64 * 1024 * 1024));
    assert_eq!(
        problems("[store]\nmax_size_mb = 1\n"),
        ["store.max_size_mb: must be 0 (no cap) or larger than smtp.max_message_size: one mail must fit"]
    );
    assert!(load("[store]\nmax_size_mb = 1\n[smtp]\nmax_message_size = 65536\n").is_ok());
    assert_eq!(
        problems("[store]\nmax_size = 64\n"),
        ["store.max_size: unknown key (expected `max_size_mb` or `url`)"]
    );
}

#[test]
fn the_store_url_names_a_postgresql_database_and_hides_its_password() {
    assert!(load("").unwrap().store.url.is_none());
    assert!(load("[store]\nurl = \"\"\n").unwrap().store.url.is_none());
    let config = load("[store]\nurl = \"postgres://smsgw:s3cret@db.example.net:5433/smsgw\"\n").unwrap();
    let url = config.store.url.unwrap();
    assert_eq!(url.to_string(), "postgres://smsgw:****@db.example.net:5433/smsgw");
    assert_eq!(url.config().get_ports(), [5433]);
    let config = load("[store]\nurl = \"postgres://smsgw@db/smsgw?sslmode=disable&password=s3cret\"\n").unwrap();
    assert_eq!(
        config.store.url.unwrap().to_string(),
        "postgres://smsgw@db/smsgw?sslmode=disable&password=****"
    );
    for (bad, why) in [
        ("mysql://u@h/db", "it does not start with postgres://"),
        ("postgres://smsgw:s3cret@db.example.net:5433", "no database"),
        ("postgresql://db.example.net/smsgw", "no user"),
        ("postgres://smsgw:s3cret@db.example.net:notaport/smsgw", "invalid"),
    ] {
        let found = problems(&format!("[store]\nurl = \"{bad}\"\n")).join("\n");
        assert!(
            found.starts_with("store.url: must be a PostgreSQL URL"),
            "{bad}: {found}"
        );
        assert!(found.contains(why), "{bad}: {found}");
        assert!(!found.contains("s3cret"), "the password is never repeated: {found}");
    }
}

#[test]
fn retry_schedules_are_read_once_and_never_empty() {
    let config = load("[sms]\nretry_delays_secs = [1, 3600]\n").unwrap();
    assert_eq!(
        config.sms.retry_delays_secs.delay(2),
        std::time::Duration::from_secs(3600)
    );
    assert_eq!(
        config.outbound.retry_delays_secs.delay(1),
        std::time::Duration::from_secs(60)
    );
    let found = problems(
        "[sms]\nretry_delays_secs = []\n[routing]\nretry_delays_secs = []\n\
         [outbound]\nretry_delays_secs = [-1]\n",
    );
    assert_eq!(
        found,
        sorted([
            "sms.retry_delays_secs: needs at least one delay",
            "routing.retry_delays_secs: needs at least one delay",
            // Left empty by its bad element: not reported twice.
            "outbound.retry_delays_secs[0]: expected an unsigned 64 bit or less integer, found 64-bit integer `-1`",
        ])
    );
}

fn sorted<const N: usize, T: Into<String>>(expected: [T; N]) -> Vec<String> {
    let mut expected: Vec<String> = expected.into_iter().map(Into::into).collect();
    expected.sort();
    expected
}

#[test]
fn the_edge_limits_have_defaults_and_the_buffer_holds_one_message() {
    let config = load("").unwrap();
    assert_eq!(config.smtp.max_connections_per_client, 50);
    assert_eq!(config.smtp.max_buffered_bytes, 64 * 1024 * 1024);
    assert!(!config.security.per_sender);
    assert_eq!(
        problems("[smtp]\nmax_buffered_bytes = 1000\n"),
        ["smtp.max_buffered_bytes: must be at least smtp.max_message_size: one message must fit"]
    );
    let config =
        load("[smtp]\nmax_buffered_bytes = 65536\nmax_message_size = 65536\n[security]\nper_sender = true\n").unwrap();
    assert!(config.security.per_sender);
}

#[test]
fn modem_timeouts_too_long_to_add_to_a_clock_are_refused_by_key() {
    let got = problems(
        "[[modem]]\nname = \"m\"\nport = \"sim\"\nsend_timeout_secs = 3601\n\
         command_timeout_secs = 9223372036854775807\nradio_poll_secs = 86401\n",
    );
    let keys: Vec<&str> = got.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "modem[0].command_timeout_secs",
            "modem[0].radio_poll_secs",
            "modem[0].send_timeout_secs"
        ],
        "{got:?}"
    );
    load("[[modem]]\nname = \"m\"\nport = \"sim\"\ncommand_timeout_secs = 3600\nradio_poll_secs = 86400\n").unwrap();
}

#[test]
fn a_lockout_longer_than_thirty_days_is_refused() {
    assert!(load("[security]\nlockout_secs = 2592000\n").is_ok());
    assert_eq!(
        problems("[security]\nlockout_secs = 9223372036854775807\n"),
        ["security.lockout_secs: at most 2592000 (30 days)"]
    );
}

#[test]
fn http_users_narrow_require_auth_and_need_it() {
    let config = load("[http]\nlisten = \"127.0.0.1:8025\"\nrequire_auth = true\nusers = [\"uk\"]\n").unwrap();
    assert_eq!(config.http.users, ["uk"]);
    assert_eq!(
        problems("[http]\nlisten = \"127.0.0.1:8025\"\nusers = [\"uk\"]\n"),
        ["http.users: needs http.require_auth = true: without it /status and /route ask for no user"]
    );
}

#[test]
fn smtp_timeouts_and_connections_have_upper_bounds() {
    assert_eq!(
        problems(
            "[smtp]\ncommand_timeout_secs = 9223372036854775807\ndata_timeout_secs = 86401\nmax_connections = 1000001\n"
        ),
        [
            "smtp.command_timeout_secs: must be at most 86400 (a day)",
            "smtp.data_timeout_secs: must be at most 86400 (a day)",
            "smtp.max_connections: must be at most 1000000",
        ]
    );
    assert!(
        load("[smtp]\ncommand_timeout_secs = 86400\ndata_timeout_secs = 86400\nmax_connections = 1000000\n").is_ok()
    );
}

/// A peer's `smtp` and `status_url`: one text, or a list of a site's instances, read in
/// order; an empty list or a bad element is refused, naming the key and its index.
#[test]
fn peer_addresses_are_one_or_a_list() {
    let addresses = |smtp: &str, status_url: &str| {
        load(&format!(
            "[http]\nlisten = \"127.0.0.1:8025\"\n[[peer]]\nname = \"fr\"\nsmtp = {smtp}\n\
             status_url = {status_url}\nuser = \"uk\"\npassword = \"secret\"\n"
        ))
        .map(|config| {
            let peer = &config.peer[0];
            let smtp: Vec<String> = peer.smtp.iter().map(ToString::to_string).collect();
            let status: Vec<String> = peer.status_url.iter().map(ToString::to_string).collect();
            (smtp, status)
        })
    };
    // smtp and status_url as written, then both as read, or the problems.
    type Read<'a> = Result<(&'a [&'a str], &'a [&'a str]), &'a [&'a str]>;
    let table: [(&str, &str, Read<'_>); 7] = [
        (
            "\"fr:25\"",
            "\"http://127.0.0.1:8025/status\"",
            Ok((&["fr:25"], &["http://127.0.0.1:8025/status"])),
        ),
        (
            "[\"fr-a:25\", \"fr-b:2525\"]",
            "[\"http://127.0.0.1:8025/status\", \"https://fr-b:8443/status\"]",
            Ok((
                &["fr-a:25", "fr-b:2525"],
                &["http://127.0.0.1:8025/status", "https://fr-b:8443/status"],
            )),
        ),
        (
            "[\"fr:25\"]",
            "\"https://fr:8443/status\"",
            Ok((&["fr:25"], &["https://fr:8443/status"])),
        ),
        (
            "[]",
            "[]",
            Err(&[
                "peer[0].smtp: needs at least one address (one text, or a list of the site's instances)",
                "peer[0].status_url: needs at least one address (one text, or a list of the site's instances)",
            ]),
        ),
        (
            "[\"fr-a:25\", \"fr-b\", \"fr-c:x\"]",
            "\"https://fr:8443/status\"",
            Err(&[
                "peer[0].smtp[1]: must be host:port, such as \"fr-gw.example.net:25\"",
                "peer[0].smtp[2]: must be host:port, such as \"fr-gw.example.net:25\"",
            ]),
        ),
        (
            "\"fr:25\"",
            "[\"https://fr-a:8443/status\", \"fr-b/status\"]",
            Err(&[
                "peer[0].status_url[1]: must be an http:// or https:// URL with a port, such as \
                 \"https://fr-gw.example.net:8025/status\"",
            ]),
        ),
        (
            "25",
            "\"https://fr:8443/status\"",
            Err(&["peer[0].smtp: must be host:port, such as \"fr-gw.example.net:25\""]),
        ),
    ];
    for (smtp, status_url, expected) in table {
        let got = addresses(smtp, status_url).map_err(|mut problems| {
            problems.sort();
            problems
        });
        let expected = expected
            .map(|(smtp, status)| (owned(smtp), owned(status)))
            .map_err(owned);
        assert_eq!(got, expected, "smtp = {smtp}, status_url = {status_url}");
    }
}

fn owned(texts: &[&str]) -> Vec<String> {
    texts.iter().map(ToString::to_string).collect()
}

#[test]
fn each_status_url_of_a_site_polled_in_clear_across_a_network_is_a_warning_naming_its_index() {
    let site = load(
        "[http]\nlisten = \"127.0.0.1:8025\"\n[[peer]]\nname = \"fr\"\nsmtp = [\"fr-a:25\", \"fr-b:25\"]\n\
         status_url = [\"https://fr-a:8443/status\", \"http://fr-b:8025/status\", \"http://127.0.0.1:8025/status\"]\n\
         user = \"uk\"\npassword = \"secret\"\n",
    )
    .unwrap();
    let warnings: Vec<String> = site.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("peer[0].status_url[1]: plain http:// to a host not on loopback"),
        "{warnings:?}"
    );
}

#[test]
fn outbound_and_dsn_have_their_defaults() {
    let config = load("").unwrap();
    let outbound = &config.outbound;
    assert_eq!(outbound.smart_host, None);
    assert_eq!(outbound.tls, None);
    assert_eq!(outbound.tls_ca_file, std::path::PathBuf::new());
    assert!(outbound.tls_pin_sha256.is_empty() && outbound.nameservers.is_empty());
    let delays: Vec<u64> = (1..=6).map(|n| outbound.retry_delays_secs.delay(n).as_secs()).collect();
    assert_eq!(delays, [60, 300, 900, 1800, 3600, 3600]);
    assert_eq!(
        (outbound.lifetime_hours, outbound.timeout_secs, outbound.mx_port),
        (120, 60, 25)
    );
    assert_eq!(config.dsn.from, "");
    assert_eq!(
        (config.dsn.delay_after_secs, config.dsn.report_wait_secs),
        (14400, 3600)
    );
    assert!(config.warnings().is_empty());
}

/// The `[dsn]` of the last release's sample config, as an operator kept it.
const LAST_RELEASE_DSN: &str = r#"
[dsn]
smart_host = ""             # "host:port" every DSN goes through; empty: the sender domain's MX
from = ""                   # the DSN's From; empty: postmaster@<smtp.hostname>
# tls = "verify"
tls_ca_file = ""            # extra CA certificates (PEM) trusted beside the system's
tls_pin_sha256 = []         # SHA-256 of certificates accepted as they are (self-signed)
delay_after_secs = 14400    # one "delayed" DSN for a request still unsent after this; 0: never
report_wait_secs = 3600     # sent without a status report this long: "relayed"; 0: never
retry_delays_secs = [60, 300, 900, 1800, 3600]  # between delivery attempts; the last repeats
lifetime_hours = 120        # a DSN not delivered by then is logged and dropped
timeout_secs = 60           # for each step of the SMTP conversation
nameservers = []            # DNS servers for MX lookups
mx_port = 25                # the port of MX hosts (Postfix's smtp_tcp_port); a smart_host names its own
"#;

fn warnings(config: &Config) -> Vec<String> {
    config.warnings().iter().map(ToString::to_string).collect()
}

#[test]
fn the_last_release_s_dsn_section_still_loads_with_a_warning_per_moved_key() {
    let config = load(LAST_RELEASE_DSN).unwrap();
    let keys: Vec<String> = warnings(&config)
        .iter()
        .map(|w| w.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "dsn.smart_host",
            "dsn.tls_ca_file",
            "dsn.tls_pin_sha256",
            "dsn.retry_delays_secs",
            "dsn.lifetime_hours",
            "dsn.timeout_secs",
            "dsn.nameservers",
            "dsn.mx_port",
        ]
    );
    assert_eq!(config.outbound_tls(), OutboundTls::Opportunistic);
}

#[test]
fn old_dsn_spellings_of_the_outbound_keys_are_read_into_outbound_with_one_warning_each() {
    let config = load(&format!(
        "[dsn]\nfrom = \"bounces@example.com\"\nsmart_host = \"mail.example.com:587\"\ntls = \"none\"\n\
         tls_ca_file = \"/etc/ca.pem\"\ntls_pin_sha256 = [\"{PIN}\"]\nretry_delays_secs = [5, 10]\n\
         lifetime_hours = 2\ntimeout_secs = 7\nnameservers = [\"192.0.2.53\"]\nmx_port = 2525\n\
         delay_after_secs = 0\n"
    ))
    .unwrap();
    let outbound = &config.outbound;
    assert_eq!(
        outbound.smart_host.as_ref().unwrap().to_string(),
        "mail.example.com:587"
    );
    assert_eq!(config.outbound_tls(), OutboundTls::None);
    assert_eq!(outbound.tls_ca_file, std::path::PathBuf::from("/etc/ca.pem"));
    assert_eq!(outbound.tls_pin_sha256, [PIN.parse::<Pin>().unwrap()]);
    assert_eq!(outbound.retry_delays_secs.delay(3).as_secs(), 10);
    assert_eq!(
        (outbound.lifetime_hours, outbound.timeout_secs, outbound.mx_port),
        (2, 7, 2525)
    );
    assert_eq!(outbound.nameservers, ["192.0.2.53".parse::<Nameserver>().unwrap()]);
    assert_eq!(config.dsn.from, "bounces@example.com");
    assert_eq!(config.dsn.delay_after_secs, 0);
    let why = "(still read; [outbound] now carries DSNs and the mails made from incoming SMS)";
    let expected: Vec<String> = [
        "smart_host",
        "tls",
        "tls_ca_file",
        "tls_pin_sha256",
        "retry_delays_secs",
        "lifetime_hours",
        "timeout_secs",
        "nameservers",
        "mx_port",
    ]
    .iter()
    .map(|key| format!("dsn.{key}: moved to outbound.{key} {why}"))
    .collect();
    assert_eq!(warnings(&config), expected);
}

#[test]
fn outbound_wins_over_dsn_and_the_warning_says_so() {
    let config = load(
        "[dsn]\nsmart_host = \"old.example.com:25\"\nmx_port = 2525\n\
         [outbound]\nsmart_host = \"new.example.com:25\"\nlifetime_hours = 3\n",
    )
    .unwrap();
    assert_eq!(
        config.outbound.smart_host.as_ref().unwrap().to_string(),
        "new.example.com:25"
    );
    assert_eq!((config.outbound.mx_port, config.outbound.lifetime_hours), (2525, 3));
    assert_eq!(
        warnings(&config),
        [
            "dsn.smart_host: moved to outbound.smart_host, which is also set and wins: this value is not used \
             ([outbound] now carries DSNs and the mails made from incoming SMS)",
            "dsn.mx_port: moved to outbound.mx_port (still read; [outbound] now carries DSNs and the mails made \
             from incoming SMS)",
        ]
    );
    // [outbound] alone: nothing to warn of.
    let config = load("[outbound]\nsmart_host = \"new.example.com:25\"\nmx_port = 2525\n").unwrap();
    assert_eq!(config.outbound.mx_port, 2525);
    assert!(config.warnings().is_empty());
}

#[test]
fn a_bad_outbound_value_is_named_as_written_under_dsn_or_outbound() {
    let found = problems(
        "[dsn]\nsmart_host = \"mail.example.com\"\ntls = \"sometimes\"\ntls_pin_sha256 = [\"00\"]\n\
         lifetime_hours = 0\ntimeout_secs = 0\nmx_port = 0\nsmart_hots = \"x:25\"\n\
         [outbound]\nlifetime_hours = 0\nnameservers = [\"192.0.2.53\", \"dns.example.com\"]\n",
    );
    assert_eq!(
        found,
        sorted([
            "dsn.smart_host: must be host:port, such as \"mail.example.com:25\"",
            // The config crate's words for a bad enum value, as for every such key.
            "dsn.tls: enum OutboundTls does not have variant constructor sometimes",
            "dsn.tls_pin_sha256[0]: must be a SHA-256 fingerprint: 64 hex digits, colons allowed",
            "dsn.lifetime_hours: must be at least 1",
            "dsn.timeout_secs: must be at least 1",
            "dsn.mx_port: must be a port, 1 to 65535",
            "dsn.smart_hots: unknown key (expected one of `from`, `delay_after_secs`, `report_wait_secs`)",
            "outbound.lifetime_hours: must be at least 1",
            "outbound.nameservers[1]: \"dns.example.com\" is not a DNS server address such as 192.0.2.53 or \
             192.0.2.53:5353",
        ])
    );
    assert_eq!(
        problems("[outbound]\nsmart_host = \"mail.example.com\"\ntimeout_secs = 0\nfrom = \"a@b\"\n"),
        sorted([
            "outbound.from: unknown key (expected one of `smart_host`, `tls`, `tls_ca_file`, `tls_pin_sha256`, \
             `retry_delays_secs`, `lifetime_hours`, `timeout_secs`, `nameservers`, `mx_port`)",
            "outbound.smart_host: must be host:port, such as \"mail.example.com:25\"",
            "outbound.timeout_secs: must be at least 1",
        ])
    );
}

#[test]
fn inbound_has_its_defaults() {
    let inbound = load("").unwrap().inbound;
    assert_eq!(inbound.reassembly_timeout_secs, 3600);
    assert_eq!(inbound.reply_window_hours, 168);
    assert_eq!(inbound.default_recipient, None);
    assert_eq!(inbound.ambiguous, Ambiguous::Latest);
    assert_eq!(
        inbound.stop_words.words().collect::<Vec<_>>(),
        [
            "STOP",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "ARRET",
            "STOPP"
        ]
    );
    assert_eq!(inbound.start_words.words().collect::<Vec<_>>(), ["START", "UNSTOP"]);
    assert!(inbound.stop_words.matches(" Stop\n") && !inbound.stop_words.matches("stop it"));
    assert!(inbound.start_words.matches("unstop") && !inbound.start_words.matches("stop"));
    assert_eq!(inbound.stop_reply, "");
    assert_eq!(
        load("[inbound]\ndefault_recipient = \"\"\n")
            .unwrap()
            .inbound
            .default_recipient,
        None
    );
}

#[test]
fn a_full_inbound_section_is_read_into_its_types() {
    let inbound = load(
        "[inbound]\nreassembly_timeout_secs = 60\nreply_window_hours = 24\n\
         default_recipient = \"sms@example.com\"\nambiguous = \"default_recipient\"\n\
         stop_words = [\"Stop\", \"Arrêt\"]\nstart_words = [\" go \"]\nstop_reply = \"You will get no more SMS.\"\n",
    )
    .unwrap()
    .inbound;
    assert_eq!((inbound.reassembly_timeout_secs, inbound.reply_window_hours), (60, 24));
    assert_eq!(inbound.default_recipient.as_deref(), Some("sms@example.com"));
    assert_eq!(inbound.ambiguous, Ambiguous::DefaultRecipient);
    assert_eq!(inbound.stop_words.words().collect::<Vec<_>>(), ["Stop", "Arrêt"]);
    assert!(inbound.stop_words.matches("ARRÊT") && !inbound.stop_words.matches("QUIT"));
    assert_eq!(inbound.start_words.words().collect::<Vec<_>>(), ["go"]);
    assert!(inbound.start_words.matches("GO"));
    assert_eq!(inbound.stop_reply, "You will get no more SMS.");
    // No words at all: nothing opts out or in.
    let none = load("[inbound]\nstop_words = []\nstart_words = []\n").unwrap().inbound;
    assert!(!none.stop_words.matches("STOP") && !none.start_words.matches("START"));
}

#[test]
fn a_bad_inbound_value_is_named_by_its_key() {
    assert_eq!(
        problems(
            "[inbound]\nreassembly_timeout_secs = 0\nreply_window_hours = 0\ndefault_recipient = \"sms\"\n\
             ambiguous = \"oldest\"\nstop_words = [\"STOP\", \"END\", \" \", \"QUIT\", \"\"]\n"
        ),
        sorted([
            "inbound.ambiguous: \"oldest\" is not one of \"latest\", \"default_recipient\"",
            "inbound.default_recipient: must be a mail address such as \"sms@example.com\", or \"\" to keep such \
             SMS in the inbox",
            "inbound.reassembly_timeout_secs: must be at least 1",
            "inbound.reply_window_hours: must be at least 1",
            "inbound.stop_words[2]: must not be empty",
            "inbound.stop_words[4]: must not be empty",
        ])
    );
    assert_eq!(
        problems("[inbound]\nstart_words = [\"STOP\", \"START\", \"end\"]\n"),
        [
            "inbound.start_words[0]: \"STOP\" is also a stop word",
            "inbound.start_words[2]: \"end\" is also a stop word",
        ]
    );
    assert_eq!(
        problems("[inbound]\nstop_words = \"STOP\"\nkeywords = []\n"),
        sorted([
            "inbound.keywords: unknown key (expected one of `reassembly_timeout_secs`, `reply_window_hours`, \
             `default_recipient`, `ambiguous`, `stop_words`, `start_words`, `stop_reply`)",
            "inbound.stop_words: invalid type: string \"STOP\", expected a list of strings",
        ])
    );
}

#[test]
fn inbound_settings_that_turn_a_feature_off_unawares_are_warnings() {
    let config = load("[inbound]\nambiguous = \"default_recipient\"\nstop_words = []\n").unwrap();
    let warnings: Vec<String> = config.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("inbound.ambiguous: \"default_recipient\" while"),
        "{warnings:?}"
    );
    assert!(warnings[1].starts_with("inbound.stop_words: empty"), "{warnings:?}");
    let fine =
        load("[inbound]\nambiguous = \"default_recipient\"\ndefault_recipient = \"desk@example.com\"\n").unwrap();
    assert!(fine.warnings().is_empty());
}
