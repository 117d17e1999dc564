//! The JSON Schema of native `xdsc-file` documents: the model's schema (from `xdsc-core`,
//! generated with schemars) where a secret may also name its PEM files instead of holding them
//! inline. `xdsc-file schema` prints it; `schema/xdsc-file.schema.json` is the committed copy
//! for editors and CI pipelines, and a test fails when it is stale.
//!
//! Kubernetes manifests are not covered: their schemas are Kubernetes' and Gateway API's own.

use serde_json::{Value, json};

use crate::load::PEM_FILE_FIELDS;

/// The schema of one native document.
///
/// ```
/// let s = xdsc_file::schema::document_schema();
/// let cert = &s["$defs"]["TlsCertificate"];
/// assert!(cert["properties"]["private_key_file"].is_object());
/// ```
pub fn document_schema() -> Value {
    let mut schema = xdsc_core::model::object_schema();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "title".into(),
            Value::String("xdsc-file native document".into()),
        );
        obj.insert(
            "description".into(),
            Value::String(
                "One model object (Listener, VirtualHost, Cluster, Endpoints or Secret, or a raw \
                 Envoy resource: EnvoyCluster, EnvoyClusterLoadAssignment, EnvoyListener, \
                 EnvoyRouteConfiguration or EnvoySecret with its Envoy JSON under `resource`), \
                 as written in an xdsc-file YAML or JSON document. A Secret may give PEM \
                 material inline or as file paths relative to the document's file."
                    .into(),
            ),
        );
    }
    for section in ["TlsCertificate", "ValidationContext"] {
        let def = &mut schema["$defs"][section];
        let Some(props) = def["properties"].as_object_mut() else {
            continue;
        };
        let mut choices = Vec::new();
        for (s, file_key, inline_key) in PEM_FILE_FIELDS {
            let matches = (s == "tls_certificate" && section == "TlsCertificate")
                || (s == "validation_context" && section == "ValidationContext");
            if !matches {
                continue;
            }
            props.insert(
                file_key.into(),
                json!({
                    "description": format!("A file holding {inline_key}, relative to the document's file; watched for changes."),
                    "type": "string"
                }),
            );
            choices.push(json!({"oneOf": [{"required": [inline_key]}, {"required": [file_key]}]}));
        }
        if let Some(def) = def.as_object_mut() {
            def.remove("required");
            def.insert("allOf".into(), Value::Array(choices));
        }
    }
    schema
}
