//! Kubernetes objects in, model objects, diagnostics and statuses out: what the translation
//! means.
//!
//! The translation runs in units ([`crate::translator`] says how they are kept and
//! recomputed); [`full`] is the one-shot form, which reads every object in an
//! [`Inputs`] and returns a [`Translation`]: the model objects (sorted by key), the
//! [`Diagnostic`]s (sorted) and the computed statuses ([`crate::status`]). It is a pure
//! function of its arguments: the same inputs give byte-identical output whatever order the
//! objects were inserted in. It does no I/O and knows nothing of files or clusters:
//! `xdsc-file` and the controller both feed it.
//!
//! # What is taken
//!
//! - An **Ingress** whose class (`spec.ingressClassName`, or the deprecated
//!   `kubernetes.io/ingress.class` annotation) names an IngressClass with
//!   `spec.controller` = [`Options::ingress_controller`]; an Ingress without a class when one of
//!   our IngressClasses is annotated `ingressclass.kubernetes.io/is-default-class: "true"`, or
//!   when no IngressClass exists at all and
//!   [`Options::take_unclassed_ingress_without_classes`] is set (the file case).
//! - A **Gateway** whose GatewayClass has `spec.controllerName` =
//!   [`Options::gateway_controller`], and the **HTTPRoutes**, **GRPCRoutes**, **TLSRoutes**
//!   and **TCPRoutes** attached to its listeners; **ReferenceGrants** for the
//!   cross-namespace references they allow.
//! - **Services**, **EndpointSlices** and **Secrets** only as those refer to them, and
//!   **Namespaces** for their labels (`allowedRoutes` selectors).
//!
//! # Model names
//!
//! Every name starts with `k8s:`, which hand-written model objects should not use, so the two
//! never collide. A `*` of a host name is written `~` (hosts cannot contain `~`).
//!
//! | model object | name |
//! |---|---|
//! | Cluster and Endpoints of a Service port | `k8s:NAMESPACE/SERVICE:PORT` (the Service's port number) |
//! | The same, in HTTP/2 for GRPCRoute backends | `k8s:NAMESPACE/SERVICE:PORT:h2c` (unless the port's `appProtocol` is already h2c or grpc) |
//! | Secret from a TLS Secret | `k8s:NAMESPACE/NAME` |
//! | Ingress listeners | `k8s:ingress-http`, `k8s:ingress-https` |
//! | Ingress virtual host | `k8s:ingress:HOST` (`k8s:ingress:~` for rules without a host) |
//! | Gateway listener (one per Envoy port, every Gateway's listeners on it) | `k8s:gateway:PORT` (the Envoy port) |
//! | Gateway virtual host | `k8s:gateway:PORT:HOST` |
//! | TLSRoute / TCPRoute (a TCP route of the port's listener) | `RANK:NAMESPACE/NAME` / `NAMESPACE/NAME` |
//! | Ingress route | `NAMESPACE/NAME:rR:pP` (rule and path index), `~default-backend` |
//! | HTTPRoute route | `RANK:NAMESPACE/NAME:rR:mM`, RANK zero-padded (see below) |
//!
//! # Ingress semantics
//!
//! - `pathType: Prefix` matches path elements (`/foo` matches `/foo` and `/foo/bar`, not
//!   `/foobar`); a trailing `/` in the rule is ignored; `/` matches everything.
//!   `ImplementationSpecific` is treated as `Prefix`. `Exact` matches the path exactly.
//!   Exact beats Prefix and the longest prefix wins (the core's route precedence).
//! - Host wildcards `*.foo.com` match exactly one DNS label, as the Ingress spec says. Envoy's
//!   `*.foo.com` domain matches any number of labels, so each route of a wildcard host also
//!   requires `:authority` to match `[^.]+\.foo\.com`; rules without a host are copied into
//!   the wildcard host with that header match inverted, so `a.b.foo.com` still reaches them.
//!   A request whose host has a virtual host is routed by that host's rules only (Envoy picks
//!   the virtual host first), then by the default backend.
//! - Several Ingresses for one host merge. The same host, path and path type from two
//!   Ingresses is a conflict: the oldest Ingress (`creationTimestamp`, then namespace/name)
//!   keeps it and the other gets an error. The same for `defaultBackend` (one, global: the
//!   catch-all of every Ingress host and of any other host, on both listeners) and for a TLS
//!   host claimed with two Secrets.
//! - `tls[]` entries become certificates of the HTTPS listener by SNI host; an entry without
//!   hosts is the default certificate. A host is served on HTTPS when a TLS entry names it
//!   (or a wildcard entry covers it, or its Ingress has an entry without hosts); every host is
//!   served on HTTP. A TLS entry whose Secret is missing or not `kubernetes.io/tls` is left
//!   out with an error.
//! - A backend Service port is resolved by name or number; the cluster is the Service port,
//!   its endpoints those of the EndpointSlices labelled `kubernetes.io/service-name`, with
//!   the slice port of the same name. A missing Service or port is an error and the route
//!   forwards to a cluster that does not exist, which the core answers with 503.
//! - Unsupported, reported as errors (the rest is served): `backend.resource` (answers 503),
//!   Services of type `ExternalName`, EndpointSlices of address type `FQDN`, and annotations
//!   of other controllers that change routing (`nginx.ingress.kubernetes.io/*` and the like).
//!   Harmless annotations (`kubectl.kubernetes.io/*`, Helm, Argo CD, cert-manager, ...) are
//!   ignored silently.
//!
//! # Endpoints
//!
//! Ready endpoints (a missing `ready` counts as ready) are healthy at priority 0; serving and
//! terminating ones that are not ready go to priority 1, which Envoy uses only when priority
//! 0 lacks healthy endpoints; the rest are left out. The zone becomes the locality's zone.
//! Endpoints of several slices merge, duplicates dropped, sorted.
//!
//! # Gateway API semantics
//!
//! See [`gateway`] for the types and versions read (Gateway API v1.5: Standard kinds at
//! `v1`, TCPRoute at `v1alpha2`, older versions accepted) and `gateways` for the units.
//!
//! - **Listeners.** `HTTP`, `HTTPS` (TLS mode `Terminate`, the first `certificateRefs`
//!   Secret, served for the listener's hostname by SNI), `TLS` with mode `Passthrough`
//!   (TLSRoutes by SNI, unterminated) and `TCP` (one TCPRoute) are served; other protocols
//!   and TLS mode `Terminate` on `TLS` listeners are not (`UnsupportedProtocol`). A port
//!   below 1024 binds port + [`Options::privileged_port_offset`]. Every listener of every
//!   Gateway of ours on one Envoy port is served by one model listener: listeners merge
//!   when all are HTTP, or all are HTTPS or TLS, with distinct hostnames (one may have
//!   none). HTTPS and TLS passthrough share a port by SNI: one Envoy listener with a TLS
//!   inspector, the HTTPS hostnames terminated with their certificates (the model
//!   listener's `tls`), the TLS hostnames passed through to their TLSRoutes (its
//!   `tcp_routes`). A TCP listener takes the whole port. Two listeners that cannot be
//!   served together conflict: `ProtocolConflict` when their protocols do not share a port
//!   or an HTTPS and a TLS listener have the same hostname, `HostnameConflict` when two of
//!   one protocol do. Within one Gateway every listener in a conflict is `Conflicted` (as
//!   the spec asks of listeners that are not distinct, and the conformance test
//!   `GatewayListenerProtocolAndRouteKindConflicts` checks); across Gateways, oldest
//!   Gateway first (then namespace/name), a listener conflicting with a served listener of
//!   an older Gateway is `Conflicted` and the older one keeps serving. A conflicted listener
//!   is not served (`Accepted` False `Invalid`, `Programmed` False).
//! - **Route kinds.** HTTP and HTTPS listeners take HTTPRoutes and GRPCRoutes, TLS listeners
//!   TLSRoutes, TCP listeners TCPRoutes; `allowedRoutes.kinds` narrows that, and a kind it
//!   names that the listener cannot take is `ResolvedRefs` `InvalidRouteKinds` (left out
//!   of `supportedKinds`).
//! - **Attachment.** A route attaches through each `parentRefs` entry to the listeners of
//!   that Gateway that its `sectionName` and `port` select, that take its kind, and whose
//!   `allowedRoutes.namespaces.from` (`Same`, the default, `All`, or `Selector` on the
//!   Namespace's labels) admits it. Its hostnames are intersected with the listener's (`*.x`
//!   covers one or more labels, as Envoy's domains do); none in common means not attached.
//!   `attachedRoutes` counts by `parentRefs`, `allowedRoutes` and kind, as the spec says,
//!   whatever the hostnames. Envoy picks one virtual host per request (its most specific
//!   domain), so each host's virtual host holds what the spec asks for that host: the
//!   routes of the most specific listener whose hostname matches it only (listener
//!   isolation), and among them the rules of every matching hostname, the most specific
//!   hostname's first and each host's in precedence order (`route_order: as_written`
//!   where less specific hosts' rules follow).
//! - **HTTPRoute matches**: path `Exact`, `PathPrefix` (element-wise), `RegularExpression`;
//!   headers and query parameters `Exact` and `RegularExpression`; method. Routes on one
//!   port and host follow the spec's precedence: exact path, longest prefix, method, most
//!   headers, most query parameters, oldest route, `namespace/name`, then rule and match
//!   order. The core orders by match (exact, regex, longest prefix, method, headers, query)
//!   and then by name, so route names start with a zero-padded rank that encodes the
//!   remaining tie-breaks. A match equal to one that precedes it is reported and left out.
//! - **GRPCRoute matches**: method `Exact` (service and method: the path
//!   `/SERVICE/METHOD`; one of them: the other is any segment) and `RegularExpression`,
//!   headers `Exact` and `RegularExpression`. Filters `RequestHeaderModifier`,
//!   `ResponseHeaderModifier`, `RequestMirror`; backends are spoken to in HTTP/2.
//! - **HTTPRoute filters**: `RequestHeaderModifier` and `ResponseHeaderModifier` (set, add,
//!   remove), `RequestRedirect` (scheme, hostname, port, `ReplaceFullPath`,
//!   `ReplacePrefixMatch`, status code, default 302; without a port, the scheme's well-known
//!   port or, without a scheme either, the listener's, left out of `Location` when
//!   well-known; replacing a prefix with `/` never leaves `//`), `URLRewrite` (hostname,
//!   `ReplaceFullPath`, `ReplacePrefixMatch`) and `RequestMirror`.
//! - **TLSRoute**: one TCP route per TLSRoute, by the SNI names of its hostnames intersected
//!   with the listener's (a name an older route already routes is left out, with a
//!   warning); every rule's backends together. **TCPRoute**: the oldest TCPRoute attached to
//!   a TCP listener takes it; a later one is `Accepted` `UnsupportedValue`.
//! - **Backends** (`backendRefs`): Services with a port, weight 1 by default, 0 meaning
//!   never; a Service in another namespace only where a ReferenceGrant there allows the
//!   route's kind and namespace (else `RefNotPermitted`). A rule whose backends are all
//!   invalid (or that has none) answers 500, as does one whose valid backends' weights are
//!   all 0. An invalid backend beside valid ones keeps its weight as the forward's
//!   `error_weight`, so its share answers 500, as the spec asks. TLS and TCP
//!   routes leave invalid backends out; with none left, connections are refused.
//! - **Certificates**: a Secret in another namespace only where a ReferenceGrant there
//!   allows Gateways of the Gateway's namespace (else listener `ResolvedRefs`
//!   `RefNotPermitted`); a missing or unusable one is `InvalidCertificateRef`.
//! - Unsupported, reported as errors: more than one certificate (a warning: the first is
//!   served), `ExtensionRef` filters (the rule answers 500), backend-level filters
//!   (ignored), and backends other than Services (`InvalidKind`).
//!
//! # Status
//!
//! Computed, not written (the controller writes it; [`crate::status::ObjectStatus::to_json`]
//! gives the API's shape): GatewayClass `Accepted`; Gateway `Accepted` (`ListenersNotValid`
//! when some listener is not served) and `Programmed`; per listener `Accepted`
//! (`UnsupportedProtocol`, `PortUnavailable`, `Invalid` when conflicted), `Conflicted`
//! (`HostnameConflict`, `ProtocolConflict`, `NoConflicts`), `ResolvedRefs`
//! (`InvalidCertificateRef`, `RefNotPermitted`, `InvalidRouteKinds`), `Programmed`,
//! `supportedKinds` and `attachedRoutes`; per route (every kind) and parent `Accepted`
//! (`NoMatchingParent`, `NotAllowedByListeners`, `NoMatchingListenerHostname`,
//! `UnsupportedValue`) and `ResolvedRefs` (`BackendNotFound`, `InvalidKind`,
//! `RefNotPermitted`); for each Ingress taken, `status.loadBalancer` from
//! [`Options::ingress_status_addresses`] and [`Options::publish_service`].

