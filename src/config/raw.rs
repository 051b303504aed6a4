//! The serde mirror of the TOML file: every key optional, every table closed
//! (`deny_unknown_fields`), enums kept as strings and numbers as `i64` so that
//! validation, not serde, reports bad values, all at once and with key paths.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// `[store]`.
    #[serde(default)]
    pub(crate) store: RawStore,
    /// `[agent]`.
    #[serde(default)]
    pub(crate) agent: RawAgent,
    /// `[metrics]`.
    #[serde(default)]
    pub(crate) metrics: RawMetrics,
    /// `[log]`.
    #[serde(default)]
    pub(crate) log: RawLog,
    /// `[daemon]`.
    #[serde(default)]
    pub(crate) daemon: RawDaemon,
    /// `[[carrier]]`.
    #[serde(default)]
    pub(crate) carrier: Vec<RawCarrier>,
    /// `[[service]]`.
    #[serde(default)]
    pub(crate) service: Vec<RawService>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStore {
    /// sled directory.
    pub(crate) path: Option<String>,
    /// Group-commit interval; absent means flush every commit group at once.
    pub(crate) flush_every_ms: Option<i64>,
    /// Days an ended conversation is kept.
    pub(crate) retention_days: Option<i64>,
    /// Days an event stays in the event log.
    pub(crate) event_log_max_age_days: Option<i64>,
    /// sled's page cache in MiB.
    pub(crate) cache_mb: Option<i64>,
    /// Messages the outbox may hold before agent sends are refused.
    pub(crate) outbox_limit: Option<i64>,
}

/// `[agent]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    /// Unix socket path.
    pub(crate) socket: Option<String>,
    /// Octal file mode, as a string (`"0660"`).
    pub(crate) mode: Option<String>,
    /// Group owning the socket.
    pub(crate) group: Option<String>,
    /// Peer uids allowed (empty: anyone the file mode lets in).
    pub(crate) allowed_uids: Option<Vec<i64>>,
    /// Concurrent connections.
    pub(crate) max_connections: Option<i64>,
    /// Longest request line.
    pub(crate) max_line_bytes: Option<i64>,
    /// Events buffered per subscriber before it falls back to reading the log.
    pub(crate) subscriber_buffer: Option<i64>,
    /// An agent's own templates at most.
    pub(crate) max_templates_per_agent: Option<i64>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    /// `host:port` of the Prometheus listener.
    pub(crate) listen: Option<String>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    /// `"human"` or `"json"`.
    pub(crate) format: Option<String>,
    /// An env-filter directive (`info`, `smppgw=debug,info`).
    pub(crate) level: Option<String>,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    /// Seconds allowed for a graceful stop.
    pub(crate) shutdown_grace_secs: Option<i64>,
}

/// One `[[carrier]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCarrier {
    pub(crate) name: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<i64>,
    pub(crate) local_address: Option<String>,
    pub(crate) tls: Option<bool>,
    pub(crate) ca: Option<String>,
    pub(crate) client_cert: Option<String>,
    pub(crate) client_key: Option<String>,
    pub(crate) server_name: Option<String>,
    pub(crate) system_id: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) password_file: Option<String>,
    pub(crate) password_env: Option<String>,
    pub(crate) system_type: Option<String>,
    pub(crate) address_range: Option<String>,
    pub(crate) bind: Option<String>,
    pub(crate) binds: Option<i64>,
    pub(crate) window: Option<i64>,
    pub(crate) tps: Option<i64>,
    pub(crate) enquire_link_secs: Option<i64>,
    pub(crate) enquire_link_timeout_secs: Option<i64>,
    pub(crate) inactivity_secs: Option<i64>,
    pub(crate) response_timeout_secs: Option<i64>,
    pub(crate) bind_timeout_secs: Option<i64>,
    pub(crate) connect_timeout_secs: Option<i64>,
    pub(crate) unbind_timeout_secs: Option<i64>,
    pub(crate) reconnect_min_secs: Option<i64>,
    pub(crate) reconnect_max_secs: Option<i64>,
    pub(crate) already_bound_wait_secs: Option<i64>,
    pub(crate) auth_failure_retry_secs: Option<i64>,
    pub(crate) max_resubmits: Option<i64>,
    pub(crate) resubmit_delay_secs: Option<i64>,
    pub data_coding0: Option<String>,
    pub allow_latin1: Option<bool>,
    pub allow_ia5: Option<bool>,
    pub at_as_ucs2: Option<bool>,
    pub(crate) concat: Option<String>,
    pub(crate) id_format: Option<String>,
    pub(crate) receipt_timeout_secs: Option<i64>,
    pub(crate) acceptd_final: Option<bool>,
    pub(crate) source_ton: Option<i64>,
    pub(crate) source_npi: Option<i64>,
    pub(crate) dest_ton: Option<i64>,
    pub(crate) dest_npi: Option<i64>,
    pub(crate) default_country: Option<String>,
    pub(crate) max_pdu_bytes: Option<i64>,
    pub(crate) strict_lengths: Option<bool>,
    pub(crate) status: Option<BTreeMap<String, String>>,
}

/// One `[[service]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    pub(crate) name: Option<String>,
    pub(crate) sender: Option<String>,
    pub(crate) sender_type: Option<String>,
    pub(crate) carrier: Option<String>,
    pub(crate) fallback_carrier: Option<String>,
    pub(crate) max_parts: Option<i64>,
    pub(crate) inbound: Option<String>,
    pub(crate) default_country: Option<String>,
    pub(crate) numbers: Option<String>,
    pub(crate) agents: Option<Vec<String>>,
    pub(crate) transliterate: Option<bool>,
    #[serde(default)]
    pub(crate) template: Vec<RawTemplate>,
    pub(crate) optout_keywords: Option<Vec<String>>,
    pub(crate) optin_keywords: Option<Vec<String>>,
    pub(crate) help_keywords: Option<Vec<String>>,
    pub(crate) optout_confirmation: Option<String>,
    pub(crate) help_text: Option<String>,
}

/// One `[[service.template]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTemplate {
    /// Shown to the agent.
    pub(crate) name: Option<String>,
    /// Inserted into the input field.
    pub(crate) text: Option<String>,
}
