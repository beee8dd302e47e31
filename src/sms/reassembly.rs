//! Reassembly of concatenated SMS-DELIVER parts (TS 23.040 §9.2.3.24.1), in bounded memory.
//! Time is whatever monotonic unit the caller passes (seconds, say): nothing here reads a clock.

use std::collections::BTreeMap;

use serde::Serialize;

use super::pdu::{Concat, Deliver};

/// A whole message: every part's text joined in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reassembled {
    /// The sender's number (TP-OA), "+" first when international.
    pub originator: String,
    /// The parts' texts joined in part order.
    pub text: String,
    /// How many parts it came in; 1 when not concatenated.
    pub parts: u8,
}

/// Parts of one message are those with the same originator, reference and count.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    originator: String,
    reference: u16,
    parts: u8,
}

#[derive(Debug)]
struct Group {
    first_seen: u64,
    texts: Vec<Option<String>>,
}

/// Collects parts until a message is complete; keeps at most `max_groups` incomplete
/// messages, none older than `max_age`.
#[derive(Debug)]
pub struct Reassembler {
    max_groups: usize,
    max_age: u64,
    groups: BTreeMap<Key, Group>,
}

impl Reassembler {
    /// A reassembler holding at most `max_groups` incomplete messages, each for at most
    /// `max_age` (in the caller's time unit).
    pub fn new(max_groups: usize, max_age: u64) -> Self {
        Reassembler {
            max_groups,
            max_age,
            groups: BTreeMap::new(),
        }
    }

    /// Adds a received part; returns the message once its last missing part arrives.
    /// A message that is not concatenated comes straight back.
    pub fn push(&mut self, deliver: &Deliver, now: u64) -> Option<Reassembled> {
        let concat = deliver.udh.as_ref().and_then(|h| h.concat);
        self.push_part(&deliver.originator.number, concat, deliver.body.as_str(), now)
    }

    /// `push` for a part known by its fields. A repeated part keeps the first copy.
    pub fn push_part(&mut self, originator: &str, concat: Option<Concat>, text: &str, now: u64) -> Option<Reassembled> {
        self.expire(now);
        let Some(concat) = concat.filter(|c| c.parts > 1) else {
            return Some(Reassembled {
                originator: originator.to_string(),
                text: text.to_string(),
                parts: 1,
            });
        };
        let key = Key {
            originator: originator.to_string(),
            reference: concat.reference,
            parts: concat.parts,
        };
        if !self.groups.contains_key(&key) {
            self.make_room();
            if self.groups.len() >= self.max_groups {
                return None;
            }
        }
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            first_seen: now,
            texts: vec![None; usize::from(concat.parts)],
        });
        let slot = usize::from(concat.part)
            .checked_sub(1)
            .and_then(|i| group.texts.get_mut(i))?;
        slot.get_or_insert_with(|| text.to_string());
        if group.texts.iter().any(Option::is_none) {
            return None;
        }
        let group = self.groups.remove(&key)?;
        let text = group.texts.into_iter().flatten().collect();
        Some(Reassembled {
            originator: key.originator,
            text,
            parts: concat.parts,
        })
    }

    /// Drops incomplete messages older than `max_age`; returns how many went.
    pub fn expire(&mut self, now: u64) -> usize {
        let before = self.groups.len();
        let max_age = self.max_age;
        self.groups.retain(|_, g| now.saturating_sub(g.first_seen) <= max_age);
        before - self.groups.len()
    }

    /// Incomplete messages held.
    pub fn pending(&self) -> usize {
        self.groups.len()
    }

    /// Evicts the oldest incomplete message when the table is full.
    fn make_room(&mut self) {
        if self.groups.len() < self.max_groups || self.groups.is_empty() {
            return;
        }
        let oldest = self
            .groups
            .iter()
            .min_by_key(|(_, g)| g.first_seen)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.groups.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(reference: u16, parts: u8, part: u8) -> Option<Concat> {
        Some(Concat {
            reference,
            parts,
            part,
            wide: false,
        })
    }

    #[test]
    fn parts_in_any_order_with_duplicates() {
        let mut r = Reassembler::new(8, 60);
        assert_eq!(r.push_part("+331", part(7, 3, 3), "C", 0), None);
        assert_eq!(r.push_part("+331", part(7, 3, 1), "A", 1), None);
        assert_eq!(r.push_part("+331", part(7, 3, 1), "X", 2), None);
        // Same reference from another sender is another message.
        assert_eq!(r.push_part("+332", part(7, 3, 2), "b", 2), None);
        let done = r.push_part("+331", part(7, 3, 2), "B", 3).unwrap();
        assert_eq!((done.text.as_str(), done.parts), ("ABC", 3));
        assert_eq!(r.pending(), 1);
    }

    #[test]
    fn single_parts_pass_through() {
        let mut r = Reassembler::new(8, 60);
        let done = r.push_part("Bank", None, "hello", 0).unwrap();
        assert_eq!(
            (done.originator.as_str(), done.text.as_str(), done.parts),
            ("Bank", "hello", 1)
        );
        assert_eq!(r.push_part("x", part(1, 2, 0), "bad part number", 0), None);
    }

    #[test]
    fn memory_is_bounded_by_age_and_count() {
        let mut r = Reassembler::new(2, 10);
        r.push_part("a", part(1, 2, 1), "a1", 0);
        r.push_part("b", part(1, 2, 1), "b1", 5);
        r.push_part("c", part(1, 2, 1), "c1", 6);
        assert_eq!(r.pending(), 2);
        // "a" was evicted as the oldest; its second part starts a new group and evicts "b".
        assert_eq!(r.push_part("a", part(1, 2, 2), "a2", 7), None);
        assert_eq!(
            r.push_part("c", part(1, 2, 2), "c2", 7).map(|m| m.text),
            Some("c1c2".into())
        );
        assert_eq!(r.pending(), 1);
        assert_eq!(r.expire(17), 0);
        assert_eq!(r.expire(18), 1);
        assert_eq!(Reassembler::new(0, 10).push_part("a", part(1, 2, 1), "a1", 0), None);
    }
}
