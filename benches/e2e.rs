//! End-to-end and scale figures, with its own `main` (`harness = false`):
//! `cargo bench --bench e2e -- <mode>...`.
//!
//! Modes:
//! - `--store-scale [--messages N] [--conversations N]`: the store alone.
//!   Peak RSS with N open conversations (default 100 000) and time to start
//!   (open + recover) with N stored messages (default 200 000; 1 000 000
//!   takes ~10 min on the 2 loaded cores). Both measured in a fresh child
//!   process (this executable re-run with `--child-open`), so the figures
//!   are those of a daemon starting on that store, not of the loader.
//!
//! Every figure is printed as one `RESULT {json}` line with the machine
//! load (`/proc/loadavg`) at the time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smppgw::clock;
use smppgw::model::{ReceiptState, ReceiptUpdate};
use smppgw::store::{NewOutbound, SledStore, Store, SubmitOutcome};

const SENDER: &str = "447624000111";
const CARRIER: &str = "acme";

// === helpers ===

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn arg_u64(args: &[String], name: &str, default: u64) -> u64 {
    arg_value(args, name)
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// (VmHWM, VmRSS) of this process in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn result(name: &str, mut v: serde_json::Value) {
    v["bench"] = name.into();
    v["load"] = loadavg().into();
    v["at"] = clock::rfc3339_ms(clock::wall_ms()).into();
    println!("RESULT {v}");
}

fn customer(n: u64) -> String {
    format!("+4479{:08}", n % 100_000_000)
}

fn send(customer: &str, agent: &str, text: String, carrier: &str) -> NewOutbound {
    NewOutbound {
        service: "support".into(),
        sender: SENDER.into(),
        customer: customer.into(),
        owner: agent.into(),
        interaction: None,
        text,
        encoding: "gsm7".into(),
        parts: 1,
        carrier: carrier.into(),
        client_ref: None,
        conversation: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `total` calls of `op(i)` on `tasks` concurrent tasks; returns the elapsed time.
async fn concurrently<F, Fut>(tasks: usize, total: u64, op: F) -> Duration
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
        h.await.expect("task");
    }
    start.elapsed()
}

// === --store-scale ===

/// Accepts `n` messages, `per_conv` per conversation (distinct customers
/// otherwise), 64 concurrent senders; returns the message ids in order.
async fn load_messages(
    store: &Arc<SledStore>,
    n: u64,
    per_conv: u64,
    first_customer: u64,
) -> Vec<u64> {
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n as usize)));
    let (s, out) = (store.clone(), ids.clone());
    let t = concurrently(64, n, move |i| {
        let (s, out) = (s.clone(), out.clone());
        async move {
            let conv = i / per_conv;
            let text = format!("Your order {i} ships tomorrow; reply here with any question.");
            let a = s
                .accept_send(
                    send(
                        &customer(first_customer + conv),
                        &format!("agent-{}", conv % 500),
                        text,
                        CARRIER,
                    ),
                    clock::wall_ms(),
                )
                .await
                .expect("store")
                .expect("accepted");
            out.lock().expect("lock").push(a.message);
        }
    })
    .await;
    eprintln!(
        "  accepted {n} in {:.1} s ({:.0}/s)",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
    let mut v = std::mem::take(&mut *ids.lock().expect("lock"));
    v.sort_unstable();
    v
}

