//! Validation: raw → typed, collecting every problem with its key path.
//!
//! Each `check_*` reads one raw table, records errors into `Errors` and
//! returns the typed value with defaults applied (a placeholder where the key
//! was bad: the caller never sees it, because any error fails the whole file).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawAgent, RawCarrier, RawConfig, RawService, RawStore};
use super::{
    AgentConfig, BindMode, CarrierConfig, Concat, Config, ConfigError, ConfigErrors, DaemonConfig,
    DataCoding0, Env, IdFormat, Inbound, LogConfig, MetricsConfig, Secret, SenderType,
    ServiceConfig, StatusAction, StoreConfig, TemplateConfig, TlsConfig,
};
use crate::logging::LogFormat;
use crate::numbers::{self, NumberPolicy};
use crate::optout::{self, Keywords};

/// The length check of shared templates, supplied by the text planner:
/// `Err("needs 8 parts (1100 GSM characters), the limit is 6")`. The message
/// is appended to the template's key path.
pub type TemplateCheck<'a> = &'a dyn Fn(&str, &ServiceConfig) -> Result<(), String>;

/// Collected errors and warnings.
#[derive(Default)]
struct Errors {
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

impl Errors {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    fn warn(&mut self, path: &str, message: impl AsRef<str>) {
        self.warnings.push(format!("{path}: {}", message.as_ref()));
    }

    /// An integer key in `lo..=hi`, or `default` when absent.
    fn int(&mut self, path: &str, v: Option<i64>, default: i64, lo: i64, hi: i64) -> i64 {
        match v {
            None => default,
            Some(x) if (lo..=hi).contains(&x) => x,
            Some(x) => {
                self.add(path, format!("must be between {lo} and {hi}, got {x}"));
                default
            }
        }
    }

    fn secs(&mut self, path: &str, v: Option<i64>, default: u64, lo: i64, hi: i64) -> Duration {
        Duration::from_secs(self.int(path, v, default as i64, lo, hi) as u64)
    }

    /// A string enum key.
    fn choice<T: Copy>(
        &mut self,
        path: &str,
        v: Option<&str>,
        default: T,
        options: &[(&str, T)],
    ) -> T {
        let Some(v) = v else {
            return default;
        };
        if let Some((_, t)) = options.iter().find(|(name, _)| *name == v) {
            return *t;
        }
        let names: Vec<String> = options.iter().map(|(n, _)| format!("{n:?}")).collect();
        self.add(
            path,
            format!("must be one of {}, got {v:?}", names.join(", ")),
        );
        default
    }

    /// A required, non-empty string.
    fn required(&mut self, path: &str, v: Option<&String>) -> String {
        match v.map(|s| s.trim()) {
            Some(s) if !s.is_empty() => s.to_string(),
            Some(_) => {
                self.add(path, "must not be empty");
                String::new()
            }
            None => {
                self.add(path, "is required");
                String::new()
            }
        }
    }
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Turns the raw file into a [`Config`], or every error found.
pub(super) fn validate(raw: RawConfig, env: &dyn Env, base: &Path) -> Result<Config, ConfigErrors> {
    let mut e = Errors::default();
    let store = check_store(&mut e, &raw.store, base);
    let agent = check_agent(&mut e, &raw.agent, base);
    let metrics =
        MetricsConfig {
            listen: raw
                .metrics
                .listen
                .as_deref()
                .and_then(|l| match l.parse::<SocketAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        e.add(
                    "metrics.listen",
                    format!("must be an address with a port such as \"127.0.0.1:9187\", got {l:?}"),
                );
                        None
                    }
                }),
        };
    let log = LogConfig {
        format: e.choice(
            "log.format",
            raw.log.format.as_deref(),
            LogFormat::Human,
            &[("human", LogFormat::Human), ("json", LogFormat::Json)],
        ),
        level: {
            let level = raw.log.level.clone().unwrap_or_else(|| "info".to_string());
            if let Err(err) = crate::logging::parse_level(&level) {
                e.add("log.level", err.to_string());
            }
            level
        },
    };
    let daemon = DaemonConfig {
        shutdown_grace: e.secs(
            "daemon.shutdown_grace_secs",
            raw.daemon.shutdown_grace_secs,
            30,
            1,
            3600,
        ),
    };

