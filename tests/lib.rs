//! Repository-wide checks live in `tests/tests/`; this library is empty.
