//! Domain types shared by the store, the conversation rules and the agent protocol: ids, conversations, messages, events.
//!
//! Pure: no tokio, no sled, no clock. Times are milliseconds since the Unix
//! epoch, passed in by the shell. The JSON shape of [`Event`] is the one the
//! agent socket sends (see `CONTRACT.md`).

use serde::{Deserialize, Serialize};

/// Conversation id (u64 in Rust, a JSON number on the wire).
pub type ConversationId = u64;
/// Message id.
pub type MessageId = u64;
/// Event sequence number: handed out in commit order, starting at 1.
pub type Seq = u64;

// === Conversation ===

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// An agent owns it; replies go to the owner.
    Open,
    /// A customer texted first (or after the end) and no agent took it yet.
    Requested,
    /// Closed by `end_chat`; later replies follow the inbound policy.
    Ended,
}

/// A conversation between one service number and one customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Conversation id.
    pub id: ConversationId,
    /// Service name (from config).
    pub service: String,
    /// The service's sender: long number, short code or alphanumeric id.
    pub sender: String,
    /// Customer number, E.164 with '+'.
    pub customer: String,
    /// Agent who gets the replies; empty while `requested`.
    pub owner: String,
    /// Contact-center interaction (call) id, if the agent layer gave one.
    pub interaction: Option<String>,
    /// Current state.
    pub state: ConversationState,
    /// Creation time (ms).
    pub created_ms: u64,
    /// Last change (ms).
    pub updated_ms: u64,
    /// When it ended (ms).
    pub ended_ms: Option<u64>,
    /// Its newest message, if any: the transcript reads back from it along
    /// [`Message::previous`].
    #[serde(default)]
    pub last_message: Option<MessageId>,
}

// === Message ===

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Agent → customer.
    Out,
    /// Customer → agent.
    In,
}

/// Message status as the transcript shows it (strings per `CONTRACT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Stored durably, not yet answered by the carrier.
    Accepted,
    /// Every part answered by `submit_sm_resp` OK.
    Submitted,
    /// Every part delivered.
    Delivered,
    /// Refused by the carrier or a part failed.
    Failed,
    /// A part expired at the SMSC.
    Expired,
    /// No final word from the carrier: no final receipt within the receipt
    /// timeout, or no `submit_sm_resp` to the first send and to every
    /// resend the carrier's `max_resubmits` allows. A late response or
    /// receipt can still settle it.
    Unknown,
    /// An inbound message (customer → agent).
    Received,
}

impl MessageStatus {
    /// True once nothing but a late receipt can change it.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Failed | Self::Expired | Self::Received
        )
    }
}

/// State reported by a delivery receipt (normalised by the dlr layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    /// ENROUTE (intermediate).
    Enroute,
    /// ACCEPTD: intermediate unless the receipt says final (then delivered).
    Accepted,
    /// DELIVRD.
    Delivered,
    /// EXPIRED.
    Expired,
    /// DELETED.
    Deleted,
    /// UNDELIV.
    Undeliverable,
    /// REJECTD.
    Rejected,
    /// UNKNOWN, or a stat word nobody knows.
    Unknown,
}

/// A delivery receipt's outcome, as the dlr layer hands it to the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptUpdate {
    /// The receipt's state.
    pub state: ReceiptState,
    /// Carrier error (`err:` field or network error code), e.g. "err:001".
    pub error: Option<String>,
    /// Final per the carrier's rules. Only matters for `Accepted`: a final
    /// ACCEPTD counts as delivered. Delivered and the failure states are final
    /// by nature; ENROUTE never is.
    pub is_final: bool,
}

