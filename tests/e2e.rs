//! End to end with the real binary: `smppgw sim` as the carrier, `smppgw run`
//! as the daemon (real sled store, real agent socket), the reference client
//! as the agent layer. The agent workflow of the seed guide, start to end,
//! and across a restart.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Daemon, Events, SERVICES, Sim, write_config};

const CUSTOMER: &str = "+447911123456";
const CUSTOMER_DIGITS: &str = "447911123456";
const JP_CUSTOMER: &str = "+819012345678";

async fn send(
    client: &smppgw::agent::client::Client,
    service: &str,
    to: &str,
    text: &str,
) -> Value {
    client
        .request(
            json!({"op": "send", "service": service, "to": to, "agent": "alice", "text": text}),
        )
        .await
        .unwrap_or_else(|e| panic!("send {text:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_workflow_send_deliver_reply_end_chat_and_chat_requests() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--receipt-delay-ms", "200"]);
    let config = write_config(dir.path(), sim.port(), "", SERVICES);
    let daemon = Daemon::start(&config, dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;

    // The agent layer asks which services can text, and counts as the agent types.
    let services = client.request(json!({"op": "services"})).await.unwrap();
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["support", "sales"]);
    let count = client
        .request(json!({"op": "count", "service": "support", "text": "x".repeat(161)}))
        .await
        .unwrap();
    assert_eq!(
        (count["encoding"].as_str(), count["parts"].as_u64()),
        (Some("gsm7"), Some(2))
    );

    // GSM, Japanese UCS-2 and a 3-part message: accepted, submitted, delivered.
    let gsm = send(
        &client,
        "support",
        CUSTOMER,
        "Your engineer arrives at 10:30 €5 [ok]",
    )
    .await;
    assert_eq!(gsm["encoding"], "gsm7");
    let jp = send(
        &client,
        "support",
        JP_CUSTOMER,
        "ご予約ありがとうございます。明日10時にお伺いします。",
    )
    .await;
    assert_eq!(jp["encoding"], "ucs2");
    let long_text = "Part of a long message that needs three parts. ".repeat(8);
    let long = send(&client, "support", CUSTOMER, &long_text).await;
    assert_eq!(long["parts"], 3);
    for m in [&gsm, &jp, &long] {
        events.of("message_submitted", &m["message"]).await;
        events.of("message_delivered", &m["message"]).await;
    }
    let t = client
        .request(json!({"op": "transcript", "conversation": gsm["conversation"]}))
        .await
        .unwrap();
    let statuses: Vec<&str> = t["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["delivered", "delivered"], "{t:#}");

    // The customer's reply finds the conversation and its owner.
    sim.inject(CUSTOMER_DIGITS, "447400123456", "Thanks, 10:30 is fine");
    let got = events
        .wait(20, "message_received", |v| v["event"] == "message_received")
        .await;
    assert_eq!(got["conversation"], gsm["conversation"]);
    assert_eq!(got["owner"], "alice");
    assert_eq!(got["text"], "Thanks, 10:30 is fine");

    // End Chat: on `support` later replies are ignored.
    client
        .request(json!({"op": "end_chat", "conversation": gsm["conversation"], "agent": "alice"}))
        .await
        .unwrap();
    events
        .wait(10, "chat_ended", |v| v["event"] == "chat_ended")
        .await;
    sim.inject(CUSTOMER_DIGITS, "447400123456", "one more thing");
    // A customer who texts `sales` first becomes a chat request; its arrival
    // after the ignored reply also proves that one produced no event.
    sim.inject("819012345678", "447400654321", "Do you have this in blue?");
    let req = events
        .wait(20, "chat_requested", |v| v["event"] == "chat_requested")
        .await;
    assert_eq!(req["customer"], JP_CUSTOMER);
    assert_eq!(req["text"], "Do you have this in blue?");
    assert!(
        !events.seen.iter().any(|v| v["text"] == "one more thing"),
        "a reply after End Chat reached the agent: {:#?}",
        events.seen
    );
    // Accept: the request is assigned and then continues like any chat.
    let acc = client
        .request(json!({"op": "assign", "conversation": req["conversation"], "to": "bob"}))
        .await
        .unwrap();
    assert_eq!(
        (acc["owner"].as_str(), acc["state"].as_str()),
        (Some("bob"), Some("open"))
    );

    // On `sales`, a reply after End Chat starts a new chat request.
    client
        .request(json!({"op": "end_chat", "conversation": req["conversation"], "agent": "bob"}))
        .await
        .unwrap();
    sim.inject("819012345678", "447400654321", "Sorry, one more question");
    let again = events
        .wait(20, "second chat_requested", |v| {
            v["event"] == "chat_requested" && v["text"] == "Sorry, one more question"
        })
        .await;
    assert_ne!(again["conversation"], req["conversation"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_conversation_keeps_replies_and_pending_receipts() {
    let dir = tempfile::tempdir().unwrap();
    // Receipts come 3 s after the submit: the daemon is restarted before.
    let sim = Sim::start(dir.path(), &["--receipt-delay-ms", "3000"]);
    let config = write_config(dir.path(), sim.port(), "", SERVICES);
    let mut daemon = Daemon::start(&config, dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;
    let sent = send(&client, "support", CUSTOMER, "Before the restart").await;
    events.of("message_submitted", &sent["message"]).await;
    let status = daemon
        .proc
        .terminate()
        .expect("the daemon stops on SIGTERM");
    assert!(status.success(), "SIGTERM exit: {status:?}");
    drop(client);

    let daemon = Daemon::start(&config, dir.path()).await;
    let client = daemon.client().await;
    // Resume after the last event seen: nothing missed, nothing twice.
    let last = events.seen.last().and_then(|v| v["seq"].as_u64()).unwrap();
    let mut events = Events::subscribe(&client, last).await;
    events.of("message_delivered", &sent["message"]).await;
    sim.inject(CUSTOMER_DIGITS, "447400123456", "After the restart");
    let got = events
        .wait(20, "message_received", |v| v["event"] == "message_received")
        .await;
    assert_eq!(got["conversation"], sent["conversation"]);
    assert!(
        events
            .seen
            .iter()
            .all(|v| v["seq"].as_u64().unwrap() > last)
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_stdlib_client_completes_send_delivered_reply_end_chat() {
    use std::io::{BufRead, BufReader};
    let Ok(python) = which_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is required in CI"
        );
        eprintln!("skipped: no python3 on PATH");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--receipt-delay-ms", "100"]);
    let config = write_config(dir.path(), sim.port(), "", SERVICES);
    let daemon = Daemon::start(&config, dir.path()).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/agent_client.py");
    let mut child = support::Proc(
        std::process::Command::new(python)
            .arg(script)
            .arg(&daemon.socket)
            .args(["support", "+44 7911 123456"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // One thread reads every line (keeping the pipe open) and forwards it.
    let stdout = child.0.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(64);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        let waiting = line == "waiting-for-reply";
        lines.push(line);
        if waiting {
            break;
        }
    }
    assert_eq!(
        lines.last().map(String::as_str),
        Some("waiting-for-reply"),
        "{lines:?}"
    );
    sim.inject(CUSTOMER_DIGITS, "447400123456", "Got it, thanks");
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
        lines.push(line);
    }
    let status = child.0.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "python client failed: {lines:?}");
    let all = lines.join("\n");
    assert!(
        all.contains(r#""step": "reply", "text": "Got it, thanks""#),
        "{all}"
    );
    assert!(
        all.contains(r#""step": "ended", "state": "ended""#),
        "{all}"
    );
}

fn which_python() -> Result<String, ()> {
    std::process::Command::new("python3")
        .arg("--version")
        .output()
        .map(|_| "python3".to_string())
        .map_err(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_changed_inbound_policy_to_the_receive_path() {
    // Regression: the links kept the services they started with, so a
    // SIGHUP from `ignore` to `new_chat` never produced a chat request.
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--receipt-delay-ms", "100"]);
    let config = write_config(dir.path(), sim.port(), "", SERVICES);
    let daemon = Daemon::start(&config, dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;
    write_config(
        dir.path(),
        sim.port(),
        "",
        &SERVICES.replacen("inbound = \"ignore\"", "inbound = \"new_chat\"", 1),
    );
    unsafe {
        libc::kill(daemon.proc.0.id() as i32, libc::SIGHUP);
    }
    // The reload has no answer to wait for: poll until services show it.
    let mut reloaded = false;
    for _ in 0..400 {
        let s = client.request(json!({"op": "services"})).await.unwrap();
        if s["services"][0]["inbound"] == "new_chat" {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "the reload never showed in services");
    sim.inject(CUSTOMER_DIGITS, "447400123456", "Hello, anyone there?");
    let req = events
        .wait(20, "chat_requested", |v| v["event"] == "chat_requested")
        .await;
    assert_eq!(req["service"], "support");
}
