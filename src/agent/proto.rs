//! The agent protocol's wire types (`smppgw-agent/1`, specified in
//! `proto/agent-protocol.md`): requests and their ops, error codes, and the
//! response lines. Pure: no I/O, no clock.
//!
//! A request line is parsed in steps so that every bad line gets the most
//! precise answer and, whenever it could be read, its `id` back:
//! JSON? → object? → scalar `id`? → `op` a string? → a known op? → fields of
//! the right types? Unknown fields are ignored (forward compatibility).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The protocol version this server speaks, named in the `hello` exchange.
pub const PROTOCOL_VERSION: &str = "smppgw-agent/1";

/// The default maximum length of one line in bytes, without the newline.
pub const DEFAULT_MAX_LINE: usize = 64 * 1024;

/// Every op name this version knows, in the order of the spec.
pub const OPS: &[&str] = &[
    "hello",
    "services",
    "count",
    "check_number",
    "send",
    "end_chat",
    "transcript",
    "conversations",
    "assign",
    "subscribe",
    "ack",
    "status",
    "templates",
    "template_save",
    "template_delete",
    "opt_outs",
];

/// The page size of `conversations`, `transcript` and `opt_outs` when the
/// request names none.
pub const PAGE_DEFAULT_LIMIT: usize = 500;

/// The largest page size `conversations`, `transcript` and `opt_outs`
/// accept.
pub const PAGE_MAX_LIMIT: usize = 5000;

// === Request ===

/// One parsed request: the caller's `id` (any JSON scalar, echoed back) and
/// the operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Echoed verbatim in the response so the caller can match it.
    pub id: Value,
    /// What the caller asks for.
    pub op: Op,
}

