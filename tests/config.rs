//! Config files parse and validate; bad files report every error with its key path.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use smppgw::config::{self, BindMode, ConfigErrors, Env, Inbound, SenderType, StatusAction};
use smppgw::numbers::NumberPolicy;
use smppgw::optout::{Keyword, classify};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse(text: &str) -> Result<config::Config, ConfigErrors> {
    config::parse(text, &env(&[]), Path::new("/etc/smppgw"))
}

fn errors(text: &str) -> ConfigErrors {
    match parse(text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(e) => e,
    }
}

const MINIMAL: &str = r#"
[[carrier]]
name = "acme"
host = "smpp.example.net"
port = 2775
system_id = "contoso"
password = "pw"

[[service]]
name = "support"
sender = "447400123456"
carrier = "acme"
"#;

#[test]
fn example_config_validates() {
    let text = std::fs::read_to_string(config_dir().join("smppgw.example.toml")).unwrap();
    let cfg = config::parse(
        &text,
        &env(&[("SMPPGW_ACME_PASSWORD", "s3cret")]),
        &config_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.carriers[0].password.expose(), "s3cret");
    assert_eq!(cfg.services[0].default_country, "GB");
    assert_eq!(cfg.services[0].templates.len(), 1);
}

#[test]
fn demo_config_validates_and_points_at_the_simulator() {
    let cfg = config::parse(
        &std::fs::read_to_string(config_dir().join("demo.toml")).unwrap(),
        &env(&[]),
        &config_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let sim = cfg.carrier("sim").unwrap();
    assert_eq!((sim.host.as_str(), sim.port), ("127.0.0.1", 2775));
    assert_eq!(sim.system_id, "smppgw");
    assert_eq!(sim.password.expose(), "demo-pass");
    assert_eq!(
        cfg.service("support").unwrap().sender_type,
        SenderType::Long
    );
    let alerts = cfg.service("alerts").unwrap();
    assert_eq!(alerts.sender_type, SenderType::Alphanumeric);
    assert_eq!(alerts.sender, "ACME");
    assert!(cfg.store.path.starts_with(config_dir()));
}

#[test]
fn dev_config_validates_with_its_password_from_the_environment() {
    let text = std::fs::read_to_string(config_dir().join("dev.toml")).unwrap();
    let cfg = config::parse(&text, &env(&[("SMPPGW_SIM_PASSWORD", "x")]), &config_dir()).unwrap();
    assert_eq!(cfg.carriers[0].bind, BindMode::TransmitterReceiver);
    let err = config::parse(&text, &env(&[]), &config_dir()).unwrap_err();
    assert!(
        err.has("carrier[0].password_env", "SMPPGW_SIM_PASSWORD is not set"),
        "{err}"
    );
}

#[test]
fn defaults_fill_every_optional_key() {
    let cfg = parse(MINIMAL).unwrap();
    let c = &cfg.carriers[0];
    assert_eq!(c.window, 10);
    assert_eq!(c.binds, 1);
    assert_eq!(c.enquire_link, Duration::from_secs(30));
    assert_eq!(c.already_bound_wait, Duration::from_secs(60));
    assert_eq!(c.auth_failure_retry, Duration::from_secs(900));
    assert_eq!((c.dest_ton, c.dest_npi), (1, 1));
    assert_eq!(cfg.agent.mode, 0o660);
    assert_eq!(cfg.daemon.shutdown_grace, Duration::from_secs(30));
    assert_eq!(cfg.store.cache_mb, smppgw::store::DEFAULT_CACHE_MB);
    assert_eq!(cfg.store.outbox_limit, smppgw::config::DEFAULT_OUTBOX_LIMIT);
    assert_eq!(
        cfg.store.options().cache_bytes,
        smppgw::store::DEFAULT_CACHE_MB << 20
    );
    assert_eq!(cfg.store.options().flush_every, None);
    let s = &cfg.services[0];
    assert_eq!(s.numbers, NumberPolicy::Mobile);
    assert_eq!(s.inbound, Inbound::Ignore);
    assert_eq!(s.max_parts, 6);
    assert_eq!(classify("stop", &s.keywords), Some(Keyword::OptOut));
    assert_eq!(classify("UNSTOP", &s.keywords), Some(Keyword::OptIn));
}

#[test]
fn every_error_is_reported_at_once_with_its_key_path() {
    let err = errors(
        r#"
[store]
cache_mb = 0
outbox_limit = 0

[agent]
mode = "rw-rw----"
max_templates_per_agent = 0

[log]
format = "xml"

[[carrier]]
name = "acme"
host = "smpp.example.net"
port = 70000
system_id = "contoso"
password = "pw"
window = 0
concat = "udh9"

[[service]]
name = "support"
sender = "447400123456"
carrier = "acme"

[[service]]
name = "sales"
sender = "447400123457"
carrier = "nope"
default_country = "XX"
"#,
    );
    let text = err.to_string();
    for (path, needle) in [
        ("store.cache_mb", "between 1 and 65536, got 0"),
        ("store.outbox_limit", "between 1 and 100000000, got 0"),
        ("agent.mode", "octal"),
        (
            "agent.max_templates_per_agent",
            "between 1 and 100000, got 0",
        ),
        ("log.format", "got \"xml\""),
        ("carrier[0].port", "between 1 and 65535, got 70000"),
        ("carrier[0].window", "must be between 1 and 1000, got 0"),
        ("carrier[0].concat", "\"udh9\""),
        ("service[1].carrier", "no carrier named \"nope\""),
        ("service[1].default_country", "\"XX\""),
    ] {
        assert!(err.has(path, needle), "missing {path}: {needle} in\n{text}");
    }
    assert_eq!(err.errors.len(), 10, "{text}");
    assert_eq!(text.lines().count(), 10);
    assert!(text.contains("carrier[0].window: must be between 1 and 1000, got 0"));
}

#[test]
fn rejects_unknown_keys() {
    let err = errors(&format!("{MINIMAL}\nwindw = 5\n"));
    assert!(err.to_string().contains("windw"), "{err}");
    assert!(err.to_string().starts_with("line "), "{err}");
}

#[test]
fn rejects_duplicate_names_and_a_shared_account() {
    let err = errors(
        r#"
[[carrier]]
name = "acme"
host = "smpp.example.net"
port = 2775
system_id = "contoso"
password = "pw"

[[carrier]]
name = "acme"
host = "SMPP.example.net"
port = 2776
system_id = "contoso"
password = "pw"

[[service]]
name = "s"
sender = "447400123456"
carrier = "acme"

[[service]]
name = "s"
sender = "447400123456"
carrier = "acme"
"#,
    );
    assert!(
        err.has("carrier[1].name", "already the name of carrier[0]"),
        "{err}"
    );
    assert!(
        err.has("carrier[1].system_id", "steal each other's receipts"),
        "{err}"
    );
    assert!(
        err.has("service[1].name", "already the name of service[0]"),
        "{err}"
    );
}

#[test]
fn rejects_missing_and_doubled_passwords() {
    let none = MINIMAL.replace("password = \"pw\"\n", "");
    assert!(errors(&none).has("carrier[0].password", "is required"));
    let both = MINIMAL.replace(
        "password = \"pw\"",
        "password = \"pw\"\npassword_env = \"X\"",
    );
    assert!(errors(&both).has("carrier[0].password", "only one"));
}

#[test]
fn password_file_is_read_and_its_newline_dropped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme.pw"), "from-file\n").unwrap();
    let text = MINIMAL.replace("password = \"pw\"", "password_file = \"acme.pw\"");
    let cfg = config::parse(&text, &env(&[]), dir.path()).unwrap();
    assert_eq!(cfg.carriers[0].password.expose(), "from-file");
    let missing = config::parse(&text, &env(&[]), Path::new("/nonexistent")).unwrap_err();
    assert!(
        missing.has("carrier[0].password_file", "cannot read"),
        "{missing}"
    );
}

