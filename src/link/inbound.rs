//! The receive path: every `deliver_sm` / `data_sm` of a receiving bind is
//! a delivery receipt (→ `record_receipts`) or a customer's text (→
//! decoded, numbers normalised, matched to its service, multi-part parts
//! persisted until complete, then `record_inbound`). The bind's worker
//! takes every frame already queued as one batch: texts are filed one by
//! one in arrival order, the batch's receipts in one store write. A PDU is
//! answered only after the store call returned: `ESME_ROK` once stored,
//! `ESME_RX_T_APPN` when the store failed (the SMSC retries; a failed
//! receipt write refuses every receipt of the batch), never an ack for
//! something not stored.
//!
//! Also the periodic sweeps: multi-part replies past the reassembly timeout
//! are filed with what arrived (marked incomplete), and overdue receipts
//! turn messages `unknown` ([`expire_receipts`]).
//!
//! Keyword replies: a STOP/START keyword is recorded with the reply
//! (`InboundMessage::opt`; the store sets or clears the opt-out). Once
//! the reply is filed, the service's `optout_confirmation` (after an
//! opt-out) or `help_text` (after a help keyword) is stored for sending
//! with `Store::accept_system_send`: into the reply's conversation without
//! taking it over, a confirmation once per opt-out (a redelivered STOP gets
//! none), and the outbox pump sends it at its next poll.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock;
use crate::config::{CarrierConfig, Config, DataCoding0, Inbound, ServiceConfig};
use crate::dlr::{self, DeliveryState, IdFormat};
use crate::metrics::ReplyOutcome;
use crate::model::{ReceiptState, ReceiptUpdate};
use crate::optout::{self, Keyword};
use crate::pdu::{CommandStatus, Pdu, TlvTag, Tlvs};
use crate::session::driver::Command;
use crate::session::machine::DeliverToken;
use crate::store::{
    ExpireReport, InboundMessage, InboundOutcome, InboundPolicy, OptChange, ReceiptOutcome,
    ReceiptRecord, Store, StoreResult, SystemOutbound, SystemReason,
};
use crate::text;

use super::outbox::wire_number;
use super::pool::LinkOptions;

/// What one incoming PDU became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// A receipt, applied or held; `fallback` says which id candidate
    /// matched (`Some(0)`: the normal form).
    Receipt {
        /// What the store did.
        outcome: ReceiptOutcome,
        /// Index of the candidate that matched.
        fallback: Option<usize>,
    },
    /// A receipt without an id or state: acknowledged and counted.
    UnmatchableReceipt,
    /// A customer's text, filed.
    Reply(InboundOutcome),
    /// One part of a multi-part text, stored; the rest is awaited.
    PartStored {
        /// Parts stored so far.
        have: usize,
        /// Parts in all.
        total: u8,
    },
    /// Sent to a number no service uses: logged at warn, counted, acknowledged.
    UnknownDestination,
    /// Not a deliver_sm/data_sm (or unreadable): answered with this status.
    Rejected(CommandStatus),
}

// === receipts ===

/// Every form of a receipt id worth looking up, the carrier's normal form
/// first: the other-base readings come after, for a carrier whose
/// response and receipt disagree on the base.
pub fn id_candidates(raw: &str, fmt: IdFormat) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    add(dlr::normalize_id(raw, fmt));
    let as_dec = dlr::normalize_id(raw, IdFormat::Decimal);
    let as_hex = dlr::normalize_id(raw, IdFormat::Hex);
    add(as_dec.clone());
    add(as_hex.clone());
    add(dlr::normalize_id(&as_dec, IdFormat::Auto));
    add(dlr::normalize_id(&as_hex, IdFormat::Auto));
    add(dlr::normalize_id(raw, IdFormat::Raw));
    out
}

/// The store's reading of a receipt state.
pub fn receipt_state(s: DeliveryState) -> ReceiptState {
    match s {
        DeliveryState::Scheduled | DeliveryState::Enroute => ReceiptState::Enroute,
        DeliveryState::Delivered => ReceiptState::Delivered,
        DeliveryState::Expired => ReceiptState::Expired,
        DeliveryState::Deleted => ReceiptState::Deleted,
        DeliveryState::Undeliverable | DeliveryState::Failed => ReceiptState::Undeliverable,
        DeliveryState::Accepted => ReceiptState::Accepted,
        DeliveryState::Unknown => ReceiptState::Unknown,
        DeliveryState::Rejected | DeliveryState::Skipped => ReceiptState::Rejected,
    }
}

