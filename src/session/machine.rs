//! The sans-IO state machine of one SMPP bind, for either role: [`Esme`]
//! (the gateway) or [`Mc`] (the SMSC, played by the simulator).
//!
//! Pure: no tokio, no socket, no clock. Time comes in as `now`; PDUs come in
//! as whole frames and go out as [`Frame`]s; everything the shell must know
//! comes out as an [`Event`]; every protocol deadline is a timer whose
//! earliest expiry is [`Session::poll_timeout`].
//!
//! # Call order (quinn style)
//! The shell owns the transport and calls, in a loop:
//! 1. inputs, in any order, as they happen: [`Session::handle_frame`] for
//!    every frame read, [`Session::handle_timeout`] when the instant given by
//!    `poll_timeout` has passed, [`Session::handle_closed`] when the transport
//!    ended, and the commands [`Session::submit`], [`Session::respond`],
//!    [`Session::unbind`];
//! 2. then drains the outputs: [`Session::poll_transmit`] until `None` (write
//!    those frames, in order), [`Session::poll_event`] until `None`;
//! 3. then re-arms its single sleep to [`Session::poll_timeout`];
//! 4. once [`Session::is_closed`] is true and the transmit queue is empty,
//!    it closes the transport.
//!
//! Outputs produced by one input are only ever appended; draining them late
//! is safe, draining them never loses anything.
//!
//! # What the API guarantees
//! - A full window, a throttle pause or a bind that is not (yet) up is a
//!   value, [`Blocked`]; after every `Blocked` exactly one
//!   [`Event::WindowOpen`] follows when a submit may succeed again (unless
//!   the session closes first).
//! - Every accepted submit gets exactly one outcome: [`Event::SubmitResp`],
//!   [`Event::SubmitTimeout`], or its tag in [`Event::Closed::unanswered`].
//!   After a `SubmitTimeout`, at most one [`Event::LateSubmitResp`] may
//!   follow for the same tag, if its response arrives while the session
//!   still remembers it (the last [`late_memory`] timed-out requests).
//! - An incoming `deliver_sm`/`data_sm` is *not* acknowledged by the machine:
//!   it comes out as [`Event::Deliver`] with a [`DeliverToken`], and only
//!   [`Session::respond`] (which consumes the token) sends the
//!   `deliver_sm_resp`. Dropping the token leaves the PDU unacknowledged, so
//!   the SMSC delivers it again: the failure mode is a duplicate, never a loss.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::state::{
    BindKind, Esme, Mc, Role, Side, State, Verdict, has_response, is_known_request,
};
use super::status::{BindClass, BindFailure, Outcome, StatusTable, classify_bind_failure};
use super::throttle::{Throttle, ThrottleConfig};
use super::timers::{Timer, TimerTable};
use super::window::{SequenceGen, TimedOut, Window, late_memory};
use crate::pdu::{
    Bind, BindResp, CommandId, CommandStatus, Frame, Header, MessageIdResp, Pdu, Quirks,
};

/// The interface version we announce in binds: SMPP 3.4.
pub const INTERFACE_VERSION: u8 = 0x34;

/// The longest password SMPP 3.4 allows (9 octets with the NUL).
pub const SPEC_PASSWORD_MAX: usize = 8;

// ===== configuration =====

/// The credentials and bind parameters of one bind. `Debug` never shows the
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct BindParams {
    /// Transmitter, receiver or transceiver.
    pub kind: BindKind,
    /// Our identity at the SMSC.
    pub system_id: String,
    /// Sent exactly as configured, even when longer than the spec's 8
    /// characters (CARRIERS.md 6: never truncate silently). See
    /// [`BindParams::password_over_spec`].
    pub password: String,
    /// Type of ESME; some carriers check it (default empty).
    pub system_type: String,
    /// TON of `address_range`.
    pub addr_ton: u8,
    /// NPI of `address_range`.
    pub addr_npi: u8,
    /// Addresses served (receiver binds of some carriers need it).
    pub address_range: String,
}

impl std::fmt::Debug for BindParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindParams")
            .field("kind", &self.kind)
            .field("system_id", &self.system_id)
            .field("password", &"<redacted>")
            .field("system_type", &self.system_type)
            .field("addr_ton", &self.addr_ton)
            .field("addr_npi", &self.addr_npi)
            .field("address_range", &self.address_range)
            .finish()
    }
}

impl BindParams {
    /// A bind of `kind` with these credentials and everything else empty.
    pub fn new(kind: BindKind, system_id: impl Into<String>, password: impl Into<String>) -> Self {
        BindParams {
            kind,
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
        }
    }

    /// Whether the password is longer than SMPP 3.4 allows; it is still sent
    /// whole, and the shell should warn once.
    pub fn password_over_spec(&self) -> bool {
        self.password.len() > SPEC_PASSWORD_MAX
    }
}

/// Everything one session needs, with the defaults of CARRIERS.md 0-2.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Bind kind and credentials (the ESME sends them; the MC uses
    /// `system_id` as its own id in bind responses).
    pub bind: BindParams,
    /// Outstanding requests at most (carrier setting; default 10).
    pub window: usize,
    /// How long a submit waits for its response (default 60 s).
    pub response_timeout: Duration,
    /// How long the bind_resp may take; for the MC, how long a connection
    /// may stay unbound (default 30 s).
    pub bind_timeout: Duration,
    /// Send enquire_link after this long without hearing from the peer
    /// (default 30 s).
    pub enquire_link_interval: Duration,
    /// The enquire_link_resp must arrive within this, or the link is dead
    /// (default 10 s).
    pub enquire_link_timeout: Duration,
    /// Nothing at all received for this long: the link is dead (default
    /// 300 s, Kannel's connection-timeout).
    pub inactivity_timeout: Duration,
    /// On a local unbind, how long in-flight requests may take to be
    /// answered before `unbind` goes out anyway (default 10 s).
    pub drain_timeout: Duration,
    /// How long to wait for `unbind_resp` (default 10 s).
    pub unbind_timeout: Duration,
    /// Local rate (messages/s, every part counted) and the reaction to
    /// ESME_RTHROTTLED / ESME_RMSGQFUL.
    pub throttle: ThrottleConfig,
    /// What each submit status means on this carrier.
    pub status_table: StatusTable,
    /// The first sequence number (tests use it to reach the wrap quickly).
    pub first_sequence: u32,
}

impl SessionConfig {
    /// The defaults around these bind parameters.
    pub fn new(bind: BindParams) -> Self {
        SessionConfig {
            bind,
            window: 10,
            response_timeout: Duration::from_secs(60),
            bind_timeout: Duration::from_secs(30),
            enquire_link_interval: Duration::from_secs(30),
            enquire_link_timeout: Duration::from_secs(10),
            inactivity_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(10),
            unbind_timeout: Duration::from_secs(10),
            throttle: ThrottleConfig::default(),
            status_table: StatusTable::default(),
            first_sequence: 1,
        }
    }
}

/// A bind request as the MC sees it, for the credential check.
#[derive(Debug, Clone, Copy)]
pub struct BindAttempt<'a> {
    /// The bind kind asked for.
    pub kind: BindKind,
    /// The ESME's system_id.
    pub system_id: &'a [u8],
    /// The ESME's password (never log it).
    pub password: &'a [u8],
    /// The ESME's system_type.
    pub system_type: &'a [u8],
    /// The interface version the ESME announced.
    pub interface_version: u8,
}

/// Checks a bind; `ESME_ROK` accepts it, any other status refuses it.
pub type Authenticator = Box<dyn FnMut(&BindAttempt<'_>) -> CommandStatus + Send>;

/// Produces the `message_id` of each accepted message (decimal, hex, ...).
pub type MessageIdGen = Box<dyn FnMut() -> String + Send>;

/// What the MC role needs beyond [`SessionConfig`].
pub struct McConfig {
    /// Accepts or refuses binds.
    pub authenticate: Authenticator,
    /// Message ids for submit_sm_resp / data_sm_resp.
    pub message_ids: MessageIdGen,
    /// `true`: answer every submit_sm/data_sm at once with the next message
    /// id and report [`Event::Submitted`]. `false`: report
    /// [`Event::Submit`] with a token and let the shell answer (slow
    /// responses, throttling, errors).
    pub auto_answer: bool,
}

impl std::fmt::Debug for McConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McConfig")
            .field("auto_answer", &self.auto_answer)
            .finish_non_exhaustive()
    }
}

