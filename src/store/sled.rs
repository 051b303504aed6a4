//! The sled backend of [`Store`].
//!
//! One writer at a time: every mutating call takes the writer lock, reads what
//! it needs, builds its writes in a [`Tx`] (reads see earlier writes of the
//! same call), adds them to the in-memory overlay of writes sled has not
//! been given yet ([`super::overlay`]), appends them as one record to the
//! write-ahead log ([`super::wal`]), takes a group-commit ticket and
//! releases the lock; then it waits for the log sync that covers it. So
//! event seqs (and ids) follow commit order, a crash never leaves half of a
//! call (the log's record is all or nothing, and replayed at open), and no
//! call returns before its data is on disk. sled receives the overlay at
//! checkpoints, in the background. Reads go through the overlay to the
//! trees; `events_after` only shows events already durable.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;

use super::commit::{GroupCommit, blocking};
use super::derived::{self, Counts, Readers};
use super::error::{StoreError, StoreResult};
use super::journal::Journal;
use super::overlay::{OVERLAY_LIMIT_BYTES, Overlay, Staged, TreeView};
use super::trees::{self, T, id};
use super::value::{compact, decode, decode_u64, encode};
use super::wal::{self, Wal};
use super::{
    Accepted, CONVERSATION_SCAN_MIN, ConversationPage, EXPIRE_CHUNK, ExpireReport, InboundMessage,
    InboundOutcome, NewOutbound, NewTemplate, OptChange, OptOutPage, OutboxItem, PurgeReport,
    ReceiptOutcome, ReceiptRecord, RecoverReport, Store, SubmitFailure, SubmitOutcome,
    SubmitRecord, SystemOutbound, SystemReason, SystemRefused, TemplateRefused, TranscriptPage,
    Unanswered,
};
use crate::conversation::rules::{
    self, ChatRefused, InboundDecision, InboundPolicy, SendDecision, SendRefused,
};
use crate::model::{
    Conversation, ConversationId, ConversationState, Direction, Event, EventKind, FailState,
    Message, MessageId, MessageStatus, OptOut, PartState, ReceiptUpdate, Seq, Template,
    aggregate_status,
};

/// sled's page cache by default, in MiB (`store.cache_mb`).
///
/// Small on purpose: what sled keeps is counted in its log's bytes (a node
/// in memory takes 2-3 times that), and the hot part of the store is small
/// (the tails of the trees new messages go to; a commit reads the rest
/// through the in-memory overlay or a page-in from the OS's page cache).
/// With 100 000 open conversations listed in full, 4 MiB kept the daemon's
/// peak at 54 MiB where 64 MiB let it reach 69, with the same send rate
/// and latency (benches/RESULTS.md §15); 2 MiB keeps a store that took a
/// backlog of 100 000 at once under 64 MiB (62 against 66 at 4, 47 against
/// 51 on a store of steady traffic) for a drain 7 % slower and the same
/// send rate (§19).
pub const DEFAULT_CACHE_MB: u64 = 2;

/// Settings of a [`SledStore`] opened by the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, in bytes (sled's own default is 1 GiB).
    pub cache_bytes: u64,
    /// Least time between two syncs of the write-ahead log (a commit
    /// group's "flush"); `None`: a group syncs as soon as the previous
    /// sync returned.
    pub flush_every: Option<std::time::Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_MB << 20,
            flush_every: None,
        }
    }
}

/// The sled-backed store. Cheap to clone (shared handle).
#[derive(Debug, Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    /// The trees (indexed by [`T`]) under the writes not yet applied to them.
    overlay: Overlay,
    /// The next ids and the entry counts; held while a call builds and
    /// applies its writes.
    writer: Mutex<Writer>,
    commit: GroupCommit,
    /// Where each applied write set is recorded before it counts as durable.
    log: Arc<Wal>,
    /// Held while a checkpoint runs (at most one at a time).
    checkpointing: Arc<tokio::sync::Mutex<()>>,
    stats: CheckpointCounts,
    /// Where checkpointed events live (not sled: see [`super::journal`]).
    events: Journal,
    /// The lowest event seq still served (events below it are trimmed);
    /// stored as `meta`'s [`trees::EVENTS_FROM`].
    events_from: AtomicU64,
}

#[derive(Debug, Default)]
struct CheckpointCounts {
    checkpoints: AtomicU64,
    checkpoint_failures: AtomicU64,
    checkpoint_writes: AtomicU64,
}

/// A snapshot of the store's internals, for gauges (see [`SledStore::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Bytes in the current write-ahead log file.
    pub log_bytes: u64,
    /// Approximate bytes of committed writes held in memory, not yet
    /// applied to sled.
    pub overlay_bytes: u64,
    /// Bytes of the event journal's files.
    pub event_journal_bytes: u64,
    /// Checkpoints completed since the store was opened.
    pub checkpoints: u64,
    /// Checkpoints that failed since the store was opened (each is retried
    /// by the next; meanwhile the log and the overlay keep growing).
    pub checkpoint_failures: u64,
    /// Writes the checkpoints applied to sled since the store was opened
    /// (those of a key written several times between two checkpoints count
    /// once; a key created and deleted between them, not at all).
    pub checkpoint_writes: u64,
    /// Log syncs (group commits) since the store was opened.
    pub log_syncs: u64,
}

/// One commit's writes: (tree, key) → new value, `None` for a delete.
type Writes = BTreeMap<(T, Vec<u8>), Option<Vec<u8>>>;

/// What the writer lock guards besides the write itself.
#[derive(Debug)]
struct Writer {
    next: Counters,
    counts: Counts,
    /// Per carrier (its outbox prefix), the key a claim's scan starts at:
    /// the outbox holds no key of that carrier below it. See
    /// [`Tx::put_outbox`] and [`claim_outbox`].
    claim_from: HashMap<Vec<u8>, Vec<u8>>,
    /// Per carrier (its outbox prefix), the leased entries at the head of
    /// its outbox, which a claim's scan would only step over. See
    /// [`LeasedRun`].
    runs: HashMap<Vec<u8>, LeasedRun>,
    /// The log record being built, kept between commits (a commit's record
    /// grew from empty through several reallocations).
    record: Vec<u8>,
}

/// The leased entries a carrier's outbox holds from its claim start
/// ([`Writer::claim_from`]) on, as the last claims saw them: every key
/// from the claim start up to `end` is one of `entries`. The claims of a
/// busy bind hold hundreds of entries leased at the head of the outbox;
/// with this a claim starts its scan at `end`, and takes the conversations
/// those entries hold back from `busy`, instead of reading and decoding
/// them all again.
///
/// Built only from what claims read of committed entries, and kept in
/// step once a commit can no longer fail ([`LeasedRun::keep`]): a delete
/// among the entries removes one, a put renewing one's lease updates it,
/// any other put below `end` drops the run. A claim at a time past the
/// earliest lease's end drops it too (that entry may be claimed again).
/// A dropped run is rebuilt by the next claim's full scan.
#[derive(Debug, Default)]
struct LeasedRun {
    /// Outbox key → (its conversation, leased until ms).
    entries: BTreeMap<Vec<u8>, (ConversationId, u64)>,
    /// The conversations of `entries`, with how many entries each has.
    busy: HashMap<ConversationId, usize>,
    /// A key past every one of `entries`, where a claim's scan starts.
    end: Vec<u8>,
    /// At most the earliest lease end of `entries` (a removal leaves it
    /// as it was; [`LeasedRun::holds_at`] looks again once it has passed).
    earliest: u64,
}

impl LeasedRun {
    fn add(&mut self, key: Vec<u8>, conversation: ConversationId, until: u64) {
        self.end.clone_from(&key);
        self.end.push(0);
        if self.entries.is_empty() || until < self.earliest {
            self.earliest = until;
        }
        if let Some((old, _)) = self.entries.insert(key, (conversation, until)) {
            self.forget(old);
        }
        *self.busy.entry(conversation).or_default() += 1;
    }

    fn forget(&mut self, conversation: ConversationId) {
        if let Some(n) = self.busy.get_mut(&conversation) {
            *n -= 1;
            if *n == 0 {
                self.busy.remove(&conversation);
            }
        }
    }

    /// Every entry is still leased at `now`.
    fn holds_at(&mut self, now: u64) -> bool {
        if self.earliest <= now {
            self.earliest = self
                .entries
                .values()
                .map(|&(_, until)| until)
                .min()
                .unwrap_or(u64::MAX);
        }
        self.earliest > now
    }

    /// Keeps the runs in step with one commit's outbox writes (call once
    /// nothing can stop the commit any more).
    fn keep(runs: &mut HashMap<Vec<u8>, LeasedRun>, staged: &[Staged]) {
        if runs.is_empty() {
            return;
        }
        for w in staged.iter().filter(|w| w.t == T::Outbox) {
            let prefix = trees::outbox_prefix_of(&w.key);
            let Some(run) = runs.get_mut(prefix) else {
                continue;
            };
            if w.key >= run.end {
                continue;
            }
            let renewed = w.value.as_deref().map(|v| {
                decode::<OutboxEntry>(T::Outbox.name(), v)
                    .ok()
                    .and_then(|e| Some((e.conversation, e.lease_until_ms?)))
            });
            match (renewed, run.entries.get_mut(&w.key)) {
                (None, Some(_)) => {
                    if let Some((c, _)) = run.entries.remove(&w.key) {
                        run.forget(c);
                    }
                }
                // A delete of a key the run does not hold: nothing to do.
                (None, None) => {}
                (Some(Some((c, until))), Some(slot)) if slot.0 == c => {
                    slot.1 = until;
                    run.earliest = run.earliest.min(until);
                }
                _ => {
                    runs.remove(prefix);
                }
            }
        }
    }
}

/// Capacity of the log record buffer kept between commits, at most.
const RECORD_KEEP: usize = 64 << 10;

/// The trees a conversation is held in: live, then once ended.
const CONVERSATION_TREES: [T; 2] = [T::Conversations, T::EndedConversations];

/// A conversation from the first of [`CONVERSATION_TREES`] that holds it,
/// read with `get` (a transaction's view, or the store's).
fn find_conv(
    mut get: impl FnMut(T) -> StoreResult<Option<Conversation>>,
) -> StoreResult<Option<Conversation>> {
    for t in CONVERSATION_TREES {
        if let Some(c) = get(t)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

/// Next ids: one past the highest key of each tree, or the `meta` value
/// stored when a call deleted from that tree, whichever is higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    conversation: u64,
    message: u64,
    seq: u64,
    template: u64,
}

/// An outbox entry (value of the `outbox` tree).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OutboxEntry {
    message: MessageId,
    conversation: ConversationId,
    attempt: u32,
    lease_until_ms: Option<u64>,
    possible_duplicate: bool,
    /// Hand-backs with an unknown outcome so far (`release_unanswered`);
    /// entries written before the count existed read as 0.
    #[serde(default)]
    unknown: u32,
    /// Its lease is a resend delay (`release_unanswered`), not a bind's:
    /// a restart keeps it. Entries written before it read as false.
    #[serde(default)]
    resting: bool,
}

/// A receipt waiting for its submit response.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeldReceipt {
    update: ReceiptUpdate,
    at_ms: u64,
    /// Every candidate form it is held under (removed together).
    #[serde(default)]
    siblings: Vec<String>,
}

/// Events a trim reads at a time: a few first (most runs stop at the
/// first event, still kept), then larger pages.
const TRIM_FIRST: usize = 64;
const TRIM_CHUNK: usize = 10_000;

/// Events moved at a time from sled's `events` tree to the journal at open.
const MOVE_CHUNK: usize = 4_096;

/// Outbox entries one claim looks at before it stops. Leased entries and
/// messages of busy conversations are skipped, so without a bound one claim
/// could read a whole backlog held behind a few long conversations; with it,
/// a claim costs at most this many reads and the rest waits for the next one.
const CLAIM_SCAN_LIMIT: usize = 4_096;

// === impl SledStore ===

