//! Compiles the Envoy `.proto` files that the `envoy-types` crate ships into one protobuf
//! `FileDescriptorSet` in `$OUT_DIR`, which `src/descriptors.rs` embeds with `include_bytes!`.
//!
//! The descriptors give xdsc-core reflection over Envoy's messages: which fields are maps (to
//! encode them canonically), what type an `Any` holds, and the JSON rendering of a resource.
//! Nothing fetched from elsewhere is committed: the `.proto` sources are read at build time from
//! the `envoy-types` package that Cargo already downloaded.
//!
//! Where the sources are looked for, in order:
//! 1. `$XDSC_ENVOY_PROTO_DIR`: the `proto/` directory of an unpacked `envoy-types` package.
//! 2. `$CARGO_HOME/registry/src/*/envoy-types-<ENVOY_TYPES_VERSION>/proto` (`CARGO_HOME`
//!    defaults to `~/.cargo`).
//! 3. `<workspace>/vendor/envoy-types{,-<ENVOY_TYPES_VERSION>}/proto` after `cargo vendor`.
//!
//! This build script is not part of the pure library, so it may read the environment and the
//! file system, which `clippy.toml` forbids for the crate itself.
#![allow(clippy::disallowed_methods)]

use std::env;
use std::path::{Path, PathBuf};

/// The `envoy-types` version whose `.proto` sources are compiled. It must equal the `=` pin of
/// `envoy-types` in the workspace `Cargo.toml`; the unit test
/// `descriptors::tests::envoy_types_pin_matches_build_script` fails when the two disagree.
const ENVOY_TYPES_VERSION: &str = "0.7.7";

/// Overrides where the `.proto` sources are read from.
const PROTO_DIR_VAR: &str = "XDSC_ENVOY_PROTO_DIR";

/// The include roots inside the package's `proto/` directory.
const INCLUDE_ROOTS: &[&str] = &[
    "data-plane-api",
    "xds",
    "googleapis",
    "protoc-gen-validate",
    "cel-spec",
    "opentelemetry-proto",
    "client_model",
];

/// The files compiled (with everything they import): the resource types xdsc serves, every
/// extension it puts into an `Any`, and the bootstrap it renders. Add a file here when the
/// compiler starts using a new extension; an `Any` of a type missing from the pool is left as it
/// is by canonical encoding and cannot be rendered as JSON.
const FILES: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/service/discovery/v3/discovery.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/network/connection_limit/v3/connection_limit.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/tls/v3/secret.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/access_loggers/file/v3/file.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
    // The typed configurations embedders most often give through the model's escape hatches
    // (HTTP filters and their per-route configurations, listener filters): their type URLs are
    // checked against this pool and their maps canonicalized. Add one here to accept it.
    "envoy/extensions/filters/http/buffer/v3/buffer.proto",
    "envoy/extensions/filters/http/compressor/v3/compressor.proto",
    "envoy/extensions/compression/gzip/compressor/v3/gzip.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/header_mutation/v3/header_mutation.proto",
    "envoy/extensions/filters/http/health_check/v3/health_check.proto",
    "envoy/extensions/filters/http/jwt_authn/v3/config.proto",
    "envoy/extensions/filters/http/lua/v3/lua.proto",
    "envoy/extensions/filters/http/ratelimit/v3/rate_limit.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto",
    "envoy/extensions/filters/listener/original_dst/v3/original_dst.proto",
    "envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={PROTO_DIR_VAR}");
    println!("cargo:rerun-if-env-changed=CARGO_HOME");
    println!("cargo:rerun-if-env-changed=HOME");
    println!("cargo:rustc-env=XDSC_ENVOY_TYPES_VERSION={ENVOY_TYPES_VERSION}");

    let proto_dir = match find_proto_dir() {
        Ok(dir) => dir,
        Err(searched) => fail(&format!(
            "cannot find the .proto files of envoy-types {ENVOY_TYPES_VERSION}.\n\
             Searched:\n{searched}\n\
             Set {PROTO_DIR_VAR} to the `proto` directory of an unpacked envoy-types \
             {ENVOY_TYPES_VERSION} package (`cargo fetch` downloads it into \
             $CARGO_HOME/registry/src/*/envoy-types-{ENVOY_TYPES_VERSION}/proto)."
        )),
    };
    let includes: Vec<PathBuf> = INCLUDE_ROOTS.iter().map(|r| proto_dir.join(r)).collect();

    let mut compiler = match protox::Compiler::new(&includes) {
        Ok(c) => c,
        Err(e) => fail(&format!("protox: {e}")),
    };
    // Imports are included so the set is self-contained; source info (comments) is not needed.
    compiler.include_imports(true).include_source_info(false);
    if let Err(e) = compiler.open_files(FILES) {
        fail(&format!(
            "compiling the envoy-types .proto files in {}: {e:?}",
            proto_dir.display()
        ));
    }
    // Rebuild when one of the files actually read changes (only likely with the override).
    for file in compiler.files() {
        if let Some(path) = file.path() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    // Keeps extension options such as `(udpa.annotations.sensitive)`, which redaction reads.
    let bytes = compiler.encode_file_descriptor_set();

    let out_dir = match env::var_os("OUT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => fail("OUT_DIR is not set; run this through cargo"),
    };
    let out = out_dir.join("envoy_descriptors.bin");
    if let Err(e) = std::fs::write(&out, bytes) {
        fail(&format!("writing {}: {e}", out.display()));
    }
}

