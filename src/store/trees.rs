//! Tree names and key layouts of the sled store, all in one place.
//!
//! Integers in keys are big-endian so that range scans come out ordered.
//! Variable-length strings that are followed by more key material are
//! length-prefixed (`lp`: u16 big-endian length, then the UTF-8 bytes).
//!
//! | tree                  | key                                   | value                          |
//! |-----------------------|---------------------------------------|--------------------------------|
//! | `meta`                | ASCII name (`next_message`, ...)      | u64 BE counter                 |
//! | `conversations`       | conversation id u64                   | a live [`Conversation`] (value.rs) |
//! | `open`                | lp(sender) ++ customer                | conversation id u64            |
//! | `messages`            | message id u64                        | [`Message`]                    |
//! | `conversation_messages` | conversation id u64 ++ message id u64 | empty (layouts before 7; emptied at open) |
//! | `outbox`              | lp(carrier) ++ message id u64         | `OutboxEntry`                  |
//! | `carrier_ids`         | lp(carrier) ++ normalised id          | message id u64 ++ part u8      |
//! | `held_receipts`       | lp(carrier) ++ normalised id          | `HeldReceipt`                  |
//! | `awaiting_receipts`   | message id u64                        | submitted at ms u64            |
//! | `reassembly`          | lp(opaque key) ++ part seq u8         | at ms u64 ++ part bytes        |
//! | `events`              | seq u64                               | [`Event`]                      |
//! | `cursors`             | consumer name                         | seq u64                        |
//! | `idempotency`         | lp(agent) ++ client_ref               | message id u64                 |
//! |                       | lp("\0system") ++ lp(kind) ++ lp(sender) ++ lp(customer) ++ u64 | message id u64 |
//! | `templates`           | template id u64                       | [`Template`]                   |
//! | `opt_outs`            | lp(sender) ++ customer                | since ms u64                   |
//! | `leases`              | the outbox key of a leased entry      | empty                          |
//! | `receipt_due`         | submitted at ms u64 ++ message id u64 | empty                          |
//! | `ended`               | ended at ms u64 ++ conversation id u64 | empty                         |
//! | `held_due`            | held at ms u64 ++ `held_receipts` key | empty                          |
//! | `ended_conversations` | conversation id u64                   | an ended [`Conversation`]      |
//! | `agent_templates`     | lp(agent) ++ template id u64          | empty                          |
//!
//! A live conversation is open or requested. It moves from `conversations`
//! to `ended_conversations` when it ends (and never changes state again), so
//! listing the live ones reads only those, however many ended ones retention
//! keeps. A conversation's messages are linked newest to oldest: the
//! conversation holds its `last_message`, each message its `previous` (both
//! values are rewritten per message anyway, so the link costs no key).
//!
//! `leases`, `receipt_due`, `ended`, `held_due` and `agent_templates` are
//! indexes, kept in step by the writes of the trees they index: `leases`
//! holds a key exactly while that outbox entry has a lease (what the start
//! releases), `receipt_due` one entry per `awaiting_receipts` entry in
//! submit-time order (what the receipt sweep gives up on), `ended` one per
//! ended conversation in end-time order (what retention purges), `held_due`
//! one per held receipt in the order it was held (what the receipt sweep
//! drops once too old), `agent_templates` one per template under its agent
//! (what an agent's listing and its limit read).
//! `meta` also holds the entry counts of `outbox`, `awaiting_receipts` and
//! `held_receipts` (`count_*`) and of each carrier's outbox entries
//! (`count_outbox_of:` ++ carrier, absent at 0), kept by every commit, and `indexed`, the
//! version of these derived entries (see `derived.rs`). So neither the
//! start, nor a gauge, nor a sweep, nor a listing reads a whole tree.
//!
//! Outbox keys order entries by message id per carrier: FIFO per carrier,
//! and a released entry goes back to where it was (the head).
//!
//! [`Conversation`]: crate::model::Conversation
//! [`Message`]: crate::model::Message
//! [`Event`]: crate::model::Event
//! [`Template`]: crate::model::Template

