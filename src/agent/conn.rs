//! One agent connection: reads request lines (bounded length), dispatches
//! them to the [`Handler`] with bounded concurrency, streams events from the
//! log after `subscribe`, and writes responses and events through one writer
//! task with a bounded queue.
//!
//! Framing note (tokio-util 0.7): after a `Decoder` error `FramedRead` yields
//! `None` once and does not decode what is already buffered until more bytes
//! arrive, so a plain `LinesCodec` error would stall or end the connection.
//! [`LineCodec`] therefore turns "line too long" and "not UTF-8" into items;
//! the inner `LinesCodec` keeps discarding the rest of an overlong line.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::codec::{Decoder, FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::proto::{
    AgentError, ErrorCode, Op, PROTOCOL_VERSION, error_line, event_seq, hello_result, ok_line,
    parse_request,
};
use super::server::{Handler, PeerInfo};

/// Per-connection bounds, copied from the server's config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_line: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) out_queue: usize,
    pub(crate) event_batch: usize,
    pub(crate) shutdown_drain: Duration,
}

// === LineCodec ===

/// One framed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete UTF-8 line without its `\n` / `\r\n`.
    Text(String),
    /// A line over the limit; it is being (or was) discarded.
    TooLong,
    /// A complete line that is not UTF-8.
    NotUtf8,
}

/// `LinesCodec` with the recoverable errors turned into [`Line`] items.
#[derive(Debug)]
pub(crate) struct LineCodec {
    inner: LinesCodec,
}