fn receipt_label(s: ReceiptState) -> &'static str {
    match s {
        ReceiptState::Enroute => "enroute",
        ReceiptState::Accepted => "accepted",
        ReceiptState::Delivered => "delivered",
        ReceiptState::Expired => "expired",
        ReceiptState::Deleted => "deleted",
        ReceiptState::Undeliverable => "undeliverable",
        ReceiptState::Rejected => "rejected",
        ReceiptState::Unknown => "unknown",
    }
}

// === replies ===

/// The encoding name of an incoming text.
fn encoding_name(dcs: u8, d0: DataCoding0) -> &'static str {
    match dcs {
        0 => match d0 {
            DataCoding0::Gsm => "gsm7",
            DataCoding0::GsmPacked => "gsm7_packed",
            DataCoding0::Latin1 => "latin1",
            DataCoding0::Ascii => "ia5",
        },
        1 => "ia5",
        3 => "latin1",
        8 => "ucs2",
        2 | 4 => "binary",
        _ => "gsm7",
    }
}

/// The service a reply was sent to: the one whose sender is the
/// destination (compared without `+` / `00`), preferring services routed
/// over this carrier.
pub fn service_for<'a>(
    cfg: &'a Config,
    carrier: &str,
    destination: &str,
) -> Option<&'a ServiceConfig> {
    let dest = wire_number(destination);
    let mut found = cfg
        .services
        .iter()
        .filter(|s| wire_number(&s.sender).eq_ignore_ascii_case(dest));
    let first = found.next()?;
    if first.carrier == carrier {
        return Some(first);
    }
    Some(
        found
            .find(|s| s.carrier == carrier || s.fallback_carrier.as_deref() == Some(carrier))
            .unwrap_or(first),
    )
}

const SEP: u8 = 0x1F;

/// The reassembly key of a multi-part reply: (carrier, customer, service
/// sender, reference, total), so two customers using the same reference
/// never collide.
pub fn reassembly_key(
    carrier: &str,
    customer: &str,
    sender: &str,
    reference: u16,
    total: u8,
) -> Vec<u8> {
    let mut k = Vec::new();
    for f in [
        carrier,
        customer,
        sender,
        &reference.to_string(),
        &total.to_string(),
    ] {
        if !k.is_empty() {
            k.push(SEP);
        }
        k.extend_from_slice(f.as_bytes());
    }
    k
}

/// The parts of a reassembly key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassemblyKey {
    /// Carrier name.
    pub carrier: String,
    /// Customer (E.164, or the raw address).
    pub customer: String,
    /// The service's sender.
    pub sender: String,
    /// Concatenation reference.
    pub reference: u16,
    /// Parts in all.
    pub total: u8,
}

/// Reads a key made by [`reassembly_key`].
pub fn parse_reassembly_key(k: &[u8]) -> Option<ReassemblyKey> {
    let f: Vec<&[u8]> = k.split(|b| *b == SEP).collect();
    let [c, cu, s, r, t] = f.as_slice() else {
        return None;
    };
    let st = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    Some(ReassemblyKey {
        carrier: st(c)?,
        customer: st(cu)?,
        sender: st(s)?,
        reference: st(r)?.parse().ok()?,
        total: st(t)?.parse().ok()?,
    })
}

/// A stored part: its encoding name, a NUL, then the text.
fn part_value(encoding: &str, text: &str) -> Vec<u8> {
    let mut v = encoding.as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(text.as_bytes());
    v
}

/// Joins stored parts in order: (text, encoding).
fn join_parts(parts: &BTreeMap<u8, Vec<u8>>) -> (String, String) {
    let mut text = String::new();
    let mut enc = String::new();
    for v in parts.values() {
        let (e, t) = match v.iter().position(|b| *b == 0) {
            Some(n) => (&v[..n], &v[n + 1..]),
            None => (&[][..], &v[..]),
        };
        if enc.is_empty() {
            enc = String::from_utf8_lossy(e).into_owned();
        }
        text.push_str(&String::from_utf8_lossy(t));
    }
    (text, enc)
}

