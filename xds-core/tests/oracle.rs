//! Properties of the route oracle on generated models and requests aimed at them.

use envoy_types::pb::envoy::config::route::v3 as eroute;
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Cluster, Listener, ListenerProtocol, Model, Object, Route, VirtualHost};
use xdsc_core::oracle::{Action, OracleError, Request, evaluate};
use xdsc_core::snapshot::ResourceType;
use xdsc_core::strategy;

/// A model (arbitrary, or with valid listeners) and some requests aimed at it.
fn model_and_requests() -> impl Strategy<Value = (Model, Vec<Request>)> {
    prop_oneof![strategy::model(), strategy::routable_model()].prop_flat_map(|m| {
        let requests = vec(strategy::requests(&m), 1..12);
        (Just(m), requests)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The compiler only emits what the oracle evaluates and what Envoy accepts: on any model,
    /// every request evaluates, unless its listener was left out of the snapshot.
    #[test]
    fn every_request_on_generated_models_evaluates((model, requests) in model_and_requests()) {
        let compiled = Compiled::new(&model);
        for req in &requests {
            match evaluate(compiled.snapshot(), req) {
                Ok(out) => {
                    // An answer naming a route names its virtual host too.
                    prop_assert!(out.route.is_none() || out.virtual_host.is_some(), "{out}");
                    prop_assert!(!out.explanation.is_empty());
                }
                Err(OracleError::NoListener(l)) => {
                    prop_assert!(compiled.snapshot().get(ResourceType::Listener, &l).is_none());
                }
                Err(e) => prop_assert!(false, "{req:?}: {e}"),
            }
        }
    }

    /// Every exact domain of a virtual host on a plain HTTP listener reaches that virtual host,
    /// in any letter case and with any port; when two hosts claim a domain, the one whose name
    /// sorts first.
    #[test]
    fn every_exact_domain_reaches_its_virtual_host(
        model in prop_oneof![strategy::model(), strategy::routable_model()],
        case in any::<bool>(),
        port in prop_oneof![Just(""), Just(":8080"), Just(":1")],
    ) {
        let compiled = Compiled::new(&model);
        let snapshot = compiled.snapshot();
        for l in model.objects().filter_map(|o| match o.as_ref() {
            Object::Listener(l) if l.protocol == ListenerProtocol::Http => Some(l),
            _ => None,
        }) {
            if snapshot.get(ResourceType::Listener, &l.name).is_none() {
                continue;
            }
            // The route configuration the listener serves (by default named after it).
            let rc_name = l.route_config_name();
            let Some(rc) = snapshot.get(ResourceType::Route, rc_name) else { continue };
            let rc = eroute::RouteConfiguration::decode(rc.body().clone()).expect("decodes");
            // The virtual hosts the compiler kept (valid ones), by name.
            let served: Vec<&str> = rc.virtual_hosts.iter().map(|v| v.name.as_str()).collect();
            let mut owners: std::collections::BTreeMap<String, String> = Default::default();
            for v in model.objects().filter_map(|o| match o.as_ref() {
                Object::VirtualHost(v) if v.listeners.iter().any(|x| x == rc_name) && served.contains(&v.name.as_str()) => Some(v),
                _ => None,
            }) {
                for d in &v.domains {
                    let d = d.to_ascii_lowercase();
                    if d.contains('*') || d.contains(' ') {
                        continue;
                    }
                    let owner = owners.entry(d).or_insert_with(|| v.name.clone());
                    if v.name < *owner {
                        owner.clone_from(&v.name);
                    }
                }
            }
            for (domain, owner) in owners {
                let host = if case { domain.to_ascii_uppercase() } else { domain.clone() };
                let req = Request::new(l.name.clone(), format!("{host}{port}"), "/");
                let out = evaluate(snapshot, &req).expect("evaluates");
                prop_assert_eq!(out.virtual_host.as_deref(), Some(owner.as_str()), "{}", out);
            }
        }
    }

    /// With every route answering with its own name (`strategy::label_routes`), the oracle's
    /// action is that direct response: the shape of a differential test against Envoy, where
    /// the body Envoy sends names the route it chose.
    #[test]
    fn labelled_routes_answer_with_their_names((model, requests) in model_and_requests()) {
        let compiled = Compiled::new(&strategy::label_routes(&model));
        for req in &requests {
            let Ok(out) = evaluate(compiled.snapshot(), req) else { continue };
            if let (Some(v), Some(r)) = (&out.virtual_host, &out.route) {
                let want = format!("{v}/{r}");
                prop_assert!(matches!(&out.action, Action::Direct { status: 200, body: Some(b), .. } if *b == want), "{}", out);
            }
        }
    }
}

/// "Every host in my inventory reaches its own service", as a user would write it.
#[test]
fn every_host_in_an_inventory_reaches_its_own_service() {
    let inventory = [
        ("shop.example.com", "shop"),
        ("blog.example.com", "blog"),
        ("api.example.org", "api"),
    ];
    let mut objects = vec![Object::Listener(Listener::new("http", 8080))];
    for (host, service) in inventory {
        let mut vh = VirtualHost::new(service, ["http"], [host]);
        vh.routes.push(Route::forward_prefix("all", "/", service));
        objects.push(Object::VirtualHost(vh));
        objects.push(Object::Cluster(Cluster::new(service)));
    }
    let model = Model::from_objects(objects);
    let snapshot = Compiled::new(&model).snapshot().clone();
    proptest!(ProptestConfig::with_cases(128), |(mut req in strategy::requests(&model))| {
        req.sni = None; // plain HTTP
        let out = evaluate(&snapshot, &req).expect("evaluates");
        let host = req.host.split(':').next().unwrap_or_default().to_ascii_lowercase();
        match inventory.iter().find(|(h, _)| *h == host) {
            Some((_, service)) => prop_assert!(
                matches!(&out.action, Action::Forward { clusters, .. } if clusters == &[(service.to_string(), 1)]),
                "{}", out
            ),
            None => prop_assert_eq!(&out.action, &Action::NotFound),
        }
    });
}
