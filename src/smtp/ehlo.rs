//! EHLO and HELO.

use super::reply::Reply;
use super::session::Session;

impl Session {
    /// The answer to EHLO (`extended`) or HELO: ends any transaction, remembers `host`, and
    /// lists the extensions offered now (STARTTLS before TLS, AUTH where allowed).
    pub(super) fn ehlo(&mut self, host: String, extended: bool) -> Reply {
        self.reset();
        let greeting = format!("{} greets {host}", self.settings.hostname);
        self.helo = Some(host);
        // Greetings carry no enhanced status code (RFC 2034 §3).
        if !extended {
            return Reply::new(250, "", greeting);
        }
        let size = format!("SIZE {}", self.settings.max_message_size);
        let mut lines = vec![
            greeting.as_str(),
            "PIPELINING",
            &size,
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "DSN",
            "CHUNKING",
        ];
        if self.settings.tls_offered && !self.tls {
            lines.push("STARTTLS");
        }
        if self.auth_allowed() {
            lines.push("AUTH PLAIN LOGIN");
        }
        lines.push("HELP");
        Reply::new(250, "", lines.join("\n"))
    }
}
