//! The tokio shell of one session, and the only tokio code in `session/`:
//! it owns the socket (TCP or TLS, anything `AsyncRead + AsyncWrite`), reads
//! frames through [`SmppCodec`], writes what the machine transmits, keeps
//! one sleep reset to [`Session::poll_timeout`] (quinn's `drive_timer`), and
//! moves commands in and events out over bounded channels.
//!
//! # Shape
//! - [`connect_and_bind`]: ESME side. TCP connect (DNS resolved on every
//!   call; from [`DriverConfig::local_address`] when set) under
//!   `connect_timeout`, optional TLS handshake under
//!   `tls_handshake_timeout`, then the bind; returns a bound
//!   [`SessionHandle`] or a [`BindError`] that says why (for the backoff
//!   policy: [`BindError::failure`]).
//! - [`spawn`]: either role over an already connected stream (the simulator
//!   accepts sockets and spawns `Session<Mc>`s with it).
//! - [`SessionHandle`]: `submit` (answers at once: a sequence number or
//!   [`Blocked`]; after `Blocked`, wait for [`Event::WindowOpen`]),
//!   `respond` (the deliver_sm_resp, after storing), `unbind`,
//!   `next_event`, and `closed` for the [`SessionEnd`].
//!
//! # Flow control
//! - The read path comes first in the loop (`biased`), so responses are
//!   dispatched before any command is taken: bulk submits cannot starve it
//!   (CARRIERS.md 1, "timeouts in your own process").
//! - Every queue is bounded: commands and events are bounded channels;
//!   events are handed over through `reserve()` permits inside `select!`
//!   (nothing is lost on cancellation); frames go to a writer task through a
//!   bounded channel. While the event consumer lags (more than
//!   [`HIGH_WATER`] events waiting) or the writer lags, the driver stops
//!   reading the socket; TCP pushes back on the peer. Timers keep running.
//! - Writes happen in a separate task so a peer that stops reading cannot
//!   block the timers: its enquire_link then times out and the session ends.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, WriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use super::machine::{
    Blocked, CloseReason, DeliverToken, Event, RespondError, Session, SessionConfig, SubmitRequest,
};
use super::state::{Esme, Role};
use super::status::{BindClass, BindFailure, classify_bind_failure};
use crate::clock;
use crate::pdu::{CommandStatus, Frame, FrameError, SmppCodec};
use crate::tls::TlsError;

/// The driver stops reading the socket while this many events (or frames to
/// write) wait in the machine.
pub const HIGH_WATER: usize = 64;

/// Shell settings of one session.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// TCP connect, DNS included (default 10 s).
    pub connect_timeout: Duration,
    /// TLS handshake (default 10 s).
    pub tls_handshake_timeout: Duration,
    /// Largest PDU accepted (`command_length`; default 65 536).
    pub max_pdu_len: usize,
    /// Commands waiting for the driver (default 64).
    pub command_capacity: usize,
    /// Events waiting for the consumer (default 256).
    pub event_capacity: usize,
    /// Frames waiting for the writer (default 64).
    pub write_capacity: usize,
    /// After the session closed, how long queued frames (an unbind_resp)
    /// may take to be written (default 2 s). Events are not cut short: the
    /// consumer gets every one, up to [`Event::Closed`].
    pub linger: Duration,
    /// The local address the TCP socket binds to before connecting (the
    /// carrier's `local_address`: the egress address its IP allow-list
    /// knows); `None`: the system picks. Only peer addresses of the same
    /// family are tried.
    pub local_address: Option<IpAddr>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_pdu_len: 65_536,
            command_capacity: 64,
            event_capacity: 256,
            write_capacity: 64,
            linger: Duration::from_secs(2),
            local_address: None,
        }
    }
}

