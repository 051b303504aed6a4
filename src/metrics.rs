//! The metrics catalogue: every metric name, its description, typed recording functions, and the exporter.
//!
//! Names follow Prometheus conventions (`smppgw_<name>_total` for counters,
//! `_seconds` for durations, plain gauges). Labels are bounded: `carrier` and
//! `service` (names from the config), `bind` (`trx`, `tx`, `rx` plus its
//! index), `status` (a command_status as `0x%08X`), `state`, `op`, `result`,
//! `quirk`, `consumer`, `outcome`: never a number, an id or text. The shell
//! calls the typed functions here; pure layers only return counts.
//!
//! # Health and readiness
//! The exporter's HTTP listener (`[metrics] listen`) answers `GET /health`
//! with `200 OK` while the process runs (liveness) and every other path with
//! the metrics. Readiness is the gauge [`READY`] (1 once the store is open,
//! the agent socket listens and at least one receiving bind per carrier is
//! up), which an alert or a scrape-based probe reads, and `smppgw status`,
//! whose exit code says the same to an orchestrator without HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

// === names ===

/// Gauge: 1 when the daemon is ready (store open, socket listening, a receiving bind per carrier).
pub const READY: &str = "smppgw_ready";
/// Gauge by carrier, bind, state: 1 for the bind's current state, 0 for the others.
pub const BIND_STATE: &str = "smppgw_bind_state";
/// Counter by carrier, reason: bind attempts that failed.
pub const BIND_FAILURES: &str = "smppgw_bind_failures_total";
/// Gauge by carrier: receiving (RX or TRX) binds up; 0 means receipts and replies queue at the SMSC.
pub const RECEIVING_BINDS: &str = "smppgw_receiving_binds";
/// Gauge by carrier, bind: requests outstanding in the window.
pub const WINDOW_IN_USE: &str = "smppgw_window_in_use";
/// Counter by carrier: submit_sm sent (one per part).
pub const SUBMITS: &str = "smppgw_submits_total";
/// Counter by carrier, status: submit_sm_resp received.
pub const SUBMIT_RESPONSES: &str = "smppgw_submit_responses_total";
/// Counter by carrier: submits with no response before the timeout.
pub const RESPONSE_TIMEOUTS: &str = "smppgw_response_timeouts_total";
/// Counter by carrier: submit_sm_resps that came after their timeout (the
/// carrier id is still recorded; many of them mean `response_timeout_secs`
/// is too short for this carrier).
pub const LATE_RESPONSES: &str = "smppgw_late_submit_responses_total";
/// Counter by carrier: throttling answers (ESME_RTHROTTLED, ESME_RMSGQFUL),
/// one per submit_sm_resp (counted by [`submit_response`]).
pub const THROTTLED: &str = "smppgw_throttled_total";
/// Counter by carrier, state: delivery receipts by message state.
pub const RECEIPTS: &str = "smppgw_receipts_total";
/// Counter by carrier: submitted messages whose receipt is overdue.
pub const RECEIPTS_OVERDUE: &str = "smppgw_receipts_overdue_total";
/// Counter by service, outcome (`matched`, `ignored`, `new_chat`): customer replies.
pub const REPLIES: &str = "smppgw_replies_total";
/// Counter by service, keyword (`opt_out`, `opt_in`, `help`).
pub const OPTOUTS: &str = "smppgw_optout_keywords_total";
/// Counter by service, code: sends refused before anything was stored.
pub const SENDS_REFUSED: &str = "smppgw_sends_refused_total";
/// Gauge: messages waiting in the durable outbox.
pub const OUTBOX_DEPTH: &str = "smppgw_outbox_depth";
/// Gauge by carrier: messages waiting in the durable outbox for it.
pub const OUTBOX_CARRIER_DEPTH: &str = "smppgw_outbox_carrier_depth";
/// Gauge: `store.outbox_limit`, the messages one carrier may have waiting
/// before sends routed to it are refused `outbox_full`.
pub const OUTBOX_LIMIT: &str = "smppgw_outbox_limit";
/// Gauge: bytes in the store's current write-ahead log file.
pub const STORE_LOG_BYTES: &str = "smppgw_store_log_bytes";
/// Gauge: bytes of committed writes held in memory, not yet applied to sled.
pub const STORE_OVERLAY_BYTES: &str = "smppgw_store_overlay_bytes";
/// Gauge: bytes of the event journal's files (events kept for consumers).
pub const STORE_EVENT_JOURNAL_BYTES: &str = "smppgw_store_event_journal_bytes";
/// Counter: store checkpoints completed.
pub const STORE_CHECKPOINTS: &str = "smppgw_store_checkpoints_total";
/// Counter: store checkpoints failed (each retried by the next).
pub const STORE_CHECKPOINT_FAILURES: &str = "smppgw_store_checkpoint_failures_total";
/// Counter: writes the checkpoints gave sled (a key written many times
/// between two checkpoints counts once).
pub const STORE_CHECKPOINT_WRITES: &str = "smppgw_store_checkpoint_writes_total";
/// Counter: write-ahead log syncs (group commits).
pub const STORE_LOG_SYNCS: &str = "smppgw_store_log_syncs_total";
/// Gauge by consumer: events between the log head and the consumer's cursor.
pub const EVENT_LOG_LAG: &str = "smppgw_event_log_lag";
/// Counter by quirk: codec leniencies (missing final NUL, trailing bytes, ...).
pub const CODEC_LENIENCIES: &str = "smppgw_codec_leniencies_total";
/// Counter by op, result: agent socket requests.
pub const AGENT_REQUESTS: &str = "smppgw_agent_requests_total";
/// Gauge: agent socket connections open.
pub const AGENT_CONNECTIONS: &str = "smppgw_agent_connections";
/// Histogram by carrier: accepted → submit_sm_resp.
pub const ACCEPT_TO_SUBMIT_RESP: &str = "smppgw_accept_to_submit_resp_seconds";
/// Histogram by carrier: submit_sm_resp (every part answered OK) → final
/// receipt, one observation per final receipt applied to a message.
pub const SUBMIT_TO_RECEIPT: &str = "smppgw_submit_to_receipt_seconds";

