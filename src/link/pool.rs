//! The carrier links of the daemon: one [`Links`] owns, per carrier, its bind
//! tasks (`binds` transceivers, or `binds` transmitter + receiver pairs),
//! their visible state, the outbox wake-up and the periodic sweeps.
//!
//! The daemon starts it once with [`Links::start`], routes sends with
//! [`Links::can_send`] (and [`crate::link::route`]), calls [`Links::wake`]
//! after every `accept_send`, shows [`Links::status`] on the socket's
//! `status`, and calls [`Links::shutdown`] on SIGTERM.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock;
use crate::config::{BindMode, Config};
use crate::session::state::BindKind;
use crate::store::Store;

use super::{inbound, supervise};

// === options ===

/// Shell settings of the links that are not carrier config (tests shorten
/// them; the daemon uses [`LinkOptions::default`]).
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// How often an idle transmitting bind looks at the outbox even without
    /// a [`Links::wake`] (work left by a lapsed lease, a restart). Default 1 s.
    pub poll_interval: Duration,
    /// A multi-part reply still missing parts after this long is delivered
    /// with what arrived, marked incomplete. Default 300 s.
    pub reassembly_timeout: Duration,
    /// How often the reassembly timeout is checked. Default 30 s.
    pub reassembly_sweep: Duration,
    /// How often `expire_pending` runs (`None`: never; the daemon does it).
    /// Default every 60 s.
    pub expire_interval: Option<Duration>,
    /// How long a receipt that matches no submit is held. Default 1 h.
    pub held_receipt_max_age: Duration,
    /// Wait before a part refused with a temporary status is sent again on
    /// the same bind. Default 1 s.
    pub part_retry_delay: Duration,
    /// Temporary refusals of one part before the message is put back in
    /// the outbox for later. Default 3.
    pub max_part_retries: u32,
    /// deliver_sm waiting for the store, per bind (also the most one store
    /// batch takes). Default 256.
    pub inbound_queue: usize,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            poll_interval: Duration::from_secs(1),
            reassembly_timeout: Duration::from_secs(300),
            reassembly_sweep: Duration::from_secs(30),
            expire_interval: Some(Duration::from_secs(60)),
            held_receipt_max_age: Duration::from_secs(3600),
            part_retry_delay: Duration::from_secs(1),
            max_part_retries: 3,
            inbound_queue: 256,
        }
    }
}

// === status ===

/// Where one bind stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindState {
    /// Connecting and binding.
    Connecting,
    /// Bound: submitting and/or receiving.
    Bound,
    /// Unbinding (shutdown or rebind).
    Unbinding,
    /// Waiting before the next attempt.
    Backoff,
    /// Parked after a credential rejection; retried slowly.
    AuthFailed,
    /// Stopped (shutdown).
    Stopped,
}

impl BindState {
    /// The metric label (one of [`crate::metrics::BIND_STATES`]).
    pub fn metric(self) -> &'static str {
        match self {
            BindState::Connecting => "connecting",
            BindState::Bound => "bound",
            BindState::Unbinding => "unbinding",
            BindState::Backoff => "backoff",
            BindState::AuthFailed => "auth_failed",
            BindState::Stopped => "closed",
        }
    }
}

/// A snapshot of one bind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindStatus {
    /// Bind name within the carrier: `trx1`, `tx1`, `rx1`, ...
    pub name: String,
    /// `transceiver`, `transmitter` or `receiver`.
    pub kind: &'static str,
    /// Current state.
    pub state: BindState,
    /// Since when (wall ms).
    pub since_ms: u64,
    /// Why the last attempt or session ended, for operators.
    pub last_error: Option<String>,
    /// Requests outstanding in the window.
    pub window_in_use: usize,
    /// Bind attempts since start.
    pub attempts: u64,
    /// Next attempt (wall ms), while backing off.
    pub retry_at_ms: Option<u64>,
}

