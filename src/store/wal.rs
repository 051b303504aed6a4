//! The store's write-ahead log: what makes a commit durable.
//!
//! sled's own flush writes whole pages (~20 KB per message here) and costs
//! milliseconds, so neither it nor sled's writes are on the commit path.
//! Instead every write set a call commits is appended here as one framed
//! record (its trees, keys and new values), and the group commit makes a
//! batch durable with one `write` + `fdatasync` of a few KB. The writes
//! themselves wait in memory ([`super::overlay`]) until a *checkpoint*
//! applies them to sled and flushes it, after which the files the
//! checkpoint covers are deleted.
//!
//! # Files
//! `<store>/wal/<generation:016x>.log`, each a run of records, then zeros:
//! `len: u32 LE | crc32(payload): u32 LE | payload`. A payload is a write set:
//! `(tree: u8, key_len: u32 LE, key, tag: u8 (0 delete, 1 put),
//! [value_len: u32 LE, value])*`. Records are absolute (put this value,
//! delete this key), so replaying one sled already holds changes nothing:
//! at open every file is replayed in order onto whatever prefix of the
//! writes sled kept, and the result is the state of the last durable commit.
//!
//! # Invariants
//! - A record is appended when its writes enter the overlay, under the
//!   store's writer lock, so the log order is the commit order.
//! - Only the newest file can end in a torn record (a crash mid-append):
//!   a file is synced before the next one is started. A torn tail is
//!   dropped (it was never acknowledged); a bad record in an older file is
//!   corruption.
//! - A checkpoint [`Wal::cut`]s the log at the same point (under the
//!   writer lock) as it freezes the store's overlay of unapplied writes, so
//!   the files before the cut hold exactly the frozen writes. A file is
//!   deleted only once those are applied to sled and sled is flushed.
//!
//! # Segments written in place
//! A file is a *segment*, zero-filled and synced before its first record
//! (by a background thread, while the one before it is in use), and the
//! records overwrite those zeros. Appending would change the file's size
//! with every commit, so each `fdatasync` would also commit that to the
//! file system's journal, and wait behind whatever else is in it (sled's
//! own flushes, above all). Overwriting blocks already written needs no
//! journal commit: on this machine's ext4 that took the sync from 0.38-0.47
//! ms to 0.23-0.28 ms at the median and the p99 from 1.5-2.7 ms to
//! 0.8-1.7 ms (2 KB writes; `benches/RESULTS.md` §11). The log moves to
//! the next segment when a write does not fit, and at every cut. The first
//! segment is small and each next one twice the size, up to
//! [`SEGMENT_BYTES`], so a store that writes little never zero-fills much.
//! If no prepared segment is ready, the next file is created empty and
//! grows as it is written (slower syncs, same records).
//!
//! A zero length ends a file's records, so the unused end of a segment is
//! its clean end. Anything else after the last good record is a torn
//! write: dropped if no later file holds a record, corruption otherwise.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::error::{StoreError, StoreResult};

/// Log size past which the next commit starts a checkpoint.
pub(crate) const CHECKPOINT_BYTES: u64 = 64 << 20;

/// Size of a full log segment (see the module docs).
pub(crate) const SEGMENT_BYTES: u64 = 4 << 20;

/// Size of the first segment after an open; each next one doubles.
const FIRST_SEGMENT_BYTES: u64 = 64 << 10;

/// One decoded write of a record: (tree index, key, new value or delete).
pub(crate) type Write1 = (u8, Vec<u8>, Option<Vec<u8>>);

/// One write to encode: (tree index, key, new value or delete).
pub(crate) type Entry<'a> = (u8, &'a [u8], Option<&'a [u8]>);

/// The open log of one store.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    /// Records appended since the last sync (framed), and where a
    /// checkpoint cut them ([`Wal::cut`]).
    pending: Mutex<Pending>,
    /// The file being written; held while writing and syncing it.
    file: Mutex<Current>,
    /// The next segment, once zero-filled; its lock is held while it is
    /// being prepared.
    next: Arc<Mutex<Option<Current>>>,
    /// Bytes written since the last cut (for the checkpoint trigger).
    size: AtomicU64,
    /// Generation of the current file (mirrors `file`, for [`Wal::cut`]).
    generation: AtomicU64,
    /// A write or sync failed: the file may end in a partial record, and
    /// anything appended after it would be lost to the replay, so no later
    /// sync succeeds (the store is fail-stop; a restart replays up to it).
    /// Holds what failed, for [`Wal::failure`].
    failed: watch::Sender<Option<Arc<str>>>,
}

