//! Streaming linear resampling of irregular timestamps onto a fixed-rate grid.
//!
//! Grid points are `t_first + k * step`; the value at a grid point is the linear
//! interpolation between the two raw samples around it (numpy's `np.interp`). Because
//! the grid is anchored at the first sample of a segment and each raw sample only emits
//! the grid points up to its own time, feeding samples one at a time or all at once
//! gives identical output.

/// Resampler state for one continuous segment.
#[derive(Debug, Clone)]
pub struct Resampler {
    step_ns: i64,
    prev: Option<(i64, [f64; 3])>,
    next_grid_ns: i64,
}

impl Resampler {
    /// A resampler for `rate_hz` (the grid step is rounded to whole nanoseconds).
    pub fn new(rate_hz: f64) -> Self {
        Resampler {
            step_ns: (1e9 / rate_hz).round() as i64,
            prev: None,
            next_grid_ns: 0,
        }
    }

    /// Grid step in nanoseconds.
    pub fn step_ns(&self) -> i64 {
        self.step_ns
    }

    /// Forgets the segment (after a gap).
    pub fn reset(&mut self) {
        self.prev = None;
    }

    /// Feeds one raw sample (strictly later than the previous one) and calls `emit`
    /// for every grid point in `(previous time, t]` — for the first sample of a
    /// segment, the grid point at `t` itself. Returns the number of points emitted.
    pub fn push(&mut self, t_ns: i64, x: [f64; 3], mut emit: impl FnMut(i64, [f64; 3])) -> usize {
        let mut n = 0;
        match self.prev {
            None => {
                emit(t_ns, x);
                self.next_grid_ns = t_ns + self.step_ns;
                n = 1;
            }
            Some((t0, x0)) => {
                let span = (t_ns - t0) as f64;
                while self.next_grid_ns <= t_ns {
                    let frac = (self.next_grid_ns - t0) as f64 / span;
                    let v = [
                        x0[0] + frac * (x[0] - x0[0]),
                        x0[1] + frac * (x[1] - x0[1]),
                        x0[2] + frac * (x[2] - x0[2]),
                    ];
                    emit(self.next_grid_ns, v);
                    self.next_grid_ns += self.step_ns;
                    n += 1;
                }
            }
        }
        self.prev = Some((t_ns, x));
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_interpolation_on_a_fixed_grid() {
        let mut r = Resampler::new(50.0);
        let mut out = Vec::new();
        r.push(0, [0.0, 0.0, 0.0], |t, v| out.push((t, v[0])));
        r.push(30_000_000, [3.0, 0.0, 0.0], |t, v| out.push((t, v[0])));
        r.push(45_000_000, [0.0, 0.0, 0.0], |t, v| out.push((t, v[0])));
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], (0, 0.0));
        assert_eq!(out[1].0, 20_000_000);
        assert!((out[1].1 - 2.0).abs() < 1e-12);
        assert_eq!(out[2].0, 40_000_000);
        assert!((out[2].1 - 1.0).abs() < 1e-12);
        r.reset();
        let mut n = 0;
        r.push(1_000_000_000, [1.0; 3], |t, _| {
            assert_eq!(t, 1_000_000_000);
            n += 1
        });
        assert_eq!(n, 1);
    }
}
