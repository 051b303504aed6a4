//! Replays the steps of `proto/examples.jsonl` against a running agent
//! socket (the I/O half of [`super::examples`]), for the tests that keep the
//! spec and the daemon in step.
//!
//! Requests go over one raw connection (so `send_raw` lines reach the
//! server verbatim); answers are read skipping event lines. Events are read
//! from a second connection subscribed at the head before the first step:
//! each pattern of a step's `events` must be matched, in order, by a later
//! event; events in between (a `message_submitted` nobody listed) are
//! skipped.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::client::Client;
use super::examples::{Bindings, Example, Outgoing, match_value, substitute};

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The socket failed.
    #[error("step `{title}`: {reason}")]
    Io {
        /// The step.
        title: String,
        /// What failed.
        reason: String,
    },
    /// An answer or event did not match its pattern.
    #[error("step `{title}`: {mismatch}; got {got}")]
    Mismatch {
        /// The step.
        title: String,
        /// Where and why.
        mismatch: super::examples::Mismatch,
        /// The line received.
        got: Value,
    },
    /// Nothing matching arrived within the step's patience.
    #[error("step `{title}`: no {what} within {secs} s")]
    Timeout {
        /// The step.
        title: String,
        /// "answer" or "event".
        what: &'static str,
        /// The patience.
        secs: u64,
    },
}

/// Replays `steps` against the socket at `path`, waiting at most `patience`
/// for each answer or event. Returns the number of steps replayed.
///
/// # Errors
/// The first [`ReplayError`].
pub async fn replay(
    path: &Path,
    steps: &[Example],
    patience: Duration,
) -> Result<usize, ReplayError> {
    let io = |title: &str, reason: String| ReplayError::Io {
        title: title.into(),
        reason,
    };
    let needs_events = steps.iter().any(|s| !s.events.is_empty());
    let mut events = None;
    let mut events_client = None;
    if needs_events {
        let c = Client::connect(path)
            .await
            .map_err(|e| io("subscribe", e.to_string()))?;
        // Learn the head, then follow from it.
        let (res, _) = c
            .subscribe(Some(u64::MAX), None, 1)
            .await
            .map_err(|e| io("subscribe", e.to_string()))?;
        let head = res["head"].as_u64().unwrap_or(0);
        let (_, rx) = c
            .subscribe(Some(head), None, 4096)
            .await
            .map_err(|e| io("subscribe", e.to_string()))?;
        events = Some(rx);
        events_client = Some(c);
    }
    let stream = UnixStream::connect(path)
        .await
        .map_err(|e| io("connect", e.to_string()))?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut b = Bindings::default();
    for step in steps {
        let t = step.title.as_str();
        let (line, id) = match &step.send {
            Outgoing::Json(v) => {
                let v = substitute(v, &b).map_err(|m| io(t, m.to_string()))?;
                (v.to_string(), v.get("id").cloned())
            }
            Outgoing::Raw(s) => (s.clone(), None),
        };
        wr.write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| io(t, e.to_string()))?;
        let answer = async {
            loop {
                let mut buf = String::new();
                let n = rd.read_line(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    return Err("connection closed".to_string());
                }
                let v: Value = serde_json::from_str(&buf).map_err(|e| e.to_string())?;
                if v.get("ok").is_none() {
                    continue; // an event on this connection
                }
                // A raw line's answer may have `id: null`; a JSON one must
                // carry its own id (answers may come out of order only when
                // several requests are in flight, which a replay never has).
                if id.is_none() || v.get("id") == id.as_ref() {
                    return Ok(v);
                }
            }
        };
        let got = tokio::time::timeout(patience, answer)
            .await
            .map_err(|_| ReplayError::Timeout {
                title: t.into(),
                what: "answer",
                secs: patience.as_secs(),
            })?
            .map_err(|e| io(t, e))?;
        match_value(&step.expect, &got, &mut b).map_err(|mismatch| ReplayError::Mismatch {
            title: t.into(),
            mismatch,
            got: got.clone(),
        })?;
        for pattern in &step.events {
            let Some(rx) = events.as_mut() else { break };
            let found = async {
                while let Some(ev) = rx.recv().await {
                    let mut trial = b.clone();
                    if match_value(pattern, &ev, &mut trial).is_ok() {
                        return Some(trial);
                    }
                }
                None
            };
            match tokio::time::timeout(patience, found).await {
                Ok(Some(bound)) => b = bound,
                _ => {
                    return Err(ReplayError::Timeout {
                        title: t.into(),
                        what: "event",
                        secs: patience.as_secs(),
                    });
                }
            }
        }
    }
    drop(events_client);
    Ok(steps.len())
}
