//! One SMPP bind: the sans-IO state machine, its window, timers and throttle, and the thin tokio driver.
