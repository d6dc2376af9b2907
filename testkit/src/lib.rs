//! What the Portcullis tests share, so that each test file holds only its checks: the
//! third-party vectors ([`vectors`]), real peers that may be absent on a laptop but must run
//! under CI ([`peer`]), a test PKI made with rcgen ([`pki`]), a TLS client that speaks
//! HTTP/1.1 ([`tls`]), a real OpenID Provider ([`oidc`]), PyJWT ([`python`]) and the benchmark workloads ([`workloads`]). Not published; a dev-dependency only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed setup step should stop the test that asked for it"
)]

pub mod oidc;
pub mod peer;
pub mod pki;
pub mod python;
pub mod tls;
pub mod vectors;
pub mod workloads;