/// Every name with its kind, unit and help text; `describe_all` and the
/// dashboard/alert files are written from this list.
pub const CATALOGUE: &[(&str, Kind, &str)] = &[
    (READY, Kind::Gauge, "1 when the daemon is ready"),
    (
        BIND_STATE,
        Kind::Gauge,
        "1 for the current state of each bind",
    ),
    (
        BIND_FAILURES,
        Kind::Counter,
        "bind attempts that failed, by reason",
    ),
    (
        RECEIVING_BINDS,
        Kind::Gauge,
        "receiving (RX or TRX) binds up per carrier",
    ),
    (
        WINDOW_IN_USE,
        Kind::Gauge,
        "requests outstanding in a bind's window",
    ),
    (SUBMITS, Kind::Counter, "submit_sm PDUs sent, one per part"),
    (
        SUBMIT_RESPONSES,
        Kind::Counter,
        "submit_sm_resp received, by command_status",
    ),
    (
        RESPONSE_TIMEOUTS,
        Kind::Counter,
        "requests without a response before the timeout",
    ),
    (
        LATE_RESPONSES,
        Kind::Counter,
        "submit responses that came after their timeout",
    ),
    (
        THROTTLED,
        Kind::Counter,
        "throttling answers from the carrier",
    ),
    (
        RECEIPTS,
        Kind::Counter,
        "delivery receipts, by message state",
    ),
    (
        RECEIPTS_OVERDUE,
        Kind::Counter,
        "submitted messages whose final receipt is overdue",
    ),
    (REPLIES, Kind::Counter, "customer replies, by outcome"),
    (
        OPTOUTS,
        Kind::Counter,
        "opt-out, opt-in and help keywords received",
    ),
    (
        SENDS_REFUSED,
        Kind::Counter,
        "sends refused before anything was stored, by error code",
    ),
    (
        OUTBOX_DEPTH,
        Kind::Gauge,
        "messages waiting in the durable outbox",
    ),
    (
        OUTBOX_CARRIER_DEPTH,
        Kind::Gauge,
        "messages waiting in the durable outbox, by carrier",
    ),
    (
        OUTBOX_LIMIT,
        Kind::Gauge,
        "store.outbox_limit: a carrier's outbox depth past which sends to it are refused outbox_full",
    ),
    (
        STORE_LOG_BYTES,
        Kind::Gauge,
        "bytes in the current write-ahead log file",
    ),
    (
        STORE_OVERLAY_BYTES,
        Kind::Gauge,
        "committed writes held in memory until the next checkpoint, in bytes",
    ),
    (
        STORE_EVENT_JOURNAL_BYTES,
        Kind::Gauge,
        "bytes of the event journal's files; they go once their events pass store.event_log_max_age_days",
    ),
    (
        STORE_CHECKPOINTS,
        Kind::Counter,
        "store checkpoints completed",
    ),
    (
        STORE_CHECKPOINT_FAILURES,
        Kind::Counter,
        "store checkpoints failed; the log and memory grow until one succeeds",
    ),
    (
        STORE_CHECKPOINT_WRITES,
        Kind::Counter,
        "writes the checkpoints gave sled; per message sent, how much of the commits' work reached sled",
    ),
    (
        STORE_LOG_SYNCS,
        Kind::Counter,
        "write-ahead log syncs (one per commit group)",
    ),
    (
        EVENT_LOG_LAG,
        Kind::Gauge,
        "events a consumer has not read yet",
    ),
    (
        CODEC_LENIENCIES,
        Kind::Counter,
        "PDUs accepted despite a known carrier quirk",
    ),
    (
        AGENT_REQUESTS,
        Kind::Counter,
        "agent socket requests, by op and result",
    ),
    (
        AGENT_CONNECTIONS,
        Kind::Gauge,
        "agent socket connections open",
    ),
    (
        ACCEPT_TO_SUBMIT_RESP,
        Kind::Seconds,
        "time from accepted to submit_sm_resp",
    ),
    (
        SUBMIT_TO_RECEIPT,
        Kind::Seconds,
        "time from submit_sm_resp to the final receipt",
    ),
];

