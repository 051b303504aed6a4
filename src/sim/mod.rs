//! `smppgw sim`: an SMSC simulator for tests, demos and benchmarks.
