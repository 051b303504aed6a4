//! The reference async client of the agent socket, used by the CLI, the
//! console and the tests. It assigns request ids, matches responses by id,
//! and routes event lines (interleaved with responses on a subscribed
//! connection) to a bounded channel.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};

use super::proto::{DEFAULT_MAX_LINE, ErrorCode};

/// The longest line the client accepts from the server. Answers are not
/// bounded by the protocol's `max_line` (that bounds requests): a page of
/// 5 000 conversations is ~1 MB, a long transcript more. A longer line ends
/// the connection with a [`ClientError::Protocol`] naming this limit.
const MAX_INBOUND_LINE: usize = 64 << 20;

/// What can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or writing failed.
    #[error("agent socket: {0}")]
    Io(#[from] std::io::Error),
    /// The daemon closed the connection before answering.
    #[error("agent socket closed by the daemon")]
    Closed,
    /// The daemon sent something that is not the protocol.
    #[error("agent socket: malformed answer: {0}")]
    Protocol(String),
    /// The request line is longer than the daemon accepts.
    #[error("request of {len} bytes exceeds the line limit of {max}")]
    TooLong {
        /// The line's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The request needs a JSON object with an `op` (and `subscribe` goes
    /// through [`Client::subscribe`]).
    #[error("request must be a JSON object with an `op` other than `subscribe`")]
    BadRequest,
    /// The daemon answered with an error.
    #[error("{message} ({code})")]
    Remote {
        /// The stable code, kept as a string: a newer daemon may send codes
        /// this client does not know (see [`ClientError::code`]).
        code: String,
        /// The daemon's message for a person.
        message: String,
    },
}

impl ClientError {
    /// The error code, when the daemon sent one this version knows.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Remote { code, .. } => ErrorCode::parse(code),
            _ => None,
        }
    }
}

/// State shared by the client and its reader task.
#[derive(Debug, Default)]
struct Shared {
    /// Requests waiting for their answer, by id.
    pending: HashMap<u64, Waiter>,
    /// Where event lines go; installed when the `subscribe` answer is read,
    /// so events of an earlier subscription never reach a newer stream.
    events: Option<mpsc::Sender<Value>>,
    /// Set when the reader ended: no answer will come any more.
    closed: bool,
    /// An error answer that carried no id of ours (`busy`,
    /// `permission_denied`): why the daemon refused this connection.
    refused: Option<(String, String)>,
    /// Why the reader gave up on the connection's lines, if it did.
    unreadable: Option<String>,
}

impl Shared {
    fn closed_error(&self) -> ClientError {
        match (&self.refused, &self.unreadable) {
            (Some((code, message)), _) => ClientError::Remote {
                code: code.clone(),
                message: message.clone(),
            },
            (None, Some(why)) => ClientError::Protocol(why.clone()),
            (None, None) => ClientError::Closed,
        }
    }
}

type SharedRef = Arc<Mutex<Shared>>;

/// Who waits for an answer.
#[derive(Debug)]
struct Waiter {
    reply: oneshot::Sender<Result<Value, ClientError>>,
    /// For `subscribe`: the stream to install when the answer is `ok`.
    events: Option<mpsc::Sender<Value>>,
}

