//! Reconnect delays for a bind: capped exponential backoff with jitter, with a
//! separate policy per kind of failure (CARRIERS.md §1 "Reconnect policy"):
//! network/transient (1 s → 60 s), bad credentials (parked, 15 → 30 min),
//! ESME_RALYBND (never shorter than the carrier's session timeout, ≥ 60 s)
//! and ESME_RBINDFAIL (long: misconfiguration likely). Every counter resets
//! only after a bind succeeds.
//!
//! Jitter comes from [`SplitMix64`], a tiny seedable PRNG, so tests are
//! deterministic and no `rand` dependency is needed. Pure: no clock.

use std::time::Duration;

use crate::session::status::BindClass;

/// SplitMix64 (Steele, Lea, Flood 2014): a 64-bit PRNG good enough for
/// jitter, seedable, one `u64` of state. Not for anything secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    /// Advances by the golden-ratio increment on every draw.
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed` (the shell passes e.g. wall-clock
    /// milliseconds mixed with the bind index).
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One backoff policy. The n-th consecutive failure (n from 0) waits
/// `min(initial × multiplier^n, max)`, shortened by up to `jitter` of itself
/// at random, and never less than `floor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// Delay after the first failure, before jitter.
    pub initial: Duration,
    /// Cap on the delay before jitter.
    pub max: Duration,
    /// Growth per consecutive failure (≥ 1.0).
    pub multiplier: f64,
    /// Fraction in `[0, 1]` of the delay that is randomised away, so binds
    /// and gateways don't retry in lockstep.
    pub jitter: f64,
    /// No delay is ever shorter than this (e.g. the carrier's session
    /// timeout for ESME_RALYBND).
    pub floor: Duration,
}

impl BackoffPolicy {
    /// Network and transient failures: 1 s → 60 s, ×2, 20 % jitter.
    pub const CONNECT: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
        multiplier: 2.0,
        jitter: 0.2,
        floor: Duration::ZERO,
    };

    /// Bad credentials (0x0E, 0x0F, 0x53): the link is parked and retried
    /// every 15 min, then 30 min, so the carrier does not ban our IP.
    pub const AUTH: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_secs(15 * 60),
        max: Duration::from_secs(30 * 60),
        multiplier: 2.0,
        jitter: 0.1,
        floor: Duration::from_secs(10 * 60),
    };

    /// ESME_RALYBND: the first wait is at least the carrier's timeout
    /// (default 60 s floor, 75 s before jitter), growing to 5 min.
    pub const ALREADY_BOUND: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_secs(75),
        max: Duration::from_secs(5 * 60),
        multiplier: 2.0,
        jitter: 0.2,
        floor: Duration::from_secs(60),
    };

    /// ESME_RBINDFAIL and TLS failures: misconfiguration likely, 1 min → 15 min.
    pub const BIND_FAILED: BackoffPolicy = BackoffPolicy {
        initial: Duration::from_secs(60),
        max: Duration::from_secs(15 * 60),
        multiplier: 2.0,
        jitter: 0.2,
        floor: Duration::from_secs(30),
    };

    /// Checks the policy's bounds (for the config layer).
    ///
    /// # Errors
    /// The first setting out of bounds.
    pub fn validate(&self) -> Result<(), BackoffConfigError> {
        let fail = |field, expected| Err(BackoffConfigError { field, expected });
        if self.initial.is_zero() || self.initial > self.max {
            return fail("initial", "above zero and at most max");
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return fail("multiplier", "at least 1");
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return fail("jitter", "a fraction between 0 and 1");
        }
        if self.floor > self.max {
            return fail("floor", "at most max");
        }
        Ok(())
    }

    /// The ALREADY_BOUND policy for a carrier whose session timeout is
    /// `carrier_timeout`: never waits less than that.
    pub fn already_bound(carrier_timeout: Duration) -> BackoffPolicy {
        let floor = carrier_timeout;
        BackoffPolicy {
            initial: (floor + floor / 4).max(Duration::from_secs(1)),
            max: (floor * 4).max(BackoffPolicy::ALREADY_BOUND.max),
            floor,
            ..BackoffPolicy::ALREADY_BOUND
        }
    }

    /// The delay for consecutive failure number `attempt` (0 = first) with
    /// the random draw `unit` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let mult = self.multiplier.max(1.0);
        let exp = mult.powi(attempt.min(64) as i32);
        let max_secs = self.max.as_secs_f64();
        let base = (self.initial.as_secs_f64() * exp).min(max_secs);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let unit = unit.clamp(0.0, 1.0);
        let secs = base * (1.0 - jitter * unit);
        Duration::from_secs_f64(secs.max(0.0)).max(self.floor)
    }
}

/// A backoff setting outside its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} out of bounds: {expected}")]
pub struct BackoffConfigError {
    /// The setting.
    pub field: &'static str,
    /// What it must be.
    pub expected: &'static str,
}

/// One policy plus its consecutive-failure count.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// How delays grow.
    policy: BackoffPolicy,
    /// Consecutive failures since the last reset.
    attempt: u32,
}

impl Backoff {
    /// A fresh backoff following `policy`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Backoff { policy, attempt: 0 }
    }

    /// Consecutive failures counted so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Counts a failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self, rng: &mut SplitMix64) -> Duration {
        let d = self.policy.delay(self.attempt, rng.next_f64());
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// Back to the first delay (after a successful bind).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// The reconnect state of one bind: a backoff per [`BindClass`] and the
/// jitter source.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconnect {
    /// Transient and network failures.
    connect: Backoff,
    /// Bad credentials.
    auth: Backoff,
    /// ESME_RALYBND.
    already_bound: Backoff,
    /// ESME_RBINDFAIL, TLS.
    bind_failed: Backoff,
    /// Jitter source.
    rng: SplitMix64,
}

