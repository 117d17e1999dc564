//! Tests of reading files: documents, positions of errors, PEM files, order.

use xdsc_test_support::TempDir;

use super::*;

/// A temporary folder with the given files, removed on drop.
pub(crate) fn dir(files: &[(&str, &str)]) -> TempDir {
    TempDir::with_files("file-test", files)
}

/// Loads the files and returns the object keys and the diagnostics as text, with the
/// temporary folder's path left out.
fn check(files: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let dir = dir(files);
    let loaded = load(&[dir.path().to_owned()], &LoadOptions::default());
    let prefix = format!("{}/", dir.path().display());
    let keys = loaded.objects.keys().map(ToString::to_string).collect();
    let diags = loaded
        .diagnostics
        .iter()
        .map(|d| d.to_string().replace(&prefix, ""))
        .collect();
    (keys, diags)
}

#[test]
fn several_documents_per_file_in_yaml_and_json() {
    let (keys, diags) = check(&[
        (
            "a.yaml",
            "kind: Cluster\nname: web\n---\nkind: Listener\nname: http\nport: 8080\n",
        ),
        (
            "sub/b.json",
            r#"{"kind": "Cluster", "name": "api", "lb": "maglev"}"#,
        ),
        (".hidden.yaml", "kind: Cluster\nname: hidden\n"),
        ("notes.txt", "kind: Cluster\nname: txt\n"),
        ("a.yaml~", "kind: Cluster\nname: backup\n"),
    ]);
    assert_eq!(keys, ["Listener/http", "Cluster/api", "Cluster/web"]);
    assert!(diags.is_empty(), "{diags:?}");
}

#[test]
fn errors_name_file_line_column_object_and_field() {
    let (keys, diags) = check(&[(
        "bad.yaml",
        "kind: Cluster\nname: ok\n---\nkind: Cluster\nname: web\nlb: fastest\n---\nkind: VirtualHost\nname: site\nlisteners: [http]\ndomains: ['*']\nroutes:\n  - name: r\n    match:\n      path: {prefixx: /}\n---\nkind: Nope\nname: x\n---\nname: nokind\n",
    )]);
    assert_eq!(keys, ["Cluster/ok"]);
    assert_eq!(diags.len(), 4, "{diags:#?}");
    assert!(
        diags[0].starts_with("error: bad.yaml:6:1: Cluster/web: lb: unknown variant `fastest`"),
        "{}",
        diags[0]
    );
    assert!(
        diags[1].starts_with("error: bad.yaml:15:7: VirtualHost/site: routes[0].match.path"),
        "{}",
        diags[1]
    );
    assert!(diags[1].contains("prefixx"), "{}", diags[1]);
    assert!(
        diags[2].starts_with("error: bad.yaml:17:1: Nope/x: kind: unknown kind \"Nope\""),
        "{}",
        diags[2]
    );
    assert!(
        diags[3].contains("bad.yaml:20:1: nokind: kind: missing `kind`"),
        "{}",
        diags[3]
    );
}

#[test]
fn syntax_errors_and_wrong_types() {
    let (keys, diags) = check(&[
        ("a.yaml", "kind: Cluster\nname: [unclosed\n"),
        ("b.yaml", "kind: Listener\nname: l\nport: eighty\n"),
        ("c.yaml", "- just\n- kind: Cluster\n  name: listed\n"),
        ("d.json", "{\"kind\": \"Cluster\",,\n \"name\": \"x\"}"),
    ]);
    assert_eq!(keys, ["Cluster/listed"], "a list holds one object per item");
    assert!(
        diags[0].starts_with("error: a.yaml:") && diags[0].contains("invalid YAML"),
        "{}",
        diags[0]
    );
    assert!(
        diags[1].starts_with("error: b.yaml:3:1: Listener/l: port: invalid type"),
        "{}",
        diags[1]
    );
    assert!(
        diags[3].starts_with("error: d.json:1:20: invalid YAML"),
        "{}",
        diags[3]
    );
    assert!(
        diags[2].contains("c.yaml:1:3: a document must be a mapping"),
        "{}",
        diags[2]
    );
}

#[test]
fn duplicate_names_keep_the_first_in_path_order() {
    let (keys, diags) = check(&[
        ("b.yaml", "kind: Cluster\nname: web\nlb: random\n"),
        ("a.yaml", "kind: Cluster\nname: web\n"),
    ]);
    assert_eq!(keys, ["Cluster/web"]);
    assert_eq!(
        diags,
        [
            "error: b.yaml:1:1: Cluster/web: name: duplicate name: Cluster/web is already defined at a.yaml:1:1"
        ]
    );
}

