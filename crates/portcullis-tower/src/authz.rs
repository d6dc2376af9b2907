//! [`AuthzLayer`] (a route table or closure → `PolicyEngine`) and [`GuardLayer`]
//! (`require_permission`, `require_role` on one route).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Method, Request, Response};
use pin_project_lite::pin_project;
use portcullis_core::{
    AccessRequest, AuthContext, AuthError, Decision, Grant, JsonRejection, Measurement, Metrics,
    PolicyEngine, Principal, Rejection as _, missing_auth_layer,
};
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;

use crate::record::DecisionRecord;
use crate::rejection::convert;

/// A route template that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Not `"METHOD /path"`.
    #[error("route `{0}` is not `METHOD /path` (`*` for any method)")]
    Shape(String),
    /// The method is not an HTTP method.
    #[error("route `{0}` has an invalid method")]
    Method(String),
    /// The path does not start with `/`.
    #[error("route `{0}`: the path must start with `/`")]
    Path(String),
    /// More `{param}`s than a route may capture.
    #[error("route `{0}`: at most 4 parameters")]
    TooManyParameters(String),
    /// The resource template has a `{` without its `}`.
    #[error("resource template `{0}` has an unclosed `{{`")]
    Unclosed(String),
    /// The resource template names a parameter the route does not capture.
    #[error("resource template `{resource}` names `{parameter}`, which the route does not capture")]
    UnknownParameter {
        /// The template.
        resource: String,
        /// The parameter.
        parameter: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
struct Route {
    method: Option<Method>,
    segments: Vec<Segment>,
    action: String,
    resource: String,
}

/// Why a request's path cannot be mapped to a resource: a captured segment that does not
/// decode to a plain name. The request is refused (403, audited with the reason), never
/// treated as unmapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// A `%` not followed by two hexadecimal digits.
    #[error("a path segment has a malformed percent-encoding")]
    BadPercentEncoding,
    /// The decoded bytes are not UTF-8 (overlong forms such as `%C0%AF` included).
    #[error("a path segment does not decode to UTF-8")]
    NotUtf8,
    /// The decoded segment contains a resource separator (`:`).
    #[error("a path segment contains a resource separator")]
    Separator,
    /// The decoded segment contains a `*`.
    #[error("a path segment contains a wildcard")]
    Wildcard,
    /// The decoded segment contains a `/` (`%2F`).
    #[error("a path segment contains an encoded `/`")]
    Slash,
    /// The decoded segment contains a control character (`%00`, ...).
    #[error("a path segment contains a control character")]
    ControlCharacter,
}

/// Maps a request to the (action, resource) to ask the policy about.
pub trait RequestMapper: fmt::Debug + Send + Sync + 'static {
    /// `Ok(None)` when the request matches no rule; an error when it matches one but its
    /// path cannot be turned into a resource name (the request is then refused).
    fn map(&self, method: &Method, path: &str) -> Result<Option<(String, String)>, PathError>;
}

/// Method + path templates → (action, resource templates):
/// `GET /api/projects/{id}` → `projects:read` on `project:{id}`.
///
/// ```
/// use portcullis_tower::{RequestMapper, RouteTable};
///
/// let routes = RouteTable::new()
///     .route("GET /collections/{name}", "read", "collection:{name}")?
///     .route("PUT /collections/{name}", "write", "collection:{name}")?;
/// let mapped = routes.map(&http::Method::PUT, "/collections/users");
/// assert_eq!(mapped, Ok(Some(("write".to_owned(), "collection:users".to_owned()))));
/// // Captured segments are percent-decoded; one that decodes to a separator is refused.
/// let mapped = routes.map(&http::Method::GET, "/collections/caf%C3%A9");
/// assert_eq!(mapped, Ok(Some(("read".to_owned(), "collection:café".to_owned()))));
/// assert!(routes.map(&http::Method::GET, "/collections/a%3Ab").is_err());
/// # Ok::<(), portcullis_tower::RouteError>(())
/// ```
///
/// A `{param}` segment is percent-decoded as UTF-8 (strictly: overlong forms are refused)
/// before it goes into the resource; a decoded segment containing `:`, `*`, `/` or a control
/// character is refused with a [`PathError`]. Literal segments are compared as sent.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

