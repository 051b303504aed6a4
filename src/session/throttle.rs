//! Send-rate control for one bind: a token bucket for the configured
//! messages/s (every part counts), and the reaction to the carrier saying
//! "too fast" (ESME_RTHROTTLED 0x58) or "queue full" (ESME_RMSGQFUL 0x14).
//!
//! Pure: no clock, no queue. The caller owns the queue and keeps it in order:
//! a throttled message goes back to the *head*, and this module only answers
//! *when* the bind may send again ([`Throttle::try_take`] returns `Err(when)`).
//! The session machine arms `Timer::ThrottlePause` at [`Throttle::paused_until`].
//!
//! # How a throttle is handled
//! Older gateways back off each throttled message for seconds and collapse
//! to a few messages per second when a carrier throttles a small share of
//! submits. Here (CARRIERS.md §2, issue 8):
//! - **Stale signals are ignored.** A throttle for a request sent before our
//!   last reaction already had its effect; only responses to requests sent
//!   after it count (like TCP's one reduction per round trip).
//! - **Noise costs one slot.** While the throttled share of the last
//!   [`HISTORY`] responses stays within `tolerance` (default 15 %), a
//!   throttle pauses the bind for one token interval only: the retried
//!   message costs a slot, nothing more. Under 5 % throttling the bind keeps
//!   well over 90 % of its unthrottled rate (see the model tests).
//! - **Sustained throttling pauses the whole bind.** Above the tolerance, or
//!   after `streak` throttles in a row with nothing accepted, the bind pauses
//!   for `pause_initial` (100 ms); another such reaction within
//!   `repeat_window` multiplies the pause by `pause_factor` up to
//!   `pause_max`. Each such reaction also multiplies the local rate by
//!   `rate_decrease` (halves it, down to `min_rate_fraction` of the
//!   configured rate); after `recovery_quiet` without one, the rate grows by
//!   `recovery_step` of the configured rate per `recovery_quiet` (additive
//!   increase) back to the configured rate.
//! - **Queue full** pauses the bind with its own, longer policy
//!   (`queue_full_*`, 1 s → 30 s) and leaves the rate alone.

use std::time::{Duration, Instant};

/// Number of recent responses the throttled share is measured over.
pub const HISTORY: u32 = 128;

/// The share is computed over at least this many responses, so a single
/// early throttle does not look like 100 %.
const MIN_SAMPLE: u32 = 64;

/// Throttle settings for one bind (carrier config).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleConfig {
    /// Messages per second for this bind; `None` means no local limit (the
    /// window alone bounds the rate).
    pub tps: Option<f64>,
    /// Tokens that may accumulate while idle (≥ 1).
    pub burst: u32,
    /// Throttled share of recent responses treated as noise.
    pub tolerance: f64,
    /// Consecutive throttles (nothing accepted in between) that count as
    /// sustained throttling whatever the share.
    pub streak: u32,
    /// First pause of the whole bind on sustained throttling.
    pub pause_initial: Duration,
    /// Longest throttle pause.
    pub pause_max: Duration,
    /// Pause growth for a reaction within `repeat_window` of the previous.
    pub pause_factor: f64,
    /// Reactions closer than this are "repeated" and grow the pause.
    pub repeat_window: Duration,
    /// Local rate multiplier per reaction (0.5 halves it).
    pub rate_decrease: f64,
    /// The local rate never drops below this fraction of `tps`.
    pub min_rate_fraction: f64,
    /// Quiet time (no reaction) before each additive rate increase.
    pub recovery_quiet: Duration,
    /// Fraction of `tps` added per `recovery_quiet` of quiet.
    pub recovery_step: f64,
    /// First pause on ESME_RMSGQFUL.
    pub queue_full_pause_initial: Duration,
    /// Longest ESME_RMSGQFUL pause.
    pub queue_full_pause_max: Duration,
    /// ESME_RMSGQFUL pause growth within `repeat_window`.
    pub queue_full_factor: f64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            tps: None,
            burst: 10,
            tolerance: 0.15,
            streak: 6,
            pause_initial: Duration::from_millis(100),
            pause_max: Duration::from_secs(10),
            pause_factor: 2.0,
            repeat_window: Duration::from_secs(2),
            rate_decrease: 0.5,
            min_rate_fraction: 0.1,
            recovery_quiet: Duration::from_secs(1),
            recovery_step: 0.05,
            queue_full_pause_initial: Duration::from_secs(1),
            queue_full_pause_max: Duration::from_secs(30),
            queue_full_factor: 2.0,
        }
    }
}

