//! When does a series reach a limit (issue 13: disk, connections, WAL/binlog growth "full in 4 days")?
//!
//! `predict_linear` over a few hours, the usual Prometheus rule, mistakes a busy afternoon for a trend and a
//! quiet weekend for a recovery. This forecast fits **trend plus seasonality**:
//!
//! 1. The period is a week when the history spans at least two, else a day when it spans two, else none.
//! 2. Only the latest whole periods are used (at most four), so the daily or weekly swing weighs the same at
//!    both ends of the fit and cancels out of the trend.
//! 3. The samples are averaged into buckets (an hour for a weekly period, 15 minutes for a daily one), which
//!    evens out uneven scrape intervals; the trend is the least-squares line through the bucket means.
//! 4. The seasonal part is the mean residual at each phase of the period (an hour of the week, a quarter
//!    hour of the day), centred on zero; trend and season are refitted in turn until both settle.
//!
//! The forecast at `t` is trend(t) + season(phase of t); [`Forecast::reaches`] walks it bucket by bucket to
//! the first time it crosses the limit. Measured against `predict_linear` on held-out data of generated
//! growth series by `bench/forecast.sh`.

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;
/// At most this many periods of history are fitted (older growth says less about the next days).
const MAX_PERIODS: i64 = 4;

/// A fitted forecast; times are milliseconds since the epoch.
#[derive(Debug, Clone)]
pub struct Forecast {
    /// The trend's value at `origin`, and its slope per millisecond.
    origin: i64,
    level: f64,
    slope: f64,
    /// Bucket width, and the seasonal offset per phase bucket (empty: no seasonality).
    bucket: i64,
    season: Vec<f64>,
}

impl Forecast {
    /// Fits `samples` (time-ordered `(ms, value)`); `None` with fewer than two distinct times or no finite
    /// value.
    pub fn fit(samples: &[(i64, f64)]) -> Option<Forecast> {
        let samples: Vec<(i64, f64)> = samples.iter().copied().filter(|(_, v)| v.is_finite()).collect();
        let (first, last) = (samples.first()?.0, samples.last()?.0);
        let span = last - first;
        if span <= 0 {
            return None;
        }
        let (period, bucket) = if span >= 2 * WEEK {
            (WEEK, HOUR)
        } else if span >= 2 * DAY {
            (DAY, 15 * 60_000)
        } else {
            (0, (span / 200).max(1))
        };
        // The latest whole periods, ending at the last sample.
        let start = if period > 0 { last - (span / period).min(MAX_PERIODS) * period } else { first };
        let fitted: Vec<(i64, f64)> = samples.into_iter().filter(|(t, _)| *t > start).collect();
        // Bucket means, keyed by the bucket's index from `start`.
        let n_buckets = ((last - start) / bucket + 1) as usize;
        let mut sums = vec![(0.0f64, 0usize); n_buckets];
        for (t, v) in &fitted {
            let k = (((t - start - 1).max(0)) / bucket) as usize;
            let s = &mut sums[k.min(n_buckets - 1)];
            s.0 += v;
            s.1 += 1;
        }
        let points: Vec<(f64, f64, usize)> =
            sums.iter().enumerate().filter(|(_, (_, n))| *n > 0).map(|(k, (s, n))| ((k as f64 + 0.5) * bucket as f64, s / *n as f64, k)).collect();
        if points.len() < 2 {
            return None;
        }
        // Trend and season fitted together (backfitting): a season over whole periods still tilts a plain
        // least-squares line (the swing's second half lies further right), so the line is refitted on the
        // deseasonalised means until both settle.
        let phases = if period > 0 { (period / bucket) as usize } else { 0 };
        let mut season = vec![0.0; phases];
        let (mut level, mut slope) = (0.0, 0.0);
        for _ in 0..if phases > 0 { 20 } else { 1 } {
            let adjusted: Vec<(f64, f64)> = points.iter().map(|(x, y, k)| (*x, y - if phases > 0 { season[k % phases] } else { 0.0 })).collect();
            (level, slope) = least_squares(&adjusted);
            if phases > 0 {
                let mut acc = vec![(0.0f64, 0usize); phases];
                for (x, y, k) in &points {
                    let a = &mut acc[k % phases];
                    a.0 += y - (level + slope * x);
                    a.1 += 1;
                }
                season = acc.iter().map(|(s, n)| if *n > 0 { s / *n as f64 } else { 0.0 }).collect();
                let centre = season.iter().sum::<f64>() / phases as f64;
                season.iter_mut().for_each(|s| *s -= centre);
            }
        }
        Some(Forecast { origin: start, level, slope, bucket, season })
    }

