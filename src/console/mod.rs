//! `smppgw console`: the reference agent console, a web page served as a client of the agent socket.
