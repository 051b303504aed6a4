//! The in-flight window of one bind: requests we sent and still await a
//! response for, keyed by sequence number, each with its own response
//! deadline, the requests that timed out recently (for late responses),
//! plus the sequence-number generator.
//!
//! Pure: no clock, no I/O. `now` and deadlines are passed in. A full window is
//! a value ([`InsertError::Blocked`]), never a wait (STYLE habit 9): the caller
//! keeps the work at the head of its queue and tries again after a response.
//!
//! Order matters when a bind drops: [`Window::drain`] hands entries back in
//! the order they were sent, so the outbox can re-queue them without
//! reordering a conversation.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Instant;

/// The largest sequence number SMPP allows (SMPP 3.4 §3.2: 0x00000001 to
/// 0x7FFFFFFF).
pub const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;

/// Why [`Window::try_insert`] refused an entry. The payload is handed back so
/// nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InsertError<T> {
    /// The window already holds `capacity` requests: wait for a response.
    #[error("window full")]
    Blocked(T),
    /// The sequence number is already in flight (caller bug: take numbers
    /// from [`SequenceGen::next_free`]).
    #[error("sequence number already in flight")]
    SeqInUse(T),
}

impl<T> InsertError<T> {
    /// The payload that was not inserted.
    pub fn into_inner(self) -> T {
        match self {
            InsertError::Blocked(t) | InsertError::SeqInUse(t) => t,
        }
    }
}

/// One in-flight request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry<T> {
    payload: T,
    deadline: Instant,
    /// Insertion counter: the send order, used by `drain`.
    order: u64,
}

/// In-flight requests keyed by sequence number, at most `capacity` of them.
///
/// Every operation is O(log n); the deadline index makes
/// [`Window::earliest_deadline`] cheap enough to call after every event.
#[derive(Debug, Clone)]
pub struct Window<T> {
    /// Maximum number of outstanding requests (carrier setting, ≥ 1).
    capacity: usize,
    /// The requests themselves.
    entries: HashMap<u32, Entry<T>>,
    /// (deadline, send order, seq): the timeout order.
    by_deadline: BTreeSet<(Instant, u64, u32)>,
    /// Next insertion counter.
    next_order: u64,
}

impl<T> Window<T> {
    /// An empty window for at most `capacity` requests. A capacity of 0 is
    /// raised to 1 so the bind can still make progress.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Window {
            capacity,
            // A huge configured window should not allocate up front.
            entries: HashMap::with_capacity(capacity.min(1024)),
            by_deadline: BTreeSet::new(),
            next_order: 0,
        }
    }

    /// Maximum number of outstanding requests.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of outstanding requests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No request outstanding.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// No room for another request.
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.capacity
    }

    /// Whether `seq` is in flight.
    pub fn contains(&self, seq: u32) -> bool {
        self.entries.contains_key(&seq)
    }

    /// The payload of an in-flight request.
    pub fn get(&self, seq: u32) -> Option<&T> {
        self.entries.get(&seq).map(|e| &e.payload)
    }

    /// The response deadline of an in-flight request.
    pub fn deadline(&self, seq: u32) -> Option<Instant> {
        self.entries.get(&seq).map(|e| e.deadline)
    }

    /// Records a request sent with `seq`, to be answered by `deadline`.
    ///
    /// # Errors
    /// [`InsertError::Blocked`] when the window is full, and
    /// [`InsertError::SeqInUse`] when `seq` is already in flight; both hand
    /// the payload back.
    pub fn try_insert(
        &mut self,
        seq: u32,
        payload: T,
        deadline: Instant,
    ) -> Result<(), InsertError<T>> {
        if self.entries.contains_key(&seq) {
            return Err(InsertError::SeqInUse(payload));
        }
        if self.is_full() {
            return Err(InsertError::Blocked(payload));
        }
        let order = self.next_order;
        self.next_order += 1;
        self.by_deadline.insert((deadline, order, seq));
        self.entries.insert(
            seq,
            Entry {
                payload,
                deadline,
                order,
            },
        );
        Ok(())
    }

    /// Takes the request answered by `seq` out of the window; `None` for an
    /// unknown (or already timed-out) sequence number.
    pub fn remove(&mut self, seq: u32) -> Option<T> {
        let entry = self.entries.remove(&seq)?;
        self.by_deadline.remove(&(entry.deadline, entry.order, seq));
        Some(entry.payload)
    }

    /// The earliest response deadline, for the `Response` timer.
    pub fn earliest_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|&(d, _, _)| d)
    }

    /// Removes and returns every request whose deadline is at or before
    /// `now`, earliest deadline first: their outcome is unknown.
    pub fn expired(&mut self, now: Instant) -> Vec<(u32, T)> {
        let mut out = Vec::new();
        while let Some(&(deadline, order, seq)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.remove(&(deadline, order, seq));
            if let Some(entry) = self.entries.remove(&seq) {
                out.push((seq, entry.payload));
            }
        }
        out
    }

    /// Empties the window (the bind dropped) and hands every request back in
    /// the order it was sent.
    pub fn drain(&mut self) -> Vec<(u32, T)> {
        let mut all: BTreeMap<u64, (u32, T)> = BTreeMap::new();
        for (seq, e) in self.entries.drain() {
            all.insert(e.order, (seq, e.payload));
        }
        self.by_deadline.clear();
        all.into_values().collect()
    }
}

