//! Strict parsing of a compact JWS (RFC 7515 §7.1) carrying a JWT claims set.
//!
//! Everything here happens before any key is touched, and nothing here trusts the token:
//! the size is capped before decoding, base64url must be canonical, header and claims must be
//! single JSON objects without duplicate members, and header parameters Portcullis does not
//! implement (`crit`, `b64`, JWE's `enc`/`zip`, nested `cty: JWT`) are refused.

use crate::algorithm::Algorithm;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use std::borrow::Cow;
use std::fmt;
use std::hash::BuildHasher as _;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::error::JwtError;

use crate::json::{ClaimsSet, RawHeader};

/// Longest `kid` accepted (a lookup key, not a place for payloads).
pub(crate) const MAX_KID_LEN: usize = 256;

/// The protected header parameters Portcullis acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JoseHeader {
    /// The algorithm the token claims; checked against the key's own algorithm.
    pub alg: Algorithm,
    /// The key id, looked up exactly.
    pub kid: Option<String>,
    /// The media type (`JWT`, `at+jwt`, ...), as sent.
    pub typ: Option<String>,
    /// Whether the header carried `jku`, `x5u`, `jwk` or `x5c`. They are never fetched or used.
    pub carries_key_reference: bool,
}

fn decode_segment(segment: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    if segment.is_empty() {
        return Err(JwtError::Malformed(what));
    }
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwtError::Malformed(what))
}

/// A compact JWS whose payload is not (necessarily) a claims set.
#[derive(Debug)]
pub(crate) struct RawToken<'a> {
    pub(crate) signing_input: &'a [u8],
    pub(crate) header: JoseHeader,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

/// Parses a JWT claims set: one JSON object with unique members. A payload that is itself a
/// token is reported as nested.
pub(crate) fn parse_claims(payload: &[u8]) -> Result<ClaimsSet<'_>, JwtError> {
    ClaimsSet::parse(payload).map_err(|_| {
        if payload.starts_with(b"eyJ") || payload.starts_with(b"\"eyJ") {
            JwtError::Nested
        } else {
            JwtError::Malformed("claims are not one JSON object with unique members")
        }
    })
}

/// The three segments of a compact JWS, not decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segments<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, the signed bytes.
    pub(crate) signing_input: &'a [u8],
}

/// Splits a compact token of at most `max_len` bytes (checked first, before anything else).
pub(crate) fn split_compact(token: &str, max_len: usize) -> Result<Segments<'_>, JwtError> {
    if token.len() > max_len {
        return Err(JwtError::TooLarge);
    }
    let mut parts = token.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(if token.bytes().filter(|b| *b == b'.').count() == 4 {
            JwtError::Malformed("JWE (five segments) is not a signed token")
        } else {
            JwtError::Malformed("a compact JWS has exactly three segments")
        });
    };
    if header.is_empty() {
        return Err(JwtError::Malformed("header is empty"));
    }
    if signature.is_empty() {
        return Err(JwtError::Malformed("signature is empty"));
    }
    let signing_input = token
        .as_bytes()
        .get(..header.len() + 1 + payload.len())
        .ok_or(JwtError::Malformed("segments"))?;
    Ok(Segments {
        header,
        payload,
        signature,
        signing_input,
    })
}

/// The checked header, borrowing from the decoded header bytes.
#[derive(Debug)]
pub(crate) struct HeaderRef<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
    pub(crate) carries_key_reference: bool,
}

impl HeaderRef<'_> {
    pub(crate) fn into_owned(self) -> JoseHeader {
        JoseHeader {
            alg: self.alg,
            kid: self.kid.map(Cow::into_owned),
            typ: self.typ.map(Cow::into_owned),
            carries_key_reference: self.carries_key_reference,
        }
    }
}

/// Decodes a segment into `stack` when it fits (no allocation, and only a small buffer to
/// initialise), else into `heap`.
pub(crate) fn decode_into<'b>(
    segment: &str,
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
    what: &'static str,
) -> Result<&'b [u8], JwtError> {
    if segment.len() / 4 * 3 + 3 <= stack.len() {
        let length = URL_SAFE_NO_PAD
            .decode_slice(segment, &mut *stack)
            .map_err(|_| JwtError::Malformed(what))?;
        stack.get(..length).ok_or(JwtError::Malformed(what))
    } else {
        *heap = URL_SAFE_NO_PAD
            .decode(segment)
            .map_err(|_| JwtError::Malformed(what))?;
        Ok(heap.as_slice())
    }
}

