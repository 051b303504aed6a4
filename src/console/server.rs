//! The console's HTTP server (axum): the embedded page, `POST /api/{op}`
//! (one agent-socket op per request), `GET /api/events` (Server-Sent Events
//! from the socket's event stream, `id: <seq>`, resumed by `Last-Event-ID`
//! or `?from=`), and the gate every request passes (loopback `Host`, token,
//! same origin for POSTs, security headers with a Content-Security-Policy
//! that allows no inline script).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::guard::{self, OriginCheck};
use super::upstream::{PAGE_OPS, Upstream};
use super::{ConsoleError, ConsoleOptions};
use crate::agent::client::{Client, ClientError};

const INDEX_HTML: &str = include_str!("page/index.html");
const APP_JS: &str = include_str!("page/app.js");
const I18N_JS: &str = include_str!("page/i18n.js");
const APP_CSS: &str = include_str!("page/app.css");

/// The page's policy: scripts and styles only from the console itself, no
/// inline script, no plugins, no framing, requests only to the console.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// Longest request body the page sends (a message plus a few fields).
const MAX_BODY: usize = 64 * 1024;

/// Event streams (browser tabs) served at once; each holds an agent-socket
/// connection, and the daemon caps those.
const MAX_STREAMS: usize = 32;

/// How long a browser waits before reconnecting its event stream.
const RETRY: Duration = Duration::from_secs(1);

/// What every handler shares.
#[derive(Debug)]
struct AppState {
    upstream: Upstream,
    token: Option<String>,
    shutdown: CancellationToken,
    streams: Arc<tokio::sync::Semaphore>,
}