/// TLS towards a carrier: the client configuration and the name the
/// certificate must carry (never inferred from the port).
#[derive(Debug, Clone)]
pub struct TlsTarget {
    /// Trust roots and optional client certificate, from
    /// [`crate::tls::client_config`].
    pub config: Arc<ClientConfig>,
    /// The name checked against the certificate, from
    /// [`crate::tls::server_name`] (the host, or the carrier's SNI
    /// override).
    pub server_name: ServerName<'static>,
}

/// Where and how to bind.
#[derive(Debug, Clone)]
pub struct BindConfig {
    /// Host name or address, resolved on every connect.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// `Some`: TLS with these settings.
    pub tls: Option<TlsTarget>,
    /// The session itself.
    pub session: SessionConfig,
    /// The shell's settings.
    pub driver: DriverConfig,
}

/// Why [`connect_and_bind`] has no bound session to give.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// TCP connect failed (refused, unreachable, DNS).
    #[error("connect failed: {0}")]
    Connect(#[source] std::io::Error),
    /// The socket could not be bound to the configured local address (not
    /// an address of this host, or no peer address of its family).
    #[error("cannot connect from local address {address}: {source}")]
    LocalAddress {
        /// The configured local address.
        address: IpAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// TCP connect did not finish in time.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The TLS handshake failed (certificate, name, protocol).
    #[error("tls: {0}")]
    Tls(#[source] TlsError),
    /// The TLS handshake did not finish in time.
    #[error("tls handshake timed out")]
    TlsTimeout,
    /// The SMSC refused the bind (`ESME_RALYBND` included).
    #[error("bind refused with status {:#010x} ({})", status.0, class.as_str())]
    Refused {
        /// The status of the bind_resp or generic_nack.
        status: CommandStatus,
        /// How to back off.
        class: BindClass,
    },
    /// No bind_resp in time.
    #[error("bind response timed out")]
    BindTimeout,
    /// The connection closed (or reset) before the bind_resp.
    #[error("connection closed before the bind response")]
    Closed,
}

impl BindError {
    /// The failure in the terms of [`classify_bind_failure`], which picks
    /// the backoff policy.
    pub fn failure(&self) -> BindFailure {
        match self {
            BindError::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                BindFailure::ConnectRefused
            }
            // The supervisor names a local address failure itself.
            BindError::Connect(_) | BindError::LocalAddress { .. } => BindFailure::ConnectFailed,
            BindError::Closed => BindFailure::ResetBeforeBindResp,
            BindError::ConnectTimeout | BindError::TlsTimeout => BindFailure::ConnectTimeout,
            BindError::Tls(_) => BindFailure::Tls,
            BindError::Refused { status, .. } => BindFailure::Status(status.0),
            BindError::BindTimeout => BindFailure::BindRespTimeout,
        }
    }

    /// Its class, as [`classify_bind_failure`] sorts it.
    pub fn class(&self) -> BindClass {
        classify_bind_failure(self.failure()).class
    }
}

/// What the transport did wrong, when it ended a session.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The framing broke (`command_length` out of range) or the socket
    /// failed while reading.
    #[error("read failed: {0}")]
    Read(#[source] FrameError),
    /// Writing failed (the writer task ended early).
    #[error("write failed")]
    Write,
    /// The driver task panicked or was aborted.
    #[error("driver task ended abnormally")]
    Task,
}

/// How a session ended: the last [`Event::Closed`] plus what the transport
/// said.
#[derive(Debug)]
pub struct SessionEnd {
    /// Why the machine closed.
    pub reason: CloseReason,
    /// Whether the bind had been up.
    pub was_bound: bool,
    /// Tags still unanswered, in send order (re-queue them as possible
    /// duplicates).
    pub unanswered: Vec<u64>,
    /// A transport failure, if one ended it.
    pub transport: Option<TransportError>,
}

/// A command for the driver.
#[derive(Debug)]
pub enum Command {
    /// [`Session::submit`]; the answer comes back on `reply`.
    Submit {
        /// The request.
        req: SubmitRequest,
        /// The sequence number, or why nothing was sent.
        reply: oneshot::Sender<Result<u32, Blocked>>,
    },
    /// [`Session::respond`].
    Respond {
        /// From [`Event::Deliver`] / [`Event::Submit`].
        token: DeliverToken,
        /// `ESME_ROK` once stored; `ESME_RX_T_APPN` when storing failed.
        status: CommandStatus,
    },
    /// [`Session::respond_with_id`] (the MC answering a submit).
    RespondWithId {
        /// From [`Event::Submit`].
        token: DeliverToken,
        /// The status.
        status: CommandStatus,
        /// The message id.
        message_id: String,
    },
    /// [`Session::unbind`]: graceful unbind.
    Unbind,
    /// [`Session::abort`]: end now without an unbind (after a grace period
    /// ran out; the simulator's dropped connection).
    Abort,
    /// [`Session::transmit_raw`]: write these bytes as they are (the
    /// simulator's garbage PDUs).
    Raw(bytes::Bytes),
}

/// Why a command did not reach the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Nothing was sent: keep the request and retry after
    /// [`Event::WindowOpen`] (or elsewhere when `Closing`).
    #[error("blocked: {0}")]
    Blocked(#[from] Blocked),
    /// The session has ended.
    #[error("session ended")]
    Gone,
}

/// The caller's side of a running session.
#[derive(Debug)]
pub struct SessionHandle {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    task: JoinHandle<SessionEnd>,
    peer_system_id: String,
}

impl SessionHandle {
    /// Sends one message-carrying request; returns its sequence number.
    ///
    /// # Errors
    /// [`HandleError::Blocked`]: nothing was sent (window full, throttled,
    /// closing); [`HandleError::Gone`]: the session ended.
    ///
    /// # Cancel safety
    /// If cancelled after the command was queued, the request may still be
    /// sent; its outcome then arrives as an event under its tag.
    pub async fn submit(&self, req: SubmitRequest) -> Result<u32, HandleError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Submit { req, reply })
            .await
            .map_err(|_| HandleError::Gone)?;
        Ok(rx.await.map_err(|_| HandleError::Gone)??)
    }

    /// Answers an incoming deliver_sm/data_sm; call it once what it carried
    /// is stored.
    ///
    /// # Errors
    /// [`HandleError::Gone`]: the session ended; the peer will redeliver.
    pub async fn respond(
        &self,
        token: DeliverToken,
        status: CommandStatus,
    ) -> Result<(), HandleError> {
        self.command(Command::Respond { token, status }).await
    }

    /// Answers an incoming submit (MC role) with a message id.
    ///
    /// # Errors
    /// [`HandleError::Gone`]: the session ended.
    pub async fn respond_with_id(
        &self,
        token: DeliverToken,
        status: CommandStatus,
        message_id: String,
    ) -> Result<(), HandleError> {
        self.command(Command::RespondWithId {
            token,
            status,
            message_id,
        })
        .await
    }

    /// Starts the graceful unbind (drain the window, unbind, await
    /// unbind_resp). Keep reading events until `None`, then [`Self::closed`].
    ///
    /// # Errors
    /// [`HandleError::Gone`]: the session already ended.
    pub async fn unbind(&self) -> Result<(), HandleError> {
        self.command(Command::Unbind).await
    }

    /// Ends the session at once without an unbind; what is in flight comes
    /// back in [`SessionEnd::unanswered`].
    ///
    /// # Errors
    /// [`HandleError::Gone`]: the session already ended.
    pub async fn abort(&self) -> Result<(), HandleError> {
        self.command(Command::Abort).await
    }

    async fn command(&self, c: Command) -> Result<(), HandleError> {
        self.commands.send(c).await.map_err(|_| HandleError::Gone)
    }

    /// The next event; `None` once the session has ended and every event
    /// (the last is [`Event::Closed`]) was taken.
    ///
    /// # Cancel safety
    /// Cancel safe: no event is lost.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// A sender for commands, for another task.
    pub fn commands(&self) -> mpsc::Sender<Command> {
        self.commands.clone()
    }

    /// The peer's system_id from the bind (empty before it).
    pub fn peer_system_id(&self) -> &str {
        &self.peer_system_id
    }

    /// Waits for the driver to finish; events not taken yet are returned
    /// with the end (deliver tokens among them can no longer be answered).
    pub async fn closed(mut self) -> (SessionEnd, Vec<Event>) {
        let mut rest = Vec::new();
        while let Some(e) = self.events.recv().await {
            rest.push(e);
        }
        let end = self.task.await.unwrap_or_else(|_| SessionEnd {
            reason: CloseReason::TransportClosed,
            was_bound: false,
            unanswered: Vec::new(),
            transport: Some(TransportError::Task),
        });
        (end, rest)
    }

    /// Parts for callers that want to own them separately: command sender,
    /// event receiver, and the task yielding the [`SessionEnd`].
    pub fn into_parts(
        self,
    ) -> (
        mpsc::Sender<Command>,
        mpsc::Receiver<Event>,
        JoinHandle<SessionEnd>,
    ) {
        (self.commands, self.events, self.task)
    }
}