/// Decodes the protected header (using `stack` or `heap`) and checks it.
pub(crate) fn decode_header_in<'b>(
    segment: &str,
    stack: &'b mut [u8],
    heap: &'b mut Vec<u8>,
) -> Result<HeaderRef<'b>, JwtError> {
    let bytes = decode_into(segment, stack, heap, "header is not base64url")?;
    let header = RawHeader::parse(bytes)
        .map_err(|_| JwtError::Malformed("header is not one JSON object with unique members"))?;
    check_header(header)
}

/// Decodes and checks the protected header.
pub(crate) fn decode_header(segment: &str) -> Result<JoseHeader, JwtError> {
    let mut stack = [0u8; 512];
    let mut heap = Vec::new();
    decode_header_in(segment, &mut stack, &mut heap).map(HeaderRef::into_owned)
}

/// Splits a compact JWS and checks its header; the payload is returned as bytes.
pub(crate) fn parse_compact_raw(token: &str, max_len: usize) -> Result<RawToken<'_>, JwtError> {
    let segments = split_compact(token, max_len)?;
    let header = decode_header(segments.header)?;
    // An empty payload is a valid JWS (it is not a valid JWT, which the claims parser refuses).
    let payload = URL_SAFE_NO_PAD
        .decode(segments.payload)
        .map_err(|_| JwtError::Malformed("payload is not base64url"))?;
    let signature = decode_segment(segments.signature, "signature is not base64url")?;
    Ok(RawToken {
        signing_input: segments.signing_input,
        header,
        payload,
        signature,
    })
}

/// The header rules, in a fixed order.
fn check_header(header: RawHeader<'_>) -> Result<HeaderRef<'_>, JwtError> {
    // RFC 7515 §4.1.11: a recipient must reject `crit` naming anything it does not implement;
    // Portcullis implements no extension, and an empty or ill-typed `crit` is invalid in
    // itself.
    if header.crit {
        return Err(JwtError::CriticalHeader);
    }
    if header.b64 {
        return Err(JwtError::ForbiddenHeader("b64"));
    }
    if header.enc {
        return Err(JwtError::ForbiddenHeader("enc"));
    }
    if header.zip {
        return Err(JwtError::ForbiddenHeader("zip"));
    }
    let alg = header
        .alg
        .ok_or(JwtError::Malformed("alg is missing"))?
        .parse::<Algorithm>()?;
    if header
        .cty
        .is_some_and(|cty| cty.eq_ignore_ascii_case("JWT"))
    {
        return Err(JwtError::Nested);
    }
    if header
        .kid
        .as_ref()
        .is_some_and(|kid| kid.len() > MAX_KID_LEN)
    {
        return Err(JwtError::Malformed("kid is too long"));
    }
    Ok(HeaderRef {
        alg,
        kid: header.kid,
        typ: header.typ,
        carries_key_reference: header.key_reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.c2ln", b64(header), b64(claims))
    }

    #[test]
    fn a_well_formed_token_parses() {
        let t = token(
            r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#,
            r#"{"sub":"a"}"#,
        );
        let parsed = parse_compact_raw(&t, 8192).unwrap();
        assert!(parse_claims(&parsed.payload).is_ok());
        assert_eq!(parsed.header.alg, Algorithm::HS256);
        assert_eq!(parsed.header.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.signature, b"sig");
    }

    #[test]
    fn structural_problems_are_errors() {
        for bad in ["", ".", "..", "a.b", "a.b.c.d", "a.b.c.d.e", " a.b.c"] {
            assert!(parse_compact_raw(bad, 8192).is_err(), "{bad:?}");
        }
        let t = token(r#"{"alg":"HS256"}"#, r#"{"sub":"a"}"#);
        assert!(matches!(parse_compact_raw(&t, 10), Err(JwtError::TooLarge)));
    }

    #[test]
    fn refused_headers() {
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"NONE"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"ES512"}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
            r#"{"alg":"HS256","enc":"A128GCM"}"#,
            r#"{"alg":"HS256","zip":"DEF"}"#,
            r#"{"alg":"HS256","cty":"JWT"}"#,
            r#"{"alg":"HS256","kid":7}"#,
            r#"{"alg":"HS256","alg":"HS256"}"#,
        ] {
            assert!(
                parse_compact_raw(&token(header, "{}"), 8192).is_err(),
                "{header}"
            );
        }
    }
}

/// A verified JWS: its header and payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedJws {
    /// The protected header.
    pub header: JoseHeader,
    /// The payload, as signed.
    pub payload: Vec<u8>,
}

