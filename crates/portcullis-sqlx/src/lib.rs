#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(not(any(feature = "postgres", feature = "sqlite")))]
compile_error!("portcullis-sqlx needs the `postgres` feature, the `sqlite` feature, or both");

mod apikeys;
mod audit;
mod crypt;
mod db;
mod external;
mod rbac;
mod recovery;
mod revocations;
#[cfg(feature = "postgres")]
mod tenant;
mod tokens;
mod users;

pub use apikeys::SqlKeyStore;
pub use audit::{AuditCursor, AuditPage, InvalidCursor, MAX_PAGE, SqlAudit, SqlAuditWriter};
pub use crypt::{CryptError, Encryptor, Location};
pub use db::{Engine, Store, StoreError, StoreOptions};
pub use external::{LinkedIdentities, LinkedIdentity};
pub use rbac::{Effect, NewRole, POLICY_CHANNEL, RbacStore, WatchHandle, WatchOptions};
pub use recovery::{LoginChallenges, RecoveryCodes, TotpFactor, TotpFactors};
pub use revocations::{RevocationCache, RevocationOptions};
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use tenant::TenantTransaction;
pub use tokens::{RefreshGrant, RefreshTokens, Rotation, Session, Sessions};
pub use users::{NewUser, User, Users};
