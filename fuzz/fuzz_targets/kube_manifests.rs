//! Bytes -> YAML documents -> Kubernetes objects (`KubeObject::from_value`) -> the translation,
//! fed one object per batch and then with half of them deleted, against a one-shot
//! translation of what remains -> compile. Nothing may panic, and the incremental translation
//! equals the full one (model objects and diagnostics), as `xdsc-kube`'s property test
//! requires of generated objects.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Change, Model};
use xdsc_kube::translate::{self, Inputs, KubeObject};
use xdsc_kube::translator::{ObjectChange, Translator};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = xdsc_file::yaml::parse_values(text) else {
        return;
    };
    let mut objects = Vec::new();
    for doc in docs {
        let values = match doc.value {
            serde_json::Value::Array(items) => items,
            v => vec![v],
        };
        for v in values {
            if let Ok(o) = KubeObject::from_value(v) {
                let _ = (o.kind(), o.id(), o.metadata());
                objects.push(o);
            }
        }
    }
    let options = translate::Options::default();
    let mut t = Translator::new(options.clone());
    let mut inputs = Inputs::default();
    let mut model = Model::default();
    let mut diagnostics = BTreeSet::new();
    let mut step = |t: &mut Translator, batch: Vec<ObjectChange>| {
        let delta = t.apply(batch);
        model = model.apply(delta.changes.iter().cloned());
        for d in &delta.diagnostics_removed {
            assert!(diagnostics.remove(d), "clears {d}, never reported");
        }
        for d in delta.diagnostics_added {
            diagnostics.insert(d);
        }
    };
    for o in &objects {
        inputs.insert(o.clone(), None);
        step(&mut t, vec![ObjectChange::upsert(o.clone(), None)]);
    }
    let deleted: Vec<_> = objects.iter().step_by(2).map(KubeObject::id).collect();
    for id in &deleted {
        inputs.remove(id);
    }
    step(
        &mut t,
        deleted.into_iter().map(ObjectChange::Delete).collect(),
    );
    let full = translate::full(&inputs, &options);
    let incremental: Vec<_> = model.objects().map(|o| (**o).clone()).collect();
    assert_eq!(incremental, full.objects, "incremental equals full: objects");
    let diagnostics: Vec<_> = diagnostics.into_iter().collect();
    assert_eq!(diagnostics, full.diagnostics, "incremental equals full: diagnostics");
    let compiled = Compiled::new(
        &Model::default().apply(
            full.objects
                .into_iter()
                .map(|o| Change::Upsert(std::sync::Arc::new(o))),
        ),
    );
    let _ = compiled.diagnostics();
});
