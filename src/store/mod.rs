//! The durable state behind the narrow `Store` interface, with its sled implementation.
//!
//! [`Store`] is what the layers above (agent server, link, daemon) call. It is
//! async so a networked backend (PostgreSQL) fits beside [`SledStore`]; every
//! mutating call commits its writes as one batch (a message, its outbox entry
//! and its event together) and returns only once they are durable. Event
//! sequence numbers are handed out in commit order. Outbox work is claimed
//! with a lease that lapses, so a dead bind's (or host's) work is taken over.
//!
//! Errors: the outer [`StoreError`] is fail-stop; expected conditions come
//! back as nested `Result`s or outcome enums.
//!
//! Files: `trees.rs` (key layouts), `value.rs` (versioned values), `commit.rs`
//! (group commit), `wal.rs` (the write-ahead log that makes a commit
//! durable), `overlay.rs` (committed writes not yet applied to sled),
//! `journal.rs` (the event stream's files, beside sled), `compact.rs`
//! (the offline rewrite into a fresh sled),
//! `derived.rs` (entry counts kept by every commit, the index trees' build),
//! `sled.rs` (the sled backend), `error.rs`.

mod commit;
mod compact;
mod derived;
mod error;
mod journal;
mod overlay;
mod sled;
mod trees;
mod value;
mod wal;

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use self::compact::{CompactReport, compact, compact_path};
pub use self::error::{StoreError, StoreResult};
pub use self::sled::{DEFAULT_CACHE_MB, SledStore, StoreOptions, StoreStats};
pub use crate::conversation::rules::{ChatRefused, InboundPolicy, SendRefused};
use crate::model::{
    Conversation, ConversationId, Event, EventKind, Message, MessageId, MessageStatus, OptOut,
    ReceiptUpdate, Seq, Template,
};

// === Inputs and outcomes ===

/// An agent's message to store and send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOutbound {
    /// Service name.
    pub service: String,
    /// The service's sender (number or alphanumeric id).
    pub sender: String,
    /// Customer, E.164.
    pub customer: String,
    /// Sending agent (becomes the owner).
    pub owner: String,
    /// Contact-center interaction id.
    pub interaction: Option<String>,
    /// Text.
    pub text: String,
    /// Encoding chosen by the text planner.
    pub encoding: String,
    /// Number of parts planned (0 is taken as 1).
    pub parts: u8,
    /// Carrier route.
    pub carrier: String,
    /// Idempotency key, scoped to the agent.
    pub client_ref: Option<String>,
    /// Conversation the agent named, if any.
    pub conversation: Option<ConversationId>,
    /// Refuse the send ([`SendRefused::OutboxFull`]) when the outbox
    /// already holds this many entries for its carrier
    /// (`store.outbox_limit`); `None`: no bound.
    pub outbox_limit: Option<u64>,
}

/// A send stored durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// Conversation it went into.
    pub conversation: ConversationId,
    /// Message id.
    pub message: MessageId,
    /// Acceptance time (ms); the first acceptance's for a duplicate.
    pub at_ms: u64,
    /// The client_ref was seen before: nothing new was stored.
    pub duplicate: bool,
}

/// Why the gateway itself texts a customer (no agent wrote it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemReason {
    /// The service's `optout_confirmation`, answering an opt-out keyword.
    /// Sent even though the customer is opted out, once per opt-out.
    OptOutConfirmation,
    /// The service's `help_text`, answering a help keyword.
    Help,
}

/// A message the gateway sends on its own (keyword answers): stored like
/// an agent's send but with no agent, never taking a conversation over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemOutbound {
    /// Service name.
    pub service: String,
    /// The service's sender.
    pub sender: String,
    /// Customer, E.164.
    pub customer: String,
    /// Text.
    pub text: String,
    /// Encoding chosen by the text planner.
    pub encoding: String,
    /// Number of parts planned (0 is taken as 1).
    pub parts: u8,
    /// Carrier route.
    pub carrier: String,
    /// The conversation the keyword reply went into, if any. When it is
    /// missing, ended or with someone else, the open conversation of
    /// (sender, customer) is used, else an ended one of its own.
    pub conversation: Option<ConversationId>,
    /// The customer's message this answers: a help answer is sent once per
    /// such message (an opt-out confirmation is once per opt-out anyway).
    pub in_reply_to: Option<MessageId>,
    /// Why it is sent.
    pub reason: SystemReason,
}

