//! What the integration tests share: the binary and temporary folders.

use std::path::PathBuf;
use std::process::Command;

/// The `xdsc-file` binary under test.
pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xdsc-file"))
}

/// A temporary folder, removed (with its `.log` sibling) on drop.
pub(crate) struct Dir(pub(crate) PathBuf);

impl Dir {
    /// A new empty folder named after `tag`, holding `files`.
    pub(crate) fn new(tag: &str, files: &[(&str, &str)]) -> Dir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("xdsc-file-it-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let d = Dir(dir);
        for (name, text) in files {
            d.write(name, text);
        }
        d
    }

    /// A file's path, as a string for command lines.
    pub(crate) fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }

    /// Writes a file as an editor does: a temporary file renamed over the old one.
    pub(crate) fn write(&self, name: &str, text: &str) {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.0.join(name)).expect("rename");
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(self.0.with_extension("log"));
    }
}
