//! Offline compaction: the store rewritten into a fresh sled, then swapped
//! in place of the old one.
//!
//! sled 0.34 never gives a page id back: every node a tree ever split into
//! keeps an entry in its page table, loaded at every start. After a large
//! backlog (100 000 messages queued at once, then sent and delivered) the
//! daemon's memory at start stays about 15 MiB above that of a store with
//! the same contents written at a steady pace, for as long as the store
//! lives (benches/RESULTS.md §15-16). Rewriting the contents into a new
//! sled gives those ids back. The daemon must be stopped: sled locks its
//! directory, so a compaction of a store in use fails at once.
//!
//! # Steps
//! 1. Open the store as the daemon does ([`SledStore::open_with`]): the
//!    write-ahead log is replayed into sled, and sled holds every commit.
//! 2. Copy every tree into a fresh sled at `<store>.compact` (a leftover
//!    of an earlier compaction is removed first), flush it, and compare
//!    each tree's entry count with the original's.
//! 3. Hard-link the event journal's files into it (same file system, no
//!    copy). The write-ahead log is not carried over: it holds no record
//!    after step 1.
//! 4. Swap the two directories in one `renameat2(RENAME_EXCHANGE)`, with
//!    the original still open (so still locked), then delete the old one,
//!    now at `<store>.compact`.
//!
//! A step that fails before the swap removes the partial copy (a full disk
//! gets its space back) and leaves the original as it was. A crash before
//! step 4 leaves the original in place; after it, the compacted store.
//! Either way a partial or old copy may stay at `<store>.compact`, and the
//! next compaction removes it. A store directory that is itself a mount
//! point is refused up front (the rename cannot cross file systems).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::error::{StoreError, StoreResult};
use super::sled::{SledStore, StoreOptions};
use super::wal::sync_dir;

/// Entries copied per sled batch.
const COPY_BATCH: usize = 10_000;

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactReport {
    /// sled trees copied.
    pub trees: usize,
    /// Entries copied, all trees together.
    pub entries: u64,
    /// Event journal files carried over.
    pub journal_files: usize,
    /// The store's size on disk before (all its files), in bytes.
    pub bytes_before: u64,
    /// The compacted store's size on disk, in bytes.
    pub bytes_after: u64,
}

/// Where the compacted copy is built: beside the store, same file system.
pub fn compact_path(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".compact");
    store.with_file_name(name)
}