#[test]
fn secrets_never_show_in_debug_display_or_summary() {
    let text = MINIMAL.replace("password = \"pw\"", "password = \"hunter2-long\"");
    let cfg = parse(&text).unwrap();
    assert!(!format!("{cfg:?}").contains("hunter2"));
    assert!(!format!("{:#?}", cfg.carriers[0]).contains("hunter2"));
    assert!(!format!("{}", cfg.carriers[0].password).contains("hunter2"));
    let summary = cfg.summary();
    assert!(!summary.contains("hunter2"), "{summary}");
    assert!(summary.contains("<redacted>"), "{summary}");
    assert!(summary.contains("window = 10"), "{summary}");
}

#[test]
fn long_password_warns_and_strict_lengths_refuses() {
    let long = MINIMAL.replace("password = \"pw\"", "password = \"twelve-chars\"");
    let cfg = parse(&long).unwrap();
    assert!(
        cfg.warnings
            .iter()
            .any(|w| w.starts_with("carrier[0].password:") && w.contains("12 characters")),
        "{:?}",
        cfg.warnings
    );
    let strict = long.replace("system_id", "strict_lengths = true\nsystem_id");
    assert!(errors(&strict).has("carrier[0].password", "SMPP 3.4 allows 8"));
}

#[test]
fn sender_type_is_derived_and_checked() {
    let with_sender = |s: &str| MINIMAL.replace("\"447400123456\"", &format!("{s:?}"));
    let short = parse(&with_sender("12345").replace(
        "carrier = \"acme\"\n",
        "carrier = \"acme\"\ndefault_country = \"GB\"\n",
    ))
    .unwrap();
    assert_eq!(short.services[0].sender_type, SenderType::Short);
    let plus = parse(&with_sender("+819012345678")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plus.services[0].sender, "819012345678");
    assert_eq!(plus.services[0].default_country, "JP");
    let err = errors(&with_sender("ACME-Alerts-UK"));
    assert!(
        err.has("service[0].sender", "at most 11 characters"),
        "{err}"
    );
    assert!(
        err.has("service[0].default_country", "is required"),
        "{err}"
    );
}