/// Connects, optionally runs TLS, binds as an ESME, and returns the bound
/// session.
///
/// # Errors
/// [`BindError`], which [`BindError::failure`] maps onto the backoff
/// policies.
///
/// # Cancel safety
/// Dropping the future drops the connection (and the session task with its
/// channels); nothing else is left behind.
pub async fn connect_and_bind(cfg: &BindConfig) -> Result<SessionHandle, BindError> {
    let d = &cfg.driver;
    if cfg.session.bind.password_over_spec() {
        // Sent whole all the same (CARRIERS.md 6); the password itself is
        // never logged.
        tracing::warn!(
            system_id = %cfg.session.bind.system_id,
            "bind password is longer than the 8 characters SMPP 3.4 allows; sending it unchanged"
        );
    }
    let tcp = tokio::time::timeout(
        d.connect_timeout,
        connect_tcp(&cfg.host, cfg.port, d.local_address),
    )
    .await
    .map_err(|_| BindError::ConnectTimeout)??;
    let _ = tcp.set_nodelay(true);
    let handle = match &cfg.tls {
        Some(t) => {
            let tls = tokio::time::timeout(
                d.tls_handshake_timeout,
                crate::tls::connect(tcp, t.config.clone(), t.server_name.clone()),
            )
            .await
            .map_err(|_| BindError::TlsTimeout)?
            .map_err(BindError::Tls)?;
            spawn(
                tls,
                Session::<Esme>::new(cfg.session.clone(), clock::now()),
                d,
            )
        }
        None => spawn(
            tcp,
            Session::<Esme>::new(cfg.session.clone(), clock::now()),
            d,
        ),
    };
    await_bound(handle).await
}