#[test]
fn a_file_larger_than_the_limit_is_an_error_naming_it_not_read_whole() {
    let huge = "# padding\n".repeat(usize::try_from(MAX_FILE_BYTES).unwrap() / 10 + 1);
    let (keys, diags) = check(&[
        ("huge.yaml", &huge),
        (
            // A PEM path naming a device that never ends: read up to the limit, no further.
            "endless.yaml",
            "kind: Secret\nname: endless\ntls_certificate:\n  certificate_chain_file: /dev/zero\n  private_key: KEY\n",
        ),
        ("ok.yaml", "kind: Cluster\nname: web\n"),
    ]);
    assert_eq!(keys, ["Cluster/web"]);
    assert_eq!(diags.len(), 2, "{diags:#?}");
    assert!(
        diags[0].contains("endless.yaml:4:3: Secret/endless: tls_certificate.certificate_chain_file: /dev/zero is larger than 16 MiB"),
        "{}",
        diags[0]
    );
    assert!(
        diags[1].contains("huge.yaml is larger than 16 MiB"),
        "{}",
        diags[1]
    );
}

#[test]
fn secrets_read_pem_files_relative_to_their_document() {
    let dir = dir(&[
        (
            "tls/secret.yaml",
            "kind: Secret\nname: cert\ntls_certificate:\n  certificate_chain_file: certs/tls.crt\n  private_key_file: certs/tls.key\n",
        ),
        ("tls/certs/tls.crt", "CERT"),
        ("tls/certs/tls.key", "KEY"),
        (
            "other.yaml",
            "kind: Secret\nname: ca\nvalidation_context:\n  trusted_ca_file: missing.pem\n",
        ),
    ]);
    let loaded = load(&[dir.path().to_owned()], &LoadOptions::default());
    let Object::Secret(s) = &**loaded
        .objects
        .get(&ObjectKey::new(Kind::Secret, "cert"))
        .unwrap()
    else {
        panic!()
    };
    let cert = s.tls_certificate.as_ref().unwrap();
    assert_eq!(
        (cert.certificate_chain.as_str(), cert.private_key.as_str()),
        ("CERT", "KEY")
    );
    assert!(
        loaded.files.contains(&dir.join("tls/certs/tls.key")),
        "PEM files are watched"
    );
    assert_eq!(loaded.diagnostics.len(), 1);
    let d = loaded.diagnostics[0].to_string();
    assert!(
        d.contains("other.yaml:4:3: Secret/ca: validation_context.trusted_ca_file: cannot read"),
        "{d}"
    );
    assert!(!d.contains("KEY"));
}

#[test]
fn file_order_does_not_matter() {
    let dir = dir(&[
        ("a.yaml", "kind: Cluster\nname: web\n"),
        ("b.yaml", "kind: Cluster\nname: web\nlb: random\n"),
    ]);
    let a = load(
        &[dir.join("a.yaml"), dir.join("b.yaml")],
        &LoadOptions::default(),
    );
    let b = load(
        &[dir.join("b.yaml"), dir.join("a.yaml")],
        &LoadOptions::default(),
    );
    assert_eq!(a.objects, b.objects);
    assert_eq!(a.diagnostics, b.diagnostics);
}

#[test]
fn compile_diagnostics_are_placed_at_their_object() {
    let dir = dir(&[(
        "vh.yaml",
        "kind: Listener\nname: http\nport: 8080\n---\nkind: VirtualHost\nname: site\nlisteners: [http]\ndomains: ['*']\nroutes:\n  - name: r\n    match: {path: {regex: '(' }}\n    forward: {backends: [{cluster: web}]}\n",
    )]);
    let loaded = load(&[dir.path().to_owned()], &LoadOptions::default());
    let compiled = Compiled::new(&loaded.model());
    let report: Vec<String> = loaded
        .report(&compiled)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        report
            .iter()
            .any(|d| d.contains("vh.yaml:5:1: VirtualHost/site: routes[r]")
                && d.contains("regular expression")),
        "{report:#?}"
    );
}

#[test]
fn a_missing_path_is_an_error() {
    let loaded = load(
        &[PathBuf::from("/nonexistent/xdsc")],
        &LoadOptions::default(),
    );
    assert!(loaded.has_errors());
    assert!(
        loaded.diagnostics[0]
            .to_string()
            .contains("/nonexistent/xdsc: cannot read")
    );
}

