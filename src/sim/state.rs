//! State shared by the simulator's connections: the scenario, the seeded
//! PRNG, counters, the bounded record of received submits and the bounded
//! queue of deliveries (receipts and MOs) waiting for a receiving bind.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::pdus::ReceivedSubmit;
use super::scenario::{Rng, Scenario};
use crate::pdu::CommandStatus;
use crate::session::machine::{Authenticator, BindParams, McConfig, SessionConfig, SubmitRequest};
use crate::session::state::BindKind;

/// Locks a mutex, recovering the data if a holder panicked (counters and
/// queues stay usable; nothing here leaves them half-updated).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counters, as a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// TCP/TLS connections accepted.
    pub connections: u64,
    /// Binds accepted.
    pub binds: u64,
    /// Binds refused (credentials, bind limit, forced refusal).
    pub binds_refused: u64,
    /// Binds up now.
    pub active_binds: u64,
    /// submit_sm/data_sm received.
    pub submits: u64,
    /// Answered ESME_ROK.
    pub accepted: u64,
    /// Answered ESME_RTHROTTLED.
    pub throttled: u64,
    /// Answered ESME_RMSGQFUL.
    pub queue_full: u64,
    /// Connections dropped on purpose (`drop_every`).
    pub drops: u64,
    /// Garbage PDUs sent.
    pub garbage_sent: u64,
    /// Receipt deliver_sm sent (re-sends included).
    pub receipts_sent: u64,
    /// Receipts acknowledged with ESME_ROK.
    pub receipts_acked: u64,
    /// Receipts lost because the delivery queue was full.
    pub receipts_dropped: u64,
    /// MO deliver_sm sent (re-sends included).
    pub mos_sent: u64,
    /// MO parts acknowledged with ESME_ROK.
    pub mos_acked: u64,
    /// Deliveries sent again (unacknowledged when their bind dropped,
    /// timed out, or refused by the ESME).
    pub redelivered: u64,
    /// deliver_sm answered with an error status by the ESME.
    pub deliveries_refused: u64,
    /// Deliveries waiting for a receiving bind (or their delay).
    pub queued: u64,
    /// Responses matching nothing sent (the answers to garbage among them).
    pub unexpected_responses: u64,
    /// Requests the machine rejected (wrong state, bad body).
    pub rejected: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) binds: AtomicU64,
    pub(crate) binds_refused: AtomicU64,
    pub(crate) submits: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) queue_full: AtomicU64,
    pub(crate) drops: AtomicU64,
    pub(crate) garbage_sent: AtomicU64,
    pub(crate) receipts_sent: AtomicU64,
    pub(crate) receipts_acked: AtomicU64,
    pub(crate) receipts_dropped: AtomicU64,
    pub(crate) mos_sent: AtomicU64,
    pub(crate) mos_acked: AtomicU64,
    pub(crate) redelivered: AtomicU64,
    pub(crate) deliveries_refused: AtomicU64,
    pub(crate) unexpected_responses: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A receipt or an MO part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutKind {
    Receipt,
    Mo,
}

/// One deliver_sm waiting for (or travelling on) a receiving bind.
#[derive(Debug, Clone)]
pub(crate) struct OutItem {
    /// The PDU; its tag identifies the item.
    pub(crate) req: SubmitRequest,
    pub(crate) kind: OutKind,
    /// Not before this instant (receipt delay, retry after a refusal).
    pub(crate) due: Instant,
    /// How often it went out already.
    pub(crate) sends: u32,
}

/// The bounded delivery queue: in order (a re-send goes back to the head),
/// each item going out once due.
#[derive(Debug)]
pub(crate) struct Outbound {
    queue: VecDeque<OutItem>,
    /// How many queued items are due at each instant, so the next due
    /// instant is not a walk over the whole queue (a backlog of receipts
    /// made every delivery cost a pass over all of them).
    dues: BTreeMap<Instant, u32>,
    capacity: usize,
    /// Receipts whose submit_sm_resp waits until they went out
    /// (`receipt_before_response`).
    pub(crate) awaited: HashSet<u64>,
}

impl Outbound {
    pub(crate) fn new(capacity: usize) -> Self {
        Outbound {
            queue: VecDeque::new(),
            dues: BTreeMap::new(),
            capacity: capacity.max(1),
            awaited: HashSet::new(),
        }
    }

    /// Appends; hands the item back when the queue is full.
    pub(crate) fn push(&mut self, item: OutItem) -> Result<(), OutItem> {
        if self.queue.len() >= self.capacity {
            return Err(item);
        }
        *self.dues.entry(item.due).or_default() += 1;
        self.queue.push_back(item);
        Ok(())
    }

    /// Puts an item back at the head (a re-send keeps its place). Never
    /// refused: it was in the queue before, so the bound holds up to the
    /// number of items in flight.
    pub(crate) fn push_front(&mut self, item: OutItem) {
        *self.dues.entry(item.due).or_default() += 1;
        self.queue.push_front(item);
    }