/// Every tree, as an index into the store's tree array. The index is also
/// what the write-ahead log records: add new trees at the end, never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum T {
    Meta,
    Conversations,
    Open,
    Messages,
    ConversationMessages,
    Outbox,
    CarrierIds,
    HeldReceipts,
    AwaitingReceipts,
    Reassembly,
    Events,
    Cursors,
    Idempotency,
    Templates,
    OptOuts,
    Leases,
    ReceiptDue,
    Ended,
    HeldDue,
    EndedConversations,
    AgentTemplates,
}

impl T {
    /// All trees, in index order.
    pub(crate) const ALL: [T; 21] = [
        T::Meta,
        T::Conversations,
        T::Open,
        T::Messages,
        T::ConversationMessages,
        T::Outbox,
        T::CarrierIds,
        T::HeldReceipts,
        T::AwaitingReceipts,
        T::Reassembly,
        T::Events,
        T::Cursors,
        T::Idempotency,
        T::Templates,
        T::OptOuts,
        T::Leases,
        T::ReceiptDue,
        T::Ended,
        T::HeldDue,
        T::EndedConversations,
        T::AgentTemplates,
    ];

    /// The sled tree name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            T::Meta => "meta",
            T::Conversations => "conversations",
            T::Open => "open",
            T::Messages => "messages",
            T::ConversationMessages => "conversation_messages",
            T::Outbox => "outbox",
            T::CarrierIds => "carrier_ids",
            T::HeldReceipts => "held_receipts",
            T::AwaitingReceipts => "awaiting_receipts",
            T::Reassembly => "reassembly",
            T::Events => "events",
            T::Cursors => "cursors",
            T::Idempotency => "idempotency",
            T::Templates => "templates",
            T::OptOuts => "opt_outs",
            T::Leases => "leases",
            T::ReceiptDue => "receipt_due",
            T::Ended => "ended",
            T::HeldDue => "held_due",
            T::EndedConversations => "ended_conversations",
            T::AgentTemplates => "agent_templates",
        }
    }
}

/// Meta keys of the id counters (value: the next id to hand out).
pub(crate) const NEXT_CONVERSATION: &[u8] = b"next_conversation";
pub(crate) const NEXT_MESSAGE: &[u8] = b"next_message";
pub(crate) const NEXT_SEQ: &[u8] = b"next_seq";
pub(crate) const NEXT_TEMPLATE: &[u8] = b"next_template";
/// `meta` key: the lowest event seq still served (those below were trimmed).
pub(crate) const EVENTS_FROM: &[u8] = b"events_from";

/// u64 as a big-endian key.
pub(crate) fn id(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// Reads a big-endian u64 from the first 8 bytes.
pub(crate) fn read_u64(b: &[u8]) -> Option<u64> {
    let a: [u8; 8] = b.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(a))
}

/// Length-prefixed string (u16 BE length; longer strings are truncated at
/// 65535 bytes, far beyond any sender, carrier or agent name).
pub(crate) fn lp(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&s[..n]);
}

/// `lp(a) ++ b`.
pub(crate) fn pair(a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + a.len() + b.len());
    lp(&mut k, a.as_bytes());
    k.extend_from_slice(b.as_bytes());
    k
}

/// Open-index key: (sender, customer).
pub(crate) fn open_key(sender: &str, customer: &str) -> Vec<u8> {
    pair(sender, customer)
}

/// Opt-out key: (sender, customer).
pub(crate) fn opt_out_key(sender: &str, customer: &str) -> Vec<u8> {
    pair(sender, customer)
}

/// `agent_templates` key: (agent, template id).
pub(crate) fn agent_template_key(agent: &str, template: u64) -> Vec<u8> {
    let mut k = pair(agent, "");
    k.extend_from_slice(&id(template));
    k
}

/// Carrier-id and held-receipt key: (carrier, normalised id).
pub(crate) fn carrier_id_key(carrier: &str, normalized: &str) -> Vec<u8> {
    pair(carrier, normalized)
}

/// Idempotency key: (agent, client_ref).
pub(crate) fn idempotency_key(agent: &str, client_ref: &str) -> Vec<u8> {
    pair(agent, client_ref)
}

/// The idempotency "agent" of the gateway's own messages: no agent name
/// starts with NUL.
pub(crate) const SYSTEM_AGENT: &str = "\0system";

