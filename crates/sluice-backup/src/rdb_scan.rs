//! Reads a Redis RDB stream as it passes (on its own thread: the format is easiest read front to back):
//! counts the keys of each database, and those with an expiry, and checks the file's own CRC-64 against the
//! bytes that came through, so a cut or damaged snapshot is refused even when `redis-cli` exits 0.
//!
//! Format: Redis's `rdb.h`/`rdb.c` (RDB versions up to 11, Redis 7.2): opcodes `0xFA` aux, `0xFB` resizedb,
//! `0xFC`/`0xFD` expiry, `0xFE` selectdb, `0xF8`/`0xF9` LRU/LFU, `0xF5`/`0xF6` functions, `0xFF` end followed
//! by the little-endian CRC-64 (Jones polynomial, reflected) of everything before it. Module values (types
//! 6 and 7, opcode `0xF7`) cannot be skipped without the module: such a file's counts are marked unknown.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::mpsc;

/// What the scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RdbCounts {
    /// Per database number: (keys, keys with an expiry, the earliest expiry in Unix ms).
    pub dbs: BTreeMap<u64, (u64, u64, Option<i64>)>,
    /// The `redis-ver` aux field.
    pub redis_version: Option<String>,
    /// The end marker was reached and the checksum matched (or the server writes none).
    pub complete: bool,
    /// Why the counts are incomplete or the file is refused.
    pub problem: Option<String>,
}

/// CRC-64/Jones as Redis computes it (reflected, initial 0, no final xor).
pub struct Crc64 {
    table: [u64; 256],
    crc: u64,
}

impl Crc64 {
    pub fn new() -> Self {
        // The Jones polynomial 0xad93d23594c935a9, bit-reversed for the reflected algorithm.
        let poly = 0xad93d23594c935a9u64.reverse_bits();
        let mut table = [0u64; 256];
        for (i, t) in table.iter_mut().enumerate() {
            let mut c = i as u64;
            for _ in 0..8 {
                c = if c & 1 == 1 { (c >> 1) ^ poly } else { c >> 1 };
            }
            *t = c;
        }
        Self { table, crc: 0 }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.crc = self.table[((self.crc ^ b as u64) & 0xff) as usize] ^ (self.crc >> 8);
        }
    }

    pub fn value(&self) -> u64 {
        self.crc
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

/// The scanner: `feed` hands bytes to the parsing thread; `finish` waits for its result.
pub struct RdbScanner {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<RdbCounts>>,
    result: Option<RdbCounts>,
}

impl Default for RdbScanner {
    fn default() -> Self {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(64);
        let worker = std::thread::spawn(move || parse(ChannelReader { rx, buf: Vec::new(), at: 0, crc: Crc64::new(), held: Vec::new() }));
        Self { tx: Some(tx), worker: Some(worker), result: None }
    }
}

impl RdbScanner {
    /// Waits for the reader (the stream has ended) and returns what it found.
    pub fn finish(mut self) -> RdbCounts {
        crate::repo::Scan::end(&mut self);
        self.result.take().unwrap_or_default()
    }

    /// What the reader found, once the stream ended.
    pub fn counts(&self) -> Option<&RdbCounts> {
        self.result.as_ref()
    }

    pub fn take_counts(&mut self) -> Option<RdbCounts> {
        self.result.take()
    }
}

impl crate::repo::Scan for RdbScanner {
    fn feed(&mut self, bytes: &[u8]) {
        if let Some(tx) = &self.tx
            && tx.send(bytes.to_vec()).is_err()
        {
            // The parser stopped (a problem it reports at `finish`): stop copying.
            self.tx = None;
        }
    }

    fn end(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            self.result = Some(w.join().unwrap_or_else(|_| RdbCounts { problem: Some("the RDB reader failed".into()), ..Default::default() }));
        }
    }
}

/// Bytes from the channel; the CRC covers everything except the last 8 bytes read (held back until more
/// arrive, so the trailing checksum is not part of its own sum).
struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    at: usize,
    crc: Crc64,
    held: Vec<u8>,
}

impl ChannelReader {
    fn account(&mut self, bytes: &[u8]) {
        self.held.extend_from_slice(bytes);
        if self.held.len() > 8 {
            let n = self.held.len() - 8;
            self.crc.update(&self.held[..n]);
            self.held.drain(..n);
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        let taken = out[..n].to_vec();
        self.account(&taken);
        Ok(n)
    }
}

struct Stop(String);

fn parse(mut r: ChannelReader) -> RdbCounts {
    let mut counts = RdbCounts::default();
    match walk(&mut r, &mut counts) {
        Ok(()) => {
            // The checksum: 8 bytes, little-endian; 0 when the server has `rdbchecksum no`.
            let mut sum = [0u8; 8];
            match r.read_exact(&mut sum) {
                Ok(()) => {
                    let want = u64::from_le_bytes(sum);
                    if want != 0 && want != r.crc.value() {
                        counts.problem =
                            Some(format!("the RDB's checksum is {want:016x} but its bytes sum to {:016x}: the snapshot is damaged", r.crc.value()));
                    } else {
                        counts.complete = true;
                    }
                }
                Err(_) => counts.problem = Some("the RDB ends before its checksum".into()),
            }
        }
        Err(Stop(why)) => counts.problem = Some(why),
    }
    // Drain what is left so the sender never blocks.
    while r.rx.recv().is_ok() {}
    counts
}

fn byte(r: &mut impl Read) -> Result<u8, Stop> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b).map_err(|_| Stop("the RDB ends early: the snapshot is incomplete".into()))?;
    Ok(b[0])
}