/// The four policies a [`Reconnect`] uses (carrier config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicies {
    /// For [`BindClass::Transient`].
    pub connect: BackoffPolicy,
    /// For [`BindClass::Auth`].
    pub auth: BackoffPolicy,
    /// For [`BindClass::AlreadyBound`].
    pub already_bound: BackoffPolicy,
    /// For [`BindClass::Misconfigured`].
    pub bind_failed: BackoffPolicy,
}

impl Default for ReconnectPolicies {
    fn default() -> Self {
        ReconnectPolicies {
            connect: BackoffPolicy::CONNECT,
            auth: BackoffPolicy::AUTH,
            already_bound: BackoffPolicy::ALREADY_BOUND,
            bind_failed: BackoffPolicy::BIND_FAILED,
        }
    }
}

impl Reconnect {
    /// Reconnect state with `policies`, jitter seeded with `seed`.
    pub fn new(policies: ReconnectPolicies, seed: u64) -> Self {
        Reconnect {
            connect: Backoff::new(policies.connect),
            auth: Backoff::new(policies.auth),
            already_bound: Backoff::new(policies.already_bound),
            bind_failed: Backoff::new(policies.bind_failed),
            rng: SplitMix64::new(seed),
        }
    }

    /// Counts a failed attempt of `class` and returns the wait before the
    /// next one. Other classes keep their counts: a flapping link that
    /// alternates reasons still backs off.
    pub fn on_failure(&mut self, class: BindClass) -> Duration {
        let b = match class {
            BindClass::Transient => &mut self.connect,
            BindClass::Auth => &mut self.auth,
            BindClass::AlreadyBound => &mut self.already_bound,
            BindClass::Misconfigured => &mut self.bind_failed,
        };
        b.next_delay(&mut self.rng)
    }

    /// A bind succeeded: every policy starts over.
    pub fn on_bound(&mut self) {
        self.connect.reset();
        self.auth.reset();
        self.already_bound.reset();
        self.bind_failed.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn prng_is_deterministic_per_seed_and_in_unit_range() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let mut c = SplitMix64::new(43);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mut r = SplitMix64::new(7);
        for _ in 0..10_000 {
            let f = r.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
    }

    #[test]
    fn prng_spreads_draws_over_the_unit_interval() {
        let mut r = SplitMix64::new(1);
        let mut buckets = [0u32; 10];
        for _ in 0..10_000 {
            buckets[(r.next_f64() * 10.0) as usize] += 1;
        }
        for b in buckets {
            assert!((800..1200).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn default_policies_are_valid_and_bad_ones_rejected() {
        let d = ReconnectPolicies::default();
        for p in [d.connect, d.auth, d.already_bound, d.bind_failed] {
            assert_eq!(p.validate(), Ok(()));
        }
        assert_eq!(BackoffPolicy::already_bound(600 * S).validate(), Ok(()));
        let bad = BackoffPolicy {
            jitter: 2.0,
            ..BackoffPolicy::CONNECT
        };
        assert_eq!(bad.validate().map_err(|e| e.field), Err("jitter"));
        let bad = BackoffPolicy {
            initial: 120 * S,
            ..BackoffPolicy::CONNECT
        };
        assert_eq!(bad.validate().map_err(|e| e.field), Err("initial"));
    }

    #[test]
    fn connect_backoff_doubles_up_to_the_cap() {
        let p = BackoffPolicy::CONNECT;
        let no_jitter: Vec<_> = (0..9).map(|n| p.delay(n, 0.0)).collect();
        assert_eq!(
            no_jitter,
            vec![
                S,
                2 * S,
                4 * S,
                8 * S,
                16 * S,
                32 * S,
                60 * S,
                60 * S,
                60 * S
            ]
        );
        assert_eq!(p.delay(u32::MAX, 0.0), 60 * S);
    }

    #[test]
    fn jitter_only_shortens_within_its_fraction() {
        let p = BackoffPolicy::CONNECT;
        let mut rng = SplitMix64::new(9);
        for n in 0..12 {
            let top = p.delay(n, 0.0);
            let d = p.delay(n, rng.next_f64());
            assert!(d <= top && d.as_secs_f64() >= top.as_secs_f64() * 0.8 - 1e-9);
        }
    }

    #[test]
    fn already_bound_never_waits_less_than_carrier_timeout() {
        let p = BackoffPolicy::already_bound(120 * S);
        for unit in [0.0, 0.5, 0.999] {
            assert!(p.delay(0, unit) >= 120 * S);
        }
        assert!(BackoffPolicy::ALREADY_BOUND.delay(0, 0.999) >= 60 * S);
    }

    #[test]
    fn auth_failures_retry_slowly() {
        let mut r = Reconnect::new(ReconnectPolicies::default(), 1);
        for _ in 0..5 {
            let d = r.on_failure(BindClass::Auth);
            assert!(d >= 10 * 60 * S && d <= 30 * 60 * S, "{d:?}");
        }
    }

    #[test]
    fn backoff_resets_only_after_bound() {
        let mut r = Reconnect::new(ReconnectPolicies::default(), 5);
        let first = r.on_failure(BindClass::Transient);
        for _ in 0..10 {
            r.on_failure(BindClass::Transient);
        }
        // A different failure class does not reset the connect counter.
        r.on_failure(BindClass::AlreadyBound);
        assert!(r.on_failure(BindClass::Transient) >= 48 * S);
        r.on_bound();
        let again = r.on_failure(BindClass::Transient);
        assert!(again <= S && first <= S);
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let run = |seed| {
            let mut r = Reconnect::new(ReconnectPolicies::default(), seed);
            (0..6)
                .map(|_| r.on_failure(BindClass::Transient))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
