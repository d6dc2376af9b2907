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

use portcullis_testkit::peer;
use portcullis_testkit::pki::{self, Identity};
use portcullis_testkit::tls::Client;
use rustls_pki_types::CertificateDer;

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
    client: Option<Identity>,
    api_key: Option<&str>,
) -> Result<(u16, String), String> {
    let mut request = http::Request::get("/collections/datasets");
    if let Some(key) = api_key {
        request = request.header("x-api-key", key);
    }
    let response = Client::new(ca)
        .maybe_identity(client)
        .send(
            ([127, 0, 0, 1], port).into(),
            request.body(String::new()).unwrap(),
        )
        .await?;
    Ok((response.status, response.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_api_keys_and_tokens_on_the_same_routes() {
    let dir = peer::temp_dir("quickstart-mtls");
    std::fs::create_dir_all(dir.join("trusted_cas")).unwrap();
    let ca = pki::ca("Quickstart CA", None);
    std::fs::write(dir.join("trusted_cas/ca.pem"), &ca.pem).unwrap();
    let (server, server_key) = pki::localhost(&ca, 1);
    std::fs::write(dir.join("server.crt"), pki::pem("CERTIFICATE", &server)).unwrap();
    std::fs::write(
        dir.join("server.key"),
        pki::pem("PRIVATE KEY", server_key.secret_der()),
    )
    .unwrap();
    let (client, client_key) = pki::leaf_with_key(&ca, "svc-mtls", 2, |_| {});

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

    let ca_der = ca.der.clone();
    let (status, body) = get(port, &ca_der, Some((client, client_key)), None)
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
