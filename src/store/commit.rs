//! Group commit: many writers, few `flush_async`s for all of them.
//!
//! Each write transaction takes a ticket (a generation number) right after it
//! is applied, under the store's writer lock, so tickets follow apply order.
//! [`GroupCommit::wait`] returns once a flush that started after the ticket's
//! write has completed. A waiter whose ticket a running flush already covers
//! waits for that flush; otherwise it starts one, at most [`FLUSHERS`] at a
//! time (the rest queue for a slot, and the first of them to get one flushes
//! for everyone that queued). A burst of N writes thus costs about two
//! flushes, not N.
//!
//! Why two flushes at once and not one: a write that lands just after a
//! flush started used to wait for that flush to end before its own could
//! start: nearly two disk syncs (~7 ms here) instead of one. sled makes writes
//! stable in log order, so an overlapping flush is still exact: when it
//! returns, everything applied before it started is on disk.
//!
//! # Cancel safety
//! Dropping a `wait` future loses nothing: the write is applied and the next
//! flush covers it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::error::{StoreError, StoreResult};
use crate::model::Seq;

/// Flushes that may run at once.
pub(crate) const FLUSHERS: usize = 2;

/// Shared flush state of one store.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    db: sled::Db,
    /// (generation of the last applied write, last event seq applied).
    written: Mutex<(u64, Seq)>,
    /// Highest generation a started flush covers.
    started: AtomicU64,
    /// Highest generation known durable; waiters watch it.
    flushed: watch::Sender<u64>,
    /// The first flush failure: fail-stop, every later wait returns it.
    failed: Mutex<Option<sled::Error>>,
    /// Flush slots ([`FLUSHERS`]).
    slots: Semaphore,
    /// Flushes done (for tests and metrics).
    flushes: AtomicU64,
    /// Last durable event seq, for live followers.
    seq_tx: watch::Sender<Seq>,
    /// Least time between flush starts (`store.flush_every_ms`), and when
    /// the last one started.
    interval: Mutex<(Option<Duration>, Option<std::time::Instant>)>,
}

impl GroupCommit {
    pub(crate) fn new(db: sled::Db, durable_seq: Seq) -> Self {
        let (seq_tx, _) = watch::channel(durable_seq);
        let (flushed, _) = watch::channel(0);
        Self {
            db,
            written: Mutex::new((0, durable_seq)),
            started: AtomicU64::new(0),
            flushed,
            failed: Mutex::new(None),
            slots: Semaphore::new(FLUSHERS),
            flushes: AtomicU64::new(0),
            seq_tx,
            interval: Mutex::new((None, None)),
        }
    }

    /// Spaces flush starts by at least `every` (more writes share each one,
    /// at the cost of that much latency).
    pub(crate) fn set_interval(&self, every: Option<Duration>) {
        self.interval.lock().unwrap_or_else(|p| p.into_inner()).0 = every;
    }

    /// Records an applied write whose events end at `last_seq`; call under
    /// the writer lock. Returns the ticket to wait on.
    pub(crate) fn note_write(&self, last_seq: Seq) -> u64 {
        let mut w = self.written.lock().unwrap_or_else(|p| p.into_inner());
        w.0 += 1;
        w.1 = w.1.max(last_seq);
        w.0
    }

    fn failure(&self) -> StoreResult<()> {
        match &*self.failed.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(StoreError::Engine(e.clone())),
            None => Ok(()),
        }
    }

    /// Waits until the write behind `ticket` is on disk.
    ///
    /// # Errors
    /// The engine's flush failed (fail-stop).
    pub(crate) async fn wait(&self, ticket: u64) -> StoreResult<()> {
        let mut durable = self.flushed.subscribe();
        loop {
            self.failure()?;
            if *durable.borrow_and_update() >= ticket {
                return Ok(());
            }
            if self.started.load(Ordering::Acquire) >= ticket {
                // A running flush covers it.
                let _ = durable.changed().await;
                continue;
            }
            let permit = tokio::select! {
                p = self.slots.acquire() => p,
                _ = durable.changed() => continue,
            };
            let Ok(_permit) = permit else {
                return Err(StoreError::Corrupt {
                    tree: "group commit",
                    detail: "flush slots closed".into(),
                });
            };
            if self.started.load(Ordering::Acquire) >= ticket || *durable.borrow() >= ticket {
                continue;
            }
            let (every, last) = *self.interval.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some(every), Some(last)) = (every, last) {
                tokio::time::sleep_until(tokio::time::Instant::from_std(last + every)).await;
                if self.started.load(Ordering::Acquire) >= ticket {
                    continue;
                }
            }
            self.interval.lock().unwrap_or_else(|p| p.into_inner()).1 = Some(crate::clock::now());
            let (generation, seq) = *self.written.lock().unwrap_or_else(|p| p.into_inner());
            self.started.fetch_max(generation, Ordering::AcqRel);
            if let Err(e) = self.db.flush_async().await {
                *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                // Wake the waiters this flush covered: they see the failure.
                self.flushed.send_modify(|_| {});
                return Err(StoreError::Engine(e));
            }
            self.flushes.fetch_add(1, Ordering::Relaxed);
            self.flushed.send_modify(|v| *v = (*v).max(generation));
            self.seq_tx.send_if_modified(|v| {
                if seq > *v {
                    *v = seq;
                    true
                } else {
                    false
                }
            });
            return Ok(());
        }
    }

    /// Number of flushes so far.
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Last durable event seq.
    pub(crate) fn durable_seq(&self) -> Seq {
        *self.seq_tx.borrow()
    }

    /// A receiver of the last durable event seq.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Seq> {
        self.seq_tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_wait_returns_only_once_its_write_is_covered_by_a_finished_flush() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let gc = Arc::new(GroupCommit::new(db, 0));
        let writer = Arc::new(Mutex::new(()));
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let (gc, tree, writer) = (gc.clone(), tree.clone(), writer.clone());
            tasks.push(tokio::spawn(async move {
                let ticket = {
                    let _w = writer.lock().unwrap();
                    tree.insert(i.to_be_bytes(), &[1u8; 64][..]).unwrap();
                    gc.note_write(i + 1)
                };
                gc.wait(ticket).await.unwrap();
                assert!(
                    *gc.flushed.borrow() >= ticket,
                    "ticket {ticket} not flushed"
                );
                assert!(gc.durable_seq() > i);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let flushes = gc.flushes();
        assert!(
            (1..100).contains(&flushes),
            "{flushes} flushes for 200 writes"
        );
        assert_eq!(gc.durable_seq(), 200);
    }

    #[tokio::test]
    async fn a_ticket_already_flushed_returns_without_flushing() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let gc = GroupCommit::new(db, 0);
        let t = gc.note_write(1);
        gc.wait(t).await.unwrap();
        let n = gc.flushes();
        gc.wait(t).await.unwrap();
        assert_eq!(gc.flushes(), n);
    }
}
