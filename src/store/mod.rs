//! The durable state behind the narrow `Store` interface, with its sled implementation.