/// The operations of `smppgw-agent/1`. The JSON form is the request object
/// itself, tagged by `"op"` (`{"id": 1, "op": "count", "service": "support",
/// "text": "Hi"}`); `id` is not part of the op.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Names the protocol version; answered by the server itself.
    Hello {
        /// The version the client speaks; refused with
        /// `unsupported_version` when it is not [`PROTOCOL_VERSION`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        protocol: Option<String>,
        /// A free name of the client, for logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// The services and whether they support SMS.
    Services {},
    /// The counter for a text on a service (encoding, parts, what is left).
    Count {
        /// Service name.
        service: String,
        /// The text as typed.
        text: String,
    },
    /// Whether a number can receive SMS on a service.
    CheckNumber {
        /// Service name (its default country and numbers policy apply).
        service: String,
        /// The number as typed or as the agent layer has it.
        number: String,
    },
    /// Send a text to a customer.
    Send(SendOp),
    /// Close a conversation.
    EndChat {
        /// Conversation id.
        conversation: u64,
        /// The agent ending it.
        agent: String,
    },
    /// A conversation and its messages, newest page first.
    Transcript {
        /// Conversation id.
        conversation: u64,
        /// List messages older than this one (the previous page's `older`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<u64>,
        /// The page size, 1 to [`PAGE_MAX_LIMIT`]; absent:
        /// [`PAGE_DEFAULT_LIMIT`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// Open conversations, optionally of one owner, optionally with chat
    /// requests.
    Conversations {
        /// Only this agent's conversations.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        /// Only this service's conversations.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// Also list conversations in state `requested` (any owner).
        #[serde(default)]
        include_requested: bool,
        /// List those with a greater id (the previous page's `next`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<u64>,
        /// The page size, 1 to [`PAGE_MAX_LIMIT`]; absent:
        /// [`PAGE_DEFAULT_LIMIT`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
    /// Hand a conversation to an agent (also: accept a chat request).
    Assign {
        /// Conversation id.
        conversation: u64,
        /// The agent who gets it.
        to: String,
        /// The agent giving it away, when it is a hand-over.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// Start the event stream on this connection; on a connection that
    /// already carries events, move it (events after the answer have
    /// `seq > from`).
    Subscribe {
        /// Events with `seq > from` are sent; absent: the consumer's last ack
        /// (or 0).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<u64>,
        /// A durable consumer name whose acks the daemon remembers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consumer: Option<String>,
    },
    /// Record that every event up to `seq` has been processed.
    Ack {
        /// The last processed sequence number.
        seq: u64,
        /// The consumer name (defaults to the one given at `subscribe`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consumer: Option<String>,
    },
    /// Links and binds.
    Status {},
    /// The predefined messages an agent can pick on a service.
    Templates {
        /// Service name.
        service: String,
        /// The agent whose own templates are listed beside the service's.
        agent: String,
    },
    /// Create (no `id`) or edit (`id`) one of the agent's own templates.
    TemplateSave {
        /// The template id to edit; absent to create one. (Named `template`
        /// on the wire: `id` is the request's.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        template: Option<u64>,
        /// The owning agent.
        agent: String,
        /// Restricts the template to one service (and counts it there).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// Short name shown in the picker.
        name: String,
        /// The text inserted into the input field.
        text: String,
    },
    /// Delete one of the agent's own templates.
    TemplateDelete {
        /// Template id (`template` on the wire: `id` is the request's).
        template: u64,
        /// The owning agent.
        agent: String,
    },
    /// The customers who opted out of a service's sender, a page at a time.
    OptOuts {
        /// Service name.
        service: String,
        /// List those after this customer (the previous page's `next`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// The page size, 1 to [`PAGE_MAX_LIMIT`]; absent:
        /// [`PAGE_DEFAULT_LIMIT`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u64>,
    },
}

/// The fields of `send`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendOp {
    /// Service name.
    pub service: String,
    /// Customer number (normalised to E.164 with the service's country).
    pub to: String,
    /// The text.
    pub text: String,
    /// The sending agent (owner of a new conversation).
    pub agent: String,
    /// The agent layer's interaction id (call id), kept with the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<String>,
    /// Send within this conversation instead of the open one of (service,
    /// customer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<u64>,
    /// The caller's idempotency key: a repeated `send` with the same
    /// (agent, client_ref) answers the first message with `duplicate: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ref: Option<String>,
}

impl Op {
    /// The op's wire name (`"check_number"`).
    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello { .. } => "hello",
            Op::Services {} => "services",
            Op::Count { .. } => "count",
            Op::CheckNumber { .. } => "check_number",
            Op::Send(_) => "send",
            Op::EndChat { .. } => "end_chat",
            Op::Transcript { .. } => "transcript",
            Op::Conversations { .. } => "conversations",
            Op::Assign { .. } => "assign",
            Op::Subscribe { .. } => "subscribe",
            Op::Ack { .. } => "ack",
            Op::Status {} => "status",
            Op::Templates { .. } => "templates",
            Op::TemplateSave { .. } => "template_save",
            Op::TemplateDelete { .. } => "template_delete",
            Op::OptOuts { .. } => "opt_outs",
        }
    }
}

// === Errors ===

