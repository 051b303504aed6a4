//! What the customer reads: GSM 03.38, Latin-1, IA5 and UCS-2 coding, part planning, the counter, and inbound reassembly. Pure.
//!
//! Outbound: [`plan()`] chooses the coding ([`choose`] has the order) and cuts
//! the text into submits; [`count`] answers the agent's counter with the
//! same layout function, so the two never disagree. Inbound: [`decode()`]
//! (or [`decode_sar`]) turns a short_message into text plus concatenation
//! data, and [`Reassembler`] joins the parts. Nothing here depends on the
//! PDU layer: it takes and returns plain octets and values.

pub mod choose;
pub mod decode;
pub mod gsm7;
pub mod ia5;
pub mod latin1;
pub mod plan;
pub mod reassembly;
pub mod ucs2;
pub mod udh;

pub use choose::{Dcs0, Encoding, transliterate};
pub use decode::{Decoded, decode, decode_sar};
pub use plan::{Concat, Count, Plan, PlanError, PlanOptions, PlannedPart, Sar, count, plan};
pub use reassembly::{AddOutcome, Incomplete, PartKey, PartialMessage, Reassembler};
pub use udh::ConcatInfo;
