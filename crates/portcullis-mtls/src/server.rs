//! Serving over TLS with client certificates (feature `server`): a `rustls::ServerConfig`
//! whose client verifier shares the authenticator's [`TrustStore`](crate::TrustStore) (a
//! swap of anchors or CRLs takes effect on the next handshake, no restart, no dropped
//! connection), and an accept loop that puts each connection's verified chain into every
//! request's extensions as [`PeerCertificates`], where the `AuthLayer` finds it.

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_core::{
    AuditEvent, AuditEventType, AuditResult, AuditSink, AuthMethod, Clock,
    DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_FIELDS, IdSource, PeerCertificates, RandomIds,
    SystemClock,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use crate::authenticator::MtlsAuthenticator;
use crate::error::MtlsError;

/// The TLS server configuration type [`server_config`] returns (rustls's).
pub type TlsServerConfig = rustls::ServerConfig;

/// Whether the handshake demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// The handshake fails without a valid client certificate (AmateRS
    /// `require_client_cert = true`).
    Required,
    /// A client certificate is verified when offered; clients without one connect, and the
    /// `AuthLayer` decides (other credentials may apply).
    Optional,
}

/// A rustls client verifier backed by an [`MtlsAuthenticator`]'s trust decision.
#[derive(Debug)]
pub struct PortcullisClientVerifier {
    authenticator: MtlsAuthenticator,
    mandatory: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

/// The error (and so the TLS alert) for a refused certificate, as close to the reason as
/// rustls lets a verifier choose:
///
/// | reason | alert |
/// |---|---|
/// | expired, not yet valid | `certificate_expired` |
/// | revoked | `certificate_revoked` |
/// | no `clientAuth` EKU, a CA certificate as the client's | `unsupported_certificate` |
/// | revocation status unknown, expired CRL | `certificate_unknown` |
/// | issuer not trusted | `unknown_ca` |
/// | malformed | `bad_certificate` |
/// | organization, identity or chain bounds refused | `access_denied` |
///
/// rustls itself sends `unknown_ca` for an unknown revocation status and an expired CRL (as
/// OpenSSL does); the CA is known in both cases, so the verifier says `certificate_unknown`.
fn rustls_error(error: &MtlsError) -> rustls::Error {
    rustls::Error::InvalidCertificate(match error {
        MtlsError::Expired => CertificateError::Expired,
        MtlsError::NotYetValid => CertificateError::NotValidYet,
        MtlsError::Revoked => CertificateError::Revoked,
        MtlsError::WrongKeyUsage(_) => CertificateError::InvalidPurpose,
        MtlsError::UnknownRevocationStatus(_) | MtlsError::CrlExpired => {
            CertificateError::Other(rustls::OtherError(Arc::new(error.clone())))
        }
        MtlsError::Untrusted(_) => CertificateError::UnknownIssuer,
        MtlsError::Malformed(_) => CertificateError::BadEncoding,
        _ => CertificateError::ApplicationVerificationFailure,
    })
}

/// What a refused handshake leaves for the accept loop to record (the verifier decides inside
/// the handshake, where neither the peer address nor the audit sink is at hand).
#[derive(Debug, Clone)]
struct HandshakeFailure {
    reason: String,
    certificate: Vec<(&'static str, String)>,
}

tokio::task_local! {
    /// Set by the accept loop around one connection's handshake.
    static HANDSHAKE: RefCell<Option<HandshakeFailure>>;
}

impl PortcullisClientVerifier {
    /// A verifier sharing `authenticator`'s trust store and policy.
    #[must_use]
    pub fn new(
        authenticator: MtlsAuthenticator,
        client_auth: ClientAuth,
        provider: &CryptoProvider,
    ) -> Self {
        Self {
            authenticator,
            mandatory: client_auth == ClientAuth::Required,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for PortcullisClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The whole authenticator decision (trust, revocation, EKU, identity, organizations):
        // a certificate the authenticator would refuse does not complete the handshake.
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone().into_owned());
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        self.authenticator
            .verify(&PeerCertificates::new(chain))
            .map(|_| ClientCertVerified::assertion())
            .map_err(|error| {
                // Left for the accept loop, which records it with the peer's address.
                let failure = HandshakeFailure {
                    reason: error.to_string(),
                    certificate: crate::certificate_facts(end_entity),
                };
                let _ = HANDSHAKE.try_with(|slot| *slot.borrow_mut() = Some(failure));
                rustls_error(&error)
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS server configuration (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`) that asks for
/// client certificates and verifies them with `authenticator`.
pub fn server_config(
    certificate_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    authenticator: &MtlsAuthenticator,
    client_auth: ClientAuth,
) -> Result<rustls::ServerConfig, MtlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PortcullisClientVerifier::new(
        authenticator.clone(),
        client_auth,
        &provider,
    ));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MtlsError::Store(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificate_chain, key)
        .map_err(|e| MtlsError::Store(format!("server certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// How [`serve_with`] serves.
///
/// HTTP limits: hyper refuses a request whose header section is over its own limits with a bare
/// `431`, before any layer runs (so nothing is audited). The defaults here are above
/// Portcullis's own header limits ([`DEFAULT_MAX_HEADER_FIELDS`] fields and
/// [`DEFAULT_MAX_HEADER_BYTES`] bytes, checked by the credential extractor), so that a request
/// between the two gets Portcullis's audited `401 invalid_request`; only a request past hyper's
/// limits still gets the bare `431`.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    max_headers: usize,
    max_buf_size: usize,
    audit: Option<Arc<dyn AuditSink>>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
}

impl fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeOptions")
            .field("max_headers", &self.max_headers)
            .field("max_buf_size", &self.max_buf_size)
            .field("audit", &self.audit.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ServeOptions {
    /// Twice Portcullis's header-field limit and 512 KiB of header buffer, no audit sink.
    #[must_use]
    pub fn new() -> Self {
        Self {
            max_headers: 2 * DEFAULT_MAX_HEADER_FIELDS,
            max_buf_size: (8 * DEFAULT_MAX_HEADER_BYTES).max(512 * 1024),
            audit: None,
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
        }
    }

    /// hyper's HTTP/1 limits: the most header fields and the read buffer (which bounds the
    /// header section). Keep them above the credential extractor's header limits.
    #[must_use]
    pub fn http_limits(mut self, max_headers: usize, max_buf_size: usize) -> Self {
        self.max_headers = max_headers;
        self.max_buf_size = max_buf_size;
        self
    }

    /// Records every refused TLS handshake here (an authentication failure with the peer's
    /// address, the certificate's subject, serial and fingerprint when one was presented, and
    /// the precise reason). Refused handshakes are logged through `tracing` (target
    /// `portcullis.mtls`) either way.
    #[must_use]
    pub fn audit(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.audit = Some(sink);
        self
    }

    /// Where the handshake events' ids come from (default [`RandomIds`]).
    #[must_use]
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// The clock of the handshake events.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// Accepts TLS connections on `listener` and serves them with `service` (an axum `Router`,
/// say), with the default [`ServeOptions`]. See [`serve_with`].
pub async fn serve<S, B>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    service: S,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_with(listener, config, service, ServeOptions::new()).await
}

/// Accepts TLS connections on `listener` and serves them with `service`. Each request carries
/// the connection's verified client chain as [`PeerCertificates`] and the client address as a
/// `SocketAddr` in its extensions. A refused handshake (an expired, untrusted, revoked,
/// wrong-purpose or disallowed certificate, or none when one is required) ends that
/// connection and is recorded (see [`ServeOptions::audit`]). Runs until the listener fails.
pub async fn serve_with<S, B>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    service: S,
    options: ServeOptions,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let acceptor = TlsAcceptor::from(config);
    let options = Arc::new(options);
    loop {
        let (stream, remote) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let service = service.clone();
        let options = Arc::clone(&options);
        tokio::spawn(async move {
            let handshake = HANDSHAKE.scope(RefCell::new(None), async {
                let result = acceptor.accept(stream).await;
                let failure = HANDSHAKE.with(|slot| slot.borrow_mut().take());
                (result, failure)
            });
            let tls = match handshake.await {
                (Ok(tls), _) => tls,
                (Err(error), failure) => {
                    record_refused_handshake(&options, remote, &error, failure).await;
                    return;
                }
            };
            let peer = tls.get_ref().1.peer_certificates().map(|chain| {
                PeerCertificates::new(chain.iter().map(|c| c.clone().into_owned()).collect())
            });
            let handler = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                if let Some(peer) = &peer {
                    request.extensions_mut().insert(peer.clone());
                }
                request.extensions_mut().insert::<SocketAddr>(remote);
                let mut service = service.clone();
                async move {
                    poll_fn(|cx| service.poll_ready(cx)).await?;
                    service.call(request).await
                }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .max_headers(options.max_headers)
                .max_buf_size(options.max_buf_size);
            let _ = builder.serve_connection(TokioIo::new(tls), handler).await;
        });
    }
}

/// Logs a refused handshake and records it in the audit sink, if any.
async fn record_refused_handshake(
    options: &ServeOptions,
    remote: SocketAddr,
    error: &std::io::Error,
    failure: Option<HandshakeFailure>,
) {
    let (reason, certificate) = match failure {
        Some(failure) => (failure.reason, failure.certificate),
        // The verifier did not run: no certificate when one is required, or a TLS failure.
        None => (format!("TLS handshake failed: {error}"), Vec::new()),
    };
    let subject = certificate
        .iter()
        .find(|(name, _)| *name == "cert_subject")
        .map_or("", |(_, value)| value.as_str());
    tracing::warn!(
        target: "portcullis.mtls",
        peer = %remote,
        subject,
        %reason,
        "TLS handshake refused"
    );
    let Some(sink) = &options.audit else {
        return;
    };
    let mut event = AuditEvent::new(
        options.ids.event_id(),
        AuditEventType::Authentication,
        AuditResult::Failure,
        options.clock.now(),
    )
    .with_source_ip(remote.ip())
    .with_auth_method(AuthMethod::Mtls)
    .with_reason(reason)
    .with_metadata("authenticator", "mtls")
    .with_metadata("stage", "tls_handshake");
    for (name, value) in certificate {
        event = event.with_metadata(name, value);
    }
    if let Err(error) = sink.record(event).await {
        tracing::error!(
            target: "portcullis.mtls",
            %error,
            "the audit sink refused a handshake failure event"
        );
    }
}

/// Re-reads anchors (every file or directory of `anchors`, as the store was built) and CRLs
/// when one of them changes (polled every `interval`), so a new CRL published to `crl_path`
/// takes effect on the next handshake. A file that fails to load (a CRL file that holds no
/// CRL among them) leaves the material in force and is logged through `tracing` (target
/// `portcullis.mtls`). Stops when the returned handle is aborted.
pub fn watch(
    store: Arc<crate::TrustStore>,
    anchors: Vec<std::path::PathBuf>,
    crls: Option<std::path::PathBuf>,
    interval: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    fn stamp(path: &std::path::Path) -> Option<std::time::SystemTime> {
        let metadata = std::fs::metadata(path).ok()?;
        if metadata.is_dir() {
            std::fs::read_dir(path)
                .ok()?
                .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
                .max()
        } else {
            metadata.modified().ok()
        }
    }
    tokio::spawn(async move {
        let paths: Vec<&std::path::Path> =
            anchors.iter().map(std::path::PathBuf::as_path).collect();
        let current = || -> Vec<Option<std::time::SystemTime>> {
            paths
                .iter()
                .copied()
                .chain(crls.as_deref())
                .map(stamp)
                .collect()
        };
        let mut seen = current();
        loop {
            tokio::time::sleep(interval).await;
            let now = current();
            if now == seen {
                continue;
            }
            seen = now;
            match store.reload(&paths, crls.as_deref()) {
                Ok(()) => {
                    tracing::info!(target: "portcullis.mtls", "trust anchors and CRLs reloaded");
                }
                // The material in force stays; the files are tried again when they change.
                Err(error) => tracing::error!(
                    target: "portcullis.mtls",
                    %error,
                    "reloading the trust anchors or CRLs failed; the ones in force stay"
                ),
            }
        }
    })
}
