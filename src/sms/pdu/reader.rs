//! A cursor over PDU octets whose every read is checked.

use super::PduError;

/// The octets not read yet; each read names the field it reads, for `PduError::Truncated`.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the first octet of `bytes`.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    /// The next octet, left unread.
    pub(super) fn peek(&self, what: &'static str) -> Result<u8, PduError> {
        self.bytes.first().copied().ok_or(PduError::Truncated(what))
    }

    /// Reads one octet.
    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, PduError> {
        let (&first, rest) = self.bytes.split_first().ok_or(PduError::Truncated(what))?;
        self.bytes = rest;
        Ok(first)
    }

    /// Reads the next `n` octets.
    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PduError> {
        let (taken, rest) = self.bytes.split_at_checked(n).ok_or(PduError::Truncated(what))?;
        self.bytes = rest;
        Ok(taken)
    }

    /// How many octets are left.
    pub(super) fn remaining(&self) -> usize {
        self.bytes.len()
    }
}
