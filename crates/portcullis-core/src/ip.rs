//! [`IpNet`]: one IP network type for every part of the stack (trusted proxies, the RBAC
//! `source_ips` condition, the proxies allowed to forward client certificates).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or a single address
/// (`127.0.0.1`, the same as `/32`).
///
/// One meaning everywhere:
/// * host bits must be zero (`10.0.0.1/8` is refused: it is a typo for a host or a network);
/// * an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack socket reports for an
///   IPv4 client) is the IPv4 address, both as an address to match and as a network to parse
///   (`::ffff:10.0.0.0/104` is `10.0.0.0/8`);
/// * an IPv4 address never matches an IPv6 network, and the reverse.
///
/// ```
/// use portcullis_core::IpNet;
///
/// let net: IpNet = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.1.2.3".parse()?));
/// assert!(net.contains("::ffff:10.1.2.3".parse()?));
/// assert!(!net.contains("11.0.0.1".parse()?));
/// assert!("10.0.0.1/8".parse::<IpNet>().is_err());
/// assert_eq!("127.0.0.1".parse::<IpNet>()?.to_string(), "127.0.0.1/32");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNet {
    /// The network address, canonical (never an IPv4-mapped IPv6 address), host bits zero.
    network: IpAddr,
    prefix: u8,
}

/// A text that is not an IP network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not an IP network ({why})")]
pub struct InvalidIpNet {
    text: String,
    why: &'static str,
}

impl InvalidIpNet {
    /// The text that was refused.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The `prefix` leading bits of an address of `width` bits.
fn masked(value: u128, width: u8, prefix: u8) -> u128 {
    let host_bits = u32::from(width - prefix);
    let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    let mask = if width == 32 {
        mask & u128::from(u32::MAX)
    } else {
        mask
    };
    value & mask
}

impl IpNet {
    /// The network of one address (`/32` or `/128`).
    #[must_use]
    pub fn host(ip: IpAddr) -> Self {
        let network = ip.to_canonical();
        Self {
            network,
            prefix: width(network),
        }
    }

    /// The network address.
    #[must_use]
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    #[must_use]
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address as its IPv4 address).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4()
            && masked(bits(ip), width(ip), self.prefix) == bits(self.network)
    }
}

impl FromStr for IpNet {
    type Err = InvalidIpNet;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refuse = |why| InvalidIpNet {
            text: text.to_owned(),
            why,
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => {
                if prefix.is_empty()
                    || prefix.len() > 3
                    || !prefix.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(refuse("the prefix length is not a number"));
                }
                (
                    addr,
                    Some(
                        prefix
                            .parse::<u8>()
                            .map_err(|_| refuse("prefix too long"))?,
                    ),
                )
            }
            None => (text, None),
        };
        let written: IpAddr = addr.parse().map_err(|_| refuse("not an address"))?;
        let prefix = prefix.unwrap_or(width(written));
        if prefix > width(written) {
            return Err(refuse("the prefix is longer than the address"));
        }
        // An IPv4-mapped IPv6 network is the IPv4 network.
        let (network, prefix) = match written {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                if prefix < 96 {
                    return Err(refuse(
                        "an IPv4-mapped network needs a prefix of at least 96",
                    ));
                }
                (written.to_canonical(), prefix - 96)
            }
            _ => (written, prefix),
        };
        if masked(bits(network), width(network), prefix) != bits(network) {
            return Err(refuse("host bits are set"));
        }
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl From<IpAddr> for IpNet {
    fn from(ip: IpAddr) -> Self {
        Self::host(ip)
    }
}

impl<'de> serde::Deserialize<'de> for IpNet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_meaning() {
        let ten = net("10.0.0.0/8");
        assert!(ten.contains(ip("10.255.0.1")));
        assert!(ten.contains(ip("::ffff:10.0.0.1")));
        assert!(!ten.contains(ip("11.0.0.0")));
        assert!(
            !ten.contains(ip("::a00:1")),
            "an IPv4-compatible (not mapped) address"
        );
        let host = net("127.0.0.1");
        assert_eq!(host, net("127.0.0.1/32"));
        assert!(host.contains(ip("::ffff:127.0.0.1")));
        assert!(!host.contains(ip("127.0.0.2")));
        assert_eq!(net("::ffff:127.0.0.1"), host);
        assert_eq!(net("::ffff:10.0.0.0/104"), ten);
        let v6 = net("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        assert!(!net("::/0").contains(ip("10.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("::ffff:8.8.8.8")));
        assert!(!net("0.0.0.0/0").contains(ip("2001:db8::1")));
        assert_eq!(IpNet::host(ip("::ffff:1.2.3.4")).to_string(), "1.2.3.4/32");
    }

    #[test]
    fn refused() {
        for text in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/08x",
            "10.0.0.0/0008",
            "2001:db8::1/32",
            "::ffff:10.0.0.0/95",
            "example.com",
            "",
            "10.0.0",
        ] {
            assert!(text.parse::<IpNet>().is_err(), "{text}");
        }
    }

    #[test]
    fn round_trips_through_text() {
        for text in [
            "10.0.0.0/8",
            "192.168.1.7/32",
            "2001:db8::/32",
            "::1/128",
            "0.0.0.0/0",
        ] {
            assert_eq!(net(text).to_string(), text);
        }
    }
}
