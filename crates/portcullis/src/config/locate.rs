//! Places in a configuration file: a byte offset or a dotted key path, as line and column.

use portcullis_core::Location;
use toml::de::{DeTable, DeValue};

/// The line and column of byte `offset` of `text`.
pub(crate) fn offset(text: &str, offset: usize) -> Option<Location> {
    Location::at(text, offset)
}

/// Where the value of `key` (`auth.jwt.secret`; a table's path gives its header) is in
/// `text`. For an array of tables (`authz.routes`), the first element.
pub(crate) fn key(text: &str, key: &str) -> Option<Location> {
    let document = DeTable::parse(text).ok()?;
    let mut table = document.get_ref();
    let mut span = document.span();
    let mut segments = key.split('.').filter(|s| !s.is_empty()).peekable();
    while let Some(segment) = segments.next() {
        let (name, value) = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == segment)?;
        span = if segments.peek().is_some() {
            value.span()
        } else {
            name.span()
        };
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            DeValue::Array(items) if segments.peek().is_some() => match items.first()?.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => return None,
            },
            _ if segments.peek().is_some() => return None,
            _ => {}
        }
    }
    offset(text, span.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_where_they_are_written() {
        let text = "audit_log_path = \"a\"\n\n[auth.jwt]\nenabled = true\nsecret = \"x\"\n\n[[authz.routes]]\nroute = \"GET /\"\n";
        assert_eq!(key(text, "audit_log_path"), Some(Location::new(1, 1)));
        assert_eq!(key(text, "auth.jwt.secret"), Some(Location::new(5, 1)));
        assert_eq!(key(text, "authz.routes.route").map(|l| l.line), Some(8));
        assert_eq!(key(text, "auth.api_key"), None);
        assert_eq!(offset("ab\ncd", 4), Some(Location::new(2, 2)));
    }
}