/// A snapshot of one carrier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CarrierStatus {
    /// Carrier name.
    pub name: String,
    /// Some transmitting bind is bound: it can send.
    pub ready: bool,
    /// Some receiving bind is bound: receipts and replies can arrive.
    pub receiving: bool,
    /// Every bind.
    pub binds: Vec<BindStatus>,
}

/// What [`Links::status`] returns; serialises as the socket's `status`
/// `links` member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinksStatus {
    /// Carriers in config order.
    pub carriers: Vec<CarrierStatus>,
}

/// The shared, always-current status of one bind (written by its task).
#[derive(Debug)]
pub(crate) struct BindSlot {
    /// Carrier name.
    pub(crate) carrier: String,
    /// Bind kind.
    pub(crate) kind: BindKind,
    /// The snapshot; short critical sections only.
    status: Mutex<BindStatus>,
}

fn kind_name(kind: BindKind) -> &'static str {
    match kind {
        BindKind::Transceiver => "transceiver",
        BindKind::Transmitter => "transmitter",
        BindKind::Receiver => "receiver",
    }
}

/// Whether a bind of `kind` submits.
pub(crate) fn transmits(kind: BindKind) -> bool {
    matches!(kind, BindKind::Transceiver | BindKind::Transmitter)
}

/// Whether a bind of `kind` receives.
pub(crate) fn receives(kind: BindKind) -> bool {
    matches!(kind, BindKind::Transceiver | BindKind::Receiver)
}