fn skip(r: &mut impl Read, n: u64) -> Result<(), Stop> {
    let copied = std::io::copy(&mut r.by_ref().take(n), &mut std::io::sink()).map_err(|e| Stop(e.to_string()))?;
    if copied != n {
        return Err(Stop("the RDB ends early: the snapshot is incomplete".into()));
    }
    Ok(())
}

/// A length, or a special string encoding (`Err(kind)`).
fn length(r: &mut impl Read) -> Result<Result<u64, u8>, Stop> {
    let b = byte(r)?;
    Ok(match b >> 6 {
        0 => Ok((b & 0x3f) as u64),
        1 => Ok((((b & 0x3f) as u64) << 8) | byte(r)? as u64),
        2 if b == 0x80 => {
            let mut x = [0u8; 4];
            r.read_exact(&mut x).map_err(|_| Stop("the RDB ends early".into()))?;
            Ok(u32::from_be_bytes(x) as u64)
        }
        2 if b == 0x81 => {
            let mut x = [0u8; 8];
            r.read_exact(&mut x).map_err(|_| Stop("the RDB ends early".into()))?;
            Ok(u64::from_be_bytes(x))
        }
        2 => return Err(Stop(format!("unknown RDB length byte {b:#04x}"))),
        _ => Err(b & 0x3f),
    })
}

fn len(r: &mut impl Read) -> Result<u64, Stop> {
    length(r)?.map_err(|k| Stop(format!("an encoded string where a length belongs ({k})")))
}

/// Reads a string; returns it when `keep` (for aux fields), else skips it.
fn string(r: &mut impl Read, keep: bool) -> Result<Option<Vec<u8>>, Stop> {
    match length(r)? {
        Ok(n) => {
            if keep {
                let mut v = vec![0u8; n as usize];
                r.read_exact(&mut v).map_err(|_| Stop("the RDB ends early".into()))?;
                Ok(Some(v))
            } else {
                skip(r, n).map(|()| None)
            }
        }
        Err(0) => {
            let v = byte(r)? as i8;
            Ok(keep.then(|| v.to_string().into_bytes()))
        }
        Err(1) => {
            let mut x = [0u8; 2];
            r.read_exact(&mut x).map_err(|_| Stop("the RDB ends early".into()))?;
            Ok(keep.then(|| i16::from_le_bytes(x).to_string().into_bytes()))
        }
        Err(2) => {
            let mut x = [0u8; 4];
            r.read_exact(&mut x).map_err(|_| Stop("the RDB ends early".into()))?;
            Ok(keep.then(|| i32::from_le_bytes(x).to_string().into_bytes()))
        }
        Err(3) => {
            let (clen, _) = (len(r)?, len(r)?);
            skip(r, clen)?;
            Ok(keep.then(|| b"(compressed)".to_vec()))
        }
        Err(k) => Err(Stop(format!("unknown RDB string encoding {k}"))),
    }
}

fn skip_strings(r: &mut impl Read, n: u64) -> Result<(), Stop> {
    for _ in 0..n {
        string(r, false)?;
    }
    Ok(())
}

/// Skips a stream value (types 15, 19, 21).
fn skip_stream(r: &mut impl Read, t: u8) -> Result<(), Stop> {
    let listpacks = len(r)?;
    skip_strings(r, listpacks * 2)?;
    len(r)?; // length
    len(r)?; // last id ms
    len(r)?; // last id seq
    if t >= 19 {
        for _ in 0..5 {
            len(r)?; // first id (2), max deleted id (2), entries added
        }
    }
    let groups = len(r)?;
    for _ in 0..groups {
        string(r, false)?;
        len(r)?;
        len(r)?;
        if t >= 19 {
            len(r)?; // entries read
        }
        let pel = len(r)?;
        skip(r, pel * (16 + 8))?;
        for _ in 0..pel {
            len(r)?; // delivery count
        }
        let consumers = len(r)?;
        for _ in 0..consumers {
            string(r, false)?;
            skip(r, 8)?; // seen time
            if t >= 21 {
                skip(r, 8)?; // active time
            }
            let cpel = len(r)?;
            skip(r, cpel * 16)?;
        }
    }
    Ok(())
}

