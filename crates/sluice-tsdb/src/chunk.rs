//! A sealed chunk's encoding, chosen per chunk: [`crate::decimal`] when every value is a short decimal and
//! that is smaller, else [`crate::gorilla`]. The choice is stored beside the chunk (the `enc` column), so
//! chunks written before the decimal encoding existed read as Gorilla's.

use crate::{decimal, gorilla};

pub const GORILLA: i64 = 0;
pub const DECIMAL: i64 = 1;

/// Encodes samples in time order (strictly increasing timestamps): (encoding, bytes).
pub fn encode(samples: &[(i64, f64)]) -> (i64, Vec<u8>) {
    let xor = gorilla::encode(samples);
    match decimal::encode(samples) {
        Some(dec) if dec.len() < xor.len() => (DECIMAL, dec),
        _ => (GORILLA, xor),
    }
}

/// Decodes `count` samples of a chunk written as `encoding`.
pub fn decode(encoding: i64, bytes: &[u8], count: usize) -> Result<Vec<(i64, f64)>, String> {
    match encoding {
        GORILLA => gorilla::decode(bytes, count),
        DECIMAL => decimal::decode(bytes, count),
        other => Err(format!("unknown chunk encoding {other}")),
    }
}
