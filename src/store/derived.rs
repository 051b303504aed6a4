//! Derived entries: the entry counts of the trees the start and the gauges
//! report (`outbox`, `awaiting_receipts`, `held_receipts`), kept in `meta`
//! by every commit, and the one-time build of those counts and of the
//! index trees (`leases`, `receipt_due`, `ended`, `held_due`,
//! `agent_templates`) for a store written before they existed (or by an
//! older layout of them). The same build moves ended conversations out of
//! `conversations`, where layouts before 5 kept them, into
//! `ended_conversations`.
//!
//! sled counts a tree by reading all of it, which pulls every leaf into
//! memory: with 100 000 queued messages the start read the whole outbox
//! (~15 MB of sled nodes) to find its few leased entries, and the outbox
//! gauge did so again every minute. A commit knows which keys it creates
//! and deletes, so it keeps the counts instead, in the same log record as
//! the writes they count. The index trees are written by the store's
//! calls themselves (`Tx::put_outbox`, `Tx::await_receipt`, `Tx::put_conv`,
//! the template calls).

use super::error::{StoreError, StoreResult};
use super::trees::{self, T};
use super::value::decode_u64;

/// The trees counted, each with its `meta` key.
pub(crate) const COUNTED: [(T, &[u8]); 3] = [
    (T::Outbox, b"count_outbox"),
    (T::AwaitingReceipts, b"count_awaiting_receipts"),
    (T::HeldReceipts, b"count_held_receipts"),
];

/// `meta` key holding the [`VERSION`] of the derived entries kept.
pub(crate) const INDEXED: &[u8] = b"indexed";

/// Version of the store's layout beyond its trees: 1 counts and `leases`,
/// 2 also `receipt_due` and `ended`, 3 events in the journal
/// ([`super::journal`]: a build before it would not see them, and would hand
/// their seqs out again), 4 also `held_due` (a build before it would not
/// keep it), 5 ended conversations in `ended_conversations` (a build before
/// it would not find them), 6 also `agent_templates`, 7 messages linked in
/// their conversation instead of listed in `conversation_messages` (a build
/// before it would not find them). A store below it has its derived entries
/// rebuilt (and its events moved and its messages linked, at every open);
/// one above it is refused.
pub(crate) const VERSION: u64 = 7;

/// How the build reads the values it indexes (their types live with the
/// store's calls).
pub(crate) struct Readers<L, E, H, A> {
    /// Whether an outbox value holds a lease.
    pub(crate) leased: L,
    /// Whether a conversation value has ended (`Some`), and when, if known.
    pub(crate) ended: E,
    /// When a held receipt value was held.
    pub(crate) held_at: H,
    /// The agent a template value belongs to.
    pub(crate) template_agent: A,
}

/// Entries held by each counted tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    /// Outbox entries (leased ones included).
    pub(crate) outbox: u64,
    /// Messages waiting for a final receipt.
    pub(crate) awaiting_receipts: u64,
    /// Receipts held for their submit response.
    pub(crate) held_receipts: u64,
}

impl Counts {
    fn get(mut self, t: T) -> Option<u64> {
        self.slot(t).copied()
    }

    fn slot(&mut self, t: T) -> Option<&mut u64> {
        match t {
            T::Outbox => Some(&mut self.outbox),
            T::AwaitingReceipts => Some(&mut self.awaiting_receipts),
            T::HeldReceipts => Some(&mut self.held_receipts),
            _ => None,
        }
    }

    /// Folds one commit's writes into the counts: each as (tree, whether
    /// the key was held before, whether the write is a put). Returns the
    /// `meta` entries of the counts that changed, for the same commit.
    pub(crate) fn apply(
        &mut self,
        writes: impl IntoIterator<Item = (T, bool, bool)>,
    ) -> Vec<(&'static [u8], u64)> {
        let before = *self;
        for (t, existed, put) in writes {
            let Some(n) = self.slot(t) else { continue };
            match (existed, put) {
                (false, true) => *n += 1,
                (true, false) => *n = n.saturating_sub(1),
                _ => {}
            }
        }
        COUNTED
            .iter()
            .filter_map(|&(t, name)| {
                let n = self.get(t)?;
                (before.get(t) != Some(n)).then_some((name, n))
            })
            .collect()
    }
}