/// The stable error codes of the protocol. Clients must treat an unknown
/// code like `internal` (a newer server may add codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, a field missing or of the wrong type.
    BadRequest,
    /// The line exceeded the maximum line length; it was discarded.
    LineTooLong,
    /// `op` names no operation of this version.
    UnknownOp,
    /// `hello` named a protocol version this server does not speak.
    UnsupportedVersion,
    /// No service of that name.
    UnknownService,
    /// The service exists but does not send SMS.
    SmsNotSupported,
    /// The service's allow-list does not include this agent.
    AgentNotAllowed,
    /// Not a valid phone number.
    InvalidNumber,
    /// A valid number that cannot receive SMS under the service's policy.
    NotMobile,
    /// The text is empty (after trimming).
    EmptyText,
    /// The text needs more parts than the service allows.
    TooLong,
    /// The customer opted out of this sender.
    OptedOut,
    /// The outbox holds `store.outbox_limit` messages waiting for the
    /// carrier the send is routed to; the send was not stored. Try again
    /// later.
    OutboxFull,
    /// No conversation with that id.
    UnknownConversation,
    /// The conversation has ended.
    ConversationEnded,
    /// The agent does not own the conversation.
    NotOwner,
    /// No template with that id (or not the agent's).
    UnknownTemplate,
    /// A template longer than the service's maximum parts.
    TemplateTooLong,
    /// The agent keeps as many templates as it may
    /// (`agent.max_templates_per_agent`).
    TooManyTemplates,
    /// The peer's uid is not on the socket's allow-list.
    PermissionDenied,
    /// Too many connections or requests; try again later.
    Busy,
    /// The daemon failed; the message says what.
    Internal,
    /// The daemon is stopping; reconnect later.
    ShuttingDown,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::BadRequest,
        ErrorCode::LineTooLong,
        ErrorCode::UnknownOp,
        ErrorCode::UnsupportedVersion,
        ErrorCode::UnknownService,
        ErrorCode::SmsNotSupported,
        ErrorCode::AgentNotAllowed,
        ErrorCode::InvalidNumber,
        ErrorCode::NotMobile,
        ErrorCode::EmptyText,
        ErrorCode::TooLong,
        ErrorCode::OptedOut,
        ErrorCode::OutboxFull,
        ErrorCode::UnknownConversation,
        ErrorCode::ConversationEnded,
        ErrorCode::NotOwner,
        ErrorCode::UnknownTemplate,
        ErrorCode::TemplateTooLong,
        ErrorCode::TooManyTemplates,
        ErrorCode::PermissionDenied,
        ErrorCode::Busy,
        ErrorCode::Internal,
        ErrorCode::ShuttingDown,
    ];

    /// The stable wire string (`"not_mobile"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::UnknownService => "unknown_service",
            ErrorCode::SmsNotSupported => "sms_not_supported",
            ErrorCode::AgentNotAllowed => "agent_not_allowed",
            ErrorCode::InvalidNumber => "invalid_number",
            ErrorCode::NotMobile => "not_mobile",
            ErrorCode::EmptyText => "empty_text",
            ErrorCode::TooLong => "too_long",
            ErrorCode::OptedOut => "opted_out",
            ErrorCode::OutboxFull => "outbox_full",
            ErrorCode::UnknownConversation => "unknown_conversation",
            ErrorCode::ConversationEnded => "conversation_ended",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::UnknownTemplate => "unknown_template",
            ErrorCode::TemplateTooLong => "template_too_long",
            ErrorCode::TooManyTemplates => "too_many_templates",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Busy => "busy",
            ErrorCode::Internal => "internal",
            ErrorCode::ShuttingDown => "shutting_down",
        }
    }

    /// The code for a wire string; `None` for a code this version does not
    /// know.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer: a stable code and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{code}: {message}")]
pub struct AgentError {
    /// What kind of failure (stable, for programs).
    pub code: ErrorCode,
    /// What happened (for a person; may change between versions).
    pub message: String,
}

impl AgentError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AgentError {
        AgentError {
            code,
            message: message.into(),
        }
    }

    /// `bad_request` with a message.
    pub fn bad_request(message: impl Into<String>) -> AgentError {
        AgentError::new(ErrorCode::BadRequest, message)
    }

    /// `internal` with a message.
    pub fn internal(message: impl Into<String>) -> AgentError {
        AgentError::new(ErrorCode::Internal, message)
    }
}

// === Parsing ===

/// A line that could not be turned into a [`Request`]: the id when it could
/// be read (else the answer carries `"id": null`) and the error to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The request's id if the line was an object with a scalar `id`.
    pub id: Option<Value>,
    /// The error to answer with.
    pub error: AgentError,
}

