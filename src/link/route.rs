//! Routing a service to a carrier: the service's primary carrier, or its
//! optional fallback carrier when the primary has no bound transmitter.
//!
//! Pure: the caller says which carriers can send right now.

/// The carrier to send on: `primary` when `can_send(primary)`, else
/// `fallback` when it can send, else `None` (keep the message queued for the
/// primary).
pub fn route<'a>(
    primary: &'a str,
    fallback: Option<&'a str>,
    can_send: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    if can_send(primary) {
        return Some(primary);
    }
    fallback.filter(|f| *f != primary && can_send(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primary_with_a_bound_transmitter_is_chosen() {
        assert_eq!(route("acme", Some("backup"), |_| true), Some("acme"));
    }

    #[test]
    fn fallback_is_used_when_primary_cannot_send() {
        assert_eq!(
            route("acme", Some("backup"), |c| c == "backup"),
            Some("backup")
        );
    }

    #[test]
    fn no_route_when_neither_can_send() {
        assert_eq!(route("acme", Some("backup"), |_| false), None);
    }

    #[test]
    fn no_route_without_fallback_when_primary_is_down() {
        assert_eq!(route("acme", None, |_| false), None);
    }

    #[test]
    fn fallback_naming_the_primary_is_not_a_second_chance() {
        let calls = std::cell::Cell::new(0);
        let r = route("acme", Some("acme"), |_| {
            calls.set(calls.get() + 1);
            false
        });
        assert_eq!(r, None);
        assert_eq!(calls.get(), 1);
    }
}
