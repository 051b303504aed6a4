//! `smppgw sim`: an SMSC simulator for tests, demos, benchmarks and
//! staging, built on the session machine in the MC role
//! ([`crate::session::machine::Session`]`<Mc>`).
//!
//! It does what real SMSCs do (CARRIERS.md): binds with configured
//! credentials (wrong ones get ESME_RINVSYSID / ESME_RINVPASWD, a bind over
//! the limit ESME_RALYBND), answers submit_sm and data_sm with message ids
//! (decimal or hex), sends delivery receipts after a delay (TLVs + text, or
//! text only; DELIVRD, or UNDELIV for failing destinations; optionally
//! before the submit_sm_resp), delivers injected mobile-originated messages
//! (GSM 7-bit or UCS-2, multi-part with an 8-bit-reference UDH), and
//! misbehaves on demand: throttling and queue-full answers (a seeded PRNG,
//! so runs repeat), slow responses and binds, connections dropped in the
//! middle of the window, garbage PDUs.
//!
//! Receipts and MOs go to any receiving bind (RX or TRX) of the account; a
//! delivery not acknowledged before its bind drops is sent again on the
//! next receiving bind, as a real SMSC does: nothing is lost. Every queue
//! is bounded ([`SimConfig::queue_capacity`], [`SimConfig::record_capacity`],
//! [`SimConfig::max_connections`]).
//!
//! # Layout
//! - [`scenario`]: the knobs that can change at run time, and the PRNG;
//! - [`pdus`]: records, receipts, MO parts and garbage as pure functions;
//! - `state`: what connections share (counters, record, delivery queue);
//! - `conn`: one connection's loop around `Session<Mc>`;
//! - [`control`]: the JSON-lines control socket and its client.
//!
//! # Use
//! In process: [`start`] returns a [`SimHandle`] (address, inject, stats,
//! record, knobs). From outside: the control socket
//! ([`SimConfig::control`]) and [`inject_via_socket`].

mod conn;
pub mod control;
pub mod pdus;
pub mod scenario;
mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use control::{control_request, inject_via_socket};
pub use pdus::{Mo, ReceivedSubmit};
pub use scenario::Scenario;
pub use state::SimStats;

use state::{Fixed, OutItem, OutKind, Shared, lock};

/// Everything the simulator is started with. The knobs that can change at
/// run time are copied into a [`Scenario`] at start.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Plain TCP listener (port 0: any free port; see
    /// [`SimHandle::local_addr`]).
    pub listen: SocketAddr,
    /// The control socket (JSON lines), if any.
    pub control: Option<PathBuf>,
    /// The account's system_id.
    pub system_id: String,
    /// The account's password (never logged).
    pub password: String,
    /// Message ids in upper-case hex instead of decimal.
    pub hex_ids: bool,
    /// Delay before a delivery receipt.
    pub receipt_delay_ms: u64,
    /// Receipts without TLVs, text only.
    pub text_only_receipts: bool,
    /// Fraction of submits answered ESME_RTHROTTLED.
    pub throttle: f64,
    /// Delay before each submit_sm_resp.
    pub resp_delay_ms: u64,
    /// A TLS listener as well (needs `tls_cert` and `tls_key`).
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    pub tls_key: Option<PathBuf>,
    /// The system_id the simulator answers binds with.
    pub smsc_id: String,
    /// PRNG seed (throttling, queue-full answers, garbage): the same seed
    /// and traffic give the same answers.
    pub seed: u64,
    /// Outstanding deliver_sm per bind.
    pub window: usize,
    /// The first message id handed out (default 1 000 000 000, which is
    /// 3B9ACA00 in hex: ids with letters).
    pub first_message_id: u64,
    /// Received submits kept for [`SimHandle::received`].
    pub record_capacity: usize,
    /// Deliveries (receipts, MO parts) queued at most.
    pub queue_capacity: usize,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// See [`Scenario::receipt_id_decimal`].
    pub receipt_id_decimal: bool,
    /// See [`Scenario::receipt_before_response`].
    pub receipt_before_response: bool,
    /// See [`Scenario::fail_prefixes`].
    pub fail_prefixes: Vec<String>,
    /// See [`Scenario::queue_full`].
    pub queue_full: f64,
    /// See [`Scenario::drop_every`].
    pub drop_every: u64,
    /// See [`Scenario::garbage_every`].
    pub garbage_every: u64,
    /// See [`Scenario::bind_delay_ms`].
    pub bind_delay_ms: u64,
    /// See [`Scenario::max_binds`].
    pub max_binds: usize,
    /// See [`Scenario::refuse_binds`].
    pub refuse_binds: Option<u32>,
}

