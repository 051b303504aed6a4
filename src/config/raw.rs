//! The serde mirror of the TOML file: every key optional, every table closed
//! (`deny_unknown_fields`), enums kept as strings and numbers as `i64` so that
//! validation, not serde, reports bad values, all at once and with key paths.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[store]`.
    #[serde(default)]
    pub store: RawStore,
    /// `[agent]`.
    #[serde(default)]
    pub agent: RawAgent,
    /// `[metrics]`.
    #[serde(default)]
    pub metrics: RawMetrics,
    /// `[log]`.
    #[serde(default)]
    pub log: RawLog,
    /// `[daemon]`.
    #[serde(default)]
    pub daemon: RawDaemon,
    /// `[[carrier]]`.
    #[serde(default)]
    pub carrier: Vec<RawCarrier>,
    /// `[[service]]`.
    #[serde(default)]
    pub service: Vec<RawService>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// sled directory.
    pub path: Option<String>,
    /// Group-commit interval; absent means flush every commit group at once.
    pub flush_every_ms: Option<i64>,
    /// Days an ended conversation is kept.
    pub retention_days: Option<i64>,
    /// Days an event stays in the event log.
    pub event_log_max_age_days: Option<i64>,
}

/// `[agent]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Unix socket path.
    pub socket: Option<String>,
    /// Octal file mode, as a string (`"0660"`).
    pub mode: Option<String>,
    /// Group owning the socket.
    pub group: Option<String>,
    /// Peer uids allowed (empty: anyone the file mode lets in).
    pub allowed_uids: Option<Vec<i64>>,
    /// Concurrent connections.
    pub max_connections: Option<i64>,
    /// Longest request line.
    pub max_line_bytes: Option<i64>,
    /// Events buffered per subscriber before it falls back to reading the log.
    pub subscriber_buffer: Option<i64>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    /// `host:port` of the Prometheus listener.
    pub listen: Option<String>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `"human"` or `"json"`.
    pub format: Option<String>,
    /// An env-filter directive (`info`, `smppgw=debug,info`).
    pub level: Option<String>,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    /// Seconds allowed for a graceful stop.
    pub shutdown_grace_secs: Option<i64>,
}

/// One `[[carrier]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // each key is documented in config/smppgw.example.toml
pub struct RawCarrier {
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<i64>,
    pub local_address: Option<String>,
    pub tls: Option<bool>,
    pub ca: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub server_name: Option<String>,
    pub system_id: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
    pub system_type: Option<String>,
    pub address_range: Option<String>,
    pub bind: Option<String>,
    pub binds: Option<i64>,
    pub window: Option<i64>,
    pub tps: Option<i64>,
    pub enquire_link_secs: Option<i64>,
    pub enquire_link_timeout_secs: Option<i64>,
    pub inactivity_secs: Option<i64>,
    pub response_timeout_secs: Option<i64>,
    pub bind_timeout_secs: Option<i64>,
    pub connect_timeout_secs: Option<i64>,
    pub unbind_timeout_secs: Option<i64>,
    pub reconnect_min_secs: Option<i64>,
    pub reconnect_max_secs: Option<i64>,
    pub already_bound_wait_secs: Option<i64>,
    pub auth_failure_retry_secs: Option<i64>,
    pub max_resubmits: Option<i64>,
    pub data_coding0: Option<String>,
    pub allow_latin1: Option<bool>,
    pub allow_ia5: Option<bool>,
    pub at_as_ucs2: Option<bool>,
    pub concat: Option<String>,
    pub id_format: Option<String>,
    pub receipt_timeout_secs: Option<i64>,
    pub acceptd_final: Option<bool>,
    pub source_ton: Option<i64>,
    pub source_npi: Option<i64>,
    pub dest_ton: Option<i64>,
    pub dest_npi: Option<i64>,
    pub default_country: Option<String>,
    pub max_pdu_bytes: Option<i64>,
    pub strict_lengths: Option<bool>,
    pub status: Option<BTreeMap<String, String>>,
}

/// One `[[service]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // each key is documented in config/smppgw.example.toml
pub struct RawService {
    pub name: Option<String>,
    pub sender: Option<String>,
    pub sender_type: Option<String>,
    pub carrier: Option<String>,
    pub fallback_carrier: Option<String>,
    pub max_parts: Option<i64>,
    pub inbound: Option<String>,
    pub default_country: Option<String>,
    pub numbers: Option<String>,
    pub agents: Option<Vec<String>>,
    pub transliterate: Option<bool>,
    #[serde(default)]
    pub template: Vec<RawTemplate>,
    pub optout_keywords: Option<Vec<String>>,
    pub optin_keywords: Option<Vec<String>>,
    pub help_keywords: Option<Vec<String>>,
    pub optout_confirmation: Option<String>,
    pub help_text: Option<String>,
}

/// One `[[service.template]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    /// Shown to the agent.
    pub name: Option<String>,
    /// Inserted into the input field.
    pub text: Option<String>,
}