/// Parses one request line (without its newline).
///
/// # Errors
/// [`Rejected`] with `bad_request` (not JSON, not an object, a missing or
/// non-scalar `id`, a missing or non-string `op`, a field missing or of the
/// wrong type) or `unknown_op`.
pub fn parse_request(line: &str) -> Result<Request, Rejected> {
    let reject = |id: Option<Value>, code, message: String| Rejected {
        id,
        error: AgentError::new(code, message),
    };
    let value: Value = serde_json::from_str(line).map_err(|e| {
        reject(
            None,
            ErrorCode::BadRequest,
            format!("request is not valid JSON: {e}"),
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err(reject(
            None,
            ErrorCode::BadRequest,
            "request must be a JSON object".into(),
        ));
    };
    let id = match obj.remove("id") {
        None => {
            return Err(reject(
                None,
                ErrorCode::BadRequest,
                "missing field `id`".into(),
            ));
        }
        Some(Value::Array(_) | Value::Object(_)) => {
            return Err(reject(
                None,
                ErrorCode::BadRequest,
                "`id` must be a string, number, boolean or null".into(),
            ));
        }
        Some(id) => id,
    };
    let op_name = match obj.get("op") {
        None => {
            return Err(reject(
                Some(id),
                ErrorCode::BadRequest,
                "missing field `op`".into(),
            ));
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(reject(
                Some(id),
                ErrorCode::BadRequest,
                "`op` must be a string".into(),
            ));
        }
    };
    if !OPS.contains(&op_name.as_str()) {
        let shown: String = op_name.chars().take(64).collect();
        return Err(reject(
            Some(id),
            ErrorCode::UnknownOp,
            format!("unknown op `{shown}` (this server speaks {PROTOCOL_VERSION})"),
        ));
    }
    match serde_json::from_value::<Op>(Value::Object(obj)) {
        Ok(op) => Ok(Request { id, op }),
        Err(e) => Err(reject(
            Some(id),
            ErrorCode::BadRequest,
            format!("bad `{op_name}` request: {e}"),
        )),
    }
}

/// The page size of a `conversations`, `transcript` or `opt_outs` request:
/// the default when absent.
///
/// # Errors
/// `bad_request` when `limit` is outside 1..=[`PAGE_MAX_LIMIT`].
pub fn page_limit(limit: Option<u64>) -> Result<usize, AgentError> {
    match limit {
        None => Ok(PAGE_DEFAULT_LIMIT),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=PAGE_MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                AgentError::bad_request(format!("`limit` must be 1 to {PAGE_MAX_LIMIT}, got {n}"))
            }),
    }
}

// === Responses ===

/// The success line (without newline): `{"id": .., "ok": true, "result": ..}`.
pub fn ok_line(id: &Value, result: Value) -> String {
    let mut m = Map::new();
    m.insert("id".into(), id.clone());
    m.insert("ok".into(), Value::Bool(true));
    m.insert("result".into(), result);
    Value::Object(m).to_string()
}

/// The error line (without newline): `{"id": .., "ok": false, "error":
/// {"code": .., "message": ..}}`; `id` is `null` when it could not be read.
pub fn error_line(id: Option<&Value>, error: &AgentError) -> String {
    let mut e = Map::new();
    e.insert("code".into(), Value::String(error.code.as_str().into()));
    e.insert("message".into(), Value::String(error.message.clone()));
    let mut m = Map::new();
    m.insert("id".into(), id.cloned().unwrap_or(Value::Null));
    m.insert("ok".into(), Value::Bool(false));
    m.insert("error".into(), Value::Object(e));
    Value::Object(m).to_string()
}

/// The result of `hello`.
pub fn hello_result(max_line: usize) -> Value {
    serde_json::json!({
        "protocol": PROTOCOL_VERSION,
        "server": concat!("smppgw ", env!("CARGO_PKG_VERSION")),
        "max_line": max_line,
        "ops": OPS,
    })
}

