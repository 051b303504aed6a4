//! The daemon: wires config, store, links, agent server and metrics together, and runs the shutdown sequence.
