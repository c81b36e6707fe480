//! The egress policy: which hosts a managed pipeline or a registered instance may make the server connect
//! to. It is the operator's setting (`[egress]` in `sluice.toml`), never a caller's: a dba who sends a
//! pipeline spec or registers an instance chooses a destination, and this decides whether the server goes
//! there.
//!
//! Decisions are made on the addresses a name resolves to (so `metadata.google.internal`, a DNS name that
//! points at 169.254.169.254, or `[::ffff:169.254.169.254]` are refused alike), and on the name itself when
//! the operator allows names. Callers resolve (this crate does no I/O) and then ask [`EgressPolicy::check`].

use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

/// Addresses refused unless the operator sets `allow_link_local = true`: IPv4 and IPv6 link-local, where
/// every cloud serves its instance metadata and credentials (AWS, GCP, Azure, Oracle, DigitalOcean at
/// 169.254.169.254, AWS ECS at 169.254.170.2, AWS IPv6 at fd00:ec2::254), and Alibaba's 100.100.100.200.
const METADATA_NETS: &[&str] = &["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32"];

/// A host pattern the operator allows by name: `db.example.com` exactly, or `*.example.com` for any name
/// under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
        let name = t.strip_prefix("*.").unwrap_or(&t);
        let ok = !name.is_empty() && name.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if ok { Ok(Self(t)) } else { Err(format!("`{text}` is neither a CIDR, an address nor a host name (`db.example.com`, `*.example.com`)")) }
    }

    fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.0.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(suffix) && host.as_bytes()[host.len() - suffix.len() - 1] == b'.',
            None => host == self.0,
        }
    }
}

/// `[egress]` of `sluice.toml`, validated.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// When set, only these networks (and hosts named by `allow_hosts`) may be reached.
    pub allow_nets: Option<Vec<IpNet>>,
    pub allow_hosts: Vec<HostPattern>,
    /// Refused whatever `allow` says.
    pub deny_nets: Vec<IpNet>,
    /// Let connections reach link-local and cloud metadata addresses (default false).
    pub allow_link_local: bool,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum EgressDenied {
    #[error("`{host}` resolves to {addr}, a link-local / cloud metadata address, which the egress policy refuses (`[egress] allow_link_local`)")]
    Metadata { host: String, addr: IpAddr },
    #[error("`{host}` resolves to {addr}, which the egress policy refuses (`[egress] deny`)")]
    Denied { host: String, addr: IpAddr },
    #[error("`{host}` ({addr}) is not in the egress policy's allowed hosts and networks (`[egress] allow`)")]
    NotAllowed { host: String, addr: IpAddr },
    #[error("`{host}` did not resolve to any address")]
    NoAddress { host: String },
}

impl EgressPolicy {
    /// Builds the policy from the `allow` and `deny` lists of `sluice.toml`; an entry that is neither a
    /// CIDR, an address nor a host name is an error naming it (with its index).
    pub fn from_lists(allow: Option<&[String]>, deny: &[String], allow_link_local: bool) -> Result<Self, (String, String)> {
        let mut policy = Self { allow_link_local, ..Self::default() };
        if let Some(list) = allow {
            let mut nets = Vec::new();
            for (i, entry) in list.iter().enumerate() {
                match parse_net(entry) {
                    Some(n) => nets.push(n),
                    None => policy.allow_hosts.push(HostPattern::parse(entry).map_err(|e| (format!("allow[{i}]"), e))?),
                }
            }
            policy.allow_nets = Some(nets);
        }
        for (i, entry) in deny.iter().enumerate() {
            policy.deny_nets.push(parse_net(entry).ok_or_else(|| (format!("deny[{i}]"), format!("`{entry}` is not a CIDR or an address")))?);
        }
        Ok(policy)
    }

