//! Integration tests of the test API server with real clients: kube-rs (`Api`, `watcher`,
//! `reflector`) and the real kubectl.

mod api;
mod kubectl;
mod watcher;

use std::time::Duration;

use serde_json::{Value, json};

/// A ConfigMap manifest.
pub(crate) fn config_map(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": labels}, "data": {"k": name}})
}

/// How long a test waits for something that should take milliseconds.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);
