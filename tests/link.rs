//! The carrier link end to end: the real sled store in a temp dir, the real
//! simulator on 127.0.0.1:0, real sockets, small timeouts.
//!
//! Each test starts its own simulator, store and `Links`, stores messages
//! the way the agent server does (`accept_send` then `Links::wake`), and
//! watches the store and the simulator's record.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smppgw::clock;
use smppgw::config::{self, Config};
use smppgw::link::outbox::plan_options;
use smppgw::link::{BindState, LinkOptions, Links};
use smppgw::model::{EventKind, FailState, MessageId, MessageStatus, ReceiptState, ReceiptUpdate};
use smppgw::sim::{self, Mo, SimConfig, SimHandle};
use smppgw::store::{NewOutbound, ReceiptOutcome, SledStore, Store};
use tokio_util::sync::CancellationToken;

const SUPPORT: &str = "447400123456";
const UK: &str = "+447911123456";
const JP: &str = "+819012345678";

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    cfg: Arc<Config>,
    sim: SimHandle,
    links: Links,
    cancel: CancellationToken,
}

fn sim_config() -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay_ms: 20,
        ..SimConfig::default()
    }
}

fn options() -> LinkOptions {
    LinkOptions {
        poll_interval: Duration::from_millis(50),
        reassembly_timeout: Duration::from_secs(30),
        reassembly_sweep: Duration::from_millis(100),
        expire_interval: None,
        part_retry_delay: Duration::from_millis(50),
        ..LinkOptions::default()
    }
}

/// Small timeouts so failures show in seconds.
fn shorten(cfg: &mut Config) {
    for c in &mut cfg.carriers {
        c.reconnect_min = Duration::from_millis(50);
        c.reconnect_max = Duration::from_millis(300);
        c.already_bound_wait = Duration::from_millis(300);
        c.response_timeout = Duration::from_secs(3);
        c.bind_timeout = Duration::from_secs(2);
        c.connect_timeout = Duration::from_secs(2);
        c.unbind_timeout = Duration::from_millis(500);
        c.tps = 1000;
    }
}

async fn setup(sim_cfg: SimConfig, tweak: impl FnOnce(&mut Config)) -> Env {
    let cancel = CancellationToken::new();
    let sim = sim::start(sim_cfg, cancel.child_token()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config::demo(dir.path(), sim.local_addr(), None).unwrap();
    shorten(&mut cfg);
    tweak(&mut cfg);
    let cfg = Arc::new(cfg);
    let store = Arc::new(SledStore::open(dir.path().join("store")).unwrap());
    let links = Links::start_with(store.clone(), cfg.clone(), cancel.child_token(), options());
    Env {
        _dir: dir,
        store,
        cfg,
        sim,
        links,
        cancel,
    }
}

/// Accepts a send through `store` as the gateway's `send` op does (the
/// text counted for the demo's `support` service on carrier `sim`), then
/// wakes the binds.
async fn accept_and_wake<S: Store>(
    store: &S,
    links: &Links,
    cfg: &Config,
    owner: &str,
    customer: &str,
    text: &str,
) -> MessageId {
    let service = cfg.service("support").unwrap();
    let carrier = cfg.carrier("sim").unwrap();
    let count = smppgw::text::count(text, &plan_options(carrier, Some(service)));
    let mut new = outbound(owner, customer, text);
    new.encoding = count.encoding.as_str().into();
    new.parts = count.parts as u8;
    let a = store
        .accept_send(new, clock::wall_ms())
        .await
        .unwrap()
        .unwrap();
    links.wake();
    a.message
}

impl Env {
    async fn send_from(&self, owner: &str, customer: &str, text: &str) -> MessageId {
        accept_and_wake(&*self.store, &self.links, &self.cfg, owner, customer, text).await
    }

    async fn send(&self, customer: &str, text: &str) -> MessageId {
        self.send_from("alice", customer, text).await
    }

    async fn status(&self, id: MessageId) -> MessageStatus {
        self.store.message(id).await.unwrap().unwrap().status
    }

    async fn wait_status(&self, id: MessageId, want: MessageStatus) {
        let ok = wait(|| async { self.status(id).await == want }).await;
        assert!(
            ok,
            "message {id} is {:?}, wanted {want:?}",
            self.status(id).await
        );
    }

    async fn events(&self) -> Vec<EventKind> {
        self.store
            .events_after(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(10), self.links.shutdown())
            .await
            .expect("links stop within the grace period");
        self.cancel.cancel();
    }
}

/// A one-part GSM send of `support` over `sim`, as the agent server
/// stores it.
fn outbound(owner: &str, customer: &str, text: &str) -> NewOutbound {
    NewOutbound {
        service: "support".into(),
        sender: SUPPORT.into(),
        customer: customer.into(),
        owner: owner.into(),
        interaction: None,
        text: text.into(),
        encoding: "gsm7".into(),
        parts: 1,
        carrier: "sim".into(),
        client_ref: None,
        conversation: None,
        outbox_limit: None,
    }
}

/// Polls `cond` every 20 ms for up to 10 s.
async fn wait<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..500 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The texts the simulator accepted, joined per concatenated message, in
/// the order their first part arrived.
fn accepted_texts(sim: &SimHandle) -> Vec<String> {
    let mut order: Vec<(String, u16)> = Vec::new();
    let mut parts: BTreeMap<(String, u16), BTreeMap<u8, String>> = BTreeMap::new();
    let mut singles: Vec<(u64, String)> = Vec::new();
    for r in sim.received().into_iter().filter(|r| r.status == Some(0)) {
        match r.concat {
            Some(c) if c.total > 1 => {
                let key = (r.destination.clone(), c.reference);
                if !order.contains(&key) {
                    order.push(key.clone());
                    singles.push((r.index, String::new()));
                }
                parts.entry(key).or_default().insert(c.seq, r.text.clone());
            }
            _ => singles.push((r.index, r.text.clone())),
        }
    }
    let mut multi = order.into_iter();
    singles
        .into_iter()
        .map(|(_, t)| {
            if t.is_empty() {
                let key = multi.next().unwrap();
                parts[&key].values().cloned().collect::<String>()
            } else {
                t
            }
        })
        .collect()
}

// === send path and receipts ===

#[tokio::test]
async fn accepted_message_is_submitted_and_delivered_with_tlv_receipts() {
    let env = setup(sim_config(), |_| {}).await;
    let id = env.send(UK, "Your parcel arrives tomorrow").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    let rec = env.sim.received();
    assert_eq!(rec.len(), 1);
    let r = &rec[0];
    assert_eq!(r.source, SUPPORT);
    assert_eq!((r.source_ton, r.source_npi), (1, 1));
    assert_eq!(r.destination, "447911123456");
    assert_eq!((r.dest_ton, r.dest_npi), (1, 1));
    assert_eq!(r.registered_delivery, 1);
    assert_eq!(r.text, "Your parcel arrives tomorrow");
    // A status is readable before its events are durable (listed): wait
    // for the events. Regression: this read them right after the status
    // and could miss a `message_submitted` still being synced.
    assert_eq!(
        outcome_events(&env, id, &EventKind::MessageDelivered { message: id }).await,
        [
            EventKind::MessageSubmitted {
                message: id,
                possible_duplicate: false
            },
            EventKind::MessageDelivered { message: id }
        ]
    );
    let ev = env.events().await;
    assert!(
        ev.iter()
            .any(|e| matches!(e, EventKind::LinkUp { carrier, .. } if carrier == "sim"))
    );
    assert!(env.links.can_send("sim"));
    assert!(!env.links.can_send("nowhere"));
    let st = env.links.status_json();
    assert_eq!(st["carriers"][0]["ready"], true);
    assert_eq!(st["carriers"][0]["binds"][0]["state"], "bound");
    env.stop().await;
}

#[tokio::test]
async fn text_only_receipts_with_hex_ids_are_matched() {
    let cfg = SimConfig {
        hex_ids: true,
        text_only_receipts: true,
        ..sim_config()
    };
    let env = setup(cfg, |_| {}).await;
    let id = env.send(UK, "hex ids, text receipts").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    let m = env.store.message(id).await.unwrap().unwrap();
    let answered = env.sim.received()[0].message_id.clone().unwrap();
    assert!(
        answered.chars().any(|c| c.is_ascii_alphabetic()),
        "{answered}"
    );
    assert!(m.part_ids[0].is_some());
    env.stop().await;
}

#[tokio::test]
async fn receipt_in_the_other_base_is_matched() {
    let cfg = SimConfig {
        hex_ids: true,
        receipt_id_decimal: true,
        text_only_receipts: true,
        ..sim_config()
    };
    let env = setup(cfg, |_| {}).await;
    let id = env.send(UK, "hex response, decimal receipt").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    env.stop().await;
}

#[tokio::test]
async fn receipt_before_its_response_is_held_and_applied() {
    let cfg = SimConfig {
        receipt_before_response: true,
        resp_delay_ms: 100,
        receipt_delay_ms: 0,
        ..sim_config()
    };
    let env = setup(cfg, |_| {}).await;
    let id = env.send(UK, "receipt first").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    env.stop().await;
}

#[tokio::test]
async fn long_gsm_and_japanese_ucs2_texts_reach_the_simulator_intact() {
    let env = setup(sim_config(), |_| {}).await;
    let gsm: String = "Dear customer, your appointment is confirmed for Monday at 10:00. Bring your ID {card} and €5 deposit. "
        .repeat(4)
        .chars()
        .take(400)
        .collect();
    let jp = "お問い合わせありがとうございます。担当者から明日までにご連絡いたします。ご不明な点があれば、このメッセージに返信してください。";
    let a = env.send(UK, &gsm).await;
    let b = env.send(JP, jp).await;
    env.wait_status(a, MessageStatus::Delivered).await;
    env.wait_status(b, MessageStatus::Delivered).await;
    let m = env.store.message(a).await.unwrap().unwrap();
    assert_eq!(m.parts, 3);
    let rec = env.sim.received();
    assert!(
        rec.iter()
            .filter(|r| r.destination == "447911123456")
            .all(|r| r.esm_class & 0x40 != 0 && r.data_coding == 0)
    );
    assert!(
        rec.iter()
            .filter(|r| r.destination == "819012345678")
            .all(|r| r.data_coding == 8)
    );
    let texts = accepted_texts(&env.sim);
    assert!(texts.contains(&gsm), "{texts:?}");
    assert!(texts.contains(&jp.to_owned()), "{texts:?}");
    env.stop().await;
}

// === replies ===

#[tokio::test]
async fn reply_reaches_the_open_conversation_and_multipart_reply_is_reassembled() {
    let env = setup(sim_config(), |_| {}).await;
    let id = env.send(UK, "Can we call you back today?").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    env.sim
        .inject("447911123456", SUPPORT, "Yes, after 5pm please")
        .unwrap();
    let long: String = "I would also like to change the delivery address to the office on the high street, next to the station. ".repeat(3);
    env.sim.inject("447911123456", SUPPORT, &long).unwrap();
    let got = wait(|| async {
        env.events()
            .await
            .iter()
            .filter(|e| matches!(e, EventKind::MessageReceived { .. }))
            .count()
            == 2
    })
    .await;
    assert!(got, "{:?}", env.events().await);
    let received: Vec<(String, bool)> = env
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e {
            EventKind::MessageReceived {
                text, incomplete, ..
            } => Some((text, incomplete)),
            _ => None,
        })
        .collect();
    assert_eq!(received[0], ("Yes, after 5pm please".to_owned(), false));
    assert_eq!(received[1], (long, false));
    assert!(env.store.reassembly_keys().await.unwrap().is_empty());
    env.stop().await;
}

