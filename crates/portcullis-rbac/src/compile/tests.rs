//! The snapshot's verdicts, including the ones no policy produces.

use std::sync::Arc;

use super::Snapshot;
use super::verdict::{Found, Verdict};
use crate::pattern::ResourceError;
use crate::policy::Policy;

fn snapshot() -> Arc<Snapshot> {
    let policy = Policy::from_toml(
        "[[roles]]\nname = \"r\"\npermissions = [{ resource = \"a:b\", actions = [\"read\"] }]\n",
    )
    .unwrap();
    Arc::new(Snapshot::compile(Arc::new(policy)).unwrap())
}

/// Outside testing found the former one-word encoding falling back to the bits of an
/// allow on an impossible input. A verdict nobody set is a no-match, and a grant that
/// cannot be explained denies.
#[test]
fn impossible_verdicts_deny() {
    assert_eq!(Verdict::default(), Verdict::NoMatch);
    assert!(Verdict::default().into_decision(None).is_denied());
    let found = Found { rule: 0, path: 0 };
    for verdict in [Verdict::Allow(found), Verdict::ExplicitDeny(found)] {
        assert!(verdict.needs_source());
        let decision = verdict.into_decision(None);
        assert!(decision.is_denied());
        assert_eq!(decision.reason_code(), "evaluation_error");
    }
    assert!(
        Verdict::Allow(found)
            .into_decision(Some(snapshot()))
            .is_allowed()
    );
    assert!(
        Verdict::ExplicitDeny(found)
            .into_decision(Some(snapshot()))
            .is_denied()
    );
    for verdict in [
        Verdict::NoMatch,
        Verdict::UnknownAction,
        Verdict::InvalidResource(ResourceError::PercentEncoded),
    ] {
        assert!(!verdict.needs_source());
        assert!(verdict.into_decision(Some(snapshot())).is_denied());
    }
    assert!(Verdict::Superuser.into_decision(None).is_allowed());
}
