//! [`AuditLayer`]: exactly one audit event per request.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response, header};
use pin_project_lite::pin_project;
use portcullis_core::{
    AuditError, AuditEvent, AuditEventType, AuditResult, AuditSink, Clock, IdSource, IpNet,
    JsonRejection, Measurement, Metrics, PeerAddrFn, RandomIds, Rejection, SystemClock,
    socket_addr_peer,
};
use tower_layer::Layer;
use tower_service::Service;
use tracing::field::Empty;

use crate::ip::client_ip;
use crate::record::{AuthRecord, DecisionRecord};
use crate::rejection::convert;

/// Records one [`AuditEvent`] per request, after the response is known: the principal, the
/// authentication outcome, the decision and its reason, method, path, status, client IP
/// (forwarded headers honoured only from trusted proxies), user agent and latency.
///
/// When the sink refuses the event (a fail-closed buffer that is full, a broken disk), the
/// response is replaced by 503: nothing is served that the audit trail did not accept. Put
/// it outside (before) the `AuthLayer`.
#[derive(Clone)]
pub struct AuditLayer {
    sink: Arc<dyn AuditSink>,
    trusted_proxies: Arc<[IpNet]>,
    peer: PeerAddrFn,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
    rejection: Arc<dyn Rejection>,
    metrics: Option<Arc<dyn Metrics>>,
}

impl fmt::Debug for AuditLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLayer")
            .field("sink", &self.sink)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl AuditLayer {
    /// Records into `sink`.
    pub fn new(sink: Arc<dyn AuditSink>) -> Self {
        Self {
            sink,
            trusted_proxies: Arc::from([]),
            peer: socket_addr_peer,
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            rejection: Arc::new(JsonRejection),
            metrics: None,
        }
    }

    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: Vec<IpNet>) -> Self {
        self.trusted_proxies = proxies.into();
        self
    }

    /// How to find the peer address (default [`socket_addr_peer`]).
    #[must_use]
    pub fn peer_addr(mut self, peer: PeerAddrFn) -> Self {
        self.peer = peer;
        self
    }

    /// The clock for event timestamps.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Where event ids come from (default [`RandomIds`]: UUID v4s from the CSPRNG).
    #[must_use]
    pub fn ids(mut self, ids: Arc<dyn IdSource>) -> Self {
        self.ids = ids;
        self
    }

    /// Counts every event recorded or refused ([`Measurement::AuditEvent`]).
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How the 503 looks.
    #[must_use]
    pub fn rejection(mut self, rejection: impl Rejection) -> Self {
        self.rejection = Arc::new(rejection);
        self
    }
}

impl<S> Layer<S> for AuditLayer {
    type Service = AuditService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuditService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`AuditLayer`].
#[derive(Clone)]
pub struct AuditService<S> {
    inner: S,
    layer: AuditLayer,
}

impl<S: fmt::Debug> fmt::Debug for AuditService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

struct RequestInfo {
    method: String,
    path: String,
    user_agent: Option<String>,
    source_ip: Option<IpAddr>,
    started: Instant,
}

type BoxRecord = Pin<Box<dyn Future<Output = Result<(), AuditError>> + Send>>;

pin_project! {
    #[project = AuditProj]
    enum AuditState<F, B, E> {
        Calling { #[pin] future: F },
        Recording { record: BoxRecord, outcome: Option<Result<Response<B>, E>> },
    }
}

pin_project! {
    /// The response future of [`AuditService`].
    pub struct AuditFuture<F, B, E> {
        #[pin]
        state: AuditState<F, B, E>,
        info: Option<RequestInfo>,
        layer: AuditLayer,
        // `portcullis.audit`: the parent of the other layers' spans, entered on every poll.
        span: tracing::Span,
    }
}

impl<F, B, E> fmt::Debug for AuditFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditFuture")
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for AuditService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: From<String>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = AuditFuture<S::Future, ResB, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let peer = (self.layer.peer)(request.extensions());
        let info = RequestInfo {
            method: request.method().as_str().to_owned(),
            path: request.uri().path().to_owned(),
            user_agent: request
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(512).collect()),
            source_ip: client_ip(peer, request.headers(), &self.layer.trusted_proxies),
            started: Instant::now(),
        };
        let span = tracing::info_span!(
            target: "portcullis.audit",
            "portcullis.audit",
            method = info.method.as_str(),
            path = info.path.as_str(),
            status = Empty,
            event_type = Empty,
            result = Empty,
            recorded = Empty,
            latency_us = Empty,
        );
        let future = span.in_scope(|| self.inner.call(request));
        AuditFuture {
            state: AuditState::Calling { future },
            info: Some(info),
            layer: self.layer.clone(),
            span,
        }
    }
}

/// The event type and result of a request, from what the layers recorded: a decision makes
/// it an authorization event; otherwise it is an authentication event whose result is the
/// authentication outcome. A handler's own failure (a 500 for an authenticated principal)
/// does not turn a successful authentication into a failed one: the status says what the
/// handler did. No response at all (the service failed) or a 5xx with nothing recorded is an
/// `error`.
fn classify(
    responded: bool,
    status: u16,
    auth: Option<&AuthRecord>,
    decision: Option<&DecisionRecord>,
) -> (AuditEventType, AuditResult) {
    use AuditEventType::{Authentication, Authorization};
    match (auth, decision) {
        (_, Some(d)) if d.decision.is_allowed() => (Authorization, AuditResult::Allowed),
        (_, Some(_)) => (Authorization, AuditResult::Denied),
        _ if !responded => (Authentication, AuditResult::Error),
        // A dependency of authentication was down.
        (Some(AuthRecord::Rejected { .. }), None) if status == 503 => {
            (Authentication, AuditResult::Error)
        }
        (Some(AuthRecord::Rejected { .. }), None) => (Authentication, AuditResult::Failure),
        (Some(_), None) => (Authentication, AuditResult::Success),
        // Nothing recorded: a layer refused without a record (a guard's 401), or failed.
        (None, None) if status == 401 => (Authentication, AuditResult::Failure),
        (None, None) if status >= 500 => (Authentication, AuditResult::Error),
        (None, None) => (Authentication, AuditResult::Success),
    }
}

