//! Percentile summaries of samples (nearest-rank). Pure.

use serde::Serialize;

/// A distribution in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

/// The nearest-rank `q` quantile (0 < q <= 1) of sorted samples.
pub fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Summarises samples given in microseconds as milliseconds; `None` when
/// there are none. Sorts `samples` in place.
pub fn summarize_us(samples: &mut [u64]) -> Option<Summary> {
    samples.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let sum: u128 = samples.iter().map(|&s| s as u128).sum();
    Some(Summary {
        count: samples.len(),
        p50: ms(nearest_rank(samples, 0.50)?),
        p95: ms(nearest_rank(samples, 0.95)?),
        p99: ms(nearest_rank(samples, 0.99)?),
        max: ms(*samples.last()?),
        mean: sum as f64 / samples.len() as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_of_one_to_hundred() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50));
        assert_eq!(nearest_rank(&v, 0.95), Some(95));
        assert_eq!(nearest_rank(&v, 0.99), Some(99));
        assert_eq!(nearest_rank(&v, 1.0), Some(100));
        assert_eq!(nearest_rank(&[], 0.5), None);
        assert_eq!(nearest_rank(&[7], 0.01), Some(7));
    }

    #[test]
    fn summary_in_milliseconds_from_unsorted_micros() {
        let mut v = vec![3000, 1000, 2000, 4000];
        let s = summarize_us(&mut v).unwrap();
        assert_eq!(s.count, 4);
        assert_eq!(s.p50, 2.0);
        assert_eq!(s.p95, 4.0);
        assert_eq!(s.max, 4.0);
        assert_eq!(s.mean, 2.5);
        assert!(summarize_us(&mut []).is_none());
    }
}
