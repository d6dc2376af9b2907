//! Compile-time proof that the public types which cross threads are `Send + Sync`.

use portcullis_core::*;

const fn assert_send_sync<T: Send + Sync + ?Sized>() {}

const _: () = {
    assert_send_sync::<Principal>();
    assert_send_sync::<PrincipalBuilder>();
    assert_send_sync::<Credentials>();
    assert_send_sync::<Credential>();
    assert_send_sync::<CredentialExtractor>();
    assert_send_sync::<PeerCertificates>();
    assert_send_sync::<SecretString>();
    assert_send_sync::<AuthError>();
    assert_send_sync::<Challenge>();
    assert_send_sync::<AuthOutcome>();
    assert_send_sync::<ChainOutcome>();
    assert_send_sync::<AuthenticatorChain>();
    assert_send_sync::<dyn Authenticator>();
    assert_send_sync::<dyn PolicyEngine>();
    assert_send_sync::<dyn AuditSink>();
    assert_send_sync::<dyn Clock>();
    assert_send_sync::<Decision>();
    assert_send_sync::<Grant>();
    assert_send_sync::<RequestContext>();
    assert_send_sync::<AccessRequest<'static>>();
    assert_send_sync::<AuditEvent>();
    assert_send_sync::<AuditError>();
    assert_send_sync::<ManualClock>();
    assert_send_sync::<SystemClock>();
};

#[test]
fn authenticate_future_is_send() {
    fn require_send<F: Future + Send>(_: F) {}
    let chain = AuthenticatorChain::new(vec![]);
    let credentials = Credentials::none();
    require_send(chain.authenticate(&credentials));
}
