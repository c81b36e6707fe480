//! The chunk encoding: Gorilla's delta-of-delta timestamps and XOR'd values (Pelkonen et al., "Gorilla: A
//! Fast, Scalable, In-Memory Time Series Database", VLDB 2015, §4.1), with timestamps in milliseconds.
//!
//! Layout of one chunk (a bit stream, most significant bit first, zero-padded to a byte):
//! - the first timestamp (64 bits, two's complement) and the first value (64 bits, IEEE 754);
//! - for every later sample, the delta-of-delta of its timestamp — `0` for 0; `10` + 7 bits for
//!   [-64, 63]; `110` + 9 bits for [-256, 255]; `1110` + 12 bits for [-2048, 2047] (two's complement);
//!   else `1111` + 64 bits
//!   (the paper's 32-bit case widened, so any gap round-trips) — then its value XOR the previous: `0` for
//!   equal; `10` + the meaningful bits when they fit the previous leading/trailing-zero window; else `11` +
//!   5 bits of leading zeros + 6 bits of meaningful length (64 written as 0) + the meaningful bits.
//!
//! The sample count is kept beside the chunk (the store's `count` column), not in the stream.

#[derive(Default)]
pub(crate) struct BitWriter {
    pub(crate) bytes: Vec<u8>,
    /// Bits used in the last byte (0 = the last byte is full or there is none).
    used: u8,
}

impl BitWriter {
    pub(crate) fn push(&mut self, value: u64, bits: u8) {
        let mut left = bits;
        while left > 0 {
            if self.used == 0 {
                self.bytes.push(0);
            }
            let room = 8 - self.used;
            let take = room.min(left);
            let chunk = ((value >> (left - take)) & ((1u64 << take) - 1)) as u8;
            *self.bytes.last_mut().expect("pushed above") |= chunk << (room - take);
            self.used = (self.used + take) % 8;
            left -= take;
        }
    }
}

pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    pub(crate) fn take(&mut self, bits: u8) -> Option<u64> {
        let mut out = 0u64;
        for _ in 0..bits {
            let byte = *self.bytes.get(self.pos / 8)?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            out = (out << 1) | u64::from(bit);
            self.pos += 1;
        }
        Some(out)
    }

    pub(crate) fn bit(&mut self) -> Option<bool> {
        self.take(1).map(|b| b == 1)
    }
}

fn sign_extend(v: u64, bits: u8) -> i64 {
    let shift = 64 - u32::from(bits);
    ((v << shift) as i64) >> shift
}

/// Writes a timestamp's delta-of-delta in the variable-length code the module comment gives.
pub(crate) fn push_dod(w: &mut BitWriter, dod: i64) {
    match dod {
        0 => w.push(0, 1),
        -64..=63 => {
            w.push(0b10, 2);
            w.push(dod as u64 & 0x7f, 7);
        }
        -256..=255 => {
            w.push(0b110, 3);
            w.push(dod as u64 & 0x1ff, 9);
        }
        -2048..=2047 => {
            w.push(0b1110, 4);
            w.push(dod as u64 & 0xfff, 12);
        }
        _ => {
            w.push(0b1111, 4);
            w.push(dod as u64, 64);
        }
    }
}

/// Reads what [`push_dod`] wrote; `None` where the stream ends.
pub(crate) fn read_dod(r: &mut BitReader<'_>) -> Option<i64> {
    Some(if !r.bit()? {
        0
    } else if !r.bit()? {
        sign_extend(r.take(7)?, 7)
    } else if !r.bit()? {
        sign_extend(r.take(9)?, 9)
    } else if !r.bit()? {
        sign_extend(r.take(12)?, 12)
    } else {
        r.take(64)? as i64
    })
}

/// An open chunk that samples are appended to one at a time (the in-memory head of a series: its bytes are
/// the chunk encoding of every sample so far, so a head costs a few bytes per sample instead of sixteen).
#[derive(Debug, Clone, Default)]
pub struct Appender {
    w: BitWriter,
    /// u32, not usize: with the writer's spare bytes it keeps the appender at 72 bytes (one per series).
    count: u32,
    first_ts: i64,
    prev_t: i64,
    prev_delta: i64,
    prev_v: u64,
    lead: u8,
    trail: u8,
}

impl std::fmt::Debug for BitWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BitWriter({} bytes)", self.bytes.len())
    }
}

impl Clone for BitWriter {
    fn clone(&self) -> Self {
        BitWriter { bytes: self.bytes.clone(), used: self.used }
    }
}

impl Appender {
    /// Appends a sample (the caller guarantees a timestamp after the previous one).
    pub fn push(&mut self, t: i64, v: f64) {
        let w = &mut self.w;
        if self.count == 0 {
            w.push(t as u64, 64);
            w.push(v.to_bits(), 64);
            (self.first_ts, self.prev_t, self.prev_delta, self.prev_v) = (t, t, 0, v.to_bits());
            (self.lead, self.trail) = (u8::MAX, 0);
            self.count = 1;
            return;
        }
        self.count += 1;
        let delta = t.wrapping_sub(self.prev_t);
        push_dod(w, delta.wrapping_sub(self.prev_delta));
        (self.prev_t, self.prev_delta) = (t, delta);
        let bits = v.to_bits();
        let xor = bits ^ self.prev_v;
        self.prev_v = bits;
        if xor == 0 {
            w.push(0, 1);
            return;
        }
        let l = (xor.leading_zeros() as u8).min(31);
        let tz = xor.trailing_zeros() as u8;
        if self.lead != u8::MAX && l >= self.lead && tz >= self.trail {
            w.push(0b10, 2);
            let meaningful = 64 - self.lead - self.trail;
            w.push(xor >> self.trail, meaningful);
        } else {
            let meaningful = 64 - l - tz;
            w.push(0b11, 2);
            w.push(u64::from(l), 5);
            w.push(u64::from(meaningful % 64), 6);
            w.push(xor >> tz, meaningful);
            (self.lead, self.trail) = (l, tz);
        }
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first sample's timestamp (`None` while empty).
    pub fn first_ts(&self) -> Option<i64> {
        (self.count > 0).then_some(self.first_ts)
    }

    /// The chunk bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.w.bytes
    }

