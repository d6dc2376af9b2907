//! Resource patterns (`*`, `collection:*`, `collection:**`, `collection:name`, `server`) and
//! the canonical form every requested resource name must have.
//!
//! Names are `:`-separated segments. Matching is byte-exact and case-sensitive: `Admin` and
//! `admin` are different, and no case folding or Unicode normalization is ever applied to a
//! name. Instead, names that could be read two ways are refused outright: control and
//! invisible formatting characters, empty segments, `.` and `..` path components (split on `/`
//! and `\` too), percent-encoded bytes, leading or trailing white space, a trailing `.`, and
//! text that is not in Unicode Normalization Form C.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_normalization::{IsNormalized, is_nfc_quick};

/// Longest requested resource name, in bytes.
pub const MAX_RESOURCE_LEN: usize = 1024;
/// Most segments in a resource name or pattern.
pub const MAX_SEGMENTS: usize = 32;

/// Why a resource name (or a literal part of a pattern) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceError {
    /// The name is empty.
    Empty,
    /// Longer than [`MAX_RESOURCE_LEN`].
    TooLong,
    /// More than [`MAX_SEGMENTS`] segments.
    TooManySegments,
    /// Two separators in a row, or one at either end.
    EmptySegment,
    /// A control or invisible formatting character (zero-width, bidi override, BOM).
    ControlCharacter,
    /// A `.` or `..` path component.
    DotSegment,
    /// A `%XX` escape (decode before asking; an encoded name is ambiguous).
    PercentEncoded,
    /// White space at the start or end of a segment, or a trailing `.`.
    Untrimmed,
    /// Not in Unicode Normalization Form C.
    NotNfc,
}

impl ResourceError {
    /// The reason, as a sentence for people (also the `Display` text).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "the resource name is empty",
            Self::TooLong => "the resource name is longer than 1024 bytes",
            Self::TooManySegments => "the resource name has more than 32 segments",
            Self::EmptySegment => "the resource name has an empty segment",
            Self::ControlCharacter => "the resource name contains a control or invisible character",
            Self::DotSegment => "the resource name contains a `.` or `..` path component",
            Self::PercentEncoded => "the resource name contains a percent-encoded byte",
            Self::Untrimmed => {
                "a segment of the resource name starts or ends with white space or ends with `.`"
            }
            Self::NotNfc => "the resource name is not in Unicode normalization form C",
        }
    }
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ResourceError {}

fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}')
}

fn check_segment(segment: &str) -> Result<(), ResourceError> {
    if segment.is_empty() {
        return Err(ResourceError::EmptySegment);
    }
    if segment.starts_with(char::is_whitespace)
        || segment.ends_with(char::is_whitespace)
        || segment.ends_with('.')
    {
        // A trailing `.` also covers the `.` and `..` segments themselves.
        return Err(if segment == "." || segment == ".." {
            ResourceError::DotSegment
        } else {
            ResourceError::Untrimmed
        });
    }
    if segment
        .split(['/', '\\'])
        .any(|part| part == "." || part == "..")
    {
        return Err(ResourceError::DotSegment);
    }
    let bytes = segment.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            return Err(ResourceError::PercentEncoded);
        }
    }
    Ok(())
}

/// Checks that `name` is a canonical resource name (see the module docs). This runs on every
/// request before any matching; it allocates nothing, and ASCII names are checked in one pass
/// over their bytes.
///
/// # Errors
/// The first problem found.
pub fn check_resource(name: &str) -> Result<(), ResourceError> {
    check_resource_and_split(name).map(|_| ())
}

/// [`check_resource`], also giving the position of the last `:` (where the parent name ends),
/// found by the same pass for plain names.
#[inline]
pub(crate) fn check_resource_and_split(name: &str) -> Result<Option<usize>, ResourceError> {
    if name.len() <= MAX_RESOURCE_LEN
        && let Some(split) = plain_split(name.as_bytes())
    {
        return Ok(split);
    }
    check_resource_in_full(name)
}

