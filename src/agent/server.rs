//! The agent socket server: binds the Unix socket (stale-file check, mode,
//! owner, group), admits connections (peer uid allow-list, connection cap)
//! and runs one `conn` task per connection until the cancellation token
//! fires. What the requests do is the [`Handler`]'s business (the daemon
//! implements it); framing, dispatch and the event stream are the server's.

use std::ffi::CString;
use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conn::{self, Limits};
use super::proto::{AgentError, DEFAULT_MAX_LINE, ErrorCode, Op, error_line};

/// What the daemon implements to serve the agent socket.
///
/// The server answers `hello` itself and routes every other op here,
/// including `subscribe` (so the daemon can resolve a durable consumer's
/// position: its result must contain `"from": <u64>`, the seq after which
/// events are sent) and `ack` (its `consumer` is filled in from the
/// connection's `subscribe` when the request did not name one).
pub trait Handler: Send + Sync + 'static {
    /// Performs one op for a peer; the `Ok` value is the response's `result`.
    fn handle(
        &self,
        op: Op,
        peer: &PeerInfo,
    ) -> impl Future<Output = Result<Value, AgentError>> + Send;

    /// Up to `limit` events with `seq > after`, in ascending `seq` order, as
    /// the JSON objects the socket sends (each with its `"seq"`).
    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Value>, AgentError>> + Send;

    /// The highest committed event seq. It must be bumped only after the
    /// events up to it can be read through [`Handler::events_after`].
    fn watch_seq(&self) -> watch::Receiver<u64>;
}

/// Who is on the other end of a connection (from `SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer process's effective uid.
    pub uid: u32,
    /// The peer process's effective gid.
    pub gid: u32,
    /// The peer's pid, when the platform tells.
    pub pid: Option<i32>,
}

/// A user or group, by number or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A numeric uid / gid.
    Id(u32),
    /// A name looked up in the user / group database.
    Name(String),
}

/// The validated settings of the agent socket.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the socket lives.
    pub path: PathBuf,
    /// Permission bits set on the socket file (e.g. `0o660`); `None` leaves
    /// what the umask gave.
    pub mode: Option<u32>,
    /// Owner of the socket file (needs privileges to change).
    pub owner: Option<Principal>,
    /// Group of the socket file (the agent layer's group).
    pub group: Option<Principal>,
    /// When set, only peers with one of these uids are served.
    pub allowed_uids: Option<Vec<u32>>,
    /// At most this many connections at once; more are answered `busy`.
    pub max_connections: usize,
    /// Longest accepted request line in bytes (newline excluded).
    pub max_line: usize,
    /// Requests handled at once per connection; beyond, reading pauses.
    pub max_in_flight: usize,
    /// Lines queued for writing per connection; beyond, producers wait (a
    /// subscription then simply reads the log later).
    pub out_queue: usize,
    /// Events read from the log per `events_after` call.
    pub event_batch: usize,
    /// After cancellation: how long a connection may take to finish
    /// in-flight requests and answer later ones `shutting_down`.
    pub shutdown_drain: Duration,
}

impl ServerConfig {
    /// Defaults for everything but the path: mode `0o660`, 64 connections,
    /// 64 KiB lines, 8 requests in flight, 256 queued lines, batches of 256
    /// events, 1 s drain.
    pub fn new(path: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            path: path.into(),
            mode: Some(0o660),
            owner: None,
            group: None,
            allowed_uids: None,
            max_connections: 64,
            max_line: DEFAULT_MAX_LINE,
            max_in_flight: 8,
            out_queue: 256,
            event_batch: 256,
            shutdown_drain: Duration::from_secs(1),
        }
    }
}

