//! Interop: our ESME session driver against an SMSC nobody here wrote, the
//! npm `smpp` package (farhadi/node-smpp) run by `tests/interop/smsc.js`.
//!
//! Covered: a bind refused for a wrong password (ESME_RINVPASWD from their
//! side, classified on ours); bind_transceiver with interface version 0x34;
//! submit_sm in GSM 7-bit (dcs 0, with '@' and an extension character) and
//! in UCS-2 (dcs 8), decoded by their side to the same text; their
//! submit_sm_resp ids reaching us; their text delivery receipts (esm_class
//! 0x04) parsed by our `dlr` text parser with the ids they answered; their
//! UCS-2 mobile-originated deliver_sm decoded by our `text`; our
//! deliver_sm_resp (ESME_ROK) seen by them; unbind / unbind_resp.
//!
//! Needs `node` on PATH; runs `npm ci` in tests/interop when node_modules is
//! missing. Without node the test is skipped with a message, unless
//! `CI=true`, where it fails.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use smppgw::pdu::{CommandStatus, Pdu, SmBody};
use smppgw::session::driver::{self, BindConfig, BindError, DriverConfig, SessionHandle};
use smppgw::session::machine::{BindParams, CloseReason, Event, SessionConfig, SubmitRequest};
use smppgw::session::state::BindKind;
use smppgw::text::{self, Dcs0, PlanOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const LIMIT: Duration = Duration::from_secs(30);
const SYSTEM_ID: &str = "smppgw";
const PASSWORD: &str = "interop1";
const SERVICE: &str = "447400123456";
const CUSTOMER: &str = "447911123456";
const GSM_TEXT: &str = "Hi @ Contoso: €5 off {today}";
const UCS2_TEXT: &str = "ご予約ありがとうございます";
const MO_TEXT: &str = "はい、明日で大丈夫です";

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// `Ok(false)`: skip (no node, not on CI).
async fn node_ready() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let have = |cmd: &'static str| async move {
        Command::new(cmd)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .is_ok_and(|s| s.success())
    };
    if !have("node").await {
        assert!(
            !ci,
            "CI=true but node is not on PATH: the interop test cannot run"
        );
        eprintln!("skipping interop test: node is not on PATH");
        return false;
    }
    if !dir().join("node_modules/smpp").exists() {
        if !have("npm").await {
            assert!(!ci, "CI=true but npm is not on PATH");
            eprintln!("skipping interop test: npm is not on PATH to install tests/interop");
            return false;
        }
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(dir())
            .status()
            .await
            .is_ok_and(|s| s.success());
        assert!(ok, "npm ci in tests/interop failed");
    }
    true
}

fn submit(tag: u64, text: &str) -> SubmitRequest {
    let plan = text::plan(text, &PlanOptions::default(), 1).unwrap();
    assert_eq!(plan.parts.len(), 1);
    let body = SmBody {
        source_addr_ton: 1,
        source_addr_npi: 1,
        source_addr: SERVICE.as_bytes(),
        dest_addr_ton: 1,
        dest_addr_npi: 1,
        destination_addr: CUSTOMER.as_bytes(),
        registered_delivery: 1,
        data_coding: plan.data_coding,
        short_message: &plan.parts[0].short_message,
        ..SmBody::default()
    };
    SubmitRequest::new(tag, &Pdu::SubmitSm(body))
}

async fn next(h: &mut SessionHandle) -> Event {
    tokio::time::timeout(LIMIT, h.next_event())
        .await
        .expect("an event in time")
        .expect("the session is alive")
}

