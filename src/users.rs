//! SMTP AUTH users: a TOML file of argon2 password hashes, written by `smsgw user add`.
//!
//! ```toml
//! [users.alice]
//! password = "$argon2id$v=19$..."
//! senders = ["alice@example.com", "@example.com"]   # optional: allowed MAIL FROM
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

/// Why the users file could not be read, written or changed.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file (its path) could not be read or written.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The file (its path) is not valid TOML of the expected shape (why).
    #[error("{0}: {1}")]
    Syntax(String, String),
    /// argon2 could not hash the new password.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// A new user name that is empty or has characters other than letters, digits and
    /// `. _ - @`.
    #[error("user names are letters, digits and . _ - @ (got {0:?})")]
    BadName(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    users: BTreeMap<String, User>,
}

/// One user of the file: a password hash and the senders it may use.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    password: String,
    /// Addresses (or `@domain`) this user may give as MAIL FROM; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub senders: Vec<String>,
}

impl User {
    /// Whether this user may give `sender` as MAIL FROM: any when `senders` is empty, else
    /// one listed address or one under a listed `@domain`, ignoring ASCII case.
    pub fn may_send_as(&self, sender: &str) -> bool {
        let sender = sender.to_ascii_lowercase();
        self.senders.is_empty()
            || self.senders.iter().map(|s| s.to_ascii_lowercase()).any(|allowed| {
                if allowed.starts_with('@') {
                    sender.ends_with(&allowed)
                } else {
                    sender == allowed
                }
            })
    }
}

/// The users, as read from the file.
#[derive(Debug, Clone, Default)]
pub struct Users {
    users: BTreeMap<String, User>,
}

impl Users {
    /// Reads the file; a missing file means no users (AUTH then always fails).
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        Ok(Users {
            users: read(path)?.users,
        })
    }

    /// The user if the password matches. Slow on purpose (argon2): call it off the
    /// async runtime. An unknown name costs the same time as a wrong password.
    pub fn verify(&self, name: &str, password: &str) -> Option<&User> {
        let user = self.users.get(name);
        let hash = user.map_or(DUMMY_HASH, |u| u.password.as_str());
        let parsed = PasswordHash::new(hash).ok()?;
        let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        user.filter(|_| matches)
    }
}

/// The hash of a password nobody has, checked for unknown names to keep timing even.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c21zZ3ctZHVtbXktc2FsdA$W7qyd2aBe1kpVXspbyk+Rez2AuVSvPf1sdUsMBiahOw";

fn read(path: &Path) -> Result<File, UsersError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| UsersError::Syntax(shown, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(UsersError::Io(shown, e)),
    }
}

/// Writes the whole file anew (owner-only), through a temporary file and a rename.
fn write(path: &Path, file: &File) -> Result<(), UsersError> {
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display().to_string();
    let text = toml::to_string(file).map_err(|e| UsersError::Syntax(shown.clone(), e.to_string()))?;
    let temporary = path.with_extension("toml.new");
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| UsersError::Io(temporary.display().to_string(), e))?;
    out.write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(|e| UsersError::Io(shown.clone(), e))?;
    std::fs::rename(&temporary, path).map_err(|e| UsersError::Io(shown, e))
}

/// Adds or replaces a user.
pub fn add(path: &Path, name: &str, password: &str, senders: Vec<String>) -> Result<(), UsersError> {
    let valid = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || ".-_@".contains(c));
    if !valid {
        return Err(UsersError::BadName(name.to_string()));
    }
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| UsersError::Hash(e.to_string()))?;
    let mut file = read(path)?;
    file.users.insert(
        name.to_string(),
        User {
            password: hash.to_string(),
            senders,
        },
    );
    write(path, &file)
}

/// Removes a user; false if there was none of that name.
pub fn remove(path: &Path, name: &str) -> Result<bool, UsersError> {
    let mut file = read(path)?;
    let removed = file.users.remove(name).is_some();
    if removed {
        write(path, &file)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_match_addresses_and_domains() {
        let user = User {
            password: String::new(),
            senders: vec!["alice@example.com".into(), "@corp.example".into()],
        };
        assert!(user.may_send_as("Alice@Example.com"));
        assert!(user.may_send_as("bob@corp.example"));
        assert!(!user.may_send_as("mallory@example.org"));
        assert!(!user.may_send_as("x@notcorp.example.com"));
        let anyone = User {
            password: String::new(),
            senders: Vec::new(),
        };
        assert!(anyone.may_send_as("whoever@example.net"));
    }

    #[test]
    fn the_dummy_hash_parses() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