impl Default for SimConfig {
    /// 127.0.0.1:2775, account `smppgw` / `demo-pass` (the demo config's),
    /// no control socket, no TLS, a well-behaved [`Scenario::default`].
    fn default() -> Self {
        let s = Scenario::default();
        SimConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 2775)),
            control: None,
            system_id: "smppgw".into(),
            password: "demo-pass".into(),
            hex_ids: s.hex_ids,
            receipt_delay_ms: s.receipt_delay_ms,
            text_only_receipts: s.text_only_receipts,
            throttle: s.throttle,
            resp_delay_ms: s.resp_delay_ms,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            smsc_id: "smppgw-sim".into(),
            seed: 0x5EED,
            window: 10,
            first_message_id: 1_000_000_000,
            record_capacity: 10_000,
            queue_capacity: 10_000,
            max_connections: 64,
            receipt_id_decimal: s.receipt_id_decimal,
            receipt_before_response: s.receipt_before_response,
            fail_prefixes: s.fail_prefixes,
            queue_full: s.queue_full,
            drop_every: s.drop_every,
            garbage_every: s.garbage_every,
            bind_delay_ms: s.bind_delay_ms,
            max_binds: s.max_binds,
            refuse_binds: s.refuse_binds,
        }
    }
}

impl SimConfig {
    /// The run-time knobs as configured.
    pub fn scenario(&self) -> Scenario {
        let mut s = Scenario {
            hex_ids: self.hex_ids,
            receipt_id_decimal: self.receipt_id_decimal,
            receipt_delay_ms: self.receipt_delay_ms,
            text_only_receipts: self.text_only_receipts,
            receipt_before_response: self.receipt_before_response,
            fail_prefixes: self.fail_prefixes.clone(),
            throttle: self.throttle,
            queue_full: self.queue_full,
            resp_delay_ms: self.resp_delay_ms,
            drop_every: self.drop_every,
            garbage_every: self.garbage_every,
            bind_delay_ms: self.bind_delay_ms,
            max_binds: self.max_binds,
            refuse_binds: self.refuse_binds,
        };
        s.sanitise();
        s
    }
}

/// What can go wrong starting, controlling or talking to the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A listener (TCP, TLS or the control socket) could not be opened.
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// Which listener.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is incomplete or inconsistent.
    #[error("bad simulator config: {0}")]
    Config(String),
    /// The TLS certificate or key could not be read or used.
    #[error("tls setup failed: {0}")]
    Tls(String),
    /// The text needs more parts than an 8-bit reference allows.
    #[error(transparent)]
    TextTooLong(#[from] crate::text::PlanError),
    /// The delivery queue has no room for the message.
    #[error("delivery queue full")]
    QueueFull,
    /// Talking to the control socket failed.
    #[error("control socket: {0}")]
    Control(#[source] std::io::Error),
    /// The control socket answered something that is not a JSON object.
    #[error("control socket: bad answer: {0}")]
    BadAnswer(String),
    /// The control socket refused the request.
    #[error("control socket refused the request: {0}")]
    Refused(String),
}

/// The running simulator. Cheap to clone; it stops when the
/// `CancellationToken` given to [`start`] is cancelled.
#[derive(Debug, Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    local: SocketAddr,
    tls: Option<SocketAddr>,
    control: Option<PathBuf>,
    tracker: TaskTracker,
}

