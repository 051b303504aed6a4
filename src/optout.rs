//! Opt-out keywords: STOP / START / HELP matching on a whole trimmed message. Pure.
