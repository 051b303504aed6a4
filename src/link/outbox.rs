//! The send path of one bound session: claim work from the durable outbox,
//! plan each text into submit_sm parts, submit the parts of one message back
//! to back within the window and the throttle, record every
//! `submit_sm_resp`, and hand back what a dropped bind left unanswered.
//!
//! Also the session's event loop: `deliver_sm`s go to the receive path
//! ([`super::inbound`]) over a bounded queue.
//!
//! # Rules kept here
//! - A full window or a throttle pause is a value ([`Blocked`]): the part
//!   stays at the head and is submitted after [`Event::WindowOpen`]. A part
//!   answered ESME_RTHROTTLED / ESME_RMSGQFUL is sent again on this bind
//!   after the pause, before anything else: never dropped, never reordered.
//! - Order per conversation: a message is not started while an earlier
//!   message of the same conversation on this bind is still unanswered.
//! - Every part asks for a receipt (`registered_delivery` 1).
//! - A non-zero status is judged by the carrier's
//!   [`CarrierConfig::status_action`]: temporary → the part is retried on this
//!   bind after a delay (a few times, then the message goes back to the
//!   outbox); permanent → the message fails; rebind → the bind is rebuilt
//!   and the message goes back to the outbox.
//! - A part whose response timed out, or was in flight when the bind
//!   ended, has an unknown outcome: once nothing else of its message is in
//!   flight, the message goes back flagged as a possible duplicate and
//!   counted (`release_unanswered` with the carrier's `max_resubmits`; past
//!   it the store ends the message `unknown` instead of sending it again).
//!   After a response timeout it stays leased for the carrier's
//!   `resubmit_delay` first, so a late response can still record it sent;
//!   after a dropped bind it is free at once.
//!   Messages that went out in part with every outcome known go back
//!   flagged but not counted (`release_sent`); messages that never went
//!   out go back plain (`release`).
//! - A response that arrives after its timeout ([`Event::LateSubmitResp`])
//!   is handled like a timely one while its message is still here with
//!   that part unknown. Once the message went back (or was given up), an
//!   accepted answer is still recorded (`record_submit`): the carrier id
//!   is indexed so the receipt correlates, and if that answers every part
//!   the message leaves the outbox and is not sent again (a copy claimed
//!   again meanwhile sends nothing more). A late refusal of a message that
//!   went back changes nothing: its resend decides.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::{CarrierConfig, Config, SenderType, ServiceConfig, StatusAction};
use crate::model::{ConversationId, MessageId};
use crate::pdu::{CommandStatus, Pdu, SmBody, Tlv, TlvTag, Tlvs};
use crate::session::driver::{Command, HandleError, SessionHandle};
use crate::session::machine::{Blocked, DeliverToken, Event, SubmitRequest};
use crate::session::status::Outcome;
use crate::session::window::late_memory;
use crate::store::{
    OutboxItem, Store, StoreResult, SubmitFailure, SubmitOutcome, SubmitRecord, Unanswered,
};
use crate::text::{self, PlanError, PlanOptions};

use super::inbound;
use super::pool::{BindSlot, BindState, LinkOptions, receives, transmits};

/// `ESME_RINVMSGLEN`: recorded when a stored text can no longer be planned
/// (e.g. `max_parts` lowered since it was accepted).
const LOCAL_PLAN_FAILURE: u32 = 0x01;

// === planning and building submits (pure) ===

/// The planner options of a service on a carrier.
pub fn plan_options(carrier: &CarrierConfig, service: Option<&ServiceConfig>) -> PlanOptions {
    match service {
        Some(s) => carrier.plan_options(s),
        // A message whose service left the config: the carrier's settings
        // with the planner's default part limit.
        None => PlanOptions {
            dcs0: carrier.data_coding0,
            allow_latin1: carrier.allow_latin1,
            allow_ia5: carrier.allow_ia5,
            at_as_ucs2: carrier.at_as_ucs2,
            transliterate: false,
            concat: carrier.concat,
            max_parts: text::plan::DEFAULT_MAX_PARTS,
        },
    }
}

/// The sender type of a sender string when no service names it: digits only
/// is a long number, anything else alphanumeric.
fn guess_sender_type(sender: &str) -> SenderType {
    if !sender.is_empty()
        && sender
            .trim_start_matches('+')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        SenderType::Long
    } else {
        SenderType::Alphanumeric
    }
}

/// A number as the wire wants it: digits without `+` or a leading `00`.
pub fn wire_number(n: &str) -> &str {
    let n = n.trim();
    match n.strip_prefix('+') {
        Some(rest) => rest,
        None => n.strip_prefix("00").filter(|r| !r.is_empty()).unwrap_or(n),
    }
}

/// The submit_sm requests of one outbox item: the text planned with the
/// service's and carrier's options and `reference` as concatenation
/// reference; part `i` is tagged `first_tag + i`. Source address and TON/NPI
/// from the service's sender type and the carrier's overrides; destination
/// digits without `+`, TON/NPI from the carrier (1/1 by default);
/// `registered_delivery` 1 on every part; data_coding from the plan; UDHI,
/// SAR TLVs or `message_payload` as the plan says.
///
/// # Errors
/// The text no longer fits the service's limits.
pub fn build_submits(
    item: &OutboxItem,
    service: Option<&ServiceConfig>,
    carrier: &CarrierConfig,
    reference: u16,
    first_tag: u64,
) -> Result<Vec<SubmitRequest>, PlanError> {
    let plan = text::plan(&item.text, &plan_options(carrier, service), reference)?;
    let sender_type = service.map_or_else(|| guess_sender_type(&item.sender), |s| s.sender_type);
    let (src_ton, src_npi) = carrier.source_ton_npi(sender_type);
    let source = match sender_type {
        SenderType::Alphanumeric => item.sender.as_str(),
        _ => wire_number(&item.sender),
    };
    let dest = wire_number(&item.customer);
    let mut out = Vec::with_capacity(plan.parts.len());
    for (i, part) in plan.parts.iter().enumerate() {
        let ref_bytes;
        let total;
        let seq;
        let mut tlvs: Vec<Tlv<'_>> = Vec::new();
        if let Some(sar) = part.sar {
            ref_bytes = sar.reference.to_be_bytes();
            total = [sar.total];
            seq = [sar.seq];
            tlvs.push(Tlv::new(TlvTag::SAR_MSG_REF_NUM, &ref_bytes));
            tlvs.push(Tlv::new(TlvTag::SAR_TOTAL_SEGMENTS, &total));
            tlvs.push(Tlv::new(TlvTag::SAR_SEGMENT_SEQNUM, &seq));
        }
        let (short_message, payload): (&[u8], Option<&[u8]>) = if part.payload {
            (&[], Some(&part.short_message))
        } else {
            (&part.short_message, None)
        };
        if let Some(p) = payload {
            tlvs.push(Tlv::new(TlvTag::MESSAGE_PAYLOAD, p));
        }
        let body = SmBody {
            source_addr_ton: src_ton,
            source_addr_npi: src_npi,
            source_addr: source.as_bytes(),
            dest_addr_ton: carrier.dest_ton,
            dest_addr_npi: carrier.dest_npi,
            destination_addr: dest.as_bytes(),
            esm_class: if plan.esm_udhi { 0x40 } else { 0x00 },
            registered_delivery: 0x01,
            data_coding: plan.data_coding,
            short_message,
            tlvs: Tlvs::from_list(&tlvs),
            ..SmBody::default()
        };
        out.push(SubmitRequest::new(
            first_tag + i as u64,
            &Pdu::SubmitSm(body),
        ));
    }
    Ok(out)
}

