//! Reads the layered file and environment into the sections of [`Config`], reporting
//! every problem, each named by its key.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

use super::{Config, Outbound, moved, validate};

/// One problem in the configuration, named by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key at fault, such as `smtp.listen[1]` or `peer[0].status_url`.
    pub key: String,
    /// What is wrong with it, or what it must be.
    pub problem: String,
}

impl Problem {
    /// A problem with `key`.
    pub(super) fn new(key: &str, problem: &str) -> Problem {
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

impl ConfigError {
    /// The file at `path` as a whole could not be read (missing, not TOML, ...).
    pub(super) fn whole_file(path: &Path, error: &config::ConfigError) -> ConfigError {
        ConfigError(vec![Problem::new(&path.display().to_string(), &error.to_string())])
    }
}

const SECTIONS: &[&str] = &[
    "instance", "smtp", "sms", "modem", "http", "routing", "peer", "dsn", "outbound", "inbound", "security", "store",
];

/// Reads every section, then validates the whole.
pub(super) fn from_raw(raw: &config::Config) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut tables: HashMap<String, config::Value> = raw.clone().try_deserialize().unwrap_or_default();
    let moved_keys = moved::take_from_dsn(&mut tables);
    for key in tables.keys().filter(|k| !SECTIONS.contains(&k.as_str())) {
        let known = SECTIONS.join(", ");
        problems.push(Problem::new(key, &format!("unknown section (known: {known})")));
    }
    let (instance, smtp, sms) = (
        section(&tables, "instance", &mut problems),
        section(&tables, "smtp", &mut problems),
        section(&tables, "sms", &mut problems),
    );
    let modem = list(&tables, "modem", &mut problems);
    let (http, routing) = (
        section(&tables, "http", &mut problems),
        section(&tables, "routing", &mut problems),
    );
    let peers: Vec<validate::PeerEntry> = list(&tables, "peer", &mut problems);
    // Each read is checked as written, so that a problem names the key the file has,
    // even under [dsn] where [outbound] overrides it.
    let mut outbound: Outbound = section(&tables, "outbound", &mut problems);
    validate::check_outbound(&outbound, "outbound", &mut problems);
    let old: Outbound = section(&moved_keys, "dsn", &mut problems);
    validate::check_outbound(&old, "dsn", &mut problems);
    let moved = moved::merge(&tables, &mut outbound, &moved_keys, &old);
    let mut config = Config {
        instance,
        smtp,
        sms,
        modem,
        http,
        routing,
        peer: Vec::new(),
        dsn: section(&tables, "dsn", &mut problems),
        outbound,
        inbound: section(&tables, "inbound", &mut problems),
        security: section(&tables, "security", &mut problems),
        store: section(&tables, "store", &mut problems),
        moved,
    };
    config.peer = validate::check(&config, &peers, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError(problems))
    }
}

/// Reads one section, reporting every bad key in it: the key at fault is taken out and
/// the rest is read again, so one typo does not hide the next. In a list, each bad
/// element is reported (`trusted_networks[0]`, `trusted_networks[2]`), then the list is
/// taken out as a whole, as any bad key is: what its default implies is not reported on
/// top of it.
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
    // Lists with bad elements: the original indices of the elements taken out so far.
    let mut taken: HashMap<String, Vec<usize>> = HashMap::new();
    loop {
        let value = config::Value::new(None, config::ValueKind::Table(table.clone()));
        match value.try_deserialize::<T>() {
            Ok(section) if taken.is_empty() => return section,
            Ok(_) => {
                for (field, _) in taken.drain() {
                    table.remove(&field);
                }
            }
            Err(error) => {
                let (key, problem) = describe(&error);
                if let Some((field, index)) = key.as_deref().and_then(element) {
                    let mut before = taken.remove(field).unwrap_or_default();
                    if let Some(original) = take_element(&mut table, field, index, &mut before) {
                        problems.push(Problem::new(&format!("{name}.{field}[{original}]"), &problem));
                        taken.insert(field.to_string(), before);
                        continue;
                    }
                }
                let field = key.as_deref().map(|k| k.split(['.', '[']).next().unwrap_or(k));
                if let Some(field) = field.filter(|f| taken.contains_key(*f)) {
                    // A list left empty by its bad elements: already reported.
                    taken.remove(field);
                    table.remove(field);
                    continue;
                }
                let full = key.as_ref().map_or(name.to_string(), |k| format!("{name}.{k}"));
                problems.push(Problem::new(&full, &problem));
                if field.and_then(|f| table.remove(f)).is_none() {
                    return T::default();
                }
            }
        }
    }
}

/// `field[index]`: an element of a list that is a key of the section itself.
fn element(key: &str) -> Option<(&str, usize)> {
    let (field, rest) = key.split_once('[')?;
    let index = rest.strip_suffix(']')?.parse().ok()?;
    (!field.contains('.')).then_some((field, index))
}

/// Takes element `index` out of the list `field`, and returns its index as written:
/// `taken` holds those of the elements taken out before, in order.
fn take_element(
    table: &mut config::Map<String, config::Value>,
    field: &str,
    index: usize,
    taken: &mut Vec<usize>,
) -> Option<usize> {
    let config::ValueKind::Array(items) = &mut table.get_mut(field)?.kind else {
        return None;
    };
    if index >= items.len() {
        return None;
    }
    items.remove(index);
    let original = taken
        .iter()
        .fold(index, |original, &before| original + usize::from(before <= original));
    let at = taken.partition_point(|&before| before < original);
    taken.insert(at, original);
    Some(original)
}

/// Reads `[[name]]` entries, each as a section of its own (`modem[0]`, ...); an entry
/// with a problem is left out.
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