/// How many timed-out requests a session remembers for late responses,
/// for a window of `window`: four windows' worth, at least 16. The link
/// keeps as many timed-out parts, so both forget the same ones.
pub fn late_memory(window: usize) -> usize {
    window.max(1).saturating_mul(4).max(16)
}

/// Requests whose response timed out, remembered by sequence number so a
/// response that arrives late is still matched to its request. Bounded:
/// past `capacity` the oldest is forgotten. No clock: what is kept is
/// decided by count alone.
#[derive(Debug, Clone)]
pub struct TimedOut<T> {
    capacity: usize,
    /// seq → (insertion counter, payload).
    entries: HashMap<u32, (u64, T)>,
    /// (insertion counter, seq), oldest first; may hold stale pairs of
    /// entries taken out since (skipped when evicting).
    order: VecDeque<(u64, u32)>,
    next: u64,
}

impl<T> TimedOut<T> {
    /// An empty memory for at most `capacity` requests (0: remembers none).
    pub fn new(capacity: usize) -> Self {
        TimedOut {
            capacity,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }

    /// Requests remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `seq` is remembered.
    pub fn contains(&self, seq: u32) -> bool {
        self.entries.contains_key(&seq)
    }

    /// Remembers the request of `seq`, forgetting the oldest past the
    /// capacity.
    pub fn remember(&mut self, seq: u32, payload: T) {
        if self.capacity == 0 {
            return;
        }
        let n = self.next;
        self.next += 1;
        self.entries.insert(seq, (n, payload));
        self.order.push_back((n, seq));
        while self.entries.len() > self.capacity {
            let Some((n, seq)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&seq).is_some_and(|(m, _)| *m == n) {
                self.entries.remove(&seq);
            }
        }
        // Stale pairs never outnumber the live ones by much.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let entries = &self.entries;
            self.order
                .retain(|(n, seq)| entries.get(seq).is_some_and(|(m, _)| m == n));
        }
    }

    /// Takes the request of `seq` out (its late response arrived).
    pub fn take(&mut self, seq: u32) -> Option<T> {
        self.entries.remove(&seq).map(|(_, p)| p)
    }

    /// Takes the request of `seq` out if `answers` says the response
    /// belongs to it; otherwise it stays remembered.
    pub fn take_if(&mut self, seq: u32, answers: impl FnOnce(&T) -> bool) -> Option<T> {
        if self.entries.get(&seq).is_some_and(|(_, p)| answers(p)) {
            self.take(seq)
        } else {
            None
        }
    }

    /// Forgets everything (the session closed).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

/// Generates outgoing sequence numbers: 1, 2, …, 0x7FFFFFFF, then 1 again
/// (never 0, never above [`MAX_SEQUENCE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceGen {
    /// The number the next call returns.
    next: u32,
}

impl Default for SequenceGen {
    fn default() -> Self {
        SequenceGen::new()
    }
}

impl SequenceGen {
    /// A generator starting at 1.
    pub fn new() -> Self {
        SequenceGen { next: 1 }
    }

    /// A generator whose first number is `first` (out-of-range values start
    /// at 1). Tests use this to reach the wrap quickly.
    pub fn starting_at(first: u32) -> Self {
        let next = if (1..=MAX_SEQUENCE).contains(&first) {
            first
        } else {
            1
        };
        SequenceGen { next }
    }

