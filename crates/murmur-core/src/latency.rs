//! The buckets of every stage's latency histogram (`/metrics`), so that
//! the steps of one message compare bucket for bucket. A step on an idle
//! stage takes a few hundred µs, one behind a loaded writer tens of ms.
//! (The histograms themselves are the stages': this crate has no metrics
//! dependency.)

/// The upper bound of the first bucket, in seconds.
const START: f64 = 1e-4;
/// How many buckets.
const BUCKETS: i32 = 16;

/// The buckets' upper bounds, in seconds: 100 µs, doubling, to about
/// 3.3 s.
pub fn bounds() -> impl Iterator<Item = f64> {
    (0..BUCKETS).map(|i| START * 2f64.powi(i))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bounds_double_from_100_microseconds() {
        let bounds: Vec<f64> = super::bounds().collect();
        assert_eq!(bounds.len(), 16);
        assert!((bounds[0] - 1e-4).abs() < 1e-12);
        assert!((bounds[15] - 3.2768).abs() < 1e-9);
    }
}
