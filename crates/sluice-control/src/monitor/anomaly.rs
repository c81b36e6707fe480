//! Online anomaly detection over one series, with the same parameters for every series (issue 13): each
//! point is scored only from the points before it.
//!
//! A point raises when the series does something it has not done within its memory:
//!
//! 1. **Shape novelty** (seasonality, changed patterns): the latest [`Params::shape_len`] means of
//!    [`Params::shape_stride`] points each (a short stretch of the curve) are compared with every earlier
//!    stretch still remembered (up to [`Params::shapes`]); the distance to the nearest is the point's
//!    novelty. A daily cycle repeats its shapes, so its peaks are not novel; a flattened middle, a missing
//!    jump or a burst of spikes makes a shape never seen. The novelty raises when it exceeds every novelty
//!    of the last [`Params::novelties`] points (a record, not a threshold: the rule needs no scale and is the
//!    same for a CPU percentage and a byte counter).
//! 2. **Level and step records** (level shifts, spikes): a value, or a change from the previous value, beyond
//!    the range of the last [`Params::history`] points raises.
//!
//! The score in [0, 1] is the share of remembered novelties the current one exceeds (1 on a record or a new
//! extreme). A raise is followed by [`Params::refractory`] quiet points (one incident is one page), and
//! nothing raises during the first [`Params::warmup`] points.
//!
//! Measured with NAB's scorer (`bench/monitoring.sh`, figures in `docs/monitoring.md`). Memory per series:
//! about `shapes * shape_len * 4` bytes plus the two ranges (about 110 KiB with the defaults).

use std::collections::VecDeque;

/// The detector's parameters: one set for every series.
#[derive(Debug, Clone)]
pub struct Params {
    /// Points over which the value and change ranges are kept.
    pub history: usize,
    /// Means in a shape.
    pub shape_len: usize,
    /// Points averaged into each mean of a shape.
    pub shape_stride: usize,
    /// Earlier shapes remembered for the nearest-neighbour search.
    pub shapes: usize,
    /// Earlier novelties a novelty must exceed to raise.
    pub novelties: usize,
    pub refractory: usize,
    pub warmup: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self { history: 6000, shape_len: 8, shape_stride: 3, shapes: 3000, novelties: 1000, refractory: 150, warmup: 200 }
    }
}

/// The verdict on one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// In [0, 1].
    pub score: f64,
    pub raise: bool,
}

/// The minimum and maximum over a sliding window of the latest points (monotonic deques: memory stays
/// small unless the series is monotonic).
#[derive(Debug, Default)]
struct Range {
    seen: usize,
    lows: VecDeque<(usize, f64)>,
    highs: VecDeque<(usize, f64)>,
}

impl Range {
    /// Whether `v` lies outside the window's range by more than rounding (false while the window is empty).
    fn outside(&self, v: f64) -> bool {
        match (self.lows.front(), self.highs.front()) {
            (Some((_, lo)), Some((_, hi))) => {
                let rounding = (hi - lo).abs().max(lo.abs()).max(hi.abs()) * 1e-12;
                v < lo - rounding || v > hi + rounding
            }
            _ => false,
        }
    }

    /// The window's max minus min (0 while empty).
    fn width(&self) -> f64 {
        match (self.lows.front(), self.highs.front()) {
            (Some((_, lo)), Some((_, hi))) => hi - lo,
            _ => 0.0,
        }
    }

    fn push(&mut self, v: f64, cap: usize) {
        let at = self.seen;
        self.seen += 1;
        while self.lows.back().is_some_and(|(_, x)| *x >= v) {
            self.lows.pop_back();
        }
        self.lows.push_back((at, v));
        while self.highs.back().is_some_and(|(_, x)| *x <= v) {
            self.highs.pop_back();
        }
        self.highs.push_back((at, v));
        let oldest = self.seen.saturating_sub(cap);
        while self.lows.front().is_some_and(|(i, _)| *i < oldest) {
            self.lows.pop_front();
        }
        while self.highs.front().is_some_and(|(i, _)| *i < oldest) {
            self.highs.pop_front();
        }
    }
}

/// The latest novelties, in arrival order and sorted (for the score's rank).
#[derive(Debug, Default)]
struct Novelties {
    order: VecDeque<f64>,
    sorted: Vec<f64>,
}

impl Novelties {
    /// The share of remembered novelties below `d`, and whether `d` beats them all.
    fn rank(&self, d: f64) -> (f64, bool) {
        let below = self.sorted.partition_point(|x| *x < d);
        let n = self.sorted.len();
        (below as f64 / n.max(1) as f64, n > 0 && below == n)
    }

    fn push(&mut self, d: f64, cap: usize) {
        if self.order.len() == cap
            && let Some(old) = self.order.pop_front()
        {
            let at = self.sorted.partition_point(|x| *x < old);
            self.sorted.remove(at);
        }
        self.order.push_back(d);
        let at = self.sorted.partition_point(|x| *x < d);
        self.sorted.insert(at, d);
    }
}

/// Fewer earlier shapes or novelties than this and no novelty is judged (too little to compare with).
const MIN_COMPARED: usize = 50;

/// One series' detector.
#[derive(Debug)]
pub struct Detector {
    p: Params,
    values: Range,
    changes: Range,
    previous: Option<f64>,
    /// The latest `shape_len * shape_stride` points.
    recent: VecDeque<f64>,
    /// Earlier shapes, oldest first, flattened (`shape_len` each).
    shapes: VecDeque<f64>,
    novelties: Novelties,
    seen: usize,
    last_raise: Option<usize>,
}