pub use crate::objects::{
    Diagnostic, Inputs, KubeKind, KubeObject, ObjectRef, Options, ParseError, Severity, gateway,
};
pub use crate::translator::Translation;
use crate::translator::{ObjectChange, Translator};

pub(crate) mod backends;
pub(crate) mod gateways;
mod grants;
pub(crate) mod httproute;
pub(crate) mod ingress;
mod shared;

/// Translates every object taken (see the module docs) into model objects: a
/// [`Translator`] given every object at once.
///
/// ```
/// use xdsc_kube::translate::{self, Inputs, KubeObject, Options};
/// let mut inputs = Inputs::default();
/// inputs.insert(KubeObject::from_value(serde_json::json!({
///     "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
///     "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}},
/// })).unwrap(), None);
/// let out = translate::full(&inputs, &Options::default());
/// let names: Vec<_> = out.objects.iter().map(|o| o.key().to_string()).collect();
/// assert_eq!(names, ["Listener/k8s:ingress-http", "VirtualHost/k8s:ingress:~"]);
/// assert_eq!(out.diagnostics[0].problem.to_string(), "service default/web does not exist");
/// ```
pub fn full(inputs: &Inputs, options: &Options) -> Translation {
    let mut t = Translator::new(options.clone());
    t.apply(
        inputs
            .objects
            .values()
            .map(|(o, origin)| ObjectChange::upsert(o.clone(), origin.clone())),
    );
    t.translation()
}