#[test]
fn status_overrides_parse_hex_and_decimal_codes() {
    let text = MINIMAL.replace(
        "[[service]]",
        "[carrier.status]\n\"0x45\" = \"temporary\"\n\"88\" = \"rebind\"\n\n[[service]]",
    );
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.carriers[0].status.get(&0x45),
        Some(&StatusAction::Temporary)
    );
    assert_eq!(cfg.carriers[0].status.get(&88), Some(&StatusAction::Rebind));
    let bad = MINIMAL.replace(
        "[[service]]",
        "[carrier.status]\n\"zz\" = \"often\"\n\n[[service]]",
    );
    let err = errors(&bad);
    assert_eq!(err.errors.len(), 2, "{err}");
}

#[test]
fn tls_files_need_tls_on() {
    let err = errors(&MINIMAL.replace("system_id", "ca = \"ca.pem\"\nsystem_id"));
    assert!(err.has("carrier[0].ca", "tls is false"), "{err}");
    let err = errors(&MINIMAL.replace(
        "system_id",
        "tls = true\nca = \"missing.pem\"\nclient_cert = \"c.pem\"\nsystem_id",
    ));
    assert!(err.has("carrier[0].ca", "no such file"), "{err}");
    assert!(err.has("carrier[0].client_key", "go together"), "{err}");
}

#[test]
fn keyword_lists_are_configurable_in_any_language() {
    let text = MINIMAL.replace(
        "carrier = \"acme\"\n",
        "carrier = \"acme\"\noptout_keywords = [\"停止\", \"配信停止\"]\noptin_keywords = [\"開始\"]\n",
    );
    let cfg = parse(&text).unwrap();
    let kw = &cfg.services[0].keywords;
    assert_eq!(classify("配信停止", kw), Some(Keyword::OptOut));
    assert_eq!(classify("STOP", kw), None);
    let clash = MINIMAL.replace(
        "carrier = \"acme\"\n",
        "carrier = \"acme\"\noptin_keywords = [\"stop\"]\n",
    );
    assert!(errors(&clash).has("service[0].optout_keywords", "more than one"));
}

#[test]
fn too_long_templates_are_reported_with_their_key_path() {
    let text = format!(
        "{MINIMAL}max_parts = 1\n[[service.template]]\nname = \"short\"\ntext = \"hi\"\n[[service.template]]\nname = \"long\"\ntext = \"{}\"\n",
        "x".repeat(200)
    );
    // The real planner counts: 200 GSM septets need 2 parts, the limit is 1.
    let err = errors(&text);
    assert_eq!(err.errors.len(), 1, "{err}");
    assert!(
        err.has("service[0].template[1].text", "200 septets"),
        "{err}"
    );
    assert!(
        err.has("service[0].template[1].text", "the limit is 1"),
        "{err}"
    );
}

