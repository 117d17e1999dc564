//! A user's own generator, as a platform team would write it: its inventory of services (each
//! with the host names it answers and a path prefix per API version) becomes an xdsc model.
//! `tests/inventory_property.rs` property-tests it with proptest, the strategies xdsc exports
//! and the route oracle: every host in the inventory reaches its own service, and nothing else
//! does. See `docs/embedding.md`.
//!
//! Not here: anything but the translation; serving is as in [`crate::filter`].

use std::collections::BTreeMap;

use xdsc_core::model::{
    Cluster, Endpoint, Endpoints, Listener, Model, Object, Route, RouteOrder, VirtualHost,
};

/// One service of the inventory.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// The service's name, also its cluster's.
    pub name: String,
    /// The host names it answers (the first service listing a name owns it).
    pub hosts: Vec<String>,
    /// Its instances: address and port.
    pub instances: Vec<(String, u16)>,
    /// Path prefixes served by the service's canary (`/v2`, say), before everything else.
    pub canary_prefixes: Vec<String>,
}

/// The inventory: services by name.
pub type Inventory = BTreeMap<String, Service>;

/// The cluster of a service's canary.
pub fn canary(service: &str) -> String {
    format!("{service}-canary")
}

/// Which service owns each host: the first, in name order, that lists it.
///
/// ```
/// use xdsc_examples::inventory::{Service, owners};
/// let s = |n: &str, h: &[&str]| (n.to_owned(), Service { name: n.into(), hosts: h.iter().map(|x| x.to_string()).collect(), instances: vec![], canary_prefixes: vec![] });
/// let inv = [s("a", &["x.example.com"]), s("b", &["x.example.com", "y.example.com"])].into_iter().collect();
/// let o = owners(&inv);
/// assert_eq!((o["x.example.com"].as_str(), o["y.example.com"].as_str()), ("a", "b"));
/// ```
pub fn owners(inventory: &Inventory) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for s in inventory.values() {
        for h in &s.hosts {
            out.entry(h.to_ascii_lowercase())
                .or_insert_with(|| s.name.clone());
        }
    }
    out
}

/// The model of an inventory: one HTTP listener on `port`, a virtual host per service with
/// the hosts it owns, its canary prefixes first and then everything to the service, in the
/// order written (`route_order: as_written`: the generator decides, as with hand-written
/// Envoy configuration).
pub fn model(inventory: &Inventory, port: u16) -> Model {
    let owners = owners(inventory);
    let mut objects = vec![Object::Listener(Listener::new("ingress", port))];
    for s in inventory.values() {
        let hosts: Vec<&String> = s
            .hosts
            .iter()
            .filter(|h| owners.get(&h.to_ascii_lowercase()) == Some(&s.name))
            .collect();
        let mut vh = VirtualHost::new(s.name.clone(), ["ingress"], hosts);
        vh.route_order = RouteOrder::AsWritten;
        for (i, p) in s.canary_prefixes.iter().enumerate() {
            vh.routes.push(Route::forward_prefix(
                format!("canary-{i}"),
                p.clone(),
                canary(&s.name),
            ));
        }
        vh.routes
            .push(Route::forward_prefix("all", "/", s.name.clone()));
        if !vh.domains.is_empty() {
            objects.push(Object::VirtualHost(vh));
        }
        for name in [s.name.clone(), canary(&s.name)] {
            objects.push(Object::Cluster(Cluster::new(name.clone())));
            objects.push(Object::Endpoints(Endpoints::new(
                name,
                s.instances
                    .iter()
                    .map(|(a, p)| Endpoint::new(a.clone(), *p)),
            )));
        }
    }
    Model::from_objects(objects)
}
