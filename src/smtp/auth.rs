//! AUTH PLAIN and LOGIN (RFC 4954, 4616): the dialogue; the password check itself runs
//! in the connection loop, off the async runtime ([`Step::Authenticate`]).

use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use smtp_proto::{AUTH_LOGIN, AUTH_PLAIN};

use super::reply::{self, Reply};
use super::session::Session;
use super::state::{AuthStage, SessionState, Step, command_state};
use crate::users::User;

/// What the client answers when asked for its user name and password (base64).
const USERNAME: &str = "VXNlcm5hbWU6";
const PASSWORD: &str = "UGFzc3dvcmQ6";

impl Session {
    /// AUTH may be offered: over TLS, on a loopback-only listener, or if configured.
    pub(super) fn auth_allowed(&self) -> bool {
        self.tls || self.loopback_listener || self.policy.allow_plaintext_auth
    }

    /// `AUTH <mechanism> [initial-response]`: refused, or the dialogue begins.
    pub(super) fn auth(&mut self, mechanism: u64, initial: String, out: &mut Vec<u8>) -> Option<Step> {
        let refusal = if self.user.is_some() {
            Some(reply::bad_sequence("Already authenticated"))
        } else if self.transaction.is_some() {
            Some(reply::bad_sequence("AUTH is not allowed during a mail transaction"))
        } else if !self.auth_allowed() {
            Some(Reply::new(538, "5.7.11", "Encryption required: STARTTLS first"))
        } else if let Some(left) = self.policy.auth_locked(self.client.ip(), Instant::now()) {
            let text = format!(
                "Too many failed authentications from your address: try again in {} s",
                left.as_secs() + 1
            );
            Some(Reply::new(454, "4.7.0", text))
        } else if mechanism != AUTH_PLAIN && mechanism != AUTH_LOGIN {
            Some(Reply::new(504, "5.5.4", "Unsupported mechanism: use PLAIN or LOGIN"))
        } else {
            None
        };
        // Refused AUTH counts as an error: a client trying again and again while locked
        // out, or without TLS, is not sending mail.
        if let Some(reply) = refusal {
            return self.refuse(reply, out);
        }
        match (mechanism == AUTH_PLAIN, initial.as_str()) {
            (true, "") => self.challenge(AuthStage::PlainResponse, "", out),
            (true, response) => self.auth_line(AuthStage::PlainResponse, response, out),
            (false, "") => self.challenge(AuthStage::LoginUser, USERNAME, out),
            (false, user) => self.auth_line(AuthStage::LoginUser, user, out),
        }
    }

    fn challenge(&mut self, stage: AuthStage, text: &str, out: &mut Vec<u8>) -> Option<Step> {
        out.extend_from_slice(format!("334 {text}\r\n").as_bytes());
        self.state = SessionState::Auth(stage, Default::default());
        None
    }

    /// One base64 line of the dialogue (or `*` to cancel).
    pub(super) fn auth_line(&mut self, stage: AuthStage, line: &str, out: &mut Vec<u8>) -> Option<Step> {
        self.state = command_state();
        if line == "*" {
            return self.respond(Reply::new(501, "5.0.0", "Authentication cancelled"), out);
        }
        let decoded = match (line, BASE64.decode(line.trim())) {
            ("=", _) => Vec::new(),
            (_, Ok(bytes)) => bytes,
            (_, Err(_)) => return self.respond(Reply::new(501, "5.5.2", "Invalid base64"), out),
        };
        let text = String::from_utf8_lossy(&decoded).into_owned();
        match stage {
            AuthStage::PlainResponse => {
                // authzid NUL authcid NUL password (RFC 4616)
                let mut fields = text.split('\0');
                match (fields.next(), fields.next(), fields.next(), fields.next()) {
                    (Some(_), Some(user), Some(password), None) if !user.is_empty() => Some(Step::Authenticate {
                        user: user.to_string(),
                        password: password.to_string(),
                    }),
                    _ => self.respond(Reply::new(501, "5.5.2", "Malformed PLAIN response"), out),
                }
            }
            AuthStage::LoginUser => self.challenge(AuthStage::LoginPassword { user: text }, PASSWORD, out),
            AuthStage::LoginPassword { user } => Some(Step::Authenticate { user, password: text }),
        }
    }

    /// After `Step::Authenticate`: the user if the password matched.
    pub fn authenticated(&mut self, name: &str, user: Option<User>, out: &mut Vec<u8>) -> Option<Step> {
        let ip = self.client.ip();
        match user {
            Some(user) => {
                tracing::info!(client = %self.client, user = name, "authenticated");
                self.policy.auth_succeeded(ip);
                self.user = Some((name.to_string(), user));
                self.auth_failures = 0;
                self.respond(Reply::new(235, "2.7.0", "Authentication successful"), out)
            }
            None => {
                self.auth_failures = self.policy.auth_failed(ip, Instant::now());
                tracing::warn!(client = %self.client, user = name, failures = self.auth_failures, "authentication failed");
                // An error, as any refused AUTH: guessing passwords on one connection ends.
                self.refuse(Reply::new(535, "5.7.8", "Authentication credentials invalid"), out)
            }
        }
    }
}