#[test]
fn the_cache_reparses_only_what_changed_even_within_one_clock_tick() {
    let dir = dir(&[
        ("a.yaml", "kind: Cluster\nname: aaa\n"),
        ("b.yaml", "kind: Cluster\nname: web\n"),
    ]);
    let mut cache = Loader::default();
    let first = cache.load(&[dir.path().to_owned()]);
    // Same size, same inode, same modification time (two writes in one clock tick): only the
    // content tells.
    let a = dir.join("a.yaml");
    let before = std::fs::metadata(&a).unwrap().modified().unwrap();
    std::fs::write(&a, "kind: Cluster\nname: bbb\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(before)
        .unwrap();
    let second = cache.load(&[dir.path().to_owned()]);
    let keys: Vec<String> = second.objects.keys().map(ToString::to_string).collect();
    assert_eq!(keys, ["Cluster/bbb", "Cluster/web"]);
    let web = ObjectKey::new(Kind::Cluster, "web");
    assert!(
        Arc::ptr_eq(&first.objects[&web], &second.objects[&web]),
        "b.yaml was not parsed again"
    );
    std::fs::remove_file(dir.join("b.yaml")).unwrap();
    let third = cache.load(&[dir.path().to_owned()]);
    assert_eq!(third.objects.len(), 1, "a deleted file leaves the cache");
    assert_eq!(cache.files.len(), 1);
}

#[test]
fn kubernetes_errors_point_at_their_field_by_its_typed_path() {
    // A key with dots (an annotation) is one field, not three: its own line is found.
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n  annotations:\n    a.b/c: 5\n";
    // A translation error deep in an object, inside a `kind: List`.
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: networking.k8s.io/v1\n  kind: Ingress\n  metadata: {name: web}\n  spec:\n    rules:\n    - http:\n        paths:\n        - path: /\n          pathType: Prefix\n          backend: {service: {name: web, port: {number: 80}}}\n        - path: /a\n          pathType: Sometimes\n          backend: {service: {name: web, port: {number: 80}}}\n";
    let (_, diags) = check(&[("svc.yaml", svc), ("list.yaml", list)]);
    assert_eq!(
        diags,
        [
            "error: list.yaml:13:42: Ingress default/web: spec.rules[0].http.paths[0].backend.service.port: service default/web does not exist",
            "error: list.yaml:15:11: Ingress default/web: spec.rules[0].http.paths[1].pathType: \"Sometimes\" is not a path type (Exact, Prefix, ImplementationSpecific)",
            "error: svc.yaml:6:5: Service x: metadata.annotations.a.b/c: invalid type: integer `5`, expected a string",
        ]
    );
}

#[test]
fn a_reload_reads_translates_and_changes_only_what_an_edit_touches() {
    let slice = |ip: &str| {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: web-1, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [{ip}]}}]\n"
        )
    };
    let dir = dir(&[
        (
            "ingress.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: shop}\n\
             spec: {defaultBackend: {service: {name: web, port: {name: http}}}}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web, namespace: shop}\n",
        ),
        (
            "service.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{name: http, port: 80}]}\n",
        ),
        ("slice.yaml", &slice("10.0.0.1")),
    ]);
    let paths = &[dir.path().to_owned()];
    let mut loader = Loader::default();
    let first = loader.reload(paths);
    assert_eq!(first.parsed, 3);
    assert!(first.added.is_empty(), "{:?}", first.added);
    assert_eq!(
        loader
            .ignored()
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>(),
        ["ConfigMap 1", "Deployment 1"],
        "counted, not warned about"
    );
    std::fs::write(dir.join("slice.yaml"), slice("10.0.0.2")).unwrap();
    let edit = loader.reload(paths);
    assert_eq!(edit.parsed, 1, "only the edited file is read");
    let keys: Vec<String> = edit.changes.iter().map(|c| c.key().to_string()).collect();
    assert_eq!(keys, ["Endpoints/k8s:shop/web:80"]);
    assert_eq!(loader.translator().inputs().len(), 3);
    // A diagnostic is reported when it appears and when it clears, once each.
    std::fs::remove_file(dir.join("service.yaml")).unwrap();
    let gone = loader.reload(paths);
    assert_eq!(gone.added.len(), 1, "{:?}", gone.added);
    assert!(
        gone.added[0]
            .to_string()
            .contains("service shop/web does not exist")
    );
    assert!(loader.reload(paths).added.is_empty(), "not again");
    std::fs::write(
        dir.join("service.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{name: http, port: 80}]}\n",
    )
    .unwrap();
    let back = loader.reload(paths);
    assert_eq!((back.added.len(), back.removed.len()), (0, 1));
    assert!(!loader.has_errors());
}

