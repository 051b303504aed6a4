//! Fail-stop store errors. Expected conditions (duplicates, refusals, unknown
//! ids) are nested `Result`s or outcome enums, never these.

/// A failure of the storage engine or of stored data: the caller should stop
/// using the store (and the daemon shut down) rather than carry on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed (I/O, corruption, ...).
    #[error("storage engine failed: {0}")]
    Engine(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("corrupt value in tree {tree}: {detail}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The write-ahead log could not be read, written or synced.
    #[error("write-ahead log failed: {0}")]
    Log(std::io::Error),
    /// A value could not be encoded.
    #[error("cannot encode value: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// A step of an offline compaction failed on the file system.
    #[error("compaction could not {step}: {source}")]
    Compaction {
        /// What it was doing.
        step: &'static str,
        /// The file system's error.
        source: std::io::Error,
    },
    /// The store was last written by a newer smppgw, whose derived entries
    /// (counts, indexes) this build would not keep up to date.
    #[error(
        "the store was written by a newer smppgw (derived entries version {found}, this build keeps version {supported}): run that version, or restore a backup"
    )]
    NewerLayout {
        /// The version the store holds.
        found: u64,
        /// The version this build keeps.
        supported: u64,
    },
}

/// Result with a fail-stop [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;
