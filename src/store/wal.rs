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
//! `<store>/wal/<generation:016x>.log`, each a run of records:
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::error::{StoreError, StoreResult};

/// Log size past which the next commit starts a checkpoint.
pub(crate) const CHECKPOINT_BYTES: u64 = 64 << 20;

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
    /// The file being appended to; held while writing and syncing it.
    file: Mutex<Current>,
    /// Bytes in the current file (for the checkpoint trigger).
    size: AtomicU64,
    /// Generation of the current file (mirrors `file`, for [`Wal::cut`]).
    generation: AtomicU64,
    /// A write or sync failed: the file may end in a partial record, and
    /// anything appended after it would be lost to the replay, so no later
    /// sync succeeds (the store is fail-stop; a restart replays up to it).
    failed: AtomicBool,
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
}

fn file_name(generation: u64) -> String {
    format!("{generation:016x}.log")
}

/// The generations present in `dir`, ascending.
fn generations(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
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
            if good < bytes.len() {
                if i + 1 < gens.len() {
                    return Err(corrupt(format!(
                        "damaged record at byte {good} of {} (not the newest file)",
                        file_name(*g)
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
    /// holds durably) and deletes those.
    ///
    /// # Errors
    /// I/O on the directory.
    pub(crate) fn start(dir: &Path, replayed: &[u64]) -> StoreResult<Wal> {
        let generation = replayed.last().map_or(1, |g| g + 1);
        let file = create(dir, generation)?;
        for g in replayed {
            fs::remove_file(dir.join(file_name(*g))).map_err(wal_io)?;
        }
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            pending: Mutex::new(Pending::default()),
            file: Mutex::new(Current { file, generation }),
            size: AtomicU64::new(0),
            generation: AtomicU64::new(generation),
            failed: AtomicBool::new(false),
        })
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
    /// generation of that new file, the first to keep once the records
    /// before the cut are in sled durably. Call under the store's writer
    /// lock, with the overlay frozen at the same point.
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
        if self.failed.load(Ordering::Acquire) {
            return Err(wal_io(io::Error::other(
                "an earlier write-ahead log write failed; restart to recover",
            )));
        }
        let Pending { buf, cut } =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let written = self.write_out(&mut cur, &buf, cut);
        if written.is_err() {
            self.failed.store(true, Ordering::Release);
        }
        written
    }

    fn write_out(&self, cur: &mut Current, buf: &[u8], cut: Option<usize>) -> StoreResult<()> {
        let mut rest = buf;
        if let Some(at) = cut {
            let (before, after) = buf.split_at(at.min(buf.len()));
            cur.file
                .write_all(before)
                .and_then(|()| cur.file.sync_data())
                .map_err(wal_io)?;
            let generation = cur.generation + 1;
            cur.file = create(&self.dir, generation)?;
            cur.generation = generation;
            self.generation.store(generation, Ordering::Release);
            self.size.store(0, Ordering::Relaxed);
            rest = after;
        }
        if rest.is_empty() {
            return Ok(());
        }
        cur.file
            .write_all(rest)
            .and_then(|()| cur.file.sync_data())
            .map_err(wal_io)?;
        self.size.fetch_add(rest.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes in the current file.
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

fn create(dir: &Path, generation: u64) -> StoreResult<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(file_name(generation)))
        .map_err(wal_io)?;
    sync_dir(dir)?;
    Ok(file)
}

/// Makes a file's creation or removal in `dir` durable.
fn sync_dir(dir: &Path) -> StoreResult<()> {
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
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert_eq!(gens, [1]);
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
        wal.append(&record(&[(2, b"bb", Some(b"22")), (3, b"c", None)]));
        wal.sync().unwrap();
        drop(wal);
        let path = dir.path().join(file_name(1));
        let full = fs::read(&path).unwrap();
        let first = record(&[(1, b"a", Some(b"1"))]).len();
        for cut in 0..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let (got, _) = replay_all(dir.path()).unwrap();
            assert_eq!(got.len(), usize::from(cut >= first), "cut at {cut}");
        }
        // A flipped bit is caught by the checksum.
        let mut bad = full.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        fs::write(&path, &bad).unwrap();
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
        let old = dir.path().join(file_name(1));
        let mut bytes = fs::read(&old).unwrap();
        bytes.truncate(bytes.len() - 1);
        fs::write(&old, &bytes).unwrap();
        assert!(matches!(
            replay_all(dir.path()),
            Err(StoreError::Corrupt { tree: "wal", .. })
        ));
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
        assert_eq!(
            wal.size(),
            fs::metadata(dir.path().join(file_name(2))).unwrap().len()
        );
        let old = fs::read(dir.path().join(file_name(1))).unwrap();
        assert_eq!(records(&old).0.len(), 2);
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert_eq!(gens, [1, 2]);
        assert_eq!(got[2][0].2.as_deref(), Some(&b"2"[..]));
        wal.remove_before(keep).unwrap();
        let (got, gens) = replay_all(dir.path()).unwrap();
        assert_eq!(gens, [2]);
        assert_eq!(got.len(), 1);
        // A cut with nothing pending still starts the next file.
        assert_eq!(wal.cut(), 3);
        wal.sync().unwrap();
        assert_eq!(replay_all(dir.path()).unwrap().1, [2, 3]);
        // Starting after a replay deletes what was replayed.
        drop(wal);
        let wal = Wal::start(dir.path(), &[2, 3]).unwrap();
        assert_eq!(replay_all(dir.path()).unwrap().1, [4]);
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
