//! smppgw: an SMPP carrier gateway for contact-center SMS.
//!
//! # Layout
//! Layers depend downward only (see `DESIGN.md`):
//! - pure codecs and rules: [`pdu`], [`text`], [`dlr`], the session state
//!   machine in [`session`], the rules in [`conversation`], [`numbers`],
//!   [`optout`];
//! - the I/O shell: [`session`]'s driver, [`link`], [`store`], [`agent`],
//!   [`console`], [`sim`], [`daemon`], [`metrics`], [`logging`], [`tls`];
//! - [`config`] turns the TOML file into a validated [`config::Config`];
//! - [`clock`] is the only reader of the system clocks.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod agent;
pub mod alloc;
pub mod clock;
pub mod config;
pub mod console;
pub mod conversation;
pub mod daemon;
pub mod dlr;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod numbers;
pub mod optout;
pub mod pdu;
pub mod session;
pub mod sim;
pub mod store;
pub mod text;
pub mod tls;
