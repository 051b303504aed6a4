//! Pure conversation rules: which conversation a send or a reply belongs to,
//! and what `end_chat` / `assign` may do. No tokio, no sled, no clock.
//!
//! The open-conversation index holds at most one conversation per
//! (sender, customer) that is `open` or `requested`; callers look it up and
//! hand the result in.

use serde::{Deserialize, Serialize};

use crate::model::{Conversation, ConversationId, ConversationState};

/// What to do with a customer text that matches no open conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundPolicy {
    /// Count and log it; store nothing.
    #[default]
    Ignore,
    /// Start a `requested` conversation (the service accepts SMS-initiated contacts).
    NewChat,
}

/// Why a send was refused (expected conditions, not store failures).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SendRefused {
    /// The conversation id given does not exist.
    #[error("conversation {id} not found")]
    ConversationNotFound {
        /// The id given.
        id: ConversationId,
    },
    /// The conversation id given is ended: start a new one instead.
    #[error("conversation {id} has ended")]
    ConversationEnded {
        /// The id given.
        id: ConversationId,
    },
    /// The conversation id given belongs to another sender or customer.
    #[error("conversation {id} is with another sender or customer")]
    ConversationMismatch {
        /// The id given.
        id: ConversationId,
    },
    /// The customer opted out of this sender.
    #[error("customer opted out")]
    OptedOut {
        /// Since when (ms).
        since_ms: u64,
    },
    /// The outbox holds as many messages for the send's carrier as it may
    /// (the carrier is down or slower than the agents); nothing was stored.
    #[error("the outbox holds {depth} messages for carrier {carrier} (limit {limit})")]
    OutboxFull {
        /// The carrier the send was routed to.
        carrier: String,
        /// Entries in the outbox for that carrier.
        depth: u64,
        /// The limit the send named.
        limit: u64,
    },
}

/// Where an outbound message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendDecision {
    /// Into this existing conversation.
    Continue {
        /// The conversation.
        conversation: ConversationId,
        /// The sending agent takes it over from this previous owner
        /// ("" when it was a chat request).
        take_over: Option<String>,
    },
    /// Open a new conversation owned by the sender.
    Open,
    /// Refuse.
    Refuse(SendRefused),
}

/// Decides where an agent's message goes.
///
/// `explicit` is the conversation the agent named (already loaded; the caller
/// refuses an unknown id), `open` the index entry of (sender, customer). The
/// agent who sends takes the conversation over: replies go to whoever texted
/// last (a chat request is accepted by texting into it).
pub fn decide_send(
    explicit: Option<&Conversation>,
    open: Option<&Conversation>,
    agent: &str,
    sender: &str,
    customer: &str,
) -> SendDecision {
    let target = match explicit {
        Some(c) => {
            if c.sender != sender || c.customer != customer {
                return SendDecision::Refuse(SendRefused::ConversationMismatch { id: c.id });
            }
            if c.state == ConversationState::Ended {
                return SendDecision::Refuse(SendRefused::ConversationEnded { id: c.id });
            }
            c
        }
        None => match open {
            Some(c) if c.state != ConversationState::Ended => c,
            _ => return SendDecision::Open,
        },
    };
    let take_over = (target.owner != agent || target.state == ConversationState::Requested)
        .then(|| target.owner.clone());
    SendDecision::Continue {
        conversation: target.id,
        take_over,
    }
}

/// Where a customer's text goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundDecision {
    /// Into this open (or still requested) conversation.
    Matched(ConversationId),
    /// Start a new `requested` conversation.
    Request,
    /// Drop it (counted by the caller).
    Ignore,
}

/// Decides where a reply goes, given the index entry of (sender, customer).
pub fn decide_inbound(open: Option<&Conversation>, policy: InboundPolicy) -> InboundDecision {
    match open {
        Some(c) if c.state != ConversationState::Ended => InboundDecision::Matched(c.id),
        _ => match policy {
            InboundPolicy::Ignore => InboundDecision::Ignore,
            InboundPolicy::NewChat => InboundDecision::Request,
        },
    }
}

/// Why `end_chat` or `assign` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRefused {
    /// No such conversation.
    #[error("conversation not found")]
    NotFound,
    /// It has already ended.
    #[error("conversation has ended")]
    Ended,
}

/// Checks that a conversation can be ended.
pub fn decide_end(conv: Option<&Conversation>) -> Result<(), ChatRefused> {
    match conv {
        None => Err(ChatRefused::NotFound),
        Some(c) if c.state == ConversationState::Ended => Err(ChatRefused::Ended),
        Some(_) => Ok(()),
    }
}

