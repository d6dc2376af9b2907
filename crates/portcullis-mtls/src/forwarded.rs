//! Client certificates forwarded by a trusted TLS terminator.
//!
//! nginx forwards `$ssl_client_escaped_cert` (a URL-encoded PEM) in a header of your choice;
//! Envoy forwards `x-forwarded-client-cert` (`Cert="…";Chain="…";…`, URL-encoded PEM). Either
//! is believed **only** when the request comes from a configured proxy address; from anyone
//! else the header is refused and reported as a security violation.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName};
use portcullis_core::{CertificateDer, IpNet, PeerCertificates};
use rustls_pki_types::pem::PemObject;

use crate::error::MtlsError;

/// The header format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardFormat {
    /// nginx: one URL-encoded PEM certificate (`$ssl_client_escaped_cert`).
    Nginx,
    /// Envoy: `x-forwarded-client-cert` with `Cert=` and optionally `Chain=`.
    Envoy,
}

/// Which proxies may forward certificates, and how.
#[derive(Debug, Clone)]
pub struct ForwardedCertificates {
    header: HeaderName,
    format: ForwardFormat,
    proxies: Vec<IpNet>,
    max_bytes: usize,
}

/// What a request's forwarded-certificate header amounts to.
#[derive(Debug)]
#[non_exhaustive]
pub enum Forwarded {
    /// No header.
    Absent,
    /// A chain from a trusted proxy (still to be verified by the authenticator).
    Certificates(PeerCertificates),
    /// A header from an address that is not a trusted proxy: ignore it and record a
    /// security violation.
    Untrusted,
}

impl ForwardedCertificates {
    /// nginx with the header `header` (for example `x-ssl-client-cert`), believed from the
    /// `proxies` networks (a single address is a `/32` or `/128` network).
    #[must_use]
    pub fn nginx(header: HeaderName, proxies: Vec<IpNet>) -> Self {
        Self {
            header,
            format: ForwardFormat::Nginx,
            proxies,
            max_bytes: 64 * 1024,
        }
    }

    /// Envoy's `x-forwarded-client-cert`, believed from the `proxies` networks.
    #[must_use]
    pub fn envoy(proxies: Vec<IpNet>) -> Self {
        Self {
            header: HeaderName::from_static("x-forwarded-client-cert"),
            format: ForwardFormat::Envoy,
            proxies,
            max_bytes: 64 * 1024,
        }
    }

    /// The header name.
    #[must_use]
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    /// Reads the header of a request that arrived from `peer`.
    pub fn extract(
        &self,
        headers: &HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Forwarded, MtlsError> {
        let mut values = headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return Ok(Forwarded::Absent);
        };
        // `IpNet` matches an IPv4 proxy seen as its IPv4-mapped IPv6 address too.
        let trusted = peer.is_some_and(|ip| self.proxies.iter().any(|net| net.contains(ip)));
        if !trusted {
            return Ok(Forwarded::Untrusted);
        }
        if values.next().is_some() {
            return Err(MtlsError::Malformed(
                "more than one forwarded certificate header".into(),
            ));
        }
        if value.len() > self.max_bytes {
            return Err(MtlsError::ChainBounds("forwarded header too large"));
        }
        let value = value
            .to_str()
            .map_err(|_| MtlsError::Malformed("forwarded header is not ASCII".into()))?;
        let pem = match self.format {
            ForwardFormat::Nginx => percent_decode(value)?,
            ForwardFormat::Envoy => envoy_pem(value)?,
        };
        let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| MtlsError::Malformed(format!("forwarded PEM: {e:?}")))?;
        if chain.is_empty() {
            return Err(MtlsError::Malformed(
                "no certificate in the forwarded header".into(),
            ));
        }
        Ok(Forwarded::Certificates(PeerCertificates::new(chain)))
    }
}

/// `%XX` decoding (no `+` → space: these are PEM bodies).
pub fn percent_decode(value: &str) -> Result<String, MtlsError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| MtlsError::Malformed("bad percent-encoding".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| MtlsError::Malformed("forwarded PEM is not UTF-8".into()))
}

/// The PEM of the last element of an XFCC header (the one the nearest proxy, which is the
/// trusted one, added): `Chain=` when present, else `Cert=`.
///
/// Envoy separates elements with `,` and pairs with `;`; a value may be double-quoted, and a
/// quoted value (a `Subject` such as `"CN=a,O=b"`) may contain those separators and quotes
/// escaped with a backslash (`"CN=\"quoted\""`).
fn envoy_pem(value: &str) -> Result<String, MtlsError> {
    let elements = split_unquoted(value, ',')?;
    let element = elements.last().copied().unwrap_or("");
    let mut cert = None;
    let mut chain = None;
    for pair in split_unquoted(element, ';')? {
        let Some((key, raw)) = pair.split_once('=') else {
            continue;
        };
        let raw = unquote(raw.trim())?;
        match key.trim().to_ascii_lowercase().as_str() {
            "cert" => cert = Some(raw),
            "chain" => chain = Some(raw),
            _ => {}
        }
    }
    let encoded = chain
        .or(cert)
        .ok_or_else(|| MtlsError::Malformed("XFCC without Cert or Chain".into()))?;
    percent_decode(&encoded)
}