impl LineCodec {
    pub(crate) fn new(max_line: usize) -> LineCodec {
        LineCodec {
            inner: LinesCodec::new_with_max_length(max_line),
        }
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, std::io::Error> {
        map_line(self.inner.decode(buf))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, std::io::Error> {
        map_line(self.inner.decode_eof(buf))
    }
}

fn map_line(r: Result<Option<String>, LinesCodecError>) -> Result<Option<Line>, std::io::Error> {
    match r {
        Ok(l) => Ok(l.map(Line::Text)),
        Err(LinesCodecError::MaxLineLengthExceeded) => Ok(Some(Line::TooLong)),
        // LinesCodec's only decode-time I/O error is its UTF-8 check, raised
        // after the line left the buffer.
        Err(LinesCodecError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            Ok(Some(Line::NotUtf8))
        }
        Err(LinesCodecError::Io(e)) => Err(e),
    }
}

// === serve ===

/// Sends a line to the writer unless the connection is being torn down.
async fn emit(tx: &mpsc::Sender<String>, line: String, stop: &CancellationToken) -> bool {
    tokio::select! {
        r = tx.send(line) => r.is_ok(),
        _ = stop.cancelled() => false,
    }
}

/// Serves one connection until EOF, a write failure or cancellation.
pub(crate) async fn serve<H: Handler>(
    stream: UnixStream,
    peer: PeerInfo,
    handler: Arc<H>,
    limits: Limits,
    cancel: CancellationToken,
) {
    let (rd, wr) = stream.into_split();
    let mut reader = FramedRead::new(rd, LineCodec::new(limits.max_line));
    let (tx, mut rx) = mpsc::channel::<String>(limits.out_queue);
    // Fires when the writer is gone (peer stopped reading or closed).
    let dead = CancellationToken::new();
    let writer = {
        let dead = dead.clone();
        tokio::spawn(async move {
            let mut out = BufWriter::new(wr);
            'write: while let Some(line) = rx.recv().await {
                // Batch what is queued into one flush.
                let mut next = Some(line);
                while let Some(line) = next {
                    let r = async {
                        out.write_all(line.as_bytes()).await?;
                        out.write_all(b"\n").await
                    };
                    if r.await.is_err() {
                        break 'write;
                    }
                    next = rx.try_recv().ok();
                }
                if out.flush().await.is_err() {
                    break;
                }
            }
            dead.cancel();
        })
    };
    // Stops the event pump: server shutdown or a dead writer.
    let stop = CancellationToken::new();
    let mut inflight: JoinSet<()> = JoinSet::new();
    let mut subscription: Option<Subscription> = None;
    let mut eof = false;

    loop {
        if inflight.len() >= limits.max_in_flight {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = dead.cancelled() => break,
                _ = inflight.join_next() => continue,
            }
        }
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = dead.cancelled() => break,
            Some(_) = inflight.join_next(), if !inflight.is_empty() => continue,
            next = reader.next() => next,
        };
        let line = match next {
            None => {
                eof = true;
                break;
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "agent connection read failed");
                eof = true;
                break;
            }
            Some(Ok(line)) => line,
        };
        let text = match line {
            Line::Text(t) => t,
            Line::TooLong => {
                let err = AgentError::new(
                    ErrorCode::LineTooLong,
                    format!(
                        "request line longer than {} bytes; it was discarded",
                        limits.max_line
                    ),
                );
                if !emit(&tx, error_line(None, &err), &dead).await {
                    break;
                }
                continue;
            }
            Line::NotUtf8 => {
                let err = AgentError::bad_request("request line is not valid UTF-8");
                if !emit(&tx, error_line(None, &err), &dead).await {
                    break;
                }
                continue;
            }
        };
        let req = match parse_request(&text) {
            Ok(r) => r,
            Err(rej) => {
                tracing::debug!(code = %rej.error.code, "agent request rejected");
                if !emit(&tx, error_line(rej.id.as_ref(), &rej.error), &dead).await {
                    break;
                }
                continue;
            }
        };
        let id = req.id;
        match req.op {
            Op::Hello { protocol, client } => {
                let line = match protocol {
                    Some(p) if p != PROTOCOL_VERSION => error_line(
                        Some(&id),
                        &AgentError::new(
                            ErrorCode::UnsupportedVersion,
                            format!("this server speaks {PROTOCOL_VERSION}, not {p}"),
                        ),
                    ),
                    _ => {
                        tracing::debug!(client = ?client, "agent hello");
                        ok_line(&id, hello_result(limits.max_line))
                    }
                };
                if !emit(&tx, line, &dead).await {
                    break;
                }
            }
            Op::Subscribe { from, consumer } => {
                // A second subscribe moves the stream: the old pump stops
                // first, so every event after this answer is the new one's.
                if let Some(old) = subscription.take() {
                    old.stop.cancel();
                    let _ = old.pump.await;
                }
                let op = Op::Subscribe {
                    from,
                    consumer: consumer.clone(),
                };
                let result = match handler.handle(op, &peer).await {
                    Ok(v) => v,
                    Err(e) => {
                        if !emit(&tx, error_line(Some(&id), &e), &dead).await {
                            break;
                        }
                        continue;
                    }
                };
                let start = result
                    .get("from")
                    .and_then(Value::as_u64)
                    .or(from)
                    .unwrap_or(0);
                let mut watch = handler.watch_seq();
                let head = *watch.borrow_and_update();
                let mut result = match result {
                    Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                };
                result.insert("from".into(), start.into());
                result.insert("head".into(), head.into());
                // The answer is queued before the pump starts, so it precedes
                // every event on the wire.
                if !emit(&tx, ok_line(&id, Value::Object(result)), &dead).await {
                    break;
                }
                let sub_stop = stop.child_token();
                let pump = tokio::spawn(pump(
                    handler.clone(),
                    start,
                    watch,
                    tx.clone(),
                    limits.event_batch,
                    sub_stop.clone(),
                ));
                subscription = Some(Subscription {
                    consumer,
                    pump,
                    stop: sub_stop,
                });
            }
            op => {
                let op = match op {
                    Op::Ack {
                        seq,
                        consumer: None,
                    } => Op::Ack {
                        seq,
                        consumer: subscription.as_ref().and_then(|s| s.consumer.clone()),
                    },
                    op => op,
                };
                let handler = handler.clone();
                let tx = tx.clone();
                inflight.spawn(async move {
                    let line = match handler.handle(op, &peer).await {
                        Ok(v) => ok_line(&id, v),
                        Err(e) => error_line(Some(&id), &e),
                    };
                    // Not cancel-aware: an in-flight request is answered even
                    // during shutdown (bounded by the drain time).
                    let _ = tx.send(line).await;
                });
            }
        }
    }

    stop.cancel();
    if let Some(s) = subscription.take() {
        let _ = s.pump.await;
    }
    let shutting_down = cancel.is_cancelled() && !eof && !dead.is_cancelled();
    let drain = async {
        while inflight.join_next().await.is_some() {}
        if shutting_down {
            // Answer whatever still arrives until the peer hangs up.
            let err = AgentError::new(
                ErrorCode::ShuttingDown,
                "the daemon is shutting down; reconnect later",
            );
            while let Some(Ok(line)) = reader.next().await {
                let id = match &line {
                    Line::Text(t) => parse_request(t)
                        .map(|r| Some(r.id))
                        .unwrap_or_else(|r| r.id),
                    _ => None,
                };
                if tx.send(error_line(id.as_ref(), &err)).await.is_err() {
                    break;
                }
            }
        }
    };
    if tokio::time::timeout(limits.shutdown_drain, drain)
        .await
        .is_err()
    {
        tracing::debug!("agent connection drain timed out");
    }
    inflight.abort_all();
    drop(tx);
    let _ = tokio::time::timeout(limits.shutdown_drain, writer).await;
}

