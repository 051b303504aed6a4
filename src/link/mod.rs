//! A carrier: its binds, reconnect policy, routing of services to carriers, and the outbox pump.
//!
//! Pure helpers: [`backoff`] (reconnect delays with jitter, one policy per
//! kind of failure) and [`route`] (service → carrier with a fallback).

pub mod backoff;
pub mod route;
