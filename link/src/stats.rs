//! Percentiles, for latency figures in status output and benchmarks.

/// The `p` quantile (0.0-1.0) of `v`, nearest rank; sorts `v`. 0 for an empty slice.
pub fn percentile<T: PartialOrd + Copy + Default>(v: &mut [T], p: f64) -> T {
    if v.is_empty() {
        return T::default();
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}
