//! Delivery states: the receipt's `stat` word or the `message_state` TLV,
//! which of them are final, the coarse outcome the agent sees, and the
//! combiner for messages sent in several parts.
//!
//! | state | stat words (prefix, any case) | TLV | outcome |
//! |---|---|---|---|
//! | Scheduled | SCHEDLD, SCHED… | 0 (v5) | intermediate |
//! | Enroute | ENROUTE, BUFFRED/BUFFERD/BUFF…, ACKED | 1 | intermediate |
//! | Delivered | DELIVRD, DELIVERED, DELIV… | 2 | delivered |
//! | Expired | EXPIRED, EXPIR… | 3 | failed |
//! | Deleted | DELETED, DELET… | 4 | failed |
//! | Undeliverable | UNDELIV, UNDELIVERABLE, UNDEL… | 5 | failed |
//! | Accepted | ACCEPTD, ACCEPTED | 6 | intermediate, or delivered where the carrier's "ACCEPTD is final" switch is on |
//! | Unknown | UNKNOWN | 7 | unknown (final) |
//! | Rejected | REJECTD, REJECTED | 8 | failed |
//! | Skipped | SKIPPED | 9 (v5) | failed |
//! | Failed | FAILED, FAIL…, and any other word | – | failed |
//!
//! A numeric stat ("2") is read as a `message_state` value.

/// A receipt's delivery state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// SCHEDULED (v5, 0): not yet tried.
    Scheduled,
    /// ENROUTE (1), or buffered: still trying.
    Enroute,
    /// DELIVERED (2).
    Delivered,
    /// EXPIRED (3): validity period passed.
    Expired,
    /// DELETED (4).
    Deleted,
    /// UNDELIVERABLE (5).
    Undeliverable,
    /// ACCEPTED (6): final per the spec, but some carriers send it right
    /// after the submit; see [`DeliveryState::outcome`].
    Accepted,
    /// UNKNOWN (7).
    Unknown,
    /// REJECTED (8).
    Rejected,
    /// SKIPPED (v5, 9).
    Skipped,
    /// FAILED, or a stat word or TLV value nobody defined (counted by the
    /// shell as `unknown_stat`).
    Failed,
}

/// The coarse outcome the agent sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The handset has it.
    Delivered,
    /// It will not arrive.
    Failed,
    /// Not final yet.
    Intermediate,
    /// Final, but the SMSC does not know (UNKNOWN).
    Unknown,
}

impl Outcome {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
            Outcome::Intermediate => "intermediate",
            Outcome::Unknown => "unknown",
        }
    }

    /// Whether no later receipt is expected.
    pub fn is_final(self) -> bool {
        self != Outcome::Intermediate
    }
}

impl DeliveryState {
    /// From a `message_state` TLV value (v5 values 0 and 9 included).
    /// `None` for undefined values.
    pub fn from_message_state(v: u8) -> Option<Self> {
        Some(match v {
            0 => DeliveryState::Scheduled,
            1 => DeliveryState::Enroute,
            2 => DeliveryState::Delivered,
            3 => DeliveryState::Expired,
            4 => DeliveryState::Deleted,
            5 => DeliveryState::Undeliverable,
            6 => DeliveryState::Accepted,
            7 => DeliveryState::Unknown,
            8 => DeliveryState::Rejected,
            9 => DeliveryState::Skipped,
            _ => return None,
        })
    }

    /// From a receipt's stat word, leniently (see the module table).
    /// Returns the state and whether the word was recognised (`false`: an
    /// unknown word, mapped to [`DeliveryState::Failed`]).
    pub fn from_stat(word: &str) -> (Self, bool) {
        let w = word.trim().to_ascii_uppercase();
        if let Ok(n) = w.parse::<u8>() {
            return match DeliveryState::from_message_state(n) {
                Some(s) => (s, true),
                None => (DeliveryState::Failed, false),
            };
        }
        const PREFIXES: &[(&str, DeliveryState)] = &[
            ("UNDEL", DeliveryState::Undeliverable),
            ("DELIV", DeliveryState::Delivered),
            ("ENROUTE", DeliveryState::Enroute),
            ("BUFF", DeliveryState::Enroute),
            ("ACKED", DeliveryState::Enroute),
            ("EXPIR", DeliveryState::Expired),
            ("DELET", DeliveryState::Deleted),
            ("ACCEPT", DeliveryState::Accepted),
            ("UNKNOWN", DeliveryState::Unknown),
            ("REJECT", DeliveryState::Rejected),
            ("SKIP", DeliveryState::Skipped),
            ("SCHED", DeliveryState::Scheduled),
            ("FAIL", DeliveryState::Failed),
        ];
        match PREFIXES.iter().find(|(p, _)| w.starts_with(p)) {
            Some(&(_, s)) => (s, true),
            None => (DeliveryState::Failed, false),
        }
    }