// === the pump (which part goes next; pure apart from the clock values passed in) ===

/// Where one part stands on this bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not sent yet.
    Unsent,
    /// Sent, response pending.
    InFlight,
    /// Refused for now: send again at (or after) this instant.
    Waiting(Instant),
    /// Sent, then no response before its timeout, or the bind dropped: the
    /// outcome is unknown (a late response may still tell).
    Unknown,
    /// Answered (or given up on).
    Done,
}

#[derive(Debug)]
struct PartSlot {
    req: SubmitRequest,
    slot: Slot,
    /// Temporary refusals so far.
    tries: u32,
}

#[derive(Debug)]
struct Msg {
    item: OutboxItem,
    parts: Vec<PartSlot>,
    /// No more parts go out (failed for good, handed back, draining),
    /// whatever late responses say. A part with an unknown outcome stops
    /// the message too, but only while it is unknown.
    halted: bool,
    /// With `halted`: hand it back to the outbox once nothing is in flight.
    give_back: bool,
    /// A part went out whose outcome is accepted or unknown: handing it
    /// back must flag a possible duplicate.
    touched: bool,
    /// Parts answered whose store record has not returned yet: the message
    /// is neither handed back nor forgotten until it has.
    unrecorded: usize,
    /// A part's response timed out on a bind still up, so a late response
    /// may yet come: handed back, it waits the carrier's
    /// `resubmit_delay` before going again.
    timed_out: bool,
    /// Messages of the same conversation ahead of it in the pump: none of
    /// its parts goes out before they have all left.
    behind: usize,
}

impl Msg {
    fn in_flight(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| p.slot == Slot::InFlight)
            .count()
    }

    fn has_unknown(&self) -> bool {
        self.parts.iter().any(|p| p.slot == Slot::Unknown)
    }

    /// No part of it may go out now.
    fn stopped(&self) -> bool {
        self.halted || self.has_unknown()
    }

    fn total(&self) -> u8 {
        u8::try_from(self.parts.len()).unwrap_or(u8::MAX)
    }
}

/// What to do with a message leaving the pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handback {
    /// `release`: it never went out.
    Release(MessageId),
    /// `release_sent`: parts went out, every outcome known.
    Sent(MessageId),
    /// `release_unanswered`: a part's outcome is unknown (counted against
    /// the carrier's `max_resubmits`): the bind dropped with it in flight.
    Unknown(MessageId),
    /// As `Unknown`, after a response timeout on a bind still up: sent
    /// again only after the carrier's `resubmit_delay`, in case a late
    /// response tells it went.
    TimedOut(MessageId),
}

/// A part whose response timed out, remembered so a late response can
/// still be recorded once the message has left the pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LatePart {
    /// The message.
    pub(crate) message: MessageId,
    /// Part index, 0-based.
    pub(crate) part: usize,
    /// Parts the message went out in.
    pub(crate) total: u8,
    /// When the message was accepted (ms).
    pub(crate) accepted_ms: u64,
}

/// The messages a bind works on, in claim order.
#[derive(Debug, Default)]
pub(crate) struct Pump {
    msgs: VecDeque<Msg>,
    /// Per conversation, how many of `msgs` are of it.
    conversations: HashMap<ConversationId, usize>,
    /// tag → (message, part index).
    tags: HashMap<u64, (MessageId, usize)>,
    next_tag: u64,
    /// Timed-out parts by tag, oldest first, at most `late_capacity`.
    late: VecDeque<(u64, LatePart)>,
    /// How many timed-out parts are remembered (the session machine's
    /// [`late_memory`] for this window; 0 until set).
    late_capacity: usize,
    /// [`Pump::drain`] was called: the bind ends once its window is empty,
    /// so no late response will come and nothing waits to go again.
    draining: bool,
}

impl Pump {
    /// A pump remembering the last `late_capacity` timed-out parts.
    pub(crate) fn new(late_capacity: usize) -> Self {
        Pump {
            late_capacity,
            ..Pump::default()
        }
    }

