//! The sled store alone, flush included (every call returns once durable):
//! accepted sends/s with 1, 16 and 64 concurrent senders (group commit
//! shares one flush among the callers queued behind it), receipts
//! correlated/s (`record_receipt` on messages already submitted, and
//! `record_submit` + `record_receipt` per message), and customer replies
//! matched to an open conversation/s (`record_inbound`).
//!
//! The store lives in a fresh directory under the system temp dir (a real
//! disk here, not tmpfs), so flushes hit the disk. Each measured batch uses
//! its own messages; untimed setup (accepting, claiming, submitting) is done
//! inside `iter_custom` outside the clock.
//!
//! Run: `cargo bench --bench store` (under two minutes). One group only:
//! `cargo bench --bench store -- accept_send`.

mod common;
use common::{concurrently, submit_all};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use smppgw::clock;
use smppgw::model::{ReceiptState, ReceiptUpdate};
use smppgw::store::{
    InboundMessage, InboundOutcome, InboundPolicy, NewOutbound, ReceiptOutcome, SledStore, Store,
};

// The allocator of the daemon (src/alloc.rs), so the figures are its own.
smppgw::jemalloc!();

const SENDER: &str = "447624000111";
const CARRIER: &str = "acme";
const T0: u64 = 1_795_611_600_000;

/// Customer numbers handed out once per process (+44 7911 xxxxxx style).
static NEXT_CUSTOMER: AtomicU64 = AtomicU64::new(0);

fn customer(n: u64) -> String {
    format!("+4479{:08}", n % 100_000_000)
}

fn fresh_customer() -> String {
    customer(NEXT_CUSTOMER.fetch_add(1, Ordering::Relaxed))
}

fn send(customer: &str, agent: &str) -> NewOutbound {
    NewOutbound {
        service: "support".into(),
        sender: SENDER.into(),
        customer: customer.into(),
        owner: agent.into(),
        interaction: None,
        text: "Your engineer arrives between 10:00 and 12:00 tomorrow.".into(),
        encoding: "gsm7".into(),
        parts: 1,
        carrier: CARRIER.into(),
        client_ref: None,
        conversation: None,
        outbox_limit: None,
    }
}

fn delivered() -> ReceiptUpdate {
    ReceiptUpdate {
        state: ReceiptState::Delivered,
        error: None,
        is_final: true,
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    store: Arc<SledStore>,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path().join("db")).unwrap());
    Fixture {
        rt,
        store,
        _dir: dir,
    }
}

/// Accepted sends: each task is an agent with its own 50 customers, so most
/// sends continue an open conversation and some open one.
fn accept_send(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("store/accept_send");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(4));
    for senders in [1usize, 16, 64] {
        g.bench_function(format!("senders_{senders}"), |b| {
            b.iter_custom(|iters| {
                let store = f.store.clone();
                let base = NEXT_CUSTOMER.fetch_add(senders as u64 * 50, Ordering::Relaxed);
                f.rt.block_on(concurrently(senders, iters, move |i| {
                    let store = store.clone();
                    async move {
                        let agent = i % senders as u64;
                        let cust = customer(base + agent * 50 + (i / senders as u64) % 50);
                        let a = store
                            .accept_send(send(&cust, &format!("agent-{agent}")), T0 + i)
                            .await
                            .unwrap()
                            .unwrap();
                        assert!(!a.duplicate);
                    }
                }))
            });
        });
    }
    g.finish();
    println!(
        "store/accept_send: {} flushes in all",
        f.store.flush_count()
    );
}