/// A throttle setting outside its bounds (reported by the config layer with
/// the carrier's key path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} out of bounds: {expected}")]
pub struct ThrottleConfigError {
    /// The setting.
    pub field: &'static str,
    /// What it must be.
    pub expected: &'static str,
}

impl ThrottleConfig {
    /// Checks every setting (quinn-style bounds), so nothing is silently
    /// clamped at run time.
    ///
    /// # Errors
    /// The first setting out of bounds.
    pub fn validate(&self) -> Result<(), ThrottleConfigError> {
        let fail = |field, expected| Err(ThrottleConfigError { field, expected });
        if let Some(tps) = self.tps {
            if !(tps.is_finite() && tps > 0.0) {
                return fail("tps", "a positive number of messages per second");
            }
        }
        if self.burst == 0 {
            return fail("burst", "at least 1");
        }
        if !(0.0..=1.0).contains(&self.tolerance) {
            return fail("tolerance", "a fraction between 0 and 1");
        }
        if self.streak == 0 {
            return fail("streak", "at least 1");
        }
        if self.pause_initial.is_zero() || self.pause_initial > self.pause_max {
            return fail("pause_initial", "above zero and at most pause_max");
        }
        if !(self.pause_factor >= 1.0 && self.pause_factor.is_finite()) {
            return fail("pause_factor", "at least 1");
        }
        if !(self.rate_decrease > 0.0 && self.rate_decrease <= 1.0) {
            return fail("rate_decrease", "a fraction above 0, at most 1");
        }
        if !(self.min_rate_fraction > 0.0 && self.min_rate_fraction <= 1.0) {
            return fail("min_rate_fraction", "a fraction above 0, at most 1");
        }
        if self.recovery_quiet.is_zero() {
            return fail("recovery_quiet", "above zero");
        }
        if !(self.recovery_step > 0.0 && self.recovery_step <= 1.0) {
            return fail("recovery_step", "a fraction above 0, at most 1");
        }
        if self.queue_full_pause_initial.is_zero()
            || self.queue_full_pause_initial > self.queue_full_pause_max
        {
            return fail(
                "queue_full_pause_initial",
                "above zero and at most queue_full_pause_max",
            );
        }
        if !(self.queue_full_factor >= 1.0 && self.queue_full_factor.is_finite()) {
            return fail("queue_full_factor", "at least 1");
        }
        Ok(())
    }

    /// The defaults with a local limit of `tps` messages/s and `burst`.
    pub fn with_rate(tps: f64, burst: u32) -> Self {
        ThrottleConfig {
            tps: Some(tps),
            burst,
            ..ThrottleConfig::default()
        }
    }
}

/// What the last throttle response made the bind do (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// The request was sent before the last reaction: no new pause.
    Stale,
    /// Within tolerance: paused for one token interval.
    Noise,
    /// Sustained throttling: the bind pauses and the local rate drops.
    Pause,
}

/// An escalating pause: the next length and when it was last used.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Escalation {
    /// Length of the next pause.
    next: Duration,
    /// When the last reaction happened: requests sent before it are stale.
    last: Option<Instant>,
    /// When the last pause ended: the repeat window counts from here.
    last_end: Option<Instant>,
}

impl Escalation {
    fn new(initial: Duration) -> Self {
        Escalation {
            next: initial,
            last: None,
            last_end: None,
        }
    }

    fn is_stale(&self, sent_at: Instant) -> bool {
        self.last.is_some_and(|last| sent_at < last)
    }

    /// The pause for a reaction at `now`, growing the next one.
    fn react(
        &mut self,
        now: Instant,
        initial: Duration,
        max: Duration,
        factor: f64,
        window: Duration,
    ) -> Duration {
        let repeated = self
            .last_end
            .is_some_and(|end| now.saturating_duration_since(end) <= window);
        let pause = if repeated { self.next } else { initial }.min(max);
        self.next = pause.mul_f64(factor.max(1.0)).min(max);
        self.last = Some(now);
        self.last_end = Some(now + pause);
        pause
    }
}

