//! Store behaviour against the real sled store in a temporary directory:
//! correlation, chat lifecycle, receipts, outbox leases across restarts, the
//! event log, group commit, and a model test with reboots.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use smppgw::model::{
    ConversationState, EventKind, FailState, MessageStatus, ReceiptState, ReceiptUpdate,
};
use smppgw::store::{
    Accepted, CONVERSATION_SCAN_MIN, ChatRefused, EXPIRE_CHUNK, ExpireReport, InboundMessage,
    InboundOutcome, InboundPolicy, NewOutbound, NewTemplate, OptChange, OptOutPage, OutboxItem,
    ReceiptOutcome, ReceiptRecord, SendRefused, SledStore, Store, StoreError, StoreOptions,
    SubmitFailure, SubmitOutcome, SubmitRecord, SystemOutbound, SystemReason, SystemRefused,
    TemplateRefused, Unanswered,
};

const SUPPORT: &str = "447624000111"; // long number of service "support"
const SALES: &str = "60777"; // short code of service "sales"
const UK: &str = "+447911123456";
const JP: &str = "+819012345678";
const T0: u64 = 1_795_611_600_000;

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("db")
}

/// Opens the store at `p`. After a simulated reboot in this process the
/// previous handle's background flush may still hold sled's file lock for a
/// moment (a separate process, as in production, never sees this): retry a
/// bounded number of times. Regression: `store_matches_model_across_reboots`
/// failed under load with "could not acquire lock … WouldBlock".
fn open(p: &Path) -> SledStore {
    reopen(|| SledStore::open(p))
}

/// Retries an open of a store just dropped: sled lets go of its file lock
/// only once its background threads have ended.
fn reopen<T, E: std::fmt::Debug>(mut open: impl FnMut() -> Result<T, E>) -> T {
    let mut last = None;
    for _ in 0..400 {
        match open() {
            Ok(s) => return s,
            Err(e) => {
                last = Some(e);
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
    panic!("store did not reopen: {last:?}")
}

fn service_of(sender: &str) -> &'static str {
    if sender == SALES { "sales" } else { "support" }
}

fn out(sender: &str, customer: &str, owner: &str, text: &str) -> NewOutbound {
    NewOutbound {
        service: service_of(sender).into(),
        sender: sender.into(),
        customer: customer.into(),
        owner: owner.into(),
        interaction: None,
        text: text.into(),
        encoding: "gsm7".into(),
        parts: 1,
        carrier: "acme".into(),
        client_ref: None,
        conversation: None,
        outbox_limit: None,
    }
}

fn inbound(sender: &str, customer: &str, text: &str) -> InboundMessage {
    InboundMessage {
        service: service_of(sender).into(),
        sender: sender.into(),
        customer: customer.into(),
        text: text.into(),
        encoding: "gsm7".into(),
        parts: 1,
        incomplete: false,
        opt: None,
    }
}

fn receipt(state: ReceiptState, error: Option<&str>) -> ReceiptUpdate {
    ReceiptUpdate {
        state,
        error: error.map(str::to_string),
        is_final: true,
    }
}

/// A final DELIVRD receipt from carrier `acme` for carrier id `id`.
async fn delivered(s: &SledStore, id: &str, now: u64) -> ReceiptOutcome {
    s.record_receipt("acme", id, receipt(ReceiptState::Delivered, None), now)
        .await
        .unwrap()
}

/// A new template of `agent`, for any service.
fn new_template(agent: &str, name: &str) -> NewTemplate {
    NewTemplate {
        id: None,
        agent: agent.into(),
        service: None,
        name: name.into(),
        text: "Hello".into(),
    }
}

async fn send(s: &SledStore, n: NewOutbound, now: u64) -> Accepted {
    s.accept_send(n, now).await.unwrap().unwrap()
}

async fn all_events(s: &SledStore) -> Vec<smppgw::model::Event> {
    s.events_after(0, usize::MAX).await.unwrap()
}

async fn kinds_of(s: &SledStore, message: u64) -> Vec<String> {
    all_events(s)
        .await
        .into_iter()
        .filter_map(|e| {
            let v = serde_json::to_value(&e).unwrap();
            (v["message"] == message).then(|| v["event"].as_str().unwrap().to_string())
        })
        .collect()
}

// === correlation ===

#[tokio::test]
async fn replies_find_their_conversation_by_sender_and_customer() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "support to uk"), T0).await;
    let b = send(&s, out(SALES, UK, "bob", "sales to uk"), T0 + 1).await;
    let c = send(&s, out(SUPPORT, JP, "carol", "support to jp"), T0 + 2).await;
    assert_ne!(a.conversation, b.conversation);
    assert_ne!(a.conversation, c.conversation);
    assert_ne!(b.conversation, c.conversation);
    let again = send(&s, out(SUPPORT, UK, "alice", "second"), T0 + 3).await;
    assert_eq!(again.conversation, a.conversation);

    for (sender, customer, conv, owner) in [
        (SUPPORT, UK, a.conversation, "alice"),
        (SALES, UK, b.conversation, "bob"),
        (SUPPORT, JP, c.conversation, "carol"),
    ] {
        match s
            .record_inbound(
                inbound(sender, customer, "reply"),
                InboundPolicy::Ignore,
                T0 + 10,
            )
            .await
            .unwrap()
        {
            InboundOutcome::Matched {
                conversation,
                owner: o,
                ..
            } => {
                assert_eq!(conversation, conv);
                assert_eq!(o, owner);
            }
            other => panic!("expected match, got {other:?}"),
        }
    }
    let (_, msgs) = s.transcript(a.conversation).await.unwrap().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[2].status, MessageStatus::Received);
}

// === chat lifecycle ===

#[tokio::test]
async fn reply_after_end_is_ignored_under_ignore_policy() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    let ended = s
        .end_chat(a.conversation, "alice", T0 + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ended.state, ConversationState::Ended);
    assert_eq!(
        s.end_chat(a.conversation, "alice", T0 + 2).await.unwrap(),
        Err(ChatRefused::Ended)
    );
    let r = s
        .record_inbound(inbound(SUPPORT, UK, "late"), InboundPolicy::Ignore, T0 + 3)
        .await
        .unwrap();
    assert_eq!(r, InboundOutcome::Ignored);
    let (_, msgs) = s.transcript(a.conversation).await.unwrap().unwrap();
    assert_eq!(msgs.len(), 1);
    assert!(
        s.conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations
            .is_empty()
    );
    // Naming the ended conversation is refused; a fresh send opens a new one.
    let mut n = out(SUPPORT, UK, "alice", "again");
    n.conversation = Some(a.conversation);
    assert_eq!(
        s.accept_send(n, T0 + 4).await.unwrap(),
        Err(SendRefused::ConversationEnded { id: a.conversation })
    );
    let fresh = send(&s, out(SUPPORT, UK, "alice", "again"), T0 + 5).await;
    assert_ne!(fresh.conversation, a.conversation);
}

#[tokio::test]
async fn reply_after_end_requests_a_chat_under_new_chat_policy() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    s.end_chat(a.conversation, "alice", T0 + 1)
        .await
        .unwrap()
        .unwrap();
    let r = s
        .record_inbound(
            inbound(SUPPORT, UK, "hello?"),
            InboundPolicy::NewChat,
            T0 + 2,
        )
        .await
        .unwrap();
    let InboundOutcome::ChatRequested { conversation, .. } = r else {
        panic!("expected a chat request, got {r:?}");
    };
    assert_ne!(conversation, a.conversation);
    let c = s.conversation(conversation).await.unwrap().unwrap();
    assert_eq!(c.state, ConversationState::Requested);
    assert_eq!(c.owner, "");
    // A second text goes to the same request.
    let r2 = s
        .record_inbound(
            inbound(SUPPORT, UK, "anyone?"),
            InboundPolicy::NewChat,
            T0 + 3,
        )
        .await
        .unwrap();
    assert!(matches!(r2, InboundOutcome::Matched { conversation: c2, .. } if c2 == conversation));
    assert!(
        s.conversations(None, false, None, usize::MAX)
            .await
            .unwrap()
            .conversations
            .is_empty()
    );
    assert_eq!(
        s.conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations
            .len(),
        1
    );
    // Accepting it: open, owned by bob.
    let c = s
        .assign(conversation, "bob", T0 + 4)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.state, c.owner.as_str()),
        (ConversationState::Open, "bob")
    );
    let evs = all_events(&s).await;
    assert!(
        evs.iter()
            .any(|e| matches!(&e.kind, EventKind::ChatRequested { text, .. } if text == "hello?"))
    );
    assert!(evs.iter().any(|e| matches!(&e.kind, EventKind::ChatAssigned { from, to } if from.is_empty() && to == "bob")));
}

#[tokio::test]
async fn handed_over_conversation_sends_replies_to_the_new_owner() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    s.assign(a.conversation, "bob", T0 + 1)
        .await
        .unwrap()
        .unwrap();
    let r = s
        .record_inbound(
            inbound(SUPPORT, UK, "thanks"),
            InboundPolicy::Ignore,
            T0 + 2,
        )
        .await
        .unwrap();
    assert!(matches!(r, InboundOutcome::Matched { ref owner, .. } if owner == "bob"));
    let last = all_events(&s).await.pop().unwrap();
    assert_eq!(last.owner.as_deref(), Some("bob"));
    assert!(matches!(last.kind, EventKind::MessageReceived { .. }));
    assert_eq!(
        s.conversations(Some("bob"), false, None, usize::MAX)
            .await
            .unwrap()
            .conversations
            .len(),
        1
    );
    assert!(
        s.conversations(Some("alice"), false, None, usize::MAX)
            .await
            .unwrap()
            .conversations
            .is_empty()
    );
    assert_eq!(
        s.assign(999, "bob", T0).await.unwrap(),
        Err(ChatRefused::NotFound)
    );
}

// === conversation paging ===

/// Every page of `conversations` from the start, following `next`: the ids
/// listed and the number of pages.
async fn all_pages(
    s: &SledStore,
    owner: Option<&str>,
    include_requested: bool,
    limit: usize,
) -> (Vec<u64>, usize) {
    let (mut ids, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let page = s
            .conversations(owner, include_requested, after, limit)
            .await
            .unwrap();
        pages += 1;
        assert!(page.conversations.len() <= limit.max(1));
        for c in &page.conversations {
            assert!(after.is_none_or(|a| c.id > a), "{} after {after:?}", c.id);
            ids.push(c.id);
        }
        match page.next {
            Some(n) => {
                assert!(after.is_none_or(|a| n > a), "next {n} does not advance");
                after = Some(n);
            }
            None => return (ids, pages),
        }
    }
}

#[tokio::test]
async fn conversation_pages_list_each_one_once_in_id_order_by_owner_and_state() {
    use ConversationState::{Ended, Open, Requested};
    let s = SledStore::temporary().unwrap();
    // What the calls below leave: id -> (owner, state).
    let mut model: BTreeMap<u64, (String, ConversationState)> = BTreeMap::new();
    for i in 0..30u64 {
        let customer = format!("+4479111234{i:02}");
        let owner = ["alice", "bob", "carol"][(i % 3) as usize];
        let a = send(&s, out(SUPPORT, &customer, owner, "hi"), T0 + i).await;
        model.insert(a.conversation, (owner.into(), Open));
        if i % 4 == 0 {
            s.end_chat(a.conversation, owner, T0 + 100 + i)
                .await
                .unwrap()
                .unwrap();
            model.insert(a.conversation, (owner.into(), Ended));
        }
        if i % 8 == 0 {
            // The customer texts again after the end: a chat request.
            let r = s
                .record_inbound(
                    inbound(SUPPORT, &customer, "hello?"),
                    InboundPolicy::NewChat,
                    T0 + 200 + i,
                )
                .await
                .unwrap();
            let InboundOutcome::ChatRequested { conversation, .. } = r else {
                panic!("expected a chat request, got {r:?}");
            };
            model.insert(conversation, (String::new(), Requested));
        }
    }
    let everything: Vec<u64> = model.keys().copied().collect();
    for owner in [None, Some("alice"), Some("nobody")] {
        for include_requested in [false, true] {
            let want: Vec<u64> = model
                .iter()
                .filter(|(_, (o, st))| match st {
                    Open => owner.is_none_or(|w| w == o),
                    Requested => include_requested,
                    Ended => false,
                })
                .map(|(id, _)| *id)
                .collect();
            for limit in [0, 1, 4, 1000] {
                let (got, pages) = all_pages(&s, owner, include_requested, limit).await;
                assert_eq!(
                    got, want,
                    "owner {owner:?}, requested {include_requested}, limit {limit}"
                );
                // Full pages while more are left, and no empty page at the end.
                assert_eq!(pages, want.len().div_ceil(limit.max(1)).max(1));
            }
            assert!(want.len() < everything.len(), "the filter kept everything");
        }
    }
    // The filters did cut something in each direction.
    let (alice, _) = all_pages(&s, Some("alice"), false, 1000).await;
    let (all_open, _) = all_pages(&s, None, false, 1000).await;
    let (with_requests, _) = all_pages(&s, None, true, 1000).await;
    assert!(!alice.is_empty() && alice.len() < all_open.len());
    assert!(all_open.len() < with_requests.len());
    // After the last id: an empty page, nothing further.
    let last = *everything.last().unwrap();
    let page = s.conversations(None, true, Some(last), 10).await.unwrap();
    assert!(page.conversations.is_empty());
    assert_eq!(page.next, None);
    let page = s
        .conversations(None, true, Some(u64::MAX), 10)
        .await
        .unwrap();
    assert_eq!((page.conversations.len(), page.next), (0, None));
}

