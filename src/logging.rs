//! tracing-subscriber set-up, human or JSON; secrets and message text stay out of logs above debug.