/// Kind of a catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram of seconds.
    Seconds,
}

/// Bind states reported by [`bind_state`].
pub const BIND_STATES: &[&str] = &[
    "connecting",
    "binding",
    "bound",
    "unbinding",
    "closed",
    "auth_failed",
    "backoff",
];

/// Consumers with an event-log cursor; other names are reported as `other`
/// so the label stays bounded.
pub const CONSUMERS: &[&str] = &["agent", "console", "cli", "other"];

/// Histogram buckets (seconds) for both latencies: 50 ms to 2 days.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14_400.0,
    86_400.0, 172_800.0,
];

/// Registers help text and units for every metric.
pub fn describe_all() {
    for &(name, kind, help) in CATALOGUE {
        match kind {
            Kind::Counter => describe_counter!(name, Unit::Count, help),
            Kind::Gauge => describe_gauge!(name, help),
            Kind::Seconds => describe_histogram!(name, Unit::Seconds, help),
        }
    }
}

// === exporter ===

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Building the exporter or binding its listener failed.
    #[error("cannot start the prometheus exporter: {0}")]
    Build(String),
    /// A global recorder was installed before.
    #[error("a metrics recorder is already installed")]
    AlreadyInstalled,
}

/// Installs the Prometheus recorder globally and, with `listen`, serves it
/// over HTTP (metrics on any path, `/health` for liveness). Must be called
/// inside a tokio runtime when `listen` is set (the listener task is spawned
/// on it). Returns the handle `smppgw status` and tests render from.
///
/// # Errors
/// [`MetricsError`] when the listener cannot bind or a recorder exists.
pub fn install(listen: Option<SocketAddr>) -> Result<PrometheusHandle, MetricsError> {
    let builder = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .map_err(|e| MetricsError::Build(e.to_string()))?;
    let handle = match listen {
        None => builder.install_recorder().map_err(build_error)?,
        Some(addr) => {
            let (recorder, exporter) = builder
                .with_http_listener(addr)
                .build()
                .map_err(build_error)?;
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
            tokio::spawn(async move {
                if let Err(e) = exporter.await {
                    tracing::error!(error = ?e, "prometheus listener stopped");
                }
            });
            handle
        }
    };
    describe_all();
    Ok(handle)
}

fn build_error(e: metrics_exporter_prometheus::BuildError) -> MetricsError {
    match e {
        metrics_exporter_prometheus::BuildError::FailedToSetGlobalRecorder(_) => {
            MetricsError::AlreadyInstalled
        }
        other => MetricsError::Build(other.to_string()),
    }
}

// === typed recording functions ===

/// Formats a command_status for the `status` label.
pub fn status_label(status: u32) -> String {
    format!("0x{status:08X}")
}

/// Readiness changed.
pub fn ready(is_ready: bool) {
    gauge!(READY).set(if is_ready { 1.0 } else { 0.0 });
}

