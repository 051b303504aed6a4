//! The overlay: committed writes that sled has not been given yet.
//!
//! Durability comes from the write-ahead log ([`super::wal`]), so a commit
//! does not have to touch sled at all: its writes go into this in-memory
//! layer, and readers look here first. sled receives them at a
//! *checkpoint*, in the background: the writer lock freezes the layer at
//! the same point as the log is cut, a fresh layer takes new writes, the
//! frozen one is applied to sled and sled is flushed, and then the log
//! files before the cut are deleted. (Tree `events` is the exception: its
//! writes go to the event journal, [`super::journal`], not to sled.)
//!
//! Most keys of a message live for milliseconds (its outbox entry, its
//! lease, the submit correlation) or are rewritten at every step (the
//! message itself), so between two checkpoints most writes cancel out or
//! collapse into one: sled sees one write where a commit made several, and
//! none for keys created and deleted in between. That is what takes sled's
//! page writes and its transaction machinery off the commit path.
//!
//! # Reads
//! A point read looks at the fresh layer, then the frozen one, then sled. A
//! frozen layer leaves only after sled holds all of it, so a key missing
//! from both layers has its latest value in sled. A scan merges the layers
//! (copied a chunk at a time under the lock) with a sled iterator. The one
//! race: a sled iterator keeps the nodes it has read, so one opened before
//! a checkpoint applied a layer may return older values once that layer is
//! gone. Dropping a layer bumps an epoch, and a scan that sees the epoch
//! move reopens its sled iterator where it stood.
//!
//! # Deletes
//! Each entry knows whether anything below it (frozen layer or sled) holds
//! the key. A delete of a key nothing below holds simply removes the entry,
//! so a key created and deleted between two checkpoints never reaches sled.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::error::StoreResult;
use super::trees::{T, successor};

/// Fresh-layer size past which a commit starts a checkpoint.
pub(crate) const CHECKPOINT_OVERLAY_BYTES: usize = 8 << 20;

/// Fresh-layer size at which commits wait for a checkpoint (sled is not
/// keeping up). With the frozen layer being applied beside it (normally
/// about [`CHECKPOINT_OVERLAY_BYTES`], at most this much), the overlay holds
/// at most twice this.
pub(crate) const OVERLAY_LIMIT_BYTES: usize = 4 * CHECKPOINT_OVERLAY_BYTES;

/// Deletes of keys sled holds, in the fresh layer, past which a commit
/// starts a checkpoint: a scan walks past each such key in sled. The scan
/// that met most of them, the outbox's on every claim while a checkpointed
/// backlog drains, starts past those it has seen (`claim_from` in
/// `sled.rs`); this bound is for the scans that run seldom (a listing, the
/// receipt sweep). At 1 024 a 20 000-message drain took 60-65 checkpoints
/// and ran at 7 000-8 300 msgs/s; at this bound, 3-4 and 11 900-12 900
/// (benches/RESULTS.md §16).
pub(crate) const CHECKPOINT_TOMBSTONES: usize = 65_536;

/// Entries a scan copies out of the layers per lock.
const CHUNK: usize = 64;

/// Bytes counted per entry on top of its key and value (map node, slot).
const ENTRY_OVERHEAD: usize = 64;

type Map = BTreeMap<Vec<u8>, Slot>;

/// Layer entries copied out for a scan: (key, value or delete).
type Chunk = VecDeque<(Vec<u8>, Option<Vec<u8>>)>;

/// One write held by a layer.
#[derive(Debug, Clone)]
struct Slot {
    /// The new value, or `None` for a delete.
    value: Option<Vec<u8>>,
    /// Nothing below this layer holds the key.
    fresh: bool,
}

impl Slot {
    /// Bytes counted for this slot under a key of `key_len` bytes.
    fn size(&self, key_len: usize) -> usize {
        key_len + self.value.as_ref().map_or(0, Vec::len) + ENTRY_OVERHEAD
    }
}

