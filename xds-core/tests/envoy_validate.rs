//! Real Envoy: every example model and a bounded number of generated models (some with raw
//! Envoy resources), compiled and rendered as a static bootstrap, must pass
//! `envoy --mode validate`.
//!
//! The Envoy binary comes from `XDSC_ENVOY` (set by `scripts/test.sh`) or the virtualenv that
//! `scripts/install-envoy.sh` makes (`xdsc_test_support::find_envoy`). Without it the tests
//! are skipped locally, and fail when `CI=true`.

// Tests read fixtures and run Envoy: the I/O bans of xdsc-core are for the library.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Model, Object};
use xdsc_core::render::{BootstrapOptions, bootstrap_json};
use xdsc_test_support::find_envoy;

/// How many generated models are validated per run (each costs one Envoy start).
const GENERATED_MODELS: usize = 100;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `envoy --mode validate` on the model's rendered bootstrap; returns Envoy's output on
/// failure.
fn validate(envoy: &Path, label: &str, model: &Model) -> Result<(), String> {
    let compiled = Compiled::new(model);
    let json = bootstrap_json(compiled.snapshot(), &BootstrapOptions::default())
        .map_err(|e| format!("{label}: render failed: {e}"))?;
    let config = serde_json::to_vec_pretty(&json).expect("json");
    xdsc_test_support::validate(envoy, &config)
        .map_err(|e| format!("{label} ({} resources): {e}", compiled.snapshot().len()))
}

#[test]
fn example_models_are_accepted_by_envoy() {
    let Some(envoy) = find_envoy() else { return };
    let dir = repo_root().join("examples/models");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/models")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no example models in {}", dir.display());
    for f in files {
        let text = std::fs::read_to_string(&f).expect("readable");
        let objects: Vec<Object> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let model = Model::from_objects(objects);
        let compiled = Compiled::new(&model);
        let diags: Vec<String> = compiled
            .diagnostics()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(diags.is_empty(), "{}: {diags:#?}", f.display());
        validate(&envoy, &f.display().to_string(), &model).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn generated_models_are_accepted_by_envoy() {
    let Some(envoy) = find_envoy() else { return };
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[42; 32]),
    );
    // A third of them with raw Envoy resources beside the compiled ones.
    let models: Vec<Model> = (0..GENERATED_MODELS)
        .map(|i| {
            let strategy = if i % 3 == 2 {
                xdsc_core::strategy::model_with_raw().boxed()
            } else {
                xdsc_core::strategy::model().boxed()
            };
            strategy.new_tree(&mut runner).expect("generates").current()
        })
        .collect();
    // Two Envoy processes at a time: the machine has two cores.
    let failures: Vec<String> = std::thread::scope(|s| {
        let halves: Vec<_> = models
            .chunks(models.len().div_ceil(2))
            .enumerate()
            .map(|(h, chunk)| {
                let envoy = &envoy;
                s.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .filter_map(|(i, m)| {
                            validate(envoy, &format!("generated model {h}.{i}: {m:?}"), m).err()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|h| h.join().expect("validator thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {GENERATED_MODELS} rejected:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