    /// The forecast value at `t`.
    pub fn at(&self, t: i64) -> f64 {
        let x = (t - self.origin) as f64;
        let seasonal = if self.season.is_empty() {
            0.0
        } else {
            let k = (t - self.origin - 1).max(0).div_euclid(self.bucket) as usize;
            self.season[k % self.season.len()]
        };
        self.level + self.slope * x + seasonal
    }

    /// The first time in `(from, from + horizon]` at which the forecast reaches `limit` from the side the
    /// forecast is on at `from` (rising to a ceiling or falling to a floor), or `None` within the horizon.
    pub fn reaches(&self, from: i64, horizon: i64, limit: f64) -> Option<i64> {
        let rising = self.at(from) < limit;
        let crossed = |t: i64| if rising { self.at(t) >= limit } else { self.at(t) <= limit };
        let step = self.bucket.max(60_000);
        let mut t = from;
        while t < from + horizon {
            t = (t + step).min(from + horizon);
            if crossed(t) {
                return Some(t);
            }
        }
        None
    }
}

/// The least-squares line through `(x, y)` points: (value at x = 0, slope).
fn least_squares(points: &[(f64, f64)]) -> (f64, f64) {
    let m = points.len().max(1) as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / m;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / m;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (mean_y - slope * mean_x, slope)
}

/// `predict_linear`'s answer to the same question, for comparison: the least-squares line through
/// `samples`, extrapolated; the time it reaches `limit` within the horizon.
pub fn linear_reaches(samples: &[(i64, f64)], from: i64, horizon: i64, limit: f64) -> Option<i64> {
    if samples.len() < 2 || samples.iter().all(|s| s.0 == samples[0].0) {
        return None;
    }
    let shifted: Vec<(f64, f64)> = samples.iter().map(|(t, v)| ((t - from) as f64, *v)).collect();
    let (now, slope) = least_squares(&shifted);
    if slope == 0.0 || (limit - now) / slope < 0.0 {
        return (now == limit).then_some(from);
    }
    let dt = ((limit - now) / slope) as i64;
    (dt <= horizon).then_some(from + dt)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Growth of 1 per day, a weekly swing of ±5 and a daily one of ±2, sampled every 5 minutes.
    fn series(days: i64) -> Vec<(i64, f64)> {
        (0..days * 288)
            .map(|i| {
                let t = i * 300_000;
                let d = t as f64 / DAY as f64;
                (t, 100.0 + d + 5.0 * (d * std::f64::consts::TAU / 7.0).sin() + 2.0 * (d * std::f64::consts::TAU).sin())
            })
            .collect()
    }

    #[test]
    fn a_seasonal_growth_is_forecast_where_a_short_line_is_fooled() {
        let s = series(28);
        let f = Forecast::fit(&s).unwrap();
        let now = s.last().unwrap().0;
        // The truth 10 days on: 100 + 38 + the swings at day 38.
        let t = now + 10 * DAY;
        let truth = series(39)[(38 * 288) as usize].1;
        assert!((f.at(t) - truth).abs() < 0.5, "forecast {} vs truth {truth}", f.at(t));
        // Reaching 140: the truth crosses it first near day 38-40; the forecast within a day of that.
        let truth_at = series(60).into_iter().find(|(t, v)| *t > now && *v >= 140.0).unwrap().0;
        let got = f.reaches(now, 30 * DAY, 140.0).unwrap();
        assert!((got - truth_at).abs() < DAY, "forecast {} h vs truth {} h", (got - now) / HOUR, (truth_at - now) / HOUR);
        // A line through the last 6 hours extrapolates the afternoon's daily swing.
        let last6h: Vec<_> = s.iter().copied().filter(|(t, _)| *t > now - 6 * HOUR).collect();
        let lin = linear_reaches(&last6h, now, 30 * DAY, 140.0);
        assert!(lin.is_none_or(|l| (l - truth_at).abs() > DAY), "the short line is off by more than a day: {lin:?}");
    }

    #[test]
    fn a_falling_series_reaches_its_floor_and_a_flat_one_never() {
        let s: Vec<(i64, f64)> = (0..2000).map(|i| (i * 60_000, 1000.0 - i as f64 * 0.1)).collect();
        let f = Forecast::fit(&s).unwrap();
        let now = s.last().unwrap().0;
        let at = f.reaches(now, 30 * DAY, 0.0).unwrap();
        // At 800.1 now, falling 0.1 a minute: 8,001 minutes to 0.
        assert!(((at - now) as f64 / 60_000.0 - 8001.0).abs() < 30.0, "8,001 minutes to 0: {}", (at - now) / 60_000);
        let flat: Vec<(i64, f64)> = (0..2000).map(|i| (i * 60_000, 5.0)).collect();
        assert_eq!(Forecast::fit(&flat).unwrap().reaches(now, 30 * DAY, 6.0), None);
        assert!(Forecast::fit(&[(1, 1.0)]).is_none() && Forecast::fit(&[]).is_none());
    }
}
