//! Regressions from outside testing of the mTLS authenticator: a CRL file without a CRL turned
//! revocation off, refused handshakes left no trace, the TLS alerts did not match the reason,
//! forwarded certificates were only tested with our own encoder, and the x509-limbo CRL and
//! path-length cases did not run. Real peers: `openssl` (a CA, its DER CRL) and nginx (a TLS
//! terminator forwarding `$ssl_client_escaped_cert`), skipped with a printed reason when they
//! are missing outside CI.
#![cfg(feature = "server")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed expectation should stop the test"
)]

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use axum::Router;
use axum::routing::get;
use portcullis_core::{
    AuditError, AuditEvent, AuditEventType, AuditResult, AuditSink, AuthenticatorChain,
    PeerCertificates, Principal,
};
use portcullis_mtls::forwarded::{Forwarded, ForwardedCertLayer, ForwardedCertificates};
use portcullis_mtls::server::{ClientAuth, ServeOptions, serve_with, server_config};
use portcullis_mtls::{
    AmatersMtlsConfig, MtlsAuthenticator, MtlsError, MtlsPolicy, TrustMaterial, TrustStore,
};
use portcullis_tower::AuthLayer;
use rcgen::{DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use time::Duration;

use portcullis_testkit::peer;
use portcullis_testkit::pki::{self, Ca, ca, leaf, leaf_with_key, now, pem};
use portcullis_testkit::tls::Client;

fn crl(issuer: &Ca, revoked: &[u64]) -> rustls::pki_types::CertificateRevocationListDer<'static> {
    pki::crl(issuer, revoked, now() + Duration::days(7))
}

fn chain(der: CertificateDer<'static>) -> PeerCertificates {
    PeerCertificates::new(vec![der])
}

#[derive(Debug, Default)]
struct Collect(Mutex<Vec<AuditEvent>>);

#[async_trait::async_trait]
impl AuditSink for Collect {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.0.lock().unwrap().push(event);
        Ok(())
    }

    async fn flush(&self) -> Result<(), AuditError> {
        Ok(())
    }
}

impl Collect {
    async fn wait_for(&self, count: usize) -> Vec<AuditEvent> {
        for _ in 0..200 {
            if self.0.lock().unwrap().len() >= count {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(10)).await;
        }
        self.0.lock().unwrap().clone()
    }
}