pub(super) async fn run(
    listener: tokio::net::TcpListener,
    opts: ConsoleOptions,
    shutdown: CancellationToken,
) -> Result<(), ConsoleError> {
    let state = Arc::new(AppState {
        upstream: Upstream::new(opts.socket),
        token: opts.token,
        shutdown: shutdown.clone(),
        streams: Arc::new(tokio::sync::Semaphore::new(MAX_STREAMS)),
    });
    let app = router(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(ConsoleError::Serve)
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/i18n.js",
            get(|| async { asset("text/javascript; charset=utf-8", I18N_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/api/events", get(events))
        .route("/api/{op}", post(op))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

// ===== the gate =====

async fn gate(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let mut resp = match refusal(&st, &req) {
        None => next.run(req).await,
        Some(refused) => refused,
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The refusal of a request, or `None` to let it through.
fn refusal(st: &AppState, req: &Request) -> Option<Response> {
    let headers = req.headers();
    match &st.token {
        None => {
            if !header_str(headers, &header::HOST).is_some_and(guard::is_loopback_host) {
                return Some(plain(
                    StatusCode::MISDIRECTED_REQUEST,
                    "this console answers only loopback host names (localhost, 127.0.0.1, [::1])\n",
                ));
            }
        }
        Some(token) => {
            if req.method() == Method::GET {
                if let Some(login) = token_login(req, token) {
                    return Some(login);
                }
            }
            if !guard::request_has_token(
                header_str(headers, &header::AUTHORIZATION),
                header_str(headers, &header::COOKIE),
                token,
            ) {
                return Some(plain(
                    StatusCode::UNAUTHORIZED,
                    "this console needs its token: open it as /?token=<token>\n",
                ));
            }
        }
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let verdict = guard::check_origin(
            header_str(headers, &HeaderName::from_static("sec-fetch-site")),
            header_str(headers, &header::ORIGIN),
            header_str(headers, &header::HOST),
        );
        if verdict == OriginCheck::CrossSite {
            return Some(plain(StatusCode::FORBIDDEN, "cross-site request refused\n"));
        }
    }
    None
}

/// `GET ...?token=T`: a right token sets the cookie and redirects to the
/// same URL without it (so it stays out of history and logs); a wrong one
/// is refused. `None` when the request carries no `token` parameter.
fn token_login(req: &Request, token: &str) -> Option<Response> {
    let query = req.uri().query()?;
    let params = Query::<HashMap<String, String>>::try_from_uri(req.uri()).ok()?;
    let given = params.0.get("token")?;
    if !guard::same_secret(given.as_bytes(), token.as_bytes()) {
        return Some(plain(StatusCode::UNAUTHORIZED, "wrong token\n"));
    }
    let rest: Vec<&str> = query
        .split('&')
        .filter(|p| !p.starts_with("token=") && !p.is_empty())
        .collect();
    let mut location = req.uri().path().to_string();
    if !rest.is_empty() {
        location.push('?');
        location.push_str(&rest.join("&"));
    }
    let cookie = format!(
        "{}={}; HttpOnly; SameSite=Lax; Path=/",
        guard::TOKEN_COOKIE,
        guard::cookie_value(token)
    );
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        h.insert(header::SET_COOKIE, v);
    }
    Some(resp)
}

// ===== POST /api/{op} =====

fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"ok": false, "error": {"code": code, "message": message.into()}});
    (status, axum::Json(body)).into_response()
}

async fn op(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !PAGE_OPS.contains(&name.as_str()) {
        return api_error(
            StatusCode::NOT_FOUND,
            "unknown_op",
            "the console does not offer this op",
        );
    }
    if !guard::is_json_content_type(header_str(&headers, &header::CONTENT_TYPE)) {
        return api_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            "requests must be application/json",
        );
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be a JSON object",
        );
    };
    fields.remove("id");
    fields.insert("op".into(), Value::String(name));
    match st.upstream.request(Value::Object(fields)).await {
        Ok(result) => axum::Json(json!({"ok": true, "result": result})).into_response(),
        Err(ClientError::Remote { code, message }) => {
            api_error(StatusCode::UNPROCESSABLE_ENTITY, &code, message)
        }
        Err(e @ ClientError::TooLong { .. }) => api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "line_too_long",
            e.to_string(),
        ),
        Err(e @ ClientError::BadRequest) => {
            api_error(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
        }
        Err(e) => {
            tracing::warn!(error = %e, "console: agent socket unavailable");
            api_error(StatusCode::BAD_GATEWAY, "unavailable", e.to_string())
        }
    }
}

// ===== GET /api/events =====

#[derive(Debug, Deserialize)]
struct EventsQuery {
    from: Option<u64>,
}

/// One browser stream: a `ready` event (its `id` is where the stream
/// starts), then every socket event as `id: <seq>` + the event's JSON.
struct Pump {
    first: Option<SseEvent>,
    rx: mpsc::Receiver<Value>,
    /// Kept for as long as the browser reads: dropping it closes the socket
    /// connection and with it the daemon's side of the subscription.
    _client: Client,
    /// This stream's place among [`MAX_STREAMS`].
    _permit: tokio::sync::OwnedSemaphorePermit,
    shutdown: CancellationToken,
}

async fn events(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Response {
    let Ok(permit) = st.streams.clone().try_acquire_owned() else {
        return unavailable("too many event streams open on this console");
    };
    // The browser's own reconnect names the last id it saw; a page that
    // starts a new stream says `?from=`. Neither: start at the head, after
    // which the page loads its conversations.
    let resume = header_str(&headers, &HeaderName::from_static("last-event-id"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(query.from);
    let from = match resume {
        Some(f) => f,
        None => match st.upstream.head().await {
            Ok(h) => h,
            Err(e) => return unavailable(&e.to_string()),
        },
    };
    let (client, rx) = match st.upstream.subscribe(from).await {
        Ok(s) => s,
        Err(e) => return unavailable(&e.to_string()),
    };
    let ready = SseEvent::default()
        .event("ready")
        .id(from.to_string())
        .retry(RETRY)
        .data(json!({"from": from, "resumed": resume.is_some()}).to_string());
    let pump = Pump {
        first: Some(ready),
        rx,
        _client: client,
        _permit: permit,
        shutdown: st.shutdown.clone(),
    };
    Sse::new(event_stream(pump))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn event_stream(pump: Pump) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(pump, |mut p| async move {
        if let Some(first) = p.first.take() {
            return Some((Ok(first), p));
        }
        loop {
            let ev = tokio::select! {
                _ = p.shutdown.cancelled() => return None,
                ev = p.rx.recv() => ev?,
            };
            let Some(seq) = ev.get("seq").and_then(Value::as_u64) else {
                continue;
            };
            let out = SseEvent::default().id(seq.to_string()).data(ev.to_string());
            return Some((Ok(out), p));
        }
    })
}

/// The daemon cannot be reached: a short stream that says so and ends, so
/// the browser retries (with its `Last-Event-ID` unchanged) a second later.
fn unavailable(why: &str) -> Response {
    tracing::warn!(error = %why, "console: event stream refused");
    let ev = SseEvent::default()
        .event("unavailable")
        .retry(RETRY)
        .data(json!({"message": why}).to_string());
    let once = futures_util::stream::iter([Ok::<_, Infallible>(ev)]);
    Sse::new(once).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A console on a free loopback port whose socket path leads nowhere
    /// (the gate answers before the socket matters).
    async fn start(token: Option<&str>) -> (std::net::SocketAddr, CancellationToken) {
        let opts = ConsoleOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            socket: "/nonexistent/smppgw-console-test.sock".into(),
            token: token.map(str::to_string),
        };
        let console = super::super::Console::bind(opts).await.unwrap();
        let addr = console.local_addr();
        let stop = CancellationToken::new();
        tokio::spawn(console.run(stop.clone()));
        (addr, stop)
    }

    /// Sends one raw HTTP/1.1 request and returns (status, head, body).
    async fn raw(addr: std::net::SocketAddr, req: &str) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, head.to_ascii_lowercase(), body.to_string())
    }

    fn get(path: &str, host: &str, extra: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
    }

    fn post(path: &str, extra: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    const SAME: &str = "Sec-Fetch-Site: same-origin\r\nContent-Type: application/json\r\n";

    #[tokio::test]
    async fn serves_the_page_with_a_policy_that_forbids_inline_script() {
        let (addr, stop) = start(None).await;
        let (status, head, body) = raw(addr, &get("/", "127.0.0.1", "")).await;
        assert_eq!(status, 200);
        assert!(
            head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
            "{head}"
        );
        assert!(!head.contains("unsafe-inline"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert!(body.contains(r#"<script src="/app.js""#));
        assert!(!body.contains("<script>"), "no inline script");
        stop.cancel();
    }

    #[tokio::test]
    async fn rejects_a_rebound_host_name_without_token() {
        let (addr, stop) = start(None).await;
        let (status, _, _) = raw(addr, &get("/", "evil.example:8080", "")).await;
        assert_eq!(status, 421);
        stop.cancel();
    }

    #[tokio::test]
    async fn rejects_cross_site_posts() {
        let (addr, stop) = start(None).await;
        let (status, _, _) = raw(
            addr,
            &post(
                "/api/services",
                "Origin: http://evil.example\r\nContent-Type: application/json\r\n",
                "{}",
            ),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _, _) = raw(
            addr,
            &post(
                "/api/services",
                "Sec-Fetch-Site: cross-site\r\nContent-Type: application/json\r\n",
                "{}",
            ),
        )
        .await;
        assert_eq!(status, 403);
        stop.cancel();
    }

    #[tokio::test]
    async fn rejects_posts_that_are_not_json() {
        let (addr, stop) = start(None).await;
        let (status, _, _) = raw(
            addr,
            &post(
                "/api/send",
                "Sec-Fetch-Site: same-origin\r\nContent-Type: text/plain\r\n",
                "{}",
            ),
        )
        .await;
        assert_eq!(status, 415);
        let (status, _, _) = raw(addr, &post("/api/send", SAME, "[1]")).await;
        assert_eq!(status, 400);
        stop.cancel();
    }

    #[tokio::test]
    async fn rejects_ops_the_page_may_not_use() {
        let (addr, stop) = start(None).await;
        for op in ["subscribe", "ack", "hello", "nope"] {
            let (status, _, body) = raw(addr, &post(&format!("/api/{op}"), SAME, "{}")).await;
            assert_eq!(status, 404, "{op}");
            assert!(body.contains("unknown_op"), "{body}");
        }
        stop.cancel();
    }

    #[tokio::test]
    async fn a_daemon_that_is_down_is_reported_as_unavailable() {
        let (addr, stop) = start(None).await;
        let (status, _, body) = raw(addr, &post("/api/services", SAME, "{}")).await;
        assert_eq!(status, 502);
        assert!(body.contains(r#""code":"unavailable""#), "{body}");
        let (status, head, body) = raw(addr, &get("/api/events", "127.0.0.1", "")).await;
        assert_eq!(status, 200);
        assert!(head.contains("text/event-stream"), "{head}");
        assert!(body.contains("event: unavailable"), "{body}");
        assert!(body.contains("retry: 1000"), "{body}");
        stop.cancel();
    }

    #[tokio::test]
    async fn token_console_requires_the_token() {
        let (addr, stop) = start(Some("t0k")).await;
        let (status, _, _) = raw(addr, &get("/", "console.example:8080", "")).await;
        assert_eq!(status, 401);
        let (status, _, _) = raw(addr, &get("/?token=bad", "console.example", "")).await;
        assert_eq!(status, 401);
        let (status, _, _) = raw(
            addr,
            &get("/", "console.example", "Authorization: Bearer t0k\r\n"),
        )
        .await;
        assert_eq!(status, 200);
        stop.cancel();
    }

    #[tokio::test]
    async fn token_login_sets_the_cookie_and_drops_the_token_from_the_url() {
        let (addr, stop) = start(Some("t0k")).await;
        let (status, head, _) = raw(
            addr,
            &get(
                "/?call=%2B447911123456&token=t0k&service=support",
                "console.example",
                "",
            ),
        )
        .await;
        assert_eq!(status, 303);
        assert!(
            head.contains("location: /?call=%2b447911123456&service=support"),
            "{head}"
        );
        let cookie = head
            .lines()
            .find_map(|l| l.strip_prefix("set-cookie: "))
            .unwrap()
            .to_string();
        assert!(cookie.contains("httponly"), "{cookie}");
        let pair = cookie.split(';').next().unwrap();
        let (status, _, _) = raw(
            addr,
            &get("/", "console.example", &format!("Cookie: {pair}\r\n")),
        )
        .await;
        assert_eq!(status, 200);
        stop.cancel();
    }

    #[test]
    fn page_script_never_turns_strings_into_markup_or_code() {
        for js in [APP_JS, I18N_JS] {
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
                "setTimeout(\"",
            ] {
                assert!(!js.contains(bad), "page script uses {bad}");
            }
        }
        let inline_handler = INDEX_HTML.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!inline_handler, "no inline event handlers");
    }

    #[tokio::test]
    async fn rejects_a_public_listen_address_without_token() {
        let opts = ConsoleOptions {
            listen: "0.0.0.0:0".parse().unwrap(),
            socket: "/nonexistent".into(),
            token: None,
        };
        let err = super::super::Console::bind(opts).await.unwrap_err();
        assert!(matches!(err, ConsoleError::TokenRequired(_)), "{err}");
    }

    // ===== the event stream, over the real agent socket server =====

    use crate::agent::{AgentError, Handler, Op, PeerInfo, Server, ServerConfig};
    use std::sync::Mutex;
    use tokio::sync::watch;

    /// Plays the daemon's durable event log: a `Vec` and a head watch.
    struct LogHandler {
        log: Mutex<Vec<Value>>,
        head: watch::Sender<u64>,
    }

    impl LogHandler {
        fn append(&self, text: &str) -> u64 {
            let mut log = self.log.lock().unwrap();
            let seq = log.len() as u64 + 1;
            log.push(json!({"seq": seq, "at": "2026-11-25T13:00:00.123Z",
                "event": "message_received", "conversation": 1, "owner": "alice",
                "service": "support", "customer": "+447911123456", "message": seq,
                "text": text, "incomplete": false}));
            drop(log);
            self.head.send_replace(seq);
            seq
        }
    }

    impl Handler for LogHandler {
        async fn handle(&self, op: Op, _peer: &PeerInfo) -> Result<Value, AgentError> {
            match op {
                Op::Subscribe { from, .. } => Ok(json!({"from": from.unwrap_or(0)})),
                other => Err(AgentError::internal(other.name())),
            }
        }

        async fn events_after(&self, after: u64, limit: usize) -> Result<Vec<Value>, AgentError> {
            let log = self.log.lock().unwrap();
            let start = (after as usize).min(log.len());
            Ok(log[start..].iter().take(limit).cloned().collect())
        }

        fn watch_seq(&self) -> watch::Receiver<u64> {
            self.head.subscribe()
        }
    }

    /// One SSE message: (event, id, data).
    type Sse = (Option<String>, Option<String>, String);

    /// A browser's event stream, read over HTTP/1.0 (so the body is not
    /// chunked).
    struct SseReader {
        s: tokio::net::TcpStream,
        buf: String,
    }

    impl SseReader {
        async fn open(addr: std::net::SocketAddr, target: &str, extra: &str) -> SseReader {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            SseReader {
                s,
                buf: String::new(),
            }
        }

        /// Reads until `want` messages with data have arrived in all.
        async fn until(&mut self, want: usize) -> Vec<Sse> {
            let mut chunk = [0u8; 4096];
            let read = async {
                loop {
                    let body = self.buf.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                    let msgs = parse_sse(body);
                    if msgs.len() >= want {
                        return msgs;
                    }
                    let n = self.s.read(&mut chunk).await.unwrap();
                    assert!(n > 0, "stream ended early: {}", self.buf);
                    self.buf.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
                }
            };
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .expect("events arrive")
        }
    }

    async fn read_sse(
        addr: std::net::SocketAddr,
        target: &str,
        extra: &str,
        want: usize,
    ) -> Vec<Sse> {
        SseReader::open(addr, target, extra).await.until(want).await
    }

    fn parse_sse(body: &str) -> Vec<Sse> {
        body.split("\n\n")
            .filter(|block| block.lines().any(|l| l.starts_with("data:")))
            .filter(|block| body.contains(&format!("{block}\n\n")))
            .map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
                };
                (
                    field("event:"),
                    field("id:"),
                    field("data:").unwrap_or_default(),
                )
            })
            .collect()
    }

    fn ids(msgs: &[Sse]) -> Vec<String> {
        msgs.iter().filter_map(|m| m.1.clone()).collect()
    }

    #[tokio::test]
    async fn event_stream_resumes_after_the_last_event_id_without_gaps_or_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent.sock");
        let server = Server::bind(ServerConfig::new(&sock)).await.unwrap();
        let handler = Arc::new(LogHandler {
            log: Mutex::new(Vec::new()),
            head: watch::channel(0).0,
        });
        for i in 1..=5 {
            handler.append(&format!("old {i}"));
        }
        let stop = CancellationToken::new();
        tokio::spawn(server.run(handler.clone(), stop.clone()));
        let console = super::super::Console::bind(ConsoleOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            socket: sock.clone(),
            token: None,
        })
        .await
        .unwrap();
        let addr = console.local_addr();
        let console_task = tokio::spawn(console.run(stop.clone()));

        // A fresh page starts at the head: nothing old is replayed.
        let mut page = SseReader::open(addr, "/api/events", "").await;
        let ready = page.until(1).await;
        assert_eq!(ids(&ready), ["5"]);
        handler.append("six");
        handler.append("seven");
        let fresh = page.until(3).await;
        assert_eq!(fresh[0].0.as_deref(), Some("ready"));
        assert_eq!(ids(&fresh), ["5", "6", "7"]);
        assert!(fresh[1].2.contains(r#""text":"six""#), "{:?}", fresh[1]);

        // The browser reconnects saying it saw 6: it gets 7 and what came
        // since, each once.
        handler.append("eight");
        let resumed = read_sse(addr, "/api/events", "Last-Event-ID: 6\r\n", 3).await;
        assert_eq!(ids(&resumed), ["6", "7", "8"]);
        assert!(
            resumed[0].2.contains(r#""resumed":true"#),
            "{:?}",
            resumed[0]
        );

        // A page that starts a new stream says where it stopped with
        // `?from=`; the browser's own Last-Event-ID wins over it.
        let from = read_sse(addr, "/api/events?from=3", "", 6).await;
        assert_eq!(ids(&from), ["3", "4", "5", "6", "7", "8"]);
        let both = read_sse(addr, "/api/events?from=1", "Last-Event-ID: 7\r\n", 2).await;
        assert_eq!(ids(&both), ["7", "8"]);

        // Shutting down ends the open streams too, so the server returns.
        let _open = page;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), console_task)
            .await
            .expect("the console stops with streams open")
            .unwrap()
            .unwrap();
    }
}