fn split_path(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl RouteTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route: `"METHOD /path/{param}"` (`*` for any method), the action, and the
    /// resource template (`{param}` replaced by the path segment).
    pub fn route(mut self, route: &str, action: &str, resource: &str) -> Result<Self, RouteError> {
        let (method, path) = route
            .split_once(' ')
            .ok_or_else(|| RouteError::Shape(route.to_owned()))?;
        let method = match method {
            "*" => None,
            m => Some(
                Method::from_bytes(m.as_bytes())
                    .map_err(|_| RouteError::Method(route.to_owned()))?,
            ),
        };
        if !path.starts_with('/') {
            return Err(RouteError::Path(route.to_owned()));
        }
        let segments: Vec<Segment> = split_path(path)
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) if !name.is_empty() => Segment::Param(name.to_owned()),
                    _ => Segment::Literal(s.to_owned()),
                },
            )
            .collect();
        let params: Vec<&str> = segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(p) => Some(p.as_str()),
                Segment::Literal(_) => None,
            })
            .collect();
        if params.len() > 4 {
            return Err(RouteError::TooManyParameters(route.to_owned()));
        }
        let mut rest = resource;
        while let Some(start) = rest.find('{') {
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| RouteError::Unclosed(resource.to_owned()))?;
            let name = &rest[start + 1..start + end];
            if !params.contains(&name) {
                return Err(RouteError::UnknownParameter {
                    resource: resource.to_owned(),
                    parameter: name.to_owned(),
                });
            }
            rest = &rest[start + end + 1..];
        }
        self.routes.push(Route {
            method,
            segments,
            action: action.to_owned(),
            resource: resource.to_owned(),
        });
        Ok(self)
    }
}

impl RequestMapper for RouteTable {
    fn map(&self, method: &Method, path: &str) -> Result<Option<(String, String)>, PathError> {
        'routes: for route in &self.routes {
            if route.method.as_ref().is_some_and(|m| m != method) {
                continue;
            }
            let mut parts = split_path(path);
            let mut params: [(&str, &str); 4] = [("", ""); 4];
            let mut count = 0;
            for segment in &route.segments {
                let Some(part) = parts.next() else {
                    continue 'routes;
                };
                match segment {
                    Segment::Literal(literal) if literal == part => {}
                    Segment::Literal(_) => continue 'routes,
                    Segment::Param(name) => {
                        let Some(slot) = params.get_mut(count) else {
                            continue 'routes;
                        };
                        *slot = (name.as_str(), part);
                        count += 1;
                    }
                }
            }
            if parts.next().is_some() {
                continue;
            }
            let mut decoded: [(&str, String); 4] = Default::default();
            for (slot, (name, raw)) in decoded.iter_mut().zip(params.iter().take(count)) {
                *slot = (name, decode_segment(raw)?);
            }
            let decoded: Vec<(&str, &str)> = decoded
                .iter()
                .take(count)
                .map(|(name, value)| (*name, value.as_str()))
                .collect();
            return Ok(Some((
                route.action.clone(),
                fill(&route.resource, &decoded),
            )));
        }
        Ok(None)
    }
}

/// A path segment, percent-decoded as strict UTF-8, refused when it would change the shape of
/// a resource name.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = |at: usize| bytes.get(at).and_then(|b| char::from(*b).to_digit(16));
            let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) else {
                return Err(PathError::BadPercentEncoding);
            };
            out.push(u8::try_from(high * 16 + low).map_err(|_| PathError::BadPercentEncoding)?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| PathError::NotUtf8)?;
    for c in decoded.chars() {
        match c {
            ':' => return Err(PathError::Separator),
            '*' => return Err(PathError::Wildcard),
            '/' => return Err(PathError::Slash),
            c if c.is_control() => return Err(PathError::ControlCharacter),
            _ => {}
        }
    }
    Ok(decoded)
}

/// Replaces each `{name}` of `template` by its value.
fn fill(template: &str, params: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let (before, after) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = after.find('}') else {
            out.push_str(after);
            return out;
        };
        let name = after.get(1..end).unwrap_or("");
        match params.iter().find(|(n, _)| *n == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(after.get(..=end).unwrap_or("")),
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// A closure as a [`RequestMapper`].
pub struct MapperFn<F>(pub F);

impl<F> fmt::Debug for MapperFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MapperFn")
    }
}

