//! Unit tests of canonical encoding: order independence, idempotence, opaque `Any`s, and
//! totality on arbitrary bytes.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Metadata, SocketAddress, socket_address};
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::google::protobuf::{Any, ListValue, Struct, Value, value};
use proptest::prelude::*;
use prost::{Message, Name};

use super::*;

/// How the messages inside `Any`s of test messages are encoded.
#[derive(Clone, Copy)]
enum Inner {
    /// Plain prost: the outer canonicalization must reach into the `Any`.
    Plain,
    /// Already canonical, so that decoding the outer canonical bytes gives the message back.
    Canonical,
}

fn any_of<M: Message + Name>(m: &M, inner: Inner) -> Any {
    Any {
        type_url: format!("type.googleapis.com/{}", M::full_name()),
        value: match inner {
            Inner::Plain => m.encode_to_vec(),
            Inner::Canonical => encode(m),
        },
    }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.to_owned())),
    }
}

/// A `Struct` with the given fields, inserted in the given order.
fn structure(fields: &[(&str, Value)]) -> Struct {
    Struct {
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

/// A nested struct value with several fields, so it has map order of its own.
fn nested_struct(tag: &str) -> Value {
    let inner = structure(&[
        ("zeta", string(tag)),
        ("alpha", string("a")),
        (
            "mu",
            Value {
                kind: Some(value::Kind::ListValue(ListValue {
                    values: vec![
                        string("x"),
                        Value {
                            kind: Some(value::Kind::StructValue(structure(&[
                                ("q", string("1")),
                                ("p", string("2")),
                                ("r", string("3")),
                            ]))),
                        },
                    ],
                })),
            },
        ),
        ("beta", string("b")),
    ]);
    Value {
        kind: Some(value::Kind::StructValue(inner)),
    }
}

/// A cluster with a 4-entry `typed_extension_protocol_options` map (whose `Any` values hold
/// structs with maps of their own) and multi-entry metadata maps; `order` permutes insertion.
fn cluster(order: &[usize], inner: Inner) -> Cluster {
    let options = [
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "example.com/a",
        "example.com/z",
        "example.com/m",
    ];
    let metadata = ["envoy.lb", "xdsc", "aaa", "zzz"];
    Cluster {
        name: "web".to_owned(),
        typed_extension_protocol_options: order
            .iter()
            .map(|&i| {
                let s = structure(&[
                    ("k1", string(options[i])),
                    ("k2", nested_struct(options[i])),
                    ("k3", string("v3")),
                ]);
                (options[i].to_owned(), any_of(&s, inner))
            })
            .collect(),
        metadata: Some(Metadata {
            filter_metadata: order
                .iter()
                .map(|&i| {
                    let s = structure(&[("x", nested_struct(metadata[i])), ("y", string("y"))]);
                    (metadata[i].to_owned(), s)
                })
                .collect(),
            typed_filter_metadata: order
                .iter()
                .map(|&i| {
                    (
                        metadata[i].to_owned(),
                        any_of(&structure(&[("s", nested_struct("t"))]), inner),
                    )
                })
                .collect(),
        }),
        ..Default::default()
    }
}

/// A route configuration whose route and virtual host carry several `typed_per_filter_config`
/// entries; `order` permutes insertion.
fn route_config(order: &[usize], inner: Inner) -> RouteConfiguration {
    let filters = [
        "envoy.filters.http.router",
        "envoy.filters.http.cors",
        "envoy.filters.http.a",
        "envoy.filters.http.z",
    ];
    let per_filter = |salt: &str| {
        order
            .iter()
            .map(|&i| {
                let s = structure(&[("f", string(filters[i])), ("n", nested_struct(salt))]);
                (filters[i].to_owned(), any_of(&s, inner))
            })
            .collect()
    };
    RouteConfiguration {
        name: "routes".to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: "vh".to_owned(),
            domains: vec!["*".to_owned()],
            routes: vec![
                Route {
                    name: "r1".to_owned(),
                    typed_per_filter_config: per_filter("r1"),
                    ..Default::default()
                },
                Route {
                    name: "r2".to_owned(),
                    typed_per_filter_config: per_filter("r2"),
                    ..Default::default()
                },
            ],
            typed_per_filter_config: per_filter("vh"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

const ORDERS: [[usize; 4]; 6] = [
    [0, 1, 2, 3],
    [3, 2, 1, 0],
    [1, 3, 0, 2],
    [2, 0, 3, 1],
    [0, 2, 1, 3],
    [3, 1, 2, 0],
];

/// Every order, several times over: each `HashMap` gets its own random seed, so a plain
/// encoding varies even for the same insertion order.
fn check_order_independent<M>(build: impl Fn(&[usize], Inner) -> M)
where
    M: Message + Name + Default + PartialEq + std::fmt::Debug,
{
    let reference = encode(&build(&ORDERS[0], Inner::Plain));
    let mut plain = std::collections::BTreeSet::new();
    for _ in 0..5 {
        for order in &ORDERS {
            let msg = build(order, Inner::Plain);
            plain.insert(msg.encode_to_vec());
            let bytes = encode(&msg);
            assert_eq!(bytes, reference, "order {order:?}");
            assert_eq!(
                canonicalize(&M::full_name(), &bytes).expect("canonical"),
                bytes
            );
            assert_eq!(
                canonicalize(&M::full_name(), &msg.encode_to_vec()).expect("canonical"),
                bytes
            );
            // Canonical bytes decode to the message they encode.
            let msg = build(order, Inner::Canonical);
            let bytes = encode(&msg);
            assert_eq!(bytes, reference, "order {order:?}");
            assert_eq!(M::decode(bytes.as_slice()).expect("decodes"), msg);
        }
    }
    // The trap is real: without canonicalization these encodings would differ.
    assert!(
        plain.len() > 1,
        "plain prost encoding happened to be stable"
    );
}

#[test]
fn cluster_with_multi_entry_maps_encodes_identically_in_any_order() {
    check_order_independent(cluster);
}

#[test]
fn route_typed_per_filter_config_encodes_identically_in_any_order() {
    check_order_independent(route_config);
}

#[test]
fn map_entries_come_out_sorted_by_key() {
    let s = structure(&[("b", string("2")), ("c", string("3")), ("a", string("1"))]);
    let bytes = encode(&s);
    let keys: Vec<&[u8]> = bytes
        .windows(3)
        .filter(|w| w[0] == 10 && w[1] == 1)
        .map(|w| &w[2..3])
        .collect();
    assert_eq!(keys, vec![b"a", b"b", b"c"]);
}

#[test]
fn messages_without_maps_are_left_exactly_as_prost_encodes_them() {
    // A type that cannot reach a map or an Any at all: copied without being parsed.
    let addr = SocketAddress {
        address: "127.0.0.1".to_owned(),
        port_specifier: Some(socket_address::PortSpecifier::PortValue(8080)),
        ..Default::default()
    };
    let plans = plans();
    let index = plans.by_name[SocketAddress::full_name().as_str()];
    assert!(!plans.messages[index].needs_work);
    assert_eq!(encode(&addr), addr.encode_to_vec());

    // A type that can reach maps but has none set: parsed, and still unchanged.
    let mut c = cluster(&[0], Inner::Plain);
    c.typed_extension_protocol_options.clear();
    c.metadata = None;
    c.alt_stat_name = "stats".to_owned();
    assert!(plans.messages[plans.by_name["envoy.config.cluster.v3.Cluster"]].needs_work);
    assert_eq!(encode(&c), c.encode_to_vec());

    // A single-entry map has nothing to sort.
    let one = Cluster {
        name: "one".to_owned(),
        typed_extension_protocol_options: [(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_owned(),
            any_of(&HttpProtocolOptions::default(), Inner::Plain),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    assert_eq!(encode(&one), one.encode_to_vec());
}

#[test]
fn canonicalize_is_idempotent() {
    for bytes in [
        cluster(&ORDERS[2], Inner::Plain).encode_to_vec(),
        route_config(&ORDERS[3], Inner::Plain).encode_to_vec(),
    ] {
        for name in [
            "envoy.config.cluster.v3.Cluster",
            "envoy.config.route.v3.RouteConfiguration",
        ] {
            // Parsing a message as the wrong type must not fail on well-framed bytes either.
            if let Ok(once) = canonicalize(name, &bytes) {
                assert_eq!(canonicalize(name, &once).expect("again"), once);
            }
        }
    }
}

#[test]
fn any_of_an_unknown_type_is_left_as_it_is() {
    let inner = structure(&[("b", string("2")), ("a", string("1")), ("c", string("3"))]);
    // Hand-built so the map is definitely out of order: b, a, c.
    let mut value = Vec::new();
    for (k, v) in [("b", "2"), ("a", "1"), ("c", "3")] {
        let entry = prost_types_entry(k, v);
        value.push(10);
        encode_varint(entry.len() as u64, &mut value);
        value.extend_from_slice(&entry);
    }
    assert_eq!(Struct::decode(value.as_slice()).expect("valid"), inner);

    let unknown = Any {
        type_url: "type.googleapis.com/example.Unknown".to_owned(),
        value: value.clone(),
    };
    let bytes = unknown.encode_to_vec();
    assert_eq!(
        canonicalize("google.protobuf.Any", &bytes).expect("ok"),
        bytes
    );

    // The same bytes under a known type are sorted.
    let known = Any {
        type_url: "type.googleapis.com/google.protobuf.Struct".to_owned(),
        value,
    };
    let out = canonicalize("google.protobuf.Any", &known.encode_to_vec()).expect("ok");
    let out = Any::decode(out.as_slice()).expect("any");
    assert_eq!(out.value, encode(&inner));
    assert_ne!(out.value, known.value);
}

/// The encoding of one `Struct.fields` entry `{key: k, value: {string_value: v}}`.
fn prost_types_entry(k: &str, v: &str) -> Vec<u8> {
    let mut entry = vec![10, k.len() as u8];
    entry.extend_from_slice(k.as_bytes());
    let value = string(v).encode_to_vec();
    entry.push(18);
    entry.push(value.len() as u8);
    entry.extend_from_slice(&value);
    entry
}

#[test]
fn duplicate_map_keys_keep_the_last_entry_like_a_decoder() {
    let mut bytes = Vec::new();
    for (k, v) in [("a", "first"), ("b", "x"), ("a", "last")] {
        let entry = prost_types_entry(k, v);
        bytes.push(10);
        bytes.push(entry.len() as u8);
        bytes.extend_from_slice(&entry);
    }
    let decoded = Struct::decode(bytes.as_slice()).expect("valid");
    let out = canonicalize("google.protobuf.Struct", &bytes).expect("ok");
    assert_eq!(Struct::decode(out.as_slice()).expect("valid"), decoded);
    assert_eq!(out, encode(&decoded));
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let name = "google.protobuf.Struct";
    let truncated = [10, 5, 10, 1];
    assert!(matches!(
        canonicalize(name, &truncated),
        Err(CanonicalError::Malformed { .. })
    ));
    assert!(matches!(
        canonicalize(name, &[0x0f]),
        Err(CanonicalError::Malformed {
            reason: "invalid wire type",
            ..
        })
    ));
    assert!(matches!(
        canonicalize(name, &[0]),
        Err(CanonicalError::Malformed {
            reason: "invalid field number",
            ..
        })
    ));
    assert!(matches!(
        canonicalize("no.such.Type", &[]),
        Err(CanonicalError::UnknownMessage(_))
    ));

    // Struct -> Value -> Struct -> ... 200 levels deep: refused, without overflowing the stack.
    let mut deep = Vec::new();
    for i in 0..200 {
        deep = if i % 2 == 0 {
            // Value { struct_value: deep }
            wrap(5, &deep)
        } else {
            // Struct { fields: { "k": deep } }
            let mut entry = vec![10, 1, b'k'];
            entry.extend_from_slice(&wrap(2, &deep));
            wrap(1, &entry)
        };
    }
    assert!(matches!(
        canonicalize(name, &deep),
        Err(CanonicalError::TooDeep { .. })
    ));
}

/// A length-delimited field `number` holding `payload`.
fn wrap(number: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(number << 3) | 2];
    encode_varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// Random JSON-like values, as a `Struct` can hold them.
fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(|b| Value {
            kind: Some(value::Kind::BoolValue(b))
        }),
        "[a-z]{0,4}".prop_map(|s| string(&s)),
        (-1000i32..1000).prop_map(|n| Value {
            kind: Some(value::Kind::NumberValue(f64::from(n)))
        }),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|values| Value {
                kind: Some(value::Kind::ListValue(ListValue { values }))
            }),
            prop::collection::btree_map("[a-z]{0,3}", inner, 0..6).prop_map(|m| Value {
                kind: Some(value::Kind::StructValue(Struct {
                    fields: m.into_iter().collect()
                }))
            }),
        ]
    })
}

/// Rebuilds every map of a value, inserting entries in reverse order into fresh maps.
fn reinsert(v: &Value) -> Value {
    let kind = match &v.kind {
        Some(value::Kind::StructValue(s)) => {
            let mut entries: Vec<_> = s.fields.iter().collect();
            entries.sort_by(|a, b| b.0.cmp(a.0));
            Some(value::Kind::StructValue(Struct {
                fields: entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), reinsert(v)))
                    .collect(),
            }))
        }
        Some(value::Kind::ListValue(l)) => Some(value::Kind::ListValue(ListValue {
            values: l.values.iter().map(reinsert).collect(),
        })),
        other => other.clone(),
    };
    Value { kind }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_results_are_idempotent(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        which in 0usize..6,
    ) {
        let name = [
            "envoy.config.cluster.v3.Cluster",
            "envoy.config.listener.v3.Listener",
            "envoy.config.route.v3.RouteConfiguration",
            "google.protobuf.Struct",
            "google.protobuf.Any",
            "envoy.extensions.transport_sockets.tls.v3.Secret",
        ][which];
        if let Ok(once) = canonicalize(name, &bytes) {
            prop_assert_eq!(canonicalize(name, &once), Ok(once.clone()));
        }
    }

    #[test]
    fn mutated_valid_encodings_never_panic_and_results_are_idempotent(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = cluster(&ORDERS[1], Inner::Plain).encode_to_vec();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        let name = "envoy.config.cluster.v3.Cluster";
        if let Ok(once) = canonicalize(name, &bytes) {
            prop_assert_eq!(canonicalize(name, &once), Ok(once.clone()));
        }
    }

    #[test]
    fn struct_encoding_is_independent_of_map_construction(v in arb_value()) {
        let a = encode(&v);
        let b = encode(&reinsert(&v));
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(Value::decode(a.as_slice()).expect("decodes"), v);
    }
}

