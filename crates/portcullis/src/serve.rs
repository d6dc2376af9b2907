//! Serving an axum router (feature `config`): plain HTTP or TLS with client certificates,
//! with hyper's header limits above Portcullis's own.
//!
//! hyper answers a request whose header section is over its limits with a bare `431` before
//! any layer runs, so nothing is audited. Portcullis's credential extractor refuses more than
//! [`DEFAULT_MAX_HEADER_FIELDS`] header fields or [`DEFAULT_MAX_HEADER_BYTES`] bytes of
//! headers with an audited `401 invalid_request`; the servers here set hyper's limits above
//! those (twice as many fields, 512 KiB of headers), so that only a request past them still
//! gets the bare 431. `axum::serve` cannot set hyper's limits, hence these loops.

use std::future::Future;
use std::net::SocketAddr;

use axum_dep::Router;
use axum_dep::extract::ConnectInfo;
use axum_dep::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use portcullis_core::{DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_FIELDS};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::config::Stack;

/// hyper's HTTP/1 limits: twice Portcullis's header-field limit, 512 KiB of header buffer.
fn builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_headers(2 * DEFAULT_MAX_HEADER_FIELDS)
        .max_buf_size((8 * DEFAULT_MAX_HEADER_BYTES).max(512 * 1024));
    builder
}

/// Serves `app` over plain HTTP on `listener` until `shutdown` completes, then lets open
/// connections finish. Each request carries the client's address (`ConnectInfo<SocketAddr>`,
/// as `into_make_service_with_connect_info` would set it).
///
/// # Errors
/// When the listener fails.
pub async fn serve_http(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = builder();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
                request
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    graceful.shutdown().await;
    Ok(())
}

impl Stack {
    /// Serves `app` wrapped in this stack on `listener` (over TLS when `[network]` turns it
    /// on, recording refused handshakes in the audit trail) until `shutdown` completes, then
    /// writes out the audit events still queued.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn serve(
        &self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()> {
        let app = app.layer(self.layer());
        let served = match self.tls() {
            Some(tls) => {
                let options = portcullis_mtls::server::ServeOptions::new().audit(self.audit_sink());
                tokio::select! {
                    served = portcullis_mtls::server::serve_with(listener, tls, app, options) => served,
                    () = shutdown => Ok(()),
                }
            }
            None => serve_http(listener, app, shutdown).await,
        };
        if let Err(error) = self.shutdown().await {
            tracing::error!(target: "portcullis.audit", %error, "the last audit events could not be written");
        }
        served
    }
}
