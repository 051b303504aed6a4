//! The agent socket: the JSON-lines protocol types, the Unix-socket server and the reference client.
//!
//! - [`proto`]: wire types of `smppgw-agent/1` (spec in `proto/`), pure;
//! - [`examples`]: the matcher that replays `proto/examples.jsonl`, pure;
//! - [`server`]: binding the socket (mode, owner, group, peer allow-list,
//!   connection cap) and the accept loop; [`Handler`] is what the daemon
//!   implements;
//! - `conn`: one connection (framing, dispatch, the event stream);
//! - [`client`]: the reference async client.

pub mod client;
mod conn;
pub mod examples;
pub mod proto;
pub mod server;

pub use proto::{AgentError, ErrorCode, Op, PROTOCOL_VERSION, Request, SendOp};
pub use server::{Handler, PeerInfo, Server, ServerConfig, ServerError};
