//! Escape hatches into Envoy's typed extensions: a [`TypedConfig`] is any Envoy message packed
//! as a `google.protobuf.Any`, given as Envoy JSON (with its `@type`) or as a type URL and
//! encoded bytes (a prost message of `envoy_types`, [`TypedConfig::from_message`]). Model
//! objects carry them where Envoy takes extensions: HTTP filters and listener filters on
//! listeners ([`NamedExtension`]), `typed_per_filter_config` on virtual hosts and routes, and
//! `typed_extension_protocol_options` on clusters.
//!
//! Not here: checking them. The compiler checks every type URL against the descriptors the
//! crate compiles (`xds-core/build.rs`) and decodes every value; an unknown type or a value
//! that does not decode is a diagnostic naming the object and field, never a panic.

use std::collections::BTreeMap;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A typed Envoy configuration (a `google.protobuf.Any`).
///
/// In documents it is Envoy's JSON form of an `Any`: an object with `@type` and the message's
/// fields. From Rust it is also a type URL and the message's protobuf encoding.
///
/// ```
/// use xdsc_core::envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
/// use xdsc_core::model::TypedConfig;
///
/// let from_rust = TypedConfig::from_message(&Cors::default());
/// assert_eq!(from_rust.type_url(), Some("type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"));
/// let from_json: TypedConfig = serde_json::from_str(
///     r#"{"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}"#,
/// ).unwrap();
/// assert_eq!(from_json.type_url(), from_rust.type_url());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum TypedConfig {
    /// Envoy JSON: an object with `@type` and the message's fields.
    Json(serde_json::Value),
    /// A type URL and the encoded message.
    Proto {
        /// The type URL, `type.googleapis.com/<full message name>`.
        type_url: String,
        /// The message's protobuf encoding.
        value: Bytes,
    },
}

impl TypedConfig {
    /// A prost message (of [`crate::envoy_types`]) as a typed configuration.
    pub fn from_message<M: prost::Message + prost::Name>(m: &M) -> TypedConfig {
        TypedConfig::Proto {
            type_url: M::type_url(),
            value: Bytes::from(m.encode_to_vec()),
        }
    }

    /// The type URL, when there is one (Envoy JSON without a string `@type` has none).
    pub fn type_url(&self) -> Option<&str> {
        match self {
            TypedConfig::Json(v) => v.get("@type").and_then(serde_json::Value::as_str),
            TypedConfig::Proto { type_url, .. } => Some(type_url),
        }
    }
}

impl Serialize for TypedConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TypedConfig::Json(v) => v.serialize(s),
            // Envoy JSON when the type is known and the bytes decode; else the raw form.
            TypedConfig::Proto { type_url, value } => {
                match crate::compile::typed::to_json(type_url, value) {
                    Some(v) => v.serialize(s),
                    None => serde_json::json!({
                        "@type": type_url,
                        "@undecodable_bytes": value.len(),
                    })
                    .serialize(s),
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for TypedConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<TypedConfig, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        if !v.is_object() {
            return Err(serde::de::Error::custom(
                "a typed configuration is an object with \"@type\"",
            ));
        }
        Ok(TypedConfig::Json(v))
    }
}

impl JsonSchema for TypedConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TypedConfig".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "An Envoy typed configuration in Envoy's JSON form of a google.protobuf.Any: `@type` (type.googleapis.com/<message>) and the message's fields.",
            "type": "object",
            "required": ["@type"],
            "properties": { "@type": { "type": "string" } }
        })
    }
}

/// An Envoy extension in a list (an HTTP filter, a listener filter): its name and typed
/// configuration.
///
/// ```
/// use xdsc_core::envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
/// use xdsc_core::model::{NamedExtension, TypedConfig};
/// let cors = NamedExtension::new("envoy.filters.http.cors", TypedConfig::from_message(&Cors::default()));
/// assert_eq!(cors.name, "envoy.filters.http.cors");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedExtension {
    /// The extension's name, e.g. `envoy.filters.http.cors`.
    pub name: String,
    /// Its configuration.
    pub typed_config: TypedConfig,
}

impl NamedExtension {
    /// An extension with this name and configuration.
    pub fn new(name: impl Into<String>, typed_config: TypedConfig) -> NamedExtension {
        NamedExtension {
            name: name.into(),
            typed_config,
        }
    }
}

/// Typed configurations by filter (or extension) name, as Envoy's `typed_per_filter_config`
/// and `typed_extension_protocol_options` maps; ordered, so that encoding is deterministic.
pub type TypedConfigs = BTreeMap<String, TypedConfig>;