/// Rewrites the store at `path` into a fresh sled and swaps it in (see the
/// module's steps). `opts` are the daemon's (its cache bound applies to both
/// stores while they are copied).
///
/// # Errors
/// The store cannot be opened (in use by a running daemon: sled's lock;
/// missing; damaged), a tree's copy does not hold what the original does,
/// or the file system refuses a step (no `RENAME_EXCHANGE` support among
/// them). Before the swap, the original is untouched.
pub fn compact(path: &Path, opts: StoreOptions) -> StoreResult<CompactReport> {
    if !path.join("conf").exists() {
        return Err(files(
            "open the store",
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} holds no store", path.display()),
            ),
        ));
    }
    same_file_system_as_parent(path)?;
    let store = SledStore::open_with(path, opts)?;
    let bytes_before = dir_bytes(path).map_err(|e| files("measure the store", e))?;
    let tmp = compact_path(path);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| files("remove an earlier compaction's copy", e))?;
    }
    let copied = copy_store(&store, path, &tmp, opts.cache_bytes);
    let (trees, entries, journal_files) = match copied {
        Ok(c) => c,
        Err(e) => {
            // A full disk, above all: give the space back, keep the store.
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    // No log segment may be created by path once the directories swap.
    store.settle_log();
    if let Err(e) = exchange(path, &tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(files("swap the compacted store in", e));
    }
    sync_dir(&parent_of(path))?;
    drop(store);
    fs::remove_dir_all(&tmp).map_err(|e| files("remove the old store", e))?;
    let bytes_after = dir_bytes(path).map_err(|e| files("measure the store", e))?;
    Ok(CompactReport {
        trees,
        entries,
        journal_files,
        bytes_before,
        bytes_after,
    })
}

/// Builds the compacted copy of `store` (at `path`) in `tmp`: its trees,
/// then links to its journal's files. Returns (trees, entries, journal files).
fn copy_store(
    store: &SledStore,
    path: &Path,
    tmp: &Path,
    cache_bytes: u64,
) -> StoreResult<(usize, u64, usize)> {
    let (trees, entries) = {
        let fresh = sled::Config::new()
            .path(tmp)
            .cache_capacity(cache_bytes)
            .open()?;
        let copied = copy_trees(store.sled(), &fresh)?;
        fresh.flush()?;
        copied
    };
    let journal_files = link_files(&path.join("events"), &tmp.join("events"))?;
    sync_dir(tmp)?;
    Ok((trees, entries, journal_files))
}

/// The copy is built beside the store and swapped with it by a rename,
/// which cannot cross file systems: a store that is itself a mount point
/// is refused before anything is written.
fn same_file_system_as_parent(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::MetadataExt;
    let parent = parent_of(path);
    let dev = |p: &Path| fs::metadata(p).map(|m| m.dev());
    let (store, beside) = (
        dev(path).map_err(|e| files("read the store directory", e))?,
        dev(&parent).map_err(|e| files("read the store's parent directory", e))?,
    );
    if store == beside {
        return Ok(());
    }
    Err(files(
        "build its copy beside the store",
        io::Error::new(
            io::ErrorKind::CrossesDevices,
            format!(
                "{} is a mount point; the copy is built in {} and swapped in by a rename, which cannot cross file systems: put the store in a directory inside the mount",
                path.display(),
                parent.display()
            ),
        ),
    ))
}

/// The directory that holds `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Copies every tree of `from` into the empty `to`; checks each copy's
/// entry count. Returns (trees, entries).
fn copy_trees(from: &sled::Db, to: &sled::Db) -> StoreResult<(usize, u64)> {
    let names = from.tree_names();
    let mut entries = 0;
    for name in &names {
        let (src, dst) = (from.open_tree(name)?, to.open_tree(name)?);
        let (mut batch, mut queued, mut copied) = (sled::Batch::default(), 0, 0u64);
        for kv in src.iter() {
            let (k, v) = kv?;
            batch.insert(k, v);
            queued += 1;
            if queued == COPY_BATCH {
                dst.apply_batch(std::mem::take(&mut batch))?;
                copied += queued as u64;
                queued = 0;
            }
        }
        dst.apply_batch(batch)?;
        copied += queued as u64;
        let held = dst.len() as u64;
        if held != copied {
            return Err(StoreError::Corrupt {
                tree: "compaction",
                detail: format!(
                    "tree {} copied {copied} entries, the copy holds {held}",
                    String::from_utf8_lossy(name)
                ),
            });
        }
        entries += copied;
    }
    Ok((names.len(), entries))
}

/// Hard-links every file of `from` (if it exists) into the new `to`.
fn link_files(from: &Path, to: &Path) -> StoreResult<usize> {
    fs::create_dir_all(to).map_err(|e| files("create the journal directory", e))?;
    let mut n = 0;
    let listing = match fs::read_dir(from) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(files("list the event journal", e)),
    };
    for entry in listing {
        let entry = entry.map_err(|e| files("list the event journal", e))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            fs::hard_link(entry.path(), to.join(entry.file_name()))
                .map_err(|e| files("link the event journal", e))?;
            n += 1;
        }
    }
    sync_dir(to)?;
    Ok(n)
}

