//! Inbound concatenated messages: parts collected per
//! (source, destination, reference, total), assembled in any order once
//! every part is there, duplicates ignored, and handed out incomplete after
//! a timeout. Plain data (serde), so the store can persist each
//! [`PartialMessage`] before the part is acked; time is passed in.
//!
//! One [`Reassembler`] per carrier account: the carrier is not in the key.
//! Known limit: a duplicate of a part that arrives after its message was
//! completed starts a new partial (it expires as incomplete); the shell
//! de-duplicates repeated deliveries by content.

use std::collections::BTreeMap;

use super::udh::ConcatInfo;

/// What identifies one concatenated message.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct PartKey {
    /// source_addr as received (the customer).
    pub source: String,
    /// destination_addr as received (the service number).
    pub destination: String,
    /// Concatenation reference.
    pub reference: u16,
    /// Number of parts.
    pub total: u8,
}

/// Parts received so far of one message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartialMessage {
    /// Which message.
    pub key: PartKey,
    /// When the first part arrived (ms, from the shell's clock).
    pub first_seen_ms: u64,
    /// Decoded text by part number (1-based).
    pub parts: BTreeMap<u8, String>,
}

/// What adding a part did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AddOutcome {
    /// Every part is here: the whole text, in part order.
    Complete(String),
    /// Stored; more parts are expected.
    Pending,
    /// That part number was already here; ignored (first copy kept).
    Duplicate,
    /// The part number is 0 or above the total; ignored.
    Invalid,
}

/// A message handed out before all its parts arrived.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Incomplete {
    /// Which message.
    pub key: PartKey,
    /// What arrived, joined in part order.
    pub text: String,
    /// Part numbers that never came.
    pub missing: Vec<u8>,
    /// When the first part arrived.
    pub first_seen_ms: u64,
}

impl PartialMessage {
    /// An empty partial message first seen at `now_ms`.
    pub fn new(key: PartKey, now_ms: u64) -> Self {
        PartialMessage {
            key,
            first_seen_ms: now_ms,
            parts: BTreeMap::new(),
        }
    }

    /// Adds part `seq`.
    pub fn add(&mut self, seq: u8, text: String) -> AddOutcome {
        if seq == 0 || seq > self.key.total {
            return AddOutcome::Invalid;
        }
        if self.parts.contains_key(&seq) {
            return AddOutcome::Duplicate;
        }
        self.parts.insert(seq, text);
        if self.is_complete() {
            AddOutcome::Complete(self.joined())
        } else {
            AddOutcome::Pending
        }
    }

    /// Whether every part 1..=total is here.
    pub fn is_complete(&self) -> bool {
        self.parts.len() == usize::from(self.key.total)
    }

    /// Part numbers still missing.
    pub fn missing(&self) -> Vec<u8> {
        (1..=self.key.total)
            .filter(|s| !self.parts.contains_key(s))
            .collect()
    }

    /// What arrived, joined in part order.
    pub fn joined(&self) -> String {
        self.parts.values().map(String::as_str).collect()
    }

    /// Whether `timeout_ms` has passed since the first part.
    pub fn is_expired(&self, now_ms: u64, timeout_ms: u64) -> bool {
        now_ms.saturating_sub(self.first_seen_ms) >= timeout_ms
    }

    fn into_incomplete(self) -> Incomplete {
        Incomplete {
            text: self.joined(),
            missing: self.missing(),
            first_seen_ms: self.first_seen_ms,
            key: self.key,
        }
    }
}

/// The set of partial messages of one carrier account, bounded.
#[derive(Debug, Clone)]
pub struct Reassembler {
    pending: BTreeMap<PartKey, PartialMessage>,
    max_pending: usize,
    evicted: Vec<Incomplete>,
}

impl Reassembler {
    /// At most `max_pending` partial messages are kept (at least 1); when a
    /// new one would exceed that, the oldest is handed out incomplete by the
    /// next [`Reassembler::expired`].
    pub fn new(max_pending: usize) -> Self {
        Reassembler {
            pending: BTreeMap::new(),
            max_pending: max_pending.max(1),
            evicted: Vec::new(),
        }
    }

    /// Puts back a partial message loaded from the store.
    pub fn restore(&mut self, partial: PartialMessage) {
        self.pending.insert(partial.key.clone(), partial);
    }

    /// The partial messages held (for persisting).
    pub fn pending(&self) -> impl Iterator<Item = &PartialMessage> {
        self.pending.values()
    }

    /// The partial message for `key`, if any (persist it after an add).
    pub fn get(&self, key: &PartKey) -> Option<&PartialMessage> {
        self.pending.get(key)
    }

