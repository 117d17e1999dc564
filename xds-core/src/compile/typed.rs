//! Typed configurations (the model's escape hatches, [`model::TypedConfig`]) into
//! `google.protobuf.Any`s, checked against the descriptor pool the crate compiles: the type
//! URL must name a message in it, and the value must decode as that message (Envoy JSON must
//! deserialize as it, unknown fields included). Canonical encoding of the resource then sorts
//! the maps inside the `Any` too, since its type is known.
//!
//! Not here: where the configurations go (the translators), or any check of what a message
//! means to Envoy beyond its shape (`envoy --mode validate` and a NACK report that).

use envoy_types::pb::google::protobuf::Any;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage, SerializeOptions};

use crate::descriptors::pool;
use crate::diagnostic::{Diags, Key, Problem, ToFieldPath};
use crate::model::{self, TypedConfig};

pub(crate) fn descriptor(type_url: &str) -> Result<MessageDescriptor, Problem> {
    let Some((_, name)) = type_url.rsplit_once('/') else {
        return Err(Problem::invalid(format!(
            "type URL {type_url:?} is not of the form type.googleapis.com/<message>"
        )));
    };
    pool().get_message_by_name(name).ok_or_else(|| {
        Problem::invalid(format!(
            "unknown type {name:?}: not among the Envoy messages xdsc compiles \
             (xds-core/build.rs lists them)"
        ))
    })
}

/// The `Any` of a typed configuration, or what is wrong with it.
pub(crate) fn resolve(c: &TypedConfig) -> Result<Any, Problem> {
    match c {
        TypedConfig::Proto { type_url, value } => {
            let desc = descriptor(type_url)?;
            DynamicMessage::decode(desc.clone(), value.as_ref()).map_err(|e| {
                Problem::invalid(format!("does not decode as {}: {e}", desc.full_name()))
            })?;
            Ok(Any {
                type_url: type_url.clone(),
                value: value.to_vec(),
            })
        }
        TypedConfig::Json(v) => {
            let Some(type_url) = v.get("@type").and_then(serde_json::Value::as_str) else {
                return Err(Problem::invalid("needs a string \"@type\""));
            };
            let desc = descriptor(type_url)?;
            let mut fields = v.clone();
            if let Some(o) = fields.as_object_mut() {
                o.remove("@type");
                // Well-known types with a JSON form of their own sit under "value".
                if well_known(&desc) {
                    fields = o.remove("value").unwrap_or(serde_json::Value::Null);
                }
            }
            let m = DynamicMessage::deserialize(desc.clone(), fields).map_err(|e| {
                Problem::invalid(format!("is not a valid {}: {e}", desc.full_name()))
            })?;
            Ok(Any {
                type_url: type_url.to_owned(),
                value: prost::Message::encode_to_vec(&m),
            })
        }
    }
}

/// Envoy JSON (with `@type`) of a type URL and bytes, if the type is known and they decode.
pub(crate) fn to_json(type_url: &str, value: &[u8]) -> Option<serde_json::Value> {
    let desc = descriptor(type_url).ok()?;
    let m = DynamicMessage::decode(desc, value).ok()?;
    let mut v = m
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().use_proto_field_name(true),
        )
        .ok()?;
    if well_known(&m.descriptor()) {
        v = serde_json::json!({ "value": v });
    }
    let o = v.as_object_mut()?;
    o.insert("@type".to_owned(), serde_json::Value::from(type_url));
    Some(v)
}

/// Whether a message has a JSON form of its own (not an object of its fields), so that in an
/// `Any` it is written under `"value"`.
fn well_known(desc: &MessageDescriptor) -> bool {
    desc.package_name() == "google.protobuf" && desc.name() != "Empty"
}

/// Resolves an ordered map of typed configurations (in key order), reporting each failure at
/// `field["key"]`; also returns whether all resolved.
pub(crate) fn resolve_map(
    configs: &model::TypedConfigs,
    field: &dyn ToFieldPath,
    d: &mut Diags,
) -> (Vec<(String, Any)>, bool) {
    let mut out = Vec::with_capacity(configs.len());
    let mut ok = true;
    for (k, c) in configs {
        if k.is_empty() {
            d.error(field, Problem::invalid("a filter name must not be empty"));
            ok = false;
            continue;
        }
        match resolve(c) {
            Ok(a) => out.push((k.clone(), a)),
            Err(p) => {
                d.error((field, Key(k)), p);
                ok = false;
            }
        }
    }
    (out, ok)
}
