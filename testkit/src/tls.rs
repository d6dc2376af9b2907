//! A TLS client (rustls on ring) that sends one HTTP/1.1 request to a server on 127.0.0.1
//! and names `localhost`.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// What the server answered.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body, as text.
    pub body: String,
}

/// A client that trusts one root, with or without a client certificate.
#[derive(Debug)]
pub struct Client {
    roots: Vec<CertificateDer<'static>>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    tls13_only: bool,
}

impl Client {
    /// A client that trusts `root` and presents no certificate.
    pub fn new(root: &CertificateDer<'static>) -> Self {
        Self {
            roots: vec![root.clone()],
            identity: None,
            tls13_only: false,
        }
    }

    /// Presents `chain` (leaf first) with `key`.
    #[must_use]
    pub fn identity(
        mut self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Self {
        self.identity = Some((chain, key));
        self
    }

    /// Presents `identity` when there is one.
    #[must_use]
    pub fn maybe_identity(
        self,
        identity: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> Self {
        match identity {
            Some((cert, key)) => self.identity(vec![cert], key),
            None => self,
        }
    }

    /// Speaks TLS 1.3 only (a refused client certificate then shows in the first read).
    #[must_use]
    pub fn tls13_only(mut self) -> Self {
        self.tls13_only = true;
        self
    }

    fn config(&self) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for root in &self.roots {
            roots.add(root.clone()).unwrap();
        }
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(versions)
                .unwrap()
                .with_root_certificates(roots);
        Arc::new(match &self.identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// `GET path`.
    ///
    /// # Errors
    ///
    /// What went wrong, with every cause (a TLS alert the server sent among them).
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Result<Response, String> {
        let request = http::Request::get(path).body(String::new()).unwrap();
        self.send(addr, request).await
    }

    /// Sends `request` (a `host: localhost` header is added when it has none).
    ///
    /// # Errors
    ///
    /// What went wrong, with every cause (a TLS alert the server sent among them).
    pub async fn send(
        &self,
        addr: SocketAddr,
        request: http::Request<String>,
    ) -> Result<Response, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| chain(&e))?;
        let tls = tokio_rustls::TlsConnector::from(self.config())
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| chain(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| chain(&e))?;
        let connection = tokio::spawn(connection);
        let (mut parts, body) = request.into_parts();
        if !parts.headers.contains_key(http::header::HOST) {
            parts.headers.insert(
                http::header::HOST,
                http::HeaderValue::from_static("localhost"),
            );
        }
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            // The connection's own error says why (a TLS alert the server sent, say).
            Err(error) => {
                return Err(match connection.await {
                    Ok(Err(cause)) => chain(&cause),
                    _ => chain(&error),
                });
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| chain(&e))?
            .to_bytes();
        Ok(Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

/// An error and its causes, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