    /// Messages held.
    pub(crate) fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Parts in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.msgs.iter().map(Msg::in_flight).sum()
    }

    /// The next free tag range of `n` tags.
    pub(crate) fn tags(&mut self, n: usize) -> u64 {
        let t = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(n as u64 + 1);
        t
    }

    /// Adds a planned message.
    pub(crate) fn push(&mut self, item: OutboxItem, reqs: Vec<SubmitRequest>) {
        for (i, r) in reqs.iter().enumerate() {
            self.tags.insert(r.tag, (item.message, i));
        }
        let held = self.conversations.entry(item.conversation).or_default();
        let behind = *held;
        *held += 1;
        self.msgs.push_back(Msg {
            item,
            parts: reqs
                .into_iter()
                .map(|req| PartSlot {
                    req,
                    slot: Slot::Unsent,
                    tries: 0,
                })
                .collect(),
            halted: false,
            give_back: false,
            touched: false,
            unrecorded: 0,
            timed_out: false,
            behind,
        });
    }

    fn msg_mut(&mut self, id: MessageId) -> Option<&mut Msg> {
        self.msgs.iter_mut().find(|m| m.item.message == id)
    }

    /// The next part to submit at `now`: a retry that is due first, then
    /// the first unsent part of the oldest message whose conversation has
    /// no earlier message still here.
    pub(crate) fn next(&self, now: Instant) -> Option<(MessageId, usize, SubmitRequest)> {
        for m in self.msgs.iter().filter(|m| !m.stopped()) {
            for (i, p) in m.parts.iter().enumerate() {
                if matches!(p.slot, Slot::Waiting(at) if at <= now) {
                    return Some((m.item.message, i, p.req.clone()));
                }
            }
        }
        for m in self.msgs.iter().filter(|m| m.behind == 0 && !m.stopped()) {
            if let Some(i) = m.parts.iter().position(|p| p.slot == Slot::Unsent) {
                return Some((m.item.message, i, m.parts[i].req.clone()));
            }
        }
        None
    }

    /// The earliest retry that is not due yet.
    pub(crate) fn next_retry(&self) -> Option<Instant> {
        self.msgs
            .iter()
            .filter(|m| !m.stopped())
            .flat_map(|m| &m.parts)
            .filter_map(|p| match p.slot {
                Slot::Waiting(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// The part went out.
    pub(crate) fn sent(&mut self, id: MessageId, part: usize) {
        if let Some(p) = self.msg_mut(id).and_then(|m| m.parts.get_mut(part)) {
            p.slot = Slot::InFlight;
        }
    }

    /// The message and part a tag stands for.
    pub(crate) fn lookup(&self, tag: u64) -> Option<(MessageId, usize, u8, Option<&OutboxItem>)> {
        let (id, part) = *self.tags.get(&tag)?;
        let m = self.msgs.iter().find(|m| m.item.message == id)?;
        Some((id, part, m.total(), Some(&m.item)))
    }

    /// The part was answered OK; its record goes to the store next
    /// ([`Pump::recorded`] once it has).
    pub(crate) fn answered(&mut self, id: MessageId, part: usize) {
        if let Some(m) = self.msg_mut(id) {
            m.touched = true;
            m.unrecorded += 1;
            if let Some(p) = m.parts.get_mut(part) {
                p.slot = Slot::Done;
            }
        }
    }

    /// The store returned for one answered part (recorded or failed).
    pub(crate) fn recorded(&mut self, id: MessageId) {
        if let Some(m) = self.msg_mut(id) {
            m.unrecorded = m.unrecorded.saturating_sub(1);
        }
    }

    /// The part goes again at `at` (throttled: at once, the machine holds
    /// it until the pause ends). Past `max_tries` (when counted) the message
    /// goes back to the outbox instead.
    pub(crate) fn retry(
        &mut self,
        id: MessageId,
        part: usize,
        at: Instant,
        count: bool,
        max_tries: u32,
    ) {
        let Some(m) = self.msg_mut(id) else { return };
        let Some(p) = m.parts.get_mut(part) else {
            return;
        };
        if count {
            p.tries += 1;
        }
        if p.tries > max_tries {
            p.slot = Slot::Done;
            m.halted = true;
            m.give_back = true;
        } else {
            p.slot = Slot::Waiting(at);
        }
    }

    /// The part's outcome is unknown (timeout, bind dropped): the message
    /// stops and, once nothing of it is in flight, goes back flagged as a
    /// possible duplicate and counted ([`Handback::Unknown`]), unless a
    /// late response ([`Pump::revive`]) tells the outcome first.
    /// `timed_out`: its response timed out (else the bind dropped).
    pub(crate) fn unknown(&mut self, id: MessageId, part: usize, timed_out: bool) {
        if let Some(m) = self.msg_mut(id) {
            m.touched = true;
            m.timed_out |= timed_out;
            if let Some(p) = m.parts.get_mut(part) {
                p.slot = Slot::Unknown;
            }
        }
    }

    /// The response of `tag` timed out: remember its part (the oldest is
    /// forgotten past the capacity) for a late response.
    pub(crate) fn timed_out(&mut self, tag: u64) {
        if self.late_capacity == 0 {
            return;
        }
        let Some((id, part)) = self.tags.get(&tag).copied() else {
            return;
        };
        let Some(m) = self.msgs.iter().find(|m| m.item.message == id) else {
            return;
        };
        let late = LatePart {
            message: id,
            part,
            total: m.total(),
            accepted_ms: m.item.accepted_ms,
        };
        while self.late.len() >= self.late_capacity {
            self.late.pop_front();
        }
        self.late.push_back((tag, late));
    }

    /// Takes the remembered part of a timed-out `tag`.
    pub(crate) fn take_late(&mut self, tag: u64) -> Option<LatePart> {
        let i = self.late.iter().position(|(t, _)| *t == tag)?;
        self.late.remove(i).map(|(_, l)| l)
    }

    /// A late response for `tag` arrived while its message is still here
    /// and the part still unknown: the part is in flight again, so the
    /// response is handled like a timely one. False when the message left
    /// (handed back, finished) or the part moved on.
    pub(crate) fn revive(&mut self, tag: u64) -> bool {
        let Some((id, part)) = self.tags.get(&tag).copied() else {
            return false;
        };
        let Some(p) = self.msg_mut(id).and_then(|m| m.parts.get_mut(part)) else {
            return false;
        };
        if p.req.tag == tag && p.slot == Slot::Unknown {
            p.slot = Slot::InFlight;
            true
        } else {
            false
        }
    }

    /// The part was answered with an error that ends or interrupts the
    /// message: `give_back` false → it failed (recorded); true → it goes back.
    pub(crate) fn stop(&mut self, id: MessageId, part: usize, give_back: bool) {
        if let Some(m) = self.msg_mut(id) {
            m.halted = true;
            m.give_back |= give_back;
            if let Some(p) = m.parts.get_mut(part) {
                p.slot = Slot::Done;
            }
        }
    }

    /// The store finished the message from elsewhere (a late response of
    /// an earlier copy answered every part): send nothing more of it; what
    /// is in flight is still recorded, nothing goes back.
    pub(crate) fn halt(&mut self, id: MessageId) {
        if let Some(m) = self.msg_mut(id) {
            m.halted = true;
            m.give_back = false;
            for p in &mut m.parts {
                if matches!(p.slot, Slot::Unsent | Slot::Waiting(_) | Slot::Unknown) {
                    p.slot = Slot::Done;
                }
            }
        }
    }

    /// The store finished the message (every part answered): forget it.
    pub(crate) fn finish(&mut self, id: MessageId) {
        while let Some(at) = self.msgs.iter().position(|m| m.item.message == id) {
            let Some(gone) = self.msgs.remove(at) else {
                return;
            };
            // Its tags are those of its parts (given at `push`, never changed).
            for p in &gone.parts {
                self.tags.remove(&p.req.tag);
            }
            let conversation = gone.item.conversation;
            let left = match self.conversations.get_mut(&conversation) {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    *n
                }
                None => 0,
            };
            if left == 0 {
                self.conversations.remove(&conversation);
                continue;
            }
            for m in self.msgs.range_mut(at..) {
                if m.item.conversation == conversation {
                    m.behind = m.behind.saturating_sub(1);
                }
            }
        }
    }

    /// No new parts go out; every message will be handed back once its
    /// parts in flight are answered.
    pub(crate) fn drain(&mut self) {
        self.draining = true;
        for m in &mut self.msgs {
            if !m.halted {
                m.halted = true;
                m.give_back = true;
            }
        }
    }

    /// Takes out the messages that are stopped and have nothing in flight;
    /// those to hand back are returned.
    pub(crate) fn settle(&mut self) -> Vec<Handback> {
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for m in &self.msgs {
            if m.stopped() && m.in_flight() == 0 && m.unrecorded == 0 {
                let id = m.item.message;
                gone.push(id);
                if m.has_unknown() {
                    out.push(if m.timed_out && !self.draining {
                        Handback::TimedOut(id)
                    } else {
                        Handback::Unknown(id)
                    });
                } else if m.give_back {
                    out.push(if m.touched {
                        Handback::Sent(id)
                    } else {
                        Handback::Release(id)
                    });
                }
            }
        }
        for id in gone {
            self.finish(id);
        }
        out
    }

    /// The bind is gone: everything still in flight has an unknown outcome,
    /// and every message goes back.
    pub(crate) fn abandon_all(&mut self) -> Vec<Handback> {
        for m in &mut self.msgs {
            // No late response can come on a closed session.
            m.timed_out = false;
            for p in &mut m.parts {
                if p.slot == Slot::InFlight {
                    p.slot = Slot::Unknown;
                    m.touched = true;
                }
            }
            if !m.halted || m.give_back {
                m.halted = true;
                m.give_back = true;
            }
        }
        self.settle()
    }
}

// === the session loop (shell) ===

/// What the session loop needs.
pub(crate) struct SessionCtx<S> {
    pub(crate) store: Arc<S>,
    pub(crate) cfg: Arc<Config>,
    /// The latest config, for the receive path (SIGHUP applies at once).
    pub(crate) config: watch::Receiver<Arc<Config>>,
    pub(crate) carrier: CarrierConfig,
    pub(crate) slot: Arc<BindSlot>,
    pub(crate) wake: watch::Receiver<u64>,
    pub(crate) opts: Arc<LinkOptions>,
    pub(crate) stop: CancellationToken,
}

async fn submit(cmds: &mpsc::Sender<Command>, req: SubmitRequest) -> Result<u32, HandleError> {
    let (reply, rx) = oneshot::channel();
    cmds.send(Command::Submit { req, reply })
        .await
        .map_err(|_| HandleError::Gone)?;
    Ok(rx.await.map_err(|_| HandleError::Gone)??)
}

/// The lease of claimed work: longer than any wait for a response, so a
/// live bind never loses its claim to another.
fn lease_ms(c: &CarrierConfig) -> u64 {
    let d = c.response_timeout * 3 + c.unbind_timeout + Duration::from_secs(60);
    d.as_millis() as u64
}

/// Store work of the loop that runs beside it (spawned, so a slow flush
/// never stops responses being read or parts being submitted).
type Pending<T> = Option<tokio::task::JoinHandle<T>>;

/// Waits for a spawned store call, or forever when there is none.
async fn join<T>(h: &mut Pending<T>) -> Result<T, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// How many messages a bind with `window` claims when its pump holds
/// `held`: up to two windows at a time (a window on the wire and one queued
/// behind it), while the pump holds under four.
///
/// A message keeps its place in the pump from its claim until the store
/// has recorded its answers: a log sync on each side of the carrier's
/// round trip. With room for only two windows in all, the syncs (10-20 ms
/// while many agents send) left the window idle and the outbox backed up:
/// with 192 senders the binds submitted 7 000 msgs/s of 11 000 accepted
/// (benches/RESULTS.md §18). A claim stays at two windows so that a burst
/// still spreads over the binds. (The leased entries four windows make
/// cost a claim nothing: it starts past the outbox's leased head.)
fn claim_size(window: usize, held: usize) -> usize {
    window
        .saturating_mul(2)
        .min(window.saturating_mul(4).saturating_sub(held))
}

/// One answered part waiting for (or in) a `record_submits` batch.
#[derive(Debug)]
struct Answer {
    /// The part was accepted (the pump waits for the record); `false`: a
    /// permanent refusal, already stopped in the pump, or a late answer.
    accepted: bool,
    /// A late response for a message that had left the pump: the pump
    /// waits for nothing, but if the record finishes the message, a copy
    /// claimed again meanwhile sends nothing more.
    late: bool,
    accepted_ms: u64,
    record: SubmitRecord,
}

/// Events taken per wake-up before the loop submits and records again.
const EVENT_BATCH: usize = 512;

/// Runs a bound session until it ends; returns why it ended.
///
/// Store calls never block the loop: one claim and one batch of response
/// records run at a time as spawned tasks, and everything answered while a
/// batch is being written goes into the next one. So a bind records a
/// window's worth of responses per durable write, claims ahead while its
/// window is busy (see [`claim_size`]), and keeps
/// reading responses and receipts meanwhile.
pub(crate) async fn run_session<S: Store>(ctx: SessionCtx<S>, handle: SessionHandle) -> String {
    let (cmds, mut events, task) = handle.into_parts();
    let kind = ctx.slot.kind;
    let tx_enabled = transmits(kind);
    let carrier = ctx.carrier.name.clone();

    // The receive path runs beside the loop so storing never holds up
    // submit responses; the queue between them is bounded.
    let (in_tx, in_rx) = mpsc::channel::<(DeliverToken, Bytes)>(ctx.opts.inbound_queue.max(1));
    let worker = receives(kind).then(|| {
        tokio::spawn(inbound::worker(
            ctx.store.clone(),
            ctx.config.clone(),
            ctx.carrier.clone(),
            in_rx,
            cmds.clone(),
        ))
    });

    let window = ctx.carrier.window.max(1) as usize;
    let mut pump = Pump::new(late_memory(window));
    let mut wake = ctx.wake.clone();
    wake.mark_unchanged();
    let mut poll = tokio::time::interval(ctx.opts.poll_interval.max(Duration::from_millis(1)));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retry_delay = ctx.opts.part_retry_delay;
    let max_tries = ctx.opts.max_part_retries;

    let mut claiming: Pending<StoreResult<Vec<OutboxItem>>> = None;
    let mut recording: Pending<(Vec<Answer>, StoreResult<Vec<SubmitOutcome>>)> = None;
    // The parts the pump waits on in the batch being recorded, kept out of
    // the task: should it panic, the batch goes down with it.
    let mut recording_awaited: Vec<(MessageId, usize)> = Vec::new();
    let mut answers: Vec<Answer> = Vec::new();

    let mut blocked = false;
    let mut idle = false;
    let mut draining = false;
    let mut unbind_sent = false;
    let mut end_reason: Option<String> = None;
    let mut rebind = false;

    loop {
        // 1. Claim work while there is room (one claim at a time).
        if tx_enabled && !draining && !idle && claiming.is_none() {
            let max = claim_size(window, pump.len());
            if max > 0 {
                let store = ctx.store.clone();
                let (name, lease) = (carrier.clone(), lease_ms(&ctx.carrier));
                claiming = Some(tokio::spawn(async move {
                    store
                        .claim_outbox_in_order(&name, max, lease, clock::wall_ms())
                        .await
                }));
            }
        }

        // 2. Submit what may go.
        if tx_enabled && !blocked && !unbind_sent {
            while let Some((id, part, req)) = pump.next(clock::now()) {
                match submit(&cmds, req).await {
                    Ok(_) => {
                        pump.sent(id, part);
                        crate::metrics::submit_sent(&carrier);
                    }
                    Err(HandleError::Blocked(Blocked::NotAllowed)) => {
                        tracing::error!(carrier = %carrier, "submit not allowed on this bind");
                        pump.stop(id, part, true);
                    }
                    Err(HandleError::Blocked(_)) => {
                        blocked = true;
                        break;
                    }
                    Err(HandleError::Gone) => {
                        blocked = true;
                        break;
                    }
                }
            }
        }
        ctx.slot.set_window(pump.in_flight());

        // 3. Record what was answered (one batch at a time).
        if recording.is_none() && !answers.is_empty() {
            recording_awaited = awaited(&answers);
            recording = Some(spawn_record(&ctx.store, std::mem::take(&mut answers)));
        }

        // 4. Hand back what is finished with on this bind.
        for h in pump.settle() {
            hand_back(&*ctx.store, &ctx.carrier, h).await;
        }
        // The machine drains the window itself (up to its drain timeout)
        // before the unbind goes out; responses keep arriving as events.
        if draining && !unbind_sent {
            unbind_sent = true;
            ctx.slot.set_state(BindState::Unbinding, None, None);
            let _ = cmds.send(Command::Unbind).await;
        }

        // 5. Wait for something to happen.
        let retry_at = pump.next_retry();
        let sleep_until = retry_at.map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        );
        // Store completions first: they are rare (one per flush) and a
        // steady stream of events must not hide them.
        tokio::select! {
            biased;
            r = join(&mut recording) => {
                recording = None;
                let before = pump.len();
                settle_records(&carrier, &mut pump, &recording_awaited, r);
                // A finished message may free the next one of its
                // conversation (the store holds it back while leased).
                if pump.len() < before {
                    idle = false;
                }
            }
            r = join(&mut claiming) => {
                claiming = None;
                idle = take_claim(&ctx, &mut pump, &mut answers, r);
            }
            ev = events.recv() => match ev {
                None => break,
                Some(ev) => {
                    let mut next = Some(ev);
                    let mut taken = 0;
                    while let Some(ev) = next.take() {
                        let step = handle_event(&ctx, &mut pump, &mut answers, &in_tx, worker.is_some(), ev, retry_delay, max_tries).await;
                        match step {
                            Step::Continue => {}
                            Step::WindowOpen => blocked = false,
                            Step::Rebind => rebind = true,
                            Step::Closed(reason) => end_reason = Some(reason),
                        }
                        taken += 1;
                        if taken < EVENT_BATCH {
                            next = events.try_recv().ok();
                        }
                    }
                }
            },
            () = ctx.stop.cancelled(), if !draining => {
                draining = true;
                pump.drain();
            }
            r = wake.changed(), if tx_enabled && !draining && idle => {
                if r.is_ok() {
                    idle = false;
                }
            }
            _ = poll.tick(), if tx_enabled && !draining && idle => idle = false,
            () = tokio::time::sleep_until(sleep_until), if retry_at.is_some() && !blocked => {}
        }
        if rebind && !draining {
            tracing::warn!(carrier = %carrier, "carrier status asks for a rebind");
            draining = true;
            pump.drain();
        }
    }

    // The session is over. What was claimed goes back untouched; what was
    // answered is recorded before anything is handed back (else an accepted
    // part would be sent again); what is still in flight has an unknown
    // outcome.
    let end = task.await.ok();
    if claiming.is_some() {
        let r = join(&mut claiming).await;
        take_claim(&ctx, &mut pump, &mut answers, r);
    }
    if recording.is_some() {
        let r = join(&mut recording).await;
        settle_records(&carrier, &mut pump, &recording_awaited, r);
    }
    if !answers.is_empty() {
        let parts = awaited(&answers);
        let mut last = Some(spawn_record(&ctx.store, std::mem::take(&mut answers)));
        let r = join(&mut last).await;
        settle_records(&carrier, &mut pump, &parts, r);
    }
    for h in pump.abandon_all() {
        hand_back(&*ctx.store, &ctx.carrier, h).await;
    }
    drop(in_tx);
    if let Some(w) = worker {
        let _ = w.await;
    }
    let reason = end_reason
        .or_else(|| end.as_ref().map(|e| e.reason.as_str().to_owned()))
        .unwrap_or_else(|| "transport_closed".to_owned());
    match end.and_then(|e| e.transport) {
        Some(t) => format!("{reason}: {t}"),
        None => reason,
    }
}

/// Writes a batch of answers in one store call, beside the loop.
fn spawn_record<S: Store>(
    store: &Arc<S>,
    batch: Vec<Answer>,
) -> tokio::task::JoinHandle<(Vec<Answer>, StoreResult<Vec<SubmitOutcome>>)> {
    let store = store.clone();
    tokio::spawn(async move {
        let records = batch.iter().map(|a| a.record.clone()).collect();
        let r = store.record_submits(records, clock::wall_ms()).await;
        (batch, r)
    })
}

/// The parts of `batch` the pump waits on a record for.
fn awaited(batch: &[Answer]) -> Vec<(MessageId, usize)> {
    batch
        .iter()
        .filter(|a| a.accepted && !a.late)
        .map(|a| (a.record.message, usize::from(a.record.part)))
        .collect()
}

/// Applies what the store said about a batch of answers to the pump;
/// `awaited` is [`awaited`] of that batch.
fn settle_records(
    carrier: &str,
    pump: &mut Pump,
    awaited: &[(MessageId, usize)],
    r: Result<(Vec<Answer>, StoreResult<Vec<SubmitOutcome>>), tokio::task::JoinError>,
) {
    let (batch, outcomes) = match r {
        Ok(v) => v,
        Err(e) => {
            // The task panicked or was cancelled, and the batch with it.
            // As when the store fails: the parts stop here and their leases
            // lapse, so they go again, flagged. (Left waiting, each message
            // held a place in the pump for as long as the bind lived: with
            // a window of 1, two such failures stopped the bind's claims.)
            tracing::error!(carrier, parts = awaited.len(), error = %e, "submit record task failed; their leases will lapse");
            for &(id, part) in awaited {
                pump.recorded(id);
                pump.stop(id, part, false);
            }
            return;
        }
    };
    let outcomes = match outcomes {
        Ok(o) => o.into_iter().map(Some).collect::<Vec<_>>(),
        Err(e) => {
            tracing::error!(carrier, answers = batch.len(), error = %e, "store failed recording submit responses; their leases will lapse");
            vec![None; batch.len()]
        }
    };
    let now_ms = clock::wall_ms();
    for (a, outcome) in batch.into_iter().zip(outcomes) {
        let (id, part) = (a.record.message, usize::from(a.record.part));
        if a.late {
            if matches!(
                outcome,
                Some(SubmitOutcome::Done { .. } | SubmitOutcome::Failed)
            ) {
                pump.halt(id);
            }
            continue;
        }
        if !a.accepted {
            continue;
        }
        pump.recorded(id);
        match outcome {
            Some(SubmitOutcome::Done { .. }) => {
                pump.finish(id);
                let d = Duration::from_millis(now_ms.saturating_sub(a.accepted_ms));
                crate::metrics::accept_to_submit_resp(carrier, d);
            }
            Some(SubmitOutcome::Pending { .. } | SubmitOutcome::Retry) => {}
            Some(SubmitOutcome::Failed | SubmitOutcome::Ignored) | None => {
                pump.stop(id, part, false)
            }
        }
    }
}

/// Plans claimed items into the pump; returns whether the outbox was empty.
fn take_claim<S: Store>(
    ctx: &SessionCtx<S>,
    pump: &mut Pump,
    answers: &mut Vec<Answer>,
    r: Result<StoreResult<Vec<OutboxItem>>, tokio::task::JoinError>,
) -> bool {
    let items = match r {
        Ok(Ok(items)) => items,
        Ok(Err(e)) => {
            tracing::error!(carrier = %ctx.carrier.name, error = %e, "outbox claim failed");
            return true;
        }
        Err(e) => {
            tracing::error!(carrier = %ctx.carrier.name, error = %e, "outbox claim task failed");
            return true;
        }
    };
    let idle = items.is_empty();
    for item in items {
        let service = ctx.cfg.service(&item.service);
        let first = pump.tags(usize::from(item.parts.max(1)) + 16);
        let reference = item.message as u16;
        match build_submits(&item, service, &ctx.carrier, reference, first) {
            Ok(reqs) if !reqs.is_empty() => pump.push(item, reqs),
            Ok(_) | Err(_) => {
                tracing::warn!(carrier = %ctx.carrier.name, message = item.message, "stored text cannot be planned; message failed");
                answers.push(Answer {
                    accepted: false,
                    late: false,
                    accepted_ms: item.accepted_ms,
                    record: SubmitRecord {
                        message: item.message,
                        part: 0,
                        total_parts: item.parts.max(1),
                        result: Err(SubmitFailure {
                            status: LOCAL_PLAN_FAILURE,
                            permanent: true,
                        }),
                    },
                });
            }
        }
    }
    idle
}

async fn hand_back<S: Store>(store: &S, carrier: &CarrierConfig, h: Handback) {
    let r = match h {
        Handback::Release(id) => store.release(id).await.map(|_| ()),
        Handback::Sent(id) => store.release_sent(id).await.map(|_| ()),
        Handback::Unknown(id) | Handback::TimedOut(id) => {
            let max = carrier.max_resubmits;
            let after = if matches!(h, Handback::TimedOut(_)) {
                u64::try_from(carrier.resubmit_delay.as_millis()).unwrap_or(u64::MAX)
            } else {
                0
            };
            store
                .release_unanswered(id, max, clock::wall_ms(), after)
                .await
                .map(|r| match r {
                    Unanswered::GaveUp { unknown } => tracing::warn!(
                        carrier = %carrier.name,
                        message = id,
                        unknown,
                        max_resubmits = max,
                        "no submit response after every resend allowed; the message ends unknown"
                    ),
                    Unanswered::Released { unknown } => tracing::info!(
                        carrier = %carrier.name,
                        message = id,
                        unknown,
                        max_resubmits = max,
                        resend_after_ms = after,
                        "submit outcome unknown; the message goes again, flagged possible duplicate"
                    ),
                    Unanswered::NotFound => {}
                })
        }
    };
    if let Err(e) = r {
        tracing::error!(error = %e, ?h, "could not hand a message back to the outbox; its lease will lapse");
    }
}

/// What an event means for the loop.
enum Step {
    Continue,
    WindowOpen,
    Rebind,
    Closed(String),
}

/// A `submit_sm_resp` as the machine reported it.
struct Resp {
    tag: u64,
    status: CommandStatus,
    outcome: Outcome,
    message_id: Option<String>,
}

/// A response to a part in flight (timely, or late while its message is
/// still here): record an accepted id, retry, stop or fail per the status.
fn on_submit_resp<S: Store>(
    ctx: &SessionCtx<S>,
    pump: &mut Pump,
    answers: &mut Vec<Answer>,
    resp: Resp,
    retry_delay: Duration,
    max_tries: u32,
) -> Step {
    let carrier = ctx.carrier.name.as_str();
    let Resp {
        tag,
        status,
        outcome,
        message_id,
    } = resp;
    let Some((id, part, total, item)) = pump.lookup(tag) else {
        tracing::debug!(carrier, tag, "response for a message no longer here");
        return Step::Continue;
    };
    let accepted_ms = item.map_or(0, |i| i.accepted_ms);
    if status.0 == 0 {
        pump.answered(id, part);
        let raw = message_id.unwrap_or_default();
        let norm = crate::dlr::normalize_id(&raw, ctx.carrier.id_format);
        answers.push(Answer {
            accepted: true,
            late: false,
            accepted_ms,
            record: SubmitRecord {
                message: id,
                part: part as u8,
                total_parts: total,
                result: Ok(norm),
            },
        });
        return Step::Continue;
    }
    let now = clock::now();
    // Throttling answers were counted by the caller (`metrics::submit_response`).
    match outcome {
        Outcome::Throttled => {
            pump.retry(id, part, now, false, max_tries);
            return Step::Continue;
        }
        Outcome::QueueFull => {
            pump.retry(id, part, now, true, max_tries);
            return Step::Continue;
        }
        _ => {}
    }
    match ctx.carrier.status_action(status.0) {
        StatusAction::Temporary => {
            pump.retry(id, part, now + retry_delay, true, max_tries);
            Step::Continue
        }
        StatusAction::Rebind => {
            pump.stop(id, part, true);
            Step::Rebind
        }
        StatusAction::Permanent => {
            pump.stop(id, part, false);
            answers.push(Answer {
                accepted: false,
                late: false,
                accepted_ms,
                record: SubmitRecord {
                    message: id,
                    part: part as u8,
                    total_parts: total,
                    result: Err(SubmitFailure {
                        status: status.0,
                        permanent: true,
                    }),
                },
            });
            Step::Continue
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle_event<S: Store>(
    ctx: &SessionCtx<S>,
    pump: &mut Pump,
    answers: &mut Vec<Answer>,
    in_tx: &mpsc::Sender<(DeliverToken, Bytes)>,
    receiving: bool,
    ev: Event,
    retry_delay: Duration,
    max_tries: u32,
) -> Step {
    let carrier = ctx.carrier.name.as_str();
    match ev {
        Event::SubmitResp {
            tag,
            status,
            outcome,
            message_id,
            ..
        } => {
            crate::metrics::submit_response(carrier, status.0);
            let resp = Resp {
                tag,
                status,
                outcome,
                message_id,
            };
            on_submit_resp(ctx, pump, answers, resp, retry_delay, max_tries)
        }
        Event::LateSubmitResp {
            tag,
            status,
            outcome,
            message_id,
            ..
        } => {
            crate::metrics::submit_response(carrier, status.0);
            crate::metrics::late_response(carrier);
            let late = pump.take_late(tag);
            if pump.revive(tag) {
                // Its message is still here with the part unknown: as if
                // the response had come in time.
                tracing::info!(
                    carrier,
                    tag,
                    status = status.0,
                    "submit response after its timeout; handled as in time"
                );
                let resp = Resp {
                    tag,
                    status,
                    outcome,
                    message_id,
                };
                return on_submit_resp(ctx, pump, answers, resp, retry_delay, max_tries);
            }
            let Some(late) = late else {
                tracing::info!(
                    carrier,
                    tag,
                    status = status.0,
                    "submit response after its timeout, for a part no longer remembered"
                );
                return Step::Continue;
            };
            if status.0 != 0 {
                // The copy was refused after all; the message went back
                // to the outbox meanwhile and its resend decides.
                tracing::info!(
                    carrier,
                    message = late.message,
                    status = status.0,
                    "late refusal of a submit already handed back; its resend decides"
                );
                return Step::Continue;
            }
            // The message went back to the outbox (or was given up) while
            // this copy reached the SMSC: record its id so the receipt
            // correlates; if that answers every part, it is not sent again.
            tracing::info!(
                carrier,
                message = late.message,
                part = late.part,
                "late submit response for a message already handed back; carrier id recorded"
            );
            let raw = message_id.unwrap_or_default();
            answers.push(Answer {
                accepted: false,
                late: true,
                accepted_ms: late.accepted_ms,
                record: SubmitRecord {
                    message: late.message,
                    part: u8::try_from(late.part).unwrap_or(u8::MAX),
                    total_parts: late.total,
                    result: Ok(crate::dlr::normalize_id(&raw, ctx.carrier.id_format)),
                },
            });
            Step::Continue
        }
        Event::SubmitTimeout { tag, .. } => {
            crate::metrics::response_timeout(carrier);
            pump.timed_out(tag);
            if let Some((id, part, ..)) = pump.lookup(tag) {
                pump.unknown(id, part, true);
            }
            Step::Continue
        }
        Event::Deliver { token, frame } => {
            if receiving {
                if in_tx.send((token, frame)).await.is_err() {
                    tracing::error!(carrier, "receive path gone; the SMSC will redeliver");
                }
            } else {
                // Not acknowledged: the SMSC delivers it again on a receiving bind.
                drop(token);
            }
            Step::Continue
        }
        Event::WindowOpen => Step::WindowOpen,
        Event::Throttled { status, .. } => {
            tracing::debug!(carrier, status = status.0, "carrier throttled the bind");
            Step::Continue
        }
        Event::Quirks { quirks, .. } => {
            for q in quirks.names() {
                crate::metrics::codec_leniency(q, 1);
            }
            Step::Continue
        }
        Event::Closed {
            reason, unanswered, ..
        } => {
            for tag in unanswered {
                if let Some((id, part, ..)) = pump.lookup(tag) {
                    pump.unknown(id, part, false);
                }
            }
            Step::Closed(reason.as_str().to_owned())
        }
        other => {
            tracing::debug!(carrier, event = ?other, "session event");
            Step::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Concat as CfgConcat;

    fn cfg() -> Config {
        let addr = "127.0.0.1:2775".parse().unwrap();
        crate::config::demo(&std::env::temp_dir(), addr, None).unwrap()
    }

    fn item(message: MessageId, conversation: u64, sender: &str, text: &str) -> OutboxItem {
        OutboxItem {
            message,
            conversation,
            service: "support".into(),
            sender: sender.into(),
            customer: "+447911123456".into(),
            text: text.into(),
            encoding: "gsm7".into(),
            parts: 1,
            carrier: "sim".into(),
            attempt: 1,
            possible_duplicate: false,
            lease_until_ms: 0,
            accepted_ms: 0,
        }
    }

    fn parse(req: &SubmitRequest) -> (SmBody<'_>, Vec<(u16, Vec<u8>)>) {
        let d = Pdu::parse(req.frame()).unwrap();
        let Pdu::SubmitSm(b) = d.pdu else {
            panic!("not a submit_sm")
        };
        let tlvs = b.tlvs.iter().map(|t| (t.tag.0, t.value.to_vec())).collect();
        (b, tlvs)
    }

    #[test]
    fn submits_carry_addresses_receipt_request_and_udh() {
        let c = cfg();
        let carrier = c.carrier("sim").unwrap();
        let text = "x".repeat(200);
        let reqs = build_submits(
            &item(1, 1, "447400123456", &text),
            c.service("support"),
            carrier,
            7,
            100,
        )
        .unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!((reqs[0].tag, reqs[1].tag), (100, 101));
        for r in &reqs {
            let (b, _) = parse(r);
            assert_eq!(b.source_addr, b"447400123456");
            assert_eq!((b.source_addr_ton, b.source_addr_npi), (1, 1));
            assert_eq!(b.destination_addr, b"447911123456");
            assert_eq!((b.dest_addr_ton, b.dest_addr_npi), (1, 1));
            assert_eq!(b.registered_delivery, 1);
            assert_eq!(b.esm_class, 0x40);
            assert_eq!(&b.short_message[..3], &[5, 0, 3]);
        }
    }

    #[test]
    fn alphanumeric_sender_gets_ton_5_and_sar_or_payload_per_carrier() {
        let c = cfg();
        let mut carrier = c.carrier("sim").unwrap().clone();
        carrier.concat = CfgConcat::Sar;
        let text = "y".repeat(200);
        let reqs = build_submits(
            &item(2, 1, "ACME", &text),
            c.service("alerts"),
            &carrier,
            9,
            0,
        )
        .unwrap();
        let (b, tlvs) = parse(&reqs[1]);
        assert_eq!(b.source_addr, b"ACME");
        assert_eq!((b.source_addr_ton, b.source_addr_npi), (5, 0));
        assert_eq!(b.esm_class, 0);
        assert!(tlvs.contains(&(TlvTag::SAR_SEGMENT_SEQNUM.0, vec![2])));
        assert!(tlvs.contains(&(TlvTag::SAR_TOTAL_SEGMENTS.0, vec![2])));
        carrier.concat = CfgConcat::Payload;
        let reqs = build_submits(
            &item(2, 1, "ACME", &text),
            c.service("alerts"),
            &carrier,
            9,
            0,
        )
        .unwrap();
        assert_eq!(reqs.len(), 1);
        let (b, tlvs) = parse(&reqs[0]);
        assert!(b.short_message.is_empty());
        assert_eq!(tlvs[0].0, TlvTag::MESSAGE_PAYLOAD.0);
        assert_eq!(tlvs[0].1.len(), 200);
    }

    #[test]
    fn text_over_the_service_limit_is_refused() {
        let c = cfg();
        let carrier = c.carrier("sim").unwrap();
        let text = "z".repeat(1000);
        // "alerts" allows 2 parts.
        assert!(
            build_submits(
                &item(3, 1, "ACME", &text),
                c.service("alerts"),
                carrier,
                1,
                0
            )
            .is_err()
        );
    }

    fn req(tag: u64) -> SubmitRequest {
        SubmitRequest::new(tag, &Pdu::EnquireLink)
    }

    #[test]
    fn pump_keeps_conversation_order_and_sends_retries_first() {
        let now = crate::clock::now();
        let mut p = Pump::default();
        p.push(item(1, 10, "s", "a"), vec![req(1), req(2)]);
        p.push(item(2, 10, "s", "b"), vec![req(3)]);
        p.push(item(3, 20, "s", "c"), vec![req(4)]);
        // Parts of message 1 back to back; message 2 waits for message 1.
        let (m, i, _) = p.next(now).unwrap();
        assert_eq!((m, i), (1, 0));
        p.sent(1, 0);
        assert_eq!(p.next(now).map(|n| (n.0, n.1)), Some((1, 1)));
        p.sent(1, 1);
        assert_eq!(p.next(now).map(|n| (n.0, n.1)), Some((3, 0)));
        p.sent(3, 0);
        assert!(p.next(now).is_none());
        // Part 0 throttled: it goes again before anything else.
        p.retry(1, 0, now, false, 3);
        assert_eq!(p.next(now).map(|n| (n.0, n.1)), Some((1, 0)));
        p.sent(1, 0);
        p.answered(1, 0);
        p.answered(1, 1);
        p.finish(1);
        assert_eq!(p.next(now).map(|n| (n.0, n.1)), Some((2, 0)));
        assert_eq!(p.in_flight(), 1);
    }

    #[test]
    fn a_message_waits_until_every_earlier_one_of_its_conversation_left_the_pump() {
        let now = crate::clock::now();
        let mut p = Pump::default();
        p.push(item(1, 10, "s", "a"), vec![req(1)]);
        p.push(item(2, 20, "s", "b"), vec![req(2)]);
        p.push(item(3, 10, "s", "c"), vec![req(3)]);
        p.push(item(4, 10, "s", "d"), vec![req(4)]);
        for expected in [1, 2] {
            let (m, i, _) = p.next(now).unwrap();
            assert_eq!(m, expected);
            p.sent(m, i);
        }
        assert!(p.next(now).is_none(), "3 and 4 wait for 1");
        // 1 stops (handed back): it still holds 3 and 4 until it has left.
        p.stop(1, 0, true);
        assert!(p.next(now).is_none());
        p.unknown(1, 0, false);
        assert_eq!(p.settle(), vec![Handback::Unknown(1)]);
        assert_eq!(p.next(now).map(|n| n.0), Some(3));
        p.sent(3, 0);
        assert!(p.next(now).is_none(), "4 waits for 3");
        p.answered(3, 0);
        p.recorded(3);
        p.finish(3);
        assert_eq!(p.next(now).map(|n| n.0), Some(4));
        // A finished message's tags are forgotten, the others' kept.
        assert!(p.lookup(3).is_none());
        assert_eq!(p.lookup(2).map(|l| (l.0, l.1)), Some((2, 0)));
        assert_eq!(p.lookup(4).map(|l| (l.0, l.1)), Some((4, 0)));
    }

    #[test]
    fn temporary_refusals_past_the_limit_hand_the_message_back() {
        let now = crate::clock::now();
        let mut p = Pump::default();
        p.push(item(1, 10, "s", "a"), vec![req(1)]);
        for _ in 0..3 {
            p.sent(1, 0);
            p.retry(1, 0, now, true, 2);
        }
        assert!(p.next(now).is_none());
        assert_eq!(p.settle(), vec![Handback::Release(1)]);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn dropped_bind_flags_only_what_went_out() {
        let now = crate::clock::now();
        let mut p = Pump::default();
        p.push(item(1, 10, "s", "a"), vec![req(1)]);
        p.push(item(2, 20, "s", "b"), vec![req(2)]);
        let (m, i, _) = p.next(now).unwrap();
        p.sent(m, i);
        let mut back = p.abandon_all();
        back.sort_by_key(|h| match h {
            Handback::Release(id)
            | Handback::Sent(id)
            | Handback::Unknown(id)
            | Handback::TimedOut(id) => *id,
        });
        assert_eq!(back, vec![Handback::Unknown(1), Handback::Release(2)]);
    }

    #[test]
    fn permanent_failure_is_not_handed_back() {
        let now = crate::clock::now();
        let mut p = Pump::default();
        p.push(item(1, 10, "s", "a"), vec![req(1), req(2)]);
        p.sent(1, 0);
        p.sent(1, 1);
        p.stop(1, 0, false);
        assert!(p.settle().is_empty());
        assert_eq!(p.len(), 1, "part 1 still in flight");
        p.answered(1, 1);
        assert!(p.settle().is_empty());
        assert_eq!(p.len(), 1, "part 1's record is not back from the store");
        p.recorded(1);
        assert!(p.settle().is_empty());
        assert_eq!(p.len(), 0);
        assert!(p.next(now).is_none());
    }

    /// Regression: with records written beside the loop, a drain (shutdown
    /// or rebind) between a part's OK response and its record handed the
    /// message back to the outbox, and another bind would send it again.
    #[test]
    fn answered_message_is_not_handed_back_before_its_record() {
        let mut p = Pump::default();
        p.push(item(1, 10, "s", "a"), vec![req(1)]);
        p.sent(1, 0);
        p.answered(1, 0);
        p.drain();
        assert!(p.settle().is_empty());
        assert_eq!(p.len(), 1);
        // The record failed while draining: it goes back flagged as a
        // possible duplicate (it did reach the SMSC), never as unsent, and
        // not as unknown (its outcome is known).
        p.recorded(1);
        p.stop(1, 0, false);
        assert_eq!(p.settle(), vec![Handback::Sent(1)]);
    }

    #[test]
    fn timed_out_part_goes_back_as_unknown_once_nothing_is_in_flight() {
        let now = crate::clock::now();
        let mut p = Pump::new(16);
        p.push(item(1, 10, "s", "a"), vec![req(1), req(2), req(3)]);
        p.sent(1, 0);
        p.sent(1, 1);
        p.timed_out(1);
        p.unknown(1, 0, true);
        // No further part goes out while one is unknown.
        assert!(p.next(now).is_none());
        assert!(p.settle().is_empty(), "part 1 is still in flight");
        p.answered(1, 1);
        p.recorded(1);
        assert_eq!(p.settle(), vec![Handback::TimedOut(1)]);
        // Its timed-out part is still remembered for a late response.
        assert_eq!(
            p.take_late(1),
            Some(LatePart {
                message: 1,
                part: 0,
                total: 3,
                accepted_ms: 0
            })
        );
        assert_eq!(p.take_late(1), None);
        assert!(!p.revive(1), "the message left the pump");
    }

    /// After a timeout the message waits the carrier's `resubmit_delay`
    /// (a late response may still come on the bind), but not once the
    /// bind is gone: no response can come on a closed session.
    #[test]
    fn a_timed_out_part_waits_to_go_again_unless_the_bind_dropped_or_drains() {
        let mut p = Pump::new(16);
        p.push(item(1, 10, "s", "a"), vec![req(1)]);
        p.push(item(2, 20, "s", "b"), vec![req(2)]);
        p.sent(1, 0);
        p.sent(2, 0);
        p.timed_out(1);
        p.unknown(1, 0, true);
        let mut back = p.abandon_all();
        back.sort_by_key(|h| format!("{h:?}"));
        assert_eq!(back, vec![Handback::Unknown(1), Handback::Unknown(2)]);

        // Nor while the bind drains (shutdown, rebind): it ends next.
        let mut p = Pump::new(16);
        p.push(item(4, 40, "s", "d"), vec![req(4)]);
        p.sent(4, 0);
        p.drain();
        p.timed_out(4);
        p.unknown(4, 0, true);
        assert_eq!(p.settle(), vec![Handback::Unknown(4)]);

        let mut p = Pump::new(16);
        p.push(item(3, 30, "s", "c"), vec![req(3)]);
        p.sent(3, 0);
        p.unknown(3, 0, false);
        assert_eq!(
            p.settle(),
            vec![Handback::Unknown(3)],
            "closed, not timed out"
        );
    }

    #[test]
    fn late_answer_while_still_here_lets_the_message_go_on() {
        let now = crate::clock::now();
        let mut p = Pump::new(16);
        p.push(item(1, 10, "s", "a"), vec![req(1), req(2), req(3)]);
        p.sent(1, 0);
        p.sent(1, 1);
        p.timed_out(1);
        p.unknown(1, 0, true);
        assert!(p.next(now).is_none());
        // Part 0's response arrives late, part 1's in time.
        assert!(p.revive(1));
        assert!(!p.revive(1), "revived once");
        p.answered(1, 0);
        p.answered(1, 1);
        assert_eq!(p.next(now).map(|n| (n.0, n.1)), Some((1, 2)));
        p.recorded(1);
        p.recorded(1);
        assert!(p.settle().is_empty(), "nothing goes back");
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn halted_copy_sends_nothing_more_and_is_not_handed_back() {
        let now = crate::clock::now();
        let mut p = Pump::new(16);
        p.push(item(1, 10, "s", "a"), vec![req(1), req(2)]);
        p.sent(1, 0);
        p.halt(1);
        assert!(p.next(now).is_none());
        assert!(p.settle().is_empty(), "part 0 still in flight");
        p.answered(1, 0);
        p.recorded(1);
        assert!(p.settle().is_empty());
        assert_eq!(p.len(), 0);
    }

    proptest::proptest! {
        /// Whatever order messages come and go in, each one counts exactly
        /// the messages of its conversation ahead of it in the pump (the
        /// order rule), and the per-conversation counts match.
        #[test]
        fn each_message_counts_the_earlier_ones_of_its_conversation(
            ops in proptest::collection::vec((0..3u64, proptest::option::of(0..8usize)), 1..60)
        ) {
            let mut p = Pump::new(0);
            let mut next: MessageId = 1;
            for (conversation, leave) in ops {
                match leave {
                    Some(i) if !p.msgs.is_empty() => {
                        let id = p.msgs[i % p.msgs.len()].item.message;
                        p.finish(id);
                    }
                    _ => {
                        let tag = p.tags(1);
                        p.push(item(next, conversation, "s", "t"), vec![req(tag)]);
                        next += 1;
                    }
                }
                let mut seen: HashMap<ConversationId, usize> = HashMap::new();
                for m in &p.msgs {
                    let n = seen.entry(m.item.conversation).or_default();
                    proptest::prop_assert_eq!(m.behind, *n);
                    *n += 1;
                }
                proptest::prop_assert_eq!(&seen, &p.conversations);
            }
        }
    }

    /// Regression: the bind stopped claiming once its pump held two
    /// windows, answered messages waiting for their records included, so
    /// the window idled through the log syncs and the outbox backed up
    /// while many agents sent.
    #[test]
    fn a_bind_claims_two_windows_at_a_time_while_its_pump_holds_under_four() {
        let cases = [
            // (window, held, claimed)
            (50, 0, 100),
            // 100 answered and waiting for their records: two more windows.
            (50, 100, 100),
            (50, 150, 50),
            (50, 199, 1),
            (50, 200, 0),
            (50, 260, 0),
            (1, 0, 2),
            (1, 3, 1),
            (usize::MAX, 0, usize::MAX),
        ];
        for (window, held, claimed) in cases {
            assert_eq!(
                claim_size(window, held),
                claimed,
                "window {window}, held {held}"
            );
        }
    }

    #[test]
    fn late_memory_forgets_the_oldest_past_its_capacity() {
        let mut p = Pump::new(2);
        p.push(item(1, 10, "s", "a"), vec![req(1), req(2), req(3)]);
        for tag in 1..=3 {
            p.timed_out(tag);
        }
        assert_eq!(p.take_late(1), None);
        assert_eq!(p.take_late(3).map(|l| l.part), Some(2));
        assert_eq!(p.take_late(2).map(|l| l.part), Some(1));
    }

    #[test]
    fn wire_numbers_drop_plus_and_double_zero() {
        assert_eq!(wire_number("+447911123456"), "447911123456");
        assert_eq!(wire_number("00819012345678"), "819012345678");
        assert_eq!(wire_number("447400123456"), "447400123456");
    }
}
