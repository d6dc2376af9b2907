//! The default [`HttpFetcher`]: hyper's HTTP/1 client over rustls with the ring provider
//! and the Mozilla root store (webpki-roots).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::FetchError;
use crate::remote::{FetchedDocument, FormPost, HttpFetcher, check_url};

/// Fetches over HTTPS (and plain HTTP to loopback) with hyper + rustls (ring).
#[derive(Clone)]
pub struct HyperFetcher {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl fmt::Debug for HyperFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HyperFetcher").finish_non_exhaustive()
    }
}

impl HyperFetcher {
    /// A fetcher trusting the Mozilla root store.
    pub fn new() -> Result<Self, FetchError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Self::with_roots(roots)
    }

    /// A fetcher trusting these roots (a private PKI, a test CA).
    pub fn with_roots(roots: rustls::RootCertStore) -> Result<Self, FetchError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| FetchError::Transport(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }
}

const USER_AGENT: &str = concat!("portcullis-jwt/", env!("CARGO_PKG_VERSION"));

impl HyperFetcher {
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
        max_bytes: usize,
    ) -> Result<FetchedDocument, FetchError> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        let cache_control = response
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    FetchError::TooLarge
                } else {
                    FetchError::Transport(e.to_string())
                }
            })?
            .to_bytes();
        Ok(FetchedDocument {
            body: body.to_vec(),
            cache_control,
        })
    }
}

#[async_trait]
impl HttpFetcher for HyperFetcher {
    async fn get(&self, url: &Uri, max_bytes: usize) -> Result<FetchedDocument, FetchError> {
        check_url(url)?;
        let request = Request::builder()
            .method(Method::GET)
            .uri(url.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::USER_AGENT, USER_AGENT)
            .body(Full::new(Bytes::new()))
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        self.send(request, max_bytes).await
    }

    async fn post_form(
        &self,
        url: &Uri,
        form: &FormPost,
        max_bytes: usize,
    ) -> Result<FetchedDocument, FetchError> {
        check_url(url)?;
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::USER_AGENT, USER_AGENT);
        if let Some(authorization) = form.authorization() {
            let mut value = http::HeaderValue::from_str(authorization.expose())
                .map_err(|_| FetchError::Transport("invalid client credentials".into()))?;
            value.set_sensitive(true);
            request = request.header(header::AUTHORIZATION, value);
        }
        let request = request
            .body(Full::new(Bytes::from(form.body())))
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        self.send(request, max_bytes).await
    }
}