impl McConfig {
    /// Accepts exactly this system_id and password (`ESME_RINVSYSID`,
    /// `ESME_RINVPASWD` otherwise), numbers messages 1, 2, ... in decimal,
    /// answers submits at once.
    pub fn with_credentials(system_id: impl Into<String>, password: impl Into<String>) -> Self {
        let (id, pw) = (system_id.into(), password.into());
        let mut next: u64 = 0;
        McConfig {
            authenticate: Box::new(move |a| {
                if a.system_id != id.as_bytes() {
                    CommandStatus::RINVSYSID
                } else if a.password != pw.as_bytes() {
                    CommandStatus::RINVPASWD
                } else {
                    CommandStatus::ROK
                }
            }),
            message_ids: Box::new(move || {
                next += 1;
                next.to_string()
            }),
            auto_answer: true,
        }
    }
}

// ===== requests, tokens, events =====

/// A message-carrying request to send: submit_sm or data_sm (ESME),
/// deliver_sm or data_sm (MC), encoded once, plus the caller's tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitRequest {
    /// The caller's identifier of this message part; every outcome carries
    /// it back.
    pub tag: u64,
    /// The whole PDU as encoded, sequence number still 0.
    frame: Bytes,
    /// Its command id.
    command_id: CommandId,
}

impl SubmitRequest {
    /// Encodes `pdu` (its fields are written as given; limits are the
    /// caller's business) under `tag`.
    pub fn new(tag: u64, pdu: &Pdu<'_>) -> Self {
        let mut buf = BytesMut::new();
        pdu.encode(CommandStatus::ROK, 0, &mut buf);
        SubmitRequest {
            tag,
            frame: buf.freeze(),
            command_id: pdu.command_id(),
        }
    }

    /// The command this request sends.
    pub fn command_id(&self) -> CommandId {
        self.command_id
    }

    /// The encoded PDU (sequence number 0).
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

/// Why [`Session::submit`] took nothing. Each is temporary except
/// `NotAllowed`; after any of the others a [`Event::WindowOpen`] follows
/// when submitting may work again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    /// `window` requests are already outstanding.
    #[error("window full")]
    WindowFull,
    /// The local rate limit or a carrier throttle pause holds submits until
    /// `until`.
    #[error("throttled")]
    Throttled {
        /// When submitting may work again.
        until: Instant,
    },
    /// The bind is not up (yet).
    #[error("not bound")]
    NotBound,
    /// The session is unbinding or closed: take the work elsewhere.
    #[error("session closing")]
    Closing,
    /// This command may not be sent on this bind (a submit on a receiver).
    #[error("not allowed on this bind")]
    NotAllowed,
}

/// Why [`Session::respond`] sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RespondError {
    /// The token came from another session (a previous connection): its
    /// sequence number means nothing here. The peer will redeliver.
    #[error("token belongs to another session")]
    WrongSession,
    /// The session is closed; the peer will redeliver.
    #[error("session closed")]
    Closed,
}

/// The right, and the duty, to answer one incoming message-carrying request
/// (deliver_sm/data_sm to the ESME; submit_sm/data_sm to a manual MC).
/// Neither `Clone` nor `Copy`: exactly one response can be sent, and only
/// through [`Session::respond`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "an unanswered PDU is redelivered by the peer; call Session::respond once it is stored"]
pub struct DeliverToken {
    session: u64,
    seq: u32,
    command_id: CommandId,
}

impl DeliverToken {
    /// The sequence number of the request.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// The request's command id.
    pub fn command_id(&self) -> CommandId {
        self.command_id
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// We unbound: unbind_resp arrived, or the peer closed after our unbind.
    Unbound,
    /// Our unbind went unanswered within `unbind_timeout` (still a clean
    /// end from our side).
    UnbindTimeout,
    /// The peer sent `unbind`; we answered it.
    PeerUnbound,
    /// The bind was refused with this status (`ESME_RALYBND` included).
    BindFailed(CommandStatus),
    /// No bind_resp (ESME) or no bind (MC) in time.
    BindTimeout,
    /// Our enquire_link went unanswered.
    EnquireLinkTimeout,
    /// Nothing at all arrived for `inactivity_timeout`.
    Inactivity,
    /// The transport ended without an unbind.
    TransportClosed,
    /// The shell aborted the session without an unbind ([`Session::abort`]:
    /// a grace period ran out, or the simulator drops a connection).
    Aborted,
}

impl CloseReason {
    /// Stable lowercase name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Unbound => "unbound",
            CloseReason::UnbindTimeout => "unbind_timeout",
            CloseReason::PeerUnbound => "peer_unbound",
            CloseReason::BindFailed(_) => "bind_failed",
            CloseReason::BindTimeout => "bind_timeout",
            CloseReason::EnquireLinkTimeout => "enquire_link_timeout",
            CloseReason::Inactivity => "inactivity",
            CloseReason::TransportClosed => "transport_closed",
            CloseReason::Aborted => "aborted",
        }
    }

    /// Whether we ended the session on purpose.
    pub fn is_local_unbind(self) -> bool {
        matches!(self, CloseReason::Unbound | CloseReason::UnbindTimeout)
    }
}

/// What the machine tells the shell.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The bind is up. `system_id` is the peer's: the SMSC's (ESME side) or
    /// the ESME's (MC side).
    Bound {
        /// The peer's system_id.
        system_id: String,
        /// The bind kind.
        kind: BindKind,
    },
    /// ESME: the bind was refused by a bind_resp or generic_nack (a
    /// [`Event::Closed`] follows). `ESME_RALYBND` is a failure, not a
    /// success (unlike Kannel). A bind_resp that never comes is only
    /// `Closed { reason: BindTimeout }`.
    BindFailed {
        /// The status of the bind_resp or generic_nack.
        status: CommandStatus,
        /// How the link should back off.
        class: BindClass,
    },
    /// A request we sent (submit_sm/data_sm as ESME, deliver_sm/data_sm as
    /// MC) was answered, by its response or a matching generic_nack.
    SubmitResp {
        /// The caller's tag.
        tag: u64,
        /// Its sequence number.
        seq: u32,
        /// The status the peer answered.
        status: CommandStatus,
        /// What that status means on this carrier. `Throttled`/`QueueFull`:
        /// the bind is paused; put the message back at the head of the queue.
        outcome: Outcome,
        /// The SMSC's message id, when the response carried one.
        message_id: Option<String>,
    },
    /// A request we sent got no response in time; its outcome is unknown.
    SubmitTimeout {
        /// The caller's tag.
        tag: u64,
        /// Its sequence number. A response that arrives later is reported
        /// as [`Event::LateSubmitResp`] while the session remembers the
        /// request (the last [`late_memory`] of them), else as
        /// [`Event::UnexpectedResponse`].
        seq: u32,
    },
    /// The response (or a generic_nack) to a request that already timed
    /// out ([`Event::SubmitTimeout`] was reported for `tag`): its outcome
    /// is known after all. At most one per tag. The throttle does not react
    /// to it (its pause would come far too late).
    LateSubmitResp {
        /// The caller's tag, as in the `SubmitTimeout`.
        tag: u64,
        /// Its sequence number.
        seq: u32,
        /// The status the peer answered.
        status: CommandStatus,
        /// What that status means on this carrier.
        outcome: Outcome,
        /// The SMSC's message id, when the response carried one.
        message_id: Option<String>,
    },
    /// ESME: an incoming deliver_sm or data_sm (receipt or reply). Store it,
    /// then [`Session::respond`] with the token.
    Deliver {
        /// Consumed by `respond`.
        token: DeliverToken,
        /// The whole PDU; parse it with [`Pdu::parse`].
        frame: Bytes,
    },
    /// MC in manual mode: an incoming submit_sm or data_sm to answer with
    /// [`Session::respond_with_id`].
    Submit {
        /// Consumed by the response.
        token: DeliverToken,
        /// The whole PDU.
        frame: Bytes,
    },
    /// MC in auto mode: a submit_sm or data_sm was accepted under this id.
    Submitted {
        /// The id sent in the response.
        message_id: String,
        /// The whole PDU.
        frame: Bytes,
    },
    /// Submitting may work again after a [`Blocked`].
    WindowOpen,
    /// The carrier throttled us (ESME_RTHROTTLED or ESME_RMSGQFUL): the whole
    /// bind pauses until `until`.
    Throttled {
        /// When the pause ends.
        until: Instant,
        /// The status that caused it.
        status: CommandStatus,
    },
    /// A PDU needed leniency to decode; count each quirk.
    Quirks {
        /// The PDU's command id.
        command_id: CommandId,
        /// What was tolerated.
        quirks: Quirks,
    },
    /// A response matching nothing we sent (a duplicate, bogus, or late
    /// beyond what the session remembers): counted, never fatal.
    UnexpectedResponse {
        /// Its command id.
        command_id: CommandId,
        /// Its sequence number.
        seq: u32,
        /// Its status.
        status: CommandStatus,
    },
    /// A generic_nack matching nothing we sent (its seq may be 0).
    GenericNack {
        /// Its sequence number.
        seq: u32,
        /// Its status.
        status: CommandStatus,
    },
    /// We answered a peer's request with an error: wrong state, unknown
    /// command or an undecodable body.
    Rejected {
        /// The request's command id.
        command_id: CommandId,
        /// Its sequence number.
        seq: u32,
        /// The status we answered with.
        status: CommandStatus,
    },
    /// A request without a response (`outbind`, `alert_notification`) that
    /// this side does not act on; counted.
    Ignored {
        /// Its command id.
        command_id: CommandId,
        /// Its sequence number.
        seq: u32,
    },
    /// The session is over. Always the last event.
    Closed {
        /// Why.
        reason: CloseReason,
        /// Whether the bind had been up.
        was_bound: bool,
        /// Tags of requests still unanswered, in send order: their outcome
        /// is unknown; re-queue them (flagged as possible duplicates).
        unanswered: Vec<u64>,
    },
}