/// A reply ready to file.
struct Reply {
    customer: String,
    text: String,
    encoding: String,
    parts: u8,
    incomplete: bool,
}

/// Files a (whole or timed-out) reply with its keyword, if any.
async fn file_reply<S: Store>(
    store: &S,
    cfg: &Config,
    service: &ServiceConfig,
    reply: Reply,
    now_ms: u64,
) -> StoreResult<InboundOutcome> {
    let Reply {
        customer,
        text,
        encoding,
        parts,
        incomplete,
    } = reply;
    let kw = optout::classify(&text, &service.keywords);
    if let Some(k) = kw {
        crate::metrics::keyword(&service.name, k);
    }
    let opt = match kw {
        Some(Keyword::OptOut) => Some(OptChange::Out),
        Some(Keyword::OptIn) => Some(OptChange::In),
        Some(Keyword::Help) | None => None,
    };
    let policy = match service.inbound {
        Inbound::Ignore => InboundPolicy::Ignore,
        Inbound::NewChat => InboundPolicy::NewChat,
    };
    let msg = InboundMessage {
        service: service.name.clone(),
        sender: service.sender.clone(),
        customer: customer.clone(),
        text,
        encoding,
        parts,
        incomplete,
        opt,
    };
    let outcome = store.record_inbound(msg, policy, now_ms).await?;
    let ro = match &outcome {
        InboundOutcome::Matched { .. } => ReplyOutcome::Matched,
        InboundOutcome::ChatRequested { .. } => ReplyOutcome::NewChat,
        InboundOutcome::Ignored => {
            tracing::info!(service = %service.name, "reply without an open conversation ignored per the service's policy");
            ReplyOutcome::Ignored
        }
    };
    crate::metrics::reply(&service.name, ro);
    let answer = match kw {
        Some(Keyword::OptOut) => service
            .optout_confirmation
            .as_deref()
            .map(|t| (t, SystemReason::OptOutConfirmation)),
        Some(Keyword::Help) => service
            .help_text
            .as_deref()
            .map(|t| (t, SystemReason::Help)),
        _ => None,
    };
    if let Some((text, reason)) = answer {
        answer_keyword(
            store, cfg, service, &customer, &outcome, text, reason, now_ms,
        )
        .await?;
    }
    Ok(outcome)
}

/// Stores the service's answer to a keyword (opt-out confirmation, help
/// text) for the outbox. A text the carrier cannot carry is logged, not
/// fatal: the reply itself is filed already.
#[allow(clippy::too_many_arguments)]
async fn answer_keyword<S: Store>(
    store: &S,
    cfg: &Config,
    service: &ServiceConfig,
    customer: &str,
    outcome: &InboundOutcome,
    text: &str,
    reason: SystemReason,
    now_ms: u64,
) -> StoreResult<()> {
    let opts = match cfg.carrier(&service.carrier) {
        Some(c) => c.plan_options(service),
        None => text::PlanOptions {
            max_parts: service.max_parts,
            transliterate: service.transliterate,
            ..Default::default()
        },
    };
    let plan = match text::plan(text, &opts, 0) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(service = %service.name, ?reason, error = %e, "keyword answer not sent: it does not fit the service");
            return Ok(());
        }
    };
    let (conversation, in_reply_to) = match outcome {
        InboundOutcome::Matched {
            conversation,
            message,
            ..
        }
        | InboundOutcome::ChatRequested {
            conversation,
            message,
        } => (Some(*conversation), Some(*message)),
        InboundOutcome::Ignored => (None, None),
    };
    let new = SystemOutbound {
        service: service.name.clone(),
        sender: service.sender.clone(),
        customer: customer.to_owned(),
        text: text.to_owned(),
        encoding: plan.encoding.as_str().to_owned(),
        parts: u8::try_from(plan.parts.len()).unwrap_or(u8::MAX),
        carrier: service.carrier.clone(),
        conversation,
        in_reply_to,
        reason,
    };
    match store.accept_system_send(new, now_ms).await? {
        Ok(a) if a.duplicate => {
            tracing::info!(service = %service.name, ?reason, message = a.message, "keyword answer already stored; not sent again");
        }
        Ok(a) => {
            tracing::info!(service = %service.name, ?reason, message = a.message, "keyword answer stored for sending");
        }
        Err(r) => {
            tracing::info!(service = %service.name, ?reason, refused = %r, "keyword answer not sent");
        }
    }
    Ok(())
}

