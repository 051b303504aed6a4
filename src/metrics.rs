//! The metrics catalogue: every metric name, its description, typed recording functions, and the exporter.