/// An EndpointSlice of Service `web` in namespace `shop` with one endpoint.
fn slice_doc(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: shop, labels: {{kubernetes.io/service-name: web}}}}\n\
         addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints: [{{addresses: [{ip}]}}]\n"
    )
}

/// Ten tenants of an Ingress, a Service and a file of three slices each.
fn tenants_dir() -> TempDir {
    let mut files = Vec::new();
    for t in 0..10 {
        let slices = ["a", "b", "c"].map(|n| slice_doc(&format!("web-{n}"), "10.0.0.1"));
        let ns = |s: String| s.replace("shop", &format!("t{t}"));
        files.push((format!("t{t}/slices.yaml"), ns(slices.join("---\n"))));
        files.push((
            format!("t{t}/app.yaml"),
            ns("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: shop}\n\
                spec: {rules: [{host: shop.example, http: {paths: [{path: /, pathType: Prefix, \
                backend: {service: {name: web, port: {name: http}}}}]}}]}\n---\n\
                apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{name: http, port: 80}]}\n"
                .into()),
        ));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    dir(&files)
}

#[test]
fn a_one_file_edit_named_by_an_event_looks_at_that_file_only() {
    let dir = tenants_dir();
    let root = absolute(dir.path());
    let paths = std::slice::from_ref(&root);
    let mut loader = Loader::default();
    let first = loader.reload(paths);
    assert_eq!((first.parsed, first.work.converted), (20, 50));
    assert!(first.work.full_scan && first.files_changed);
    let edited = root.join("t3/slices.yaml");
    let text = std::fs::read_to_string(&edited).unwrap();
    // (A longer address: a new size, so the file's key alone tells it changed.)
    std::fs::write(&edited, text.replacen("10.0.0.1", "10.0.0.22", 1)).unwrap();
    let touched = [edited.clone()].into_iter().collect();
    let delta = loader.reload_touched(paths, &touched);
    let w = &delta.work;
    assert!(!w.full_scan, "{w:?}");
    // The given folder and the edited file are `stat`ed, nothing is listed; the file is
    // read, its three slices converted, and only the one that changed is handed to the
    // translator.
    assert_eq!((w.listed, w.stats, w.read), (0, 2, 1), "{w:?}");
    assert_eq!(
        (delta.parsed, w.converted, w.translated),
        (1, 3, 1),
        "{w:?}"
    );
    let keys: Vec<String> = delta.changes.iter().map(|c| c.key().to_string()).collect();
    assert_eq!(keys, ["Endpoints/k8s:t3/web:80"]);
    assert!(!delta.files_changed);

    // A full scan of the same change stats every file and lists every folder, but still
    // parses only the changed file and translates only the changed object.
    std::fs::write(&edited, text.replacen("10.0.0.1", "10.0.0.3", 1)).unwrap();
    let full = loader.reload(paths);
    let w = &full.work;
    assert_eq!(
        (w.listed, full.parsed, w.converted, w.translated),
        (11, 1, 3, 1),
        "{w:?}"
    );
    assert!(w.stats >= 30, "{w:?}");
}

/// The cost of a one-endpoint edit at the 200-tenant shape (12,000 Services in 601 files),
/// counted: the edited file alone is looked at, read and parsed, one of its 60 slices goes
/// to the translator, which recomputes one Endpoints unit, and one model object changes.
#[test]
fn a_one_endpoint_edit_at_200_tenants_reads_one_file_and_translates_one_endpoints() {
    use xdsc_kube::strategy::{tenant_files, tenant_slice_manifest};
    let files = tenant_files(200, 60, 20);
    let files: Vec<(&str, &str)> = (files.iter())
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let dir = dir(&files);
    let root = absolute(dir.path());
    let paths = std::slice::from_ref(&root);
    let mut loader = Loader::default();
    let first = loader.reload(paths);
    assert_eq!(first.parsed, 601);
    assert!(first.added.is_empty(), "{:?}", first.added.first());
    let slices: Vec<serde_json::Value> = (0..60)
        .map(|s| tenant_slice_manifest(17, s, usize::from(s == 3)))
        .collect();
    dir.write(
        "t017/endpoints.json",
        &serde_json::to_string_pretty(&slices).unwrap(),
    );
    let touched = [root.join("t017/endpoints.json")].into_iter().collect();
    let delta = loader.reload_touched(paths, &touched);
    let w = &delta.work;
    assert!(!w.full_scan, "{w:?}");
    assert_eq!(
        (w.listed, w.stats, w.read, delta.parsed),
        (0, 2, 1, 1),
        "{w:?}"
    );
    assert_eq!((w.converted, w.translated), (60, 1), "{w:?}");
    assert_eq!(
        w.translation.units,
        BTreeMap::from([("Endpoints", 1)]),
        "no Ingress, host or listener unit: {w:?}"
    );
    assert_eq!(
        w.translation.objects,
        BTreeMap::from([(model::Kind::Endpoints, 1)])
    );
    let keys: Vec<String> = delta.changes.iter().map(|c| c.key().to_string()).collect();
    assert_eq!(keys, ["Endpoints/k8s:tenant-017/svc-03:80"]);
    assert!(delta.added.is_empty() && delta.removed.is_empty());
    assert!(!delta.files_changed && !delta.ignored_changed);
}

#[test]
fn event_paths_give_what_a_full_scan_gives() {
    let dir = tenants_dir();
    let root = absolute(dir.path());
    let paths = std::slice::from_ref(&root);
    let mut loader = Loader::default();
    loader.reload(paths);
    let same_as_full = |loader: &Loader, touched: &[&str], what: &str| {
        let fresh = load(paths, &LoadOptions::default());
        let keys = |m: &BTreeMap<ObjectKey, Arc<Object>>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(loader.objects()), keys(&fresh.objects), "{what}");
        assert!(
            loader.objects().iter().all(|(k, o)| fresh.objects[k] == *o),
            "{what}: {touched:?}"
        );
        assert_eq!(loader.files(), &fresh.files, "{what}");
        let diags: Vec<&Diagnostic> = loader.diagnostics().collect();
        assert_eq!(
            diags,
            fresh.diagnostics.iter().collect::<Vec<_>>(),
            "{what}"
        );
    };
    let mut step = |touched: &[&str], what: &str| {
        let set = touched.iter().map(|p| root.join(p)).collect();
        let delta = loader.reload_touched(paths, &set);
        assert!(!delta.work.full_scan, "{what}: {:?}", delta.work);
        same_as_full(&loader, touched, what);
        delta
    };
    // A folder moved in: listed, its files read.
    let elsewhere = TempDir::with_files(
        "file-test-moved",
        &[("s.yaml", &slice_doc("web-z", "10.9.9.9"))],
    );
    std::fs::rename(elsewhere.path(), root.join("t3/more")).unwrap();
    let d = step(&["t3/more"], "a folder moved in");
    assert_eq!((d.parsed, d.work.listed), (1, 1));
    assert!(d.files_changed);
    // A file deleted, and a folder moved away.
    std::fs::remove_file(root.join("t4/app.yaml")).unwrap();
    step(&["t4/app.yaml"], "a file deleted");
    std::fs::rename(root.join("t5"), elsewhere.path()).unwrap();
    step(&["t5"], "a folder moved away");
    // An editor's save: a hidden temporary file renamed over; the temporary name alone is
    // nothing.
    let tmp = root.join("t6/.slices.yaml.swp");
    std::fs::write(&tmp, slice_doc("web-a", "10.6.6.6")).unwrap();
    let d = step(&["t6/.slices.yaml.swp"], "a hidden file");
    assert_eq!((d.parsed, d.work.read), (0, 0));
    std::fs::rename(&tmp, root.join("t6/slices.yaml")).unwrap();
    step(&["t6/.slices.yaml.swp", "t6/slices.yaml"], "renamed over");
    // A file that is not a config file, and a hidden folder, are not read.
    std::fs::write(root.join("t7/notes.txt"), "kind: [").unwrap();
    std::fs::create_dir(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/x.yaml"), "kind: [").unwrap();
    let d = step(&["t7/notes.txt", ".git/x.yaml", ".git"], "ignored names");
    assert_eq!(d.work.read, 0);
    // A Kubernetes ConfigMap volume as the folder: files are links into `..data`, updated
    // by swapping `..data`; only that name is in the events.
    let vol = root.join("t8/vol");
    std::fs::create_dir_all(vol.join("..v1")).unwrap();
    std::fs::write(vol.join("..v1/s.yaml"), slice_doc("web-v", "10.8.0.1")).unwrap();
    std::os::unix::fs::symlink("..v1", vol.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/s.yaml", vol.join("s.yaml")).unwrap();
    step(&["t8/vol"], "a volume appears");
    std::fs::create_dir(vol.join("..v2")).unwrap();
    std::fs::write(vol.join("..v2/s.yaml"), slice_doc("web-v", "10.8.0.2")).unwrap();
    std::os::unix::fs::symlink("..v2", vol.join("..data_tmp")).unwrap();
    std::fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
    let d = step(
        &["t8/vol/..v2", "t8/vol/..v2/s.yaml", "t8/vol/..data"],
        "a ..data swap",
    );
    assert_eq!(d.parsed, 1, "the link beside ..data is read again");
}

#[test]
fn a_pem_file_named_by_an_event_reloads_the_secret_naming_it() {
    let crt = |n: &str| format!("-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n");
    let dir = dir(&[
        (
            "conf/secret.yaml",
            "kind: Secret\nname: cert\ntls_certificate:\n  certificate_chain_file: ../pki/tls.crt\n  private_key_file: ../pki/tls.key\n",
        ),
        ("conf/other.yaml", "kind: Cluster\nname: web\n"),
        ("pki/tls.crt", &crt("b25l")),
        (
            "pki/tls.key",
            "-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n",
        ),
    ]);
    let root = absolute(dir.path());
    let paths = &[root.join("conf")];
    let mut loader = Loader::default();
    loader.reload(paths);
    std::fs::write(root.join("pki/tls.crt"), crt("dHdv")).unwrap();
    let touched = [root.join("pki/tls.crt")].into_iter().collect();
    let delta = loader.reload_touched(paths, &touched);
    assert!(!delta.work.full_scan);
    assert_eq!(delta.parsed, 1, "the secret's file, not the other one");
    let keys: Vec<String> = delta.changes.iter().map(|c| c.key().to_string()).collect();
    assert_eq!(keys, ["Secret/cert"]);
}

#[test]
fn event_paths_fall_back_to_a_full_scan_when_they_cannot_tell() {
    let dir = tenants_dir();
    let root = absolute(dir.path());
    let paths = std::slice::from_ref(&root);
    let mut loader = Loader::default();
    let none = BTreeSet::new();
    assert!(
        loader.reload_touched(paths, &none).work.full_scan,
        "before any scan"
    );
    assert!(!loader.reload_touched(paths, &none).work.full_scan);
    let named_root = [root.clone()].into_iter().collect();
    assert!(
        loader.reload_touched(paths, &named_root).work.full_scan,
        "the folder itself"
    );
    let missing = [root.join("nope")];
    let d = loader.reload(&missing);
    assert!(
        d.added
            .iter()
            .any(|d| d.to_string().contains("cannot read"))
    );
    assert!(
        loader.reload_touched(&missing, &none).work.full_scan,
        "a folder unread"
    );
}

/// Raw Envoy resources in documents: read under `resource`, named by their own name field;
/// a document error points at its field, a compile error (an unknown field of the Envoy
/// message) at its object, both naming the field.
#[test]
fn raw_envoy_resources_are_documents_too() {
    let (keys, diags) = check(&[(
        "raw.yaml",
        "kind: EnvoyCluster\nresource:\n  name: legacy\n  type: STATIC\n---\nkind: EnvoyClusterLoadAssignment\nresource:\n  clusterName: legacy-eds\n---\nkind: EnvoyListener\nresource: {address: {}}\n",
    )]);
    assert_eq!(
        keys,
        [
            "EnvoyCluster/legacy",
            "EnvoyClusterLoadAssignment/legacy-eds"
        ]
    );
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(
        diags[0].starts_with("error: raw.yaml:11:")
            && diags[0].contains("resource: needs a string \"name\""),
        "{}",
        diags[0]
    );

    let dir = dir(&[(
        "bad.yaml",
        "kind: EnvoyCluster\nresource:\n  name: legacy\n  connect_timeout: 1s\n  lb_polcy: RANDOM\n",
    )]);
    let loaded = load(&[dir.path().to_owned()], &LoadOptions::default());
    let report: Vec<String> = loaded
        .report(&Compiled::new(&loaded.model()))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        report.iter().any(
            |d| d.contains("bad.yaml:1:1: EnvoyCluster/legacy: resource.lb_polcy")
                && d.contains("unrecognized field")
        ),
        "{report:#?}"
    );
}
