//! The committed JSON Schema of native documents is what the code generates. Regenerate with
//! `cargo run -p xdsc-file -- schema > file-adapter/schema/xdsc-file.schema.json`.

use std::path::Path;

#[test]
fn committed_schema_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/xdsc-file.schema.json");
    let fresh =
        serde_json::to_string_pretty(&xdsc_file::schema::document_schema()).expect("json") + "\n";
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} is stale: run `cargo run -p xdsc-file -- schema > file-adapter/schema/xdsc-file.schema.json` and commit it",
        path.display()
    );
}