/// Where one part of an outbound message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartState {
    /// Not answered by the carrier yet.
    Pending,
    /// `submit_sm_resp` OK, no receipt yet.
    Submitted,
    /// `submit_sm_resp` with a permanent error.
    SubmitFailed,
    /// Receipt ENROUTE.
    Enroute,
    /// Receipt ACCEPTD (non-final).
    Accepted,
    /// Receipt DELIVRD (or final ACCEPTD).
    Delivered,
    /// Receipt EXPIRED.
    Expired,
    /// Receipt DELETED.
    Deleted,
    /// Receipt UNDELIV.
    Undeliverable,
    /// Receipt REJECTD.
    Rejected,
    /// Receipt UNKNOWN.
    Unknown,
}

impl PartState {
    /// The part state a receipt moves a part to.
    pub fn from_receipt(update: &ReceiptUpdate) -> Self {
        match update.state {
            ReceiptState::Enroute => Self::Enroute,
            ReceiptState::Accepted if update.is_final => Self::Delivered,
            ReceiptState::Accepted => Self::Accepted,
            ReceiptState::Delivered => Self::Delivered,
            ReceiptState::Expired => Self::Expired,
            ReceiptState::Deleted => Self::Deleted,
            ReceiptState::Undeliverable => Self::Undeliverable,
            ReceiptState::Rejected => Self::Rejected,
            ReceiptState::Unknown => Self::Unknown,
        }
    }

    /// The failure this part stands for, if it failed.
    pub fn failure(self) -> Option<FailState> {
        match self {
            Self::SubmitFailed => Some(FailState::SubmitFailed),
            Self::Expired => Some(FailState::Expired),
            Self::Deleted => Some(FailState::Deleted),
            Self::Undeliverable => Some(FailState::Undeliverable),
            Self::Rejected => Some(FailState::Rejected),
            Self::Unknown => Some(FailState::Unknown),
            _ => None,
        }
    }

    /// True when no later receipt should change it.
    pub fn is_final(self) -> bool {
        self == Self::Delivered || self.failure().is_some()
    }
}

/// Why a message failed (the `state` of `message_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailState {
    /// UNDELIV.
    Undeliverable,
    /// REJECTD.
    Rejected,
    /// EXPIRED.
    Expired,
    /// DELETED.
    Deleted,
    /// UNKNOWN receipt state.
    Unknown,
    /// The carrier refused the submit permanently.
    SubmitFailed,
    /// No final receipt within the receipt timeout, or no submit response
    /// after `max_resubmits` resends (the message status is `unknown`).
    NoReceipt,
}

/// Status of a message computed from its parts: what the transcript shows.
///
/// Any failed part fails the message (expired if that part expired); all parts
/// delivered → delivered; all parts answered → submitted; else accepted.
pub fn aggregate_status(parts: &[PartState]) -> (MessageStatus, Option<FailState>) {
    if let Some(f) = parts.iter().find_map(|p| p.failure()) {
        let status = if f == FailState::Expired {
            MessageStatus::Expired
        } else {
            MessageStatus::Failed
        };
        return (status, Some(f));
    }
    if !parts.is_empty() && parts.iter().all(|p| *p == PartState::Delivered) {
        return (MessageStatus::Delivered, None);
    }
    if parts.iter().all(|p| *p != PartState::Pending) {
        return (MessageStatus::Submitted, None);
    }
    (MessageStatus::Accepted, None)
}

/// One message, outbound or inbound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Message id.
    pub id: MessageId,
    /// Its conversation.
    pub conversation: ConversationId,
    /// Out (agent → customer) or in.
    pub direction: Direction,
    /// The text as the agent wrote it / as reassembled.
    pub text: String,
    /// "gsm7", "ucs2", ... as planned by the text layer.
    pub encoding: String,
    /// Number of SMS parts.
    pub parts: u8,
    /// Transcript status.
    pub status: MessageStatus,
    /// Creation time (ms).
    pub created_ms: u64,
    /// Last change (ms).
    pub updated_ms: u64,
    /// When every part was answered OK (ms); the receipt timeout runs from it.
    pub submitted_ms: Option<u64>,
    /// Carrier route (outbound).
    pub carrier: Option<String>,
    /// Normalised carrier message id per part.
    pub part_ids: Vec<Option<String>>,
    /// State per part.
    pub part_states: Vec<PartState>,
    /// Carrier error of the failure, e.g. "0x0000000b" or "err:001".
    pub error: Option<String>,
    /// Client reference (idempotency key) given by the agent layer.
    pub client_ref: Option<String>,
    /// Agent who sent it (outbound).
    pub agent: Option<String>,
    /// May have reached the carrier twice (a lease lapsed while in flight).
    pub possible_duplicate: bool,
    /// Inbound multi-part reply delivered with parts missing.
    pub incomplete: bool,
    /// The message before it in its conversation (`None`: the first).
    #[serde(default)]
    pub previous: Option<MessageId>,
}