// === classification ===

/// What one incoming frame is, read without touching the store.
enum Classified<'a> {
    /// A receipt with an id and a state: to store.
    Receipt(ReceiptRecord),
    /// A receipt without an id or state: acknowledged unmatched.
    Unmatchable,
    /// Not a deliver_sm/data_sm (or unreadable): answered with this status.
    Rejected(CommandStatus),
    /// A customer's text (or one part of it).
    Text(TextFrame<'a>),
}

/// The fields of a deliver_sm/data_sm the text path reads, borrowed from
/// the frame.
struct TextFrame<'a> {
    esm: u8,
    ton: u8,
    npi: u8,
    src: &'a [u8],
    dest: &'a [u8],
    dcs: u8,
    body: &'a [u8],
    tlvs: Tlvs<'a>,
}

/// Reads one deliver_sm/data_sm frame (header included) from `carrier`:
/// the one place a frame becomes a receipt, a text or a refusal. Counts
/// receipts (`receipt` metric, lenient readings) as it reads them.
fn classify<'a>(carrier: &CarrierConfig, frame: &'a [u8]) -> Classified<'a> {
    let decoded = match Pdu::parse(frame) {
        Ok(d) => d,
        Err(e) => return Classified::Rejected(e.status()),
    };
    let t = match decoded.pdu {
        Pdu::DeliverSm(b) => TextFrame {
            esm: b.esm_class,
            ton: b.source_addr_ton,
            npi: b.source_addr_npi,
            src: b.source_addr,
            dest: b.destination_addr,
            dcs: b.data_coding,
            body: b.short_message,
            tlvs: b.tlvs,
        },
        Pdu::DataSm(b) => TextFrame {
            esm: b.esm_class,
            ton: b.source_addr_ton,
            npi: b.source_addr_npi,
            src: b.source_addr,
            dest: b.destination_addr,
            dcs: b.data_coding,
            body: &[],
            tlvs: b.tlvs,
        },
        _ => return Classified::Rejected(CommandStatus::RINVCMDID),
    };
    let t = if t.body.is_empty() {
        TextFrame {
            body: t.tlvs.get(TlvTag::MESSAGE_PAYLOAD).unwrap_or(&[]),
            ..t
        }
    } else {
        t
    };
    let receipted = t.tlvs.get(TlvTag::RECEIPTED_MESSAGE_ID);
    if !dlr::is_receipt(t.esm) && receipted.is_none() {
        return Classified::Text(t);
    }
    if !dlr::is_receipt(t.esm) {
        crate::metrics::codec_leniency("receipt_by_tlv", 1);
    }
    let state = t.tlvs.get_uint(TlvTag::MESSAGE_STATE).map(|v| v as u8);
    let Some(r) = dlr::from_parts(
        receipted,
        state,
        t.tlvs.get(TlvTag::NETWORK_ERROR_CODE),
        t.body,
    ) else {
        tracing::warn!(carrier = %carrier.name, "receipt without id or state acknowledged unmatched");
        crate::metrics::receipt(&carrier.name, "unknown");
        return Classified::Unmatchable;
    };
    if r.unknown_stat {
        tracing::warn!(carrier = %carrier.name, stat = %r.stat, "receipt with an unknown stat word counted as failed");
    }
    let rs = receipt_state(r.state);
    crate::metrics::receipt(&carrier.name, receipt_label(rs));
    Classified::Receipt(ReceiptRecord {
        candidates: id_candidates(&r.id, carrier.id_format),
        update: ReceiptUpdate {
            state: rs,
            error: r.err.as_ref().map(|e| format!("err:{e}")),
            is_final: r.state.outcome(carrier.acceptd_final).is_final(),
        },
    })
}