impl<F> RequestMapper for MapperFn<F>
where
    F: Fn(&Method, &str) -> Option<(String, String)> + Send + Sync + 'static,
{
    fn map(&self, method: &Method, path: &str) -> Result<Option<(String, String)>, PathError> {
        Ok((self.0)(method, path))
    }
}

/// What to do with requests the mapper does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unmapped {
    /// 403 (deny by default).
    #[default]
    Deny,
    /// Pass to the service without a decision: only for routers whose unmapped routes are all
    /// guarded otherwise (with [`GuardLayer`]) or public. A route added later without a guard
    /// is open, hence the name.
    InsecurePass,
}

/// The request as a decider sees it.
struct Asked<'r> {
    method: &'r Method,
    path: &'r str,
    principal: Option<&'r Principal>,
    public: bool,
}

/// What a decider concluded.
enum Ruling {
    /// Not this decider's business (a public path, an unmapped request it lets through).
    Pass,
    /// A decision, allow or deny, with what it was about.
    Decided(DecisionRecord),
    /// A decision is needed and there is no principal: 401.
    Unauthenticated,
}

/// Decides one request: maps it (once) and asks the engine.
trait Decide: fmt::Debug + Send + Sync + 'static {
    fn decide(&self, asked: &Asked<'_>) -> Ruling;
}

#[derive(Debug)]
struct PolicyDecider {
    engine: Arc<dyn PolicyEngine>,
    mapper: Arc<dyn RequestMapper>,
    unmapped: Unmapped,
}

impl Decide for PolicyDecider {
    fn decide(&self, asked: &Asked<'_>) -> Ruling {
        // Public endpoints need no permission.
        if asked.public {
            return Ruling::Pass;
        }
        let mapped = self.mapper.map(asked.method, asked.path);
        if matches!(mapped, Ok(None)) && self.unmapped == Unmapped::InsecurePass {
            return Ruling::Pass;
        }
        let Some(principal) = asked.principal else {
            return Ruling::Unauthenticated;
        };
        let record = match mapped {
            Ok(Some((action, resource))) => {
                let decision = self
                    .engine
                    .evaluate(&AccessRequest::new(principal, &action, &resource));
                DecisionRecord {
                    action,
                    resource,
                    decision,
                }
            }
            // Unmapped: denied by default.
            Ok(None) => DecisionRecord {
                action: asked.method.as_str().to_owned(),
                resource: asked.path.to_owned(),
                decision: Decision::no_match(),
            },
            // A path that cannot be mapped is refused, never passed as unmapped.
            Err(error) => DecisionRecord {
                action: asked.method.as_str().to_owned(),
                resource: asked.path.to_owned(),
                decision: Decision::invalid_request(error.to_string()),
            },
        };
        Ruling::Decided(record)
    }
}

/// Asks a [`PolicyEngine`] about every request, mapped by a [`RequestMapper`]; 403
/// `Permission required` on deny. Requests on public paths (per the [`AuthContext`] the
/// auth layer left) pass. Put it inside (after) the `AuthLayer`: it answers the way the
/// `AuthLayer`'s [`Rejection`](portcullis_core::Rejection) does, and a request that no
/// `AuthLayer` handled gets the same 500 as the extractors.
#[derive(Debug, Clone)]
pub struct AuthzLayer {
    decider: Arc<dyn Decide>,
    metrics: Option<Arc<dyn Metrics>>,
}

impl AuthzLayer {
    /// Authorization with `engine`, mapping requests with `mapper`; unmapped requests are
    /// denied.
    pub fn new(engine: Arc<dyn PolicyEngine>, mapper: impl RequestMapper) -> Self {
        Self::with_unmapped(engine, mapper, Unmapped::Deny)
    }

    /// Like [`AuthzLayer::new`] with a policy for unmapped requests.
    pub fn with_unmapped(
        engine: Arc<dyn PolicyEngine>,
        mapper: impl RequestMapper,
        unmapped: Unmapped,
    ) -> Self {
        Self {
            decider: Arc::new(PolicyDecider {
                engine,
                mapper: Arc::new(mapper),
                unmapped,
            }),
            metrics: None,
        }
    }

