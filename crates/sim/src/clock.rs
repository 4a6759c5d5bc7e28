//! The clock payload timestamps are taken on.
//!
//! In-process modes use one monotonic clock for publishers and receivers. In
//! process mode the publisher and receiver timestamps are both taken by the
//! simulator (when it sends the publish request and when it reads the
//! message notification), on the wall clock, all on one machine.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Source of microsecond timestamps.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// Microseconds since a shared instant.
    Monotonic(Instant),
    /// Microseconds since the Unix epoch.
    Wall,
}

impl Clock {
    /// A monotonic clock starting now.
    pub fn monotonic() -> Self {
        Clock::Monotonic(Instant::now())
    }

    /// The current time in microseconds.
    pub fn now_us(&self) -> u64 {
        match self {
            Clock::Monotonic(start) => start.elapsed().as_micros() as u64,
            Clock::Wall => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
        }
    }

    /// Name shown in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Clock::Monotonic(_) => "monotonic, one process",
            Clock::Wall => "wall clock, one machine",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance() {
        for clock in [Clock::monotonic(), Clock::Wall] {
            let a = clock.now_us();
            std::thread::sleep(std::time::Duration::from_millis(2));
            assert!(clock.now_us() >= a + 1000, "{}", clock.name());
        }
    }
}