/// What a stored receipt became (logs a match through a fallback id).
fn receipt_stored(
    carrier: &CarrierConfig,
    (outcome, fallback): (ReceiptOutcome, Option<usize>),
) -> Delivered {
    if fallback.is_some_and(|i| i > 0) {
        tracing::debug!(carrier = %carrier.name, via = ?fallback, "receipt matched through another id base");
    }
    Delivered::Receipt { outcome, fallback }
}

/// Records [`crate::metrics::submit_to_receipt`] for a final receipt the
/// store applied: from the message's submission (every part answered OK,
/// carried in the outcome) to `now_ms`. A receipt held or duplicate, or a
/// message never submitted, records nothing.
fn observe_final_receipt(carrier: &CarrierConfig, outcome: &ReceiptOutcome, now_ms: u64) {
    if let ReceiptOutcome::Applied {
        submitted_ms: Some(at),
        ..
    } = *outcome
    {
        let d = Duration::from_millis(now_ms.saturating_sub(at));
        crate::metrics::submit_to_receipt(&carrier.name, d);
    }
}

/// Handles one incoming deliver_sm/data_sm frame (header included) from
/// `carrier`. Returns only after what it carried is durable.
///
/// # Errors
/// The store failed: answer `ESME_RX_T_APPN` so the SMSC retries.
pub async fn handle_deliver<S: Store>(
    store: &S,
    cfg: &Config,
    carrier: &CarrierConfig,
    frame: &[u8],
    now_ms: u64,
) -> StoreResult<Delivered> {
    match classify(carrier, frame) {
        Classified::Receipt(r) => {
            let refs: Vec<&str> = r.candidates.iter().map(String::as_str).collect();
            let is_final = r.update.is_final;
            let stored = store
                .record_receipt_any(&carrier.name, &refs, r.update, now_ms)
                .await?;
            if is_final {
                observe_final_receipt(carrier, &stored.0, now_ms);
            }
            Ok(receipt_stored(carrier, stored))
        }
        Classified::Unmatchable => Ok(Delivered::UnmatchableReceipt),
        Classified::Rejected(s) => Ok(Delivered::Rejected(s)),
        Classified::Text(t) => handle_text(store, cfg, carrier, t, now_ms).await,
    }
}

/// A frame of a batch the store failed on: it is answered
/// `ESME_RX_T_APPN` so the SMSC delivers it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotStored;

/// The answer to one frame of [`handle_deliveries`]: `ESME_ROK` once
/// stored, the refusal's status, `ESME_RX_T_APPN` when the store failed.
pub fn answer(settled: &Result<Delivered, NotStored>) -> CommandStatus {
    match settled {
        Ok(Delivered::Rejected(s)) => *s,
        Ok(_) => CommandStatus::ROK,
        Err(NotStored) => CommandStatus::RX_T_APPN,
    }
}

