//! Derived entries: the entry counts of the trees the start and the gauges
//! report (`outbox`, `awaiting_receipts`, `held_receipts`) and of each
//! carrier's part of the outbox (what `store.outbox_limit` bounds), kept in
//! `meta` by every commit, and the one-time build of those counts and of the
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

use std::collections::BTreeMap;

use super::error::{StoreError, StoreResult};
use super::trees::{self, T};
use super::value::decode_u64;

/// The trees counted, each with its `meta` key.
pub(crate) const COUNTED: [(T, &[u8]); 3] = [
    (T::Outbox, b"count_outbox"),
    (T::AwaitingReceipts, b"count_awaiting_receipts"),
    (T::HeldReceipts, b"count_held_receipts"),
];

/// `meta` keys of the carriers' outbox counts: this ++ the carrier's name.
/// A carrier with nothing queued has none.
pub(crate) const CARRIER_COUNT: &[u8] = b"count_outbox_of:";

/// The `meta` key of one carrier's outbox count.
pub(crate) fn carrier_count_key(carrier: &[u8]) -> Vec<u8> {
    [CARRIER_COUNT, carrier].concat()
}

/// The carrier (its name's bytes) of an outbox key.
pub(crate) fn carrier_of(outbox_key: &[u8]) -> &[u8] {
    trees::split_lp(outbox_key).map_or(&[][..], |(carrier, _)| carrier)
}

/// `meta` key holding the [`VERSION`] of the derived entries kept.
pub(crate) const INDEXED: &[u8] = b"indexed";

/// Version of the store's layout beyond its trees: 1 counts and `leases`,
/// 2 also `receipt_due` and `ended`, 3 events in the journal
/// ([`super::journal`]: a build before it would not see them, and would hand
/// their seqs out again), 4 also `held_due` (a build before it would not
/// keep it), 5 ended conversations in `ended_conversations` (a build before
/// it would not find them), 6 also `agent_templates`, 7 messages linked in
/// their conversation instead of listed in `conversation_messages` (a build
/// before it would not find them), 8 also the carriers' outbox counts (a
/// build before it would not keep them). A store below it has its derived entries
/// rebuilt (and its events moved and its messages linked, at every open);
/// one above it is refused.
pub(crate) const VERSION: u64 = 8;

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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    /// Outbox entries (leased ones included).
    pub(crate) outbox: u64,
    /// Messages waiting for a final receipt.
    pub(crate) awaiting_receipts: u64,
    /// Receipts held for their submit response.
    pub(crate) held_receipts: u64,
    /// Outbox entries per carrier (by its name's bytes); a carrier with
    /// none is absent.
    pub(crate) outbox_by_carrier: BTreeMap<Vec<u8>, u64>,
}

/// What one commit does to the counts, worked out before it is applied (a
/// commit that fails after leaves the counts as they were).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    /// The new count of each counted tree whose count changed.
    totals: Vec<(T, u64)>,
    /// The new outbox count of each carrier whose count changed.
    carriers: Vec<(Vec<u8>, u64)>,
}

impl Change {
    /// The `meta` writes that record it, in the same commit: a value, or a
    /// delete for a carrier left with nothing queued. Unchanged counts add
    /// no write, so the receipt path stays lean.
    pub(crate) fn meta_writes(&self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + '_ {
        let totals = self.totals.iter().filter_map(|&(t, n)| {
            let name = COUNTED.iter().find(|(c, _)| *c == t)?.1;
            Some((name.to_vec(), Some(trees::id(n).to_vec())))
        });
        let carriers = self.carriers.iter().map(|(c, n)| {
            (
                carrier_count_key(c),
                (*n > 0).then(|| trees::id(*n).to_vec()),
            )
        });
        totals.chain(carriers)
    }
}

impl Counts {
    fn get(&self, t: T) -> Option<u64> {
        match t {
            T::Outbox => Some(self.outbox),
            T::AwaitingReceipts => Some(self.awaiting_receipts),
            T::HeldReceipts => Some(self.held_receipts),
            _ => None,
        }
    }

    fn slot(&mut self, t: T) -> Option<&mut u64> {
        match t {
            T::Outbox => Some(&mut self.outbox),
            T::AwaitingReceipts => Some(&mut self.awaiting_receipts),
            T::HeldReceipts => Some(&mut self.held_receipts),
            _ => None,
        }
    }

    /// Entries queued for `carrier`.
    pub(crate) fn outbox_of(&self, carrier: &[u8]) -> u64 {
        self.outbox_by_carrier.get(carrier).copied().unwrap_or(0)
    }