/// Idempotency key of a system message: (kind, sender, customer, n), where
/// `n` is the opt-out's `since` or the answered message's id.
pub(crate) fn system_ref_key(kind: &str, sender: &str, customer: &str, n: u64) -> Vec<u8> {
    let mut k = Vec::new();
    lp(&mut k, SYSTEM_AGENT.as_bytes());
    lp(&mut k, kind.as_bytes());
    lp(&mut k, sender.as_bytes());
    lp(&mut k, customer.as_bytes());
    k.extend_from_slice(&id(n));
    k
}

/// Outbox prefix of one carrier.
pub(crate) fn outbox_prefix(carrier: &str) -> Vec<u8> {
    let mut k = Vec::new();
    lp(&mut k, carrier.as_bytes());
    k
}

/// The carrier prefix of an outbox key (the key less its message id).
pub(crate) fn outbox_prefix_of(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(8)]
}

/// The least key greater than every key starting with `prefix` (`None`:
/// there is none, `prefix` is all 0xff).
pub(crate) fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < 0xff {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Outbox key: (carrier, message).
pub(crate) fn outbox_key(carrier: &str, message: u64) -> Vec<u8> {
    let mut k = outbox_prefix(carrier);
    k.extend_from_slice(&id(message));
    k
}

/// Conversation-messages key (layouts before 7).
#[cfg(test)]
pub(crate) fn conversation_message_key(conversation: u64, message: u64) -> [u8; 16] {
    u64_pair(conversation, message)
}

/// `receipt_due` and `ended` key: (time ms, id), in time order.
pub(crate) fn time_key(at_ms: u64, id: u64) -> [u8; 16] {
    u64_pair(at_ms, id)
}

/// `held_due` key: when a receipt was held, then its `held_receipts` key.
pub(crate) fn held_due_key(at_ms: u64, held: &[u8]) -> Vec<u8> {
    let mut k = id(at_ms).to_vec();
    k.extend_from_slice(held);
    k
}

/// The (time ms, `held_receipts` key) of a [`held_due_key`].
pub(crate) fn split_held_due_key(k: &[u8]) -> Option<(u64, &[u8])> {
    Some((read_u64(k)?, k.get(8..)?))
}

/// The (time ms, id) of a [`time_key`].
pub(crate) fn split_time_key(k: &[u8]) -> Option<(u64, u64)> {
    Some((read_u64(k)?, read_u64(k.get(8..)?)?))
}

fn u64_pair(a: u64, b: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id(a));
    k[8..].copy_from_slice(&id(b));
    k
}

/// Reassembly prefix of one opaque key.
pub(crate) fn reassembly_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::new();
    lp(&mut k, key);
    k
}

/// Splits an `lp(..) ++ rest` key.
pub(crate) fn split_lp(k: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u16::from_be_bytes(k.get(..2)?.try_into().ok()?) as usize;
    let a = k.get(2..2 + n)?;
    Some((a, &k[2 + n..]))
}

#[cfg(test)]
mod tests {

    #[test]
    fn tree_indices_follow_all_and_never_move() {
        for (i, t) in T::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "{t:?}");
        }
        // The write-ahead log names trees by index: these must stay put.
        assert_eq!(T::Meta as u8, 0);
        assert_eq!(T::Outbox as u8, 5);
        assert_eq!(T::OptOuts as u8, 14);
    }
    use super::*;

    #[test]
    fn outbox_keys_order_by_message_within_a_carrier() {
        let a = outbox_key("acme", 2);
        let b = outbox_key("acme", 10);
        let c = outbox_key("acme", 256);
        assert!(a < b && b < c);
        assert!(outbox_key("acme", u64::MAX).starts_with(&outbox_prefix("acme")));
        assert!(!outbox_key("acmex", 1).starts_with(&outbox_prefix("acme")));
    }

    #[test]
    fn can_round_trip_length_prefixed_pairs() {
        let k = pair("447700100200", "+447911123456");
        let (a, b) = split_lp(&k).unwrap();
        assert_eq!(a, b"447700100200");
        assert_eq!(b, b"+447911123456");
    }

    #[test]
    fn prefix_of_one_sender_does_not_match_another() {
        // "44" + "7..." must not collide with "447" + "...".
        assert_ne!(open_key("44", "7911"), open_key("447", "911"));
    }
}