/// Accepts, claims and (optionally) submits `n` fresh messages; returns
/// their ids (carrier id = decimal of the message id).
async fn prepare(store: &Arc<SledStore>, n: u64, submit: bool) -> Vec<u64> {
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n as usize)));
    let (s, out) = (store.clone(), ids.clone());
    concurrently(64, n, move |i| {
        let (s, out) = (s.clone(), out.clone());
        async move {
            let a = s
                .accept_send(send(&fresh_customer(), "agent-r"), T0 + i)
                .await
                .unwrap()
                .unwrap();
            out.lock().unwrap().push(a.message);
        }
    })
    .await;
    let mut claimed = 0;
    while claimed < n as usize {
        let items = store
            .claim_outbox(CARRIER, 1000, 600_000, T0)
            .await
            .unwrap();
        assert!(!items.is_empty(), "outbox ran dry");
        claimed += items.len();
    }
    let ids = std::mem::take(&mut *ids.lock().unwrap());
    if submit {
        submit_all(store, &ids, T0 + 1).await;
    }
    ids
}

async fn receipts(store: &Arc<SledStore>, ids: Vec<u64>, tasks: usize) -> Duration {
    let ids = Arc::new(ids);
    let s = store.clone();
    let n = ids.len() as u64;
    concurrently(tasks, n, move |i| {
        let (s, ids) = (s.clone(), ids.clone());
        async move {
            let m = ids[i as usize].to_string();
            let o = s
                .record_receipt(CARRIER, &m, delivered(), T0 + 2)
                .await
                .unwrap();
            assert!(matches!(o, ReceiptOutcome::Applied { .. }), "{o:?}");
        }
    })
    .await
}

/// Receipts correlated: the messages are accepted, claimed and submitted
/// outside the clock; the clock covers `record_receipt` (carrier id index
/// lookup, message update, events, flush). Also `record_submit` +
/// `record_receipt` per message on claimed messages.
fn receipt(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("store/receipt");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    for tasks in [1usize, 64] {
        g.bench_function(format!("correlate_tasks_{tasks}"), |b| {
            b.iter_custom(|iters| {
                f.rt.block_on(async {
                    let ids = prepare(&f.store, iters, true).await;
                    receipts(&f.store, ids, tasks).await
                })
            });
        });
    }
    g.bench_function("submit_then_receipt_tasks_64", |b| {
        b.iter_custom(|iters| {
            f.rt.block_on(async {
                let ids = prepare(&f.store, iters, false).await;
                let start = clock::now();
                submit_all(&f.store, &ids, T0 + 1).await;
                let _ = receipts(&f.store, ids, 64).await;
                start.elapsed()
            })
        });
    });
    g.finish();
}

/// Customer replies matched to an open conversation (MO → `message_received`).
fn inbound(c: &mut Criterion) {
    let f = fixture();
    const OPEN: u64 = 1_000;
    let customers: Vec<String> = f.rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..OPEN {
            let cust = fresh_customer();
            f.store
                .accept_send(send(&cust, "agent-i"), T0)
                .await
                .unwrap()
                .unwrap();
            v.push(cust);
        }
        v
    });
    let customers = Arc::new(customers);
    let mut g = c.benchmark_group("store/inbound");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    for tasks in [1usize, 64] {
        g.bench_function(format!("matched_tasks_{tasks}"), |b| {
            b.iter_custom(|iters| {
                let (s, cs) = (f.store.clone(), customers.clone());
                f.rt.block_on(concurrently(tasks, iters, move |i| {
                    let (s, cs) = (s.clone(), cs.clone());
                    async move {
                        let msg = InboundMessage {
                            service: "support".into(),
                            sender: SENDER.into(),
                            customer: cs[(i % OPEN) as usize].clone(),
                            text: "Thanks, 11:00 works for me".into(),
                            encoding: "gsm7".into(),
                            parts: 1,
                            incomplete: false,
                            opt: None,
                        };
                        let o = s
                            .record_inbound(msg, InboundPolicy::Ignore, T0 + 5)
                            .await
                            .unwrap();
                        assert!(matches!(o, InboundOutcome::Matched { .. }), "{o:?}");
                    }
                }))
            });
        });
    }
    g.finish();
}

criterion_group!(benches, accept_send, receipt, inbound);
criterion_main!(benches);