/// The `proto/` directory to compile from, or a list of the places searched.
fn find_proto_dir() -> Result<PathBuf, String> {
    let mut searched = Vec::new();

    if let Some(dir) = env::var_os(PROTO_DIR_VAR) {
        let dir = PathBuf::from(dir);
        if is_proto_dir(&dir) {
            return Ok(dir);
        }
        // An explicit override that does not work is an error, not a reason to look elsewhere.
        fail(&format!(
            "{PROTO_DIR_VAR}={} does not contain the envoy-types include roots ({})",
            dir.display(),
            INCLUDE_ROOTS.join(", ")
        ));
    }

    let package = format!("envoy-types-{ENVOY_TYPES_VERSION}");
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = cargo_home {
        let registries = home.join("registry").join("src");
        // Several registries (index mirrors) may each hold a copy; take them in name order so
        // the choice does not depend on directory listing order.
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(&registries)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join(&package).join("proto"))
            .collect();
        candidates.sort();
        if let Some(dir) = candidates.into_iter().find(|d| is_proto_dir(d)) {
            return Ok(dir);
        }
        searched.push(format!("  {}/*/{package}/proto", registries.display()));
    } else {
        searched.push("  $CARGO_HOME (neither CARGO_HOME nor HOME is set)".to_owned());
    }

    if let Some(manifest) = env::var_os("CARGO_MANIFEST_DIR") {
        let vendor = PathBuf::from(manifest).join("..").join("vendor");
        for name in [package.as_str(), "envoy-types"] {
            let dir = vendor.join(name).join("proto");
            if is_proto_dir(&dir) && is_pinned_version(&vendor.join(name)) {
                return Ok(dir);
            }
            searched.push(format!("  {}", dir.display()));
        }
    }

    Err(searched.join("\n"))
}

/// Whether an unpacked package is `envoy-types` at [`ENVOY_TYPES_VERSION`] (a `vendor/`
/// directory without version suffixes may hold another version).
fn is_pinned_version(package_dir: &Path) -> bool {
    let wanted = format!("version = \"{ENVOY_TYPES_VERSION}\"");
    std::fs::read_to_string(package_dir.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.lines().any(|l| l.trim() == wanted))
}

fn is_proto_dir(dir: &Path) -> bool {
    INCLUDE_ROOTS.iter().all(|r| dir.join(r).is_dir())
}

fn fail(message: &str) -> ! {
    // `cargo:warning` lines show even when the build fails; the panic fails it.
    for line in message.lines() {
        println!("cargo:warning=xdsc-core: {line}");
    }
    panic!("xdsc-core build script: {message}");
}