/// A bind moved to `state` (one of [`BIND_STATES`]); the gauge of every
/// other state of that bind drops to 0.
pub fn bind_state(carrier: &str, bind: &str, state: &'static str) {
    for s in BIND_STATES {
        let v = if *s == state { 1.0 } else { 0.0 };
        gauge!(BIND_STATE, "carrier" => carrier.to_string(), "bind" => bind.to_string(), "state" => *s).set(v);
    }
}

/// A bind attempt failed; `reason` is a fixed word (`auth`, `already_bound`,
/// `bind_fail`, `timeout`, `connect_refused`, `connect_failed`, `tls`, `io`,
/// `other`).
pub fn bind_failed(carrier: &str, reason: &'static str) {
    counter!(BIND_FAILURES, "carrier" => carrier.to_string(), "reason" => reason).increment(1);
    tracing::warn!(carrier, reason, "bind failed");
}

/// Receiving binds currently up for `carrier`.
pub fn receiving_binds(carrier: &str, up: usize) {
    gauge!(RECEIVING_BINDS, "carrier" => carrier.to_string()).set(up as f64);
}

/// Requests outstanding in a bind's window.
pub fn window_in_use(carrier: &str, bind: &str, in_use: usize) {
    gauge!(WINDOW_IN_USE, "carrier" => carrier.to_string(), "bind" => bind.to_string())
        .set(in_use as f64);
}

/// A submit_sm went out.
pub fn submit_sent(carrier: &str) {
    counter!(SUBMITS, "carrier" => carrier.to_string()).increment(1);
}

/// A submit_sm_resp arrived with `status`; 0x58 and 0x14 also count as throttled.
pub fn submit_response(carrier: &str, status: u32) {
    counter!(SUBMIT_RESPONSES, "carrier" => carrier.to_string(), "status" => status_label(status))
        .increment(1);
    if status == 0x58 || status == 0x14 {
        throttled(carrier);
    }
}

/// A request timed out without a response.
pub fn response_timeout(carrier: &str) {
    counter!(RESPONSE_TIMEOUTS, "carrier" => carrier.to_string()).increment(1);
}

/// A submit_sm_resp came after its request had timed out.
pub fn late_response(carrier: &str) {
    counter!(LATE_RESPONSES, "carrier" => carrier.to_string()).increment(1);
}

/// The carrier throttled us.
pub fn throttled(carrier: &str) {
    counter!(THROTTLED, "carrier" => carrier.to_string()).increment(1);
}

/// A delivery receipt with `state` (`delivered`, `expired`, `deleted`,
/// `undeliverable`, `accepted`, `unknown`, `rejected`, `enroute`).
pub fn receipt(carrier: &str, state: &'static str) {
    counter!(RECEIPTS, "carrier" => carrier.to_string(), "state" => state).increment(1);
}

/// A submitted message passed `receipt_timeout` without a final receipt.
pub fn receipt_overdue(carrier: &str) {
    counter!(RECEIPTS_OVERDUE, "carrier" => carrier.to_string()).increment(1);
}

/// What happened to a customer reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Reached an open conversation.
    Matched,
    /// No open conversation; counted and dropped.
    Ignored,
    /// Started a new conversation (`chat_requested`).
    NewChat,
}

/// A customer reply was handled.
pub fn reply(service: &str, outcome: ReplyOutcome) {
    let o = match outcome {
        ReplyOutcome::Matched => "matched",
        ReplyOutcome::Ignored => "ignored",
        ReplyOutcome::NewChat => "new_chat",
    };
    counter!(REPLIES, "service" => service.to_string(), "outcome" => o).increment(1);
}

/// A keyword message arrived.
pub fn keyword(service: &str, kw: crate::optout::Keyword) {
    let k = match kw {
        crate::optout::Keyword::OptOut => "opt_out",
        crate::optout::Keyword::OptIn => "opt_in",
        crate::optout::Keyword::Help => "help",
    };
    counter!(OPTOUTS, "service" => service.to_string(), "keyword" => k).increment(1);
}

/// A send was refused with the stable error `code` (`opted_out`, `not_mobile`, ...).
pub fn send_refused(service: &str, code: &'static str) {
    counter!(SENDS_REFUSED, "service" => service.to_string(), "code" => code).increment(1);
}

/// Messages waiting in the outbox.
pub fn outbox_depth(depth: u64) {
    gauge!(OUTBOX_DEPTH).set(depth as f64);
}