#[test]
fn a_template_that_fits_its_parts_is_accepted() {
    let text = format!(
        "{MINIMAL}max_parts = 1\n[[service.template]]\nname = \"full\"\ntext = \"{}\"\n",
        "x".repeat(160)
    );
    let cfg = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.services[0].templates.len(), 1);
}

#[test]
fn env_trait_is_what_password_env_reads() {
    struct Fixed;
    impl Env for Fixed {
        fn var(&self, name: &str) -> Option<String> {
            (name == "P").then(|| "from-env".to_string())
        }
    }
    let text = MINIMAL.replace("password = \"pw\"", "password_env = \"P\"");
    let cfg = config::parse(&text, &Fixed, Path::new("/")).unwrap();
    assert_eq!(cfg.carriers[0].password.expose(), "from-env");
}

/// Every `smppgw_*` metric the alert rules and the dashboard query is in the
/// catalogue, so a renamed metric cannot silently blank a panel or an alert.
#[test]
fn deploy_files_use_only_catalogued_metric_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let known: Vec<&str> = smppgw::metrics::CATALOGUE
        .iter()
        .map(|(n, _, _)| *n)
        .collect();
    for file in [
        "prometheus/smppgw.rules.yml",
        "grafana/smppgw-dashboard.json",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut found = 0;
        for (i, _) in text.match_indices("smppgw_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            if name == "smppgw_" {
                continue;
            }
            assert!(
                known.contains(&base),
                "{file}: {name} is not in metrics::CATALOGUE"
            );
            found += 1;
        }
        assert!(found > 5, "{file} queries almost nothing");
    }
}

/// The alert rules parse and fire as their unit tests
/// (`deploy/prometheus/smppgw.rules.test.yml`) say, under Prometheus' own
/// `promtool` (Debian's `prometheus` package; `.ci/run` installs it). Without
/// it the test is skipped, except in CI.
#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let run = |args: &[&str]| {
        std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
    };
    let checked = match run(&["check", "rules", "smppgw.rules.yml"]) {
        Ok(out) => out,
        Err(e) => {
            let msg = format!("promtool cannot run ({e}); install Debian's prometheus package");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
            eprintln!("skipped: {msg}");
            return;
        }
    };
    let shown = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(checked.status.success(), "{}", shown(&checked));
    let tested = run(&["test", "rules", "smppgw.rules.test.yml"]).unwrap();
    assert!(tested.status.success(), "{}", shown(&tested));
    assert!(shown(&tested).contains("SUCCESS"), "{}", shown(&tested));
}

#[test]
fn summary_is_valid_toml_with_config_key_names() {
    let cfg = config::parse(
        &std::fs::read_to_string(config_dir().join("demo.toml")).unwrap(),
        &env(&[]),
        &config_dir(),
    )
    .unwrap();
    let summary = cfg.summary();
    let v: toml::Value = toml::from_str(&summary).unwrap_or_else(|e| panic!("{e}\n{summary}"));
    assert_eq!(v["carrier"][0]["enquire_link_secs"].as_integer(), Some(30));
    assert_eq!(v["carrier"][0]["password"].as_str(), Some("<redacted>"));
    assert_eq!(v["agent"]["mode"].as_str(), Some("0600"));
    assert_eq!(
        v["service"][0]["template"][0]["name"].as_str(),
        Some("callback")
    );
}

#[test]
fn status_table_has_carrier_defaults_and_overrides() {
    let cfg = parse(&MINIMAL.replace(
        "[[service]]",
        "[carrier.status]\n\"0x58\" = \"permanent\"\n\n[[service]]",
    ))
    .unwrap();
    let c = &cfg.carriers[0];
    assert_eq!(c.status_action(0x58), StatusAction::Permanent); // overridden
    assert_eq!(c.status_action(0x14), StatusAction::Temporary);
    assert_eq!(c.status_action(0x04), StatusAction::Rebind);
    assert_eq!(c.status_action(0x0B), StatusAction::Permanent);
    let d = &parse(MINIMAL).unwrap().carriers[0];
    assert_eq!(d.status_action(0x58), StatusAction::Temporary);
}