    let carriers: Vec<CarrierConfig> = raw
        .carrier
        .iter()
        .enumerate()
        .map(|(i, c)| check_carrier(&mut e, &format!("carrier[{i}]"), c, env, base))
        .collect();
    check_carrier_set(&mut e, &carriers);

    let services: Vec<ServiceConfig> = raw
        .service
        .iter()
        .enumerate()
        .map(|(i, s)| check_service(&mut e, &format!("service[{i}]"), s, &carriers))
        .collect();
    check_service_set(&mut e, &services);

    if e.errors.is_empty() {
        Ok(Config {
            store,
            agent,
            metrics,
            log,
            daemon,
            carriers,
            services,
            warnings: e.warnings,
        })
    } else {
        Err(ConfigErrors { errors: e.errors })
    }
}

fn check_store(e: &mut Errors, s: &RawStore, base: &Path) -> StoreConfig {
    let path = match s.path.as_deref() {
        Some(p) if p.trim().is_empty() => {
            e.add("store.path", "must not be empty");
            PathBuf::new()
        }
        Some(p) => resolve(base, p),
        None => PathBuf::from("/var/lib/smppgw/store"),
    };
    StoreConfig {
        path,
        flush_every: s.flush_every_ms.map(|v| {
            Duration::from_millis(e.int("store.flush_every_ms", Some(v), 0, 0, 10_000) as u64)
        }),
        retention: Duration::from_secs(
            e.int("store.retention_days", s.retention_days, 90, 1, 36_500) as u64 * 86_400,
        ),
        event_log_max_age: Duration::from_secs(
            e.int(
                "store.event_log_max_age_days",
                s.event_log_max_age_days,
                7,
                1,
                3650,
            ) as u64
                * 86_400,
        ),
        cache_mb: e.int(
            "store.cache_mb",
            s.cache_mb,
            crate::store::DEFAULT_CACHE_MB as i64,
            1,
            65_536,
        ) as u64,
        outbox_limit: e.int(
            "store.outbox_limit",
            s.outbox_limit,
            super::DEFAULT_OUTBOX_LIMIT as i64,
            1,
            100_000_000,
        ) as u64,
    }
}

fn check_agent(e: &mut Errors, a: &RawAgent, base: &Path) -> AgentConfig {
    let socket = match a.socket.as_deref() {
        Some(p) if p.trim().is_empty() => {
            e.add("agent.socket", "must not be empty");
            PathBuf::new()
        }
        Some(p) => resolve(base, p),
        None => PathBuf::from("/run/smppgw/agent.sock"),
    };
    // sun_path holds 108 bytes with its NUL
    if socket.as_os_str().len() > 107 {
        e.add(
            "agent.socket",
            format!(
                "path is {} bytes, a Unix socket path holds at most 107",
                socket.as_os_str().len()
            ),
        );
    }
    let mode = match a.mode.as_deref() {
        None => 0o660,
        Some(m) => match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
            Ok(v) if v <= 0o777 => v,
            _ => {
                e.add(
                    "agent.mode",
                    format!("must be an octal file mode such as \"0660\", got {m:?}"),
                );
                0o660
            }
        },
    };
    if mode & 0o002 != 0 {
        e.warn(
            "agent.mode",
            format!("{mode:04o} lets every local user talk to the agent socket"),
        );
    }
    let mut uids = Vec::new();
    for (i, u) in a.allowed_uids.iter().flatten().enumerate() {
        match u32::try_from(*u) {
            Ok(u) => uids.push(u),
            Err(_) => e.add(
                format!("agent.allowed_uids[{i}]"),
                format!("not a uid: {u}"),
            ),
        }
    }
    AgentConfig {
        socket,
        mode,
        group: a.group.clone().filter(|g| !g.is_empty()),
        allowed_uids: uids,
        max_connections: e.int("agent.max_connections", a.max_connections, 64, 1, 10_000) as usize,
        max_line_bytes: e.int(
            "agent.max_line_bytes",
            a.max_line_bytes,
            65_536,
            1024,
            16 << 20,
        ) as usize,
        subscriber_buffer: e.int(
            "agent.subscriber_buffer",
            a.subscriber_buffer,
            1024,
            1,
            1 << 20,
        ) as usize,
        max_templates_per_agent: e.int(
            "agent.max_templates_per_agent",
            a.max_templates_per_agent,
            200,
            1,
            100_000,
        ) as usize,
    }
}