#[tokio::test]
async fn first_contact_under_new_chat_requests_a_chat() {
    let env = setup(sim_config(), |_| {}).await;
    env.sim
        .inject(
            "819012345678",
            SUPPORT,
            "こんにちは、予約の変更をお願いします",
        )
        .unwrap();
    let ok = wait(|| async {
        env.events().await.iter().any(|e| {
            matches!(e, EventKind::ChatRequested { text, .. } if text == "こんにちは、予約の変更をお願いします")
        })
    })
    .await;
    assert!(ok, "{:?}", env.events().await);
    let convs = env
        .store
        .conversations(None, true, None, usize::MAX)
        .await
        .unwrap()
        .conversations;
    assert_eq!(convs.len(), 1);
    assert_eq!(convs[0].customer, JP);
    env.stop().await;
}

#[tokio::test]
async fn stop_keyword_records_an_opt_out() {
    let env = setup(sim_config(), |_| {}).await;
    let id = env.send(UK, "Reminder: appointment tomorrow").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    env.sim.inject("447911123456", SUPPORT, "STOP").unwrap();
    // The event is published after the commit's flush; wait for it.
    let ok = wait(|| async {
        env.events()
            .await
            .iter()
            .any(|e| matches!(e, EventKind::CustomerOptedOut { .. }))
    })
    .await;
    assert!(ok, "{:?}", env.events().await);
    assert!(env.store.opt_out(SUPPORT, UK).await.unwrap().is_some());
    env.stop().await;
}

// === flow control and failures ===

#[tokio::test]
async fn throttled_submits_are_all_delivered_in_conversation_order() {
    let cfg = SimConfig {
        throttle: 0.3,
        ..sim_config()
    };
    let env = setup(cfg, |_| {}).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(env.send(UK, &format!("update number {i}")).await);
    }
    for id in &ids {
        env.wait_status(*id, MessageStatus::Delivered).await;
    }
    assert!(env.sim.stats().throttled > 0, "{:?}", env.sim.stats());
    let texts = accepted_texts(&env.sim);
    let want: Vec<String> = (0..12).map(|i| format!("update number {i}")).collect();
    assert_eq!(texts, want);
    env.stop().await;
}