/// Regression: the listing read every conversation retention keeps, the
/// ended ones too (90 days of them by default), so an agent's console went
/// through all of them, 8 192 per request, to find its few open ones. Ended
/// conversations now live in a tree of their own.
#[tokio::test]
async fn a_listing_reads_past_no_ended_conversation_however_many_came_first() {
    let s = std::sync::Arc::new(SledStore::temporary().unwrap());
    let ended = CONVERSATION_SCAN_MIN as u64 + 8;
    let mut tasks = Vec::new();
    for w in 0..16u64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut first = None;
            for i in (w..ended).step_by(16) {
                let customer = format!("+4479112{i:05}");
                let a = send(&s, out(SUPPORT, &customer, "alice", "hi"), T0 + i).await;
                s.end_chat(a.conversation, "alice", T0 + ended + i)
                    .await
                    .unwrap()
                    .unwrap();
                first.get_or_insert(a.conversation);
            }
            first.unwrap()
        }));
    }
    let mut first_ended = u64::MAX;
    for t in tasks {
        first_ended = first_ended.min(t.await.unwrap());
    }
    let open = send(&s, out(SUPPORT, UK, "alice", "still here"), T0 + 3 * ended).await;
    for owner in [Some("alice"), None] {
        let page = s.conversations(owner, true, None, 1).await.unwrap();
        let ids: Vec<u64> = page.conversations.iter().map(|c| c.id).collect();
        assert_eq!(
            (ids, page.next),
            (vec![open.conversation], None),
            "{owner:?}"
        );
    }
    // An ended conversation is still there by its id, with its transcript.
    let (c, msgs) = s.transcript(first_ended).await.unwrap().unwrap();
    assert_eq!((c.state, msgs.len()), (ConversationState::Ended, 1));
    assert_eq!(
        s.conversation(first_ended).await.unwrap().map(|c| c.state),
        Some(ConversationState::Ended)
    );
    s.verify().unwrap();
}

// === receipts ===

#[tokio::test]
async fn receipt_before_response_is_held_then_applied() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    s.claim_outbox("acme", 10, 60_000, T0).await.unwrap();
    let r = s
        .record_receipt(
            "acme",
            "1F2E",
            receipt(ReceiptState::Delivered, None),
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(r, ReceiptOutcome::Held);
    let done = s
        .record_submit(a.message, 0, 1, Ok("1F2E".into()), T0 + 2)
        .await
        .unwrap();
    assert_eq!(
        done,
        SubmitOutcome::Done {
            status: MessageStatus::Delivered,
            receipts_applied: 1
        }
    );
    assert_eq!(
        kinds_of(&s, a.message).await,
        ["message_accepted", "message_submitted", "message_delivered"]
    );
    assert!(
        s.claim_outbox("acme", 10, 60_000, T0 + 3)
            .await
            .unwrap()
            .is_empty()
    );
    // The same receipt again changes nothing.
    let again = s
        .record_receipt(
            "acme",
            "1F2E",
            receipt(ReceiptState::Delivered, None),
            T0 + 4,
        )
        .await
        .unwrap();
    assert_eq!(again, ReceiptOutcome::Duplicate);
}

/// A window's responses and a batch of receipts go in one write each and
/// end as one-by-one calls would: receipts before their response are held,
/// a batch applies its entries in order (a later entry sees an earlier one).
#[tokio::test]
async fn batched_submits_and_receipts_match_one_by_one_calls() {
    let s = SledStore::temporary().unwrap();
    let mut ids = Vec::new();
    for (i, c) in [UK, JP].iter().enumerate() {
        ids.push(
            send(&s, out(SUPPORT, c, "alice", "hi"), T0 + i as u64)
                .await
                .message,
        );
    }
    s.claim_outbox("acme", 10, 60_000, T0).await.unwrap();
    // A receipt for the first message arrives before its response; a second
    // receipt in the same batch is a duplicate of the first.
    let early = s
        .record_receipts(
            "acme",
            vec![
                ReceiptRecord {
                    candidates: vec!["A1".into()],
                    update: receipt(ReceiptState::Delivered, None),
                },
                ReceiptRecord {
                    candidates: vec!["A1".into()],
                    update: receipt(ReceiptState::Delivered, None),
                },
            ],
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(
        early,
        [(ReceiptOutcome::Held, None), (ReceiptOutcome::Held, None)]
    );
    let flushes = s.flush_count();
    let out = s
        .record_submits(
            vec![
                SubmitRecord {
                    message: ids[0],
                    part: 0,
                    total_parts: 1,
                    result: Ok("A1".into()),
                },
                SubmitRecord {
                    message: ids[1],
                    part: 0,
                    total_parts: 1,
                    result: Err(SubmitFailure {
                        status: 0x0b,
                        permanent: true,
                    }),
                },
                SubmitRecord {
                    message: 999_999,
                    part: 0,
                    total_parts: 1,
                    result: Ok("ZZ".into()),
                },
            ],
            T0 + 2,
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        [
            SubmitOutcome::Done {
                status: MessageStatus::Delivered,
                receipts_applied: 1
            },
            SubmitOutcome::Failed,
            SubmitOutcome::Ignored,
        ]
    );
    assert_eq!(
        s.flush_count(),
        flushes + 1,
        "one durable write for the batch"
    );
    assert_eq!(
        kinds_of(&s, ids[0]).await,
        ["message_accepted", "message_submitted", "message_delivered"]
    );
    let late = s
        .record_receipts(
            "acme",
            vec![ReceiptRecord {
                candidates: vec!["A1".into()],
                update: receipt(ReceiptState::Delivered, None),
            }],
            T0 + 3,
        )
        .await
        .unwrap();
    assert_eq!(late, [(ReceiptOutcome::Duplicate, Some(0))]);
    assert!(
        s.claim_outbox("acme", 10, 60_000, T0 + 4)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn receipt_in_the_other_base_matches_through_a_fallback_candidate() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    // The response said hex "1F"; the receipt says decimal "31".
    s.record_submit(a.message, 0, 1, Ok("1F".into()), T0)
        .await
        .unwrap();
    let (r, via) = s
        .record_receipt_any(
            "acme",
            &["31", "1F"],
            receipt(ReceiptState::Delivered, None),
            T0 + 1,
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        ReceiptOutcome::Applied {
            message: a.message,
            status: MessageStatus::Delivered,
            submitted_ms: Some(T0),
        }
    );
    assert_eq!(via, Some(1));

    // Held before the response: kept under every form, matched by either,
    // and the other forms go with it.
    let b = send(&s, out(SUPPORT, JP, "alice", "hi"), T0 + 2).await;
    let (r, via) = s
        .record_receipt_any(
            "acme",
            &["42", "2A"],
            receipt(ReceiptState::Rejected, Some("err:0b")),
            T0 + 3,
        )
        .await
        .unwrap();
    assert_eq!((r, via), (ReceiptOutcome::Held, None));
    let done = s
        .record_submit(b.message, 0, 1, Ok("2A".into()), T0 + 4)
        .await
        .unwrap();
    assert_eq!(
        done,
        SubmitOutcome::Done {
            status: MessageStatus::Failed,
            receipts_applied: 1
        }
    );
    let report = s.expire_pending(T0 + 10, 1, 1).await.unwrap();
    assert_eq!(report.held_dropped, 0);
    s.flush().await.unwrap();
}

#[tokio::test]
async fn multi_part_message_is_delivered_when_every_part_is() {
    let s = SledStore::temporary().unwrap();
    let mut n = out(SUPPORT, UK, "alice", "long text");
    n.parts = 3;
    let a = send(&s, n, T0).await;
    for p in 0..3u8 {
        let r = s
            .record_submit(a.message, p, 3, Ok(format!("ID{p}")), T0 + 1)
            .await
            .unwrap();
        if p < 2 {
            assert_eq!(
                r,
                SubmitOutcome::Pending {
                    answered: p + 1,
                    total: 3
                }
            );
        }
    }
    for p in 0..2 {
        let r = s
            .record_receipt(
                "acme",
                &format!("ID{p}"),
                receipt(ReceiptState::Delivered, None),
                T0 + 2,
            )
            .await
            .unwrap();
        assert_eq!(
            r,
            ReceiptOutcome::Applied {
                message: a.message,
                status: MessageStatus::Submitted,
                submitted_ms: Some(T0 + 1),
            }
        );
    }
    let r = s
        .record_receipt(
            "acme",
            "ID2",
            receipt(ReceiptState::Delivered, None),
            T0 + 3,
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        ReceiptOutcome::Applied {
            message: a.message,
            status: MessageStatus::Delivered,
            submitted_ms: Some(T0 + 1),
        }
    );
    assert_eq!(
        kinds_of(&s, a.message).await,
        ["message_accepted", "message_submitted", "message_delivered"]
    );
}

#[tokio::test]
async fn multi_part_message_fails_as_soon_as_one_part_fails() {
    let s = SledStore::temporary().unwrap();
    let mut n = out(SUPPORT, UK, "alice", "long text");
    n.parts = 3;
    let a = send(&s, n, T0).await;
    for p in 0..3u8 {
        s.record_submit(a.message, p, 3, Ok(format!("X{p}")), T0 + 1)
            .await
            .unwrap();
    }
    delivered(&s, "X0", T0 + 2).await;
    let r = s
        .record_receipt(
            "acme",
            "X1",
            receipt(ReceiptState::Undeliverable, Some("err:001")),
            T0 + 3,
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        ReceiptOutcome::Applied {
            message: a.message,
            status: MessageStatus::Failed,
            submitted_ms: Some(T0 + 1),
        }
    );
    // A later delivered part does not undo the failure.
    delivered(&s, "X2", T0 + 4).await;
    let m = s.message(a.message).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Failed);
    assert_eq!(m.error.as_deref(), Some("err:001"));
    let failed: Vec<_> = all_events(&s)
        .await
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::MessageFailed { state, error, .. } => Some((state, error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [(FailState::Undeliverable, Some("err:001".to_string()))]
    );
}

/// The receipt sweep finds old holds through their time index (it used to
/// read every held receipt, under the writer lock, each minute): it drops
/// those past the age once each, keeps a hold renewed since, and the index
/// stays exact through holds, renewals, a submit that claims one, and drops.
#[tokio::test]
async fn the_receipt_sweep_drops_only_holds_past_their_age_and_a_renewed_hold_keeps_its_new_time() {
    let s = SledStore::temporary().unwrap();
    let hour = 3_600_000;
    let enroute = ReceiptUpdate {
        state: ReceiptState::Enroute,
        error: None,
        is_final: false,
    };
    // Receipts for ids never submitted (yet): "1F" may also be decimal 31,
    // so it is held under each form.
    delivered(&s, "1F", T0).await;
    s.record_receipt("acme", "A1B2", enroute, T0).await.unwrap();
    delivered(&s, "C3D4", T0).await;
    // A1B2's final receipt replaces its intermediate one an hour later.
    delivered(&s, "A1B2", T0 + hour).await;
    // C3D4's submit response arrives after all: the hold is applied.
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    s.record_submit(a.message, 0, 1, Ok("C3D4".into()), T0 + hour)
        .await
        .unwrap();
    assert_eq!(
        s.message(a.message).await.unwrap().unwrap().status,
        MessageStatus::Delivered
    );
    s.verify().unwrap();
    let early = s
        .expire_pending(T0 + hour - 1, 10 * hour, hour)
        .await
        .unwrap();
    assert_eq!(early.held_dropped, 0);
    // An hour on: "1F" goes (counted once for its two forms); A1B2, held
    // again at T0 + hour, stays.
    let first = s.expire_pending(T0 + hour, 10 * hour, hour).await.unwrap();
    assert_eq!(first.held_dropped, 1);
    s.verify().unwrap();
    let second = s
        .expire_pending(T0 + 2 * hour, 10 * hour, hour)
        .await
        .unwrap();
    assert_eq!(second.held_dropped, 1);
    s.verify().unwrap();
    assert_eq!(s.recover(T0 + 2 * hour).await.unwrap().held_receipts, 0);
}

#[tokio::test]
async fn missing_receipt_turns_unknown_after_the_timeout() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    s.record_submit(a.message, 0, 1, Ok("77".into()), T0 + 10)
        .await
        .unwrap();
    delivered(&s, "999", T0 + 10).await;
    let hour = 3_600_000;
    let early = s
        .expire_pending(T0 + 10 + hour - 1, hour, 10 * hour)
        .await
        .unwrap();
    assert_eq!((early.no_receipt, early.held_dropped), (0, 0));
    let due = s.expire_pending(T0 + 10 + hour, hour, hour).await.unwrap();
    assert_eq!((due.no_receipt, due.held_dropped), (1, 1));
    let m = s.message(a.message).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Unknown);
    let last = all_events(&s).await.pop().unwrap();
    assert!(matches!(
        last.kind,
        EventKind::MessageFailed {
            state: FailState::NoReceipt,
            ..
        }
    ));
    // Nothing left to expire; a late receipt still lands.
    assert_eq!(
        s.expire_pending(T0 + 10 * hour, hour, hour)
            .await
            .unwrap()
            .no_receipt,
        0
    );
    let late = s
        .record_receipt(
            "acme",
            "77",
            receipt(ReceiptState::Delivered, None),
            T0 + 2 * hour,
        )
        .await
        .unwrap();
    assert_eq!(
        late,
        ReceiptOutcome::Applied {
            message: a.message,
            status: MessageStatus::Delivered,
            submitted_ms: Some(T0 + 10),
        }
    );
    s.verify().unwrap();
}

