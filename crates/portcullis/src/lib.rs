#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "core")]
#[cfg_attr(docsrs, doc(cfg(feature = "core")))]
pub use portcullis_core::*;

/// Resource-pattern RBAC (feature `rbac`).
#[cfg(feature = "rbac")]
#[cfg_attr(docsrs, doc(cfg(feature = "rbac")))]
pub use portcullis_rbac as rbac;

/// API keys hashed at rest (feature `apikey`).
#[cfg(feature = "apikey")]
#[cfg_attr(docsrs, doc(cfg(feature = "apikey")))]
pub use portcullis_apikey as apikey;

/// The audit trail (feature `audit`).
#[cfg(feature = "audit")]
#[cfg_attr(docsrs, doc(cfg(feature = "audit")))]
pub use portcullis_audit as audit;

/// JWT and OpenID Connect authentication, token issuing (feature `jwt`).
#[cfg(feature = "jwt")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwt")))]
pub use portcullis_jwt as jwt;

/// Tower layers: `AuthLayer`, `AuthzLayer`, `GuardLayer`, `AuditLayer` (feature `tower`).
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use portcullis_tower as tower;

/// axum extractors, guards and routers (feature `axum`).
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use portcullis_axum as axum;

/// Client-certificate (mTLS) authentication (feature `mtls`; TLS serving with `mtls-server`).
#[cfg(feature = "mtls")]
#[cfg_attr(docsrs, doc(cfg(feature = "mtls")))]
pub use portcullis_mtls as mtls;

/// PostgreSQL and SQLite stores: users, roles and permissions, API keys, token revocations,
/// audit, tenant row-level security (features `sqlx-postgres`, `sqlx-sqlite`).
#[cfg(any(feature = "sqlx-postgres", feature = "sqlx-sqlite"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "sqlx-postgres", feature = "sqlx-sqlite")))
)]
pub use portcullis_sqlx as sqlx;

/// Accounts: argon2id passwords, register and login without user enumeration, login
/// throttling, refresh-token families with reuse detection, logout everywhere, fresh
/// authentication (feature `identity`, with `sqlx-sqlite` or `sqlx-postgres`).
#[cfg(feature = "identity")]
#[cfg_attr(docsrs, doc(cfg(feature = "identity")))]
pub use portcullis_identity as identity;

/// The AmateRS-style configuration file and the Aethera environment, built into the whole
/// stack (feature `config`).
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub use config::{Config, ConfigError, Stack};

/// Serving an axum router with hyper's limits above Portcullis's (feature `config`).
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod serve;