/// Finding 17: a CRL file that held no PEM CRL (empty, text, a DER CRL) gave an empty list,
/// revocation was skipped, and a revoked certificate got in; a hot swap did the same to the
/// CRLs in force. A configured CRL file that yields no CRL is now an error at start and a
/// failed reload; DER is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crl_file_without_a_crl_never_turns_revocation_off() {
    let root = ca("CRL Root", None);
    let dir = peer::temp_dir("mtls-crl-files");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, pem("CERTIFICATE", &root.der)).unwrap();
    let revoked = chain(leaf(&root, "revoked", 3, |_| {}));
    let fine = chain(leaf(&root, "fine", 4, |_| {}));

    // What is not a CRL is an error, at start...
    let certificate_pem = pem("CERTIFICATE", &root.der);
    let not_crls: [(&str, &[u8]); 4] = [
        ("empty.crl", b""),
        ("text.crl", b"this is not a CRL\n"),
        ("cert.pem", certificate_pem.as_bytes()),
        ("garbage.der", &[0x30, 0x03, 0x02, 0x01, 0x01]),
    ];
    for (name, bytes) in not_crls {
        std::fs::write(dir.join(name), bytes).unwrap();
        let error = TrustStore::from_paths(&ca_file, Some(&dir.join(name))).unwrap_err();
        assert!(matches!(error, MtlsError::Store(_)), "{name}: {error}");
        let config: AmatersMtlsConfig = toml::from_str(&format!(
            "ca_certs_dir = \"ca.pem\"\ncrl_path = \"{name}\"\n"
        ))
        .unwrap();
        assert!(config.authenticator(&dir).is_err(), "{name}");
    }

    // ...while a DER CRL (as CAs publish them) and a PEM CRL both revoke.
    std::fs::write(dir.join("crl.der"), crl(&root, &[3]).as_ref()).unwrap();
    std::fs::write(dir.join("crl.pem"), pem("X509 CRL", &crl(&root, &[3]))).unwrap();
    for name in ["crl.der", "crl.pem"] {
        let store = Arc::new(TrustStore::from_paths(&ca_file, Some(&dir.join(name))).unwrap());
        let authenticator = MtlsAuthenticator::new(Arc::clone(&store), MtlsPolicy::default());
        assert_eq!(
            authenticator.verify(&revoked),
            Err(MtlsError::Revoked),
            "{name}"
        );
        assert!(authenticator.verify(&fine).is_ok(), "{name}");
    }

    // A reload from a file that holds no CRL fails and the CRLs in force stay...
    let store = Arc::new(TrustStore::from_paths(&ca_file, Some(&dir.join("crl.der"))).unwrap());
    let authenticator = MtlsAuthenticator::new(Arc::clone(&store), MtlsPolicy::default());
    std::fs::write(dir.join("swap.crl"), b"").unwrap();
    assert!(
        store
            .reload(&[ca_file.as_path()], Some(&dir.join("swap.crl")))
            .is_err()
    );
    assert_eq!(authenticator.verify(&revoked), Err(MtlsError::Revoked));
    // ...also through the file watcher, which picks up the next good file.
    std::fs::write(dir.join("watched.crl"), crl(&root, &[3]).as_ref()).unwrap();
    store
        .reload(&[ca_file.as_path()], Some(&dir.join("watched.crl")))
        .unwrap();
    let watcher = portcullis_mtls::server::watch(
        Arc::clone(&store),
        vec![ca_file.clone()],
        Some(dir.join("watched.crl")),
        StdDuration::from_millis(20),
    );
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    std::fs::write(dir.join("watched.crl"), b"not a CRL any more").unwrap();
    tokio::time::sleep(StdDuration::from_millis(300)).await;
    assert_eq!(authenticator.verify(&revoked), Err(MtlsError::Revoked));
    tokio::time::sleep(StdDuration::from_millis(1100)).await;
    std::fs::write(dir.join("watched.crl"), crl(&root, &[3, 4]).as_ref()).unwrap();
    let mut picked_up = false;
    for _ in 0..100 {
        tokio::time::sleep(StdDuration::from_millis(20)).await;
        if authenticator.verify(&fine) == Err(MtlsError::Revoked) {
            picked_up = true;
            break;
        }
    }
    watcher.abort();
    assert!(picked_up, "the next good CRL file was not picked up");

    // Replacing the CRLs with none is refused; turning revocation off takes an explicit call.
    assert!(store.set_crls(&[]).is_err());
    assert_eq!(authenticator.verify(&revoked), Err(MtlsError::Revoked));
    store.clear_crls();
    assert!(authenticator.verify(&revoked).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The same with a real CA: openssl's `ca -gencrl`, published as DER. openssl writes no
/// CRLNumber without a `crlnumber` file; such a CRL (RFC 5280 §5.2.3 requires the number) is
/// refused with a clear error rather than trusted.
#[test]
fn an_openssl_ca_and_its_der_crl() {
    if !peer::program("openssl", &["version"]) {
        return;
    }
    let dir = peer::temp_dir("mtls-openssl-ca");
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    std::fs::write(dir.join("index.txt"), "").unwrap();
    std::fs::write(dir.join("crlnumber"), "1000\n").unwrap();
    let config = |with_number: bool| {
        format!(
            "[ca]\ndefault_ca = ca\n[ca]\ndir = .\ndatabase = index.txt\n{}\
             default_md = sha256\ndefault_crl_days = 7\n\
             [client]\nextendedKeyUsage = clientAuth\nkeyUsage = digitalSignature\n\
             [v3_ca]\nbasicConstraints = critical,CA:true\nkeyUsage = critical,keyCertSign,cRLSign\n",
            if with_number {
                "crlnumber = crlnumber\n"
            } else {
                ""
            }
        )
    };
    std::fs::write(dir.join("ca.cnf"), config(true)).unwrap();
    std::fs::write(dir.join("ca-nonumber.cnf"), config(false)).unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "30",
        "-subj",
        "/CN=OpenSSL Test CA",
        "-config",
        "ca.cnf",
        "-extensions",
        "v3_ca",
    ]);
    for name in ["alice", "mallory"] {
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}/O=Example"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "10",
            "-extfile",
            "ca.cnf",
            "-extensions",
            "client",
        ]);
    }
    run(&[
        "ca",
        "-config",
        "ca.cnf",
        "-cert",
        "ca.pem",
        "-keyfile",
        "ca.key",
        "-revoke",
        "mallory.pem",
    ]);
    run(&[
        "ca", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key", "-gencrl", "-out",
        "crl.pem",
    ]);
    run(&[
        "crl", "-in", "crl.pem", "-outform", "DER", "-out", "crl.der",
    ]);
    run(&[
        "ca",
        "-config",
        "ca-nonumber.cnf",
        "-cert",
        "ca.pem",
        "-keyfile",
        "ca.key",
        "-gencrl",
        "-out",
        "crl-nonumber.pem",
    ]);

    let read_cert = |name: &str| {
        use rustls::pki_types::pem::PemObject as _;
        chain(CertificateDer::from_pem_file(dir.join(name)).unwrap())
    };
    let store = TrustStore::from_paths(&dir.join("ca.pem"), Some(&dir.join("crl.der"))).unwrap();
    let authenticator = MtlsAuthenticator::new(Arc::new(store), MtlsPolicy::default());
    assert_eq!(
        authenticator.verify(&read_cert("alice.pem")).unwrap().id(),
        "alice"
    );
    assert_eq!(
        authenticator.verify(&read_cert("mallory.pem")),
        Err(MtlsError::Revoked)
    );
    let error = TrustStore::from_paths(&dir.join("ca.pem"), Some(&dir.join("crl-nonumber.pem")))
        .unwrap_err();
    assert!(error.to_string().contains("CRLNumber"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

struct Server {
    addr: SocketAddr,
    sink: Arc<Collect>,
    root: Ca,
}

/// A TLS server requiring client certificates from `root` (CRL revoking serial 3), allowing
/// only the organization `Example`, whose handshakes are recorded in its sink.
async fn server(crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>) -> Server {
    let root = ca("Handshake Root", None);
    let crls = if crls.is_empty() {
        vec![crl(&root, &[3])]
    } else {
        crls
    };
    server_with(root, crls).await
}

async fn server_with(
    root: Ca,
    crls: Vec<rustls::pki_types::CertificateRevocationListDer<'static>>,
) -> Server {
    let (server_cert, server_key) = pki::localhost(&root, 1);
    let material = TrustMaterial::new(std::slice::from_ref(&root.der), &crls, now()).unwrap();
    let authenticator = MtlsAuthenticator::new(
        Arc::new(TrustStore::new(material)),
        MtlsPolicy::default().allowed_organizations(vec!["Example".into()]),
    );
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
            authenticator,
        )])));
    let sink = Arc::new(Collect::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_with(
        listener,
        Arc::new(config),
        app,
        ServeOptions::new().audit(sink.clone()),
    ));
    Server { addr, sink, root }
}

