//! The binlog source's resume position: where to restart right after a committed transaction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Stored as the checkpoint (JSON). On MariaDB the GTID state is authoritative when present (it survives
/// binlog rotation and purging of older files); the file and offset are kept for MySQL and for people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
    /// MariaDB GTID state: every domain's last GTID (`0-1-1042,1-2-7`), or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gtid: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_state_round_trips() {
        let mut g = GtidState::parse("0-1-5, 2-3-9").unwrap();
        g.set(0, 1, 6);
        assert_eq!(g.render(), "0-1-6,2-3-9");
        assert!(GtidState::parse("0-1").is_none());
        assert!(GtidState::parse("").unwrap().render().is_empty());
    }
}
