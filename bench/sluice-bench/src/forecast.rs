//! The disk-full forecast's error on held-out data (bench/forecast.sh): generated growth series with noise,
//! a daily swing and a weekly rhythm (growth on weekdays, none at weekends, like a business's data), four
//! weeks of history at 5-minute samples, then 30 held-out days. For each series a limit is set a few days to
//! a few weeks ahead; the truth is the first held-out sample at or over it. Compared: Sluice's forecast
//! (`sluice_tsdb::forecast`, what `forecast` alert rules use) and a least-squares line as `predict_linear`
//! draws it over the last 6 hours (the usual Prometheus disk rule) and over the last 7 days.

use anyhow::{Result, bail};
use clap::Args;
use sluice_tsdb::forecast::{Forecast, linear_reaches};

use crate::rng::Rng;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Args)]
pub struct ForecastBench {
    /// Generated series.
    #[arg(long, default_value_t = 200)]
    pub series: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Absolute errors in hours of one method, and its misses (no crossing forecast within 30 days).
#[derive(Default)]
struct Tally {
    errors: Vec<f64>,
    late: usize,
    missed: usize,
}

impl Tally {
    fn add(&mut self, predicted: Option<i64>, truth: i64) {
        match predicted {
            None => self.missed += 1,
            Some(p) => {
                self.errors.push((p - truth).abs() as f64 / HOUR as f64);
                if p - truth > DAY {
                    self.late += 1;
                }
            }
        }
    }
    fn line(&self, name: &str) -> String {
        let mut e = self.errors.clone();
        e.sort_by(f64::total_cmp);
        let q = |p: f64| if e.is_empty() { f64::NAN } else { e[((e.len() - 1) as f64 * p).round() as usize] };
        format!("{name:<28} median |error| {:>6.1} h   p90 {:>6.1} h   late by > 1 day {:>3}   missed {:>3}", q(0.5), q(0.9), self.late, self.missed)
    }
}

pub fn run(a: ForecastBench) -> Result<()> {
    let mut rng = Rng(a.seed.max(1));
    let step = 5 * MIN;
    let history = 28 * DAY;
    let horizon = 30 * DAY;
    let (mut sluice, mut short, mut week) = (Tally::default(), Tally::default(), Tally::default());
    let mut scored = 0;
    for _ in 0..a.series {
        // Growth per weekday (none at weekends), daily swing, noise, all relative to the growth.
        let growth = rng.range(0.2, 2.0);
        let daily = growth * rng.range(0.0, 1.5);
        let noise = growth * rng.range(0.0, 0.3);
        let phase = rng.range(0.0, 7.0);
        let mut level = 100.0;
        let mut samples = Vec::new();
        let mut t = 0;
        while t < history + horizon {
            let day = t as f64 / DAY as f64 + phase;
            if day.rem_euclid(7.0) < 5.0 {
                level += growth * step as f64 / DAY as f64;
            }
            let swing = daily * (day * std::f64::consts::TAU).sin();
            samples.push((t, level + swing + noise * rng.normal()));
            t += step;
        }
        let (train, held): (Vec<_>, Vec<_>) = samples.into_iter().partition(|(t, _)| *t < history);
        let now = train.last().map(|s| s.0).unwrap_or(0);
        let limit = level_at(&train) + growth * rng.range(3.0, 20.0);
        let Some(truth) = held.iter().find(|(_, v)| *v >= limit).map(|s| s.0) else { continue };
        scored += 1;
        sluice.add(Forecast::fit(&train).and_then(|f| f.reaches(now, horizon, limit)), truth);
        let since = |d: i64| train.iter().copied().filter(|(t, _)| *t > now - d).collect::<Vec<_>>();
        short.add(linear_reaches(&since(6 * HOUR), now, horizon, limit), truth);
        week.add(linear_reaches(&since(7 * DAY), now, horizon, limit), truth);
    }
    if scored == 0 {
        bail!("no generated series crossed its limit within the held-out 30 days");
    }
    println!("series {} (crossing within the held-out 30 days: {scored})", a.series);
    println!("{}", sluice.line("sluice (trend + season)"));
    println!("{}", short.line("predict_linear over 6h"));
    println!("{}", week.line("predict_linear over 7d"));
    Ok(())
}

/// The mean of the last day of the history: where the series stands.
fn level_at(train: &[(i64, f64)]) -> f64 {
    let last = train.last().map(|s| s.0).unwrap_or(0);
    let day: Vec<f64> = train.iter().filter(|(t, _)| *t > last - DAY).map(|s| s.1).collect();
    day.iter().sum::<f64>() / day.len().max(1) as f64
}
