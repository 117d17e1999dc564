//! Unit tests of rendering, on a small hand-built snapshot shaped like the compiler's output
//! (EDS clusters, RDS and SDS over ADS).

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, DataSource, config_source, data_source,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, Rds, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::google::protobuf::Duration;
use serde_json::json;

use super::*;
use crate::model::{Kind as ObjectKind, ObjectKey};

/// The self-signed test certificate and its key (generated for these tests only).
const CERT: &str = include_str!("../../tests/fixtures/example.com.crt");
const KEY: &str = include_str!("../../tests/fixtures/example.com.key");

/// A line from the middle of the private key: must never show in redacted output.
fn key_material() -> &'static str {
    KEY.lines().nth(1).expect("a PEM body line")
}

fn ads() -> ConfigSource {
    ConfigSource {
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        resource_api_version: ApiVersion::V3 as i32,
        ..Default::default()
    }
}

fn sds(name: &str) -> tls::SdsSecretConfig {
    tls::SdsSecretConfig {
        name: name.to_owned(),
        sds_config: Some(ads()),
    }
}

fn inline(s: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::InlineString(s.to_owned())),
        ..Default::default()
    }
}

fn any_of<M: Message + Name>(m: &M) -> Any {
    to_any(m)
}

fn address(ip: &str, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                port,
            ))),
            ..Default::default()
        })),
    }
}

fn eds_cluster(name: &str) -> cluster::Cluster {
    use cluster::cluster::{ClusterDiscoveryType, DiscoveryType, EdsClusterConfig};
    cluster::Cluster {
        name: name.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            eds_config: Some(ads()),
            service_name: String::new(),
        }),
        connect_timeout: Some(Duration {
            seconds: 5,
            nanos: 0,
        }),
        ..Default::default()
    }
}