// ===== the machine =====

/// Session ids, so a token from one connection is refused by the next.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// One in-flight message-carrying request.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The caller's tag, handed back with the outcome.
    tag: u64,
    /// What was sent: only its own `*_resp` (or a generic_nack) answers it.
    command_id: CommandId,
    /// When it went out: the throttle ignores stale throttle answers.
    sent_at: Instant,
}

/// The state machine of one bind. See the module docs for the call order.
#[derive(Debug)]
pub struct Session<R: Role> {
    /// Distinguishes this session's tokens from any other's.
    id: u64,
    /// The role marker.
    _role: std::marker::PhantomData<R>,
    /// MC only: credentials check and message ids.
    mc: Option<McConfig>,
    /// Timeouts, window size, credentials, status table.
    cfg: SessionConfig,
    /// What the session expects next; decides the operation matrix.
    state: State,
    /// Message-carrying requests awaiting their response.
    window: Window<Pending>,
    /// Requests whose response timed out, for late responses (bounded by
    /// [`late_memory`] of the window).
    timed_out: TimedOut<Pending>,
    /// Outgoing sequence numbers, 1..=0x7FFFFFFF then 1 again.
    seqs: SequenceGen,
    /// Every protocol deadline; the earliest is `poll_timeout`.
    timers: TimerTable,
    /// Local rate and the pause after ESME_RTHROTTLED / ESME_RMSGQFUL.
    throttle: Throttle,
    /// The token bucket was empty; the next token is due then.
    token_due: Option<Instant>,
    /// Our bind request awaiting its response.
    bind_seq: Option<u32>,
    /// Our enquire_link awaiting its response.
    enquire_seq: Option<u32>,
    /// Our unbind awaiting its response.
    unbind_seq: Option<u32>,
    /// A `Blocked` was returned and its `WindowOpen` is still owed.
    owe_window_open: bool,
    /// Incoming requests handed out with a token and not answered yet: a
    /// local unbind waits for them too (under the same drain deadline), so
    /// what was stored gets acknowledged before the session ends.
    owed_responses: usize,
    /// The latest `now` seen, for commands that take none (`respond`).
    last_now: Instant,
    /// The bind had been up at some point.
    was_bound: bool,
    /// Frames for the shell to write, in order. Bounded in practice by the
    /// window and by the driver, which stops reading while it is long.
    transmit: VecDeque<Frame>,
    /// Events for the shell, in order (same bound as `transmit`).
    events: VecDeque<Event>,
    /// Scratch buffer the frames are split from.
    buf: BytesMut,
}

impl Session<Esme> {
    /// A session for a connection that was just opened: the bind request is
    /// queued at once.
    pub fn new(cfg: SessionConfig, now: Instant) -> Self {
        let mut s = Session::<Esme>::empty(cfg, None, now);
        s.send_bind(now);
        s
    }
}

impl Session<Mc> {
    /// An SMSC-side session for an accepted connection: it waits for a bind
    /// (at most `bind_timeout`).
    pub fn new(cfg: SessionConfig, mc: McConfig, now: Instant) -> Self {
        let mut s = Session::<Mc>::empty(cfg, Some(mc), now);
        s.timers.set(Timer::BindResp, now + s.cfg.bind_timeout);
        s
    }
}

impl<R: Role> Session<R> {
    fn empty(cfg: SessionConfig, mc: Option<McConfig>, now: Instant) -> Self {
        let mut timers = TimerTable::new();
        timers.set(Timer::Inactivity, now + cfg.inactivity_timeout);
        Session {
            id: NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
            _role: std::marker::PhantomData,
            mc,
            window: Window::new(cfg.window),
            timed_out: TimedOut::new(late_memory(cfg.window)),
            seqs: SequenceGen::starting_at(cfg.first_sequence),
            throttle: Throttle::new(cfg.throttle, now),
            token_due: None,
            cfg,
            state: State::Open,
            timers,
            bind_seq: None,
            enquire_seq: None,
            unbind_seq: None,
            owe_window_open: false,
            owed_responses: 0,
            last_now: now,
            was_bound: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            buf: BytesMut::new(),
        }
    }

    // === observers ===

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the session is over (flush `poll_transmit`, then close).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Requests outstanding in the window.
    pub fn in_flight(&self) -> usize {
        self.window.len()
    }

    /// Events not yet taken by [`Session::poll_event`] (the driver stops
    /// reading the socket while too many wait).
    pub fn events_pending(&self) -> usize {
        self.events.len()
    }

    /// Frames not yet taken by [`Session::poll_transmit`].
    pub fn transmit_pending(&self) -> usize {
        self.transmit.len()
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    // === outputs ===

    /// The next frame to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Frame> {
        self.transmit.pop_front()
    }