/// Failures to set up the socket (fail-stop: the daemon does not start).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another process listens on the path.
    #[error("{0}: another server is listening on this socket")]
    InUse(PathBuf),
    /// The path exists and is not a socket; it is left alone.
    #[error("{0}: exists and is not a socket")]
    NotASocket(PathBuf),
    /// A user or group name that does not exist.
    #[error("unknown {kind} `{name}`")]
    UnknownPrincipal {
        /// "user" or "group".
        kind: &'static str,
        /// The name looked up.
        name: String,
    },
    /// An I/O failure with what was being done.
    #[error("{what} {path}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A bound agent socket, ready to [`Server::run`].
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    config: ServerConfig,
}

impl Server {
    /// Binds the socket: removes a stale socket file (only if nothing
    /// listens on it), binds, then applies mode, owner and group.
    ///
    /// # Errors
    /// [`ServerError`] when the path is in use, is not a socket, a name is
    /// unknown or a system call fails.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let path = config.path.clone();
        let io = |what| {
            let path = path.clone();
            move |source| ServerError::Io { what, path, source }
        };
        remove_stale(&path)?;
        let listener = UnixListener::bind(&path).map_err(io("binding"))?;
        if let Some(mode) = config.mode {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(io("setting the mode of"))?;
        }
        if config.owner.is_some() || config.group.is_some() {
            let uid = config.owner.as_ref().map(resolve_user).transpose()?;
            let gid = config.group.as_ref().map(resolve_group).transpose()?;
            chown(&path, uid, gid).map_err(io("changing the owner of"))?;
        }
        Ok(Server { listener, config })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Serves connections until `cancel` fires, then stops accepting, lets
    /// each connection finish its in-flight requests (answering later ones
    /// `shutting_down`) within `shutdown_drain`, removes the socket file and
    /// returns.
    pub async fn run<H: Handler>(self, handler: Arc<H>, cancel: CancellationToken) {
        let Server { listener, config } = self;
        let limits = Limits {
            max_line: config.max_line,
            max_in_flight: config.max_in_flight.max(1),
            out_queue: config.out_queue.max(1),
            event_batch: config.event_batch.max(1),
            shutdown_drain: config.shutdown_drain,
        };
        let slots = Arc::new(Semaphore::new(config.max_connections));
        let open = Arc::new(AtomicUsize::new(0));
        let tracker = TaskTracker::new();
        let mut backoff = Duration::from_millis(50);
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => r,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    backoff = Duration::from_millis(50);
                    stream
                }
                Err(e) => {
                    // EMFILE and friends: wait, do not spin.
                    tracing::warn!(error = %e, "agent socket accept failed");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            let peer = match stream.peer_cred() {
                Ok(c) => PeerInfo {
                    uid: c.uid(),
                    gid: c.gid(),
                    pid: c.pid(),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "agent socket: no peer credentials");
                    continue;
                }
            };
            if let Some(allowed) = &config.allowed_uids {
                if !allowed.contains(&peer.uid) {
                    tracing::warn!(uid = peer.uid, "agent socket: peer uid not allowed");
                    let err = AgentError::new(
                        ErrorCode::PermissionDenied,
                        format!("uid {} may not use this socket", peer.uid),
                    );
                    tracker.spawn(refuse(stream, err));
                    continue;
                }
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tracing::warn!(
                    max = config.max_connections,
                    "agent socket: connection limit reached"
                );
                let err = AgentError::new(
                    ErrorCode::Busy,
                    format!(
                        "too many connections (limit {}); try again later",
                        config.max_connections
                    ),
                );
                tracker.spawn(refuse(stream, err));
                continue;
            };
            tracing::debug!(uid = peer.uid, pid = ?peer.pid, "agent connection");
            let handler = handler.clone();
            let cancel = cancel.clone();
            let open = open.clone();
            crate::metrics::agent_connections(open.fetch_add(1, Ordering::Relaxed) + 1);
            tracker.spawn(async move {
                conn::serve(stream, peer, handler, limits, cancel).await;
                crate::metrics::agent_connections(open.fetch_sub(1, Ordering::Relaxed) - 1);
                drop(permit);
            });
        }
        drop(listener);
        if let Err(e) = std::fs::remove_file(&config.path) {
            tracing::debug!(error = %e, "agent socket file not removed");
        }
        tracker.close();
        tracker.wait().await;
    }
}