/// The whole check, for a name that is not plain (or too long for the plain path to look at).
#[cold]
fn check_resource_in_full(name: &str) -> Result<Option<usize>, ResourceError> {
    if name.is_empty() {
        return Err(ResourceError::Empty);
    }
    if name.len() > MAX_RESOURCE_LEN {
        return Err(ResourceError::TooLong);
    }
    let bytes = name.as_bytes();
    if name.is_ascii() {
        check_ascii(bytes)?;
    } else {
        check_unicode(name)?;
    }
    Ok(bytes.iter().rposition(|b| *b == b':'))
}

/// Bytes that can never make a segment non-canonical: ASCII letters, digits, `_` and `-`.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, it cannot panic"
)]
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-';
        b += 1;
    }
    table
};

/// The common case, decided in one table load per byte: segments of [`PLAIN`] bytes separated
/// by single `:`, none empty, at most [`MAX_SEGMENTS`]. `Some` with the position of the last
/// `:` (if any) for such a name; `None` when anything else must take the full check. The loop
/// carries where the current segment starts rather than a flag, so a plain byte costs a load,
/// a test and the loop's own count.
#[inline]
fn plain_split(bytes: &[u8]) -> Option<Option<usize>> {
    let mut separators = 0usize;
    let mut last: Option<usize> = None;
    let mut segment_start = 0usize;
    let mut i = 0usize;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        if PLAIN.get(usize::from(b)).copied().unwrap_or(false) {
            continue;
        }
        // `i` is one past the byte.
        if b != b':' || i == segment_start + 1 {
            return None;
        }
        separators += 1;
        last = Some(i - 1);
        segment_start = i;
    }
    (segment_start < bytes.len() && separators < MAX_SEGMENTS).then_some(last)
}

/// Byte classes for the ASCII pass: 0 ordinary, 1 control (and, unused, non-ASCII), 2 `:`,
/// 3 `/` or `\\`, 4 `%`. 256 entries, so indexing by a byte needs no bounds check.
#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time: an index out of range fails the build, it cannot panic"
)]
static CLASS: [u8; 256] = {
    let mut table = [1u8; 256];
    let mut i = 0x20;
    while i < 0x7f {
        table[i] = 0;
        i += 1;
    }
    table[b':' as usize] = 2;
    table[b'/' as usize] = 3;
    table[b'\\' as usize] = 3;
    table[b'%' as usize] = 4;
    table
};

#[inline]
fn dot_component(bytes: &[u8], start: usize, end: usize) -> bool {
    matches!(bytes.get(start..end), Some(b".") | Some(b".."))
}

#[inline]
fn segment_error(bytes: &[u8], start: usize, end: usize) -> Option<ResourceError> {
    match bytes.get(start..end) {
        None | Some([]) => Some(ResourceError::EmptySegment),
        Some([b' ', ..]) | Some([.., b' ']) | Some([.., b'.']) => Some(ResourceError::Untrimmed),
        Some(_) => None,
    }
}

