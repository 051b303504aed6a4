//! The agent socket server over real Unix sockets in a tempdir.
//!
//! What is under test here is the server's framing, dispatch, subscription
//! and admission, not the daemon's rules: the store and the daemon are not
//! wired in yet, so a small in-test `Handler` answers ops from an in-memory
//! `Vec` of events (playing the durable log) and a few canned results.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use smppgw::agent::client::{Client, ClientError};
use smppgw::agent::examples;
use smppgw::agent::replay;
use smppgw::agent::server::Principal;
use smppgw::agent::{AgentError, ErrorCode, Handler, Op, PeerInfo, Server, ServerConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

// === the in-test handler ===

struct TestHandler {
    log: Mutex<Vec<Value>>,
    head: watch::Sender<u64>,
    acks: Mutex<Vec<(Option<String>, u64)>>,
    /// `status` waits for this, so a test can hold a request in flight.
    gate: Notify,
    entered: Notify,
}

impl TestHandler {
    fn new() -> Arc<TestHandler> {
        Arc::new(TestHandler {
            log: Mutex::new(Vec::new()),
            head: watch::channel(0).0,
            acks: Mutex::new(Vec::new()),
            gate: Notify::new(),
            entered: Notify::new(),
        })
    }

    /// Appends an event to the "log" and bumps the head, as the store would
    /// after a commit. Never waits for anybody.
    fn append(&self, text: &str) -> u64 {
        let mut log = self.log.lock().unwrap();
        let seq = log.len() as u64 + 1;
        log.push(json!({
            "seq": seq, "at": "2026-11-25T13:00:00.123Z", "event": "message_received",
            "conversation": 1, "owner": "alice", "service": "support",
            "customer": "+447911123456", "message": seq, "text": text, "incomplete": false
        }));
        drop(log);
        self.head.send_replace(seq);
        seq
    }
}

impl Handler for TestHandler {
    async fn handle(&self, op: Op, peer: &PeerInfo) -> Result<Value, AgentError> {
        match op {
            Op::Services {} => Ok(json!({"services": [{"name": "support", "sms": true}]})),
            Op::Subscribe { from, consumer } => {
                let from = from.unwrap_or_else(|| {
                    let acks = self.acks.lock().unwrap();
                    acks.iter()
                        .rev()
                        .find(|(c, _)| c.is_some() && *c == consumer)
                        .map_or(0, |(_, s)| *s)
                });
                Ok(json!({"from": from}))
            }
            Op::Ack { seq, consumer } => {
                self.acks.lock().unwrap().push((consumer, seq));
                Ok(json!({"seq": seq}))
            }
            Op::Send(s) => {
                let seq = self.append(&s.text);
                Ok(json!({"conversation": 1, "message": seq, "peer_uid": peer.uid}))
            }
            Op::Transcript { conversation, .. } => Err(AgentError::new(
                ErrorCode::UnknownConversation,
                format!("no conversation {conversation}"),
            )),
            Op::Status {} => {
                self.entered.notify_one();
                self.gate.notified().await;
                Ok(json!({"links": []}))
            }
            Op::OptOuts { .. } => panic!("a handler bug"),
            // An answer of the size asked for (bytes of filler).
            Op::Count { text, .. } => Ok(json!({"filler": "x".repeat(text.parse().unwrap())})),
            other => Err(AgentError::internal(format!(
                "{} not served by the test handler",
                other.name()
            ))),
        }
    }

    async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Value>, AgentError> {
        if after == 666 {
            return Err(AgentError::internal("the log is unreadable"));
        }
        let log = self.log.lock().unwrap();
        let start = (after as usize).min(log.len());
        Ok(log[start..].iter().take(limit).cloned().collect())
    }

    fn watch_seq(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }
}

// === harness ===

struct Running {
    _dir: tempfile::TempDir,
    path: PathBuf,
    handler: Arc<TestHandler>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start(tune: impl FnOnce(&mut ServerConfig)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let mut config = ServerConfig::new(&path);
    tune(&mut config);
    let server = Server::bind(config).await.unwrap();
    let handler = TestHandler::new();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(server.run(handler.clone(), cancel.clone()));
    Running {
        _dir: dir,
        path,
        handler,
        cancel,
        task,
    }
}

/// A raw line-level connection, for input no client would send.
struct Raw {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Raw {
    async fn connect(r: &Running) -> Raw {
        let (rd, wr) = UnixStream::connect(&r.path).await.unwrap().into_split();
        Raw {
            rd: BufReader::new(rd),
            wr,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
    }

    async fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.rd.read_line(&mut line).await.unwrap();
        assert!(n > 0, "connection closed");
        serde_json::from_str(&line).unwrap()
    }

    async fn hello_still_works(&mut self) {
        self.send(b"{\"id\":\"alive\",\"op\":\"hello\"}\n").await;
        let v = self.recv().await;
        assert_eq!(v["id"], "alive", "{v}");
        assert_eq!(v["result"]["protocol"], "smppgw-agent/1");
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

async fn take(rx: &mut tokio::sync::mpsc::Receiver<Value>, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(rx.recv().await.expect("event stream ended"));
    }
    out
}

// === bad input ===

#[tokio::test]
async fn rejects_bad_input_with_the_right_code_and_keeps_serving() {
    let r = start(|c| c.max_line = 1024).await;
    let mut raw = Raw::connect(&r).await;
    let long = format!(
        "{{\"id\":1,\"op\":\"hello\",\"pad\":\"{}\"}}\n",
        "x".repeat(5000)
    );
    let corpus: Vec<(&str, Vec<u8>, Value, &str)> = vec![
        (
            "not json",
            b"hello there\n".to_vec(),
            Value::Null,
            "bad_request",
        ),
        ("empty line", b"\n".to_vec(), Value::Null, "bad_request"),
        (
            "json array",
            b"[1,2]\n".to_vec(),
            Value::Null,
            "bad_request",
        ),
        (
            "binary garbage",
            b"\xff\xfe\x00\x01\x9f\n".to_vec(),
            Value::Null,
            "bad_request",
        ),
        (
            "no id",
            b"{\"op\":\"services\"}\n".to_vec(),
            Value::Null,
            "bad_request",
        ),
        (
            "unknown op",
            b"{\"id\":\"u\",\"op\":\"launch\"}\n".to_vec(),
            json!("u"),
            "unknown_op",
        ),
        (
            "op not a string",
            b"{\"id\":4,\"op\":17}\n".to_vec(),
            json!(4),
            "bad_request",
        ),
        (
            "wrong type",
            b"{\"id\":5,\"op\":\"transcript\",\"conversation\":\"seven\"}\n".to_vec(),
            json!(5),
            "bad_request",
        ),
        (
            "missing field",
            b"{\"id\":6,\"op\":\"count\",\"service\":\"support\"}\n".to_vec(),
            json!(6),
            "bad_request",
        ),
        (
            "wrong version",
            b"{\"id\":7,\"op\":\"hello\",\"protocol\":\"smppgw-agent/9\"}\n".to_vec(),
            json!(7),
            "unsupported_version",
        ),
        (
            "line over the limit",
            long.into_bytes(),
            Value::Null,
            "line_too_long",
        ),
    ];
    for (what, bytes, id, want) in corpus {
        raw.send(&bytes).await;
        let v = raw.recv().await;
        assert_eq!(v["ok"], false, "{what}: {v}");
        assert_eq!(code(&v), want, "{what}: {v}");
        assert_eq!(v["id"], id, "{what}: {v}");
        assert!(
            !v["error"]["message"].as_str().unwrap().is_empty(),
            "{what}"
        );
        raw.hello_still_works().await;
    }
}

#[tokio::test]
async fn overlong_line_arriving_in_pieces_is_discarded_whole() {
    let r = start(|c| c.max_line = 256).await;
    let mut raw = Raw::connect(&r).await;
    raw.send(&[b'a'; 300]).await;
    let v = raw.recv().await;
    assert_eq!(code(&v), "line_too_long");
    // The rest of the same line must not be parsed as a request.
    raw.send(&[b'{'; 300]).await;
    raw.send(b"\"tail\"}\n").await;
    raw.hello_still_works().await;
}

#[tokio::test]
async fn ids_are_echoed_whatever_their_scalar_type() {
    let r = start(|_| {}).await;
    let mut raw = Raw::connect(&r).await;
    for id in [
        json!("req-1"),
        json!(42),
        json!(1.5),
        json!(null),
        json!(true),
    ] {
        let line = format!("{}\n", json!({"id": id, "op": "services"}));
        raw.send(line.as_bytes()).await;
        let v = raw.recv().await;
        assert_eq!(v["id"], id);
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["result"]["services"][0]["name"], "support");
    }
    // An error answer carries the id too.
    raw.send(b"{\"id\":\"t\",\"op\":\"transcript\",\"conversation\":404}\n")
        .await;
    let v = raw.recv().await;
    assert_eq!(
        (v["id"].as_str(), code(&v)),
        (Some("t"), "unknown_conversation")
    );
}

// === the event stream ===

#[tokio::test]
async fn subscribe_from_n_gets_exactly_the_later_events_then_live_ones() {
    let r = start(|c| c.event_batch = 3).await;
    for i in 0..10 {
        r.handler.append(&format!("m{i}"));
    }
    let client = Client::connect(&r.path).await.unwrap();
    let (res, mut rx) = client.subscribe(Some(4), None, 16).await.unwrap();
    assert_eq!(
        (res["from"].as_u64(), res["head"].as_u64()),
        (Some(4), Some(10))
    );
    assert_eq!(seqs(&take(&mut rx, 6).await), (5..=10).collect::<Vec<_>>());
    for i in 10..13 {
        r.handler.append(&format!("m{i}"));
    }
    assert_eq!(seqs(&take(&mut rx, 3).await), vec![11, 12, 13]);
    // Requests and events share the connection.
    let res = client.request(json!({"op": "services"})).await.unwrap();
    assert_eq!(res["services"][0]["sms"], true);
    r.handler.append("m13");
    assert_eq!(seqs(&take(&mut rx, 1).await), vec![14]);
}

#[tokio::test]
async fn reconnect_and_resume_misses_nothing_and_repeats_nothing() {
    let r = start(|c| c.event_batch = 4).await;
    for i in 0..10 {
        r.handler.append(&format!("m{i}"));
    }
    let first = Client::connect(&r.path).await.unwrap();
    let (_, mut rx) = first.subscribe(Some(0), Some("desk"), 16).await.unwrap();
    let got = take(&mut rx, 5).await;
    let last = got.last().unwrap()["seq"].as_u64().unwrap();
    first
        .request(json!({"op": "ack", "seq": last}))
        .await
        .unwrap();
    drop(rx);
    drop(first);
    for i in 10..12 {
        r.handler.append(&format!("m{i}"));
    }
    // Resume by consumer name: the handler resolves the acked position.
    let second = Client::connect(&r.path).await.unwrap();
    let (res, mut rx) = second.subscribe(None, Some("desk"), 16).await.unwrap();
    assert_eq!(res["from"], 5);
    let mut all = seqs(&got);
    all.extend(seqs(&take(&mut rx, 7).await));
    assert_eq!(all, (1..=12).collect::<Vec<_>>());
    assert_eq!(
        r.handler.acks.lock().unwrap().as_slice(),
        &[(Some("desk".to_string()), 5)]
    );
}

#[tokio::test]
async fn lagging_consumer_is_cut_off_and_resumes_exactly_where_it_stopped() {
    let r = start(|c| c.event_batch = 4).await;
    for i in 0..40 {
        r.handler.append(&format!("m{i}"));
    }
    let client = Client::connect(&r.path).await.unwrap();
    let (_, mut rx) = client.subscribe(Some(0), None, 2).await.unwrap();
    // Answers keep coming while the consumer does not read its events,
    // until the client has cut the stream off.
    let mut rounds = 0;
    while !rx.is_closed() {
        client.request(json!({"op": "services"})).await.unwrap();
        rounds += 1;
        assert!(rounds < 10_000, "stream never cut off");
    }
    let mut got = Vec::new();
    while let Some(e) = rx.recv().await {
        got.push(e);
    }
    assert!(got.len() < 40, "a consumer 2 behind must be cut off");
    // Resubscribing on the same connection moves the stream.
    let mut last = got.last().map_or(0, |e| e["seq"].as_u64().unwrap());
    let mut all = seqs(&got);
    while last < 40 {
        let (res, mut rx) = client.subscribe(Some(last), None, 64).await.unwrap();
        assert_eq!(res["from"], last);
        let more = take(&mut rx, (40 - last) as usize).await;
        last = more.last().unwrap()["seq"].as_u64().unwrap();
        all.extend(seqs(&more));
    }
    assert_eq!(all, (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn slow_subscriber_blocks_neither_requests_nor_event_production() {
    let r = start(|c| {
        c.out_queue = 4;
        c.event_batch = 8;
    })
    .await;
    // A subscriber that never reads: its socket buffer and queue fill up.
    let mut slow = Raw::connect(&r).await;
    slow.send(b"{\"id\":1,\"op\":\"subscribe\",\"from\":0}\n")
        .await;
    let big = "x".repeat(2000);
    // ~4 MB of events: far more than a socket buffer holds.
    for _ in 0..2000 {
        r.handler.append(&big);
    }
    // Another client sends (producing events) and gets its answers.
    let other = Client::connect(&r.path).await.unwrap();
    let (_, mut rx) = other.subscribe(Some(1990), None, 64).await.unwrap();
    for i in 0..20 {
        let res = other
            .request(
                json!({"op": "send", "service": "support", "to": "+447911123456",
                            "text": format!("r{i}"), "agent": "bob"}),
            )
            .await
            .unwrap();
        assert_eq!(res["message"], 2001 + i);
    }
    assert_eq!(
        seqs(&take(&mut rx, 30).await),
        (1991..=2020).collect::<Vec<_>>()
    );
    // The slow one catches up from the log: everything, in order, once.
    let v = slow.recv().await;
    assert_eq!((v["id"].as_u64(), v["ok"].as_bool()), (Some(1), Some(true)));
    for want in 1..=2020u64 {
        let e = slow.recv().await;
        assert_eq!(e["seq"], want);
    }
}

#[tokio::test]
async fn a_log_read_failure_closes_the_connection_instead_of_going_quiet() {
    let r = start(|_| {}).await;
    let client = Client::connect(&r.path).await.unwrap();
    let (_, mut rx) = client.subscribe(Some(666), None, 4).await.unwrap();
    assert!(rx.recv().await.is_none());
    let e = client.request(json!({"op": "services"})).await.unwrap_err();
    assert!(matches!(e, ClientError::Closed | ClientError::Io(_)), "{e}");
}

// === admission ===

#[tokio::test]
async fn connections_over_the_cap_are_answered_busy() {
    let r = start(|c| c.max_connections = 1).await;
    let first = Client::connect(&r.path).await.unwrap();
    first.request(json!({"op": "hello"})).await.unwrap();
    let second = Client::connect(&r.path).await.unwrap();
    let e = second.request(json!({"op": "hello"})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Busy), "{e}");
    drop(first);
    // The slot comes back once the server has seen the first one go.
    let mut served = false;
    for _ in 0..2000 {
        let c = Client::connect(&r.path).await.unwrap();
        if c.request(json!({"op": "hello"})).await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(served, "slot not released");
}

#[tokio::test]
async fn socket_mode_and_group_are_applied() {
    // SAFETY: getegid has no preconditions.
    let gid = unsafe { libc::getegid() };
    let r = start(|c| {
        c.mode = Some(0o600);
        c.group = Some(Principal::Id(gid));
    })
    .await;
    let meta = std::fs::metadata(&r.path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.gid(), gid);
}

#[tokio::test]
async fn peer_uid_allow_list_refuses_others_and_serves_members() {
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let r = start(|c| c.allowed_uids = Some(vec![me.wrapping_add(1)])).await;
    let c = Client::connect(&r.path).await.unwrap();
    let e = c.request(json!({"op": "hello"})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PermissionDenied), "{e}");

    let r = start(|c| c.allowed_uids = Some(vec![me])).await;
    let c = Client::connect(&r.path).await.unwrap();
    let res = c
        .request(json!({"op": "send", "service": "support",
        "to": "+447911123456", "text": "hi", "agent": "alice"}))
        .await
        .unwrap();
    assert_eq!(res["peer_uid"], me);
}

#[tokio::test]
async fn stale_socket_file_is_replaced_but_a_live_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let live = Server::bind(ServerConfig::new(&path)).await.unwrap();
    let e = Server::bind(ServerConfig::new(&path)).await.unwrap_err();
    assert!(matches!(e, smppgw::agent::ServerError::InUse(_)), "{e}");
    drop(live);
}

// === shutdown ===

#[tokio::test]
async fn shutdown_answers_in_flight_requests_then_refuses_new_ones() {
    let r = start(|c| c.shutdown_drain = std::time::Duration::from_secs(30)).await;
    let client = Arc::new(Client::connect(&r.path).await.unwrap());
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.request(json!({"op": "status"})).await })
    };
    r.handler.entered.notified().await;
    r.cancel.cancel();
    // Stopped accepting: the socket file is gone or refuses.
    r.handler.gate.notify_one();
    let res = in_flight.await.unwrap().unwrap();
    assert_eq!(res["links"], json!([]));
    let e = client.request(json!({"op": "services"})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::ShuttingDown), "{e}");
    drop(client);
    r.task.await.unwrap();
    assert!(!r.path.exists(), "socket file left behind");
}

