//! The daemon: wires config, store, links, agent server and metrics together,
//! and runs the shutdown sequence.
//!
//! Start-up order: metrics (so a failing start is visible), the store (and its
//! recovery: leased outbox items become claimable again, flagged possible
//! duplicates), the carrier links, then the agent socket last, so nothing is
//! accepted before it can be stored and sent. Shutdown runs the other way
//! round under one grace deadline: stop accepting, drain the windows and
//! unbind, flush the store.

mod demo;
pub mod gateway;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::agent::server::{Principal, Server, ServerConfig};
use crate::clock;
use crate::config::Config;
use crate::link::Links;
use crate::store::SledStore;
use crate::store::Store;

pub use demo::demo;
pub use gateway::Gateway;

/// Why the daemon could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened or recovered.
    #[error("store {path}: {source}")]
    Store {
        /// The store directory.
        path: PathBuf,
        /// What failed.
        source: crate::store::StoreError,
    },
    /// The store's write-ahead log failed while running: nothing more could
    /// be acknowledged, so the daemon stopped (a restart replays the log).
    #[error("store {path} failed, stopped so that a restart recovers it: {why}")]
    StoreFailed {
        /// The store directory.
        path: PathBuf,
        /// What failed.
        why: String,
    },
    /// The agent socket could not be set up.
    #[error("agent socket: {0}")]
    Agent(#[from] crate::agent::server::ServerError),
    /// The metrics endpoint could not be set up.
    #[error("metrics: {0}")]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The simulator (demo) could not start.
    #[error("simulator: {0}")]
    Sim(#[from] crate::sim::SimError),
    /// The demo's walkthrough failed.
    #[error("demo: {0}")]
    Demo(String),
    /// An I/O failure with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A started daemon: the pieces to stop and wait for.
pub struct Running {
    store: Arc<SledStore>,
    links: Arc<Links>,
    gateway: Arc<Gateway<SledStore>>,
    agent: tokio::task::JoinHandle<()>,
    housekeeping: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
    grace: Duration,
    socket: PathBuf,
}

fn agent_server_config(cfg: &Config) -> ServerConfig {
    let a = &cfg.agent;
    let mut sc = ServerConfig::new(a.socket.clone());
    sc.mode = Some(a.mode);
    sc.group = a.group.as_ref().map(|g| match g.parse::<u32>() {
        Ok(gid) => Principal::Id(gid),
        Err(_) => Principal::Name(g.clone()),
    });
    sc.allowed_uids = (!a.allowed_uids.is_empty()).then(|| a.allowed_uids.clone());
    sc.max_connections = a.max_connections;
    sc.max_line = a.max_line_bytes;
    sc.out_queue = a.subscriber_buffer.max(16);
    sc
}

/// Starts every part of the daemon from a validated config; `shutdown`
/// cancelled begins the orderly stop that [`Running::wait`] completes.
///
/// # Errors
/// The store, the agent socket or the metrics endpoint could not be set up:
/// nothing is left listening.
pub async fn start(cfg: Config, shutdown: CancellationToken) -> Result<Running, DaemonError> {
    let cfg = Arc::new(cfg);
    if let Some(listen) = cfg.metrics.listen {
        crate::metrics::install(Some(listen))?;
    }
    crate::metrics::describe_all();
    let store = SledStore::open_with(&cfg.store.path, cfg.store.options()).map_err(|source| {
        DaemonError::Store {
            path: cfg.store.path.clone(),
            source,
        }
    })?;
    let store = Arc::new(store);
    let report = store
        .recover(clock::wall_ms())
        .await
        .map_err(|source| DaemonError::Store {
            path: cfg.store.path.clone(),
            source,
        })?;
    tracing::info!(
        released_leases = report.released_leases,
        resting = report.resting,
        outbox = report.outbox,
        awaiting_receipts = report.awaiting_receipts,
        held_receipts = report.held_receipts,
        last_seq = report.last_seq,
        "store recovered"
    );
    release_free_heap();
    let links = Arc::new(Links::start(
        store.clone(),
        cfg.clone(),
        shutdown.child_token(),
    ));
    let gateway = Arc::new(Gateway::new(store.clone(), cfg.clone(), links.clone()));
    let server = Server::bind(agent_server_config(&cfg)).await?;
    tracing::info!(socket = %cfg.agent.socket.display(), "agent socket listening");
    let agent = tokio::spawn(server.run(gateway.clone(), shutdown.child_token()));
    let housekeeping = tokio::spawn(housekeeping(
        store.clone(),
        cfg.clone(),
        shutdown.child_token(),
    ));
    Ok(Running {
        store,
        links,
        gateway,
        agent,
        housekeeping,
        shutdown,
        grace: cfg.daemon.shutdown_grace,
        socket: cfg.agent.socket.clone(),
    })
}

/// Hands the heap pages the store's open freed back to the system.
///
/// sled builds its page table from a snapshot it reads whole and then
/// drops (about 12 MB with 100k conversations, interleaved with what it
/// keeps), and glibc keeps such freed pages resident. Without this, what
/// the daemon allocates later (a listing pulls sled nodes in on the worker
/// threads' arenas) comes on top of them, and the peak RSS with it.
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let t = clock::now();
        // SAFETY: malloc_trim only walks glibc's own arenas under their
        // locks; it takes no pointers from us and may run at any time.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            released = released == 1,
            ms = t.elapsed().as_secs_f64() * 1e3,
            "returned the freed heap pages of the start"
        );
    }
}

