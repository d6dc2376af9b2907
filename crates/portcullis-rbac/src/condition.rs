//! Optional conditions on a rule: the resource's tenant must be the principal's, a UTC time
//! window, a list of source-IP networks.
//!
//! An allow rule applies only when every condition is known to hold. A deny rule applies
//! unless a condition is known not to hold: a deny that cannot be checked (no source IP, no
//! tenant) still denies.

use portcullis_core::{IpNet, Principal, RequestContext};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Conditions as written in a roles file:
///
/// ```toml
/// permissions = [
///   { resource = "collection:*", actions = ["write"],
///     when = { same_tenant = true, days = ["mon", "tue", "wed", "thu", "fri"], hours = [8, 18],
///              source_ips = ["10.0.0.0/8", "2001:db8::/32"] } },
/// ]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDef {
    /// The resource's tenant (from the request context) must equal the principal's tenant.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub same_tenant: bool,
    /// UTC days of the week (`mon` … `sun`); empty means every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// UTC hours `[start, end)`, 0 to 24; `start > end` wraps past midnight (`[22, 6]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<[u8; 2]>,
    /// Client networks in CIDR form (`10.0.0.0/8`) or single addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
}

/// Why a condition is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError {
    /// Not a day name.
    #[error("`{0}` is not a day (mon, tue, wed, thu, fri, sat, sun)")]
    Day(String),
    /// Hours outside 0..=24 or an empty window.
    #[error("hours must be two different values from 0 to 24")]
    Hours,
    /// Not an address or CIDR network.
    #[error("`{0}` is not an IP address or CIDR network")]
    Network(String),
    /// No condition at all (`when = {}`).
    #[error("an empty `when` table; remove it or add a condition")]
    Empty,
}

/// Three-valued result of checking a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Truth {
    True,
    False,
    Unknown,
}

