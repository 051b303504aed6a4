//! A carrier: its binds, reconnect policy, routing of services to carriers, and the outbox pump.