impl BindSlot {
    fn new(carrier: &str, name: String, kind: BindKind) -> Self {
        BindSlot {
            carrier: carrier.to_owned(),
            kind,
            status: Mutex::new(BindStatus {
                name,
                kind: kind_name(kind),
                state: BindState::Connecting,
                since_ms: clock::wall_ms(),
                last_error: None,
                window_in_use: 0,
                attempts: 0,
                retry_at_ms: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BindStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bind's name.
    pub(crate) fn name(&self) -> String {
        self.lock().name.clone()
    }

    /// A copy of the status.
    pub(crate) fn snapshot(&self) -> BindStatus {
        self.lock().clone()
    }

    /// Moves to `state` (and records the metric when it changed).
    pub(crate) fn set_state(&self, state: BindState, error: Option<String>, retry_at: Option<u64>) {
        let name = {
            let mut s = self.lock();
            let changed = s.state != state;
            if changed {
                s.state = state;
                s.since_ms = clock::wall_ms();
            }
            if error.is_some() {
                s.last_error = error;
            }
            s.retry_at_ms = retry_at;
            if state != BindState::Bound {
                s.window_in_use = 0;
            }
            changed.then(|| s.name.clone())
        };
        if let Some(name) = name {
            crate::metrics::bind_state(&self.carrier, &name, state.metric());
        }
    }

    /// Counts a bind attempt.
    pub(crate) fn attempt(&self) {
        self.lock().attempts += 1;
    }

    /// Records the window in use.
    pub(crate) fn set_window(&self, in_use: usize) {
        let name = {
            let mut s = self.lock();
            if s.window_in_use == in_use {
                return;
            }
            s.window_in_use = in_use;
            s.name.clone()
        };
        crate::metrics::window_in_use(&self.carrier, &name, in_use);
    }

    /// The current state.
    pub(crate) fn state(&self) -> BindState {
        self.lock().state
    }
}

/// One carrier's binds.
#[derive(Debug)]
struct CarrierSlot {
    name: String,
    binds: Vec<Arc<BindSlot>>,
}

/// State shared by the bind tasks and [`Links`].
#[derive(Debug)]
pub(crate) struct Shared {
    carriers: Vec<CarrierSlot>,
    /// Bumped by [`Links::wake`]; pumps watch it.
    pub(crate) wake: watch::Sender<u64>,
    /// The latest config ([`Links::reload`]): new sessions and every
    /// received PDU read it.
    pub(crate) config: watch::Sender<Arc<Config>>,
}

impl Shared {
    /// Updates the `receiving_binds` gauge of `carrier`.
    pub(crate) fn report_receiving(&self, carrier: &str) {
        if let Some(c) = self.carriers.iter().find(|c| c.name == carrier) {
            let up = c
                .binds
                .iter()
                .filter(|b| receives(b.kind) && b.state() == BindState::Bound)
                .count();
            crate::metrics::receiving_binds(carrier, up);
        }
    }
}

// === Links ===

/// The running carrier links. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Links {
    shared: Arc<Shared>,
    /// Cancelled by [`Links::shutdown`] or the daemon's root token.
    stop: CancellationToken,
    /// Every task started here.
    tracker: TaskTracker,
}

/// The binds a carrier config asks for: (name, kind).
pub(crate) fn bind_layout(mode: BindMode, binds: u32) -> Vec<(String, BindKind)> {
    let n = binds.max(1);
    let mut out = Vec::new();
    for i in 1..=n {
        match mode {
            BindMode::Transceiver => out.push((format!("trx{i}"), BindKind::Transceiver)),
            BindMode::TransmitterReceiver => {
                out.push((format!("tx{i}"), BindKind::Transmitter));
                out.push((format!("rx{i}"), BindKind::Receiver));
            }
        }
    }
    out
}

impl Links {
    /// Starts every carrier's binds with the default [`LinkOptions`]. Must
    /// be called inside a tokio runtime. `shutdown` (the daemon's root
    /// token) stops everything too, like [`Links::shutdown`].
    pub fn start<S: Store>(store: Arc<S>, cfg: Arc<Config>, shutdown: CancellationToken) -> Links {
        Links::start_with(store, cfg, shutdown, LinkOptions::default())
    }

    /// [`Links::start`] with explicit options.
    pub fn start_with<S: Store>(
        store: Arc<S>,
        cfg: Arc<Config>,
        shutdown: CancellationToken,
        opts: LinkOptions,
    ) -> Links {
        let stop = shutdown.child_token();
        let tracker = TaskTracker::new();
        let (wake, _) = watch::channel(0u64);
        let carriers = cfg
            .carriers
            .iter()
            .map(|c| CarrierSlot {
                name: c.name.clone(),
                binds: bind_layout(c.bind, c.binds)
                    .into_iter()
                    .map(|(name, kind)| Arc::new(BindSlot::new(&c.name, name, kind)))
                    .collect(),
            })
            .collect();
        let (config, _) = watch::channel(cfg.clone());
        let shared = Arc::new(Shared {
            carriers,
            wake,
            config,
        });
        let opts = Arc::new(opts);
        for (ci, c) in shared.carriers.iter().enumerate() {
            for (bi, slot) in c.binds.iter().enumerate() {
                let task = supervise::BindTask {
                    store: store.clone(),
                    cfg: cfg.clone(),
                    carrier: ci,
                    slot: slot.clone(),
                    shared: shared.clone(),
                    opts: opts.clone(),
                    stop: stop.clone(),
                    seed: clock::wall_ms() ^ ((ci as u64) << 32) ^ (bi as u64 + 1),
                };
                tracker.spawn(task.run());
            }
        }
        tracker.spawn(inbound::sweep_task(
            store.clone(),
            cfg.clone(),
            opts.clone(),
            stop.clone(),
        ));
        if let Some(every) = opts.expire_interval {
            tracker.spawn(inbound::expire_task(
                store,
                cfg,
                every,
                opts.held_receipt_max_age,
                stop.clone(),
            ));
        }
        tracker.close();
        Links {
            shared,
            stop,
            tracker,
        }
    }

    /// Applies a reloaded config (SIGHUP): services (inbound policy,
    /// keywords, senders, part limits) apply to the next received PDU and
    /// the next session's sends; a carrier's connection settings apply when
    /// its binds next connect. Carriers added or removed need a restart.
    pub fn reload(&self, cfg: Arc<Config>) {
        self.shared.config.send_replace(cfg);
    }

    /// A snapshot of every carrier and bind.
    pub fn status(&self) -> LinksStatus {
        LinksStatus {
            carriers: self
                .shared
                .carriers
                .iter()
                .map(|c| {
                    let binds: Vec<BindStatus> = c.binds.iter().map(|b| b.snapshot()).collect();
                    let up = |f: fn(BindKind) -> bool| {
                        c.binds
                            .iter()
                            .zip(&binds)
                            .any(|(slot, s)| f(slot.kind) && s.state == BindState::Bound)
                    };
                    CarrierStatus {
                        name: c.name.clone(),
                        ready: up(transmits),
                        receiving: up(receives),
                        binds,
                    }
                })
                .collect(),
        }
    }

    /// [`Links::status`] as JSON.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::to_value(self.status()).unwrap_or(serde_json::Value::Null)
    }

    /// Whether `carrier` has a bound transmitting bind (for
    /// [`crate::link::route::route`]). Unknown carriers cannot send.
    pub fn can_send(&self, carrier: &str) -> bool {
        self.shared
            .carriers
            .iter()
            .filter(|c| c.name == carrier)
            .flat_map(|c| &c.binds)
            .any(|b| transmits(b.kind) && b.state() == BindState::Bound)
    }

    /// Every carrier has at least one transmitting bind up (readiness).
    pub fn all_ready(&self) -> bool {
        self.shared.carriers.iter().all(|c| {
            c.binds
                .iter()
                .any(|b| transmits(b.kind) && b.state() == BindState::Bound)
        })
    }

    /// New work is in the outbox: idle transmitting binds claim at once
    /// (they also poll every [`LinkOptions::poll_interval`]).
    pub fn wake(&self) {
        self.shared.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Stops pulling the outbox, lets each bind drain its window (at most
    /// `min(response_timeout, 10 s)`), unbinds (waiting at most
    /// `unbind_timeout` for unbind_resp), puts back in the outbox what was
    /// not answered (flagged possible duplicate) or not sent, and waits for
    /// every task. Bound the whole call with the daemon's grace period.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.wait().await;
    }

    /// Whether every task has ended.
    pub fn is_stopped(&self) -> bool {
        self.tracker.is_closed() && self.tracker.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmitter_receiver_mode_makes_pairs() {
        let l = bind_layout(BindMode::TransmitterReceiver, 2);
        let names: Vec<_> = l.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["tx1", "rx1", "tx2", "rx2"]);
        assert_eq!(l[1].1, BindKind::Receiver);
        let l = bind_layout(BindMode::Transceiver, 0);
        assert_eq!(l, vec![("trx1".to_owned(), BindKind::Transceiver)]);
    }

    #[test]
    fn bind_state_metric_names_are_in_the_catalogue() {
        for s in [
            BindState::Connecting,
            BindState::Bound,
            BindState::Unbinding,
            BindState::Backoff,
            BindState::AuthFailed,
            BindState::Stopped,
        ] {
            assert!(crate::metrics::BIND_STATES.contains(&s.metric()), "{s:?}");
        }
    }

    #[test]
    fn slot_records_state_changes_and_errors() {
        let s = BindSlot::new("acme", "trx1".into(), BindKind::Transceiver);
        s.set_state(BindState::AuthFailed, Some("bad password".into()), Some(5));
        let snap = s.snapshot();
        assert_eq!(snap.state, BindState::AuthFailed);
        assert_eq!(snap.last_error.as_deref(), Some("bad password"));
        assert_eq!(snap.retry_at_ms, Some(5));
        s.set_state(BindState::Bound, None, None);
        assert_eq!(s.snapshot().last_error.as_deref(), Some("bad password"));
        assert!(transmits(s.kind) && receives(s.kind));
    }
}