#[tokio::test]
async fn dropped_connections_lose_nothing_and_duplicates_are_flagged() {
    let cfg = SimConfig {
        drop_every: 4,
        ..sim_config()
    };
    // Every drop leaves what was in flight with an unknown outcome; allow
    // enough resends that all get through, and check the bound holds.
    const MAX_RESUBMITS: u32 = 10;
    let env = setup(cfg, |cfg| {
        for c in &mut cfg.carriers {
            c.max_resubmits = MAX_RESUBMITS;
        }
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let customer = format!("+4479111234{i:02}");
        ids.push(env.send(&customer, &format!("message {i}")).await);
    }
    for id in &ids {
        env.wait_status(*id, MessageStatus::Delivered).await;
    }
    assert!(env.sim.stats().drops > 0, "{:?}", env.sim.stats());
    let rec = env.sim.received();
    for (i, id) in ids.iter().enumerate() {
        let text = format!("message {i}");
        let copies = rec.iter().filter(|r| r.text == text).count();
        assert!(copies >= 1, "{text} never reached the simulator");
        assert!(
            copies <= 1 + MAX_RESUBMITS as usize,
            "{text} went out {copies} times"
        );
        if copies > 1 {
            let m = env.store.message(*id).await.unwrap().unwrap();
            assert!(
                m.possible_duplicate,
                "{text} went out {copies} times unflagged"
            );
        }
    }
    env.stop().await;
}

// === unknown outcomes: max_resubmits and late responses ===

/// How many times the simulator received a submit of `text`.
fn copies(sim: &SimHandle, text: &str) -> usize {
    sim.received().iter().filter(|r| r.text == text).count()
}

/// The submitted, delivered and failed events of message `id`, once the
/// last of them is `last` (events are listed once durable, which can be a
/// moment after the message reads so).
async fn outcome_events(env: &Env, id: MessageId, last: &EventKind) -> Vec<EventKind> {
    let of_id = |k: &EventKind| {
        matches!(k,
            EventKind::MessageSubmitted { message, .. }
            | EventKind::MessageDelivered { message }
            | EventKind::MessageFailed { message, .. } if *message == id)
    };
    let now = || async {
        env.events()
            .await
            .into_iter()
            .filter(of_id)
            .collect::<Vec<_>>()
    };
    let done = wait(|| async { now().await.last() == Some(last) }).await;
    let kinds = now().await;
    assert!(
        done,
        "message {id}: {kinds:?}, wanted the last to be {last:?}"
    );
    kinds
}

#[tokio::test]
async fn unanswered_submit_goes_out_one_plus_max_resubmits_times_then_ends_unknown() {
    const MAX: u32 = 2;
    const TEXT: &str = "anyone there?";
    // The SMSC takes every submit and never answers.
    let cfg = SimConfig {
        resp_delay_ms: 3_600_000,
        ..sim_config()
    };
    let env = setup(cfg, |cfg| {
        for c in &mut cfg.carriers {
            c.response_timeout = Duration::from_millis(300);
            c.max_resubmits = MAX;
            c.resubmit_delay = Duration::ZERO;
        }
    })
    .await;
    let id = env.send(UK, TEXT).await;
    env.wait_status(id, MessageStatus::Unknown).await;
    assert_eq!(copies(&env.sim, TEXT), 1 + MAX as usize);
    let m = env.store.message(id).await.unwrap().unwrap();
    assert!(m.possible_duplicate);
    // The agent is told, once.
    let failed = EventKind::MessageFailed {
        message: id,
        state: FailState::NoReceipt,
        error: None,
    };
    assert_eq!(outcome_events(&env, id, &failed).await, [failed]);
    // It left the outbox: nothing more goes out.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(copies(&env.sim, TEXT), 1 + MAX as usize);
    assert!(
        env.store
            .claim_outbox("sim", 10, 1000, clock::wall_ms())
            .await
            .unwrap()
            .is_empty()
    );
    env.stop().await;
}

#[tokio::test]
async fn submit_lost_to_dropped_binds_goes_out_one_plus_max_resubmits_times() {
    const TEXT: &str = "are you there?";
    // The SMSC drops the connection on every submit, before answering.
    let cfg = SimConfig {
        drop_every: 1,
        ..sim_config()
    };
    let env = setup(cfg, |cfg| {
        for c in &mut cfg.carriers {
            c.max_resubmits = 1;
        }
    })
    .await;
    let id = env.send(JP, TEXT).await;
    env.wait_status(id, MessageStatus::Unknown).await;
    assert_eq!(copies(&env.sim, TEXT), 2);
    // Binds keep coming back (the reconnect backoff is 50-300 ms here),
    // and nothing more goes out.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(copies(&env.sim, TEXT), 2);
    assert!(env.sim.stats().drops >= 2);
    env.stop().await;
}

/// An SMSC whose every response comes after the response timeout (four
/// times it, 1.5 s past it: a test thread stalled past both would read the
/// answer first; 0.7 s past it was a margin a loaded box could eat), the
/// receipt after the response; the carrier's resend settings as given.
async fn late_answers(max_resubmits: u32, resubmit_delay: Duration) -> Env {
    let cfg = SimConfig {
        resp_delay_ms: 2_000,
        receipt_delay_ms: 2_500,
        ..sim_config()
    };
    setup(cfg, |cfg| {
        for c in &mut cfg.carriers {
            c.response_timeout = Duration::from_millis(500);
            c.max_resubmits = max_resubmits;
            c.resubmit_delay = resubmit_delay;
        }
    })
    .await
}

#[tokio::test]
async fn late_submit_responses_are_recorded_and_their_receipts_deliver() {
    const TEXT: &str = "slow but sure";
    // Room for every resend before the first late answer lands: the
    // message must end delivered, never given up.
    let env = late_answers(10, Duration::ZERO).await;
    let id = env.send(UK, TEXT).await;
    // Only a late response's id can match the receipt.
    env.wait_status(id, MessageStatus::Delivered).await;
    let m = env.store.message(id).await.unwrap().unwrap();
    assert!(m.possible_duplicate, "it was handed back after the timeout");
    let delivered_event = EventKind::MessageDelivered { message: id };
    assert_eq!(
        outcome_events(&env, id, &delivered_event).await,
        [
            EventKind::MessageSubmitted {
                message: id,
                possible_duplicate: true
            },
            EventKind::MessageDelivered { message: id },
        ]
    );
    // Every copy's carrier id gets indexed as its late response lands: a
    // receipt for any of them finds the message.
    let carrier = env.cfg.carrier("sim").unwrap();
    let ids: Vec<String> = env
        .sim
        .received()
        .into_iter()
        .filter(|r| r.text == TEXT)
        .filter_map(|r| r.message_id)
        .map(|raw| smppgw::dlr::normalize_id(&raw, carrier.id_format))
        .collect();
    assert!(!ids.is_empty());
    let delivered = ReceiptUpdate {
        state: ReceiptState::Delivered,
        error: None,
        is_final: true,
    };
    let indexed = wait(|| async {
        for cid in &ids {
            let r = env
                .store
                .record_receipt("sim", cid, delivered.clone(), clock::wall_ms())
                .await
                .unwrap();
            if r != ReceiptOutcome::Duplicate {
                return false;
            }
        }
        true
    })
    .await;
    assert!(indexed, "a late carrier id was not recorded: {ids:?}");
    env.stop().await;
}

/// Regression ("a timed-out message is handed back at once", left open in
/// sessions 3-6): a submit that timed out went again at once, so an SMSC
/// that answers late got it twice and the customer read it twice. With a
/// resend delay longer than the SMSC's lateness, the late response lands
/// first, records the message sent, and it never goes again.
#[tokio::test]
async fn a_late_response_inside_the_resend_delay_spares_the_customer_a_duplicate() {
    const TEXT: &str = "only once, please";
    let env = late_answers(1, Duration::from_secs(4)).await;
    let sent = clock::now();
    let id = env.send(UK, TEXT).await;
    env.wait_status(id, MessageStatus::Delivered).await;
    // Past the delay: a resend would have reached the SMSC by now.
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(sent.elapsed())).await;
    assert_eq!(
        copies(&env.sim, TEXT),
        1,
        "sent again despite the late answer"
    );
    let m = env.store.message(id).await.unwrap().unwrap();
    assert!(!m.possible_duplicate, "it went out once: {m:?}");
    assert_eq!(env.store.outbox_depth(), 0);
    env.stop().await;
}

#[tokio::test]
async fn late_response_to_a_message_given_up_still_lets_its_receipt_deliver_it() {
    const TEXT: &str = "better late than never";
    let cfg = SimConfig {
        resp_delay_ms: 1_500,
        receipt_delay_ms: 2_500,
        ..sim_config()
    };
    let env = setup(cfg, |cfg| {
        for c in &mut cfg.carriers {
            c.response_timeout = Duration::from_millis(300);
            c.max_resubmits = 0;
            c.resubmit_delay = Duration::ZERO;
        }
    })
    .await;
    let id = env.send(JP, TEXT).await;
    // Given up at the first timeout (never sent again), but the late
    // response's id is recorded, and the receipt that follows delivers it:
    // nothing is lost.
    let failed = EventKind::MessageFailed {
        message: id,
        state: FailState::NoReceipt,
        error: None,
    };
    let delivered = EventKind::MessageDelivered { message: id };
    assert_eq!(
        outcome_events(&env, id, &delivered).await,
        [failed, delivered]
    );
    assert_eq!(env.status(id).await, MessageStatus::Delivered);
    assert_eq!(copies(&env.sim, TEXT), 1);
    env.stop().await;
}

#[tokio::test]
async fn bad_password_parks_the_link_without_hammering() {
    let env = setup(sim_config(), |cfg| {
        cfg.carriers[0].password = config::Secret::new("wrong-pass");
        cfg.carriers[0].auth_failure_retry = Duration::from_secs(5);
    })
    .await;
    let parked =
        wait(|| async { env.links.status().carriers[0].binds[0].state == BindState::AuthFailed })
            .await;
    assert!(parked);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = env.links.status();
    assert_eq!(s.carriers[0].binds[0].attempts, 1, "{s:?}");
    assert_eq!(env.sim.stats().binds_refused, 1);
    assert!(!env.links.can_send("sim"));
    assert!(
        s.carriers[0].binds[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("password")
    );
    let downs = env
        .events()
        .await
        .into_iter()
        .filter(|e| matches!(e, EventKind::LinkDown { reason: Some(r), .. } if r == "auth_failed"))
        .count();
    assert_eq!(downs, 1);
    env.stop().await;
}

#[tokio::test]
async fn shutdown_puts_unsent_work_back_and_unbinds() {
    let env = setup(sim_config(), |_| {}).await;
    let ok = wait(|| async { env.links.can_send("sim") }).await;
    assert!(ok);
    // Stop the sim answering so work piles up, then shut down.
    env.sim.set_resp_delay_ms(60_000);
    let ids = [env.send(UK, "one").await, env.send(JP, "two").await];
    // Both on the wire (so both flagged as possible duplicates when handed
    // back). Regression: a fixed 200 ms sleep could stop the link before a
    // slow box had sent the second, which went back unflagged.
    let sent = wait(|| async { env.sim.received().len() >= 2 }).await;
    assert!(sent, "{:?}", env.sim.received());
    let store = env.store.clone();
    env.stop().await;
    for id in ids {
        let m = store.message(id).await.unwrap().unwrap();
        assert_eq!(m.status, MessageStatus::Accepted);
    }
    // Both are claimable again at once: nothing is left leased.
    let items = store
        .claim_outbox("sim", 10, 1000, clock::wall_ms())
        .await
        .unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|i| i.possible_duplicate));
}

