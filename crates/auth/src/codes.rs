//! One-time login codes: the URL `oxflow up` prints opens the dashboard
//! once, as Jupyter's does, without putting the long-lived token in the
//! browser's history.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Codes waiting to be used, in memory (a restart prints a new one).
#[derive(Debug, Default)]
pub struct LoginCodes {
    /// code → expiry (seconds since the epoch).
    open: Mutex<BTreeMap<String, u64>>,
}

/// At most this many codes wait at once; issuing more forgets the oldest.
const MAX_OPEN: usize = 64;

impl LoginCodes {
    /// A new code, usable once until `now + ttl_secs`.
    pub fn issue(&self, now: u64, ttl_secs: u64) -> String {
        let code = crate::random_hex(16);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, expires| *expires > now);
        while open.len() >= MAX_OPEN {
            let oldest = open.iter().min_by_key(|(_, e)| **e).map(|(c, _)| c.clone());
            match oldest {
                Some(c) => open.remove(&c),
                None => break,
            };
        }
        open.insert(code.clone(), now.saturating_add(ttl_secs));
        code
    }

    /// Uses `code`: true the first time, before it expires; false after.
    pub fn redeem(&self, code: &str, now: u64) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.remove(code) {
            Some(expires) => expires > now,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_works_once_and_not_after_it_expires() {
        let codes = LoginCodes::default();
        let a = codes.issue(100, 10);
        assert!(codes.redeem(&a, 105));
        assert!(!codes.redeem(&a, 105), "a code is good for one login");
        let b = codes.issue(100, 10);
        assert!(!codes.redeem(&b, 110), "expired");
        assert!(!codes.redeem("made-up", 100));
    }

    #[test]
    fn old_codes_are_forgotten_past_the_cap() {
        let codes = LoginCodes::default();
        let first = codes.issue(0, 1000);
        for i in 0..MAX_OPEN {
            codes.issue(i as u64 + 1, 1000);
        }
        assert!(!codes.redeem(&first, 10));
    }
}
