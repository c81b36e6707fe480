//! The second chunk encoding, for runs whose values are all short decimals: counters, byte and row counts,
//! gauges with a few decimals — most of what a database collector writes. Gorilla's XOR of two doubles such
//! as 50.37 and 50.41 keeps ~50 meaningful bits, because their mantissas differ everywhere; as integers of
//! hundredths (5037, 5041) they differ by 4. VictoriaMetrics stores every value this way (a decimal
//! mantissa and exponent); here it is chosen per chunk, only when it is lossless and smaller ([`crate::chunk`]).
//!
//! A value v is written as the integer m with v == m / 10^k, one k in 0..=15 for the whole chunk, |m| < 2^53.
//! For k <= 22, 10^k is exact in a double and IEEE division rounds correctly, so m / 10^k is the double
//! nearest the decimal m·10^-k — the double its text parses to. Encoding checks every value reproduces
//! bit for bit (a NaN, an infinity, -0.0 or a value with more digits makes the chunk Gorilla's).
//!
//! Layout (a bit stream, most significant bit first, zero-padded to a byte): the first timestamp (64 bits),
//! k (4 bits), the first m (64 bits, two's complement), the smallest delta between consecutive m (64 bits,
//! two's complement) and the width w (6 bits) of the largest delta minus that smallest; then, for every
//! later sample, its timestamp's delta-of-delta in Gorilla's code ([`crate::gorilla`]) and its delta minus
//! the smallest, in w bits (frame of reference).

use crate::gorilla::{BitReader, BitWriter, push_dod, read_dod};

/// Exact in a double up to here (2^53).
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0;
const POW10: [f64; 16] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

fn value_of(m: i64, k: usize) -> f64 {
    if k == 0 { m as f64 } else { m as f64 / POW10[k] }
}

/// The fewest decimals that write `v` exactly, or `None`.
fn decimals(v: f64) -> Option<usize> {
    if !v.is_finite() {
        return None;
    }
    (0..POW10.len()).find(|&k| {
        let m = (v * POW10[k]).round();
        m.abs() < MAX_MANTISSA && value_of(m as i64, k).to_bits() == v.to_bits()
    })
}

/// Encodes samples in time order (strictly increasing timestamps), or `None` when some value is not a
/// short decimal.
pub fn encode(samples: &[(i64, f64)]) -> Option<Vec<u8>> {
    let (&(t0, _), rest) = samples.split_first()?;
    let mut k = 0;
    for &(_, v) in samples {
        k = k.max(decimals(v)?);
    }
    let mut mantissas = Vec::with_capacity(samples.len());
    for &(_, v) in samples {
        let m = (v * POW10[k]).round();
        // More decimals than a value needs still write it exactly, unless the mantissa outgrows 2^53.
        if m.abs() >= MAX_MANTISSA || value_of(m as i64, k).to_bits() != v.to_bits() {
            return None;
        }
        mantissas.push(m as i64);
    }
    // |m| < 2^53, so a delta is under 2^54 either way and (delta - smallest) under 2^55: 56 bits at most.
    let deltas: Vec<i64> = mantissas.windows(2).map(|p| p[1] - p[0]).collect();
    let low = deltas.iter().copied().min().unwrap_or(0);
    let span = deltas.iter().map(|d| (d - low) as u64).max().unwrap_or(0);
    let width = (64 - span.leading_zeros()) as u8;
    let mut w = BitWriter::default();
    w.push(t0 as u64, 64);
    w.push(k as u64, 4);
    w.push(mantissas[0] as u64, 64);
    w.push(low as u64, 64);
    w.push(u64::from(width), 6);
    let (mut prev_t, mut prev_delta) = (t0, 0i64);
    for (&(t, _), d) in rest.iter().zip(&deltas) {
        let delta = t.wrapping_sub(prev_t);
        push_dod(&mut w, delta.wrapping_sub(prev_delta));
        (prev_t, prev_delta) = (t, delta);
        if width > 0 {
            w.push((d - low) as u64, width);
        }
    }
    Some(w.bytes)
}

