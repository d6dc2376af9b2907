//! What the layers tell the audit layer, through the response extensions (the request is
//! gone by the time the response comes back).

use portcullis_core::{Decision, Principal};

/// The authentication outcome of a request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AuthRecord {
    /// Credentials were accepted.
    Authenticated {
        /// Who.
        principal: Principal,
        /// Which authenticator (`"jwt"`, `"api_key"`, ...).
        authenticator: String,
    },
    /// No credentials (a public path, or optional mode).
    Anonymous,
    /// Credentials were refused; the precise reason (never shown to the client).
    Rejected {
        /// The reason, for operators.
        reason: String,
        /// The authenticator that refused them, if known.
        authenticator: Option<String>,
        /// Facts about the refused credential ([`AuthError::details`](portcullis_core::AuthError::details):
        /// a certificate's subject, serial and fingerprint), added to the audit event.
        details: Vec<(&'static str, String)>,
    },
}

/// The authorization decision of a request.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    /// The action asked for.
    pub action: String,
    /// The resource.
    pub resource: String,
    /// The decision, with its reason.
    pub decision: Decision,
}