/// Messages waiting per carrier: every configured carrier (0 when none),
/// and any other the outbox still holds messages for.
pub fn outbox_carrier_depths<'a>(
    configured: impl IntoIterator<Item = &'a str>,
    depths: &std::collections::BTreeMap<String, u64>,
) {
    for carrier in configured {
        if !depths.contains_key(carrier) {
            gauge!(OUTBOX_CARRIER_DEPTH, "carrier" => carrier.to_string()).set(0.0);
        }
    }
    for (carrier, n) in depths {
        gauge!(OUTBOX_CARRIER_DEPTH, "carrier" => carrier.clone()).set(*n as f64);
    }
}

/// The outbox limit in force (at start and after each reload).
pub fn outbox_limit(limit: u64) {
    gauge!(OUTBOX_LIMIT).set(limit as f64);
}

/// The store's internals: log, overlay and event journal sizes,
/// checkpoints, log syncs.
pub fn store_stats(s: &crate::store::StoreStats) {
    gauge!(STORE_LOG_BYTES).set(s.log_bytes as f64);
    gauge!(STORE_OVERLAY_BYTES).set(s.overlay_bytes as f64);
    gauge!(STORE_EVENT_JOURNAL_BYTES).set(s.event_journal_bytes as f64);
    counter!(STORE_CHECKPOINTS).absolute(s.checkpoints);
    counter!(STORE_CHECKPOINT_FAILURES).absolute(s.checkpoint_failures);
    counter!(STORE_CHECKPOINT_WRITES).absolute(s.checkpoint_writes);
    counter!(STORE_LOG_SYNCS).absolute(s.log_syncs);
}

/// A consumer's lag behind the event log head; unknown consumer names are
/// reported as `other`.
pub fn event_log_lag(consumer: &str, lag: u64) {
    let c = CONSUMERS
        .iter()
        .copied()
        .find(|c| *c == consumer)
        .unwrap_or("other");
    gauge!(EVENT_LOG_LAG, "consumer" => c).set(lag as f64);
}

/// The codec accepted a PDU despite `quirk` (a fixed name from `pdu::quirks`).
pub fn codec_leniency(quirk: &'static str, count: u64) {
    counter!(CODEC_LENIENCIES, "quirk" => quirk).increment(count);
}

/// An agent request finished; `result` is `ok` or the error code.
pub fn agent_request(op: &'static str, result: &'static str) {
    counter!(AGENT_REQUESTS, "op" => op, "result" => result).increment(1);
}

/// Agent connections open.
pub fn agent_connections(open: usize) {
    gauge!(AGENT_CONNECTIONS).set(open as f64);
}

/// Time from `accepted` to the submit_sm_resp.
pub fn accept_to_submit_resp(carrier: &str, d: Duration) {
    histogram!(ACCEPT_TO_SUBMIT_RESP, "carrier" => carrier.to_string()).record(d.as_secs_f64());
}

