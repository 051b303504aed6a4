//! rustls client (and test server) configuration from config paths: system or configured CA, client certificates.
