//! xdsc-file: the file source of xdsc, and the library behind the `xdsc-file` binary.
//!
//! Folders of YAML or JSON documents (native model documents, or Kubernetes manifests
//! translated by `xdsc-kube`'s shared translation) become a model ([`load`]), compiled by
//! `xdsc-core` and served live by `xdsc-server` ([`source`], [`serve`]); the one-shot commands
//! `check`, `render` and `schema` are in [`commands`], and `explain` and `test`, which ask the
//! route oracle where requests go, in [`oracle`].
//!
//! Not here: the compiler (`xdsc-core`), the xDS protocol (`xdsc-server`), the meaning of
//! Kubernetes objects (`xdsc-kube`).
//!
//! ```no_run
//! use xdsc_file::commands::check;
//! let out = check(&["config/".into()], &Default::default());
//! eprint!("{}", out.stderr);
//! std::process::exit(out.code.into());
//! ```

pub mod commands;
pub mod load;
pub mod oracle;
pub mod schema;
pub mod serve;
pub mod source;
pub mod yaml;