/// Reads the counts from `meta`. A store whose derived entries are older
/// than [`VERSION`] (or missing) gets them all built first, by reading the
/// trees they derive from once. Call at open, after the log's replay and
/// before any commit. Returns whether it built.
///
/// # Errors
/// sled failed, or a stored count or an indexed value does not decode.
pub(crate) fn load<L, E, H, A>(
    db: &sled::Db,
    all: &[sled::Tree],
    read: Readers<L, E, H, A>,
) -> StoreResult<(Counts, bool)>
where
    L: Fn(&[u8]) -> StoreResult<bool>,
    E: Fn(&[u8]) -> StoreResult<Option<Option<u64>>>,
    H: Fn(&[u8]) -> StoreResult<u64>,
    A: Fn(&[u8]) -> StoreResult<String>,
{
    let meta = &all[T::Meta as usize];
    let version = match meta.get(INDEXED)? {
        Some(v) => decode_u64("meta", &v)?,
        None => 0,
    };
    if version > VERSION {
        // Its commits would leave those entries behind: refuse, not guess.
        return Err(StoreError::NewerLayout {
            found: version,
            supported: VERSION,
        });
    }
    let built = version < VERSION;
    if built {
        build(all, &read)?;
        // Written last: a build cut short by a crash runs again in full.
        meta.insert(INDEXED, &trees::id(VERSION)[..])?;
        db.flush()?;
    }
    let mut counts = Counts::default();
    for (t, name) in COUNTED {
        let n = match meta.get(name)? {
            Some(v) => decode_u64("meta", &v)?,
            None => {
                return Err(StoreError::Corrupt {
                    tree: "meta",
                    detail: format!("missing {}", String::from_utf8_lossy(name)),
                });
            }
        };
        if let Some(slot) = counts.slot(t) {
            *slot = n;
        }
    }
    Ok((counts, built))
}

fn build<L, E, H, A>(all: &[sled::Tree], read: &Readers<L, E, H, A>) -> StoreResult<()>
where
    L: Fn(&[u8]) -> StoreResult<bool>,
    E: Fn(&[u8]) -> StoreResult<Option<Option<u64>>>,
    H: Fn(&[u8]) -> StoreResult<u64>,
    A: Fn(&[u8]) -> StoreResult<String>,
{
    let tree = |t: T| &all[t as usize];
    for t in [
        T::Leases,
        T::ReceiptDue,
        T::Ended,
        T::HeldDue,
        T::AgentTemplates,
    ] {
        tree(t).clear()?;
    }
    for (t, name) in COUNTED {
        let mut n = 0u64;
        for kv in tree(t).iter() {
            let (k, v) = kv?;
            n += 1;
            if t == T::Outbox && (read.leased)(&v)? {
                tree(T::Leases).insert(k.clone(), &[][..])?;
            }
            if t == T::HeldReceipts {
                let at = (read.held_at)(&v)?;
                tree(T::HeldDue).insert(trees::held_due_key(at, &k), &[][..])?;
            }
            if let (T::AwaitingReceipts, Some(message)) = (t, trees::read_u64(&k)) {
                let since = decode_u64(t.name(), &v)?;
                tree(T::ReceiptDue).insert(trees::time_key(since, message), &[][..])?;
            }
        }
        tree(T::Meta).insert(name, &trees::id(n)[..])?;
    }
    // Copied before removed: a move cut short by a crash is done again.
    for kv in tree(T::Conversations).iter() {
        let (k, v) = kv?;
        if (read.ended)(&v)?.is_some() {
            tree(T::EndedConversations).insert(k.clone(), v)?;
            tree(T::Conversations).remove(k)?;
        }
    }
    for kv in tree(T::EndedConversations).iter() {
        let (k, v) = kv?;
        if let (Some(cid), Some(Some(at))) = (trees::read_u64(&k), (read.ended)(&v)?) {
            tree(T::Ended).insert(trees::time_key(at, cid), &[][..])?;
        }
    }
    for kv in tree(T::Templates).iter() {
        let (k, v) = kv?;
        if let Some(tid) = trees::read_u64(&k) {
            let agent = (read.template_agent)(&v)?;
            tree(T::AgentTemplates).insert(trees::agent_template_key(&agent, tid), &[][..])?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_counts_created_keys_up_and_deleted_keys_down_and_records_the_change() {
        let mut c = Counts {
            outbox: 2,
            ..Counts::default()
        };
        let changed = c.apply([
            (T::Outbox, true, true),   // rewritten: no change
            (T::Outbox, true, false),  // deleted
            (T::Outbox, false, true),  // created
            (T::Outbox, false, true),  // created
            (T::Outbox, false, false), // deleted, never held: no change
            (T::AwaitingReceipts, false, true),
            (T::Messages, false, true), // not counted
        ]);
        assert_eq!(
            c,
            Counts {
                outbox: 3,
                awaiting_receipts: 1,
                held_receipts: 0
            }
        );
        // Unchanged counts add no write: the receipt path stays lean.
        assert_eq!(
            changed,
            [
                (&b"count_outbox"[..], 3),
                (&b"count_awaiting_receipts"[..], 1)
            ]
        );
    }

    #[test]
    fn a_create_and_a_delete_in_one_commit_leave_the_count_unwritten() {
        let mut c = Counts {
            held_receipts: 5,
            ..Counts::default()
        };
        let changed = c.apply([
            (T::HeldReceipts, false, true),
            (T::HeldReceipts, true, false),
        ]);
        assert_eq!(c.held_receipts, 5);
        assert!(changed.is_empty(), "{changed:?}");
    }
}
