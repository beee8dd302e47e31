//! A cursor over PDU octets whose every read is checked.

use super::PduError;

pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes }
    }

    pub(super) fn peek(&self, what: &'static str) -> Result<u8, PduError> {
        self.bytes.first().copied().ok_or(PduError::Truncated(what))
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8, PduError> {
        let (&first, rest) = self.bytes.split_first().ok_or(PduError::Truncated(what))?;
        self.bytes = rest;
        Ok(first)
    }

    pub(super) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PduError> {
        let (taken, rest) = self.bytes.split_at_checked(n).ok_or(PduError::Truncated(what))?;
        self.bytes = rest;
        Ok(taken)
    }

    pub(super) fn remaining(&self) -> usize {
        self.bytes.len()
    }
}
