//! `smppgw console`: the reference agent console, a web page served as a client of the agent socket.
//!
//! The console has no private path into the daemon: every request of the
//! page becomes one op on the agent socket (through
//! [`crate::agent::client::Client`]), and every browser tab's event stream is
//! its own socket subscription, carried to the page as Server-Sent Events
//! with `id: <seq>`, so a reconnect (`Last-Event-ID`) resumes where it
//! stopped: nothing missed, nothing twice.
//!
//! - `guard`: the pure request checks (loopback, `Host`, same origin, JSON,
//!   token);
//! - `upstream`: the shared socket connection for requests and the
//!   per-tab subscriptions;
//! - `server`: the axum router (page, `/api/{op}`, `/api/events`);
//! - `page/`: the embedded page (HTML, CSS, JavaScript, EN + JA strings), no
//!   build step.
//!
//! Loopback by default. A listen address other than loopback needs a token
//! and [`Console::bind`] refuses to start without one.

mod guard;
mod server;
mod upstream;

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// The default listen address of `smppgw console`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// How to run the console.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Where the web server listens (port 0: any free port; see
    /// [`Console::local_addr`]).
    pub listen: SocketAddr,
    /// The daemon's agent socket.
    pub socket: PathBuf,
    /// The access token. Required when `listen` is not a loopback address;
    /// when set, every request needs it (a `?token=` login sets a cookie, or
    /// `Authorization: Bearer`).
    pub token: Option<String>,
}

impl ConsoleOptions {
    /// Options for a loopback console on [`DEFAULT_LISTEN`] without a token.
    pub fn new(socket: impl Into<PathBuf>) -> ConsoleOptions {
        ConsoleOptions {
            listen: DEFAULT_LISTEN,
            socket: socket.into(),
            token: None,
        }
    }
}

/// Why the console could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A non-loopback listen address without a token.
    #[error(
        "console listen address {0} is not loopback: a token is required (--token-file), refusing to start"
    )]
    TokenRequired(SocketAddr),
    /// The token is empty or has characters a header cannot carry.
    #[error("console token must be non-empty printable ASCII without spaces")]
    BadToken,
    /// The token file could not be read.
    #[error("console token file {path}: {source}")]
    TokenFile {
        /// The file named by `--token-file`.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("console cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("console server: {0}")]
    Serve(std::io::Error),
}

/// Reads a token file (`--token-file`): its content without surrounding
/// whitespace.
///
/// # Errors
/// [`ConsoleError::TokenFile`] when it cannot be read,
/// [`ConsoleError::BadToken`] when it is empty or not printable ASCII.
pub fn read_token_file(path: &std::path::Path) -> Result<String, ConsoleError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConsoleError::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConsoleError::BadToken);
    }
    Ok(token.to_string())
}

/// A bound console, not yet serving: lets the caller learn the address
/// (port 0) before [`Console::run`].
#[derive(Debug)]
pub struct Console {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    opts: ConsoleOptions,
}

impl Console {
    /// Checks the options and binds the listen address.
    ///
    /// # Errors
    /// [`ConsoleError::TokenRequired`] for a non-loopback address without a
    /// token, [`ConsoleError::BadToken`], [`ConsoleError::Bind`].
    pub async fn bind(opts: ConsoleOptions) -> Result<Console, ConsoleError> {
        match &opts.token {
            None if !guard::is_loopback(&opts.listen) => {
                return Err(ConsoleError::TokenRequired(opts.listen));
            }
            Some(t) if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(ConsoleError::BadToken);
            }
            _ => {}
        }
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| ConsoleError::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ConsoleError::Bind {
            addr: opts.listen,
            source,
        })?;
        Ok(Console {
            listener,
            addr,
            opts,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to open in a browser (`http://127.0.0.1:8080/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until `shutdown` fires, then closes every event stream and
    /// returns.
    ///
    /// # Errors
    /// [`ConsoleError::Serve`] when the server fails.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ConsoleError> {
        server::run(self.listener, self.opts, shutdown).await
    }
}

/// Binds and serves until `shutdown` fires ([`Console::bind`] then
/// [`Console::run`]).
///
/// # Errors
/// As [`Console::bind`] and [`Console::run`].
pub async fn serve(opts: ConsoleOptions, shutdown: CancellationToken) -> Result<(), ConsoleError> {
    Console::bind(opts).await?.run(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_read_without_surrounding_whitespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cr3t-token\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "s3cr3t-token");
    }

    #[test]
    fn rejects_empty_or_unreadable_token_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(ConsoleError::BadToken)
        ));
        std::fs::write(&path, "two words").unwrap();
        assert!(matches!(
            read_token_file(&path),
            Err(ConsoleError::BadToken)
        ));
        assert!(matches!(
            read_token_file(&dir.path().join("missing")),
            Err(ConsoleError::TokenFile { .. })
        ));
    }
}
