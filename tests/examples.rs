//! Every example exchange in `proto/examples.jsonl` replayed against the real
//! daemon binary and simulator, so the protocol spec cannot drift from the code.

mod support;

use std::time::Duration;

use smppgw::agent::{examples, replay};
use support::{Daemon, Sim, write_config};

/// The configuration `proto/agent-protocol.md` §8 says the examples assume.
const EXAMPLE_SERVICES: &str = r#"
[[service]]
name = "support"
sender = "447911000100"
carrier = "sim"
default_country = "GB"
max_parts = 3
numbers = "mobile"
inbound = "new_chat"

[[service.template]]
name = "Opening hours"
text = "We are open 9:00-18:00, Monday to Friday."

[[service]]
name = "sales-jp"
sender = "ACME"
carrier = "sim"
default_country = "JP"
max_parts = 2
agents = ["hanako"]
inbound = "ignore"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_example_holds_against_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--receipt-delay-ms", "100"]);
    let config = write_config(dir.path(), sim.port(), "", EXAMPLE_SERVICES);
    let daemon = Daemon::start(&config, dir.path()).await;
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/proto/examples.jsonl"))
            .unwrap();
    let steps = examples::parse_examples(&text).unwrap();
    let replayed = replay::replay(&daemon.socket, &steps, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replayed, steps.len());
}