/// Regression: the client read at most 1 MiB per line, and a longer answer
/// (a page of 5 000 conversations, a long transcript) ended its connection
/// as a bare "closed", so the console could never show that transcript.
#[tokio::test]
async fn an_answer_of_megabytes_is_read_and_a_too_long_one_is_named() {
    let r = start(|_| {}).await;
    let c = Client::connect(&r.path).await.unwrap();
    let ask = |bytes: usize| json!({"op": "count", "service": "s", "text": bytes.to_string()});
    let big = c.request(ask(8 << 20)).await.unwrap();
    assert_eq!(big["filler"].as_str().map(str::len), Some(8 << 20));
    let e = c.request(ask(65 << 20)).await.unwrap_err();
    assert!(
        matches!(&e, ClientError::Protocol(why) if why.contains("longer than 64 MiB")),
        "{e}"
    );
    // What was waiting fails the same way, not with a bare "closed".
    let e = c.request(json!({"op": "services"})).await.unwrap_err();
    assert!(!matches!(e, ClientError::Closed), "{e}");
}

// === the examples of proto/ ===

#[tokio::test]
async fn framing_examples_of_the_spec_replay_against_the_server() {
    let r = start(|c| c.max_line = 65536).await;
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proto/examples.jsonl"))
            .unwrap();
    let steps: Vec<_> = examples::parse_examples(&text)
        .unwrap()
        .into_iter()
        .filter(|s| s.framing_only)
        .collect();
    assert!(steps.len() >= 5, "only {} framing examples", steps.len());
    let n = replay::replay(&r.path, &steps, std::time::Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, steps.len());
}

