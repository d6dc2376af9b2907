//! Trusted proxies and the client address.

use std::net::IpAddr;

use http::HeaderMap;

/// An IP network in CIDR notation (`10.0.0.0/8`, `::1/128`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A string that is not an IP network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidIpNet(pub String);

impl std::fmt::Display for InvalidIpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not an IP network: {:?}", self.0)
    }
}

impl std::error::Error for InvalidIpNet {}

impl std::str::FromStr for IpNet {
    type Err = InvalidIpNet;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidIpNet(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` is inside the network.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` (or `Forwarded: for=`) entry that is not itself a trusted
/// proxy. Headers from untrusted peers are ignored.
#[must_use]
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("forwarded") {
        let Ok(value) = value.to_str() else {
            return Some(peer);
        };
        for element in value.split(',') {
            for pair in element.split(';') {
                if let Some((key, v)) = pair.trim().split_once('=')
                    && key.eq_ignore_ascii_case("for")
                {
                    let v = v.trim_matches('"');
                    let v = v
                        .strip_prefix('[')
                        .and_then(|r| r.split_once(']'))
                        .map_or(v, |(a, _)| a);
                    let v = if v.matches(':').count() == 1 {
                        v.split(':').next().unwrap_or(v)
                    } else {
                        v
                    };
                    if let Ok(ip) = v.parse() {
                        hops.push(ip);
                    }
                }
            }
        }
    }
    if hops.is_empty() {
        for value in headers.get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else {
                return Some(peer);
            };
            hops.extend(
                value
                    .split(',')
                    .filter_map(|h| h.trim().parse::<IpAddr>().ok()),
            );
        }
    }
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !is_trusted(*ip))
            .unwrap_or(peer),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy = Some("10.0.0.1".parse().unwrap());
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
        let stranger = Some("198.51.100.7".parse().unwrap());
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        let mut forwarded = HeaderMap::new();
        forwarded.insert(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\""
                .parse()
                .unwrap(),
        );
        assert_eq!(
            client_ip(proxy, &forwarded, &trusted),
            Some("2001:db8::1".parse().unwrap())
        );
    }
}
