//! Temporary folders for tests, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A new, empty temporary folder, removed (with everything in it, and its [`TempDir::log_path`]
/// sibling) when dropped. Names are unique per process and per call.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// An empty folder whose name starts with `xdsc-{tag}-`.
    ///
    /// ```
    /// let dir = xdsc_test_support::TempDir::new("doc-new");
    /// assert!(dir.path().is_dir());
    /// assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    /// ```
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("xdsc-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("a temporary folder");
        TempDir(path)
    }

    /// A folder holding `files` (relative paths, parent folders made as needed).
    pub fn with_files(tag: &str, files: &[(&str, &str)]) -> TempDir {
        let dir = TempDir::new(tag);
        for (name, text) in files {
            dir.write(name, text);
        }
        dir
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the folder.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// A file beside the folder, not in it (a process watching the folder does not see it
    /// change), removed with it: where a test keeps that process's log.
    pub fn log_path(&self) -> PathBuf {
        self.0.with_extension("log")
    }

    /// Writes a file as an editor saves it: a temporary file renamed over the old one, so a
    /// watcher never reads it half-written. Parent folders are made as needed.
    ///
    /// ```
    /// let dir = xdsc_test_support::TempDir::new("doc-write");
    /// dir.write("conf/a.yaml", "one");
    /// dir.write("conf/a.yaml", "two");
    /// assert_eq!(std::fs::read_to_string(dir.join("conf/a.yaml")).unwrap(), "two");
    /// ```
    pub fn write(&self, name: &str, text: &str) {
        let path = self.0.join(name);
        let parent = path.parent().unwrap_or(&self.0);
        std::fs::create_dir_all(parent).expect("a folder for the file");
        let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("file");
        let tmp = parent.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write a file");
        std::fs::rename(&tmp, &path).expect("rename it into place");
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(self.log_path());
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}
