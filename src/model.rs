//! Domain types shared by the store, the conversation rules and the agent protocol: ids, conversations, messages, events.