/// Decodes `count` samples; a stream too short for them, or a header no encoder writes, is an error.
pub fn decode(bytes: &[u8], count: usize) -> Result<Vec<(i64, f64)>, String> {
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return Ok(out);
    }
    let torn = |n: usize| format!("chunk ends after {n} of {count} samples");
    let mut r = BitReader::new(bytes);
    let t0 = r.take(64).ok_or_else(|| torn(0))? as i64;
    let k = r.take(4).ok_or_else(|| torn(0))? as usize;
    let mut m = r.take(64).ok_or_else(|| torn(0))? as i64;
    let low = r.take(64).ok_or_else(|| torn(0))? as i64;
    let width = r.take(6).ok_or_else(|| torn(0))? as u8;
    if width > 56 || m.unsigned_abs() >= 1 << 53 {
        return Err(format!("chunk header is corrupt: width {width}, first mantissa {m}"));
    }
    out.push((t0, value_of(m, k)));
    let (mut prev_t, mut prev_delta) = (t0, 0i64);
    while out.len() < count {
        let n = out.len();
        let delta = prev_delta.wrapping_add(read_dod(&mut r).ok_or_else(|| torn(n))?);
        let t = prev_t.wrapping_add(delta);
        (prev_t, prev_delta) = (t, delta);
        let step = if width > 0 { r.take(width).ok_or_else(|| torn(n))? as i64 } else { 0 };
        m = m.wrapping_add(low.wrapping_add(step));
        out.push((t, value_of(m, k)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(samples: &[(i64, f64)]) -> Option<usize> {
        let bytes = encode(samples)?;
        let back = decode(&bytes, samples.len()).unwrap();
        assert_eq!(back.len(), samples.len());
        for (a, b) in samples.iter().zip(&back) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "{a:?} vs {b:?}");
        }
        Some(bytes.len())
    }

    #[test]
    fn counters_and_two_decimal_gauges_take_a_byte_or_two_a_sample() {
        let t = |i: i64| 1_700_000_000_000 + i * 15_000;
        let mut c = 1_000_000.0;
        let counter: Vec<(i64, f64)> = (0..480)
            .map(|i| {
                c += ((i * 31) % 50) as f64;
                (t(i), c)
            })
            .collect();
        assert!(roundtrip(&counter).unwrap() < 480, "a counter in under a byte a sample");
        let gauge: Vec<(i64, f64)> = (0..480).map(|i| (t(i), ((5000 + (i * 7919) % 500) as f64) / 100.0)).collect();
        let n = roundtrip(&gauge).unwrap();
        assert!(n < 480 * 2, "{n} bytes for 480 two-decimal values");
        assert!(n * 3 < crate::gorilla::encode(&gauge).len(), "smaller than Gorilla's XOR");
    }

    #[test]
    fn only_exact_decimals_qualify() {
        let t = |i: i64| i * 1000;
        for bad in [f64::NAN, f64::INFINITY, -0.0, 0.1 + 0.2, 1e300, 1.0 / 3.0] {
            assert!(encode(&[(t(0), 1.0), (t(1), bad)]).is_none(), "{bad}");
        }
        // Negative values, falling runs, mixed decimals, the largest exact mantissa, one sample, jittery time.
        roundtrip(&[(t(0), -5.25), (t(1), 3.0), (t(2), -0.001), (t(3), 0.0), (t(5), 12.5)]).unwrap();
        roundtrip(&[(0, 9_007_199_254_740_991.0), (1, -9_007_199_254_740_991.0), (2, 0.0)]).unwrap();
        roundtrip(&[(i64::MIN / 2, 7.0)]).unwrap();
        roundtrip(&[(t(0), 0.1), (t(0) + 999, 0.2), (t(0) + 5_000_000_000, 123_456.789_012)]).unwrap();
        assert!(encode(&[]).is_none());
    }

    #[test]
    fn a_torn_or_corrupt_chunk_is_an_error() {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 1000, i as f64 * 1.5)).collect();
        let bytes = encode(&samples).unwrap();
        assert!(decode(&bytes[..bytes.len() / 2], 50).unwrap_err().starts_with("chunk ends after"));
        let mut bad = bytes.clone();
        bad[8] |= 0x0f; // the width field's neighbourhood: k and the first mantissa's top bits
        assert!(decode(&bad, 50).is_err());
    }
}
