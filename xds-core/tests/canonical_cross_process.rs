//! Canonical encoding is identical across processes.
//!
//! `envoy-types` holds protobuf maps in `std::collections::HashMap`, whose iteration order
//! depends on a random seed drawn per process, so within one process a bug can hide. This test
//! re-runs its own binary as child processes, each printing the canonical encoding of the same
//! message with multi-entry maps, and requires every output to equal the parent's.

use std::process::Command;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Metadata;
use envoy_types::pb::google::protobuf::{Any, Struct, Value, value};
use prost::{Message, Name};

/// Set in a child process: print the encodings instead of spawning children.
const CHILD_VAR: &str = "XDSC_CANONICAL_CROSS_PROCESS_CHILD";
const TEST_NAME: &str = "canonical_encoding_is_identical_across_processes";
const CHILDREN: usize = 4;

fn string(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.to_owned())),
    }
}

fn structure(keys: &[&str]) -> Struct {
    Struct {
        fields: keys.iter().map(|k| ((*k).to_owned(), string(k))).collect(),
    }
}

/// A cluster with three eight-entry maps: one of `Any`s holding structs (maps inside `Any`),
/// and the metadata maps (maps of structs).
fn fixed_message() -> Cluster {
    let keys = ["h", "c", "a", "f", "b", "g", "e", "d"];
    Cluster {
        name: "cross-process".to_owned(),
        typed_extension_protocol_options: keys
            .iter()
            .map(|k| {
                let any = Any {
                    type_url: "type.googleapis.com/google.protobuf.Struct".to_owned(),
                    value: structure(&keys).encode_to_vec(),
                };
                (format!("example.com/{k}"), any)
            })
            .collect(),
        metadata: Some(Metadata {
            filter_metadata: keys
                .iter()
                .map(|k| ((*k).to_owned(), structure(&keys)))
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `(plain prost encoding, canonical encoding)` of the fixed message, in hex.
fn encodings() -> (String, String) {
    let plain = fixed_message().encode_to_vec();
    let canonical = xdsc_core::canonicalize(&Cluster::full_name(), &plain)
        .expect("prost's encoding canonicalizes");
    (hex(&plain), hex(&canonical))
}

#[test]
#[allow(
    clippy::disallowed_methods,
    reason = "the test talks to its child processes through the environment"
)]
fn canonical_encoding_is_identical_across_processes() {
    if std::env::var(CHILD_VAR).is_ok() {
        let (plain, canonical) = encodings();
        println!("plain={plain}");
        println!("canonical={canonical}");
        return;
    }

    let (parent_plain, parent_canonical) = encodings();
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut plains = vec![parent_plain];
    for child in 0..CHILDREN {
        let output = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_VAR, "1")
            .output()
            .expect("run the test binary as a child");
        assert!(output.status.success(), "child {child} failed: {output:?}");
        let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
        let field = |prefix: &str| {
            // The harness may print `test ... ` on the same line before the output.
            stdout
                .lines()
                .find_map(|l| l.split_once(prefix).map(|(_, hex)| hex.trim()))
                .unwrap_or_else(|| panic!("child {child} printed no {prefix}: {stdout}"))
                .to_owned()
        };
        assert_eq!(
            field("canonical="),
            parent_canonical,
            "child {child} encoded differently"
        );
        plains.push(field("plain="));
    }
    // The trap is real here: plain prost bytes differ between processes (eight-entry maps make
    // agreement among all of them vanishingly unlikely), so the comparison above is meaningful.
    plains.sort();
    plains.dedup();
    assert!(
        plains.len() > 1,
        "plain prost encoding was identical in {} processes",
        CHILDREN + 1
    );
}
