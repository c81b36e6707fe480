//! Where a source restarts: the position right after a committed transaction, typed per kind of source and
//! ordered where the kind allows. Checkpoints store it (the pipeline's own, and a sink's in its target's
//! transaction); a sink compares a batch's position with the one its target holds to skip what it already
//! applied.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A resume position. JSON: `{"kind": "binlog", "file", "pos", "gtid"}` or `{"kind": "lsn", "lsn", "lsn_text"}`.
/// Checkpoints written before the `kind` field existed read as well (an `lsn` key means PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResumePosition {
    Binlog(BinlogPosition),
    Lsn(LsnPosition),
}

impl<'de> Deserialize<'de> for ResumePosition {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        enum Tagged {
            Binlog(BinlogPosition),
            Lsn(LsnPosition),
        }
        let v = serde_json::Value::deserialize(d)?;
        let e = |e: serde_json::Error| serde::de::Error::custom(format!("not a resume position: {e}"));
        if v.get("kind").is_some() {
            return Ok(match serde_json::from_value::<Tagged>(v).map_err(e)? {
                Tagged::Binlog(b) => ResumePosition::Binlog(b),
                Tagged::Lsn(l) => ResumePosition::Lsn(l),
            });
        }
        if v.get("lsn").is_some() {
            serde_json::from_value(v).map(ResumePosition::Lsn).map_err(e)
        } else {
            serde_json::from_value(v).map(ResumePosition::Binlog).map_err(e)
        }
    }
}

impl PartialOrd for ResumePosition {
    /// `None` when the two cannot be ordered: different kinds of source, binlog files of different names,
    /// or GTID states where each is ahead in some domain.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self, other) {
            (ResumePosition::Lsn(a), ResumePosition::Lsn(b)) => Some(a.lsn.cmp(&b.lsn)),
            (ResumePosition::Binlog(a), ResumePosition::Binlog(b)) => a.partial_cmp(b),
            _ => None,
        }
    }
}

impl fmt::Display for ResumePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResumePosition::Binlog(b) if !b.gtid.is_empty() => write!(f, "GTID {} ({}:{})", b.gtid, b.file, b.pos),
            ResumePosition::Binlog(b) => write!(f, "{}:{}", b.file, b.pos),
            ResumePosition::Lsn(l) => write!(f, "LSN {}", Lsn(l.lsn)),
        }
    }
}

/// MySQL/MariaDB: right after a committed transaction. On MariaDB the GTID state is authoritative when
/// present (it survives binlog rotation and purging); the file and offset are kept for MySQL and people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
    /// MariaDB GTID state: every domain's last GTID (`0-1-1042,1-2-7`), or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gtid: String,
}

impl PartialOrd for BinlogPosition {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if !self.gtid.is_empty() && !other.gtid.is_empty() {
            return GtidState::parse(&self.gtid)?.partial_cmp(&GtidState::parse(&other.gtid)?);
        }
        let (a, b) = (binlog_file_number(&self.file)?, binlog_file_number(&other.file)?);
        if a.0 != b.0 {
            return None;
        }
        Some((a.1, self.pos).cmp(&(b.1, other.pos)))
    }
}

/// `mysql-bin.000042` → (`mysql-bin`, 42): numbered files sort by number (the width grows past 999999).
fn binlog_file_number(file: &str) -> Option<(&str, u64)> {
    let (stem, n) = file.rsplit_once('.')?;
    Some((stem, n.parse().ok()?))
}

/// PostgreSQL: the commit LSN right after a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "LsnJson", into = "LsnJson")]
pub struct LsnPosition {
    pub lsn: u64,
}

/// The stored form: the number, and its `X/Y` text for people.
#[derive(Serialize, Deserialize)]
struct LsnJson {
    lsn: u64,
    #[serde(default, skip_deserializing)]
    lsn_text: String,
}

impl From<LsnJson> for LsnPosition {
    fn from(j: LsnJson) -> Self {
        Self { lsn: j.lsn }
    }
}