/// Connects with `client` (or no certificate), sends one request and returns the status
/// or the error the client saw (a TLS 1.3 client learns of a refused certificate from the
/// alert that follows the handshake).
async fn attempt(
    server: &Server,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> Result<u16, String> {
    Client::new(&server.root.der)
        .maybe_identity(client)
        .tls13_only()
        .get(server.addr, "/whoami")
        .await
        .map(|response| response.status)
}

fn client(
    issuer: &Ca,
    cn: &str,
    serial: u64,
    configure: impl FnOnce(&mut rcgen::CertificateParams),
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    leaf_with_key(issuer, cn, serial, |p| {
        p.distinguished_name
            .push(DnType::OrganizationName, "Example");
        configure(p);
    })
}

/// Findings 18 and 19: a refused handshake (expired, untrusted, revoked, wrong EKU, a CA as
/// the leaf, a disallowed organization, no certificate) left no audit event and no log line,
/// and the alert said "unknown ca" where it should not. Each is now an authentication
/// failure with the peer's address, the certificate's subject, serial and fingerprint and
/// the precise reason, and the alert follows the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_are_recorded_with_a_matching_alert() {
    let server = server(Vec::new()).await;
    let root = &server.root;
    let stranger_ca = ca("Some Other CA", None);
    assert_eq!(
        attempt(&server, Some(client(root, "good", 2, |_| {})))
            .await
            .unwrap(),
        200
    );
    let cases: Vec<(&str, Option<_>, &str, &str)> = vec![
        (
            "expired",
            Some(client(root, "expired", 10, |p| {
                p.not_before = now() - Duration::days(30);
                p.not_after = now() - Duration::days(1);
            })),
            "CertificateExpired",
            "expired",
        ),
        (
            "untrusted",
            Some(client(&stranger_ca, "untrusted", 11, |_| {})),
            "UnknownCA",
            "not trusted",
        ),
        (
            "revoked",
            Some(client(root, "revoked", 3, |_| {})),
            "CertificateRevoked",
            "revoked",
        ),
        (
            "server-only",
            Some(client(root, "server-only", 12, |p| {
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            })),
            "UnsupportedCertificate",
            "clientAuth",
        ),
        (
            "ca-leaf",
            Some(client(root, "ca-leaf", 13, |p| {
                p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
                p.key_usages = vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::DigitalSignature,
                ];
            })),
            "UnsupportedCertificate",
            "CA certificate",
        ),
        (
            "other-org",
            Some(leaf_with_key(root, "other-org", 14, |p| {
                p.distinguished_name
                    .push(DnType::OrganizationName, "Elsewhere");
            })),
            "AccessDenied",
            "organization",
        ),
        (
            "no-certificate",
            None,
            "CertificateRequired",
            "TLS handshake failed",
        ),
    ];
    for (i, (name, certificate, alert, reason)) in cases.into_iter().enumerate() {
        let presented = certificate.as_ref().map(|(der, _)| der.clone());
        let error = attempt(&server, certificate).await.unwrap_err();
        assert!(error.contains(alert), "{name}: the client saw `{error}`");
        let events = server.sink.wait_for(i + 1).await;
        let event = events.last().unwrap();
        assert_eq!(
            (event.event_type, event.result),
            (AuditEventType::Authentication, AuditResult::Failure),
            "{name}"
        );
        assert_eq!(
            event.source_ip,
            Some(IpAddr::from([127, 0, 0, 1])),
            "{name}"
        );
        assert!(
            event.reason.as_deref().unwrap().contains(reason),
            "{name}: {:?}",
            event.reason
        );
        match presented {
            Some(der) => {
                let facts = portcullis_mtls::certificate_facts(&der);
                for (key, value) in facts {
                    assert_eq!(
                        event.metadata.get(key).and_then(|v| v.as_str()),
                        Some(value.as_str()),
                        "{name}: {key}"
                    );
                }
                assert!(
                    event.metadata["cert_subject"]
                        .as_str()
                        .unwrap()
                        .contains(name),
                    "{name}"
                );
            }
            None => assert!(!event.metadata.contains_key("cert_subject")),
        }
    }
}