/// Splits at `separator` outside double quotes (a backslash escapes the next character inside
/// quotes). An unterminated quote is an error.
fn split_unquoted(value: &str, separator: char) -> Result<Vec<&str>, MtlsError> {
    let mut parts = Vec::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(value.get(start..i).unwrap_or(""));
            start = i + c.len_utf8();
        }
    }
    if quoted || escaped {
        return Err(MtlsError::Malformed(
            "XFCC has an unterminated quote".into(),
        ));
    }
    parts.push(value.get(start..).unwrap_or(""));
    Ok(parts)
}

/// A value without its double quotes and backslash escapes (or as it is when unquoted).
fn unquote(raw: &str) -> Result<String, MtlsError> {
    let Some(inner) = raw.strip_prefix('"') else {
        return Ok(raw.to_owned());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| MtlsError::Malformed("XFCC value with an unterminated quote".into()))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.extend(chars.next());
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use layer::{ForwardedCertLayer, ForwardedCertService};

#[cfg(feature = "server")]
mod layer {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use http::Request;
    use portcullis_core::{
        AuditEvent, AuditEventType, AuditResult, AuditSink, Clock, IdSource, PeerAddrFn,
        PeerCertificates, RandomIds, SystemClock, socket_addr_peer,
    };
    use tower_service::Service;

    use super::{Forwarded, ForwardedCertificates};

    /// A tower layer that turns a trusted proxy's forwarded certificate into the request's
    /// [`PeerCertificates`] (a certificate from a direct TLS connection wins), strips the
    /// header before the service sees it, and records a `security_violation` audit event
    /// when the header comes from anyone else. Put it before the `AuthLayer`.
    #[derive(Clone)]
    pub struct ForwardedCertLayer {
        config: Arc<ForwardedCertificates>,
        sink: Option<Arc<dyn AuditSink>>,
        peer: PeerAddrFn,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdSource>,
    }

    impl std::fmt::Debug for ForwardedCertLayer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ForwardedCertLayer")
                .field("config", &self.config)
                .finish_non_exhaustive()
        }
    }

    impl ForwardedCertLayer {
        /// Reads forwarded certificates per `config`; violations go to `sink` when given.
        #[must_use]
        pub fn new(config: ForwardedCertificates, sink: Option<Arc<dyn AuditSink>>) -> Self {
            Self {
                config: Arc::new(config),
                sink,
                peer: socket_addr_peer,
                clock: Arc::new(SystemClock),
                ids: Arc::new(RandomIds),
            }
        }

        /// How to find the peer address (default: a `SocketAddr` in the extensions; axum users
        /// pass `portcullis_axum::connect_info_peer`).
        #[must_use]
        pub fn peer_addr(mut self, peer: PeerAddrFn) -> Self {
            self.peer = peer;
            self
        }

        /// The clock of the violation events (default [`SystemClock`]).
        #[must_use]
        pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
            self.clock = clock;
            self
        }

        /// Where the violation events' ids come from (default [`RandomIds`]).
        #[must_use]
        pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
            self.ids = ids;
            self
        }
    }

    impl<S> tower_layer::Layer<S> for ForwardedCertLayer {
        type Service = ForwardedCertService<S>;

        fn layer(&self, inner: S) -> Self::Service {
            ForwardedCertService {
                inner,
                layer: self.clone(),
            }
        }
    }

    /// The service made by [`ForwardedCertLayer`].
    #[derive(Clone, Debug)]
    pub struct ForwardedCertService<S> {
        inner: S,
        layer: ForwardedCertLayer,
    }

    type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

    impl<S, B> Service<Request<B>> for ForwardedCertService<S>
    where
        S: Service<Request<B>> + Clone + Send + 'static,
        S::Future: Send,
        B: Send + 'static,
    {
        type Response = S::Response;
        type Error = S::Error;
        type Future = BoxFuture<Result<S::Response, S::Error>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            self.inner.poll_ready(cx)
        }

        fn call(&mut self, mut request: Request<B>) -> Self::Future {
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            let layer = self.layer.clone();
            let peer = (layer.peer)(request.extensions());
            let outcome = layer.config.extract(request.headers(), peer);
            request.headers_mut().remove(layer.config.header());
            let violation = match outcome {
                Ok(Forwarded::Certificates(chain)) => {
                    if request.extensions().get::<PeerCertificates>().is_none() {
                        request.extensions_mut().insert(chain);
                    }
                    None
                }
                Ok(Forwarded::Absent) => None,
                Ok(Forwarded::Untrusted) => {
                    Some("forwarded client certificate from an untrusted address".to_owned())
                }
                Err(error) => Some(format!("unusable forwarded client certificate: {error}")),
            };
            let method = request.method().as_str().to_owned();
            let path = request.uri().path().to_owned();
            Box::pin(async move {
                if let (Some(reason), Some(sink)) = (violation, &layer.sink) {
                    let mut event = AuditEvent::new(
                        layer.ids.event_id(),
                        AuditEventType::SecurityViolation,
                        AuditResult::Failure,
                        layer.clock.now(),
                    )
                    .with_reason(reason)
                    .with_http(method, path, None);
                    if let Some(ip) = peer {
                        event = event.with_source_ip(ip);
                    }
                    // A violation that cannot be recorded does not change the request's fate:
                    // the header is already gone.
                    let _ = sink.record(event).await;
                }
                inner.call(request).await
            })
        }
    }
}
