//! Wrong publish secrets, per client address: after a few, the address must wait before it
//! may try again (doubling, up to a minute), and a connection that keeps guessing is closed,
//! so the secret cannot be brute-forced (issue 14, hole 7). Sans-IO: the caller passes the
//! time in. Bounded: at most [`MAX_ADDRESSES`] addresses are remembered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Wrong secrets an address may send before it has to wait.
pub(crate) const FREE_ATTEMPTS: u32 = 5;
/// Wrong secrets after which a connection is closed.
pub(crate) const CLOSE_AFTER: u32 = 10;
/// The longest an address waits between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// An address quiet this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// Addresses remembered at most; past it, the least recently seen is forgotten.
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct SecretAttempts {
    by_addr: Mutex<HashMap<IpAddr, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    until: Option<Instant>,
    last: Instant,
}

impl SecretAttempts {
    /// How long `addr` must still wait before it may try a secret again, if at all.
    pub(crate) fn wait(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let map = self.by_addr.lock();
        let until = map.get(&addr)?.until?;
        let left = until.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    /// A wrong secret from `addr`; returns how long it must now wait, if at all.
    pub(crate) fn failed(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let mut map = self.by_addr.lock();
        if !map.contains_key(&addr) && map.len() >= MAX_ADDRESSES {
            map.retain(|_, e| now.saturating_duration_since(e.last) < FORGET_AFTER);
            if map.len() >= MAX_ADDRESSES
                && let Some(oldest) = map.iter().min_by_key(|(_, e)| e.last).map(|(a, _)| *a)
            {
                map.remove(&oldest);
            }
        }
        let e = map.entry(addr).or_insert(Entry {
            failures: 0,
            until: None,
            last: now,
        });
        if now.saturating_duration_since(e.last) >= FORGET_AFTER {
            e.failures = 0;
        }
        e.failures += 1;
        e.last = now;
        let over = e.failures.checked_sub(FREE_ATTEMPTS)?;
        let wait = Duration::from_secs(1u64 << over.min(6)).min(MAX_WAIT);
        e.until = Some(now + wait);
        Some(wait)
    }

    /// The right secret from `addr`: it starts afresh.
    pub(crate) fn succeeded(&self, addr: IpAddr) {
        self.by_addr.lock().remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn an_address_waits_longer_after_each_wrong_secret_past_the_free_ones() {
        let a = SecretAttempts::default();
        let t0 = Instant::now();
        for i in 0..FREE_ATTEMPTS - 1 {
            assert_eq!(a.failed(addr(1), t0), None, "attempt {i} is free");
            assert_eq!(a.wait(addr(1), t0), None);
        }
        assert_eq!(a.failed(addr(1), t0), Some(Duration::from_secs(1)));
        assert_eq!(a.wait(addr(1), t0), Some(Duration::from_secs(1)));
        assert_eq!(a.wait(addr(1), t0 + Duration::from_secs(1)), None);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(a.failed(addr(1), t1), Some(Duration::from_secs(2)));
        assert_eq!(a.failed(addr(1), t1), Some(Duration::from_secs(4)));
        for _ in 0..10 {
            a.failed(addr(1), t1);
        }
        assert_eq!(a.wait(addr(1), t1), Some(MAX_WAIT), "capped");
        // Others are not affected; the right secret forgives.
        assert_eq!(a.wait(addr(2), t1), None);
        a.succeeded(addr(1));
        assert_eq!(a.wait(addr(1), t1), None);
        assert_eq!(a.failed(addr(1), t1), None);
    }

    #[test]
    fn a_quiet_address_starts_afresh_and_the_table_stays_bounded() {
        let a = SecretAttempts::default();
        let t0 = Instant::now();
        for _ in 0..FREE_ATTEMPTS {
            a.failed(addr(1), t0);
        }
        assert!(a.wait(addr(1), t0).is_some());
        let later = t0 + FORGET_AFTER;
        assert_eq!(a.failed(addr(1), later), None, "counted from zero again");

        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            a.failed(IpAddr::from(i.to_be_bytes()), later);
        }
        assert!(a.by_addr.lock().len() <= MAX_ADDRESSES);
    }
}