#[derive(Debug, Default)]
struct Pending {
    buf: Vec<u8>,
    /// Records before this offset go to the current file, the rest to the
    /// next one (a checkpoint's cut, taken by the next sync).
    cut: Option<usize>,
}

#[derive(Debug)]
struct Current {
    file: File,
    generation: u64,
    /// Where the next record goes.
    pos: u64,
    /// Bytes the segment takes before the log moves on: zero-filled ahead
    /// of use in a prepared one; [`SEGMENT_BYTES`] for a file created
    /// empty, which grows as it is written.
    room: u64,
}

impl Current {
    /// Whether `len` more bytes go in this file (an oversized write goes
    /// alone in a fresh one).
    fn fits(&self, len: usize) -> bool {
        self.pos == 0 || self.pos + len as u64 <= self.room
    }
}

fn file_name(generation: u64) -> String {
    format!("{generation:016x}.log")
}

/// The generations present in `dir`, ascending.
fn generations(dir: &Path) -> io::Result<Vec<u64>> {
    numbered_files(dir, ".log")
}

/// The numbers of the files in `dir` named `<hex number><suffix>`,
/// ascending; other names are ignored (the event journal's files too).
pub(super) fn numbered_files(dir: &Path, suffix: &str) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(suffix)) else {
            continue;
        };
        if let Ok(g) = u64::from_str_radix(stem, 16) {
            out.push(g);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        tree: "wal",
        detail,
    }
}

/// Encodes a write set as one record payload.
pub(crate) fn encode<'a>(writes: impl Iterator<Item = Entry<'a>>, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    for (tree, key, value) in writes {
        out.push(tree);
        out.extend_from_slice(&(key.len() as u32).to_le_bytes());
        out.extend_from_slice(key);
        match value {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.push(0),
        }
    }
    let payload = &out[start + 8..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn take_u32(b: &mut &[u8]) -> Option<usize> {
    let v = take(b, 4)?;
    Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]) as usize)
}

/// Decodes one record payload.
fn decode_payload(mut p: &[u8]) -> Option<Vec<Write1>> {
    let mut out = Vec::new();
    while !p.is_empty() {
        let tree = *take(&mut p, 1)?.first()?;
        let klen = take_u32(&mut p)?;
        let key = take(&mut p, klen)?.to_vec();
        let value = match *take(&mut p, 1)?.first()? {
            0 => None,
            1 => {
                let vlen = take_u32(&mut p)?;
                Some(take(&mut p, vlen)?.to_vec())
            }
            _ => return None,
        };
        out.push((tree, key, value));
    }
    Some(out)
}

/// Splits a file's bytes into record payloads; returns them and the
/// length of the well-formed prefix (shorter than `bytes` if the tail is
/// torn or damaged).
fn records(bytes: &[u8]) -> (Vec<Vec<Write1>>, usize) {
    let mut out = Vec::new();
    let mut rest = bytes;
    loop {
        let good = bytes.len() - rest.len();
        if rest.is_empty() {
            return (out, good);
        }
        let mut r = rest;
        // A record is never empty: zeros (a tail the file system allocated
        // but never wrote) end the log like any other damage.
        let Some(len) = take_u32(&mut r).filter(|&n| n > 0) else {
            return (out, good);
        };
        let Some(crc) = take(&mut r, 4) else {
            return (out, good);
        };
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let Some(payload) = take(&mut r, len) else {
            return (out, good);
        };
        if crc32fast::hash(payload) != crc {
            return (out, good);
        }
        let Some(writes) = decode_payload(payload) else {
            return (out, good);
        };
        out.push(writes);
        rest = r;
    }
}

