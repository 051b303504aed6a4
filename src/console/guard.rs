//! The console's request checks, as pure functions over header values: which
//! listen addresses may run without a token, which `Host` names a loopback
//! console answers (against DNS rebinding), whether a state-changing request
//! comes from the page's own origin, JSON content types, and the token
//! (compared in constant time, carried in a cookie after `?token=` login).

use std::net::SocketAddr;

/// Name of the cookie that carries the token after a `?token=` login.
pub(crate) const TOKEN_COOKIE: &str = "smppgw_console";

/// True when `addr` only accepts connections from this machine.
pub(crate) fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// True when a `Host` header names this machine (`localhost`, `*.localhost`,
/// `127.x.y.z`, `[::1]`, with or without a port). A loopback console without
/// a token answers only these, so a web page on another site whose name
/// resolves to 127.0.0.1 (DNS rebinding) cannot read it.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let name = strip_port(host).to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8080 → [::1]
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// What the same-origin check decided for a state-changing request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OriginCheck {
    /// The browser says the request comes from the page itself.
    SameOrigin,
    /// No browser headers at all: a program (curl, a script), not a page
    /// another site could make a browser send.
    NotABrowser,
    /// Another site (or a sandboxed frame) sent it: refused.
    CrossSite,
}

/// Decides whether a POST comes from the console's own page, from
/// `Sec-Fetch-Site` when the browser sends it, else from `Origin` against
/// `Host`.
pub(crate) fn check_origin(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) -> OriginCheck {
    if let Some(site) = sec_fetch_site {
        return if site.eq_ignore_ascii_case("same-origin") {
            OriginCheck::SameOrigin
        } else {
            OriginCheck::CrossSite
        };
    }
    match (origin, host) {
        (None, _) => OriginCheck::NotABrowser,
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(&format!("http://{h}")) => {
            OriginCheck::SameOrigin
        }
        _ => OriginCheck::CrossSite,
    }
}

/// True for `application/json`, with or without parameters.
pub(crate) fn is_json_content_type(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The cookie value for a token: its bytes in hex, so any token fits a
/// cookie.
pub(crate) fn cookie_value(token: &str) -> String {
    token.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name` in a `Cookie` header.
pub(crate) fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The token a request carries: `Authorization: Bearer <token>` or the
/// login cookie. Returns whether it matches `token`.
pub(crate) fn request_has_token(
    authorization: Option<&str>,
    cookie: Option<&str>,
    token: &str,
) -> bool {
    if let Some(bearer) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
        if same_secret(bearer.trim().as_bytes(), token.as_bytes()) {
            return true;
        }
    }
    cookie
        .and_then(|c| find_cookie(c, TOKEN_COOKIE))
        .is_some_and(|v| same_secret(v.as_bytes(), cookie_value(token).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_listen_addresses_are_detected() {
        assert!(is_loopback(&"127.0.0.1:8080".parse().unwrap()));
        assert!(is_loopback(&"[::1]:0".parse().unwrap()));
        assert!(!is_loopback(&"0.0.0.0:8080".parse().unwrap()));
        assert!(!is_loopback(&"192.168.1.10:8080".parse().unwrap()));
    }

    #[test]
    fn loopback_host_names_are_detected() {
        for h in [
            "localhost",
            "localhost:8080",
            "LOCALHOST:1",
            "console.localhost:80",
            "127.0.0.1",
            "127.0.0.1:40123",
            "127.1.2.3:9",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn rejects_rebound_host_names() {
        for h in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:8080",
            "[::2]:8080",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn same_origin_requests_are_detected() {
        assert_eq!(
            check_origin(Some("same-origin"), Some("http://x"), Some("y")),
            OriginCheck::SameOrigin
        );
        assert_eq!(
            check_origin(None, Some("http://127.0.0.1:8080"), Some("127.0.0.1:8080")),
            OriginCheck::SameOrigin
        );
        assert_eq!(
            check_origin(None, None, Some("h")),
            OriginCheck::NotABrowser
        );
    }

    #[test]
    fn rejects_cross_site_requests() {
        assert_eq!(
            check_origin(Some("cross-site"), None, None),
            OriginCheck::CrossSite
        );
        assert_eq!(
            check_origin(Some("same-site"), None, None),
            OriginCheck::CrossSite
        );
        assert_eq!(
            check_origin(None, Some("http://evil.example"), Some("127.0.0.1:8080")),
            OriginCheck::CrossSite
        );
        assert_eq!(
            check_origin(None, Some("null"), Some("127.0.0.1:8080")),
            OriginCheck::CrossSite
        );
        assert_eq!(
            check_origin(None, Some("http://127.0.0.1:8080"), None),
            OriginCheck::CrossSite
        );
    }

    #[test]
    fn json_content_types_are_detected() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=utf-8"
        )));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(Some(
            "application/x-www-form-urlencoded"
        )));
        assert!(!is_json_content_type(None));
    }

    #[test]
    fn tokens_are_accepted_from_bearer_or_cookie_only_when_equal() {
        let t = "s3cret token";
        assert!(request_has_token(Some("Bearer s3cret token"), None, t));
        let cookie = format!("a=b; {TOKEN_COOKIE}={}; c=d", cookie_value(t));
        assert!(request_has_token(None, Some(&cookie), t));
        assert!(!request_has_token(Some("Bearer s3cret"), None, t));
        assert!(!request_has_token(None, Some("smppgw_console=00"), t));
        assert!(!request_has_token(None, None, t));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(same_secret(b"abc", b"abc"));
    }
}