/// The password from exactly one of `password`, `password_file`, `password_env`.
fn check_password(e: &mut Errors, p: &str, c: &RawCarrier, env: &dyn Env, base: &Path) -> Secret {
    let given = [
        c.password.is_some(),
        c.password_file.is_some(),
        c.password_env.is_some(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => {
            e.add(
                format!("{p}.password"),
                "is required (or password_file, or password_env)",
            );
            return Secret::default();
        }
        1 => {}
        _ => {
            e.add(
                format!("{p}.password"),
                "give only one of password, password_file, password_env",
            );
            return Secret::default();
        }
    }
    if let Some(v) = &c.password {
        return Secret::new(v.clone());
    }
    if let Some(f) = &c.password_file {
        let path = resolve(base, f);
        return match std::fs::read_to_string(&path) {
            // a trailing newline is the editor's, not the password's
            Ok(s) => Secret::new(s.trim_end_matches(['\n', '\r']).to_string()),
            Err(err) => {
                e.add(
                    format!("{p}.password_file"),
                    format!("cannot read {}: {err}", path.display()),
                );
                Secret::default()
            }
        };
    }
    if let Some(name) = &c.password_env {
        return match env.var(name) {
            Some(v) => Secret::new(v),
            None => {
                e.add(
                    format!("{p}.password_env"),
                    format!("environment variable {name} is not set"),
                );
                Secret::default()
            }
        };
    }
    Secret::default()
}

/// SMPP 3.4 limit (octets without the NUL) → warning, or error under strict_lengths.
fn check_len(e: &mut Errors, path: &str, what: &str, len: usize, max: usize, strict: bool) {
    if len > max {
        let msg = format!("{what} is {len} characters, SMPP 3.4 allows {max}");
        if strict {
            e.add(path, format!("{msg} (strict_lengths is on)"));
        } else {
            e.warn(
                path,
                format!("{msg}; sent as configured, set strict_lengths to refuse"),
            );
        }
    }
}

fn check_file(e: &mut Errors, path: &str, v: Option<&String>, base: &Path) -> Option<PathBuf> {
    let p = resolve(base, v?);
    if !p.is_file() {
        e.add(path, format!("no such file: {}", p.display()));
    }
    Some(p)
}

fn check_carrier(
    e: &mut Errors,
    p: &str,
    c: &RawCarrier,
    env: &dyn Env,
    base: &Path,
) -> CarrierConfig {
    let name = e.required(&format!("{p}.name"), c.name.as_ref());
    let host = e.required(&format!("{p}.host"), c.host.as_ref());
    let port = match c.port {
        None => {
            e.add(format!("{p}.port"), "is required");
            0
        }
        Some(v) => e.int(&format!("{p}.port"), Some(v), 0, 1, 65_535) as u16,
    };
    let local_address = c
        .local_address
        .as_deref()
        .and_then(|a| match a.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                e.add(
                    format!("{p}.local_address"),
                    format!("must be an IP address, got {a:?}"),
                );
                None
            }
        });
    let tls_on = c.tls.unwrap_or(false);
    let tls = if tls_on {
        let client_cert = check_file(e, &format!("{p}.client_cert"), c.client_cert.as_ref(), base);
        let client_key = check_file(e, &format!("{p}.client_key"), c.client_key.as_ref(), base);
        if client_cert.is_some() != client_key.is_some() {
            e.add(
                format!(
                    "{p}.{}",
                    if client_cert.is_some() {
                        "client_key"
                    } else {
                        "client_cert"
                    }
                ),
                "client_cert and client_key go together",
            );
        }
        Some(TlsConfig {
            ca: check_file(e, &format!("{p}.ca"), c.ca.as_ref(), base),
            client_cert,
            client_key,
            server_name: c.server_name.clone().filter(|s| !s.is_empty()),
        })
    } else {
        for (key, v) in [
            ("ca", &c.ca),
            ("client_cert", &c.client_cert),
            ("client_key", &c.client_key),
            ("server_name", &c.server_name),
        ] {
            if v.is_some() {
                e.add(format!("{p}.{key}"), "is set but tls is false");
            }
        }
        None
    };
    let strict = c.strict_lengths.unwrap_or(false);
    let system_id = e.required(&format!("{p}.system_id"), c.system_id.as_ref());
    check_len(
        e,
        &format!("{p}.system_id"),
        "system_id",
        system_id.len(),
        15,
        strict,
    );
    let password = check_password(e, p, c, env, base);
    check_len(
        e,
        &format!("{p}.password"),
        "password",
        password.len(),
        8,
        strict,
    );
    if !tls_on && !host.is_empty() && !is_loopback(&host) {
        e.warn(
            &format!("{p}.tls"),
            "off: system_id and password cross the network in clear text",
        );
    }
    let system_type = c.system_type.clone().unwrap_or_default();
    check_len(
        e,
        &format!("{p}.system_type"),
        "system_type",
        system_type.len(),
        12,
        strict,
    );
    let address_range = c.address_range.clone().unwrap_or_default();
    check_len(
        e,
        &format!("{p}.address_range"),
        "address_range",
        address_range.len(),
        40,
        strict,
    );

    let ton = |e: &mut Errors, key: &str, v: Option<i64>| {
        v.map(|v| e.int(&format!("{p}.{key}"), Some(v), 0, 0, 6) as u8)
    };
    let npi = |e: &mut Errors, key: &str, v: Option<i64>| {
        v.map(|v| e.int(&format!("{p}.{key}"), Some(v), 0, 0, 18) as u8)
    };
    let reconnect_min = e.secs(
        &format!("{p}.reconnect_min_secs"),
        c.reconnect_min_secs,
        1,
        1,
        3600,
    );
    let reconnect_max = e.secs(
        &format!("{p}.reconnect_max_secs"),
        c.reconnect_max_secs,
        60,
        1,
        86_400,
    );
    if reconnect_max < reconnect_min {
        e.add(
            format!("{p}.reconnect_max_secs"),
            format!(
                "must be at least reconnect_min_secs ({}), got {}",
                reconnect_min.as_secs(),
                reconnect_max.as_secs()
            ),
        );
    }
    let mut status = BTreeMap::new();
    for (k, v) in c.status.iter().flatten() {
        let path = format!("{p}.status.\"{k}\"");
        let code = match k.strip_prefix("0x").or_else(|| k.strip_prefix("0X")) {
            Some(hex) => u32::from_str_radix(hex, 16).ok(),
            None => k.parse::<u32>().ok(),
        };
        let action = e.choice(
            &path,
            Some(v.as_str()),
            StatusAction::Permanent,
            &[
                ("temporary", StatusAction::Temporary),
                ("permanent", StatusAction::Permanent),
                ("rebind", StatusAction::Rebind),
            ],
        );
        match code {
            Some(0) => e.add(&path, "ESME_ROK cannot be overridden"),
            Some(code) => {
                status.insert(code, action);
            }
            None => e.add(
                &path,
                "key must be a command_status such as \"0x58\" or \"88\"",
            ),
        }
    }
    let default_country = c.default_country.as_deref().map(|dc| {
        let up = dc.to_ascii_uppercase();
        if !numbers::is_known_region(&up) {
            e.add(
                format!("{p}.default_country"),
                format!("not a region the number metadata knows: {dc:?}"),
            );
        }
        up
    });

    CarrierConfig {
        name,
        host,
        port,
        local_address,
        tls,
        system_id,
        password,
        system_type,
        address_range,
        bind: e.choice(
            &format!("{p}.bind"),
            c.bind.as_deref(),
            BindMode::Transceiver,
            &[
                ("transceiver", BindMode::Transceiver),
                ("transmitter+receiver", BindMode::TransmitterReceiver),
            ],
        ),
        binds: e.int(&format!("{p}.binds"), c.binds, 1, 1, 32) as u32,
        window: e.int(&format!("{p}.window"), c.window, 10, 1, 1000) as u32,
        tps: e.int(&format!("{p}.tps"), c.tps, 10, 1, 10_000) as u32,
        enquire_link: e.secs(
            &format!("{p}.enquire_link_secs"),
            c.enquire_link_secs,
            30,
            1,
            3600,
        ),
        enquire_link_timeout: e.secs(
            &format!("{p}.enquire_link_timeout_secs"),
            c.enquire_link_timeout_secs,
            10,
            1,
            600,
        ),
        inactivity: e.secs(
            &format!("{p}.inactivity_secs"),
            c.inactivity_secs,
            300,
            1,
            86_400,
        ),
        response_timeout: e.secs(
            &format!("{p}.response_timeout_secs"),
            c.response_timeout_secs,
            30,
            1,
            3600,
        ),
        bind_timeout: e.secs(
            &format!("{p}.bind_timeout_secs"),
            c.bind_timeout_secs,
            30,
            1,
            600,
        ),
        connect_timeout: e.secs(
            &format!("{p}.connect_timeout_secs"),
            c.connect_timeout_secs,
            10,
            1,
            600,
        ),
        unbind_timeout: e.secs(
            &format!("{p}.unbind_timeout_secs"),
            c.unbind_timeout_secs,
            5,
            1,
            600,
        ),
        reconnect_min,
        reconnect_max,
        already_bound_wait: e.secs(
            &format!("{p}.already_bound_wait_secs"),
            c.already_bound_wait_secs,
            60,
            1,
            86_400,
        ),
        auth_failure_retry: e.secs(
            &format!("{p}.auth_failure_retry_secs"),
            c.auth_failure_retry_secs,
            900,
            10,
            86_400,
        ),
        max_resubmits: e.int(&format!("{p}.max_resubmits"), c.max_resubmits, 1, 0, 10) as u32,
        resubmit_delay: e.secs(
            &format!("{p}.resubmit_delay_secs"),
            c.resubmit_delay_secs,
            30,
            0,
            3600,
        ),
        data_coding0: e.choice(
            &format!("{p}.data_coding0"),
            c.data_coding0.as_deref(),
            DataCoding0::Gsm,
            &[
                ("gsm", DataCoding0::Gsm),
                ("gsm_packed", DataCoding0::GsmPacked),
                ("latin1", DataCoding0::Latin1),
                ("ascii", DataCoding0::Ascii),
            ],
        ),
        allow_latin1: c.allow_latin1.unwrap_or(false),
        allow_ia5: c.allow_ia5.unwrap_or(false),
        at_as_ucs2: c.at_as_ucs2.unwrap_or(false),
        concat: e.choice(
            &format!("{p}.concat"),
            c.concat.as_deref(),
            Concat::Udh8,
            &[
                ("udh8", Concat::Udh8),
                ("udh16", Concat::Udh16),
                ("sar", Concat::Sar),
                ("payload", Concat::Payload),
            ],
        ),
        id_format: e.choice(
            &format!("{p}.id_format"),
            c.id_format.as_deref(),
            IdFormat::Auto,
            &[
                ("auto", IdFormat::Auto),
                ("decimal", IdFormat::Decimal),
                ("hex", IdFormat::Hex),
                ("raw", IdFormat::Raw),
            ],
        ),
        receipt_timeout: e.secs(
            &format!("{p}.receipt_timeout_secs"),
            c.receipt_timeout_secs,
            48 * 3600,
            60,
            30 * 86_400,
        ),
        acceptd_final: c.acceptd_final.unwrap_or(false),
        source_ton: ton(e, "source_ton", c.source_ton),
        source_npi: npi(e, "source_npi", c.source_npi),
        dest_ton: ton(e, "dest_ton", c.dest_ton).unwrap_or(1),
        dest_npi: npi(e, "dest_npi", c.dest_npi).unwrap_or(1),
        default_country,
        max_pdu_bytes: e.int(
            &format!("{p}.max_pdu_bytes"),
            c.max_pdu_bytes,
            16_384,
            1024,
            1 << 20,
        ) as usize,
        strict_lengths: strict,
        status,
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn check_carrier_set(e: &mut Errors, carriers: &[CarrierConfig]) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut accounts: HashMap<(String, &str), usize> = HashMap::new();
    for (i, c) in carriers.iter().enumerate() {
        if c.name.is_empty() {
            continue;
        }
        if let Some(first) = names.insert(&c.name, i) {
            e.add(
                format!("carrier[{i}].name"),
                format!("{:?} is already the name of carrier[{first}]", c.name),
            );
        }
        if c.system_id.is_empty() || c.host.is_empty() {
            continue;
        }
        let key = (c.host.to_ascii_lowercase(), c.system_id.as_str());
        if let Some(first) = accounts.insert(key, i) {
            e.add(
                format!("carrier[{i}].system_id"),
                format!(
                    "system_id {:?} on {} is already used by carrier[{first}]; two configurations of one account steal each other's receipts and replies",
                    c.system_id, c.host
                ),
            );
        }
    }
}

