//! What the translation relies on being valid: checks of single values (`values`: names,
//! domains, paths, RE2 regular expressions with Envoy's program-size limit, headers) and of
//! virtual hosts and their routes with the order routes are tried in (`routes`). Each check
//! reports a [`Problem`](crate::diagnostic::Problem) and never panics.
//!
//! Not here: building Envoy messages (see `translate`).

mod routes;
mod values;

pub(crate) use routes::{CheckedVhost, check_vhost};
pub(crate) use values::*;