impl Running {
    /// The agent socket's path.
    pub fn socket(&self) -> &std::path::Path {
        &self.socket
    }

    /// Applies a reloaded config's services and carrier settings.
    pub fn reload(&self, cfg: Config) {
        let cfg = Arc::new(cfg);
        self.links.reload(cfg.clone());
        self.gateway.reload(cfg);
    }

    /// Waits for the shutdown token, then stops in order under the grace
    /// deadline: the agent socket, the links (drain, unbind), a final flush.
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        let grace = self.grace;
        let stop = async {
            let _ = self.agent.await;
            self.links.shutdown().await;
            let _ = self.housekeeping.await;
            if let Err(e) = self.store.flush().await {
                tracing::error!("final store flush failed: {e}");
            }
        };
        if tokio::time::timeout(grace, stop).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "shutdown grace period over: terminating"
            );
            if let Err(e) = self.store.flush().await {
                tracing::error!("final store flush failed: {e}");
            }
        }
        tracing::info!("stopped");
    }
}

/// Periodic work: event-log trimming and retention.
async fn housekeeping(store: Arc<SledStore>, cfg: Arc<Config>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        rounds += 1;
        let now = clock::wall_ms();
        gauges(&store, &cfg).await;
        // Overdue receipts are the links' sweep (`LinkOptions::expire_interval`).
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        // Once a minute, skipping the tick at start.
        if rounds > 1 {
            let max_age = ms(cfg.store.event_log_max_age);
            if let Err(e) = store
                .trim_events(now, max_age.min(3_600_000), max_age)
                .await
            {
                tracing::error!("trimming the event log: {e}");
            }
            match store.purge_ended(now, ms(cfg.store.retention)).await {
                Ok(r) if r.conversations > 0 => {
                    tracing::info!(
                        conversations = r.conversations,
                        messages = r.messages,
                        "purged ended conversations"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!("purging ended conversations: {e}"),
            }
        }
    }
}

/// The store's gauges: outbox depth, log, overlay and checkpoints, and
/// each known consumer's lag behind the durable head of the event log.
async fn gauges(store: &SledStore, cfg: &Config) {
    crate::metrics::outbox_depth(store.outbox_depth());
    crate::metrics::outbox_carrier_depths(
        cfg.carriers.iter().map(|c| c.name.as_str()),
        &store.outbox_depths(),
    );
    crate::metrics::store_stats(&store.stats());
    let head = *store.subscribe().borrow();
    for consumer in crate::metrics::CONSUMERS {
        if let Ok(Some(at)) = store.cursor(consumer).await {
            crate::metrics::event_log_lag(consumer, head.saturating_sub(at));
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT, or until its store's log fails;
/// SIGHUP reloads the config file.
///
/// # Errors
/// The daemon could not start (see [`start`]), or stopped because the
/// store's write-ahead log failed ([`DaemonError::StoreFailed`]).
pub async fn run(cfg: Config, config_path: PathBuf) -> Result<(), DaemonError> {
    use tokio::signal::unix::{SignalKind, signal};
    let io = |what: &str| {
        let what = what.to_string();
        move |source| DaemonError::Io { what, source }
    };
    let mut term = signal(SignalKind::terminate()).map_err(io("installing the SIGTERM handler"))?;
    let mut int = signal(SignalKind::interrupt()).map_err(io("installing the SIGINT handler"))?;
    let mut hup = signal(SignalKind::hangup()).map_err(io("installing the SIGHUP handler"))?;
    let shutdown = CancellationToken::new();
    let mut current = cfg.clone();
    let store_path = cfg.store.path.clone();
    let running = start(cfg, shutdown.clone()).await?;
    let store = running.store.clone();
    notify_systemd("READY=1");
    crate::metrics::ready(true);
    let reloader = {
        let shutdown = shutdown.clone();
        async move {
            let mut failed = None;
            loop {
                tokio::select! {
                    why = store.failed() => {
                        tracing::error!(error = %why, "the store's write-ahead log failed: no send or reply can be acknowledged any more; stopping so that a restart replays the log");
                        failed = Some(why);
                        break;
                    }
                    _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
                    _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
                    _ = hup.recv() => {
                        match crate::config::load(&config_path) {
                            Ok(new) => {
                                for note in reload_notes(&current, &new) {
                                    tracing::warn!("SIGHUP: {note}");
                                }
                                tracing::info!("SIGHUP: config reloaded");
                                current = new.clone();
                                running.reload(new);
                            }
                            Err(e) => tracing::error!("SIGHUP: the new config is invalid, keeping the running one:\n{e}"),
                        }
                    }
                }
            }
            notify_systemd("STOPPING=1");
            crate::metrics::ready(false);
            shutdown.cancel();
            (running, failed)
        }
    };
    let (running, failed) = reloader.await;
    running.wait().await;
    match failed {
        Some(why) => Err(DaemonError::StoreFailed {
            path: store_path,
            why,
        }),
        None => Ok(()),
    }
}

/// What a reload from `old` to `new` does not apply at once, for the
/// operator: the keys only a restart applies, carriers added, removed or
/// changed in how they connect. Services apply at once everywhere (agent
/// requests, reply matching, inbound policy, keywords).
fn reload_notes(old: &Config, new: &Config) -> Vec<String> {
    let plan = crate::config::reload_plan(old, new);
    let mut notes: Vec<String> = plan
        .restart_required
        .iter()
        .map(|k| format!("{k} changed; the running value stays until a restart"))
        .collect();
    for (what, list) in [
        ("added", &plan.added_carriers),
        ("removed", &plan.removed_carriers),
        ("changed (needs a rebind)", &plan.rebind_carriers),
    ] {
        for c in list {
            notes.push(format!(
                "carrier {c:?} {what}; its links change only after a restart"
            ));
        }
    }
    if plan.rebind_carriers.is_empty()
        && plan.added_carriers.is_empty()
        && plan.removed_carriers.is_empty()
        && as_json(&old.carriers) != as_json(&new.carriers)
    {
        notes.push(
            "carrier settings changed: received PDUs use them now, sends from the next bind on"
                .to_string(),
        );
    }
    notes
}

/// A config part in its (secret-free) serialised form, for comparison.
fn as_json<T: serde::Serialize>(t: &T) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
}

/// Tells systemd (`Type=notify`) about a state change; a no-op elsewhere.
fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("systemd notify: {e}");
            return;
        }
    };
    let bytes = path.as_encoded_bytes();
    let result = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = result {
        tracing::warn!("systemd notify: {e}");
    }
}