#[tokio::test]
async fn our_esme_interoperates_with_node_smpp_smsc() {
    if !node_ready().await {
        return;
    }
    let mut child = Command::new("node")
        .arg("smsc.js")
        .current_dir(dir())
        .env("SMPP_SYSTEM_ID", SYSTEM_ID)
        .env("SMPP_PASSWORD", PASSWORD)
        .env("SMPP_PORT", "0")
        .env("SMPP_MO_FROM", CUSTOMER)
        .env("SMPP_MO_TO", SERVICE)
        .env("SMPP_MO_TEXT", MO_TEXT)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    let first = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .expect("the script starts")
        .unwrap()
        .expect("a first line");
    let listening: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(listening["event"], "listening");
    let port = u16::try_from(listening["port"].as_u64().unwrap()).unwrap();

    let cfg = |password: &str| BindConfig {
        host: "127.0.0.1".into(),
        port,
        tls: None,
        session: SessionConfig::new(BindParams::new(BindKind::Transceiver, SYSTEM_ID, password)),
        driver: DriverConfig::default(),
    };

    // Their refusal reaches us as a typed bind failure.
    let refused = driver::connect_and_bind(&cfg("wrong")).await;
    assert!(
        matches!(refused, Err(BindError::Refused { status, .. }) if status == CommandStatus::RINVPASWD),
        "{refused:?}"
    );

    let mut h = driver::connect_and_bind(&cfg(PASSWORD))
        .await
        .expect("node-smpp accepts our bind");
    assert_eq!(h.peer_system_id(), "node-smsc");
    h.submit(submit(1, GSM_TEXT)).await.unwrap();
    h.submit(submit(2, UCS2_TEXT)).await.unwrap();

    let mut ids = std::collections::HashMap::new();
    let mut receipts = Vec::new();
    let mut mos = Vec::new();
    while ids.len() < 2 || receipts.len() < 2 || mos.is_empty() {
        match next(&mut h).await {
            Event::SubmitResp {
                tag,
                status,
                message_id,
                ..
            } => {
                assert_eq!(status, CommandStatus::ROK);
                ids.insert(tag, message_id.expect("a message id"));
            }
            Event::Deliver { token, frame } => {
                let d = Pdu::parse(&frame).expect("their deliver_sm parses");
                let Pdu::DeliverSm(b) = d.pdu else {
                    panic!("not a deliver_sm")
                };
                if b.esm_class & 0x3C == 0x04 {
                    let r = smppgw::dlr::from_text::parse_text(b.short_message)
                        .expect("their receipt text parses");
                    receipts.push((
                        r.id().map(str::to_owned),
                        r.stat().map(str::to_owned),
                        String::from_utf8_lossy(b.destination_addr).into_owned(),
                    ));
                } else {
                    let t = text::decode(
                        b.data_coding,
                        b.esm_class & 0x40 != 0,
                        b.short_message,
                        Dcs0::Gsm,
                    );
                    mos.push((
                        b.data_coding,
                        String::from_utf8_lossy(b.source_addr).into_owned(),
                        String::from_utf8_lossy(b.destination_addr).into_owned(),
                        t.text,
                    ));
                }
                h.respond(token, CommandStatus::ROK).await.unwrap();
            }
            _ => {}
        }
    }
    h.unbind().await.unwrap();
    let (end, _) = tokio::time::timeout(LIMIT, h.closed())
        .await
        .expect("the session ends");
    assert_eq!(end.reason, CloseReason::Unbound);

    // Our view.
    for (id, stat, to) in &receipts {
        assert!(
            ids.values().any(|v| Some(v) == id.as_ref()),
            "{id:?} in {ids:?}"
        );
        assert_eq!(stat.as_deref(), Some("DELIVRD"));
        assert_eq!(to, SERVICE, "a receipt goes back to the sender");
    }
    assert_ne!(receipts[0].0, receipts[1].0);
    assert_eq!(
        mos,
        vec![(
            8,
            CUSTOMER.to_owned(),
            SERVICE.to_owned(),
            MO_TEXT.to_owned()
        )]
    );

    // Their view.
    let status = tokio::time::timeout(LIMIT, async {
        while let Ok(Some(l)) = lines.next_line().await {
            seen.push(serde_json::from_str(&l).expect("the script prints json lines"));
        }
        child.wait().await
    })
    .await
    .expect("the script exits after the unbind")
    .unwrap();
    assert!(status.success(), "{seen:#?}");
    let events =
        |name: &str| -> Vec<&Value> { seen.iter().filter(|v| v["event"] == name).collect() };
    let binds = events("bind_transceiver");
    assert_eq!(binds.len(), 2);
    assert_eq!(binds[0]["status"], 0x0E);
    assert_eq!(binds[1]["status"], 0);
    assert_eq!(binds[1]["system_id"], SYSTEM_ID);
    assert_eq!(binds[1]["interface_version"], 0x34);
    let subs = events("submit_sm");
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0]["message"], GSM_TEXT);
    assert_eq!(subs[0]["data_coding"], 0);
    assert_eq!(subs[0]["destination_addr"], CUSTOMER);
    assert_eq!(subs[0]["registered_delivery"], 1);
    assert_eq!(
        subs[0]["message_id"].as_str(),
        ids.get(&1).map(String::as_str)
    );
    assert_eq!(subs[1]["message"], UCS2_TEXT);
    assert_eq!(subs[1]["data_coding"], 8);
    assert_eq!(
        subs[1]["message_id"].as_str(),
        ids.get(&2).map(String::as_str)
    );
    let acks = events("deliver_sm_resp");
    assert_eq!(acks.len(), 3, "{seen:#?}");
    assert!(acks.iter().all(|a| a["status"] == 0));
    assert_eq!(events("unbind").len(), 1);
}
