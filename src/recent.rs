//! What this isolate read from Workers KV a moment ago, kept for a few seconds.
//!
//! A request on a session needs two facts from KV: the wallet is not delinquent, and its grant
//! still exists. Reading them for every request costs more than the request itself (a KV read is
//! a round trip from the isolate), while the facts change rarely and KV is eventually consistent
//! anyway (a revocation may take up to a minute to reach every location). So each isolate keeps
//! what it read for [`KEEP_SECONDS`]: a revocation or a debt ends a session in the isolate that
//! made it at once (it calls [`Recent::forget`]) and everywhere else within KV's own delay plus
//! these few seconds.
//!
//! Only good news is kept ("not delinquent", "this grant"): a wallet that has just bought or
//! settled is never turned away by a stale "no". The map is bounded; when it is full, what has
//! lapsed goes first, then everything.

/// How long a value read from KV is reused by this isolate.
pub const KEEP_SECONDS: u64 = 5;
/// At most this many values are kept per isolate.
pub const CAPACITY: usize = 1024;

/// A bounded map of values with the second they were read at. A plain list: it holds a handful
/// of wallets in practice, and a hash map would add more code to the Worker than it saves time.
#[derive(Debug)]
pub struct Recent<V> {
    entries: Vec<(String, u64, V)>,
    keep: u64,
    capacity: usize,
}

impl<V: Clone> Default for Recent<V> {
    fn default() -> Self {
        Recent::new(KEEP_SECONDS, CAPACITY)
    }
}

impl<V: Clone> Recent<V> {
    pub fn new(keep: u64, capacity: usize) -> Self {
        Recent {
            entries: Vec::new(),
            keep,
            capacity: capacity.max(1),
        }
    }

    /// The value kept under `key` if it was read less than `keep` seconds before `now`.
    pub fn get(&self, key: &str, now: u64) -> Option<V> {
        self.entries
            .iter()
            .find(|(k, at, _)| k == key && now >= *at && now - *at < self.keep)
            .map(|(_, _, v)| v.clone())
    }

    /// Keeps `value`, read at `now`, under `key`.
    pub fn put(&mut self, key: &str, value: V, now: u64) {
        if let Some(entry) = self.entries.iter_mut().find(|(k, _, _)| k == key) {
            entry.1 = now;
            entry.2 = value;
            return;
        }
        if self.entries.len() >= self.capacity {
            let keep = self.keep;
            self.entries
                .retain(|(_, at, _)| now >= *at && now - *at < keep);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.push((key.to_string(), now, value));
    }

    /// Forgets every key that starts with `prefix` (a wallet's grants, its standing).
    pub fn forget(&mut self, prefix: &str) {
        self.entries.retain(|(k, _, _)| !k.starts_with(prefix));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_for_its_seconds_then_read_again() {
        let mut r = Recent::new(5, 10);
        r.put("grant:0xab:/a/*", 1, 100);
        assert_eq!(r.get("grant:0xab:/a/*", 100), Some(1));
        assert_eq!(r.get("grant:0xab:/a/*", 104), Some(1));
        assert_eq!(r.get("grant:0xab:/a/*", 105), None, "lapsed after 5 s");
        assert_eq!(r.get("grant:0xab:/b/*", 100), None);
        // A clock that went backwards (another isolate's answer) never extends a value's life.
        assert_eq!(r.get("grant:0xab:/a/*", 99), None);
    }

    #[test]
    fn forgetting_a_wallet_forgets_all_of_it_and_nothing_else() {
        let mut r = Recent::new(5, 10);
        r.put("grant:0xab:/a/*", 1, 100);
        r.put("grant:0xab:/b/*", 2, 100);
        r.put("grant:0xcd:/a/*", 3, 100);
        r.forget("grant:0xab:");
        assert_eq!(r.get("grant:0xab:/a/*", 101), None);
        assert_eq!(r.get("grant:0xab:/b/*", 101), None);
        assert_eq!(r.get("grant:0xcd:/a/*", 101), Some(3));
    }

    #[test]
    fn bounded_lapsed_first_then_everything() {
        let mut r = Recent::new(5, 3);
        r.put("a", 1, 100);
        r.put("b", 2, 103);
        r.put("c", 3, 103);
        // Full: "a" has lapsed at 106 and makes room; the others stay.
        r.put("d", 4, 106);
        assert_eq!(r.len(), 3);
        assert_eq!(r.get("a", 106), None);
        assert_eq!(r.get("b", 106), Some(2));
        // Full of live values: everything goes, the new one stays.
        r.put("e", 5, 107);
        assert_eq!(r.len(), 1);
        assert_eq!(r.get("e", 107), Some(5));
        // Updating a key that is already there never evicts.
        r.put("e", 6, 107);
        assert_eq!(r.get("e", 107), Some(6));
    }
}