/// Finding 19 for CRLs: an expired CRL (and no CRL for the issuer) made the alert "unknown
/// ca"; the CA is known, so the alert is `certificate_unknown`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_crl_is_not_an_unknown_ca() {
    let root = ca("Stale CRL Root", None);
    let stale = pki::crl(&root, &[], now() - Duration::hours(1));
    let server = server_with(root, vec![stale]).await;
    let error = attempt(&server, Some(client(&server.root, "stale", 20, |_| {})))
        .await
        .unwrap_err();
    assert!(error.contains("CertificateUnknown"), "{error}");
    let events = server.sink.wait_for(1).await;
    assert!(
        events[0].reason.as_deref().unwrap().contains("CRL"),
        "{:?}",
        events[0].reason
    );
}

/// A failure at the HTTP layer (a forwarded certificate) names the certificate too.
#[tokio::test]
async fn an_http_layer_refusal_names_the_certificate() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let root = ca("Layer Root", None);
    let revoked = leaf(&root, "layer-revoked", 3, |_| {});
    let material =
        TrustMaterial::new(std::slice::from_ref(&root.der), &[crl(&root, &[3])], now()).unwrap();
    let authenticator =
        MtlsAuthenticator::new(Arc::new(TrustStore::new(material)), MtlsPolicy::default());
    let sink = Arc::new(Collect::default());
    let app = Router::new()
        .route(
            "/whoami",
            get(|p: Principal| async move { p.id().to_owned() }),
        )
        .layer(
            tower::ServiceBuilder::new()
                .layer(portcullis_tower::AuditLayer::new(sink.clone()))
                .layer(AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(
                    authenticator,
                )]))),
        );
    let mut request = http::Request::get("/whoami")
        .body(axum::body::Body::empty())
        .unwrap();
    request.extensions_mut().insert(chain(revoked.clone()));
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 401);
    let _ = response.into_body().collect().await;
    let events = sink.wait_for(1).await;
    let metadata = &events[0].metadata;
    for (key, value) in portcullis_mtls::certificate_facts(&revoked) {
        assert_eq!(metadata[key].as_str(), Some(value.as_str()), "{key}");
    }
}

