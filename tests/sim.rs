//! The SMSC simulator on loopback, driven by our own ESME session driver
//! (`session::driver::connect_and_bind`): binds, ids, receipts in both
//! styles, throttling with a seed, drops mid-window, garbage, MO injection
//! (GSM, UCS-2, multi-part), re-delivery after a drop, the control socket
//! and the TLS listener.
//!
//! Every wait is bounded (a hang fails instead of blocking the suite), but
//! no test depends on how fast anything is.

use std::collections::HashMap;
use std::time::Duration;

use smppgw::pdu::{CommandStatus, Pdu, SmBody, TlvTag};
use smppgw::session::driver::{
    self, BindConfig, BindError, DriverConfig, HandleError, SessionEnd, SessionHandle, TlsTarget,
};
use smppgw::session::machine::{
    BindParams, CloseReason, DeliverToken, Event, SessionConfig, SubmitRequest,
};
use smppgw::session::state::BindKind;
use smppgw::sim::{self, Scenario, SimConfig, SimHandle};
use smppgw::text::{self, Dcs0, PlanOptions};
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(20);
const CUSTOMER: &str = "447911123456";
const SERVICE: &str = "447400123456";

// === harness ===

async fn start(f: impl FnOnce(&mut SimConfig)) -> (SimHandle, CancellationToken) {
    let mut cfg = SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay_ms: 0,
        ..SimConfig::default()
    };
    f(&mut cfg);
    let stop = CancellationToken::new();
    let h = sim::start(cfg, stop.clone())
        .await
        .expect("simulator starts");
    (h, stop)
}

fn session_cfg(kind: BindKind, system_id: &str, password: &str) -> SessionConfig {
    let mut s = SessionConfig::new(BindParams::new(kind, system_id, password));
    // The test ESME backs off from throttling briefly, so throttled runs
    // stay short.
    s.throttle.pause_initial = Duration::from_millis(1);
    s.throttle.pause_max = Duration::from_millis(2);
    s.throttle.queue_full_pause_initial = Duration::from_millis(1);
    s.throttle.queue_full_pause_max = Duration::from_millis(2);
    s.throttle.recovery_quiet = Duration::from_millis(1);
    s
}

fn bind_cfg(sim: &SimHandle, kind: BindKind, password: &str) -> BindConfig {
    let a = sim.local_addr();
    BindConfig {
        host: a.ip().to_string(),
        port: a.port(),
        tls: None,
        session: session_cfg(kind, "smppgw", password),
        driver: DriverConfig::default(),
    }
}

/// A received deliver_sm, owned.
#[derive(Debug, Clone)]
struct Delivered {
    esm_class: u8,
    data_coding: u8,
    source: String,
    source_ton: u8,
    destination: String,
    short_message: Vec<u8>,
    text: String,
    concat: Option<text::ConcatInfo>,
    receipted_id: Option<String>,
    message_state: Option<u32>,
}

fn read_deliver(frame: &[u8]) -> Delivered {
    let d = Pdu::parse(frame).expect("the simulator's deliver_sm parses");
    let Pdu::DeliverSm(b) = d.pdu else {
        panic!("not a deliver_sm: {:?}", d.pdu)
    };
    let t = text::decode(
        b.data_coding,
        b.esm_class & 0x40 != 0,
        b.short_message,
        Dcs0::Gsm,
    );
    Delivered {
        esm_class: b.esm_class,
        data_coding: b.data_coding,
        source: String::from_utf8_lossy(b.source_addr).into(),
        source_ton: b.source_addr_ton,
        destination: String::from_utf8_lossy(b.destination_addr).into(),
        short_message: b.short_message.to_vec(),
        text: t.text,
        concat: t.concat,
        receipted_id: b
            .tlvs
            .get(TlvTag::RECEIPTED_MESSAGE_ID)
            .map(|v| String::from_utf8_lossy(v.strip_suffix(b"\0").unwrap_or(v)).into()),
        message_state: b.tlvs.get_uint(TlvTag::MESSAGE_STATE),
    }
}

