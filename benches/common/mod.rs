//! Helpers shared by the bench programs (`mod common;` in each).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smppgw::clock;
use smppgw::store::{SledStore, Store, SubmitOutcome};

/// Runs `total` calls of `op(i)` on `tasks` concurrent tasks; returns the elapsed time.
pub async fn concurrently<F, Fut>(tasks: usize, total: u64, op: F) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let start = clock::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (op, next) = (op.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                op(i).await;
            }
        }));
    }
    for h in handles {
        h.await.expect("bench task");
    }
    start.elapsed()
}

/// Records a submit OK (carrier id: the message id in decimal) for every
/// message of `ids` at `now_ms`, 64 at a time.
pub async fn submit_all(store: &Arc<SledStore>, ids: &[u64], now_ms: u64) {
    let ids: Arc<Vec<u64>> = Arc::new(ids.to_vec());
    let (s, list) = (store.clone(), ids.clone());
    concurrently(64, ids.len() as u64, move |i| {
        let (s, list) = (s.clone(), list.clone());
        async move {
            let m = list[i as usize];
            let o = s
                .record_submit(m, 0, 1, Ok(m.to_string()), now_ms)
                .await
                .expect("store");
            assert!(matches!(o, SubmitOutcome::Done { .. }), "{o:?}");
        }
    })
    .await;
}
