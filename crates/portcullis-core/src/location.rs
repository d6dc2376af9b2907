//! [`Location`]: a place in a text file, for the errors of every loader (the roles file, the
//! configuration file).

use std::fmt;

/// A place in a text file: 1-based line and column, columns counted in characters.
///
/// ```
/// use portcullis_core::Location;
///
/// let at = Location::at("[roles]\nadmin = 1", 10).unwrap();
/// assert_eq!(at, Location::new(2, 3));
/// assert_eq!(at.to_string(), "2:3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub column: usize,
}

impl Location {
    /// Line `line`, column `column` (both from 1).
    #[must_use]
    pub const fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }

    /// The place of byte `offset` of `text`; `None` past the end or inside a character.
    #[must_use]
    pub fn at(text: &str, offset: usize) -> Option<Self> {
        let before = text.get(..offset)?;
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..)?.chars().count() + 1;
        Some(Self { line, column })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        assert_eq!(Location::at("ab\ncd", 0), Some(Location::new(1, 1)));
        assert_eq!(Location::at("ab\ncd", 4), Some(Location::new(2, 2)));
        assert_eq!(Location::at("é\nx", 2), Some(Location::new(1, 2)));
        assert_eq!(Location::at("é", 1), None);
        assert_eq!(Location::at("ab", 3), None);
    }
}