#[tokio::test]
async fn mo_with_national_number_is_normalised() {
    let env = setup(sim_config(), |_| {}).await;
    let mo = Mo {
        from: "07911123456".into(),
        to: SUPPORT.into(),
        text: "hello from a national number".into(),
        ton: 2,
        npi: 1,
    };
    env.sim.inject_mo(&mo).unwrap();
    let ok = wait(|| async {
        env.store
            .conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations
            .iter()
            .any(|c| c.customer == UK)
    })
    .await;
    assert!(ok);
    env.stop().await;
}

#[tokio::test]
async fn transmitter_receiver_pair_sends_and_receives() {
    let env = setup(sim_config(), |cfg| {
        cfg.carriers[0].bind = config::BindMode::TransmitterReceiver;
    })
    .await;
    let id = env.send(UK, "pair mode").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    env.sim.inject("447911123456", SUPPORT, "got it").unwrap();
    let ok = wait(|| async {
        env.events()
            .await
            .iter()
            .any(|e| matches!(e, EventKind::MessageReceived { text, .. } if text == "got it"))
    })
    .await;
    assert!(ok);
    let s = env.links.status();
    let kinds: Vec<_> = s.carriers[0].binds.iter().map(|b| b.kind).collect();
    assert_eq!(kinds, ["transmitter", "receiver"]);
    assert!(s.carriers[0].ready && s.carriers[0].receiving);
    // Only the transmitter submitted.
    assert!(
        env.sim
            .received()
            .iter()
            .all(|r| r.bind == env.sim.received()[0].bind)
    );
    env.stop().await;
}

#[tokio::test]
async fn reply_to_an_unknown_number_is_acknowledged_not_filed() {
    let env = setup(sim_config(), |_| {}).await;
    env.sim
        .inject("447911123456", "447000000999", "wrong number")
        .unwrap();
    let acked = wait(|| async { env.sim.stats().mos_acked == 1 }).await;
    assert!(acked, "{:?}", env.sim.stats());
    assert!(
        env.store
            .conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations
            .is_empty()
    );
    env.stop().await;
}

// === the receive path without a socket ===

mod receive_path {
    use super::*;
    use bytes::BytesMut;
    use smppgw::link::inbound::{
        Delivered, answer, expire_receipts, handle_deliver, handle_deliveries, sweep_reassembly,
    };
    use smppgw::pdu::{CommandStatus, Pdu, SmBody, Tlv, TlvTag, Tlvs};
    use smppgw::store::{InboundOutcome, ReceiptOutcome};

    pub(super) fn deliver(esm: u8, from: &str, to: &str, sm: &[u8], tlvs: &[Tlv<'_>]) -> Vec<u8> {
        let body = SmBody {
            source_addr_ton: 1,
            source_addr_npi: 1,
            source_addr: from.as_bytes(),
            dest_addr_ton: 1,
            dest_addr_npi: 1,
            destination_addr: to.as_bytes(),
            esm_class: esm,
            short_message: sm,
            tlvs: Tlvs::from_list(tlvs),
            ..SmBody::default()
        };
        let mut buf = BytesMut::new();
        Pdu::DeliverSm(body).encode(CommandStatus::ROK, 7, &mut buf);
        buf.to_vec()
    }

    pub(super) fn config(dir: &std::path::Path) -> Config {
        config::demo(dir, "127.0.0.1:2775".parse().unwrap(), None).unwrap()
    }

    /// A delivered-receipt deliver_sm for the carrier's message `id`.
    pub(super) fn receipt(id: &str) -> Vec<u8> {
        let id = format!("{id}\0");
        deliver(
            0x04,
            "447911123456",
            SUPPORT,
            b"",
            &[
                Tlv::new(TlvTag::RECEIPTED_MESSAGE_ID, id.as_bytes()),
                Tlv::new(TlvTag::MESSAGE_STATE, &[2]),
            ],
        )
    }

    /// `n` messages to distinct customers, accepted, claimed and answered
    /// by the carrier with ids `"5000"`, `"5001"`, ... (the carrier's
    /// form; returned with the message ids).
    pub(super) async fn submitted<S: Store>(
        store: &S,
        cfg: &Config,
        n: usize,
    ) -> Vec<(MessageId, String)> {
        let carrier = cfg.carrier("sim").unwrap();
        for i in 0..n {
            let new = outbound("alice", &format!("+4479111{i:05}"), &format!("message {i}"));
            store.accept_send(new, 1_000).await.unwrap().unwrap();
        }
        let claimed = store.claim_outbox("sim", n, 60_000, 1_000).await.unwrap();
        assert_eq!(claimed.len(), n);
        let mut out = Vec::new();
        for (i, item) in claimed.iter().enumerate() {
            let raw = (5000 + i).to_string();
            let id = smppgw::dlr::normalize_id(&raw, carrier.id_format);
            store
                .record_submit(item.message, 0, 1, Ok(id), 1_000)
                .await
                .unwrap();
            out.push((item.message, raw));
        }
        out
    }

    /// The receipt sweep runs the store's chunked expiry until nothing is
    /// due: with more waits than one chunk, one sweep turns every one
    /// `unknown` and reports them all.
    #[tokio::test]
    async fn one_receipt_sweep_expires_more_than_a_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = SledStore::open(dir.path().join("store")).unwrap();
        let n = smppgw::store::EXPIRE_CHUNK + 5;
        let sent = submitted(&store, &cfg, n).await;
        let timeout = cfg
            .carriers
            .iter()
            .map(|c| c.receipt_timeout)
            .max()
            .unwrap();
        let later = 1_000 + timeout.as_millis() as u64;
        let r = expire_receipts(&store, &cfg, 60_000, later).await.unwrap();
        assert_eq!((r.no_receipt, r.more), (n, false));
        for (mid, _) in [sent[0].clone(), sent[n - 1].clone()] {
            let m = store.message(mid).await.unwrap().unwrap();
            assert_eq!(m.status, MessageStatus::Unknown);
        }
    }