    /// The next event for the shell.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next().map(|(_, at)| at)
    }

    // === commands ===

    /// Whether a submit would be taken now, without taking one. Like
    /// `submit`, an `Err` here promises a later [`Event::WindowOpen`]. The
    /// local rate is only checked by `submit` itself.
    ///
    /// # Errors
    /// The [`Blocked`] reason `submit` would give (for any allowed command).
    pub fn poll_ready(&mut self, now: Instant) -> Result<(), Blocked> {
        let r = self.ready(now);
        if r.is_err() {
            self.owe_window_open = true;
        }
        r
    }

    fn ready(&self, now: Instant) -> Result<(), Blocked> {
        match self.state {
            State::Open | State::ExpectBindResp(_) => return Err(Blocked::NotBound),
            State::Draining(_) | State::ExpectUnbindResp(_) | State::Closed => {
                return Err(Blocked::Closing);
            }
            State::Bound(_) => {}
        }
        if self.window.is_full() {
            return Err(Blocked::WindowFull);
        }
        if let Some(until) = self.throttle.paused_until().filter(|&t| now < t) {
            return Err(Blocked::Throttled { until });
        }
        if let Some(until) = self.token_due.filter(|&t| now < t) {
            return Err(Blocked::Throttled { until });
        }
        Ok(())
    }

    /// Sends a message-carrying request; returns its sequence number.
    ///
    /// # Errors
    /// [`Blocked`]: nothing was sent; keep the request at the head of the
    /// queue and retry after [`Event::WindowOpen`].
    pub fn submit(&mut self, now: Instant, req: &SubmitRequest) -> Result<u32, Blocked> {
        // Binds, unbinds, enquire_links and responses have their own paths.
        if !is_known_request(req.command_id)
            || matches!(
                req.command_id,
                CommandId::BIND_TRANSMITTER
                    | CommandId::BIND_RECEIVER
                    | CommandId::BIND_TRANSCEIVER
                    | CommandId::UNBIND
                    | CommandId::ENQUIRE_LINK
                    | CommandId::OUTBIND
            )
        {
            return Err(Blocked::NotAllowed);
        }
        if let Some(kind) = self.state.bound_kind()
            && !R::may_send(State::Bound(kind), req.command_id)
        {
            return Err(Blocked::NotAllowed);
        }
        if let Err(b) = self.ready(now) {
            if b != Blocked::NotAllowed {
                self.owe_window_open = true;
                self.arm_throttle_timer(now);
            }
            return Err(b);
        }
        if !R::may_send(self.state, req.command_id) {
            return Err(Blocked::NotAllowed);
        }
        if let Err(until) = self.throttle.try_take(now) {
            self.token_due = Some(until);
            self.owe_window_open = true;
            self.arm_throttle_timer(now);
            return Err(Blocked::Throttled { until });
        }
        self.token_due = None;
        let seq = self.next_seq();
        let pending = Pending {
            tag: req.tag,
            command_id: req.command_id,
            sent_at: now,
        };
        if self
            .window
            .try_insert(seq, pending, now + self.cfg.response_timeout)
            .is_err()
        {
            // Unreachable: `ready` checked the window and `next_seq` skips
            // numbers in flight.
            self.owe_window_open = true;
            return Err(Blocked::WindowFull);
        }
        self.buf.extend_from_slice(&req.frame);
        if self.buf.len() >= Header::LEN {
            self.buf[12..16].copy_from_slice(&seq.to_be_bytes());
        }
        let header = Header {
            command_length: req.frame.len() as u32,
            command_id: req.command_id,
            command_status: CommandStatus::ROK,
            sequence_number: seq,
        };
        let bytes = self.buf.split().freeze();
        self.transmit.push_back(Frame { header, bytes });
        self.arm_response_timer();
        Ok(seq)
    }

    /// Answers an incoming message-carrying request: ESME: `deliver_sm_resp`
    /// / `data_sm_resp`; MC (manual mode): `submit_sm_resp` with the next
    /// generated message id. Call it only once what the PDU carried is
    /// stored; on a store failure answer `ESME_RX_T_APPN`, never `ESME_ROK`.
    ///
    /// # Errors
    /// [`RespondError`] when the token is from another session or the
    /// session is closed; the peer will redeliver.
    pub fn respond(
        &mut self,
        token: DeliverToken,
        status: CommandStatus,
    ) -> Result<(), RespondError> {
        self.check_token(&token)?;
        let id = match (R::SIDE, &mut self.mc) {
            (Side::Mc, Some(mc)) if status == CommandStatus::ROK => (mc.message_ids)(),
            _ => String::new(),
        };
        self.send_message_id_resp(token.command_id, token.seq, status, id.as_bytes());
        self.answered();
        Ok(())
    }

    /// Answers a request reported with a token with `status` and, when it
    /// is `ESME_ROK`, `message_id`: meant for the MC answering
    /// [`Event::Submit`] (an ESME's deliver_sm_resp carries an empty id; use
    /// [`Session::respond`]).
    ///
    /// # Errors
    /// [`RespondError`] when the token is from another session or the
    /// session is closed.
    pub fn respond_with_id(
        &mut self,
        token: DeliverToken,
        status: CommandStatus,
        message_id: &str,
    ) -> Result<(), RespondError> {
        self.check_token(&token)?;
        self.send_message_id_resp(token.command_id, token.seq, status, message_id.as_bytes());
        self.answered();
        Ok(())
    }

    /// Nothing in flight either way: a draining session may unbind.
    fn drained(&self) -> bool {
        self.window.is_empty() && self.owed_responses == 0
    }

    /// A token was answered: one response less owed; a draining session
    /// may now be done.
    fn answered(&mut self) {
        self.owed_responses = self.owed_responses.saturating_sub(1);
        let now = self.last_now;
        self.after_input(now);
    }

    fn check_token(&self, token: &DeliverToken) -> Result<(), RespondError> {
        if token.session != self.id {
            return Err(RespondError::WrongSession);
        }
        if self.state == State::Closed {
            return Err(RespondError::Closed);
        }
        Ok(())
    }

    /// Starts a graceful unbind: no new submits; in-flight requests get up
    /// to `drain_timeout` to be answered, and so do the tokens handed out
    /// (deliveries being stored); then `unbind` goes out and
    /// `unbind_resp` is awaited for `unbind_timeout`. Incoming PDUs are still
    /// handled throughout. Before the bind is up, the session just closes.
    pub fn unbind(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        match self.state {
            State::Bound(kind) => {
                self.state = State::Draining(kind);
                self.timers.stop(Timer::ThrottlePause);
                if self.drained() {
                    self.send_unbind(now);
                } else {
                    self.timers
                        .set(Timer::UnbindGrace, now + self.cfg.drain_timeout);
                }
            }
            State::Open | State::ExpectBindResp(_) => self.close(CloseReason::Unbound),
            State::Draining(_) | State::ExpectUnbindResp(_) | State::Closed => {}
        }
    }

    // === inputs ===

    /// Ends the session at once, without an unbind: what is in flight is
    /// handed back in [`Event::Closed`]. Frames already queued may still be
    /// written; the shell then closes the transport.
    pub fn abort(&mut self) {
        self.close(CloseReason::Aborted);
    }

    /// Queues `bytes` to be written as they are, outside the protocol: the
    /// simulator's garbage PDUs and tests. Nothing is tracked; a frame that
    /// is not even a header is still written.
    pub fn transmit_raw(&mut self, bytes: Bytes) {
        let header = Header::peek(&bytes).unwrap_or(Header {
            command_length: bytes.len() as u32,
            command_id: CommandId(0),
            command_status: CommandStatus::ROK,
            sequence_number: 0,
        });
        self.transmit.push_back(Frame { header, bytes });
    }

    /// The transport ended (EOF or error). After our unbind that is success.
    pub fn handle_closed(&mut self, _now: Instant) {
        match self.state {
            State::Closed => {}
            State::ExpectUnbindResp(_) => self.close(CloseReason::Unbound),
            _ => self.close(CloseReason::TransportClosed),
        }
    }

    /// Fires the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_expired(now) {
            if self.state == State::Closed {
                return;
            }
            match timer {
                Timer::BindResp => self.close(CloseReason::BindTimeout),
                Timer::EnquireLink => {
                    if self.state.bound_kind().is_some() && self.enquire_seq.is_none() {
                        let seq = self.next_seq();
                        self.enquire_seq = Some(seq);
                        self.send(&Pdu::EnquireLink, CommandStatus::ROK, seq);
                        self.timers
                            .set(Timer::EnquireLinkResp, now + self.cfg.enquire_link_timeout);
                    }
                }
                Timer::EnquireLinkResp => self.close(CloseReason::EnquireLinkTimeout),
                Timer::Inactivity => self.close(CloseReason::Inactivity),
                Timer::Response => {
                    for (seq, p) in self.window.expired(now) {
                        self.timed_out.remember(seq, p);
                        self.events
                            .push_back(Event::SubmitTimeout { tag: p.tag, seq });
                    }
                    self.arm_response_timer();
                }
                Timer::UnbindGrace => match self.state {
                    State::Draining(_) => self.send_unbind(now),
                    _ => self.close(CloseReason::UnbindTimeout),
                },
                Timer::ThrottlePause => {}
            }
        }
        self.after_input(now);
    }

    /// Handles one whole PDU as framed by [`crate::pdu::SmppCodec`] (header
    /// included). Never fails: what cannot be handled is answered or
    /// reported.
    pub fn handle_frame(&mut self, now: Instant, frame: Bytes) {
        if self.state == State::Closed {
            return;
        }
        self.timers
            .set(Timer::Inactivity, now + self.cfg.inactivity_timeout);
        if self.state.bound_kind().is_some() && self.enquire_seq.is_none() {
            self.timers
                .set(Timer::EnquireLink, now + self.cfg.enquire_link_interval);
        }
        let Some(header) = Header::peek(&frame) else {
            // The codec never yields this; answer as the spec asks anyway.
            self.reject(CommandId(0), 0, CommandStatus::RINVCMDLEN, true);
            return;
        };
        if header.command_id.is_response() {
            self.handle_response(now, header, &frame);
        } else {
            self.handle_request(now, header, frame);
        }
        self.after_input(now);
    }

    // === responses ===

    fn handle_response(&mut self, now: Instant, h: Header, frame: &[u8]) {
        let seq = h.sequence_number;
        let status = h.command_status;
        let decoded = Pdu::parse(frame);
        if let Ok(d) = &decoded
            && !d.quirks.is_empty()
        {
            self.events.push_back(Event::Quirks {
                command_id: h.command_id,
                quirks: d.quirks,
            });
        }
        let pdu = decoded.ok().map(|d| d.pdu);
        let is_nack = h.command_id == CommandId::GENERIC_NACK;

        if self.bind_seq == Some(seq) && (is_nack || BindKind::from_command(h.command_id).is_some())
        {
            self.bind_seq = None;
            self.timers.stop(Timer::BindResp);
            let ok = status == CommandStatus::ROK && !is_nack;
            if let (true, State::ExpectBindResp(kind)) = (ok, self.state) {
                let system_id = match pdu {
                    Some(
                        Pdu::BindTransmitterResp(b)
                        | Pdu::BindReceiverResp(b)
                        | Pdu::BindTransceiverResp(b),
                    ) => b.system_id.map(lossy).unwrap_or_default(),
                    _ => String::new(),
                };
                self.bound(now, kind, system_id);
            } else {
                // ESME_RALYBND included: without a bound session every
                // submit would fail (CARRIERS.md 1, Kannel's bug).
                // A refusal that says ROK (a generic_nack with status 0)
                // is still a refusal.
                let status = if status == CommandStatus::ROK {
                    CommandStatus::RSYSERR
                } else {
                    status
                };
                self.events.push_back(Event::BindFailed {
                    status,
                    class: classify_bind_failure(BindFailure::Status(status.0)).class,
                });
                self.close(CloseReason::BindFailed(status));
            }
            return;
        }
        if self.enquire_seq == Some(seq)
            && (is_nack || h.command_id == CommandId::ENQUIRE_LINK_RESP)
        {
            self.enquire_seq = None;
            self.timers.stop(Timer::EnquireLinkResp);
            self.timers
                .set(Timer::EnquireLink, now + self.cfg.enquire_link_interval);
            return;
        }
        if self.unbind_seq == Some(seq) && (is_nack || h.command_id == CommandId::UNBIND_RESP) {
            self.unbind_seq = None;
            self.close(CloseReason::Unbound);
            return;
        }
        let matches = self
            .window
            .get(seq)
            .is_some_and(|p| is_nack || p.command_id.response() == h.command_id);
        let late = if matches {
            None
        } else {
            self.timed_out
                .take_if(seq, |p| is_nack || p.command_id.response() == h.command_id)
                .map(|p| p.tag)
        };
        if let Some(tag) = late {
            self.events.push_back(Event::LateSubmitResp {
                tag,
                seq,
                status,
                outcome: self.cfg.status_table.classify(status.0),
                message_id: pdu.and_then(|p| response_message_id(&p)),
            });
            return;
        }
        if !matches {
            self.events.push_back(if is_nack {
                Event::GenericNack { seq, status }
            } else {
                Event::UnexpectedResponse {
                    command_id: h.command_id,
                    seq,
                    status,
                }
            });
            return;
        }
        let Some(p) = self.window.remove(seq) else {
            return;
        };
        self.arm_response_timer();
        let message_id = pdu.and_then(|p| response_message_id(&p));
        let outcome = self.cfg.status_table.classify(status.0);
        let resume = match outcome {
            Outcome::Throttled => Some(self.throttle.on_throttled(now, p.sent_at)),
            Outcome::QueueFull => Some(self.throttle.on_queue_full(now, p.sent_at)),
            _ => {
                self.throttle.on_accepted(now);
                None
            }
        };
        if let Some(until) = resume.filter(|&t| t > now) {
            self.events.push_back(Event::Throttled { until, status });
        }
        self.events.push_back(Event::SubmitResp {
            tag: p.tag,
            seq,
            status,
            outcome,
            message_id,
        });
    }

    // === requests ===

    fn handle_request(&mut self, now: Instant, h: Header, frame: Bytes) {
        let id = h.command_id;
        let seq = h.sequence_number;
        match R::on_receive(self.state, id) {
            Verdict::Accept => {}
            Verdict::Reject(status) => return self.reject(id, seq, status, false),
            Verdict::Unknown => {
                return self.reject(id, seq, CommandStatus::RINVCMDID, true);
            }
            Verdict::Ignore => {
                self.events.push_back(Event::Ignored {
                    command_id: id,
                    seq,
                });
                return;
            }
        }
        let decoded = match Pdu::parse(&frame) {
            Ok(d) => d,
            Err(e) => {
                return self.reject(id, seq, e.status(), !has_response(id));
            }
        };
        if !decoded.quirks.is_empty() {
            self.events.push_back(Event::Quirks {
                command_id: id,
                quirks: decoded.quirks,
            });
        }
        match decoded.pdu {
            Pdu::EnquireLink => self.send(&Pdu::EnquireLinkResp, CommandStatus::ROK, seq),
            Pdu::Unbind => {
                self.send(&Pdu::UnbindResp, CommandStatus::ROK, seq);
                self.close(CloseReason::PeerUnbound);
            }
            Pdu::BindTransmitter(b) | Pdu::BindReceiver(b) | Pdu::BindTransceiver(b) => {
                self.handle_bind(now, id, seq, &b);
            }
            Pdu::DeliverSm(_) | Pdu::DataSm(_) | Pdu::SubmitSm(_) => {
                let token = DeliverToken {
                    session: self.id,
                    seq,
                    command_id: id,
                };
                match (R::SIDE, self.mc.as_mut()) {
                    (Side::Esme, _) => {
                        self.owed_responses += 1;
                        self.events.push_back(Event::Deliver { token, frame });
                    }
                    (Side::Mc, Some(mc)) if mc.auto_answer => {
                        let message_id = (mc.message_ids)();
                        self.send_message_id_resp(
                            id,
                            seq,
                            CommandStatus::ROK,
                            message_id.as_bytes(),
                        );
                        self.events
                            .push_back(Event::Submitted { message_id, frame });
                    }
                    (Side::Mc, _) => {
                        self.owed_responses += 1;
                        self.events.push_back(Event::Submit { token, frame });
                    }
                }
            }
            // No response exists for these; nothing here acts on them.
            Pdu::AlertNotification(_) | Pdu::Outbind(_) => {
                self.events.push_back(Event::Ignored {
                    command_id: id,
                    seq,
                });
            }
            // query_sm, cancel_sm, replace_sm, submit_multi: valid requests
            // this machine does not serve.
            _ => self.reject(id, seq, CommandStatus::RINVCMDID, false),
        }
    }

    /// MC: a bind request in the open state.
    fn handle_bind(&mut self, now: Instant, id: CommandId, seq: u32, b: &Bind<'_>) {
        let Some(kind) = BindKind::from_command(id) else {
            return;
        };
        let attempt = BindAttempt {
            kind,
            system_id: b.system_id,
            password: b.password,
            system_type: b.system_type,
            interface_version: b.interface_version,
        };
        let status = match self.mc.as_mut() {
            Some(mc) => (mc.authenticate)(&attempt),
            None => CommandStatus::RINVBNDSTS,
        };
        let own_id = self.cfg.bind.system_id.clone();
        let resp = BindResp {
            system_id: Some(own_id.as_bytes()),
            tlvs: Default::default(),
        };
        let pdu = match kind {
            BindKind::Transmitter => Pdu::BindTransmitterResp(resp),
            BindKind::Receiver => Pdu::BindReceiverResp(resp),
            BindKind::Transceiver => Pdu::BindTransceiverResp(resp),
        };
        self.send(&pdu, status, seq);
        if status == CommandStatus::ROK {
            self.timers.stop(Timer::BindResp);
            self.bound(now, kind, lossy(b.system_id));
        } else {
            self.close(CloseReason::BindFailed(status));
        }
    }

    // === helpers ===

    fn bound(&mut self, now: Instant, kind: BindKind, system_id: String) {
        self.state = State::Bound(kind);
        self.was_bound = true;
        self.timers
            .set(Timer::EnquireLink, now + self.cfg.enquire_link_interval);
        self.events.push_back(Event::Bound { system_id, kind });
    }

    fn send_bind(&mut self, now: Instant) {
        let p = &self.cfg.bind;
        let bind = Bind {
            system_id: p.system_id.as_bytes(),
            password: p.password.as_bytes(),
            system_type: p.system_type.as_bytes(),
            interface_version: INTERFACE_VERSION,
            addr_ton: p.addr_ton,
            addr_npi: p.addr_npi,
            address_range: p.address_range.as_bytes(),
        };
        let kind = p.kind;
        let pdu = match kind {
            BindKind::Transmitter => Pdu::BindTransmitter(bind),
            BindKind::Receiver => Pdu::BindReceiver(bind),
            BindKind::Transceiver => Pdu::BindTransceiver(bind),
        };
        let seq = self.seqs.next_free(&self.window);
        pdu.encode(CommandStatus::ROK, seq, &mut self.buf);
        let bytes = self.buf.split().freeze();
        self.push_frame(bytes);
        self.bind_seq = Some(seq);
        self.state = State::ExpectBindResp(kind);
        self.timers
            .set(Timer::BindResp, now + self.cfg.bind_timeout);
    }

    fn send_unbind(&mut self, now: Instant) {
        let kind = self.state.bound_kind().unwrap_or(self.cfg.bind.kind);
        let seq = self.next_seq();
        self.unbind_seq = Some(seq);
        self.send(&Pdu::Unbind, CommandStatus::ROK, seq);
        self.state = State::ExpectUnbindResp(kind);
        self.timers
            .set(Timer::UnbindGrace, now + self.cfg.unbind_timeout);
    }

    /// A sequence number free in the window, not used by a pending control
    /// request and not remembered as timed out.
    fn next_seq(&mut self) -> u32 {
        loop {
            let seq = self.seqs.next_free(&self.window);
            // A number remembered as timed out is skipped too, so its late
            // response cannot be taken for another request's.
            if Some(seq) != self.bind_seq
                && Some(seq) != self.enquire_seq
                && Some(seq) != self.unbind_seq
                && !self.timed_out.contains(seq)
            {
                return seq;
            }
        }
    }

    /// Answers request `id` with an error status, header only: its
    /// `*_resp`, or a generic_nack when `nack` (unknown commands, requests
    /// without a response).
    fn reject(&mut self, id: CommandId, seq: u32, status: CommandStatus, nack: bool) {
        let answer = if nack || !has_response(id) {
            Pdu::GenericNack
        } else {
            Pdu::Other {
                command_id: id.response(),
                body: &[],
            }
        };
        self.send(&answer, status, seq);
        self.events.push_back(Event::Rejected {
            command_id: id,
            seq,
            status,
        });
    }

    /// submit_sm_resp / deliver_sm_resp / data_sm_resp. Error responses of
    /// submit_sm and data_sm carry no body (SMPP 3.4 4.4.2); deliver_sm_resp
    /// always carries its (empty) message_id.
    fn send_message_id_resp(
        &mut self,
        id: CommandId,
        seq: u32,
        status: CommandStatus,
        message_id: &[u8],
    ) {
        let body = MessageIdResp {
            message_id: (status == CommandStatus::ROK || id == CommandId::DELIVER_SM)
                .then_some(message_id),
            tlvs: Default::default(),
        };
        let pdu = match id {
            CommandId::SUBMIT_SM => Pdu::SubmitSmResp(body),
            CommandId::DATA_SM => Pdu::DataSmResp(body),
            _ => Pdu::DeliverSmResp(body),
        };
        self.send(&pdu, status, seq);
    }

    fn send(&mut self, pdu: &Pdu<'_>, status: CommandStatus, seq: u32) {
        pdu.encode(status, seq, &mut self.buf);
        let bytes = self.buf.split().freeze();
        self.push_frame(bytes);
    }

    fn push_frame(&mut self, bytes: Bytes) {
        if let Some(header) = Header::peek(&bytes) {
            self.transmit.push_back(Frame { header, bytes });
        }
    }

    fn arm_response_timer(&mut self) {
        match self.window.earliest_deadline() {
            Some(at) => self.timers.set(Timer::Response, at),
            None => self.timers.stop(Timer::Response),
        }
    }

    /// While a `WindowOpen` is owed because of the throttle, wake up when it
    /// ends.
    fn arm_throttle_timer(&mut self, now: Instant) {
        let paused = self.throttle.paused_until().filter(|&t| now < t);
        let due = self.token_due.filter(|&t| now < t);
        match paused.max(due) {
            Some(until) if self.owe_window_open => self.timers.set(Timer::ThrottlePause, until),
            _ => self.timers.stop(Timer::ThrottlePause),
        }
    }

    /// Bookkeeping after every input: the drain of a local unbind, and the
    /// `WindowOpen` owed after a `Blocked`.
    fn after_input(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if let State::Draining(_) = self.state
            && self.drained()
        {
            self.send_unbind(now);
        }
        if self.owe_window_open && self.state != State::Closed {
            if self.ready(now).is_ok() {
                self.owe_window_open = false;
                self.timers.stop(Timer::ThrottlePause);
                self.events.push_back(Event::WindowOpen);
            } else {
                self.arm_throttle_timer(now);
            }
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.timers.stop_all();
        self.owe_window_open = false;
        self.timed_out.clear();
        let unanswered = self
            .window
            .drain()
            .into_iter()
            .map(|(_, p)| p.tag)
            .collect();
        self.events.push_back(Event::Closed {
            reason,
            was_bound: self.was_bound,
            unanswered,
        });
    }
}