    /// Every sample so far.
    pub fn samples(&self) -> Vec<(i64, f64)> {
        decode(&self.w.bytes, self.count as usize).expect("an appender decodes what it encoded")
    }

    /// Gives back spare capacity (a head that stopped growing).
    pub fn shrink(&mut self) {
        self.w.bytes.shrink_to_fit();
    }
}

/// Encodes samples in time order (the caller guarantees strictly increasing timestamps).
pub fn encode(samples: &[(i64, f64)]) -> Vec<u8> {
    let mut a = Appender::default();
    for &(t, v) in samples {
        a.push(t, v);
    }
    a.w.bytes
}

/// Decodes `count` samples. A stream too short for them is an error naming how far it got (a torn or
/// corrupted chunk), never a partial answer passed off as whole.
pub fn decode(bytes: &[u8], count: usize) -> Result<Vec<(i64, f64)>, String> {
    let mut out = Vec::with_capacity(count);
    if count == 0 {
        return Ok(out);
    }
    let torn = |n: usize| format!("chunk ends after {n} of {count} samples");
    let mut r = BitReader::new(bytes);
    let t0 = r.take(64).ok_or_else(|| torn(0))? as i64;
    let v0 = r.take(64).ok_or_else(|| torn(0))?;
    out.push((t0, f64::from_bits(v0)));
    let (mut prev_t, mut prev_delta, mut prev_v) = (t0, 0i64, v0);
    let (mut lead, mut trail) = (0u8, 0u8);
    while out.len() < count {
        let n = out.len();
        let dod = read_dod(&mut r).ok_or_else(|| torn(n))?;
        let delta = prev_delta.wrapping_add(dod);
        let t = prev_t.wrapping_add(delta);
        (prev_t, prev_delta) = (t, delta);
        if r.bit().ok_or_else(|| torn(n))? {
            if r.bit().ok_or_else(|| torn(n))? {
                lead = r.take(5).ok_or_else(|| torn(n))? as u8;
                let mut meaningful = r.take(6).ok_or_else(|| torn(n))? as u8;
                if meaningful == 0 {
                    meaningful = 64;
                }
                if u32::from(lead) + u32::from(meaningful) > 64 {
                    return Err(format!("chunk is corrupt at sample {n}: {lead} leading + {meaningful} meaningful bits"));
                }
                trail = 64 - lead - meaningful;
            }
            let meaningful = 64 - lead - trail;
            let xor = r.take(meaningful).ok_or_else(|| torn(n))? << trail;
            prev_v ^= xor;
        }
        out.push((t, f64::from_bits(prev_v)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(samples: &[(i64, f64)]) -> usize {
        let bytes = encode(samples);
        let back = decode(&bytes, samples.len()).unwrap();
        assert_eq!(back.len(), samples.len());
        for (a, b) in samples.iter().zip(&back) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "{a:?} vs {b:?}");
        }
        bytes.len()
    }

    #[test]
    fn regular_scrapes_compress_to_about_a_byte_or_two_per_sample() {
        // A counter scraped every 10 s with a few ms of jitter, and a constant gauge.
        let mut counter = Vec::new();
        let mut gauge = Vec::new();
        let mut c = 1000.0;
        for i in 0..240i64 {
            let t = 1_700_000_000_000 + i * 10_000 + (i * 7919 % 13);
            c += ((i * 31) % 17) as f64;
            counter.push((t, c));
            gauge.push((t, 42.0));
        }
        let n = roundtrip(&counter);
        assert!(n < 240 * 4, "{n} bytes for 240 counter samples");
        let g = roundtrip(&gauge);
        assert!(g < 240 * 2, "{g} bytes for 240 constant samples");
    }

    #[test]
    fn awkward_values_and_gaps_round_trip() {
        let samples = vec![
            (i64::MIN / 2, f64::NAN),
            (-5, f64::INFINITY),
            (0, -0.0),
            (1, f64::MIN_POSITIVE),
            (86_400_000 * 400, f64::MAX),
            (86_400_000 * 400 + 1, 1e-300),
            (86_400_000 * 400 + 3000, 0.1),
            (86_400_000 * 400 + 3100, 0.1 + 0.2),
        ];
        roundtrip(&samples);
        let mut pseudo = Vec::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut t = 0i64;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 1 + (x % 5000) as i64;
            pseudo.push((t, f64::from_bits(x)));
        }
        roundtrip(&pseudo);
    }

    #[test]
    fn a_torn_chunk_is_an_error() {
        let samples: Vec<(i64, f64)> = (0..50).map(|i| (i * 1000, i as f64 * 1.5)).collect();
        let bytes = encode(&samples);
        let e = decode(&bytes[..bytes.len() / 2], 50).unwrap_err();
        assert!(e.starts_with("chunk ends after"), "{e}");
    }
}