    #[tokio::test]
    async fn receipt_found_only_by_its_tlv_is_held_until_the_response() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = SledStore::open(dir.path().join("store")).unwrap();
        let carrier = cfg.carrier("sim").unwrap();
        // esm_class 0, but a receipted_message_id TLV: still a receipt.
        let f = deliver(
            0,
            "447911123456",
            SUPPORT,
            b"",
            &[
                Tlv::new(TlvTag::RECEIPTED_MESSAGE_ID, b"3B9ACA00\0"),
                Tlv::new(TlvTag::MESSAGE_STATE, &[2]),
            ],
        );
        let d = handle_deliver(&store, &cfg, carrier, &f, 1_000)
            .await
            .unwrap();
        assert_eq!(
            d,
            Delivered::Receipt {
                outcome: ReceiptOutcome::Held,
                fallback: None
            }
        );
    }

    #[tokio::test]
    async fn timed_out_multipart_reply_is_filed_incomplete() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = SledStore::open(dir.path().join("store")).unwrap();
        let carrier = cfg.carrier("sim").unwrap();
        let mut sm = smppgw::text::udh::udh8(0x42, 3, 1).to_vec();
        sm.extend_from_slice(b"first part only ");
        let f = deliver(0x40, "447911123456", SUPPORT, &sm, &[]);
        let d = handle_deliver(&store, &cfg, carrier, &f, 1_000)
            .await
            .unwrap();
        assert_eq!(d, Delivered::PartStored { have: 1, total: 3 });
        // Not yet due.
        assert_eq!(
            sweep_reassembly(&store, &cfg, 60_000, 2_000).await.unwrap(),
            0
        );
        assert_eq!(
            sweep_reassembly(&store, &cfg, 60_000, 70_000)
                .await
                .unwrap(),
            1
        );
        assert!(store.reassembly_keys().await.unwrap().is_empty());
        let convs = store
            .conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations;
        assert_eq!(convs.len(), 1);
        let (_, msgs) = store.transcript(convs[0].id).await.unwrap().unwrap();
        assert_eq!(msgs[0].text, "first part only ");
        assert!(msgs[0].incomplete);
        assert_eq!(msgs[0].parts, 3);
    }

    #[tokio::test]
    async fn sar_parts_from_two_customers_with_one_reference_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = SledStore::open(dir.path().join("store")).unwrap();
        let carrier = cfg.carrier("sim").unwrap();
        let part = |from: &str, seq: u8, text: &'static [u8]| {
            let r = 9u16.to_be_bytes();
            let (t, s) = ([2u8], [seq]);
            deliver(
                0,
                from,
                SUPPORT,
                text,
                &[
                    Tlv::new(TlvTag::SAR_MSG_REF_NUM, &r),
                    Tlv::new(TlvTag::SAR_TOTAL_SEGMENTS, &t),
                    Tlv::new(TlvTag::SAR_SEGMENT_SEQNUM, &s),
                ],
            )
        };
        let frames = [
            part("447911123456", 2, b"world"),
            part("819012345678", 1, b"other "),
            part("447911123456", 1, b"hello "),
        ];
        let mut last = None;
        for f in &frames {
            last = Some(
                handle_deliver(&store, &cfg, carrier, f, 1_000)
                    .await
                    .unwrap(),
            );
        }
        assert!(matches!(
            last,
            Some(Delivered::Reply(InboundOutcome::ChatRequested { .. }))
        ));
        let convs = store
            .conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations;
        assert_eq!(convs.len(), 1);
        assert_eq!(convs[0].customer, UK);
        let (_, msgs) = store.transcript(convs[0].id).await.unwrap().unwrap();
        assert_eq!(msgs[0].text, "hello world");
        assert_eq!(store.reassembly_keys().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn burst_of_receipts_is_stored_in_one_write() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = SledStore::open(dir.path().join("store")).unwrap();
        let carrier = cfg.carrier("sim").unwrap();
        const N: usize = 40;
        let sent = submitted(&store, &cfg, N).await;
        let frames: Vec<Vec<u8>> = sent.iter().map(|(_, id)| receipt(id)).collect();
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let before = store.flush_count();
        let settled = handle_deliveries(&store, &cfg, carrier, &refs, 2_000).await;
        let flushes = store.flush_count() - before;
        assert!(
            (1..=2).contains(&flushes),
            "{N} receipts took {flushes} flushes"
        );
        assert_eq!(settled.len(), N);
        for ((message, _), s) in sent.iter().zip(&settled) {
            assert_eq!(answer(s), CommandStatus::ROK);
            assert_eq!(
                s,
                &Ok(Delivered::Receipt {
                    outcome: ReceiptOutcome::Applied {
                        message: *message,
                        status: MessageStatus::Delivered,
                        submitted_ms: Some(1_000),
                    },
                    fallback: Some(0)
                })
            );
            let m = store.message(*message).await.unwrap().unwrap();
            assert_eq!(m.status, MessageStatus::Delivered);
        }
    }

    #[tokio::test]
    async fn mixed_batch_answers_each_frame_and_files_texts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = SledStore::open(dir.path().join("store")).unwrap();
        let carrier = cfg.carrier("sim").unwrap();
        let sent = submitted(&store, &cfg, 1).await;
        let part = |seq: u8, text: &[u8]| {
            let mut sm = smppgw::text::udh::udh8(0x21, 2, seq).to_vec();
            sm.extend_from_slice(text);
            deliver(0x40, "447911123456", SUPPORT, &sm, &[])
        };
        // A frame whose command_length lies.
        let mut garbage = receipt("77");
        garbage[3] = garbage[3].wrapping_add(5);
        let garbage_status = Pdu::parse(&garbage).unwrap_err().status();
        assert_ne!(garbage_status, CommandStatus::ROK);
        // A receipt without id or state.
        let unmatchable = deliver(0x04, "447911123456", SUPPORT, b"", &[]);
        let frames = [
            part(1, b"hello "),
            receipt(&sent[0].1),
            garbage,
            part(2, b"world"),
            unmatchable,
        ];
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let settled = handle_deliveries(&store, &cfg, carrier, &refs, 2_000).await;
        let statuses: Vec<CommandStatus> = settled.iter().map(answer).collect();
        assert_eq!(
            statuses,
            [
                CommandStatus::ROK,
                CommandStatus::ROK,
                garbage_status,
                CommandStatus::ROK,
                CommandStatus::ROK
            ]
        );
        assert_eq!(settled[0], Ok(Delivered::PartStored { have: 1, total: 2 }));
        assert!(matches!(
            settled[1],
            Ok(Delivered::Receipt {
                outcome: ReceiptOutcome::Applied { .. },
                ..
            })
        ));
        assert_eq!(settled[2], Ok(Delivered::Rejected(garbage_status)));
        assert!(matches!(settled[3], Ok(Delivered::Reply(_))));
        assert_eq!(settled[4], Ok(Delivered::UnmatchableReceipt));
        assert_eq!(
            store.message(sent[0].0).await.unwrap().unwrap().status,
            MessageStatus::Delivered
        );
        // The customer's reply, reassembled from parts around the receipt.
        let convs = store
            .conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations;
        let conv = convs.iter().find(|c| c.customer == UK).unwrap();
        let (_, msgs) = store.transcript(conv.id).await.unwrap().unwrap();
        assert!(
            msgs.iter()
                .any(|m| m.text == "hello world" && !m.incomplete),
            "{msgs:?}"
        );
        assert!(store.reassembly_keys().await.unwrap().is_empty());
    }
}

// === local address ===

/// A loopback address other than 127.0.0.1 (Linux routes all of 127/8 to lo).
const LOCAL_ALT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// A TCP relay on 127.0.0.1 in front of the simulator that records the
/// source address of every connection it accepts (what a carrier's IP
/// allow-list sees).
struct Proxy {
    addr: SocketAddr,
    sources: Arc<Mutex<Vec<IpAddr>>>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sources = Arc::new(Mutex::new(Vec::new()));
        let seen = sources.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, peer)) = listener.accept().await {
                seen.lock().unwrap().push(peer.ip());
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { addr, sources }
    }

    /// Distinct source addresses seen so far.
    fn sources(&self) -> Vec<IpAddr> {
        let mut v = self.sources.lock().unwrap().clone();
        v.dedup();
        v
    }
}