#[derive(Debug)]
struct Layers {
    /// Writes since the last freeze, one map per tree.
    top: Vec<Map>,
    /// Writes being applied to sled by a checkpoint.
    frozen: Option<Arc<Vec<Map>>>,
    /// Approximate bytes held by `top`.
    top_bytes: usize,
    /// Deletes in `top` of keys something below holds.
    top_tombstones: usize,
    /// Per tree, a key at or above every key sled holds (`None`: it holds
    /// none): the greatest at open, raised by each freeze to the greatest
    /// key the frozen layer may write. A key above it is not looked up in
    /// sled: new ids, seqs and times (most of what a commit writes) are.
    sled_max: Vec<Option<Vec<u8>>>,
}

/// Whether sled cannot hold `key`, all its keys being at most `max`.
fn above(max: &Option<Vec<u8>>, key: &[u8]) -> bool {
    max.as_deref().is_none_or(|m| key > m)
}

/// One write of a commit, with what the layer needs to know about it.
pub(crate) struct Staged {
    pub(crate) t: T,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Option<Vec<u8>>,
    /// Nothing below the fresh layer holds the key (known before the lock).
    fresh: bool,
    /// The key was held (by any layer or sled) before this write.
    pub(crate) existed: bool,
}

/// The layers over sled, and sled's trees.
#[derive(Debug)]
pub(crate) struct Overlay {
    trees: Vec<sled::Tree>,
    layers: RwLock<Layers>,
    /// Bumped (under the write lock) each time a frozen layer is dropped.
    epoch: AtomicU64,
}