/// What happened on the ESME side, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Resp(u64),
    Deliver,
}

/// Our ESME, with what it saw.
struct Esme {
    h: SessionHandle,
    auto_ack: bool,
    resps: HashMap<u64, (CommandStatus, Option<String>)>,
    delivers: Vec<Delivered>,
    held: Vec<DeliverToken>,
    order: Vec<Seen>,
    window_open: bool,
    closed: Option<CloseReason>,
}

impl Esme {
    async fn bind(cfg: &BindConfig) -> Esme {
        let h = driver::connect_and_bind(cfg).await.expect("bind succeeds");
        Esme {
            h,
            auto_ack: true,
            resps: HashMap::new(),
            delivers: Vec::new(),
            held: Vec::new(),
            order: Vec::new(),
            window_open: false,
            closed: None,
        }
    }

    async fn trx(sim: &SimHandle) -> Esme {
        Esme::bind(&bind_cfg(sim, BindKind::Transceiver, "demo-pass")).await
    }

    /// Handles one event; `false` once the session has ended.
    async fn pump(&mut self) -> bool {
        let Some(ev) = self.h.next_event().await else {
            return false;
        };
        match ev {
            Event::SubmitResp {
                tag,
                status,
                message_id,
                ..
            } => {
                self.resps.insert(tag, (status, message_id));
                self.order.push(Seen::Resp(tag));
            }
            Event::Deliver { token, frame } => {
                self.delivers.push(read_deliver(&frame));
                self.order.push(Seen::Deliver);
                if self.auto_ack {
                    self.h.respond(token, CommandStatus::ROK).await.unwrap();
                } else {
                    self.held.push(token);
                }
            }
            Event::WindowOpen => self.window_open = true,
            Event::Closed { reason, .. } => self.closed = Some(reason),
            _ => {}
        }
        true
    }

    /// Pumps events until `cond` holds.
    async fn until(&mut self, what: &str, cond: impl Fn(&Esme) -> bool) {
        let wait = async {
            while !cond(self) {
                if !self.pump().await {
                    break;
                }
            }
        };
        tokio::time::timeout(LIMIT, wait)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
        assert!(cond(self), "session ended before {what}");
    }

    /// Submits, waiting out a full window or a throttle pause.
    async fn submit(&mut self, req: SubmitRequest) {
        loop {
            self.window_open = false;
            match self.h.submit(req.clone()).await {
                Ok(_) => return,
                Err(HandleError::Blocked(_)) => self.until("window open", |e| e.window_open).await,
                Err(HandleError::Gone) => panic!("session gone"),
            }
        }
    }

    async fn submit_text(&mut self, tag: u64, to: &str, text: &str, rd: u8) {
        self.submit(submit_req(tag, CUSTOMER_SENDER, to, text, rd))
            .await;
    }

    async fn resp(&mut self, tag: u64) -> (CommandStatus, Option<String>) {
        self.until("submit_sm_resp", |e| e.resps.contains_key(&tag))
            .await;
        self.resps[&tag].clone()
    }

    async fn end(self) -> SessionEnd {
        let _ = self.h.unbind().await;
        tokio::time::timeout(LIMIT, self.h.closed())
            .await
            .expect("session ends")
            .0
    }
}

/// The sender of our submits (a service's long number).
const CUSTOMER_SENDER: &str = SERVICE;

