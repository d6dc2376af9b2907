//! Serving over TLS with client certificates (feature `server`): a `rustls::ServerConfig`
//! whose client verifier shares the authenticator's [`TrustStore`](crate::TrustStore) (a
//! swap of anchors or CRLs takes effect on the next handshake, no restart, no dropped
//! connection), and an accept loop that puts each connection's verified chain into every
//! request's extensions as [`PeerCertificates`], where the `AuthLayer` finds it.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use portcullis_core::PeerCertificates;
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

fn rustls_error(error: &MtlsError) -> rustls::Error {
    rustls::Error::InvalidCertificate(match error {
        MtlsError::Expired => CertificateError::Expired,
        MtlsError::NotYetValid => CertificateError::NotValidYet,
        MtlsError::Revoked => CertificateError::Revoked,
        MtlsError::UnknownRevocationStatus(_) => CertificateError::UnknownRevocationStatus,
        MtlsError::Untrusted(_) => CertificateError::UnknownIssuer,
        MtlsError::Malformed(_) => CertificateError::BadEncoding,
        _ => CertificateError::ApplicationVerificationFailure,
    })
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
            .map_err(|e| rustls_error(&e))
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

/// Accepts TLS connections on `listener` and serves them with `service` (an axum `Router`,
/// say). Each request carries the connection's verified client chain as
/// [`PeerCertificates`] and the client address as a `SocketAddr` in its extensions. Runs
/// until the listener fails; a failed handshake or connection only ends that connection.
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
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (stream, remote) = listener.accept().await?;
        let acceptor = acceptor.clone();
        let service = service.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return; // the handshake failed (no or bad client certificate)
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
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), handler)
                .await;
        });
    }
}

/// Re-reads anchors (every file or directory of `anchors`, as the store was built) and CRLs
/// when one of them changes (polled every `interval`), so a new CRL published to `crl_path`
/// takes effect on the next handshake. A file that fails to load leaves the material in
/// force. Stops when the returned handle is aborted.
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
            if now != seen && store.reload(&paths, crls.as_deref()).is_ok() {
                seen = now;
            }
        }
    })
}