// === Event ===

/// One entry of the durable event log; its JSON is what the socket sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number, increasing in commit order.
    pub seq: Seq,
    /// Commit time (ms); serialized as `at`, RFC 3339 UTC with milliseconds.
    #[serde(rename = "at", with = "at_format")]
    pub at_ms: u64,
    /// Conversation, when the event belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationId>,
    /// Owner of the conversation at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Service of the conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Customer number (E.164).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What an event says; `event` field on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// Stored durably; will be sent.
    MessageAccepted {
        /// Message id.
        message: MessageId,
        /// Text.
        text: String,
        /// SMS parts.
        parts: u8,
        /// Encoding name.
        encoding: String,
    },
    /// Every part acknowledged by the carrier.
    MessageSubmitted {
        /// Message id.
        message: MessageId,
        /// May have gone out twice.
        possible_duplicate: bool,
    },
    /// Every part delivered.
    MessageDelivered {
        /// Message id.
        message: MessageId,
    },
    /// Failed, expired or no receipt in time.
    MessageFailed {
        /// Message id.
        message: MessageId,
        /// Why.
        state: FailState,
        /// Carrier status or error code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A customer reply in an open (or requested) conversation.
    MessageReceived {
        /// Message id.
        message: MessageId,
        /// Text.
        text: String,
        /// Parts were missing at the reassembly timeout.
        incomplete: bool,
    },
    /// A customer texted first, or after the end: a new conversation waits.
    ChatRequested {
        /// Message id.
        message: MessageId,
        /// Text.
        text: String,
    },
    /// The conversation was ended.
    ChatEnded {
        /// Agent who ended it.
        by: String,
    },
    /// Ownership changed.
    ChatAssigned {
        /// Previous owner ("" for a chat request).
        from: String,
        /// New owner.
        to: String,
    },
    /// The customer opted out (STOP).
    CustomerOptedOut {
        /// The message that carried the keyword.
        message: MessageId,
    },
    /// The customer opted back in (START).
    CustomerOptedIn {
        /// The message that carried the keyword.
        message: MessageId,
    },
    /// A bind came up.
    LinkUp {
        /// Carrier name.
        carrier: String,
        /// Bind name.
        bind: String,
        /// Detail.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A bind went down.
    LinkDown {
        /// Carrier name.
        carrier: String,
        /// Bind name.
        bind: String,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

mod at_format {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(ms: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::clock::rfc3339_ms(*ms))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = String::deserialize(d)?;
        let t = humantime::parse_rfc3339(&s).map_err(D::Error::custom)?;
        let ms = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(D::Error::custom)?
            .as_millis();
        u64::try_from(ms).map_err(D::Error::custom)
    }
}

// === Templates and opt-outs ===

/// An agent's own predefined message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Template id.
    pub id: u64,
    /// Owning agent.
    pub agent: String,
    /// Limited to one service, or any.
    pub service: Option<String>,
    /// Short name shown in the picker.
    pub name: String,
    /// The text.
    pub text: String,
    /// Last change (ms).
    pub updated_ms: u64,
}

/// A customer who asked a sender to stop texting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptOut {
    /// The service's sender.
    pub sender: String,
    /// Customer number (E.164).
    pub customer: String,
    /// Since when (ms).
    pub since_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind) -> Event {
        Event {
            seq: 42,
            at_ms: 1_795_611_600_123,
            conversation: Some(7),
            owner: Some("alice".into()),
            service: Some("support".into()),
            customer: Some("+447911123456".into()),
            kind,
        }
    }

    #[test]
    fn event_json_matches_the_contract() {
        let e = ev(EventKind::MessageAccepted {
            message: 9,
            text: "hi".into(),
            parts: 1,
            encoding: "gsm7".into(),
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"seq": 42, "at": "2026-11-25T13:00:00.123Z", "event": "message_accepted",
                "conversation": 7, "owner": "alice", "service": "support", "customer": "+447911123456",
                "message": 9, "text": "hi", "parts": 1, "encoding": "gsm7"})
        );
    }

    #[test]
    fn failed_event_names_state_and_omits_missing_error() {
        let e = ev(EventKind::MessageFailed {
            message: 3,
            state: FailState::NoReceipt,
            error: None,
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "message_failed");
        assert_eq!(v["state"], "no_receipt");
        assert!(v.get("error").is_none());
    }

    #[test]
    fn link_event_omits_conversation_fields() {
        let e = Event {
            seq: 1,
            at_ms: 0,
            conversation: None,
            owner: None,
            service: None,
            customer: None,
            kind: EventKind::LinkDown {
                carrier: "acme".into(),
                bind: "trx1".into(),
                reason: Some("timeout".into()),
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"seq": 1, "at": "1970-01-01T00:00:00.000Z", "event": "link_down",
                "carrier": "acme", "bind": "trx1", "reason": "timeout"})
        );
    }

    #[test]
    fn can_round_trip_every_event_kind() {
        let kinds = vec![
            EventKind::MessageSubmitted {
                message: 1,
                possible_duplicate: true,
            },
            EventKind::MessageDelivered { message: 1 },
            EventKind::MessageFailed {
                message: 1,
                state: FailState::SubmitFailed,
                error: Some("0x0000000b".into()),
            },
            EventKind::MessageReceived {
                message: 2,
                text: "yes".into(),
                incomplete: false,
            },
            EventKind::ChatRequested {
                message: 2,
                text: "hello?".into(),
            },
            EventKind::ChatEnded { by: "bob".into() },
            EventKind::ChatAssigned {
                from: "alice".into(),
                to: "bob".into(),
            },
            EventKind::CustomerOptedOut { message: 4 },
            EventKind::CustomerOptedIn { message: 5 },
            EventKind::LinkUp {
                carrier: "acme".into(),
                bind: "tx".into(),
                reason: None,
            },
        ];
        for k in kinds {
            let e = ev(k);
            let s = serde_json::to_string(&e).unwrap();
            let back: Event = serde_json::from_str(&s).unwrap();
            assert_eq!(back, e, "{s}");
        }
    }

    #[test]
    fn one_failed_part_fails_the_message() {
        use PartState::*;
        assert_eq!(
            aggregate_status(&[Delivered, Rejected]).0,
            MessageStatus::Failed
        );
        assert_eq!(
            aggregate_status(&[Pending, Expired]).0,
            MessageStatus::Expired
        );
        assert_eq!(
            aggregate_status(&[Delivered, Submitted]).0,
            MessageStatus::Submitted
        );
        assert_eq!(
            aggregate_status(&[Delivered, Delivered]).0,
            MessageStatus::Delivered
        );
        assert_eq!(
            aggregate_status(&[Delivered, Pending]).0,
            MessageStatus::Accepted
        );
    }

    #[test]
    fn final_acceptd_counts_as_delivered() {
        let u = ReceiptUpdate {
            state: ReceiptState::Accepted,
            error: None,
            is_final: true,
        };
        assert_eq!(PartState::from_receipt(&u), PartState::Delivered);
        let u = ReceiptUpdate {
            is_final: false,
            ..u
        };
        assert_eq!(PartState::from_receipt(&u), PartState::Accepted);
    }
}