/// The event stream of a subscribed connection.
struct Subscription {
    /// The durable consumer name given at `subscribe`, used by `ack`.
    consumer: Option<String>,
    /// Reads the log and feeds the writer.
    pump: tokio::task::JoinHandle<()>,
    /// Stops this pump (a new `subscribe`, or the connection's end).
    stop: CancellationToken,
}

/// Cursor mode: reads the log after `cursor` in batches, then waits for the
/// head to move. A slow peer only slows this task (its queue is bounded);
/// producers never wait for it, and the durable log loses nothing.
async fn pump<H: Handler>(
    handler: Arc<H>,
    mut cursor: u64,
    mut watch: watch::Receiver<u64>,
    tx: mpsc::Sender<String>,
    batch: usize,
    stop: CancellationToken,
) {
    loop {
        // Mark the head seen before reading, so a bump during the read is
        // noticed by `changed()` below.
        let _ = *watch.borrow_and_update();
        let events = tokio::select! {
            r = handler.events_after(cursor, batch) => r,
            _ = stop.cancelled() => return,
        };
        let events = match events {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "agent event stream: log read failed");
                return;
            }
        };
        if events.is_empty() {
            tokio::select! {
                r = watch.changed() => if r.is_err() { return },
                _ = stop.cancelled() => return,
            }
            continue;
        }
        for ev in events {
            let Some(seq) = event_seq(&ev) else {
                tracing::warn!("agent event stream: event without seq skipped");
                continue;
            };
            if seq <= cursor {
                // Never twice, whatever the log returns.
                continue;
            }
            if !emit(&tx, ev.to_string(), &stop).await {
                return;
            }
            cursor = seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Line> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(l) = codec.decode(&mut buf).unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn overlong_line_is_reported_once_and_the_next_line_survives() {
        let mut c = LineCodec::new(8);
        let out = decode_all(&mut c, b"0123456789abcdef\n{\"a\":1}\n");
        assert_eq!(out, vec![Line::TooLong, Line::Text("{\"a\":1}".into())]);
    }

    #[test]
    fn overlong_line_split_across_reads_is_discarded() {
        let mut c = LineCodec::new(8);
        let mut buf = BytesMut::from(&b"0123456789"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Line::TooLong));
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"more bytes\nok\n");
        assert_eq!(c.decode(&mut buf).unwrap(), Some(Line::Text("ok".into())));
    }

    #[test]
    fn non_utf8_line_is_reported_and_the_next_line_survives() {
        let mut c = LineCodec::new(64);
        let out = decode_all(&mut c, b"\xff\xfe\x00\n{}\r\n");
        assert_eq!(out, vec![Line::NotUtf8, Line::Text("{}".into())]);
    }
}