/// Sender type from its characters: any non-digit → alphanumeric, 3 to 8
/// digits → short code, else long number (CARRIERS §5).
pub fn derive_sender_type(sender: &str) -> SenderType {
    let digits = sender.strip_prefix('+').unwrap_or(sender);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        SenderType::Alphanumeric
    } else if (3..=8).contains(&digits.len()) && !sender.starts_with('+') {
        SenderType::Short
    } else {
        SenderType::Long
    }
}

/// Characters an alphanumeric sender may use: printable ASCII that is in the
/// GSM 03.38 basic set (no backquote, braces, brackets, backslash, tilde,
/// caret or vertical bar).
fn is_gsm_sender_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " !\"#%&'()*+,-./:;<=>?@_$".contains(c)
}

fn check_sender(e: &mut Errors, p: &str, sender: &str, ty: SenderType) -> String {
    let path = format!("{p}.sender");
    match ty {
        SenderType::Alphanumeric => {
            let n = sender.chars().count();
            if n > 11 {
                e.add(
                    &path,
                    format!("an alphanumeric sender has at most 11 characters, got {n}"),
                );
            }
            if let Some(c) = sender.chars().find(|c| !is_gsm_sender_char(*c)) {
                e.add(
                    &path,
                    format!("{c:?} is not allowed in an alphanumeric sender"),
                );
            }
            sender.to_string()
        }
        SenderType::Short => {
            if !(3..=8).contains(&sender.len()) || !sender.bytes().all(|b| b.is_ascii_digit()) {
                e.add(
                    &path,
                    format!("a short code is 3 to 8 digits, got {sender:?}"),
                );
            }
            sender.to_string()
        }
        SenderType::Long => {
            let digits = sender.strip_prefix('+').unwrap_or(sender);
            if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                e.add(
                    &path,
                    format!(
                        "a long number is 7 to 15 digits in international form, got {sender:?}"
                    ),
                );
            }
            digits.to_string()
        }
    }
}