/// One pass over an ASCII name, with the rules of [`check_segment`].
#[inline]
fn check_ascii(bytes: &[u8]) -> Result<(), ResourceError> {
    let mut segments = 1usize;
    let mut segment_start = 0usize;
    let mut component_start = 0usize;
    for (i, &b) in bytes.iter().enumerate() {
        let class = CLASS.get(usize::from(b)).copied().unwrap_or(1);
        if class == 0 {
            continue;
        }
        match class {
            1 => return Err(ResourceError::ControlCharacter),
            2 => {
                if dot_component(bytes, component_start, i) {
                    return Err(ResourceError::DotSegment);
                }
                if let Some(e) = segment_error(bytes, segment_start, i) {
                    return Err(e);
                }
                segments += 1;
                if segments > MAX_SEGMENTS {
                    return Err(ResourceError::TooManySegments);
                }
                segment_start = i + 1;
                component_start = i + 1;
            }
            3 => {
                if dot_component(bytes, component_start, i) {
                    return Err(ResourceError::DotSegment);
                }
                component_start = i + 1;
            }
            _ => {
                if bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                {
                    return Err(ResourceError::PercentEncoded);
                }
            }
        }
    }
    if dot_component(bytes, component_start, bytes.len()) {
        return Err(ResourceError::DotSegment);
    }
    match segment_error(bytes, segment_start, bytes.len()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn check_unicode(name: &str) -> Result<(), ResourceError> {
    if name.chars().any(is_invisible) {
        return Err(ResourceError::ControlCharacter);
    }
    match is_nfc_quick(name.chars()) {
        IsNormalized::Yes => {}
        IsNormalized::No => return Err(ResourceError::NotNfc),
        IsNormalized::Maybe => {
            if !unicode_normalization::is_nfc(name) {
                return Err(ResourceError::NotNfc);
            }
        }
    }
    let mut segments = 0usize;
    for segment in name.split(':') {
        segments += 1;
        if segments > MAX_SEGMENTS {
            return Err(ResourceError::TooManySegments);
        }
        check_segment(segment)?;
    }
    Ok(())
}

/// What a pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatternKind {
    /// `*` (or `**`): every resource.
    Everything,
    /// `a:b`: exactly this resource.
    Exact,
    /// `a:*`: every resource one segment below `a` (`a:x`, not `a`, `a:` or `a:x:y`).
    Children,
    /// `a:**`: every resource one or more segments below `a` (`a:x`, `a:x:y`, not `a`).
    Descendants,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PatternError {
    /// A literal part of the pattern is not a canonical resource name.
    #[error("{0}")]
    Resource(#[from] ResourceError),
    /// `*` or `**` used anywhere but as the whole last segment (`admin*`, `a:*:b`).
    #[error("a wildcard must be a whole segment and the last one (`a:*` or `a:**`)")]
    MisplacedWildcard,
}

/// A parsed resource pattern.
///
/// ```
/// use portcullis_rbac::{PatternKind, ResourcePattern};
///
/// let p: ResourcePattern = "collection:*".parse()?;
/// assert_eq!(p.kind(), PatternKind::Children);
/// assert!(p.matches("collection:datasets"));
/// assert!(!p.matches("collection"));
/// assert!(!p.matches("collection:a:b"));
/// assert!("admin*".parse::<ResourcePattern>().is_err());
/// # Ok::<(), portcullis_rbac::PatternError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourcePattern {
    text: String,
    kind: PatternKind,
    /// The literal part: the whole name for `Exact`, the part before `:*` / `:**` otherwise,
    /// empty for `Everything`.
    base_len: usize,
}

impl ResourcePattern {
    /// Parses a pattern.
    ///
    /// # Errors
    /// When a literal segment is not canonical or a wildcard is misplaced.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text == "*" || text == "**" {
            return Ok(Self {
                text: text.to_owned(),
                kind: PatternKind::Everything,
                base_len: 0,
            });
        }
        let (base, kind) = if let Some(base) = text.strip_suffix(":**") {
            (base, PatternKind::Descendants)
        } else if let Some(base) = text.strip_suffix(":*") {
            (base, PatternKind::Children)
        } else {
            (text, PatternKind::Exact)
        };
        if base.contains('*') {
            return Err(PatternError::MisplacedWildcard);
        }
        check_resource(base)?;
        if kind != PatternKind::Exact && base.split(':').count() >= MAX_SEGMENTS {
            return Err(ResourceError::TooManySegments.into());
        }
        Ok(Self {
            text: text.to_owned(),
            kind,
            base_len: base.len(),
        })
    }

    /// What the pattern matches.
    #[must_use]
    pub fn kind(&self) -> PatternKind {
        self.kind
    }

    /// The literal part (empty for `*`).
    #[must_use]
    pub fn base(&self) -> &str {
        self.text.get(..self.base_len).unwrap_or_default()
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches a (canonical) resource name. This is the simple reference
    /// semantics; the compiled engine answers the same through its indexes.
    #[must_use]
    pub fn matches(&self, resource: &str) -> bool {
        let base = self.base();
        match self.kind {
            PatternKind::Everything => true,
            PatternKind::Exact => resource == base,
            PatternKind::Children => resource
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|rest| !rest.is_empty() && !rest.contains(':')),
            PatternKind::Descendants => resource
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|rest| !rest.is_empty()),
        }
    }

    /// Whether everything this pattern matches is also matched by `other`.
    #[must_use]
    pub fn is_covered_by(&self, other: &Self) -> bool {
        match (other.kind, self.kind) {
            (PatternKind::Everything, _) => true,
            (_, PatternKind::Everything) => false,
            (PatternKind::Exact, PatternKind::Exact) => self.base() == other.base(),
            (PatternKind::Exact, _) => false,
            (PatternKind::Children, PatternKind::Exact) => other.matches(self.base()),
            (PatternKind::Children, PatternKind::Children) => self.base() == other.base(),
            (PatternKind::Children, PatternKind::Descendants) => false,
            (PatternKind::Descendants, PatternKind::Exact) => other.matches(self.base()),
            (PatternKind::Descendants, _) => {
                self.base() == other.base() || other.matches(self.base())
            }
        }
    }
}