    /// Adds one decoded part. On `Complete`, the partial is removed.
    pub fn add(
        &mut self,
        source: &str,
        destination: &str,
        concat: ConcatInfo,
        text: String,
        now_ms: u64,
    ) -> AddOutcome {
        let key = PartKey {
            source: source.to_owned(),
            destination: destination.to_owned(),
            reference: concat.reference,
            total: concat.total,
        };
        if concat.seq == 0 || concat.seq > concat.total {
            return AddOutcome::Invalid;
        }
        if !self.pending.contains_key(&key) && self.pending.len() >= self.max_pending {
            let oldest = self
                .pending
                .values()
                .min_by_key(|p| p.first_seen_ms)
                .map(|p| p.key.clone());
            if let Some(p) = oldest.and_then(|k| self.pending.remove(&k)) {
                self.evicted.push(p.into_incomplete());
            }
        }
        let entry = self
            .pending
            .entry(key.clone())
            .or_insert_with(|| PartialMessage::new(key.clone(), now_ms));
        let out = entry.add(concat.seq, text);
        if matches!(out, AddOutcome::Complete(_)) {
            self.pending.remove(&key);
        }
        out
    }

    /// Removes and returns the messages whose first part is `timeout_ms` or
    /// more old, plus any evicted for room, marked incomplete.
    pub fn expired(&mut self, now_ms: u64, timeout_ms: u64) -> Vec<Incomplete> {
        let mut out = std::mem::take(&mut self.evicted);
        let old: Vec<PartKey> = self
            .pending
            .values()
            .filter(|p| p.is_expired(now_ms, timeout_ms))
            .map(|p| p.key.clone())
            .collect();
        for k in old {
            if let Some(p) = self.pending.remove(&k) {
                out.push(p.into_incomplete());
            }
        }
        out
    }

    /// Number of partial messages held.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no partial message is held.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(r: u16, t: u8, s: u8) -> ConcatInfo {
        ConcatInfo {
            reference: r,
            total: t,
            seq: s,
        }
    }

    #[test]
    fn assembles_out_of_order_and_ignores_duplicates() {
        let mut r = Reassembler::new(8);
        let (a, b) = ("447911123456", "819012345678");
        assert_eq!(r.add(a, b, c(7, 3, 3), "c".into(), 0), AddOutcome::Pending);
        assert_eq!(r.add(a, b, c(7, 3, 1), "a".into(), 1), AddOutcome::Pending);
        assert_eq!(
            r.add(a, b, c(7, 3, 1), "x".into(), 2),
            AddOutcome::Duplicate
        );
        assert_eq!(
            r.add(a, b, c(7, 3, 2), "b".into(), 3),
            AddOutcome::Complete("abc".into())
        );
        assert!(r.is_empty());
    }

    #[test]
    fn key_includes_source_and_destination() {
        let mut r = Reassembler::new(8);
        assert_eq!(
            r.add("1", "9", c(7, 2, 1), "a".into(), 0),
            AddOutcome::Pending
        );
        assert_eq!(
            r.add("2", "9", c(7, 2, 2), "b".into(), 0),
            AddOutcome::Pending
        );
        assert_eq!(
            r.add("1", "8", c(7, 2, 2), "b".into(), 0),
            AddOutcome::Pending
        );
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn expired_hands_out_what_arrived() {
        let mut r = Reassembler::new(8);
        r.add("1", "9", c(7, 3, 2), "b".into(), 1000);
        assert!(r.expired(1000 + 299_999, 300_000).is_empty());
        let e = r.expired(1000 + 300_000, 300_000);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].text, "b");
        assert_eq!(e[0].missing, vec![1, 3]);
        assert!(r.is_empty());
    }

    #[test]
    fn oldest_is_evicted_when_full() {
        let mut r = Reassembler::new(1);
        r.add("1", "9", c(1, 2, 1), "a".into(), 5);
        r.add("2", "9", c(1, 2, 1), "b".into(), 6);
        assert_eq!(r.len(), 1);
        let e = r.expired(6, 1_000_000);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].key.source, "1");
    }

    #[test]
    fn rejects_invalid_part_numbers() {
        let mut r = Reassembler::new(8);
        assert_eq!(
            r.add("1", "9", c(1, 2, 3), "a".into(), 0),
            AddOutcome::Invalid
        );
        assert_eq!(
            r.add("1", "9", c(1, 2, 0), "a".into(), 0),
            AddOutcome::Invalid
        );
        assert!(r.is_empty());
    }

    #[test]
    fn partial_message_survives_json() {
        let mut p = PartialMessage::new(
            PartKey {
                source: "1".into(),
                destination: "2".into(),
                reference: 3,
                total: 2,
            },
            9,
        );
        p.add(2, "@x".into());
        let back: PartialMessage =
            serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
