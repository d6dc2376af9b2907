//! Helpers shared by the RBAC test crates (each uses a part of them).

#![allow(dead_code, reason = "each test crate uses a part of these helpers")]

use portcullis_core::{AuthMethod, OffsetDateTime, Principal, PrincipalKind};

/// A user principal holding `roles`, optionally in `tenant`.
pub(crate) fn principal_in(roles: &[&str], tenant: Option<&str>) -> Principal {
    let builder = Principal::builder(
        "p",
        PrincipalKind::User,
        AuthMethod::Jwt,
        OffsetDateTime::UNIX_EPOCH,
    )
    .roles(roles.iter().copied());
    match tenant {
        Some(t) => builder.tenant(t),
        None => builder,
    }
    .build()
    .unwrap_or_else(|e| panic!("test principal: {e}"))
}

/// A user principal holding `roles`.
pub(crate) fn principal(roles: &[&str]) -> Principal {
    principal_in(roles, None)
}
