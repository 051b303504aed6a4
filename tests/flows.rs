//! Agent flows of issues 10 and 6 with the real binary: `smppgw sim` as the
//! carrier, `smppgw run` as the daemon (real sled store, real socket), the
//! reference client as the agent layer. Templates across a restart, number
//! checks, opt-outs (STOP / START / HELP), durable consumers, the agent
//! allow-list, hand-over, idempotent sends and the outbox limit.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use smppgw::agent::client::{Client, ClientError};
use support::{Daemon, Events, Sim, bin, write_config};

const CUSTOMER: &str = "+447911123456";
const CUSTOMER_DIGITS: &str = "447911123456";
const SENDER: &str = "447400123456";
/// The answer to HELP on `support` (sent by the receive path).
const HELP_TEXT: &str = "Acme support: call 0800 123 4567. Text STOP to opt out.";

/// `support` (new chats, help text, a shared template, 2 parts) and `vip`
/// (only alice and carol may send on it).
fn services() -> String {
    format!(
        r#"
[[service]]
name = "support"
sender = "{SENDER}"
carrier = "sim"
max_parts = 2
inbound = "new_chat"
default_country = "GB"
help_text = "{HELP_TEXT}"

[[service.template]]
name = "Opening hours"
text = "We are open 9:00-18:00, Monday to Friday."

[[service]]
name = "vip"
sender = "447400654321"
carrier = "sim"
max_parts = 3
inbound = "new_chat"
agents = ["alice", "carol"]
optout_keywords = ["STOP", "停止", "配信停止"]
optin_keywords = ["開始", "START"]
"#
    )
}

async fn setup(dir: &Path) -> (Sim, std::path::PathBuf, Daemon) {
    let sim = Sim::start(dir, &["--receipt-delay-ms", "50"]);
    let config = write_config(dir, sim.port(), "", &services());
    let daemon = Daemon::start(&config, dir).await;
    (sim, config, daemon)
}

async fn ok(client: &Client, req: Value) -> Value {
    let shown = req.to_string();
    client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("{shown}: {e}"))
}

/// The error code and message of a request that must fail.
async fn refused(client: &Client, req: Value) -> (String, String) {
    let shown = req.to_string();
    match client.request(req).await {
        Err(ClientError::Remote { code, message }) => (code, message),
        other => panic!("{shown} was not refused: {other:?}"),
    }
}

async fn send(client: &Client, agent: &str, to: &str, text: &str) -> Value {
    ok(
        client,
        json!({"op": "send", "service": "support", "to": to, "agent": agent, "text": text}),
    )
    .await
}

/// Every submit the simulator recorded, as JSON.
async fn sim_received(sim: &Sim) -> Vec<Value> {
    let v = smppgw::sim::control_request(&sim.control, &json!({"op": "received", "since": 0}))
        .await
        .expect("sim received");
    v["received"].as_array().cloned().unwrap_or_default()
}

