//! Redaction: no secret reaches a sink.
//!
//! Every sink of this crate passes events through a [`Redactor`] first. It replaces
//! * metadata entries whose key names a secret (`password`, `secret`, `token`,
//!   `authorization`, `api_key`, `private_key`, `cookie`, …), at any depth;
//! * values that look like secrets wherever they appear in a free-text field: `Bearer` and
//!   `Basic` credentials, JSON Web Tokens, PEM private keys, and API keys with a configured
//!   prefix;
//! * the query string of `request_path` (it may carry tokens).
//!
//! Control characters need no treatment: JSON escapes them, so a value can never start a
//! second line.

use portcullis_core::AuditEvent;
use serde_json::Value;

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

const SECRET_KEYS: [&str; 14] = [
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "api-key",
    "private_key",
    "privatekey",
    "cookie",
    "credential",
    "session",
    "pepper",
];

/// Removes secrets from audit events.
#[derive(Debug, Clone)]
pub struct Redactor {
    api_key_prefixes: Vec<String>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self {
            api_key_prefixes: vec!["pc_live_".into(), "pc_test_".into()],
        }
    }
}

impl Redactor {
    /// Also redacts API keys that start with `prefix`.
    #[must_use]
    pub fn api_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.api_key_prefixes.push(prefix.into());
        self
    }

    /// Redacts an event in place.
    pub fn redact(&self, event: &mut AuditEvent) {
        for field in [
            &mut event.action,
            &mut event.resource_type,
            &mut event.resource_id,
            &mut event.reason,
            &mut event.user_agent,
            &mut event.request_method,
        ]
        .into_iter()
        .flatten()
        {
            self.scrub(field);
        }
        if let Some(path) = &mut event.request_path {
            if let Some(at) = path.find('?') {
                path.truncate(at);
            }
            self.scrub(path);
        }
        if let Some(principal) = &mut event.principal {
            self.scrub(&mut principal.id);
            if let Some(name) = &mut principal.name {
                self.scrub(name);
            }
        }
        for (key, value) in event.metadata.iter_mut() {
            self.value(key, value);
        }
    }

    fn value(&self, key: &str, value: &mut Value) {
        if names_a_secret(key) {
            *value = Value::String(REDACTED.to_owned());
            return;
        }
        match value {
            Value::String(text) => self.scrub(text),
            Value::Array(items) => {
                for item in items {
                    self.value(key, item);
                }
            }
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    self.value(k, v);
                }
            }
            _ => {}
        }
    }

    /// Replaces secret-looking parts of a free-text value.
    fn scrub(&self, text: &mut String) {
        if text.len() >= PEM_MARK.len() && text.contains(PEM_MARK) {
            *text = REDACTED.to_owned();
            return;
        }
        if !self.needs_scrub(text) {
            return;
        }
        let mut out = String::with_capacity(text.len());
        let mut words = text.split(' ').peekable();
        let mut first = true;
        while let Some(word) = words.next() {
            if !first {
                out.push(' ');
            }
            first = false;
            let lower = word.to_ascii_lowercase();
            if (lower == "bearer" || lower == "basic" || lower == "apikey")
                && words.peek().is_some()
            {
                out.push_str(word);
                out.push(' ');
                out.push_str(REDACTED);
                words.next();
                continue;
            }
            out.push_str(&self.scrub_word(word));
        }
        *text = out;
    }

    fn needs_scrub(&self, text: &str) -> bool {
        has_credential_word(text.as_bytes())
            || text.contains("eyJ")
            || self
                .api_key_prefixes
                .iter()
                .any(|p| text.contains(p.as_str()))
    }

    /// Replaces the secret-looking tokens of a word, keeping the separators between them.
    fn scrub_word(&self, word: &str) -> String {
        let mut out = String::with_capacity(word.len());
        let mut start = 0;
        for (i, c) in word.char_indices() {
            if matches!(c, '=' | '&' | ',' | ';' | '"' | '\'' | '/' | ':') {
                self.push_token(&mut out, word.get(start..i).unwrap_or_default());
                out.push(c);
                start = i + c.len_utf8();
            }
        }
        self.push_token(&mut out, word.get(start..).unwrap_or_default());
        out
    }

    fn push_token(&self, out: &mut String, token: &str) {
        let secret = looks_like_jwt(token)
            || self
                .api_key_prefixes
                .iter()
                .any(|p| token.contains(p.as_str()));
        out.push_str(if secret { REDACTED } else { token });
    }
}

/// The end of a PEM private key's label.
const PEM_MARK: &str = "PRIVATE KEY-----";