#[test]
fn any_whose_value_does_not_parse_is_left_as_it_is() {
    // A known type with a value that is not one: opaque, kept, and no panic even in `encode`.
    let any = Any {
        type_url: "type.googleapis.com/google.protobuf.Struct".to_owned(),
        value: vec![0xff, 0xff],
    };
    let bytes = any.encode_to_vec();
    assert_eq!(encode(&any), bytes);
    let outer = structure(&[("b", string("x")), ("a", string("y"))]);
    let cluster = Cluster {
        name: "c".to_owned(),
        typed_extension_protocol_options: [("k".to_owned(), any.clone())].into_iter().collect(),
        metadata: Some(Metadata {
            filter_metadata: [("m".to_owned(), outer)].into_iter().collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let canonical = encode(&cluster);
    // The rest of the message is still canonicalized around it.
    assert_eq!(
        Cluster::decode(canonical.as_slice()).expect("decodes"),
        cluster
    );
    assert_eq!(
        canonicalize(&Cluster::full_name(), &canonical).expect("ok"),
        canonical
    );
}

#[test]
fn every_message_in_the_pool_is_found_by_name() {
    let plans = plans();
    assert!(plans.by_name.len() > 100);
    for (name, &index) in &plans.by_name {
        assert_eq!(plans.index(name), Some(index), "{name}");
    }
    assert_eq!(plans.index("no.such.Message"), None);
    assert_eq!(plans.index(""), None);
}
