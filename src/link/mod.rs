//! A carrier: its binds, reconnect policy, routing of services to carriers, and the outbox pump.
//!
//! Pure helpers: [`backoff`] (reconnect delays with jitter, one policy per
//! kind of failure) and [`route`] (service → carrier with a fallback).
//! Shell: [`pool`] ([`Links`], started by the daemon: every carrier's binds,
//! their status, the outbox wake-up, the sweeps), [`supervise`] (one bind:
//! connect, bind, back off), [`outbox`] (the send path and the session
//! loop) and [`inbound`] (receipts and replies, stored before they are
//! acknowledged).

pub mod backoff;
pub mod inbound;
pub mod outbox;
pub mod pool;
pub mod route;
pub mod supervise;

pub use pool::{BindState, BindStatus, CarrierStatus, LinkOptions, Links, LinksStatus};