fn check_keywords(e: &mut Errors, p: &str, s: &RawService) -> Keywords {
    let list = |v: &Option<Vec<String>>, d: &[&str]| -> Vec<String> {
        match v {
            Some(v) => v.clone(),
            None => d.iter().map(|s| s.to_string()).collect(),
        }
    };
    let kw = Keywords::new(
        &list(&s.optout_keywords, optout::DEFAULT_OPTOUT),
        &list(&s.optin_keywords, optout::DEFAULT_OPTIN),
        &list(&s.help_keywords, optout::DEFAULT_HELP),
    );
    if let Some(w) = kw.overlap() {
        e.add(
            format!("{p}.optout_keywords"),
            format!("{w:?} is in more than one keyword list"),
        );
    }
    if kw.optout.is_empty() {
        e.warn(
            &format!("{p}.optout_keywords"),
            "empty: customers cannot opt out by text",
        );
    }
    kw
}

fn check_service(
    e: &mut Errors,
    p: &str,
    s: &RawService,
    carriers: &[CarrierConfig],
) -> ServiceConfig {
    let name = e.required(&format!("{p}.name"), s.name.as_ref());
    let raw_sender = e.required(&format!("{p}.sender"), s.sender.as_ref());
    let sender_type = e.choice(
        &format!("{p}.sender_type"),
        s.sender_type.as_deref(),
        derive_sender_type(&raw_sender),
        &[
            ("long", SenderType::Long),
            ("short", SenderType::Short),
            ("alphanumeric", SenderType::Alphanumeric),
        ],
    );
    let sender = if raw_sender.is_empty() {
        raw_sender
    } else {
        check_sender(e, p, &raw_sender, sender_type)
    };
    let carrier = e.required(&format!("{p}.carrier"), s.carrier.as_ref());
    if !carrier.is_empty() && !carriers.iter().any(|c| c.name == carrier) {
        e.add(
            format!("{p}.carrier"),
            format!("no carrier named {carrier:?}"),
        );
    }
    let fallback_carrier = s.fallback_carrier.clone();
    if let Some(f) = &fallback_carrier {
        if !carriers.iter().any(|c| &c.name == f) {
            e.add(
                format!("{p}.fallback_carrier"),
                format!("no carrier named {f:?}"),
            );
        } else if *f == carrier {
            e.add(format!("{p}.fallback_carrier"), "is the same as carrier");
        }
    }
    let default_country = match s.default_country.as_deref() {
        Some(dc) => {
            let up = dc.to_ascii_uppercase();
            if !numbers::is_known_region(&up) {
                e.add(
                    format!("{p}.default_country"),
                    format!("not an ISO 3166 alpha-2 region the number metadata knows: {dc:?}"),
                );
            }
            up
        }
        None => {
            // a long-number sender tells its own country
            let derived = (sender_type == SenderType::Long)
                .then(|| numbers::check(&format!("+{sender}"), "ZZ", NumberPolicy::Valid).country)
                .flatten();
            match derived {
                Some(c) => c,
                None => {
                    e.add(
                        format!("{p}.default_country"),
                        "is required when the sender is not a long number (ISO 3166 alpha-2, e.g. \"GB\")",
                    );
                    String::new()
                }
            }
        }
    };
    let numbers = match s.numbers.as_deref() {
        None => NumberPolicy::Mobile,
        Some(v) => v.parse().unwrap_or_else(|msg: String| {
            e.add(format!("{p}.numbers"), msg);
            NumberPolicy::Mobile
        }),
    };
    let agents = s.agents.clone();
    if let Some(a) = &agents {
        if a.is_empty() {
            e.warn(
                &format!("{p}.agents"),
                "empty list: no agent may use this service",
            );
        }
        for (i, name) in a.iter().enumerate() {
            if name.trim().is_empty() {
                e.add(format!("{p}.agents[{i}]"), "must not be empty");
            }
        }
    }
    let mut templates = Vec::with_capacity(s.template.len());
    for (i, t) in s.template.iter().enumerate() {
        let tp = format!("{p}.template[{i}]");
        let name = e.required(&format!("{tp}.name"), t.name.as_ref());
        let text = match &t.text {
            Some(t) if !t.trim().is_empty() => t.clone(),
            Some(_) => {
                e.add(format!("{tp}.text"), "must not be empty");
                String::new()
            }
            None => {
                e.add(format!("{tp}.text"), "is required");
                String::new()
            }
        };
        if !name.is_empty() && templates.iter().any(|t: &TemplateConfig| t.name == name) {
            e.add(
                format!("{tp}.name"),
                format!("{name:?} is already a template of this service"),
            );
        }
        templates.push(TemplateConfig { name, text });
    }
    let keywords = check_keywords(e, p, s);
    ServiceConfig {
        name,
        sender,
        sender_type,
        carrier,
        fallback_carrier,
        max_parts: e.int(&format!("{p}.max_parts"), s.max_parts, 6, 1, 255) as u8,
        inbound: e.choice(
            &format!("{p}.inbound"),
            s.inbound.as_deref(),
            Inbound::Ignore,
            &[("ignore", Inbound::Ignore), ("new_chat", Inbound::NewChat)],
        ),
        default_country,
        numbers,
        agents,
        transliterate: s.transliterate.unwrap_or(false),
        templates,
        keywords,
        optout_confirmation: s
            .optout_confirmation
            .clone()
            .filter(|t| !t.trim().is_empty()),
        help_text: s.help_text.clone().filter(|t| !t.trim().is_empty()),
    }
}

fn check_service_set(e: &mut Errors, services: &[ServiceConfig]) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        if s.name.is_empty() {
            continue;
        }
        if let Some(first) = names.insert(&s.name, i) {
            e.add(
                format!("service[{i}].name"),
                format!("{:?} is already the name of service[{first}]", s.name),
            );
        }
    }
}

/// Runs the text planner's length check over every shared template. The lead
/// calls it after [`super::load`] / [`super::parse`] (this module does not
/// depend on `text`); errors carry the template's key path
/// (`service[0].template[2].text: ...`).
///
/// # Errors
/// One entry per template the check refuses.
pub fn validate_templates(config: &Config, check: TemplateCheck<'_>) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    for (i, s) in config.services.iter().enumerate() {
        for (j, t) in s.templates.iter().enumerate() {
            if let Err(msg) = check(&t.text, s) {
                errors.push(ConfigError::new(
                    format!("service[{i}].template[{j}].text"),
                    format!("template {:?}: {msg}", t.name),
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors { errors })
    }
}
