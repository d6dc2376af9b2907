//! The identity a certificate proves, read from parsed X.509 fields (never from a DN string).

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::error::MtlsError;

/// Where the principal's id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySource {
    /// The subject's single common name (AmateRS `verify_cn`).
    CommonName,
    /// The single `rfc822Name` SAN.
    SanEmail,
    /// The single `dNSName` SAN.
    SanDns,
    /// The single URI SAN.
    SanUri,
    /// A SPIFFE ID: exactly one URI SAN, `spiffe://trust-domain/path`, in the given trust
    /// domain when one is set.
    Spiffe {
        /// The trust domain required (`None`: any).
        trust_domain: Option<String>,
    },
}

/// A parsed SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpiffeId {
    /// The trust domain.
    pub trust_domain: String,
    /// The path (with its leading `/`).
    pub path: String,
}

impl SpiffeId {
    /// Parses `spiffe://trust-domain/path` per the SPIFFE ID specification: lowercase trust
    /// domain of letters, digits, `.`, `-`, `_`; non-empty path segments of letters, digits,
    /// `.`, `-`, `_` that are not `.` or `..`; no query, fragment, port or user info.
    pub fn parse(uri: &str) -> Result<Self, MtlsError> {
        let bad = |why: &str| MtlsError::Identity(format!("invalid SPIFFE ID: {why}"));
        let rest = uri.strip_prefix("spiffe://").ok_or_else(|| bad("scheme"))?;
        let (domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let domain_ok = !domain.is_empty()
            && domain.len() <= 255
            && domain.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
            });
        if !domain_ok {
            return Err(bad("trust domain"));
        }
        if path.is_empty() {
            return Err(bad("a workload ID needs a path"));
        }
        for segment in path.split('/').skip(1) {
            let ok = !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            if !ok {
                return Err(bad("path segment"));
            }
        }
        Ok(Self {
            trust_domain: domain.to_owned(),
            path: path.to_owned(),
        })
    }
}

fn single<'a>(values: Vec<&'a str>, what: &str) -> Result<&'a str, MtlsError> {
    match values.as_slice() {
        [one] => Ok(one),
        [] => Err(MtlsError::Identity(format!("no {what}"))),
        _ => Err(MtlsError::Identity(format!("more than one {what}"))),
    }
}

fn sans<'a>(cert: &'a X509Certificate<'_>) -> Result<Vec<&'a GeneralName<'a>>, MtlsError> {
    match cert.subject_alternative_name() {
        Ok(Some(ext)) => Ok(ext.value.general_names.iter().collect()),
        Ok(None) => Ok(Vec::new()),
        Err(e) => Err(MtlsError::Malformed(format!("subjectAltName: {e}"))),
    }
}

/// The subject attribute values of one type, as UTF-8 strings.
pub(crate) fn attribute_strings<'a>(
    values: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'a>>,
    what: &str,
) -> Result<Vec<&'a str>, MtlsError> {
    values
        .map(|v| {
            v.as_str()
                .map_err(|_| MtlsError::Identity(format!("{what} is not a string")))
        })
        .collect()
}

/// The identity per `source`.
pub(crate) fn identity(
    cert: &X509Certificate<'_>,
    source: &IdentitySource,
) -> Result<String, MtlsError> {
    let value = match source {
        IdentitySource::CommonName => single(
            attribute_strings(cert.subject().iter_common_name(), "common name")?,
            "common name",
        )?,
        IdentitySource::SanEmail => single(
            sans(cert)?
                .into_iter()
                .filter_map(|n| match n {
                    GeneralName::RFC822Name(v) => Some(*v),
                    _ => None,
                })
                .collect(),
            "email SAN",
        )?,
        IdentitySource::SanDns => single(
            sans(cert)?
                .into_iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(v) => Some(*v),
                    _ => None,
                })
                .collect(),
            "DNS SAN",
        )?,
        IdentitySource::SanUri | IdentitySource::Spiffe { .. } => single(
            sans(cert)?
                .into_iter()
                .filter_map(|n| match n {
                    GeneralName::URI(v) => Some(*v),
                    _ => None,
                })
                .collect(),
            "URI SAN",
        )?,
    };
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(MtlsError::Identity("empty or control characters".into()));
    }
    if let IdentitySource::Spiffe { trust_domain } = source {
        let id = SpiffeId::parse(value)?;
        if trust_domain
            .as_ref()
            .is_some_and(|td| *td != id.trust_domain)
        {
            return Err(MtlsError::Identity(
                "SPIFFE trust domain not accepted".into(),
            ));
        }
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids() {
        assert!(SpiffeId::parse("spiffe://example.org/ns/prod/sa/api").is_ok());
        for bad in [
            "spiffe://Example.org/x",
            "spiffe://example.org",
            "spiffe://example.org/",
            "spiffe://example.org//x",
            "spiffe://example.org/../x",
            "spiffe://example.org/x?y",
            "spiffe://user@example.org/x",
            "spiffe://example.org:443/x",
            "https://example.org/x",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad}");
        }
    }
}