impl Wal {
    /// Replays every log file in `dir` (created if missing) through
    /// `apply`, oldest first, and returns the generations replayed. The
    /// caller makes sled durable, then calls [`Wal::start`] with them.
    ///
    /// # Errors
    /// I/O on the directory, a damaged record before the newest file's
    /// tail, or `apply` failing.
    pub(crate) fn replay(
        dir: &Path,
        mut apply: impl FnMut(Vec<Write1>) -> StoreResult<()>,
    ) -> StoreResult<(Vec<u64>, usize)> {
        fs::create_dir_all(dir).map_err(wal_io)?;
        let gens = generations(dir).map_err(wal_io)?;
        let mut applied = 0;
        for (i, g) in gens.iter().enumerate() {
            let bytes = fs::read(dir.join(file_name(*g))).map_err(wal_io)?;
            let (recs, good) = records(&bytes);
            // Zeros after the last good record are a segment's unused end.
            if bytes[good..].iter().any(|&b| b != 0) {
                if let Some(later) = first_written(dir, &gens[i + 1..]).map_err(wal_io)? {
                    return Err(corrupt(format!(
                        "damaged record at byte {good} of {} (the later {} holds records)",
                        file_name(*g),
                        file_name(later)
                    )));
                }
                tracing::warn!(
                    file = %file_name(*g),
                    dropped_bytes = bytes.len() - good,
                    "write-ahead log ends in a torn record (a crash mid-commit); it was never acknowledged and is dropped"
                );
            }
            for r in recs {
                apply(r)?;
                applied += 1;
            }
        }
        Ok((gens, applied))
    }

    /// Starts a fresh log file after `replayed` (whose writes sled now
    /// holds durably) and deletes those. The first segment is zero-filled
    /// here (small: [`FIRST_SEGMENT_BYTES`]); the next one in the
    /// background.
    ///
    /// # Errors
    /// I/O on the directory.
    pub(crate) fn start(dir: &Path, replayed: &[u64]) -> StoreResult<Wal> {
        let generation = replayed.last().map_or(1, |g| g + 1);
        let current = prepare(dir, generation, FIRST_SEGMENT_BYTES).map_err(wal_io)?;
        for g in replayed {
            fs::remove_file(dir.join(file_name(*g))).map_err(wal_io)?;
        }
        sync_dir(dir)?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            pending: Mutex::new(Pending::default()),
            file: Mutex::new(current),
            next: Arc::new(Mutex::new(None)),
            size: AtomicU64::new(0),
            generation: AtomicU64::new(generation),
            failed: watch::channel(None).0,
        };
        wal.prepare_next(generation + 1, FIRST_SEGMENT_BYTES * 2);
        Ok(wal)
    }

    /// Zero-fills segment `generation` on a thread of its own; the next
    /// switch takes it (or waits for it, if the thread is still at work).
    fn prepare_next(&self, generation: u64, len: u64) {
        let (dir, slot) = (self.dir.clone(), self.next.clone());
        // The thread holds the slot's lock before this returns, so a switch
        // that comes at once waits for the segment instead of racing its
        // creation (dropping `locked` says so, or a failed spawn does).
        let (locked, wait) = std::sync::mpsc::sync_channel::<()>(0);
        let spawned = std::thread::Builder::new()
            .name("smppgw-wal-segment".into())
            .spawn(move || {
                let mut next = slot.lock().unwrap_or_else(|p| p.into_inner());
                drop(locked);
                match prepare(&dir, generation, len) {
                    Ok(segment) => *next = Some(segment),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "could not prepare the next write-ahead log segment; it will be created empty (slower syncs)"
                    ),
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start the write-ahead log segment thread");
        }
        let _ = wait.recv();
    }

    /// Waits until the next segment's preparation is over.
    pub(crate) fn settle(&self) {
        drop(self.next.lock());
    }

    /// Queues a record (built by [`encode`]) for the next [`Wal::sync`].
    pub(crate) fn append(&self, record: &[u8]) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .buf
            .extend_from_slice(record);
    }

    /// Marks the end of the current file: every record appended so far
    /// goes to it, every later one to a new file, which the next
    /// [`Wal::sync`] starts (it syncs the current file first). Returns the
    /// first generation to keep once the records before the cut are in
    /// sled durably: that new file's, or an earlier one if a sync under way
    /// moves to a new segment first (the files before it hold only records
    /// from before the cut either way). Call under the store's writer lock,
    /// with the overlay frozen at the same point.
    pub(crate) fn cut(&self) -> u64 {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.cut = Some(p.buf.len());
        self.generation.load(Ordering::Acquire) + 1
    }

    /// Writes what was appended so far and waits until it is on disk
    /// (switching files at a [`Wal::cut`]). Blocking: run it off the async
    /// workers.
    ///
    /// # Errors
    /// The write or the sync failed.
    pub(crate) fn sync(&self) -> StoreResult<()> {
        let mut cur = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if self.failed.borrow().is_some() {
            return Err(wal_io(io::Error::other(
                "an earlier write-ahead log write failed; restart to recover",
            )));
        }
        let Pending { buf, cut } =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let written = self.write_out(&mut cur, &buf, cut);
        if let Err(e) = &written {
            self.failed.send_replace(Some(e.to_string().into()));
        }
        written
    }

    /// A receiver of what made the log fail (`None` while it has not).
    pub(crate) fn failure(&self) -> watch::Receiver<Option<Arc<str>>> {
        self.failed.subscribe()
    }

    fn write_out(&self, cur: &mut Current, buf: &[u8], cut: Option<usize>) -> StoreResult<()> {
        let mut rest = buf;
        if let Some(at) = cut {
            let (before, after) = buf.split_at(at.min(buf.len()));
            // The records before the cut stay in this file, even past its
            // room, so every file after it holds only later ones.
            write_synced(cur, before)?;
            self.switch(cur)?;
            self.size.store(0, Ordering::Relaxed);
            rest = after;
        }
        if rest.is_empty() {
            return Ok(());
        }
        if !cur.fits(rest.len()) {
            self.switch(cur)?;
        }
        write_synced(cur, rest)?;
        self.size.fetch_add(rest.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Moves on to the next segment (the current one is synced): the
    /// prepared one, or a file created empty if none is ready.
    fn switch(&self, cur: &mut Current) -> StoreResult<()> {
        let generation = cur.generation + 1;
        let prepared = self
            .next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .filter(|s| s.generation == generation);
        *cur = match prepared {
            Some(segment) => segment,
            None => Current {
                file: create(&self.dir, generation)?,
                generation,
                pos: 0,
                room: SEGMENT_BYTES,
            },
        };
        self.generation.store(generation, Ordering::Release);
        let grown = cur.room.saturating_mul(2).min(SEGMENT_BYTES);
        self.prepare_next(generation + 1, grown);
        Ok(())
    }

    /// Bytes written since the last cut.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Deletes the files older than `keep` (after a checkpoint).
    ///
    /// # Errors
    /// I/O on the directory.
    pub(crate) fn remove_before(&self, keep: u64) -> StoreResult<()> {
        for g in generations(&self.dir).map_err(wal_io)? {
            if g < keep {
                fs::remove_file(self.dir.join(file_name(g))).map_err(wal_io)?;
            }
        }
        Ok(())
    }
}

/// Writes `bytes` at the file's write position and waits until they are
/// on disk.
fn write_synced(cur: &mut Current, bytes: &[u8]) -> StoreResult<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    cur.file
        .write_all_at(bytes, cur.pos)
        .and_then(|()| cur.file.sync_data())
        .map_err(wal_io)?;
    cur.pos += bytes.len() as u64;
    Ok(())
}