/// Writes one error line to a connection that is not served, then closes it.
async fn refuse(mut stream: UnixStream, err: AgentError) {
    let mut line = error_line(None, &err);
    line.push('\n');
    let write = async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// Removes a socket file nobody listens on; refuses a live socket or a file
/// that is not a socket.
fn remove_stale(path: &Path) -> Result<(), ServerError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::Io {
                what: "inspecting",
                path: path.into(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket(path.into()));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(ServerError::InUse(path.into())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing stale agent socket");
            std::fs::remove_file(path).map_err(|source| ServerError::Io {
                what: "removing the stale socket",
                path: path.into(),
                source,
            })
        }
        Err(source) => Err(ServerError::Io {
            what: "probing",
            path: path.into(),
            source,
        }),
    }
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // (uid_t)-1 / (gid_t)-1 leave the id unchanged.
    let uid = uid.unwrap_or(u32::MAX) as libc::uid_t;
    let gid = gid.unwrap_or(u32::MAX) as libc::gid_t;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::chown(c.as_ptr(), uid, gid) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Resolves a user to its uid (`getpwnam_r`).
///
/// # Errors
/// [`ServerError::UnknownPrincipal`] when no such user exists.
pub fn resolve_user(p: &Principal) -> Result<u32, ServerError> {
    let name = match p {
        Principal::Id(id) => return Ok(*id),
        Principal::Name(n) => n,
    };
    let unknown = || ServerError::UnknownPrincipal {
        kind: "user",
        name: name.clone(),
    };
    let c = CString::new(name.as_bytes()).map_err(|_| unknown())?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: all-zero is a valid `passwd` (pointers null, ids 0).
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf.len()` is its size.
        let rc = unsafe {
            libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out)
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return if rc == 0 && !out.is_null() {
            Ok(pwd.pw_uid)
        } else {
            Err(unknown())
        };
    }
}

/// Resolves a group to its gid (`getgrnam_r`).
///
/// # Errors
/// [`ServerError::UnknownPrincipal`] when no such group exists.
pub fn resolve_group(p: &Principal) -> Result<u32, ServerError> {
    let name = match p {
        Principal::Id(id) => return Ok(*id),
        Principal::Name(n) => n,
    };
    let unknown = || ServerError::UnknownPrincipal {
        kind: "group",
        name: name.clone(),
    };
    let c = CString::new(name.as_bytes()).map_err(|_| unknown())?;
    let mut buf = vec![0 as libc::c_char; 1024];
    loop {
        // SAFETY: all-zero is a valid `group` (pointers null, gid 0).
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf.len()` is its size.
        let rc = unsafe {
            libc::getgrnam_r(c.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut out)
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return if rc == 0 && !out.is_null() {
            Ok(grp.gr_gid)
        } else {
            Err(unknown())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_by_name_and_ids_as_given() {
        assert_eq!(resolve_user(&Principal::Name("root".into())).unwrap(), 0);
        assert_eq!(resolve_group(&Principal::Name("root".into())).unwrap(), 0);
        assert_eq!(resolve_group(&Principal::Id(1234)).unwrap(), 1234);
    }

    #[test]
    fn rejects_unknown_user_and_group_names() {
        let p = Principal::Name("no-such-smppgw-principal".into());
        assert!(matches!(
            resolve_user(&p),
            Err(ServerError::UnknownPrincipal { kind: "user", .. })
        ));
        assert!(matches!(
            resolve_group(&p),
            Err(ServerError::UnknownPrincipal { kind: "group", .. })
        ));
    }

    #[test]
    fn rejects_a_path_that_is_not_a_socket_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("file");
        std::fs::write(&p, b"keep me").unwrap();
        assert!(matches!(remove_stale(&p), Err(ServerError::NotASocket(_))));
        assert_eq!(std::fs::read(&p).unwrap(), b"keep me");
    }
}
