//! SMTP replies: a code, an enhanced status code (RFC 3463) and words a person understands.

use std::fmt::Write;

/// One SMTP reply, written by `write_to` as one or more lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2).
    pub code: u16,
    /// The enhanced status code (RFC 3463), e.g. "2.1.5"; empty where none is sent (greeting).
    pub status: &'static str,
    /// Words for a person; each line of it becomes one reply line.
    pub text: String,
}

impl Reply {
    /// A reply of `code`, enhanced `status` and `text`.
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status,
            text: text.into(),
        }
    }

    /// A protocol error (bad syntax, bad sequence, unknown command): counts towards the
    /// session's error limit. Refused recipients do not: a mail server sending to many
    /// numbers, some bad, must still get the good ones through.
    pub fn is_protocol_error(&self) -> bool {
        matches!(self.code, 500..=504 | 555)
    }

    /// Appends the reply, one `code-status text` line per line of text (an empty
    /// status, as in greetings, writes `code text`).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut text = String::new();
        let lines: Vec<&str> = self.text.lines().collect();
        let last = lines.len().saturating_sub(1);
        for (index, line) in lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            let status = if self.status.is_empty() {
                String::new()
            } else {
                format!("{} ", self.status)
            };
            let _ = write!(text, "{}{separator}{status}{line}\r\n", self.code);
        }
        out.extend_from_slice(text.as_bytes());
    }
}

/// Replies used in more than one place.
pub fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, "5.5.1", text)
}

/// `502 5.5.1`: a command this server recognises but does not do (e.g. EXPN).
pub fn not_implemented(command: &str) -> Reply {
    Reply::new(502, "5.5.1", format!("{command} is not implemented here"))
}

/// `552 5.3.4`: the message is over `limit` bytes (`smtp.max_message_size`).
pub fn too_big(limit: usize) -> Reply {
    Reply::new(
        552,
        "5.3.4",
        format!("Message too big: this gateway accepts at most {limit} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line() {
        let mut out = Vec::new();
        Reply::new(250, "2.1.5", "Recipient ok").write_to(&mut out);
        Reply::new(214, "2.0.0", "one\ntwo").write_to(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "250 2.1.5 Recipient ok\r\n214-2.0.0 one\r\n214 2.0.0 two\r\n"
        );
    }
}