/// Why a system message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SystemRefused {
    /// A help answer to a customer who opted out of this sender.
    #[error("customer opted out")]
    OptedOut {
        /// Since when (ms).
        since_ms: u64,
    },
    /// An opt-out confirmation, but the customer is not opted out (any
    /// more): they opted back in before it was stored.
    #[error("customer is not opted out")]
    NotOptedOut,
}

/// An outbox entry claimed by a bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    /// Message id.
    pub message: MessageId,
    /// Conversation id.
    pub conversation: ConversationId,
    /// Service name.
    pub service: String,
    /// Sender (source address).
    pub sender: String,
    /// Customer (destination), E.164.
    pub customer: String,
    /// Text to plan and send.
    pub text: String,
    /// Encoding planned at acceptance.
    pub encoding: String,
    /// Parts planned at acceptance.
    pub parts: u8,
    /// Carrier route.
    pub carrier: String,
    /// Claims so far, this one included (1 on the first).
    pub attempt: u32,
    /// It may have gone out already (a lease lapsed or the daemon crashed).
    pub possible_duplicate: bool,
    /// The lease ends here (ms): after it, another claim may take the item.
    pub lease_until_ms: u64,
    /// When the message was accepted (ms), for the accept→response metric.
    pub accepted_ms: u64,
}

/// A `submit_sm_resp` with an error status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitFailure {
    /// SMPP command_status.
    pub status: u32,
    /// Retrying will not help: the message fails.
    pub permanent: bool,
}

/// One `submit_sm_resp` to record (see [`Store::record_submit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitRecord {
    /// The message.
    pub message: MessageId,
    /// Part, 0-based.
    pub part: u8,
    /// Parts the message went out in.
    pub total_parts: u8,
    /// The normalised carrier id, or the failure.
    pub result: Result<String, SubmitFailure>,
}

/// One receipt to apply (see [`Store::record_receipt_any`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRecord {
    /// Candidate forms of the carrier's id, normal form first.
    pub candidates: Vec<String>,
    /// What the receipt says.
    pub update: ReceiptUpdate,
}

/// What `record_submit` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Recorded; other parts are still unanswered.
    Pending {
        /// Parts answered so far.
        answered: u8,
        /// Parts in all.
        total: u8,
    },
    /// Every part answered; the outbox entry is gone. `status` is usually
    /// `submitted` (or later, when held receipts applied at once).
    Done {
        /// Message status now.
        status: MessageStatus,
        /// Held receipts applied with this response.
        receipts_applied: usize,
    },
    /// A permanent failure: the message failed, its outbox entry is gone;
    /// do not send its other parts.
    Failed,
    /// A temporary failure: nothing recorded; the link releases or retries.
    Retry,
    /// Unknown message or part out of range: nothing recorded.
    Ignored,
}

/// What `release_unanswered` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Back in the outbox, flagged possible duplicate: it will be sent again.
    Released {
        /// Unknown outcomes of this message so far, this one included.
        unknown: u32,
    },
    /// More unknown outcomes than `max_resubmits`: it is not sent again.
    /// The message left the outbox with status `unknown` and a
    /// `message_failed` event (state `no_receipt`); a late response or
    /// receipt can still settle it.
    GaveUp {
        /// Unknown outcomes of this message, this one included.
        unknown: u32,
    },
    /// Not in the outbox (finished meanwhile): nothing changed.
    NotFound,
}

/// What `record_receipt` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Applied to a message part.
    Applied {
        /// Message id.
        message: MessageId,
        /// Message status afterwards.
        status: MessageStatus,
        /// When the message was submitted (every part answered OK), for
        /// the submit-to-receipt time; `None` if it never was.
        submitted_ms: Option<u64>,
    },
    /// No submit with that id yet: held until its response lands (or it ages out).
    Held,
    /// The part already had this (or a final) state: nothing changed.
    Duplicate,
}

/// What `expire_pending` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpireReport {
    /// Messages turned `unknown` (no receipt in time).
    pub no_receipt: usize,
    /// Held receipts dropped unmatched.
    pub held_dropped: usize,
    /// The call stopped at [`EXPIRE_CHUNK`] entries with more already due:
    /// call again (each call is one transaction, so commits run between).
    pub more: bool,
}

/// The most due entries (receipt waits and held receipts together) one
/// [`Store::expire_pending`] call handles. A carrier that sent no receipts
/// for a day, or a flood of receipts for ids never submitted, makes many
/// due at once; one transaction over all of them held the writer lock (every
/// send and receipt waited) and the overlay grew by all of them at once.
pub const EXPIRE_CHUNK: usize = 1_000;

