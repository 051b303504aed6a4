//! The only place that reads the system clocks. Pure layers take `now` as an
//! argument; the shell calls these.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Monotonic now, for deadlines and timers.
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// Wall-clock now in milliseconds since the Unix epoch, for timestamps that
/// are stored or shown.
#[allow(clippy::disallowed_methods)]
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with millisecond
/// precision (`2026-11-25T13:00:00.123Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_with_millis() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }
}
