//! The simulator's control socket: JSON lines on a Unix socket, one request
//! per line, one answer per line, and its client.
//!
//! Requests are objects with an `op` and, optionally, an `id` echoed in the
//! answer:
//! - `{"op":"inject","from":"447911123456","to":"447400123456","text":"Yes",
//!   "ton":1,"npi":1}` → `{"ok":true,"ids":[…]}` (one id per part; `ton`
//!   and `npi` default to 1);
//! - `{"op":"stats"}` → `{"ok":true,"stats":{…}}` ([`super::SimStats`]);
//! - `{"op":"received","since":0}` → `{"ok":true,"received":[…]}`
//!   ([`super::ReceivedSubmit`]s with an index above `since`);
//! - `{"op":"set", …any Scenario field…}` → `{"ok":true,"scenario":{…}}`
//!   (e.g. `"throttle":0.1,"drop_every":50,"resp_delay_ms":200`);
//! - `{"op":"scenario"}` → `{"ok":true,"scenario":{…}}`.
//!
//! Errors answer `{"ok":false,"error":"…"}` and the connection carries on.
//! Lines are limited to [`MAX_LINE`] octets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use super::pdus::Mo;
use super::scenario::Scenario;
use super::state::{Shared, lock};
use super::{SimError, inject};

/// Longest request or answer line.
pub const MAX_LINE: usize = 1 << 20;
/// Control connections served at once.
const MAX_CLIENTS: usize = 16;

/// Binds the control socket at `path`, replacing a stale socket file that
/// nothing answers on.
pub(crate) async fn bind(path: &Path) -> Result<UnixListener, SimError> {
    let err = |source| SimError::Listen {
        what: path.display().to_string(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another simulator answers on this control socket",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    UnixListener::bind(path).map_err(err)
}

/// Serves control connections until `shutdown`; then removes the socket
/// file.
pub(crate) async fn serve(
    listener: UnixListener,
    path: PathBuf,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let limit = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "sim control: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (shared, stop) = (Arc::clone(&shared), shutdown.clone());
        tokio::spawn(async move {
            client(stream, &shared, stop).await;
            drop(permit);
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn client(stream: UnixStream, shared: &Shared, stop: CancellationToken) {
    let (rd, mut wr) = stream.into_split();
    let mut lines = FramedRead::new(rd, LinesCodec::new_with_max_length(MAX_LINE));
    loop {
        let line = tokio::select! {
            () = stop.cancelled() => return,
            l = lines.next() => l,
        };
        let answer = match line {
            None => return,
            Some(Ok(l)) => handle_line(shared, &l),
            Some(Err(e)) => {
                // Over-long line: answered, then the codec resynchronises
                // at the next newline. An I/O error ends the connection.
                if matches!(e, tokio_util::codec::LinesCodecError::Io(_)) {
                    return;
                }
                json!({"ok": false, "error": e.to_string()})
            }
        };
        let mut out = answer.to_string();
        out.push('\n');
        if wr.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Answers one request line.
pub(crate) fn handle_line(shared: &Shared, line: &str) -> Value {
    let req: Value = match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return json!({"ok": false, "error": "request is not a json object"}),
        Err(e) => return json!({"ok": false, "error": format!("not json: {e}")}),
    };
    let mut answer = match handle(shared, &req) {
        Ok(v) => v,
        Err(e) => json!({"ok": false, "error": e}),
    };
    if let (Some(id), Value::Object(m)) = (req.get("id"), &mut answer) {
        m.insert("id".into(), id.clone());
    }
    answer
}

fn handle(shared: &Shared, req: &Value) -> Result<Value, String> {
    let op = req.get("op").and_then(Value::as_str).ok_or("missing op")?;
    let mut fields = req.clone();
    if let Value::Object(m) = &mut fields {
        m.remove("op");
        m.remove("id");
    }
    match op {
        "inject" => {
            let mo: Mo = serde_json::from_value(fields).map_err(|e| format!("inject: {e}"))?;
            let ids = inject(shared, &mo).map_err(|e| e.to_string())?;
            Ok(json!({"ok": true, "ids": ids}))
        }
        "stats" => Ok(json!({"ok": true, "stats": shared.stats()})),
        "received" => {
            let since = req.get("since").and_then(Value::as_u64).unwrap_or(0);
            let r = lock(&shared.records).since(since);
            Ok(json!({"ok": true, "received": r}))
        }
        "scenario" => Ok(json!({"ok": true, "scenario": shared.scenario()})),
        "set" => {
            let mut s = lock(&shared.scenario);
            let mut current = serde_json::to_value(&*s).map_err(|e| e.to_string())?;
            if let (Value::Object(cur), Value::Object(new)) = (&mut current, fields) {
                for (k, v) in new {
                    cur.insert(k, v);
                }
            }
            let mut updated: Scenario =
                serde_json::from_value(current).map_err(|e| format!("set: {e}"))?;
            updated.sanitise();
            *s = updated.clone();
            drop(s);
            tracing::info!(scenario = ?updated, "sim: scenario changed");
            Ok(json!({"ok": true, "scenario": updated}))
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

/// Sends one request object to the control socket at `control` and returns
/// the answer.
///
/// # Errors
/// [`SimError::Control`] when the socket cannot be reached or closes,
/// [`SimError::BadAnswer`] when the answer is not a JSON object,
/// [`SimError::Refused`] when it says `"ok": false`.
pub async fn control_request(control: &Path, request: &Value) -> Result<Value, SimError> {
    let stream = UnixStream::connect(control)
        .await
        .map_err(SimError::Control)?;
    let (rd, mut wr) = stream.into_split();
    let mut out = request.to_string();
    out.push('\n');
    wr.write_all(out.as_bytes())
        .await
        .map_err(SimError::Control)?;
    let mut lines = FramedRead::new(rd, LinesCodec::new_with_max_length(MAX_LINE));
    let line = match lines.next().await {
        Some(Ok(l)) => l,
        Some(Err(e)) => return Err(SimError::Control(std::io::Error::other(e.to_string()))),
        None => {
            return Err(SimError::Control(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "control socket closed without answering",
            )));
        }
    };
    let v: Value = serde_json::from_str(&line).map_err(|e| SimError::BadAnswer(e.to_string()))?;
    if !v.is_object() {
        return Err(SimError::BadAnswer(line));
    }
    if v.get("ok") != Some(&Value::Bool(true)) {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(SimError::Refused(msg.to_owned()));
    }
    Ok(v)
}

/// Injects a mobile-originated message through the control socket (what
/// `smppgw sim-inject` calls); returns the answer, `{"ok":true,"ids":[…]}`.
///
/// # Errors
/// As [`control_request`].
pub async fn inject_via_socket(
    control: &Path,
    from: &str,
    to: &str,
    text: &str,
) -> Result<Value, SimError> {
    control_request(
        control,
        &json!({"op": "inject", "from": from, "to": to, "text": text}),
    )
    .await
}
