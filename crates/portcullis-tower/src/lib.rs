#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod audit;
mod auth;
mod authz;
mod ip;
mod record;
mod rejection;

pub use audit::{AuditFuture, AuditLayer, AuditService};
pub use auth::{AuthFuture, AuthLayer, AuthMode, AuthService, PublicPaths};
pub use authz::{
    AuthzFuture, AuthzLayer, AuthzService, GuardLayer, MapperFn, PathError, RequestMapper,
    RouteError, RouteTable, Unmapped,
};
pub use ip::client_ip;
pub use record::{AuthRecord, DecisionRecord};