/// A plain carrier reached through a [`Proxy`], with `local_address` set
/// to `local`.
async fn setup_from(local: Option<IpAddr>) -> (Env, Proxy) {
    let cancel = CancellationToken::new();
    let sim = sim::start(sim_config(), cancel.child_token())
        .await
        .unwrap();
    let proxy = Proxy::start(sim.local_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config::demo(dir.path(), proxy.addr, None).unwrap();
    shorten(&mut cfg);
    cfg.carriers[0].local_address = local;
    let cfg = Arc::new(cfg);
    let store = Arc::new(SledStore::open(dir.path().join("store")).unwrap());
    let links = Links::start_with(store.clone(), cfg.clone(), cancel.child_token(), options());
    let env = Env {
        _dir: dir,
        store,
        cfg,
        sim,
        links,
        cancel,
    };
    (env, proxy)
}

#[tokio::test]
async fn carrier_connects_from_its_local_address() {
    let (env, proxy) = setup_from(Some(LOCAL_ALT)).await;
    let id = env.send(UK, "from 127.0.0.2").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    assert_eq!(proxy.sources(), [LOCAL_ALT]);
    env.stop().await;
}

#[tokio::test]
async fn carrier_without_local_address_connects_from_the_default_source() {
    let (env, proxy) = setup_from(None).await;
    let id = env.send(UK, "from wherever").await;
    env.wait_status(id, MessageStatus::Delivered).await;
    assert_eq!(proxy.sources(), [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    env.stop().await;
}

/// `local` cannot be used: the bind backs off and retries, says why with
/// the address, and nothing reaches the carrier.
async fn unusable_local_address_backs_off_and_retries(local: IpAddr, why: &str) {
    let (env, proxy) = setup_from(Some(local)).await;
    let retried = wait(|| async { env.links.status().carriers[0].binds[0].attempts >= 3 }).await;
    let s = env.links.status();
    assert!(retried, "{s:?}");
    let bind = &s.carriers[0].binds[0];
    let error = bind.last_error.as_deref().unwrap_or("");
    assert!(error.contains(&local.to_string()), "{error}");
    assert!(error.contains(why), "{error}");
    assert!(proxy.sources().is_empty());
    assert_eq!(env.sim.stats().connections, 0);
    let down: Vec<_> = env
        .events()
        .await
        .into_iter()
        .filter(
            |e| matches!(e, EventKind::LinkDown { reason: Some(r), .. } if r == "local_address"),
        )
        .collect();
    assert_eq!(down.len(), 1, "one link_down for the repeated failure");
    env.stop().await;
}

#[tokio::test]
async fn local_address_not_on_this_host_backs_off_and_retries() {
    // 192.0.2.0/24 (TEST-NET-1) is never configured on a test host.
    let local = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
    unusable_local_address_backs_off_and_retries(local, "address").await;
}

#[tokio::test]
async fn local_address_of_the_other_family_backs_off_and_retries() {
    // The carrier host is 127.0.0.1: no IPv6 peer to connect to from ::1.
    unusable_local_address_backs_off_and_retries(IpAddr::V6(Ipv6Addr::LOCALHOST), "same family")
        .await;
}

// === TLS ===

mod tls_link {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };

    /// (CA PEM, server certificate PEM, server key PEM) for "localhost".
    fn pki() -> (String, String, String) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca.distinguished_name
            .push(DnType::CommonName, "link test ca");
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        (ca_pem, cert.pem(), key.serialize_pem())
    }

    async fn tls_env(server_name: &str) -> (Env, tempfile::TempDir) {
        tls_env_from(server_name, None).await.0
    }

    /// [`tls_env`], connecting from `local` through a [`super::Proxy`] that
    /// records the source address of every connection.
    async fn tls_env_from(
        server_name: &str,
        local: Option<IpAddr>,
    ) -> ((Env, tempfile::TempDir), Proxy) {
        let pem_dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = pki();
        let p = |n: &str, v: &str| {
            let path = pem_dir.path().join(n);
            std::fs::write(&path, v).unwrap();
            path
        };
        let (ca, cert, key) = (p("ca.pem", &ca), p("cert.pem", &cert), p("key.pem", &key));
        let cfg = SimConfig {
            tls_listen: Some("127.0.0.1:0".parse().unwrap()),
            tls_cert: Some(cert),
            tls_key: Some(key),
            ..sim_config()
        };
        let cancel = CancellationToken::new();
        let sim = sim::start(cfg, cancel.child_token()).await.unwrap();
        let proxy = Proxy::start(sim.tls_addr().unwrap()).await;
        let dir = tempfile::tempdir().unwrap();
        let mut c = config::demo(dir.path(), proxy.addr, None).unwrap();
        shorten(&mut c);
        c.carriers[0].local_address = local;
        c.carriers[0].tls = Some(config::TlsConfig {
            ca: Some(ca),
            client_cert: None,
            client_key: None,
            server_name: Some(server_name.to_owned()),
        });
        let cfg = Arc::new(c);
        let store = Arc::new(SledStore::open(dir.path().join("store")).unwrap());
        let links = Links::start_with(store.clone(), cfg.clone(), cancel.child_token(), options());
        (
            (
                Env {
                    _dir: dir,
                    store,
                    cfg,
                    sim,
                    links,
                    cancel,
                },
                pem_dir,
            ),
            proxy,
        )
    }

    #[tokio::test]
    async fn tls_carrier_sends_and_gets_receipts() {
        let (env, _pem) = tls_env("localhost").await;
        let id = env.send(UK, "over TLS").await;
        env.wait_status(id, MessageStatus::Delivered).await;
        env.stop().await;
    }

    #[tokio::test]
    async fn tls_carrier_connects_from_its_local_address() {
        let ((env, _pem), proxy) = tls_env_from("localhost", Some(LOCAL_ALT)).await;
        let id = env.send(UK, "over TLS from 127.0.0.2").await;
        env.wait_status(id, MessageStatus::Delivered).await;
        assert_eq!(proxy.sources(), [LOCAL_ALT]);
        env.stop().await;
    }

    #[tokio::test]
    async fn tls_with_the_wrong_server_name_never_binds() {
        let (env, _pem) = tls_env("smsc.example.net").await;
        let failed = wait(|| async {
            env.links.status().carriers[0].binds[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("TLS"))
        })
        .await;
        assert!(failed, "{:?}", env.links.status());
        assert_eq!(env.sim.stats().binds, 0);
        assert!(!env.links.can_send("sim"));
        env.stop().await;
    }
}

// === status table per carrier ===

#[tokio::test]
async fn rebind_status_rebuilds_the_bind_and_loses_nothing() {
    let cfg = SimConfig {
        throttle: 0.3,
        ..sim_config()
    };
    // This carrier's 0x58 means "rebind" instead of "throttled".
    let env = setup(cfg, |c| {
        c.carriers[0]
            .status
            .insert(0x58, config::StatusAction::Rebind);
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            env.send(&format!("+4479111234{i:02}"), &format!("rebind {i}"))
                .await,
        );
    }
    for id in &ids {
        env.wait_status(*id, MessageStatus::Delivered).await;
    }
    let s = env.sim.stats();
    assert!(s.throttled > 0 && s.binds > 1, "{s:?}");
    env.stop().await;
}

#[tokio::test]
async fn temporary_status_is_retried_until_delivered() {
    let cfg = SimConfig {
        throttle: 0.3,
        ..sim_config()
    };
    let env = setup(cfg, |c| {
        c.carriers[0]
            .status
            .insert(0x58, config::StatusAction::Temporary);
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            env.send(&format!("+4479111234{i:02}"), &format!("retry {i}"))
                .await,
        );
    }
    for id in &ids {
        env.wait_status(*id, MessageStatus::Delivered).await;
    }
    assert!(env.sim.stats().throttled > 0);
    env.stop().await;
}

#[tokio::test]
async fn permanent_status_fails_the_message_with_the_raw_status() {
    let cfg = SimConfig {
        throttle: 1.0,
        ..sim_config()
    };
    let env = setup(cfg, |c| {
        c.carriers[0]
            .status
            .insert(0x58, config::StatusAction::Permanent);
    })
    .await;
    let id = env.send(UK, "refused").await;
    env.wait_status(id, MessageStatus::Failed).await;
    let m = env.store.message(id).await.unwrap().unwrap();
    assert!(
        m.error.as_deref().unwrap_or("").contains("58"),
        "{:?}",
        m.error
    );
    assert_eq!(env.sim.stats().submits, 1);
    env.stop().await;
}

#[tokio::test]
async fn already_bound_waits_the_carrier_timeout() {
    let cfg = SimConfig {
        max_binds: 1,
        ..sim_config()
    };
    let before_refusal = clock::wall_ms();
    let env = setup(cfg, |c| {
        c.carriers[0].binds = 2;
        c.carriers[0].already_bound_wait = Duration::from_secs(5);
    })
    .await;
    let refused = wait(|| async { env.sim.stats().binds_refused == 1 }).await;
    assert!(refused);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let s = env.links.status();
    let waiting: Vec<_> = s.carriers[0]
        .binds
        .iter()
        .filter(|b| b.state == BindState::Backoff)
        .collect();
    assert_eq!(waiting.len(), 1, "{s:?}");
    assert_eq!(waiting[0].attempts, 1);
    assert!(
        waiting[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("already bound")
    );
    // The retry is 5 s (the carrier's timeout: the floor) to 6.25 s (a
    // quarter more, less jitter) after the refusal, which came after
    // `before_refusal` and before now. (Regression: this compared with
    // now + 3 s, and a box stalled for a second after the refusal failed.)
    let retry_at = waiting[0].retry_at_ms.unwrap();
    assert!(
        (before_refusal + 5_000..=clock::wall_ms() + 6_250).contains(&retry_at),
        "retry at {retry_at}, set up at {before_refusal}"
    );
    assert_eq!(env.sim.stats().binds_refused, 1);
    assert!(env.links.can_send("sim"));
    env.stop().await;
}

#[tokio::test]
async fn garbage_from_the_smsc_does_not_stop_delivery() {
    let cfg = SimConfig {
        garbage_every: 3,
        ..sim_config()
    };
    let env = setup(cfg, |_| {}).await;
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            env.send(&format!("+4479111234{i:02}"), &format!("noisy {i}"))
                .await,
        );
    }
    for id in &ids {
        env.wait_status(*id, MessageStatus::Delivered).await;
    }
    assert!(env.sim.stats().garbage_sent > 0, "{:?}", env.sim.stats());
    env.stop().await;
}

// === a store failure is never acknowledged ===

mod store_failure {
    use super::*;
    use smppgw::model::*;
    use smppgw::store::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::watch;

    /// The real sled store with faults injected: `record_inbound` fails
    /// the first `fail_inbound` times, the batch write `record_receipts`
    /// the first `fail_receipts` times (`record_receipt_any` never fails,
    /// so a refusal proves the batch path ran), and `record_submits`
    /// panics the first `panic_records` times, before writing.
    struct Flaky {
        inner: Arc<SledStore>,
        fail_inbound: AtomicU32,
        fail_receipts: AtomicU32,
        panic_records: AtomicU32,
    }

    fn injected() -> StoreError {
        StoreError::Corrupt {
            tree: "test",
            detail: "injected failure".into(),
        }
    }