/// Opens the TCP connection to `host:port` (resolved now), from `local`
/// when given: the socket is bound to `(local, 0)` before connecting, and
/// only peer addresses of its family are tried, in resolver order.
async fn connect_tcp(host: &str, port: u16, local: Option<IpAddr>) -> Result<TcpStream, BindError> {
    let Some(address) = local else {
        return TcpStream::connect((host, port))
            .await
            .map_err(BindError::Connect);
    };
    let local_error = |source| BindError::LocalAddress { address, source };
    let peers = tokio::net::lookup_host((host, port))
        .await
        .map_err(BindError::Connect)?;
    let mut last = None;
    for peer in peers.filter(|p| p.is_ipv4() == address.is_ipv4()) {
        let socket = if address.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(BindError::Connect)?;
        socket
            .bind(SocketAddr::new(address, 0))
            .map_err(local_error)?;
        match socket.connect(peer).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => BindError::Connect(e),
        None => local_error(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("{host} has no address of the same family"),
        )),
    })
}

/// Reads events until the bind is up or has failed.
async fn await_bound(mut h: SessionHandle) -> Result<SessionHandle, BindError> {
    let mut refused = None;
    while let Some(e) = h.events.recv().await {
        match e {
            Event::Bound { system_id, .. } => {
                h.peer_system_id = system_id;
                return Ok(h);
            }
            Event::BindFailed { status, class } => refused = Some((status, class)),
            Event::Closed { reason, .. } => {
                return Err(match (reason, refused) {
                    (CloseReason::BindTimeout, _) => BindError::BindTimeout,
                    (_, Some((status, class))) => BindError::Refused { status, class },
                    _ => BindError::Closed,
                });
            }
            // Quirks, an early enquire_link answered, ...: nothing to act on.
            _ => {}
        }
    }
    Err(BindError::Closed)
}