#[tokio::test]
async fn permanent_submit_failure_fails_the_message() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    s.claim_outbox("acme", 1, 60_000, T0).await.unwrap();
    let temp = SubmitFailure {
        status: 0x58,
        permanent: false,
    };
    assert_eq!(
        s.record_submit(a.message, 0, 1, Err(temp), T0)
            .await
            .unwrap(),
        SubmitOutcome::Retry
    );
    let perm = SubmitFailure {
        status: 0x0b,
        permanent: true,
    };
    assert_eq!(
        s.record_submit(a.message, 0, 1, Err(perm), T0)
            .await
            .unwrap(),
        SubmitOutcome::Failed
    );
    let m = s.message(a.message).await.unwrap().unwrap();
    assert_eq!(
        (m.status, m.error.as_deref()),
        (MessageStatus::Failed, Some("0x0000000b"))
    );
    let last = all_events(&s).await.pop().unwrap();
    assert!(matches!(
        last.kind,
        EventKind::MessageFailed {
            state: FailState::SubmitFailed,
            ..
        }
    ));
    assert!(
        s.claim_outbox("acme", 1, 60_000, T0 + 120_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.record_submit(12345, 0, 1, Ok("1".into()), T0)
            .await
            .unwrap(),
        SubmitOutcome::Ignored
    );
}

// === idempotency ===

#[tokio::test]
async fn client_ref_makes_a_send_idempotent() {
    let s = SledStore::temporary().unwrap();
    let mut n = out(SUPPORT, UK, "alice", "hi");
    n.client_ref = Some("ref-1".into());
    let first = send(&s, n.clone(), T0).await;
    let second = send(&s, n.clone(), T0 + 5).await;
    assert!(!first.duplicate && second.duplicate);
    assert_eq!((second.message, second.at_ms), (first.message, first.at_ms));
    let (_, msgs) = s.transcript(first.conversation).await.unwrap().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(s.claim_outbox("acme", 10, 1000, T0).await.unwrap().len(), 1);
    // The key is per agent.
    n.owner = "bob".into();
    assert!(!send(&s, n, T0 + 6).await.duplicate);
}

// === outbox limit ===

/// The limit is per carrier: one carrier's backlog (a long outage) does
/// not refuse sends routed to another.
#[tokio::test]
async fn sends_past_a_carriers_outbox_limit_are_refused_and_store_nothing_while_other_carriers_take_sends()
 {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let limited = |sender: &str, customer: &str, text: &str| NewOutbound {
        outbox_limit: Some(2),
        ..out(sender, customer, "alice", text)
    };
    let to_globex = |customer: &str, text: &str| NewOutbound {
        carrier: "globex".into(),
        ..limited(SALES, customer, text)
    };
    let acme_full = Err(SendRefused::OutboxFull {
        carrier: "acme".into(),
        depth: 2,
        limit: 2,
    });
    let mut first = limited(SUPPORT, UK, "one");
    first.client_ref = Some("ref-1".into());
    let a = send(&s, first.clone(), T0).await;
    send(&s, limited(SUPPORT, JP, "two"), T0 + 1).await;
    let events = all_events(&s).await.len();
    let full = s
        .accept_send(limited(SALES, UK, "three"), T0 + 2)
        .await
        .unwrap();
    assert_eq!(full, acme_full);
    assert_eq!(
        all_events(&s).await.len(),
        events,
        "a refusal stores no event"
    );
    assert_eq!(s.outbox_depth(), 2);
    // Another carrier's sends are taken, up to its own limit.
    send(&s, to_globex(JP, "g1"), T0 + 3).await;
    send(&s, to_globex("+447911123457", "g2"), T0 + 3).await;
    let globex_full = s.accept_send(to_globex(UK, "g3"), T0 + 3).await.unwrap();
    assert!(
        matches!(&globex_full, Err(SendRefused::OutboxFull { carrier, .. }) if carrier == "globex"),
        "{globex_full:?}"
    );
    let depths = [("acme".to_string(), 2), ("globex".to_string(), 2)].into();
    assert_eq!(s.outbox_depths(), depths);
    assert_eq!(s.outbox_depth(), 4);
    // A retry of a stored send is still its duplicate.
    let again = send(&s, first, T0 + 3).await;
    assert!(again.duplicate && again.message == a.message);
    // The counts come back at open.
    drop(s);
    let s = open(&db_path(&dir));
    s.verify().unwrap();
    assert_eq!(s.outbox_depths(), depths);
    let full = s
        .accept_send(limited(SALES, UK, "three"), T0 + 4)
        .await
        .unwrap();
    assert_eq!(full, acme_full);
    // A message handed to the carrier makes room.
    let claimed = s.claim_outbox("acme", 1, 1000, T0 + 5).await.unwrap();
    assert_eq!(claimed.len(), 1);
    s.record_submit(claimed[0].message, 0, 1, Ok("1F".into()), T0 + 6)
        .await
        .unwrap();
    assert_eq!(s.outbox_depths()["acme"], 1);
    let c = send(&s, limited(SALES, UK, "three"), T0 + 7).await;
    assert!(!c.duplicate);
    assert_eq!(s.outbox_depth(), 4);
    // A carrier with nothing left queued drops out of the counts.
    for m in s.claim_outbox("globex", 10, 1000, T0 + 8).await.unwrap() {
        s.record_submit(m.message, 0, 1, Ok(format!("G{}", m.message)), T0 + 9)
            .await
            .unwrap();
    }
    assert_eq!(s.outbox_depths(), [("acme".to_string(), 2)].into());
    s.verify().unwrap();
}

// === outbox ===

#[tokio::test]
async fn outbox_is_fifo_per_carrier_and_lapsed_leases_are_flagged() {
    let s = SledStore::temporary().unwrap();
    let mut ids = Vec::new();
    for (i, c) in [UK, JP, UK].iter().enumerate() {
        ids.push(
            send(
                &s,
                out(SUPPORT, c, "alice", &format!("m{i}")),
                T0 + i as u64,
            )
            .await
            .message,
        );
    }
    let mut other = out(SALES, UK, "bob", "elsewhere");
    other.carrier = "globex".into();
    let o = send(&s, other, T0 + 9).await;

    let got = s.claim_outbox("acme", 2, 1000, T0 + 10).await.unwrap();
    assert_eq!(got.iter().map(|i| i.message).collect::<Vec<_>>(), ids[..2]);
    assert!(got.iter().all(|i| i.attempt == 1 && !i.possible_duplicate));
    assert_eq!(got[1].customer, JP);
    let next = s.claim_outbox("acme", 5, 1000, T0 + 10).await.unwrap();
    assert_eq!(next.iter().map(|i| i.message).collect::<Vec<_>>(), ids[2..]);
    assert!(
        s.claim_outbox("acme", 5, 1000, T0 + 500)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.claim_outbox("globex", 5, 1000, T0).await.unwrap()[0].message,
        o.message
    );

    // Released before sending: back at the head, not a duplicate.
    assert!(s.release(ids[0]).await.unwrap());
    let r = s.claim_outbox("acme", 5, 1000, T0 + 600).await.unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].message, r[0].attempt, r[0].possible_duplicate),
        (ids[0], 2, false)
    );

    // Leases lapse: everything comes back, flagged.
    let r = s.claim_outbox("acme", 5, 1000, T0 + 5000).await.unwrap();
    assert_eq!(r.iter().map(|i| i.message).collect::<Vec<_>>(), ids);
    assert!(r.iter().all(|i| i.possible_duplicate));

    // Sent but unanswered: flagged too, and the submitted event says so.
    assert_eq!(
        s.release_unanswered(ids[2], 1, T0 + 5500, 0).await.unwrap(),
        Unanswered::Released { unknown: 1 }
    );
    s.record_submit(ids[2], 0, 1, Ok("A1".into()), T0 + 6000)
        .await
        .unwrap();
    let last = all_events(&s).await.pop().unwrap();
    assert!(matches!(
        last.kind,
        EventKind::MessageSubmitted {
            possible_duplicate: true,
            ..
        }
    ));
    assert!(!s.release(ids[2]).await.unwrap());
}

#[tokio::test]
async fn in_flight_items_are_flagged_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (in_flight, queued) = {
        let s = open(&path);
        let a = send(&s, out(SUPPORT, UK, "alice", "one"), T0).await;
        let b = send(&s, out(SUPPORT, JP, "alice", "two"), T0 + 1).await;
        let got = s.claim_outbox("acme", 1, 3_600_000, T0 + 2).await.unwrap();
        assert_eq!(got[0].message, a.message);
        (a, b)
    };
    let s = open(&path);
    let report = s.recover(T0 + 3).await.unwrap();
    assert_eq!((report.released_leases, report.outbox), (1, 2));
    let got = s.claim_outbox("acme", 5, 60_000, T0 + 4).await.unwrap();
    assert_eq!(
        flagged(&got),
        [(in_flight.message, true), (queued.message, false)]
    );
    // Ids and seqs continue after the restart.
    let c = send(&s, out(SALES, UK, "bob", "three"), T0 + 5).await;
    assert!(c.message > queued.message);
    let evs = all_events(&s).await;
    let seqs: Vec<u64> = evs.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=3).collect::<Vec<_>>());
}