impl Overlay {
    /// An empty overlay over `trees` (indexed by [`T`]). Call before
    /// anything writes to `trees` other than through the overlay.
    ///
    /// # Errors
    /// sled failed reading a tree's last key.
    pub(crate) fn new(trees: Vec<sled::Tree>) -> StoreResult<Self> {
        let sled_max = trees
            .iter()
            .map(|t| Ok(t.last()?.map(|(k, _)| k.to_vec())))
            .collect::<StoreResult<_>>()?;
        let layers = Layers {
            top: trees.iter().map(|_| Map::new()).collect(),
            frozen: None,
            top_bytes: 0,
            top_tombstones: 0,
            sled_max,
        };
        Ok(Self {
            trees,
            layers: RwLock::new(layers),
            epoch: AtomicU64::new(0),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Layers> {
        self.layers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Layers> {
        self.layers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The current value of `key` in tree `t`.
    ///
    /// # Errors
    /// sled failed reading.
    pub(crate) fn get(&self, t: T, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        {
            let l = self.read();
            if let Some(s) = l.top[t as usize].get(key) {
                return Ok(s.value.clone());
            }
            if let Some(s) = l.frozen.as_ref().and_then(|f| f[t as usize].get(key)) {
                return Ok(s.value.clone());
            }
            if above(&l.sled_max[t as usize], key) {
                return Ok(None);
            }
        }
        Ok(self.trees[t as usize].get(key)?.map(|v| v.to_vec()))
    }

    /// Adds one commit's writes: [`Overlay::stage`], then
    /// [`Overlay::commit`] (the tests' shorthand).
    #[cfg(test)]
    pub(crate) fn insert(
        &self,
        writes: impl IntoIterator<Item = ((T, Vec<u8>), Option<Vec<u8>>)>,
    ) -> StoreResult<()> {
        let staged = self.stage(writes)?;
        self.commit(staged);
        Ok(())
    }

    /// Looks up what the layers and sled hold for each key of one commit's
    /// writes (one lookup per write; the store's entry counts reuse it).
    /// Call under the store's writer lock (the only place the fresh layer
    /// grows) and hand the result to [`Overlay::commit`] under the same
    /// lock, so that the whole commit becomes visible at once.
    ///
    /// # Errors
    /// sled failed reading; nothing was added.
    pub(crate) fn stage(
        &self,
        writes: impl IntoIterator<Item = ((T, Vec<u8>), Option<Vec<u8>>)>,
    ) -> StoreResult<Vec<Staged>> {
        let mut staged = Vec::new();
        let l = self.read();
        for ((t, key), value) in writes {
            let (fresh, existed) = match l.top[t as usize].get(&key) {
                Some(s) => (s.fresh, s.value.is_some()),
                None => match l.frozen.as_ref().and_then(|f| f[t as usize].get(&key)) {
                    Some(s) => (s.value.is_none(), s.value.is_some()),
                    None if above(&l.sled_max[t as usize], &key) => (true, false),
                    None => {
                        let held = self.trees[t as usize].contains_key(&key)?;
                        (!held, held)
                    }
                },
            };
            staged.push(Staged {
                t,
                key,
                value,
                fresh,
                existed,
            });
        }
        Ok(staged)
    }

    /// Makes [`Overlay::stage`]d writes visible, all at once.
    pub(crate) fn commit(&self, staged: Vec<Staged>) {
        let mut l = self.write();
        for s in staged {
            let slot = Slot {
                value: s.value,
                fresh: s.fresh,
            };
            // A delete of a key nothing below holds leaves no entry; any
            // other delete stays as a tombstone.
            let kept = !(slot.value.is_none() && slot.fresh);
            let (added, tombstone) = if kept {
                (slot.size(s.key.len()), usize::from(slot.value.is_none()))
            } else {
                (0, 0)
            };
            let map = &mut l.top[s.t as usize];
            let key_len = s.key.len();
            let old = if kept {
                map.insert(s.key, slot)
            } else {
                map.remove(&s.key)
            };
            let (removed, was) = old.map_or((0, 0), |o| {
                (o.size(key_len), usize::from(o.value.is_none()))
            });
            l.top_bytes = (l.top_bytes + added).saturating_sub(removed);
            l.top_tombstones = (l.top_tombstones + tombstone).saturating_sub(was);
        }
    }

    /// Approximate bytes held by the fresh layer.
    pub(crate) fn top_bytes(&self) -> usize {
        self.read().top_bytes
    }

    /// Whether the fresh layer has grown enough for a checkpoint: by its
    /// bytes, or by deletes of keys sled holds.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        let l = self.read();
        l.top_bytes >= CHECKPOINT_OVERLAY_BYTES || l.top_tombstones >= CHECKPOINT_TOMBSTONES
    }

    /// Freezes the fresh layer for a checkpoint and starts an empty one.
    /// Call under the store's writer lock, at the log's cut. A frozen layer
    /// left by a failed checkpoint absorbs this one (newer writes win).
    pub(crate) fn freeze(&self) {
        let mut l = self.write();
        let empty = l.top.iter().map(|_| Map::new()).collect();
        let top = std::mem::replace(&mut l.top, empty);
        // Before sled may hold any of them (a delete counts too: a failed
        // checkpoint's layer carries entries it may already have applied).
        for (max, map) in l.sled_max.iter_mut().zip(&top) {
            if let Some((last, _)) = map.last_key_value() {
                if above(max, last) {
                    *max = Some(last.clone());
                }
            }
        }
        l.top_bytes = 0;
        l.top_tombstones = 0;
        let frozen = match l.frozen.take() {
            None => top,
            Some(older) => {
                // Its checkpoint failed part-way: any of its writes may be
                // in sled already, so no entry of the merged layer may count
                // on sled lacking its key (every delete is applied).
                let mut merged = Arc::unwrap_or_clone(older);
                for (below, above) in merged.iter_mut().zip(top) {
                    below.extend(above);
                }
                for slot in merged.iter_mut().flat_map(|m| m.values_mut()) {
                    slot.fresh = false;
                }
                merged
            }
        };
        l.frozen = Some(Arc::new(frozen));
    }

    /// Applies the frozen layer to sled and drops it (sled is not flushed
    /// here). Blocking. The checkpoint's middle step is
    /// [`Overlay::apply_frozen_except`].
    ///
    /// # Errors
    /// sled failed writing; the layer stays, and the next checkpoint
    /// applies it again (its writes are absolute).
    #[cfg(test)]
    pub(crate) fn apply_frozen(&self) -> StoreResult<usize> {
        self.apply_frozen_except(None, |_| Ok(()))
    }

    /// As [`Overlay::apply_frozen`], except that the puts of tree `side`
    /// (if any) go to `sink` instead of sled, in key order; its deletes
    /// are dropped. The layer is dropped after `sink` returned.
    pub(crate) fn apply_frozen_except(
        &self,
        side: Option<T>,
        sink: impl FnOnce(&mut dyn Iterator<Item = (&[u8], &[u8])>) -> StoreResult<()>,
    ) -> StoreResult<usize> {
        let Some(frozen) = self.read().frozen.clone() else {
            return Ok(0);
        };
        let applied = self.apply_layer(&frozen, usize::MAX, side)?;
        if let Some(map) = side.and_then(|t| frozen.get(t as usize)) {
            sink(
                &mut map
                    .iter()
                    .filter_map(|(k, slot)| Some((k.as_slice(), slot.value.as_deref()?))),
            )?;
        }
        let mut l = self.write();
        l.frozen = None;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        Ok(applied)
    }

    /// Bumped each time a frozen layer is dropped: a reader that merges
    /// the overlay with something the layer went to checks that it did not
    /// move.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Writes up to `limit` entries of `layer` to sled, except tree
    /// `side`'s; returns how many.
    fn apply_layer(&self, layer: &[Map], limit: usize, side: Option<T>) -> StoreResult<usize> {
        let mut applied = 0;
        for ((tree, map), t) in self.trees.iter().zip(layer).zip(T::ALL) {
            if side == Some(t) {
                continue;
            }
            for (key, slot) in map {
                if applied == limit {
                    return Ok(applied);
                }
                match (&slot.value, slot.fresh) {
                    (Some(v), _) => {
                        tree.insert(key.as_slice(), v.as_slice())?;
                    }
                    (None, false) => {
                        tree.remove(key.as_slice())?;
                    }
                    (None, true) => continue,
                }
                applied += 1;
            }
        }
        Ok(applied)
    }

    /// The entries of tree `t` between `lo` and `hi`, in key order.
    pub(crate) fn scan(&self, t: T, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Scan<'_> {
        let empty = is_empty(&lo, &hi);
        Scan {
            ov: self,
            t,
            sled: None,
            sled_epoch: None,
            peek: None,
            buf: VecDeque::new(),
            next_from: (!empty).then(|| lo.clone()),
            pos: lo,
            hi,
            empty,
        }
    }

    /// The entries of tree `t` whose keys start with `prefix`.
    pub(crate) fn scan_prefix(&self, t: T, prefix: &[u8]) -> Scan<'_> {
        let hi = successor(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        self.scan(t, Bound::Included(prefix.to_vec()), hi)
    }

    /// Every entry of tree `t`.
    pub(crate) fn iter(&self, t: T) -> Scan<'_> {
        self.scan(t, Bound::Unbounded, Bound::Unbounded)
    }

    /// Entries of both layers after `from` and within `hi`, merged (the
    /// fresh layer wins), up to a key both layers are complete to; and where
    /// the next chunk starts (`None`: the layers hold nothing more).
    fn chunk(
        &self,
        t: T,
        from: &Bound<Vec<u8>>,
        hi: &Bound<Vec<u8>>,
    ) -> (Chunk, Option<Bound<Vec<u8>>>) {
        let range = (as_slice(from), as_slice(hi));
        let l = self.read();
        let top: Vec<_> = l.top[t as usize]
            .range::<[u8], _>(range)
            .take(CHUNK)
            .collect();
        let frozen: Vec<_> = match &l.frozen {
            Some(f) => f[t as usize].range::<[u8], _>(range).take(CHUNK).collect(),
            None => Vec::new(),
        };
        // A full chunk may stop short of the other layer's keys: emit only
        // up to the smaller last key of the full ones.
        let limit = [&top, &frozen]
            .into_iter()
            .filter(|c| c.len() == CHUNK)
            .filter_map(|c| c.last().map(|(k, _)| *k))
            .min()
            .cloned();
        let within = |k: &Vec<u8>| limit.as_ref().is_none_or(|l| k <= l);
        let mut merged: BTreeMap<&Vec<u8>, &Slot> =
            frozen.into_iter().filter(|(k, _)| within(k)).collect();
        merged.extend(top.into_iter().filter(|(k, _)| within(k)));
        let out = merged
            .into_iter()
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect();
        (out, limit.map(Bound::Excluded))
    }
}

/// Whether no key lies between `lo` and `hi`.
fn is_empty(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A merged scan of the layers and sled (see the module docs).
pub(crate) struct Scan<'a> {
    ov: &'a Overlay,
    t: T,
    /// sled's side of the merge (`None` once exhausted), and the epoch it
    /// was opened in: sled iterators hold nodes they have read, so one
    /// opened before a layer was dropped may return values older than the
    /// layer's. It is reopened at `pos` whenever the epoch moved.
    sled: Option<sled::Iter>,
    sled_epoch: Option<u64>,
    /// The next sled entry.
    peek: Option<(sled::IVec, sled::IVec)>,
    /// Layer entries copied out, not yet merged.
    buf: Chunk,
    /// Where the next layer chunk starts; `None` once they are exhausted.
    next_from: Option<Bound<Vec<u8>>>,
    /// Just after the last key merged (where a reopened sled side starts).
    pos: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    /// The range holds no key.
    empty: bool,
}

impl Scan<'_> {
    /// Reopens sled's side at `pos` if a layer was dropped since it was
    /// opened (or it never was).
    fn refresh_sled(&mut self) {
        let now = self.ov.epoch.load(Ordering::Acquire);
        if self.empty || self.sled_epoch == Some(now) {
            return;
        }
        self.sled_epoch = Some(now);
        self.peek = None;
        self.sled = (!is_empty(&self.pos, &self.hi))
            .then(|| self.ov.trees[self.t as usize].range((self.pos.clone(), self.hi.clone())));
    }
}

impl Iterator for Scan<'_> {
    type Item = StoreResult<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.buf.is_empty()
                && let Some(from) = self.next_from.take()
            {
                let (buf, next) = self.ov.chunk(self.t, &from, &self.hi);
                self.buf = buf;
                self.next_from = next;
            }
            self.refresh_sled();
            if self.peek.is_none()
                && let Some(it) = &mut self.sled
            {
                match it.next() {
                    None => self.sled = None,
                    Some(Err(e)) => {
                        self.sled = None;
                        self.empty = true;
                        return Some(Err(e.into()));
                    }
                    Some(Ok(kv)) => self.peek = Some(kv),
                }
            }
            let from_layers = match (self.buf.front(), &self.peek) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((lk, _)), Some((sk, _))) => match lk.as_slice().cmp(sk.as_ref()) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Equal => {
                        self.peek = None;
                        true
                    }
                    std::cmp::Ordering::Greater => false,
                },
            };
            if from_layers {
                let Some((k, v)) = self.buf.pop_front() else {
                    continue;
                };
                self.pos = Bound::Excluded(k.clone());
                if let Some(v) = v {
                    return Some(Ok((k, v)));
                }
                continue;
            }
            let Some((k, v)) = self.peek.take() else {
                continue;
            };
            let k = k.to_vec();
            self.pos = Bound::Excluded(k.clone());
            return Some(Ok((k, v.to_vec())));
        }
    }
}