impl SledStore {
    /// Opens (or creates) the store at `path`.
    ///
    /// # Errors
    /// The engine cannot open the path (locked by another process, I/O).
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(path, StoreOptions::default())
    }

    /// Opens (or creates) the store at `path` with the daemon's settings:
    /// sled's cache bounded to `opts.cache_bytes`, log syncs spaced by
    /// `opts.flush_every`. Replays the write-ahead log first (see
    /// [`super::wal`]).
    ///
    /// # Errors
    /// As [`SledStore::open`].
    pub fn open_with(path: impl AsRef<Path>, opts: StoreOptions) -> StoreResult<Self> {
        let store = Self::with_config(
            sled::Config::new()
                .path(path)
                .cache_capacity(opts.cache_bytes),
        )?;
        store.inner.commit.set_interval(opts.flush_every);
        Ok(store)
    }

    /// A store that lives in a temporary directory removed on drop (tests).
    ///
    /// # Errors
    /// As [`SledStore::open`].
    pub fn temporary() -> StoreResult<Self> {
        Self::with_config(sled::Config::new().temporary(true))
    }

    /// Opens with a caller-built sled config (cache size, flush interval...).
    ///
    /// # Errors
    /// As [`SledStore::open`].
    pub fn with_config(config: sled::Config) -> StoreResult<Self> {
        // The log lives in sled's directory (a temporary store's goes with it).
        let log_dir = config.get_path().join("wal");
        let db = config.open()?;
        let trees = T::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()?;
        // Commits since the last checkpoint are in the log, not (all) in
        // sled: replay them, make sled hold them, start a fresh log.
        let (replayed, records) = Wal::replay(&log_dir, |writes| {
            let mut set = BTreeMap::new();
            for (tree, key, value) in writes {
                let Some(t) = T::ALL.get(usize::from(tree)) else {
                    return Err(StoreError::Corrupt {
                        tree: "wal",
                        detail: format!("unknown tree {tree}"),
                    });
                };
                set.insert((*t, key), value);
            }
            apply(&trees, &set)
        })?;
        if records > 0 {
            db.flush()?;
            tracing::info!(records, "store: replayed the write-ahead log");
        }
        let log = Arc::new(Wal::start(&log_dir, &replayed)?);
        let readers = Readers {
            leased: |v: &[u8]| {
                Ok(decode::<OutboxEntry>(T::Outbox.name(), v)?
                    .lease_until_ms
                    .is_some())
            },
            ended: |v: &[u8]| {
                let c: Conversation = decode(T::Conversations.name(), v)?;
                Ok((c.state == ConversationState::Ended).then_some(c.ended_ms))
            },
            held_at: |v: &[u8]| Ok(decode::<HeldReceipt>(T::HeldReceipts.name(), v)?.at_ms),
            template_agent: |v: &[u8]| Ok(decode::<Template>(T::Templates.name(), v)?.agent),
        };
        let (counts, built) = derived::load(&db, &trees, readers)?;
        if built {
            tracing::info!(
                outbox = counts.outbox,
                awaiting_receipts = counts.awaiting_receipts,
                "store: built the entry counts and the lease, receipt-due, ended, held-due and agent-template indexes, and kept ended conversations apart (first start of this layout)"
            );
        }
        // After the layout check: a newer build's store is left as it is.
        let events = Journal::open(&config.get_path().join("events"))?;
        move_events(&db, &trees[T::Events as usize], &events)?;
        let linked = link_conversation_messages(&db, &trees)?;
        if linked > 0 {
            tracing::info!(
                linked,
                "store: linked each message to its conversation's previous one"
            );
        }
        let meta = &trees[T::Meta as usize];
        let counter = |name: &[u8], held_in: &[T]| -> StoreResult<u64> {
            let mut next = match meta.get(name)? {
                Some(v) => decode_u64("meta", &v)?,
                None => 1,
            };
            // One past the highest key held; `meta` covers deleted tails.
            for t in held_in {
                if let Some((k, _)) = trees[*t as usize].last()? {
                    next = next.max(trees::read_u64(&k).map_or(0, |v| v + 1));
                }
            }
            Ok(next.max(1))
        };
        let counters = Counters {
            conversation: counter(trees::NEXT_CONVERSATION, &CONVERSATION_TREES)?,
            message: counter(trees::NEXT_MESSAGE, &[T::Messages])?,
            seq: counter(trees::NEXT_SEQ, &[T::Events])?.max(events.last() + 1),
            template: counter(trees::NEXT_TEMPLATE, &[T::Templates])?,
        };
        let commit = GroupCommit::new(log.clone(), counters.seq - 1);
        let events_from = match meta.get(trees::EVENTS_FROM)? {
            Some(v) => decode_u64("meta", &v)?,
            None => 1,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                overlay: Overlay::new(trees)?,
                writer: Mutex::new(Writer {
                    next: counters,
                    counts,
                    claim_from: HashMap::new(),
                    runs: HashMap::new(),
                    record: Vec::new(),
                }),
                commit,
                log,
                checkpointing: Arc::new(tokio::sync::Mutex::new(())),
                stats: CheckpointCounts::default(),
                events,
                events_from: AtomicU64::new(events_from),
            }),
        })
    }

    /// The sled database under the overlay (compaction copies it whole
    /// right after an open, when the overlay is empty).
    pub(super) fn sled(&self) -> &sled::Db {
        &self.inner.db
    }

    /// Every event in the journal (tests).
    #[cfg(test)]
    pub(super) fn journal_events(&self) -> Vec<(Seq, Vec<u8>)> {
        self.inner.events.read(1, u64::MAX, usize::MAX).unwrap()
    }

    /// Waits for the write-ahead log's background segment preparation.
    pub(super) fn settle_log(&self) {
        self.inner.log.settle();
    }

    /// Messages waiting in the outbox (leased ones included), as the
    /// commits so far left it (a count, not a read of the tree).
    pub fn outbox_depth(&self) -> u64 {
        self.inner.writer().counts.outbox
    }

    /// Messages waiting in the outbox per carrier (leased ones included),
    /// by carrier name; a carrier with none is absent.
    pub fn outbox_depths(&self) -> BTreeMap<String, u64> {
        self.inner
            .writer()
            .counts
            .outbox_by_carrier
            .iter()
            .map(|(c, n)| (String::from_utf8_lossy(c).into_owned(), *n))
            .collect()
    }

    fn counts(&self) -> Counts {
        self.inner.writer().counts.clone()
    }

    /// Checks what the commits keep beside the trees against the trees
    /// themselves: the entry counts, that each index (`leases`,
    /// `receipt_due`, `ended`, `held_due`, `agent_templates`) holds exactly
    /// the keys it should, that each conversation sits in the tree of its
    /// state, and that every message is reached from its conversation's
    /// `last_message`. Reads those trees whole, with writes held off
    /// meanwhile: for tests and an operator's check, not for a running load.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] naming the first mismatch; the engine failed.
    pub fn verify(&self) -> StoreResult<()> {
        let w = self.inner.writer();
        let mismatch = |tree: &'static str, detail: String| StoreError::Corrupt { tree, detail };
        let mut leased = Vec::new();
        let mut outbox = 0u64;
        let mut by_carrier: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for kv in self.tree(T::Outbox).iter() {
            let (k, v) = kv?;
            outbox += 1;
            *by_carrier
                .entry(derived::carrier_of(&k).to_vec())
                .or_default() += 1;
            if decode::<OutboxEntry>(T::Outbox.name(), &v)?
                .lease_until_ms
                .is_some()
            {
                leased.push(k);
            }
        }
        let mut leases = Vec::new();
        for kv in self.tree(T::Leases).iter() {
            leases.push(kv?.0);
        }
        if leases != leased {
            return Err(mismatch(
                "leases",
                format!(
                    "{} keys indexed, {} outbox entries leased",
                    leases.len(),
                    leased.len()
                ),
            ));
        }
        let mut due = Vec::new();
        let mut awaiting = 0u64;
        for kv in self.tree(T::AwaitingReceipts).iter() {
            let (k, v) = kv?;
            awaiting += 1;
            let since = decode_u64(T::AwaitingReceipts.name(), &v)?;
            let mid = trees::read_u64(&k).unwrap_or_default();
            due.push(trees::time_key(since, mid).to_vec());
        }
        due.sort_unstable();
        let mut ended = Vec::new();
        let mut linked = 0u64;
        for t in CONVERSATION_TREES {
            for kv in self.tree(t).iter() {
                let (_, v) = kv?;
                let c: Conversation = decode(t.name(), &v)?;
                linked += chain(&c, |mid| self.read_val(T::Messages, &id(mid)))?.len() as u64;
                let is_ended = c.state == ConversationState::Ended;
                if is_ended != (t == T::EndedConversations) {
                    return Err(mismatch(
                        t.name(),
                        format!("conversation {} is {:?}", c.id, c.state),
                    ));
                }
                if let Some(at) = c.ended_ms.filter(|_| is_ended) {
                    ended.push(trees::time_key(at, c.id).to_vec());
                }
            }
        }
        ended.sort_unstable();
        let messages = self.tree(T::Messages).iter().count() as u64;
        if linked != messages || self.tree(T::ConversationMessages).iter().next().is_some() {
            return Err(mismatch(
                "messages",
                format!("{linked} linked in their conversations, {messages} held"),
            ));
        }
        let mut held_due = Vec::new();
        for kv in self.tree(T::HeldReceipts).iter() {
            let (k, v) = kv?;
            let h: HeldReceipt = decode(T::HeldReceipts.name(), &v)?;
            held_due.push(trees::held_due_key(h.at_ms, &k));
        }
        held_due.sort_unstable();
        let mut agent_templates = Vec::new();
        for kv in self.tree(T::Templates).iter() {
            let (k, v) = kv?;
            let t: Template = decode(T::Templates.name(), &v)?;
            let tid = trees::read_u64(&k).unwrap_or_default();
            agent_templates.push(trees::agent_template_key(&t.agent, tid));
        }
        agent_templates.sort_unstable();
        for (t, want) in [
            (T::ReceiptDue, due),
            (T::Ended, ended),
            (T::HeldDue, held_due),
            (T::AgentTemplates, agent_templates),
        ] {
            let mut got = Vec::new();
            for kv in self.tree(t).iter() {
                got.push(kv?.0.to_vec());
            }
            if got != want {
                return Err(mismatch(
                    t.name(),
                    format!("{} keys indexed, {} expected", got.len(), want.len()),
                ));
            }
        }
        let held = [
            (T::Outbox, outbox),
            (T::AwaitingReceipts, awaiting),
            (T::HeldReceipts, self.tree(T::HeldReceipts).len()? as u64),
        ];
        let kept = [
            w.counts.outbox,
            w.counts.awaiting_receipts,
            w.counts.held_receipts,
        ];
        for ((t, n), k) in held.into_iter().zip(kept) {
            if n != k {
                return Err(mismatch(
                    "meta",
                    format!("{} holds {n} entries, its count says {k}", t.name()),
                ));
            }
        }
        if by_carrier != w.counts.outbox_by_carrier {
            return Err(mismatch(
                "meta",
                format!(
                    "outbox holds {by_carrier:?} per carrier, the counts say {:?}",
                    w.counts.outbox_by_carrier
                ),
            ));
        }
        Ok(())
    }

    /// Flushes done so far (group commit makes this far fewer than writes).
    pub fn flush_count(&self) -> u64 {
        self.inner.commit.flushes()
    }

    /// Resolves once the write-ahead log has failed, with what failed. From
    /// then on no commit is acknowledged (the store is fail-stop): the
    /// process should stop, and a restart replays the log up to the last
    /// commit that was. Never resolves while the log works.
    pub async fn failed(&self) -> String {
        let mut rx = self.inner.log.failure();
        match rx.wait_for(Option::is_some).await {
            Ok(why) => why.as_deref().unwrap_or_default().to_string(),
            // The log lives as long as `self`: not reached.
            Err(_) => std::future::pending().await,
        }
    }

    /// Sizes and counts of the log, the overlay and the checkpoints.
    pub fn stats(&self) -> StoreStats {
        let inner = &self.inner;
        StoreStats {
            log_bytes: inner.log.size(),
            overlay_bytes: inner.overlay.top_bytes() as u64,
            event_journal_bytes: inner.events.bytes(),
            checkpoints: inner.stats.checkpoints.load(Ordering::Relaxed),
            checkpoint_failures: inner.stats.checkpoint_failures.load(Ordering::Relaxed),
            checkpoint_writes: inner.stats.checkpoint_writes.load(Ordering::Relaxed),
            log_syncs: inner.commit.flushes(),
        }
    }

    /// Checkpoints (shutdown): sled then holds everything written so far
    /// durably and the write-ahead log is emptied, so the next start replays
    /// nothing. Every mutating call is already durable when it returns
    /// (through the log); this only shortens the next start.
    ///
    /// # Errors
    /// The log or the engine's flush failed.
    pub async fn flush(&self) -> StoreResult<()> {
        let running = self.inner.checkpointing.clone().lock_owned().await;
        self.inner.checkpoint(running).await
    }

    /// The durable events with seqs in `from..`, at most `limit`: those
    /// a checkpoint moved to the journal, then those still in the overlay.
    /// A checkpoint that drops its frozen layer between the two reads could
    /// hide the layer's events from both, so the reads are retried then.
    fn durable_events(&self, from: Seq, limit: usize) -> StoreResult<Vec<(Seq, Vec<u8>)>> {
        let durable = self.inner.commit.durable_seq();
        let from = from.max(self.inner.events_from.load(Ordering::Acquire));
        if from > durable || limit == 0 {
            return Ok(Vec::new());
        }
        loop {
            let epoch = self.inner.overlay.epoch();
            let mut out = self.inner.events.read(from, durable, limit)?;
            let next = out.last().map_or(from, |(seq, _)| seq + 1);
            if out.len() < limit && next <= durable {
                for kv in self
                    .tree(T::Events)
                    .range(id(next)..=id(durable))
                    .take(limit - out.len())
                {
                    let (k, v) = kv?;
                    out.push((event_seq(&k)?, v));
                }
            }
            if self.inner.overlay.epoch() == epoch {
                return Ok(out);
            }
        }
    }

    fn tree(&self, t: T) -> TreeView<'_> {
        self.inner.overlay.tree(t)
    }

    async fn run<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> StoreResult<R>) -> StoreResult<R> {
        let (r, ticket) = self.inner.write(f)?;
        self.inner.commit.wait(ticket).await?;
        self.maybe_checkpoint().await;
        Ok(r)
    }

    /// Starts a checkpoint in the background once the log or the overlay
    /// has grown past its bound; waits for one when the overlay has grown
    /// to [`OVERLAY_LIMIT_BYTES`] (sled is not keeping up), so memory stays
    /// bounded. The caller's write is durable already, so a failed
    /// checkpoint is logged and counted, not returned.
    async fn maybe_checkpoint(&self) {
        let inner = &self.inner;
        if inner.log.size() < wal::CHECKPOINT_BYTES && !inner.overlay.wants_checkpoint() {
            return;
        }
        if inner.overlay.top_bytes() >= OVERLAY_LIMIT_BYTES {
            let running = inner.checkpointing.clone().lock_owned().await;
            if inner.overlay.top_bytes() >= OVERLAY_LIMIT_BYTES {
                inner.checkpoint_or_log(running).await;
            }
            return;
        }
        if let Ok(running) = inner.checkpointing.clone().try_lock_owned() {
            let inner = inner.clone();
            tokio::spawn(async move { inner.checkpoint_or_log(running).await });
        }
    }

    fn read_val<V: DeserializeOwned>(&self, t: T, key: &[u8]) -> StoreResult<Option<V>> {
        match self.tree(t).get(key)? {
            Some(v) => Ok(Some(decode(t.name(), &v)?)),
            None => Ok(None),
        }
    }

    fn read_conv(&self, cid: ConversationId) -> StoreResult<Option<Conversation>> {
        find_conv(|t| self.read_val(t, &id(cid)))
    }

    fn read_parts(&self, key: &[u8]) -> StoreResult<BTreeMap<u8, Vec<u8>>> {
        let prefix = trees::reassembly_prefix(key);
        let mut out = BTreeMap::new();
        for kv in self.tree(T::Reassembly).scan_prefix(&prefix) {
            let (k, v) = kv?;
            if let (Some(&seq), Some(bytes)) = (k.get(prefix.len()), v.get(8..)) {
                out.insert(seq, bytes.to_vec());
            }
        }
        Ok(out)
    }
}

