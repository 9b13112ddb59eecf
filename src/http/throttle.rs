//! Throttling of guesses: sign-in attempts, bad API tokens and bad personal-URL tokens, counted
//! per client address, shared by the admin and the personal URLs so that one budget covers every
//! way of guessing a secret.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

// An address is throttled as it is counted everywhere: IPv6 by its /64.
use crate::stats::usage::address_key;

/// Sign-in attempts and bad API tokens, counted per client address (IPv6 by its /64, which one
/// machine usually holds whole). An address may make `attempts_per_minute` sign-in attempts in a
/// burst, each counted *before* its password is checked, so parallel guesses cannot outrun the
/// count; the next one blocks the address until the quota refills, and while it is blocked every
/// attempt (even with the right password) and every API request is refused with 429. A valid
/// API token costs nothing; a wrong one counts.
pub struct Throttle {
    attempts: DefaultKeyedRateLimiter<IpAddr>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    /// Whether `blocked` may hold anyone: every personal-URL request asks, and almost always
    /// no one is blocked, so the common answer costs one atomic load, not a lock.
    any_blocked: std::sync::atomic::AtomicBool,
    clock: DefaultClock,
    calls: std::sync::atomic::AtomicU32,
}

impl Throttle {
    pub fn new(per_minute: std::num::NonZeroU32) -> Throttle {
        Throttle {
            attempts: RateLimiter::keyed(Quota::per_minute(per_minute)),
            blocked: Mutex::new(HashMap::new()),
            any_blocked: Default::default(),
            clock: DefaultClock::default(),
            calls: Default::default(),
        }
    }

    /// How long `client` must still wait, if it is blocked.
    pub fn blocked_for(&self, client: IpAddr) -> Option<Duration> {
        use std::sync::atomic::Ordering;
        if !self.any_blocked.load(Ordering::Acquire) {
            return None;
        }
        let key = address_key(client);
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        let until = *blocked.get(&key)?;
        let now = Instant::now();
        if until > now {
            Some(until - now)
        } else {
            blocked.remove(&key);
            if blocked.is_empty() {
                self.any_blocked.store(false, Ordering::Release);
            }
            None
        }
    }

    /// Counts an attempt; returns the wait if `client` is now blocked.
    pub fn attempt(&self, client: IpAddr) -> Option<Duration> {
        let key = address_key(client);
        self.sweep();
        let refused = self.attempts.check_key(&key).err()?;
        let wait = refused
            .wait_time_from(self.clock.now())
            .max(Duration::from_secs(1));
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.insert(key, Instant::now() + wait);
        // Set under the lock, after the insert: a reader that sees it finds the entry.
        self.any_blocked
            .store(true, std::sync::atomic::Ordering::Release);
        Some(wait)
    }

    /// Forgets addresses whose quota has refilled, every 1,024 attempts.
    fn sweep(&self) {
        use std::sync::atomic::Ordering;
        if self.calls.fetch_add(1, Ordering::Relaxed) % 1024 != 1023 {
            return;
        }
        self.attempts.retain_recent();
        let now = Instant::now();
        let mut blocked = self.blocked.lock().unwrap_or_else(|e| e.into_inner());
        blocked.retain(|_, until| *until > now);
        self.any_blocked
            .store(!blocked.is_empty(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_the_burst_and_only_that_address() {
        let t = Throttle::new(std::num::NonZeroU32::new(3).unwrap());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(t.attempt(a).is_none());
        }
        assert!(t.blocked_for(a).is_none());
        let wait = t.attempt(a).expect("the fourth failure blocks");
        assert!(wait >= Duration::from_secs(1));
        assert!(t.blocked_for(a).is_some());
        assert!(t.blocked_for(b).is_none());
        assert!(t.attempt(b).is_none());
        // One IPv6 /64 is one key: its addresses share the quota.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for _ in 0..3 {
            assert!(t.attempt(v6("2001:db8::1")).is_none());
        }
        assert!(t.attempt(v6("2001:db8::ffff:2")).is_some());
        assert!(t.blocked_for(v6("2001:db8:0:1::1")).is_none());
    }
}
