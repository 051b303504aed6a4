//! One simulated SMSC connection: a [`Session<Mc>`] driven over the socket
//! through [`SmppCodec`], with the [`super::Scenario`] applied around it.
//!
//! The simulator has its own small shell instead of the session driver
//! because what it does is what a driver must never do: hold a bind
//! request back, answer submits late or with errors (the machine in manual
//! mode hands each submit over with a token), close the socket in the
//! middle of the window ([`Session::abort`]), and write PDUs the machine did
//! not make ([`Session::transmit_raw`], garbage). The machine still does the
//! protocol: binds and their refusals, the operation matrix, enquire_link,
//! unbind, sequence numbers and the window of deliver_sm.
//!
//! Loop: (1) put due deliveries into the window, (2) answer due submits,
//! (3) write what the machine (and the garbage knob) produced, (4) act on
//! the machine's events, going round again while they produced output,
//! (5) sleep until a frame, the earliest deadline, new deliveries or
//! shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::pdus::{self, ReceiptSpec, ReceivedSubmit};
use super::state::{OutItem, OutKind, Shared, bump, lock};
use crate::clock;
use crate::pdu::{CommandId, CommandStatus, Frame, SmppCodec};
use crate::session::machine::{CloseReason, DeliverToken, Event, Session};
use crate::session::state::Mc;

/// Largest PDU the simulator accepts.
const MAX_PDU: usize = 65_536;
/// How long a response waits for its receipt to go out first.
const RECEIPT_FIRST_WAIT: Duration = Duration::from_secs(2);
/// A deliver_sm the ESME refused is offered again after this.
const REDELIVER_AFTER: Duration = Duration::from_secs(1);
/// Submits awaiting their (delayed) answer; beyond it reading pauses.
const MAX_PENDING: usize = 1024;
/// Frames kept while a bind is held back; beyond it reading pauses.
const MAX_HELD: usize = 16;
/// Command id of the garbage sent to a bind that cannot receive
/// deliver_sm (unassigned in SMPP 3.4 and 5.0).
const GARBAGE_UNKNOWN_ID: CommandId = CommandId(0x0000_0110);

/// A submit awaiting its response.
#[derive(Debug)]
struct PendingResp {
    token: DeliverToken,
    status: CommandStatus,
    message_id: String,
    not_before: Instant,
    /// `receipt_before_response`: the receipt's tag, until it went out.
    after_receipt: Option<u64>,
    give_up: Instant,
    record: u64,
}

/// What the event handler wants from the loop.
enum Flow {
    Continue,
    /// Close the socket now, writing nothing more.
    Drop,
}

struct Conn<S> {
    shared: Arc<Shared>,
    bind_no: u64,
    peer: String,
    session: Session<Mc>,
    reader: FramedRead<ReadHalf<S>, SmppCodec>,
    writer: BufWriter<WriteHalf<S>>,
    /// Deliveries in the window, by tag.
    in_flight: HashMap<u64, OutItem>,
    pending: VecDeque<PendingResp>,
    garbage_seq: u32,
    submits: u64,
    bound: bool,
    receives: bool,
    /// Until when a bind is held back by `bind_delay_ms`; it and what came
    /// after it wait in `held` (bounded by [`MAX_HELD`]), while the socket
    /// is still read so a peer that gives up is noticed.
    held_until: Option<Instant>,
    held: VecDeque<bytes::Bytes>,
    unbinding: bool,
    /// Writing failed; output is discarded.
    broken: bool,
    /// The machine refused a delivery (window full, throttle pause): no
    /// more until its `WindowOpen`, so a due delivery cannot spin the loop.
    blocked: bool,
}