/// Rate and throttle state of one bind.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// Settings.
    cfg: ThrottleConfig,
    /// Tokens available now (fractional).
    tokens: f64,
    /// Current local rate (≤ `cfg.tps`); `None` when unlimited.
    rate: Option<f64>,
    /// When tokens were last added.
    last_refill: Instant,
    /// No submit before this instant.
    paused_until: Option<Instant>,
    /// Sustained-throttle pauses.
    throttle: Escalation,
    /// ESME_RMSGQFUL pauses.
    queue_full: Escalation,
    /// Last additive increase (or reaction), for recovery.
    last_increase: Instant,
    /// One bit per recent response, 1 = throttled; newest in bit 0.
    history: u128,
    /// How many bits of `history` are valid (≤ HISTORY).
    history_len: u32,
    /// Throttles in a row with nothing accepted.
    run: u32,
}

impl Throttle {
    /// A bind's throttle starting at `now` with a full bucket.
    pub fn new(cfg: ThrottleConfig, now: Instant) -> Self {
        let burst = f64::from(cfg.burst.max(1));
        let rate = cfg.tps.filter(|r| r.is_finite() && *r > 0.0);
        Throttle {
            cfg,
            tokens: burst,
            rate,
            last_refill: now,
            paused_until: None,
            throttle: Escalation::new(cfg.pause_initial),
            queue_full: Escalation::new(cfg.queue_full_pause_initial),
            last_increase: now,
            history: 0,
            history_len: 0,
            run: 0,
        }
    }

    /// The current local rate in messages/s (`None`: unlimited).
    pub fn current_rate(&self) -> Option<f64> {
        self.rate
    }

    /// When the current pause ends, if the bind is paused (for the
    /// `ThrottlePause` timer).
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Whether submits are paused at `now`.
    pub fn is_paused(&self, now: Instant) -> bool {
        self.paused_until.is_some_and(|t| now < t)
    }

    /// Throttled share of the recent responses (over at least 64).
    pub fn throttled_share(&self) -> f64 {
        let hist = if self.history_len >= HISTORY {
            self.history
        } else {
            self.history & ((1u128 << self.history_len) - 1)
        };
        f64::from(hist.count_ones()) / f64::from(self.history_len.max(MIN_SAMPLE))
    }

