//! Follows README.md with the real `openssl`, starts the server on 127.0.0.1 and calls it
//! with a client certificate over TLS.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed assertion is the point"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use portcullis_testkit::peer;
use portcullis_testkit::tls::Client;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn openssl(dir: &Path, args: &str) {
    let status = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl {args}");
}

/// The README's commands (2048-bit keys to keep the test quick), plus certificates that
/// must be refused (another organization, no `clientAuth`).
fn make_certificates(certs: &Path) {
    std::fs::create_dir_all(certs.join("trusted_cas")).unwrap();
    let run = |args: Vec<&str>| {
        let status = Command::new("openssl")
            .args(args.clone())
            .current_dir(certs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(certs, "genrsa -out ca.key 2048");
    run(vec![
        "req",
        "-new",
        "-x509",
        "-days",
        "3650",
        "-key",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/O=Your Org/CN=Your Org CA",
    ]);
    std::fs::copy(certs.join("ca.crt"), certs.join("trusted_cas/ca.crt")).unwrap();
    openssl(certs, "genrsa -out server.key 2048");
    run(vec![
        "req",
        "-new",
        "-key",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        certs.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        certs,
        "x509 -req -days 365 -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile server.ext -out server.crt",
    );
    for (name, subject, ext) in [
        (
            "client",
            "/O=Your Org/CN=alice",
            "extendedKeyUsage=clientAuth\n",
        ),
        (
            "reader",
            "/O=Partner Org/CN=bob",
            "extendedKeyUsage=clientAuth\n",
        ),
        (
            "outsider",
            "/O=Other Org/CN=eve",
            "extendedKeyUsage=clientAuth\n",
        ),
        (
            "noeku",
            "/O=Your Org/CN=carol",
            "subjectKeyIdentifier=hash\n",
        ),
    ] {
        openssl(certs, &format!("genrsa -out {name}.key 2048"));
        run(vec![
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ]);
        std::fs::write(certs.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            certs,
            &format!(
                "x509 -req -days 365 -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -extfile {name}.ext -out {name}.crt"
            ),
        );
    }
}

async fn call(
    port: u16,
    certs: &Path,
    client: &str,
    method: &str,
) -> Result<(u16, String), String> {
    let root = CertificateDer::from_pem_file(certs.join("ca.crt")).unwrap();
    let chain = vec![CertificateDer::from_pem_file(certs.join(format!("{client}.crt"))).unwrap()];
    let key = PrivateKeyDer::from_pem_file(certs.join(format!("{client}.key"))).unwrap();
    let request = http::Request::builder()
        .method(method)
        .uri("/collections/datasets")
        .body(String::new())
        .unwrap();
    let response = Client::new(&root)
        .identity(chain, key)
        .send(([127, 0, 0, 1], port).into(), request)
        .await?;
    Ok((response.status, response.body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_certificates_work_end_to_end() {
    if !peer::program("openssl", &["version"]) {
        return;
    }
    let dir = peer::temp_dir("mtls-server");
    let certs = dir.join("certs");
    make_certificates(&certs);
    let example = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(example.join("roles.toml"), dir.join("roles.toml")).unwrap();
    std::fs::copy(
        example.join("mtls-server.toml"),
        dir.join("mtls-server.toml"),
    )
    .unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_mtls-server"))
        .args([
            "--config",
            dir.join("mtls-server.toml").to_str().unwrap(),
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let mut stdout = BufReader::new(server.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{line:?}"));
    std::thread::spawn(move || for _ in stdout.lines() {});

    let (status, body) = call(port, &certs, "client", "DELETE").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""by":"alice""#), "{body}");
    assert_eq!(call(port, &certs, "reader", "GET").await.unwrap().0, 200);
    assert_eq!(call(port, &certs, "reader", "PUT").await.unwrap().0, 403);
    assert!(
        call(port, &certs, "outsider", "GET").await.is_err(),
        "organization not allowed"
    );
    assert!(
        call(port, &certs, "noeku", "GET").await.is_err(),
        "no clientAuth EKU"
    );
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Kills the server however the test ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
