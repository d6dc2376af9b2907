//! The rules of the repository that no single crate can check: the README's quick start and
//! `.ci/run` run the same test command, and every crate of the family is in the README's
//! crate map and behind a feature of the `portcullis` facade.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test helpers outside #[test] functions: a failed assertion is the point"
)]

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The commands in the README's `## Quick start` section, in order.
fn quick_start_commands() -> Vec<String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## Quick start")
        .nth(1)
        .expect("README has a `## Quick start` section");
    let section = section.split("\n## ").next().unwrap();
    let mut commands = Vec::new();
    let mut in_block = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block && !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            commands.push(line.trim().to_owned());
        }
    }
    commands
}

#[test]
fn quick_start_has_exactly_two_commands() {
    let commands = quick_start_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands[0].starts_with("cargo run"), "{commands:?}");
}

#[test]
fn ci_runs_the_readme_test_command() {
    let commands = quick_start_commands();
    let test_command = &commands[1];
    let ci = read(".ci/run");
    let last = ci
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap();
    assert_eq!(
        last, test_command,
        ".ci/run must end with the README's test command"
    );
    for gate in [
        "scripts/services.sh",
        "cargo fmt --all --check",
        "cargo clippy --workspace --all-targets --all-features -- -D warnings",
    ] {
        assert!(ci.contains(gate), ".ci/run lacks `{gate}`");
    }
}

fn family_crates() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("portcullis-"))
        .collect();
    names.sort();
    names
}

#[test]
fn every_crate_is_in_the_readme_crate_map() {
    let readme = read("README.md");
    for name in family_crates() {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README crate map lacks `{name}`"
        );
    }
}

#[test]
fn every_crate_is_reexported_by_the_facade() {
    let manifest = read("crates/portcullis/Cargo.toml");
    for name in family_crates() {
        assert!(
            manifest.contains(&format!("dep:{name}")),
            "the facade has no feature enabling `{name}`"
        );
    }
}

#[test]
fn every_public_crate_forbids_unsafe_and_denies_missing_docs() {
    for name in family_crates().into_iter().chain(["portcullis".to_owned()]) {
        let lib = read(&format!("crates/{name}/src/lib.rs"));
        assert!(lib.contains("#![forbid(unsafe_code)]"), "{name}");
        assert!(lib.contains("#![deny(missing_docs)]"), "{name}");
        let manifest = read(&format!("crates/{name}/Cargo.toml"));
        assert!(manifest.contains("[lints]\nworkspace = true"), "{name}");
    }
}

#[test]
fn changelog_has_an_unreleased_section() {
    let changelog = read("CHANGELOG.md");
    assert!(changelog.contains("## [Unreleased]"));
}

/// Secrets and MACs are compared with `subtle` (or ring's verification), never with a
/// hand-rolled loop kept from early exit by `std::hint::black_box`, which std documents as no
/// guarantee for security purposes.
#[test]
fn no_black_box_in_library_code() {
    let mut offenders = Vec::new();
    let crates = root().join("crates");
    for entry in fs::read_dir(&crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && fs::read_to_string(&path).unwrap().contains("black_box")
                {
                    offenders.push(path.display().to_string());
                }
            }
        }
    }
    assert!(offenders.is_empty(), "black_box in {offenders:?}");
}