impl Detector {
    pub fn new(p: Params) -> Self {
        let p = Params { shape_len: p.shape_len.max(1), shape_stride: p.shape_stride.max(1), ..p };
        Self {
            p,
            values: Range::default(),
            changes: Range::default(),
            previous: None,
            recent: VecDeque::new(),
            shapes: VecDeque::new(),
            novelties: Novelties::default(),
            seen: 0,
            last_raise: None,
        }
    }

    /// The novelty of the latest shape: its squared distance to the nearest remembered shape that does not
    /// overlap it; `None` while there is too little to compare. Remembers the shape.
    fn shape_novelty(&mut self, v: f64) -> Option<f64> {
        let (len, stride) = (self.p.shape_len, self.p.shape_stride);
        let span = len * stride;
        self.recent.push_back(v);
        if self.recent.len() > span {
            self.recent.pop_front();
        }
        if self.recent.len() < span {
            return None;
        }
        let shape: Vec<f64> = (0..len).map(|i| self.recent.range(i * stride..(i + 1) * stride).sum::<f64>() / stride as f64).collect();
        // The last `span` shapes overlap this one: they would match it trivially.
        let comparable = (self.shapes.len() / len).saturating_sub(span);
        let novelty = (comparable >= MIN_COMPARED).then(|| {
            let mut best = f64::INFINITY;
            for candidate in self.shapes.make_contiguous().chunks_exact(len).take(comparable) {
                let mut d = 0f64;
                for (a, b) in candidate.iter().zip(&shape) {
                    d += (a - b) * (a - b);
                    // Early abandon: this one is already no nearer.
                    if d >= best {
                        break;
                    }
                }
                best = best.min(d);
            }
            best
        });
        self.shapes.extend(shape);
        while self.shapes.len() > self.p.shapes * len {
            self.shapes.drain(..len);
        }
        novelty
    }

    /// Scores `v`, then learns it.
    pub fn observe(&mut self, v: f64) -> Verdict {
        let change = self.previous.map(|p| v - p);
        let extreme = self.values.outside(v) || change.is_some_and(|c| self.changes.outside(c));
        let (mut score, mut record) = (0.0, false);
        if let Some(d) = self.shape_novelty(v) {
            if self.novelties.order.len() >= MIN_COMPARED {
                let (rank, beats_all) = self.novelties.rank(d);
                // A repeat is never novel, however quiet the history: a distance within rounding of the
                // series' own scale counts as zero.
                let rounding = (self.values.width() * 1e-6).powi(2) * self.p.shape_len as f64;
                (score, record) = (rank, beats_all && d > rounding);
            }
            self.novelties.push(d, self.p.novelties.max(1));
        }
        if extreme {
            score = 1.0;
        }
        self.values.push(v, self.p.history.max(1));
        if let Some(c) = change {
            self.changes.push(c, self.p.history.max(1));
        }
        self.previous = Some(v);
        let at = self.seen;
        self.seen += 1;
        let quiet = self.last_raise.is_some_and(|l| at - l < self.p.refractory);
        let raise = at >= self.p.warmup && (record || extreme) && !quiet;
        if raise {
            self.last_raise = Some(at);
        }
        Verdict { score: if record { 1.0 } else { score }, raise }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(values: impl Iterator<Item = f64>) -> Vec<Verdict> {
        let mut d = Detector::new(Params::default());
        values.map(|v| d.observe(v)).collect()
    }

    fn noise(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        }
    }

    fn raised(v: &[Verdict]) -> Vec<usize> {
        v.iter().enumerate().filter(|(_, x)| x.raise).map(|(i, _)| i).collect()
    }

    #[test]
    fn a_spike_in_a_noisy_seasonal_series_raises_at_once() {
        let mut n = noise(7);
        let series: Vec<f64> =
            (0..4000).map(|i| 50.0 + 10.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin() + n() + if i == 3000 { 40.0 } else { 0.0 }).collect();
        let v = run(series.into_iter());
        let r = raised(&v);
        assert!(r.contains(&3000), "the spike is raised: {r:?}");
        assert!(v.iter().all(|x| (0.0..=1.0).contains(&x.score)));
    }

    #[test]
    fn a_flattened_cycle_raises_although_every_value_is_in_range() {
        // A daily cycle that stops moving at mid-height for a while on the tenth day: no value is new, the
        // shape is. (The first cycle is new in every respect; what matters is the quiet after it.)
        let day = 288.0;
        let series: Vec<f64> = (0..4000)
            .map(|i| {
                let x = if (2880..2980).contains(&i) { 2880.0 } else { i as f64 };
                50.0 + 10.0 * (x * std::f64::consts::TAU / day).sin()
            })
            .collect();
        let r = raised(&run(series.into_iter()));
        assert!(r.iter().any(|i| (2880..2980).contains(i)), "the flat stretch is raised: {r:?}");
        assert!(r.iter().all(|i| *i < 2 * 288 || *i >= 2880), "nothing between the second cycle and it: {r:?}");
    }

    #[test]
    fn a_flat_line_that_moves_raises_and_a_flat_line_alone_does_not() {
        assert!(run(std::iter::repeat_n(5.0, 3000)).iter().all(|x| !x.raise));
        let shifted = run((0..3000).map(|i| if i < 2000 { 5.0 } else { 9.0 }));
        assert!(shifted[2000].raise, "the level shift is raised at once");
    }

    #[test]
    fn the_range_forgets_what_left_the_window() {
        let mut r = Range::default();
        for v in [5.0, 1.0, 3.0] {
            r.push(v, 2);
        }
        assert!(!r.outside(2.0) && r.outside(0.5) && r.outside(4.0), "the 5 left the window of 2, the 1 did not");
    }
}