fn submit_req(tag: u64, from: &str, to: &str, text: &str, rd: u8) -> SubmitRequest {
    let plan = text::plan(text, &PlanOptions::default(), 1).unwrap();
    let part = &plan.parts[0];
    let body = SmBody {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: from.as_bytes(),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: to.as_bytes(),
        esm_class: if plan.esm_udhi { 0x40 } else { 0 },
        registered_delivery: rd,
        data_coding: plan.data_coding,
        short_message: &part.short_message,
        ..SmBody::default()
    };
    SubmitRequest::new(tag, &Pdu::SubmitSm(body))
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let wait = async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

// === binds ===

#[tokio::test]
async fn binds_with_configured_credentials_and_rejects_bad_ones() {
    let (sim, stop) = start(|_| {}).await;
    let esme = Esme::trx(&sim).await;
    let bad_pw = driver::connect_and_bind(&bind_cfg(&sim, BindKind::Transmitter, "wrong")).await;
    assert!(matches!(
        bad_pw,
        Err(BindError::Refused { status, .. }) if status == CommandStatus::RINVPASWD
    ));
    let mut cfg = bind_cfg(&sim, BindKind::Receiver, "demo-pass");
    cfg.session.bind.system_id = "someone-else".into();
    let bad_id = driver::connect_and_bind(&cfg).await;
    assert!(matches!(
        bad_id,
        Err(BindError::Refused { status, .. }) if status == CommandStatus::RINVSYSID
    ));
    let s = sim.stats();
    assert_eq!((s.binds, s.binds_refused, s.active_binds), (1, 2, 1));
    let end = esme.end().await;
    assert_eq!(end.reason, CloseReason::Unbound);
    eventually("the bind to be released", || sim.stats().active_binds == 0).await;
    stop.cancel();
    sim.stopped().await;
}

#[tokio::test]
async fn rejects_a_bind_beyond_max_binds_with_ralybnd() {
    let (sim, stop) = start(|c| c.max_binds = 1).await;
    let first = Esme::trx(&sim).await;
    let second = driver::connect_and_bind(&bind_cfg(&sim, BindKind::Receiver, "demo-pass")).await;
    assert!(matches!(
        second,
        Err(BindError::Refused { status, .. }) if status == CommandStatus::RALYBND
    ));
    first.end().await;
    eventually("the bind to be released", || sim.stats().active_binds == 0).await;
    // The slot is free again.
    Esme::trx(&sim).await.end().await;
    stop.cancel();
}

// === submits and ids ===

#[tokio::test]
async fn answers_submits_with_decimal_then_hex_ids_and_records_them() {
    let (sim, stop) = start(|_| {}).await;
    let mut esme = Esme::trx(&sim).await;
    esme.submit_text(1, CUSTOMER, "Your parcel arrives today", 0)
        .await;
    let (status, id1) = esme.resp(1).await;
    assert_eq!(status, CommandStatus::ROK);
    assert_eq!(id1.as_deref(), Some("1000000000"));
    sim.update(|s| s.hex_ids = true);
    esme.submit_text(2, CUSTOMER, "Grüße", 0).await;
    let (_, id2) = esme.resp(2).await;
    assert_eq!(id2.as_deref(), Some("3B9ACA01"));

    let rec = sim.received();
    assert_eq!(rec.len(), 2);
    assert_eq!(rec[0].source, SERVICE);
    assert_eq!(rec[0].destination, CUSTOMER);
    assert_eq!(rec[0].text, "Your parcel arrives today");
    assert_eq!(rec[0].message_id, id1);
    assert_eq!(rec[0].status, Some(0));
    assert_eq!(rec[0].bind, rec[1].bind);
    assert_eq!(rec[1].text, "Grüße");
    assert_eq!(rec[1].data_coding, 0);
    assert_eq!(sim.received_since(rec[0].index), rec[1..].to_vec());
    esme.end().await;
    stop.cancel();
}

// === receipts ===

#[tokio::test]
async fn sends_receipt_with_tlvs_and_text_after_the_delay() {
    let (sim, stop) = start(|c| c.receipt_delay_ms = 20).await;
    let mut esme = Esme::trx(&sim).await;
    esme.submit_text(1, CUSTOMER, "Your appointment is confirmed", 1)
        .await;
    let (_, id) = esme.resp(1).await;
    esme.until("the receipt", |e| !e.delivers.is_empty()).await;
    let r = &esme.delivers[0];
    assert_eq!(r.esm_class, 0x04);
    assert_eq!(r.source, CUSTOMER, "a receipt's addresses are swapped");
    assert_eq!(r.destination, SERVICE);
    assert_eq!(r.receipted_id, id);
    assert_eq!(r.message_state, Some(2));
    let t = smppgw::dlr::from_text::parse_text(&r.short_message).unwrap();
    assert_eq!(t.id(), id.as_deref());
    assert_eq!(t.stat(), Some("DELIVRD"));
    assert_eq!(t.text(), Some("Your appointment is"));
    eventually("the receipt ack", || sim.stats().receipts_acked == 1).await;
    // No receipt unless one was asked for.
    esme.submit_text(2, CUSTOMER, "no receipt please", 0).await;
    esme.resp(2).await;
    assert_eq!(sim.stats().receipts_sent, 1);
    esme.end().await;
    stop.cancel();
}

#[tokio::test]
async fn sends_text_only_undeliv_receipt_for_a_failing_prefix() {
    let (sim, stop) = start(|c| {
        c.text_only_receipts = true;
        c.fail_prefixes = vec!["8190".into()];
    })
    .await;
    let mut esme = Esme::trx(&sim).await;
    esme.submit_text(1, "819012345678", "こんにちは", 1).await;
    let (_, id) = esme.resp(1).await;
    esme.until("the receipt", |e| !e.delivers.is_empty()).await;
    let r = &esme.delivers[0];
    assert_eq!(r.esm_class, 0x04);
    assert_eq!((r.receipted_id.as_ref(), r.message_state), (None, None));
    let t = smppgw::dlr::from_text::parse_text(&r.short_message).unwrap();
    assert_eq!(t.id(), id.as_deref());
    assert_eq!(t.stat(), Some("UNDELIV"));
    esme.end().await;
    stop.cancel();
}

#[tokio::test]
async fn receipt_before_response_mode_sends_the_receipt_first() {
    let (sim, stop) = start(|c| c.receipt_before_response = true).await;
    let mut esme = Esme::trx(&sim).await;
    esme.submit_text(1, CUSTOMER, "early receipt", 1).await;
    esme.until("response and receipt", |e| {
        e.resps.contains_key(&1) && !e.delivers.is_empty()
    })
    .await;
    assert_eq!(esme.order[0], Seen::Deliver, "{:?}", esme.order);
    assert_eq!(esme.order[1], Seen::Resp(1));
    assert_eq!(esme.delivers[0].receipted_id, esme.resps[&1].1);
    esme.end().await;
    stop.cancel();
}

#[tokio::test]
async fn receipt_goes_to_the_receiver_of_a_tx_rx_pair() {
    let (sim, stop) = start(|_| {}).await;
    let mut tx = Esme::bind(&bind_cfg(&sim, BindKind::Transmitter, "demo-pass")).await;
    let mut rx = Esme::bind(&bind_cfg(&sim, BindKind::Receiver, "demo-pass")).await;
    tx.submit_text(1, CUSTOMER, "pair", 1).await;
    let (_, id) = tx.resp(1).await;
    rx.until("the receipt on the receiver", |e| !e.delivers.is_empty())
        .await;
    assert_eq!(rx.delivers[0].receipted_id, id);
    tx.end().await;
    rx.end().await;
    stop.cancel();
}

// === misbehaviour ===

async fn throttle_run(seed: u64) -> (Vec<CommandStatus>, u64) {
    let (sim, stop) = start(|c| {
        c.seed = seed;
        c.throttle = 0.3;
    })
    .await;
    let mut esme = Esme::trx(&sim).await;
    let mut statuses = Vec::new();
    for tag in 1..=60 {
        esme.submit_text(tag, CUSTOMER, "load", 0).await;
        statuses.push(esme.resp(tag).await.0);
    }
    let throttled = sim.stats().throttled;
    esme.end().await;
    stop.cancel();
    (statuses, throttled)
}

#[tokio::test]
async fn throttle_fraction_is_exactly_repeatable_with_a_seed() {
    let (a, a_count) = throttle_run(42).await;
    let (b, _) = throttle_run(42).await;
    let (c, _) = throttle_run(43).await;
    assert_eq!(a, b, "the same seed gives the same answers");
    assert_ne!(a, c, "another seed gives other answers");
    let n = a
        .iter()
        .filter(|s| **s == CommandStatus::RTHROTTLED)
        .count() as u64;
    assert_eq!(n, a_count, "the counter agrees with the answers");
    assert!(
        a.iter()
            .all(|s| *s == CommandStatus::ROK || *s == CommandStatus::RTHROTTLED)
    );
    // Binomial(60, 0.3): mean 18, sd 3.5; 4 sd either side.
    assert!((4..=32).contains(&n), "{n} throttled of 60");
}

#[tokio::test]
async fn drops_the_connection_mid_window_every_n_submits() {
    let (sim, stop) = start(|c| {
        c.drop_every = 3;
        // Answers would come only after a minute: the drop ends it first.
        c.resp_delay_ms = 60_000;
    })
    .await;
    let mut esme = Esme::trx(&sim).await;
    for tag in 1..=3 {
        esme.submit_text(tag, CUSTOMER, "in flight", 0).await;
    }
    let end = tokio::time::timeout(LIMIT, esme.h.closed())
        .await
        .expect("the simulator drops the connection")
        .0;
    assert_eq!(end.reason, CloseReason::TransportClosed);
    assert_eq!(
        end.unanswered,
        vec![1, 2, 3],
        "nothing in flight was answered"
    );
    let s = sim.stats();
    assert_eq!((s.submits, s.drops), (3, 1));
    assert!(sim.received().iter().all(|r| r.status.is_none()));
    stop.cancel();
}

#[tokio::test]
async fn garbage_pdus_are_answered_and_the_bind_stays_up() {
    let (sim, stop) = start(|c| c.garbage_every = 1).await;
    let mut esme = Esme::trx(&sim).await;
    esme.submit_text(1, CUSTOMER, "first", 0).await;
    esme.resp(1).await;
    eventually("our answer to the garbage", || {
        sim.stats().unexpected_responses >= 1
    })
    .await;
    esme.submit_text(2, CUSTOMER, "second", 0).await;
    assert_eq!(esme.resp(2).await.0, CommandStatus::ROK);
    assert_eq!(sim.stats().garbage_sent, 2);
    assert!(esme.delivers.is_empty(), "garbage is not a message");
    esme.end().await;
    stop.cancel();
}

// === mobile-originated messages ===

#[tokio::test]
async fn injects_gsm_mo_with_international_source() {
    let (sim, stop) = start(|_| {}).await;
    let mut esme = Esme::trx(&sim).await;
    let ids = sim
        .inject("+447911123456", SERVICE, "Yes, 3pm works @ home")
        .unwrap();
    assert_eq!(ids.len(), 1);
    esme.until("the MO", |e| !e.delivers.is_empty()).await;
    let m = &esme.delivers[0];
    assert_eq!((m.esm_class, m.data_coding), (0, 0));
    assert_eq!((m.source.as_str(), m.source_ton), (CUSTOMER, 1));
    assert_eq!(m.destination, SERVICE);
    assert_eq!(m.text, "Yes, 3pm works @ home");
    eventually("the MO ack", || sim.stats().mos_acked == 1).await;
    esme.end().await;
    stop.cancel();
}

#[tokio::test]
async fn injects_japanese_mo_as_ucs2_with_national_ton() {
    let (sim, stop) = start(|_| {}).await;
    let mut esme = Esme::trx(&sim).await;
    sim.inject_mo(&sim::Mo {
        ton: 2,
        ..sim::Mo::new("09012345678", SERVICE, "お電話ありがとうございました")
    })
    .unwrap();
    esme.until("the MO", |e| !e.delivers.is_empty()).await;
    let m = &esme.delivers[0];
    assert_eq!((m.data_coding, m.source_ton), (8, 2));
    assert_eq!(m.text, "お電話ありがとうございました");
    esme.end().await;
    stop.cancel();
}

#[tokio::test]
async fn injects_long_mo_as_udh_parts() {
    let (sim, stop) = start(|_| {}).await;
    let mut esme = Esme::trx(&sim).await;
    let long: String = (0..40).map(|i| format!("word{i} ")).collect();
    let ids = sim.inject(CUSTOMER, SERVICE, &long).unwrap();
    assert!(ids.len() >= 2);
    esme.until("every part", |e| e.delivers.len() == ids.len())
        .await;
    let mut joined = String::new();
    for (i, m) in esme.delivers.iter().enumerate() {
        assert_eq!(m.esm_class, 0x40);
        let c = m.concat.expect("a concatenation UDH");
        assert_eq!((c.total as usize, c.seq as usize), (ids.len(), i + 1));
        assert_eq!(c.reference, esme.delivers[0].concat.unwrap().reference);
        joined.push_str(&m.text);
    }
    assert_eq!(joined, long);
    esme.end().await;
    stop.cancel();
}

#[tokio::test]
async fn queues_mo_until_a_receiving_bind_and_resends_it_after_an_unacked_drop() {
    let (sim, stop) = start(|_| {}).await;
    // No bind yet: the MO waits. A transmitter cannot take it.
    sim.inject(CUSTOMER, SERVICE, "Are you open on Sunday?")
        .unwrap();
    let tx = Esme::bind(&bind_cfg(&sim, BindKind::Transmitter, "demo-pass")).await;
    assert_eq!(sim.stats().queued, 1);
    // A receiver gets it but never acknowledges it, then goes away.
    let mut rx = Esme::bind(&bind_cfg(&sim, BindKind::Receiver, "demo-pass")).await;
    rx.auto_ack = false;
    rx.until("the MO", |e| !e.delivers.is_empty()).await;
    let (commands, _events, task) = rx.h.into_parts();
    drop(commands);
    task.abort();
    let _ = task.await;
    eventually("the MO back in the queue", || sim.stats().queued == 1).await;
    // The next receiving bind gets the same MO again.
    let mut rx2 = Esme::bind(&bind_cfg(&sim, BindKind::Receiver, "demo-pass")).await;
    rx2.until("the MO again", |e| !e.delivers.is_empty()).await;
    assert_eq!(rx2.delivers[0].text, "Are you open on Sunday?");
    eventually("the ack", || sim.stats().mos_acked == 1).await;
    let s = sim.stats();
    assert_eq!((s.mos_sent, s.redelivered, s.queued), (2, 1, 0));
    rx2.end().await;
    tx.end().await;
    stop.cancel();
}

// === control socket ===

#[tokio::test]
async fn control_socket_injects_reports_and_changes_knobs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.sock");
    let p2 = path.clone();
    let (sim, stop) = start(move |c| c.control = Some(p2)).await;
    let mut esme = Esme::trx(&sim).await;

    let v = sim::inject_via_socket(&path, CUSTOMER, SERVICE, "via the socket")
        .await
        .unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["ids"].as_array().unwrap().len(), 1);
    esme.until("the MO", |e| !e.delivers.is_empty()).await;
    assert_eq!(esme.delivers[0].text, "via the socket");

    let v = sim::control_request(
        &path,
        &serde_json::json!({"op": "set", "throttle": 1.0, "resp_delay_ms": 1}),
    )
    .await
    .unwrap();
    assert_eq!(v["scenario"]["throttle"], 1.0);
    assert_eq!(sim.scenario().resp_delay_ms, 1);
    esme.submit_text(1, CUSTOMER, "throttled", 0).await;
    assert_eq!(esme.resp(1).await.0, CommandStatus::RTHROTTLED);

    let v = sim::control_request(
        &path,
        &serde_json::json!({"op": "received", "since": 0, "id": 7}),
    )
    .await
    .unwrap();
    assert_eq!(v["id"], 7);
    assert_eq!(v["received"][0]["text"], "throttled");
    assert_eq!(v["received"][0]["status"], 0x58);
    let v = sim::control_request(&path, &serde_json::json!({"op": "stats"}))
        .await
        .unwrap();
    assert_eq!(v["stats"]["throttled"], 1);
    assert_eq!(v["stats"]["mos_sent"], 1);

    let bad = sim::control_request(&path, &serde_json::json!({"op": "set", "throtle": 1})).await;
    assert!(matches!(bad, Err(sim::SimError::Refused(e)) if e.contains("throtle")));
    let bad = sim::control_request(&path, &serde_json::json!({"op": "explode"})).await;
    assert!(matches!(bad, Err(sim::SimError::Refused(_))));
    assert_eq!(
        sim.scenario(),
        Scenario {
            throttle: 1.0,
            resp_delay_ms: 1,
            receipt_delay_ms: 0,
            ..Scenario::default()
        },
        "refused requests changed nothing"
    );

    esme.end().await;
    stop.cancel();
    sim.stopped().await;
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