/// Swaps two directories atomically (Linux `renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    };
    let (a, b) = (c(a)?, c(b)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call;
    // renameat2 reads them and keeps no reference.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

fn files(step: &'static str, source: io::Error) -> StoreError {
    StoreError::Compaction { step, source }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{ReceiptState, ReceiptUpdate};
    use crate::store::sled::tests::{accepted, reopen};
    use crate::store::{InboundMessage, InboundPolicy, Store};

    const T0: u64 = 1_795_611_600_000;

    type Dump = BTreeMap<Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>>;

    /// Every tree's entries and the journal's events, as a store just
    /// opened at `path` holds them (the log replayed).
    fn dump(path: &Path) -> (Dump, Vec<(u64, Vec<u8>)>) {
        let s = reopen(|| SledStore::open(path));
        let db = s.sled();
        let trees = db
            .tree_names()
            .into_iter()
            .map(|name| {
                let t = db.open_tree(&name).unwrap();
                let kvs = t
                    .iter()
                    .map(|kv| {
                        let (k, v) = kv.unwrap();
                        (k.to_vec(), v.to_vec())
                    })
                    .collect();
                (name.to_vec(), kvs)
            })
            .collect();
        (trees, s.journal_events())
    }

    /// A store with conversations in every state, some of its commits
    /// checkpointed into sled and the last ones only in the write-ahead log.
    async fn fill(path: &Path) {
        let s = SledStore::open(path).unwrap();
        let mut ids = Vec::new();
        for i in 0..60u64 {
            let customer = format!("+4479111234{:02}", i % 12);
            ids.push(accepted(&s, &customer, &format!("m{i}"), T0 + i).await);
        }
        for (i, a) in ids.iter().take(30).enumerate() {
            s.record_submit(a.message, 0, 1, Ok(format!("{i:x}")), T0 + 100)
                .await
                .unwrap();
        }
        for i in 0..15 {
            let update = ReceiptUpdate {
                state: ReceiptState::Delivered,
                error: None,
                is_final: true,
            };
            s.record_receipt("acme", &format!("{i:x}"), update, T0 + 200)
                .await
                .unwrap();
        }
        s.flush().await.unwrap();
        // After the checkpoint: only in the log until the next open.
        s.end_chat(ids[0].conversation, "alice", T0 + 300)
            .await
            .unwrap()
            .unwrap();
        let reply = InboundMessage {
            service: "support".into(),
            sender: "447400123456".into(),
            customer: "+447911123401".into(),
            text: "thanks".into(),
            encoding: "gsm7".into(),
            parts: 1,
            incomplete: false,
            opt: None,
        };
        s.record_inbound(reply, InboundPolicy::Ignore, T0 + 400)
            .await
            .unwrap();
        assert!(s.stats().overlay_bytes > 0, "some commits only in the log");
    }

    /// Compaction keeps every entry of every tree and every event, the
    /// write-ahead log's last commits included; it leaves no copy beside
    /// the store and the store opens clean and takes new commits.
    #[tokio::test]
    async fn compaction_keeps_every_tree_entry_and_event_and_leaves_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        fill(&path).await;
        let before = dump(&path);
        assert!(before.0.values().map(Vec::len).sum::<usize>() > 100);
        assert!(!before.1.is_empty());
        let report = reopen(|| compact(&path, StoreOptions::default()));
        assert_eq!(report.trees, before.0.len());
        assert_eq!(
            report.entries,
            before.0.values().map(|t| t.len() as u64).sum::<u64>()
        );
        assert!(report.journal_files >= 1);
        assert!(!compact_path(&path).exists());
        let after = dump(&path);
        assert_eq!(after, before);
        let s = reopen(|| SledStore::open(&path));
        s.verify().unwrap();
        let a = accepted(&s, "+447911123499", "after", T0 + 500).await;
        let highest = before.1.last().unwrap().0;
        let events = s.events_after(highest, 10).await.unwrap();
        assert!(events.iter().all(|e| e.seq > highest) && !events.is_empty());
        assert!(
            events
                .iter()
                .any(|e| e.conversation == Some(a.conversation))
        );
    }

    /// A leftover of an interrupted compaction (a partial copy, or the old
    /// store after the swap) is removed and replaced.
    #[tokio::test]
    async fn a_leftover_copy_of_an_interrupted_compaction_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        fill(&path).await;
        let before = dump(&path);
        let tmp = compact_path(&path);
        fs::create_dir_all(tmp.join("events")).unwrap();
        fs::write(tmp.join("conf"), b"half written").unwrap();
        reopen(|| compact(&path, StoreOptions::default()));
        assert!(!tmp.exists());
        assert_eq!(dump(&path), before);
    }

    /// A store directory that is a mount point (here `/proc`, another file
    /// system than `/`) is refused up front: the swap's rename could not
    /// cross into it after a whole copy was built.
    #[test]
    fn a_store_that_is_a_mount_point_is_refused_before_any_copy() {
        let err = same_file_system_as_parent(Path::new("/proc")).unwrap_err();
        assert!(err.to_string().contains("mount point"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let inside = dir.path().join("db");
        fs::create_dir(&inside).unwrap();
        same_file_system_as_parent(&inside).unwrap();
    }

    /// A store in use (its sled lock held, as by a running daemon) is not
    /// compacted, and nothing is left beside it; a missing store is an
    /// error, not a new empty one.
    #[tokio::test]
    async fn a_store_in_use_or_missing_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        fill(&path).await;
        let held = reopen(|| SledStore::open(&path));
        let err = compact(&path, StoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("lock"), "{err}");
        assert!(!compact_path(&path).exists());
        drop(held);
        let missing = dir.path().join("nothing");
        let err = compact(&missing, StoreOptions::default()).unwrap_err();
        assert!(err.to_string().contains("holds no store"), "{err}");
        assert!(!missing.exists());
    }
}