/// Waits until the simulator recorded a submit whose text satisfies `pred`.
async fn sim_wait(sim: &Sim, what: &str, pred: impl Fn(&str) -> bool) -> Value {
    for _ in 0..200 {
        if let Some(v) = sim_received(sim)
            .await
            .into_iter()
            .find(|v| v["text"].as_str().is_some_and(&pred))
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no submit with {what} reached the simulator");
}

fn template_names(list: &Value) -> Vec<(String, String)> {
    list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["scope"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_survive_a_restart_and_too_long_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, config, mut daemon) = setup(dir.path()).await;
    let client = daemon.client().await;
    let saved = ok(
        &client,
        json!({"op": "template_save", "agent": "alice", "service": "support",
               "name": "Callback", "text": "We will call you back"}),
    )
    .await;
    let id = saved["template"]["id"].as_u64().expect("a stored id");
    // Too long for support's 2 parts: refused with the count and the limit.
    let (code, message) = refused(
        &client,
        json!({"op": "template_save", "agent": "alice", "service": "support",
               "name": "Essay", "text": "x".repeat(400)}),
    )
    .await;
    assert_eq!(code, "template_too_long");
    assert!(
        message.contains("400") && message.contains('2'),
        "the message gives the counted length and the limit: {message}"
    );
    // Edit it; another agent can neither edit nor delete it.
    let edited = ok(
        &client,
        json!({"op": "template_save", "agent": "alice", "template": id, "service": "support",
               "name": "Callback", "text": "We will call you back within the hour €"}),
    )
    .await;
    assert_eq!(edited["template"]["id"], id);
    let (code, _) = refused(
        &client,
        json!({"op": "template_save", "agent": "bob", "template": id, "name": "Mine", "text": "x"}),
    )
    .await;
    assert_eq!(code, "unknown_template");
    let (code, _) = refused(
        &client,
        json!({"op": "template_delete", "agent": "bob", "template": id}),
    )
    .await;
    assert_eq!(code, "unknown_template");
    let before = ok(
        &client,
        json!({"op": "templates", "service": "support", "agent": "alice"}),
    )
    .await;
    drop(client);
    let status = daemon.proc.terminate().expect("stops on SIGTERM");
    assert!(status.success(), "SIGTERM exit: {status:?}");

    // Restarted with room for one template per agent.
    let text = std::fs::read_to_string(&config).unwrap();
    let limited = text.replacen("[agent]\n", "[agent]\nmax_templates_per_agent = 1\n", 1);
    assert_ne!(text, limited);
    std::fs::write(&config, limited).unwrap();
    let daemon = Daemon::start(&config, dir.path()).await;
    let client = daemon.client().await;
    let (code, message) = refused(
        &client,
        json!({"op": "template_save", "agent": "alice", "name": "Second", "text": "Hi"}),
    )
    .await;
    assert_eq!(code, "too_many_templates");
    assert!(message.contains("max_templates_per_agent"), "{message}");
    // Bob has room of his own.
    ok(
        &client,
        json!({"op": "template_save", "agent": "bob", "name": "Bob's", "text": "Hi"}),
    )
    .await;
    let after = ok(
        &client,
        json!({"op": "templates", "service": "support", "agent": "alice"}),
    )
    .await;
    assert_eq!(before, after, "the templates changed across a restart");
    assert_eq!(
        template_names(&after),
        [
            ("Opening hours".to_string(), "service".to_string()),
            ("Callback".to_string(), "agent".to_string())
        ]
    );
    let list = after["templates"].as_array().unwrap();
    assert_eq!(list[0]["id"], Value::Null);
    assert_eq!(list[1]["id"], id);
    // The count is the counter's answer for that text on that service.
    let count = ok(
        &client,
        json!({"op": "count", "service": "support", "text": list[1]["text"]}),
    )
    .await;
    assert_eq!(list[1]["count"], count);
    assert_eq!(count["units"], 40, "€ costs two septets: {count}");
    // Another agent sees its own template, not alice's.
    let bob = ok(
        &client,
        json!({"op": "templates", "service": "support", "agent": "bob"}),
    )
    .await;
    assert_eq!(
        template_names(&bob),
        [
            ("Opening hours".to_string(), "service".to_string()),
            ("Bob's".to_string(), "agent".to_string())
        ]
    );

    // check-config refuses a shared template over max_parts, naming its key.
    let long = services().replace(
        "We are open 9:00-18:00, Monday to Friday.",
        &"We are open. ".repeat(40),
    );
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let bad_config = write_config(&bad, 2775, "", &long);
    let out = std::process::Command::new(bin())
        .arg("check-config")
        .arg(&bad_config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("service[0].template[0]"), "{stderr}");
    assert!(stderr.contains("520"), "the counted length: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_number_and_send_refuse_landlines_and_invalid_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _config, daemon) = setup(dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;
    let check = |n: &str| json!({"op": "check_number", "service": "support", "number": n});

    let mobile = ok(&client, check("07400 111222")).await;
    assert_eq!(
        (
            &mobile["e164"],
            &mobile["country"],
            &mobile["type"],
            &mobile["sms"]
        ),
        (
            &json!("+447400111222"),
            &json!("GB"),
            &json!("mobile"),
            &json!(true)
        ),
        "{mobile:#}"
    );
    // libphonenumber files +44 7911 1xxxxx under Guernsey: still a mobile.
    let gg = ok(&client, check("07911 123456")).await;
    assert_eq!(
        (&gg["e164"], &gg["country"], &gg["sms"]),
        (&json!(CUSTOMER), &json!("GG"), &json!(true)),
        "{gg:#}"
    );
    let landline = ok(&client, check("+44 20 7946 0000")).await;
    assert_eq!(landline["sms"], false, "{landline:#}");
    assert_eq!(landline["type"], "fixed_line");
    assert_eq!(landline["code"], "not_mobile");
    let reason = landline["reason"].as_str().unwrap();
    assert!(reason.contains("fixed-line"), "{reason}");
    let invalid = ok(&client, check("+44 12")).await;
    assert_eq!(
        (&invalid["sms"], &invalid["code"]),
        (&json!(false), &json!("invalid_number")),
        "{invalid:#}"
    );

    // A send to the landline: refused, nothing stored, nothing sent.
    let (code, message) = refused(
        &client,
        json!({"op": "send", "service": "support", "to": "020 7946 0000", "agent": "alice",
               "text": "Your engineer arrives at 10:30"}),
    )
    .await;
    assert_eq!(code, "not_mobile");
    assert!(message.contains("fixed-line"), "{message}");
    let (code, _) = refused(
        &client,
        json!({"op": "send", "service": "support", "to": "+44 12", "agent": "alice",
               "text": "Your engineer arrives at 10:30"}),
    )
    .await;
    assert_eq!(code, "invalid_number");
    // A good send afterwards marks the point by which anything would show.
    let sent = send(&client, "alice", CUSTOMER, "Marker").await;
    events.of("message_delivered", &sent["message"]).await;
    let accepted: Vec<&Value> = events
        .seen
        .iter()
        .filter(|v| v["event"] == "message_accepted")
        .collect();
    assert_eq!(accepted.len(), 1, "{:#?}", events.seen);
    assert_eq!(accepted[0]["customer"], CUSTOMER);
    let convs = ok(&client, json!({"op": "conversations"})).await;
    let customers: Vec<&Value> = convs["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["customer"])
        .collect();
    assert_eq!(customers, [&json!(CUSTOMER)]);
    let at_sim = sim_received(&sim).await;
    assert_eq!(at_sim.len(), 1, "{at_sim:#?}");
    assert_eq!(at_sim[0]["destination"], CUSTOMER_DIGITS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_opts_out_after_the_reply_reaches_the_chat_until_start_also_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, config, mut daemon) = setup(dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;
    let sent = send(&client, "alice", CUSTOMER, "Can we help further?").await;
    events.of("message_delivered", &sent["message"]).await;

    sim.inject(CUSTOMER_DIGITS, SENDER, "  stop ");
    let got = events
        .wait(20, "message_received", |v| v["event"] == "message_received")
        .await;
    assert_eq!(got["conversation"], sent["conversation"]);
    assert_eq!(got["owner"], "alice");
    let opted = events
        .wait(10, "customer_opted_out", |v| {
            v["event"] == "customer_opted_out"
        })
        .await;
    assert_eq!(opted["customer"], CUSTOMER);
    assert_eq!(opted["message"], got["message"]);

    let before = sim_received(&sim).await.len();
    let attempt = json!({"op": "send", "service": "support", "to": "07911 123456",
                         "agent": "alice", "text": "Are you sure?"});
    let (code, message) = refused(&client, attempt.clone()).await;
    assert_eq!(code, "opted_out");
    assert!(
        message.contains("START") && message.contains(&opted["at"].as_str().unwrap()[..10]),
        "says since when and how to opt back in: {message}"
    );
    // The protocol's order: the opt-out is answered before the text checks.
    for text in ["   ".to_string(), "x".repeat(1000)] {
        let (code, _) = refused(
            &client,
            json!({"op": "send", "service": "support", "to": CUSTOMER, "agent": "alice",
                   "text": text}),
        )
        .await;
        assert_eq!(code, "opted_out", "text of {} chars", text.len());
    }
    // Operators see it.
    let out = std::process::Command::new(bin())
        .args(["opt-outs", "--service", "support", "--socket"])
        .arg(&daemon.socket)
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["opt_outs"][0]["customer"], CUSTOMER, "{list:#}");
    assert_eq!(list["opt_outs"].as_array().unwrap().len(), 1);
    assert_eq!(list["next"], Value::Null, "one page holds it all");
    // A page at a time: nothing after the last one; a limit out of range.
    let rest = ok(
        &client,
        json!({"op": "opt_outs", "service": "support", "after": CUSTOMER, "limit": 1}),
    )
    .await;
    assert_eq!(rest, json!({"opt_outs": [], "next": null}));
    let (code, _) = refused(
        &client,
        json!({"op": "opt_outs", "service": "support", "limit": 0}),
    )
    .await;
    assert_eq!(code, "bad_request");
    let vip = ok(&client, json!({"op": "opt_outs", "service": "vip"})).await;
    assert_eq!(
        vip["opt_outs"],
        json!([]),
        "another sender is not opted out"
    );

    // Still refused after a restart.
    drop(client);
    assert!(daemon.proc.terminate().unwrap().success());
    let daemon = Daemon::start(&config, dir.path()).await;
    let client = daemon.client().await;
    let last = events.seen.last().unwrap()["seq"].as_u64().unwrap();
    let mut events = Events::subscribe(&client, last).await;
    let (code, _) = refused(&client, attempt.clone()).await;
    assert_eq!(code, "opted_out");
    assert_eq!(
        sim_received(&sim).await.len(),
        before,
        "a refused send reached the carrier"
    );

    // START lifts it.
    sim.inject(CUSTOMER_DIGITS, SENDER, "Start");
    events
        .wait(20, "customer_opted_in", |v| {
            v["event"] == "customer_opted_in"
        })
        .await;
    let again = ok(&client, attempt).await;
    events.of("message_delivered", &again["message"]).await;
    sim_wait(&sim, "the send after START", |t| t == "Are you sure?").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opt_out_keywords_ignore_case_and_punctuation_but_not_sentences() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _config, daemon) = setup(dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;
    let customers = [
        ("447911123401", "please don't stop", false),
        ("447911123402", "Stop.", true),
        ("447911123403", "STOP calling me at work", false),
        ("447911123404", "UNSUBSCRIBE", true),
        ("447911123405", "Help", false),
    ];
    for (n, text, _) in customers {
        sim.inject(n, SENDER, text);
    }
    for (n, text, _) in customers {
        let plus = format!("+{n}");
        events
            .wait(20, text, move |v| {
                v["event"] == "chat_requested" && v["customer"] == plus.as_str()
            })
            .await;
    }
    // A service's own keywords, in any language.
    sim.inject("819012345678", "447400654321", "配信停止");
    // The opt-out events follow their messages; a marker proves the rest were not.
    sim.inject("447911123499", SENDER, "marker");
    events.wait(20, "marker", |v| v["text"] == "marker").await;
    for (n, text, out) in customers {
        let plus = format!("+{n}");
        let p2 = plus.clone();
        let is_opt_out =
            move |v: &Value| v["event"] == "customer_opted_out" && v["customer"] == p2.as_str();
        if out {
            events.wait(20, text, is_opt_out).await;
        } else {
            assert!(
                !events.seen.iter().any(is_opt_out),
                "{text:?}: {:#?}",
                events.seen
            );
        }
        let r = client
            .request(
                json!({"op": "send", "service": "support", "to": plus, "agent": "alice",
                            "text": "Hello"}),
            )
            .await;
        match (out, r) {
            (true, Err(e)) => assert_eq!(e.code().map(|c| c.as_str()), Some("opted_out")),
            (false, Ok(_)) => {}
            (_, r) => panic!("{text:?}: {r:?}"),
        }
    }
    events
        .wait(20, "the vip opt-out", |v| {
            v["event"] == "customer_opted_out"
                && v["customer"] == "+819012345678"
                && v["service"] == "vip"
        })
        .await;
    let (code, message) = refused(
        &client,
        json!({"op": "send", "service": "vip", "to": "+81 90 1234 5678", "agent": "alice",
               "text": "こんにちは"}),
    )
    .await;
    assert_eq!(code, "opted_out");
    assert!(
        message.contains("text 開始 to opt back in"),
        "names the service's own opt-in keyword: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_consumer_resumes_after_its_ack_with_nothing_missed_or_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, _config, daemon) = setup(dir.path()).await;
    let first = daemon.client().await;
    let (_, mut rx) = first.subscribe(None, Some("crm"), 1024).await.unwrap();
    let a = send(&first, "alice", CUSTOMER, "First").await;
    // Read up to a's delivery, ack the last one processed, hang up.
    let mut seen = Vec::new();
    loop {
        let v = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("an event")
            .expect("the stream");
        seen.push(v["seq"].as_u64().unwrap());
        if v["event"] == "message_delivered" && v["message"] == a["message"] {
            break;
        }
    }
    let acked = *seen.last().unwrap();
    ok(&first, json!({"op": "ack", "seq": acked})).await;
    drop(rx);
    drop(first);

    // Meanwhile more happens.
    let other = daemon.client().await;
    let b = send(&other, "alice", CUSTOMER, "Second").await;
    let mut watch = Events::subscribe(&other, acked).await;
    watch.of("message_delivered", &b["message"]).await;

    let second = daemon.client().await;
    let (res, mut rx) = second.subscribe(None, Some("crm"), 1024).await.unwrap();
    assert_eq!(res["from"], acked);
    let expected: Vec<u64> = watch
        .seen
        .iter()
        .map(|v| v["seq"].as_u64().unwrap())
        .collect();
    // Read up to the last event the watcher saw, then whatever else comes
    // soon after. Regression: reading until the first 500 ms gap cut the
    // replay short when the daemon paused on a loaded box.
    let last = *expected.last().unwrap();
    let mut resumed = Vec::new();
    while resumed.last().is_none_or(|s| *s < last) {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(v)) => resumed.push(v["seq"].as_u64().unwrap()),
            _ => break,
        }
    }
    while let Ok(Some(v)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
        resumed.push(v["seq"].as_u64().unwrap());
    }
    assert_eq!(resumed, expected, "after ack {acked}");
    assert!(resumed.iter().all(|s| !seen.contains(s)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_also_refuses_assign_hand_over_routes_replies_and_client_ref_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _config, daemon) = setup(dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;

    // Only alice and carol may use vip.
    let (code, _) = refused(
        &client,
        json!({"op": "send", "service": "vip", "to": CUSTOMER, "agent": "bob", "text": "Hi"}),
    )
    .await;
    assert_eq!(code, "agent_not_allowed");

    // Idempotent: the same (agent, client_ref) sends once.
    let req = json!({"op": "send", "service": "vip", "to": CUSTOMER, "agent": "alice",
                     "text": "Your order shipped", "client_ref": "crm-42"});
    let first = ok(&client, req.clone()).await;
    let second = ok(&client, req).await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(second["duplicate"], true);
    assert_eq!(first["message"], second["message"]);
    events.of("message_delivered", &first["message"]).await;

    // Hand-over to carol (allowed), then to bob (not on vip's list).
    let (code, _) = refused(
        &client,
        json!({"op": "assign", "conversation": first["conversation"], "to": "bob"}),
    )
    .await;
    assert_eq!(code, "agent_not_allowed");
    let (code, _) = refused(
        &client,
        json!({"op": "assign", "conversation": first["conversation"], "to": "carol", "by": "dave"}),
    )
    .await;
    assert_eq!(code, "not_owner");
    let moved = ok(
        &client,
        json!({"op": "assign", "conversation": first["conversation"], "to": "carol", "by": "alice"}),
    )
    .await;
    assert_eq!(moved["owner"], "carol");
    let ev = events
        .wait(10, "chat_assigned", |v| v["event"] == "chat_assigned")
        .await;
    assert_eq!((&ev["from"], &ev["to"]), (&json!("alice"), &json!("carol")));
    sim.inject(CUSTOMER_DIGITS, "447400654321", "Thanks!");
    let reply = events
        .wait(20, "message_received", |v| v["event"] == "message_received")
        .await;
    assert_eq!(reply["conversation"], first["conversation"]);
    assert_eq!(reply["owner"], "carol");
    let shipped: Vec<Value> = sim_received(&sim)
        .await
        .into_iter()
        .filter(|v| v["text"] == "Your order shipped")
        .collect();
    assert_eq!(shipped.len(), 1, "{shipped:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn national_and_international_source_numbers_find_the_same_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _config, daemon) = setup(dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;
    let sent = send(&client, "alice", "07911 123456", "Which day suits you?").await;
    events.of("message_delivered", &sent["message"]).await;
    for (from, ton, text) in [
        ("07911123456", 2, "Tuesday (national)"),
        ("447911123456", 1, "Or Wednesday (international)"),
        ("7911123456", 2, "Thursday (national, no trunk prefix)"),
    ] {
        smppgw::sim::control_request(
            &sim.control,
            &json!({"op": "inject", "from": from, "to": SENDER, "text": text,
                    "ton": ton, "npi": 1}),
        )
        .await
        .expect("inject");
        let got = events.wait(20, text, move |v| v["text"] == text).await;
        assert_eq!(
            (&got["event"], &got["conversation"], &got["customer"]),
            (
                &json!("message_received"),
                &sent["conversation"],
                &json!(CUSTOMER)
            ),
            "{from} (TON {ton})"
        );
    }
}

const ALERTS: &str = "447400777888";
const CONFIRMATION: &str = "Alerts: you will get no more texts. Text START to opt back in.";

/// `support` (help text, no confirmation) and `alerts` (confirmation, no
/// help text).
fn keyword_services() -> String {
    format!(
        r#"
[[service]]
name = "support"
sender = "{SENDER}"
carrier = "sim"
inbound = "new_chat"
default_country = "GB"
help_text = "{HELP_TEXT}"

[[service]]
name = "alerts"
sender = "{ALERTS}"
carrier = "sim"
inbound = "new_chat"
default_country = "GB"
optout_confirmation = "{CONFIRMATION}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_is_confirmed_once_and_help_is_answered_only_where_configured() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--receipt-delay-ms", "50"]);
    let config = write_config(dir.path(), sim.port(), "", &keyword_services());
    let daemon = Daemon::start(&config, dir.path()).await;
    let client = daemon.client().await;
    let mut events = Events::subscribe(&client, 0).await;
    let sent = ok(
        &client,
        json!({"op": "send", "service": "alerts", "to": CUSTOMER, "agent": "alice",
               "text": "Your parcel is on its way"}),
    )
    .await;
    events.of("message_delivered", &sent["message"]).await;

    // STOP: the reply reaches alice's chat, the confirmation the customer.
    sim.inject(CUSTOMER_DIGITS, ALERTS, "STOP");
    let opted = events
        .wait(20, "customer_opted_out", |v| {
            v["event"] == "customer_opted_out"
        })
        .await;
    assert_eq!(opted["conversation"], sent["conversation"]);
    let confirmation = sim_wait(&sim, "the opt-out confirmation", |t| t == CONFIRMATION).await;
    assert_eq!(confirmation["destination"], CUSTOMER_DIGITS);
    assert_eq!(confirmation["source"], ALERTS);
    let accepted = events
        .wait(10, "the confirmation's message_accepted", |v| {
            v["event"] == "message_accepted" && v["text"] == CONFIRMATION
        })
        .await;
    assert_eq!(
        accepted["conversation"], sent["conversation"],
        "in the chat"
    );
    assert_eq!(accepted["owner"], "alice", "the chat stays alice's");

    // STOP again (as a redelivery would be): filed, but not confirmed again.
    sim.inject(CUSTOMER_DIGITS, ALERTS, "stop");
    events
        .wait(20, "the second opt-out", |v| {
            v["event"] == "customer_opted_out" && v["message"] != opted["message"]
        })
        .await;
    // HELP on a service without help text: filed, nothing sent.
    sim.inject(CUSTOMER_DIGITS, ALERTS, "HELP");
    events
        .wait(20, "HELP on alerts", |v| {
            v["event"] == "message_received" && v["text"] == "HELP"
        })
        .await;
    // HELP on support (another customer, a new chat): answered. The outbox
    // is FIFO per carrier, so anything stored before it went out first.
    sim.inject("447911123457", SENDER, "Help");
    let help = sim_wait(&sim, "the help text", |t| t == HELP_TEXT).await;
    assert_eq!(help["destination"], "447911123457");
    assert_eq!(help["source"], SENDER);
    let requested = events
        .wait(10, "the HELP chat request", |v| {
            v["event"] == "chat_requested" && v["customer"] == "+447911123457"
        })
        .await;
    let help_accepted = events
        .wait(10, "the help text's message_accepted", |v| {
            v["event"] == "message_accepted" && v["text"] == HELP_TEXT
        })
        .await;
    assert_eq!(help_accepted["conversation"], requested["conversation"]);
    assert!(
        help_accepted.get("owner").is_none(),
        "the request stays unowned"
    );

    let to_alerts_customer: Vec<String> = sim_received(&sim)
        .await
        .into_iter()
        .filter(|v| v["destination"] == CUSTOMER_DIGITS)
        .map(|v| v["text"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        to_alerts_customer,
        ["Your parcel is on its way", CONFIRMATION],
        "one confirmation, no help answer on alerts"
    );
    // Agents are still refused.
    let (code, _) = refused(
        &client,
        json!({"op": "send", "service": "alerts", "to": CUSTOMER, "agent": "alice",
               "text": "Are you sure?"}),
    )
    .await;
    assert_eq!(code, "opted_out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_listed_a_page_at_a_time_and_a_bad_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, _config, daemon) = setup(dir.path()).await;
    let client = daemon.client().await;
    let mut sent = Vec::new();
    for (i, agent) in ["alice", "bob", "alice", "carol", "alice"]
        .iter()
        .enumerate()
    {
        let to = format!("+4479111234{i:02}");
        let s = send(&client, agent, &to, "Hello from Acme").await;
        sent.push((s["conversation"].as_u64().unwrap(), *agent));
    }
    sent.sort();
    // Every page, following `next` until null.
    async fn pages(client: &Client, owner: Option<&str>, limit: u64) -> Vec<Vec<u64>> {
        let (mut out, mut after) = (Vec::new(), Value::Null);
        loop {
            let mut req = json!({"op": "conversations", "limit": limit});
            if let Some(o) = owner {
                req["owner"] = json!(o);
            }
            if !after.is_null() {
                req["after"] = after.clone();
            }
            let r = ok(client, req).await;
            let ids: Vec<u64> = r["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_u64().unwrap())
                .collect();
            out.push(ids);
            after = r["next"].clone();
            if after.is_null() {
                return out;
            }
            assert!(out.len() <= 10, "next never ends: {out:?}");
        }
    }
    let all: Vec<u64> = sent.iter().map(|(id, _)| *id).collect();
    let alices: Vec<u64> = sent
        .iter()
        .filter(|(_, a)| *a == "alice")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        pages(&client, None, 2).await,
        [all[0..2].to_vec(), all[2..4].to_vec(), all[4..].to_vec()]
    );
    assert_eq!(
        pages(&client, Some("alice"), 1).await,
        alices.iter().map(|id| vec![*id]).collect::<Vec<_>>()
    );
    // Without paging fields: the whole (small) list, and `next` null.
    let r = ok(&client, json!({"op": "conversations"})).await;
    assert_eq!(r["conversations"].as_array().unwrap().len(), all.len());
    assert_eq!(r["next"], Value::Null);
    for bad in [json!(0), json!(5001), json!(-1), json!("2")] {
        let (code, message) = refused(&client, json!({"op": "conversations", "limit": bad})).await;
        assert_eq!(code, "bad_request", "limit {bad}: {message}");
        if bad.is_u64() {
            assert!(message.contains("`limit` must be 1 to 5000"), "{message}");
        }
    }
    let r = ok(&client, json!({"op": "conversations", "limit": 5000})).await;
    assert_eq!(r["conversations"].as_array().unwrap().len(), all.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_past_a_carriers_outbox_limit_are_refused_while_another_carrier_delivers_until_a_reload_raises_it()
 {
    // Carrier "sim" is down (nothing listens on its port): sends queue in
    // its outbox, the third past a limit of two is refused and stores
    // nothing. Carrier "spare" is up: its service's sends still go.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spare_dir = dir.path().join("spare");
    std::fs::create_dir(&spare_dir).unwrap();
    let spare = Sim::start(
        &spare_dir,
        &["--receipt-delay-ms", "50", "--system-id", "spare"],
    );
    let spare_service = format!(
        r#"
[[carrier]]
name = "spare"
host = "127.0.0.1"
port = {}
system_id = "spare"
password = "demo-pass"

[[service]]
name = "backup"
sender = "447400777888"
carrier = "spare"
"#,
        spare.port()
    );
    let config = write_config(dir.path(), port, "", &(spare_service + &services()));
    let text = std::fs::read_to_string(&config).unwrap();
    let limited = |n: u32| text.replacen("[store]\n", &format!("[store]\noutbox_limit = {n}\n"), 1);
    std::fs::write(&config, limited(2)).unwrap();
    let daemon = Daemon::start(&config, dir.path()).await;
    let client = daemon.client().await;
    send(&client, "alice", CUSTOMER, "First").await;
    send(&client, "alice", "+819012345678", "Second").await;
    let third = json!({"op": "send", "service": "support", "to": "+447911123457",
                       "agent": "alice", "text": "Third"});
    let (code, message) = refused(&client, third.clone()).await;
    assert_eq!(code, "outbox_full");
    assert!(message.contains("store.outbox_limit"), "{message}");
    assert!(message.contains("carrier sim"), "{message}");
    // The healthy carrier's sends are taken and delivered.
    let mut events = Events::subscribe(&client, 0).await;
    for (i, customer) in ["+447911123460", "+447911123461", "+447911123462"]
        .into_iter()
        .enumerate()
    {
        let m = ok(
            &client,
            json!({"op": "send", "service": "backup", "to": customer,
                   "agent": "alice", "text": format!("Spare {i}")}),
        )
        .await;
        events.of("message_delivered", &m["message"]).await;
    }
    let status = ok(&client, json!({"op": "status"})).await;
    assert_eq!(
        status["outbox"],
        json!({"depth": 2, "limit": 2, "carriers": {"sim": 2}}),
        "{status}"
    );
    // Nothing of the refused send was stored: no conversation with that number.
    let listed = ok(&client, json!({"op": "conversations", "owner": "alice"})).await;
    let customers: Vec<&str> = listed["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["customer"].as_str())
        .collect();
    assert_eq!(customers.len(), 5, "{listed}");
    assert!(!customers.contains(&"+447911123457"), "{listed}");

    // A reload raises the limit: the next send goes into the outbox.
    std::fs::write(&config, limited(3)).unwrap();
    unsafe {
        libc::kill(daemon.proc.0.id() as i32, libc::SIGHUP);
    }
    let mut accepted = None;
    for _ in 0..400 {
        match client.request(third.clone()).await {
            Ok(v) => {
                accepted = Some(v);
                break;
            }
            Err(ClientError::Remote { code, .. }) if code == "outbox_full" => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(accepted.is_some(), "the reload did not raise the limit");
    let status = ok(&client, json!({"op": "status"})).await;
    assert_eq!(
        status["outbox"],
        json!({"depth": 3, "limit": 3, "carriers": {"sim": 3}}),
        "{status}"
    );
}