/// Whether a metadata key names a secret (its lowercase form contains one of
/// [`SECRET_KEYS`]), `*_id`, `*_ids` and `jti` excepted: identifiers (`api_key_id`,
/// `session_id`), not secrets. Keys of up to 64 bytes are lowercased on the stack.
fn names_a_secret(key: &str) -> bool {
    let mut buffer = [0u8; 64];
    let owned;
    let lower: &str = match buffer.get_mut(..key.len()) {
        Some(slot) => {
            slot.copy_from_slice(key.as_bytes());
            slot.make_ascii_lowercase();
            // ASCII lowercasing keeps UTF-8 valid; were it not to, redact (fail closed).
            match std::str::from_utf8(slot) {
                Ok(lower) => lower,
                Err(_) => return true,
            }
        }
        None => {
            owned = key.to_ascii_lowercase();
            &owned
        }
    };
    let is_identifier = lower.ends_with("_id") || lower.ends_with("_ids") || lower == "jti";
    !is_identifier && SECRET_KEYS.iter().any(|s| lower.contains(s))
}

/// Whether `text` contains `bearer `, `basic ` or `apikey ` in any case: each space is
/// checked for one of those words before it (one pass, no search per word).
fn has_credential_word(text: &[u8]) -> bool {
    text.iter().enumerate().any(|(i, b)| {
        *b == b' '
            && text.get(..i).is_some_and(|before| {
                [&b"bearer"[..], b"basic", b"apikey"].iter().any(|word| {
                    before.len() >= word.len()
                        && before
                            .get(before.len() - word.len()..)
                            .is_some_and(|tail| tail.eq_ignore_ascii_case(word))
                })
            })
    })
}

fn looks_like_jwt(text: &str) -> bool {
    let mut parts = text.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    header.starts_with("eyJ")
        && header.len() > 10
        && !payload.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::{AuditEventType, AuditResult, IdSource, OffsetDateTime, SequentialIds};

    fn event() -> AuditEvent {
        AuditEvent::new(
            SequentialIds::default().event_id(),
            AuditEventType::Authentication,
            AuditResult::Failure,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

    #[test]
    fn secrets_in_free_text_are_replaced() {
        let r = Redactor::default();
        let mut e = event()
            .with_reason(format!("rejected Authorization: Bearer {JWT} for alice"))
            .with_user_agent(format!("curl token={JWT}&x=1"))
            .with_http("GET", format!("/api?access_token={JWT}"), Some(401))
            .with_metadata("password", "hunter2")
            .with_metadata(
                "nested",
                serde_json::json!({"client_secret": "s3cr3t", "ok": "fine"}),
            )
            .with_metadata("api_key_id", "key-001")
            .with_metadata("note", "key pc_live_ABCDEFGHIJKL_xyz was used")
            .with_metadata(
                "pem",
                "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----",
            );
        r.redact(&mut e);
        let line = e.to_json_line().unwrap();
        for secret in [JWT, "hunter2", "s3cr3t", "pc_live_ABCDEFGHIJKL_xyz", "MIIE"] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        assert!(line.contains("key-001"));
        assert!(line.contains("\"ok\":\"fine\""));
        assert_eq!(e.request_path.as_deref(), Some("/api"));
        assert!(
            e.reason
                .as_deref()
                .unwrap()
                .contains("Bearer [redacted] for alice")
        );
        assert!(
            e.user_agent
                .as_deref()
                .unwrap()
                .starts_with("curl token=[redacted]&x=1")
        );
    }

    /// The original formulations of the two checks, which the faster ones must match.
    fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
        haystack
            .as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    }

    fn names_a_secret_reference(key: &str) -> bool {
        let lower = key.to_ascii_lowercase();
        let is_identifier = lower.ends_with("_id") || lower.ends_with("_ids") || lower == "jti";
        !is_identifier && SECRET_KEYS.iter().any(|s| lower.contains(s))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3_000))]

        #[test]
        fn credential_words_are_found_as_before(text in "([a-zA-Z ]{0,6}(bearer|BEARER|Basic|bAsIc|apikey|ApiKey|key|beare)[ :]?){0,4}[a-z ]{0,6}") {
            let before = contains_ignore_case(&text, "bearer ")
                || contains_ignore_case(&text, "basic ")
                || contains_ignore_case(&text, "apikey ");
            proptest::prop_assert_eq!(has_credential_word(text.as_bytes()), before, "{:?}", text);
        }

        #[test]
        fn secret_keys_are_named_as_before(key in "([a-zA-Zé_]{0,5}(Password|token|SECRET|api_key|Cookie|session|_id|_ids|jti|JTI|pepper)){0,3}[a-z_]{0,4}") {
            proptest::prop_assert_eq!(names_a_secret(&key), names_a_secret_reference(&key), "{:?}", key);
        }
    }

    #[test]
    fn long_metadata_keys_are_checked_too() {
        let key = format!("{}_password", "x".repeat(80));
        assert!(names_a_secret(&key));
        assert!(!names_a_secret(&format!("{}_session_id", "x".repeat(80))));
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let r = Redactor::default();
        let mut e = event().with_reason("denied: no rule matched (deny by default)");
        r.redact(&mut e);
        assert_eq!(
            e.reason.as_deref(),
            Some("denied: no rule matched (deny by default)")
        );
    }
}
