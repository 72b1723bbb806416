//! Seeded randomness: the generator is [`SplitMix64`] from `tacit-models` (the same one
//! the models use for batches and shuffles), so a population is reproducible from one
//! seed on every platform. This module adds the few distributions the simulator needs
//! and a way to derive independent child seeds.

pub use tacit_models::SplitMix64;

/// A child seed of `seed` for `tag` and `index`: mixing through SplitMix64 makes
/// neighbouring indices (people 0, 1, 2…) give unrelated streams.
pub fn derive(seed: u64, tag: u64, index: u64) -> u64 {
    let mut g = SplitMix64::new(seed ^ tag.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let a = g.next_u64();
    let mut g = SplitMix64::new(a ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    g.next_u64()
}

/// The distributions on top of [`SplitMix64`].
pub(crate) trait Draw {
    /// Uniform in `[0, 1)`.
    fn uniform(&mut self) -> f64;
    /// Normal with the given mean and standard deviation.
    fn gauss(&mut self, mean: f64, sd: f64) -> f64;
    /// Uniform in `[lo, hi)`.
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// `true` with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
}

impl Draw for SplitMix64 {
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn gauss(&mut self, mean: f64, sd: f64) -> f64 {
        mean + sd * self.normal()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_and_repeat() {
        assert_eq!(derive(1, 2, 3), derive(1, 2, 3));
        assert_ne!(derive(1, 2, 3), derive(1, 2, 4));
        assert_ne!(derive(1, 2, 3), derive(1, 3, 3));
        assert_ne!(derive(1, 2, 3), derive(2, 2, 3));
        let mut g = SplitMix64::new(5);
        let u: Vec<f64> = (0..10_000).map(|_| g.uniform()).collect();
        assert!(u.iter().all(|x| (0.0..1.0).contains(x)));
        let m = u.iter().sum::<f64>() / u.len() as f64;
        assert!((m - 0.5).abs() < 0.02, "{m}");
    }
}