/// A keyword change carried by an inbound message (from `optout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptChange {
    /// STOP-style: record an opt-out.
    Out,
    /// START-style: clear it.
    In,
}

/// A customer's text (reassembled) to file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Service the sender number belongs to.
    pub service: String,
    /// The number it was sent to (a service's sender).
    pub sender: String,
    /// The customer, E.164.
    pub customer: String,
    /// Text.
    pub text: String,
    /// Encoding it came in.
    pub encoding: String,
    /// Parts it came in.
    pub parts: u8,
    /// Parts missing at the reassembly timeout.
    pub incomplete: bool,
    /// Opt-out keyword found by the caller.
    pub opt: Option<OptChange>,
}

/// Where an inbound message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundOutcome {
    /// Into an open (or requested) conversation.
    Matched {
        /// Conversation.
        conversation: ConversationId,
        /// New message id.
        message: MessageId,
        /// Who gets it ("" for a request nobody took yet).
        owner: String,
    },
    /// A new `requested` conversation.
    ChatRequested {
        /// Conversation.
        conversation: ConversationId,
        /// New message id.
        message: MessageId,
    },
    /// Dropped per policy (an opt change is still recorded).
    Ignored,
}

/// A template to create (`id: None`) or replace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTemplate {
    /// Existing id to replace, or None to create.
    pub id: Option<u64>,
    /// Owning agent.
    pub agent: String,
    /// Service limit.
    pub service: Option<String>,
    /// Name.
    pub name: String,
    /// Text.
    pub text: String,
}

/// Why a template write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TemplateRefused {
    /// No template with that id belongs to that agent.
    #[error("template not found")]
    NotFound,
    /// A new template would be one more than the agent may keep.
    #[error("the agent already has {max} templates, the most allowed")]
    TooMany {
        /// The most an agent may keep.
        max: usize,
    },
}

/// What `recover` found at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoverReport {
    /// Leased outbox items made claimable again, flagged possible duplicates.
    pub released_leases: usize,
    /// Outbox items kept waiting out their resend delay (see
    /// [`Store::release_unanswered`]): claimable, flagged, once it is over.
    pub resting: usize,
    /// Outbox entries in all.
    pub outbox: usize,
    /// Messages waiting for a final receipt.
    pub awaiting_receipts: usize,
    /// Receipts held for a submit response.
    pub held_receipts: usize,
    /// Last event seq.
    pub last_seq: Seq,
}

/// One page of a conversation's transcript ([`Store::transcript_page`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptPage {
    /// The conversation.
    pub conversation: Conversation,
    /// The page's messages, oldest first.
    pub messages: Vec<Message>,
    /// When older messages exist: the oldest listed here, the `before` of
    /// the next page.
    pub older: Option<MessageId>,
}

/// The least number of conversation entries one [`Store::conversations`] call
/// may read (it reads at most `max(limit, CONVERSATION_SCAN_MIN)`), so a page
/// of one owner's conversations does not read unboundedly many others.
pub const CONVERSATION_SCAN_MIN: usize = 8192;

/// One page of [`Store::conversations`].
///
/// A page can be short, even empty, while `next` is set: the call stops after
/// reading a bounded number of entries (see [`CONVERSATION_SCAN_MIN`]), and
/// entries of other owners and (unless asked for) requested ones are read
/// but not listed (ended ones are kept apart and not read). Callers
/// continue with `after = next` until `next` is `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationPage {
    /// The listed conversations, ids ascending.
    pub conversations: Vec<Conversation>,
    /// Where the next page starts (pass it as `after`); `None` when nothing
    /// listable is left after this page.
    pub next: Option<ConversationId>,
}

/// One page of a sender's opt-outs ([`Store::opt_outs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOutPage {
    /// The listed opt-outs, customers ascending (bytewise).
    pub opt_outs: Vec<OptOut>,
    /// Where the next page starts (pass it as `after`): the last customer
    /// listed, when more follow; `None` at the end.
    pub next: Option<String>,
}

/// What `purge_ended` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Conversations removed.
    pub conversations: usize,
    /// Messages removed.
    pub messages: usize,
}

// === The interface ===