    /// Counts every decision ([`Measurement::Decision`]).
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

#[derive(Debug)]
enum GuardKind {
    Permission {
        engine: Arc<dyn PolicyEngine>,
        permission: String,
    },
    Role {
        engine: Arc<dyn PolicyEngine>,
        role: String,
    },
}

impl Decide for GuardKind {
    /// A guard always decides, public path or not.
    fn decide(&self, asked: &Asked<'_>) -> Ruling {
        let Some(principal) = asked.principal else {
            return Ruling::Unauthenticated;
        };
        Ruling::Decided(match self {
            Self::Permission { engine, permission } => {
                let resource = permission
                    .split_once(':')
                    .map_or(permission.as_str(), |(r, _)| r);
                let decision =
                    engine.evaluate(&AccessRequest::new(principal, permission, resource));
                DecisionRecord {
                    action: permission.clone(),
                    resource: resource.to_owned(),
                    decision,
                }
            }
            Self::Role { engine, role } => {
                let decision = if engine.holds_role(principal, role) {
                    Decision::allow(Grant::new(
                        Arc::from(role.as_str()),
                        Arc::from([]),
                        Arc::from("require_role"),
                    ))
                } else {
                    Decision::no_match()
                };
                DecisionRecord {
                    action: format!("role:{role}"),
                    resource: String::new(),
                    decision,
                }
            }
        })
    }
}

/// A guard for one route (axum `route_layer`): the Aethera `require_permission` and
/// `require_role`.
///
/// A guard always decides, also on a path the `AuthLayer` treats as public: a request without
/// a principal gets 401, one whose principal lacks the permission or role gets 403.
#[derive(Debug, Clone)]
pub struct GuardLayer {
    inner: AuthzLayer,
}

impl GuardLayer {
    /// Requires an Aethera-style permission (`projects:create`): the action is the
    /// permission, the resource its part before `:`.
    pub fn require_permission(
        engine: Arc<dyn PolicyEngine>,
        permission: impl Into<String>,
    ) -> Self {
        Self::from_kind(GuardKind::Permission {
            engine,
            permission: permission.into(),
        })
    }

    /// Requires that the principal holds the role, as `engine` assigns roles
    /// ([`PolicyEngine::holds_role`]: the RBAC engine counts its default role for a principal
    /// that holds none; inheritance does not count).
    pub fn require_role(engine: Arc<dyn PolicyEngine>, role: impl Into<String>) -> Self {
        Self::from_kind(GuardKind::Role {
            engine,
            role: role.into(),
        })
    }

    fn from_kind(kind: GuardKind) -> Self {
        Self {
            inner: AuthzLayer {
                decider: Arc::new(kind),
                metrics: None,
            },
        }
    }