    /// Takes one of the failures left in `n`.
    fn take(n: &AtomicU32) -> bool {
        n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    impl Store for Flaky {
        fn accept_send(
            &self,
            new: NewOutbound,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Result<Accepted, SendRefused>>> + Send {
            self.inner.accept_send(new, now_ms)
        }

        fn accept_system_send(
            &self,
            new: SystemOutbound,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Result<Accepted, SystemRefused>>> + Send {
            self.inner.accept_system_send(new, now_ms)
        }

        fn claim_outbox(
            &self,
            carrier: &str,
            max: usize,
            lease_ms: u64,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send {
            self.inner.claim_outbox(carrier, max, lease_ms, now_ms)
        }

        fn claim_outbox_in_order(
            &self,
            carrier: &str,
            max: usize,
            lease_ms: u64,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send {
            self.inner
                .claim_outbox_in_order(carrier, max, lease_ms, now_ms)
        }

        fn release(&self, message: MessageId) -> impl Future<Output = StoreResult<bool>> + Send {
            self.inner.release(message)
        }

        fn release_unanswered(
            &self,
            message: MessageId,
            max_resubmits: u32,
            now_ms: u64,
            resend_after_ms: u64,
        ) -> impl Future<Output = StoreResult<Unanswered>> + Send {
            self.inner
                .release_unanswered(message, max_resubmits, now_ms, resend_after_ms)
        }

        fn release_sent(
            &self,
            message: MessageId,
        ) -> impl Future<Output = StoreResult<bool>> + Send {
            self.inner.release_sent(message)
        }

        fn record_submit(
            &self,
            message: MessageId,
            part: u8,
            total_parts: u8,
            result: Result<String, SubmitFailure>,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<SubmitOutcome>> + Send {
            self.inner
                .record_submit(message, part, total_parts, result, now_ms)
        }

        fn record_submits(
            &self,
            batch: Vec<SubmitRecord>,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Vec<SubmitOutcome>>> + Send {
            let panic = take(&self.panic_records);
            let inner = self.inner.clone();
            async move {
                assert!(!panic, "injected panic in record_submits");
                inner.record_submits(batch, now_ms).await
            }
        }

        fn record_receipt(
            &self,
            carrier: &str,
            normalized_id: &str,
            update: ReceiptUpdate,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<ReceiptOutcome>> + Send {
            self.inner
                .record_receipt(carrier, normalized_id, update, now_ms)
        }

        fn record_receipt_any(
            &self,
            carrier: &str,
            candidates: &[&str],
            update: ReceiptUpdate,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<(ReceiptOutcome, Option<usize>)>> + Send {
            self.inner
                .record_receipt_any(carrier, candidates, update, now_ms)
        }

        fn record_receipts(
            &self,
            carrier: &str,
            batch: Vec<ReceiptRecord>,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Vec<(ReceiptOutcome, Option<usize>)>>> + Send
        {
            let fail = take(&self.fail_receipts);
            let inner = self.inner.clone();
            let carrier = carrier.to_owned();
            async move {
                if fail {
                    return Err(injected());
                }
                inner.record_receipts(&carrier, batch, now_ms).await
            }
        }

        fn expire_pending(
            &self,
            now_ms: u64,
            receipt_timeout_ms: u64,
            held_max_age_ms: u64,
        ) -> impl Future<Output = StoreResult<ExpireReport>> + Send {
            self.inner
                .expire_pending(now_ms, receipt_timeout_ms, held_max_age_ms)
        }

        fn record_inbound(
            &self,
            msg: InboundMessage,
            policy: InboundPolicy,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<InboundOutcome>> + Send {
            let fail = take(&self.fail_inbound);
            let inner = self.inner.clone();
            async move {
                if fail {
                    return Err(injected());
                }
                inner.record_inbound(msg, policy, now_ms).await
            }
        }

        fn put_part(
            &self,
            key: &[u8],
            seq: u8,
            bytes: &[u8],
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<()>> + Send {
            self.inner.put_part(key, seq, bytes, now_ms)
        }

        fn take_parts(
            &self,
            key: &[u8],
        ) -> impl Future<Output = StoreResult<BTreeMap<u8, Vec<u8>>>> + Send {
            self.inner.take_parts(key)
        }

        fn parts(
            &self,
            key: &[u8],
        ) -> impl Future<Output = StoreResult<BTreeMap<u8, Vec<u8>>>> + Send {
            self.inner.parts(key)
        }

        fn reassembly_keys(&self) -> impl Future<Output = StoreResult<Vec<(Vec<u8>, u64)>>> + Send {
            self.inner.reassembly_keys()
        }

        fn end_chat(
            &self,
            conversation: ConversationId,
            by: &str,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Result<Conversation, ChatRefused>>> + Send {
            self.inner.end_chat(conversation, by, now_ms)
        }

        fn assign(
            &self,
            conversation: ConversationId,
            to: &str,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Result<Conversation, ChatRefused>>> + Send {
            self.inner.assign(conversation, to, now_ms)
        }

        fn conversation(
            &self,
            id: ConversationId,
        ) -> impl Future<Output = StoreResult<Option<Conversation>>> + Send {
            self.inner.conversation(id)
        }

        fn message(
            &self,
            id: MessageId,
        ) -> impl Future<Output = StoreResult<Option<Message>>> + Send {
            self.inner.message(id)
        }

        fn transcript_page(
            &self,
            id: ConversationId,
            before: Option<MessageId>,
            limit: usize,
        ) -> impl Future<Output = StoreResult<Option<TranscriptPage>>> + Send {
            self.inner.transcript_page(id, before, limit)
        }

        fn conversations(
            &self,
            owner: Option<&str>,
            include_requested: bool,
            after: Option<ConversationId>,
            limit: usize,
        ) -> impl Future<Output = StoreResult<ConversationPage>> + Send {
            self.inner
                .conversations(owner, include_requested, after, limit)
        }

        fn append_event(
            &self,
            kind: EventKind,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Seq>> + Send {
            self.inner.append_event(kind, now_ms)
        }

        fn events_after(
            &self,
            after: Seq,
            limit: usize,
        ) -> impl Future<Output = StoreResult<Vec<Event>>> + Send {
            self.inner.events_after(after, limit)
        }

        fn first_event_seq(&self) -> impl Future<Output = StoreResult<Option<Seq>>> + Send {
            self.inner.first_event_seq()
        }

        fn subscribe(&self) -> watch::Receiver<Seq> {
            self.inner.subscribe()
        }

        fn outbox_depth(&self) -> u64 {
            self.inner.outbox_depth()
        }

        fn outbox_depths(&self) -> std::collections::BTreeMap<String, u64> {
            self.inner.outbox_depths()
        }

        fn ack(&self, consumer: &str, seq: Seq) -> impl Future<Output = StoreResult<()>> + Send {
            self.inner.ack(consumer, seq)
        }

        fn cursor(&self, consumer: &str) -> impl Future<Output = StoreResult<Option<Seq>>> + Send {
            self.inner.cursor(consumer)
        }

        fn trim_events(
            &self,
            now_ms: u64,
            acked_keep_ms: u64,
            max_age_ms: u64,
        ) -> impl Future<Output = StoreResult<usize>> + Send {
            self.inner.trim_events(now_ms, acked_keep_ms, max_age_ms)
        }

        fn put_template(
            &self,
            t: NewTemplate,
            max_per_agent: usize,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<Result<Template, TemplateRefused>>> + Send {
            self.inner.put_template(t, max_per_agent, now_ms)
        }

        fn template(&self, id: u64) -> impl Future<Output = StoreResult<Option<Template>>> + Send {
            self.inner.template(id)
        }

        fn templates(
            &self,
            agent: &str,
        ) -> impl Future<Output = StoreResult<Vec<Template>>> + Send {
            self.inner.templates(agent)
        }

        fn delete_template(
            &self,
            id: u64,
            agent: &str,
        ) -> impl Future<Output = StoreResult<bool>> + Send {
            self.inner.delete_template(id, agent)
        }

        fn set_opt_out(
            &self,
            sender: &str,
            customer: &str,
            now_ms: u64,
        ) -> impl Future<Output = StoreResult<OptOut>> + Send {
            self.inner.set_opt_out(sender, customer, now_ms)
        }

        fn clear_opt_out(
            &self,
            sender: &str,
            customer: &str,
        ) -> impl Future<Output = StoreResult<bool>> + Send {
            self.inner.clear_opt_out(sender, customer)
        }

        fn opt_out(
            &self,
            sender: &str,
            customer: &str,
        ) -> impl Future<Output = StoreResult<Option<OptOut>>> + Send {
            self.inner.opt_out(sender, customer)
        }

        fn opt_outs(
            &self,
            sender: &str,
            after: Option<&str>,
            limit: usize,
        ) -> impl Future<Output = StoreResult<OptOutPage>> + Send {
            self.inner.opt_outs(sender, after, limit)
        }

        fn recover(&self, now_ms: u64) -> impl Future<Output = StoreResult<RecoverReport>> + Send {
            self.inner.recover(now_ms)
        }

        fn purge_ended(
            &self,
            now_ms: u64,
            max_age_ms: u64,
        ) -> impl Future<Output = StoreResult<PurgeReport>> + Send {
            self.inner.purge_ended(now_ms, max_age_ms)
        }
    }

    #[tokio::test]
    async fn reply_the_store_failed_on_is_refused_then_redelivered_and_filed_once() {
        let env = FlakyEnv::start(1, 0).await;
        let (sim, store) = (&env.sim, &env.store);
        sim.inject("819012345678", SUPPORT, "is anyone there?")
            .unwrap();
        let filed = wait(|| async {
            store
                .events_after(0, 100)
                .await
                .unwrap()
                .iter()
                .any(|e| matches!(&e.kind, EventKind::ChatRequested { text, .. } if text == "is anyone there?"))
        })
        .await;
        assert!(filed);
        let s = sim.stats();
        assert!(s.deliveries_refused >= 1 && s.redelivered >= 1, "{s:?}");
        let convs = store
            .conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations;
        assert_eq!(convs.len(), 1);
        let (_, msgs) = store.transcript(convs[0].id).await.unwrap().unwrap();
        assert_eq!(msgs.len(), 1);
        env.stop().await;
    }

    fn flaky(dir: &std::path::Path, fail_inbound: u32, fail_receipts: u32) -> Flaky {
        Flaky {
            inner: Arc::new(SledStore::open(dir.join("store")).unwrap()),
            fail_inbound: AtomicU32::new(fail_inbound),
            fail_receipts: AtomicU32::new(fail_receipts),
            panic_records: AtomicU32::new(0),
        }
    }

    fn flaky_of(fail_inbound: u32, fail_receipts: u32) -> impl FnOnce(&std::path::Path) -> Flaky {
        move |dir| flaky(dir, fail_inbound, fail_receipts)
    }

    /// The simulator and `Links` over a [`Flaky`] store.
    struct FlakyEnv {
        _dir: tempfile::TempDir,
        sim: SimHandle,
        store: Arc<Flaky>,
        links: Links,
        cfg: Arc<Config>,
        cancel: CancellationToken,
    }

    impl FlakyEnv {
        async fn start(fail_inbound: u32, fail_receipts: u32) -> FlakyEnv {
            Self::start_with(flaky_of(fail_inbound, fail_receipts), |_| {}).await
        }

        async fn start_with(
            store: impl FnOnce(&std::path::Path) -> Flaky,
            tweak: impl FnOnce(&mut Config),
        ) -> FlakyEnv {
            let cancel = CancellationToken::new();
            let sim = sim::start(sim_config(), cancel.child_token())
                .await
                .unwrap();
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = config::demo(dir.path(), sim.local_addr(), None).unwrap();
            shorten(&mut cfg);
            tweak(&mut cfg);
            let cfg = Arc::new(cfg);
            let store = Arc::new(store(dir.path()));
            let links =
                Links::start_with(store.clone(), cfg.clone(), cancel.child_token(), options());
            FlakyEnv {
                _dir: dir,
                sim,
                store,
                links,
                cfg,
                cancel,
            }
        }

        async fn stop(self) {
            tokio::time::timeout(Duration::from_secs(10), self.links.shutdown())
                .await
                .unwrap();
            self.cancel.cancel();
        }
    }

    /// Regression: a `record_submits` task that panicked took its batch
    /// down with it, and the pump kept waiting for those records for as
    /// long as the bind lived. Each such message held one of the pump's
    /// places (then twice the window, now four times): with a window of 1,
    /// four of them and the bind would claim nothing more. Now they stop as when the store fails
    /// (their leases lapse, they go again flagged) and the bind goes on.
    #[tokio::test]
    async fn a_bind_keeps_sending_after_its_record_task_panicked() {
        let env = FlakyEnv::start_with(
            |dir| Flaky {
                panic_records: AtomicU32::new(4),
                ..flaky(dir, 0, 0)
            },
            |cfg| {
                for c in &mut cfg.carriers {
                    c.binds = 1;
                    c.window = 1;
                }
            },
        )
        .await;
        let mut ids = Vec::new();
        for (i, customer) in [
            "+447911123456",
            "+447911123457",
            "+447911123458",
            "+447911123459",
            "+447911123460",
        ]
        .into_iter()
        .enumerate()
        {
            let text = format!("record panic {i}");
            ids.push(
                accept_and_wake(&*env.store, &env.links, &env.cfg, "alice", customer, &text).await,
            );
            // One record batch each: the first four panic.
            assert!(
                wait(|| async { copies(&env.sim, &text) == 1 }).await,
                "{text} never sent"
            );
            // Its answer's record is tried (and panics) before the next
            // send, so no two answers share a batch. Regression (review):
            // on a stalled box two could, and the fifth took a panic.
            let left = 4u32.saturating_sub(i as u32 + 1);
            assert!(
                wait(|| async { env.store.panic_records.load(Ordering::SeqCst) <= left }).await,
                "{text}: its record was never tried"
            );
        }
        let delivered = wait(|| async {
            env.store.message(ids[4]).await.unwrap().unwrap().status == MessageStatus::Delivered
        })
        .await;
        assert!(delivered, "the fifth message was not recorded");
        env.stop().await;
    }

    #[tokio::test]
    async fn every_receipt_of_a_batch_the_store_failed_on_is_refused() {
        use super::receive_path::{config, deliver, receipt, submitted};
        use smppgw::link::inbound::{Delivered, answer, handle_deliveries};
        use smppgw::pdu::CommandStatus;
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = flaky(dir.path(), 0, 1);
        let carrier = cfg.carrier("sim").unwrap();
        let sent = submitted(&store, &cfg, 3).await;
        let mo = deliver(0, "819012345678", SUPPORT, b"still waiting", &[]);
        let frames = [
            receipt(&sent[0].1),
            mo,
            receipt(&sent[1].1),
            receipt(&sent[2].1),
        ];
        let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let settled = handle_deliveries(&store, &cfg, carrier, &refs, 2_000).await;
        let statuses: Vec<CommandStatus> = settled.iter().map(answer).collect();
        assert_eq!(
            statuses,
            [
                CommandStatus::RX_T_APPN,
                CommandStatus::ROK,
                CommandStatus::RX_T_APPN,
                CommandStatus::RX_T_APPN
            ]
        );
        assert!(matches!(settled[1], Ok(Delivered::Reply(_))));
        for (m, _) in &sent {
            let status = store.message(*m).await.unwrap().unwrap().status;
            assert_ne!(status, MessageStatus::Delivered);
        }
        let convs = store
            .conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations;
        assert!(convs.iter().any(|c| c.customer == JP), "{convs:?}");
        // The SMSC delivers the refused receipts again: stored this time.
        let again: Vec<&[u8]> = [0, 2, 3].iter().map(|&i| refs[i]).collect();
        let settled = handle_deliveries(&store, &cfg, carrier, &again, 3_000).await;
        assert!(settled.iter().all(|s| answer(s) == CommandStatus::ROK));
        for (m, _) in &sent {
            let status = store.message(*m).await.unwrap().unwrap().status;
            assert_eq!(status, MessageStatus::Delivered);
        }
    }

    #[tokio::test]
    async fn receipt_the_store_failed_on_is_refused_then_redelivered_and_applied() {
        let env = FlakyEnv::start(0, 1).await;
        let (sim, store) = (&env.sim, &env.store);
        let a = store
            .accept_send(
                outbound("alice", UK, "your parcel is here"),
                clock::wall_ms(),
            )
            .await
            .unwrap()
            .unwrap();
        env.links.wake();
        let delivered = wait(|| async {
            store.message(a.message).await.unwrap().unwrap().status == MessageStatus::Delivered
        })
        .await;
        assert!(delivered, "{:?}", store.message(a.message).await.unwrap());
        assert_eq!(store.fail_receipts.load(Ordering::SeqCst), 0);
        let s = sim.stats();
        assert!(s.deliveries_refused >= 1 && s.redelivered >= 1, "{s:?}");
        env.stop().await;
    }
}
