//! Number checks: parse with a default country, normalise to E.164, classify, decide whether SMS can reach it. Pure.
