//! An ESME session and an MC session wired together, driven by an arbitrary
//! script (submits, delivers, answers, time steps, drops): no panic, the
//! window is never overrun, every accepted submit is answered exactly once.
#![no_main]
use std::sync::OnceLock;
use std::time::Instant;

static T0: OnceLock<Instant> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let t0 = *T0.get_or_init(smppgw::clock::now);
    smppgw::session::machine::fuzzing::script(t0, data);
});
