//! Configuration: the raw TOML mirror, validation with key paths, and the typed `Config`.
//!
//! The path is raw → validated → typed (STYLE habit 11): `raw` is a dumb serde
//! mirror with closed tables, [`validate`] checks every key and collects every
//! problem with its key path (`carrier[0].window: must be between 1 and 1000,
//! got 0`), and only a file without errors becomes a [`Config`]. Nothing falls
//! back to a default on a bad value. The environment is read through the
//! [`Env`] trait so tests inject variables. Passwords live in [`Secret`], whose
//! `Debug`, `Display` and `Serialize` never show the value.

mod raw;
pub mod validate;

/// How a carrier writes message ids: the receipt layer's enum.
pub use crate::dlr::IdFormat;
/// How long messages are split: the text planner's enum.
pub use crate::text::Concat;
/// What data_coding 0 means on a carrier: one definition, the text codec's.
pub use crate::text::Dcs0 as DataCoding0;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::logging::LogFormat;
use crate::numbers::NumberPolicy;
use crate::optout::Keywords;

pub use validate::{TemplateCheck, validate_templates};

// === Env ===

/// Where `password_env` (and `SMPPGW_CONFIG` in main) are looked up. Tests pass
/// a `HashMap<String, String>`; the daemon passes [`ProcessEnv`].
pub trait Env {
    /// The value of `name`, or `None` when it is unset or not UTF-8.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

// === Secret ===

/// A credential. Its `Debug`, `Display` and `Serialize` print `<redacted>`;
/// only [`Secret::expose`] gives the value, for the bind PDU.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Call it only where the value goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes (for the "longer than the spec allows" warning).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

// === Errors ===

/// One problem, with the key path it belongs to (`service[1].carrier`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path; the file path for read errors; empty for TOML syntax errors
    /// (their message carries line and column).
    pub path: String,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl ConfigError {
    /// Builds one error.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in one file; `Display` prints one per line. `main`
/// prints it and exits 78 (`EX_CONFIG`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// At least one error, in file order.
    pub errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// True when `path` has an error whose message contains `needle`.
    pub fn has(&self, path: &str, needle: &str) -> bool {
        self.errors
            .iter()
            .any(|e| e.path == path && e.message.contains(needle))
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The sysexits code `check-config` and `run` exit with on a bad file.
pub const EX_CONFIG: i32 = 78;

// === Typed config ===

/// The validated configuration. Every field is set; defaults were applied by
/// [`validate`].
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// `[store]`.
    pub store: StoreConfig,
    /// `[agent]`.
    pub agent: AgentConfig,
    /// `[metrics]`.
    pub metrics: MetricsConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[[carrier]]`, in file order; names are unique.
    #[serde(rename = "carrier")]
    pub carriers: Vec<CarrierConfig>,
    /// `[[service]]`, in file order; names are unique.
    #[serde(rename = "service")]
    pub services: Vec<ServiceConfig>,
    /// Things that work but deserve a look (a password longer than SMPP 3.4
    /// allows, ...). `check-config` prints them; `run` logs them at warn.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// `[store]`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreConfig {
    /// sled directory (relative paths are resolved against the config file's
    /// directory).
    pub path: PathBuf,
    /// Group-commit interval: least time between two syncs of the store's
    /// write-ahead log. `None`: a commit group syncs as soon as the previous
    /// sync returns.
    #[serde(rename = "flush_every_ms", serialize_with = "ser_opt_ms")]
    pub flush_every: Option<Duration>,
    /// How long an ended conversation is kept. Default 90 days.
    #[serde(rename = "retention_days", serialize_with = "ser_days")]
    pub retention: Duration,
    /// How long events stay in the event log. Default 7 days.
    #[serde(rename = "event_log_max_age_days", serialize_with = "ser_days")]
    pub event_log_max_age: Duration,
    /// sled's page cache in MiB (what the store keeps in memory beyond the
    /// process's own needs). Default [`crate::store::DEFAULT_CACHE_MB`].
    pub cache_mb: u64,
    /// Messages the outbox may hold for one carrier (leased ones included)
    /// before an agent's `send` routed to it is refused `outbox_full`: the
    /// bound on the durable queue when a carrier is down or slower than the
    /// agents, which leaves the other carriers' sends alone. Applied at each
    /// send, so a reload changes it. Default [`DEFAULT_OUTBOX_LIMIT`].
    pub outbox_limit: u64,
}

/// The default of `store.outbox_limit`: the largest backlog the
/// benchmarks measured the daemon with (100 000 queued at once: it peaked
/// at 61-63 MiB, benches/RESULTS.md §19-20); only a carrier outage of hours
/// or a sustained overload fills it. The limit is per carrier, so with
/// several carriers backed up at once the total may be a multiple of it.
pub const DEFAULT_OUTBOX_LIMIT: u64 = 100_000;

impl StoreConfig {
    /// The store's open settings.
    pub fn options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_bytes: self.cache_mb << 20,
            flush_every: self.flush_every,
        }
    }
}

/// `[agent]`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentConfig {
    /// Unix socket path. Default `/run/smppgw/agent.sock`.
    pub socket: PathBuf,
    /// File mode of the socket. Default `0o660`.
    #[serde(serialize_with = "ser_octal")]
    pub mode: u32,
    /// Group that owns the socket, if any.
    pub group: Option<String>,
    /// Peer uids allowed to connect (checked with `SO_PEERCRED`); empty means
    /// whoever the file mode lets in.
    pub allowed_uids: Vec<u32>,
    /// Concurrent connections. Default 64.
    pub max_connections: usize,
    /// Longest request line in bytes. Default 65536.
    pub max_line_bytes: usize,
    /// Events buffered per subscriber before it is cut back to reading the
    /// log. Default 1024.
    pub subscriber_buffer: usize,
    /// An agent's own templates at most (`template_save` refuses one more
    /// with `too_many_templates`). Default 200.
    pub max_templates_per_agent: usize,
}

/// `[metrics]`.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsConfig {
    /// Where the Prometheus listener binds; `None`: no listener.
    pub listen: Option<SocketAddr>,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    /// Human or JSON lines. Default human.
    pub format: LogFormat,
    /// env-filter directive. Default `info`. `RUST_LOG` overrides it.
    pub level: String,
}

/// `[daemon]`.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonConfig {
    /// Bound on the whole graceful stop (drain, unbind, flush). Default 30 s.
    /// The systemd unit's `TimeoutStopSec` must be longer.
    #[serde(rename = "shutdown_grace_secs", serialize_with = "ser_secs")]
    pub shutdown_grace: Duration,
}

/// Bind layout of a carrier account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BindMode {
    /// `binds` transceiver sessions.
    #[serde(rename = "transceiver")]
    Transceiver,
    /// `binds` transmitter sessions plus `binds` receiver sessions.
    #[serde(rename = "transmitter+receiver")]
    TransmitterReceiver,
}

/// What a submit_sm_resp status means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusAction {
    /// Retry later (throttled, queue full, system error).
    Temporary,
    /// The message failed; the agent sees the raw status.
    Permanent,
    /// Rebuild the bind, then retry.
    Rebind,
}

/// TLS settings of a carrier whose `tls = true`.
#[derive(Debug, Clone, Serialize)]
pub struct TlsConfig {
    /// Extra CA bundle (PEM); `None`: the system roots.
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM).
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM); set exactly when `client_cert` is.
    pub client_key: Option<PathBuf>,
    /// SNI and certificate name; `None`: `host`.
    pub server_name: Option<String>,
}

/// One carrier account.
#[derive(Debug, Clone, Serialize)]
pub struct CarrierConfig {
    /// Unique name, used by services and as the `carrier` metric label.
    pub name: String,
    /// SMSC host name (resolved on each reconnect).
    pub host: String,
    /// SMSC port.
    pub port: u16,
    /// Egress address to bind before connecting (carrier IP allow-lists).
    pub local_address: Option<IpAddr>,
    /// TLS, when on. Never inferred from the port.
    pub tls: Option<TlsConfig>,
    /// `system_id` of the bind.
    pub system_id: String,
    /// The bind password, from `password`, `password_file` or `password_env`.
    pub password: Secret,
    /// `system_type` of the bind. Default empty.
    pub system_type: String,
    /// `address_range` of receiver binds. Default empty.
    pub address_range: String,
    /// TRX or TX+RX.
    pub bind: BindMode,
    /// Binds of each kind. Default 1.
    pub binds: u32,
    /// Outstanding requests per bind. Default 10.
    pub window: u32,
    /// Submits per second per bind (each part counts). Default 10.
    pub tps: u32,
    /// enquire_link when idle this long. Default 30 s.
    #[serde(rename = "enquire_link_secs", serialize_with = "ser_secs")]
    pub enquire_link: Duration,
    /// A bind whose enquire_link_resp is later than this is rebuilt. Default 10 s.
    #[serde(rename = "enquire_link_timeout_secs", serialize_with = "ser_secs")]
    pub enquire_link_timeout: Duration,
    /// Nothing received for this long: rebuild the bind. Default 300 s.
    #[serde(rename = "inactivity_secs", serialize_with = "ser_secs")]
    pub inactivity: Duration,
    /// Response timeout of a request. Default 30 s.
    #[serde(rename = "response_timeout_secs", serialize_with = "ser_secs")]
    pub response_timeout: Duration,
    /// Wait for bind_resp. Default 30 s.
    #[serde(rename = "bind_timeout_secs", serialize_with = "ser_secs")]
    pub bind_timeout: Duration,
    /// TCP connect plus TLS handshake. Default 10 s.
    #[serde(rename = "connect_timeout_secs", serialize_with = "ser_secs")]
    pub connect_timeout: Duration,
    /// Wait for unbind_resp at shutdown or rebind. Default 5 s.
    #[serde(rename = "unbind_timeout_secs", serialize_with = "ser_secs")]
    pub unbind_timeout: Duration,
    /// First reconnect delay. Default 1 s.
    #[serde(rename = "reconnect_min_secs", serialize_with = "ser_secs")]
    pub reconnect_min: Duration,
    /// Reconnect delay cap. Default 60 s.
    #[serde(rename = "reconnect_max_secs", serialize_with = "ser_secs")]
    pub reconnect_max: Duration,
    /// First wait after ESME_RALYBND. Default 60 s.
    #[serde(rename = "already_bound_wait_secs", serialize_with = "ser_secs")]
    pub already_bound_wait: Duration,
    /// Retry interval after a credential rejection. Default 900 s.
    #[serde(rename = "auth_failure_retry_secs", serialize_with = "ser_secs")]
    pub auth_failure_retry: Duration,
    /// How often a submit with an unknown outcome (bind dropped before the
    /// resp, or no resp within `response_timeout_secs`) is sent again; past
    /// that the message ends with status `unknown`. Default 1.
    pub max_resubmits: u32,
    /// How long a message whose submit timed out waits before it is sent
    /// again, so that a late response can still tell it went (and spare the
    /// customer a duplicate). Not applied when the bind dropped (no
    /// response can come on a closed session). Default 30 s; 0 sends again
    /// at once.
    #[serde(rename = "resubmit_delay_secs", serialize_with = "ser_secs")]
    pub resubmit_delay: Duration,
    /// Meaning of data_coding 0. Default gsm.
    pub data_coding0: DataCoding0,
    /// Latin-1 (data_coding 3) may be chosen. Default false.
    pub allow_latin1: bool,
    /// IA5 (data_coding 1) may be chosen. Default false.
    pub allow_ia5: bool,
    /// Send texts containing `@` as UCS-2 (SMSCs that cut at the GSM 0x00
    /// `@`). Default false.
    pub at_as_ucs2: bool,
    /// Concatenation. Default udh8.
    pub concat: Concat,
    /// Message-id format. Default auto.
    pub id_format: IdFormat,
    /// A submitted message without a final receipt after this long is
    /// counted as overdue. Default 48 h.
    #[serde(rename = "receipt_timeout_secs", serialize_with = "ser_secs")]
    pub receipt_timeout: Duration,
    /// Treat ACCEPTD as final (some carriers never send more). Default false.
    pub acceptd_final: bool,
    /// Override of the source TON for every sender type.
    pub source_ton: Option<u8>,
    /// Override of the source NPI for every sender type.
    pub source_npi: Option<u8>,
    /// Destination TON. Default 1.
    pub dest_ton: u8,
    /// Destination NPI. Default 1.
    pub dest_npi: u8,
    /// Country for national (TON 2) inbound numbers; `None`: the service's.
    pub default_country: Option<String>,
    /// Largest PDU accepted or sent. Default 16384.
    pub max_pdu_bytes: usize,
    /// Refuse (instead of warn about) credentials longer than SMPP 3.4 allows.
    pub strict_lengths: bool,
    /// Per-status overrides of the default temporary/permanent/rebind table.
    #[serde(serialize_with = "ser_status")]
    pub status: BTreeMap<u32, StatusAction>,
}

/// Sender address type; decides TON/NPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderType {
    /// MSISDN, TON 1 / NPI 1.
    Long,
    /// Short code, TON 3 / NPI 0.
    Short,
    /// Alphanumeric, TON 5 / NPI 0.
    Alphanumeric,
}

/// What to do with a reply when the conversation is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inbound {
    /// Count and log it. Default.
    Ignore,
    /// Start a new conversation as `chat_requested`.
    NewChat,
}

/// A shared predefined message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateConfig {
    /// Shown in the picker.
    pub name: String,
    /// The text.
    pub text: String,
}

/// One service: a sender, a route and its rules.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceConfig {
    /// Unique name the agent layer uses.
    pub name: String,
    /// Sender: digits without `+` for long numbers and short codes, or the
    /// alphanumeric id.
    pub sender: String,
    /// Sender type (derived when not set).
    pub sender_type: SenderType,
    /// Name of the carrier (exists).
    pub carrier: String,
    /// Name of the fallback carrier (exists, differs from `carrier`).
    pub fallback_carrier: Option<String>,
    /// Longest message in parts. Default 6.
    pub max_parts: u8,
    /// Replies to ended conversations. Default ignore.
    pub inbound: Inbound,
    /// ISO 3166 alpha-2, upper case; a region the number metadata knows.
    pub default_country: String,
    /// Which numbers may be texted. Default mobile.
    pub numbers: NumberPolicy,
    /// Agents allowed to use the service; `None`: everyone.
    pub agents: Option<Vec<String>>,
    /// Replace characters outside GSM with look-alikes before counting.
    /// Default false.
    pub transliterate: bool,
    /// Shared predefined messages.
    #[serde(rename = "template")]
    pub templates: Vec<TemplateConfig>,
    /// Opt-out, opt-in and help keywords.
    pub keywords: Keywords,
    /// Sent once after an opt-out.
    pub optout_confirmation: Option<String>,
    /// Answer to HELP.
    pub help_text: Option<String>,
}

impl Config {
    /// The carrier named `name`.
    pub fn carrier(&self, name: &str) -> Option<&CarrierConfig> {
        self.carriers.iter().find(|c| c.name == name)
    }

    /// The service named `name`.
    pub fn service(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.iter().find(|s| s.name == name)
    }

    /// A redacted TOML rendering of the effective configuration, defaults
    /// included, for `check-config`. Secrets show as `<redacted>`.
    pub fn summary(&self) -> String {
        match toml::to_string(self) {
            Ok(s) => s,
            Err(e) => format!("# summary unavailable: {e}\n{self:#?}"),
        }
    }
}

// === helpers the link and daemon use ===

impl CarrierConfig {
    /// The text planner's options for `service`'s messages on this carrier:
    /// what data_coding 0 means, the codings it takes and how it splits, with
    /// the service's part limit and transliteration. `count`, `send` and the
    /// outbox all plan with this, so the counter never disagrees with the wire.
    pub fn plan_options(&self, service: &ServiceConfig) -> crate::text::PlanOptions {
        crate::text::PlanOptions {
            dcs0: self.data_coding0,
            allow_latin1: self.allow_latin1,
            allow_ia5: self.allow_ia5,
            at_as_ucs2: self.at_as_ucs2,
            transliterate: service.transliterate,
            concat: self.concat,
            max_parts: service.max_parts,
        }
    }

    /// What a non-zero submit_sm_resp `status` means on this carrier: the
    /// `[carrier.status]` override, else the default table (0x04 rebind;
    /// 0x08, 0x14, 0x58, 0x64 temporary; everything else permanent).
    pub fn status_action(&self, status: u32) -> StatusAction {
        if let Some(a) = self.status.get(&status) {
            return *a;
        }
        // The defaults are the session layer's table (CARRIERS.md), read
        // in the config's three words: one source for both.
        use crate::session::status::{Outcome, default_outcome};
        match default_outcome(status) {
            Outcome::Rebind => StatusAction::Rebind,
            Outcome::Permanent { .. } => StatusAction::Permanent,
            Outcome::Ok | Outcome::Temporary | Outcome::Throttled | Outcome::QueueFull => {
                StatusAction::Temporary
            }
        }
    }

    /// Source TON/NPI for a sender of `ty` on this carrier: the carrier's
    /// overrides, else 1/1 long, 3/0 short, 5/0 alphanumeric (CARRIERS §5).
    pub fn source_ton_npi(&self, ty: SenderType) -> (u8, u8) {
        let (ton, npi) = match ty {
            SenderType::Long => (1, 1),
            SenderType::Short => (3, 0),
            SenderType::Alphanumeric => (5, 0),
        };
        (
            self.source_ton.unwrap_or(ton),
            self.source_npi.unwrap_or(npi),
        )
    }

    /// True when going from `self` to `new` needs the binds rebuilt (where
    /// and how we connect, or what the bind PDU carries). Everything else
    /// (window, tps, timeouts, encoding, status table, ...) applies live on
    /// SIGHUP.
    pub fn needs_rebind(&self, new: &CarrierConfig) -> bool {
        let tls = |t: &Option<TlsConfig>| {
            t.as_ref().map(|t| {
                (
                    t.ca.clone(),
                    t.client_cert.clone(),
                    t.client_key.clone(),
                    t.server_name.clone(),
                )
            })
        };
        self.host != new.host
            || self.port != new.port
            || self.local_address != new.local_address
            || tls(&self.tls) != tls(&new.tls)
            || self.system_id != new.system_id
            || self.password != new.password
            || self.system_type != new.system_type
            || self.address_range != new.address_range
            || self.bind != new.bind
            || self.binds != new.binds
            || self.max_pdu_bytes != new.max_pdu_bytes
    }
}

/// What a SIGHUP reload does, from [`reload_plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Carriers that are new: start their links.
    pub added_carriers: Vec<String>,
    /// Carriers that are gone: drain and unbind their links.
    pub removed_carriers: Vec<String>,
    /// Carriers whose binds must be rebuilt with the new settings.
    pub rebind_carriers: Vec<String>,
    /// Keys that only a restart applies (store, agent socket, metrics
    /// listener, log format); a reload keeps their running values and says so.
    pub restart_required: Vec<String>,
}

/// Compares the running config with a freshly validated one. Services and
/// the live carrier settings are simply swapped in by the daemon.
pub fn reload_plan(old: &Config, new: &Config) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    for c in &new.carriers {
        match old.carrier(&c.name) {
            None => plan.added_carriers.push(c.name.clone()),
            Some(o) if o.needs_rebind(c) => plan.rebind_carriers.push(c.name.clone()),
            Some(_) => {}
        }
    }
    for c in &old.carriers {
        if new.carrier(&c.name).is_none() {
            plan.removed_carriers.push(c.name.clone());
        }
    }
    let mut restart = |key: &str, changed: bool| {
        if changed {
            plan.restart_required.push(key.to_string());
        }
    };
    restart("store.path", old.store.path != new.store.path);
    restart("agent.socket", old.agent.socket != new.agent.socket);
    restart("agent.mode", old.agent.mode != new.agent.mode);
    restart("agent.group", old.agent.group != new.agent.group);
    restart(
        "agent.max_connections",
        old.agent.max_connections != new.agent.max_connections,
    );
    restart("metrics.listen", old.metrics.listen != new.metrics.listen);
    restart("log.format", old.log.format != new.log.format);
    plan
}

/// The config file path: the `--config` argument, else `SMPPGW_CONFIG`.
pub fn config_path(arg: Option<PathBuf>, env: &dyn Env) -> Option<PathBuf> {
    arg.or_else(|| {
        env.var("SMPPGW_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// `config/demo.toml`, built in, for `smppgw demo` and the integration tests.
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");

/// The demo configuration with its store and socket under `dir`, its carrier
/// `sim` pointed at `smsc` (the simulator's address) and the metrics listener
/// at `metrics` (`None`: no listener). It goes through the same validation as
/// a file.
///
/// # Errors
/// Only if the built-in demo file stopped validating (a test guards it).
pub fn demo(
    dir: &Path,
    smsc: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<Config, ConfigErrors> {
    parse(&demo_toml(dir, smsc, metrics)?, &ProcessEnv, dir)
}

/// The text of [`demo`]'s configuration, to write to a file for
/// `smppgw run --config` (the benchmarks run the real daemon with it).
///
/// # Errors
/// Only if the built-in demo file stopped parsing.
pub fn demo_toml(
    dir: &Path,
    smsc: SocketAddr,
    metrics: Option<SocketAddr>,
) -> Result<String, ConfigErrors> {
    let mut doc: toml::Table = toml::from_str(DEMO_TOML).map_err(|e| ConfigErrors {
        errors: vec![syntax_error(DEMO_TOML, &e)],
    })?;
    let set = |doc: &mut toml::Table, table: &str, key: &str, v: toml::Value| {
        if let Some(toml::Value::Table(t)) = doc.get_mut(table) {
            t.insert(key.to_string(), v);
        }
    };
    let path = |p: PathBuf| toml::Value::String(p.display().to_string());
    set(&mut doc, "store", "path", path(dir.join("store")));
    set(&mut doc, "agent", "socket", path(dir.join("agent.sock")));
    match metrics {
        Some(m) => set(
            &mut doc,
            "metrics",
            "listen",
            toml::Value::String(m.to_string()),
        ),
        None => {
            doc.remove("metrics");
        }
    }
    if let Some(toml::Value::Array(carriers)) = doc.get_mut("carrier") {
        for c in carriers.iter_mut() {
            if let toml::Value::Table(t) = c {
                t.insert("host".into(), toml::Value::String(smsc.ip().to_string()));
                t.insert("port".into(), toml::Value::Integer(i64::from(smsc.port())));
            }
        }
    }
    toml::to_string(&doc).map_err(|e| ConfigErrors {
        errors: vec![ConfigError::new("", e.to_string())],
    })
}

/// Reads and validates the file at `path` with the process environment.
/// Relative paths inside it are resolved against its directory.
///
/// # Errors
/// Every problem at once: unreadable file, TOML syntax, unknown keys, bad
/// values, missing references.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        errors: vec![ConfigError::new(
            path.display().to_string(),
            format!("cannot read: {e}"),
        )],
    })?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    parse(&text, &ProcessEnv, base)
}

/// Parses and validates `toml_text`; `env` answers `password_env`, `base_dir`
/// anchors relative paths.
///
/// # Errors
/// Every problem at once, see [`load`].
pub fn parse(toml_text: &str, env: &dyn Env, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let raw: raw::RawConfig = toml::from_str(toml_text).map_err(|e| ConfigErrors {
        errors: vec![syntax_error(toml_text, &e)],
    })?;
    let config = validate::validate(raw, env, base_dir)?;
    validate::validate_templates(&config, &|text, service| {
        template_fits(&config, text, service)
    })?;
    Ok(config)
}

/// A predefined message must fit the service's part limit on its carrier,
/// counted by the same planner that answers `count` and plans the submits.
pub fn template_fits(config: &Config, text: &str, service: &ServiceConfig) -> Result<(), String> {
    let Some(carrier) = config.carrier(&service.carrier) else {
        return Ok(()); // reported by validation already
    };
    crate::text::plan(text, &carrier.plan_options(service), 0)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A serde/TOML error as one line with its line and column.
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().trim_end_matches('.').replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            ConfigError::new("", format!("line {line}, column {col}: {message}"))
        }
        None => ConfigError::new("", message),
    }
}

// === serde helpers for the summary ===

fn ser_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn ser_days<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs() / 86_400)
}

fn ser_opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis() as u64),
        None => s.serialize_none(),
    }
}

fn ser_octal<S: Serializer>(m: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{m:04o}"))
}

fn ser_status<S: Serializer>(m: &BTreeMap<u32, StatusAction>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(m.len()))?;
    for (k, v) in m {
        map.serialize_entry(&format!("0x{k:08X}"), v)?;
    }
    map.end()
}
