//! Monitoring (issue 13): collectors ([`collector`]) into the embedded time-series store, its exposition on
//! `/metrics` ([`exposition`]), alerting ([`alerting`]) and the online anomaly detector ([`anomaly`]) that
//! anomaly rules and `sluice detect` share.

pub mod alerting;
pub mod anomaly;
pub mod business;
pub mod collector;
pub mod export;
pub mod exposition;
pub mod upstream;

/// Runs the detector over a `timestamp,value` CSV (NAB's format: a header, then one point per line) and
/// returns `timestamp,value,anomaly_score,label` lines (with their header). Errors name the line.
pub fn detect_csv(text: &str, params: anomaly::Params) -> Result<String, String> {
    let mut d = anomaly::Detector::new(params);
    let mut out = String::from("timestamp,value,anomaly_score,label\n");
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if i == 0 && line.to_ascii_lowercase().starts_with("timestamp") || line.is_empty() {
            continue;
        }
        let (ts, value) = line.rsplit_once(',').ok_or_else(|| format!("line {}: expected `timestamp,value`, found `{line}`", i + 1))?;
        let v: f64 = value.trim().parse().map_err(|_| format!("line {}: `{}` is not a number", i + 1, value.trim()))?;
        if !v.is_finite() {
            return Err(format!("line {}: `{}` is not a finite number", i + 1, value.trim()));
        }
        let verdict = d.observe(v);
        out.push_str(&format!("{ts},{value},{:.6},{}\n", verdict.score, u8::from(verdict.raise)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_lines_are_named() {
        let e = super::detect_csv("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,x\n", Default::default()).unwrap_err();
        assert_eq!(e, "line 3: `x` is not a number");
        let out = super::detect_csv("timestamp,value\n2014-01-01 00:00:00,1\n", Default::default()).unwrap();
        assert_eq!(out, "timestamp,value,anomaly_score,label\n2014-01-01 00:00:00,1,0.000000,0\n");
    }
}