/// Reads the `seq` of an event object (`None` when it has none).
pub fn event_seq(event: &Value) -> Option<u64> {
    event.get("seq").and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code_of(line: &str) -> (Option<Value>, ErrorCode) {
        let r = parse_request(line).expect_err("must be rejected");
        (r.id, r.error.code)
    }

    #[test]
    fn can_parse_every_op_with_its_fields() {
        let lines = [
            r#"{"id":1,"op":"hello","protocol":"smppgw-agent/1"}"#,
            r#"{"id":1,"op":"services"}"#,
            r#"{"id":1,"op":"count","service":"s","text":"hi"}"#,
            r#"{"id":1,"op":"check_number","service":"s","number":"+447911123456"}"#,
            r#"{"id":1,"op":"send","service":"s","to":"+447911123456","text":"hi","agent":"a"}"#,
            r#"{"id":1,"op":"end_chat","conversation":7,"agent":"a"}"#,
            r#"{"id":1,"op":"transcript","conversation":7}"#,
            r#"{"id":1,"op":"conversations"}"#,
            r#"{"id":1,"op":"assign","conversation":7,"to":"b"}"#,
            r#"{"id":1,"op":"subscribe","from":0}"#,
            r#"{"id":1,"op":"ack","seq":3}"#,
            r#"{"id":1,"op":"status"}"#,
            r#"{"id":1,"op":"templates","service":"s","agent":"a"}"#,
            r#"{"id":1,"op":"template_save","agent":"a","name":"n","text":"t"}"#,
            r#"{"id":1,"op":"template_delete","template":1,"agent":"a"}"#,
            r#"{"id":1,"op":"opt_outs","service":"s"}"#,
        ];
        assert_eq!(lines.len(), OPS.len());
        for (line, name) in lines.iter().zip(OPS) {
            let req = parse_request(line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            assert_eq!(req.op.name(), *name);
        }
    }

    #[test]
    fn template_ops_keep_the_template_id_apart_from_the_request_id() {
        let req = parse_request(r#"{"id":"r1","op":"template_delete","template":9,"agent":"a"}"#)
            .unwrap();
        assert_eq!(req.id, json!("r1"));
        assert_eq!(
            req.op,
            Op::TemplateDelete {
                template: 9,
                agent: "a".into()
            }
        );
    }

    #[test]
    fn ops_ignore_unknown_fields() {
        let req = parse_request(r#"{"id":1,"op":"services","future":true}"#).unwrap();
        assert_eq!(req.op, Op::Services {});
        let req = parse_request(r#"{"id":1,"op":"transcript","conversation":2,"x":1}"#).unwrap();
        assert_eq!(
            req.op,
            Op::Transcript {
                conversation: 2,
                before: None,
                limit: None
            }
        );
    }

    #[test]
    fn rejects_non_json_without_an_id() {
        assert_eq!(code_of("hello"), (None, ErrorCode::BadRequest));
        assert_eq!(code_of(""), (None, ErrorCode::BadRequest));
        assert_eq!(code_of("[1,2]"), (None, ErrorCode::BadRequest));
        assert_eq!(code_of(r#"{"op":"status"}"#), (None, ErrorCode::BadRequest));
        assert_eq!(
            code_of(r#"{"id":[1],"op":"status"}"#),
            (None, ErrorCode::BadRequest)
        );
    }

    #[test]
    fn rejects_unknown_op_with_its_id() {
        assert_eq!(
            code_of(r#"{"id":"x","op":"launch"}"#),
            (Some(json!("x")), ErrorCode::UnknownOp)
        );
    }

    #[test]
    fn rejects_wrong_types_and_missing_fields_with_their_id() {
        assert_eq!(
            code_of(r#"{"id":5,"op":7}"#),
            (Some(json!(5)), ErrorCode::BadRequest)
        );
        assert_eq!(
            code_of(r#"{"id":5}"#),
            (Some(json!(5)), ErrorCode::BadRequest)
        );
        assert_eq!(
            code_of(r#"{"id":5,"op":"transcript","conversation":"7"}"#),
            (Some(json!(5)), ErrorCode::BadRequest)
        );
        assert_eq!(
            code_of(r#"{"id":5,"op":"transcript","conversation":-1}"#),
            (Some(json!(5)), ErrorCode::BadRequest)
        );
        let r = parse_request(r#"{"id":5,"op":"count","service":"s"}"#).unwrap_err();
        assert_eq!(r.error.code, ErrorCode::BadRequest);
        assert!(r.error.message.contains("text"), "{}", r.error.message);
    }

    #[test]
    fn conversations_paging_fields_are_read() {
        let req = parse_request(r#"{"id":1,"op":"conversations","after":41,"limit":2}"#).unwrap();
        assert_eq!(
            req.op,
            Op::Conversations {
                owner: None,
                service: None,
                include_requested: false,
                after: Some(41),
                limit: Some(2),
            }
        );
        assert_eq!(
            code_of(r#"{"id":5,"op":"conversations","limit":-1}"#),
            (Some(json!(5)), ErrorCode::BadRequest)
        );
        assert_eq!(
            code_of(r#"{"id":5,"op":"conversations","after":"3"}"#),
            (Some(json!(5)), ErrorCode::BadRequest)
        );
    }

    #[test]
    fn transcript_paging_fields_are_read() {
        let req =
            parse_request(r#"{"id":1,"op":"transcript","conversation":7,"before":40,"limit":20}"#)
                .unwrap();
        assert_eq!(
            req.op,
            Op::Transcript {
                conversation: 7,
                before: Some(40),
                limit: Some(20),
            }
        );
        assert_eq!(
            code_of(r#"{"id":5,"op":"transcript","conversation":7,"before":"40"}"#),
            (Some(json!(5)), ErrorCode::BadRequest)
        );
    }

    #[test]
    fn opt_outs_paging_fields_are_read() {
        let req = parse_request(
            r#"{"id":1,"op":"opt_outs","service":"s","after":"+447911123456","limit":2}"#,
        )
        .unwrap();
        assert_eq!(
            req.op,
            Op::OptOuts {
                service: "s".into(),
                after: Some("+447911123456".into()),
                limit: Some(2),
            }
        );
        assert_eq!(
            code_of(r#"{"id":5,"op":"opt_outs","service":"s","after":3}"#),
            (Some(json!(5)), ErrorCode::BadRequest)
        );
    }

    #[test]
    fn a_page_limit_defaults_and_rejects_out_of_range() {
        assert_eq!(page_limit(None), Ok(PAGE_DEFAULT_LIMIT));
        assert_eq!(page_limit(Some(1)), Ok(1));
        assert_eq!(page_limit(Some(PAGE_MAX_LIMIT as u64)), Ok(PAGE_MAX_LIMIT));
        for bad in [0, PAGE_MAX_LIMIT as u64 + 1, u64::MAX] {
            let e = page_limit(Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(e.message.contains("limit"), "{}", e.message);
        }
    }

    #[test]
    fn error_codes_round_trip_through_their_strings() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                Value::String(code.as_str().into())
            );
        }
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }

    #[test]
    fn can_round_trip_response_lines() {
        let ok: Value = serde_json::from_str(&ok_line(&json!("a"), json!({"x": 1}))).unwrap();
        assert_eq!(ok, json!({"id": "a", "ok": true, "result": {"x": 1}}));
        let err = AgentError::new(ErrorCode::NotMobile, "a fixed line");
        let e: Value = serde_json::from_str(&error_line(None, &err)).unwrap();
        assert_eq!(
            e,
            json!({"id": null, "ok": false, "error": {"code": "not_mobile", "message": "a fixed line"}})
        );
    }
}
