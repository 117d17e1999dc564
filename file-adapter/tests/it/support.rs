//! What the integration tests share: the binary and temporary folders (from
//! `xdsc-test-support`).

use std::process::Command;

/// The `xdsc-file` binary under test.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xdsc-file"))
}

/// A temporary folder (the shared test support's), removed with its `.log` sibling on drop.
pub(crate) use xdsc_test_support::TempDir as Dir;

/// A file's path in `dir`, as a string for command lines.
pub(crate) fn path(dir: &Dir, name: &str) -> String {
    dir.join(name).display().to_string()
}