#[tokio::test]
async fn control_socket_answers_a_line_that_is_not_json() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sim.sock");
    let p2 = path.clone();
    let (_sim, stop) = start(move |c| c.control = Some(p2)).await;
    let s = tokio::net::UnixStream::connect(&path).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut lines = BufReader::new(rd).lines();
    wr.write_all(b"this is not json\n{\"op\":\"stats\"}\n")
        .await
        .unwrap();
    let a: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(a["ok"], false);
    let b: serde_json::Value =
        serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
    assert_eq!(b["ok"], true);
    stop.cancel();
}

// === TLS ===

#[tokio::test]
async fn tls_listener_binds_an_esme_that_trusts_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let (c2, k2) = (cert.clone(), key.clone());
    let (sim, stop) = start(move |c| {
        c.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        c.tls_cert = Some(c2);
        c.tls_key = Some(k2);
    })
    .await;
    let addr = sim.tls_addr().unwrap();
    let client = smppgw::tls::client_config_pem(Some(ck.cert.pem().as_bytes()), None).unwrap();
    let mut cfg = bind_cfg(&sim, BindKind::Transceiver, "demo-pass");
    cfg.port = addr.port();
    cfg.tls = Some(TlsTarget {
        config: client.clone(),
        server_name: smppgw::tls::server_name("localhost", None).unwrap(),
    });
    let mut esme = Esme::bind(&cfg).await;
    esme.submit_text(1, CUSTOMER, "over tls", 0).await;
    assert_eq!(esme.resp(1).await.0, CommandStatus::ROK);
    esme.end().await;

    // A name the certificate does not carry is refused.
    cfg.tls = Some(TlsTarget {
        config: client,
        server_name: smppgw::tls::server_name("smsc.example.net", None).unwrap(),
    });
    assert!(matches!(
        driver::connect_and_bind(&cfg).await,
        Err(BindError::Tls(_))
    ));
    stop.cancel();
}

