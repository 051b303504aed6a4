//! Conversations: the pure rules that match replies and receipts, and their application through the store.