    /// Takes the first item (in queue order) that is due. The walk stops
    /// at it: only items queued ahead of it that are not due yet (re-sends
    /// waiting out a refusal, receipts behind a delay) are passed over.
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<OutItem> {
        if self.next_due().is_none_or(|d| d > now) {
            return None;
        }
        let i = self.queue.iter().position(|x| x.due <= now)?;
        let item = self.queue.remove(i)?;
        if let Some(n) = self.dues.get_mut(&item.due) {
            *n -= 1;
            if *n == 0 {
                self.dues.remove(&item.due);
            }
        }
        Some(item)
    }

    /// When the next item becomes due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.dues.keys().next().copied()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// How many more items fit.
    pub(crate) fn room(&self) -> usize {
        self.capacity.saturating_sub(self.queue.len())
    }
}

/// The bounded record of received submits.
#[derive(Debug)]
pub(crate) struct Records {
    items: VecDeque<ReceivedSubmit>,
    capacity: usize,
    next_index: u64,
}

impl Records {
    pub(crate) fn new(capacity: usize) -> Self {
        Records {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            next_index: 1,
        }
    }

    /// Appends, dropping the oldest beyond the capacity; returns the index.
    pub(crate) fn push(&mut self, mut r: ReceivedSubmit) -> u64 {
        r.index = self.next_index;
        self.next_index += 1;
        if self.items.len() >= self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(r);
        self.next_index - 1
    }

    pub(crate) fn get_mut(&mut self, index: u64) -> Option<&mut ReceivedSubmit> {
        let first = self.items.front()?.index;
        let i = usize::try_from(index.checked_sub(first)?).ok()?;
        self.items.get_mut(i)
    }

    /// Records with an index above `since`.
    pub(crate) fn since(&self, since: u64) -> Vec<ReceivedSubmit> {
        self.items
            .iter()
            .filter(|r| r.index > since)
            .cloned()
            .collect()
    }
}

/// What never changes while the simulator runs.
#[derive(Debug, Clone)]
pub(crate) struct Fixed {
    pub(crate) system_id: String,
    pub(crate) password: String,
    pub(crate) smsc_id: String,
    pub(crate) window: usize,
    pub(crate) first_message_id: u64,
}

/// Everything the connections share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) fixed: Fixed,
    pub(crate) scenario: Mutex<Scenario>,
    pub(crate) rng: Mutex<Rng>,
    pub(crate) counters: Counters,
    pub(crate) records: Mutex<Records>,
    pub(crate) outbound: Mutex<Outbound>,
    /// Bumped whenever deliveries were queued or an awaited receipt went
    /// out; receiving connections watch it.
    pub(crate) wake: watch::Sender<u64>,
    pub(crate) active_binds: AtomicUsize,
    next_tag: AtomicU64,
    next_message: AtomicU64,
    next_reference: AtomicU64,
    next_bind: AtomicU64,
}

impl Shared {
    pub(crate) fn new(
        fixed: Fixed,
        scenario: Scenario,
        seed: u64,
        record_capacity: usize,
        queue_capacity: usize,
    ) -> Arc<Self> {
        Arc::new(Shared {
            next_message: AtomicU64::new(fixed.first_message_id),
            fixed,
            scenario: Mutex::new(scenario),
            rng: Mutex::new(Rng::new(seed)),
            counters: Counters::default(),
            records: Mutex::new(Records::new(record_capacity)),
            outbound: Mutex::new(Outbound::new(queue_capacity)),
            wake: watch::channel(0).0,
            active_binds: AtomicUsize::new(0),
            next_tag: AtomicU64::new(1),
            next_reference: AtomicU64::new(1),
            next_bind: AtomicU64::new(1),
        })
    }