/// A store written before the derived entries existed (no `indexed` key,
/// no counts, empty `leases`, `receipt_due`, `ended` and `held_due` trees)
/// gets them built at its first open: its in-flight items are still
/// released at the start, its overdue receipts still expire, its old held
/// receipts are still dropped, its ended chats still purge.
#[tokio::test]
async fn a_store_without_its_indexes_gets_them_built_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (submitted, ended) = {
        let s = open(&path);
        let mut sent = Vec::new();
        for (i, customer) in [UK, JP, "+447911123457", "+447911123458"]
            .into_iter()
            .enumerate()
        {
            sent.push(send(&s, out(SUPPORT, customer, "alice", "hi"), T0 + i as u64).await);
        }
        let got = s.claim_outbox("acme", 3, 3_600_000, T0 + 5).await.unwrap();
        assert_eq!(got.len(), 3);
        s.record_submit(sent[0].message, 0, 1, Ok("1F".into()), T0 + 6)
            .await
            .unwrap();
        s.end_chat(sent[3].conversation, "alice", T0 + 7)
            .await
            .unwrap()
            .unwrap();
        delivered(&s, "A1B2", T0 + 8).await;
        let hello = new_template("alice", "hello");
        s.put_template(hello, 1, T0 + 9).await.unwrap().unwrap();
        s.flush().await.unwrap();
        (sent[0].message, sent[3].conversation)
    };
    {
        // Take the store back to the older layout, as that version left it.
        // (Regression: a plain `sled::open` here failed now and then on the
        // lock of the store just dropped.)
        let db = reopen(|| sled::open(&path));
        let meta = db.open_tree("meta").unwrap();
        for k in [
            &b"indexed"[..],
            b"count_outbox",
            b"count_awaiting_receipts",
            b"count_held_receipts",
            b"count_outbox_of:acme",
        ] {
            assert!(meta.remove(k).unwrap().is_some(), "{k:?} was kept");
        }
        // A count no outbox entry backs (layouts before 8 had none; a
        // build must not keep one).
        meta.insert(b"count_outbox_of:gone", &5u64.to_be_bytes()[..])
            .unwrap();
        for (tree, held) in [
            ("leases", 2),
            ("receipt_due", 1),
            ("ended", 1),
            ("held_due", 1),
            ("agent_templates", 1),
        ] {
            let t = db.open_tree(tree).unwrap();
            assert_eq!(t.len(), held, "{tree}");
            t.clear().unwrap();
        }
        // Layouts before 5 kept ended conversations with the live ones.
        let ended_tree = db.open_tree("ended_conversations").unwrap();
        let moved: Vec<_> = ended_tree.iter().map(Result::unwrap).collect();
        assert_eq!(moved.len(), 1);
        let live = db.open_tree("conversations").unwrap();
        for (k, v) in moved {
            live.insert(k, v).unwrap();
        }
        assert!(db.drop_tree("ended_conversations").unwrap());
        db.flush().unwrap();
    }
    let s = open(&path);
    s.verify().unwrap();
    let listed = s.conversations(None, true, None, 10).await.unwrap();
    assert_eq!(listed.conversations.len(), 3);
    assert!(listed.conversations.iter().all(|c| c.id != ended));
    assert_eq!(
        s.conversation(ended).await.unwrap().map(|c| c.state),
        Some(ConversationState::Ended)
    );
    assert_eq!(s.outbox_depth(), 3);
    assert_eq!(s.outbox_depths(), [("acme".to_string(), 3)].into());
    assert_eq!(s.templates("alice").await.unwrap().len(), 1);
    let another = new_template("alice", "again");
    assert!(s.put_template(another, 1, T0 + 10).await.unwrap().is_err());
    let report = s.recover(T0 + 10).await.unwrap();
    assert_eq!(
        (
            report.released_leases,
            report.outbox,
            report.awaiting_receipts
        ),
        (2, 3, 1)
    );
    let expired = s.expire_pending(T0 + 100, 10, 10).await.unwrap();
    assert_eq!((expired.no_receipt, expired.held_dropped), (1, 1));
    assert_eq!(
        s.message(submitted).await.unwrap().unwrap().status,
        MessageStatus::Unknown
    );
    let purged = s.purge_ended(T0 + 100, 10).await.unwrap();
    assert_eq!((purged.conversations, purged.messages), (1, 1));
    assert!(s.conversation(ended).await.unwrap().is_none());
    s.verify().unwrap();
}

/// A store whose derived entries a newer build wrote is refused with a
/// clear error: this build's commits would not keep them up to date.
#[tokio::test]
async fn a_store_written_by_a_newer_layout_is_refused_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let s = open(&path);
        send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
        s.flush().await.unwrap();
    }
    {
        let db = reopen(|| sled::open(&path));
        let meta = db.open_tree("meta").unwrap();
        meta.insert("indexed", &99u64.to_be_bytes()[..]).unwrap();
        db.flush().unwrap();
    }
    let mut refused = None;
    for _ in 0..400 {
        match SledStore::open(&path) {
            Err(e @ StoreError::NewerLayout { .. }) => {
                refused = Some(e);
                break;
            }
            // sled's lock may still be held for a moment by the handle above.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(50)),
            Ok(_) => panic!("a newer layout was opened"),
        }
    }
    let e = refused.expect("refused with NewerLayout");
    assert!(e.to_string().contains("newer smppgw"), "{e}");
}

// === unknown outcomes and max_resubmits ===

/// Claims everything of "acme" at `now` and returns the ids.
/// Each claimed item as (message, flagged possible duplicate).
fn flagged(items: &[smppgw::store::OutboxItem]) -> Vec<(u64, bool)> {
    items
        .iter()
        .map(|i| (i.message, i.possible_duplicate))
        .collect()
}

async fn claim_ids(s: &SledStore, now: u64) -> Vec<u64> {
    s.claim_outbox("acme", 10, 60_000, now)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.message)
        .collect()
}

/// A submit that timed out waits its carrier's `resubmit_delay` before it
/// can be claimed again (later messages of its chat wait behind it); a late
/// response meanwhile records it sent, and it never goes again.
#[tokio::test]
async fn a_timed_out_message_waits_its_resend_delay_and_a_late_answer_spares_the_resend() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let late = send(&s, out(SUPPORT, UK, "alice", "one"), T0).await.message;
    let lost = send(&s, out(SUPPORT, JP, "bob", "two"), T0).await.message;
    assert_eq!(claim_ids(&s, T0 + 1).await, [late, lost]);
    for id in [late, lost] {
        assert_eq!(
            s.release_unanswered(id, 1, T0 + 100, 30_000).await.unwrap(),
            Unanswered::Released { unknown: 1 }
        );
    }
    let after_alice = send(&s, out(SUPPORT, UK, "alice", "three"), T0 + 150)
        .await
        .message;
    let ordered = |now| s.claim_outbox_in_order("acme", 10, 60_000, now);
    let ids = |v: Vec<smppgw::store::OutboxItem>| v.iter().map(|i| i.message).collect::<Vec<_>>();
    assert!(
        ids(ordered(T0 + 200).await.unwrap()).is_empty(),
        "both wait, and so does the chat's later message"
    );
    // The first one's response arrives late, inside the delay.
    let r = s
        .record_submit(late, 0, 1, Ok("5A".into()), T0 + 5_000)
        .await
        .unwrap();
    assert!(matches!(r, SubmitOutcome::Done { .. }), "{r:?}");
    assert_eq!(ids(ordered(T0 + 6_000).await.unwrap()), [after_alice]);
    // The other goes again once the delay is over, flagged.
    let again = ordered(T0 + 30_100).await.unwrap();
    assert_eq!(ids(again.clone()), [lost]);
    assert!(again[0].possible_duplicate);
    assert_eq!(again[0].attempt, 2);
    let (late, lost) = (
        s.message(late).await.unwrap().unwrap(),
        s.message(lost).await.unwrap().unwrap(),
    );
    assert_eq!(late.status, MessageStatus::Submitted);
    assert!(!late.possible_duplicate, "it went out once");
    assert!(lost.possible_duplicate, "it goes out again");
    s.verify().unwrap();
}

/// Regression (session 7's note: "a restart cuts a resend delay short"):
/// a restart released every lease, the resend delay's too, so a message
/// waiting out its delay went again at once. Now only the binds' leases go;
/// the delay runs its course, and the resend is flagged.
#[tokio::test]
async fn a_resend_delay_holds_across_a_restart_while_in_flight_leases_are_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let (resting, in_flight) = {
        let s = open(&path);
        let resting = send(&s, out(SUPPORT, UK, "alice", "one"), T0).await.message;
        let in_flight = send(&s, out(SUPPORT, JP, "bob", "two"), T0).await.message;
        assert_eq!(claim_ids(&s, T0 + 1).await, [resting, in_flight]);
        assert_eq!(
            s.release_unanswered(resting, 3, T0 + 100, 30_000)
                .await
                .unwrap(),
            Unanswered::Released { unknown: 1 }
        );
        (resting, in_flight)
    };
    let s = open(&path);
    let report = s.recover(T0 + 200).await.unwrap();
    assert_eq!((report.released_leases, report.resting), (1, 1));
    let now = s.claim_outbox("acme", 10, 60_000, T0 + 300).await.unwrap();
    assert_eq!(
        flagged(&now),
        [(in_flight, true)],
        "the bind's lease goes, the delay stays"
    );
    let later = s
        .claim_outbox("acme", 10, 60_000, T0 + 30_100)
        .await
        .unwrap();
    assert_eq!(flagged(&later), [(resting, true)]);
    // Claimed again, it is a bind's lease: the next restart releases it.
    drop(s);
    let s = open(&path);
    let report = s.recover(T0 + 30_200).await.unwrap();
    assert_eq!((report.released_leases, report.resting), (2, 0));
    s.verify().unwrap();
}

#[tokio::test]
async fn unknown_outcomes_within_max_resubmits_are_claimable_again_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let id = {
        let s = open(&path);
        let id = send(&s, out(SUPPORT, UK, "alice", "one"), T0).await.message;
        assert_eq!(claim_ids(&s, T0 + 1).await, [id]);
        assert_eq!(
            s.release_unanswered(id, 2, T0 + 2, 0).await.unwrap(),
            Unanswered::Released { unknown: 1 }
        );
        id
    };
    // The count is durable: it goes on after a restart.
    let s = open(&path);
    s.recover(T0 + 3).await.unwrap();
    let got = s.claim_outbox("acme", 10, 60_000, T0 + 4).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].possible_duplicate);
    assert_eq!(
        s.release_unanswered(id, 2, T0 + 5, 0).await.unwrap(),
        Unanswered::Released { unknown: 2 }
    );
    let m = s.message(id).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Accepted);
    assert!(m.possible_duplicate);
    assert_eq!(claim_ids(&s, T0 + 6).await, [id]);
    // A timely answer to this send settles it as usual.
    let r = s
        .record_submit(id, 0, 1, Ok("5A".into()), T0 + 7)
        .await
        .unwrap();
    assert!(matches!(r, SubmitOutcome::Done { .. }));
    assert_eq!(
        kinds_of(&s, id).await,
        ["message_accepted", "message_submitted"]
    );
}

#[tokio::test]
async fn unknown_outcomes_past_max_resubmits_end_the_message_unknown_with_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let id = send(&s, out(SUPPORT, UK, "alice", "one"), T0).await.message;
    let other = send(&s, out(SUPPORT, JP, "alice", "two"), T0 + 1)
        .await
        .message;
    for (i, want) in [
        Unanswered::Released { unknown: 1 },
        Unanswered::GaveUp { unknown: 2 },
    ]
    .into_iter()
    .enumerate()
    {
        let now = T0 + 10 * (i as u64 + 1);
        assert!(claim_ids(&s, now).await.contains(&id));
        assert_eq!(s.release_unanswered(id, 1, now + 1, 0).await.unwrap(), want);
        s.release(other).await.unwrap();
    }
    let m = s.message(id).await.unwrap().unwrap();
    assert_eq!(m.status, MessageStatus::Unknown);
    assert!(m.possible_duplicate);
    let last = all_events(&s).await.pop().unwrap();
    assert_eq!(last.conversation, Some(m.conversation));
    assert_eq!(last.owner.as_deref(), Some("alice"));
    assert_eq!(
        last.kind,
        EventKind::MessageFailed {
            message: id,
            state: FailState::NoReceipt,
            error: None,
        }
    );
    // Out of the outbox: never claimed again, nothing more to release;
    // the other message is untouched.
    assert_eq!(claim_ids(&s, T0 + 100).await, [other]);
    assert_eq!(
        s.release_unanswered(id, 1, T0 + 101, 0).await.unwrap(),
        Unanswered::NotFound
    );
    assert!(!s.release(id).await.unwrap());
    assert!(!s.release_sent(id).await.unwrap());
    // A late answer still indexes the carrier id (the status stays
    // unknown, no submitted event), and its receipt settles the message.
    s.record_submit(id, 0, 1, Ok("7F3".into()), T0 + 102)
        .await
        .unwrap();
    assert_eq!(
        s.message(id).await.unwrap().unwrap().status,
        MessageStatus::Unknown
    );
    let r = s
        .record_receipt(
            "acme",
            "7F3",
            receipt(ReceiptState::Delivered, None),
            T0 + 103,
        )
        .await
        .unwrap();
    assert_eq!(
        r,
        ReceiptOutcome::Applied {
            message: id,
            status: MessageStatus::Delivered,
            // Never marked submitted: its status stayed unknown.
            submitted_ms: None,
        }
    );
    assert_eq!(
        kinds_of(&s, id).await,
        ["message_accepted", "message_failed", "message_delivered"]
    );
}

#[tokio::test]
async fn max_resubmits_zero_never_sends_an_unknown_outcome_again() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let id = send(&s, out(SUPPORT, UK, "alice", "one"), T0).await.message;
    assert_eq!(claim_ids(&s, T0 + 1).await, [id]);
    assert_eq!(
        s.release_unanswered(id, 0, T0 + 2, 0).await.unwrap(),
        Unanswered::GaveUp { unknown: 1 }
    );
    assert!(claim_ids(&s, T0 + 3).await.is_empty());
    assert_eq!(
        s.message(id).await.unwrap().unwrap().status,
        MessageStatus::Unknown
    );
    assert_eq!(
        kinds_of(&s, id).await,
        ["message_accepted", "message_failed"]
    );
}

#[tokio::test]
async fn hand_backs_with_known_outcomes_are_flagged_but_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let mut n = out(SUPPORT, UK, "alice", "two parts");
    n.parts = 2;
    let id = send(&s, n, T0).await.message;
    for i in 0..3 {
        let now = T0 + 10 * (i + 1);
        let got = s.claim_outbox("acme", 10, 60_000, now).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].possible_duplicate, i > 0);
        assert!(s.release_sent(id).await.unwrap());
        // A plain release (nothing went out) counts nothing either.
        assert!(claim_ids(&s, now + 1).await.contains(&id));
        assert!(s.release(id).await.unwrap());
    }
    assert_eq!(
        s.release_unanswered(id, 1, T0 + 50, 0).await.unwrap(),
        Unanswered::Released { unknown: 1 }
    );
}