/// Creates an empty log file (no prepared segment was ready).
fn create(dir: &Path, generation: u64) -> StoreResult<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(file_name(generation)))
        .map_err(wal_io)?;
    sync_dir(dir)?;
    Ok(file)
}

/// Creates segment `generation` holding `len` zeros, synced with its
/// directory entry, so records written over it later need no journal
/// commit to be durable.
fn prepare(dir: &Path, generation: u64, len: u64) -> io::Result<Current> {
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(dir.join(file_name(generation)))?;
    let zeros = vec![0u8; 64 << 10];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)?;
        at += n;
    }
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(Current {
        file,
        generation,
        pos: 0,
        room: len,
    })
}

/// The first of `gens` in `dir` that was written to (a prepared segment
/// never used is all zeros).
fn first_written(dir: &Path, gens: &[u64]) -> io::Result<Option<u64>> {
    for g in gens {
        let mut head = Vec::with_capacity(8);
        File::open(dir.join(file_name(*g)))?
            .take(8)
            .read_to_end(&mut head)?;
        if head.iter().any(|&b| b != 0) {
            return Ok(Some(*g));
        }
    }
    Ok(None)
}

/// Makes a file's creation or removal in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(wal_io)
}

fn wal_io(e: io::Error) -> StoreError {
    StoreError::Log(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(writes: &[Entry<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(writes.iter().copied(), &mut out);
        out
    }

    /// Flips a bit in the last byte of the records of `generation`'s file;
    /// returns the file's bytes before.
    fn damage_last_record(dir: &Path, generation: u64) -> Vec<u8> {
        let path = dir.join(file_name(generation));
        let full = fs::read(&path).unwrap();
        let mut bad = full.clone();
        bad[records(&full).1 - 1] ^= 1;
        fs::write(&path, &bad).unwrap();
        full
    }

    fn replay_all(dir: &Path) -> StoreResult<(Vec<Vec<Write1>>, Vec<u64>)> {
        let mut got = Vec::new();
        let (gens, _) = Wal::replay(dir, |r| {
            got.push(r);
            Ok(())
        })?;
        Ok((got, gens))
    }

    #[test]
    fn records_round_trip_through_a_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (_, gens) = replay_all(dir.path()).unwrap();
        let wal = Wal::start(dir.path(), &gens).unwrap();
        wal.append(&record(&[(3, b"k1", Some(b"v1")), (5, b"k2", None)]));
        wal.append(&record(&[(0, b"", Some(b""))]));
        wal.sync().unwrap();
        wal.append(&record(&[(7, b"k3", Some(&[9u8; 300]))]));
        wal.sync().unwrap();
        wal.settle();
        let (got, gens) = replay_all(dir.path()).unwrap();
        // 2 is the next segment, prepared and still all zeros.
        assert_eq!(gens, [1, 2]);
        assert_eq!(
            got,
            vec![
                vec![
                    (3, b"k1".to_vec(), Some(b"v1".to_vec())),
                    (5, b"k2".to_vec(), None)
                ],
                vec![(0, Vec::new(), Some(Vec::new()))],
                vec![(7, b"k3".to_vec(), Some(vec![9u8; 300]))],
            ]
        );
    }

    #[test]
    fn appended_but_unsynced_records_are_not_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), &[]).unwrap();
        wal.append(&record(&[(1, b"a", Some(b"1"))]));
        wal.sync().unwrap();
        wal.append(&record(&[(1, b"b", Some(b"2"))]));
        let (got, _) = replay_all(dir.path()).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn a_torn_tail_of_the_newest_file_is_dropped_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), &[]).unwrap();
        wal.append(&record(&[(1, b"a", Some(b"1"))]));
        // Ends in a non-zero byte, so a zero there is damage.
        wal.append(&record(&[(3, b"c", None), (2, b"bb", Some(b"22"))]));
        wal.sync().unwrap();
        drop(wal);
        let path = dir.path().join(file_name(1));
        let full = fs::read(&path).unwrap();
        let used = records(&full).1;
        let first = record(&[(1, b"a", Some(b"1"))]).len();
        for cut in 0..used {
            // Torn in place: the segment's zeros after the bytes that made
            // it; or torn at the end of a file that grew.
            let mut in_place = full[..cut].to_vec();
            in_place.resize(full.len(), 0);
            for bytes in [in_place, full[..cut].to_vec()] {
                fs::write(&path, &bytes).unwrap();
                let (got, _) = replay_all(dir.path()).unwrap();
                assert_eq!(got.len(), usize::from(cut >= first), "cut at {cut}");
            }
        }
        // A flipped bit is caught by the checksum.
        fs::write(&path, &full).unwrap();
        damage_last_record(dir.path(), 1);
        assert_eq!(replay_all(dir.path()).unwrap().0.len(), 1);
    }

    #[test]
    fn a_damaged_record_in_an_older_file_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), &[]).unwrap();
        wal.append(&record(&[(1, b"a", Some(b"1"))]));
        wal.sync().unwrap();
        wal.cut();
        wal.append(&record(&[(1, b"b", Some(b"2"))]));
        wal.sync().unwrap();
        drop(wal);
        damage_last_record(dir.path(), 1);
        assert!(matches!(
            replay_all(dir.path()),
            Err(StoreError::Corrupt { tree: "wal", .. })
        ));
    }

    /// The damaged file is followed only by segments never written to (a
    /// crash mid-write, with the next segment prepared): a torn tail, not
    /// corruption.
    #[test]
    fn a_torn_tail_before_prepared_segments_is_dropped_not_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), &[]).unwrap();
        wal.append(&record(&[(1, b"a", Some(b"1"))]));
        wal.append(&record(&[(1, b"b", Some(b"2"))]));
        wal.sync().unwrap();
        wal.settle();
        drop(wal);
        damage_last_record(dir.path(), 1);
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert_eq!((got.len(), gens), (1, vec![1, 2]));
    }

    #[test]
    fn segments_fill_in_place_then_the_log_moves_to_the_next_twice_as_large() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), &[]).unwrap();
        let one = record(&[(1, b"k", Some(&[7u8; 1000]))]);
        let n = 4 * FIRST_SEGMENT_BYTES as usize / one.len();
        for _ in 0..n {
            wal.append(&one);
            wal.sync().unwrap();
        }
        assert_eq!(
            wal.size(),
            (n * one.len()) as u64,
            "no cut: size counts all"
        );
        wal.settle();
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert_eq!(got.len(), n);
        // 64 KiB and 128 KiB full, 256 KiB in use, 512 KiB prepared.
        assert_eq!(gens, [1, 2, 3, 4]);
        let lens: Vec<u64> = gens
            .iter()
            .map(|g| fs::metadata(dir.path().join(file_name(*g))).unwrap().len())
            .collect();
        let k = FIRST_SEGMENT_BYTES;
        assert_eq!(lens, [k, 2 * k, 4 * k, 8 * k]);
        // A write larger than a segment goes alone into the next one.
        let big = record(&[(1, b"k", Some(&vec![1u8; 2 * SEGMENT_BYTES as usize]))]);
        wal.append(&big);
        wal.sync().unwrap();
        wal.settle();
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert_eq!((got.len(), gens.len()), (n + 1, 5));
        let fourth = fs::read(dir.path().join(file_name(4))).unwrap();
        assert_eq!(
            records(&fourth),
            (vec![decode_payload(&big[8..]).unwrap()], big.len())
        );
    }

    #[test]
    fn a_cut_splits_the_records_between_two_files_at_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), &[]).unwrap();
        wal.append(&record(&[(1, b"a", Some(b"1"))]));
        wal.sync().unwrap();
        // Appended before the cut but not yet synced: still the old file's.
        wal.append(&record(&[(1, b"b", Some(b"1"))]));
        let keep = wal.cut();
        assert_eq!(keep, 2);
        wal.append(&record(&[(1, b"a", Some(b"2"))]));
        wal.sync().unwrap();
        let second = fs::read(dir.path().join(file_name(2))).unwrap();
        assert_eq!(
            wal.size(),
            records(&second).1 as u64,
            "counted from the cut"
        );
        let old = fs::read(dir.path().join(file_name(1))).unwrap();
        assert_eq!(records(&old).0.len(), 2);
        // 3: the next segment, prepared.
        wal.settle();
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert_eq!(gens, [1, 2, 3]);
        assert_eq!(got[2][0].2.as_deref(), Some(&b"2"[..]));
        wal.remove_before(keep).unwrap();
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert_eq!(gens, [2, 3]);
        assert_eq!(got.len(), 1);
        // A cut with nothing pending still starts the next file.
        assert_eq!(wal.cut(), 3);
        wal.sync().unwrap();
        wal.settle();
        assert_eq!(replay_all(dir.path()).unwrap().1, [2, 3, 4]);
        // Starting after a replay deletes what was replayed.
        drop(wal);
        let wal = Wal::start(dir.path(), &[2, 3, 4]).unwrap();
        wal.settle();
        assert_eq!(replay_all(dir.path()).unwrap().1, [5, 6]);
        drop(wal);
    }

    #[test]
    fn after_a_failed_write_no_sync_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), &[]).unwrap();
        let path = dir.path().join(file_name(1));
        let good = std::mem::replace(
            &mut wal.file.lock().unwrap().file,
            File::open(&path).unwrap(), // read-only: the write fails
        );
        wal.append(&record(&[(1, b"a", Some(b"1"))]));
        assert!(matches!(wal.sync(), Err(StoreError::Log(_))));
        assert!(wal.failure().borrow().is_some(), "the failure is signalled");
        // Even with a writable file again, nothing more is acknowledged.
        wal.file.lock().unwrap().file = good;
        wal.append(&record(&[(1, b"b", Some(b"2"))]));
        assert!(matches!(wal.sync(), Err(StoreError::Log(_))));
        assert!(replay_all(dir.path()).unwrap().0.is_empty());
    }

    #[test]
    fn a_zeroed_tail_ends_the_replay_after_the_last_good_record() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::start(dir.path(), &[]).unwrap();
        wal.append(&record(&[(1, b"a", Some(b"1"))]));
        wal.sync().unwrap();
        drop(wal);
        let path = dir.path().join(file_name(1));
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0u8; 4096]);
        fs::write(&path, &bytes).unwrap();
        let (got, _) = replay_all(dir.path()).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn garbage_files_are_ignored_and_garbage_records_end_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        fs::write(dir.path().join(file_name(4)), [0xFFu8; 64]).unwrap();
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert!(got.is_empty());
        assert_eq!(gens, [4]);
    }
}
