//! The tokio driver of one session (work in progress).