impl std::str::FromStr for ResourcePattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ResourcePattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ResourcePattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_state_the_limits() {
        assert!(
            ResourceError::TooLong
                .as_str()
                .contains(&MAX_RESOURCE_LEN.to_string())
        );
        assert!(
            ResourceError::TooManySegments
                .as_str()
                .contains(&MAX_SEGMENTS.to_string())
        );
        assert_eq!(
            ResourceError::NotNfc.to_string(),
            ResourceError::NotNfc.as_str()
        );
    }

    /// The plain check as first written, kept to test the current one against.
    fn plain_split_with_flag(bytes: &[u8]) -> Option<Option<usize>> {
        let mut separators = 0usize;
        let mut last: Option<usize> = None;
        let mut after_separator = true;
        for (i, &b) in bytes.iter().enumerate() {
            if PLAIN[usize::from(b)] {
                after_separator = false;
            } else if b == b':' && !after_separator {
                separators += 1;
                last = Some(i);
                after_separator = true;
            } else {
                return None;
            }
        }
        (!after_separator && separators < MAX_SEGMENTS).then_some(last)
    }

    #[test]
    fn canonical_names() {
        for ok in [
            "server",
            "collection:datasets",
            "collection:a:b",
            "collection:*",
            "collection:my report.pdf",
            "collection:café",
            "c:a/b",
            "c:..a",
        ] {
            assert_eq!(check_resource(ok), Ok(()), "{ok}");
        }
        let cases: &[(&str, ResourceError)] = &[
            ("", ResourceError::Empty),
            ("collection:", ResourceError::EmptySegment),
            (":a", ResourceError::EmptySegment),
            ("a::b", ResourceError::EmptySegment),
            ("collection:../x", ResourceError::DotSegment),
            ("collection:..", ResourceError::DotSegment),
            ("collection:a/../b", ResourceError::DotSegment),
            ("collection:./a", ResourceError::DotSegment),
            ("collection:a\\..\\b", ResourceError::DotSegment),
            ("collection:..\\", ResourceError::DotSegment),
            ("collection:%2e%2e%2f", ResourceError::PercentEncoded),
            ("collection:%252e%252e", ResourceError::PercentEncoded),
            ("collection:a%00", ResourceError::PercentEncoded),
            ("collection:a.", ResourceError::Untrimmed),
            ("collection:a ", ResourceError::Untrimmed),
            (" collection:a", ResourceError::Untrimmed),
            ("collection:a\n", ResourceError::ControlCharacter),
            ("collection:a\r", ResourceError::ControlCharacter),
            ("collection:a\u{0}", ResourceError::ControlCharacter),
            ("collection:a\u{200B}b", ResourceError::ControlCharacter),
            ("collection:a\u{202E}b", ResourceError::ControlCharacter),
            ("collection:cafe\u{301}", ResourceError::NotNfc),
        ];
        for (name, expected) in cases {
            assert_eq!(check_resource(name), Err(*expected), "{name:?}");
        }
        assert_eq!(
            check_resource(&"a".repeat(MAX_RESOURCE_LEN + 1)),
            Err(ResourceError::TooLong)
        );
        assert_eq!(
            check_resource(&vec!["a"; MAX_SEGMENTS + 1].join(":")),
            Err(ResourceError::TooManySegments)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(5_000))]

        /// The one-pass ASCII check accepts exactly what the general check accepts.
        #[test]
        fn ascii_fast_path_agrees_with_general_path(name in "[ -~\\x00-\\x1f\\x7f]{1,24}") {
            let fast = check_resource(&name);
            let general = check_unicode(&name);
            proptest::prop_assert_eq!(fast.is_ok(), general.is_ok(), "{:?} {:?} {:?}", name, fast, general);
        }

        #[test]
        fn plain_fast_path_agrees_with_general_path(name in "[a-zA-Z0-9_:\\-]{1,40}") {
            proptest::prop_assert_eq!(check_resource(&name).is_ok(), check_unicode(&name).is_ok(), "{:?}", name);
            if let Some(split) = plain_split(name.as_bytes()) {
                proptest::prop_assert!(check_ascii(name.as_bytes()).is_ok());
                proptest::prop_assert_eq!(split, name.rfind(':'));
            }
            if let Ok(split) = check_resource_and_split(&name) {
                proptest::prop_assert_eq!(split, name.rfind(':'));
            }
            proptest::prop_assert_eq!(plain_split(name.as_bytes()), plain_split_with_flag(name.as_bytes()), "{:?}", name);
        }

        /// The plain check agrees with its former formulation (a flag for "just after a
        /// separator") on names with separators anywhere: doubled, leading, trailing, many.
        #[test]
        fn plain_check_agrees_with_former_formulation(name in "[a-z0-9:_\\-]{0,70}|[a:]{0,70}|[a:.%\\x00\\x80-\\xff]{0,20}") {
            proptest::prop_assert_eq!(plain_split(name.as_bytes()), plain_split_with_flag(name.as_bytes()), "{:?}", name);
        }

        #[test]
        fn ascii_fast_path_agrees_on_name_shaped_input(name in "[a.: /\\\\%2e]{1,16}") {
            let fast = check_resource(&name);
            let general = check_unicode(&name);
            proptest::prop_assert_eq!(fast.is_ok(), general.is_ok(), "{:?} {:?} {:?}", name, fast, general);
        }
    }

    #[test]
    fn pattern_forms() {
        assert_eq!(
            ResourcePattern::parse("*").unwrap().kind(),
            PatternKind::Everything
        );
        assert_eq!(
            ResourcePattern::parse("**").unwrap().kind(),
            PatternKind::Everything
        );
        let p = ResourcePattern::parse("a:b:**").unwrap();
        assert_eq!((p.kind(), p.base()), (PatternKind::Descendants, "a:b"));
        assert!(p.matches("a:b:c") && p.matches("a:b:c:d"));
        assert!(!p.matches("a:b") && !p.matches("a:bc:d"));
        let p = ResourcePattern::parse("server").unwrap();
        assert!(p.matches("server") && !p.matches("server:x"));
        for bad in ["admin*", "a:*:b", "*:a", "a:b*", "a:***", "", "a:", "a::*"] {
            assert!(ResourcePattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coverage() {
        let p = |s: &str| ResourcePattern::parse(s).unwrap();
        assert!(p("c:a").is_covered_by(&p("c:*")));
        assert!(p("c:a").is_covered_by(&p("*")));
        assert!(p("c:a:b").is_covered_by(&p("c:**")));
        assert!(!p("c:a:b").is_covered_by(&p("c:*")));
        assert!(p("c:*").is_covered_by(&p("c:**")));
        assert!(p("c:a:**").is_covered_by(&p("c:**")));
        assert!(!p("c:**").is_covered_by(&p("c:*")));
        assert!(!p("*").is_covered_by(&p("c:**")));
        assert!(!p("c:*").is_covered_by(&p("c:a")));
    }
}