/// The durable state, as the layers above see it.
///
/// Mutating calls commit atomically and return once durable. Times are passed
/// in (`now_ms`, wall clock ms) so callers decide the clock.
pub trait Store: Send + Sync + 'static {
    /// Stores an agent's message with its outbox entry and `message_accepted`
    /// event: opens or continues the open conversation of (sender, customer).
    /// Idempotent on (owner, client_ref).
    fn accept_send(
        &self,
        new: NewOutbound,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Result<Accepted, SendRefused>>> + Send;

    /// Stores a message the gateway sends on its own (an opt-out
    /// confirmation, a help answer) with its outbox entry and
    /// `message_accepted` event, in the conversation of the keyword reply
    /// (its owner and state unchanged) or an ended one of its own. A
    /// confirmation is stored once per opt-out (a redelivered or repeated
    /// STOP gets `duplicate`), a help answer once per `in_reply_to`; only
    /// the confirmation may go to an opted-out customer.
    fn accept_system_send(
        &self,
        new: SystemOutbound,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Result<Accepted, SystemRefused>>> + Send;

    /// Claims up to `max` outbox items of a carrier, oldest first, leased for
    /// `lease_ms`. A lapsed lease makes an item claimable again, flagged
    /// possible duplicate.
    fn claim_outbox(
        &self,
        carrier: &str,
        max: usize,
        lease_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;

    /// As [`Store::claim_outbox`], but an item whose conversation has an
    /// older item still leased is held back, so a second bind of the
    /// carrier cannot overtake a message still out on the first (order per
    /// conversation across binds). The send path claims with this.
    fn claim_outbox_in_order(
        &self,
        carrier: &str,
        max: usize,
        lease_ms: u64,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;

    /// Puts a claimed item back, not sent (throttled, bind dropped before
    /// sending). Returns false if it is not in the outbox.
    fn release(&self, message: MessageId) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Puts back a claimed item with a part whose outcome is unknown (sent,
    /// then no response before the response timeout or the bind dropped):
    /// flagged possible duplicate, and counted on its outbox entry. The
    /// hand-back that makes the count exceed `max_resubmits` (the carrier's
    /// setting) ends the message instead of sending it again: it leaves the
    /// outbox with status `unknown` and a `message_failed` event (state
    /// `no_receipt`, no error), nothing is lost. So a message goes out at
    /// most `1 + max_resubmits` times through this path (0: never again).
    /// Leases that lapse and [`Store::recover`] are not counted: a crash
    /// replays the outbox regardless.
    ///
    /// With `resend_after_ms` > 0 the item stays leased that long (a claim
    /// passes it over, and later messages of its conversation wait behind
    /// it), so a late response can still record it sent and take it out of
    /// the outbox before it goes again. It is flagged possible duplicate
    /// only when it is claimed again (as a lapsed lease), not before.
    fn release_unanswered(
        &self,
        message: MessageId,
        max_resubmits: u32,
        now_ms: u64,
        resend_after_ms: u64,
    ) -> impl Future<Output = StoreResult<Unanswered>> + Send;

    /// Puts back a claimed item that went out in part, every part's outcome
    /// known (some answered, the rest never sent or refused for now):
    /// flagged possible duplicate, since sending it again repeats the
    /// answered parts; not counted against `max_resubmits`. Returns false if
    /// it is not in the outbox.
    fn release_sent(&self, message: MessageId) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Records one part's `submit_sm_resp` (`part` 0-based of `total_parts`):
    /// the normalised carrier id, or the failure. The same holds for a
    /// response that arrives after its timeout: an id is indexed for the
    /// receipts whatever the message's state; a message still in the outbox
    /// (handed back, even claimed again) whose parts are then all answered
    /// leaves it and is not sent again; a message that was given up
    /// (`unknown`) keeps that status until a receipt settles it.
    fn record_submit(
        &self,
        message: MessageId,
        part: u8,
        total_parts: u8,
        result: Result<String, SubmitFailure>,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<SubmitOutcome>> + Send;

    /// Records several `submit_sm_resp`s at once, in order, with one durable
    /// write where the backend can: what a bind does with a window's worth of
    /// responses. Outcomes in the order of `batch`.
    fn record_submits(
        &self,
        batch: Vec<SubmitRecord>,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Vec<SubmitOutcome>>> + Send {
        async move {
            let mut out = Vec::with_capacity(batch.len());
            for r in batch {
                out.push(
                    self.record_submit(r.message, r.part, r.total_parts, r.result, now_ms)
                        .await?,
                );
            }
            Ok(out)
        }
    }

    /// Applies a receipt by (carrier, normalised id), or holds it until the
    /// submit response lands.
    fn record_receipt(
        &self,
        carrier: &str,
        normalized_id: &str,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<ReceiptOutcome>> + Send;

    /// Like [`Store::record_receipt`] with several candidate forms of the id
    /// (normal form first, then the other-base fallbacks): applies it to the
    /// first that is indexed and says which (`Some(0)`: no fallback needed);
    /// unmatched, holds it under every form.
    fn record_receipt_any(
        &self,
        carrier: &str,
        candidates: &[&str],
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<(ReceiptOutcome, Option<usize>)>> + Send;

    /// Applies several receipts of one carrier at once, in order, with one
    /// durable write where the backend can (see [`Store::record_receipt_any`]).
    /// Outcomes in the order of `batch`.
    fn record_receipts(
        &self,
        carrier: &str,
        batch: Vec<ReceiptRecord>,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Vec<(ReceiptOutcome, Option<usize>)>>> + Send {
        async move {
            let mut out = Vec::with_capacity(batch.len());
            for r in batch {
                let refs: Vec<&str> = r.candidates.iter().map(String::as_str).collect();
                out.push(
                    self.record_receipt_any(carrier, &refs, r.update, now_ms)
                        .await?,
                );
            }
            Ok(out)
        }
    }

    /// Submitted messages without a final receipt after `receipt_timeout_ms`
    /// become `unknown` (`message_failed`, state `no_receipt`); held receipts
    /// older than `held_max_age_ms` are dropped. At most [`EXPIRE_CHUNK`] of
    /// them, oldest first; [`ExpireReport::more`] says whether more are due.
    fn expire_pending(
        &self,
        now_ms: u64,
        receipt_timeout_ms: u64,
        held_max_age_ms: u64,
    ) -> impl Future<Output = StoreResult<ExpireReport>> + Send;

    /// Files a customer's text: into the open conversation of (sender,
    /// customer), else per `policy`.
    fn record_inbound(
        &self,
        msg: InboundMessage,
        policy: InboundPolicy,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<InboundOutcome>> + Send;

    /// Stores one part of a multi-part reply under an opaque key.
    fn put_part(
        &self,
        key: &[u8],
        seq: u8,
        bytes: &[u8],
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Removes and returns every part stored under `key`.
    fn take_parts(
        &self,
        key: &[u8],
    ) -> impl Future<Output = StoreResult<BTreeMap<u8, Vec<u8>>>> + Send;

    /// Reads the parts under `key` without removing them.
    fn parts(&self, key: &[u8]) -> impl Future<Output = StoreResult<BTreeMap<u8, Vec<u8>>>> + Send;

    /// Every reassembly key with the time of its oldest part (for timeouts after a restart).
    fn reassembly_keys(&self) -> impl Future<Output = StoreResult<Vec<(Vec<u8>, u64)>>> + Send;

    /// Ends a conversation (`chat_ended`).
    fn end_chat(
        &self,
        conversation: ConversationId,
        by: &str,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Result<Conversation, ChatRefused>>> + Send;

    /// Hands a conversation (or accepts a request) over to `to` (`chat_assigned`).
    fn assign(
        &self,
        conversation: ConversationId,
        to: &str,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Result<Conversation, ChatRefused>>> + Send;

    /// One conversation.
    fn conversation(
        &self,
        id: ConversationId,
    ) -> impl Future<Output = StoreResult<Option<Conversation>>> + Send;

    /// One message.
    fn message(&self, id: MessageId) -> impl Future<Output = StoreResult<Option<Message>>> + Send;

    /// A conversation and all its messages, oldest first: one page of
    /// [`Store::transcript_page`] without a limit (the agent socket pages).
    fn transcript(
        &self,
        id: ConversationId,
    ) -> impl Future<Output = StoreResult<Option<(Conversation, Vec<Message>)>>> + Send {
        async move {
            let page = self.transcript_page(id, None, usize::MAX).await?;
            Ok(page.map(|p| (p.conversation, p.messages)))
        }
    }

    /// One page of a conversation's messages: the newest `limit` of those
    /// older than message `before` (of all when `None`), oldest first, and
    /// the `before` of the next (older) page. A `before` that is no longer
    /// stored, of an ended conversation (retention purges a long one newest
    /// first), lists the messages left that are older than it; one that is
    /// another conversation's lists nothing; a `limit` of 0 is taken as 1.
    /// Reads only the messages it lists (and `before`).
    fn transcript_page(
        &self,
        id: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Option<TranscriptPage>>> + Send;

    /// One page of the open conversations (of `owner`, or all), plus the
    /// requested ones (of any owner) if asked: at most `limit` of those with
    /// id > `after` (from the first when `None`), ids ascending; a `limit`
    /// of 0 is taken as 1. Reads at most `max(limit, CONVERSATION_SCAN_MIN)`
    /// entries, so a page may be short or empty with
    /// [`ConversationPage::next`] set; follow `next` until it is `None` to
    /// list them all.
    fn conversations(
        &self,
        owner: Option<&str>,
        include_requested: bool,
        after: Option<ConversationId>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<ConversationPage>> + Send;

    /// Appends an event that belongs to no conversation (`link_up`, `link_down`).
    fn append_event(
        &self,
        kind: EventKind,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Seq>> + Send;

    /// Durable events with seq > `after`, at most `limit`, in seq order.
    fn events_after(
        &self,
        after: Seq,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<Event>>> + Send;

    /// Lowest seq still in the log (None when empty): a consumer behind it missed events.
    fn first_event_seq(&self) -> impl Future<Output = StoreResult<Option<Seq>>> + Send;

    /// The last durable seq, updated on every commit, for live followers.
    fn subscribe(&self) -> watch::Receiver<Seq>;

    /// Outbox entries (leased ones included) as the commits so far left
    /// the outbox: a count kept by the commits, not a read.
    fn outbox_depth(&self) -> u64;

    /// Outbox entries per carrier (by name), kept like
    /// [`Store::outbox_depth`]; a carrier with none is absent.
    fn outbox_depths(&self) -> std::collections::BTreeMap<String, u64>;

    /// Records that `consumer` processed everything up to `seq`.
    fn ack(&self, consumer: &str, seq: Seq) -> impl Future<Output = StoreResult<()>> + Send;

    /// A consumer's cursor.
    fn cursor(&self, consumer: &str) -> impl Future<Output = StoreResult<Option<Seq>>> + Send;

    /// Trims the event log: events acked by every consumer and older than
    /// `acked_keep_ms`, and any event older than `max_age_ms`. Returns the count.
    fn trim_events(
        &self,
        now_ms: u64,
        acked_keep_ms: u64,
        max_age_ms: u64,
    ) -> impl Future<Output = StoreResult<usize>> + Send;

    /// Creates or replaces an agent's template. A new one is refused when the
    /// agent already keeps `max_per_agent` (an edit never is).
    fn put_template(
        &self,
        t: NewTemplate,
        max_per_agent: usize,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<Result<Template, TemplateRefused>>> + Send;

    /// One template.
    fn template(&self, id: u64) -> impl Future<Output = StoreResult<Option<Template>>> + Send;

    /// An agent's templates, by id.
    fn templates(&self, agent: &str) -> impl Future<Output = StoreResult<Vec<Template>>> + Send;

    /// Deletes an agent's template; false if none.
    fn delete_template(
        &self,
        id: u64,
        agent: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Records an opt-out (keeps the earlier `since` if already set).
    fn set_opt_out(
        &self,
        sender: &str,
        customer: &str,
        now_ms: u64,
    ) -> impl Future<Output = StoreResult<OptOut>> + Send;

    /// Clears an opt-out; false if none.
    fn clear_opt_out(
        &self,
        sender: &str,
        customer: &str,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The opt-out of (sender, customer).
    fn opt_out(
        &self,
        sender: &str,
        customer: &str,
    ) -> impl Future<Output = StoreResult<Option<OptOut>>> + Send;

    /// One page of `sender`'s opt-outs: at most `limit` (0 is taken as 1)
    /// of those with a customer after `after` (from the first when `None`),
    /// customers ascending. Reads only that sender's entries, at most
    /// `limit + 1` of them.
    fn opt_outs(
        &self,
        sender: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<OptOutPage>> + Send;

    /// At start: leased outbox items (in flight at a crash) become claimable,
    /// flagged possible duplicate; those waiting out a resend delay still
    /// lapsing after `now_ms` keep waiting.
    fn recover(&self, now_ms: u64) -> impl Future<Output = StoreResult<RecoverReport>> + Send;

    /// Removes ended conversations (and their messages) ended more than
    /// `max_age_ms` ago.
    fn purge_ended(
        &self,
        now_ms: u64,
        max_age_ms: u64,
    ) -> impl Future<Output = StoreResult<PurgeReport>> + Send;
}
