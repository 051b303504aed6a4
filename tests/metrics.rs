//! Metrics the carrier link records, read back from the Prometheus
//! recorder the daemon installs (`smppgw::metrics::install`), over the real
//! simulator, sled store and `Links`.
//!
//! A process has one global recorder, so this binary installs it once and
//! runs its scenarios one after the other in a single test, each reading
//! the change of its metric.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use smppgw::clock;
use smppgw::config::{self, Config};
use smppgw::link::outbox::plan_options;
use smppgw::link::{LinkOptions, Links};
use smppgw::model::{MessageId, MessageStatus};
use smppgw::sim::{self, SimConfig, SimHandle};
use smppgw::store::{NewOutbound, SledStore, Store};
use tokio_util::sync::CancellationToken;

const CUSTOMERS: [&str; 2] = ["+447911123456", "+819012345678"];

struct Env {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    cfg: Arc<Config>,
    sim: SimHandle,
    links: Links,
    cancel: CancellationToken,
}

async fn setup(sim_cfg: SimConfig) -> Env {
    setup_with(sim_cfg, Duration::from_secs(3)).await
}

async fn setup_with(sim_cfg: SimConfig, response_timeout: Duration) -> Env {
    let cancel = CancellationToken::new();
    let sim = sim::start(sim_cfg, cancel.child_token()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config::demo(dir.path(), sim.local_addr(), None).unwrap();
    for c in &mut cfg.carriers {
        c.reconnect_min = Duration::from_millis(50);
        c.reconnect_max = Duration::from_millis(300);
        c.response_timeout = response_timeout;
        c.max_resubmits = 10;
        c.bind_timeout = Duration::from_secs(2);
        c.connect_timeout = Duration::from_secs(2);
        c.unbind_timeout = Duration::from_millis(500);
        c.tps = 1000;
    }
    let cfg = Arc::new(cfg);
    let store = Arc::new(SledStore::open(dir.path().join("store")).unwrap());
    let opts = LinkOptions {
        poll_interval: Duration::from_millis(50),
        expire_interval: None,
        part_retry_delay: Duration::from_millis(50),
        ..LinkOptions::default()
    };
    let links = Links::start_with(store.clone(), cfg.clone(), cancel.child_token(), opts);
    Env {
        _dir: dir,
        store,
        cfg,
        sim,
        links,
        cancel,
    }
}

impl Env {
    /// Stores a one-part text the way the agent server does and wakes the link.
    async fn send(&self, customer: &str, text: &str) -> MessageId {
        let service = self.cfg.service("support").unwrap();
        let carrier = self.cfg.carrier("sim").unwrap();
        let count = smppgw::text::count(text, &plan_options(carrier, Some(service)));
        assert_eq!(count.parts, 1, "{text}");
        let new = NewOutbound {
            service: "support".into(),
            sender: "447400123456".into(),
            customer: customer.into(),
            owner: "alice".into(),
            interaction: None,
            text: text.into(),
            encoding: count.encoding.as_str().into(),
            parts: 1,
            carrier: "sim".into(),
            client_ref: None,
            conversation: None,
            outbox_limit: None,
        };
        let a = self
            .store
            .accept_send(new, clock::wall_ms())
            .await
            .unwrap()
            .unwrap();
        self.links.wake();
        a.message
    }

    async fn all_delivered(&self, ids: &[MessageId]) {
        let done = wait(|| async {
            for id in ids {
                let m = self.store.message(*id).await.unwrap().unwrap();
                if m.status != MessageStatus::Delivered {
                    return false;
                }
            }
            true
        })
        .await;
        assert!(done, "not every message delivered: {:?}", self.sim.stats());
    }

    async fn stop(self) {
        tokio::time::timeout(Duration::from_secs(10), self.links.shutdown())
            .await
            .expect("links stop within the grace period");
        self.cancel.cancel();
    }
}

/// Polls `cond` every 20 ms for up to 20 s.
async fn wait<F, Fut>(mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..1000 {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The value of the sample `series` (name and labels as rendered), 0 when
/// it was never recorded.
fn sample(handle: &PrometheusHandle, series: &str) -> f64 {
    let text = handle.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

const RECEIPT_COUNT: &str = r#"smppgw_submit_to_receipt_seconds_count{carrier="sim"}"#;
const RECEIPT_SUM: &str = r#"smppgw_submit_to_receipt_seconds_sum{carrier="sim"}"#;
const THROTTLED: &str = r#"smppgw_throttled_total{carrier="sim"}"#;
const LATE: &str = r#"smppgw_late_submit_responses_total{carrier="sim"}"#;
const TIMEOUTS: &str = r#"smppgw_response_timeouts_total{carrier="sim"}"#;

/// Every final receipt applied to a submitted message is one observation
/// of the submit-to-receipt time, labelled with its carrier.
async fn receipts_record_submit_to_receipt_time(handle: &PrometheusHandle) {
    let env = setup(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay_ms: 100,
        ..SimConfig::default()
    })
    .await;
    let before = sample(handle, RECEIPT_COUNT);
    let mut ids = Vec::new();
    for (i, c) in CUSTOMERS.iter().cycle().take(3).enumerate() {
        ids.push(env.send(c, &format!("receipt timing {i}")).await);
    }
    env.all_delivered(&ids).await;
    // Recorded just after the store applied the receipt: wait for it.
    wait(|| async { sample(handle, RECEIPT_COUNT) - before >= 3.0 }).await;
    assert_eq!(
        sample(handle, RECEIPT_COUNT) - before,
        3.0,
        "{}",
        handle.render()
    );
    assert!(sample(handle, RECEIPT_SUM) > 0.0, "{}", handle.render());
    env.stop().await;
}

/// ESME_RTHROTTLED answers are counted once each, and every throttled
/// message still goes out.
async fn throttling_answers_are_counted_and_nothing_is_lost(handle: &PrometheusHandle) {
    let env = setup(SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        receipt_delay_ms: 20,
        throttle: 0.25,
        seed: 7,
        ..SimConfig::default()
    })
    .await;
    let before = sample(handle, THROTTLED);
    let mut ids = Vec::new();
    let mut texts = Vec::new();
    for (i, c) in CUSTOMERS.iter().cycle().take(12).enumerate() {
        let text = format!("throttled run {i}");
        ids.push(env.send(c, &text).await);
        texts.push(text);
    }
    env.all_delivered(&ids).await;
    let stats = env.sim.stats();
    assert!(
        stats.throttled > 0,
        "the simulator never throttled: {stats:?}"
    );
    assert_eq!(
        sample(handle, THROTTLED) - before,
        stats.throttled as f64,
        "one count per throttling answer: {stats:?}"
    );
    let received = env.sim.received();
    for text in &texts {
        let accepted = received
            .iter()
            .filter(|r| r.status == Some(0) && &r.text == text)
            .count();
        assert_eq!(accepted, 1, "{text} accepted {accepted} times");
    }
    env.stop().await;
}

/// A submit_sm_resp after its timeout is counted as late (and the message
/// still ends delivered).
async fn late_submit_responses_are_counted(handle: &PrometheusHandle) {
    let env = setup_with(
        SimConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            // 1.5 s past the timeout, for a stalled box (see tests/link.rs).
            resp_delay_ms: 2_000,
            receipt_delay_ms: 2_500,
            ..SimConfig::default()
        },
        Duration::from_millis(500),
    )
    .await;
    let (late0, timeouts0) = (sample(handle, LATE), sample(handle, TIMEOUTS));
    let id = env.send(CUSTOMERS[0], "late but counted").await;
    env.all_delivered(&[id]).await;
    assert!(
        sample(handle, TIMEOUTS) - timeouts0 >= 1.0,
        "{}",
        handle.render()
    );
    assert!(sample(handle, LATE) - late0 >= 1.0, "{}", handle.render());
    env.stop().await;
}

#[tokio::test]
async fn link_metrics_are_recorded() {
    let handle = smppgw::metrics::install(None).expect("the only recorder of this process");
    receipts_record_submit_to_receipt_time(&handle).await;
    throttling_answers_are_counted_and_nothing_is_lost(&handle).await;
    late_submit_responses_are_counted(&handle).await;
}