fn skip_value(r: &mut impl Read, t: u8) -> Result<(), Stop> {
    match t {
        0 | 9..=13 | 16 | 17 | 20 => skip_strings(r, 1),
        1 | 2 => {
            let n = len(r)?;
            skip_strings(r, n)
        }
        3 => {
            let n = len(r)?;
            for _ in 0..n {
                string(r, false)?;
                let l = byte(r)?;
                if l < 253 {
                    skip(r, l as u64)?;
                }
            }
            Ok(())
        }
        4 => {
            let n = len(r)?;
            skip_strings(r, n * 2)
        }
        5 => {
            let n = len(r)?;
            for _ in 0..n {
                string(r, false)?;
                skip(r, 8)?;
            }
            Ok(())
        }
        14 => {
            let n = len(r)?;
            skip_strings(r, n)
        }
        18 => {
            let n = len(r)?;
            for _ in 0..n {
                len(r)?; // container
                string(r, false)?;
            }
            Ok(())
        }
        15 | 19 | 21 => skip_stream(r, t),
        6 | 7 => Err(Stop("the RDB holds a module value, which cannot be read without its module: key counts are unknown".into())),
        other => Err(Stop(format!("unknown RDB value type {other}"))),
    }
}

fn walk(r: &mut ChannelReader, counts: &mut RdbCounts) -> Result<(), Stop> {
    let mut magic = [0u8; 9];
    r.read_exact(&mut magic).map_err(|_| Stop("not an RDB: it ends before its header".into()))?;
    if &magic[..5] != b"REDIS" {
        return Err(Stop("not an RDB: no REDIS header".into()));
    }
    let mut db = 0u64;
    let mut expiry: Option<i64> = None;
    loop {
        let op = byte(r)?;
        match op {
            0xFF => return Ok(()),
            0xFA => {
                let k = string(r, true)?.unwrap_or_default();
                let v = string(r, true)?.unwrap_or_default();
                if k == b"redis-ver" {
                    counts.redis_version = Some(String::from_utf8_lossy(&v).into_owned());
                }
            }
            0xFE => {
                db = len(r)?;
                counts.dbs.entry(db).or_default();
            }
            0xFB => {
                len(r)?;
                len(r)?;
            }
            0xFC => {
                let mut x = [0u8; 8];
                r.read_exact(&mut x).map_err(|_| Stop("the RDB ends early".into()))?;
                expiry = Some(i64::from_le_bytes(x));
            }
            0xFD => {
                let mut x = [0u8; 4];
                r.read_exact(&mut x).map_err(|_| Stop("the RDB ends early".into()))?;
                expiry = Some(u32::from_le_bytes(x) as i64 * 1000);
            }
            0xF8 => {
                len(r)?;
            }
            0xF9 => {
                byte(r)?;
            }
            0xF5 => {
                string(r, false)?;
            }
            0xF6 => skip_strings(r, 4)?,
            0xF7 => return Err(Stop("the RDB holds module data, which cannot be read without its module: key counts are unknown".into())),
            t => {
                string(r, false)?; // the key
                skip_value(r, t)?;
                let e = counts.dbs.entry(db).or_default();
                e.0 += 1;
                if let Some(at) = expiry.take() {
                    e.1 += 1;
                    e.2 = Some(e.2.map_or(at, |m: i64| m.min(at)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Scan;

    #[test]
    fn crc64_is_redis_s() {
        // The check value Redis's own crc64 test uses.
        let mut c = Crc64::new();
        c.update(b"123456789");
        assert_eq!(c.value(), 0xe9c6d914c4b8d9ca);
    }

    fn rdb(body: &[u8]) -> Vec<u8> {
        let mut v = b"REDIS0011".to_vec();
        v.extend_from_slice(body);
        v.push(0xFF);
        let mut c = Crc64::new();
        c.update(&v);
        v.extend_from_slice(&c.value().to_le_bytes());
        v
    }

    #[test]
    fn counts_keys_per_database_and_checks_the_sum() {
        // aux redis-ver=7.0; db 0: "a"="x", "b"=int 5 with an expiry; db 3: a hash of 1 field.
        let mut body = vec![0xFA, 9];
        body.extend_from_slice(b"redis-ver");
        body.extend_from_slice(&[3, b'7', b'.', b'0', 0xFE, 0, 0xFB, 2, 1, 0, 1, b'a', 1, b'x', 0xFC]);
        body.extend_from_slice(&1_900_000_000_000i64.to_le_bytes());
        body.extend_from_slice(&[0, 1, b'b', 0xC0, 5, 0xFE, 3, 4, 1, b'h', 1, 1, b'f', 1, b'v']);
        let file = rdb(&body);
        let mut s = RdbScanner::default();
        for piece in file.chunks(3) {
            s.feed(piece);
        }
        let c = s.finish();
        assert_eq!(c.problem, None);
        assert!(c.complete);
        assert_eq!(c.redis_version.as_deref(), Some("7.0"));
        assert_eq!(c.dbs.get(&0), Some(&(2, 1, Some(1_900_000_000_000))));
        assert_eq!(c.dbs.get(&3), Some(&(1, 0, None)));

        let mut damaged = file.clone();
        damaged[20] ^= 1;
        let mut s = RdbScanner::default();
        s.feed(&damaged);
        assert!(s.finish().problem.is_some_and(|p| p.contains("checksum") || p.contains("RDB")));
        let mut s = RdbScanner::default();
        s.feed(&file[..file.len() - 12]);
        let c = s.finish();
        assert!(!c.complete && c.problem.is_some(), "{c:?}");
    }
}
