//! Bytes -> model documents -> compile -> debug view: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xdsc_core::compile::Compiled;
use xdsc_core::model::{Model, Object};

fuzz_target!(|data: &[u8]| {
    if let Ok(objects) = serde_json::from_slice::<Vec<Object>>(data) {
        let compiled = Compiled::new(&Model::from_objects(objects));
        let _ = compiled.diagnostics();
        let _ = xdsc_core::render::debug_json(compiled.snapshot());
    }
});