    /// The spec's 7-letter stat word.
    pub fn stat_word(self) -> &'static str {
        match self {
            DeliveryState::Scheduled => "SCHEDLD",
            DeliveryState::Enroute => "ENROUTE",
            DeliveryState::Delivered => "DELIVRD",
            DeliveryState::Expired => "EXPIRED",
            DeliveryState::Deleted => "DELETED",
            DeliveryState::Undeliverable => "UNDELIV",
            DeliveryState::Accepted => "ACCEPTD",
            DeliveryState::Unknown => "UNKNOWN",
            DeliveryState::Rejected => "REJECTD",
            DeliveryState::Skipped => "SKIPPED",
            DeliveryState::Failed => "FAILED",
        }
    }

    /// The outcome, given the carrier's "ACCEPTD is final" switch (when on,
    /// ACCEPTD counts as delivered: read on the subscriber's behalf).
    pub fn outcome(self, accepted_is_final: bool) -> Outcome {
        match self {
            DeliveryState::Scheduled | DeliveryState::Enroute => Outcome::Intermediate,
            DeliveryState::Accepted if accepted_is_final => Outcome::Delivered,
            DeliveryState::Accepted => Outcome::Intermediate,
            DeliveryState::Delivered => Outcome::Delivered,
            DeliveryState::Unknown => Outcome::Unknown,
            DeliveryState::Expired
            | DeliveryState::Deleted
            | DeliveryState::Undeliverable
            | DeliveryState::Rejected
            | DeliveryState::Skipped
            | DeliveryState::Failed => Outcome::Failed,
        }
    }

    /// Whether this state is final with the default carrier setting
    /// (ACCEPTD not final).
    pub fn is_final(self) -> bool {
        self.outcome(false).is_final()
    }
}

/// Serialized as its default [`Outcome`]: "delivered", "failed",
/// "intermediate" or "unknown" (ACCEPTD → "intermediate"); the exact word
/// is in the receipt's `stat`.
impl serde::Serialize for DeliveryState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.outcome(false).as_str())
    }
}

/// Combines the outcomes of a message's parts (`None`: no receipt yet for
/// that part): failed as soon as any part failed; delivered when every
/// part is delivered; unknown when every part is final and some are
/// unknown; otherwise intermediate. No parts at all is intermediate.
pub fn combine(parts: &[Option<Outcome>]) -> Outcome {
    if parts.contains(&Some(Outcome::Failed)) {
        return Outcome::Failed;
    }
    if parts.is_empty() || parts.iter().any(|p| !p.is_some_and(Outcome::is_final)) {
        return Outcome::Intermediate;
    }
    if parts.iter().all(|p| *p == Some(Outcome::Delivered)) {
        Outcome::Delivered
    } else {
        Outcome::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_out_and_odd_words_map() {
        assert_eq!(
            DeliveryState::from_stat("DELIVERED").0,
            DeliveryState::Delivered
        );
        assert_eq!(
            DeliveryState::from_stat("delivrd").0,
            DeliveryState::Delivered
        );
        assert_eq!(
            DeliveryState::from_stat("UNDELIVERABLE").0,
            DeliveryState::Undeliverable
        );
        assert_eq!(
            DeliveryState::from_stat("BUFFRED").0,
            DeliveryState::Enroute
        );
        assert_eq!(DeliveryState::from_stat("2").0, DeliveryState::Delivered);
        assert_eq!(
            DeliveryState::from_stat("WHATEVER"),
            (DeliveryState::Failed, false)
        );
        assert_eq!(
            DeliveryState::from_stat("FAILED"),
            (DeliveryState::Failed, true)
        );
    }

    #[test]
    fn message_state_values_map() {
        let want = [
            "SCHEDLD", "ENROUTE", "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN",
            "REJECTD", "SKIPPED",
        ];
        for (v, w) in (0u8..).zip(want) {
            let s = DeliveryState::from_message_state(v).unwrap();
            assert_eq!(s.stat_word(), w);
            assert_eq!(DeliveryState::from_stat(w).0, s);
        }
        assert_eq!(DeliveryState::from_message_state(10), None);
    }

    #[test]
    fn accepted_is_final_only_when_the_carrier_says_so() {
        assert!(!DeliveryState::Accepted.is_final());
        assert_eq!(DeliveryState::Accepted.outcome(true), Outcome::Delivered);
        assert!(DeliveryState::Expired.is_final());
        assert!(!DeliveryState::Enroute.is_final());
    }

    #[test]
    fn combine_fails_fast_and_delivers_only_when_all_delivered() {
        use Outcome::*;
        assert_eq!(combine(&[Some(Delivered), None, Some(Failed)]), Failed);
        assert_eq!(combine(&[Some(Delivered), None]), Intermediate);
        assert_eq!(
            combine(&[Some(Delivered), Some(Intermediate)]),
            Intermediate
        );
        assert_eq!(combine(&[Some(Delivered), Some(Delivered)]), Delivered);
        assert_eq!(combine(&[Some(Delivered), Some(Unknown)]), Unknown);
        assert_eq!(combine(&[]), Intermediate);
    }
}
