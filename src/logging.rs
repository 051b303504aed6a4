//! tracing-subscriber set-up, human or JSON; secrets and message text stay out of logs above debug.
//!
//! The level comes from `[log] level` (an env-filter directive such as `info`
//! or `smppgw=debug,info`); a set `RUST_LOG` overrides it. Spans the shell
//! opens (`carrier`, `bind`, `conversation`) appear in both formats: as a
//! prefix in human output, as `span` / `spans` objects in JSON. Logs go to
//! stderr so stdout stays free for command output.

use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// Output format of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event. Default.
    #[default]
    Human,
    /// One JSON object per line, for journald / Loki / Elasticsearch.
    Json,
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level is not an env-filter directive.
    #[error("invalid log level {level:?}: {reason}")]
    BadLevel {
        /// What was given.
        level: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A global subscriber is already installed.
    #[error("logging already initialised: {0}")]
    AlreadySet(String),
}

/// Checks that `level` is an env-filter directive, without installing
/// anything. Config validation uses it.
///
/// # Errors
/// [`LoggingError::BadLevel`].
pub fn parse_level(level: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(level).map_err(|e| LoggingError::BadLevel {
        level: level.to_string(),
        reason: e.to_string(),
    })
}

/// Installs the global subscriber. `RUST_LOG`, when set and valid, wins over
/// `level`.
///
/// # Errors
/// A bad `level` (and no usable `RUST_LOG`), or a subscriber already set.
pub fn init(format: LogFormat, level: &str) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => parse_level(&v).or_else(|_| parse_level(level))?,
        _ => parse_level(level)?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
    result.map_err(|e| LoggingError::AlreadySet(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_per_target_levels() {
        assert!(parse_level("info").is_ok());
        assert!(parse_level("smppgw=debug,warn").is_ok());
    }

    #[test]
    fn rejects_a_level_that_is_not_a_directive() {
        let err = parse_level("loud=[[").unwrap_err();
        assert!(err.to_string().starts_with("invalid log level"), "{err}");
    }
}
