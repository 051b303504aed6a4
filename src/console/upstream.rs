//! The console's side of the agent socket: one shared connection for the
//! page's requests (opened lazily, replaced when the daemon went away) and
//! one connection per browser event stream.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

use crate::agent::client::{Client, ClientError};

/// Events buffered per browser stream before the socket is read no further
/// (the daemon then reads its log later: nothing is lost).
const EVENT_BUFFER: usize = 256;

/// The ops the page may ask for. `subscribe` and `ack` belong to the event
/// stream, `hello` to the connection.
pub(crate) const PAGE_OPS: &[&str] = &[
    "services",
    "count",
    "check_number",
    "send",
    "end_chat",
    "transcript",
    "conversations",
    "assign",
    "status",
    "templates",
    "template_save",
    "template_delete",
];

/// The agent socket as the console uses it.
#[derive(Debug)]
pub(crate) struct Upstream {
    path: PathBuf,
    shared: Mutex<Option<Arc<Client>>>,
}

impl Upstream {
    pub(crate) fn new(path: PathBuf) -> Upstream {
        Upstream {
            path,
            shared: Mutex::new(None),
        }
    }

    /// Opens a connection and names the protocol (`hello`).
    pub(crate) async fn connect(&self) -> Result<Client, ClientError> {
        let client = Client::connect(&self.path).await?;
        client
            .request(json!({
                "op": "hello",
                "protocol": crate::agent::PROTOCOL_VERSION,
                "client": concat!("smppgw-console ", env!("CARGO_PKG_VERSION")),
            }))
            .await?;
        Ok(client)
    }

    async fn shared(&self) -> Result<Arc<Client>, ClientError> {
        let mut slot = self.shared.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(self.connect().await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn forget(&self, broken: &Arc<Client>) {
        let mut slot = self.shared.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, broken)) {
            *slot = None;
        }
    }

    /// Sends one op on the shared connection. A connection that turns out
    /// dead (the daemon restarted) is replaced and the op tried once more:
    /// the page gives every `send` a `client_ref`, so a retried send is
    /// answered as a duplicate rather than sent twice.
    pub(crate) async fn request(&self, op: Value) -> Result<Value, ClientError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let client = self.shared().await?;
            match client.request(op.clone()).await {
                Err(e @ (ClientError::Io(_) | ClientError::Closed | ClientError::Protocol(_))) => {
                    self.forget(&client).await;
                    if tries >= 2 {
                        return Err(e);
                    }
                }
                other => return other,
            }
        }
    }

    /// The last committed event seq, read from a short-lived subscription.
    pub(crate) async fn head(&self) -> Result<u64, ClientError> {
        let probe = self.connect().await?;
        let (result, _rx) = probe.subscribe(Some(0), None, 1).await?;
        result
            .get("head")
            .and_then(Value::as_u64)
            .ok_or_else(|| ClientError::Protocol("subscribe answered without `head`".into()))
    }

    /// A subscription of its own for one browser stream: events with
    /// `seq > from`. The client must be kept as long as the receiver is
    /// read.
    pub(crate) async fn subscribe(
        &self,
        from: u64,
    ) -> Result<(Client, mpsc::Receiver<Value>), ClientError> {
        let client = self.connect().await?;
        let (_, rx) = client.subscribe(Some(from), None, EVENT_BUFFER).await?;
        Ok((client, rx))
    }
}
