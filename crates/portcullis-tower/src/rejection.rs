//! Converting the stack's rejections ([`portcullis_core::Rejection`]) into a service's body.

use http::Response;

/// Converts a rejection into the service's response body type.
pub(crate) fn convert<B: From<String>>(response: Response<String>) -> Response<B> {
    response.map(B::from)
}
