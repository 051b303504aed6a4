//! The `smppgw` command line: a thin shell over the library.
//!
//! Every subcommand parses its arguments, calls the library and prints JSON
//! (or the daemon's logs); errors are printed with their whole chain and map
//! to an exit code: 64 for bad usage, 78 for a bad config, 1 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use smppgw::agent::client::{Client, ClientError};

smppgw::jemalloc!();

/// sysexits: the command was used incorrectly.
const EX_USAGE: u8 = 64;
/// sysexits: something was found in an unconfigured or misconfigured state.
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "smppgw",
    version,
    about = "SMPP carrier gateway for contact-center SMS"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon.
    Run {
        /// The TOML config file.
        #[arg(long, env = "SMPPGW_CONFIG")]
        config: PathBuf,
    },
    /// Rewrite the store into a fresh sled (the daemon stopped): gives back
    /// the memory and disk a past backlog left in sled's page table.
    CompactStore {
        /// The daemon's TOML config file (its `[store]` is compacted).
        #[arg(long, env = "SMPPGW_CONFIG")]
        config: PathBuf,
    },
    /// Validate a config file: exit 0, or 78 with every error and its key path.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Run the simulator and the daemon on loopback with a temporary store,
    /// walk through a conversation, then keep running with the console.
    Demo {
        /// Where the console listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        console: std::net::SocketAddr,
        /// Keep the demo's state in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Walk through the conversation and exit instead of staying up.
        #[arg(long)]
        once: bool,
    },
    /// Decode or encode one SMPP PDU.
    Pdu {
        #[command(subcommand)]
        cmd: PduCmd,
    },
    /// Count a text the way the carrier will: encoding, units, parts, what is left.
    Count {
        /// The text to count.
        text: String,
        /// The most parts the message may take.
        #[arg(long, default_value_t = 10)]
        max_parts: u8,
        /// Replace typographic characters with GSM ones first.
        #[arg(long)]
        transliterate: bool,
    },
    /// Run the SMSC simulator.
    Sim(SimArgs),
    /// Make the simulator deliver a customer's message to the gateway.
    SimInject {
        /// The simulator's control socket.
        #[arg(long, default_value = "/tmp/smppgw-sim.sock")]
        control: PathBuf,
        /// The service number the customer texts.
        #[arg(long)]
        to: String,
        /// The customer's number.
        #[arg(long)]
        from: String,
        /// The message.
        text: String,
    },
    /// Serve the reference agent console (a client of the agent socket).
    Console {
        /// Where the console listens (loopback unless a token is given).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        target: Target,
        /// A file holding the access token; required for a non-loopback listen.
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Send an SMS as an agent.
    Send {
        #[command(flatten)]
        target: Target,
        /// The service.
        #[arg(long)]
        service: String,
        /// The customer's number.
        #[arg(long)]
        to: String,
        /// The agent sending.
        #[arg(long)]
        agent: String,
        /// A client reference: the same reference never sends twice.
        #[arg(long = "ref")]
        client_ref: Option<String>,
        /// Continue this conversation.
        #[arg(long)]
        conversation: Option<u64>,
        /// The message.
        text: String,
    },
    /// Print events as JSON lines.
    Events {
        #[command(flatten)]
        target: Target,
        /// Start after this sequence number.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep following new events.
        #[arg(long)]
        follow: bool,
    },
    /// End a chat: later replies are ignored or start a new chat request.
    EndChat {
        #[command(flatten)]
        target: Target,
        /// The conversation.
        id: u64,
        /// The agent ending it.
        #[arg(long, default_value = "operator")]
        agent: String,
    },
    /// Print a conversation and its messages, the newest page (the answer's
    /// `older` is the `--before` of the next, older page)
    Transcript {
        #[command(flatten)]
        target: Target,
        /// The conversation.
        id: u64,
        /// List messages older than this one.
        #[arg(long)]
        before: Option<u64>,
        /// Page size (1 to 5000; default 500).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// List open conversations and chat requests.
    Conversations {
        #[command(flatten)]
        target: Target,
        /// Only this agent's.
        #[arg(long)]
        owner: Option<String>,
        /// Start after this conversation id (the `next` of the previous page).
        #[arg(long)]
        after: Option<u64>,
        /// Page size (1 to 5000; default 500).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Hand a conversation to another agent.
    Assign {
        #[command(flatten)]
        target: Target,
        /// The conversation.
        id: u64,
        /// The new owner.
        #[arg(long)]
        to: String,
    },
    /// List the services that can send SMS.
    Services {
        #[command(flatten)]
        target: Target,
    },
    /// Links and binds; exits 1 when no carrier has a bound transmitter.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Check whether a number can receive SMS on a service.
    CheckNumber {
        #[command(flatten)]
        target: Target,
        /// The service.
        #[arg(long)]
        service: String,
        /// The number.
        number: String,
    },
    /// List the predefined messages an agent sees on a service.
    Templates {
        #[command(flatten)]
        target: Target,
        /// The service.
        #[arg(long)]
        service: String,
        /// The agent.
        #[arg(long)]
        agent: String,
    },
    /// Create or edit one of an agent's own predefined messages.
    TemplateSave {
        #[command(flatten)]
        target: Target,
        /// The agent owning it.
        #[arg(long)]
        agent: String,
        /// Limit it to this service.
        #[arg(long)]
        service: Option<String>,
        /// Edit this template instead of creating one.
        #[arg(long)]
        id: Option<u64>,
        /// Its name.
        #[arg(long)]
        name: String,
        /// Its text.
        text: String,
    },
    /// Delete one of an agent's predefined messages.
    TemplateDelete {
        #[command(flatten)]
        target: Target,
        /// The template.
        id: u64,
        /// The agent owning it.
        #[arg(long)]
        agent: Option<String>,
    },
    /// List the customers who opted out of a service's messages, a page at a
    /// time (the answer's `next` is the `--after` of the next page).
    OptOuts {
        #[command(flatten)]
        target: Target,
        /// The service.
        #[arg(long)]
        service: String,
        /// List those after this customer.
        #[arg(long)]
        after: Option<String>,
        /// Page size (1 to 5000; default 500).
        #[arg(long)]
        limit: Option<u64>,
    },
}

#[derive(Subcommand)]
enum PduCmd {
    /// Print every field of a PDU given as hex, as JSON.
    Decode {
        /// The PDU as hex (spaces and colons allowed).
        hex: String,
    },
    /// Encode a PDU from the JSON `pdu decode` prints; prints hex.
    Encode {
        /// The JSON, or `-` to read it from standard input.
        json: String,
    },
}

/// Where the agent socket is: given directly, or read from the config.
#[derive(Args, Clone)]
struct Target {
    /// The agent socket.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The config whose `[agent] socket` to use.
    #[arg(long, env = "SMPPGW_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct SimArgs {
    /// Where the simulator listens for binds.
    #[arg(long, default_value = "127.0.0.1:2775")]
    listen: std::net::SocketAddr,
    /// The control socket (`sim-inject` talks to it).
    #[arg(long, default_value = "/tmp/smppgw-sim.sock")]
    control: PathBuf,
    /// The system_id binds must use.
    #[arg(long, default_value = "smppgw")]
    system_id: String,
    /// The password binds must use.
    #[arg(long, default_value = "demo-pass")]
    password: String,
    /// Message ids in hex instead of decimal.
    #[arg(long)]
    hex_ids: bool,
    /// Milliseconds before a delivery receipt is sent.
    #[arg(long, default_value_t = 500)]
    receipt_delay_ms: u64,
    /// Send receipts as text only, without TLVs.
    #[arg(long)]
    text_receipts: bool,
    /// Fraction (0..1) of submits answered ESME_RTHROTTLED.
    #[arg(long, default_value_t = 0.0)]
    throttle: f64,
    /// Milliseconds before each submit_sm_resp.
    #[arg(long, default_value_t = 0)]
    resp_delay_ms: u64,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("smppgw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The daemon's config, or `None` once its errors are printed (exit 78).
fn daemon_config(path: &std::path::Path) -> Option<smppgw::config::Config> {
    match smppgw::config::load(path) {
        Ok(cfg) => Some(cfg),
        Err(errors) => {
            eprintln!("smppgw: {}: invalid config:\n{errors}", path.display());
            None
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Run { config } => {
            let Some(cfg) = daemon_config(&config) else {
                return Ok(ExitCode::from(EX_CONFIG));
            };
            smppgw::logging::init(cfg.log.format, &cfg.log.level)?;
            for w in &cfg.warnings {
                tracing::warn!("config: {w}");
            }
            runtime()?.block_on(smppgw::daemon::run(cfg, config))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CompactStore { config } => {
            let Some(cfg) = daemon_config(&config) else {
                return Ok(ExitCode::from(EX_CONFIG));
            };
            let path = &cfg.store.path;
            let started = smppgw::clock::now();
            let report = smppgw::store::compact(path, cfg.store.options()).with_context(|| {
                format!(
                    "compacting the store at {} (the daemon using it must be stopped)",
                    path.display()
                )
            })?;
            println!(
                "{}: compacted in {:.1} s: {} entries in {} trees, {} event journal files; {} -> {} bytes on disk",
                path.display(),
                started.elapsed().as_secs_f64(),
                report.entries,
                report.trees,
                report.journal_files,
                report.bytes_before,
                report.bytes_after
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::CheckConfig { file } => match smppgw::config::load(&file) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprintln!("{}: invalid config:\n{errors}", file.display());
                Ok(ExitCode::from(EX_CONFIG))
            }
        },
        Cmd::Demo { console, dir, once } => {
            runtime()?.block_on(smppgw::daemon::demo(console, dir, once))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pdu { cmd } => pdu(cmd),
        Cmd::Count {
            text,
            max_parts,
            transliterate,
        } => {
            let opts = smppgw::text::PlanOptions {
                max_parts,
                transliterate,
                ..Default::default()
            };
            print_json(&serde_json::to_value(smppgw::text::count(&text, &opts))?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Sim(args) => {
            smppgw::logging::init(smppgw::logging::LogFormat::Human, "info")?;
            runtime()?.block_on(sim(args))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::SimInject {
            control,
            to,
            from,
            text,
        } => {
            let rt = runtime()?;
            let v = rt.block_on(smppgw::sim::inject_via_socket(&control, &from, &to, &text))?;
            print_json(&v);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Console {
            listen,
            target,
            token_file,
        } => {
            smppgw::logging::init(smppgw::logging::LogFormat::Human, "info")?;
            let socket = target.socket()?;
            let token = token_file
                .map(|p| smppgw::console::read_token_file(&p))
                .transpose()?;
            let rt = runtime()?;
            rt.block_on(async move {
                let shutdown = tokio_util::sync::CancellationToken::new();
                let s = shutdown.clone();
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .map_err(smppgw::console::ConsoleError::Serve)?;
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                    s.cancel();
                });
                let opts = smppgw::console::ConsoleOptions {
                    listen,
                    socket,
                    token,
                };
                smppgw::console::serve(opts, shutdown).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Send {
            target,
            service,
            to,
            agent,
            client_ref,
            conversation,
            text,
        } => {
            let mut req =
                json!({"op": "send", "service": service, "to": to, "agent": agent, "text": text});
            if let Some(r) = client_ref {
                req["client_ref"] = json!(r);
            }
            if let Some(c) = conversation {
                req["conversation"] = json!(c);
            }
            one_request(&target, req)
        }
        Cmd::Events {
            target,
            from,
            follow,
        } => {
            let socket = target.socket()?;
            runtime()?.block_on(events(&socket, from, follow))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::EndChat { target, id, agent } => one_request(
            &target,
            json!({"op": "end_chat", "conversation": id, "agent": agent}),
        ),
        Cmd::Transcript {
            target,
            id,
            before,
            limit,
        } => {
            let req = json!({"op": "transcript", "conversation": id});
            one_request(&target, paged(req, "before", before, limit))
        }
        Cmd::Conversations {
            target,
            owner,
            after,
            limit,
        } => {
            let mut req = json!({"op": "conversations", "include_requested": true});
            if let Some(o) = owner {
                req["owner"] = json!(o);
            }
            one_request(&target, paged(req, "after", after, limit))
        }
        Cmd::Assign { target, id, to } => one_request(
            &target,
            json!({"op": "assign", "conversation": id, "to": to}),
        ),
        Cmd::Services { target } => one_request(&target, json!({"op": "services"})),
        Cmd::Status { target } => {
            let socket = target.socket()?;
            let v = runtime()?.block_on(request(&socket, json!({"op": "status"})))?;
            print_json(&v);
            let ready = v.get("ready").and_then(Value::as_bool).unwrap_or(false);
            Ok(if ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::CheckNumber {
            target,
            service,
            number,
        } => one_request(
            &target,
            json!({"op": "check_number", "service": service, "number": number}),
        ),
        Cmd::Templates {
            target,
            service,
            agent,
        } => one_request(
            &target,
            json!({"op": "templates", "service": service, "agent": agent}),
        ),
        Cmd::TemplateSave {
            target,
            agent,
            service,
            id,
            name,
            text,
        } => {
            let mut req =
                json!({"op": "template_save", "agent": agent, "name": name, "text": text});
            if let Some(s) = service {
                req["service"] = json!(s);
            }
            if let Some(i) = id {
                req["template"] = json!(i);
            }
            one_request(&target, req)
        }
        Cmd::TemplateDelete { target, id, agent } => {
            let mut req = json!({"op": "template_delete", "template": id});
            if let Some(a) = agent {
                req["agent"] = json!(a);
            }
            one_request(&target, req)
        }
        Cmd::OptOuts {
            target,
            service,
            after,
            limit,
        } => {
            let req = json!({"op": "opt_outs", "service": service});
            one_request(&target, paged(req, "after", after, limit))
        }
    }
}

/// A paged request (`conversations`, `opt_outs`, `transcript`) with its
/// position (`after`, `before`: `from`'s name) and `limit` given.
fn paged(
    mut req: Value,
    from_name: &str,
    from: Option<impl serde::Serialize>,
    limit: Option<u64>,
) -> Value {
    if let Some(a) = from {
        req[from_name] = json!(a);
    }
    if let Some(l) = limit {
        req["limit"] = json!(l);
    }
    req
}

impl Target {
    /// The socket path: `--socket`, else the config's `[agent] socket`.
    fn socket(&self) -> Result<PathBuf> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        let Some(cfg) = &self.config else {
            bail!("say where the daemon is: --socket PATH or --config FILE (or SMPPGW_CONFIG)");
        };
        let cfg = smppgw::config::load(cfg)
            .map_err(|e| anyhow!("{}: invalid config:\n{e}", cfg.display()))?;
        Ok(cfg.agent.socket.clone())
    }
}

fn print_json(v: &Value) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(_) => println!("{v}"),
    }
}

async fn request(socket: &Path, req: Value) -> Result<Value> {
    let client = Client::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    match client.request(req).await {
        Ok(v) => Ok(v),
        Err(ClientError::Remote { code, message }) => bail!("{message} ({code})"),
        Err(e) => Err(e.into()),
    }
}

fn one_request(target: &Target, req: Value) -> Result<ExitCode> {
    let socket = target.socket()?;
    let v = runtime()?.block_on(request(&socket, req))?;
    print_json(&v);
    Ok(ExitCode::SUCCESS)
}

async fn events(socket: &Path, from: u64, follow: bool) -> Result<()> {
    let client = Client::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let mut last = from;
    loop {
        let (_, mut rx) = client.subscribe(Some(last), None, 1024).await?;
        loop {
            let next = if follow {
                rx.recv().await
            } else {
                tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv())
                    .await
                    .unwrap_or_default()
            };
            match next {
                Some(ev) => {
                    last = ev.get("seq").and_then(Value::as_u64).unwrap_or(last);
                    println!("{ev}");
                }
                // Cut off for falling behind: resume from the last one printed.
                None if follow => break,
                None => return Ok(()),
            }
        }
    }
}

fn pdu(cmd: PduCmd) -> Result<ExitCode> {
    match cmd {
        PduCmd::Decode { hex } => {
            let bytes = parse_hex(&hex)?;
            let v = decode_pdu_json(&bytes)?;
            print_json(&v);
            Ok(ExitCode::SUCCESS)
        }
        PduCmd::Encode { json } => {
            let text = if json == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                json
            };
            let v: Value = serde_json::from_str(&text).context("the PDU is not valid JSON")?;
            let bytes = smppgw::pdu::json::from_json(&v)?;
            println!(
                "{}",
                bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A PDU as JSON for an operator: every field, and for a delivery receipt
/// the parsed receipt (`stat` as written, `state` normalised).
fn decode_pdu_json(bytes: &[u8]) -> Result<Value> {
    use smppgw::pdu::{Pdu, TlvTag};
    let decoded = Pdu::parse(bytes).map_err(|e| {
        let st = e.status();
        anyhow!(
            "{e} (a peer would be answered with {} 0x{:08x})",
            st.name().unwrap_or("status"),
            st.0
        )
    })?;
    let mut v = smppgw::pdu::json::to_json(&decoded);
    let view = match &decoded.pdu {
        Pdu::DeliverSm(b) => Some((b.esm_class, b.short_message, b.tlvs)),
        Pdu::DataSm(b) => Some((b.esm_class, &[][..], b.tlvs)),
        _ => None,
    };
    if let Some((esm_class, sm, tlvs)) = view {
        let receipted = tlvs.get_cstr(TlvTag::RECEIPTED_MESSAGE_ID);
        if smppgw::dlr::is_receipt(esm_class) || receipted.is_some() {
            let body = if sm.is_empty() {
                tlvs.get(TlvTag::MESSAGE_PAYLOAD).unwrap_or(&[])
            } else {
                sm
            };
            let state = tlvs.get_uint(TlvTag::MESSAGE_STATE).map(|s| s as u8);
            if let Some(r) = smppgw::dlr::from_parts(
                receipted,
                state,
                tlvs.get(TlvTag::NETWORK_ERROR_CODE),
                body,
            ) {
                v["receipt"] = serde_json::to_value(r)?;
            }
        }
    }
    Ok(v)
}

fn parse_hex(s: &str) -> Result<Vec<u8>> {
    let digits: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let digits = digits.strip_prefix("0x").unwrap_or(&digits);
    if digits.len() % 2 != 0 {
        bail!("the hex has an odd number of digits ({})", digits.len());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16)
                .map_err(|_| anyhow!("not hex at offset {i}: {:?}", &digits[i..i + 2]))
        })
        .collect()
}

async fn sim(args: SimArgs) -> Result<()> {
    let control = args.control.display().to_string();
    let cfg = smppgw::sim::SimConfig {
        listen: args.listen,
        control: Some(args.control.clone()),
        system_id: args.system_id,
        password: args.password,
        hex_ids: args.hex_ids,
        receipt_delay_ms: args.receipt_delay_ms,
        text_only_receipts: args.text_receipts,
        throttle: args.throttle,
        resp_delay_ms: args.resp_delay_ms,
        ..Default::default()
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handle = smppgw::sim::start(cfg, shutdown.clone()).await?;
    // One JSON line on stdout so scripts and tests learn the port (0 = any).
    println!(
        "{}",
        json!({"listening": handle.local_addr().to_string(), "control": control})
    );
    tracing::info!(addr = %handle.local_addr(), "simulator listening");
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    Ok(())
}
