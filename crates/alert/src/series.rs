//! Memory shapes for the generated rule tests, sampled as a scraper would
//! (every [`STEP_SECONDS`]): a Go service's working set is a GC sawtooth
//! (it climbs as the heap fills toward the GC's goal and falls back at each
//! collection) on top of a floor, the live heap, which a leak raises and a
//! start-up ramp builds. Values are whole bytes; the noise is a fixed
//! pseudo-random sequence, so the same thresholds give the same file.

/// The test's scrape interval.
pub const STEP_SECONDS: f64 = 15.0;

/// A working set over time.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The floor at t = 0 (bytes).
    pub floor_bytes: f64,
    /// The floor's growth after the ramp (bytes a second; a leak).
    pub leak_bytes_per_second: f64,
    /// A start-up ramp: the floor climbs from 0 to `floor_bytes` over this long.
    pub ramp_seconds: f64,
    /// The GC sawtooth's height (0: none).
    pub sawtooth_bytes: f64,
    /// The GC sawtooth's period.
    pub period_seconds: f64,
    /// Noise, up to this many bytes either way.
    pub noise_bytes: f64,
}

impl Shape {
    /// A flat working set.
    pub fn flat(bytes: f64, noise_bytes: f64) -> Shape {
        Shape {
            floor_bytes: bytes,
            leak_bytes_per_second: 0.0,
            ramp_seconds: 0.0,
            sawtooth_bytes: 0.0,
            period_seconds: 60.0,
            noise_bytes,
        }
    }

    /// The floor (the troughs) at `t` seconds.
    pub fn floor_at(&self, t: f64) -> f64 {
        if t < self.ramp_seconds {
            return self.floor_bytes * t / self.ramp_seconds;
        }
        self.floor_bytes + self.leak_bytes_per_second * (t - self.ramp_seconds)
    }

    /// The sampled value at step `i`.
    pub fn at(&self, i: usize) -> f64 {
        let t = i as f64 * STEP_SECONDS;
        let phase = (t % self.period_seconds) / self.period_seconds;
        let noise = self.noise_bytes * (2.0 * unit_noise(i) - 1.0);
        (self.floor_at(t) + self.sawtooth_bytes * phase + noise)
            .max(0.0)
            .round()
    }

    /// The first instant the sawtooth's top reaches `limit_bytes` (the
    /// kernel kills at the first peak over the limit).
    pub fn reaches_at(&self, limit_bytes: f64) -> Option<f64> {
        let top = self.floor_bytes + self.sawtooth_bytes;
        if top >= limit_bytes {
            return Some(self.ramp_seconds);
        }
        (self.leak_bytes_per_second > 0.0)
            .then(|| self.ramp_seconds + (limit_bytes - top) / self.leak_bytes_per_second)
    }

    /// promtool's `values`: one per step for `seconds`.
    pub fn values(&self, seconds: f64) -> String {
        join((0..steps(seconds)).map(|i| self.at(i)))
    }
}

/// The number of samples in `seconds` (both ends included).
pub fn steps(seconds: f64) -> usize {
    (seconds / STEP_SECONDS).floor() as usize + 1
}

/// Values written as promtool reads them (`_` for none, `stale` to end a series).
pub fn join(values: impl IntoIterator<Item = f64>) -> String {
    let items: Vec<String> = values
        .into_iter()
        .map(|v| {
            if v.is_nan() {
                "_".to_string()
            } else {
                format!("{v}")
            }
        })
        .collect();
    items.join(" ")
}

/// A counter: `per_second` added at each step, from `start`.
pub fn counter(start: f64, per_second: f64, seconds: f64) -> String {
    join((0..steps(seconds)).map(|i| start + per_second * STEP_SECONDS * i as f64))
}

/// A value that steps from `before` to `after` at `at_seconds`.
pub fn step_at(before: f64, after: f64, at_seconds: f64, seconds: f64) -> String {
    join((0..steps(seconds)).map(|i| {
        if (i as f64) * STEP_SECONDS < at_seconds {
            before
        } else {
            after
        }
    }))
}

/// A fixed pseudo-random number in [0, 1) for step `i` (a 64-bit mix).
fn unit_noise(i: usize) -> f64 {
    let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_reaches_the_limit_when_its_top_does() {
        let leak = Shape {
            floor_bytes: 300.0,
            leak_bytes_per_second: 1.0,
            ramp_seconds: 0.0,
            sawtooth_bytes: 100.0,
            period_seconds: 120.0,
            noise_bytes: 0.0,
        };
        assert_eq!(leak.reaches_at(1000.0), Some(600.0));
        // Just before the GC at 600 s + one period, the sample is at the top.
        let before_gc = ((600.0 + 120.0 - STEP_SECONDS) / STEP_SECONDS) as usize;
        assert!(leak.at(before_gc) > 1000.0 - 100.0 * STEP_SECONDS / 120.0 - 1.0);
        assert_eq!(Shape::flat(500.0, 0.0).reaches_at(1000.0), None);
    }

    #[test]
    fn noise_stays_within_its_bound_and_goes_both_ways() {
        let s = Shape::flat(1000.0, 10.0);
        let v: Vec<f64> = (0..500).map(|i| s.at(i)).collect();
        assert!(v.iter().all(|x| (990.0..=1010.0).contains(x)));
        assert!(v.iter().any(|x| *x < 995.0) && v.iter().any(|x| *x > 1005.0));
    }

    #[test]
    fn a_ramp_climbs_from_zero_then_holds() {
        let s = Shape {
            ramp_seconds: 100.0,
            ..Shape::flat(1000.0, 0.0)
        };
        assert_eq!(s.floor_at(0.0), 0.0);
        assert_eq!(s.floor_at(50.0), 500.0);
        assert_eq!(s.floor_at(500.0), 1000.0);
        assert_eq!(counter(5.0, 2.0, 30.0), "5 35 65");
        assert_eq!(step_at(0.0, 1.0, 15.0, 30.0), "0 1 1");
    }
}