    /// Works out what one commit's writes do to the counts: each write as
    /// (tree, key, whether the key was held before, whether it is a put).
    pub(crate) fn change<'k>(
        &self,
        writes: impl IntoIterator<Item = (T, &'k [u8], bool, bool)>,
    ) -> Change {
        let mut totals = [0i64; COUNTED.len()];
        let mut carriers: BTreeMap<&[u8], i64> = BTreeMap::new();
        for (t, key, existed, put) in writes {
            let d = match (existed, put) {
                (false, true) => 1,
                (true, false) => -1,
                _ => continue,
            };
            let Some(i) = COUNTED.iter().position(|(c, _)| *c == t) else {
                continue;
            };
            totals[i] += d;
            if t == T::Outbox {
                *carriers.entry(carrier_of(key)).or_default() += d;
            }
        }
        let after = |n: u64, d: i64| n.saturating_add_signed(d);
        Change {
            totals: COUNTED
                .iter()
                .zip(totals)
                .filter(|&(_, d)| d != 0)
                .filter_map(|(&(t, _), d)| Some((t, after(self.get(t)?, d))))
                .collect(),
            carriers: carriers
                .into_iter()
                .filter(|&(_, d)| d != 0)
                .map(|(c, d)| (c.to_vec(), after(self.outbox_of(c), d)))
                .collect(),
        }
    }

    /// Applies a commit's [`Change`] once it is committed.
    pub(crate) fn apply(&mut self, change: Change) {
        for (t, n) in change.totals {
            if let Some(slot) = self.slot(t) {
                *slot = n;
            }
        }
        for (c, n) in change.carriers {
            if n > 0 {
                self.outbox_by_carrier.insert(c, n);
            } else {
                self.outbox_by_carrier.remove(&c);
            }
        }
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
    for kv in meta.scan_prefix(CARRIER_COUNT) {
        let (k, v) = kv?;
        let n = decode_u64("meta", &v)?;
        counts
            .outbox_by_carrier
            .insert(k[CARRIER_COUNT.len()..].to_vec(), n);
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
    let meta = tree(T::Meta);
    for kv in meta.scan_prefix(CARRIER_COUNT) {
        meta.remove(kv?.0)?;
    }
    let mut by_carrier: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
    for (t, name) in COUNTED {
        let mut n = 0u64;
        for kv in tree(t).iter() {
            let (k, v) = kv?;
            n += 1;
            if t == T::Outbox {
                *by_carrier.entry(carrier_of(&k).to_vec()).or_default() += 1;
            }
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
        meta.insert(name, &trees::id(n)[..])?;
    }
    for (carrier, n) in by_carrier {
        meta.insert(carrier_count_key(&carrier), &trees::id(n)[..])?;
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

    fn key(carrier: &str, message: u64) -> Vec<u8> {
        trees::outbox_key(carrier, message)
    }

    #[test]
    fn a_commit_counts_created_keys_up_and_deleted_keys_down_and_records_the_change() {
        let mut c = Counts {
            outbox: 2,
            outbox_by_carrier: [(b"acme".to_vec(), 2)].into(),
            ..Counts::default()
        };
        let (a1, a2, b1) = (key("acme", 1), key("acme", 2), key("beta", 3));
        let change = c.change([
            (T::Outbox, &a1[..], true, true),   // rewritten: no change
            (T::Outbox, &a1[..], true, false),  // deleted
            (T::Outbox, &a2[..], false, true),  // created
            (T::Outbox, &b1[..], false, true),  // created
            (T::Outbox, &a2[..], false, false), // deleted, never held: no change
            (T::AwaitingReceipts, &a1[..], false, true),
            (T::Messages, &a1[..], false, true), // not counted
        ]);
        let meta: Vec<_> = change.meta_writes().collect();
        c.apply(change);
        assert_eq!(
            c,
            Counts {
                outbox: 3,
                awaiting_receipts: 1,
                held_receipts: 0,
                outbox_by_carrier: [(b"acme".to_vec(), 2), (b"beta".to_vec(), 1)].into(),
            }
        );
        // Unchanged counts add no write (acme: one out, one in): the
        // receipt path stays lean.
        let id = |n: u64| Some(trees::id(n).to_vec());
        assert_eq!(
            meta,
            [
                (b"count_outbox".to_vec(), id(3)),
                (b"count_awaiting_receipts".to_vec(), id(1)),
                (b"count_outbox_of:beta".to_vec(), id(1)),
            ]
        );
    }

    #[test]
    fn a_carrier_left_with_nothing_queued_loses_its_count() {
        let mut c = Counts {
            outbox: 3,
            outbox_by_carrier: [(b"acme".to_vec(), 1), (b"beta".to_vec(), 2)].into(),
            ..Counts::default()
        };
        let k = key("acme", 7);
        let change = c.change([(T::Outbox, &k[..], true, false)]);
        let meta: Vec<_> = change.meta_writes().collect();
        c.apply(change);
        assert_eq!(c.outbox, 2);
        assert_eq!(c.outbox_of(b"acme"), 0);
        assert!(!c.outbox_by_carrier.contains_key(&b"acme"[..]));
        assert_eq!(c.outbox_of(b"beta"), 2);
        assert_eq!(
            meta,
            [
                (b"count_outbox".to_vec(), Some(trees::id(2).to_vec())),
                (b"count_outbox_of:acme".to_vec(), None),
            ]
        );
    }

    #[test]
    fn a_create_and_a_delete_in_one_commit_leave_the_count_unwritten() {
        let mut c = Counts {
            held_receipts: 5,
            ..Counts::default()
        };
        let k = key("acme", 1);
        let change = c.change([
            (T::HeldReceipts, &k[..], false, true),
            (T::HeldReceipts, &k[..], true, false),
        ]);
        assert_eq!(change, Change::default());
        c.apply(change);
        assert_eq!(c.held_receipts, 5);
    }
}
