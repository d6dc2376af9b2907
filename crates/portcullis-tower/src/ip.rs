//! Trusted proxies and the client address.

use std::net::IpAddr;

use http::HeaderMap;
use portcullis_core::IpNet;

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
    fn forwarded_headers_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
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