/// One tree as the store sees it: the layers over sled's tree (the read
/// API of a `sled::Tree`, merged).
#[derive(Clone, Copy)]
pub(crate) struct TreeView<'a> {
    ov: &'a Overlay,
    t: T,
}

impl Overlay {
    /// Tree `t` through the layers.
    pub(crate) fn tree(&self, t: T) -> TreeView<'_> {
        TreeView { ov: self, t }
    }
}

impl<'a> TreeView<'a> {
    /// The current value of `key`.
    ///
    /// # Errors
    /// sled failed reading.
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> StoreResult<Option<Vec<u8>>> {
        self.ov.get(self.t, key.as_ref())
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> Scan<'a> {
        self.ov.iter(self.t)
    }

    /// Tells sled's cache that `key` was read (a point lookup in sled's
    /// tree; the layers are not looked at).
    ///
    /// sled 0.34's cache hears of reads only through point lookups: an
    /// iterator copies a node and counts one access for all its entries,
    /// and the cache's LRU acts once 64 accesses queued in one of its 256
    /// shards. So a scan over a large tree pages in every node it passes
    /// and `store.cache_mb` never evicts them: listing 100 000
    /// conversations kept ~25 MB. A scan that touches each entry it
    /// returns lets the bound apply.
    ///
    /// # Errors
    /// sled failed reading.
    pub(crate) fn touch(&self, key: &[u8]) -> StoreResult<()> {
        self.ov.trees[self.t as usize].contains_key(key)?;
        Ok(())
    }