    /// The next number in 1..=0x7FFFFFFF, wrapping to 1.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u32 {
        let seq = self.next;
        self.next = if seq >= MAX_SEQUENCE { 1 } else { seq + 1 };
        seq
    }

    /// The next number not currently in `window`. Terminates because the
    /// window holds far fewer than 0x7FFFFFFF entries.
    pub fn next_free<T>(&mut self, window: &Window<T>) -> u32 {
        loop {
            let seq = self.next();
            if !window.contains(seq) {
                return seq;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn base() -> Instant {
        crate::clock::now()
    }

    #[test]
    fn full_window_is_blocked_and_hands_payload_back() {
        let t0 = base();
        let mut w = Window::new(2);
        w.try_insert(1, "a", t0).unwrap();
        w.try_insert(2, "b", t0).unwrap();
        assert!(w.is_full());
        assert_eq!(w.try_insert(3, "c", t0), Err(InsertError::Blocked("c")));
        assert_eq!(w.remove(1), Some("a"));
        w.try_insert(3, "c", t0).unwrap();
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn rejects_sequence_already_in_flight() {
        let t0 = base();
        let mut w = Window::new(4);
        w.try_insert(7, 1, t0).unwrap();
        assert_eq!(w.try_insert(7, 2, t0), Err(InsertError::SeqInUse(2)));
        assert_eq!(w.get(7), Some(&1));
    }

    #[test]
    fn zero_capacity_is_raised_to_one() {
        let mut w = Window::new(0);
        assert_eq!(w.capacity(), 1);
        w.try_insert(1, (), base()).unwrap();
        assert!(w.is_full());
    }

    #[test]
    fn unknown_or_answered_sequence_removes_nothing() {
        let t0 = base();
        let mut w = Window::new(4);
        w.try_insert(1, 'x', t0).unwrap();
        assert_eq!(w.remove(99), None);
        assert_eq!(w.remove(1), Some('x'));
        assert_eq!(w.remove(1), None);
        assert!(w.is_empty());
        assert_eq!(w.earliest_deadline(), None);
    }

    #[test]
    fn expired_returns_timed_out_entries_earliest_first() {
        let t0 = base();
        let s = Duration::from_secs(1);
        let mut w = Window::new(8);
        w.try_insert(1, "late", t0 + 5 * s).unwrap();
        w.try_insert(2, "first", t0 + s).unwrap();
        w.try_insert(3, "second", t0 + 2 * s).unwrap();
        assert_eq!(w.earliest_deadline(), Some(t0 + s));
        assert!(w.expired(t0).is_empty());
        assert_eq!(w.expired(t0 + 2 * s), vec![(2, "first"), (3, "second")]);
        assert_eq!(w.earliest_deadline(), Some(t0 + 5 * s));
        assert_eq!(w.len(), 1);
        assert!(w.contains(1));
    }

    #[test]
    fn removed_entry_no_longer_times_out() {
        let t0 = base();
        let mut w = Window::new(2);
        w.try_insert(1, (), t0).unwrap();
        w.remove(1);
        assert!(w.expired(t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn drain_hands_back_everything_in_send_order() {
        let t0 = base();
        let mut w = Window::new(8);
        // Sequence numbers out of numeric order (after a wrap) and deadlines
        // out of send order.
        w.try_insert(MAX_SEQUENCE, "m1", t0 + Duration::from_secs(9))
            .unwrap();
        w.try_insert(1, "m2", t0 + Duration::from_secs(1)).unwrap();
        w.try_insert(2, "m3", t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(w.drain(), vec![(MAX_SEQUENCE, "m1"), (1, "m2"), (2, "m3")]);
        assert!(w.is_empty());
        assert_eq!(w.earliest_deadline(), None);
    }

    proptest::proptest! {
        /// Random inserts, removes and expiries against a simple model:
        /// never more than `capacity` entries, nothing lost or invented.
        #[test]
        fn window_matches_a_simple_model(
            cap in 1usize..8,
            ops in proptest::collection::vec((0u8..4, 0u32..12, 0u64..50), 0..200),
        ) {
            let t0 = crate::clock::now();
            let mut w = Window::new(cap);
            let mut model: std::collections::BTreeMap<u32, (u64, u32)> = Default::default();
            let mut now = 0u64;
            for (i, (op, seq, d)) in ops.into_iter().enumerate() {
                let i = i as u32;
                match op {
                    0 | 1 => {
                        let r = w.try_insert(seq, i, t0 + Duration::from_millis(now + d));
                        if model.contains_key(&seq) {
                            proptest::prop_assert_eq!(r, Err(InsertError::SeqInUse(i)));
                        } else if model.len() >= cap {
                            proptest::prop_assert_eq!(r, Err(InsertError::Blocked(i)));
                        } else {
                            proptest::prop_assert_eq!(r, Ok(()));
                            model.insert(seq, (now + d, i));
                        }
                    }
                    2 => {
                        proptest::prop_assert_eq!(w.remove(seq), model.remove(&seq).map(|(_, p)| p));
                    }
                    _ => {
                        now += d;
                        let mut got: Vec<u32> = w
                            .expired(t0 + Duration::from_millis(now))
                            .into_iter()
                            .map(|(s, _)| s)
                            .collect();
                        let mut want: Vec<u32> =
                            model.iter().filter(|(_, (dl, _))| *dl <= now).map(|(s, _)| *s).collect();
                        model.retain(|_, (dl, _)| *dl > now);
                        got.sort();
                        want.sort();
                        proptest::prop_assert_eq!(got, want);
                    }
                }
                proptest::prop_assert!(w.len() <= cap);
                proptest::prop_assert_eq!(w.len(), model.len());
                let earliest = model.values().map(|(dl, _)| *dl).min();
                proptest::prop_assert_eq!(
                    w.earliest_deadline(),
                    earliest.map(|ms| t0 + Duration::from_millis(ms))
                );
            }
            let drained: Vec<u32> = w.drain().into_iter().map(|(_, p)| p).collect();
            let mut sorted = drained.clone();
            sorted.sort();
            // Payloads are the op index, so send order is ascending.
            proptest::prop_assert_eq!(drained, sorted);
        }
    }

    #[test]
    fn sequence_starts_at_one_and_wraps_after_max() {
        let mut g = SequenceGen::new();
        assert_eq!(g.next(), 1);
        assert_eq!(g.next(), 2);
        let mut g = SequenceGen::starting_at(MAX_SEQUENCE - 1);
        assert_eq!(g.next(), MAX_SEQUENCE - 1);
        assert_eq!(g.next(), MAX_SEQUENCE);
        assert_eq!(g.next(), 1);
    }

    #[test]
    fn sequence_never_yields_zero_or_out_of_range_start() {
        assert_eq!(SequenceGen::starting_at(0).next(), 1);
        assert_eq!(SequenceGen::starting_at(0x8000_0000).next(), 1);
        assert_eq!(SequenceGen::starting_at(u32::MAX).next(), 1);
    }

    #[test]
    fn timed_out_memory_forgets_the_oldest_past_its_capacity() {
        let mut m = TimedOut::new(2);
        m.remember(1, "a");
        m.remember(2, "b");
        assert_eq!(m.take(1), Some("a"));
        m.remember(3, "c");
        m.remember(4, "d");
        assert_eq!(m.len(), 2);
        assert!(!m.contains(2), "the oldest went");
        assert_eq!(m.take_if(3, |p| *p == "x"), None);
        assert_eq!(m.take_if(3, |p| *p == "c"), Some("c"));
        assert_eq!(m.take(3), None, "taken once");
        // Many remembers and takes keep the order queue bounded.
        for seq in 10..1000 {
            m.remember(seq, "e");
            if seq % 2 == 0 {
                m.take(seq);
            }
        }
        assert!(m.len() <= 2);
        assert!(m.order.len() <= 4);
        let mut none = TimedOut::new(0);
        none.remember(1, ());
        assert!(none.is_empty());
    }

    #[test]
    fn late_memory_is_four_windows_and_at_least_sixteen() {
        assert_eq!(late_memory(0), 16);
        assert_eq!(late_memory(10), 40);
    }

    #[test]
    fn next_free_skips_numbers_still_in_window_across_wrap() {
        let t0 = base();
        let mut w = Window::new(4);
        w.try_insert(1, (), t0).unwrap();
        w.try_insert(2, (), t0).unwrap();
        let mut g = SequenceGen::starting_at(MAX_SEQUENCE);
        assert_eq!(g.next_free(&w), MAX_SEQUENCE);
        assert_eq!(g.next_free(&w), 3);
    }
}
