//! Where a key may be used from: an allowlist of networks in CIDR notation (RFC 4632 for IPv4,
//! RFC 4291 section 2.3 for IPv6 prefixes), parsed by the `ipnet` crate.

use std::net::IpAddr;

use ipnet::IpNet;

/// The most networks one key's allowlist holds.
pub const MAX_ALLOWED_IPS: usize = 100;

/// Why an allowlist was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowlistError {
    #[error("at most 100 networks")]
    TooMany,
    #[error("{0:?} is not an IPv4 or IPv6 address or CIDR network (such as 203.0.113.0/24 or 2001:db8::/32)")]
    Malformed(String),
    #[error("{given:?} has bits set past its prefix length: the network is {network}")]
    HostBits { given: String, network: String },
    #[error("{0:?} is listed twice")]
    Repeated(String),
    #[error("{given:?} is an IPv4-mapped IPv6 network: write the IPv4 network ({network})")]
    Mapped { given: String, network: String },
}

/// One network as written: an address as the standard library reads it (no leading zeros, no
/// zone), and an optional `/prefix` in plain decimal (no sign, no leading zero) within the
/// address's length. Taken as sent or refused: nothing is rewritten.
fn network(text: &str) -> Result<IpNet, AllowlistError> {
    let malformed = || AllowlistError::Malformed(crate::text::excerpt(text, 64).into_owned());
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| malformed())?;
    let longest: u8 = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => longest,
        Some(p) if p.is_empty() || p.len() > 3 || (p.len() > 1 && p.starts_with('0')) => {
            return Err(malformed())
        }
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => return Err(malformed()),
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= longest)
            .ok_or_else(malformed)?,
    };
    if let IpAddr::V6(v6) = addr {
        if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
            return Err(AllowlistError::Mapped {
                given: text.to_owned(),
                network: format!("{v4}/{}", prefix - 96),
            });
        }
    }
    IpNet::new(addr, prefix).map_err(|_| malformed())
}

/// A key's allowlist: the networks its callers' addresses must be in. Empty: anywhere.
/// Serializes as the list of networks in canonical CIDR form (`203.0.113.7/32` for an address).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpAllowlist(Vec<IpNet>);

impl serde::Serialize for IpAllowlist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|net| net.to_string()))
    }
}

impl IpAllowlist {
    /// No allowlist: every address is allowed.
    pub fn anywhere() -> Self {
        Self::default()
    }

    /// Parses networks as a caller wrote them: each an address (a network of one) or a network
    /// in CIDR notation with no bits set past its prefix, at most [`MAX_ALLOWED_IPS`], none twice,
    /// no IPv4-mapped IPv6 form (the IPv4 network is written instead).
    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, AllowlistError> {
        if raw.len() > MAX_ALLOWED_IPS {
            return Err(AllowlistError::TooMany);
        }
        let mut nets = Vec::with_capacity(raw.len());
        for text in raw {
            let text = text.as_ref();
            let net = network(text)?;
            if net.trunc() != net {
                return Err(AllowlistError::HostBits {
                    given: text.to_owned(),
                    network: net.trunc().to_string(),
                });
            }
            if nets.contains(&net) {
                return Err(AllowlistError::Repeated(text.to_owned()));
            }
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// Whether no allowlist is set.
    pub fn is_anywhere(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a caller at `ip` may use the key: always without an allowlist; with one, only
    /// from an address inside one of its networks. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is its IPv4 address.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(ip) = ip.map(|ip| ip.to_canonical()) else {
            return false;
        };
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The networks, in canonical CIDR form.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(IpNet::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn boundaries_of_a_network_are_inside_and_their_neighbours_outside() {
        let list =
            IpAllowlist::parse(&["203.0.113.0/24", "2001:db8::/126", "198.51.100.7"]).unwrap();
        for inside in [
            "203.0.113.0",
            "203.0.113.255",
            "2001:db8::",
            "2001:db8::3",
            "198.51.100.7",
            "::ffff:203.0.113.9",
        ] {
            assert!(list.allows(ip(inside)), "{inside}");
        }
        for outside in [
            "203.0.112.255",
            "203.0.114.0",
            "2001:db8::4",
            "198.51.100.8",
            "10.0.0.1",
        ] {
            assert!(!list.allows(ip(outside)), "{outside}");
        }
        assert!(!list.allows(None));
        assert!(IpAllowlist::anywhere().allows(None));
        assert_eq!(list.to_strings()[2], "198.51.100.7/32");
    }

    #[test]
    fn malformed_networks_are_refused() {
        assert!(matches!(
            IpAllowlist::parse(&["10.0.0.1/8"]),
            Err(AllowlistError::HostBits { .. })
        ));
        assert!(matches!(
            IpAllowlist::parse(&["10.0.0.0/33"]),
            Err(AllowlistError::Malformed(_))
        ));
        assert!(matches!(
            IpAllowlist::parse(&["example.com"]),
            Err(AllowlistError::Malformed(_))
        ));
        assert!(matches!(
            IpAllowlist::parse(&["10.0.0.0/8", "10.0.0.0/8"]),
            Err(AllowlistError::Repeated(_))
        ));
        assert!(matches!(
            IpAllowlist::parse(&vec!["10.0.0.0/8"; 101]),
            Err(AllowlistError::TooMany)
        ));
    }
}