#[tokio::test]
async fn late_answer_to_a_message_back_in_the_outbox_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let id = send(&s, out(SUPPORT, UK, "alice", "one"), T0).await.message;
    assert_eq!(claim_ids(&s, T0 + 1).await, [id]);
    s.release_unanswered(id, 1, T0 + 2, 0).await.unwrap();
    // The first send's response arrives now: the message is submitted,
    // flagged possible duplicate, and leaves the outbox unsent again.
    let r = s
        .record_submit(id, 0, 1, Ok("ab12".into()), T0 + 3)
        .await
        .unwrap();
    assert!(matches!(
        r,
        SubmitOutcome::Done {
            status: MessageStatus::Submitted,
            ..
        }
    ));
    assert!(matches!(
        all_events(&s).await.pop().unwrap().kind,
        EventKind::MessageSubmitted {
            possible_duplicate: true,
            ..
        }
    ));
    assert!(claim_ids(&s, T0 + 4).await.is_empty());
    assert_eq!(
        s.release_unanswered(id, 1, T0 + 5, 0).await.unwrap(),
        Unanswered::NotFound
    );
}

// === event log ===

#[tokio::test]
async fn events_come_in_seq_order_and_trim_below_the_slowest_cursor() {
    let s = SledStore::temporary().unwrap();
    let rx = s.subscribe();
    for i in 0..5u64 {
        send(&s, out(SUPPORT, UK, "alice", &format!("m{i}")), T0 + i).await;
    }
    let link = s
        .append_event(
            EventKind::LinkUp {
                carrier: "acme".into(),
                bind: "trx1".into(),
                reason: None,
            },
            T0 + 10,
        )
        .await
        .unwrap();
    assert_eq!(link, 6);
    assert_eq!(*rx.borrow(), 6);
    let evs = s.events_after(0, 100).await.unwrap();
    assert_eq!(
        evs.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(evs[5].conversation.is_none());
    let page = s.events_after(2, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert!(s.events_after(6, 10).await.unwrap().is_empty());

    s.ack("console", 4).await.unwrap();
    s.ack("crm", 2).await.unwrap();
    s.ack("crm", 1).await.unwrap(); // never goes back
    assert_eq!(s.cursor("crm").await.unwrap(), Some(2));
    // Acked by every consumer and older than a minute: seqs 1 and 2.
    let trimmed = s
        .trim_events(T0 + 60_010, 60_000, 86_400_000)
        .await
        .unwrap();
    assert_eq!(trimmed, 2);
    assert_eq!(s.first_event_seq().await.unwrap(), Some(3));
    // Past the max age everything goes, acked or not.
    assert_eq!(
        s.trim_events(T0 + 86_400_010, 60_000, 86_400_000)
            .await
            .unwrap(),
        4
    );
    assert_eq!(s.first_event_seq().await.unwrap(), None);
    send(&s, out(SUPPORT, UK, "alice", "after trim"), T0 + 86_400_020).await;
    assert_eq!(s.events_after(0, 10).await.unwrap()[0].seq, 7);
}

/// Checkpoints move events from the overlay to the event journal while a
/// follower reads them: the follower must see every seq once, in order,
/// however its reads fall around a checkpoint dropping its frozen layer.
/// Reopened, the store serves the same events, continues their seqs, and
/// keeps a trim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_sees_every_event_once_while_checkpoints_move_them_to_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let link = |i: u64| EventKind::LinkUp {
        carrier: "acme".into(),
        bind: format!("trx{i}"),
        reason: None,
    };
    const N: u64 = 3_000;
    {
        let s = open(&db_path(&dir));
        let writer = {
            let s = s.clone();
            tokio::spawn(async move {
                for i in 0..N {
                    s.append_event(link(i), T0 + i).await.unwrap();
                    if i % 200 == 199 {
                        s.flush().await.unwrap();
                    }
                }
            })
        };
        let mut seen = 0u64;
        while seen < N {
            for ev in s.events_after(seen, 64).await.unwrap() {
                assert_eq!(
                    ev.seq,
                    seen + 1,
                    "a follower at {seen} was handed {}",
                    ev.seq
                );
                assert!(
                    matches!(&ev.kind, EventKind::LinkUp { bind, .. } if *bind == format!("trx{seen}"))
                );
                seen = ev.seq;
            }
            tokio::task::yield_now().await;
        }
        writer.await.unwrap();
        assert!(s.stats().checkpoints >= 10);
        assert!(s.stats().event_journal_bytes > 0);
        // Trim the first thousand (past a day old, acked or not).
        assert_eq!(
            s.trim_events(T0 + 86_400_000 + 999, 0, 86_400_000)
                .await
                .unwrap(),
            1_000
        );
        assert_eq!(s.first_event_seq().await.unwrap(), Some(1_001));
    }
    let s = open(&db_path(&dir));
    assert_eq!(s.first_event_seq().await.unwrap(), Some(1_001));
    let all = all_events(&s).await;
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1_001..=N).collect::<Vec<_>>()
    );
    assert_eq!(s.append_event(link(N), T0 + N).await.unwrap(), N + 1);
}

/// Regression (CI at 585e63b: "18 flushes for 64 sends"): this test used
/// to count the flushes of a burst with syncs unspaced, so how many writes
/// shared one depended on how the two cores were scheduled. With
/// `flush_every` the count has a hard ceiling, one sync per interval plus
/// the first, whatever the scheduling; a group commit that made every
/// waiter sync would need 64 intervals, and fail the second bound. (That
/// one queued waiter covers all applied writes is checked exactly in
/// `store::commit`'s unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sends_shares_syncs_spaced_by_flush_every() {
    let dir = tempfile::tempdir().unwrap();
    let every = std::time::Duration::from_millis(500);
    let s = SledStore::open_with(
        db_path(&dir),
        StoreOptions {
            flush_every: Some(every),
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let before = s.flush_count();
    let started = smppgw::clock::now();
    let n = 64;
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let customer = format!("+4479111{i:05}");
            send(&s, out(SUPPORT, &customer, "alice", "burst"), T0 + i).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let flushes = s.flush_count() - before;
    let ceiling = 1 + (elapsed.as_millis() / every.as_millis()) as u64;
    assert!(
        (1..=ceiling).contains(&flushes),
        "{flushes} syncs in {elapsed:?} with one per {every:?} at most"
    );
    assert!(flushes < n / 4, "{flushes} syncs for {n} sends");
    assert_eq!(s.events_after(0, 1000).await.unwrap().len() as u64, n);
}

/// Idle binds poll the outbox every second; a claim that finds nothing
/// used to take a commit ticket of its own and so forced a flush each time.
#[tokio::test]
async fn a_call_that_writes_nothing_forces_no_flush() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    let claimed = s.claim_outbox("acme", 10, 60_000, T0).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let before = s.flush_count();
    for i in 0..20 {
        assert!(
            s.claim_outbox("acme", 10, 60_000, T0 + i)
                .await
                .unwrap()
                .is_empty()
        );
    }
    // A repeated client_ref reads the stored message and writes nothing.
    let mut again = out(SUPPORT, UK, "alice", "hi");
    again.client_ref = Some("same".into());
    let first = send(&s, again.clone(), T0).await;
    let after_first = s.flush_count();
    assert!(send(&s, again, T0).await.duplicate);
    assert_eq!(s.flush_count(), after_first);
    assert_eq!(after_first - before, 1, "only the new send flushed");
    assert_ne!(first.message, a.message);
}

// === reassembly, templates, opt-outs, retention ===

#[tokio::test]
async fn reassembly_parts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let key = b"acme/447624000111/+447911123456/ref:42".to_vec();
    {
        let s = open(&path);
        s.put_part(&key, 1, b"hello ", T0).await.unwrap();
        s.put_part(&key, 3, b"!", T0 + 5).await.unwrap();
        s.put_part(b"other", 1, b"x", T0 + 9).await.unwrap();
    }
    let s = open(&path);
    let keys = s.reassembly_keys().await.unwrap();
    assert!(keys.contains(&(key.clone(), T0)));
    assert_eq!(s.parts(&key).await.unwrap().len(), 2);
    let parts = s.take_parts(&key).await.unwrap();
    assert_eq!(
        parts,
        BTreeMap::from([(1, b"hello ".to_vec()), (3, b"!".to_vec())])
    );
    assert!(s.take_parts(&key).await.unwrap().is_empty());
    assert_eq!(s.parts(b"other").await.unwrap().len(), 1);
}

#[tokio::test]
async fn opted_out_customer_is_refused_until_start() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    let mut stop = inbound(SUPPORT, UK, "STOP");
    stop.opt = Some(OptChange::Out);
    s.record_inbound(stop, InboundPolicy::Ignore, T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        s.opt_out(SUPPORT, UK).await.unwrap().unwrap().since_ms,
        T0 + 1
    );
    assert!(matches!(
        all_events(&s).await.pop().unwrap().kind,
        EventKind::CustomerOptedOut { .. }
    ));
    assert_eq!(
        s.accept_send(out(SUPPORT, UK, "alice", "again"), T0 + 2)
            .await
            .unwrap(),
        Err(SendRefused::OptedOut { since_ms: T0 + 1 })
    );
    // Another sender may still text them.
    send(&s, out(SALES, UK, "bob", "sales"), T0 + 3).await;
    assert_eq!(
        s.opt_outs(SUPPORT, None, 10).await.unwrap().opt_outs.len(),
        1
    );
    assert!(
        s.opt_outs(SALES, None, 10)
            .await
            .unwrap()
            .opt_outs
            .is_empty()
    );
    let mut start = inbound(SUPPORT, UK, "START");
    start.opt = Some(OptChange::In);
    s.record_inbound(start, InboundPolicy::Ignore, T0 + 4)
        .await
        .unwrap();
    assert!(s.opt_out(SUPPORT, UK).await.unwrap().is_none());
    let again = send(&s, out(SUPPORT, UK, "alice", "welcome back"), T0 + 5).await;
    assert_eq!(again.conversation, a.conversation);
    assert!(s.set_opt_out(SALES, JP, T0).await.unwrap().since_ms == T0);
    assert!(s.clear_opt_out(SALES, JP).await.unwrap());
    assert!(!s.clear_opt_out(SALES, JP).await.unwrap());
}