impl From<LsnPosition> for LsnJson {
    fn from(p: LsnPosition) -> Self {
        Self { lsn: p.lsn, lsn_text: Lsn(p.lsn).to_string() }
    }
}

/// An LSN written as PostgreSQL writes it (`16/B374D848`).
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// MariaDB's GTID state: domain → (server id, sequence).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidState(BTreeMap<u32, (u32, u64)>);

impl GtidState {
    pub fn parse(text: &str) -> Option<Self> {
        let mut m = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let (d, s, n) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
            if it.next().is_some() {
                return None;
            }
            m.insert(d, (s, n));
        }
        Some(Self(m))
    }

    pub fn set(&mut self, domain: u32, server: u32, seq: u64) {
        self.0.insert(domain, (server, seq));
    }

    pub fn render(&self) -> String {
        self.0.iter().map(|(d, (s, n))| format!("{d}-{s}-{n}")).collect::<Vec<_>>().join(",")
    }
}

impl PartialOrd for GtidState {
    /// Sequence numbers compared domain by domain (a domain one state lacks counts as 0).
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let mut result = Ordering::Equal;
        for d in self.0.keys().chain(other.0.keys()) {
            let a = self.0.get(d).map_or(0, |x| x.1);
            let b = other.0.get(d).map_or(0, |x| x.1);
            match (result, a.cmp(&b)) {
                (_, Ordering::Equal) => {}
                (Ordering::Equal, o) => result = o,
                (r, o) if r == o => {}
                _ => return None,
            }
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binlog(file: &str, pos: u64, gtid: &str) -> ResumePosition {
        ResumePosition::Binlog(BinlogPosition { file: file.into(), pos, gtid: gtid.into() })
    }

    #[test]
    fn gtid_state_round_trips() {
        let mut g = GtidState::parse("0-1-5, 2-3-9").unwrap();
        g.set(0, 1, 6);
        assert_eq!(g.render(), "0-1-6,2-3-9");
        assert!(GtidState::parse("0-1").is_none());
        assert!(GtidState::parse("").unwrap().render().is_empty());
    }

    #[test]
    fn positions_order_where_they_can() {
        assert!(binlog("b.000009", 900, "") < binlog("b.000010", 4, ""));
        assert!(binlog("b.999999", 4, "") < binlog("b.1000000", 4, ""));
        assert_eq!(binlog("a.000001", 4, "").partial_cmp(&binlog("b.000001", 4, "")), None);
        assert!(binlog("", 0, "0-1-5,1-1-3") < binlog("", 0, "0-1-6,1-1-3"));
        assert_eq!(binlog("", 0, "0-1-5,1-1-3").partial_cmp(&binlog("", 0, "0-1-6,1-1-2")), None);
        assert!(binlog("", 0, "0-1-5") < binlog("", 0, "0-1-5,1-1-1"));
        let lsn = |n| ResumePosition::Lsn(LsnPosition { lsn: n });
        assert!(lsn(5) < lsn(6));
        assert_eq!(lsn(5).partial_cmp(&binlog("b.000001", 4, "")), None);
    }

    #[test]
    fn json_forms_new_and_old() {
        let p = ResumePosition::Lsn(LsnPosition { lsn: (0x16 << 32) | 0xB374D848 });
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(text, r#"{"kind":"lsn","lsn":97500059720,"lsn_text":"16/B374D848"}"#);
        assert_eq!(serde_json::from_str::<ResumePosition>(&text).unwrap(), p);
        let old: ResumePosition = serde_json::from_str(r#"{"lsn": 42, "lsn_text": "0/2A"}"#).unwrap();
        assert_eq!(old, ResumePosition::Lsn(LsnPosition { lsn: 42 }));
        let old: ResumePosition = serde_json::from_str(r#"{"file": "b.000001", "pos": 4, "gtid": "0-1-5"}"#).unwrap();
        assert_eq!(old, binlog("b.000001", 4, "0-1-5"));
        assert_eq!(serde_json::to_value(&old).unwrap()["kind"], "binlog");
        assert!(serde_json::from_str::<ResumePosition>(r#"{"kind": "tape"}"#).is_err());
    }
}
