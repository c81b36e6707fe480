//! Online anomaly detection over one series, with the same parameters for every series (issue 13): each
//! point is scored only from the points before it.
//!
//! 1. **Raw surprise**: how far the value, and its change from the previous value, lie from their recent
//!    medians, in units of the recent median absolute deviation (robust: a spike does not widen its own
//!    yardstick), the larger of the two.
//! 2. **Anomaly likelihood** (after Numenta's): the mean surprise of the last few points against the mean
//!    and spread of the surprise over a long history. A series that is always noisy stops surprising; a
//!    quiet one that jumps does. The score in [0, 1] is the normal CDF of that distance.
//! 3. **Raising**: a score above [`Params::threshold`] raises, at most once per [`Params::refractory`]
//!    points (one incident is one page), never during the first [`Params::warmup`] points.

use std::collections::VecDeque;

/// The detector's parameters: one set for every series.
#[derive(Debug, Clone)]
pub struct Params {
    /// Points the medians look back over.
    pub window: usize,
    /// Points the surprise's own history covers.
    pub history: usize,
    /// Points averaged into the recent surprise.
    pub recent: usize,
    pub threshold: f64,
    pub refractory: usize,
    pub warmup: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self { window: 256, history: 2000, recent: 6, threshold: 0.9999, refractory: 300, warmup: 400 }
    }
}

/// A window of the latest values, kept sorted too for the median.
#[derive(Debug, Default)]
struct Rolling {
    order: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl Rolling {
    fn push(&mut self, v: f64, cap: usize) {
        if self.order.len() == cap
            && let Some(old) = self.order.pop_front()
        {
            let at = self.sorted.partition_point(|x| *x < old);
            if at < self.sorted.len() {
                self.sorted.remove(at);
            }
        }
        self.order.push_back(v);
        let at = self.sorted.partition_point(|x| *x < v);
        self.sorted.insert(at, v);
    }

    fn median(&self) -> Option<f64> {
        let n = self.sorted.len();
        (n > 0).then(|| if n % 2 == 1 { self.sorted[n / 2] } else { (self.sorted[n / 2 - 1] + self.sorted[n / 2]) / 2.0 })
    }

    /// How far `v` lies from the median, in robust deviations (the MAD scaled to a normal's sigma, with a
    /// floor so that a perfectly flat history still compares).
    fn surprise(&self, v: f64) -> f64 {
        let Some(m) = self.median() else { return 0.0 };
        let mut dev: Vec<f64> = self.sorted.iter().map(|x| (x - m).abs()).collect();
        dev.sort_by(|a, b| a.total_cmp(b));
        let mad = dev[dev.len() / 2] * 1.4826;
        let spread = self.sorted.last().copied().unwrap_or(m) - self.sorted.first().copied().unwrap_or(m);
        let floor = (spread.abs() * 0.01).max(m.abs() * 1e-3).max(1e-9);
        (v - m).abs() / mad.max(floor)
    }
}

/// One series' detector.
#[derive(Debug)]
pub struct Detector {
    p: Params,
    values: Rolling,
    changes: Rolling,
    previous: Option<f64>,
    surprises: VecDeque<f64>,
    seen: usize,
    last_raise: Option<usize>,
}

/// The verdict on one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// In [0, 1].
    pub score: f64,
    pub raise: bool,
}

/// The standard normal CDF (Abramowitz–Stegun 7.1.26 erf, error < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let erf = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * (-x * x).exp();
    if z >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

impl Detector {
    pub fn new(p: Params) -> Self {
        Self { p, values: Rolling::default(), changes: Rolling::default(), previous: None, surprises: VecDeque::new(), seen: 0, last_raise: None }
    }

    /// Scores `v`, then learns it.
    pub fn observe(&mut self, v: f64) -> Verdict {
        let change = self.previous.map(|p| v - p);
        let surprise = if self.values.order.len() < 16 { 0.0 } else { self.values.surprise(v).max(change.map_or(0.0, |c| self.changes.surprise(c))) };
        // Long history of the surprise, and its recent mean.
        self.surprises.push_back(surprise.min(1e6));
        if self.surprises.len() > self.p.history {
            self.surprises.pop_front();
        }
        let n = self.surprises.len();
        let score = if n < self.p.recent * 4 {
            0.0
        } else {
            let mean = self.surprises.iter().sum::<f64>() / n as f64;
            let var = self.surprises.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n as f64;
            let recent = self.surprises.iter().rev().take(self.p.recent).sum::<f64>() / self.p.recent as f64;
            normal_cdf((recent - mean) / var.sqrt().max(1e-3))
        };
        self.values.push(v, self.p.window);
        if let Some(c) = change {
            self.changes.push(c, self.p.window);
        }
        self.previous = Some(v);
        let at = self.seen;
        self.seen += 1;
        let quiet = self.last_raise.is_some_and(|l| at - l < self.p.refractory);
        let raise = at >= self.p.warmup && score >= self.p.threshold && !quiet;
        if raise {
            self.last_raise = Some(at);
        }
        Verdict { score, raise }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: impl Iterator<Item = f64>) -> Vec<Verdict> {
        let mut d = Detector::new(Params::default());
        values.map(|v| d.observe(v)).collect()
    }

    #[test]
    fn a_spike_in_a_noisy_seasonal_series_raises_once() {
        // A daily cycle with noise, then one spike at point 3000.
        let mut seed = 7u64;
        let mut noise = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        };
        let series: Vec<f64> =
            (0..4000).map(|i| 50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin() + noise() + if i == 3000 { 40.0 } else { 0.0 }).collect();
        let v = run(series.into_iter());
        let raised: Vec<usize> = v.iter().enumerate().filter(|(_, x)| x.raise).map(|(i, _)| i).collect();
        assert!(raised.contains(&3000), "the spike is raised: {raised:?}");
        assert!(raised.len() <= 2, "and little else: {raised:?}");
        assert!(v.iter().all(|x| (0.0..=1.0).contains(&x.score)));
    }

    #[test]
    fn a_flat_line_that_moves_raises_and_a_flat_line_alone_does_not() {
        let flat = run(std::iter::repeat_n(5.0, 3000));
        assert!(flat.iter().all(|x| !x.raise));
        let shifted = run((0..3000).map(|i| if i < 2000 { 5.0 } else { 9.0 }));
        assert!(shifted[2000].raise, "the level shift is raised at once");
    }

    #[test]
    fn the_normal_cdf_is_right_where_it_matters() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-3.0) - 0.00135).abs() < 1e-4);
    }
}