/// Regression: `opt_outs` read every sender's opt-outs and answered all of a
/// service's in one line, so past ~12 000 of them the reply outgrew what the
/// CLI reads (1 MiB). A page now reads only its sender's, at most a limit.
#[tokio::test]
async fn opt_out_pages_list_one_senders_customers_once_in_order() {
    let s = SledStore::temporary().unwrap();
    let mut want = Vec::new();
    for i in 0..25u64 {
        let customer = format!("+4479111{:05}", (i * 7_919) % 100_000);
        s.set_opt_out(SUPPORT, &customer, T0 + i).await.unwrap();
        want.push(customer);
        // Another sender's, interleaved: never listed for SUPPORT.
        s.set_opt_out(SALES, &format!("+8190{i:08}"), T0 + i)
            .await
            .unwrap();
    }
    // Senders whose keys sort right before and after SUPPORT's.
    for other in [&SUPPORT[..6], &format!("{SUPPORT}9")] {
        s.set_opt_out(other, UK, T0).await.unwrap();
    }
    want.sort();
    for limit in [0, 1, 4, 25, 100] {
        let (mut got, mut after, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let page = s.opt_outs(SUPPORT, after.as_deref(), limit).await.unwrap();
            pages += 1;
            assert!(page.opt_outs.len() <= limit.max(1));
            assert!(page.opt_outs.iter().all(|o| o.sender == SUPPORT));
            got.extend(page.opt_outs.iter().map(|o| o.customer.clone()));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(got, want, "limit {limit}");
        assert_eq!(pages, want.len().div_ceil(limit.max(1)), "limit {limit}");
    }
    let first = s.opt_outs(SUPPORT, None, 1).await.unwrap();
    assert_eq!(first.opt_outs[0].since_ms, T0);
    let last = s
        .opt_outs(SUPPORT, want.last().map(String::as_str), 10)
        .await
        .unwrap();
    assert_eq!(last, OptOutPage::default());
}

fn system(
    customer: &str,
    conversation: Option<u64>,
    in_reply_to: Option<u64>,
    reason: SystemReason,
) -> SystemOutbound {
    SystemOutbound {
        service: "support".into(),
        sender: SUPPORT.into(),
        customer: customer.into(),
        text: "You will get no more texts. Text START to opt back in.".into(),
        encoding: "gsm7".into(),
        parts: 1,
        carrier: "acme".into(),
        conversation,
        in_reply_to,
        reason,
    }
}

/// Files `text` with its keyword change and returns (conversation, message).
async fn keyword_reply(
    s: &SledStore,
    text: &str,
    opt: Option<OptChange>,
    now: u64,
) -> (Option<u64>, Option<u64>) {
    let mut m = inbound(SUPPORT, UK, text);
    m.opt = opt;
    match s
        .record_inbound(m, InboundPolicy::Ignore, now)
        .await
        .unwrap()
    {
        InboundOutcome::Matched {
            conversation,
            message,
            ..
        } => (Some(conversation), Some(message)),
        other => (None, other_message(other)),
    }
}

fn other_message(o: InboundOutcome) -> Option<u64> {
    match o {
        InboundOutcome::ChatRequested { message, .. } => Some(message),
        _ => None,
    }
}

#[tokio::test]
async fn opt_out_confirmation_goes_to_the_opted_out_customer_once_and_keeps_the_owner() {
    let s = SledStore::temporary().unwrap();
    let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
    let (conv, stop) = keyword_reply(&s, "STOP", Some(OptChange::Out), T0 + 1).await;
    assert_eq!(conv, Some(a.conversation));
    let first = s
        .accept_system_send(
            system(UK, conv, stop, SystemReason::OptOutConfirmation),
            T0 + 2,
        )
        .await
        .unwrap()
        .expect("a confirmation is allowed to an opted-out customer");
    assert!(!first.duplicate);
    assert_eq!(first.conversation, a.conversation);
    let c = s.conversation(a.conversation).await.unwrap().unwrap();
    assert_eq!(c.owner, "alice", "the gateway took the conversation over");
    assert_eq!(c.state, ConversationState::Open);
    let m = s.message(first.message).await.unwrap().unwrap();
    assert_eq!(m.agent, None);
    assert_eq!(m.status, MessageStatus::Accepted);
    assert_eq!(kinds_of(&s, first.message).await, ["message_accepted"]);
    let accepted = all_events(&s).await.pop().unwrap();
    assert_eq!(accepted.owner.as_deref(), Some("alice"));
    let (_, msgs) = s.transcript(a.conversation).await.unwrap().unwrap();
    assert!(msgs.iter().any(|m| m.id == first.message));

    // A redelivered STOP (a new inbound message, same opt-out) gets none.
    let (_, stop2) = keyword_reply(&s, "STOP", Some(OptChange::Out), T0 + 3).await;
    assert_ne!(stop2, stop);
    let again = s
        .accept_system_send(
            system(UK, conv, stop2, SystemReason::OptOutConfirmation),
            T0 + 4,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
    let claimed = s.claim_outbox("acme", 10, 60_000, T0 + 5).await.unwrap();
    assert_eq!(
        claimed.iter().map(|i| i.message).collect::<Vec<_>>(),
        [a.message, first.message],
        "alice's text and one confirmation in the outbox"
    );
    assert_eq!(claimed[1].customer, UK);
    assert_eq!(claimed[1].sender, SUPPORT);

    // Agents are still refused; help is refused too.
    assert!(matches!(
        s.accept_send(out(SUPPORT, UK, "alice", "sure?"), T0 + 6)
            .await
            .unwrap(),
        Err(SendRefused::OptedOut { .. })
    ));
    assert_eq!(
        s.accept_system_send(system(UK, conv, stop2, SystemReason::Help), T0 + 7)
            .await
            .unwrap(),
        Err(SystemRefused::OptedOut { since_ms: T0 + 1 })
    );

    // START, then STOP again: a new opt-out, a new confirmation.
    keyword_reply(&s, "START", Some(OptChange::In), T0 + 8).await;
    assert_eq!(
        s.accept_system_send(
            system(UK, conv, None, SystemReason::OptOutConfirmation),
            T0 + 9
        )
        .await
        .unwrap(),
        Err(SystemRefused::NotOptedOut)
    );
    let (_, stop3) = keyword_reply(&s, "STOP", Some(OptChange::Out), T0 + 10).await;
    let second = s
        .accept_system_send(
            system(UK, conv, stop3, SystemReason::OptOutConfirmation),
            T0 + 11,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!second.duplicate);
    assert_ne!(second.message, first.message);
}

#[tokio::test]
async fn help_answer_is_stored_once_per_request_without_a_conversation_too() {
    let s = SledStore::temporary().unwrap();
    // No open conversation, Ignore policy: the answer gets one of its own.
    let (conv, help) = keyword_reply(&s, "HELP", None, T0).await;
    assert_eq!((conv, help), (None, None));
    let a = s
        .accept_system_send(system(UK, None, None, SystemReason::Help), T0 + 1)
        .await
        .unwrap()
        .unwrap();
    let c = s.conversation(a.conversation).await.unwrap().unwrap();
    assert_eq!(c.state, ConversationState::Ended);
    assert_eq!(c.owner, "");
    assert!(
        s.conversations(None, true, None, usize::MAX)
            .await
            .unwrap()
            .conversations
            .is_empty(),
        "nothing opened"
    );
    // A later agent send opens a conversation of its own as usual.
    let sent = send(&s, out(SUPPORT, UK, "bob", "hello"), T0 + 2).await;
    assert_ne!(sent.conversation, a.conversation);
    // HELP inside bob's chat: answered once per request message.
    let (conv, help) = keyword_reply(&s, "help", None, T0 + 3).await;
    assert_eq!(conv, Some(sent.conversation));
    let h1 = s
        .accept_system_send(system(UK, conv, help, SystemReason::Help), T0 + 4)
        .await
        .unwrap()
        .unwrap();
    let h2 = s
        .accept_system_send(system(UK, conv, help, SystemReason::Help), T0 + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h1.conversation, sent.conversation);
    assert!(!h1.duplicate && h2.duplicate);
    assert_eq!(h2.message, h1.message);
    let c = s.conversation(sent.conversation).await.unwrap().unwrap();
    assert_eq!(c.owner, "bob");
    // A stale conversation id falls back to the open one.
    let (_, help2) = keyword_reply(&s, "HELP", None, T0 + 6).await;
    let h3 = s
        .accept_system_send(
            system(UK, Some(a.conversation), help2, SystemReason::Help),
            T0 + 7,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h3.conversation, sent.conversation);
    let claimed = s.claim_outbox("acme", 10, 60_000, T0 + 8).await.unwrap();
    assert_eq!(
        claimed.len(),
        4,
        "the first answer, bob's send and two answers"
    );
}

#[tokio::test]
async fn templates_belong_to_their_agent() {
    let s = SledStore::temporary().unwrap();
    let t = NewTemplate {
        id: None,
        agent: "alice".into(),
        service: Some("support".into()),
        name: "hello".into(),
        text: "Hello, how can we help?".into(),
    };
    let a = s.put_template(t.clone(), 200, T0).await.unwrap().unwrap();
    let b = s
        .put_template(
            NewTemplate {
                name: "bye".into(),
                ..t.clone()
            },
            200,
            T0,
        )
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a.id, b.id);
    let stolen = NewTemplate {
        id: Some(a.id),
        agent: "bob".into(),
        ..t.clone()
    };
    assert!(s.put_template(stolen, 200, T0).await.unwrap().is_err());
    let edited = NewTemplate {
        id: Some(a.id),
        text: "Hi!".into(),
        ..t
    };
    assert_eq!(
        s.put_template(edited, 200, T0 + 1)
            .await
            .unwrap()
            .unwrap()
            .text,
        "Hi!"
    );
    assert_eq!(s.templates("alice").await.unwrap().len(), 2);
    assert!(s.templates("bob").await.unwrap().is_empty());
    assert!(!s.delete_template(a.id, "bob").await.unwrap());
    assert!(s.delete_template(a.id, "alice").await.unwrap());
    assert!(s.template(a.id).await.unwrap().is_none());
}

/// An agent keeps at most the limit of templates: one more is refused, an
/// edit is not, a delete makes room, and the limit is each agent's own.
#[tokio::test]
async fn an_agent_keeps_at_most_its_limit_of_templates() {
    let s = SledStore::temporary().unwrap();
    let new = new_template;
    let a = s
        .put_template(new("alice", "a"), 2, T0)
        .await
        .unwrap()
        .unwrap();
    s.put_template(new("alice", "b"), 2, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.put_template(new("alice", "c"), 2, T0).await.unwrap(),
        Err(TemplateRefused::TooMany { max: 2 })
    );
    // An agent whose name extends alice's is counted apart.
    s.put_template(new("alice2", "x"), 2, T0)
        .await
        .unwrap()
        .unwrap();
    let edit = NewTemplate {
        id: Some(a.id),
        ..new("alice", "a, edited")
    };
    s.put_template(edit, 2, T0 + 1).await.unwrap().unwrap();
    assert!(s.delete_template(a.id, "alice").await.unwrap());
    s.put_template(new("alice", "c"), 2, T0 + 2)
        .await
        .unwrap()
        .unwrap();
    let names: Vec<String> = s
        .templates("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["b", "c"]);
    s.verify().unwrap();
}

#[tokio::test]
async fn ended_conversations_are_purged_after_retention() {
    let s = SledStore::temporary().unwrap();
    let mut n = out(SUPPORT, UK, "alice", "hi");
    n.client_ref = Some("r1".into());
    let a = send(&s, n.clone(), T0).await;
    s.record_submit(a.message, 0, 1, Ok("P1".into()), T0)
        .await
        .unwrap();
    let keep = send(&s, out(SUPPORT, JP, "alice", "still open"), T0).await;
    s.end_chat(a.conversation, "alice", T0 + 10)
        .await
        .unwrap()
        .unwrap();
    let day = 86_400_000;
    assert_eq!(s.purge_ended(T0 + day, day).await.unwrap().conversations, 0);
    let r = s.purge_ended(T0 + 10 + day, day).await.unwrap();
    assert_eq!((r.conversations, r.messages), (1, 1));
    assert!(s.transcript(a.conversation).await.unwrap().is_none());
    assert!(s.message(a.message).await.unwrap().is_none());
    assert!(s.transcript(keep.conversation).await.unwrap().is_some());
    // Its carrier id and client_ref are gone with it.
    let r = s
        .record_receipt("acme", "P1", receipt(ReceiptState::Delivered, None), T0)
        .await
        .unwrap();
    assert_eq!(r, ReceiptOutcome::Held);
    assert!(!send(&s, n, T0 + 2 * day).await.duplicate);
    s.verify().unwrap();
}

/// Counters are no longer stored with every call, only when a call deletes
/// from their tree: deleting the newest conversation, message, events and
/// template, then reopening, must still never hand out an id again.
#[tokio::test]
async fn ids_are_never_reused_after_the_newest_are_deleted_and_the_store_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let hello = || new_template("alice", "hello");
    let (old, old_template, old_seq) = {
        let s = open(&db_path(&dir));
        let a = send(&s, out(SUPPORT, UK, "alice", "hi"), T0).await;
        s.end_chat(a.conversation, "alice", T0 + 10)
            .await
            .unwrap()
            .unwrap();
        let t = s.put_template(hello(), 200, T0).await.unwrap().unwrap();
        let seq = s.events_after(0, 100).await.unwrap().last().unwrap().seq;
        // The newest of everything goes.
        assert!(s.delete_template(t.id, "alice").await.unwrap());
        let r = s.purge_ended(T0 + 10 + day, day).await.unwrap();
        assert_eq!((r.conversations, r.messages), (1, 1));
        assert!(s.trim_events(T0 + 2 * day, 0, day).await.unwrap() > 0);
        assert_eq!(s.first_event_seq().await.unwrap(), None);
        s.flush().await.unwrap();
        (a, t.id, seq)
    };
    let s = open(&db_path(&dir));
    s.recover(T0 + 2 * day).await.unwrap();
    let b = send(&s, out(SUPPORT, UK, "alice", "again"), T0 + 2 * day).await;
    assert!(b.conversation > old.conversation, "{b:?} after {old:?}");
    assert!(b.message > old.message, "{b:?} after {old:?}");
    let first = s.events_after(0, 10).await.unwrap()[0].seq;
    assert!(first > old_seq, "event seq {first} reused (had {old_seq})");
    let t = s
        .put_template(hello(), 200, T0 + 2 * day)
        .await
        .unwrap()
        .unwrap();
    assert!(t.id > old_template, "template id {} reused", t.id);
}

/// The child of [`acknowledged_commits_survive_a_crash`]: run only by it.
/// Sends and submits in quick succession on the store at
/// `SMPPGW_CRASH_STORE`, printing each acknowledged step, while checkpoints
/// run back to back; then aborts (no destructor runs, so whatever came
/// after the last checkpoint is only in the log).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of acknowledged_commits_survive_a_crash"]
async fn crash_child() {
    use std::io::Write;
    let path = PathBuf::from(std::env::var("SMPPGW_CRASH_STORE").unwrap());
    let s = open(&path);
    let mut out = std::io::stdout();
    // Checkpoints run alongside the commits: the log is cut and the overlay
    // applied to sled while sends and submits go on.
    let checkpoints = {
        let s = s.clone();
        tokio::spawn(async move {
            loop {
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(3)).await;
            }
        })
    };
    for i in 0..300u64 {
        let customer = format!("+4479111{i:05}");
        let a = send(&s, out_msg(&customer, i), T0 + i).await;
        if i % 2 == 0 {
            s.record_submit(a.message, 0, 1, Ok(format!("C{i}")), T0 + i)
                .await
                .unwrap();
            writeln!(out, "\nACK SUBMITTED {}", a.message).unwrap();
        } else {
            writeln!(out, "\nACK ACCEPTED {}", a.message).unwrap();
        }
        out.flush().unwrap();
    }
    assert!(!checkpoints.is_finished(), "checkpoints kept succeeding");
    std::process::abort();
}