/// Verifies a compact JWS whose payload is any bytes (not necessarily a JWT), with the same
/// header rules and key binding as [`crate::JwtAuthenticator`]: the key is found by exact
/// `kid` and must be bound to the header's `alg`.
pub fn verify_compact_jws(
    token: &str,
    keys: &crate::KeySet,
    max_len: usize,
) -> Result<VerifiedJws, JwtError> {
    let raw = parse_compact_raw(token, max_len)?;
    let key = keys.find(raw.header.kid.as_deref(), raw.header.alg)?;
    key.verify(raw.header.alg, raw.signing_input, &raw.signature)?;
    Ok(VerifiedJws {
        header: raw.header,
        payload: raw.payload,
    })
}

/// Slots of a [`HeaderCache`] (a power of two).
const HEADER_CACHE_SLOTS: usize = 16;

/// Longest encoded header a [`HeaderCache`] keeps.
const MAX_CACHED_HEADER_LEN: usize = 512;

/// A checked header, owned, with the exact segment it was decoded from.
#[derive(Debug)]
struct CachedHeader {
    segment: Box<str>,
    alg: Algorithm,
    kid: Option<Box<str>>,
    typ: Option<Box<str>>,
    carries_key_reference: bool,
}

/// The checked headers of recently verified tokens, by their exact encoded segment.
///
/// The tokens of one issuer usually share a handful of headers (one per signing key), and
/// decoding and checking a header is a pure function of its encoded bytes, so a verifier
/// remembers the result instead of doing it again. Only headers of tokens that verified are
/// stored (a forger cannot fill the cache), a slot is chosen by hashing the segment, and a
/// lookup compares the whole segment byte for byte.
pub(crate) struct HeaderCache {
    slots: [ArcSwapOption<CachedHeader>; HEADER_CACHE_SLOTS],
    hasher: foldhash::fast::RandomState,
}

impl fmt::Debug for HeaderCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let used = self.slots.iter().filter(|s| s.load().is_some()).count();
        f.debug_struct("HeaderCache").field("used", &used).finish()
    }
}

impl Default for HeaderCache {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| ArcSwapOption::empty()),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

/// A cache slot as loaded: holds the entry alive while the header borrows from it.
pub(crate) struct HeaderSlot(arc_swap::Guard<Option<Arc<CachedHeader>>>);

impl HeaderSlot {
    /// The header when the slot holds exactly `segment`.
    pub(crate) fn header(&self, segment: &str) -> Option<HeaderRef<'_>> {
        let cached = self.0.as_ref()?;
        (*cached.segment == *segment).then(|| HeaderRef {
            alg: cached.alg,
            kid: cached.kid.as_deref().map(Cow::Borrowed),
            typ: cached.typ.as_deref().map(Cow::Borrowed),
            carries_key_reference: cached.carries_key_reference,
        })
    }
}

impl HeaderCache {
    fn index(&self, segment: &str) -> usize {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "only the low bits pick a slot"
        )]
        let hash = self.hasher.hash_one(segment) as usize;
        hash & (HEADER_CACHE_SLOTS - 1)
    }

    /// Loads the slot `segment` would be in.
    pub(crate) fn slot(&self, segment: &str) -> Option<HeaderSlot> {
        let slot = self.slots.get(self.index(segment))?;
        Some(HeaderSlot(slot.load()))
    }

    /// Remembers the checked header of a token that verified.
    pub(crate) fn remember(&self, segment: &str, header: &HeaderRef<'_>) {
        if segment.len() > MAX_CACHED_HEADER_LEN {
            return;
        }
        let Some(slot) = self.slots.get(self.index(segment)) else {
            return;
        };
        slot.store(Some(Arc::new(CachedHeader {
            segment: segment.into(),
            alg: header.alg,
            kid: header.kid.as_deref().map(Box::from),
            typ: header.typ.as_deref().map(Box::from),
            carries_key_reference: header.carries_key_reference,
        })));
    }
}