/// Runs `session` over an already connected `stream` in a new task.
pub fn spawn<R, S>(stream: S, session: Session<R>, cfg: &DriverConfig) -> SessionHandle
where
    R: Role,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (cmd_tx, cmd_rx) = mpsc::channel(cfg.command_capacity.max(1));
    let (ev_tx, ev_rx) = mpsc::channel(cfg.event_capacity.max(1));
    let task = tokio::spawn(run(stream, session, cfg.clone(), cmd_rx, ev_tx));
    SessionHandle {
        commands: cmd_tx,
        events: ev_rx,
        task,
        peer_system_id: String::new(),
    }
}

/// Writes frames in order; flushes when the queue runs dry; shuts the write
/// side down when the driver drops its sender.
async fn write_loop<S: AsyncWrite>(
    wr: WriteHalf<S>,
    mut rx: mpsc::Receiver<Frame>,
) -> std::io::Result<()> {
    let mut w = BufWriter::new(wr);
    while let Some(f) = rx.recv().await {
        w.write_all(&f.bytes).await?;
        if rx.is_empty() {
            // One turn of the scheduler first: frames the driver is about
            // to hand over go out in the same write (one send per frame
            // was a quarter of the CPU a message costs under load).
            tokio::task::yield_now().await;
        }
        if rx.is_empty() {
            w.flush().await?;
        }
    }
    w.flush().await?;
    w.shutdown().await
}

