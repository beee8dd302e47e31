//! How a delivery failed, as the callers act on it.

/// How a delivery failed, as the callers act on it; each carries the whole story in one
/// line, naming the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// Nothing was delivered and the server did not refuse the mail for good: try again
    /// later, or another server.
    #[error("{0}")]
    Temporary(String),
    /// The server refused this mail for good (a 5xx to MAIL, RCPT, DATA or the message).
    #[error("{0}")]
    Permanent(String),
    /// The message and its final dot left, then the connection broke or went silent
    /// before the server answered: it may have taken the mail. Retried like a temporary
    /// failure, so a mail may arrive twice but is never lost.
    #[error("{0}")]
    Unanswered(String),
}

impl OutboundError {
    /// The server refused the mail for good: trying again would not help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, OutboundError::Permanent(_))
    }

    /// The mail went out in full but no answer came: it may have been delivered.
    pub fn is_unanswered(&self) -> bool {
        matches!(self, OutboundError::Unanswered(_))
    }
}