fn load_assignment(name: &str, endpoints: &[(&str, u16)]) -> endpoint::ClusterLoadAssignment {
    endpoint::ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: vec![endpoint::LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|(ip, port)| endpoint::LbEndpoint {
                    host_identifier: Some(endpoint::lb_endpoint::HostIdentifier::Endpoint(
                        endpoint::Endpoint {
                            address: Some(address(ip, *port)),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A network filter chain with an HTTP connection manager that takes `routes` from RDS.
fn http_filters(stat_prefix: &str, routes: &str) -> Vec<listener::Filter> {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: stat_prefix.to_owned(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: routes.to_owned(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_owned(),
            config_type: Some(http_filter::ConfigType::TypedConfig(any_of(
                &Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    vec![listener::Filter {
        name: "envoy.filters.network.http_connection_manager".to_owned(),
        config_type: Some(listener::filter::ConfigType::TypedConfig(any_of(&manager))),
    }]
}

fn tls_socket<M: Message + Name>(context: &M) -> core::TransportSocket {
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(any_of(
            context,
        ))),
    }
}

fn http_listener() -> listener::Listener {
    listener::Listener {
        name: "http".to_owned(),
        address: Some(address("0.0.0.0", 8080)),
        filter_chains: vec![listener::FilterChain {
            filters: http_filters("http", "routes"),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn https_listener() -> listener::Listener {
    let context = tls::DownstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![sds("example-com")],
            ..Default::default()
        }),
        ..Default::default()
    };
    listener::Listener {
        name: "https".to_owned(),
        address: Some(address("0.0.0.0", 8443)),
        listener_filters: vec![listener::ListenerFilter {
            name: "envoy.filters.listener.tls_inspector".to_owned(),
            config_type: Some(listener::listener_filter::ConfigType::TypedConfig(any_of(
                &TlsInspector::default(),
            ))),
            ..Default::default()
        }],
        filter_chains: vec![listener::FilterChain {
            filter_chain_match: Some(listener::FilterChainMatch {
                server_names: vec!["example.com".to_owned()],
                ..Default::default()
            }),
            // A route configuration the snapshot does not have: an empty one is inlined.
            filters: http_filters("https", "routes-https"),
            transport_socket: Some(tls_socket(&context)),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn route_config() -> route::RouteConfiguration {
    route::RouteConfiguration {
        name: "routes".to_owned(),
        virtual_hosts: vec![route::VirtualHost {
            name: "web".to_owned(),
            domains: vec!["*".to_owned()],
            routes: vec![route::Route {
                r#match: Some(route::RouteMatch {
                    path_specifier: Some(route::route_match::PathSpecifier::Prefix("/".to_owned())),
                    ..Default::default()
                }),
                action: Some(route::route::Action::Route(route::RouteAction {
                    cluster_specifier: Some(route::route_action::ClusterSpecifier::Cluster(
                        "web".to_owned(),
                    )),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn certificate_secret() -> tls::Secret {
    tls::Secret {
        name: "example-com".to_owned(),
        r#type: Some(tls::secret::Type::TlsCertificate(tls::TlsCertificate {
            certificate_chain: Some(inline(CERT)),
            private_key: Some(inline(KEY)),
            ..Default::default()
        })),
    }
}

fn ca_secret() -> tls::Secret {
    tls::Secret {
        name: "ca".to_owned(),
        r#type: Some(tls::secret::Type::ValidationContext(
            tls::CertificateValidationContext {
                trusted_ca: Some(inline(CERT)),
                ..Default::default()
            },
        )),
    }
}

/// A cluster that talks TLS upstream, validating with the `ca` secret over SDS.
fn secure_cluster() -> cluster::Cluster {
    use tls::common_tls_context::ValidationContextType;
    let context = tls::UpstreamTlsContext {
        sni: "example.com".to_owned(),
        common_tls_context: Some(tls::CommonTlsContext {
            validation_context_type: Some(ValidationContextType::ValidationContextSdsSecretConfig(
                sds("ca"),
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    cluster::Cluster {
        transport_socket: Some(tls_socket(&context)),
        ..eds_cluster("secure")
    }
}

fn insert<M: Message + Name>(
    snapshot: &mut Snapshot,
    resource_type: ResourceType,
    name: &str,
    msg: &M,
    from: ObjectKind,
) {
    let resource = Resource::new(
        resource_type,
        name,
        canonical::encode(msg),
        vec![ObjectKey::new(from, name)],
    );
    snapshot
        .resources_mut(resource_type)
        .insert(Arc::new(resource));
}

/// Clusters `web` (with endpoints), `secure` (TLS upstream, with endpoints) and `lonely` (no
/// endpoints); listeners `http` (RDS `routes`) and `https` (TLS via SDS, RDS `routes-https`,
/// which is missing); route configuration `routes`; secrets `example-com` and `ca`.
fn snapshot() -> Snapshot {
    use ResourceType::{Cluster, Endpoint, Listener, Route, Secret};
    let mut s = Snapshot::default();
    insert(
        &mut s,
        Cluster,
        "web",
        &eds_cluster("web"),
        ObjectKind::Cluster,
    );
    insert(
        &mut s,
        Cluster,
        "secure",
        &secure_cluster(),
        ObjectKind::Cluster,
    );
    insert(
        &mut s,
        Cluster,
        "lonely",
        &eds_cluster("lonely"),
        ObjectKind::Cluster,
    );
    let web = load_assignment("web", &[("10.0.0.1", 8080), ("10.0.0.2", 8080)]);
    insert(&mut s, Endpoint, "web", &web, ObjectKind::Endpoints);
    let secure = load_assignment("secure", &[("10.0.1.1", 443)]);
    insert(&mut s, Endpoint, "secure", &secure, ObjectKind::Endpoints);
    insert(
        &mut s,
        Listener,
        "http",
        &http_listener(),
        ObjectKind::Listener,
    );
    insert(
        &mut s,
        Listener,
        "https",
        &https_listener(),
        ObjectKind::Listener,
    );
    insert(
        &mut s,
        Route,
        "routes",
        &route_config(),
        ObjectKind::VirtualHost,
    );
    insert(
        &mut s,
        Secret,
        "example-com",
        &certificate_secret(),
        ObjectKind::Secret,
    );
    insert(&mut s, Secret, "ca", &ca_secret(), ObjectKind::Secret);
    s
}

/// The element of a JSON array whose `name` is `name`.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .unwrap_or_else(|| panic!("no {name:?} in {list:#}"))
}

/// The typed config of a listener's first filter chain's only network filter.
fn first_manager(listener: &Value) -> &Value {
    &listener["filter_chains"][0]["filters"][0]["typed_config"]
}

#[test]
fn resource_json_is_envoy_json_with_proto_field_names() {
    let s = snapshot();
    let web = resource_json(s.get(ResourceType::Cluster, "web").expect("web")).expect("renders");
    assert_eq!(
        web,
        json!({
            "name": "web",
            "type": "EDS",
            "eds_cluster_config": { "eds_config": { "ads": {}, "resource_api_version": "V3" } },
            "connect_timeout": "5s",
        })
    );
    let http =
        resource_json(s.get(ResourceType::Listener, "http").expect("http")).expect("renders");
    let manager = first_manager(&http);
    assert_eq!(
        manager["@type"],
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    );
    assert_eq!(manager["rds"]["route_config_name"], "routes");
    assert_eq!(
        manager["http_filters"][0]["name"],
        "envoy.filters.http.router"
    );
}

#[test]
fn debug_json_shows_every_type_with_versions_and_provenance() {
    let s = snapshot();
    let json = debug_json(&s).expect("renders");
    assert_eq!(json["version"], s.version().to_string());
    for t in ResourceType::ALL {
        let view = &json[t.short_name()];
        assert_eq!(view["version"], s.resources(t).version().to_string());
        let names: Vec<&str> = view["resources"]
            .as_array()
            .expect("list")
            .iter()
            .map(|r| r["name"].as_str().expect("name"))
            .collect();
        let expected: Vec<&str> = s.resources(t).names().map(|n| &**n).collect();
        assert_eq!(names, expected, "{t}");
    }
    let web = named(&json["clusters"]["resources"], "web");
    let resource = s.get(ResourceType::Cluster, "web").expect("web");
    assert_eq!(web["version"], resource.version().to_string());
    assert_eq!(web["provenance"], json!(["Cluster/web"]));
    assert_eq!(web["resource"]["type"], "EDS");
    let routes = named(&json["routes"]["resources"], "routes");
    assert_eq!(routes["provenance"], json!(["VirtualHost/routes"]));
}

#[test]
fn debug_json_redacts_private_keys() {
    let s = snapshot();
    let json = debug_json(&s).expect("renders");
    let text = json.to_string();
    assert!(!text.contains(key_material()), "private key leaked: {text}");
    assert!(!text.contains("PRIVATE KEY"));
    let secret = &named(&json["secrets"]["resources"], "example-com")["resource"];
    assert_eq!(secret["tls_certificate"]["private_key"], REDACTED);
    // Certificates are public and stay.
    assert_eq!(
        secret["tls_certificate"]["certificate_chain"]["inline_string"],
        CERT
    );
    let ca = &named(&json["secrets"]["resources"], "ca")["resource"];
    assert_eq!(
        ca["validation_context"]["trusted_ca"]["inline_string"],
        CERT
    );
}

#[test]
fn debug_json_redacts_secret_material_everywhere() {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::downstream_tls_context::SessionTicketKeysType;
    let mut s = Snapshot::default();
    // Inline key material in a listener's TLS context (inside an Any), as bytes.
    let inline_bytes = DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(KEY.as_bytes().to_vec())),
        ..Default::default()
    };
    let context = tls::DownstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificates: vec![tls::TlsCertificate {
                certificate_chain: Some(inline(CERT)),
                private_key: Some(inline_bytes.clone()),
                password: Some(inline("hunter2")),
                ..Default::default()
            }],
            ..Default::default()
        }),
        session_ticket_keys_type: Some(SessionTicketKeysType::SessionTicketKeys(
            tls::TlsSessionTicketKeys {
                keys: vec![inline("ticket-key-material")],
            },
        )),
        ..Default::default()
    };
    let mut l = http_listener();
    l.filter_chains[0].transport_socket = Some(tls_socket(&context));
    insert(
        &mut s,
        ResourceType::Listener,
        "http",
        &l,
        ObjectKind::Listener,
    );
    let generic = tls::Secret {
        name: "token".to_owned(),
        r#type: Some(tls::secret::Type::GenericSecret(tls::GenericSecret {
            secret: Some(inline("generic-secret-material")),
            ..Default::default()
        })),
    };
    insert(
        &mut s,
        ResourceType::Secret,
        "token",
        &generic,
        ObjectKind::Secret,
    );

    let json = debug_json(&s).expect("renders");
    let text = json.to_string();
    let base64_key = resource_json(s.get(ResourceType::Listener, "http").expect("http"))
        .expect("renders")["filter_chains"][0]["transport_socket"]["typed_config"]
        ["common_tls_context"]["tls_certificates"][0]["private_key"]["inline_bytes"]
        .as_str()
        .expect("the unredacted rendering has the key as base64")
        .to_owned();
    for leak in [
        key_material(),
        base64_key.as_str(),
        "hunter2",
        "ticket-key-material",
        "generic-secret-material",
    ] {
        assert!(!text.contains(leak), "{leak:?} leaked: {text}");
    }
    let http = &named(&json["listeners"]["resources"], "http")["resource"];
    let context = &http["filter_chains"][0]["transport_socket"]["typed_config"];
    let certificate = &context["common_tls_context"]["tls_certificates"][0];
    assert_eq!(certificate["private_key"], REDACTED);
    assert_eq!(certificate["password"], REDACTED);
    assert_eq!(certificate["certificate_chain"]["inline_string"], CERT);
    assert_eq!(context["session_ticket_keys"], REDACTED);
    let token = &named(&json["secrets"]["resources"], "token")["resource"];
    assert_eq!(token["generic_secret"], REDACTED);
}

#[test]
fn redaction_covers_the_fields_envoy_marks_sensitive() {
    let fields = sensitive_fields();
    for field in [
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.private_key",
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.pkcs12",
        "envoy.extensions.transport_sockets.tls.v3.TlsCertificate.password",
        "envoy.extensions.transport_sockets.tls.v3.TlsSessionTicketKeys.keys",
        "envoy.extensions.transport_sockets.tls.v3.GenericSecret.secret",
        "envoy.extensions.transport_sockets.tls.v3.GenericSecret.secrets",
        "envoy.config.core.v3.GrpcService.GoogleGrpc.SslCredentials.private_key",
    ] {
        assert!(fields.contains(field), "{field} is not redacted");
    }
}

fn render_bootstrap(s: &Snapshot) -> Value {
    bootstrap_json(s, &BootstrapOptions::default()).expect("renders")
}

#[test]
fn bootstrap_makes_eds_clusters_static_with_their_endpoints() {
    let json = render_bootstrap(&snapshot());
    let clusters = &json["static_resources"]["clusters"];
    let web = named(clusters, "web");
    assert_eq!(web["type"], "STATIC");
    assert!(web.get("eds_cluster_config").is_none(), "{web:#}");
    let assignment = &web["load_assignment"];
    assert_eq!(assignment["cluster_name"], "web");
    let endpoints = &assignment["endpoints"][0]["lb_endpoints"];
    assert_eq!(endpoints.as_array().map(Vec::len), Some(2));
    assert_eq!(
        endpoints[0]["endpoint"]["address"]["socket_address"],
        json!({ "address": "10.0.0.1", "port_value": 8080 })
    );
    // No ClusterLoadAssignment in the snapshot: a static cluster without endpoints.
    let lonely = named(clusters, "lonely");
    assert_eq!(lonely["type"], "STATIC");
    assert_eq!(
        lonely["load_assignment"],
        json!({ "cluster_name": "lonely" })
    );
    // Endpoints and routes only appear inline.
    let statics = json["static_resources"].as_object().expect("object");
    let mut keys: Vec<&str> = statics.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["clusters", "listeners", "secrets"]);
}

#[test]
fn bootstrap_inlines_route_configurations() {
    let json = render_bootstrap(&snapshot());
    let listeners = &json["static_resources"]["listeners"];
    let http = named(listeners, "http");
    let manager = first_manager(http);
    assert!(manager.get("rds").is_none(), "{manager:#}");
    let routes = &manager["route_config"];
    assert_eq!(routes["name"], "routes");
    assert_eq!(
        routes["virtual_hosts"][0]["routes"][0]["route"]["cluster"],
        "web"
    );
    assert_eq!(
        manager["http_filters"][0]["name"],
        "envoy.filters.http.router"
    );
    assert_eq!(
        http["address"]["socket_address"],
        json!({ "address": "0.0.0.0", "port_value": 8080 })
    );
    // The snapshot has no `routes-https`: an empty route configuration of that name.
    let https = named(listeners, "https");
    assert_eq!(
        first_manager(https)["route_config"],
        json!({ "name": "routes-https" })
    );
}

#[test]
fn bootstrap_refers_to_static_secrets_and_includes_them() {
    let s = snapshot();
    let json = render_bootstrap(&s);
    let text = json.to_string();
    assert!(!text.contains("sds_config"), "{json:#}");
    assert!(!text.contains("\"ads\""), "{json:#}");

    let https = named(&json["static_resources"]["listeners"], "https");
    assert_eq!(
        https["listener_filters"][0]["name"],
        "envoy.filters.listener.tls_inspector"
    );
    let chain = &https["filter_chains"][0];
    assert_eq!(
        chain["filter_chain_match"]["server_names"],
        json!(["example.com"])
    );
    let downstream = &chain["transport_socket"]["typed_config"];
    assert_eq!(
        downstream["@type"],
        "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
    );
    assert_eq!(
        downstream["common_tls_context"]["tls_certificate_sds_secret_configs"],
        json!([{ "name": "example-com" }])
    );
    let secure = named(&json["static_resources"]["clusters"], "secure");
    let upstream = &secure["transport_socket"]["typed_config"];
    assert_eq!(upstream["sni"], "example.com");
    assert_eq!(
        upstream["common_tls_context"]["validation_context_sds_secret_config"],
        json!({ "name": "ca" })
    );
    assert_eq!(secure["type"], "STATIC");

    // Secrets are configuration here, not a debug view: the key is included.
    let secrets = &json["static_resources"]["secrets"];
    let certificate = named(secrets, "example-com");
    assert_eq!(
        certificate["tls_certificate"]["private_key"]["inline_string"],
        KEY
    );
    assert_eq!(
        named(secrets, "ca")["validation_context"]["trusted_ca"]["inline_string"],
        CERT
    );
}

#[test]
fn bootstrap_has_node_and_admin_from_options() {
    let options = BootstrapOptions {
        node_id: "edge-1".to_owned(),
        node_cluster: "edge".to_owned(),
        admin_address: "0.0.0.0".to_owned(),
        admin_port: 19000,
    };
    let json = bootstrap_json(&snapshot(), &options).expect("renders");
    assert_eq!(json["node"], json!({ "id": "edge-1", "cluster": "edge" }));
    assert_eq!(
        json["admin"],
        json!({ "address": { "socket_address": { "address": "0.0.0.0", "port_value": 19000 } } })
    );
    let empty = bootstrap_json(&Snapshot::default(), &BootstrapOptions::default()).expect("ok");
    assert_eq!(empty["static_resources"], json!({}));
}

#[test]
fn renderings_are_deterministic() {
    let (a, b) = (snapshot(), snapshot());
    assert_eq!(
        render_bootstrap(&a).to_string(),
        render_bootstrap(&b).to_string()
    );
    assert_eq!(
        debug_json(&a).expect("ok").to_string(),
        debug_json(&b).expect("ok").to_string()
    );
}

#[test]
fn errors_name_the_resource() {
    let mut s = snapshot();
    s.resources_mut(ResourceType::Listener)
        .insert(Arc::new(Resource::new(
            ResourceType::Listener,
            "broken",
            vec![0x0a, 0x05, b'x'],
            vec![],
        )));
    let err = debug_json(&s).expect_err("broken listener");
    assert!(
        matches!(&err, RenderError::Decode { resource_type: ResourceType::Listener, name, .. } if name == "broken"),
        "{err:?}"
    );
    let err = bootstrap_json(&s, &BootstrapOptions::default()).expect_err("broken listener");
    assert!(
        err.to_string().starts_with("listeners \"broken\":"),
        "{err}"
    );

    // An HTTP connection manager that does not decode, inside a valid listener.
    let mut l = http_listener();
    l.filter_chains[0].filters[0].config_type =
        Some(listener::filter::ConfigType::TypedConfig(Any {
            type_url: format!(
                "type.googleapis.com/{}",
                hcm::HttpConnectionManager::full_name()
            ),
            value: vec![0xff],
        }));
    let mut s = Snapshot::default();
    insert(
        &mut s,
        ResourceType::Listener,
        "bad-hcm",
        &l,
        ObjectKind::Listener,
    );
    let err = bootstrap_json(&s, &BootstrapOptions::default()).expect_err("bad HCM");
    assert!(
        matches!(&err, RenderError::Decode { name, message, .. }
            if name == "bad-hcm" && message.ends_with("HttpConnectionManager")),
        "{err:?}"
    );

    // An Any of a type the descriptor pool does not know cannot be rendered.
    let mut c = eds_cluster("odd");
    c.typed_extension_protocol_options.insert(
        "example.com/unknown".to_owned(),
        Any {
            type_url: "type.googleapis.com/example.Unknown".to_owned(),
            value: vec![],
        },
    );
    let mut s = Snapshot::default();
    insert(
        &mut s,
        ResourceType::Cluster,
        "odd",
        &c,
        ObjectKind::Cluster,
    );
    let err = resource_json(s.get(ResourceType::Cluster, "odd").expect("odd")).expect_err("odd");
    assert!(
        matches!(&err, RenderError::Json { resource_type: ResourceType::Cluster, name, .. } if name == "odd"),
        "{err:?}"
    );
}
