//! The committed JSON Schema of model documents is what the code generates. Regenerate with
//! `XDSC_BLESS=1 cargo test -p xdsc-core --test schema`.

// Tests read fixtures and run Envoy: the I/O bans of xdsc-core are for the library.
#![allow(clippy::disallowed_methods)]

use std::path::Path;

#[test]
fn committed_schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/object.schema.json");
    let fresh =
        serde_json::to_string_pretty(&xdsc_core::model::object_schema()).expect("json") + "\n";
    if std::env::var_os("XDSC_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("writes the schema");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: run `XDSC_BLESS=1 cargo test -p xdsc-core --test schema` and commit it",
        path.display()
    );
}