/// Serves one accepted connection until it ends.
pub(crate) async fn serve<S>(stream: S, peer: String, shared: Arc<Shared>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    bump(&shared.counters.connections);
    let (rd, wr) = tokio::io::split(stream);
    let session = Session::<Mc>::new(shared.session_config(), shared.mc_config(), clock::now());
    let mut c = Conn {
        bind_no: shared.next_bind(),
        shared,
        peer,
        session,
        reader: FramedRead::new(rd, SmppCodec::new(MAX_PDU)),
        writer: BufWriter::new(wr),
        in_flight: HashMap::new(),
        pending: VecDeque::new(),
        garbage_seq: 0x7FFF_0000,
        submits: 0,
        bound: false,
        receives: false,
        held_until: None,
        held: VecDeque::new(),
        unbinding: false,
        broken: false,
        blocked: false,
    };
    tracing::debug!(bind = c.bind_no, peer = %c.peer, "sim connection accepted");
    c.run(stop).await;
    c.finish();
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn run(&mut self, stop: CancellationToken) {
        let mut wake = self.shared.wake.subscribe();
        loop {
            let now = clock::now();
            if self.receives && !self.unbinding {
                self.pump_deliveries(now);
            }
            self.answer_due(now);
            // Frames already read in the same burst are taken one at a time
            // as before, but their answers leave in one write.
            let flush = !self.frame_waiting();
            if !self.write_out(flush).await {
                // The peer is gone: nothing more can be written.
                self.broken = true;
                self.session.handle_closed(clock::now());
                while self.session.poll_transmit().is_some() {}
            }
            let mut produced = false;
            while let Some(ev) = self.session.poll_event() {
                produced = true;
                if let Flow::Drop = self.on_event(ev, clock::now()) {
                    // What was written before this frame goes out (the
                    // flush may have waited for it); then no unbind, nothing
                    // more written: the window's deliveries come back in
                    // the Closed event.
                    self.write_out(true).await;
                    self.session.abort();
                    return;
                }
            }
            if produced || self.session.transmit_pending() > 0 {
                continue;
            }
            if self.session.is_closed() {
                return;
            }
            let deadline = self.deadline();
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(
                deadline.unwrap_or(now + Duration::from_secs(3600)),
            ));
            let can_read = self.can_read();
            tokio::select! {
                biased;
                () = stop.cancelled(), if !self.unbinding => {
                    self.unbinding = true;
                    self.session.unbind(clock::now());
                }
                item = self.reader.next(), if can_read => self.on_frame(item),
                () = sleep, if deadline.is_some() => {
                    let now = deadline.map_or_else(clock::now, |d| clock::now().max(d));
                    if self.held_until.is_some_and(|at| at <= now) {
                        self.held_until = None;
                        for frame in std::mem::take(&mut self.held) {
                            self.session.handle_frame(now, frame);
                        }
                    }
                    self.session.handle_timeout(now);
                }
                r = wake.changed(), if !self.unbinding && (self.receives || !self.pending.is_empty()) => {
                    if r.is_err() {
                        // The simulator is gone; end like a shutdown.
                        self.unbinding = true;
                        self.session.unbind(clock::now());
                    }
                }
            }
        }
    }

    /// The earliest of the machine's timer, a held bind, a delayed
    /// response and (on a receiving bind) the next delivery.
    fn deadline(&self) -> Option<Instant> {
        let mut d = self.session.poll_timeout();
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |x| x.min(t)));
            }
        };
        take(self.held_until);
        for p in &self.pending {
            take(Some(if p.after_receipt.is_some() {
                p.give_up.max(p.not_before)
            } else {
                p.not_before
            }));
        }
        if self.receives && !self.unbinding && !self.blocked {
            take(lock(&self.shared.outbound).next_due());
        }
        d
    }

    /// Backpressure: an ESME that floods submits without waiting for
    /// answers stops being read (TCP pushes back) while too many answers
    /// are pending.
    fn can_read(&self) -> bool {
        self.held.len() < MAX_HELD && self.pending.len() < MAX_PENDING
    }

    /// A whole, well-sized frame is already read and waits to be taken by
    /// a session still open with room to take it: the answers so far can
    /// wait for its own. Anything else (a frame still arriving, one too
    /// short to be one, a closing session) flushes them.
    fn frame_waiting(&self) -> bool {
        self.can_read()
            && !self.session.is_closed()
            && self.reader.decoder().holds_frame(self.reader.read_buffer())
    }

    fn on_frame(&mut self, item: Option<Result<Frame, crate::pdu::FrameError>>) {
        let now = clock::now();
        match item {
            Some(Ok(frame)) => {
                let delay = lock(&self.shared.scenario).bind_delay_ms;
                let is_bind = matches!(
                    frame.header.command_id,
                    CommandId::BIND_RECEIVER
                        | CommandId::BIND_TRANSMITTER
                        | CommandId::BIND_TRANSCEIVER
                );
                if self.held_until.is_some() {
                    self.held.push_back(frame.bytes);
                } else if is_bind && !self.bound && delay > 0 {
                    self.held_until = Some(now + Duration::from_millis(delay));
                    self.held.push_back(frame.bytes);
                } else {
                    self.session.handle_frame(now, frame.bytes);
                }
            }
            Some(Err(e)) => {
                tracing::debug!(bind = self.bind_no, error = %e, "sim connection: framing failed");
                if let Some(status) = e.status() {
                    let nack = Frame::from_pdu(&crate::pdu::Pdu::GenericNack, status, 0);
                    self.session.transmit_raw(nack.bytes);
                }
                self.session.handle_closed(now);
            }
            None => self.session.handle_closed(now),
        }
    }

    /// Writes the machine's frames (garbage included), and flushes them
    /// if `flush`; `false` when the transport failed.
    async fn write_out(&mut self, flush: bool) -> bool {
        if self.broken {
            while self.session.poll_transmit().is_some() {}
            return true;
        }
        while let Some(f) = self.session.poll_transmit() {
            if self.writer.write_all(&f.bytes).await.is_err() {
                return false;
            }
        }
        !flush || self.writer.flush().await.is_ok()
    }

    /// Moves due deliveries into the window while it has room.
    fn pump_deliveries(&mut self, now: Instant) {
        if self.blocked {
            return;
        }
        loop {
            if lock(&self.shared.outbound)
                .next_due()
                .is_none_or(|d| d > now)
            {
                return;
            }
            if self.session.poll_ready(now).is_err() {
                // A WindowOpen event follows when the machine takes more.
                self.blocked = true;
                return;
            }
            let Some(mut item) = lock(&self.shared.outbound).take_due(now) else {
                return;
            };
            match self.session.submit(now, &item.req) {
                Ok(_) => {
                    let c = &self.shared.counters;
                    bump(match item.kind {
                        OutKind::Receipt => &c.receipts_sent,
                        OutKind::Mo => &c.mos_sent,
                    });
                    if item.sends > 0 {
                        bump(&c.redelivered);
                    }
                    item.sends += 1;
                    let tag = item.req.tag;
                    if lock(&self.shared.outbound).awaited.remove(&tag) {
                        self.shared.wake();
                    }
                    self.in_flight.insert(tag, item);
                }
                Err(_) => {
                    lock(&self.shared.outbound).push_front(item);
                    self.blocked = true;
                    return;
                }
            }
        }
    }

    /// Sends the responses that are due, in arrival order.
    fn answer_due(&mut self, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let mut keep = VecDeque::with_capacity(self.pending.len());
        for p in std::mem::take(&mut self.pending) {
            let receipt_out = match p.after_receipt {
                None => true,
                Some(tag) => {
                    now >= p.give_up || !lock(&self.shared.outbound).awaited.contains(&tag)
                }
            };
            if p.not_before > now || !receipt_out {
                keep.push_back(p);
                continue;
            }
            if let Some(tag) = p.after_receipt {
                lock(&self.shared.outbound).awaited.remove(&tag);
            }
            if let Some(r) = lock(&self.shared.records).get_mut(p.record) {
                r.status = Some(p.status.0);
            }
            if let Err(e) = self
                .session
                .respond_with_id(p.token, p.status, &p.message_id)
            {
                tracing::debug!(bind = self.bind_no, error = %e, "sim: response not sent");
            }
        }
        self.pending = keep;
    }

    fn on_event(&mut self, ev: Event, now: Instant) -> Flow {
        let c = &self.shared.counters;
        match ev {
            Event::Bound { system_id, kind } => {
                self.bound = true;
                self.receives = kind.receives();
                bump(&c.binds);
                tracing::info!(bind = self.bind_no, peer = %self.peer, %system_id, kind = kind.as_str(), "sim: bound");
            }
            Event::Submit { token, frame } => return self.on_submit(token, &frame, now),
            Event::SubmitResp { tag, status, .. } => {
                let Some(mut item) = self.in_flight.remove(&tag) else {
                    return Flow::Continue;
                };
                if status == CommandStatus::ROK {
                    bump(match item.kind {
                        OutKind::Receipt => &c.receipts_acked,
                        OutKind::Mo => &c.mos_acked,
                    });
                } else {
                    bump(&c.deliveries_refused);
                    tracing::debug!(
                        bind = self.bind_no,
                        status = status.0,
                        "sim: deliver_sm refused; will retry"
                    );
                    item.due = now + REDELIVER_AFTER;
                    lock(&self.shared.outbound).push_front(item);
                }
            }
            Event::SubmitTimeout { tag, .. } => self.requeue(&[tag]),
            Event::WindowOpen => self.blocked = false,
            Event::Closed {
                reason,
                was_bound,
                unanswered,
            } => {
                self.requeue(&unanswered);
                self.unbound(was_bound);
                tracing::info!(
                    bind = self.bind_no,
                    reason = reason.as_str(),
                    "sim: session closed"
                );
                if let CloseReason::BindFailed(s) = reason {
                    tracing::info!(bind = self.bind_no, status = s.0, "sim: bind refused");
                }
            }
            // A late answer to a delivery that timed out: it was requeued
            // already and goes again, so it counts as unexpected.
            Event::UnexpectedResponse { .. }
            | Event::LateSubmitResp { .. }
            | Event::GenericNack { .. } => {
                bump(&c.unexpected_responses);
            }
            Event::Rejected {
                command_id, status, ..
            } => {
                bump(&c.rejected);
                tracing::debug!(
                    bind = self.bind_no,
                    command = command_id.0,
                    status = status.0,
                    "sim: request rejected"
                );
            }
            Event::Submitted { .. }
            | Event::Deliver { .. }
            | Event::BindFailed { .. }
            | Event::Throttled { .. }
            | Event::Quirks { .. }
            | Event::Ignored { .. } => {}
        }
        Flow::Continue
    }

    fn on_submit(&mut self, token: DeliverToken, frame: &[u8], now: Instant) -> Flow {
        let c = &self.shared.counters;
        bump(&c.submits);
        self.submits += 1;
        let sc = self.shared.scenario();
        let Some(view) = pdus::read_submit(frame) else {
            // The machine parsed it; this cannot happen. Answer anyway.
            let _ = self
                .session
                .respond_with_id(token, CommandStatus::RSYSERR, "");
            return Flow::Continue;
        };
        let mut record = ReceivedSubmit {
            index: 0,
            bind: self.bind_no,
            command: view.command.to_owned(),
            source: view.source.clone(),
            source_ton: view.source_ton,
            source_npi: view.source_npi,
            destination: view.destination.clone(),
            dest_ton: view.dest_ton,
            dest_npi: view.dest_npi,
            data_coding: view.data_coding,
            esm_class: view.esm_class,
            registered_delivery: view.registered_delivery,
            short_message_hex: pdus::hex(&view.octets),
            text: view.text.clone(),
            concat: view.concat,
            message_id: None,
            status: None,
        };
        tracing::debug!(bind = self.bind_no, text = %view.text, "sim: submit received");
        if sc.drop_every > 0 && self.submits % sc.drop_every == 0 {
            lock(&self.shared.records).push(record);
            bump(&c.drops);
            tracing::info!(
                bind = self.bind_no,
                submits = self.submits,
                "sim: dropping the connection mid-window"
            );
            drop(token);
            return Flow::Drop;
        }
        if sc.garbage_every > 0 && self.submits % sc.garbage_every == 0 {
            let id = if self.receives {
                CommandId::DELIVER_SM
            } else {
                GARBAGE_UNKNOWN_ID
            };
            let bytes = pdus::garbage(&mut lock(&self.shared.rng), id, self.garbage_seq);
            self.garbage_seq = self.garbage_seq.wrapping_add(1).max(0x7FFF_0000);
            self.session.transmit_raw(bytes);
            bump(&c.garbage_sent);
        }
        let status = {
            let mut rng = lock(&self.shared.rng);
            if rng.chance(sc.throttle) {
                CommandStatus::RTHROTTLED
            } else if rng.chance(sc.queue_full) {
                CommandStatus::RMSGQFUL
            } else {
                CommandStatus::ROK
            }
        };
        bump(match status {
            CommandStatus::RTHROTTLED => &c.throttled,
            CommandStatus::RMSGQFUL => &c.queue_full,
            _ => &c.accepted,
        });
        let mut message_id = String::new();
        let mut after_receipt = None;
        if status == CommandStatus::ROK {
            let n = self.shared.next_message_number();
            message_id = if sc.hex_ids {
                format!("{n:X}")
            } else {
                n.to_string()
            };
            record.message_id = Some(message_id.clone());
            let delivered = !sc.fails(&view.destination);
            let wanted = match view.registered_delivery & 0x03 {
                1 => true,
                2 => !delivered,
                _ => false,
            };
            if wanted {
                let receipt_id = if sc.hex_ids && sc.receipt_id_decimal {
                    n.to_string()
                } else {
                    message_id.clone()
                };
                let wall = clock::wall_ms();
                let delay = if sc.receipt_before_response {
                    0
                } else {
                    sc.receipt_delay_ms
                };
                let tag = self.shared.next_tag();
                let req = pdus::receipt_request(
                    tag,
                    &ReceiptSpec {
                        id: &receipt_id,
                        submit_source: (&view.source, view.source_ton, view.source_npi),
                        submit_destination: (&view.destination, view.dest_ton, view.dest_npi),
                        submit_ms: wall,
                        done_ms: wall + delay,
                        delivered,
                        text: &view.text,
                        with_tlvs: !sc.text_only_receipts,
                    },
                );
                let item = OutItem {
                    req,
                    kind: OutKind::Receipt,
                    due: now + Duration::from_millis(delay),
                    sends: 0,
                };
                let mut out = lock(&self.shared.outbound);
                match out.push(item) {
                    Ok(()) => {
                        if sc.receipt_before_response {
                            out.awaited.insert(tag);
                            after_receipt = Some(tag);
                        }
                        drop(out);
                        self.shared.wake();
                    }
                    Err(_) => {
                        drop(out);
                        bump(&c.receipts_dropped);
                        tracing::warn!("sim: delivery queue full; receipt dropped");
                    }
                }
            }
        }
        let index = lock(&self.shared.records).push(record);
        self.pending.push_back(PendingResp {
            token,
            status,
            message_id,
            not_before: now + Duration::from_millis(sc.resp_delay_ms),
            after_receipt,
            give_up: now + RECEIPT_FIRST_WAIT,
            record: index,
        });
        Flow::Continue
    }

    /// Puts deliveries that got no answer back at the head of the queue,
    /// in their order, for the next receiving bind.
    fn requeue(&mut self, tags: &[u64]) {
        let mut out = lock(&self.shared.outbound);
        let mut any = false;
        for tag in tags.iter().rev() {
            if let Some(item) = self.in_flight.remove(tag) {
                out.push_front(item);
                any = true;
            }
        }
        drop(out);
        if any {
            self.shared.wake();
        }
    }

    fn unbound(&mut self, was_bound: bool) {
        if was_bound && self.bound {
            self.bound = false;
            self.receives = false;
            self.shared.active_binds.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// After the loop: whatever is still in the window goes back to the
    /// queue, and the bind no longer counts.
    fn finish(&mut self) {
        if !self.session.is_closed() {
            self.session.handle_closed(clock::now());
        }
        // Events not acted on (the rest of a batch after a drop): only the
        // Closed one matters now.
        while let Some(ev) = self.session.poll_event() {
            if let Event::Closed {
                unanswered,
                was_bound,
                ..
            } = ev
            {
                self.requeue(&unanswered);
                self.unbound(was_bound);
            }
        }
        let mut rest: Vec<u64> = self.in_flight.keys().copied().collect();
        rest.sort_unstable();
        self.requeue(&rest);
        let bound = self.bound;
        self.unbound(bound);
        // Tokens of unanswered submits die with the connection.
        self.pending.clear();
        tracing::debug!(bind = self.bind_no, "sim connection ended");
    }
}