    /// The entries whose keys start with `prefix`.
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Scan<'a> {
        self.ov.scan_prefix(self.t, prefix.as_ref())
    }

    /// The entries within `range`.
    pub(crate) fn range<K: AsRef<[u8]>>(&self, range: impl std::ops::RangeBounds<K>) -> Scan<'a> {
        let own = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(k.as_ref().to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        self.ov
            .scan(self.t, own(range.start_bound()), own(range.end_bound()))
    }

    /// Number of entries (counts them: not for a hot path).
    ///
    /// # Errors
    /// sled failed reading.
    pub(crate) fn len(&self) -> StoreResult<usize> {
        let mut n = 0;
        for kv in self.iter() {
            kv?;
            n += 1;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TREE: T = T::Messages;

    fn overlay() -> Overlay {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let trees = T::ALL
            .iter()
            .map(|t| db.open_tree(t.name()).unwrap())
            .collect();
        Overlay::new(trees).unwrap()
    }

    fn key(k: u16) -> Vec<u8> {
        k.to_be_bytes().to_vec()
    }

    fn put(ov: &Overlay, k: u16, v: &[u8]) {
        ov.insert([((TREE, key(k)), Some(v.to_vec()))]).unwrap();
    }

    fn del(ov: &Overlay, k: u16) {
        ov.insert([((TREE, key(k)), None)]).unwrap();
    }

    fn all(scan: Scan<'_>) -> Vec<(Vec<u8>, Vec<u8>)> {
        scan.collect::<StoreResult<_>>().unwrap()
    }

    fn sled_entries(ov: &Overlay) -> Vec<(Vec<u8>, Vec<u8>)> {
        ov.trees[TREE as usize]
            .iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u16, u8),
        Del(u16),
        Freeze,
        Apply,
        /// A checkpoint that fails after applying this many writes: the
        /// frozen layer stays, part of it already in sled.
        FailedApply(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys from a range wider than a chunk, so scans cross chunk bounds.
        prop_oneof![
            6 => (0..300u16, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            3 => (0..300u16).prop_map(Op::Del),
            1 => Just(Op::Freeze),
            1 => Just(Op::Apply),
            1 => (0..50usize).prop_map(Op::FailedApply),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Whatever mix of layers and sled holds the writes (a checkpoint
        /// may fail part-way, leaving a frozen layer partly in sled for the
        /// next one to absorb), reads equal a plain map.
        #[test]
        fn reads_through_the_layers_equal_a_plain_map(ops in proptest::collection::vec(op(), 1..400)) {
            let ov = overlay();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        put(&ov, k, &[v; 3]);
                        model.insert(key(k), vec![v; 3]);
                    }
                    Op::Del(k) => {
                        del(&ov, k);
                        model.remove(&key(k));
                    }
                    Op::Freeze => ov.freeze(),
                    Op::Apply => {
                        ov.apply_frozen().unwrap();
                    }
                    Op::FailedApply(n) => {
                        if let Some(f) = ov.read().frozen.clone() {
                            ov.apply_layer(&f, n, None).unwrap();
                        }
                    }
                }
            }
            let want: Vec<_> = model.clone().into_iter().collect();
            prop_assert_eq!(all(ov.iter(TREE)), want);
            for k in (0..300u16).step_by(7) {
                prop_assert_eq!(ov.get(TREE, &key(k)).unwrap(), model.get(&key(k)).cloned());
            }
            let lo = key(40);
            let hi = key(200);
            let want: Vec<_> = model.range(lo.clone()..hi.clone()).map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(all(ov.tree(TREE).range(lo..hi)), want);
            let want: Vec<_> = model.iter().filter(|(k, _)| k[0] == 0).map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(all(ov.scan_prefix(TREE, &[0])), want);
            // A full checkpoint leaves sled holding exactly the live keys:
            // deletes of keys sled never saw are not left behind.
            ov.freeze();
            ov.apply_frozen().unwrap();
            prop_assert_eq!(sled_entries(&ov), model.into_iter().collect::<Vec<_>>());
            prop_assert_eq!(ov.top_bytes(), 0);
        }
    }

    #[test]
    fn a_key_created_and_deleted_between_checkpoints_never_reaches_sled() {
        let ov = overlay();
        put(&ov, 1, b"a");
        del(&ov, 1);
        assert_eq!(ov.top_bytes(), 0);
        ov.freeze();
        assert_eq!(ov.apply_frozen().unwrap(), 0);
        assert!(sled_entries(&ov).is_empty());
        // One sled holds is deleted there by the checkpoint.
        put(&ov, 2, b"b");
        ov.freeze();
        ov.apply_frozen().unwrap();
        del(&ov, 2);
        assert_eq!(ov.get(TREE, &key(2)).unwrap(), None);
        assert_eq!(sled_entries(&ov).len(), 1);
        ov.freeze();
        assert_eq!(ov.apply_frozen().unwrap(), 1);
        assert!(sled_entries(&ov).is_empty());
    }

    /// Deletes of keys sled holds ask for a checkpoint once they reach
    /// [`CHECKPOINT_TOMBSTONES`], far below the byte bound; deletes of
    /// keys only the overlay held do not count.
    #[test]
    fn deletes_of_keys_sled_holds_ask_for_a_checkpoint_at_their_bound() {
        let ov = overlay();
        let n = u32::try_from(CHECKPOINT_TOMBSTONES).unwrap();
        let k = |i: u32| i.to_be_bytes().to_vec();
        ov.insert((0..n).map(|i| ((TREE, k(i)), Some(b"v".to_vec()))))
            .unwrap();
        ov.freeze();
        ov.apply_frozen().unwrap();
        // Created and deleted above sled: nothing to count.
        for i in n..n + 2_000 {
            ov.insert([((TREE, k(i)), Some(b"v".to_vec()))]).unwrap();
            ov.insert([((TREE, k(i)), None)]).unwrap();
        }
        ov.insert((0..n - 1).map(|i| ((TREE, k(i)), None))).unwrap();
        assert!(!ov.wants_checkpoint());
        assert!(ov.top_bytes() < CHECKPOINT_OVERLAY_BYTES);
        ov.insert([((TREE, k(n - 1)), None)]).unwrap();
        assert!(ov.wants_checkpoint());
    }

    /// A checkpoint hands tree `side`'s puts to the sink, in key order,
    /// and none of them to sled; the other trees reach sled as before; the
    /// layer (and with it the side's entries) goes only after the sink
    /// returned, and stays if the sink failed.
    #[test]
    fn a_side_trees_puts_go_to_the_sink_in_key_order_and_not_to_sled() {
        let ov = overlay();
        let side = T::Events;
        for k in [3u16, 1, 2] {
            ov.insert([((side, key(k)), Some(vec![k as u8]))]).unwrap();
        }
        put(&ov, 9, b"m");
        ov.freeze();
        let failed = ov.apply_frozen_except(Some(side), |_| {
            Err(super::super::StoreError::Corrupt {
                tree: "test",
                detail: "sink failed".into(),
            })
        });
        assert!(failed.is_err());
        assert_eq!(ov.get(side, &key(2)).unwrap(), Some(vec![2]), "layer kept");
        let mut sunk = Vec::new();
        let applied = ov
            .apply_frozen_except(Some(side), |it| {
                assert_eq!(
                    ov.get(side, &key(1)).unwrap(),
                    Some(vec![1]),
                    "still readable"
                );
                sunk.extend(it.map(|(k, v)| (k.to_vec(), v.to_vec())));
                Ok(())
            })
            .unwrap();
        assert_eq!(applied, 1, "only tree {TREE:?} went to sled");
        assert_eq!(sunk, [1u16, 2, 3].map(|k| (key(k), vec![k as u8])).to_vec());
        assert!(ov.trees[side as usize].is_empty());
        assert_eq!(sled_entries(&ov), [(key(9), b"m".to_vec())]);
        assert_eq!(ov.get(side, &key(1)).unwrap(), None, "layer dropped");
    }

    /// The one race of a scan: its sled iterator holds the node it read,
    /// then a checkpoint applies a newer value of a later key and drops its
    /// layer. The scan must return the newer value (it did not, before the
    /// iterator was reopened on the epoch).
    #[test]
    fn a_scan_sees_a_value_a_checkpoint_applied_under_its_sled_iterator() {
        let ov = overlay();
        put(&ov, 1, b"old1");
        put(&ov, 2, b"old2");
        ov.freeze();
        ov.apply_frozen().unwrap();
        let mut scan = ov.iter(TREE);
        // Returns key 1; key 2 is now read ahead from sled.
        assert_eq!(scan.next().unwrap().unwrap().1, b"old1");
        put(&ov, 2, b"new2");
        ov.freeze();
        ov.apply_frozen().unwrap();
        assert_eq!(scan.next().unwrap().unwrap(), (key(2), b"new2".to_vec()));
        assert!(scan.next().is_none());
    }

    #[test]
    fn reversed_and_empty_ranges_are_empty() {
        let ov = overlay();
        put(&ov, 5, b"x");
        assert!(all(ov.tree(TREE).range(key(9)..=key(3))).is_empty());
        assert!(all(ov.tree(TREE).range(key(5)..key(5))).is_empty());
        assert_eq!(all(ov.tree(TREE).range(key(5)..=key(5))).len(), 1);
    }

    #[test]
    fn a_prefix_of_all_ones_scans_to_the_end() {
        assert_eq!(successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(successor(&[0xff, 0xff]), None);
        let ov = overlay();
        ov.insert([((TREE, vec![0xff, 0xff, 1]), Some(b"v".to_vec()))])
            .unwrap();
        ov.insert([((TREE, vec![0xfe]), Some(b"w".to_vec()))])
            .unwrap();
        assert_eq!(all(ov.scan_prefix(TREE, &[0xff, 0xff])).len(), 1);
    }
}