/// The driver loop. See the module docs.
async fn run<R, S>(
    stream: S,
    mut session: Session<R>,
    cfg: DriverConfig,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<Event>,
) -> SessionEnd
where
    R: Role,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let mut reader = FramedRead::new(rd, SmppCodec::new(cfg.max_pdu_len));
    let (write_tx, write_rx) = mpsc::channel::<Frame>(cfg.write_capacity.max(1));
    let writer = tokio::spawn(write_loop(wr, write_rx));

    let sleep = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(sleep);
    let mut next_frame: Option<Frame> = None;
    let mut next_event: Option<Event> = None;
    let mut end: Option<(CloseReason, bool, Vec<u64>)> = None;
    let mut transport: Option<TransportError> = None;
    let mut read_open = true;
    let mut commands_open = true;
    let mut events_open = true;
    let mut writer_open = true;
    let mut linger_until: Option<std::time::Instant> = None;

    loop {
        if next_frame.is_none() && writer_open {
            next_frame = session.poll_transmit();
        }
        if next_event.is_none() {
            next_event = session.poll_event();
            if let Some(Event::Closed {
                reason,
                was_bound,
                unanswered,
            }) = &next_event
            {
                end = Some((*reason, *was_bound, unanswered.clone()));
            }
            if !events_open {
                // Nobody listens: events are dropped (unanswered deliver
                // tokens mean the peer redelivers).
                next_event = None;
                if session.events_pending() > 0 {
                    continue;
                }
            }
        }
        let closed = session.is_closed();
        if closed {
            // Frames left (an unbind_resp) get `linger` to be written;
            // events are all delivered, however slow the consumer (a lost
            // SubmitResp would leave a message in limbo).
            let until = *linger_until.get_or_insert_with(|| clock::now() + cfg.linger);
            if next_frame.is_some() && clock::now() >= until {
                next_frame = None;
                writer_open = false;
            }
            if next_frame.is_none() && next_event.is_none() {
                break;
            }
        }
        let deadline = if closed {
            linger_until.filter(|_| next_frame.is_some())
        } else {
            session.poll_timeout()
        };
        if let Some(d) = deadline {
            sleep.as_mut().reset(tokio::time::Instant::from_std(d));
        }
        let can_read = read_open
            && !closed
            && session.events_pending() < HIGH_WATER
            && session.transmit_pending() < HIGH_WATER;

        tokio::select! {
            biased;
            item = reader.next(), if can_read => {
                let now = clock::now();
                match item {
                    Some(Ok(frame)) => session.handle_frame(now, frame.bytes),
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "session transport read failed");
                        transport = Some(TransportError::Read(e));
                        read_open = false;
                        session.handle_closed(now);
                    }
                    None => {
                        read_open = false;
                        session.handle_closed(now);
                    }
                }
            }
            () = &mut sleep, if deadline.is_some() => {
                if closed {
                    // Linger over: the frames still queued are dropped.
                    next_frame = None;
                    writer_open = false;
                    continue;
                }
                // Never earlier than the deadline the sleep was set to, so
                // a timer that fires a hair early cannot spin the loop.
                let now = deadline.map_or_else(clock::now, |d| clock::now().max(d));
                session.handle_timeout(now);
            }
            permit = write_tx.reserve(), if next_frame.is_some() => match permit {
                Ok(p) => {
                    if let Some(f) = next_frame.take() {
                        p.send(f);
                    }
                    // Hand over whatever else is ready without a new turn.
                    while let Ok(p) = write_tx.try_reserve() {
                        match session.poll_transmit() {
                            Some(f) => p.send(f),
                            None => break,
                        }
                    }
                }
                Err(_) => {
                    transport.get_or_insert(TransportError::Write);
                    writer_open = false;
                    next_frame = None;
                    session.handle_closed(clock::now());
                }
            },
            permit = events.reserve(), if next_event.is_some() && events_open => match permit {
                Ok(p) => {
                    if let Some(e) = next_event.take() {
                        p.send(e);
                    }
                }
                Err(_) => {
                    events_open = false;
                    next_event = None;
                }
            },
            // Still open after the close: a submit then gets its
            // `Blocked::Closing` at once instead of waiting for the linger.
            cmd = commands.recv(), if commands_open => {
                let now = clock::now();
                match cmd {
                    Some(Command::Submit { req, reply }) => {
                        let _ = reply.send(session.submit(now, &req));
                    }
                    Some(Command::Respond { token, status }) => {
                        log_respond(session.respond(token, status));
                    }
                    Some(Command::RespondWithId { token, status, message_id }) => {
                        log_respond(session.respond_with_id(token, status, &message_id));
                    }
                    Some(Command::Unbind) => session.unbind(now),
                    Some(Command::Abort) => session.abort(),
                    Some(Command::Raw(bytes)) => {
                        if !closed {
                            session.transmit_raw(bytes);
                        }
                    }
                    None => {
                        // Every handle is gone: end the bind politely.
                        commands_open = false;
                        session.unbind(now);
                    }
                }
            }
        }
    }

    drop(write_tx);
    let stop_writer = writer.abort_handle();
    match tokio::time::timeout(cfg.linger, writer).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::debug!(error = %e, "session transport write failed"),
        Ok(Err(_)) => {}
        // A peer that stopped reading must not keep the socket open.
        Err(_) => stop_writer.abort(),
    }
    let (reason, was_bound, unanswered) =
        end.unwrap_or((CloseReason::TransportClosed, false, Vec::new()));
    tracing::debug!(
        reason = reason.as_str(),
        was_bound,
        unanswered = unanswered.len(),
        "session ended"
    );
    SessionEnd {
        reason,
        was_bound,
        unanswered,
        transport,
    }
}

fn log_respond(r: Result<(), RespondError>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "response not sent; the peer will redeliver");
    }
}
