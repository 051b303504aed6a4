//! The simulator's runtime knobs ([`Scenario`]: what a real SMSC does to an
//! ESME, changeable while it runs) and the seeded PRNG that makes its
//! random behaviour (throttling, queue-full answers, garbage bodies)
//! repeatable.

use serde::{Deserialize, Serialize};

/// What the simulator does to the ESMEs bound to it. Every field can be
/// changed at run time ([`super::SimHandle::update`], the control socket's
/// `set`); connections read it for every PDU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Message ids in upper-case hex instead of decimal.
    pub hex_ids: bool,
    /// With `hex_ids`: the receipt carries the id in decimal (the classic
    /// base mismatch between submit_sm_resp and receipt, CARRIERS.md 3).
    pub receipt_id_decimal: bool,
    /// Delay between a submit and its delivery receipt.
    pub receipt_delay_ms: u64,
    /// Receipts carry only the text (no `receipted_message_id`,
    /// `message_state`, `network_error_code` TLVs).
    pub text_only_receipts: bool,
    /// Send the receipt before the submit_sm_resp (seen on TX+RX pairs);
    /// the response waits until the receipt went out (at most 2 s).
    pub receipt_before_response: bool,
    /// Destinations starting with one of these (digits as submitted) get
    /// an UNDELIV receipt instead of DELIVRD.
    pub fail_prefixes: Vec<String>,
    /// Fraction (0..=1) of submits answered ESME_RTHROTTLED.
    pub throttle: f64,
    /// Fraction (0..=1) of submits answered ESME_RMSGQFUL.
    pub queue_full: f64,
    /// Delay before each submit_sm_resp.
    pub resp_delay_ms: u64,
    /// Close the connection on every Nth submit of a connection, without
    /// answering it or anything still unanswered (0: never).
    pub drop_every: u64,
    /// After every Nth submit of a connection, send one garbage PDU: a
    /// random body that cannot parse under a valid header (0: never).
    pub garbage_every: u64,
    /// Delay before answering a bind.
    pub bind_delay_ms: u64,
    /// Most binds at once; beyond it a bind gets ESME_RALYBND (0: no limit).
    pub max_binds: usize,
    /// Refuse every bind with this status (e.g. 0x0D ESME_RBINDFAIL).
    pub refuse_binds: Option<u32>,
}

impl Default for Scenario {
    /// A well-behaved SMSC: decimal ids, receipts with TLVs after 100 ms,
    /// no throttling, no delays, no drops, no garbage, no bind limit.
    fn default() -> Self {
        Scenario {
            hex_ids: false,
            receipt_id_decimal: false,
            receipt_delay_ms: 100,
            text_only_receipts: false,
            receipt_before_response: false,
            fail_prefixes: Vec::new(),
            throttle: 0.0,
            queue_full: 0.0,
            resp_delay_ms: 0,
            drop_every: 0,
            garbage_every: 0,
            bind_delay_ms: 0,
            max_binds: 0,
            refuse_binds: None,
        }
    }
}

impl Scenario {
    /// Whether a receipt to `destination` reports failure.
    pub fn fails(&self, destination: &str) -> bool {
        self.fail_prefixes
            .iter()
            .any(|p| !p.is_empty() && destination.starts_with(p.as_str()))
    }

    /// Clamps the fractions into 0..=1 (NaN counts as 0).
    pub(crate) fn sanitise(&mut self) {
        let clamp = |f: f64| if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
        self.throttle = clamp(self.throttle);
        self.queue_full = clamp(self.queue_full);
    }
}

/// SplitMix64: tiny, seedable, good enough for a simulator's coin flips.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `true` with probability `p` (0 never, 1 always).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 || p.is_nan() {
            return false;
        }
        // 53 random bits as a float in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_gives_same_sequence() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let xa: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let xb: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let xc: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn chance_respects_its_bounds_and_fraction() {
        let mut r = Rng::new(1);
        assert!((0..1000).all(|_| !r.chance(0.0)));
        assert!((0..1000).all(|_| r.chance(1.0)));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        // Binomial(10 000, 0.25): sd ≈ 43; 5 sd either side.
        assert!((2285..=2715).contains(&hits), "{hits}");
    }

    #[test]
    fn fail_prefixes_match_destinations() {
        let s = Scenario {
            fail_prefixes: vec!["4479".into(), String::new()],
            ..Scenario::default()
        };
        assert!(s.fails("447911123456"));
        assert!(!s.fails("819012345678"));
    }

    #[test]
    fn sanitise_clamps_fractions() {
        let mut s = Scenario {
            throttle: 1.5,
            queue_full: f64::NAN,
            ..Scenario::default()
        };
        s.sanitise();
        assert_eq!((s.throttle, s.queue_full), (1.0, 0.0));
    }
}