/// Handles a batch of deliver_sm/data_sm frames from `carrier` that
/// arrived together. Texts are filed one by one in arrival order as
/// [`handle_deliver`] does; every receipt of the batch is stored with ONE
/// [`Store::record_receipts`] call (one durable write), beside the texts.
/// Returns one result per frame, in order, only after what it carried is
/// durable: a failed receipt write fails every receipt of the batch
/// ([`NotStored`]), never acknowledging one that is not stored.
pub async fn handle_deliveries<S: Store>(
    store: &S,
    cfg: &Config,
    carrier: &CarrierConfig,
    frames: &[&[u8]],
    now_ms: u64,
) -> Vec<Result<Delivered, NotStored>> {
    let mut out: Vec<Option<Result<Delivered, NotStored>>> = vec![None; frames.len()];
    let mut receipts = Vec::new();
    let mut receipt_at = Vec::new();
    let mut receipt_final = Vec::new();
    let mut texts = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        match classify(carrier, f) {
            Classified::Receipt(r) => {
                receipt_final.push(r.update.is_final);
                receipts.push(r);
                receipt_at.push(i);
            }
            Classified::Unmatchable => out[i] = Some(Ok(Delivered::UnmatchableReceipt)),
            Classified::Rejected(s) => out[i] = Some(Ok(Delivered::Rejected(s))),
            Classified::Text(t) => texts.push((i, t)),
        }
    }
    let store_receipts = async {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        store.record_receipts(&carrier.name, receipts, now_ms).await
    };
    let file_texts = async {
        let mut filed = Vec::with_capacity(texts.len());
        for (i, t) in texts {
            let r = handle_text(store, cfg, carrier, t, now_ms).await;
            filed.push((i, r));
        }
        filed
    };
    let (stored, filed) = tokio::join!(store_receipts, file_texts);
    for (i, r) in filed {
        out[i] = Some(r.map_err(|e| {
            tracing::error!(carrier = %carrier.name, error = %e, "store failed; deliver_sm answered ESME_RX_T_APPN");
            NotStored
        }));
    }
    match stored {
        Ok(outcomes) => {
            if outcomes.len() != receipt_at.len() {
                tracing::error!(carrier = %carrier.name, sent = receipt_at.len(), answered = outcomes.len(), "store answered a receipt batch short; the unanswered are refused");
            }
            for (o, _) in outcomes.iter().zip(&receipt_final).filter(|(_, f)| **f) {
                observe_final_receipt(carrier, &o.0, now_ms);
            }
            let mut outcomes = outcomes.into_iter();
            for &i in &receipt_at {
                out[i] = Some(
                    outcomes
                        .next()
                        .map(|o| receipt_stored(carrier, o))
                        .ok_or(NotStored),
                );
            }
        }
        Err(e) => {
            tracing::error!(carrier = %carrier.name, error = %e, receipts = receipt_at.len(), "store failed; the batch's receipts answered ESME_RX_T_APPN");
            for &i in &receipt_at {
                out[i] = Some(Err(NotStored));
            }
        }
    }
    // Every slot is filled above; an empty one is refused, never acked.
    out.into_iter()
        .map(|o| o.unwrap_or(Err(NotStored)))
        .collect()
}

/// The text path of one frame: decoded, numbers normalised, matched to its
/// service, a part stored until the text is whole, then filed.
async fn handle_text<S: Store>(
    store: &S,
    cfg: &Config,
    carrier: &CarrierConfig,
    frame: TextFrame<'_>,
    now_ms: u64,
) -> StoreResult<Delivered> {
    let TextFrame {
        esm,
        ton,
        npi,
        src,
        dest,
        dcs,
        body,
        tlvs,
    } = frame;

    let d0 = carrier.data_coding0;
    let udhi = esm & 0x40 != 0;
    let sar = (
        tlvs.get_uint(TlvTag::SAR_MSG_REF_NUM),
        tlvs.get_uint(TlvTag::SAR_TOTAL_SEGMENTS),
        tlvs.get_uint(TlvTag::SAR_SEGMENT_SEQNUM),
    );
    let decoded = match sar {
        (Some(r), Some(t), Some(s)) => {
            text::decode_sar(dcs, udhi, body, d0, r as u16, t as u8, s as u8)
        }
        _ => text::decode(dcs, udhi, body, d0),
    };
    if decoded.lossy {
        crate::metrics::codec_leniency("lossy_text", 1);
    }
    let dest = String::from_utf8_lossy(dest);
    let src = String::from_utf8_lossy(src);
    let Some(service) = service_for(cfg, &carrier.name, &dest) else {
        tracing::warn!(carrier = %carrier.name, destination = %dest, "reply to a number no service uses: acknowledged, not filed");
        crate::metrics::reply("unknown", ReplyOutcome::Ignored);
        return Ok(Delivered::UnknownDestination);
    };
    let country = carrier
        .default_country
        .as_deref()
        .unwrap_or(&service.default_country);
    let customer = crate::numbers::normalize_inbound(&src, ton, npi, country)
        .unwrap_or_else(|| src.trim().to_owned());
    let encoding = encoding_name(dcs, d0);
    tracing::debug!(service = %service.name, text = %decoded.text, "reply text");
    match decoded.concat.filter(|c| c.total > 1) {
        Some(c) => {
            let key = reassembly_key(
                &carrier.name,
                &customer,
                &service.sender,
                c.reference,
                c.total,
            );
            store
                .put_part(&key, c.seq, &part_value(encoding, &decoded.text), now_ms)
                .await?;
            let have = store.parts(&key).await?.len();
            if have < usize::from(c.total) {
                return Ok(Delivered::PartStored {
                    have,
                    total: c.total,
                });
            }
            let parts = store.take_parts(&key).await?;
            if parts.is_empty() {
                // Another bind assembled it at the same moment.
                return Ok(Delivered::PartStored {
                    have,
                    total: c.total,
                });
            }
            let (text, enc) = join_parts(&parts);
            let reply = Reply {
                customer,
                text,
                encoding: enc,
                parts: c.total,
                incomplete: false,
            };
            let o = file_reply(store, cfg, service, reply, now_ms).await?;
            Ok(Delivered::Reply(o))
        }
        None => {
            let reply = Reply {
                customer,
                text: decoded.text,
                encoding: encoding.to_owned(),
                parts: 1,
                incomplete: false,
            };
            let o = file_reply(store, cfg, service, reply, now_ms).await?;
            Ok(Delivered::Reply(o))
        }
    }
}