/// The schema lists what the examples use, at every depth. Regression:
/// `conversations` gained `after`, `limit` and `next` in the protocol and
/// the daemon, `count` its `data_coding` and `status` its `ready`, and the
/// schema listed none of them (nothing compared the two).
#[test]
fn the_schema_lists_every_op_and_every_field_the_examples_use() {
    let read = |name: &str| {
        std::fs::read_to_string(format!("{}/proto/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let schema: Value = serde_json::from_str(&read("agent.schema.json")).unwrap();
    let defs = &schema["$defs"];
    for op in smppgw::agent::proto::OPS {
        assert!(
            defs["requests"][op]["properties"].is_object(),
            "no request schema for {op}"
        );
    }
    let codes = &defs["error_code"]["anyOf"][0]["enum"];
    let doc = read("agent-protocol.md");
    for code in ErrorCode::ALL.iter().map(|c| c.as_str()) {
        assert!(
            codes.as_array().unwrap().contains(&json!(code)),
            "error code {code} not in the schema"
        );
        assert!(
            doc.contains(&format!("| `{code}` |")),
            "error code {code} not in the protocol's table"
        );
    }
    let (mut checked, mut missing) = (0, std::collections::BTreeSet::new());
    for step in examples::parse_examples(&read("examples.jsonl")).unwrap() {
        let examples::Outgoing::Json(send) = &step.send else {
            continue;
        };
        // Bad requests (an unknown op, a missing op) show errors, not the schema.
        let Some(op) = send["op"]
            .as_str()
            .filter(|op| smppgw::agent::proto::OPS.contains(op))
        else {
            continue;
        };
        let at = format!("request {op}");
        fields_in_schema(send, &defs["requests"][op], defs, &at, &mut missing);
        if step.expect["ok"] == true {
            let (result, at) = (&step.expect["result"], format!("result {op}"));
            fields_in_schema(result, &defs["results"][op], defs, &at, &mut missing);
        }
        for event in &step.events {
            // The fields every event has, and those of its kind.
            let kind = &event["event"];
            let of_kind = defs["event"]["anyOf"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|k| k["properties"]["event"]["const"] == *kind);
            let Some(of_kind) = of_kind else {
                missing.insert(format!("event kind {kind}"));
                continue;
            };
            let fields = event.as_object().into_iter().flatten();
            for (k, _) in fields.filter(|(k, _)| !k.starts_with('$')) {
                if defs["event"]["properties"].get(k).is_none()
                    && of_kind["properties"].get(k).is_none()
                {
                    missing.insert(format!("event {kind}.{k}"));
                }
            }
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} examples checked");
    assert!(missing.is_empty(), "not in the schema: {missing:?}");
}

/// Adds to `missing` each field of `v` (an example: `["$each", pattern]`
/// is an array of that pattern, `$`-keys are the matcher's) that `schema`
/// does not list, following `$ref`, `anyOf`/`oneOf`, `properties` and
/// `items`.
fn fields_in_schema(
    v: &Value,
    schema: &Value,
    defs: &Value,
    at: &str,
    missing: &mut std::collections::BTreeSet<String>,
) {
    if let Some(name) = schema["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/$defs/"))
    {
        return fields_in_schema(v, &defs[name], defs, at, missing);
    }
    for alt in ["anyOf", "oneOf"] {
        let alts = schema[alt].as_array().into_iter().flatten();
        // The alternative of the value's kind: an object's, or an array's.
        let kind = if v.is_object() { "properties" } else { "items" };
        if let Some(s) = alts
            .map(
                |s| match s["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                    Some(name) => &defs[name],
                    None => s,
                },
            )
            .find(|s| !s[kind].is_null())
        {
            return fields_in_schema(v, s, defs, at, missing);
        }
    }
    match v {
        Value::Object(o) => {
            for (k, fv) in o.iter().filter(|(k, _)| !k.starts_with('$')) {
                match schema["properties"].get(k) {
                    Some(s) => fields_in_schema(fv, s, defs, &format!("{at}.{k}"), missing),
                    None => {
                        missing.insert(format!("{at}.{k}"));
                    }
                }
            }
        }
        Value::Array(items) => {
            let items = match items.first() {
                Some(Value::String(each)) if each == "$each" => &items[1..],
                _ => &items[..],
            };
            for item in items {
                fields_in_schema(item, &schema["items"], defs, &format!("{at}[]"), missing);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn replay_follows_bindings_and_events_and_reports_a_mismatch() {
    let r = start(|_| {}).await;
    r.handler.append("before the replay");
    let lines = [
        r#"{"title": "send", "send": {"id": 1, "op": "send", "service": "support", "to": "+447911123456", "text": "hi", "agent": "a"}, "expect": {"id": 1, "ok": true, "result": {"conversation": 1, "message": "${m}", "peer_uid": "$number"}}, "events": [{"event": "message_received", "message": "${m}", "text": "hi", "$more": true}]}"#,
        r#"{"title": "uses the bound id", "send": {"id": 2, "op": "transcript", "conversation": "${m}"}, "expect": {"id": 2, "ok": false, "error": {"code": "unknown_conversation", "message": "no conversation 2"}}}"#,
    ];
    let steps = examples::parse_examples(&lines.join("\n")).unwrap();
    replay::replay(&r.path, &steps, std::time::Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let wrong = examples::parse_examples(
        r#"{"title": "wrong", "send": {"id": 3, "op": "services"}, "expect": {"id": 3, "ok": true, "result": {"services": []}}}"#,
    )
    .unwrap();
    let e = replay::replay(&r.path, &wrong, std::time::Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, replay::ReplayError::Mismatch { mismatch, .. } if mismatch.path == "/result/services"),
        "{e}"
    );
}

#[tokio::test]
async fn client_reports_remote_errors_apart_from_io() {
    let r = start(|_| {}).await;
    let c = Client::connect(&r.path).await.unwrap();
    let e = c
        .request(json!({"op": "transcript", "conversation": 9}))
        .await
        .unwrap_err();
    match &e {
        ClientError::Remote { code, message } => {
            assert_eq!(code, "unknown_conversation");
            assert!(message.contains('9'));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.request(json!(["not", "an", "object"])).await,
        Err(ClientError::BadRequest)
    ));
    // A handler that panics: answered `internal`, the connection carries on.
    let e = c
        .request(json!({"op": "opt_outs", "service": "support"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Internal), "{e}");
    c.request(json!({"op": "services"})).await.unwrap();
    let gone = Client::connect(r.path.with_file_name("nope.sock")).await;
    assert!(matches!(gone, Err(ClientError::Io(_))));
}