    /// Takes one token for a submit (one part) at `now`.
    ///
    /// Check the window first: a token taken is spent.
    ///
    /// # Errors
    /// `Err(when)`: the bind is paused or out of tokens; try again at `when`
    /// (always later than `now`). The message stays at the head of the queue.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Instant> {
        if let Some(until) = self.paused_until {
            if now < until {
                return Err(until);
            }
            self.paused_until = None;
        }
        self.recover(now);
        let Some(rate) = self.rate else {
            return Ok(());
        };
        self.refill(now, rate);
        // Tolerate float rounding after waiting exactly the computed time.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Ok(());
        }
        let secs = (1.0 - self.tokens) / rate;
        let nanos = (secs * 1e9).ceil().max(1.0) as u64;
        Err(now + Duration::from_nanos(nanos))
    }

    /// A response that was not a throttle arrived (any status): counts
    /// towards the throttled share and ends a throttle streak.
    pub fn on_accepted(&mut self, _now: Instant) {
        self.record(false);
        self.run = 0;
    }

    /// A request sent at `sent_at` was answered ESME_RTHROTTLED at `now`
    /// (submit_sm_resp or generic_nack). Returns when the bind may send
    /// again; put the message back at the head of the queue.
    pub fn on_throttled(&mut self, now: Instant, sent_at: Instant) -> Instant {
        self.on_throttled_reaction(now, sent_at).0
    }

    /// Like [`Throttle::on_throttled`], also saying which [`Reaction`] it was.
    pub fn on_throttled_reaction(&mut self, now: Instant, sent_at: Instant) -> (Instant, Reaction) {
        if self.throttle.is_stale(sent_at) {
            return (self.resume_at(now), Reaction::Stale);
        }
        self.record(true);
        self.run = self.run.saturating_add(1);
        let sustained =
            self.throttled_share() > self.cfg.tolerance || self.run >= self.cfg.streak.max(1);
        if !sustained {
            let slot = self
                .rate
                .map(|r| Duration::from_secs_f64(1.0 / r))
                .unwrap_or(Duration::ZERO);
            self.pause_until(now + slot);
            return (self.resume_at(now), Reaction::Noise);
        }
        let c = self.cfg;
        let pause = self.throttle.react(
            now,
            c.pause_initial,
            c.pause_max,
            c.pause_factor,
            c.repeat_window,
        );
        self.pause_until(now + pause);
        if let (Some(rate), Some(tps)) = (self.rate, c.tps) {
            let floor = tps * c.min_rate_fraction.clamp(0.0, 1.0);
            let lowered = (rate * c.rate_decrease.clamp(0.0, 1.0))
                .max(floor)
                .max(1e-3);
            self.rate = Some(lowered);
            self.tokens = self.tokens.min(f64::from(c.burst.max(1)));
        }
        self.last_increase = now;
        // Measure afresh from here: old throttles already had their effect.
        self.history = 0;
        self.history_len = 0;
        self.run = 0;
        (self.resume_at(now), Reaction::Pause)
    }

    /// A request sent at `sent_at` was answered ESME_RMSGQFUL at `now`.
    /// Returns when the bind may send again.
    pub fn on_queue_full(&mut self, now: Instant, sent_at: Instant) -> Instant {
        if !self.queue_full.is_stale(sent_at) {
            let c = self.cfg;
            let pause = self.queue_full.react(
                now,
                c.queue_full_pause_initial,
                c.queue_full_pause_max,
                c.queue_full_factor,
                c.repeat_window,
            );
            self.pause_until(now + pause);
        }
        self.resume_at(now)
    }

    fn resume_at(&self, now: Instant) -> Instant {
        self.paused_until.filter(|t| *t > now).unwrap_or(now)
    }

    /// Extends (never shortens) the pause.
    fn pause_until(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |t| t.max(until)));
    }

    fn record(&mut self, throttled: bool) {
        self.history = (self.history << 1) | u128::from(throttled);
        self.history_len = (self.history_len + 1).min(HISTORY);
    }

    fn refill(&mut self, now: Instant, rate: f64) {
        let elapsed = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        self.last_refill = now;
        let burst = f64::from(self.cfg.burst.max(1));
        self.tokens = (self.tokens + elapsed * rate).min(burst);
    }

    /// Additive increase after quiet time, back up to the configured rate.
    fn recover(&mut self, now: Instant) {
        let (Some(rate), Some(tps)) = (self.rate, self.cfg.tps) else {
            return;
        };
        if rate >= tps {
            return;
        }
        let quiet = self.cfg.recovery_quiet.max(Duration::from_millis(1));
        let since = now.saturating_duration_since(self.last_increase);
        let steps = (since.as_nanos() / quiet.as_nanos()) as u32;
        if steps == 0 {
            return;
        }
        // Tokens earned so far were earned at the old rate.
        self.refill(now, rate);
        let step = tps * self.cfg.recovery_step.max(0.0);
        self.rate = Some((rate + step * f64::from(steps)).min(tps));
        self.last_increase += quiet * steps;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::backoff::SplitMix64;
    use std::collections::VecDeque;

    const MS: Duration = Duration::from_millis(1);

    /// Throttles in a row that make the default config react.
    fn streak() -> usize {
        ThrottleConfig::default().streak as usize
    }

    #[test]
    fn bucket_allows_burst_then_paces_at_rate() {
        let t0 = crate::clock::now();
        let mut th = Throttle::new(ThrottleConfig::with_rate(10.0, 3), t0);
        for _ in 0..3 {
            assert_eq!(th.try_take(t0), Ok(()));
        }
        let when = th.try_take(t0).unwrap_err();
        assert_eq!(when, t0 + 100 * MS);
        assert!(th.try_take(t0 + 99 * MS).is_err());
        assert_eq!(th.try_take(when), Ok(()));
    }

    #[test]
    fn defaults_are_valid_and_bad_settings_are_rejected() {
        assert_eq!(ThrottleConfig::default().validate(), Ok(()));
        assert_eq!(ThrottleConfig::with_rate(30.0, 5).validate(), Ok(()));
        let bad = [
            ThrottleConfig::with_rate(0.0, 5),
            ThrottleConfig::with_rate(f64::NAN, 5),
            ThrottleConfig::with_rate(10.0, 0),
            ThrottleConfig {
                rate_decrease: 0.0,
                ..ThrottleConfig::default()
            },
            ThrottleConfig {
                pause_initial: Duration::from_secs(20),
                ..ThrottleConfig::default()
            },
            ThrottleConfig {
                tolerance: 1.5,
                ..ThrottleConfig::default()
            },
        ];
        let fields: Vec<_> = bad
            .iter()
            .map(|c| c.validate().map_err(|e| e.field))
            .collect();
        assert_eq!(
            fields,
            vec![
                Err("tps"),
                Err("tps"),
                Err("burst"),
                Err("rate_decrease"),
                Err("pause_initial"),
                Err("tolerance")
            ]
        );
    }

    #[test]
    fn unlimited_rate_never_waits_unless_paused() {
        let t0 = crate::clock::now();
        let mut th = Throttle::new(ThrottleConfig::default(), t0);
        for _ in 0..1000 {
            assert_eq!(th.try_take(t0), Ok(()));
        }
    }

    #[test]
    fn throttle_streak_pauses_whole_bind_and_halves_rate() {
        let t0 = crate::clock::now();
        let mut th = Throttle::new(ThrottleConfig::with_rate(100.0, 10), t0);
        for _ in 1..streak() {
            assert_eq!(th.on_throttled_reaction(t0, t0).1, Reaction::Noise);
        }
        let (resume, r) = th.on_throttled_reaction(t0, t0);
        assert_eq!(r, Reaction::Pause);
        assert_eq!(resume, t0 + 100 * MS);
        assert_eq!(th.paused_until(), Some(t0 + 100 * MS));
        assert_eq!(th.try_take(t0 + 50 * MS), Err(t0 + 100 * MS));
        assert_eq!(th.current_rate(), Some(50.0));
        assert_eq!(th.try_take(t0 + 100 * MS), Ok(()));
    }

    #[test]
    fn stale_throttles_do_not_extend_the_pause() {
        let t0 = crate::clock::now();
        let mut th = Throttle::new(ThrottleConfig::with_rate(100.0, 10), t0);
        let sent = t0;
        let at = t0 + 10 * MS;
        for _ in 0..streak() {
            th.on_throttled(at, sent);
        }
        let until = th.paused_until();
        // The rest of the window, sent before the reaction, answers throttled.
        for _ in 0..20 {
            let (_, r) = th.on_throttled_reaction(at + MS, sent);
            assert_eq!(r, Reaction::Stale);
        }
        assert_eq!(th.paused_until(), until);
        assert_eq!(th.current_rate(), Some(50.0));
    }

    #[test]
    fn repeated_sustained_throttles_grow_the_pause_up_to_max() {
        let t0 = crate::clock::now();
        let mut cfg = ThrottleConfig::with_rate(100.0, 10);
        cfg.pause_max = Duration::from_millis(500);
        let mut th = Throttle::new(cfg, t0);
        let mut now = t0;
        let mut pauses = Vec::new();
        for _ in 0..5 {
            let mut resume = now;
            for _ in 0..streak() {
                resume = th.on_throttled(now, now);
            }
            pauses.push(resume - now);
            now = resume;
        }
        assert_eq!(
            pauses,
            vec![100 * MS, 200 * MS, 400 * MS, 500 * MS, 500 * MS]
        );
        // Quiet for longer than the repeat window: back to the short pause.
        now += Duration::from_secs(3);
        let mut resume = now;
        for _ in 0..streak() {
            resume = th.on_throttled(now, now);
        }
        assert_eq!(resume - now, 100 * MS);
    }

    #[test]
    fn rate_recovers_additively_after_quiet_time() {
        let t0 = crate::clock::now();
        let mut th = Throttle::new(ThrottleConfig::with_rate(100.0, 10), t0);
        for _ in 0..streak() {
            th.on_throttled(t0, t0);
        }
        assert_eq!(th.current_rate(), Some(50.0));
        let _ = th.try_take(t0 + Duration::from_millis(999));
        assert_eq!(th.current_rate(), Some(50.0));
        let _ = th.try_take(t0 + Duration::from_secs(1));
        assert_eq!(th.current_rate(), Some(55.0));
        let _ = th.try_take(t0 + Duration::from_secs(4));
        assert_eq!(th.current_rate(), Some(70.0));
        let _ = th.try_take(t0 + Duration::from_secs(60));
        assert_eq!(th.current_rate(), Some(100.0));
    }

    #[test]
    fn rate_never_drops_below_floor() {
        let t0 = crate::clock::now();
        let mut th = Throttle::new(ThrottleConfig::with_rate(100.0, 10), t0);
        let mut now = t0;
        for _ in 0..20 {
            for _ in 0..streak() {
                now = th.on_throttled(now, now);
            }
        }
        assert_eq!(th.current_rate(), Some(10.0));
    }

    #[test]
    fn accepted_response_breaks_a_throttle_streak() {
        let t0 = crate::clock::now();
        // Only the streak rule can fire here.
        let cfg = ThrottleConfig {
            tolerance: 1.0,
            ..ThrottleConfig::with_rate(100.0, 10)
        };
        let mut th = Throttle::new(cfg, t0);
        for _ in 0..10 {
            for _ in 1..streak() {
                assert_eq!(th.on_throttled_reaction(t0, t0).1, Reaction::Noise);
            }
            th.on_accepted(t0);
        }
        assert_eq!(th.current_rate(), Some(100.0));
    }

    #[test]
    fn queue_full_pauses_with_its_own_policy_and_keeps_rate() {
        let t0 = crate::clock::now();
        let mut th = Throttle::new(ThrottleConfig::with_rate(100.0, 10), t0);
        let r1 = th.on_queue_full(t0 + MS, t0);
        assert_eq!(r1, t0 + MS + Duration::from_secs(1));
        // Stale: sent before the reaction.
        assert_eq!(th.on_queue_full(t0 + 2 * MS, t0), r1);
        let r2 = th.on_queue_full(r1, r1);
        assert_eq!(r2, r1 + Duration::from_secs(2));
        assert_eq!(th.current_rate(), Some(100.0));
        assert!(th.is_paused(r1 + MS));
    }

    /// A bind sending as fast as its window and throttle allow to an SMSC
    /// that answers after `latency` and throttles each submit with
    /// probability `p` (or all of them while `outage` covers the send time).
    /// Returns (accepted, attempts) over `secs` simulated seconds.
    struct Sim {
        cfg: ThrottleConfig,
        window: usize,
        latency: Duration,
        p: f64,
        outage: Option<(Duration, Duration)>,
        /// The SMSC's own limit: submits beyond it are throttled.
        carrier_tps: Option<f64>,
        secs: u64,
    }

    impl Sim {
        fn run(&self) -> (u64, u64) {
            let t0 = crate::clock::now();
            let end = t0 + Duration::from_secs(self.secs);
            let mut th = Throttle::new(self.cfg, t0);
            let mut carrier = self
                .carrier_tps
                .map(|r| Throttle::new(ThrottleConfig::with_rate(r, 5), t0));
            let mut rng = SplitMix64::new(2026);
            let mut inflight: VecDeque<(Instant, Instant)> = VecDeque::new();
            let (mut accepted, mut attempts) = (0u64, 0u64);
            let mut now = t0;
            loop {
                while inflight.front().is_some_and(|&(at, _)| at <= now) {
                    let Some((_, sent)) = inflight.pop_front() else {
                        break;
                    };
                    let since = sent - t0;
                    let down = self.outage.is_some_and(|(a, b)| since >= a && since < b);
                    let over = carrier.as_mut().is_some_and(|c| c.try_take(sent).is_err());
                    if down || over || rng.next_f64() < self.p {
                        th.on_throttled(now, sent);
                    } else {
                        th.on_accepted(now);
                        accepted += 1;
                    }
                }
                let mut wake = None;
                while inflight.len() < self.window {
                    match th.try_take(now) {
                        Ok(()) => {
                            attempts += 1;
                            inflight.push_back((now + self.latency, now));
                        }
                        Err(at) => {
                            assert!(at > now, "try_take must wait into the future");
                            wake = Some(at);
                            break;
                        }
                    }
                }
                let next = [inflight.front().map(|&(at, _)| at), wake]
                    .into_iter()
                    .flatten()
                    .min();
                match next {
                    Some(t) if t <= end => now = t,
                    _ => break,
                }
            }
            (accepted, attempts)
        }

        fn share_kept_under_5_percent(mut self) -> f64 {
            self.p = 0.0;
            let (clean, _) = self.run();
            self.p = 0.05;
            let (throttled, _) = self.run();
            throttled as f64 / clean as f64
        }
    }

    #[test]
    fn five_percent_throttling_keeps_ninety_percent_at_carrier_rates() {
        let share = Sim {
            cfg: ThrottleConfig::with_rate(100.0, 10),
            window: 10,
            latency: 20 * MS,
            p: 0.0,
            outage: None,
            carrier_tps: None,
            secs: 120,
        }
        .share_kept_under_5_percent();
        assert!(share >= 0.90, "kept {share:.3}");
    }

    #[test]
    fn five_percent_throttling_keeps_ninety_percent_at_high_rate() {
        let share = Sim {
            cfg: ThrottleConfig::with_rate(5000.0, 50),
            window: 50,
            latency: MS,
            p: 0.0,
            outage: None,
            carrier_tps: None,
            secs: 20,
        }
        .share_kept_under_5_percent();
        assert!(share >= 0.90, "kept {share:.3}");
    }

    #[test]
    fn five_percent_throttling_keeps_ninety_percent_window_bound() {
        let share = Sim {
            cfg: ThrottleConfig::default(),
            window: 50,
            latency: MS,
            p: 0.0,
            outage: None,
            carrier_tps: None,
            secs: 5,
        }
        .share_kept_under_5_percent();
        assert!(share >= 0.90, "kept {share:.3}");
    }

    #[test]
    fn throttle_storm_backs_off_then_rate_recovers() {
        let sim = Sim {
            cfg: ThrottleConfig::with_rate(100.0, 10),
            window: 10,
            latency: 20 * MS,
            p: 0.0,
            outage: Some((Duration::from_secs(5), Duration::from_secs(35))),
            carrier_tps: None,
            secs: 35,
        };
        let (_, attempts_storm) = sim.run();
        let (_, attempts_before) = Sim {
            outage: None,
            carrier_tps: None,
            secs: 5,
            ..sim
        }
        .run();
        // 30 s of everything throttled: a few attempts per pause, not 3000.
        let during = attempts_storm - attempts_before;
        assert!(during < 150, "{during} attempts during the storm");

        // After the storm the rate climbs back to the configured one.
        let (acc_long, _) = Sim { secs: 95, ..sim }.run();
        let (acc_mid, _) = Sim { secs: 85, ..sim }.run();
        let last_ten = acc_long - acc_mid;
        assert!(last_ten >= 900, "{last_ten} accepted in the last 10 s");
    }

    #[test]
    fn heavy_throttling_pauses_the_bind_and_lowers_the_rate() {
        let t0 = crate::clock::now();
        let mut th = Throttle::new(ThrottleConfig::with_rate(100.0, 10), t0);
        let mut rng = SplitMix64::new(30);
        let mut reactions = Vec::new();
        // 30 % of fresh responses throttled, none of them in long runs.
        for i in 0..200u32 {
            let now = t0 + i * 10 * MS;
            if rng.next_f64() < 0.3 {
                reactions.push(th.on_throttled_reaction(now, now).1);
            } else {
                th.on_accepted(now);
            }
        }
        assert!(reactions.contains(&Reaction::Pause), "{reactions:?}");
        assert!(th.current_rate().is_some_and(|r| r < 100.0));
    }

    #[test]
    fn carrier_limit_below_ours_is_found_without_collapse() {
        // We are configured for 100/s, the SMSC takes 80/s and throttles
        // the rest: we keep close to what it takes.
        let sim = Sim {
            cfg: ThrottleConfig::with_rate(100.0, 10),
            window: 10,
            latency: 20 * MS,
            p: 0.0,
            outage: None,
            carrier_tps: Some(80.0),
            secs: 120,
        };
        let (accepted, attempts) = sim.run();
        let rate = accepted as f64 / 120.0;
        assert!(rate >= 0.85 * 80.0, "{rate:.1}/s accepted");
        let wasted = (attempts - accepted) as f64 / attempts as f64;
        assert!(wasted < 0.25, "{wasted:.3} of attempts throttled");
    }
}