/// Most frames the worker stores together (see [`handle_deliveries`]); the
/// bind's bounded queue (`LinkOptions::inbound_queue`) usually holds fewer.
pub const MAX_BATCH: usize = 256;

/// The receive worker of one session: takes what is queued (up to
/// [`MAX_BATCH`]), stores it (receipts in one write), then answers every
/// frame.
pub(crate) async fn worker<S: Store>(
    store: Arc<S>,
    config: tokio::sync::watch::Receiver<Arc<Config>>,
    carrier: CarrierConfig,
    mut rx: mpsc::Receiver<(DeliverToken, Bytes)>,
    cmds: mpsc::Sender<Command>,
) {
    let mut batch: Vec<(DeliverToken, Bytes)> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        // The latest config: a SIGHUP's services, keywords and receive
        // settings apply from the next batch on.
        let cfg = config.borrow().clone();
        let now_carrier = cfg.carrier(&carrier.name).unwrap_or(&carrier);
        let frames: Vec<&[u8]> = batch.iter().map(|(_, f)| &f[..]).collect();
        let settled =
            handle_deliveries(&*store, &cfg, now_carrier, &frames, clock::wall_ms()).await;
        drop(frames);
        for ((token, _), s) in batch.drain(..).zip(&settled) {
            let status = answer(s);
            if cmds.send(Command::Respond { token, status }).await.is_err() {
                tracing::debug!(carrier = %carrier.name, "session gone before the answer; the SMSC will redeliver");
            }
        }
    }
}

// === sweeps ===

/// Files every multi-part reply whose oldest part is older than
/// `timeout_ms` with the parts that arrived, marked incomplete. Returns how
/// many were filed.
///
/// # Errors
/// The store failed.
pub async fn sweep_reassembly<S: Store>(
    store: &S,
    cfg: &Config,
    timeout_ms: u64,
    now_ms: u64,
) -> StoreResult<usize> {
    let mut filed = 0;
    for (key, oldest) in store.reassembly_keys().await? {
        if now_ms.saturating_sub(oldest) < timeout_ms {
            continue;
        }
        let parsed = parse_reassembly_key(&key);
        let service = parsed
            .as_ref()
            .and_then(|k| service_for(cfg, &k.carrier, &k.sender).filter(|s| s.sender == k.sender));
        let parts = store.take_parts(&key).await?;
        let (Some(k), Some(service)) = (parsed, service) else {
            tracing::warn!(
                parts = parts.len(),
                "timed-out reply parts for no known service dropped"
            );
            continue;
        };
        if parts.is_empty() {
            continue;
        }
        let (text, enc) = join_parts(&parts);
        tracing::info!(service = %service.name, have = parts.len(), total = k.total, "multi-part reply filed incomplete");
        let reply = Reply {
            customer: k.customer,
            text,
            encoding: enc,
            parts: k.total,
            incomplete: true,
        };
        file_reply(store, cfg, service, reply, now_ms).await?;
        filed += 1;
    }
    Ok(filed)
}

