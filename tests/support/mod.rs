//! Shared helpers for the end-to-end tests: the real `smppgw` binary run as
//! the simulator and as the daemon, with a temporary store and socket, and
//! the reference client to talk to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use smppgw::agent::client::Client;

/// The built binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smppgw")
}

/// A child process killed when dropped, so a failing test leaves nothing behind.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        for _ in 0..200 {
            if let Ok(Some(st)) = self.0.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGKILL, as a crash.
    pub fn crash(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The simulator, started as `smppgw sim` on an ephemeral port.
pub struct Sim {
    pub proc: Proc,
    pub addr: String,
    pub control: PathBuf,
}

impl Sim {
    /// Starts the simulator with extra flags; waits for its listening line.
    pub fn start(dir: &Path, extra: &[&str]) -> Sim {
        let control = dir.join("sim.sock");
        let mut child = Command::new(bin())
            .args(["sim", "--listen", "127.0.0.1:0", "--control"])
            .arg(&control)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn smppgw sim");
        let stdout = child.stdout.take().expect("sim stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("sim listening line");
        let v: Value = serde_json::from_str(&line).expect("sim prints one JSON line");
        let addr = v["listening"]
            .as_str()
            .expect("listening address")
            .to_string();
        Sim {
            proc: Proc(child),
            addr,
            control,
        }
    }

    /// The simulator's port.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// Makes the simulator deliver a customer's message (the CLI, as an operator would).
    pub fn inject(&self, from: &str, to: &str, text: &str) -> Value {
        let out = Command::new(bin())
            .arg("sim-inject")
            .arg("--control")
            .arg(&self.control)
            .args(["--to", to, "--from", from, text])
            .output()
            .expect("run sim-inject");
        assert!(
            out.status.success(),
            "sim-inject failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("sim-inject prints JSON")
    }
}

/// Writes a daemon config for the simulator at `port`; `services` is TOML for
/// the `[[service]]` tables.
pub fn write_config(dir: &Path, port: u16, carrier_extra: &str, services: &str) -> PathBuf {
    let text = format!(
        r#"
[store]
path = "{store}"

[agent]
socket = "{socket}"
mode = "0600"

[log]
level = "warn"

[daemon]
shutdown_grace_secs = 5

[[carrier]]
name = "sim"
host = "127.0.0.1"
port = {port}
system_id = "smppgw"
password = "demo-pass"
window = 10
reconnect_min_secs = 1
reconnect_max_secs = 2
already_bound_wait_secs = 1
{carrier_extra}

{services}
"#,
        store = dir.join("store").display(),
        socket = dir.join("agent.sock").display(),
    );
    let path = dir.join("smppgw.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Two services: `support` (replies after End Chat are ignored) and `sales`
/// (they start a new chat request).
pub const SERVICES: &str = r#"
[[service]]
name = "support"
sender = "447400123456"
carrier = "sim"
max_parts = 3
inbound = "ignore"

[[service]]
name = "sales"
sender = "447400654321"
carrier = "sim"
max_parts = 3
inbound = "new_chat"
"#;

/// The daemon, started as `smppgw run --config`.
pub struct Daemon {
    pub proc: Proc,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts the daemon and waits until its socket answers.
    pub async fn start(config: &Path, dir: &Path) -> Daemon {
        let proc = Proc(
            Command::new(bin())
                .args(["run", "--config"])
                .arg(config)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn smppgw run"),
        );
        let socket = dir.join("agent.sock");
        for _ in 0..200 {
            if let Ok(c) = Client::connect(&socket).await {
                if c.request(serde_json::json!({"op": "hello"})).await.is_ok() {
                    return Daemon {
                        proc,
                        socket,
                    };
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon did not answer on {}", socket.display());
    }

    /// A new client connection.
    pub async fn client(&self) -> Client {
        Client::connect(&self.socket)
            .await
            .expect("connect to the agent socket")
    }
}

/// Events from a subscription, with bounded waits.
pub struct Events {
    pub rx: tokio::sync::mpsc::Receiver<Value>,
    pub seen: Vec<Value>,
}

impl Events {
    /// Subscribes from `from`.
    pub async fn subscribe(client: &Client, from: u64) -> Events {
        let (_, rx) = client
            .subscribe(Some(from), None, 4096)
            .await
            .expect("subscribe");
        Events {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits up to `secs` for an event matching `pred`.
    pub async fn wait(&mut self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Ok(None) => panic!(
                    "event stream ended waiting for {what}; seen: {:#?}",
                    self.seen
                ),
                Err(_) => panic!("no {what} within {secs} s; seen: {:#?}", self.seen),
            }
        }
    }

    /// Waits for the event `kind` about `message`.
    pub async fn of(&mut self, kind: &str, message: &Value) -> Value {
        let kind2 = kind.to_string();
        let m = message.clone();
        self.wait(20, kind, move |v| {
            v["event"] == kind2.as_str() && v["message"] == m
        })
        .await
    }
}
