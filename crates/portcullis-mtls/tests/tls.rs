//! End to end: a real TLS server on 127.0.0.1 (rustls, `serve`) and a real TLS client with a
//! client certificate; the handler sees the `Principal`; a revoked certificate fails; a CRL
//! swapped at run time revokes a certificate without a restart.
#![cfg(feature = "server")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use http_body_util::BodyExt as _;
use portcullis_core::{AuthenticatorChain, Principal};
use portcullis_mtls::server::{ClientAuth, serve, server_config};
use portcullis_mtls::{MtlsAuthenticator, MtlsPolicy, TrustMaterial, TrustStore};
use portcullis_testkit::pki::{self, Ca, ca, leaf_with_key, now};
use portcullis_testkit::tls::Client;
use portcullis_tower::AuthLayer;
use rcgen::{ExtendedKeyUsagePurpose, SanType};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use time::Duration;

fn root() -> Ca {
    ca("E2E Root", None)
}

fn issue(
    issuer: &Ca,
    cn: &str,
    serial: u64,
    eku: ExtendedKeyUsagePurpose,
    sans: Vec<SanType>,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    leaf_with_key(issuer, cn, serial, |p| {
        p.extended_key_usages = vec![eku];
        p.subject_alt_names = sans;
    })
}

fn crl(issuer: &Ca, revoked: &[u64]) -> CertificateRevocationListDer<'static> {
    pki::crl(issuer, revoked, now() + Duration::days(7))
}

