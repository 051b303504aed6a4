//! One SMPP bind: the sans-IO state machine, its window, timers and throttle, and the thin tokio driver.
//!
//! The building blocks here are pure (no tokio, no clock; `now` is passed in):
//! [`window`] (in-flight requests and sequence numbers), [`timers`] (the
//! protocol deadlines as data), [`throttle`] (per-bind rate and
//! ESME_RTHROTTLED / ESME_RMSGQFUL pauses) and [`status`] (what a
//! `command_status` means for a submit or a bind).
//!
//! [`state`] holds the bind states and the operation matrix per role,
//! [`machine`] the session state machine itself (generic over
//! [`state::Esme`] and [`state::Mc`]), and [`driver`] the only tokio code
//! here: it moves frames, time and commands between a socket and a machine.

pub mod driver;
pub mod machine;
pub mod state;
pub mod status;
pub mod throttle;
pub mod timers;
pub mod window;