    /// Counts every decision ([`Measurement::Decision`]).
    #[must_use]
    pub fn metrics(self, metrics: Arc<dyn Metrics>) -> Self {
        Self {
            inner: self.inner.metrics(metrics),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = AuthzService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.inner.layer(inner)
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = AuthzService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthzService {
            inner,
            decider: Arc::clone(&self.decider),
            metrics: self.metrics.clone(),
        }
    }
}

/// The service made by [`AuthzLayer`] and [`GuardLayer`].
#[derive(Debug, Clone)]
pub struct AuthzService<S> {
    inner: S,
    decider: Arc<dyn Decide>,
    metrics: Option<Arc<dyn Metrics>>,
}

pin_project! {
    #[project = AuthzProj]
    enum AuthzState<F, B> {
        Calling { #[pin] future: F, record: Option<DecisionRecord> },
        Refused { response: Option<Response<B>> },
    }
}

pin_project! {
    /// The response future of [`AuthzService`].
    pub struct AuthzFuture<F, B> {
        #[pin]
        state: AuthzState<F, B>,
    }
}

impl<F, B> AuthzFuture<F, B> {
    fn calling(future: F, record: Option<DecisionRecord>) -> Self {
        Self {
            state: AuthzState::Calling { future, record },
        }
    }

    fn refused(response: Response<B>) -> Self {
        Self {
            state: AuthzState::Refused {
                response: Some(response),
            },
        }
    }
}

impl<F, B> fmt::Debug for AuthzFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthzFuture")
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for AuthzService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<String>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = AuthzFuture<S::Future, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        enum Verdict {
            Pass(Option<DecisionRecord>),
            Refuse(Response<String>, Option<DecisionRecord>),
        }
        let verdict = {
            match request.extensions().get::<AuthContext>() {
                // No authentication layer ran: a programming error, answered as the
                // extractors answer it, never a pass.
                None => {
                    tracing::error!(
                        target: "portcullis.authz",
                        "no AuthLayer handled this request; put the AuthLayer outside the AuthzLayer and guards"
                    );
                    Verdict::Refuse(missing_auth_layer(), None)
                }
                Some(context) => {
                    let asked = Asked {
                        method: request.method(),
                        path: request.uri().path(),
                        principal: request.extensions().get::<Principal>(),
                        public: context.is_public(),
                    };
                    let rejection = context.rejection();
                    let span = tracing::info_span!(
                        target: "portcullis.authz",
                        "portcullis.authz",
                        action = Empty,
                        resource = Empty,
                        decision = Empty,
                        reason = Empty,
                        latency_us = Empty,
                    );
                    let started = Instant::now();
                    let ruling = span.in_scope(|| self.decider.decide(&asked));
                    observe(&span, self.metrics.as_deref(), &ruling, started.elapsed());
                    match ruling {
                        Ruling::Pass => Verdict::Pass(None),
                        Ruling::Decided(record) if record.decision.is_allowed() => {
                            Verdict::Pass(Some(record))
                        }
                        Ruling::Decided(record) => {
                            Verdict::Refuse(rejection.forbidden(), Some(record))
                        }
                        Ruling::Unauthenticated => Verdict::Refuse(
                            rejection.unauthenticated(
                                &AuthError::missing_credentials(),
                                context.challenges(),
                            ),
                            None,
                        ),
                    }
                }
            }
        };
        match verdict {
            Verdict::Pass(record) => AuthzFuture::calling(self.inner.call(request), record),
            Verdict::Refuse(response, record) => {
                let mut response = convert(response);
                if let Some(record) = record {
                    response.extensions_mut().insert(record);
                }
                AuthzFuture::refused(response)
            }
        }
    }
}

impl<F, B, E> Future for AuthzFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<String>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            AuthzProj::Calling { future, record } => {
                let mut response = ready!(future.poll(cx))?;
                if let Some(record) = record.take() {
                    response.extensions_mut().insert(record);
                }
                Poll::Ready(Ok(response))
            }
            AuthzProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| convert(JsonRejection.unavailable())))),
        }
    }
}

/// Records a ruling on the request's span and in the metrics.
fn observe(
    span: &tracing::Span,
    metrics: Option<&dyn Metrics>,
    ruling: &Ruling,
    latency: std::time::Duration,
) {
    let decision = match ruling {
        Ruling::Pass => "pass",
        Ruling::Unauthenticated => "unauthenticated",
        Ruling::Decided(record) => {
            span.record("action", record.action.as_str());
            span.record("resource", record.resource.as_str());
            span.record("reason", tracing::field::display(&record.decision));
            if let Some(metrics) = metrics {
                metrics.record(Measurement::Decision(&record.decision));
            }
            record.decision.reason_code()
        }
    };
    span.record("decision", decision);
    span.record(
        "latency_us",
        u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(text: &str) -> String {
        text.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    #[test]
    fn every_encoded_name_decodes_back() {
        for name in ["plain", "hello world", "café", "日本", "a.b-c_d~e", "🦀"] {
            assert_eq!(decode_segment(&encode(name)).unwrap(), name);
            assert_eq!(decode_segment(name).unwrap(), name);
        }
    }

    #[test]
    fn every_escape_is_decoded_or_refused() {
        for byte in 0..=255u8 {
            let raw = format!("x%{byte:02x}y");
            match decode_segment(&raw) {
                Ok(decoded) => {
                    assert!(byte.is_ascii() && !byte.is_ascii_control(), "{raw}");
                    assert!(!matches!(byte, b':' | b'*' | b'/'), "{raw}");
                    assert_eq!(decoded.as_bytes(), [b'x', byte, b'y']);
                }
                Err(error) => assert!(
                    !byte.is_ascii()
                        || byte.is_ascii_control()
                        || matches!(byte, b':' | b'*' | b'/'),
                    "{raw}: {error}"
                ),
            }
        }
        for malformed in ["%", "%4", "%g0", "a%", "%%41"] {
            assert_eq!(
                decode_segment(malformed),
                Err(PathError::BadPercentEncoding),
                "{malformed}"
            );
        }
    }
}