/// Runs `expire_pending` with the longest `receipt_timeout` of all carriers
/// (the store applies one timeout to every message, so the longest never
/// gives up early on any carrier) and `held_max_age_ms` for receipts that
/// never found their submit, until nothing more is due; the report sums
/// the chunks.
///
/// # Errors
/// The store failed.
pub async fn expire_receipts<S: Store>(
    store: &S,
    cfg: &Config,
    held_max_age_ms: u64,
    now_ms: u64,
) -> StoreResult<ExpireReport> {
    let timeout = cfg
        .carriers
        .iter()
        .map(|c| c.receipt_timeout)
        .max()
        .unwrap_or(Duration::from_secs(48 * 3600));
    // A chunk per transaction, so sends and receipts commit in between.
    let mut r = ExpireReport::default();
    loop {
        let chunk = store
            .expire_pending(now_ms, timeout.as_millis() as u64, held_max_age_ms)
            .await?;
        r.no_receipt += chunk.no_receipt;
        r.held_dropped += chunk.held_dropped;
        if !chunk.more {
            break;
        }
    }
    if r.no_receipt > 0 || r.held_dropped > 0 {
        tracing::info!(
            no_receipt = r.no_receipt,
            held_dropped = r.held_dropped,
            "receipts expired"
        );
    }
    Ok(r)
}

pub(crate) async fn sweep_task<S: Store>(
    store: Arc<S>,
    cfg: Arc<Config>,
    opts: Arc<LinkOptions>,
    stop: CancellationToken,
) {
    let timeout = opts.reassembly_timeout.as_millis() as u64;
    let mut tick = tokio::time::interval(opts.reassembly_sweep.max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        if let Err(e) = sweep_reassembly(&*store, &cfg, timeout, clock::wall_ms()).await {
            tracing::error!(error = %e, "reassembly sweep failed");
        }
    }
}

pub(crate) async fn expire_task<S: Store>(
    store: Arc<S>,
    cfg: Arc<Config>,
    every: Duration,
    held_max_age: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let r = expire_receipts(
            &*store,
            &cfg,
            held_max_age.as_millis() as u64,
            clock::wall_ms(),
        )
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "receipt expiry failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_meet_a_hex_response_from_a_decimal_receipt() {
        // The response said hex "12" (stored in auto normal form "C", as
        // decimal 12); the receipt says decimal 18 (= 0x12).
        let resp = dlr::normalize_id("12", IdFormat::Auto);
        let c = id_candidates("18", IdFormat::Auto);
        assert!(c.contains(&resp), "{c:?} lacks {resp}");
        // A decimal response and a hex receipt meet in the normal form.
        let resp = dlr::normalize_id("439041101", IdFormat::Auto);
        assert_eq!(id_candidates("1a2b3c4d", IdFormat::Auto)[0], resp);
        // No duplicates, normal form first.
        let c = id_candidates("00ABC", IdFormat::Auto);
        assert_eq!(c[0], "ABC");
        let mut d = c.clone();
        d.dedup();
        assert_eq!(c, d);
    }

    #[test]
    fn can_round_trip_a_reassembly_key() {
        let k = reassembly_key("acme", "+447911123456", "447700", 513, 3);
        let p = parse_reassembly_key(&k).unwrap();
        assert_eq!(p.carrier, "acme");
        assert_eq!(p.customer, "+447911123456");
        assert_eq!(p.sender, "447700");
        assert_eq!((p.reference, p.total), (513, 3));
        assert!(parse_reassembly_key(b"acme\x1fonly").is_none());
    }

    #[test]
    fn parts_join_in_sequence_order() {
        let mut m = BTreeMap::new();
        m.insert(2, part_value("ucs2", "world"));
        m.insert(1, part_value("ucs2", "hello "));
        assert_eq!(join_parts(&m), ("hello world".into(), "ucs2".into()));
    }

    #[test]
    fn every_receipt_state_maps_to_a_store_state() {
        assert_eq!(
            receipt_state(DeliveryState::Delivered),
            ReceiptState::Delivered
        );
        assert_eq!(
            receipt_state(DeliveryState::Failed),
            ReceiptState::Undeliverable
        );
        assert_eq!(
            receipt_state(DeliveryState::Skipped),
            ReceiptState::Rejected
        );
        assert_eq!(
            receipt_state(DeliveryState::Scheduled),
            ReceiptState::Enroute
        );
    }
}
