//! End-to-end and scale figures, with its own `main` (`harness = false`):
//! `cargo bench --bench e2e -- <mode>...`.
//!
//! Modes:
//! - `--store-scale [--messages N] [--conversations N] [--ended N]`: the
//!   store alone. Peak RSS with N open conversations (default 100 000), time
//!   to start (open + recover) with N stored messages (default 200 000;
//!   1 000 000 takes ~10 min on the 2 loaded cores), and what an agent's
//!   console costs to list its open conversations (2 of 1 000, among N
//!   ended ones that retention keeps; default 100 000; `--ended 0` skips
//!   it). All measured in a fresh child process (this executable re-run
//!   with `--child-open`), so the figures are those of a daemon starting on
//!   that store, not of the loader.
//!
//! - `--e2e [--secs S] [--senders N] [--preload N]`: the gateway's parts and the
//!   simulator in ONE process on loopback, durable sled store on: the
//!   store + [`Links`] (4 transceiver binds, window 50) against
//!   `smppgw::sim`; sends go straight to `Store::accept_send` followed by
//!   `Links::wake` (what the daemon's `send` op does, minus the socket).
//!   Figures: sustained accepted→submit_sm_resp msgs/s with N concurrent
//!   senders, receipts correlated/s at the same time, the same with 5 % of
//!   submits answered ESME_RTHROTTLED, then p50/p99 from `send` to the
//!   submit_sm on the wire at a steady 1 000 msg/s, measured by a TCP relay
//!   between the binds and the simulator that timestamps each submit_sm as
//!   its bytes arrive, and peak RSS (VmHWM, simulator included).
//!
//! - `--daemon-rss [--conversations N]`: the real daemon (`smppgw run`, its
//!   own process) on a store holding N open conversations (default
//!   100 000), each with its message submitted and delivered, bound to the
//!   simulator: the daemon's VmHWM after its start, after an agent client
//!   pages through all N over the socket (1 000 per page), and after 1 000
//!   more sends to those conversations were answered by the simulator.
//!   `E2E_SMAPS=1` also prints, at each of those points, the daemon's
//!   resident KiB by kind of mapping (program files, heap, anonymous maps:
//!   jemalloc's extents, or glibc's per-thread arenas in builds before
//!   `src/alloc.rs`); `E2E_KEEP=1` keeps the store and config
//!   directory (its path is printed) for a profiler run on the same data.
//!   `SMPPGW_BENCH_CACHE_MB` sets `store.cache_mb`. `--steady C` loads
//!   the conversations C at a time, each chunk submitted and delivered
//!   before the next, instead of queueing all N first: a store whose
//!   history was steady traffic rather than one backlog. `--compact` runs
//!   `smppgw compact-store` on the loaded store before the daemon starts
//!   (its time and the store's size before and after are in the result).
//!
//! Every figure is printed as one `RESULT {json}` line with the machine
//! load (`/proc/loadavg`) at the time.

mod common;
use common::{concurrently, submit_all};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use smppgw::clock;
use smppgw::link::{LinkOptions, Links};
use smppgw::model::{ReceiptState, ReceiptUpdate};
use smppgw::sim::{SimConfig, SimHandle};
use smppgw::store::{NewOutbound, SledStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

// The allocator of the daemon (src/alloc.rs), so the figures are its own.
smppgw::jemalloc!();

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
    rss_kib_of("self")
}

/// (VmHWM, VmRSS) in KiB of the process `/proc/<pid>` names.
fn rss_kib_of(pid: &str) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
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

/// Resident KiB of `pid` by kind of mapping (from /proc/<pid>/smaps):
/// the program's files, the heap, anonymous maps, the rest. Printed with
/// `E2E_SMAPS=1` to see where a high-water mark comes from.
fn rss_by_kind(pid: &str) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut file, mut heap, mut anon, mut other) = (0u64, 0u64, 0u64, 0u64);
    let mut bucket = 3;
    let mut big = Vec::new();
    let mut name = String::new();
    for line in smaps.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            name = line.split_whitespace().nth(5).unwrap_or("").to_string();
            bucket = if name.starts_with('/') {
                0
            } else if name == "[heap]" {
                1
            } else if name.is_empty() {
                2
            } else {
                3
            };
        } else if first == "Rss:" {
            let kib: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            if kib >= 1024 {
                big.push(format!(
                    "{}:{kib}",
                    if name.is_empty() { "anon" } else { &name }
                ));
            }
            match bucket {
                0 => file += kib,
                1 => heap += kib,
                2 => anon += kib,
                _ => other += kib,
            }
        }
    }
    format!(
        "file {file} heap {heap} anon {anon} other {other} KiB; maps >= 1 MiB: {}",
        big.join(" ")
    )
}