#[tokio::test]
async fn deliveries_never_exceed_the_window_and_keep_their_order() {
    let (sim, stop) = start(|c| c.window = 2).await;
    let mut esme = Esme::trx(&sim).await;
    esme.auto_ack = false;
    for i in 1..=5 {
        sim.inject(CUSTOMER, SERVICE, &format!("reply {i}"))
            .unwrap();
    }
    while esme.delivers.len() < 5 {
        let want = (esme.delivers.len() + 2).min(5);
        esme.until("a window's worth", |e| e.delivers.len() >= want)
            .await;
        let s = sim.stats();
        assert!(s.mos_sent - s.mos_acked <= 2, "{s:?}");
        for t in std::mem::take(&mut esme.held) {
            esme.h.respond(t, CommandStatus::ROK).await.unwrap();
        }
    }
    let texts: Vec<&str> = esme.delivers.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(
        texts,
        ["reply 1", "reply 2", "reply 3", "reply 4", "reply 5"]
    );
    eventually("every ack", || sim.stats().mos_acked == 5).await;
    esme.end().await;
    stop.cancel();
}

#[tokio::test]
async fn answers_data_sm_and_records_its_payload() {
    let (sim, stop) = start(|_| {}).await;
    let mut esme = Esme::trx(&sim).await;
    let payload = smppgw::text::ucs2::encode("Привет");
    let tlvs = [smppgw::pdu::Tlv::new(TlvTag::MESSAGE_PAYLOAD, &payload)];
    let pdu = Pdu::DataSm(smppgw::pdu::DataSm {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: SERVICE.as_bytes(),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: CUSTOMER.as_bytes(),
        data_coding: 8,
        tlvs: smppgw::pdu::Tlvs::from_list(&tlvs),
        ..Default::default()
    });
    esme.submit(SubmitRequest::new(1, &pdu)).await;
    let (status, id) = esme.resp(1).await;
    assert_eq!(status, CommandStatus::ROK);
    let rec = sim.received();
    assert_eq!(rec[0].command, "data_sm");
    assert_eq!(rec[0].text, "Привет");
    assert_eq!(rec[0].message_id, id);
    esme.end().await;
    stop.cancel();
}