fn build_event<B>(
    layer: &AuditLayer,
    info: RequestInfo,
    response: Option<&Response<B>>,
) -> AuditEvent {
    let status = response.map_or(500, |r| r.status().as_u16());
    let auth = response.and_then(|r| r.extensions().get::<AuthRecord>());
    let decision = response.and_then(|r| r.extensions().get::<DecisionRecord>());
    let (event_type, result) = classify(response.is_some(), status, auth, decision);
    let mut event = AuditEvent::new(layer.ids.event_id(), event_type, result, layer.clock.now())
        .with_http(info.method, info.path, Some(status))
        .with_latency(info.started.elapsed());
    if let Some(ip) = info.source_ip {
        event = event.with_source_ip(ip);
    }
    if let Some(agent) = info.user_agent {
        event = event.with_user_agent(agent);
    }
    match auth {
        Some(AuthRecord::Authenticated {
            principal,
            authenticator,
        }) => {
            event = event
                .with_principal(principal)
                .with_auth_method(principal.auth_method())
                .with_metadata("authenticator", authenticator.as_str());
        }
        Some(AuthRecord::Rejected {
            reason,
            authenticator,
            details,
        }) => {
            event = event
                .with_reason(reason.as_str())
                .with_metadata("authn", "rejected");
            if let Some(authenticator) = authenticator {
                event = event.with_metadata("authenticator", authenticator.as_str());
            }
            for (name, value) in details {
                event = event.with_metadata(*name, value.as_str());
            }
        }
        Some(AuthRecord::Anonymous) | None => event = event.with_metadata("authn", "anonymous"),
    }
    if let Some(record) = decision {
        event = event
            .with_action(record.action.as_str())
            .with_resource(&record.resource)
            .with_decision(&record.decision);
    }
    event
}

impl<F, B, E> Future for AuditFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<String>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        loop {
            match this.state.as_mut().project() {
                AuditProj::Calling { future } => {
                    let outcome = ready!(future.poll(cx));
                    let Some(info) = this.info.take() else {
                        // Cannot happen (the information is taken once, here); if it did, the
                        // response would go out unaudited: refuse it like any impossible state.
                        tracing::error!(
                            target: "portcullis.audit",
                            "request information missing when the response arrived; answering 503"
                        );
                        return Poll::Ready(Ok(convert(this.layer.rejection.unavailable())));
                    };
                    let event = build_event(this.layer, info, outcome.as_ref().ok());
                    this.span.record("event_type", event.event_type.as_str());
                    this.span.record("result", event.result.as_str());
                    if let Some(status) = event.response_status {
                        this.span.record("status", status);
                    }
                    if let Some(latency) = event.latency_us {
                        this.span.record("latency_us", latency);
                    }
                    let sink = Arc::clone(&this.layer.sink);
                    let record: BoxRecord = Box::pin(async move { sink.record(event).await });
                    this.state.set(AuditState::Recording {
                        record,
                        outcome: Some(outcome),
                    });
                }
                AuditProj::Recording { record, outcome } => {
                    let recorded = ready!(record.as_mut().poll(cx));
                    this.span.record("recorded", recorded.is_ok());
                    if let Some(metrics) = &this.layer.metrics {
                        metrics.record(Measurement::AuditEvent {
                            recorded: recorded.is_ok(),
                        });
                    }
                    if let Err(error) = &recorded {
                        tracing::error!(
                            target: "portcullis.audit",
                            %error,
                            "the audit sink refused an event; the response is replaced by 503"
                        );
                    }
                    let outcome = outcome.take();
                    return Poll::Ready(match (recorded, outcome) {
                        (Ok(()), Some(outcome)) => outcome,
                        // Fail closed: what the audit trail refused is not served.
                        (Err(_), Some(Ok(_))) => Ok(convert(this.layer.rejection.unavailable())),
                        (_, None) => {
                            tracing::error!(
                                target: "portcullis.audit",
                                "response missing after recording; answering 503"
                            );
                            Ok(convert(this.layer.rejection.unavailable()))
                        }
                        (Err(_), Some(Err(error))) => Err(error),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Ready;

    use portcullis_core::AuditError;

    use super::*;

    #[derive(Debug)]
    struct Discard;

    #[async_trait::async_trait]
    impl AuditSink for Discard {
        async fn record(&self, _event: AuditEvent) -> Result<(), AuditError> {
            Ok(())
        }

        async fn flush(&self) -> Result<(), AuditError> {
            Ok(())
        }
    }

    fn poll_now<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => output,
            Poll::Pending => panic!("the future should be ready"),
        }
    }

    /// Outside testing found the response served unaudited when the request information was
    /// missing. It cannot be missing through the public API; a future built without it now
    /// answers 503 instead of the response.
    #[test]
    fn a_response_without_its_request_information_is_refused() {
        let future: AuditFuture<Ready<Result<Response<String>, ()>>, String, ()> = AuditFuture {
            state: AuditState::Calling {
                future: std::future::ready(Ok(Response::new("secret data".to_owned()))),
            },
            info: None,
            layer: AuditLayer::new(Arc::new(Discard)),
            span: tracing::Span::none(),
        };
        let response = poll_now(future).unwrap();
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        assert_ne!(response.body(), "secret data");
    }
}