/// Time from the submission (every part's submit_sm_resp OK) to a final
/// receipt the store applied; the receive path calls it once per receipt.
pub fn submit_to_receipt(carrier: &str, d: Duration) {
    histogram!(SUBMIT_TO_RECEIPT, "carrier" => carrier.to_string()).record(d.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::MetricKind;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    type Snapshot = Vec<(String, Vec<(String, String)>, DebugValue)>;

    fn record(f: impl FnOnce()) -> Snapshot {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(ck, _, _, v)| {
                let key = ck.key();
                let labels = key
                    .labels()
                    .map(|l| (l.key().to_string(), l.value().to_string()))
                    .collect();
                let _: MetricKind = ck.kind();
                (key.name().to_string(), labels, v)
            })
            .collect()
    }

    fn find<'a>(s: &'a Snapshot, name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
        s.iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
    }

    #[test]
    fn catalogue_names_follow_prometheus_conventions() {
        let mut seen = std::collections::HashSet::new();
        for &(name, kind, help) in CATALOGUE {
            assert!(name.starts_with("smppgw_"), "{name}");
            assert!(seen.insert(name), "{name} twice");
            assert!(!help.is_empty());
            match kind {
                Kind::Counter => assert!(name.ends_with("_total"), "{name}"),
                Kind::Seconds => assert!(name.ends_with("_seconds"), "{name}"),
                Kind::Gauge => assert!(!name.ends_with("_total"), "{name}"),
            }
        }
    }

    #[test]
    fn submit_responses_count_by_status_and_throttles() {
        let s = record(|| {
            submit_sent("acme");
            submit_response("acme", 0);
            submit_response("acme", 0x58);
            submit_response("acme", 0x58);
        });
        assert_eq!(
            find(&s, SUBMITS, &[("carrier", "acme")]),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(
            find(
                &s,
                SUBMIT_RESPONSES,
                &[("carrier", "acme"), ("status", "0x00000058")]
            ),
            Some(&DebugValue::Counter(2))
        );
        assert_eq!(
            find(&s, SUBMIT_RESPONSES, &[("status", "0x00000000")]),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(
            find(&s, THROTTLED, &[("carrier", "acme")]),
            Some(&DebugValue::Counter(2))
        );
    }

    #[test]
    fn bind_state_sets_one_state_and_clears_the_others() {
        let s = record(|| {
            bind_state("acme", "trx0", "binding");
            bind_state("acme", "trx0", "bound");
        });
        let bound = find(&s, BIND_STATE, &[("bind", "trx0"), ("state", "bound")]);
        let binding = find(&s, BIND_STATE, &[("bind", "trx0"), ("state", "binding")]);
        assert!(matches!(bound, Some(DebugValue::Gauge(v)) if v.into_inner() == 1.0));
        assert!(matches!(binding, Some(DebugValue::Gauge(v)) if v.into_inner() == 0.0));
    }

    #[test]
    fn unknown_consumers_share_one_label() {
        let s = record(|| {
            event_log_lag("agent", 3);
            event_log_lag("someone-else-42", 7);
        });
        assert!(
            matches!(find(&s, EVENT_LOG_LAG, &[("consumer", "agent")]), Some(DebugValue::Gauge(v)) if v.into_inner() == 3.0)
        );
        assert!(
            matches!(find(&s, EVENT_LOG_LAG, &[("consumer", "other")]), Some(DebugValue::Gauge(v)) if v.into_inner() == 7.0)
        );
        assert!(
            !s.iter()
                .any(|(_, l, _)| l.iter().any(|(_, v)| v.contains("someone")))
        );
    }

    #[test]
    fn replies_keywords_and_latencies_are_recorded() {
        let s = record(|| {
            reply("support", ReplyOutcome::Matched);
            reply("support", ReplyOutcome::NewChat);
            keyword("support", crate::optout::Keyword::OptOut);
            accept_to_submit_resp("acme", Duration::from_millis(250));
        });
        assert_eq!(
            find(&s, REPLIES, &[("outcome", "matched")]),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(
            find(&s, REPLIES, &[("outcome", "new_chat")]),
            Some(&DebugValue::Counter(1))
        );
        assert_eq!(
            find(&s, OPTOUTS, &[("keyword", "opt_out")]),
            Some(&DebugValue::Counter(1))
        );
        match find(&s, ACCEPT_TO_SUBMIT_RESP, &[("carrier", "acme")]) {
            Some(DebugValue::Histogram(v)) => assert_eq!(v.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exporter_renders_described_metrics() {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            describe_all();
            submit_sent("acme");
            outbox_depth(5);
            // acme is configured with nothing queued; "old" is no longer
            // configured but still has a backlog.
            outbox_carrier_depths(
                ["acme", "globex"],
                &[("globex".into(), 2), ("old".into(), 3)].into(),
            );
            outbox_limit(100_000);
            store_stats(&crate::store::StoreStats {
                log_bytes: 4096,
                overlay_bytes: 100,
                event_journal_bytes: 8192,
                checkpoints: 3,
                checkpoint_failures: 0,
                checkpoint_writes: 900,
                log_syncs: 70,
            });
        });
        let text = handle.render();
        assert!(text.contains("# HELP smppgw_submits_total"), "{text}");
        assert!(
            text.contains("smppgw_submits_total{carrier=\"acme\"} 1"),
            "{text}"
        );
        assert!(text.contains("smppgw_outbox_depth 5"), "{text}");
        assert!(text.contains("smppgw_outbox_limit 100000"), "{text}");
        for (carrier, n) in [("acme", 0), ("globex", 2), ("old", 3)] {
            let line = format!("smppgw_outbox_carrier_depth{{carrier=\"{carrier}\"}} {n}\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        assert!(text.contains("smppgw_store_log_bytes 4096"), "{text}");
        assert!(
            text.contains("smppgw_store_event_journal_bytes 8192"),
            "{text}"
        );
        assert!(text.contains("smppgw_store_checkpoints_total 3"), "{text}");
        assert!(
            text.contains("smppgw_store_checkpoint_writes_total 900"),
            "{text}"
        );
        assert!(text.contains("smppgw_store_log_syncs_total 70"), "{text}");
    }
}