#[tokio::test]
async fn shutdown_unbinds_bound_esmes_and_stops() {
    let (sim, stop) = start(|_| {}).await;
    let esme = Esme::trx(&sim).await;
    stop.cancel();
    let end = tokio::time::timeout(LIMIT, esme.h.closed())
        .await
        .expect("the ESME session ends")
        .0;
    assert_eq!(end.reason, CloseReason::PeerUnbound);
    tokio::time::timeout(LIMIT, sim.stopped())
        .await
        .expect("the simulator stops");
    assert!(
        tokio::net::TcpStream::connect(sim.local_addr())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn bind_delay_holds_the_bind_response_back() {
    let (sim, stop) = start(|c| c.bind_delay_ms = 60_000).await;
    let mut cfg = bind_cfg(&sim, BindKind::Transceiver, "demo-pass");
    cfg.session.bind_timeout = Duration::from_millis(50);
    assert!(matches!(
        driver::connect_and_bind(&cfg).await,
        Err(BindError::BindTimeout)
    ));
    sim.update(|s| s.bind_delay_ms = 10);
    cfg.session.bind_timeout = Duration::from_secs(20);
    Esme::bind(&cfg).await.end().await;
    assert_eq!(sim.stats().binds, 1);
    stop.cancel();
}

#[tokio::test]
async fn refuse_binds_answers_every_bind_with_that_status() {
    let (sim, stop) = start(|c| c.refuse_binds = Some(0x0D)).await;
    let r = driver::connect_and_bind(&bind_cfg(&sim, BindKind::Transceiver, "demo-pass")).await;
    assert!(matches!(
        r,
        Err(BindError::Refused { status, .. }) if status == CommandStatus::RBINDFAIL
    ));
    sim.update(|s| s.refuse_binds = None);
    Esme::trx(&sim).await.end().await;
    stop.cancel();
}

#[tokio::test]
async fn receipt_can_carry_the_id_in_decimal_when_responses_are_hex() {
    let (sim, stop) = start(|c| {
        c.hex_ids = true;
        c.receipt_id_decimal = true;
    })
    .await;
    let mut esme = Esme::trx(&sim).await;
    esme.submit_text(1, CUSTOMER, "base mismatch", 1).await;
    let (_, id) = esme.resp(1).await;
    assert_eq!(id.as_deref(), Some("3B9ACA00"));
    esme.until("the receipt", |e| !e.delivers.is_empty()).await;
    assert_eq!(esme.delivers[0].receipted_id.as_deref(), Some("1000000000"));
    esme.end().await;
    stop.cancel();
}