/// Checks a hand-over; returns the previous owner, or `None` when nothing
/// changes (already open and owned by `to`). A `requested` chat becomes open.
pub fn decide_assign(conv: Option<&Conversation>, to: &str) -> Result<Option<String>, ChatRefused> {
    match conv {
        None => Err(ChatRefused::NotFound),
        Some(c) if c.state == ConversationState::Ended => Err(ChatRefused::Ended),
        Some(c) if c.state == ConversationState::Open && c.owner == to => Ok(None),
        Some(c) => Ok(Some(c.owner.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(id: u64, owner: &str, state: ConversationState) -> Conversation {
        Conversation {
            id,
            service: "support".into(),
            sender: "447700100200".into(),
            customer: "+447911123456".into(),
            owner: owner.into(),
            interaction: None,
            state,
            created_ms: 0,
            updated_ms: 0,
            ended_ms: None,
            last_message: None,
        }
    }

    const S: &str = "447700100200";
    const C: &str = "+447911123456";

    #[test]
    fn send_opens_when_nothing_is_open() {
        assert_eq!(decide_send(None, None, "alice", S, C), SendDecision::Open);
    }

    #[test]
    fn send_continues_own_open_conversation() {
        let c = conv(3, "alice", ConversationState::Open);
        assert_eq!(
            decide_send(None, Some(&c), "alice", S, C),
            SendDecision::Continue {
                conversation: 3,
                take_over: None
            }
        );
    }

    #[test]
    fn send_by_another_agent_takes_over() {
        let c = conv(3, "alice", ConversationState::Open);
        assert_eq!(
            decide_send(None, Some(&c), "bob", S, C),
            SendDecision::Continue {
                conversation: 3,
                take_over: Some("alice".into())
            }
        );
    }

    #[test]
    fn send_into_a_request_accepts_it() {
        let c = conv(4, "", ConversationState::Requested);
        assert_eq!(
            decide_send(Some(&c), Some(&c), "bob", S, C),
            SendDecision::Continue {
                conversation: 4,
                take_over: Some(String::new())
            }
        );
    }

    #[test]
    fn rejects_send_into_ended_conversation() {
        let c = conv(5, "alice", ConversationState::Ended);
        assert_eq!(
            decide_send(Some(&c), None, "alice", S, C),
            SendDecision::Refuse(SendRefused::ConversationEnded { id: 5 })
        );
    }

    #[test]
    fn rejects_send_into_someone_elses_conversation_id() {
        let c = conv(6, "alice", ConversationState::Open);
        assert_eq!(
            decide_send(Some(&c), None, "alice", S, "+819012345678"),
            SendDecision::Refuse(SendRefused::ConversationMismatch { id: 6 })
        );
    }

    #[test]
    fn inbound_follows_policy_when_nothing_open() {
        assert_eq!(
            decide_inbound(None, InboundPolicy::Ignore),
            InboundDecision::Ignore
        );
        assert_eq!(
            decide_inbound(None, InboundPolicy::NewChat),
            InboundDecision::Request
        );
        let ended = conv(1, "a", ConversationState::Ended);
        assert_eq!(
            decide_inbound(Some(&ended), InboundPolicy::NewChat),
            InboundDecision::Request
        );
    }

    #[test]
    fn inbound_matches_open_and_requested() {
        let c = conv(2, "a", ConversationState::Open);
        assert_eq!(
            decide_inbound(Some(&c), InboundPolicy::Ignore),
            InboundDecision::Matched(2)
        );
        let r = conv(3, "", ConversationState::Requested);
        assert_eq!(
            decide_inbound(Some(&r), InboundPolicy::Ignore),
            InboundDecision::Matched(3)
        );
    }

    #[test]
    fn end_and_assign_refuse_ended_or_missing() {
        let e = conv(1, "a", ConversationState::Ended);
        assert_eq!(decide_end(None), Err(ChatRefused::NotFound));
        assert_eq!(decide_end(Some(&e)), Err(ChatRefused::Ended));
        assert_eq!(decide_assign(Some(&e), "b"), Err(ChatRefused::Ended));
        let o = conv(2, "a", ConversationState::Open);
        assert_eq!(decide_assign(Some(&o), "a"), Ok(None));
        assert_eq!(decide_assign(Some(&o), "b"), Ok(Some("a".into())));
    }
}
