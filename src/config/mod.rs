//! Configuration: the raw TOML mirror, validation with key paths, and the typed `Config`.