fn out_msg(customer: &str, i: u64) -> NewOutbound {
    let mut n = out(SUPPORT, customer, "alice", "crash");
    n.client_ref = Some(format!("crash-{i}"));
    n
}

/// Every commit a call acknowledged is durable: a child process commits
/// with checkpoints running alongside and aborts; the store it leaves (sled
/// as of some checkpoint, plus the log after its cut) has every
/// acknowledged message.
#[test]
fn acknowledged_commits_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SMPPGW_CRASH_STORE", &path)
        .output()
        .unwrap();
    assert!(!child.status.success(), "the child aborts");
    let text = String::from_utf8_lossy(&child.stdout);
    let acked: Vec<(&str, u64)> = text
        .lines()
        .filter_map(|l| {
            let (kind, id) = l.strip_prefix("ACK ")?.split_once(' ')?;
            Some((kind, id.parse().ok()?))
        })
        .collect();
    assert_eq!(acked.len(), 300, "{text}");
    assert!(
        path.join("wal").read_dir().unwrap().count() >= 1,
        "the log is there to replay"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = open(&path);
        for (kind, id) in acked {
            let m = s
                .message(id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("message {id} lost"));
            let want = if kind == "SUBMITTED" {
                MessageStatus::Submitted
            } else {
                MessageStatus::Accepted
            };
            assert_eq!(m.status, want, "message {id}");
        }
        // The counts and the lease index came back with the writes.
        s.verify().unwrap();
        // New ids continue after the replayed ones.
        let next = send(&s, out(SUPPORT, UK, "alice", "after"), T0 + 1_000).await;
        assert!(next.message > 300, "{next:?}");
        // A receipt for a replayed submit still correlates.
        let r = s
            .record_receipt(
                "acme",
                "C0",
                receipt(ReceiptState::Delivered, None),
                T0 + 2_000,
            )
            .await
            .unwrap();
        assert!(matches!(r, ReceiptOutcome::Applied { .. }), "{r:?}");
    });
}

// === model test with reboots ===

#[derive(Debug, Clone)]
enum Op {
    /// Apply the overlay to sled and drop the log it covered (as shutdown
    /// and the background trigger do); later reads must not change.
    Checkpoint,
    Send {
        sender: usize,
        customer: usize,
        agent: usize,
        client_ref: Option<u8>,
    },
    Inbound {
        sender: usize,
        customer: usize,
        new_chat: bool,
    },
    End {
        pick: usize,
    },
    Claim {
        max: usize,
        /// As the binds claim: a message waits while an earlier one of its
        /// conversation is leased.
        in_order: bool,
    },
    SubmitOk {
        pick: usize,
    },
    Receipt {
        pick: usize,
        delivered: bool,
    },
    Release {
        pick: usize,
        unanswered: bool,
    },
    /// Time jumps past every lease.
    Lapse,
    Reboot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..2usize, 0..2usize, proptest::option::of(0..3u8))
            .prop_map(|(sender, customer, agent, client_ref)| Op::Send { sender, customer, agent, client_ref }),
        2 => (0..2usize, 0..2usize, any::<bool>()).prop_map(|(sender, customer, new_chat)| Op::Inbound { sender, customer, new_chat }),
        1 => any::<usize>().prop_map(|pick| Op::End { pick }),
        2 => (1..3usize, any::<bool>()).prop_map(|(max, in_order)| Op::Claim { max, in_order }),
        2 => any::<usize>().prop_map(|pick| Op::SubmitOk { pick }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, delivered)| Op::Receipt { pick, delivered }),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(pick, unanswered)| Op::Release { pick, unanswered }),
        1 => Just(Op::Lapse),
        1 => Just(Op::Reboot),
        1 => Just(Op::Checkpoint),
    ]
}

#[derive(Debug, Clone)]
struct MMsg {
    conversation: u64,
    status: MessageStatus,
    dup: bool,
    carrier_id: Option<String>,
    submitted_ms: Option<u64>,
}

#[derive(Debug, Default)]
struct Model {
    open: HashMap<(usize, usize), u64>,
    convs: BTreeMap<u64, (ConversationState, String)>,
    msgs: BTreeMap<u64, MMsg>,
    idem: HashMap<(usize, u8), u64>,
    /// message → (lease until, possible_duplicate)
    outbox: BTreeMap<u64, (Option<u64>, bool)>,
    events: u64,
}

const SENDERS: [&str; 2] = [SUPPORT, SALES];
const CUSTOMERS: [&str; 2] = [UK, JP];
const AGENTS: [&str; 2] = ["alice", "bob"];
const LEASE: u64 = 3_600_000;

async fn run_model(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut s = open(&path);
    let mut m = Model::default();
    let mut now = T0;
    let mut next_carrier_id = 0u32;
    for op in ops {
        now += 1;
        match op {
            Op::Send {
                sender,
                customer,
                agent,
                client_ref,
            } => {
                let mut n = out(SENDERS[sender], CUSTOMERS[customer], AGENTS[agent], "text");
                n.client_ref = client_ref.map(|r| format!("ref{r}"));
                let got = send(&s, n, now).await;
                if let Some(&mid) = client_ref.and_then(|r| m.idem.get(&(agent, r))) {
                    assert!(got.duplicate);
                    assert_eq!(got.message, mid);
                    continue;
                }
                assert!(!got.duplicate);
                match m.open.get(&(sender, customer)) {
                    Some(&cid) => {
                        assert_eq!(got.conversation, cid);
                        let c = m.convs.get_mut(&cid).unwrap();
                        if c.1 != AGENTS[agent] || c.0 == ConversationState::Requested {
                            *c = (ConversationState::Open, AGENTS[agent].to_string());
                            m.events += 1;
                        }
                    }
                    None => {
                        assert!(!m.convs.contains_key(&got.conversation));
                        m.open.insert((sender, customer), got.conversation);
                        m.convs.insert(
                            got.conversation,
                            (ConversationState::Open, AGENTS[agent].into()),
                        );
                    }
                }
                assert!(!m.msgs.contains_key(&got.message));
                m.msgs.insert(
                    got.message,
                    MMsg {
                        conversation: got.conversation,
                        status: MessageStatus::Accepted,
                        dup: false,
                        carrier_id: None,
                        submitted_ms: None,
                    },
                );
                m.outbox.insert(got.message, (None, false));
                if let Some(r) = client_ref {
                    m.idem.insert((agent, r), got.message);
                }
                m.events += 1;
            }
            Op::Inbound {
                sender,
                customer,
                new_chat,
            } => {
                let policy = if new_chat {
                    InboundPolicy::NewChat
                } else {
                    InboundPolicy::Ignore
                };
                let got = s
                    .record_inbound(
                        inbound(SENDERS[sender], CUSTOMERS[customer], "reply"),
                        policy,
                        now,
                    )
                    .await
                    .unwrap();
                match (m.open.get(&(sender, customer)), got) {
                    (Some(&cid), InboundOutcome::Matched { conversation, .. }) => {
                        assert_eq!(conversation, cid);
                        m.events += 1;
                    }
                    (None, InboundOutcome::ChatRequested { conversation, .. }) if new_chat => {
                        m.open.insert((sender, customer), conversation);
                        m.convs
                            .insert(conversation, (ConversationState::Requested, String::new()));
                        m.events += 1;
                    }
                    (None, InboundOutcome::Ignored) if !new_chat => {}
                    (expected, got) => panic!("model {expected:?}, store {got:?}"),
                }
            }
            Op::End { pick } => {
                if m.convs.is_empty() {
                    continue;
                }
                let cid = *m.convs.keys().nth(pick % m.convs.len()).unwrap();
                let got = s.end_chat(cid, "alice", now).await.unwrap();
                let c = m.convs.get_mut(&cid).unwrap();
                if c.0 == ConversationState::Ended {
                    assert_eq!(got, Err(ChatRefused::Ended));
                } else {
                    assert!(got.is_ok());
                    c.0 = ConversationState::Ended;
                    m.open.retain(|_, v| *v != cid);
                    m.events += 1;
                }
            }
            Op::Claim { max, in_order } => {
                let got = if in_order {
                    s.claim_outbox_in_order("acme", max, LEASE, now).await
                } else {
                    s.claim_outbox("acme", max, LEASE, now).await
                };
                let got = got.unwrap();
                let mut busy = std::collections::HashSet::new();
                let expect: Vec<(u64, bool)> = m
                    .outbox
                    .iter()
                    .filter(|(id, (lease, _))| {
                        let conversation = m.msgs[id].conversation;
                        if lease.is_some_and(|t| t > now) {
                            busy.insert(conversation);
                            return false;
                        }
                        !(in_order && busy.contains(&conversation))
                    })
                    .take(max)
                    .map(|(id, (lease, dup))| (*id, *dup || lease.is_some()))
                    .collect();
                let got = flagged(&got);
                assert_eq!(got, expect);
                for (id, dup) in got {
                    *m.outbox.get_mut(&id).unwrap() = (Some(now + LEASE), dup);
                    if dup {
                        m.msgs.get_mut(&id).unwrap().dup = true;
                    }
                }
            }
            Op::Release { pick, unanswered } => {
                let leased: Vec<u64> = m
                    .outbox
                    .iter()
                    .filter(|(_, v)| v.0.is_some())
                    .map(|(k, _)| *k)
                    .collect();
                if leased.is_empty() {
                    continue;
                }
                let mid = leased[pick % leased.len()];
                let ok = if unanswered {
                    matches!(
                        s.release_unanswered(mid, u32::MAX, now, 0).await.unwrap(),
                        Unanswered::Released { .. }
                    )
                } else {
                    s.release(mid).await.unwrap()
                };
                assert!(ok);
                let e = m.outbox.get_mut(&mid).unwrap();
                e.0 = None;
                if unanswered {
                    e.1 = true;
                    m.msgs.get_mut(&mid).unwrap().dup = true;
                }
            }
            Op::Lapse => now += 2 * LEASE,
            Op::SubmitOk { pick } => {
                let leased: Vec<u64> = m
                    .outbox
                    .iter()
                    .filter(|(_, v)| v.0.is_some())
                    .map(|(k, _)| *k)
                    .collect();
                if leased.is_empty() {
                    continue;
                }
                let mid = leased[pick % leased.len()];
                next_carrier_id += 1;
                let cid = format!("{next_carrier_id:X}");
                let got = s
                    .record_submit(mid, 0, 1, Ok(cid.clone()), now)
                    .await
                    .unwrap();
                assert_eq!(
                    got,
                    SubmitOutcome::Done {
                        status: MessageStatus::Submitted,
                        receipts_applied: 0
                    }
                );
                m.outbox.remove(&mid);
                let mm = m.msgs.get_mut(&mid).unwrap();
                mm.status = MessageStatus::Submitted;
                mm.carrier_id = Some(cid);
                mm.submitted_ms = Some(now);
                m.events += 1;
            }
            Op::Receipt { pick, delivered } => {
                let submitted: Vec<u64> = m
                    .msgs
                    .iter()
                    .filter(|(_, v)| v.carrier_id.is_some())
                    .map(|(k, _)| *k)
                    .collect();
                if submitted.is_empty() {
                    continue;
                }
                let mid = submitted[pick % submitted.len()];
                let mm = m.msgs.get_mut(&mid).unwrap();
                let state = if delivered {
                    ReceiptState::Delivered
                } else {
                    ReceiptState::Rejected
                };
                let got = s
                    .record_receipt(
                        "acme",
                        mm.carrier_id.as_deref().unwrap(),
                        receipt(state, None),
                        now,
                    )
                    .await
                    .unwrap();
                if mm.status == MessageStatus::Submitted {
                    mm.status = if delivered {
                        MessageStatus::Delivered
                    } else {
                        MessageStatus::Failed
                    };
                    assert_eq!(
                        got,
                        ReceiptOutcome::Applied {
                            message: mid,
                            status: mm.status,
                            submitted_ms: mm.submitted_ms,
                        }
                    );
                    m.events += 1;
                } else {
                    assert_eq!(got, ReceiptOutcome::Duplicate);
                }
            }
            Op::Checkpoint => s.flush().await.unwrap(),
            Op::Reboot => {
                drop(s);
                s = open(&path);
                let r = s.recover(now).await.unwrap();
                let leased = m.outbox.values().filter(|v| v.0.is_some()).count();
                assert_eq!((r.released_leases, r.outbox), (leased, m.outbox.len()));
                for (id, v) in m.outbox.iter_mut() {
                    if v.0.is_some() {
                        *v = (None, true);
                        m.msgs.get_mut(id).unwrap().dup = true;
                    }
                }
            }
        }
        // What commits keep beside the trees (the outbox count, the lease
        // index) matches the trees after every step.
        assert_eq!(s.outbox_depth(), m.outbox.len() as u64);
        s.verify().unwrap();
    }
    // Final comparison, after one more reboot.
    drop(s);
    let s = open(&path);
    for (id, mm) in &m.msgs {
        let got = s.message(*id).await.unwrap().unwrap();
        assert_eq!(got.status, mm.status, "message {id}");
        assert_eq!(got.possible_duplicate, mm.dup, "message {id}");
    }
    for (id, (state, owner)) in &m.convs {
        let c = s.conversation(*id).await.unwrap().unwrap();
        assert_eq!((&c.state, &c.owner), (state, owner), "conversation {id}");
    }
    let seqs: Vec<u64> = all_events(&s).await.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=m.events).collect::<Vec<_>>());
    let open_count = s
        .conversations(None, true, None, usize::MAX)
        .await
        .unwrap()
        .conversations
        .len();
    assert_eq!(open_count, m.open.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model_across_reboots(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run_model(ops));
    }
}

