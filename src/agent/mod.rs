//! The agent socket: the JSON-lines protocol types, the Unix-socket server and the reference client.
