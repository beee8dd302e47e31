//! Environment overrides: `SMSGW__SECTION__KEY=value` replaces `key` of `[section]`
//! (`SMSGW__SMTP__LISTEN=0.0.0.0:25`); a list is written comma-separated.

use std::path::Path;

/// Keys whose value is a list: from the environment, comma-separated.
const LIST_KEYS: &[&str] = &[
    "smtp.listen",
    "smtp.sms_domains",
    "sms.national_language_tables",
    "sms.retry_delays_secs",
    "routing.retry_delays_secs",
    "outbound.tls_pin_sha256",
    "outbound.retry_delays_secs",
    "outbound.nameservers",
    // Their spellings before [outbound], still read.
    "dsn.tls_pin_sha256",
    "dsn.retry_delays_secs",
    "dsn.nameservers",
    "inbound.stop_words",
    "inbound.start_words",
    "http.users",
    "security.listen_tls",
    "security.trusted_networks",
    "security.allow_prefixes",
    "security.deny_prefixes",
];

const ENV_PREFIX: &str = "SMSGW__";

/// The file at `path` (which must exist) with the environment's overrides over it, not
/// yet read into sections.
pub(super) fn layered(path: &Path) -> Result<config::Config, config::ConfigError> {
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
        builder = builder.set_override(key, items)?;
    }
    builder.build()
}
