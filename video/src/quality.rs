//! Picture quality: peak signal-to-noise ratio of luma, the usual measure of lossy coding.

/// PSNR in dB between two 8-bit planes of equal length; `f64::INFINITY` when identical.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "PSNR of planes of different sizes");
    if a.is_empty() {
        return f64::INFINITY;
    }
    let se: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = i64::from(*x) - i64::from(*y);
            (d * d) as u64
        })
        .sum();
    if se == 0 {
        return f64::INFINITY;
    }
    let mse = se as f64 / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

#[cfg(test)]
mod tests {
    use super::psnr;

    #[test]
    fn known_values() {
        assert_eq!(psnr(&[1, 2, 3], &[1, 2, 3]), f64::INFINITY);
        // Every sample off by 1: MSE 1, PSNR = 20 log10(255) = 48.13 dB.
        let p = psnr(&[10; 100], &[11; 100]);
        assert!((p - 48.13).abs() < 0.01, "{p}");
    }
}