/// The exact forms proxies emit. Envoy's `x-forwarded-client-cert` with several elements (the
/// last is the one the nearest, trusted proxy added), a quoted `Subject` containing commas,
/// semicolons and escaped quotes, the `By`/`Hash`/`URI`/`DNS` keys of its documentation, and
/// a URL-encoded PEM; and a proxy given as IPv4 seen as its IPv4-mapped IPv6 address.
#[test]
fn envoy_and_address_forms() {
    let root = ca("Envoy Root", None);
    let client = leaf(&root, "envoy-client", 7, |_| {});
    let encoded: String = pem("CERTIFICATE", &client)
        .replace('\n', "%0A")
        .replace(' ', "%20");
    let envoy = ForwardedCertificates::envoy(vec!["127.0.0.1".parse().unwrap()]);
    let header = format!(
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688;\
         Subject=\"/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client\";URI=http://testclient.lyft.com,\
         By=spiffe://cluster.local/ns/default/sa/backend;Hash=9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;\
         Cert=\"{encoded}\";Subject=\"CN=Test \\\"Quoted\\\", Client;O=Lyft, Inc.\";\
         URI=spiffe://cluster.local/ns/default/sa/frontend;DNS=frontend.lyft.com"
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-forwarded-client-cert", header.parse().unwrap());
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    match envoy.extract(&headers, Some(mapped)).unwrap() {
        Forwarded::Certificates(chain) => assert_eq!(chain.end_entity(), Some(&client)),
        other => panic!("{other:?}"),
    }
    match envoy
        .extract(&headers, Some("127.0.0.1".parse().unwrap()))
        .unwrap()
    {
        Forwarded::Certificates(_) => {}
        other => panic!("{other:?}"),
    }
    // A proxy given as a mapped address matches its IPv4 form too; others do not.
    let mapped_proxy = ForwardedCertificates::envoy(vec![mapped.into()]);
    assert!(matches!(
        mapped_proxy.extract(&headers, Some("127.0.0.1".parse().unwrap())),
        Ok(Forwarded::Certificates(_))
    ));
    assert!(matches!(
        mapped_proxy.extract(&headers, Some("127.0.0.2".parse().unwrap())),
        Ok(Forwarded::Untrusted)
    ));
    // An element whose quote never ends is refused, not split in the middle of a value.
    headers.insert(
        "x-forwarded-client-cert",
        format!("Cert=\"{encoded}\";Subject=\"CN=a\\\"")
            .parse()
            .unwrap(),
    );
    assert!(envoy.extract(&headers, Some(mapped)).is_err());
}

/// A real nginx terminates TLS, verifies nothing itself beyond asking for a certificate, and
/// forwards `$ssl_client_escaped_cert` to the application behind it, which trusts it only
/// from the proxy's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_real_nginx() {
    let Some(nginx) = peer::which("nginx") else {
        peer::present("nginx", false);
        return;
    };
    let root = ca("Nginx Root", None);
    let (server_cert, server_key) = pki::localhost(&root, 1);
    let (good_cert, good_key) = leaf_with_key(&root, "nginx-client", 2, |_| {});
    let dir = peer::temp_dir("mtls-nginx");
    std::fs::write(dir.join("ca.pem"), pem("CERTIFICATE", &root.der)).unwrap();
    std::fs::write(dir.join("server.pem"), pem("CERTIFICATE", &server_cert)).unwrap();
    std::fs::write(
        dir.join("server.key"),
        pem("PRIVATE KEY", server_key.secret_der()),
    )
    .unwrap();

    // The application, on plain HTTP on loopback, behind the proxy.
    let material = TrustMaterial::new(std::slice::from_ref(&root.der), &[], now()).unwrap();
    let authenticator =
        MtlsAuthenticator::new(Arc::new(TrustStore::new(material)), MtlsPolicy::default());
    let sink = Arc::new(Collect::default());
    let app_sink = sink.clone();
    let app = move |proxies: Vec<portcullis_core::IpNet>| {
        Router::new()
            .route(
                "/whoami",
                get(|p: Principal| async move { p.id().to_owned() }),
            )
            .layer(AuthLayer::new(AuthenticatorChain::new(vec![Arc::new(
                authenticator.clone(),
            )])))
            .layer(
                ForwardedCertLayer::new(
                    ForwardedCertificates::nginx(
                        http::HeaderName::from_static("x-ssl-client-cert"),
                        proxies,
                    ),
                    Some(app_sink.clone()),
                )
                .peer_addr(connect_info),
            )
            .into_make_service_with_connect_info::<SocketAddr>()
    };
    let trusting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (trusting_port, wary_port) = (
        trusting.local_addr().unwrap().port(),
        wary.local_addr().unwrap().port(),
    );
    let trusting_app = app(vec!["127.0.0.1".parse().unwrap()]);
    let wary_app = app(vec!["10.9.9.9".parse().unwrap()]);
    tokio::spawn(async move { axum::serve(trusting, trusting_app).await });
    tokio::spawn(async move { axum::serve(wary, wary_app).await });

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "daemon off;\nmaster_process off;\npid {dir}/nginx.pid;\nerror_log stderr warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n\
               proxy_temp_path {dir}/proxy;\n  fastcgi_temp_path {dir}/fastcgi;\n\
               uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port} ssl;\n\
                 ssl_certificate {dir}/server.pem;\n    ssl_certificate_key {dir}/server.key;\n\
                 ssl_client_certificate {dir}/ca.pem;\n    ssl_verify_client on;\n\
                 location /trusting/ {{\n      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n\
                   proxy_pass http://127.0.0.1:{trusting_port}/;\n    }}\n\
                 location /wary/ {{\n      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n\
                   proxy_pass http://127.0.0.1:{wary_port}/;\n    }}\n  }}\n}}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(nginx)
        .args([
            "-p",
            &dir.display().to_string(),
            "-c",
            &dir.join("nginx.conf").display().to_string(),
        ])
        .spawn()
        .unwrap();
    let nginx_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(nginx_addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
    let through = |path: &'static str| {
        let root = root.der.clone();
        let good = (good_cert.clone(), good_key.clone_key());
        async move { https_get(nginx_addr, &root, good, path).await }
    };
    let trusted = through("/trusting/whoami").await;
    let refused = through("/wary/whoami").await;
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(trusted, (200, "nginx-client".to_owned()));
    assert_eq!(refused.0, 401);
    let events = sink.wait_for(1).await;
    assert_eq!(events[0].event_type, AuditEventType::SecurityViolation);
}

/// The peer address from axum's `ConnectInfo`.
fn connect_info(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

async fn https_get(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    client: (CertificateDer<'static>, PrivateKeyDer<'static>),
    path: &str,
) -> (u16, String) {
    let response = Client::new(root)
        .identity(vec![client.0], client.1)
        .get(addr, path)
        .await
        .unwrap();
    (response.status, response.body)
}