/// A connection to the agent socket. Requests may be issued concurrently
/// from several tasks through `&Client`.
#[derive(Debug)]
pub struct Client {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    next_id: AtomicU64,
    /// Longest request line sent; a longer one would only earn an id-less
    /// `line_too_long`, which could not be matched to its request.
    max_line: usize,
    shared: SharedRef,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Client {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// [`ClientError::Io`] when the socket cannot be reached.
    pub async fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).await?;
        let (rd, wr) = stream.into_split();
        let shared: SharedRef = Arc::default();
        let reader = tokio::spawn(read_loop(
            FramedRead::new(rd, LinesCodec::new_with_max_length(MAX_INBOUND_LINE)),
            shared.clone(),
        ));
        Ok(Client {
            writer: tokio::sync::Mutex::new(wr),
            next_id: AtomicU64::new(1),
            max_line: DEFAULT_MAX_LINE,
            shared,
            reader,
        })
    }

    /// Sets the longest request line sent (the `max_line` of `hello`).
    pub fn set_max_line(&mut self, max_line: usize) {
        self.max_line = max_line;
    }

    /// Sends `op` (a JSON object with `"op"` and the op's fields; any `id`
    /// is replaced) and waits for its answer's `result`.
    ///
    /// # Errors
    /// [`ClientError::Remote`] for an error answer; I/O, `Closed` or
    /// `Protocol` when the connection failed.
    pub async fn request(&self, op: Value) -> Result<Value, ClientError> {
        if op.get("op").and_then(Value::as_str) == Some("subscribe") {
            return Err(ClientError::BadRequest);
        }
        self.request_with(op, None).await
    }

    async fn request_with(
        &self,
        op: Value,
        events: Option<mpsc::Sender<Value>>,
    ) -> Result<Value, ClientError> {
        let Value::Object(mut obj) = op else {
            return Err(ClientError::BadRequest);
        };
        if !obj.get("op").is_some_and(Value::is_string) {
            return Err(ClientError::BadRequest);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        obj.insert("id".into(), id.into());
        let mut line = Value::Object(obj).to_string();
        if line.len() > self.max_line {
            return Err(ClientError::TooLong {
                len: line.len(),
                max: self.max_line,
            });
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut sh = lock(&self.shared);
            if sh.closed {
                return Err(sh.closed_error());
            }
            sh.pending.insert(id, Waiter { reply: tx, events });
        }
        line.push('\n');
        let sent = self.writer.lock().await.write_all(line.as_bytes()).await;
        if let Err(e) = sent {
            let mut sh = lock(&self.shared);
            sh.pending.remove(&id);
            if sh.closed {
                return Err(sh.closed_error());
            }
            return Err(ClientError::Io(e));
        }
        rx.await.unwrap_or(Err(ClientError::Closed))
    }

    /// Subscribes this connection to the event stream after `from` (events
    /// with `seq > from`; `None`: the durable `consumer`'s last ack). Returns
    /// the `subscribe` result (`from`, `head`) and a channel of event
    /// objects holding at most `capacity`.
    ///
    /// A consumer that falls `capacity` events behind is cut off: its
    /// channel ends (after the events it holds) while the connection keeps
    /// answering requests. It then calls `subscribe` again from the last seq
    /// it processed: the log is durable, so nothing is missed and nothing
    /// comes twice. Calling `subscribe` again also moves a live stream.
    ///
    /// # Errors
    /// As [`Client::request`].
    pub async fn subscribe(
        &self,
        from: Option<u64>,
        consumer: Option<&str>,
        capacity: usize,
    ) -> Result<(Value, mpsc::Receiver<Value>), ClientError> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let mut op = serde_json::json!({"op": "subscribe"});
        if let Some(f) = from {
            op["from"] = f.into();
        }
        if let Some(c) = consumer {
            op["consumer"] = c.into();
        }
        let res = self.request_with(op, Some(tx)).await?;
        Ok((res, rx))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn read_loop(
    mut rd: FramedRead<tokio::net::unix::OwnedReadHalf, LinesCodec>,
    shared: SharedRef,
) {
    while let Some(line) = rd.next().await {
        let line = match line {
            Ok(line) => line,
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                lock(&shared).unreadable = Some(format!(
                    "a line from the daemon is longer than {} MiB",
                    MAX_INBOUND_LINE >> 20
                ));
                break;
            }
            Err(LinesCodecError::Io(e)) => {
                tracing::debug!(error = %e, "agent client: reading the socket failed");
                break;
            }
        };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            tracing::debug!("agent client: unparsable line from the daemon");
            continue;
        };
        if v.get("ok").is_none() && v.get("event").is_some() {
            let mut sh = lock(&shared);
            if let Some(sink) = &sh.events {
                match sink.try_send(v) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // Never let a slow consumer hold up the answers:
                        // end its stream; it resubscribes from its last seq.
                        tracing::debug!("agent client: event consumer behind, stream ended");
                        sh.events = None;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => sh.events = None,
                }
            }
            continue;
        }
        let outcome = match v.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
            Some(false) => Err(remote_error(&v)),
            None => Err(ClientError::Protocol(format!(
                "line is neither a response nor an event: {}",
                truncate(&line)
            ))),
        };
        let id = v.get("id").and_then(Value::as_u64);
        let mut sh = lock(&shared);
        match id.and_then(|id| sh.pending.remove(&id)) {
            Some(w) => {
                if let (Ok(_), Some(events)) = (&outcome, w.events) {
                    sh.events = Some(events);
                }
                let _ = w.reply.send(outcome);
            }
            None => {
                // An error without our id (`busy`, `permission_denied`):
                // remembered as the reason the connection ends.
                if let Err(ClientError::Remote { code, message }) = outcome {
                    sh.refused = Some((code, message));
                }
            }
        }
    }
    let mut sh = lock(&shared);
    sh.closed = true;
    sh.events = None;
    let pending: Vec<_> = sh.pending.drain().map(|(_, w)| w).collect();
    for w in pending {
        let _ = w.reply.send(Err(sh.closed_error()));
    }
}

fn remote_error(v: &Value) -> ClientError {
    let e = v.get("error");
    let field = |k| {
        e.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    ClientError::Remote {
        code: field("code"),
        message: field("message"),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(120).collect()
}
