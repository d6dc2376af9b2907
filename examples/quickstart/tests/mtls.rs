//! The quickstart with `[network]` TLS and `[auth.mtls]`: a client certificate, an API key and
//! a JWT all reach the same routes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed assertion is the point"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get(
    port: u16,
    ca: &CertificateDer<'static>,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    api_key: Option<&str>,
) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut request = http::Request::get("/collections/datasets").header("host", "localhost");
    if let Some(key) = api_key {
        request = request.header("x-api-key", key);
    }
    let response = sender
        .send_request(request.body(Empty::<Bytes>::new()).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_api_keys_and_tokens_on_the_same_routes() {
    let now = time::OffsetDateTime::now_utc();
    let dir = std::env::temp_dir().join(format!("quickstart-mtls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("trusted_cas")).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "Quickstart CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(30);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("trusted_cas/ca.pem"), ca_cert.pem()).unwrap();
    let issue = |cn: &str, eku: ExtendedKeyUsagePurpose, sans: Vec<SanType>| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        params.subject_alt_names = sans;
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(10);
        let key = KeyPair::generate().unwrap();
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca, &ca_key))
            .unwrap();
        (cert, key)
    };
    let (server, server_key) = issue(
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
        vec![SanType::DnsName("localhost".try_into().unwrap())],
    );
    std::fs::write(dir.join("server.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    let (client, client_key) = issue("svc-mtls", ExtendedKeyUsagePurpose::ClientAuth, Vec::new());

    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in ["roles.toml", "api_keys.json"] {
        std::fs::copy(example.join(file), dir.join(file)).unwrap();
    }
    let sample = std::fs::read_to_string(example.join("quickstart.toml")).unwrap();
    let config = format!(
        "{sample}\n[network]\ntls_enabled = true\ntls_cert = \"server.crt\"\ntls_key = \"server.key\"\nrequire_client_cert = false\n\n[auth.mtls]\nenabled = true\nca_certs_dir = \"trusted_cas\"\nverify_cn = true\n\n[auth.mtls.roles]\nsvc-mtls = [\"admin\"]\n"
    );
    std::fs::write(dir.join("quickstart.toml"), config).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .args(["--dev", "--port", "0", "--config"])
        .arg(dir.join("quickstart.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let server_process = Server(child);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let address = line
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("{line:?}"));
    let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
    std::thread::spawn(move || for _ in stdout.lines() {});

    let ca_der = ca_cert.der().clone();
    let client_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der()));
    let (status, body) = get(
        port,
        &ca_der,
        Some((client.der().clone(), client_key.clone_key())),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""by":"svc-mtls""#), "{body}");
    // No certificate: the API key still works over the same TLS listener.
    let (status, body) = get(port, &ca_der, None, Some("demo-reader-key"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // Neither: 401.
    assert_eq!(get(port, &ca_der, None, None).await.unwrap().0, 401);
    drop(server_process);
    std::fs::remove_dir_all(&dir).unwrap();
}