    pub(crate) fn wake(&self) {
        self.wake.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn next_tag(&self) -> u64 {
        self.next_tag.fetch_add(1, Ordering::Relaxed)
    }

    /// Reserves `n` consecutive tags; returns the first.
    pub(crate) fn next_tags(&self, n: u64) -> u64 {
        self.next_tag.fetch_add(n, Ordering::Relaxed)
    }

    pub(crate) fn next_bind(&self) -> u64 {
        self.next_bind.fetch_add(1, Ordering::Relaxed)
    }

    /// The next concatenation reference (8 bits, never 0).
    pub(crate) fn next_reference(&self) -> u8 {
        let n = self.next_reference.fetch_add(1, Ordering::Relaxed);
        (n % 255) as u8 + 1
    }

    /// The next message id, as a number.
    pub(crate) fn next_message_number(&self) -> u64 {
        self.next_message.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn scenario(&self) -> Scenario {
        lock(&self.scenario).clone()
    }

    pub(crate) fn stats(&self) -> SimStats {
        let c = &self.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimStats {
            connections: g(&c.connections),
            binds: g(&c.binds),
            binds_refused: g(&c.binds_refused),
            active_binds: self.active_binds.load(Ordering::Relaxed) as u64,
            submits: g(&c.submits),
            accepted: g(&c.accepted),
            throttled: g(&c.throttled),
            queue_full: g(&c.queue_full),
            drops: g(&c.drops),
            garbage_sent: g(&c.garbage_sent),
            receipts_sent: g(&c.receipts_sent),
            receipts_acked: g(&c.receipts_acked),
            receipts_dropped: g(&c.receipts_dropped),
            mos_sent: g(&c.mos_sent),
            mos_acked: g(&c.mos_acked),
            redelivered: g(&c.redelivered),
            deliveries_refused: g(&c.deliveries_refused),
            queued: lock(&self.outbound).len() as u64,
            unexpected_responses: g(&c.unexpected_responses),
            rejected: g(&c.rejected),
        }
    }

    /// The session configuration of an accepted connection.
    pub(crate) fn session_config(&self) -> SessionConfig {
        let mut c = SessionConfig::new(BindParams::new(
            BindKind::Transceiver,
            self.fixed.smsc_id.clone(),
            String::new(),
        ));
        c.window = self.fixed.window.max(1);
        c.response_timeout = std::time::Duration::from_secs(30);
        c.unbind_timeout = std::time::Duration::from_secs(2);
        c.drain_timeout = std::time::Duration::from_secs(2);
        c
    }

    /// The MC side: credentials, the bind limit and forced refusals. The
    /// simulator answers submits itself (manual mode).
    pub(crate) fn mc_config(self: &Arc<Self>) -> McConfig {
        let shared = Arc::clone(self);
        let authenticate: Authenticator = Box::new(move |a| {
            let status = shared.check_bind(a.system_id, a.password);
            if status != CommandStatus::ROK {
                bump(&shared.counters.binds_refused);
            }
            status
        });
        McConfig {
            authenticate,
            message_ids: Box::new(String::new),
            auto_answer: false,
        }
    }

    fn check_bind(&self, system_id: &[u8], password: &[u8]) -> CommandStatus {
        let sc = lock(&self.scenario);
        if let Some(s) = sc.refuse_binds {
            return CommandStatus(s);
        }
        if system_id != self.fixed.system_id.as_bytes() {
            return CommandStatus::RINVSYSID;
        }
        if password != self.fixed.password.as_bytes() {
            return CommandStatus::RINVPASWD;
        }
        let max = sc.max_binds;
        let taken = self
            .active_binds
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => CommandStatus::ROK,
            Err(_) => CommandStatus::RALYBND,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock;
    use crate::pdu::Pdu;

    fn item(tag: u64, due: Instant) -> OutItem {
        OutItem {
            req: SubmitRequest::new(tag, &Pdu::EnquireLink),
            kind: OutKind::Receipt,
            due,
            sends: 0,
        }
    }

    fn tags(out: &mut Outbound, now: Instant) -> Vec<u64> {
        std::iter::from_fn(|| out.take_due(now))
            .map(|i| i.req.tag)
            .collect()
    }

    #[test]
    fn the_delivery_queue_hands_out_due_items_in_queue_order_and_knows_the_next_due() {
        let t0 = clock::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut out = Outbound::new(10);
        assert_eq!(out.next_due(), None);
        // Receipts behind a delay, two due at the same instant.
        for (tag, due) in [(1, 50), (2, 50), (3, 60)] {
            out.push(item(tag, ms(due))).unwrap();
        }
        // A refused re-send goes back to the head, due later than the rest.
        out.push_front(item(9, ms(100)));
        assert_eq!(out.next_due(), Some(ms(50)));
        assert_eq!(out.take_due(ms(49)).map(|i| i.req.tag), None);
        // Due ones in their order; the refused one is passed over.
        assert_eq!(tags(&mut out, ms(55)), vec![1, 2]);
        assert_eq!(out.next_due(), Some(ms(60)));
        assert_eq!(tags(&mut out, ms(60)), vec![3]);
        assert_eq!(out.next_due(), Some(ms(100)));
        assert_eq!(out.len(), 1);
        assert_eq!(tags(&mut out, ms(100)), vec![9]);
        assert_eq!(out.next_due(), None);
        assert_eq!(out.room(), 10);
    }

    #[test]
    fn the_delivery_queue_refuses_past_its_bound_and_a_refused_item_leaves_no_due_behind() {
        let t0 = clock::now();
        let mut out = Outbound::new(1);
        out.push(item(1, t0 + Duration::from_millis(5))).unwrap();
        let back = out.push(item(2, t0)).unwrap_err();
        assert_eq!(back.req.tag, 2);
        // Item 2 was never queued: nothing is due at t0.
        assert_eq!(out.next_due(), Some(t0 + Duration::from_millis(5)));
        assert!(out.take_due(t0).is_none());
    }
}