/// The message id a submit_sm/data_sm/deliver_sm response carries, if any
/// (an empty one counts as none).
fn response_message_id(pdu: &Pdu<'_>) -> Option<String> {
    match pdu {
        Pdu::SubmitSmResp(MessageIdResp { message_id, .. })
        | Pdu::DataSmResp(MessageIdResp { message_id, .. })
        | Pdu::DeliverSmResp(MessageIdResp { message_id, .. }) => {
            message_id.filter(|m| !m.is_empty()).map(lossy)
        }
        _ => None,
    }
}

/// A wire string as text; invalid UTF-8 is replaced, never an error.
fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Entry point for a `session_script` fuzz target: an ESME and an MC
/// machine in memory, driven by arbitrary bytes. Invariants: the window
/// never exceeds its size, every accepted submit gets exactly one outcome,
/// exactly one `Closed` ends the session, nothing panics. The target is
/// three lines: `fuzz_target!(|data: &[u8]| script(smppgw::clock::now(), data))`.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;
    use crate::pdu::SmBody;

    /// Runs the script in `data`, starting at virtual time `t0`.
    pub fn script(t0: Instant, data: &[u8]) {
        let mut cfg = SessionConfig::new(BindParams::new(BindKind::Transceiver, "gw", "pw"));
        cfg.window = 3;
        let window = cfg.window;
        let mc_cfg = SessionConfig::new(BindParams::new(BindKind::Transceiver, "SMSC", ""));
        let mut now = t0;
        let mut esme = Session::<Esme>::new(cfg, now);
        let mut mc = Session::<Mc>::new(
            mc_cfg,
            McConfig {
                auto_answer: false,
                ..McConfig::with_credentials("gw", "pw")
            },
            now,
        );
        let sm = SmBody {
            destination_addr: b"447911123456",
            short_message: b"x",
            ..SmBody::default()
        };
        let submit = Pdu::SubmitSm(sm);
        let deliver = Pdu::DeliverSm(sm);
        let (mut mc_tokens, mut esme_tokens) = (VecDeque::new(), VecDeque::new());
        let (mut accepted, mut events) = (Vec::new(), Vec::new());
        let mut tag = 0u64;
        let mut bytes = data.iter().copied();
        loop {
            // Move everything across, collect events.
            loop {
                let mut moved = false;
                while let Some(f) = esme.poll_transmit() {
                    moved = true;
                    mc.handle_frame(now, f.bytes);
                }
                while let Some(f) = mc.poll_transmit() {
                    moved = true;
                    esme.handle_frame(now, f.bytes);
                }
                while let Some(e) = mc.poll_event() {
                    moved = true;
                    if let Event::Submit { token, .. } = e {
                        mc_tokens.push_back(token);
                    }
                }
                while let Some(e) = esme.poll_event() {
                    moved = true;
                    match e {
                        Event::Deliver { token, .. } => esme_tokens.push_back(token),
                        e => events.push(e),
                    }
                }
                if !moved {
                    break;
                }
            }
            assert!(esme.in_flight() <= window, "window overrun");
            let Some(op) = bytes.next() else { break };
            let arg = bytes.next().unwrap_or(0);
            match op % 8 {
                0 => {
                    tag += 1;
                    if esme.submit(now, &SubmitRequest::new(tag, &submit)).is_ok() {
                        accepted.push(tag);
                    }
                }
                1 => {
                    if let Some(t) = mc_tokens.pop_front() {
                        let _ = mc.respond_with_id(t, CommandStatus(u32::from(arg % 0x60)), "m");
                    }
                }
                2 => {
                    let _ = mc.submit(now, &SubmitRequest::new(0, &deliver));
                }
                3 => {
                    if let Some(t) = esme_tokens.pop_front() {
                        let _ = esme.respond(t, CommandStatus::ROK);
                    }
                }
                4 => {
                    now += Duration::from_secs(u64::from(arg));
                    esme.handle_timeout(now);
                    mc.handle_timeout(now);
                }
                5 => esme.unbind(now),
                6 => esme.handle_closed(now),
                _ => {
                    let n = usize::from(arg % 32);
                    let body: Vec<u8> = bytes.by_ref().take(n).collect();
                    let id = u32::from(arg) << 24 | u32::from(op);
                    let mut f = BytesMut::new();
                    Pdu::Other {
                        command_id: CommandId(id),
                        body: &body,
                    }
                    .encode(CommandStatus::ROK, u32::from(arg), &mut f);
                    esme.handle_frame(now, f.freeze());
                }
            }
        }
        esme.handle_closed(now);
        while let Some(e) = esme.poll_event() {
            events.push(e);
        }
        let mut outcomes = std::collections::HashMap::<u64, u32>::new();
        let mut timed_out = std::collections::HashSet::<u64>::new();
        let mut closes = 0;
        for e in &events {
            match e {
                Event::SubmitTimeout { tag, .. } => {
                    timed_out.insert(*tag);
                    *outcomes.entry(*tag).or_default() += 1;
                }
                Event::LateSubmitResp { tag, .. } => {
                    assert!(
                        timed_out.remove(tag),
                        "a late response without a timeout (or twice) for tag {tag}"
                    );
                }
                Event::SubmitResp { tag, .. } => {
                    *outcomes.entry(*tag).or_default() += 1;
                }
                Event::Closed { unanswered, .. } => {
                    closes += 1;
                    for t in unanswered {
                        *outcomes.entry(*t).or_default() += 1;
                    }
                }
                _ => {}
            }
        }
        assert_eq!(closes, 1, "exactly one Closed");
        assert!(
            matches!(events.last(), Some(Event::Closed { .. })),
            "Closed is last"
        );
        assert_eq!(
            outcomes.len(),
            accepted.len(),
            "an outcome for a tag never accepted"
        );
        for t in accepted {
            assert_eq!(outcomes.get(&t), Some(&1), "tag {t}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{SmBody, Tlvs};

    fn cfg() -> SessionConfig {
        SessionConfig::new(BindParams::new(BindKind::Transceiver, "gw", "secret"))
    }

    fn encode(pdu: &Pdu<'_>, status: CommandStatus, seq: u32) -> Bytes {
        let mut b = BytesMut::new();
        pdu.encode(status, seq, &mut b);
        b.freeze()
    }

    fn raw(id: CommandId, status: CommandStatus, seq: u32, body: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
        b.extend_from_slice(&id.0.to_be_bytes());
        b.extend_from_slice(&status.0.to_be_bytes());
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(body);
        b.freeze()
    }

    fn events<R: Role>(s: &mut Session<R>) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event())
            .filter(|e| !matches!(e, Event::Quirks { .. }))
            .collect()
    }

    fn submit() -> SubmitRequest {
        let body = SmBody {
            destination_addr: b"447911123456",
            short_message: b"hi",
            ..SmBody::default()
        };
        SubmitRequest::new(1, &Pdu::SubmitSm(body))
    }

    /// An ESME bound by a hand-made bind_resp.
    fn bound(cfg: SessionConfig, now: Instant) -> Session<Esme> {
        let mut s = Session::<Esme>::new(cfg, now);
        let bind = s.poll_transmit().unwrap();
        let resp = Pdu::BindTransceiverResp(BindResp {
            system_id: Some(b"SMSC"),
            tlvs: Tlvs::default(),
        });
        s.handle_frame(
            now,
            encode(&resp, CommandStatus::ROK, bind.header.sequence_number),
        );
        assert!(matches!(events(&mut s)[..], [Event::Bound { .. }]));
        s
    }

    #[test]
    fn enquire_link_is_not_sent_before_bind() {
        let now = crate::clock::now();
        let mut s = Session::<Esme>::new(cfg(), now);
        let _bind = s.poll_transmit();
        let mut t = now;
        while let Some(at) = s.poll_timeout() {
            t = at;
            s.handle_timeout(t);
        }
        assert!(
            s.poll_transmit().is_none(),
            "something was sent while unbound"
        );
        assert_eq!(t, now + cfg().bind_timeout);
        assert!(matches!(
            events(&mut s)[..],
            [Event::Closed {
                reason: CloseReason::BindTimeout,
                was_bound: false,
                ..
            }]
        ));
    }

    #[test]
    fn generic_nack_to_bind_is_a_refusal() {
        let now = crate::clock::now();
        let mut s = Session::<Esme>::new(cfg(), now);
        let seq = s.poll_transmit().unwrap().header.sequence_number;
        s.handle_frame(
            now,
            encode(&Pdu::GenericNack, CommandStatus::RINVBNDSTS, seq),
        );
        let ev = events(&mut s);
        assert_eq!(
            ev[0],
            Event::BindFailed {
                status: CommandStatus::RINVBNDSTS,
                class: BindClass::Transient
            }
        );
        assert!(s.is_closed());
    }

    #[test]
    fn bind_fail_with_one_octet_body_is_a_refusal() {
        let now = crate::clock::now();
        let mut s = Session::<Esme>::new(cfg(), now);
        let seq = s.poll_transmit().unwrap().header.sequence_number;
        s.handle_frame(
            now,
            raw(
                CommandId::BIND_TRANSCEIVER_RESP,
                CommandStatus::RBINDFAIL,
                seq,
                &[0],
            ),
        );
        assert_eq!(
            events(&mut s)[0],
            Event::BindFailed {
                status: CommandStatus::RBINDFAIL,
                class: BindClass::Misconfigured
            }
        );
    }

    #[test]
    fn blocked_poll_ready_is_followed_by_window_open() {
        let now = crate::clock::now();
        let mut c = cfg();
        c.window = 1;
        let mut s = bound(c, now);
        let seq = s.submit(now, &submit()).unwrap();
        assert_eq!(s.poll_ready(now), Err(Blocked::WindowFull));
        let resp = Pdu::SubmitSmResp(MessageIdResp {
            message_id: Some(b"0A1B"),
            tlvs: Tlvs::default(),
        });
        s.handle_frame(now, encode(&resp, CommandStatus::ROK, seq));
        let ev = events(&mut s);
        assert!(matches!(&ev[0], Event::SubmitResp { message_id: Some(m), .. } if m == "0A1B"));
        assert_eq!(ev[1], Event::WindowOpen);
        assert_eq!(ev.len(), 2, "exactly one WindowOpen");
    }

    fn submit_resp(id: &[u8], seq: u32) -> Bytes {
        let resp = Pdu::SubmitSmResp(MessageIdResp {
            message_id: Some(id),
            tlvs: Tlvs::default(),
        });
        encode(&resp, CommandStatus::ROK, seq)
    }

    #[test]
    fn late_resp_is_matched_to_its_timed_out_submit_by_tag() {
        let now = crate::clock::now();
        let mut s = bound(cfg(), now);
        let mut req = submit();
        req.tag = 77;
        let seq = s.submit(now, &req).unwrap();
        let later = now + s.config().response_timeout;
        s.handle_timeout(later);
        assert_eq!(events(&mut s), vec![Event::SubmitTimeout { tag: 77, seq }]);
        s.handle_frame(later, submit_resp(b"1F", seq));
        assert_eq!(
            events(&mut s),
            vec![Event::LateSubmitResp {
                tag: 77,
                seq,
                status: CommandStatus::ROK,
                outcome: Outcome::Ok,
                message_id: Some("1F".into()),
            }]
        );
        // A response to a number never sent stays unmatched.
        s.handle_frame(later, submit_resp(b"20", seq + 5));
        assert!(matches!(
            events(&mut s)[..],
            [Event::UnexpectedResponse { seq: q, .. }] if q == seq + 5
        ));
        assert!(matches!(s.state(), State::Bound(_)));
    }

    #[test]
    fn late_memory_is_bounded_and_its_numbers_are_not_reused() {
        let now = crate::clock::now();
        let mut c = cfg();
        c.window = 1;
        // Short, so every timeout passes before an enquire_link is due.
        c.response_timeout = Duration::from_millis(100);
        let keep = late_memory(1);
        let mut s = bound(c, now);
        let mut t = now;
        let mut seqs = Vec::new();
        for tag in 0..=keep as u64 {
            let mut req = submit();
            req.tag = tag;
            let seq = s.submit(t, &req).unwrap();
            assert!(!seqs.contains(&seq), "a remembered number was reused");
            seqs.push(seq);
            t += s.config().response_timeout;
            s.handle_timeout(t);
            // Drain the transmit queue and the events.
            while s.poll_transmit().is_some() {}
            events(&mut s);
        }
        // The first was forgotten (one past the memory): unmatched.
        s.handle_frame(t, submit_resp(b"1", seqs[0]));
        assert!(matches!(
            events(&mut s)[..],
            [Event::UnexpectedResponse { .. }]
        ));
        // The second is still remembered.
        s.handle_frame(t, submit_resp(b"2", seqs[1]));
        assert!(matches!(
            events(&mut s)[..],
            [Event::LateSubmitResp { tag: 1, .. }]
        ));
    }

    #[test]
    fn response_of_another_command_does_not_complete_a_submit() {
        let now = crate::clock::now();
        let mut s = bound(cfg(), now);
        let seq = s.submit(now, &submit()).unwrap();
        let wrong = Pdu::DeliverSmResp(MessageIdResp {
            message_id: Some(b""),
            tlvs: Tlvs::default(),
        });
        s.handle_frame(now, encode(&wrong, CommandStatus::ROK, seq));
        assert!(matches!(
            events(&mut s)[..],
            [Event::UnexpectedResponse {
                command_id: CommandId::DELIVER_SM_RESP,
                ..
            }]
        ));
        assert_eq!(s.in_flight(), 1);
    }

    #[test]
    fn respond_after_close_is_refused() {
        let now = crate::clock::now();
        let mut s = bound(cfg(), now);
        let deliver = Pdu::DeliverSm(SmBody {
            short_message: b"x",
            ..SmBody::default()
        });
        s.handle_frame(now, encode(&deliver, CommandStatus::ROK, 9));
        let token = match events(&mut s).pop() {
            Some(Event::Deliver { token, .. }) => token,
            other => panic!("{other:?}"),
        };
        s.handle_closed(now);
        assert_eq!(
            s.respond(token, CommandStatus::ROK),
            Err(RespondError::Closed)
        );
    }

    #[test]
    fn mc_answers_second_bind_with_already_bound_and_stays_bound() {
        let now = crate::clock::now();
        let mut mc = Session::<Mc>::new(cfg(), McConfig::with_credentials("gw", "secret"), now);
        let bind = Pdu::BindTransmitter(Bind {
            system_id: b"gw",
            password: b"secret",
            interface_version: INTERFACE_VERSION,
            ..Bind::default()
        });
        mc.handle_frame(now, encode(&bind, CommandStatus::ROK, 1));
        mc.handle_frame(now, encode(&bind, CommandStatus::ROK, 2));
        let statuses: Vec<_> = std::iter::from_fn(|| mc.poll_transmit())
            .map(|f| (f.header.sequence_number, f.header.command_status))
            .collect();
        assert_eq!(
            statuses,
            [(1, CommandStatus::ROK), (2, CommandStatus::RALYBND)]
        );
        assert_eq!(mc.state(), State::Bound(BindKind::Transmitter));
    }

    #[test]
    fn rejects_control_pdus_through_submit() {
        let now = crate::clock::now();
        let mut s = bound(cfg(), now);
        for pdu in [Pdu::EnquireLink, Pdu::Unbind, Pdu::GenericNack] {
            let req = SubmitRequest::new(1, &pdu);
            assert_eq!(s.submit(now, &req), Err(Blocked::NotAllowed), "{pdu:?}");
        }
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn abort_hands_back_in_flight_without_unbind() {
        let now = crate::clock::now();
        let mut s = bound(cfg(), now);
        s.submit(now, &submit()).unwrap();
        let _ = s.poll_transmit();
        s.abort();
        assert!(s.poll_transmit().is_none(), "abort sent something");
        assert!(matches!(
            &events(&mut s)[..],
            [Event::Closed { reason: CloseReason::Aborted, unanswered, .. }] if unanswered == &[1]
        ));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn fuzz_script_holds_on_sample_inputs() {
        let t0 = crate::clock::now();
        fuzzing::script(t0, &[]);
        fuzzing::script(
            t0,
            &[0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 4, 60, 0, 0, 5, 0, 4, 20],
        );
        fuzzing::script(t0, &[2, 0, 3, 0, 0, 0, 1, 0x58, 0, 0, 7, 9, 1, 2, 3, 6, 0]);
        let pseudo: Vec<u8> = (0u32..4000)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for chunk in pseudo.chunks(97) {
            fuzzing::script(t0, chunk);
        }
    }

    #[test]
    fn alert_notification_is_ignored_without_answer() {
        let now = crate::clock::now();
        let mut s = bound(cfg(), now);
        s.handle_frame(
            now,
            raw(
                CommandId::ALERT_NOTIFICATION,
                CommandStatus::ROK,
                4,
                b"\0\0\0\0\0\0",
            ),
        );
        assert!(s.poll_transmit().is_none());
        assert!(matches!(
            events(&mut s)[..],
            [Event::Ignored { seq: 4, .. }]
        ));
    }
}
