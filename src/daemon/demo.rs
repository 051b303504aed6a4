//! `smppgw demo`: the simulator and the daemon on loopback with a temporary
//! store, a walk through one conversation (send, submitted, delivered, a
//! customer reply matched), then the console and the commands to try next.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::DaemonError;
use crate::agent::client::Client;

/// The customer the demo texts (a real-format UK mobile number).
const CUSTOMER: &str = "+447911123456";

fn demo_err(e: impl std::fmt::Display) -> DaemonError {
    DaemonError::Demo(e.to_string())
}

/// A fresh directory under the system temp dir for the demo's state.
fn temp_dir() -> Result<PathBuf, DaemonError> {
    let dir = std::env::temp_dir().join(format!(
        "smppgw-demo-{}-{}",
        std::process::id(),
        crate::clock::wall_ms()
    ));
    std::fs::create_dir_all(&dir).map_err(|source| DaemonError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    Ok(dir)
}

/// Waits (bounded) for the first event of `kind` about `message`.
async fn wait_event(
    events: &mut tokio::sync::mpsc::Receiver<Value>,
    kind: &str,
    message: &Value,
) -> Result<Value, DaemonError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| demo_err(format!("no {kind} event within 20 s")))?
            .ok_or_else(|| demo_err("the event stream ended"))?;
        let same = message.is_null() || ev.get("message") == Some(message);
        if ev.get("event").and_then(Value::as_str) == Some(kind) && same {
            return Ok(ev);
        }
    }
}

fn show(title: &str, v: &Value) {
    println!("\n== {title}");
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Runs the demo: see the module docs. With `once`, stops after the
/// walkthrough; otherwise keeps running until Ctrl-C.
///
/// # Errors
/// A part could not start, or the walkthrough did not see what it expected.
pub async fn demo(
    console: SocketAddr,
    dir: Option<PathBuf>,
    once: bool,
) -> Result<(), DaemonError> {
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d).map_err(|source| DaemonError::Io {
                what: format!("creating {}", d.display()),
                source,
            })?;
            d
        }
        None => temp_dir()?,
    };
    let shutdown = CancellationToken::new();
    let control = dir.join("sim.sock");
    let sim_cfg = crate::sim::SimConfig {
        listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        control: Some(control.clone()),
        system_id: "smppgw".into(),
        password: "demo-pass".into(),
        receipt_delay_ms: 300,
        ..Default::default()
    };
    let sim = crate::sim::start(sim_cfg, shutdown.child_token()).await?;
    let cfg = crate::config::demo(&dir, sim.local_addr(), None).map_err(demo_err)?;
    let service = cfg.services[0].clone();
    let running = super::start(cfg, shutdown.child_token()).await?;
    let socket = running.socket().to_path_buf();
    let daemon = tokio::spawn(running.wait());
    println!(
        "smppgw demo: simulator on {}, daemon socket {}",
        sim.local_addr(),
        socket.display()
    );

    let walk = walkthrough(&socket, &service.name, &service.sender, &control).await;
    if let Err(e) = &walk {
        eprintln!("demo walkthrough failed: {e}");
    }
    if walk.is_ok() && !once {
        let console_token = shutdown.child_token();
        let opts = crate::console::ConsoleOptions {
            listen: console,
            socket: socket.clone(),
            token: None,
        };
        let console_task = tokio::spawn(crate::console::serve(opts, console_token));
        print_next_steps(console, &socket, &control, &service.sender, &dir);
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
        let _ = console_task.await;
    } else {
        shutdown.cancel();
    }
    let _ = daemon.await;
    walk
}

async fn walkthrough(
    socket: &Path,
    service: &str,
    sender: &str,
    control: &Path,
) -> Result<(), DaemonError> {
    let client = Client::connect(socket).await.map_err(demo_err)?;
    let (_, mut events) = client
        .subscribe(Some(0), None, 1024)
        .await
        .map_err(demo_err)?;
    let services = client
        .request(json!({"op": "services"}))
        .await
        .map_err(demo_err)?;
    show("services (the agent sees Send SMS for these)", &services);
    let count = client
        .request(
            json!({"op": "count", "service": service, "text": "Your engineer arrives at 10:30."}),
        )
        .await
        .map_err(demo_err)?;
    show("count (the counter under the input field)", &count);
    let accepted = client
        .request(json!({
            "op": "send", "service": service, "to": CUSTOMER, "agent": "alice",
            "text": "Hello from Contoso support: your engineer arrives at 10:30.",
        }))
        .await
        .map_err(demo_err)?;
    show(
        "send → accepted (stored durably before this answer)",
        &accepted,
    );
    let message = accepted.get("message").cloned().unwrap_or(Value::Null);
    let conversation = accepted.get("conversation").cloned().unwrap_or(Value::Null);
    show(
        "carrier acknowledged",
        &wait_event(&mut events, "message_submitted", &message).await?,
    );
    show(
        "delivery receipt",
        &wait_event(&mut events, "message_delivered", &message).await?,
    );
    let injected =
        crate::sim::inject_via_socket(control, CUSTOMER, sender, "Thanks, see you then!")
            .await
            .map_err(demo_err)?;
    show(
        "the customer replies (injected at the simulator)",
        &injected,
    );
    show(
        "reply matched to the conversation",
        &wait_event(&mut events, "message_received", &Value::Null).await?,
    );
    let transcript = client
        .request(json!({"op": "transcript", "conversation": conversation}))
        .await
        .map_err(demo_err)?;
    show("transcript", &transcript);
    Ok(())
}

fn print_next_steps(console: SocketAddr, socket: &Path, control: &Path, sender: &str, dir: &Path) {
    let s = socket.display();
    println!(
        "\n== the demo keeps running (Ctrl-C stops it); state in {}",
        dir.display()
    );
    println!("agent console:   http://{console}/");
    println!("try next:");
    println!("  smppgw services --socket {s}");
    println!(
        "  smppgw send --socket {s} --service support --agent bob --to '+81 90 1234 5678' 'ご予約ありがとうございます'"
    );
    println!(
        "  smppgw sim-inject --control {} --to {sender} --from +819012345678 'こんにちは'",
        control.display()
    );
    println!("  smppgw events --socket {s} --follow");
    println!("  smppgw conversations --socket {s}");
}
