//! Criterion benches of the incremental Kubernetes translation followed by the incremental
//! compile, on the multi-tenant shape (`xdsc_kube::strategy::tenants`):
//!
//! - `200-tenants`: 200 namespaces × 60 Services with EndpointSlices, one Ingress of 20 paths
//!   and one TLS Secret each (12,000 Services);
//! - `10k-services`: 10 namespaces × 1,000 Services, one Ingress of 100 paths each.
//!
//! Each iteration is `Translator::apply` of one object change followed by
//! `Compiled::apply` of exactly the model changes it returns: one endpoint of a used slice
//! moves (`one_endpoint`), one Ingress path changes (`one_ingress_path`), one TLS Secret's
//! certificate changes (`one_secret`). Iterations alternate between two versions of the
//! object, so each one is a real change (checked before timing).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use xdsc_core::compile::Compiled;
use xdsc_core::model::Model;
use xdsc_kube::strategy::{tenant_namespace, tenant_slice, tenants};
use xdsc_kube::translate::{KubeObject, ObjectRef, Options};
use xdsc_kube::translator::{ObjectChange, Translator};

const SHAPES: [(&str, usize, usize, usize); 2] = [
    ("200-tenants", 200, 60, 20),
    ("10k-services", 10, 1000, 100),
];

fn loaded(t: usize, s: usize, p: usize) -> (Translator, Compiled) {
    let mut tr = Translator::new(Options::default());
    let delta = tr.apply(
        tenants(t, s, p)
            .into_iter()
            .map(|o| ObjectChange::upsert(o, None)),
    );
    let compiled = Compiled::new(&Model::default().apply(delta.changes));
    (tr, compiled)
}

/// Two versions of one object, to alternate between.
fn versions(tr: &Translator, what: &str, tenant: usize) -> [KubeObject; 2] {
    let ns = tenant_namespace(tenant);
    match what {
        "one_endpoint" => [tenant_slice(tenant, 3, 1), tenant_slice(tenant, 3, 2)],
        "one_ingress_path" => {
            let id = ObjectRef::new("Ingress", Some(&ns), "web");
            let Some(KubeObject::Ingress(ing)) = tr.inputs().get(&id).cloned() else {
                panic!("the Ingress exists")
            };
            let with = |path: &str| {
                let mut i = ing.clone();
                let rules = i
                    .spec
                    .as_mut()
                    .and_then(|s| s.rules.as_mut())
                    .expect("rules");
                rules[0].http.as_mut().expect("http").paths[4].path = Some(path.into());
                KubeObject::Ingress(i)
            };
            [with("/moved-a"), with("/moved-b")]
        }
        _ => {
            let id = ObjectRef::new("Secret", Some(&ns), "tls");
            let Some(KubeObject::Secret(secret)) = tr.inputs().get(&id).cloned() else {
                panic!("the Secret exists")
            };
            let with = |cert: &str| {
                let mut s = secret.clone();
                s.string_data
                    .as_mut()
                    .expect("data")
                    .insert("tls.crt".into(), cert.into());
                KubeObject::Secret(s)
            };
            [
                with("-----BEGIN CERTIFICATE-----\nA\n"),
                with("-----BEGIN CERTIFICATE-----\nB\n"),
            ]
        }
    }
}

fn translate_and_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate_and_compile");
    for (shape, t, s, p) in SHAPES {
        let (tr, compiled) = loaded(t, s, p);
        for what in ["one_endpoint", "one_ingress_path", "one_secret"] {
            let (mut tr, mut compiled) = (tr.clone(), compiled.clone());
            let objects = versions(&tr, what, t / 2);
            for o in &objects {
                let d = tr.apply([ObjectChange::upsert(o.clone(), None)]);
                assert!(!d.changes.is_empty(), "{shape} {what}: a real change");
                compiled = compiled.apply(d.changes);
            }
            let mut i = 0;
            group.bench_function(BenchmarkId::new(what, shape), |b| {
                b.iter(|| {
                    i += 1;
                    let d = tr.apply([ObjectChange::upsert(objects[i % 2].clone(), None)]);
                    compiled = compiled.apply(d.changes);
                    black_box(compiled.snapshot().version());
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, translate_and_compile);
criterion_main!(benches);