async fn get_whoami(
    addr: std::net::SocketAddr,
    root: &Ca,
    client: (CertificateDer<'static>, PrivateKeyDer<'static>),
) -> Result<(u16, String), String> {
    let response = Client::new(&root.der)
        .identity(vec![client.0], client.1)
        .get(addr, "/whoami")
        .await?;
    Ok((response.status, response.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_sees_the_principal_and_crls_apply_without_a_restart() {
    let root = root();
    let (server_cert, server_key) = issue(
        &root,
        "localhost",
        1,
        ExtendedKeyUsagePurpose::ServerAuth,
        vec![SanType::DnsName("localhost".try_into().unwrap())],
    );
    let good = issue(
        &root,
        "good-client",
        2,
        ExtendedKeyUsagePurpose::ClientAuth,
        Vec::new(),
    );
    let revoked = issue(
        &root,
        "revoked-client",
        3,
        ExtendedKeyUsagePurpose::ClientAuth,
        Vec::new(),
    );
    let later = issue(
        &root,
        "soon-revoked",
        4,
        ExtendedKeyUsagePurpose::ClientAuth,
        Vec::new(),
    );

    let material =
        TrustMaterial::new(std::slice::from_ref(&root.der), &[crl(&root, &[3])], now()).unwrap();
    let authenticator =
        MtlsAuthenticator::new(Arc::new(TrustStore::new(material)), MtlsPolicy::default());
    let config = server_config(
        vec![server_cert],
        server_key,
        &authenticator,
        ClientAuth::Required,
    )
    .unwrap();
    let app = Router::new()
        .route(
            "/whoami",
            get(|p: Principal| async move { p.id().to_owned() }),
        )
        .layer(AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(
            authenticator.clone(),
        )])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, Arc::new(config), app));

    assert_eq!(
        get_whoami(addr, &root, good).await.unwrap(),
        (200, "good-client".to_owned())
    );
    assert!(
        get_whoami(addr, &root, revoked).await.is_err(),
        "a revoked certificate fails the handshake"
    );
    let (later_cert, later_key) = later;
    let clone_later = || (later_cert.clone(), later_key.clone_key());
    assert_eq!(get_whoami(addr, &root, clone_later()).await.unwrap().0, 200);
    // Revoke it at run time: the next handshake refuses it.
    authenticator
        .store()
        .set_crls(&[crl(&root, &[3, 4])])
        .unwrap();
    assert!(get_whoami(addr, &root, clone_later()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_picks_up_a_new_crl_file() {
    let root = root();
    let client = issue(
        &root,
        "watched",
        9,
        ExtendedKeyUsagePurpose::ClientAuth,
        Vec::new(),
    )
    .0;
    let dir = std::env::temp_dir().join(format!("portcullis-mtls-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = |label: &str, der: &[u8]| {
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der)
        )
    };
    std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", &root.der)).unwrap();
    std::fs::write(dir.join("crl.pem"), pem("X509 CRL", &crl(&root, &[]))).unwrap();
    let store =
        Arc::new(TrustStore::from_paths(&dir.join("ca.pem"), Some(&dir.join("crl.pem"))).unwrap());
    let authenticator = MtlsAuthenticator::new(Arc::clone(&store), MtlsPolicy::default());
    let chain = portcullis_core::PeerCertificates::new(vec![client]);
    assert!(authenticator.verify(&chain).is_ok());
    let watcher = portcullis_mtls::server::watch(
        Arc::clone(&store),
        vec![dir.join("ca.pem")],
        Some(dir.join("crl.pem")),
        std::time::Duration::from_millis(20),
    );
    // Make sure the modification time changes even on coarse file systems.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    std::fs::write(dir.join("crl.pem"), pem("X509 CRL", &crl(&root, &[9]))).unwrap();
    let mut revoked = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if authenticator.verify(&chain) == Err(portcullis_mtls::MtlsError::Revoked) {
            revoked = true;
            break;
        }
    }
    watcher.abort();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(revoked, "the new CRL was not picked up");
}

#[derive(Debug, Default)]
struct Collect(std::sync::Mutex<Vec<portcullis_core::AuditEvent>>);

#[async_trait::async_trait]
impl portcullis_core::AuditSink for Collect {
    async fn record(
        &self,
        event: portcullis_core::AuditEvent,
    ) -> Result<(), portcullis_core::AuditError> {
        self.0.lock().unwrap().push(event);
        Ok(())
    }

    async fn flush(&self) -> Result<(), portcullis_core::AuditError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_forwarded_certificate_counts_only_from_a_trusted_proxy() {
    use tower::ServiceExt as _;
    let root = root();
    let client = issue(
        &root,
        "behind-nginx",
        5,
        ExtendedKeyUsagePurpose::ClientAuth,
        Vec::new(),
    )
    .0;
    let material = TrustMaterial::new(std::slice::from_ref(&root.der), &[], now()).unwrap();
    let authenticator =
        MtlsAuthenticator::new(Arc::new(TrustStore::new(material)), MtlsPolicy::default());
    let sink = Arc::new(Collect::default());
    let proxy: std::net::SocketAddr = "10.0.0.5:40000".parse().unwrap();
    let nginx = portcullis_mtls::forwarded::ForwardedCertificates::nginx(
        http::HeaderName::from_static("x-ssl-client-cert"),
        vec![proxy.ip().into()],
    );
    let app = Router::new()
        .route(
            "/whoami",
            get(|p: Principal| async move { p.id().to_owned() }),
        )
        .layer(AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(
            authenticator,
        )])))
        .layer(portcullis_mtls::forwarded::ForwardedCertLayer::new(
            nginx,
            Some(sink.clone()),
        ));
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &client)
    );
    let escaped: String = pem
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let request = |from: std::net::SocketAddr| {
        let mut request = http::Request::get("/whoami")
            .header("x-ssl-client-cert", escaped.as_str())
            .body(axum::body::Body::empty())
            .unwrap();
        request.extensions_mut().insert(from);
        request
    };
    let response = app.clone().oneshot(request(proxy)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "behind-nginx"
    );
    assert!(sink.0.lock().unwrap().is_empty());
    // The same header from a client that is not the proxy: ignored and recorded.
    let stranger: std::net::SocketAddr = "203.0.113.9:5555".parse().unwrap();
    let response = app.clone().oneshot(request(stranger)).await.unwrap();
    assert_eq!(response.status(), 401);
    let events = sink.0.lock().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].event_type,
        portcullis_core::AuditEventType::SecurityViolation
    );
    assert_eq!(events[0].source_ip, Some(stranger.ip()));
}