    /// May the server connect to `host`, which resolved to `addrs`? Every address must pass: a name that
    /// resolves to one allowed and one refused address is refused (the connection could take either).
    pub fn check(&self, host: &str, addrs: &[IpAddr]) -> Result<(), EgressDenied> {
        if addrs.is_empty() {
            return Err(EgressDenied::NoAddress { host: host.to_string() });
        }
        let host_allowed = self.allow_hosts.iter().any(|p| p.matches(host));
        for &raw in addrs {
            let addr = canonical(raw);
            let denied = |what: fn(String, IpAddr) -> EgressDenied| Err(what(host.to_string(), addr));
            if !self.allow_link_local && METADATA_NETS.iter().any(|n| n.parse::<IpNet>().is_ok_and(|n| n.contains(&addr))) {
                return denied(|host, addr| EgressDenied::Metadata { host, addr });
            }
            if self.deny_nets.iter().any(|n| n.contains(&addr)) {
                return denied(|host, addr| EgressDenied::Denied { host, addr });
            }
            if let Some(nets) = &self.allow_nets
                && !host_allowed
                && !nets.iter().any(|n| n.contains(&addr))
            {
                return denied(|host, addr| EgressDenied::NotAllowed { host, addr });
            }
        }
        Ok(())
    }
}

/// `10.0.0.0/8`, `192.168.1.5` (a single address), `fd00::/8`.
fn parse_net(text: &str) -> Option<IpNet> {
    let t = text.trim();
    t.parse::<IpNet>().ok().or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address: the kernel connects to it.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn metadata_addresses_are_refused_by_default_in_every_spelling() {
        let p = EgressPolicy::default();
        for a in ["169.254.169.254", "169.254.170.2", "::ffff:169.254.169.254", "fd00:ec2::254", "fe80::1", "100.100.100.200"] {
            assert!(matches!(p.check("h", &[ip(a)]), Err(EgressDenied::Metadata { .. })), "{a}");
        }
        assert!(p.check("h", &[ip("127.0.0.1"), ip("10.1.2.3")]).is_ok());
        let open = EgressPolicy { allow_link_local: true, ..EgressPolicy::default() };
        assert!(open.check("h", &[ip("169.254.169.254")]).is_ok());
    }

    #[test]
    fn allow_lists_take_networks_addresses_and_names() {
        let allow = ["10.0.0.0/8".to_string(), "192.168.1.5".into(), "*.corp.example".into(), "db.example.com".into()];
        let p = EgressPolicy::from_lists(Some(&allow), &["10.9.0.0/16".to_string()], false).unwrap();
        assert!(p.check("x", &[ip("10.1.1.1")]).is_ok());
        assert!(p.check("x", &[ip("192.168.1.5")]).is_ok());
        assert!(matches!(p.check("x", &[ip("192.168.1.6")]), Err(EgressDenied::NotAllowed { .. })));
        assert!(matches!(p.check("x", &[ip("10.9.1.1")]), Err(EgressDenied::Denied { .. })), "deny wins over allow");
        assert!(p.check("a.corp.example", &[ip("8.8.8.8")]).is_ok());
        assert!(p.check("DB.example.com.", &[ip("8.8.8.8")]).is_ok());
        assert!(p.check("corp.example", &[ip("8.8.8.8")]).is_err(), "*.x does not match x itself");
        assert!(p.check("evilcorp.example", &[ip("8.8.8.8")]).is_err());
        assert!(p.check("a.corp.example", &[ip("169.254.169.254")]).is_err(), "an allowed name still may not reach metadata");
        assert!(p.check("x", &[ip("10.1.1.1"), ip("8.8.8.8")]).is_err(), "every address must pass");
        assert!(matches!(p.check("x", &[]), Err(EgressDenied::NoAddress { .. })));
    }

    #[test]
    fn bad_entries_name_their_index() {
        assert_eq!(EgressPolicy::from_lists(Some(&["10.0.0.0/8".into(), "a b".into()]), &[], false).unwrap_err().0, "allow[1]");
        assert_eq!(EgressPolicy::from_lists(None, &["nope".into()], false).unwrap_err().0, "deny[0]");
    }
}
