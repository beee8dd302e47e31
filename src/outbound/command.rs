//! The commands the client writes (RFC 5321 §4.1, RFC 3207, RFC 4954, RFC 6152): each
//! displays as its line, without the CRLF.

use std::fmt;

use base64::Engine;

use super::response::Severity;

/// One command line, as the client sends it. Not `Debug`: AUTH carries a password.
pub enum Command<'a> {
    /// `EHLO`, with our host name.
    Ehlo(&'a str),
    /// `HELO`, for a server that knows no EHLO.
    Helo(&'a str),
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH PLAIN` with the initial response (RFC 4954, RFC 4616).
    AuthPlain {
        /// The user name.
        user: &'a str,
        /// The password, sent base64-encoded only: the channel must be private.
        password: &'a str,
    },
    /// `MAIL FROM`.
    Mail {
        /// The envelope sender; "" for the null sender.
        from: &'a str,
        /// Adds `BODY=8BITMIME` (RFC 6152): the message is not all ASCII.
        eight_bit: bool,
        /// Further ESMTP parameters (RFC 3461's RET and ENVID), each with its leading
        /// space, already encoded.
        params: &'a str,
    },
    /// `RCPT TO`.
    Rcpt {
        /// The envelope recipient.
        to: &'a str,
        /// ESMTP parameters (RFC 3461's NOTIFY and ORCPT), each with its leading space,
        /// already encoded.
        params: &'a str,
    },
    /// `DATA`: the message follows once the server says 354.
    Data,
    /// `RSET`: abandons a transaction.
    Rset,
    /// `NOOP`: is the server still there?
    Noop,
    /// `QUIT`.
    Quit,
}

impl Command<'_> {
    /// The kind of answer that lets the conversation go on: 354 for DATA, 2xx otherwise.
    pub fn expects(&self) -> Severity {
        match self {
            Command::Data => Severity::PositiveIntermediate,
            _ => Severity::PositiveCompletion,
        }
    }

    /// The command as an error message names it: the verb, never a password.
    pub fn name(&self) -> String {
        match self {
            Command::AuthPlain { .. } => "AUTH".to_string(),
            Command::Mail { .. } => "MAIL FROM".to_string(),
            Command::Rcpt { .. } => "RCPT TO".to_string(),
            other => other.to_string(),
        }
    }

    /// The line on the wire, CRLF included.
    pub fn line(&self) -> String {
        format!("{self}\r\n")
    }
}

impl fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Ehlo(name) => write!(f, "EHLO {name}"),
            Command::Helo(name) => write!(f, "HELO {name}"),
            Command::StartTls => f.write_str("STARTTLS"),
            Command::AuthPlain { user, password } => {
                // No authorization identity: the server derives it from the user.
                let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
                write!(f, "AUTH PLAIN {token}")
            }
            Command::Mail {
                from,
                eight_bit,
                params,
            } => {
                let body = if *eight_bit { " BODY=8BITMIME" } else { "" };
                write!(f, "MAIL FROM:<{from}>{body}{params}")
            }
            Command::Rcpt { to, params } => write!(f, "RCPT TO:<{to}>{params}"),
            Command::Data => f.write_str("DATA"),
            Command::Rset => f.write_str("RSET"),
            Command::Noop => f.write_str("NOOP"),
            Command::Quit => f.write_str("QUIT"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_display_as_their_line() {
        let table = [
            (
                Command::Ehlo("gw.example.com"),
                "EHLO gw.example.com",
                "EHLO gw.example.com",
            ),
            (
                Command::Helo("gw.example.com"),
                "HELO gw.example.com",
                "HELO gw.example.com",
            ),
            (Command::StartTls, "STARTTLS", "STARTTLS"),
            (
                Command::AuthPlain {
                    user: "user",
                    password: "pass",
                },
                "AUTH PLAIN AHVzZXIAcGFzcw==",
                "AUTH",
            ),
            (
                Command::Mail {
                    from: "",
                    eight_bit: false,
                    params: "",
                },
                "MAIL FROM:<>",
                "MAIL FROM",
            ),
            (
                Command::Mail {
                    from: "alice@example.com",
                    eight_bit: true,
                    params: " RET=HDRS ENVID=QQ+201",
                },
                "MAIL FROM:<alice@example.com> BODY=8BITMIME RET=HDRS ENVID=QQ+201",
                "MAIL FROM",
            ),
            (
                Command::Rcpt {
                    to: "+33477858589@sms",
                    params: " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;paul@example.com",
                },
                "RCPT TO:<+33477858589@sms> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;paul@example.com",
                "RCPT TO",
            ),
            (Command::Data, "DATA", "DATA"),
            (Command::Rset, "RSET", "RSET"),
            (Command::Noop, "NOOP", "NOOP"),
            (Command::Quit, "QUIT", "QUIT"),
        ];
        for (command, line, name) in table {
            assert_eq!(command.to_string(), line);
            assert_eq!(command.line(), format!("{line}\r\n"));
            assert_eq!(command.name(), name);
        }
    }

    #[test]
    fn only_data_waits_for_a_354() {
        assert_eq!(Command::Data.expects(), Severity::PositiveIntermediate);
        assert_eq!(Command::Rset.expects(), Severity::PositiveCompletion);
        assert_eq!(Command::StartTls.expects(), Severity::PositiveCompletion);
    }

    #[test]
    fn auth_plain_encodes_any_byte_of_the_credentials() {
        // "\0a@b\0p é": base64 of the UTF-8 bytes, NULs as separators.
        let command = Command::AuthPlain {
            user: "a@b",
            password: "p é",
        };
        assert_eq!(command.to_string(), "AUTH PLAIN AGFAYgBwIMOp");
    }
}
