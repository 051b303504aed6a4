//! Conversations: the pure rules that match replies and receipts, and their application through the store.
//!
//! [`rules`] decides (open, continue, refuse, match, request, end, assign);
//! the store ([`crate::store::Store`]) applies each decision atomically with
//! its message and event, so this module stays a set of plain functions.

pub mod rules;

pub use rules::{ChatRefused, InboundDecision, InboundPolicy, SendDecision, SendRefused};