impl SimHandle {
    /// The plain TCP listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The TLS listener's address, if one is open.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls
    }

    /// The control socket's path, if one is open.
    pub fn control_path(&self) -> Option<&Path> {
        self.control.as_deref()
    }

    /// Injects a mobile-originated message from `from` (customer) to `to`
    /// (service number), TON/NPI 1/1; returns the ids of its parts.
    ///
    /// # Errors
    /// [`SimError::TextTooLong`], [`SimError::QueueFull`].
    pub fn inject(&self, from: &str, to: &str, text: &str) -> Result<Vec<u64>, SimError> {
        self.inject_mo(&Mo::new(from, to, text))
    }

    /// Injects `mo`: it is delivered on a receiving bind, queued until one
    /// is bound, and sent again if its bind drops before the ESME
    /// acknowledged it. Returns the ids (tags) of its parts.
    ///
    /// # Errors
    /// [`SimError::TextTooLong`], [`SimError::QueueFull`] (nothing queued).
    pub fn inject_mo(&self, mo: &Mo) -> Result<Vec<u64>, SimError> {
        inject(&self.shared, mo)
    }

    /// The counters now.
    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Every received submit still in the record, oldest first.
    pub fn received(&self) -> Vec<ReceivedSubmit> {
        self.received_since(0)
    }

    /// The received submits with an index above `since`.
    pub fn received_since(&self, since: u64) -> Vec<ReceivedSubmit> {
        lock(&self.shared.records).since(since)
    }

    /// The knobs now.
    pub fn scenario(&self) -> Scenario {
        self.shared.scenario()
    }

    /// Changes knobs; connections see the change from their next PDU.
    /// Fractions are clamped into 0..=1.
    pub fn update(&self, f: impl FnOnce(&mut Scenario)) {
        let mut s = lock(&self.shared.scenario);
        f(&mut s);
        s.sanitise();
    }

    /// Sets the fraction of submits answered ESME_RTHROTTLED.
    pub fn set_throttle(&self, fraction: f64) {
        self.update(|s| s.throttle = fraction);
    }

    /// Drops each connection on every Nth submit (0: never).
    pub fn set_drop_every(&self, n: u64) {
        self.update(|s| s.drop_every = n);
    }

    /// Sets the delay before each submit_sm_resp.
    pub fn set_resp_delay_ms(&self, ms: u64) {
        self.update(|s| s.resp_delay_ms = ms);
    }

    /// Sets the delay before each receipt.
    pub fn set_receipt_delay_ms(&self, ms: u64) {
        self.update(|s| s.receipt_delay_ms = ms);
    }

    /// Waits until every listener and connection has ended (after the
    /// shutdown token was cancelled).
    pub async fn stopped(&self) {
        self.tracker.wait().await;
    }
}

fn inject(shared: &Shared, mo: &Mo) -> Result<Vec<u64>, SimError> {
    let reference = shared.next_reference();
    let probe = pdus::mo_requests(mo, reference, 0)?;
    let first = shared.next_tags(probe.len() as u64);
    let reqs = pdus::mo_requests(mo, reference, first)?;
    let now = crate::clock::now();
    let ids: Vec<u64> = reqs.iter().map(|r| r.tag).collect();
    {
        let mut out = lock(&shared.outbound);
        if out.room() < reqs.len() {
            return Err(SimError::QueueFull);
        }
        for req in reqs {
            let item = OutItem {
                req,
                kind: OutKind::Mo,
                due: now,
                sends: 0,
            };
            if out.push(item).is_err() {
                return Err(SimError::QueueFull);
            }
        }
    }
    tracing::info!(parts = ids.len(), "sim: mobile-originated message queued");
    tracing::debug!(from = %mo.from, to = %mo.to, text = %mo.text, "sim: mo text");
    shared.wake();
    Ok(ids)
}