/// Bytes this process has caused to be written to storage so far
/// (`write_bytes` of /proc/self/io): the durable store's disk traffic.
fn disk_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
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
        outbox_limit: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
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

/// Claims the whole outbox a batch at a time, records a submit OK for all
/// but the last `in_flight` claimed (left leased, as at a crash) and a
/// delivery receipt for every `deliver_step`-th submitted one.
///
/// Each batch is submitted before the next claim, as a bind does: a claim
/// reads a bounded run of the outbox, so claiming everything first stalled
/// behind 4 096 leased entries (bug: the 20 000-message start and the
/// daemon's 100k conversations had only 4 096 messages submitted).
async fn claim_submit_deliver(store: &Arc<SledStore>, in_flight: usize, deliver_step: usize) {
    let total = store.outbox_depth() as usize;
    let to_submit = total.saturating_sub(in_flight);
    let (mut claimed, mut submitted) = (0usize, Vec::new());
    loop {
        let items = store
            .claim_outbox(CARRIER, 1000, 3_600_000, clock::wall_ms())
            .await
            .expect("claim");
        if items.is_empty() {
            break;
        }
        let ids: Vec<u64> = items.into_iter().map(|i| i.message).collect();
        let n = to_submit.saturating_sub(claimed).min(ids.len());
        submit_all(store, &ids[..n], clock::wall_ms()).await;
        submitted.extend_from_slice(&ids[..n]);
        claimed += ids.len();
    }
    assert_eq!(claimed, total, "the whole outbox was claimed");
    assert_eq!(store.outbox_depth() as usize, total - submitted.len());
    let list = Arc::new(submitted);
    let s = store.clone();
    let step = deliver_step.max(1);
    concurrently(64, list.len().div_ceil(step) as u64, move |i| {
        let (s, list) = (s.clone(), list.clone());
        async move {
            let m = list[i as usize * step].to_string();
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
}

async fn store_scale(args: &[String]) {
    let messages = arg_u64(args, "--messages", 200_000);
    let conversations = arg_u64(args, "--conversations", 100_000);
    let ended = arg_u64(args, "--ended", 100_000);
    let keep = args.iter().any(|a| a == "--keep");
    let dir = tempfile::tempdir().expect("tempdir");

    // 1. Peak RSS with `conversations` open conversations.
    let conv_path = dir.path().join("conversations");
    {
        eprintln!("store-scale: {conversations} open conversations");
        let store = Arc::new(SledStore::open_with(&conv_path, store_options()).expect("open"));
        load_messages(&store, conversations, 1, 0).await;
        let (hwm, rss) = rss_kib();
        result(
            "store_scale/load_open_conversations",
            serde_json::json!({"conversations": conversations, "loader_vm_hwm_kib": hwm, "loader_vm_rss_kib": rss}),
        );
        store.flush().await.expect("flush");
    }
    let child = child_open(&conv_path, Some(None));
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
        let store = Arc::new(SledStore::open_with(&msg_path, store_options()).expect("open"));
        load_messages(&store, messages, 10, 10_000_000).await;
        let t = clock::now();
        claim_submit_deliver(&store, 1000, 2).await;
        eprintln!(
            "  claimed, submitted, half delivered in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        store.flush().await.expect("flush");
    }
    let size = dir_size(&msg_path);
    for round in ["first", "second"] {
        let child = child_open(&msg_path, None);
        result(
            "store_scale/start_with_messages",
            serde_json::json!({"messages": messages, "round": round, "store_bytes": size, "child": child}),
        );
    }
    // 3. An agent's console listing its open conversations (2 of 1 000)
    // among `ended` ended ones: what 90 days of retention keep.
    if ended > 0 {
        let ended_path = dir.path().join("ended");
        {
            eprintln!("store-scale: {ended} ended conversations, then 1 000 open ones");
            let store = Arc::new(SledStore::open_with(&ended_path, store_options()).expect("open"));
            load_messages(&store, ended, 1, 0).await;
            // A fresh store numbers its conversations from 1.
            let s = store.clone();
            let t = concurrently(64, ended, move |i| {
                let s = s.clone();
                async move {
                    s.end_chat(i + 1, "bench", clock::wall_ms())
                        .await
                        .expect("store")
                        .expect("ended");
                }
            })
            .await;
            eprintln!("  ended them in {:.1} s", t.as_secs_f64());
            load_messages(&store, 1000, 1, ended).await;
            store.flush().await.expect("flush");
        }
        let child = child_open(&ended_path, Some(Some("agent-7")));
        result(
            "store_scale/agent_listing_among_ended",
            serde_json::json!({"ended": ended, "open": 1000, "child": child}),
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

/// Runs this executable with `--child-open <path>` and returns its JSON
/// report. `list`: list all open conversations (`Some(None)`) or one
/// agent's as its console does (`Some(Some(agent))`).
fn child_open(path: &Path, list: Option<Option<&str>>) -> serde_json::Value {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--child-open").arg(path);
    match list {
        Some(None) => {
            cmd.arg("--list");
        }
        Some(Some(agent)) => {
            cmd.arg("--list-owner").arg(agent);
        }
        None => {}
    }
    let out = cmd.output().expect("child");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("CHILD "))
        .unwrap_or("null");
    serde_json::from_str(line).unwrap_or(serde_json::Value::Null)
}

/// Follows `next` through every page of `conversations`: how many were
/// listed, in how many requests, in how many ms.
async fn list_all(
    store: &SledStore,
    owner: Option<&str>,
    include_requested: bool,
    limit: usize,
) -> (usize, usize, f64) {
    let t = clock::now();
    let (mut listed, mut requests, mut after) = (0usize, 0usize, None);
    loop {
        let page = store
            .conversations(owner, include_requested, after, limit)
            .await
            .expect("list");
        requests += 1;
        listed += page.conversations.len();
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    (listed, requests, t.elapsed().as_secs_f64() * 1e3)
}

/// The daemon's default store options, with sled's cache from
/// `SMPPGW_BENCH_CACHE_MB` when set.
fn store_options() -> smppgw::store::StoreOptions {
    let mut opts = smppgw::store::StoreOptions::default();
    if let Some(mb) = std::env::var("SMPPGW_BENCH_CACHE_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        opts.cache_bytes = mb << 20;
    }
    opts
}

/// The child: open + recover (timed), optionally list the open
/// conversations and accept 1000 more sends, or list one agent's as its
/// console does, then report peak RSS.
async fn child(path: PathBuf, list: bool, owner: Option<String>) {
    let (hwm0, _) = rss_kib();
    let t = clock::now();
    let store = SledStore::open_with(&path, store_options()).expect("open");
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
    if let Some(owner) = owner {
        // As the console's loadAll: its own and the chat requests, 500 a page.
        let (listed, requests, ms) = list_all(&store, Some(&owner), true, 500).await;
        v["list_ms"] = ms.into();
        v["listed"] = listed.into();
        v["requests"] = requests.into();
        let (hwm, rss) = rss_kib();
        v["vm_hwm_kib"] = hwm.into();
        v["vm_rss_kib"] = rss.into();
    } else if list {
        let store = Arc::new(store);
        // Paged as the agent op does, so the peak stays one page's worth.
        let (open_convs, _, ms) = list_all(&store, None, false, 1000).await;
        v["list_ms"] = ms.into();
        v["open_conversations"] = open_convs.into();
        v["vm_hwm_kib_after_list"] = rss_kib().0.into();
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
        let owner = arg_value(&args, "--list-owner");
        rt.block_on(child(PathBuf::from(p), list, owner));
        return;
    }
    let any_mode = args
        .iter()
        .any(|a| a == "--store-scale" || a == "--e2e" || a == "--daemon-rss");
    eprintln!(
        "machine: {} cores, load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    if args.iter().any(|a| a == "--store-scale") {
        rt.block_on(store_scale(&args));
    }
    if args.iter().any(|a| a == "--e2e") {
        rt.block_on(e2e(&args));
    }
    if args.iter().any(|a| a == "--daemon-rss") {
        rt.block_on(daemon_rss(&args));
    }
    if !any_mode {
        eprintln!(
            "usage: cargo bench --bench e2e -- --store-scale [--messages N] [--conversations N] | --e2e [--secs S] ... | --daemon-rss [--conversations N] [--steady C] [--compact]"
        );
    }
}

// === --daemon-rss ===

/// A child process killed (and reaped) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sets `key` in every table of the array of tables `array` of `doc`.
fn set_all(doc: &mut toml::Table, array: &str, key: &str, v: toml::Value) {
    if let Some(toml::Value::Array(items)) = doc.get_mut(array) {
        for item in items {
            if let toml::Value::Table(t) = item {
                t.insert(key.into(), v.clone());
            }
        }
    }
}

async fn daemon_rss(args: &[String]) {
    use serde_json::{Value, json};
    let n = arg_u64(args, "--conversations", 100_000);
    let stop = CancellationToken::new();
    let sim_cfg = SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        window: 50,
        receipt_delay_ms: 50,
        queue_capacity: 200_000,
        ..SimConfig::default()
    };
    let sim = smppgw::sim::start(sim_cfg, stop.clone())
        .await
        .expect("sim");
    let dir = tempfile::tempdir().expect("tempdir");
    // The demo configuration, with the bench's sender (so the sends below
    // reach the loaded conversations) and a carrier rate that does not
    // make 1 000 sends take 20 s.
    let text = smppgw::config::demo_toml(dir.path(), sim.local_addr(), None).expect("demo");
    let mut doc: toml::Table = toml::from_str(&text).expect("demo toml");
    set_all(&mut doc, "carrier", "tps", 2_000.into());
    set_all(&mut doc, "carrier", "window", 50.into());
    set_all(&mut doc, "service", "sender", SENDER.into());
    if let Some(toml::Value::Table(t)) = doc.get_mut("log") {
        t.insert("level".into(), "warn".into());
    }
    if let (Some(mb), Some(toml::Value::Table(t))) = (
        std::env::var("SMPPGW_BENCH_CACHE_MB")
            .ok()
            .and_then(|v| v.parse::<i64>().ok()),
        doc.get_mut("store"),
    ) {
        t.insert("cache_mb".into(), mb.into());
    }
    let config = dir.path().join("smppgw.toml");
    std::fs::write(&config, toml::to_string(&doc).expect("toml")).expect("write config");
    let cfg = smppgw::config::load(&config).expect("bench config");
    let service = cfg.services[0].name.clone();

    // `--steady C`: the conversations come C at a time, each chunk sent,
    // submitted and delivered before the next (a day of traffic) instead
    // of all queued at once (a backlog): the store's history, not its
    // contents, differs.
    let steady = arg_u64(args, "--steady", 0);
    eprintln!(
        "daemon-rss: {n} open conversations, each message delivered{}",
        if steady > 0 { ", loaded steadily" } else { "" }
    );
    {
        let store = Arc::new(SledStore::open(&cfg.store.path).expect("store"));
        let chunk = if steady > 0 { steady } else { n.max(1) };
        let mut first = 0;
        while first < n {
            let c = chunk.min(n - first);
            load_messages(&store, c, 1, first).await;
            claim_submit_deliver(&store, 0, 1).await;
            first += c;
        }
        store.flush().await.expect("flush");
    }
    let compacted = if args.iter().any(|a| a == "--compact") {
        let t = clock::now();
        // The loader's store is dropped; sled lets go of its lock once its
        // threads end.
        let compact = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_smppgw"))
                .args(["compact-store", "--config"])
                .arg(&config)
                .output()
                .expect("spawn smppgw compact-store")
        };
        let mut out = compact();
        // Only sled's lock is waited out; any other failure is shown.
        for _ in 0..100 {
            if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("lock") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            out = compact();
        }
        assert!(
            out.status.success(),
            "compact-store: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        eprintln!("{line}");
        json!({"ms": t.elapsed().as_secs_f64() * 1e3, "said": line})
    } else {
        Value::Null
    };

    let t = clock::now();
    let daemon = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_smppgw"))
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn smppgw run"),
    );
    let pid = daemon.0.id().to_string();
    let mut client = None;
    for _ in 0..600 {
        if let Ok(c) = smppgw::agent::client::Client::connect(&cfg.agent.socket).await {
            if c.request(json!({"op": "hello"})).await.is_ok() {
                client = Some(c);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = Arc::new(client.expect("the daemon answers on its socket"));
    let answered_ms = t.elapsed().as_secs_f64() * 1e3;
    for _ in 0..200 {
        if sim.stats().active_binds >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (hwm_started, _) = rss_kib_of(&pid);
    let smaps = std::env::var_os("E2E_SMAPS").is_some();
    if smaps {
        eprintln!("after start: {}", rss_by_kind(&pid));
    }

    let t = clock::now();
    let (mut listed, mut after) = (0usize, Value::Null);
    loop {
        let mut req = json!({"op": "conversations", "limit": 1000});
        if !after.is_null() {
            req["after"] = after.clone();
        }
        let page = client.request(req).await.expect("conversations");
        listed += page["conversations"].as_array().map_or(0, Vec::len);
        after = page["next"].clone();
        if after.is_null() {
            break;
        }
    }
    let list_ms = t.elapsed().as_secs_f64() * 1e3;
    let (hwm_listed, _) = rss_kib_of(&pid);
    if smaps {
        eprintln!("after listing: {}", rss_by_kind(&pid));
    }

    let accepted_before = sim.stats().accepted;
    let c = client.clone();
    let service2 = service.clone();
    concurrently(16, 1000, move |i| {
        let (c, service) = (c.clone(), service2.clone());
        async move {
            let k = i * 97 % n.max(1);
            let req = json!({
                "op": "send",
                "service": service,
                "to": customer(k),
                "agent": format!("agent-{}", k % 500),
                "text": format!("Follow-up {i}: your parcel leaves the depot today."),
            });
            c.request(req).await.expect("send");
        }
    })
    .await;
    let t = clock::now();
    while sim.stats().accepted < accepted_before + 1000 && t.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let submitted = sim.stats().accepted - accepted_before;
    let (hwm, rss) = rss_kib_of(&pid);
    if smaps {
        eprintln!("after sends: {}", rss_by_kind(&pid));
    }
    drop(daemon);
    if std::env::var_os("E2E_KEEP").is_some() {
        eprintln!("kept {}", dir.keep().display());
    }
    stop.cancel();
    result(
        "daemon_rss/open_conversations",
        json!({
            "conversations": n,
            "steady_chunk": steady,
            "compacted": compacted,
            "listed": listed,
            "answered_ms": answered_ms,
            "list_ms": list_ms,
            "sends_submitted": submitted,
            "vm_hwm_kib_after_start": hwm_started,
            "vm_hwm_kib_after_list": hwm_listed,
            "vm_hwm_kib": hwm,
            "vm_rss_kib": rss,
        }),
    );
}

// === --e2e ===

struct Rig {
    store: Arc<SledStore>,
    links: Links,
    sim: SimHandle,
    stop: CancellationToken,
    /// When the links were started (before the binds came up).
    started: std::time::Instant,
    _dir: tempfile::TempDir,
}

async fn rig(throttle: f64, relay: Option<Arc<Relay>>, preload: u64, backlog: u64) -> Rig {
    let stop = CancellationToken::new();
    let sim_cfg = SimConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        window: 50,
        receipt_delay_ms: std::env::var("E2E_RECEIPT_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50),
        throttle,
        record_capacity: std::env::var("E2E_SIM_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000),
        queue_capacity: 200_000,
        ..SimConfig::default()
    };
    let sim = smppgw::sim::start(sim_cfg, stop.clone())
        .await
        .expect("sim");
    let smsc = match &relay {
        Some(r) => r.clone().start(sim.local_addr(), stop.clone()).await,
        None => sim.local_addr(),
    };
    // E2E_STORE_DIR: where the store lives (default: the system temp dir,
    // a real disk here); /dev/shm shows what the flushes cost.
    let dir = match std::env::var("E2E_STORE_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("tempdir");
    let mut cfg = smppgw::config::demo(dir.path(), smsc, None).expect("demo config");
    for c in &mut cfg.carriers {
        c.binds = 4;
        c.window = 50;
        c.tps = 10_000;
        c.bind = smppgw::config::BindMode::Transceiver;
    }
    let carrier = cfg.carriers[0].name.clone();
    let sender = cfg.services[0].sender.clone();
    let service = cfg.services[0].name.clone();
    assert_eq!(carrier, "sim");
    let store = Arc::new(SledStore::open_with(&cfg.store.path, store_options()).expect("store"));
    if preload > 0 {
        eprintln!("  preloading {preload} open conversations");
        let s = store.clone();
        concurrently(64, preload, move |i| {
            let (s, sender, service) = (s.clone(), sender.clone(), service.clone());
            async move {
                let mut n = send(
                    &customer(50_000_000 + i),
                    &format!("agent-{}", i % 500),
                    format!("Hello {i}"),
                    "nowhere",
                );
                n.sender = sender;
                n.service = service;
                s.accept_send(n, clock::wall_ms())
                    .await
                    .expect("store")
                    .expect("accepted");
            }
        })
        .await;
    }
    if backlog > 0 {
        eprintln!("  accepting a backlog of {backlog} messages before the binds start");
        let s = store.clone();
        concurrently(64, backlog, move |i| {
            let s = s.clone();
            async move {
                s.accept_send(demo_send("447400123456", i), clock::wall_ms())
                    .await
                    .expect("store")
                    .expect("accepted");
            }
        })
        .await;
    }
    store.recover(clock::wall_ms()).await.expect("recover");
    let started = clock::now();
    let links = Links::start_with(
        store.clone(),
        Arc::new(cfg),
        stop.clone(),
        LinkOptions::default(),
    );
    let t = clock::now();
    while !(links.all_ready() && sim.stats().active_binds >= 4) {
        assert!(t.elapsed() < Duration::from_secs(30), "binds not up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Rig {
        store,
        links,
        sim,
        stop,
        started,
        _dir: dir,
    }
}

fn demo_send(rig_sender: &str, i: u64) -> NewOutbound {
    let mut n = send(
        &customer(i),
        &format!("agent-{}", i % 500),
        format!("Ref#{i}# Your engineer arrives between 10:00 and 12:00 tomorrow."),
        "sim",
    );
    n.sender = rig_sender.into();
    n
}

/// Sustained rate with `senders` concurrent senders for `secs`; the first
/// second is warm-up. Returns msgs/s answered ROK.
async fn throughput(label: &str, throttle: f64, secs: u64, senders: usize, preload: u64) -> f64 {
    let rig = rig(throttle, None, preload, 0).await;
    let sender = "447400123456";
    let deadline = clock::now() + Duration::from_secs(secs);
    let accepted = Arc::new(AtomicU64::new(0));
    let links = Arc::new(rig.links);
    let mut tasks = Vec::new();
    for k in 0..senders as u64 {
        let (store, links, accepted) = (rig.store.clone(), links.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = k;
            while clock::now() < deadline {
                // 10 000 customers per sender, so conversations both open and continue.
                let cust = k * 10_000 + (i / senders as u64) % 10_000;
                let mut n = demo_send(sender, cust);
                n.owner = format!("agent-{k}");
                store
                    .accept_send(n, clock::wall_ms())
                    .await
                    .expect("store")
                    .expect("accepted");
                links.wake();
                accepted.fetch_add(1, Ordering::Relaxed);
                i += senders as u64;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let st0 = rig.store.stats();
    let (a0, s0, t0, w0) = (
        accepted.load(Ordering::Relaxed),
        rig.sim.stats(),
        clock::now(),
        disk_written(),
    );
    let mut samples = Vec::new();
    while clock::now() + Duration::from_millis(200) < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let st = rig.sim.stats();
        samples.push((st.accepted, st.throttled, st.receipts_acked));
    }
    let (a1, s1, el, w1) = (
        accepted.load(Ordering::Relaxed),
        rig.sim.stats(),
        t0.elapsed().as_secs_f64(),
        disk_written(),
    );
    let st = rig.store.stats();
    for t in tasks {
        t.await.expect("sender");
    }
    let rate = (s1.accepted - s0.accepted) as f64 / el;
    let (hwm, rss) = rss_kib();
    let outbox_left = rig
        .store
        .claim_outbox("sim", usize::MAX, 1, clock::wall_ms() + 10_000_000)
        .await
        .map(|v| v.len())
        .unwrap_or(0);
    result(
        &format!("e2e/{label}"),
        serde_json::json!({
            "senders": senders,
            "binds": 4, "window": 50, "throttle": throttle,
            "window_secs": el,
            "accepted_per_s": (a1 - a0) as f64 / el,
            "submit_resp_ok_per_s": rate,
            "throttled_per_s": (s1.throttled - s0.throttled) as f64 / el,
            "receipts_correlated_per_s": (s1.receipts_acked - s0.receipts_acked) as f64 / el,
            "outbox_backlog_at_end": outbox_left,
            "per_second_sim_counters": samples,
            "preloaded_conversations": preload,
            "vm_hwm_kib": hwm, "vm_rss_kib": rss,
            "flushes": rig.store.flush_count(),
            "checkpoints": st.checkpoints - st0.checkpoints,
            "sled_writes_per_accepted": (st.checkpoint_writes - st0.checkpoint_writes) as f64 / (a1 - a0).max(1) as f64,
            "disk_bytes_per_accepted": (w1 - w0) / (a1 - a0).max(1),
        }),
    );
    rig.stop.cancel();
    links.shutdown().await;
    rate
}

/// Forwards bytes between the binds and the simulator; notes when each
/// submit_sm carrying `Ref#<n>#` arrives from the gateway.
struct Relay {
    seen: std::sync::Mutex<Vec<(u64, std::time::Instant)>>,
}

impl Relay {
    async fn start(
        self: Arc<Self>,
        upstream: std::net::SocketAddr,
        stop: CancellationToken,
    ) -> std::net::SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = l.local_addr().expect("relay addr");
        tokio::spawn(async move {
            loop {
                let (down, _) = tokio::select! {
                    () = stop.cancelled() => return,
                    r = l.accept() => match r { Ok(x) => x, Err(_) => return },
                };
                let up = TcpStream::connect(upstream).await.expect("relay upstream");
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let (mut dr, mut dw) = down.into_split();
                let (mut ur, mut uw) = up.into_split();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = ur.read(&mut buf).await {
                        if n == 0 || dw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let me = self.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut pending: Vec<u8> = Vec::new();
                    while let Ok(n) = dr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let at = clock::now();
                        pending.extend_from_slice(&buf[..n]);
                        // Whole PDUs: command_length, command_id.
                        while pending.len() >= 8 {
                            let len = u32::from_be_bytes([
                                pending[0], pending[1], pending[2], pending[3],
                            ]) as usize;
                            if len < 16 || pending.len() < len {
                                break;
                            }
                            let id = u32::from_be_bytes([
                                pending[4], pending[5], pending[6], pending[7],
                            ]);
                            if id == 4 {
                                if let Some(r) = find_ref(&pending[16..len]) {
                                    me.seen.lock().expect("lock").push((r, at));
                                }
                            }
                            pending.drain(..len);
                        }
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }
}

fn find_ref(body: &[u8]) -> Option<u64> {
    let pos = body.windows(4).position(|w| w == b"Ref#")?;
    let digits = &body[pos + 4..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// p50/p99 from `send` (accept_send called) to the submit_sm at the relay,
/// at a steady `rate` msg/s for `secs`.
async fn latency(rate: u64, secs: u64) {
    let relay = Arc::new(Relay {
        seen: std::sync::Mutex::new(Vec::new()),
    });
    let rig = rig(0.0, Some(relay.clone()), 0, 0).await;
    let links = Arc::new(rig.links);
    let total = rate * secs;
    let sent_at = Arc::new(std::sync::Mutex::new(vec![
        None::<(
            std::time::Instant,
            std::time::Instant
        )>;
        total as usize
    ]));
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut handles = Vec::with_capacity(total as usize);
    let start = clock::now();
    for i in 0..total {
        tick.tick().await;
        let (store, links, sent_at) = (rig.store.clone(), links.clone(), sent_at.clone());
        handles.push(tokio::spawn(async move {
            let t0 = clock::now();
            store
                .accept_send(demo_send("447400123456", i), clock::wall_ms())
                .await
                .expect("store")
                .expect("accepted");
            let t1 = clock::now();
            links.wake();
            sent_at.lock().expect("lock")[i as usize] = Some((t0, t1));
        }));
    }
    let offered = start.elapsed();
    for h in handles {
        h.await.expect("send");
    }
    let t = clock::now();
    while relay.seen.lock().expect("lock").len() < total as usize
        && t.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = std::mem::take(&mut *relay.seen.lock().expect("lock"));
    let sent = sent_at.lock().expect("lock").clone();
    let mut from_send = Vec::new();
    let mut from_accepted = Vec::new();
    for (r, at) in &seen {
        if let Some(Some((t0, t1))) = sent.get(*r as usize) {
            from_send.push(at.saturating_duration_since(*t0).as_secs_f64() * 1e3);
            from_accepted.push(at.saturating_duration_since(*t1).as_secs_f64() * 1e3);
        }
    }
    let pct = |v: &mut Vec<f64>, p: f64| -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let (hwm, _) = rss_kib();
    result(
        "e2e/latency_send_to_submit_sm",
        serde_json::json!({
            "rate_per_s": rate, "secs": secs, "offered_secs": offered.as_secs_f64(),
            "sent": total, "seen_on_wire": seen.len(),
            "send_to_wire_ms": {"p50": pct(&mut from_send, 0.5), "p99": pct(&mut from_send, 0.99), "max": pct(&mut from_send, 1.0)},
            "accepted_to_wire_ms": {"p50": pct(&mut from_accepted, 0.5), "p99": pct(&mut from_accepted, 0.99), "max": pct(&mut from_accepted, 1.0)},
            "flushes": rig.store.flush_count(),
            "vm_hwm_kib": hwm,
        }),
    );
    rig.stop.cancel();
    links.shutdown().await;
}

/// The link alone: `n` messages already in the outbox when the binds come
/// up; time until the simulator answered them all.
async fn drain(n: u64) {
    let rig = rig(0.0, None, 0, n).await;
    // Timed from the links' start: the binds start draining as soon as
    // they are up. Regression: the first version counted from after the
    // binds were up, missed what went out meanwhile and never saw `n`,
    // reporting a 120 s "drain" at ~40/s for a backlog gone in a second.
    let t = rig.started;
    let mut last_print = 0;
    while rig.sim.stats().accepted < n && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let secs = t.elapsed().as_secs();
        if secs > last_print {
            last_print = secs;
            let st = rig.sim.stats();
            eprintln!(
                "  {secs:>3} s: submits answered {}, receipts acked {}, flushes {}",
                st.accepted,
                st.receipts_acked,
                rig.store.flush_count()
            );
        }
    }
    let el = t.elapsed().as_secs_f64();
    // Receipts come 50 ms after their submit: wait for the last ones.
    while rig.sim.stats().receipts_acked < n && t.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let el_receipts = t.elapsed().as_secs_f64();
    let s1 = rig.sim.stats();
    result(
        "e2e/drain_backlog",
        serde_json::json!({
            "backlog": n, "secs": el, "secs_to_last_receipt": el_receipts,
            "submit_resp_ok_per_s": s1.accepted.min(n) as f64 / el,
            "receipts_correlated_per_s": s1.receipts_acked.min(n) as f64 / el_receipts,
            "flushes": rig.store.flush_count(),
            "checkpoints": rig.store.stats().checkpoints,
            "checkpoint_writes": rig.store.stats().checkpoint_writes,
        }),
    );
    rig.stop.cancel();
    rig.links.shutdown().await;
}

/// Lets the box quiet down between two scenarios of one run: the kernel
/// writes back what the last one left dirty (a 15 s run writes ~3 GB)
/// and its store's teardown ends, so the next scenario does not pay for
/// them (the throttled run, measured right after the unthrottled one, came
/// out 5-20 % slower than measured alone: benches/RESULTS.md §19).
async fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    tokio::time::sleep(Duration::from_secs(3)).await;
}

async fn e2e(args: &[String]) {
    let secs = arg_u64(args, "--secs", 10);
    let senders = arg_u64(args, "--senders", 64) as usize;
    let preload = arg_u64(args, "--preload", 0);
    let only = arg_value(args, "--only").unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let mut base = None;
    if want("throughput") {
        eprintln!("e2e: unthrottled, {senders} senders, {secs} s");
        base = Some(throughput("throughput", 0.0, secs, senders, preload).await);
    }
    if want("throttle") {
        if base.is_some() {
            settle().await;
        }
        eprintln!("e2e: 5 % throttled, {senders} senders, {secs} s");
        let r = throughput("throughput_throttled_5pct", 0.05, secs, senders, 0).await;
        if let Some(b) = base {
            result(
                "e2e/throttled_vs_unthrottled",
                serde_json::json!({"ratio": r / b, "unthrottled": b, "throttled": r}),
            );
        }
    }
    if want("drain") {
        let n = arg_u64(args, "--backlog", 20_000);
        eprintln!("e2e: drain a backlog of {n} (no concurrent sends)");
        drain(n).await;
    }
    if want("latency") {
        eprintln!("e2e: latency at 1000 msg/s, {secs} s");
        latency(1000, secs).await;
    }
}
