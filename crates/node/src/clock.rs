//! The wall clock, in Unix time: what records, envelopes and logs carry.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds_agree() {
        let (secs, ms) = (unix_secs(), unix_ms());
        // After 2023-11-14 (1.7e9 s): a clock reading, not a zero fallback.
        assert!(secs > 1_700_000_000, "{secs}");
        assert!(
            ms / 1000 >= secs && ms / 1000 - secs <= 1,
            "{ms} ms vs {secs} s"
        );
    }
}