#[test]
fn source_ton_npi_follow_the_sender_type_unless_overridden() {
    let c = parse(MINIMAL).unwrap().carriers[0].clone();
    assert_eq!(c.source_ton_npi(SenderType::Long), (1, 1));
    assert_eq!(c.source_ton_npi(SenderType::Short), (3, 0));
    assert_eq!(c.source_ton_npi(SenderType::Alphanumeric), (5, 0));
    let o =
        parse(&MINIMAL.replace("system_id", "source_ton = 5\nsource_npi = 1\nsystem_id")).unwrap();
    assert_eq!(
        o.carriers[0].source_ton_npi(SenderType::Alphanumeric),
        (5, 1)
    );
}

#[test]
fn reload_plan_tells_live_changes_from_rebinds_and_restarts() {
    let old = parse(MINIMAL).unwrap();
    let live = parse(&MINIMAL.replace("system_id", "window = 20\ntps = 5\nsystem_id")).unwrap();
    assert_eq!(
        config::reload_plan(&old, &live),
        config::ReloadPlan::default()
    );
    let rebind = parse(&MINIMAL.replace("password = \"pw\"", "password = \"new\"")).unwrap();
    assert_eq!(
        config::reload_plan(&old, &rebind).rebind_carriers,
        vec!["acme".to_string()]
    );
    let moved = parse(&format!("[agent]\nsocket = \"/tmp/other.sock\"\n{MINIMAL}")).unwrap();
    assert_eq!(
        config::reload_plan(&old, &moved).restart_required,
        vec!["agent.socket".to_string()]
    );
}

#[test]
fn config_path_comes_from_the_argument_then_the_environment() {
    let e = env(&[("SMPPGW_CONFIG", "/etc/smppgw/from-env.toml")]);
    assert_eq!(
        config::config_path(Some("/a.toml".into()), &e),
        Some(PathBuf::from("/a.toml"))
    );
    assert_eq!(
        config::config_path(None, &e),
        Some(PathBuf::from("/etc/smppgw/from-env.toml"))
    );
    assert_eq!(config::config_path(None, &env(&[])), None);
}

/// The exporter serves metrics and a `/health` liveness answer on the
/// configured `[metrics] listen` address. (Lives here because it installs the
/// process-global recorder, which this test binary owns alone.)
#[test]
fn metrics_listener_serves_metrics_and_health() {
    use std::io::{Read, Write};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let get = move |path: &str| -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    rt.block_on(async {
        let handle = smppgw::metrics::install(Some(addr)).unwrap();
        smppgw::metrics::submit_sent("acme");
        smppgw::metrics::ready(true);
        assert!(
            handle
                .render()
                .contains("smppgw_submits_total{carrier=\"acme\"} 1")
        );
        let (health, metrics) =
            tokio::task::spawn_blocking(move || (get("/health"), get("/metrics")))
                .await
                .unwrap();
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(health.ends_with("OK"), "{health}");
        assert!(metrics.contains("smppgw_ready 1"), "{metrics}");
        assert!(
            metrics.contains("# HELP smppgw_ready 1 when the daemon is ready"),
            "{metrics}"
        );
        assert!(matches!(
            smppgw::metrics::install(None),
            Err(smppgw::metrics::MetricsError::AlreadyInstalled)
        ));
    });
}

#[test]
fn demo_config_can_be_pointed_at_a_temporary_dir_and_a_simulator_port() {
    let dir = tempfile::tempdir().unwrap();
    let smsc: std::net::SocketAddr = "127.0.0.1:40123".parse().unwrap();
    let cfg = config::demo(dir.path(), smsc, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.store.path, dir.path().join("store"));
    assert_eq!(cfg.agent.socket, dir.path().join("agent.sock"));
    assert_eq!(cfg.metrics.listen, None);
    assert_eq!(cfg.carriers[0].port, 40123);
    assert_eq!(cfg.carriers[0].password.expose(), "demo-pass");
    assert_eq!(cfg.services.len(), 2);
    let m: std::net::SocketAddr = "127.0.0.1:9999".parse().unwrap();
    assert_eq!(
        config::demo(dir.path(), smsc, Some(m))
            .unwrap()
            .metrics
            .listen,
        Some(m)
    );
}
