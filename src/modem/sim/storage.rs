//! One of the modem's message memories ("SM" for received SMS, "SR" for status reports
//! kept with `AT+CNMI=…,2,…`), numbered from 1.

use std::collections::BTreeMap;

use super::types::{Encoded, Failure};

/// Slots on a typical SIM.
const CAPACITY: u16 = 30;
/// `+CMS ERROR: 321`, invalid memory index.
const INVALID_INDEX: Failure = Failure::Cms(321);

/// `<stat>` of TS 27.005 §3.1 in PDU mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stat {
    Unread = 0,
    Read = 1,
}

#[derive(Debug)]
struct Stored {
    stat: Stat,
    pdu: Encoded,
}

/// One message memory: stored PDUs by index, each read or unread.
#[derive(Debug, Default)]
pub(super) struct Storage {
    slots: BTreeMap<u16, Stored>,
}

impl Storage {
    /// The index it is stored at; None when the store is full and the message is lost.
    pub(super) fn store(&mut self, pdu: Encoded) -> Option<u16> {
        let index = (1..=CAPACITY).find(|i| !self.slots.contains_key(i))?;
        let stat = Stat::Unread;
        self.slots.insert(index, Stored { stat, pdu });
        Some(index)
    }

    /// How many slots it has, numbered from 1.
    pub(super) fn capacity(&self) -> u16 {
        CAPACITY
    }

    /// (messages held, capacity), as `AT+CPMS` reports them.
    pub(super) fn usage(&self) -> (usize, u16) {
        (self.slots.len(), CAPACITY)
    }

    /// `AT+CMGR=<index>`: `+CMGR: <stat>,,<length>` and the PDU; marks it read.
    pub(super) fn read(&mut self, index: u16) -> Result<Vec<String>, Failure> {
        let stored = self.slots.get_mut(&index).ok_or(INVALID_INDEX)?;
        let lines = vec![
            format!("+CMGR: {},,{}", stored.stat as u8, stored.pdu.tpdu_len),
            stored.pdu.hex.clone(),
        ];
        stored.stat = Stat::Read;
        Ok(lines)
    }

    /// `AT+CMGD=<index>,<flag>`: flag 0 deletes `index`, 1–3 every read message, 4 all.
    pub(super) fn delete(&mut self, index: u16, flag: u8) -> Result<(), Failure> {
        match flag {
            0 if (1..=CAPACITY).contains(&index) => {
                self.slots.remove(&index);
            }
            0 => return Err(INVALID_INDEX),
            1..=3 => self.slots.retain(|_, s| s.stat == Stat::Unread),
            4 => self.slots.clear(),
            _ => return Err(Failure::Cms(304)),
        }
        Ok(())
    }

    /// `AT+CMGL=<stat>`: `+CMGL: <index>,<stat>,,<length>` and the PDU of each message
    /// with that stat (4: all); lists mark them read.
    pub(super) fn list(&mut self, stat: u8) -> Result<Vec<String>, Failure> {
        if stat > 4 {
            return Err(Failure::Cms(304));
        }
        let mut lines = Vec::new();
        for (index, stored) in &mut self.slots {
            if stat == 4 || stat == stored.stat as u8 {
                lines.push(format!("+CMGL: {index},{},,{}", stored.stat as u8, stored.pdu.tpdu_len));
                lines.push(stored.pdu.hex.clone());
                stored.stat = Stat::Read;
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdu(hex: &str) -> Encoded {
        Encoded::with_smsc(hex.to_string())
    }

    #[test]
    fn store_read_list_delete() {
        let mut storage = Storage::default();
        assert_eq!(storage.store(pdu("000102")), Some(1));
        assert_eq!(storage.store(pdu("00010203")), Some(2));
        assert_eq!(storage.read(1), Ok(vec!["+CMGR: 0,,2".into(), "000102".into()]));
        assert_eq!(storage.read(1), Ok(vec!["+CMGR: 1,,2".into(), "000102".into()]));
        assert_eq!(storage.list(0), Ok(vec!["+CMGL: 2,0,,3".into(), "00010203".into()]));
        assert_eq!(storage.delete(1, 0), Ok(()));
        assert_eq!(storage.read(1), Err(INVALID_INDEX));
        assert_eq!(storage.store(pdu("00")), Some(1));
        assert_eq!(storage.delete(0, 4), Ok(()));
        assert_eq!(storage.list(4), Ok(vec![]));
        assert_eq!(storage.delete(31, 0), Err(INVALID_INDEX));
    }
}
