//! Tower layers for Portcullis: wrap a router you already have and get authentication,
//! authorization and an audit trail.
//!
//! ```
//! use std::sync::Arc;
//! use portcullis_core::{AuthenticatorChain, PolicyEngine};
//! use portcullis_tower::{AuditLayer, AuthLayer, AuthzLayer, PublicPaths, RouteTable};
//! # fn build(chain: AuthenticatorChain, engine: Arc<dyn PolicyEngine>, sink: Arc<dyn portcullis_core::AuditSink>) -> Result<(), Box<dyn std::error::Error>> {
//! let routes = RouteTable::new().route("GET /api/projects/{id}", "projects:read", "project:{id}")?;
//! let layers = tower::ServiceBuilder::new()
//!     .layer(AuditLayer::new(sink))
//!     .layer(AuthLayer::new(chain).public_paths(PublicPaths::aethera()))
//!     .layer(AuthzLayer::new(engine, routes));
//! # let _ = layers; Ok(()) }
//! ```
//!
//! Order matters: `AuditLayer` outermost (it sees every outcome), then `AuthLayer`, then
//! `AuthzLayer` (it needs the principal).
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