/// Starts the simulator: binds its listeners (TCP, optional TLS, optional
/// control socket) and serves until `shutdown` is cancelled; then every
/// bound connection is unbound (briefly waiting for unbind_resp) and the
/// control socket file is removed.
///
/// # Errors
/// [`SimError::Listen`] when an address or path cannot be bound,
/// [`SimError::Config`] / [`SimError::Tls`] for an unusable TLS setup.
pub async fn start(cfg: SimConfig, shutdown: CancellationToken) -> Result<SimHandle, SimError> {
    let shared = Shared::new(
        Fixed {
            system_id: cfg.system_id.clone(),
            password: cfg.password.clone(),
            smsc_id: cfg.smsc_id.clone(),
            window: cfg.window,
            first_message_id: cfg.first_message_id,
        },
        cfg.scenario(),
        cfg.seed,
        cfg.record_capacity,
        cfg.queue_capacity,
    );
    let listen_err = |what: String| move |source| SimError::Listen { what, source };
    let tcp = TcpListener::bind(cfg.listen)
        .await
        .map_err(listen_err(cfg.listen.to_string()))?;
    let local = tcp
        .local_addr()
        .map_err(listen_err(cfg.listen.to_string()))?;
    let tls = match cfg.tls_listen {
        None => None,
        Some(addr) => {
            let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) else {
                return Err(SimError::Config(
                    "tls_listen needs tls_cert and tls_key".into(),
                ));
            };
            let read = |p: &Path| {
                std::fs::read(p).map_err(|e| SimError::Tls(format!("{}: {e}", p.display())))
            };
            let server = crate::tls::server_config(&read(cert)?, &read(key)?)
                .map_err(|e| SimError::Tls(e.to_string()))?;
            let l = TcpListener::bind(addr)
                .await
                .map_err(listen_err(addr.to_string()))?;
            let a = l.local_addr().map_err(listen_err(addr.to_string()))?;
            Some((l, tokio_rustls::TlsAcceptor::from(server), a))
        }
    };
    let control = match &cfg.control {
        None => None,
        Some(p) => Some(control::bind(p).await?),
    };

    let tracker = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(cfg.max_connections.max(1)));
    tracker.spawn(accept_loop(
        tcp,
        None,
        Arc::clone(&shared),
        shutdown.clone(),
        tracker.clone(),
        Arc::clone(&limit),
    ));
    let tls_addr = tls.as_ref().map(|(_, _, a)| *a);
    if let Some((l, acceptor, _)) = tls {
        tracker.spawn(accept_loop(
            l,
            Some(acceptor),
            Arc::clone(&shared),
            shutdown.clone(),
            tracker.clone(),
            limit,
        ));
    }
    if let Some(listener) = control {
        tracker.spawn(control::serve(
            listener,
            cfg.control.clone().unwrap_or_default(),
            Arc::clone(&shared),
            shutdown.clone(),
        ));
    }
    tracker.close();
    tracing::info!(addr = %local, tls = ?tls_addr, system_id = %cfg.system_id, "sim: listening");
    Ok(SimHandle {
        shared,
        local,
        tls: tls_addr,
        control: cfg.control,
        tracker,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    limit: Arc<Semaphore>,
) {
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "sim: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (shared, stop) = (Arc::clone(&shared), shutdown.clone());
        let peer = peer.to_string();
        match &tls {
            None => {
                tracker.spawn(async move {
                    conn::serve(tcp, peer, shared, stop).await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tracker.spawn(async move {
                    let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
                    match hs.await {
                        Ok(Ok(stream)) => conn::serve(stream, peer, shared, stop).await,
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "sim: tls handshake failed")
                        }
                        Err(_) => tracing::info!(%peer, "sim: tls handshake timed out"),
                    }
                    drop(permit);
                });
            }
        }
    }
}