/// Accepts `n` sends to distinct customers concurrently (one commit group
/// covers many), returning their message ids.
async fn accept_many(s: &SledStore, n: u64, tag: &str) -> Vec<u64> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = s.clone();
        let customer = format!("+4479112{i:05}");
        let text = format!("{tag} {i}");
        tasks.push(tokio::spawn(async move {
            send(&s, out(SUPPORT, &customer, "alice", &text), T0 + i)
                .await
                .message
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids
}

/// A checkpoint hands the overlay to sled and empties the log: afterwards
/// the stats show no overlay and an empty log, the log directory holds one
/// empty file, and a reopened store (replaying nothing) has every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_moves_committed_writes_into_sled_and_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let s = open(&path);
    let ids = accept_many(&s, 50, "ckpt").await;
    let before = s.stats();
    assert!(
        before.overlay_bytes > 0 && before.log_bytes > 0,
        "{before:?}"
    );
    assert_eq!(before.checkpoints, 0);
    s.flush().await.unwrap();
    let after = s.stats();
    assert_eq!(
        (after.overlay_bytes, after.log_bytes, after.checkpoints),
        (0, 0, 1),
        "{after:?}"
    );
    // What is left is segments never written to: the one after the cut,
    // and maybe the next one, prepared (zero-filled) ahead of use.
    let files: Vec<Vec<u8>> = std::fs::read_dir(path.join("wal"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        (1..=2).contains(&files.len()) && files.iter().flatten().all(|&b| b == 0),
        "only unwritten segments left: {} files",
        files.len()
    );
    // Reads after the checkpoint come from sled.
    for id in &ids {
        assert!(s.message(*id).await.unwrap().is_some(), "message {id}");
    }
    drop(s);
    let s = open(&path);
    for id in &ids {
        let m = s.message(*id).await.unwrap().unwrap();
        assert_eq!(m.status, MessageStatus::Accepted, "message {id}");
    }
    assert_eq!(s.outbox_depth(), 50);
}

/// Regression (found benchmarking the overlay): a drained backlog left a
/// delete in the overlay for every outbox entry sled held, and each claim's
/// outbox scan walked past all of them, so draining 20 000 messages slowed
/// to a third. A checkpoint every 1 024 such deletes kept the walk short
/// (60-65 checkpoints per 20 000); now each claim starts past the keys
/// sent before it, so the drain needs no checkpoint of its own: every
/// message is claimed once, in accept order, with no checkpoint after the
/// one that took the backlog into sled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpointed_backlog_drains_in_order_with_no_checkpoint_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let mut ids = accept_many(&s, 1_100, "drain").await;
    ids.sort_unstable(); // accept order
    s.flush().await.unwrap();
    assert_eq!(s.stats().checkpoints, 1);
    let mut claimed = Vec::new();
    while claimed.len() < ids.len() {
        let items = s.claim_outbox("acme", 200, 60_000, T0).await.unwrap();
        assert!(
            !items.is_empty(),
            "claimed {} of {}",
            claimed.len(),
            ids.len()
        );
        claimed.extend(items.iter().map(|i| i.message));
        s.record_submits(submitted_ok(&items, "X"), T0 + 10)
            .await
            .unwrap();
    }
    assert_eq!(claimed, ids);
    assert!(
        s.claim_outbox("acme", 200, 60_000, T0)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.outbox_depth(), 0);
    assert_eq!(s.stats().checkpoints, 1, "{:?}", s.stats());
}

/// A submit OK for each claimed single-part message, carrier id
/// `<prefix><message>`.
fn submitted_ok(items: &[OutboxItem], prefix: &str) -> Vec<SubmitRecord> {
    items
        .iter()
        .map(|i| SubmitRecord {
            message: i.message,
            part: 0,
            total_parts: 1,
            result: Ok(format!("{prefix}{}", i.message)),
        })
        .collect()
}

/// Takes every outbox message through claim, submit OK (carrier id
/// `C<message>`) and a delivered receipt.
async fn deliver_all(s: &SledStore, checkpoint_between_steps: bool) {
    let step = || async {
        if checkpoint_between_steps {
            s.flush().await.unwrap();
        }
    };
    step().await;
    let items = s.claim_outbox("acme", 1_000, 60_000, T0).await.unwrap();
    step().await;
    s.record_submits(submitted_ok(&items, "C"), T0 + 10)
        .await
        .unwrap();
    step().await;
    for i in &items {
        s.record_receipt(
            "acme",
            &format!("C{}", i.message),
            receipt(ReceiptState::Delivered, None),
            T0 + 20,
        )
        .await
        .unwrap();
    }
    s.flush().await.unwrap();
}

/// `checkpoint_writes` counts what sled was given: a message whose whole
/// life (outbox entry, lease, submit correlation, receipt wait) falls
/// between two checkpoints gives sled only what outlives it, while the same
/// messages checkpointed at each step give sled each short-lived key twice
/// (written, then deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_keys_reach_sled_only_when_a_checkpoint_falls_inside_their_life() {
    const N: u64 = 50;
    let mut writes = Vec::new();
    for between in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let s = open(&db_path(&dir));
        accept_many(&s, N, "life").await;
        deliver_all(&s, between).await;
        assert_eq!(s.outbox_depth(), 0);
        let st = s.stats();
        assert!(st.checkpoints >= 1, "{st:?}");
        writes.push(st.checkpoint_writes);
    }
    let (whole, stepped) = (writes[0], writes[1]);
    // What outlives a delivered message: its conversation, the conversation
    // index, the message and its carrier id, and a few counters.
    assert!(
        (4 * N..=4 * N + 20).contains(&whole),
        "{whole} writes for {N} messages delivered between two checkpoints"
    );
    // At least the outbox entries and the leases, each written and deleted.
    assert!(
        stepped >= whole + 4 * N,
        "{stepped} writes with a checkpoint at each step, {whole} without"
    );
}

/// A carrier silent on receipts, or flooding receipts for ids never
/// submitted, makes thousands due at once: `expire_pending` takes at most
/// `EXPIRE_CHUNK` of them per call (one transaction: sends and receipts
/// commit between the calls), the receipt waits first, and says when more
/// are due; the calls together expire every one exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_goes_a_chunk_per_transaction_and_reports_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let waits = EXPIRE_CHUNK as u64 + 300;
    accept_many(&s, waits, "silent").await;
    loop {
        let items = s.claim_outbox("acme", 1_000, 60_000, T0).await.unwrap();
        if items.is_empty() {
            break;
        }
        s.record_submits(submitted_ok(&items, "W"), T0 + 10)
            .await
            .unwrap();
    }
    for i in 0..500 {
        let r = delivered(&s, &format!("never-{i}"), T0 + 10).await;
        assert_eq!(r, ReceiptOutcome::Held);
    }
    let later = T0 + 1_000_000;
    let first = s.expire_pending(later, 1_000, 1_000).await.unwrap();
    assert_eq!(
        (first.no_receipt, first.held_dropped, first.more),
        (EXPIRE_CHUNK, 0, true)
    );
    let second = s.expire_pending(later, 1_000, 1_000).await.unwrap();
    assert_eq!(
        (second.no_receipt, second.held_dropped, second.more),
        (300, 500, false)
    );
    let third = s.expire_pending(later, 1_000, 1_000).await.unwrap();
    assert_eq!(third, ExpireReport::default());
    s.verify().unwrap();
    let rec = s.recover(later).await.unwrap();
    assert_eq!((rec.awaiting_receipts, rec.held_receipts), (0, 0));
}

/// Retention reads the `ended` index a chunk at a time (it read every
/// ended conversation past retention into one list first), and still
/// purges them all when there are more than a chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_more_than_a_chunk_of_ended_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let n = EXPIRE_CHUNK as u64 + 20;
    for mid in accept_many(&s, n, "old").await {
        let conv = s.message(mid).await.unwrap().unwrap().conversation;
        s.end_chat(conv, "alice", T0 + 10).await.unwrap().unwrap();
    }
    let day = 86_400_000;
    let r = s.purge_ended(T0 + 10 + day, day).await.unwrap();
    assert_eq!((r.conversations, r.messages), (n as usize, n as usize));
    s.verify().unwrap();
    assert_eq!(
        s.purge_ended(T0 + 20 + day, day)
            .await
            .unwrap()
            .conversations,
        0
    );
}

/// A transcript read a page at a time: the newest `limit` first, each page
/// oldest first, `older` leading to the page before until it is `None`;
/// the pages together are the whole transcript. A `before` of another
/// conversation lists nothing; a `limit` of 0 lists one.
#[tokio::test]
async fn a_transcript_reads_a_page_at_a_time_from_the_newest() {
    let s = SledStore::temporary().unwrap();
    let first = send(&s, out(SUPPORT, UK, "alice", "m0"), T0).await;
    for i in 1..7 {
        send(&s, out(SUPPORT, UK, "alice", &format!("m{i}")), T0 + i).await;
    }
    let other = send(&s, out(SUPPORT, JP, "alice", "elsewhere"), T0).await;
    let conv = first.conversation;
    let (_, all) = s.transcript(conv).await.unwrap().unwrap();
    let texts =
        |msgs: &[smppgw::model::Message]| msgs.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
    let (mut pages, mut before) = (Vec::new(), None);
    loop {
        let page = s.transcript_page(conv, before, 3).await.unwrap().unwrap();
        assert_eq!(page.conversation.id, conv);
        pages.push(texts(&page.messages));
        match page.older {
            Some(o) => {
                assert_eq!(Some(o), page.messages.first().map(|m| m.id));
                before = Some(o);
            }
            None => break,
        }
    }
    assert_eq!(
        pages,
        [vec!["m4", "m5", "m6"], vec!["m1", "m2", "m3"], vec!["m0"]]
    );
    // Oldest page first, they are the whole transcript.
    pages.reverse();
    assert_eq!(pages.concat(), texts(&all));
    let foreign = s
        .transcript_page(conv, Some(other.message), 3)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((foreign.messages.len(), foreign.older), (0, None));
    let one = s.transcript_page(conv, None, 0).await.unwrap().unwrap();
    assert_eq!(texts(&one.messages), ["m6"]);
    assert!(s.transcript_page(999_999, None, 3).await.unwrap().is_none());
}

/// A conversation of more messages than one chunk goes in several
/// transactions, all of it, and is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_purges_a_conversation_longer_than_a_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&db_path(&dir));
    let n = EXPIRE_CHUNK as u64 + 7;
    let mut conv = None;
    for i in 0..n {
        let a = send(&s, out(SUPPORT, UK, "alice", &format!("m{i}")), T0 + i).await;
        conv = Some(a.conversation);
    }
    let conv = conv.unwrap();
    s.end_chat(conv, "alice", T0 + n).await.unwrap().unwrap();
    let day = 86_400_000;
    let r = s.purge_ended(T0 + n + day, day).await.unwrap();
    assert_eq!((r.conversations, r.messages), (1, n as usize));
    assert!(s.transcript(conv).await.unwrap().is_none());
    s.verify().unwrap();
}
