//! Runs the minimal example as a user would and calls it over HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed assertion is the point"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn request(address: &str, method: &str, path: &str, key: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect(address).unwrap();
    let key = key.map_or_else(String::new, |k| format!("X-API-Key: {k}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\n{key}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn guards_decide_with_the_aethera_roles() {
    let dir = std::env::temp_dir().join(format!("minimal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = env!("CARGO_MANIFEST_DIR");
    for file in ["api_keys.json", "roles.toml"] {
        std::fs::copy(format!("{example}/{file}"), dir.join(file)).unwrap();
    }
    let config = std::fs::read_to_string(format!("{example}/portcullis.toml"))
        .unwrap()
        .replace("port = 8081", "port = 0");
    std::fs::write(dir.join("portcullis.toml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_minimal"))
        .arg(dir.join("portcullis.toml"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("minimal listening on http://")
        .unwrap()
        .to_owned();
    let results = [
        request(&address, "GET", "/", None),
        request(&address, "GET", "/projects/42", None),
        request(&address, "GET", "/projects/42", Some("demo-viewer-key")),
        request(&address, "POST", "/projects", Some("demo-viewer-key")),
        request(&address, "POST", "/projects", Some("demo-analyst-key")),
        request(&address, "GET", "/projects/42", Some("not-a-key")),
    ];
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(results, [200, 401, 200, 403, 200, 401]);
}