async fn store_scale(args: &[String]) {
    let messages = arg_u64(args, "--messages", 200_000);
    let conversations = arg_u64(args, "--conversations", 100_000);
    let keep = args.iter().any(|a| a == "--keep");
    let dir = tempfile::tempdir().expect("tempdir");

    // 1. Peak RSS with `conversations` open conversations.
    let conv_path = dir.path().join("conversations");
    {
        eprintln!("store-scale: {conversations} open conversations");
        let store = Arc::new(SledStore::open(&conv_path).expect("open"));
        load_messages(&store, conversations, 1, 0).await;
        let (hwm, rss) = rss_kib();
        result(
            "store_scale/load_open_conversations",
            serde_json::json!({"conversations": conversations, "loader_vm_hwm_kib": hwm, "loader_vm_rss_kib": rss}),
        );
        store.flush().await.expect("flush");
    }
    let child = child_open(&conv_path, true);
    result(
        "store_scale/rss_open_conversations",
        serde_json::json!({"conversations": conversations, "child": child}),
    );

    // 2. Time to start with `messages` stored messages: 10 per
    // conversation, all submitted, half of them delivered, the last 1000
    // claimed (in flight at the "crash").
    let msg_path = dir.path().join("messages");
    {
        eprintln!("store-scale: {messages} messages");
        let store = Arc::new(SledStore::open(&msg_path).expect("open"));
        let ids = load_messages(&store, messages, 10, 10_000_000).await;
        let t = clock::now();
        let mut claimed = Vec::new();
        loop {
            let items = store
                .claim_outbox(CARRIER, 1000, 3_600_000, clock::wall_ms())
                .await
                .expect("claim");
            if items.is_empty() {
                break;
            }
            claimed.extend(items.into_iter().map(|i| i.message));
        }
        let in_flight = 1000.min(claimed.len());
        let submit: Arc<Vec<u64>> = Arc::new(claimed[..claimed.len() - in_flight].to_vec());
        let (s, list) = (store.clone(), submit.clone());
        concurrently(64, submit.len() as u64, move |i| {
            let (s, list) = (s.clone(), list.clone());
            async move {
                let m = list[i as usize];
                let o = s
                    .record_submit(m, 0, 1, Ok(m.to_string()), clock::wall_ms())
                    .await
                    .expect("store");
                assert!(matches!(o, SubmitOutcome::Done { .. }), "{o:?}");
            }
        })
        .await;
        let (s, list) = (store.clone(), submit.clone());
        concurrently(64, submit.len() as u64 / 2, move |i| {
            let (s, list) = (s.clone(), list.clone());
            async move {
                let m = list[i as usize * 2].to_string();
                let up = ReceiptUpdate {
                    state: ReceiptState::Delivered,
                    error: None,
                    is_final: true,
                };
                s.record_receipt(CARRIER, &m, up, clock::wall_ms())
                    .await
                    .expect("store");
            }
        })
        .await;
        eprintln!(
            "  claimed, submitted, half delivered in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        store.flush().await.expect("flush");
        drop(ids);
    }
    let size = dir_size(&msg_path);
    for round in ["first", "second"] {
        let child = child_open(&msg_path, false);
        result(
            "store_scale/start_with_messages",
            serde_json::json!({"messages": messages, "round": round, "store_bytes": size, "child": child}),
        );
    }
    if keep {
        let p = dir.keep();
        eprintln!("store kept at {}", p.display());
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// Runs this executable with `--child-open <path>` and returns its JSON report.
fn child_open(path: &Path, list: bool) -> serde_json::Value {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--child-open").arg(path);
    if list {
        cmd.arg("--list");
    }
    let out = cmd.output().expect("child");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CHILD "))
        .unwrap_or("null");
    serde_json::from_str(line).unwrap_or(serde_json::Value::Null)
}

/// The child: open + recover (timed), optionally list the open
/// conversations and accept 1000 more sends, then report peak RSS.
async fn child(path: PathBuf, list: bool) {
    let (hwm0, _) = rss_kib();
    let t = clock::now();
    let store = SledStore::open(&path).expect("open");
    let open = t.elapsed();
    let t2 = clock::now();
    let rec = store.recover(clock::wall_ms()).await.expect("recover");
    let recover = t2.elapsed();
    let (hwm_started, _) = rss_kib();
    let mut v = serde_json::json!({
        "open_ms": open.as_secs_f64() * 1e3,
        "recover_ms": recover.as_secs_f64() * 1e3,
        "start_ms": (open + recover).as_secs_f64() * 1e3,
        "released_leases": rec.released_leases,
        "outbox": rec.outbox,
        "awaiting_receipts": rec.awaiting_receipts,
        "vm_hwm_kib_before_open": hwm0,
        "vm_hwm_kib_after_start": hwm_started,
    });
    if list {
        let store = Arc::new(store);
        let t = clock::now();
        let open_convs = store.conversations(None, false).await.expect("list").len();
        v["list_ms"] = (t.elapsed().as_secs_f64() * 1e3).into();
        v["open_conversations"] = open_convs.into();
        // Some traffic on top: replies to existing conversations.
        let s = store.clone();
        concurrently(16, 1000, move |i| {
            let s = s.clone();
            async move {
                let text = format!("Follow-up {i}");
                s.accept_send(
                    send(
                        &customer(i * 97),
                        &format!("agent-{}", (i * 97) % 500),
                        text,
                        CARRIER,
                    ),
                    clock::wall_ms(),
                )
                .await
                .expect("store")
                .expect("accepted");
            }
        })
        .await;
        let (hwm, rss) = rss_kib();
        v["vm_hwm_kib"] = hwm.into();
        v["vm_rss_kib"] = rss.into();
    } else {
        let (hwm, rss) = rss_kib();
        v["vm_hwm_kib"] = hwm.into();
        v["vm_rss_kib"] = rss.into();
    }
    println!("CHILD {v}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = runtime();
    if let Some(p) = arg_value(&args, "--child-open") {
        let list = args.iter().any(|a| a == "--list");
        rt.block_on(child(PathBuf::from(p), list));
        return;
    }
    let any_mode = args
        .iter()
        .any(|a| a.starts_with("--store-scale") || a.starts_with("--e2e"));
    eprintln!(
        "machine: {} cores, load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    if args.iter().any(|a| a == "--store-scale") {
        rt.block_on(store_scale(&args));
    }
    if !any_mode {
        eprintln!(
            "usage: cargo bench --bench e2e -- --store-scale [--messages N] [--conversations N]"
        );
    }
}