impl Inner {
    /// The writer lock (a panic while it was held left nothing half
    /// applied: the overlay and the log change only at the end of `write`).
    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` under the writer lock and applies its writes atomically,
    /// with the entry counts they change. Returns the group-commit ticket
    /// to wait on.
    fn write<R>(&self, f: impl FnOnce(&mut Tx<'_>) -> StoreResult<R>) -> StoreResult<(R, u64)> {
        let mut guard = self.writer();
        let w = &mut *guard;
        let next = w.next;
        let mut tx = Tx {
            ov: &self.overlay,
            writes: BTreeMap::new(),
            c: next,
            counts: &w.counts,
            last_seq: 0,
            claim_from: &mut w.claim_from,
            runs: &mut w.runs,
        };
        let r = f(&mut tx)?;
        let Tx {
            mut writes,
            c,
            last_seq,
            ..
        } = tx;
        if writes.is_empty() {
            // Nothing to make durable but what earlier calls wrote (this
            // call may have read it): wait for them, without a flush of its own.
            return Ok((r, self.commit.pending()));
        }
        // A counter is recovered at open as one past the highest key of its
        // tree, so it is stored only when that could fall short: when this
        // call deletes from the tree (the highest key may be among them).
        // The hot path (accept, submit, receipt) thus writes no meta key.
        let meta: [(_, &[T], _); 4] = [
            (
                trees::NEXT_CONVERSATION,
                &CONVERSATION_TREES,
                c.conversation,
            ),
            (trees::NEXT_MESSAGE, &[T::Messages], c.message),
            (trees::NEXT_SEQ, &[T::Events], c.seq),
            (trees::NEXT_TEMPLATE, &[T::Templates], c.template),
        ];
        for (name, held_in, next) in meta {
            let deletes = held_in.iter().any(|&tree| {
                writes
                    .range((tree, Vec::new())..)
                    .take_while(|((t, _), _)| *t == tree)
                    .any(|(_, v)| v.is_none())
            });
            if deletes {
                writes.insert((T::Meta, name.to_vec()), Some(id(next).to_vec()));
            }
        }
        let mut staged = self.overlay.stage(writes)?;
        let change = w.counts.change(
            staged
                .iter()
                .map(|s| (s.t, s.key.as_slice(), s.existed, s.value.is_some())),
        );
        let meta: Vec<_> = change
            .meta_writes()
            .map(|(k, v)| ((T::Meta, k), v))
            .collect();
        if !meta.is_empty() {
            staged.extend(self.overlay.stage(meta)?);
        }
        let mut record = std::mem::take(&mut w.record);
        record.clear();
        wal::encode(
            staged
                .iter()
                .map(|s| (s.t as u8, s.key.as_slice(), s.value.as_deref())),
            &mut record,
        );
        LeasedRun::keep(&mut w.runs, &staged);
        self.overlay.commit(staged);
        self.log.append(&record);
        if record.capacity() <= RECORD_KEEP {
            w.record = record;
        }
        w.next = c;
        w.counts.apply(change);
        let ticket = self.commit.note_write(last_seq);
        Ok((r, ticket))
    }

    /// Makes sled hold every write so far and drops the log files that
    /// recorded them: freeze the overlay and cut the log at one point (under
    /// the writer lock), sync the log (the frozen writes are then durable, so
    /// sled may hold them before its flush), apply the frozen layer (its
    /// events appended to the journal and synced, the rest to sled), flush
    /// sled, delete the files before the cut. `running` is the checkpoint
    /// lock.
    async fn checkpoint(
        self: &Arc<Self>,
        running: tokio::sync::OwnedMutexGuard<()>,
    ) -> StoreResult<()> {
        let started = crate::clock::now();
        let done = self.checkpoint_steps().await;
        let took = started.elapsed();
        drop(running);
        let stats = &self.stats;
        match done {
            Ok(applied) => {
                stats.checkpoints.fetch_add(1, Ordering::Relaxed);
                stats
                    .checkpoint_writes
                    .fetch_add(applied as u64, Ordering::Relaxed);
                tracing::debug!(applied, ?took, "store checkpoint done");
                Ok(())
            }
            Err(e) => {
                stats.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    async fn checkpoint_or_log(self: &Arc<Self>, running: tokio::sync::OwnedMutexGuard<()>) {
        if let Err(e) = self.checkpoint(running).await {
            tracing::error!(error = %e, "store checkpoint failed; the write-ahead log and the overlay keep growing until one succeeds");
        }
    }

    /// The steps of [`Inner::checkpoint`]; returns the writes applied to sled.
    async fn checkpoint_steps(self: &Arc<Self>) -> StoreResult<usize> {
        let keep = {
            let _writer = self.writer();
            self.overlay.freeze();
            self.log.cut()
        };
        let log = self.log.clone();
        blocking(move || log.sync()).await?;
        let inner = self.clone();
        let applied = blocking(move || {
            inner
                .overlay
                .apply_frozen_except(Some(T::Events), |events| {
                    let events = events
                        .map(|(k, v)| Ok((event_seq(k)?, v)))
                        .collect::<StoreResult<Vec<_>>>()?;
                    inner.events.append(events).map(drop)
                })
        })
        .await?;
        self.db.flush_async().await?;
        let log = self.log.clone();
        blocking(move || log.remove_before(keep)).await?;
        Ok(applied)
    }
}

/// Applies a batch of writes in one sled transaction over the trees it
/// touches (the log's replay at open, before the overlay exists).
fn apply(all: &[sled::Tree], writes: &Writes) -> StoreResult<()> {
    let mut touched: Vec<T> = writes.keys().map(|(t, _)| *t).collect();
    touched.dedup();
    let views: Vec<&sled::Tree> = touched.iter().map(|t| &all[*t as usize]).collect();
    let mut slot = [0usize; T::ALL.len()];
    for (i, t) in touched.iter().enumerate() {
        slot[*t as usize] = i;
    }
    views[..]
        .transaction(|tv| {
            for ((t, k), v) in writes {
                let view = &tv[slot[*t as usize]];
                match v {
                    Some(v) => {
                        view.insert(k.as_slice(), v.as_slice())?;
                    }
                    None => {
                        view.remove(k.as_slice())?;
                    }
                }
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        })
        .map_err(|e: TransactionError<()>| match e {
            TransactionError::Storage(e) => StoreError::Engine(e),
            TransactionError::Abort(()) => StoreError::Corrupt {
                tree: "transaction",
                detail: "aborted".into(),
            },
        })
}

/// The seq an `events` key holds.
fn event_seq(key: &[u8]) -> StoreResult<Seq> {
    trees::read_u64(key).ok_or_else(|| StoreError::Corrupt {
        tree: "events",
        detail: format!("key of {} bytes", key.len()),
    })
}

/// Layouts before 7 listed a conversation's messages in
/// `conversation_messages`, one key per message; this one links them
/// ([`Message::previous`], [`Conversation::last_message`]). At open, links
/// the messages that tree lists (the log's replay may have brought some
/// back), then empties it. A link cut short by a crash is done again: the
/// tree is emptied only once sled holds every link.
fn link_conversation_messages(db: &sled::Db, trees: &[sled::Tree]) -> StoreResult<usize> {
    let index = &trees[T::ConversationMessages as usize];
    let messages = &trees[T::Messages as usize];
    let set_last = |cid: ConversationId, last: MessageId| -> StoreResult<()> {
        for t in CONVERSATION_TREES {
            if let Some(v) = trees[t as usize].get(id(cid))? {
                let mut c: Conversation = decode(t.name(), &v)?;
                c.last_message = Some(last);
                trees[t as usize].insert(id(cid), compact(&c)?)?;
            }
        }
        Ok(())
    };
    let mut linked = 0;
    // The conversation being linked, and its newest message so far.
    let mut at: Option<(ConversationId, MessageId)> = None;
    for kv in index.iter() {
        let (k, _) = kv?;
        let (Some(cid), Some(mid)) = (trees::read_u64(&k), k.get(8..).and_then(trees::read_u64))
        else {
            continue;
        };
        let Some(v) = messages.get(id(mid))? else {
            continue;
        };
        let mut m: Message = decode(T::Messages.name(), &v)?;
        m.previous = match at {
            Some((c, last)) if c == cid => Some(last),
            Some((c, last)) => {
                set_last(c, last)?;
                None
            }
            None => None,
        };
        messages.insert(id(mid), compact(&m)?)?;
        at = Some((cid, mid));
        linked += 1;
    }
    if let Some((c, last)) = at {
        set_last(c, last)?;
    }
    if linked > 0 || !index.is_empty() {
        db.flush()?;
        index.clear()?;
        db.flush()?;
    }
    Ok(linked)
}

/// Moves the events in sled's `events` tree to the journal (at open: those
/// of the commits the log's replay brought back, or all of a store written
/// before the journal), oldest first; the journal skips those it holds.
fn move_events(db: &sled::Db, tree: &sled::Tree, journal: &Journal) -> StoreResult<()> {
    let mut moved = 0usize;
    let mut batch: Vec<(Seq, sled::IVec)> = Vec::with_capacity(MOVE_CHUNK);
    let mut iter = tree.iter();
    loop {
        batch.clear();
        for kv in iter.by_ref().take(MOVE_CHUNK) {
            let (k, v) = kv?;
            batch.push((event_seq(&k)?, v));
        }
        if batch.is_empty() {
            break;
        }
        moved += journal.append(batch.iter().map(|(s, v)| (*s, v.as_ref())))?;
    }
    if !tree.is_empty() {
        tree.clear()?;
        db.flush()?;
        tracing::info!(moved, "store: moved events from sled to the event journal");
    }
    Ok(())
}

// === Tx: writes of one call, with read-your-writes ===

struct Tx<'a> {
    ov: &'a Overlay,
    writes: Writes,
    c: Counters,
    /// The entry counts before this call (the writer's).
    counts: &'a Counts,
    last_seq: Seq,
    /// The writer's [`Writer::claim_from`].
    claim_from: &'a mut HashMap<Vec<u8>, Vec<u8>>,
    /// The writer's [`Writer::runs`] (read and extended by claims; kept in
    /// step by [`Inner::write`] after the commit).
    runs: &'a mut HashMap<Vec<u8>, LeasedRun>,
}

impl Tx<'_> {
    fn tree(&self, t: T) -> TreeView<'_> {
        self.ov.tree(t)
    }

    fn get(&self, t: T, k: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        if let Some(v) = self.writes.get(&(t, k.to_vec())) {
            return Ok(v.clone());
        }
        self.ov.get(t, k)
    }

    fn get_u64(&self, t: T, k: &[u8]) -> StoreResult<Option<u64>> {
        self.get(t, k)?
            .map(|v| decode_u64(t.name(), &v))
            .transpose()
    }

    fn get_val<V: DeserializeOwned>(&self, t: T, k: &[u8]) -> StoreResult<Option<V>> {
        self.get(t, k)?.map(|v| decode(t.name(), &v)).transpose()
    }

    fn put(&mut self, t: T, k: impl Into<Vec<u8>>, v: Vec<u8>) {
        self.writes.insert((t, k.into()), Some(v));
    }

    fn put_val<V: Serialize>(&mut self, t: T, k: impl Into<Vec<u8>>, v: &V) -> StoreResult<()> {
        let bytes = encode(v)?;
        self.put(t, k, bytes);
        Ok(())
    }

    /// As [`Tx::put_val`], positionally (see [`compact`]): for the values
    /// rewritten with every message.
    fn put_compact<V: Serialize>(&mut self, t: T, k: impl Into<Vec<u8>>, v: &V) -> StoreResult<()> {
        let bytes = compact(v)?;
        self.put(t, k, bytes);
        Ok(())
    }

    fn del(&mut self, t: T, k: impl Into<Vec<u8>>) {
        self.writes.insert((t, k.into()), None);
    }

    /// Every hold of a receipt goes here: `held_due` holds its key under
    /// the time it was held, and only that one (a replaced hold's entry
    /// goes), so the sweep reads the old ones alone.
    fn put_held(&mut self, key: Vec<u8>, held: &HeldReceipt) -> StoreResult<()> {
        if let Some(old) = self.get_val::<HeldReceipt>(T::HeldReceipts, &key)? {
            if old.at_ms != held.at_ms {
                self.del(T::HeldDue, trees::held_due_key(old.at_ms, &key));
            }
        }
        self.put(
            T::HeldDue,
            trees::held_due_key(held.at_ms, &key),
            Vec::new(),
        );
        self.put_val(T::HeldReceipts, key, held)
    }

    /// Drops the receipt held under `key` with its `held_due` entry;
    /// returns it.
    fn take_held(&mut self, key: &[u8]) -> StoreResult<Option<HeldReceipt>> {
        let held = self.get_val::<HeldReceipt>(T::HeldReceipts, key)?;
        if let Some(h) = &held {
            self.del(T::HeldDue, trees::held_due_key(h.at_ms, key));
            self.del(T::HeldReceipts, key.to_vec());
        }
        Ok(held)
    }

    /// Every write of an outbox entry goes here: `leases` holds its key
    /// exactly while the entry has a lease (what the start looks for).
    /// A key below its carrier's claim start moves the start down to it
    /// (whether or not this call commits: a start too low only costs a
    /// longer scan).
    fn put_outbox(&mut self, key: Vec<u8>, entry: &OutboxEntry) -> StoreResult<()> {
        if let Some(from) = self.claim_from.get_mut(trees::outbox_prefix_of(&key)) {
            if key < *from {
                from.clone_from(&key);
            }
        }
        if entry.lease_until_ms.is_some() {
            self.put(T::Leases, key.clone(), Vec::new());
        } else {
            self.del(T::Leases, key.clone());
        }
        self.put_compact(T::Outbox, key, entry)
    }

    /// Every delete of an outbox entry (and its lease) goes here.
    fn del_outbox(&mut self, key: Vec<u8>) {
        self.del(T::Leases, key.clone());
        self.del(T::Outbox, key);
    }

    fn conv(&self, cid: ConversationId) -> StoreResult<Option<Conversation>> {
        find_conv(|t| self.get_val(t, &id(cid)))
    }

    /// Every write of a conversation goes here. An ended one (it never
    /// changes state again) moves to `ended_conversations`, indexed by its
    /// end time.
    fn put_conv(&mut self, c: &Conversation) -> StoreResult<()> {
        if c.state != ConversationState::Ended {
            return self.put_compact(T::Conversations, id(c.id), c);
        }
        if let Some(at) = c.ended_ms {
            self.put(T::Ended, trees::time_key(at, c.id), Vec::new());
        }
        self.del(T::Conversations, id(c.id));
        self.put_compact(T::EndedConversations, id(c.id), c)
    }

    /// A message submitted at `now` now waits for its final receipt.
    fn await_receipt(&mut self, mid: MessageId, now: u64) -> StoreResult<()> {
        self.stop_awaiting(mid)?;
        self.put(T::AwaitingReceipts, id(mid), id(now).to_vec());
        self.put(T::ReceiptDue, trees::time_key(now, mid), Vec::new());
        Ok(())
    }

    /// A message no longer waits for a receipt (final, expired or purged).
    fn stop_awaiting(&mut self, mid: MessageId) -> StoreResult<()> {
        if let Some(since) = self.get_u64(T::AwaitingReceipts, &id(mid))? {
            self.del(T::ReceiptDue, trees::time_key(since, mid));
            self.del(T::AwaitingReceipts, id(mid));
        }
        Ok(())
    }

    fn msg(&self, mid: MessageId) -> StoreResult<Option<Message>> {
        self.get_val(T::Messages, &id(mid))
    }

    fn put_msg(&mut self, m: &Message) -> StoreResult<()> {
        self.put_compact(T::Messages, id(m.id), m)
    }

    /// Stores a new message as the newest of its conversation: linked after
    /// the one that was (read back from this transaction, so whatever the
    /// caller wrote of the conversation stays), which it replaces as the
    /// conversation's `last_message`.
    fn append_message(&mut self, mut m: Message) -> StoreResult<MessageId> {
        let Some(mut c) = self.conv(m.conversation)? else {
            return Err(StoreError::Corrupt {
                tree: T::Conversations.name(),
                detail: format!(
                    "message {} of missing conversation {}",
                    m.id, m.conversation
                ),
            });
        };
        m.previous = c.last_message;
        c.last_message = Some(m.id);
        self.put_msg(&m)?;
        self.put_conv(&c)?;
        Ok(m.id)
    }

    fn open_conv(&self, sender: &str, customer: &str) -> StoreResult<Option<Conversation>> {
        match self.get_u64(T::Open, &trees::open_key(sender, customer))? {
            Some(cid) => self.conv(cid),
            None => Ok(None),
        }
    }

    fn event(
        &mut self,
        conv: Option<&Conversation>,
        kind: EventKind,
        now_ms: u64,
    ) -> StoreResult<Seq> {
        let seq = self.c.seq;
        self.c.seq += 1;
        let ev = Event {
            seq,
            at_ms: now_ms,
            conversation: conv.map(|c| c.id),
            owner: conv.and_then(|c| (!c.owner.is_empty()).then(|| c.owner.clone())),
            service: conv.map(|c| c.service.clone()),
            customer: conv.map(|c| c.customer.clone()),
            kind,
        };
        self.put_val(T::Events, id(seq), &ev)?;
        self.last_seq = seq;
        Ok(seq)
    }

    fn next_conversation(&mut self) -> u64 {
        let v = self.c.conversation;
        self.c.conversation += 1;
        v
    }

    fn next_message(&mut self) -> u64 {
        let v = self.c.message;
        self.c.message += 1;
        v
    }
}

// === Operations (run under the writer lock) ===

fn accept_send(
    tx: &mut Tx<'_>,
    new: NewOutbound,
    now: u64,
) -> StoreResult<Result<Accepted, SendRefused>> {
    let agent = new.owner.clone();
    if let Some(r) = &new.client_ref {
        if let Some(mid) = tx.get_u64(T::Idempotency, &trees::idempotency_key(&agent, r))? {
            if let Some(m) = tx.msg(mid)? {
                return Ok(Ok(Accepted {
                    conversation: m.conversation,
                    message: m.id,
                    at_ms: m.created_ms,
                    duplicate: true,
                }));
            }
        }
    }
    if let Some(since_ms) =
        tx.get_u64(T::OptOuts, &trees::opt_out_key(&new.sender, &new.customer))?
    {
        return Ok(Err(SendRefused::OptedOut { since_ms }));
    }
    let explicit = match new.conversation {
        Some(cid) => match tx.conv(cid)? {
            Some(c) => Some(c),
            None => return Ok(Err(SendRefused::ConversationNotFound { id: cid })),
        },
        None => None,
    };
    let open = tx.open_conv(&new.sender, &new.customer)?;
    let decision = rules::decide_send(
        explicit.as_ref(),
        open.as_ref(),
        &agent,
        &new.sender,
        &new.customer,
    );
    // Checked before anything is written (a refusal commits nothing), after
    // the refusals that say more; a retried send that was stored is
    // answered above as a duplicate even when the outbox is full.
    let queued = tx.counts.outbox_of(new.carrier.as_bytes());
    if let Some(limit) = new.outbox_limit
        && queued >= limit
        && !matches!(decision, SendDecision::Refuse(_))
    {
        return Ok(Err(SendRefused::OutboxFull {
            carrier: new.carrier.clone(),
            depth: queued,
            limit,
        }));
    }
    let conv = match decision {
        SendDecision::Refuse(r) => return Ok(Err(r)),
        SendDecision::Continue {
            conversation,
            take_over,
        } => {
            let found = [explicit, open]
                .into_iter()
                .flatten()
                .find(|c| c.id == conversation);
            let Some(mut c) = found else {
                return Ok(Err(SendRefused::ConversationNotFound { id: conversation }));
            };
            c.updated_ms = now;
            if new.interaction.is_some() {
                c.interaction = new.interaction.clone();
            }
            if let Some(from) = take_over {
                c.owner = agent.clone();
                c.state = ConversationState::Open;
                tx.event(
                    Some(&c),
                    EventKind::ChatAssigned {
                        from,
                        to: agent.clone(),
                    },
                    now,
                )?;
            }
            tx.put_conv(&c)?;
            c
        }
        SendDecision::Open => {
            let c = Conversation {
                id: tx.next_conversation(),
                service: new.service.clone(),
                sender: new.sender.clone(),
                customer: new.customer.clone(),
                owner: agent.clone(),
                interaction: new.interaction.clone(),
                state: ConversationState::Open,
                created_ms: now,
                updated_ms: now,
                ended_ms: None,
                last_message: None,
            };
            tx.put_conv(&c)?;
            tx.put(
                T::Open,
                trees::open_key(&c.sender, &c.customer),
                id(c.id).to_vec(),
            );
            c
        }
    };
    let parts = new.parts.max(1);
    let message = put_outbound(
        tx,
        &conv,
        Outbound {
            text: new.text,
            encoding: new.encoding,
            parts,
            carrier: &new.carrier,
            client_ref: new.client_ref.clone(),
            agent: Some(agent.clone()),
            idempotency: new
                .client_ref
                .as_ref()
                .map(|r| trees::idempotency_key(&agent, r)),
        },
        now,
    )?;
    Ok(Ok(Accepted {
        conversation: conv.id,
        message,
        at_ms: now,
        duplicate: false,
    }))
}

fn accept_system_send(
    tx: &mut Tx<'_>,
    new: SystemOutbound,
    now: u64,
) -> StoreResult<Result<Accepted, SystemRefused>> {
    let opted = tx.get_u64(T::OptOuts, &trees::opt_out_key(&new.sender, &new.customer))?;
    // Once per opt-out (its `since` stays while it lasts), once per help request.
    let key = match (new.reason, opted) {
        (SystemReason::OptOutConfirmation, Some(since)) => Some(trees::system_ref_key(
            "optout_confirmation",
            &new.sender,
            &new.customer,
            since,
        )),
        (SystemReason::OptOutConfirmation, None) => return Ok(Err(SystemRefused::NotOptedOut)),
        (SystemReason::Help, Some(since_ms)) => {
            return Ok(Err(SystemRefused::OptedOut { since_ms }));
        }
        (SystemReason::Help, None) => new
            .in_reply_to
            .map(|mid| trees::system_ref_key("help", &new.sender, &new.customer, mid)),
    };
    if let Some(k) = &key {
        if let Some(mid) = tx.get_u64(T::Idempotency, k)? {
            if let Some(m) = tx.msg(mid)? {
                return Ok(Ok(Accepted {
                    conversation: m.conversation,
                    message: m.id,
                    at_ms: m.created_ms,
                    duplicate: true,
                }));
            }
        }
    }
    let fits = |c: &Conversation| {
        c.sender == new.sender && c.customer == new.customer && c.state != ConversationState::Ended
    };
    let named = match new.conversation {
        Some(cid) => tx.conv(cid)?.filter(|c| fits(c)),
        None => None,
    };
    let found = match named {
        Some(c) => Some(c),
        None => tx
            .open_conv(&new.sender, &new.customer)?
            .filter(|c| fits(c)),
    };
    let conv = match found {
        Some(mut c) => {
            // Owner and state stay: the gateway answering takes nothing over.
            c.updated_ms = now;
            tx.put_conv(&c)?;
            c
        }
        None => {
            // No chat to put it in: one of its own, ended at once, so the
            // outbox and the transcript have a home and nothing reopens.
            let c = Conversation {
                id: tx.next_conversation(),
                service: new.service.clone(),
                sender: new.sender.clone(),
                customer: new.customer.clone(),
                owner: String::new(),
                interaction: None,
                state: ConversationState::Ended,
                created_ms: now,
                updated_ms: now,
                ended_ms: Some(now),
                last_message: None,
            };
            tx.put_conv(&c)?;
            c
        }
    };
    let parts = new.parts.max(1);
    let message = put_outbound(
        tx,
        &conv,
        Outbound {
            text: new.text,
            encoding: new.encoding,
            parts,
            carrier: &new.carrier,
            client_ref: None,
            agent: None,
            idempotency: key,
        },
        now,
    )?;
    Ok(Ok(Accepted {
        conversation: conv.id,
        message,
        at_ms: now,
        duplicate: false,
    }))
}

/// What [`put_outbound`] stores.
struct Outbound<'a> {
    text: String,
    encoding: String,
    parts: u8,
    carrier: &'a str,
    client_ref: Option<String>,
    agent: Option<String>,
    /// Key under which the message id is remembered, so a repeat is answered
    /// with the first result (an agent's client_ref, or a system answer's).
    idempotency: Option<Vec<u8>>,
}

/// Stores an outbound message in `conv` with its outbox entry, its
/// idempotency key and its `message_accepted` event: what every send, an
/// agent's or a system answer, writes in one transaction.
fn put_outbound(
    tx: &mut Tx<'_>,
    conv: &Conversation,
    o: Outbound<'_>,
    now: u64,
) -> StoreResult<MessageId> {
    let parts = o.parts;
    let m = Message {
        id: tx.next_message(),
        conversation: conv.id,
        direction: Direction::Out,
        text: o.text,
        encoding: o.encoding,
        parts,
        status: MessageStatus::Accepted,
        created_ms: now,
        updated_ms: now,
        submitted_ms: None,
        carrier: Some(o.carrier.to_string()),
        part_ids: vec![None; parts as usize],
        part_states: vec![PartState::Pending; parts as usize],
        error: None,
        client_ref: o.client_ref,
        agent: o.agent,
        possible_duplicate: false,
        incomplete: false,
        previous: None,
    };
    let accepted = EventKind::MessageAccepted {
        message: m.id,
        text: m.text.clone(),
        parts: m.parts,
        encoding: m.encoding.clone(),
    };
    let mid = tx.append_message(m)?;
    let entry = OutboxEntry {
        message: mid,
        conversation: conv.id,
        attempt: 0,
        lease_until_ms: None,
        possible_duplicate: false,
        unknown: 0,
        resting: false,
    };
    tx.put_outbox(trees::outbox_key(o.carrier, mid), &entry)?;
    if let Some(k) = o.idempotency {
        tx.put(T::Idempotency, k, id(mid).to_vec());
    }
    tx.event(Some(conv), accepted, now)?;
    Ok(mid)
}

/// Claims up to `max` items; with `in_order`, an item whose conversation has
/// an older item still leased is held back.
fn claim_outbox(
    tx: &mut Tx<'_>,
    carrier: &str,
    max: usize,
    lease_ms: u64,
    now: u64,
    in_order: bool,
) -> StoreResult<Vec<OutboxItem>> {
    let mut out = Vec::new();
    let prefix = trees::outbox_prefix(carrier);
    // The leased head of the outbox as the last claims saw it, while every
    // lease in it holds: the scan starts past it.
    if tx
        .runs
        .get_mut(&prefix)
        .is_some_and(|r| r.entries.is_empty() || !r.holds_at(now))
    {
        tx.runs.remove(&prefix);
    }
    let run_end = tx.runs.get(&prefix).map(|r| r.end.clone());
    // Below the start the carrier's outbox holds nothing: the keys sent
    // since the last checkpoint are deletes the scan would otherwise step
    // over one by one in sled, on every claim of a draining backlog.
    let claim_start = match tx.claim_from.get(&prefix) {
        Some(from) => from.clone(),
        None => prefix.clone(),
    };
    let start = run_end.clone().unwrap_or_else(|| claim_start.clone());
    let end = trees::successor(&prefix);
    let mut first = None;
    let mut found = Vec::new();
    // `in_order`: conversations with an earlier message out on a bind; their
    // later messages wait, so a second bind cannot overtake the first (keys
    // are in message, i.e. accept, order). Those of the run are in it.
    let mut busy = std::collections::HashSet::new();
    let run_busy = tx.runs.get(&prefix).map(|r| &r.busy);
    // The leased entries met before any other: they extend the run.
    let mut leased_head = Vec::new();
    let mut head = true;
    let scan = match &end {
        Some(end) => tx.tree(T::Outbox).range(start.as_slice()..end.as_slice()),
        None => tx.tree(T::Outbox).range(start.as_slice()..),
    };
    for kv in scan.take(CLAIM_SCAN_LIMIT.max(max)) {
        if found.len() >= max {
            break;
        }
        let (k, v) = kv?;
        if first.is_none() {
            first = Some(k.to_vec());
        }
        let entry: OutboxEntry = decode(T::Outbox.name(), &v)?;
        if let Some(until) = entry.lease_until_ms.filter(|&t| t > now) {
            if in_order {
                busy.insert(entry.conversation);
            }
            if head {
                leased_head.push((k.to_vec(), entry.conversation, until));
            }
            continue;
        }
        head = false;
        let c = &entry.conversation;
        if in_order && (busy.contains(c) || run_busy.is_some_and(|b| b.contains_key(c))) {
            continue;
        }
        found.push((k.to_vec(), entry));
    }
    if run_end.is_none() {
        // The scan saw every key from the claim start on (committed ones:
        // not this call's own puts, which may lie below what it saw).
        let seen = first.unwrap_or_else(|| trees::outbox_key(carrier, tx.c.message));
        let own = tx
            .writes
            .range((T::Outbox, claim_start.clone())..)
            .take_while(|((t, k), _)| *t == T::Outbox && k.starts_with(&prefix))
            .find(|(_, v)| v.is_some())
            .map(|((_, k), _)| k.clone());
        let from = match own {
            Some(k) if k < seen => k,
            _ => seen,
        };
        // Unless a put of this call moved the start down meanwhile.
        let entry = tx
            .claim_from
            .entry(prefix.clone())
            .or_insert_with(|| claim_start.clone());
        if *entry == claim_start {
            entry.clone_from(&from);
            // The run starts at the claim start; a put of this call below
            // its end drops it once committed.
            tx.runs.insert(
                prefix.clone(),
                LeasedRun {
                    end: from,
                    ..LeasedRun::default()
                },
            );
        }
    } else if let Some(head) = tx
        .runs
        .get(&prefix)
        .and_then(|r| r.entries.keys().next().cloned())
    {
        // The run holds every key from the claim start to its end: below
        // its first entry (those before it were deleted) there is none.
        // Unless a put of this call moved the start down meanwhile.
        if let Some(from) = tx.claim_from.get_mut(&prefix) {
            if *from == claim_start && head > claim_start {
                *from = head;
            }
        }
    }
    if let Some(run) = tx.runs.get_mut(&prefix) {
        for (k, c, until) in leased_head {
            run.add(k, c, until);
        }
    }
    for (k, mut entry) in found {
        let Some(mut m) = tx.msg(entry.message)? else {
            tx.del_outbox(k);
            continue;
        };
        let Some(c) = tx.conv(entry.conversation)? else {
            tx.del_outbox(k);
            continue;
        };
        if entry.lease_until_ms.is_some() {
            // The lease lapsed while it was out: it may have been sent.
            entry.possible_duplicate = true;
        }
        if entry.possible_duplicate && !m.possible_duplicate {
            m.possible_duplicate = true;
            tx.put_msg(&m)?;
        }
        entry.attempt = entry.attempt.saturating_add(1);
        let lease_until_ms = now.saturating_add(lease_ms);
        entry.lease_until_ms = Some(lease_until_ms);
        entry.resting = false;
        tx.put_outbox(k, &entry)?;
        out.push(OutboxItem {
            message: m.id,
            conversation: c.id,
            service: c.service,
            sender: c.sender,
            customer: c.customer,
            text: m.text,
            encoding: m.encoding,
            parts: m.parts,
            carrier: carrier.to_string(),
            attempt: entry.attempt,
            possible_duplicate: entry.possible_duplicate,
            lease_until_ms,
            accepted_ms: m.created_ms,
        });
    }
    Ok(out)
}

fn release(tx: &mut Tx<'_>, message: MessageId, duplicate: bool) -> StoreResult<bool> {
    let Some(mut m) = tx.msg(message)? else {
        return Ok(false);
    };
    let key = trees::outbox_key(m.carrier.as_deref().unwrap_or_default(), message);
    let Some(mut entry) = tx.get_val::<OutboxEntry>(T::Outbox, &key)? else {
        return Ok(false);
    };
    entry.lease_until_ms = None;
    entry.resting = false;
    if duplicate {
        entry.possible_duplicate = true;
        if !m.possible_duplicate {
            m.possible_duplicate = true;
            tx.put_msg(&m)?;
        }
    }
    tx.put_outbox(key, &entry)?;
    Ok(true)
}

/// Hands back an item whose outcome is unknown, counting it; past
/// `max_resubmits` the message ends `unknown` instead (see
/// [`Store::release_unanswered`]).
fn release_unanswered(
    tx: &mut Tx<'_>,
    message: MessageId,
    max_resubmits: u32,
    now: u64,
    resend_after: u64,
) -> StoreResult<Unanswered> {
    let Some(mut m) = tx.msg(message)? else {
        return Ok(Unanswered::NotFound);
    };
    let key = trees::outbox_key(m.carrier.as_deref().unwrap_or_default(), message);
    let Some(mut entry) = tx.get_val::<OutboxEntry>(T::Outbox, &key)? else {
        return Ok(Unanswered::NotFound);
    };
    entry.unknown = entry.unknown.saturating_add(1);
    if entry.unknown > max_resubmits {
        m.possible_duplicate = true;
        tx.del_outbox(key);
        m.status = MessageStatus::Unknown;
        m.updated_ms = now;
        tx.put_msg(&m)?;
        let conv = tx.conv(m.conversation)?;
        let kind = EventKind::MessageFailed {
            message,
            state: FailState::NoReceipt,
            error: None,
        };
        tx.event(conv.as_ref(), kind, now)?;
        return Ok(Unanswered::GaveUp {
            unknown: entry.unknown,
        });
    }
    if resend_after > 0 {
        // Held leased until then, and not flagged yet: a late response
        // meanwhile shows it went once. The claim after the lapse flags it
        // (a lapsed lease) before it goes again. A restart keeps this
        // lease (no bind holds it), so the delay holds across one.
        entry.lease_until_ms = Some(now.saturating_add(resend_after));
        entry.resting = true;
    } else {
        entry.lease_until_ms = None;
        entry.possible_duplicate = true;
        m.possible_duplicate = true;
        tx.put_msg(&m)?;
    }
    tx.put_outbox(key, &entry)?;
    Ok(Unanswered::Released {
        unknown: entry.unknown,
    })
}

/// Recomputes a message's status from its parts; emits the events of the
/// transition, keeps the outbox and the awaiting-receipt index in step.
fn settle(tx: &mut Tx<'_>, m: &mut Message, now: u64) -> StoreResult<()> {
    let old = m.status;
    let (mut new, fail) = aggregate_status(&m.part_states);
    if old == MessageStatus::Unknown
        && matches!(new, MessageStatus::Submitted | MessageStatus::Accepted)
    {
        new = MessageStatus::Unknown;
    }
    m.updated_ms = now;
    let all_answered = m.part_states.iter().all(|p| *p != PartState::Pending);
    if all_answered || fail.is_some() {
        tx.del_outbox(trees::outbox_key(
            m.carrier.as_deref().unwrap_or_default(),
            m.id,
        ));
    }
    if new != old {
        let conv = tx.conv(m.conversation)?;
        if old == MessageStatus::Accepted
            && matches!(new, MessageStatus::Submitted | MessageStatus::Delivered)
        {
            m.submitted_ms = Some(now);
            let kind = EventKind::MessageSubmitted {
                message: m.id,
                possible_duplicate: m.possible_duplicate,
            };
            tx.event(conv.as_ref(), kind, now)?;
        }
        match new {
            MessageStatus::Submitted => {
                tx.await_receipt(m.id, now)?;
            }
            MessageStatus::Delivered => {
                tx.stop_awaiting(m.id)?;
                tx.event(
                    conv.as_ref(),
                    EventKind::MessageDelivered { message: m.id },
                    now,
                )?;
            }
            MessageStatus::Failed | MessageStatus::Expired => {
                tx.stop_awaiting(m.id)?;
                let kind = EventKind::MessageFailed {
                    message: m.id,
                    state: fail.unwrap_or(FailState::Unknown),
                    error: m.error.clone(),
                };
                tx.event(conv.as_ref(), kind, now)?;
            }
            _ => {}
        }
        m.status = new;
    }
    tx.put_msg(m)
}

fn record_submit(
    tx: &mut Tx<'_>,
    message: MessageId,
    part: u8,
    total_parts: u8,
    result: Result<String, SubmitFailure>,
    now: u64,
) -> StoreResult<SubmitOutcome> {
    let Some(mut m) = tx.msg(message)? else {
        return Ok(SubmitOutcome::Ignored);
    };
    if m.direction != Direction::Out {
        return Ok(SubmitOutcome::Ignored);
    }
    if total_parts > m.parts {
        m.parts = total_parts;
        m.part_ids.resize(total_parts as usize, None);
        m.part_states
            .resize(total_parts as usize, PartState::Pending);
    }
    let p = part as usize;
    if p >= m.part_states.len() {
        return Ok(SubmitOutcome::Ignored);
    }
    let carrier = m.carrier.clone().unwrap_or_default();
    let mut receipts_applied = 0;
    match result {
        Ok(carrier_id) => {
            let key = trees::carrier_id_key(&carrier, &carrier_id);
            let mut v = id(message).to_vec();
            v.push(part);
            tx.put(T::CarrierIds, key.clone(), v);
            m.part_ids[p] = Some(carrier_id);
            if m.part_states[p] == PartState::Pending {
                m.part_states[p] = PartState::Submitted;
            }
            if let Some(held) = tx.take_held(&key)? {
                for sib in &held.siblings {
                    tx.take_held(&trees::carrier_id_key(&carrier, sib))?;
                }
                if !m.part_states[p].is_final() {
                    let state = PartState::from_receipt(&held.update);
                    if state.failure().is_some() {
                        m.error = held.update.error.clone();
                    }
                    m.part_states[p] = state;
                }
                receipts_applied += 1;
            }
        }
        Err(f) if f.permanent => {
            m.part_states[p] = PartState::SubmitFailed;
            m.error = Some(format!("0x{:08x}", f.status));
        }
        Err(_) => return Ok(SubmitOutcome::Retry),
    }
    settle(tx, &mut m, now)?;
    if m.part_states.contains(&PartState::SubmitFailed) {
        return Ok(SubmitOutcome::Failed);
    }
    let answered = m
        .part_states
        .iter()
        .filter(|s| **s != PartState::Pending)
        .count();
    if answered == m.part_states.len() {
        Ok(SubmitOutcome::Done {
            status: m.status,
            receipts_applied,
        })
    } else {
        Ok(SubmitOutcome::Pending {
            answered: answered as u8,
            total: m.parts,
        })
    }
}

fn record_receipt(
    tx: &mut Tx<'_>,
    carrier: &str,
    candidates: &[&str],
    update: ReceiptUpdate,
    now: u64,
) -> StoreResult<(ReceiptOutcome, Option<usize>)> {
    let mut hit = None;
    for (i, c) in candidates.iter().enumerate() {
        if let Some(v) = tx.get(T::CarrierIds, &trees::carrier_id_key(carrier, c))? {
            hit = Some((i, v));
            break;
        }
    }
    let Some((which, v)) = hit else {
        // Arrived before its submit_sm_resp: hold it under every candidate
        // form. A final receipt is never replaced by an intermediate one.
        let Some(first) = candidates.first() else {
            return Ok((ReceiptOutcome::Duplicate, None));
        };
        let key = trees::carrier_id_key(carrier, first);
        if let Some(held) = tx.get_val::<HeldReceipt>(T::HeldReceipts, &key)? {
            let held_final = PartState::from_receipt(&held.update).is_final();
            if held.update == update || (held_final && !PartState::from_receipt(&update).is_final())
            {
                return Ok((ReceiptOutcome::Held, None));
            }
        }
        let held = HeldReceipt {
            update,
            at_ms: now,
            siblings: candidates.iter().map(|c| c.to_string()).collect(),
        };
        for c in candidates {
            tx.put_held(trees::carrier_id_key(carrier, c), &held)?;
        }
        return Ok((ReceiptOutcome::Held, None));
    };
    let outcome = apply_receipt(tx, &v, update, now)?;
    Ok((outcome, Some(which)))
}

fn apply_receipt(
    tx: &mut Tx<'_>,
    v: &[u8],
    update: ReceiptUpdate,
    now: u64,
) -> StoreResult<ReceiptOutcome> {
    let (Some(message), Some(&part)) = (trees::read_u64(v), v.get(8)) else {
        return Err(StoreError::Corrupt {
            tree: T::CarrierIds.name(),
            detail: "short value".into(),
        });
    };
    let Some(mut m) = tx.msg(message)? else {
        return Ok(ReceiptOutcome::Duplicate);
    };
    let p = part as usize;
    let Some(&current) = m.part_states.get(p) else {
        return Ok(ReceiptOutcome::Duplicate);
    };
    let state = PartState::from_receipt(&update);
    if current.is_final() || current == state {
        return Ok(ReceiptOutcome::Duplicate);
    }
    m.part_states[p] = state;
    if state.failure().is_some() {
        m.error = update.error;
    }
    settle(tx, &mut m, now)?;
    Ok(ReceiptOutcome::Applied {
        message,
        status: m.status,
        submitted_ms: m.submitted_ms,
    })
}

fn expire_pending(
    tx: &mut Tx<'_>,
    now: u64,
    timeout: u64,
    held_max_age: u64,
) -> StoreResult<ExpireReport> {
    let mut report = ExpireReport::default();
    let (waits, more) = due(tx.tree(T::ReceiptDue), now, timeout, EXPIRE_CHUNK)?;
    report.more = more;
    let room = EXPIRE_CHUNK - waits.len();
    for (key, mid) in waits {
        tx.stop_awaiting(mid)?;
        // Its own entry too, even one the wait no longer matches: the next
        // chunk must not read it again.
        tx.del(T::ReceiptDue, key);
        let Some(mut m) = tx.msg(mid)? else { continue };
        if m.status != MessageStatus::Submitted {
            continue;
        }
        m.status = MessageStatus::Unknown;
        m.updated_ms = now;
        tx.put_msg(&m)?;
        let conv = tx.conv(m.conversation)?;
        let kind = EventKind::MessageFailed {
            message: mid,
            state: FailState::NoReceipt,
            error: None,
        };
        tx.event(conv.as_ref(), kind, now)?;
        report.no_receipt += 1;
    }
    // Only the holds old enough, oldest first, from their time index (a
    // carrier sending receipts for ids never submitted made this a read
    // of every held receipt, under the writer lock, every sweep).
    let mut old = Vec::new();
    for kv in tx.tree(T::HeldDue).iter() {
        let (k, _) = kv?;
        let Some((at, key)) = trees::split_held_due_key(&k) else {
            return Err(StoreError::Corrupt {
                tree: T::HeldDue.name(),
                detail: format!("short key {k:?}"),
            });
        };
        if at.saturating_add(held_max_age) > now {
            break;
        }
        if old.len() == room {
            report.more = true;
            break;
        }
        old.push((k.to_vec(), at, key.to_vec()));
    }
    for (index_key, at, key) in old {
        match tx.get_val::<HeldReceipt>(T::HeldReceipts, &key)? {
            Some(held) if held.at_ms == at => {
                // Count a receipt held under several forms once.
                let primary = match (held.siblings.first(), trees::split_lp(&key)) {
                    (Some(first), Some((_, rest))) => rest == first.as_bytes(),
                    _ => true,
                };
                report.held_dropped += usize::from(primary);
                tx.take_held(&key)?;
            }
            // An entry its hold no longer matches: only the entry goes.
            _ => tx.del(T::HeldDue, index_key),
        }
    }
    Ok(report)
}

fn record_inbound(
    tx: &mut Tx<'_>,
    msg: InboundMessage,
    policy: InboundPolicy,
    now: u64,
) -> StoreResult<InboundOutcome> {
    let open = tx.open_conv(&msg.sender, &msg.customer)?;
    let decision = rules::decide_inbound(open.as_ref(), policy);
    let mut stored: Option<(Conversation, MessageId)> = None;
    let outcome = match (decision, open) {
        (InboundDecision::Matched(_), Some(mut c)) => {
            c.updated_ms = now;
            tx.put_conv(&c)?;
            let mid = put_inbound(tx, &c, &msg, now)?;
            let kind = EventKind::MessageReceived {
                message: mid,
                text: msg.text.clone(),
                incomplete: msg.incomplete,
            };
            tx.event(Some(&c), kind, now)?;
            let outcome = InboundOutcome::Matched {
                conversation: c.id,
                message: mid,
                owner: c.owner.clone(),
            };
            stored = Some((c, mid));
            outcome
        }
        (InboundDecision::Request, _) => {
            let c = Conversation {
                id: tx.next_conversation(),
                service: msg.service.clone(),
                sender: msg.sender.clone(),
                customer: msg.customer.clone(),
                owner: String::new(),
                interaction: None,
                state: ConversationState::Requested,
                created_ms: now,
                updated_ms: now,
                ended_ms: None,
                last_message: None,
            };
            tx.put_conv(&c)?;
            tx.put(
                T::Open,
                trees::open_key(&c.sender, &c.customer),
                id(c.id).to_vec(),
            );
            let mid = put_inbound(tx, &c, &msg, now)?;
            let kind = EventKind::ChatRequested {
                message: mid,
                text: msg.text.clone(),
            };
            tx.event(Some(&c), kind, now)?;
            let outcome = InboundOutcome::ChatRequested {
                conversation: c.id,
                message: mid,
            };
            stored = Some((c, mid));
            outcome
        }
        _ => InboundOutcome::Ignored,
    };
    let key = trees::opt_out_key(&msg.sender, &msg.customer);
    match msg.opt {
        Some(OptChange::Out) => {
            if tx.get(T::OptOuts, &key)?.is_none() {
                tx.put(T::OptOuts, key, id(now).to_vec());
            }
            if let Some((c, mid)) = &stored {
                tx.event(Some(c), EventKind::CustomerOptedOut { message: *mid }, now)?;
            }
        }
        Some(OptChange::In) => {
            tx.del(T::OptOuts, key);
            if let Some((c, mid)) = &stored {
                tx.event(Some(c), EventKind::CustomerOptedIn { message: *mid }, now)?;
            }
        }
        None => {}
    }
    Ok(outcome)
}

fn put_inbound(
    tx: &mut Tx<'_>,
    c: &Conversation,
    msg: &InboundMessage,
    now: u64,
) -> StoreResult<MessageId> {
    let m = Message {
        id: tx.next_message(),
        conversation: c.id,
        direction: Direction::In,
        text: msg.text.clone(),
        encoding: msg.encoding.clone(),
        parts: msg.parts.max(1),
        status: MessageStatus::Received,
        created_ms: now,
        updated_ms: now,
        submitted_ms: None,
        carrier: None,
        part_ids: Vec::new(),
        part_states: Vec::new(),
        error: None,
        client_ref: None,
        agent: None,
        possible_duplicate: false,
        incomplete: msg.incomplete,
        previous: None,
    };
    tx.append_message(m)
}

fn end_chat(
    tx: &mut Tx<'_>,
    cid: ConversationId,
    by: &str,
    now: u64,
) -> StoreResult<Result<Conversation, ChatRefused>> {
    let conv = tx.conv(cid)?;
    if let Err(r) = rules::decide_end(conv.as_ref()) {
        return Ok(Err(r));
    }
    let Some(mut c) = conv else {
        return Ok(Err(ChatRefused::NotFound));
    };
    c.state = ConversationState::Ended;
    c.ended_ms = Some(now);
    c.updated_ms = now;
    tx.put_conv(&c)?;
    let key = trees::open_key(&c.sender, &c.customer);
    if tx.get_u64(T::Open, &key)? == Some(cid) {
        tx.del(T::Open, key);
    }
    tx.event(Some(&c), EventKind::ChatEnded { by: by.to_string() }, now)?;
    Ok(Ok(c))
}

fn assign(
    tx: &mut Tx<'_>,
    cid: ConversationId,
    to: &str,
    now: u64,
) -> StoreResult<Result<Conversation, ChatRefused>> {
    let conv = tx.conv(cid)?;
    let from = match rules::decide_assign(conv.as_ref(), to) {
        Err(r) => return Ok(Err(r)),
        Ok(from) => from,
    };
    let Some(mut c) = conv else {
        return Ok(Err(ChatRefused::NotFound));
    };
    if let Some(from) = from {
        c.owner = to.to_string();
        c.state = ConversationState::Open;
        c.updated_ms = now;
        tx.put_conv(&c)?;
        let kind = EventKind::ChatAssigned {
            from,
            to: to.to_string(),
        };
        tx.event(Some(&c), kind, now)?;
    }
    Ok(Ok(c))
}

/// Releases every lease (the previous process's binds are gone), reading
/// only the `leases` index, not the outbox.
fn recover(tx: &mut Tx<'_>, now: u64) -> StoreResult<RecoverReport> {
    let mut report = RecoverReport::default();
    let mut keys = Vec::new();
    for kv in tx.tree(T::Leases).iter() {
        let (k, _) = kv?;
        keys.push(k.to_vec());
    }
    for k in keys {
        let Some(mut entry) = tx.get_val::<OutboxEntry>(T::Outbox, &k)? else {
            // An index entry without its outbox entry: drop it.
            tx.del(T::Leases, k);
            continue;
        };
        if entry.lease_until_ms.is_none() {
            tx.del(T::Leases, k);
            continue;
        }
        if entry.resting && entry.lease_until_ms.is_some_and(|t| t > now) {
            // Waiting out its resend delay: not a bind's, so it stays.
            report.resting += 1;
            continue;
        }
        entry.lease_until_ms = None;
        entry.resting = false;
        entry.possible_duplicate = true;
        if let Some(mut m) = tx.msg(entry.message)? {
            m.possible_duplicate = true;
            tx.put_msg(&m)?;
        }
        tx.put_outbox(k, &entry)?;
        report.released_leases += 1;
    }
    report.last_seq = tx.c.seq - 1;
    Ok(report)
}

/// A time-index entry: its key and the id it names.
type DueEntry = (Vec<u8>, u64);

/// The entries of a time-ordered index (`receipt_due`, `ended`) at least
/// `age_ms` old at `now`, as (key, id), oldest first, at most `limit` of
/// them, and whether more are: reads only those, then stops.
fn due(
    index: TreeView<'_>,
    now: u64,
    age_ms: u64,
    limit: usize,
) -> StoreResult<(Vec<DueEntry>, bool)> {
    let mut out = Vec::new();
    for kv in index.iter() {
        let (k, _) = kv?;
        match trees::split_time_key(&k) {
            Some((at, _)) if at.saturating_add(age_ms) <= now && out.len() == limit => {
                return Ok((out, true));
            }
            Some((at, id)) if at.saturating_add(age_ms) <= now => out.push((k.to_vec(), id)),
            Some(_) => break,
            None => {
                return Err(StoreError::Corrupt {
                    tree: "index",
                    detail: format!("short time key {k:?}"),
                });
            }
        }
    }
    Ok((out, false))
}

/// A conversation's messages, newest first, read back along
/// [`Message::previous`] from its `last_message` with `read`. A link to a
/// missing message, to another conversation's, or to one not older is
/// `Corrupt` (ids only grow, so the walk always ends).
fn chain(
    c: &Conversation,
    read: impl FnMut(MessageId) -> StoreResult<Option<Message>>,
) -> StoreResult<Vec<Message>> {
    chain_from(c, c.last_message, usize::MAX, read).map(|(msgs, _)| msgs)
}

/// Up to `limit` of a conversation's messages along [`Message::previous`],
/// newest first, starting at `from`; and the next one not read (`None`:
/// the chain ended). Errors as [`chain`].
fn chain_from(
    c: &Conversation,
    from: Option<MessageId>,
    limit: usize,
    mut read: impl FnMut(MessageId) -> StoreResult<Option<Message>>,
) -> StoreResult<(Vec<Message>, Option<MessageId>)> {
    let mut out: Vec<Message> = Vec::new();
    let mut next = from;
    while let Some(mid) = next {
        if out.len() == limit {
            break;
        }
        let broken = |detail: String| StoreError::Corrupt {
            tree: T::Messages.name(),
            detail: format!("conversation {}: {detail}", c.id),
        };
        if out.last().is_some_and(|newer| mid >= newer.id) {
            return Err(broken(format!("message {mid} links forward")));
        }
        let Some(m) = read(mid)? else {
            return Err(broken(format!("message {mid} is missing")));
        };
        if m.conversation != c.id {
            return Err(broken(format!("message {mid} is of {}", m.conversation)));
        }
        next = m.previous;
        out.push(m);
    }
    Ok((out, next))
}

/// Purges up to `max` of an ended conversation's messages, newest first,
/// and the conversation itself once none is left. Returns how many
/// messages went and whether the conversation did: when not, it now ends
/// at the newest message left (its chain intact), and the next call goes
/// on from there.
fn purge_conversation(tx: &mut Tx<'_>, c: &Conversation, max: usize) -> StoreResult<(usize, bool)> {
    let (msgs, rest) = chain_from(c, c.last_message, max, |mid| tx.msg(mid))?;
    let n = msgs.len();
    for m in msgs {
        let carrier = m.carrier.as_deref().unwrap_or_default();
        for pid in m.part_ids.iter().flatten() {
            tx.del(T::CarrierIds, trees::carrier_id_key(carrier, pid));
        }
        if let (Some(agent), Some(r)) = (&m.agent, &m.client_ref) {
            tx.del(T::Idempotency, trees::idempotency_key(agent, r));
        }
        tx.del_outbox(trees::outbox_key(carrier, m.id));
        tx.stop_awaiting(m.id)?;
        tx.del(T::Messages, id(m.id));
    }
    if rest.is_some() {
        let mut left = c.clone();
        left.last_message = rest;
        tx.put_conv(&left)?;
        return Ok((n, false));
    }
    if let Some(at) = c.ended_ms {
        tx.del(T::Ended, trees::time_key(at, c.id));
    }
    for t in CONVERSATION_TREES {
        tx.del(t, id(c.id));
    }
    Ok((n, true))
}

/// One page out of `entries` (conversations, ids ascending): up to `limit`
/// (≥ 1) of those `keep` accepts, reading at most `budget` entries (plus one
/// raw look-ahead). `next` is the last listed id when a further kept entry
/// was seen, the last read id when the budget ran out first, and `None` when
/// the entries ended.
fn take_page<E>(
    entries: impl Iterator<Item = Result<Conversation, E>>,
    keep: impl Fn(&Conversation) -> bool,
    limit: usize,
    budget: usize,
) -> Result<ConversationPage, E> {
    let mut out: Vec<Conversation> = Vec::new();
    let mut last_read = None;
    for (read, c) in entries.enumerate() {
        if read == budget {
            // Out of budget with more to read: what was read and not listed
            // is behind `next`.
            return Ok(ConversationPage {
                conversations: out,
                next: last_read,
            });
        }
        let c = c?;
        last_read = Some(c.id);
        if !keep(&c) {
            continue;
        }
        if out.len() >= limit {
            // A full page, and one more to come.
            let next = out.last().map(|c| c.id);
            return Ok(ConversationPage {
                conversations: out,
                next,
            });
        }
        out.push(c);
    }
    Ok(ConversationPage {
        conversations: out,
        next: None,
    })
}

// === impl Store ===

impl Store for SledStore {
    async fn accept_send(
        &self,
        new: NewOutbound,
        now_ms: u64,
    ) -> StoreResult<Result<Accepted, SendRefused>> {
        self.run(|tx| accept_send(tx, new, now_ms)).await
    }

    async fn accept_system_send(
        &self,
        new: SystemOutbound,
        now_ms: u64,
    ) -> StoreResult<Result<Accepted, SystemRefused>> {
        self.run(|tx| accept_system_send(tx, new, now_ms)).await
    }

    async fn claim_outbox(
        &self,
        carrier: &str,
        max: usize,
        lease_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.run(|tx| claim_outbox(tx, carrier, max, lease_ms, now_ms, false))
            .await
    }

    async fn claim_outbox_in_order(
        &self,
        carrier: &str,
        max: usize,
        lease_ms: u64,
        now_ms: u64,
    ) -> StoreResult<Vec<OutboxItem>> {
        self.run(|tx| claim_outbox(tx, carrier, max, lease_ms, now_ms, true))
            .await
    }

    async fn release(&self, message: MessageId) -> StoreResult<bool> {
        self.run(|tx| release(tx, message, false)).await
    }

    async fn release_unanswered(
        &self,
        message: MessageId,
        max_resubmits: u32,
        now_ms: u64,
        resend_after_ms: u64,
    ) -> StoreResult<Unanswered> {
        self.run(|tx| release_unanswered(tx, message, max_resubmits, now_ms, resend_after_ms))
            .await
    }

    async fn release_sent(&self, message: MessageId) -> StoreResult<bool> {
        self.run(|tx| release(tx, message, true)).await
    }

    async fn record_submit(
        &self,
        message: MessageId,
        part: u8,
        total_parts: u8,
        result: Result<String, SubmitFailure>,
        now_ms: u64,
    ) -> StoreResult<SubmitOutcome> {
        self.run(|tx| record_submit(tx, message, part, total_parts, result, now_ms))
            .await
    }

    async fn record_submits(
        &self,
        batch: Vec<SubmitRecord>,
        now_ms: u64,
    ) -> StoreResult<Vec<SubmitOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.run(|tx| {
            batch
                .into_iter()
                .map(|r| record_submit(tx, r.message, r.part, r.total_parts, r.result, now_ms))
                .collect()
        })
        .await
    }

    async fn record_receipts(
        &self,
        carrier: &str,
        batch: Vec<ReceiptRecord>,
        now_ms: u64,
    ) -> StoreResult<Vec<(ReceiptOutcome, Option<usize>)>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        self.run(|tx| {
            batch
                .into_iter()
                .map(|r| {
                    let refs: Vec<&str> = r.candidates.iter().map(String::as_str).collect();
                    record_receipt(tx, carrier, &refs, r.update, now_ms)
                })
                .collect()
        })
        .await
    }

    async fn record_receipt(
        &self,
        carrier: &str,
        normalized_id: &str,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> StoreResult<ReceiptOutcome> {
        self.run(|tx| record_receipt(tx, carrier, &[normalized_id], update, now_ms))
            .await
            .map(|(outcome, _)| outcome)
    }

    async fn record_receipt_any(
        &self,
        carrier: &str,
        candidates: &[&str],
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> StoreResult<(ReceiptOutcome, Option<usize>)> {
        self.run(|tx| record_receipt(tx, carrier, candidates, update, now_ms))
            .await
    }

    async fn expire_pending(
        &self,
        now_ms: u64,
        receipt_timeout_ms: u64,
        held_max_age_ms: u64,
    ) -> StoreResult<ExpireReport> {
        self.run(|tx| expire_pending(tx, now_ms, receipt_timeout_ms, held_max_age_ms))
            .await
    }

    async fn record_inbound(
        &self,
        msg: InboundMessage,
        policy: InboundPolicy,
        now_ms: u64,
    ) -> StoreResult<InboundOutcome> {
        self.run(|tx| record_inbound(tx, msg, policy, now_ms)).await
    }

    async fn put_part(&self, key: &[u8], seq: u8, bytes: &[u8], now_ms: u64) -> StoreResult<()> {
        self.run(|tx| {
            let mut k = trees::reassembly_prefix(key);
            k.push(seq);
            let mut v = id(now_ms).to_vec();
            v.extend_from_slice(bytes);
            tx.put(T::Reassembly, k, v);
            Ok(())
        })
        .await
    }

    async fn take_parts(&self, key: &[u8]) -> StoreResult<BTreeMap<u8, Vec<u8>>> {
        self.run(|tx| {
            let prefix = trees::reassembly_prefix(key);
            let mut out = BTreeMap::new();
            let mut keys = Vec::new();
            for kv in tx.tree(T::Reassembly).scan_prefix(&prefix) {
                let (k, v) = kv?;
                if let (Some(&seq), Some(bytes)) = (k.get(prefix.len()), v.get(8..)) {
                    out.insert(seq, bytes.to_vec());
                }
                keys.push(k.to_vec());
            }
            for k in keys {
                tx.del(T::Reassembly, k);
            }
            Ok(out)
        })
        .await
    }

    async fn parts(&self, key: &[u8]) -> StoreResult<BTreeMap<u8, Vec<u8>>> {
        self.read_parts(key)
    }

    async fn reassembly_keys(&self) -> StoreResult<Vec<(Vec<u8>, u64)>> {
        let mut out: Vec<(Vec<u8>, u64)> = Vec::new();
        for kv in self.tree(T::Reassembly).iter() {
            let (k, v) = kv?;
            let (Some((key, _)), Some(at)) = (trees::split_lp(&k), trees::read_u64(&v)) else {
                continue;
            };
            match out.last_mut() {
                Some((last, first)) if last.as_slice() == key => *first = (*first).min(at),
                _ => out.push((key.to_vec(), at)),
            }
        }
        Ok(out)
    }

    async fn end_chat(
        &self,
        conversation: ConversationId,
        by: &str,
        now_ms: u64,
    ) -> StoreResult<Result<Conversation, ChatRefused>> {
        self.run(|tx| end_chat(tx, conversation, by, now_ms)).await
    }

    async fn assign(
        &self,
        conversation: ConversationId,
        to: &str,
        now_ms: u64,
    ) -> StoreResult<Result<Conversation, ChatRefused>> {
        self.run(|tx| assign(tx, conversation, to, now_ms)).await
    }

    async fn conversation(&self, cid: ConversationId) -> StoreResult<Option<Conversation>> {
        self.read_conv(cid)
    }

    async fn message(&self, mid: MessageId) -> StoreResult<Option<Message>> {
        self.read_val(T::Messages, &id(mid))
    }

    async fn transcript_page(
        &self,
        cid: ConversationId,
        before: Option<MessageId>,
        limit: usize,
    ) -> StoreResult<Option<TranscriptPage>> {
        let Some(c) = self.read_conv(cid)? else {
            return Ok(None);
        };
        let read = |mid: MessageId| self.read_val::<Message>(T::Messages, &id(mid));
        let from = match before {
            None => c.last_message,
            Some(b) => match read(b)? {
                Some(m) if m.conversation == cid => m.previous,
                Some(_) => None,
                // Gone: retention purges a long ended conversation newest
                // first, a chunk at a time, so a `before` it took from this
                // conversation is newer than every message left, and those
                // are the ones older than it. (An id never given lists
                // nothing.)
                None if c.state == ConversationState::Ended
                    && b < self.inner.writer().next.message =>
                {
                    c.last_message.filter(|&l| l < b)
                }
                None => None,
            },
        };
        let (mut messages, rest) = chain_from(&c, from, limit.max(1), read)?;
        messages.reverse();
        let older = rest.and(messages.first().map(|m| m.id));
        Ok(Some(TranscriptPage {
            conversation: c,
            messages,
            older,
        }))
    }

    async fn conversations(
        &self,
        owner: Option<&str>,
        include_requested: bool,
        after: Option<ConversationId>,
        limit: usize,
    ) -> StoreResult<ConversationPage> {
        let tree = self.tree(T::Conversations);
        let entries = match after {
            Some(a) => tree.range((Bound::Excluded(id(a)), Bound::Unbounded)),
            None => tree.iter(),
        };
        let entries = entries.map(|kv| {
            let (k, v) = kv?;
            // So that sled's cache bound covers what a listing reads.
            tree.touch(&k)?;
            decode::<Conversation>(T::Conversations.name(), &v)
        });
        let keep = |c: &Conversation| match c.state {
            ConversationState::Open => owner.is_none_or(|o| o == c.owner),
            ConversationState::Requested => include_requested,
            ConversationState::Ended => false,
        };
        let limit = limit.max(1);
        take_page(entries, keep, limit, limit.max(CONVERSATION_SCAN_MIN))
    }

    async fn append_event(&self, kind: EventKind, now_ms: u64) -> StoreResult<Seq> {
        self.run(|tx| tx.event(None, kind, now_ms)).await
    }

    async fn events_after(&self, after: Seq, limit: usize) -> StoreResult<Vec<Event>> {
        self.durable_events(after.saturating_add(1), limit)?
            .iter()
            .map(|(_, v)| decode(T::Events.name(), v))
            .collect()
    }

    async fn first_event_seq(&self) -> StoreResult<Option<Seq>> {
        Ok(self.durable_events(1, 1)?.first().map(|(seq, _)| *seq))
    }

    fn subscribe(&self) -> watch::Receiver<Seq> {
        self.inner.commit.subscribe()
    }

    fn outbox_depth(&self) -> u64 {
        SledStore::outbox_depth(self)
    }

    fn outbox_depths(&self) -> BTreeMap<String, u64> {
        SledStore::outbox_depths(self)
    }

    async fn ack(&self, consumer: &str, seq: Seq) -> StoreResult<()> {
        self.run(|tx| {
            let cur = tx.get_u64(T::Cursors, consumer.as_bytes())?;
            if cur.is_none_or(|c| c < seq) {
                tx.put(T::Cursors, consumer.as_bytes(), id(seq).to_vec());
            }
            Ok(())
        })
        .await
    }

    async fn cursor(&self, consumer: &str) -> StoreResult<Option<Seq>> {
        self.tree(T::Cursors)
            .get(consumer.as_bytes())?
            .map(|v| decode_u64(T::Cursors.name(), &v))
            .transpose()
    }

    async fn trim_events(
        &self,
        now_ms: u64,
        acked_keep_ms: u64,
        max_age_ms: u64,
    ) -> StoreResult<usize> {
        let mut slowest: Option<Seq> = None;
        for kv in self.tree(T::Cursors).iter() {
            let (_, v) = kv?;
            let s = decode_u64(T::Cursors.name(), &v)?;
            slowest = Some(slowest.map_or(s, |m| m.min(s)));
        }
        // The oldest events go while they are past the max age, or acked
        // by every consumer and past the acked keep.
        let (mut from, mut trimmed, mut size) = (1, 0, TRIM_FIRST);
        'read: loop {
            let page = self.durable_events(from, size)?;
            for (_, v) in &page {
                let ev: Event = decode(T::Events.name(), v)?;
                let acked = slowest.is_some_and(|m| ev.seq <= m);
                let old = ev.at_ms.saturating_add(max_age_ms) <= now_ms;
                let acked_old = acked && ev.at_ms.saturating_add(acked_keep_ms) <= now_ms;
                if !(old || acked_old) {
                    break 'read;
                }
                trimmed += 1;
                from = ev.seq + 1;
            }
            if page.len() < size {
                break;
            }
            size = TRIM_CHUNK;
        }
        if trimmed == 0 {
            return Ok(0);
        }
        // Durable (through the log) before readers stop seeing them.
        self.run(|tx| {
            let stored = tx.get_u64(T::Meta, trees::EVENTS_FROM)?;
            if stored.is_none_or(|s| s < from) {
                tx.put(T::Meta, trees::EVENTS_FROM, id(from).to_vec());
            }
            Ok(())
        })
        .await?;
        self.inner.events_from.fetch_max(from, Ordering::AcqRel);
        let inner = self.inner.clone();
        blocking(move || inner.events.remove_below(from)).await?;
        Ok(trimmed)
    }

    async fn put_template(
        &self,
        t: NewTemplate,
        max_per_agent: usize,
        now_ms: u64,
    ) -> StoreResult<Result<Template, TemplateRefused>> {
        self.run(|tx| {
            let tid = match t.id {
                Some(tid) => {
                    let existing = tx.get_val::<Template>(T::Templates, &id(tid))?;
                    if existing.is_none_or(|e| e.agent != t.agent) {
                        return Ok(Err(TemplateRefused::NotFound));
                    }
                    tid
                }
                None => {
                    // Counted under the writer lock: concurrent saves cannot
                    // both take the last place.
                    let own = tx.tree(T::AgentTemplates);
                    let kept = own
                        .scan_prefix(trees::pair(&t.agent, ""))
                        .take(max_per_agent)
                        .count();
                    if kept >= max_per_agent {
                        return Ok(Err(TemplateRefused::TooMany { max: max_per_agent }));
                    }
                    let v = tx.c.template;
                    tx.c.template += 1;
                    v
                }
            };
            let tpl = Template {
                id: tid,
                agent: t.agent,
                service: t.service,
                name: t.name,
                text: t.text,
                updated_ms: now_ms,
            };
            tx.put(
                T::AgentTemplates,
                trees::agent_template_key(&tpl.agent, tid),
                Vec::new(),
            );
            tx.put_val(T::Templates, id(tid), &tpl)?;
            Ok(Ok(tpl))
        })
        .await
    }

    async fn template(&self, tid: u64) -> StoreResult<Option<Template>> {
        self.read_val(T::Templates, &id(tid))
    }

    async fn templates(&self, agent: &str) -> StoreResult<Vec<Template>> {
        let mut out = Vec::new();
        for kv in self
            .tree(T::AgentTemplates)
            .scan_prefix(trees::pair(agent, ""))
        {
            let (k, _) = kv?;
            let Some(tid) = trees::split_lp(&k).and_then(|(_, tid)| trees::read_u64(tid)) else {
                continue;
            };
            out.extend(self.read_val::<Template>(T::Templates, &id(tid))?);
        }
        Ok(out)
    }

    async fn delete_template(&self, tid: u64, agent: &str) -> StoreResult<bool> {
        self.run(|tx| {
            let existing = tx.get_val::<Template>(T::Templates, &id(tid))?;
            if existing.is_some_and(|e| e.agent == agent) {
                tx.del(T::AgentTemplates, trees::agent_template_key(agent, tid));
                tx.del(T::Templates, id(tid));
                Ok(true)
            } else {
                Ok(false)
            }
        })
        .await
    }

    async fn set_opt_out(&self, sender: &str, customer: &str, now_ms: u64) -> StoreResult<OptOut> {
        self.run(|tx| {
            let key = trees::opt_out_key(sender, customer);
            let since_ms = match tx.get_u64(T::OptOuts, &key)? {
                Some(s) => s,
                None => {
                    tx.put(T::OptOuts, key, id(now_ms).to_vec());
                    now_ms
                }
            };
            Ok(OptOut {
                sender: sender.to_string(),
                customer: customer.to_string(),
                since_ms,
            })
        })
        .await
    }

    async fn clear_opt_out(&self, sender: &str, customer: &str) -> StoreResult<bool> {
        self.run(|tx| {
            let key = trees::opt_out_key(sender, customer);
            let had = tx.get(T::OptOuts, &key)?.is_some();
            if had {
                tx.del(T::OptOuts, key);
            }
            Ok(had)
        })
        .await
    }

    async fn opt_out(&self, sender: &str, customer: &str) -> StoreResult<Option<OptOut>> {
        let key = trees::opt_out_key(sender, customer);
        Ok(match self.tree(T::OptOuts).get(&key)? {
            Some(v) => Some(OptOut {
                sender: sender.to_string(),
                customer: customer.to_string(),
                since_ms: decode_u64(T::OptOuts.name(), &v)?,
            }),
            None => None,
        })
    }

    async fn opt_outs(
        &self,
        sender: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<OptOutPage> {
        let prefix = trees::opt_out_key(sender, "");
        let from = match after {
            Some(c) => Bound::Excluded(trees::opt_out_key(sender, c)),
            None => Bound::Included(prefix.clone()),
        };
        let limit = limit.max(1);
        let mut page = OptOutPage::default();
        for kv in self.tree(T::OptOuts).range((from, Bound::Unbounded)) {
            let (k, v) = kv?;
            let Some(customer) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            if page.opt_outs.len() == limit {
                page.next = page.opt_outs.last().map(|o| o.customer.clone());
                break;
            }
            page.opt_outs.push(OptOut {
                sender: sender.to_string(),
                customer: String::from_utf8_lossy(customer).into_owned(),
                since_ms: decode_u64(T::OptOuts.name(), &v)?,
            });
        }
        Ok(page)
    }

    async fn recover(&self, now_ms: u64) -> StoreResult<RecoverReport> {
        let mut report = self.run(|tx| recover(tx, now_ms)).await?;
        let c = self.counts();
        report.outbox = c.outbox as usize;
        report.awaiting_receipts = c.awaiting_receipts as usize;
        report.held_receipts = c.held_receipts as usize;
        Ok(report)
    }

    async fn purge_ended(&self, now_ms: u64, max_age_ms: u64) -> StoreResult<PurgeReport> {
        let mut report = PurgeReport::default();
        // A chunk of the index at a time: each purge removes its entry, so
        // the next read starts at the first one left.
        loop {
            let (chunk, more) = due(self.tree(T::Ended), now_ms, max_age_ms, EXPIRE_CHUNK)?;
            report = self.purge_chunk(chunk, report).await?;
            if !more {
                return Ok(report);
            }
        }
    }
}

impl SledStore {
    /// Purges the ended conversations of `chunk` (`ended` index entries), a
    /// transaction each.
    async fn purge_chunk(
        &self,
        chunk: Vec<DueEntry>,
        mut report: PurgeReport,
    ) -> StoreResult<PurgeReport> {
        for (key, cid) in chunk {
            // A conversation of many messages goes EXPIRE_CHUNK of them per
            // transaction (each commits, so sends and receipts run between).
            loop {
                let purged = self
                    .run(|tx| match tx.conv(cid)? {
                        Some(c) if c.state == ConversationState::Ended => {
                            let (messages, gone) = purge_conversation(tx, &c, EXPIRE_CHUNK)?;
                            if gone {
                                // Its own entry, even one whose time is not
                                // the conversation's: the next chunk must not
                                // read it.
                                tx.del(T::Ended, key.clone());
                            }
                            Ok(Some((messages, gone)))
                        }
                        _ => {
                            // An index entry without its ended conversation.
                            tx.del(T::Ended, key.clone());
                            Ok(None)
                        }
                    })
                    .await?;
                match purged {
                    Some((messages, gone)) => {
                        report.messages += messages;
                        if gone {
                            report.conversations += 1;
                            break;
                        }
                    }
                    None => break,
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Entries written before the unknown-outcome count existed still read,
    /// with a count of 0.
    #[test]
    fn outbox_entry_without_the_unknown_count_reads_as_zero() {
        let mut old = vec![super::super::value::V1];
        old.extend_from_slice(
            br#"{"message":7,"conversation":3,"attempt":2,"lease_until_ms":null,"possible_duplicate":true}"#,
        );
        let e: OutboxEntry = decode("outbox", &old).unwrap();
        assert_eq!((e.message, e.attempt, e.unknown), (7, 2, 0));
        assert!(e.possible_duplicate);
    }

    /// Entries written before `resting` existed (six positional fields)
    /// still read, as not resting.
    #[test]
    fn outbox_entry_without_the_resting_flag_reads_as_not_resting() {
        let old = compact(&(7u64, 3u64, 2u32, Some(99u64), true, 1u32)).unwrap();
        let e: OutboxEntry = decode("outbox", &old).unwrap();
        assert_eq!((e.message, e.lease_until_ms, e.unknown), (7, Some(99), 1));
        assert!(!e.resting);
    }

    /// alice's message on `support` (its sender 447400123456) to `customer`.
    fn out(customer: &str, text: &str) -> NewOutbound {
        NewOutbound {
            service: "support".into(),
            sender: "447400123456".into(),
            customer: customer.into(),
            owner: "alice".into(),
            interaction: None,
            text: text.into(),
            encoding: "gsm7".into(),
            parts: 1,
            carrier: "acme".into(),
            client_ref: None,
            conversation: None,
            outbox_limit: None,
        }
    }

    /// `out(customer, text)` accepted at `at`.
    pub(in crate::store) async fn accepted(
        s: &SledStore,
        customer: &str,
        text: &str,
        at: u64,
    ) -> Accepted {
        s.accept_send(out(customer, text), at)
            .await
            .unwrap()
            .unwrap()
    }

    /// A submit OK (carrier id: the message id in hex) for each item.
    async fn submitted(s: &SledStore, items: &[OutboxItem], at: u64) {
        for item in items {
            let ok = Ok(format!("{:x}", item.message));
            s.record_submit(item.message, 0, 1, ok, at).await.unwrap();
        }
    }

    /// An outbox entry of message `m` (conversation `c`), not leased.
    fn waiting(m: MessageId, c: ConversationId) -> OutboxEntry {
        OutboxEntry {
            message: m,
            conversation: c,
            attempt: 0,
            lease_until_ms: None,
            possible_duplicate: false,
            unknown: 0,
            resting: false,
        }
    }

    fn claim_start(s: &SledStore) -> Option<Vec<u8>> {
        s.inner
            .writer()
            .claim_from
            .get(&trees::outbox_prefix("acme"))
            .cloned()
    }

    /// A drained backlog checkpointed into sled leaves its sent keys as
    /// deletes above sled's entries: the next claim starts past them (at
    /// the first entry still there) instead of stepping over each one.
    #[tokio::test]
    async fn a_claim_starts_past_the_outbox_keys_sent_before_it() {
        const T0: u64 = 1_795_611_600_000;
        let s = SledStore::temporary().unwrap();
        let mut ids = Vec::new();
        for i in 0..30u64 {
            let customer = format!("+4479111234{:02}", i);
            let a = accepted(&s, &customer, "m", T0).await;
            ids.push(a.message);
        }
        s.flush().await.unwrap();
        assert_eq!(claim_start(&s), None, "no claim yet: from the prefix");
        let claimed = s.claim_outbox("acme", 20, 60_000, T0).await.unwrap();
        assert_eq!(claimed.len(), 20);
        submitted(&s, &claimed, T0).await;
        // The first claim saw the first entry; the next sees the 21st.
        assert_eq!(claim_start(&s), Some(trees::outbox_key("acme", ids[0])));
        let rest = s.claim_outbox("acme", 20, 60_000, T0).await.unwrap();
        assert_eq!(rest.len(), 10);
        assert_eq!(rest[0].message, ids[20]);
        assert_eq!(claim_start(&s), Some(trees::outbox_key("acme", ids[20])));
        // Nothing left from there: the start moves to the next message's key.
        submitted(&s, &rest, T0).await;
        assert!(
            s.claim_outbox("acme", 20, 60_000, T0)
                .await
                .unwrap()
                .is_empty()
        );
        let next = s.inner.writer().next.message;
        assert_eq!(claim_start(&s), Some(trees::outbox_key("acme", next)));
        // New sends are found from there.
        let a = accepted(&s, "+447911123499", "n", T0).await;
        let c = s.claim_outbox("acme", 20, 60_000, T0).await.unwrap();
        assert_eq!(c.iter().map(|i| i.message).collect::<Vec<_>>(), [a.message]);
    }

    /// Claims start past the entries leased at the head of the outbox (the
    /// run the earlier claims saw) and still hold back the later messages
    /// of their conversations; a delete among them lets those go, a
    /// release among them or a lease's end makes the next claim read the
    /// whole head again.
    #[tokio::test]
    async fn claims_skip_the_leased_head_and_keep_its_conversations_back() {
        const T0: u64 = 1_795_611_600_000;
        const LEASE: u64 = 60_000;
        let s = SledStore::temporary().unwrap();
        let ids = |v: &[OutboxItem]| v.iter().map(|i| i.message).collect::<Vec<_>>();
        let a1 = accepted(&s, "+447911123456", "a1", T0).await;
        let b1 = accepted(&s, "+447911123457", "b1", T0).await;
        let a2 = accepted(&s, "+447911123456", "a2", T0).await;
        let c1 = accepted(&s, "+447911123458", "c1", T0).await;
        assert_eq!(a1.conversation, a2.conversation);
        let claim = |max| s.claim_outbox_in_order("acme", max, LEASE, T0 + 1);
        assert_eq!(ids(&claim(2).await.unwrap()), [a1.message, b1.message]);
        // This one reads a1 and b1 (leased: the run), holds a2 back.
        assert_eq!(ids(&claim(10).await.unwrap()), [c1.message]);
        let run_len = || {
            s.inner
                .writer()
                .runs
                .get(&trees::outbox_prefix("acme"))
                .map(|r| r.entries.len())
        };
        assert_eq!(run_len(), Some(2));
        // Starting past a1 and b1, a2 is still held back by a1.
        assert!(claim(10).await.unwrap().is_empty());
        // a1 leaves the outbox: a2 may go, the run stays.
        let ok = Ok("a1".to_string());
        s.record_submit(a1.message, 0, 1, ok, T0 + 2).await.unwrap();
        assert_eq!(run_len(), Some(1));
        assert_eq!(ids(&claim(10).await.unwrap()), [a2.message]);
        // b1 goes back: the run goes, and b1 is found again.
        assert!(s.release(b1.message).await.unwrap());
        assert_eq!(run_len(), None);
        assert_eq!(ids(&claim(10).await.unwrap()), [b1.message]);
        assert!(claim(10).await.unwrap().is_empty());
        assert_eq!(run_len(), Some(3));
        // Past every lease, all of them can be claimed again (flagged).
        let late = s
            .claim_outbox_in_order("acme", 10, LEASE, T0 + 2 + LEASE)
            .await
            .unwrap();
        assert_eq!(ids(&late), [b1.message, a2.message, c1.message]);
        assert!(late.iter().all(|i| i.possible_duplicate));
    }

    /// Regression guard for the claim start: an entry written below it
    /// (an old message queued again) moves it down, whether the write came
    /// in its own call or in the same call as a claim that could not see
    /// it, and the next claim finds the entry.
    #[tokio::test]
    async fn an_outbox_entry_written_below_the_claim_start_is_still_claimed() {
        const T0: u64 = 1_795_611_600_000;
        let s = SledStore::temporary().unwrap();
        let a = accepted(&s, "+447911123456", "a", T0).await;
        let b = accepted(&s, "+447911123457", "b", T0).await;
        let both = s.claim_outbox("acme", 10, 60_000, T0).await.unwrap();
        submitted(&s, &both, T0).await;
        assert!(
            s.claim_outbox("acme", 10, 60_000, T0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(claim_start(&s) > Some(trees::outbox_key("acme", b.message)));
        // In a call of its own.
        s.run(|tx| {
            tx.put_outbox(
                trees::outbox_key("acme", a.message),
                &waiting(a.message, a.conversation),
            )
        })
        .await
        .unwrap();
        let again = s.claim_outbox("acme", 10, 60_000, T0).await.unwrap();
        assert_eq!(
            again.iter().map(|i| i.message).collect::<Vec<_>>(),
            [a.message]
        );
        let ok = Ok("ff".to_string());
        s.record_submit(a.message, 0, 1, ok, T0).await.unwrap();
        assert!(
            s.claim_outbox("acme", 10, 60_000, T0)
                .await
                .unwrap()
                .is_empty()
        );
        // In the same call as a claim, before it: the claim's scan does not
        // see it, and must not move the start past it.
        let found = s
            .run(|tx| {
                let key = trees::outbox_key("acme", b.message);
                tx.put_outbox(key, &waiting(b.message, b.conversation))?;
                claim_outbox(tx, "acme", 10, 60_000, T0, false)
            })
            .await
            .unwrap();
        assert!(found.is_empty(), "a call does not see its own writes");
        let later = s.claim_outbox("acme", 10, 60_000, T0).await.unwrap();
        assert_eq!(
            later.iter().map(|i| i.message).collect::<Vec<_>>(),
            [b.message]
        );
    }

    /// Retention purges a long conversation a chunk of messages per
    /// transaction, newest first: between two chunks the store is whole
    /// (the conversation ends at its newest message left, `verify` finds
    /// nothing wrong, the transcript lists what is left), and the purge
    /// goes on from there until the conversation is gone. A transcript
    /// page's `before` that the purge took lists what is left older.
    #[tokio::test]
    async fn a_long_conversation_is_purged_a_chunk_of_messages_at_a_time() {
        const T0: u64 = 1_795_611_600_000;
        let s = SledStore::temporary().unwrap();
        let mut last = None;
        for i in 0..5 {
            let a = accepted(&s, "+447911123456", &format!("m{i}"), T0 + i).await;
            last = Some(a);
        }
        let cid = last.unwrap().conversation;
        s.end_chat(cid, "alice", T0 + 10).await.unwrap().unwrap();
        let (n, gone) = s
            .run(|tx| {
                let c = tx.conv(cid)?.unwrap();
                purge_conversation(tx, &c, 3)
            })
            .await
            .unwrap();
        assert_eq!((n, gone), (3, false));
        s.verify().unwrap();
        let (_, left) = s.transcript(cid).await.unwrap().unwrap();
        let texts: Vec<&str> = left.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["m0", "m1"]);
        // A page's `before` that the purge took (an agent paging back
        // through it meanwhile) lists what is left older than it.
        let purged = last.unwrap().message;
        let page = s.transcript_page(cid, Some(purged), 1).await.unwrap();
        let page = page.unwrap();
        assert_eq!(page.messages.len(), 1);
        assert_eq!(page.messages[0].text, "m1");
        assert_eq!(page.older, Some(page.messages[0].id));
        // One older than every message left lists nothing, and so does an
        // id never given.
        for b in [left[0].id, purged + 1_000] {
            let page = s.transcript_page(cid, Some(b), 10).await.unwrap();
            assert!(page.unwrap().messages.is_empty(), "before {b}");
        }
        let day = 86_400_000;
        let r = s.purge_ended(T0 + 10 + day, day).await.unwrap();
        assert_eq!((r.conversations, r.messages), (1, 2));
        assert!(s.transcript(cid).await.unwrap().is_none());
        s.verify().unwrap();
    }

    /// Expiry goes a chunk at a time until no entry is due, so an index
    /// entry that its expiry would not remove (a `receipt_due` entry whose
    /// message no longer awaits a receipt) would be read by every chunk and
    /// the sweep would never end. Each chunk removes the entries it read.
    #[tokio::test]
    async fn expiry_removes_receipt_due_entries_that_match_no_wait() {
        const T0: u64 = 1_795_611_600_000;
        let s = SledStore::temporary().unwrap();
        let stale = EXPIRE_CHUNK as u64 + 5;
        s.run(|tx| {
            for mid in 0..stale {
                tx.put(T::ReceiptDue, trees::time_key(T0, 1_000 + mid), Vec::new());
            }
            Ok(())
        })
        .await
        .unwrap();
        let first = s.expire_pending(T0 + 10, 1, 1).await.unwrap();
        assert_eq!((first.no_receipt, first.more), (0, true));
        let second = s.expire_pending(T0 + 10, 1, 1).await.unwrap();
        assert_eq!((second.no_receipt, second.more), (0, false));
        assert_eq!(s.tree(T::ReceiptDue).len().unwrap(), 0);
    }

    /// Regression (tests/faults.rs, two binds): a second bind claimed a
    /// conversation's next message while the first bind still had the
    /// earlier one out (throttled, unanswered), and submitted it first.
    /// `claim_outbox` keeps its plain FIFO (tests/store.rs).
    #[tokio::test]
    async fn claim_holds_back_a_conversations_later_message_while_an_earlier_one_is_leased() {
        const T0: u64 = 1_795_611_600_000;
        let s = SledStore::temporary().unwrap();
        let a1 = accepted(&s, "+447911123456", "a1", T0).await;
        // Bind 1 takes the first message of conversation A.
        let first = s
            .claim_outbox_in_order("acme", 1, 60_000, T0)
            .await
            .unwrap();
        assert_eq!(
            first.iter().map(|i| i.message).collect::<Vec<_>>(),
            [a1.message]
        );
        let a2 = accepted(&s, "+447911123456", "a2", T0).await;
        let b1 = accepted(&s, "+819012345678", "b1", T0).await;
        // Bind 2 gets B's message, not A's second one.
        let second = s
            .claim_outbox_in_order("acme", 10, 60_000, T0 + 1)
            .await
            .unwrap();
        assert_eq!(
            second.iter().map(|i| i.message).collect::<Vec<_>>(),
            [b1.message]
        );
        // Once A's first message is answered, its second one is claimable.
        s.record_submit(a1.message, 0, 1, Ok("10".into()), T0 + 2)
            .await
            .unwrap();
        let third = s
            .claim_outbox_in_order("acme", 10, 60_000, T0 + 3)
            .await
            .unwrap();
        assert_eq!(
            third.iter().map(|i| i.message).collect::<Vec<_>>(),
            [a2.message]
        );
        // Claimed together when nothing is out: one bind orders them itself.
        let s = SledStore::temporary().unwrap();
        let x1 = accepted(&s, "+447911123456", "x1", T0).await;
        let x2 = accepted(&s, "+447911123456", "x2", T0).await;
        let both = s
            .claim_outbox_in_order("acme", 10, 60_000, T0)
            .await
            .unwrap();
        assert_eq!(
            both.iter().map(|i| i.message).collect::<Vec<_>>(),
            [x1.message, x2.message]
        );
    }

    /// A store from before the journal (layout 2) kept its events in
    /// sled's `events` tree. Opened by this build, they move to the
    /// journal: all still served, in order, the tree emptied, seqs
    /// continued, and the layout version raised (so that an older build
    /// refuses the store rather than reuse the seqs).
    #[tokio::test]
    async fn events_of_a_store_written_before_the_journal_move_to_it_at_open() {
        const T0: u64 = 1_795_611_600_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let open = |p: &Path| reopen(|| SledStore::open(p));
        let events: Vec<(Seq, Vec<u8>)> = {
            let s = open(&path);
            for text in ["one", "two", "three"] {
                accepted(&s, "+447911123456", text, T0).await;
            }
            s.flush().await.unwrap();
            s.inner.events.read(1, u64::MAX, 100).unwrap()
        };
        assert!(events.len() >= 3);
        // Rewrite it as the old layout had it.
        std::fs::remove_dir_all(path.join("events")).unwrap();
        {
            let db = reopen(|| sled::open(&path));
            let tree = db.open_tree(T::Events.name()).unwrap();
            for (seq, v) in &events {
                tree.insert(id(*seq), v.as_slice()).unwrap();
            }
            let meta = db.open_tree(T::Meta.name()).unwrap();
            meta.insert(derived::INDEXED, &id(2)[..]).unwrap();
            db.flush().unwrap();
        }
        let s = open(&path);
        let seqs = |evs: Vec<Event>| evs.iter().map(|e| e.seq).collect::<Vec<_>>();
        let want: Vec<Seq> = events.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs(s.events_after(0, 100).await.unwrap()), want);
        assert!(s.inner.db.open_tree(T::Events.name()).unwrap().is_empty());
        let next = s
            .append_event(
                EventKind::LinkDown {
                    carrier: "acme".into(),
                    bind: "trx".into(),
                    reason: None,
                },
                T0,
            )
            .await
            .unwrap();
        assert_eq!(next, want.last().unwrap() + 1);
        let meta = s.inner.db.open_tree(T::Meta.name()).unwrap();
        let version = meta.get(derived::INDEXED).unwrap().unwrap();
        assert_eq!(decode_u64("meta", &version).unwrap(), derived::VERSION);
    }

    /// Opens what `open` opens once the store just dropped lets go: sled
    /// releases its lock only when its threads end.
    pub(in crate::store) fn reopen<S, E: std::fmt::Display>(
        mut open: impl FnMut() -> Result<S, E>,
    ) -> S {
        let mut tries = 0;
        loop {
            match open() {
                Ok(s) => return s,
                Err(e) if tries > 400 => panic!("{e}"),
                Err(_) => tries += 1,
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// A positional value as the layout before its last field wrote it: the
    /// array one shorter, without that field (`nil` here).
    fn without_last_field(mut v: Vec<u8>) -> Vec<u8> {
        match v[1] {
            0xdc => v[3] -= 1,               // array16 (16 fields or more)
            n @ 0x91..=0x9f => v[1] = n - 1, // fixarray
            other => panic!("not an array: {other:#x}"),
        }
        assert_eq!(v.pop(), Some(0xc0), "the last field was not nil");
        v
    }

    /// A store of layout 6 listed each conversation's messages in
    /// `conversation_messages`, and its values had no links: the first
    /// open of layout 7 links them, in order, and empties that tree.
    #[tokio::test]
    async fn messages_listed_by_the_older_layout_are_linked_at_open() {
        const T0: u64 = 1_795_611_600_000;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let texts = |msgs: &[Message]| msgs.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
        let (uk, jp) = {
            let s = reopen(|| SledStore::open(&path));
            let mut convs = Vec::new();
            for (i, (to, text)) in [("+447911123456", "a1"), ("+819012345678", "b1")]
                .into_iter()
                .chain([("+447911123456", "a2"), ("+819012345678", "b2")])
                .enumerate()
            {
                let a = accepted(&s, to, text, T0 + i as u64).await;
                convs.push(a.conversation);
            }
            s.end_chat(convs[1], "alice", T0 + 5)
                .await
                .unwrap()
                .unwrap();
            s.flush().await.unwrap();
            (convs[0], convs[1])
        };
        {
            let db = reopen(|| sled::open(&path));
            let messages = db.open_tree(T::Messages.name()).unwrap();
            let index = db.open_tree(T::ConversationMessages.name()).unwrap();
            for kv in messages.iter() {
                let (k, v) = kv.unwrap();
                let mut m: Message = decode("messages", &v).unwrap();
                m.previous = None;
                messages
                    .insert(k, without_last_field(compact(&m).unwrap()))
                    .unwrap();
                let key = trees::conversation_message_key(m.conversation, m.id);
                index.insert(key, &[][..]).unwrap();
            }
            for t in CONVERSATION_TREES {
                let tree = db.open_tree(t.name()).unwrap();
                for kv in tree.iter() {
                    let (k, v) = kv.unwrap();
                    let mut c: Conversation = decode(t.name(), &v).unwrap();
                    c.last_message = None;
                    tree.insert(k, without_last_field(compact(&c).unwrap()))
                        .unwrap();
                }
            }
            let meta = db.open_tree(T::Meta.name()).unwrap();
            meta.insert(derived::INDEXED, &id(6)[..]).unwrap();
            db.flush().unwrap();
        }
        let s = reopen(|| SledStore::open(&path));
        s.verify().unwrap();
        let (_, msgs) = s.transcript(uk).await.unwrap().unwrap();
        assert_eq!(texts(&msgs), ["a1", "a2"]);
        let (c, msgs) = s.transcript(jp).await.unwrap().unwrap();
        assert_eq!(
            (c.state, texts(&msgs)),
            (ConversationState::Ended, vec!["b1".into(), "b2".into()])
        );
        // A new message goes after them.
        accepted(&s, "+447911123456", "a3", T0 + 9).await;
        let (_, msgs) = s.transcript(uk).await.unwrap().unwrap();
        assert_eq!(texts(&msgs), ["a1", "a2", "a3"]);
        s.verify().unwrap();
    }

    fn conv(id: ConversationId, owner: &str) -> Conversation {
        Conversation {
            id,
            service: "support".into(),
            sender: "447400123456".into(),
            customer: "+447911123456".into(),
            owner: owner.into(),
            interaction: None,
            state: ConversationState::Open,
            created_ms: 0,
            updated_ms: 0,
            ended_ms: None,
            last_message: None,
        }
    }

    #[test]
    fn take_page_lists_each_kept_conversation_once_within_its_budget() {
        // alice owns every third conversation; bob the rest.
        let all: Vec<Conversation> = (1..=40)
            .map(|i| conv(i, if i % 3 == 0 { "alice" } else { "bob" }))
            .collect();
        let (limit, budget) = (2, 5);
        let mut listed = Vec::new();
        let mut after = 0;
        let mut short_pages = 0;
        for _ in 0..100 {
            let read = std::cell::Cell::new(0usize);
            let entries = all.iter().filter(|c| c.id > after).map(|c| {
                read.set(read.get() + 1);
                Ok::<_, StoreError>(c.clone())
            });
            let page = take_page(entries, |c| c.owner == "alice", limit, budget).unwrap();
            // At most the budget, plus the one look-ahead.
            assert!(read.get() <= budget + 1, "read {}", read.get());
            assert!(page.conversations.len() <= limit);
            if page.conversations.len() < limit && page.next.is_some() {
                short_pages += 1;
            }
            listed.extend(page.conversations.iter().map(|c| c.id));
            match page.next {
                Some(n) => {
                    assert!(n > after);
                    after = n;
                }
                None => break,
            }
        }
        let want: Vec<u64> = (1..=40).filter(|i| i % 3 == 0).collect();
        assert_eq!(listed, want);
        assert!(short_pages > 0, "the budget never cut a page short");
    }

    #[test]
    fn take_page_ends_with_no_next_when_the_last_page_is_exactly_full() {
        let all = [conv(1, "alice"), conv(2, "alice"), conv(3, "bob")];
        let entries = all.iter().cloned().map(Ok::<_, StoreError>);
        let page = take_page(entries, |c| c.owner == "alice", 2, 10).unwrap();
        assert_eq!(page.conversations.len(), 2);
        assert_eq!(page.next, None);
        let entries = all.iter().cloned().map(Ok::<_, StoreError>);
        let page = take_page(entries, |_| true, 2, 10).unwrap();
        assert_eq!(page.next, Some(2));
    }

    #[test]
    fn take_page_passes_a_read_error_on() {
        let entries = [
            Ok(conv(1, "alice")),
            Err(StoreError::Corrupt {
                tree: "conversations",
                detail: "bad".into(),
            }),
        ];
        assert!(take_page(entries.into_iter(), |_| true, 5, 10).is_err());
    }
}
