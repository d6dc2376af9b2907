//! Serving plain HTTP with hyper, with header limits above Portcullis's own.
//!
//! hyper answers a request whose header section is over its limits with a bare `431` before
//! any layer runs, so nothing is audited. Portcullis's credential extractor refuses more than
//! `DEFAULT_MAX_HEADER_FIELDS` header fields or `DEFAULT_MAX_HEADER_BYTES` bytes of headers
//! with an audited `401 invalid_request`; hyper's limits are set above those, so that only a
//! request past hyper's (twice as many fields, 512 KiB of headers) still gets the bare 431.
//! `axum::serve` cannot set hyper's limits, hence this loop.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use portcullis::{DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_FIELDS};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish.
/// Each request carries the client's address (`ConnectInfo<SocketAddr>`, as
/// `into_make_service_with_connect_info` would set it).
pub(crate) async fn serve_http(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_headers(2 * DEFAULT_MAX_HEADER_FIELDS)
        .max_buf_size((8 * DEFAULT_MAX_HEADER_BYTES).max(512 * 1024));
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
