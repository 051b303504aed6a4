//! The protocol timers of one bind, as data (quinn's `TimerTable`): each
//! [`Timer`] is either stopped or armed with a deadline. The session machine
//! sets and stops them; the driver sleeps until [`TimerTable::next`] and then
//! hands `now` back to the machine, which pops what expired.
//!
//! Pure: no clock. Deadlines are `Instant`s computed by the caller from the
//! `now` it was given.

use std::time::Instant;

/// Every deadline a bind can wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// The bind_resp must arrive by then, or the connection is dropped.
    BindResp,
    /// Send an enquire_link when the bind has been idle until then.
    EnquireLink,
    /// Our enquire_link must be answered by then, or the bind is dead.
    EnquireLinkResp,
    /// The earliest response deadline in the window.
    Response,
    /// Nothing at all arrived for too long: drop and rebuild the bind.
    Inactivity,
    /// After sending unbind (or draining for it), give up waiting then.
    UnbindGrace,
    /// The throttle pause ends: submits may flow again.
    ThrottlePause,
}

impl Timer {
    /// All timers, in table order.
    pub const ALL: [Timer; 7] = [
        Timer::BindResp,
        Timer::EnquireLink,
        Timer::EnquireLinkResp,
        Timer::Response,
        Timer::Inactivity,
        Timer::UnbindGrace,
        Timer::ThrottlePause,
    ];

    /// Stable lowercase name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Timer::BindResp => "bind_resp",
            Timer::EnquireLink => "enquire_link",
            Timer::EnquireLinkResp => "enquire_link_resp",
            Timer::Response => "response",
            Timer::Inactivity => "inactivity",
            Timer::UnbindGrace => "unbind_grace",
            Timer::ThrottlePause => "throttle_pause",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerTable {
    /// Indexed by `Timer as usize`.
    data: [Option<Instant>; 7],
}

impl TimerTable {
    /// A table with every timer stopped.
    pub fn new() -> Self {
        TimerTable::default()
    }

    /// Arms `timer` to fire at `at`, replacing any earlier deadline.
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.data[timer.index()] = Some(at);
    }

    /// Stops `timer`.
    pub fn stop(&mut self, timer: Timer) {
        self.data[timer.index()] = None;
    }

    /// Stops every timer (the connection is gone).
    pub fn stop_all(&mut self) {
        self.data = [None; 7];
    }

    /// The deadline of `timer`, if armed.
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.data[timer.index()]
    }

    /// Whether `timer` is armed and its deadline is at or before `now`.
    pub fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest armed timer and its deadline: what the driver sleeps
    /// until. Ties go to the timer listed first in [`Timer`].
    pub fn next(&self) -> Option<(Timer, Instant)> {
        Timer::ALL
            .iter()
            .filter_map(|&t| self.get(t).map(|at| (t, at)))
            .min_by_key(|&(t, at)| (at, t))
    }

    /// The timers that have expired at `now`, earliest first, without
    /// stopping them.
    pub fn expired(&self, now: Instant) -> Vec<Timer> {
        let mut out: Vec<(Instant, Timer)> = Timer::ALL
            .iter()
            .filter_map(|&t| self.get(t).filter(|&at| at <= now).map(|at| (at, t)))
            .collect();
        out.sort();
        out.into_iter().map(|(_, t)| t).collect()
    }

    /// Stops and returns the earliest timer expired at `now`, so the machine
    /// can loop `while let Some(t) = timers.pop_expired(now)`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        let (timer, at) = self.next()?;
        if at > now {
            return None;
        }
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn empty_table_has_no_next_deadline() {
        let t = TimerTable::new();
        assert_eq!(t.next(), None);
        assert!(t.expired(crate::clock::now()).is_empty());
    }

    #[test]
    fn next_is_the_earliest_armed_timer() {
        let t0 = crate::clock::now();
        let s = Duration::from_secs(1);
        let mut t = TimerTable::new();
        t.set(Timer::EnquireLink, t0 + 30 * s);
        t.set(Timer::Response, t0 + 10 * s);
        t.set(Timer::Inactivity, t0 + 300 * s);
        assert_eq!(t.next(), Some((Timer::Response, t0 + 10 * s)));
        t.stop(Timer::Response);
        assert_eq!(t.next(), Some((Timer::EnquireLink, t0 + 30 * s)));
        assert_eq!(t.get(Timer::Response), None);
    }

    #[test]
    fn set_replaces_the_previous_deadline() {
        let t0 = crate::clock::now();
        let mut t = TimerTable::new();
        t.set(Timer::EnquireLink, t0 + Duration::from_secs(30));
        t.set(Timer::EnquireLink, t0 + Duration::from_secs(60));
        assert_eq!(
            t.get(Timer::EnquireLink),
            Some(t0 + Duration::from_secs(60))
        );
        assert!(!t.is_expired(Timer::EnquireLink, t0 + Duration::from_secs(30)));
        assert!(t.is_expired(Timer::EnquireLink, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn expired_lists_due_timers_earliest_first_and_keeps_them() {
        let t0 = crate::clock::now();
        let s = Duration::from_secs(1);
        let mut t = TimerTable::new();
        t.set(Timer::UnbindGrace, t0 + 2 * s);
        t.set(Timer::BindResp, t0 + 3 * s);
        t.set(Timer::ThrottlePause, t0 + s);
        t.set(Timer::Inactivity, t0 + 9 * s);
        assert_eq!(
            t.expired(t0 + 3 * s),
            vec![Timer::ThrottlePause, Timer::UnbindGrace, Timer::BindResp]
        );
        assert_eq!(t.expired(t0 + 3 * s).len(), 3);
    }

    #[test]
    fn pop_expired_stops_each_due_timer_once() {
        let t0 = crate::clock::now();
        let s = Duration::from_secs(1);
        let mut t = TimerTable::new();
        t.set(Timer::EnquireLinkResp, t0 + s);
        t.set(Timer::Response, t0 + s);
        t.set(Timer::EnquireLink, t0 + 5 * s);
        let now = t0 + 2 * s;
        let mut popped = Vec::new();
        while let Some(timer) = t.pop_expired(now) {
            popped.push(timer);
        }
        // Equal deadlines: table order.
        assert_eq!(popped, vec![Timer::EnquireLinkResp, Timer::Response]);
        assert_eq!(t.next(), Some((Timer::EnquireLink, t0 + 5 * s)));
        t.stop_all();
        assert_eq!(t.next(), None);
    }

    #[test]
    fn timer_names_are_distinct() {
        let mut names: Vec<_> = Timer::ALL.iter().map(|t| t.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Timer::ALL.len());
    }
}