impl Truth {
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::False, _) | (_, Self::False) => Self::False,
            (Self::Unknown, _) | (_, Self::Unknown) => Self::Unknown,
            _ => Self::True,
        }
    }
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Condition {
    same_tenant: bool,
    /// Bit 0 = Monday … bit 6 = Sunday; 0 = no day restriction.
    days: u8,
    hours: Option<(u8, u8)>,
    networks: Vec<IpNet>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Condition {
    pub(crate) fn compile(def: &ConditionDef) -> Result<Self, ConditionError> {
        let mut days = 0u8;
        for day in &def.days {
            let lower = day.to_ascii_lowercase();
            let short = lower.get(..3).unwrap_or(&lower);
            let index = DAYS
                .iter()
                .position(|d| *d == short && DAYS_LONG.iter().any(|l| l.starts_with(&lower)))
                .ok_or_else(|| ConditionError::Day(day.clone()))?;
            days |= 1 << index;
        }
        let hours = match def.hours {
            None => None,
            Some([start, end]) if start <= 24 && end <= 24 && start != end => Some((start, end)),
            Some(_) => return Err(ConditionError::Hours),
        };
        let networks = def
            .source_ips
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .map_err(|_| ConditionError::Network(n.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !def.same_tenant && days == 0 && hours.is_none() && networks.is_empty() {
            return Err(ConditionError::Empty);
        }
        Ok(Self {
            same_tenant: def.same_tenant,
            days,
            hours,
            networks,
        })
    }

    pub(crate) fn evaluate(
        &self,
        principal: &Principal,
        context: Option<&RequestContext>,
        now: impl FnOnce() -> OffsetDateTime,
    ) -> Truth {
        let mut truth = Truth::True;
        if self.same_tenant {
            let resource_tenant = context.and_then(|c| c.resource_tenant.as_deref());
            truth = truth.and(match (principal.tenant(), resource_tenant) {
                (Some(a), Some(b)) if a == b => Truth::True,
                (Some(_), Some(_)) => Truth::False,
                _ => Truth::Unknown,
            });
        }
        if !self.networks.is_empty() {
            truth = truth.and(match context.and_then(|c| c.source_ip) {
                Some(ip) if self.networks.iter().any(|n| n.contains(ip)) => Truth::True,
                Some(_) => Truth::False,
                None => Truth::Unknown,
            });
        }
        if self.days != 0 || self.hours.is_some() {
            let time = context.and_then(|c| c.time).unwrap_or_else(now);
            let utc = time.to_offset(time::UtcOffset::UTC);
            let day_ok =
                self.days == 0 || self.days & (1 << utc.weekday().number_days_from_monday()) != 0;
            let hour = utc.hour();
            let hour_ok = match self.hours {
                None => true,
                Some((start, end)) if start < end => hour >= start && hour < end,
                Some((start, end)) => hour >= start || hour < end,
            };
            truth = truth.and(if day_ok && hour_ok {
                Truth::True
            } else {
                Truth::False
            });
        }
        truth
    }
}

const DAYS_LONG: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::{AuthMethod, PrincipalKind};
    use time::macros::datetime;

    fn principal(tenant: Option<&str>) -> Principal {
        let b = Principal::builder(
            "p",
            PrincipalKind::User,
            AuthMethod::Jwt,
            OffsetDateTime::UNIX_EPOCH,
        );
        match tenant {
            Some(t) => b.tenant(t),
            None => b,
        }
        .build()
        .unwrap()
    }

    #[test]
    fn tenant_condition_is_three_valued() {
        let c = Condition::compile(&ConditionDef {
            same_tenant: true,
            ..ConditionDef::default()
        })
        .unwrap();
        let now = || OffsetDateTime::UNIX_EPOCH;
        let ctx = RequestContext::new().with_resource_tenant("acme");
        assert_eq!(
            c.evaluate(&principal(Some("acme")), Some(&ctx), now),
            Truth::True
        );
        assert_eq!(
            c.evaluate(&principal(Some("evil")), Some(&ctx), now),
            Truth::False
        );
        assert_eq!(
            c.evaluate(&principal(None), Some(&ctx), now),
            Truth::Unknown
        );
        assert_eq!(
            c.evaluate(&principal(Some("acme")), None, now),
            Truth::Unknown
        );
    }

    #[test]
    fn time_window_in_utc() {
        let c = Condition::compile(&ConditionDef {
            days: vec!["mon".into(), "Friday".into()],
            hours: Some([9, 17]),
            ..ConditionDef::default()
        })
        .unwrap();
        let p = principal(None);
        // 2026-01-16 is a Friday.
        let at =
            |t: OffsetDateTime| c.evaluate(&p, Some(&RequestContext::new().with_time(t)), || t);
        assert_eq!(at(datetime!(2026-01-16 09:00 UTC)), Truth::True);
        assert_eq!(at(datetime!(2026-01-16 16:59 UTC)), Truth::True);
        assert_eq!(at(datetime!(2026-01-16 17:00 UTC)), Truth::False);
        assert_eq!(at(datetime!(2026-01-17 10:00 UTC)), Truth::False);
        // 10:00 at +02:00 is 08:00 UTC.
        assert_eq!(at(datetime!(2026-01-16 10:00 +02:00)), Truth::False);

        let night = Condition::compile(&ConditionDef {
            hours: Some([22, 6]),
            ..ConditionDef::default()
        })
        .unwrap();
        let at = |t: OffsetDateTime| night.evaluate(&p, None, || t);
        assert_eq!(at(datetime!(2026-01-16 23:00 UTC)), Truth::True);
        assert_eq!(at(datetime!(2026-01-16 05:59 UTC)), Truth::True);
        assert_eq!(at(datetime!(2026-01-16 12:00 UTC)), Truth::False);
    }

    #[test]
    fn condition_errors() {
        let def = |f: fn(&mut ConditionDef)| {
            let mut d = ConditionDef::default();
            f(&mut d);
            Condition::compile(&d)
        };
        assert_eq!(def(|_| {}), Err(ConditionError::Empty));
        assert!(matches!(
            def(|d| d.days = vec!["funday".into()]),
            Err(ConditionError::Day(_))
        ));
        assert!(matches!(
            def(|d| d.days = vec!["mo".into()]),
            Err(ConditionError::Day(_))
        ));
        assert_eq!(def(|d| d.hours = Some([9, 9])), Err(ConditionError::Hours));
        assert_eq!(def(|d| d.hours = Some([9, 25])), Err(ConditionError::Hours));
        assert!(matches!(
            def(|d| d.source_ips = vec!["nope".into()]),
            Err(ConditionError::Network(_))
        ));
    }
}
