//! Helpers shared by the bench programs (`mod common;` in each).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smppgw::clock;

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
