//! TLS on the xDS port, end to end with the real Envoy: `xdsc-file serve --xds-tls-cert
//! --xds-tls-key --xds-client-ca` (mutual TLS). An Envoy presenting a client certificate from
//! the trusted CA is served and routes traffic; Envoys without a certificate, with one from
//! another CA, or speaking plain text are refused during the handshake and get nothing.
//! Then the secrets rule: a run holding private keys (xDS TLS key, native secrets inline and
//! in files, a Kubernetes TLS Secret) never shows the key material in its logs, error
//! messages, `/debug/*`, `/metrics`, or `check` and `render` diagnostics.
//!
//! Certificates come from the `openssl` command (required with `CI=true`, as Envoy is).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::serve_envoy::Served;
use crate::support::{Dir, bin};
use xdsc_test_support::{
    Backend, Envoy, Pem, TestCa, ads_bootstrap, find_envoy, find_openssl, free_port, http_get,
    tls_handshake, wait_for,
};

const WAIT: Duration = Duration::from_secs(30);
const REFUSED: &str = "xdsc_xds_connections_closed_total{reason=\"tls_handshake\"}";

/// The bootstrap of an Envoy reaching xdsc over TLS, verifying the server as `xdsc.test`
/// against `ca`, presenting `client` if given; plain text with `ca: None`.
fn bootstrap(
    node: &str,
    xds_port: u16,
    admin: u16,
    ca: Option<&Pem>,
    client: Option<&Pem>,
) -> Value {
    let mut b = ads_bootstrap(node, "default", xds_port, admin, false);
    let Some(ca) = ca else {
        return b;
    };
    let file = |p: &Path| json!({"filename": p.display().to_string()});
    let mut common = json!({
        "alpn_protocols": ["h2"],
        "validation_context": {
            "trusted_ca": file(&ca.cert),
            "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": "xdsc.test"}}]
        }
    });
    if let Some(c) = client {
        common["tls_certificates"] =
            json!([{"certificate_chain": file(&c.cert), "private_key": file(&c.key)}]);
    }
    b["static_resources"]["clusters"][0]["transport_socket"] = json!({
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "xdsc.test",
            "common_tls_context": common
        }
    });
    b
}

/// A folder serving `shop.example.com` on `listen` from `backend`.
fn site(listen: u16, backend: &Backend) -> Dir {
    Dir::with_files(
        "tls-site",
        &[(
            "site.yaml",
            &format!(
                "kind: Listener\nname: http\naddress: 127.0.0.1\nport: {listen}\n---\n\
                 kind: VirtualHost\nname: shop\nlisteners: [http]\ndomains: [shop.example.com]\n\
                 routes:\n  - name: all\n    forward: {{backends: [{{cluster: shop}}], timeout: 5s}}\n---\n\
                 kind: Cluster\nname: shop\nconnect_timeout: 1s\n---\n\
                 kind: Endpoints\nname: shop\nlocalities:\n  - endpoints: [{{address: 127.0.0.1, port: {}}}]\n",
                backend.addr.port()
            ),
        )],
    )
}

fn tls_flags(server: &Pem, client_ca: Option<&Pem>) -> Vec<String> {
    let mut flags = vec![
        "--xds-tls-cert".to_owned(),
        server.cert.display().to_string(),
        "--xds-tls-key".to_owned(),
        server.key.display().to_string(),
    ];
    if let Some(ca) = client_ca {
        flags.push("--xds-client-ca".to_owned());
        flags.push(ca.cert.display().to_string());
    }
    flags
}

/// An Envoy (its admin on a free port) reaching `served` as `node`, as [`bootstrap`] says.
fn start_envoy(
    envoy_bin: &Path,
    node: &str,
    served: &Served,
    ca: Option<&Pem>,
    client: Option<&Pem>,
) -> Envoy {
    let admin = free_port();
    Envoy::start(
        envoy_bin,
        &bootstrap(node, served.xds_port, admin, ca, client),
        admin,
    )
}

fn connected(envoy: &Envoy) -> bool {
    envoy
        .admin("/stats?filter=control_plane.connected_state")
        .is_some_and(|s| s.contains("connected_state: 1"))
}

#[test]
fn mutual_tls_serves_an_envoy_with_a_client_certificate_and_refuses_the_others() {
    let (Some(envoy_bin), Some(openssl)) = (find_envoy(), find_openssl()) else {
        return;
    };
    let certs = Dir::new("tls-certs");
    let ca = TestCa::new(openssl, certs.path(), "xdsc-ca");
    let server = ca.issue("xdsc-server", &["DNS:xdsc.test", "IP:127.0.0.1"]);
    let client = ca.issue("envoy-good", &[]);
    let rogue_ca = TestCa::new(openssl, certs.path(), "rogue-ca");
    let rogue = rogue_ca.issue("envoy-rogue", &[]);

    let backend = Backend::start("shop");
    let listen = free_port();
    let folder = site(listen, &backend);
    let served = Served::start(folder.path(), &tls_flags(&server, Some(&ca.pem)));
    assert!(
        served.log_text().contains("xds_tls=mutual") || served.log_text().contains("mutual"),
        "the start line says mutual TLS:\n{}",
        served.log_text()
    );

    // Refused, one after the other: each raises the handshake-failure count and never
    // connects or receives a listener.
    let refused: [(&str, Option<&Pem>, Option<&Pem>); 3] = [
        ("no-client-cert", Some(&ca.pem), None),
        ("rogue-client-cert", Some(&ca.pem), Some(&rogue)),
        ("plain-text", None, None),
    ];
    for (node, trust, cert) in refused {
        let before = served.metric(REFUSED).unwrap_or(0);
        let streams_before = served.metric("xdsc_streams_total");
        assert!(streams_before.is_some(), "the server counts streams");
        let envoy = start_envoy(&envoy_bin, node, &served, trust, cert);
        let counted = wait_for(WAIT, || {
            (served.metric(REFUSED).unwrap_or(0) >= before + 2).then_some(())
        });
        assert!(
            counted.is_some(),
            "{node}: no refused handshakes counted ({:?}):\n{}\n{}",
            served.metric(REFUSED),
            served.log_text(),
            envoy.log_tail()
        );
        // Never a stream, checked on the server: Envoy's own `connected_state` gauge reads 1
        // for a moment each time it starts a stream, before the handshake fails (seen once
        // under load), so it cannot tell a refused Envoy from a connected one.
        assert_eq!(
            served.metric("xdsc_streams_total"),
            streams_before,
            "{node} opened a stream"
        );
        let listeners = envoy.admin("/listeners").unwrap_or_default();
        assert!(
            !listeners.contains("http"),
            "{node} got a listener: {listeners}"
        );
        assert_eq!(
            served.metric("xdsc_streams"),
            Some(0),
            "{node} holds a stream"
        );
    }

    // Served: the trusted client certificate connects, and traffic flows.
    let envoy = start_envoy(&envoy_bin, "good", &served, Some(&ca.pem), Some(&client));
    let routed = wait_for(WAIT, || match http_get(listen, "shop.example.com", "/") {
        Some((200, body)) if body == "shop" => Some(()),
        _ => None,
    });
    assert!(
        routed.is_some(),
        "the Envoy with a client certificate was not served:\n{}\n{}",
        served.log_text(),
        envoy.log_tail()
    );
    assert!(connected(&envoy));
}

#[test]
fn tls_without_client_cas_serves_an_envoy_that_has_no_certificate() {
    let (Some(envoy_bin), Some(openssl)) = (find_envoy(), find_openssl()) else {
        return;
    };
    let certs = Dir::new("tls-certs");
    let ca = TestCa::new(openssl, certs.path(), "xdsc-ca");
    let server = ca.issue("xdsc-server", &["DNS:xdsc.test"]);
    let backend = Backend::start("shop");
    let listen = free_port();
    let folder = site(listen, &backend);
    let served = Served::start(folder.path(), &tls_flags(&server, None));
    let envoy = start_envoy(&envoy_bin, "tls-only", &served, Some(&ca.pem), None);
    let routed = wait_for(WAIT, || match http_get(listen, "shop.example.com", "/") {
        Some((200, body)) if body == "shop" => Some(()),
        _ => None,
    });
    assert!(
        routed.is_some(),
        "not served over TLS:\n{}\n{}",
        served.log_text(),
        envoy.log_tail()
    );
}

/// What a new TLS client of `port` presenting `client` is shown (see [`tls_handshake`]).
fn new_client_sees(openssl: &str, port: u16, ca: &Pem, client: &Pem) -> Result<String, String> {
    tls_handshake(openssl, port, "xdsc.test", ca, Some(client))
}

/// Writes `from`'s bytes to `to` as a rotation does: a new file renamed over the old.
fn install(from: &Path, to: &Path) {
    let next = to.with_extension("next");
    std::fs::copy(from, &next).expect("copy");
    std::fs::rename(&next, to).expect("rename");
}

/// Envoy's count of connections to the xDS server.
fn xds_connections(envoy: &Envoy) -> Option<String> {
    envoy.admin("/stats?filter=cluster.xdsc.upstream_cx_total")
}

#[test]
fn rotated_tls_files_serve_new_connections_while_open_streams_stay() {
    let (Some(envoy_bin), Some(openssl)) = (find_envoy(), find_openssl()) else {
        return;
    };
    let certs = Dir::new("tls-certs");
    let ca = TestCa::new(openssl, certs.path(), "xdsc-ca");
    let sans = ["DNS:xdsc.test", "IP:127.0.0.1"];
    let first = ca.issue("xdsc-server-1", &sans);
    let second = ca.issue("xdsc-server-2", &sans);
    let client = ca.issue("envoy-good", &[]);
    let next_ca = TestCa::new(openssl, certs.path(), "next-ca");
    let next_client = next_ca.issue("envoy-next", &[]);
    // The files the server reads, rotated under it.
    let live = Pem {
        cert: certs.join("live.crt"),
        key: certs.join("live.key"),
    };
    let live_ca = certs.join("live-ca.crt");
    install(&first.cert, &live.cert);
    install(&first.key, &live.key);
    install(&ca.pem.cert, &live_ca);

    let backend = Backend::start("shop");
    let listen = free_port();
    let folder = site(listen, &backend);
    let mut flags = tls_flags(&live, None);
    flags.extend(["--xds-client-ca".to_owned(), live_ca.display().to_string()]);
    flags.extend(["--xds-tls-reload-every".to_owned(), "100ms".to_owned()]);
    let served = Served::start(folder.path(), &flags);
    let envoy = start_envoy(&envoy_bin, "rotated", &served, Some(&ca.pem), Some(&client));
    let routed = |host: &str| {
        wait_for(WAIT, || match http_get(listen, host, "/") {
            Some((200, body)) if body == "shop" => Some(()),
            _ => None,
        })
    };
    assert!(
        routed("shop.example.com").is_some(),
        "not served:\n{}\n{}",
        served.log_text(),
        envoy.log_tail()
    );
    let envoy_connections = xds_connections(&envoy);
    let port = served.xds_port;
    let sees = |cn: &str, who: &Pem| {
        wait_for(WAIT, || {
            new_client_sees(openssl, port, &ca.pem, who)
                .ok()
                .filter(|s| s.contains(&format!("CN={cn}")))
        })
    };
    assert!(sees("xdsc-server-1", &client).is_some());
    let reloads = |result: &str| {
        served
            .metric(&format!(
                "xdsc_xds_tls_reloads_total{{result=\"{result}\"}}"
            ))
            .unwrap_or(0)
    };

    // A new certificate and key: new clients get it.
    install(&second.cert, &live.cert);
    install(&second.key, &live.key);
    assert!(
        sees("xdsc-server-2", &client).is_some(),
        "a new client never saw the rotated certificate: {:?}\n{}",
        new_client_sees(openssl, port, &ca.pem, &client),
        served.log_text()
    );
    assert!(reloads("ok") >= 1);

    // A key that is not the certificate's: the previous pair stays, said once in the log and
    // counted.
    install(&client.key, &live.key);
    let refused = wait_for(WAIT, || (reloads("error") >= 1).then_some(()));
    assert!(refused.is_some(), "{}", served.log_text());
    let log = served.log_text();
    assert!(
        log.contains("keeping the previous certificate") && log.contains("live.key"),
        "{log}"
    );
    assert!(
        !log.contains(&client.key_text().lines().nth(1).expect("a key line")[..16]),
        "the log quotes the key"
    );
    assert!(sees("xdsc-server-2", &client).is_some());
    install(&second.key, &live.key);
    let back = wait_for(WAIT, || (reloads("ok") >= 2).then_some(()));
    assert!(back.is_some(), "{}", served.log_text());

    // Another client CA: new clients need a certificate it signed; the open stream (its
    // client certificate from the first CA) stays.
    install(&next_ca.pem.cert, &live_ca);
    assert!(
        sees("xdsc-server-2", &next_client).is_some(),
        "a client of the new CA was refused: {:?}\n{}",
        new_client_sees(openssl, port, &ca.pem, &next_client),
        served.log_text()
    );
    assert!(
        new_client_sees(openssl, port, &ca.pem, &client).is_err(),
        "a client of the old CA still connects"
    );

    // The Envoy connected before every rotation is still on its first connection, and
    // still gets updates.
    folder.write(
        "more.yaml",
        "kind: VirtualHost\nname: more\nlisteners: [http]\ndomains: [more.example.com]\n\
         routes:\n  - name: all\n    forward: {backends: [{cluster: shop}], timeout: 5s}\n",
    );
    assert!(
        routed("more.example.com").is_some(),
        "the open stream missed an update:\n{}\n{}",
        served.log_text(),
        envoy.log_tail()
    );
    assert!(connected(&envoy));
    assert_eq!(
        xds_connections(&envoy),
        envoy_connections,
        "Envoy reconnected"
    );
    assert_eq!(reloads("error"), 1, "{}", served.log_text());
}

/// Strings that betray a private key: each base64 line of its PEM body, and (for keys given
/// to Kubernetes Secrets) runs of its base64 encoding.
fn key_material(pem: &str) -> Vec<String> {
    let mut out: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect();
    let encoded = base64(pem.as_bytes());
    out.extend(
        encoded
            .as_bytes()
            .chunks(24)
            .filter(|c| c.len() == 24)
            .map(|c| String::from_utf8_lossy(c).into_owned()),
    );
    out
}

/// Standard base64 (as `kubectl create secret tls` writes `data`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn no_output_of_a_run_with_tls_secrets_shows_a_private_key() {
    let (Some(envoy_bin), Some(openssl)) = (find_envoy(), find_openssl()) else {
        return;
    };
    let certs = Dir::new("tls-certs");
    let ca = TestCa::new(openssl, certs.path(), "xdsc-ca");
    let server = ca.issue("xdsc-server", &["DNS:xdsc.test", "IP:127.0.0.1"]);
    let client = ca.issue("envoy-good", &[]);
    let inline = ca.issue("inline.example.com", &["DNS:inline.example.com"]);
    let in_file = ca.issue("file.example.com", &["DNS:file.example.com"]);
    let kube = ca.issue("kube.example.com", &["DNS:kube.example.com"]);
    let broken = ca.issue("broken.example.com", &["DNS:broken.example.com"]);
    let keys = [&server, &client, &inline, &in_file, &kube, &broken];
    let indent = |text: &str| text.replace('\n', "\n    ");
    let read = |p: &Path| std::fs::read_to_string(p).expect("PEM");
    let backend = Backend::start("shop");
    let listen = free_port();
    let folder = site(listen, &backend);
    folder.write(
        "secrets.yaml",
        &format!(
            "kind: Secret\nname: inline\ntls_certificate:\n  certificate_chain: |\n    {}\n  private_key: |\n    {}\n---\n\
             kind: Secret\nname: in-file\ntls_certificate:\n  certificate_chain_file: {}\n  private_key_file: {}\n---\n\
             kind: Listener\nname: https\naddress: 127.0.0.1\nport: {}\nprotocol: https\ntls:\n\
               \x20 - {{hosts: [inline.example.com], secret: inline}}\n  - {{hosts: [file.example.com], secret: in-file}}\n---\n\
             kind: VirtualHost\nname: secure\nlisteners: [https]\ndomains: [inline.example.com, file.example.com]\n\
             routes:\n  - name: all\n    forward: {{backends: [{{cluster: shop}}], timeout: 5s}}\n",
            indent(&read(&inline.cert)),
            indent(&inline.key_text()),
            in_file.cert.display(),
            in_file.key.display(),
            free_port(),
        ),
    );
    folder.write(
        "kube.yaml",
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: kube-tls, namespace: shop}}\ntype: kubernetes.io/tls\n\
             data:\n  tls.crt: {}\n  tls.key: {}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: shop}}\nspec:\n  ports: [{{name: http, port: 80, targetPort: {port}}}]\n---\n\
             apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: web-x1\n  namespace: shop\n  labels: {{kubernetes.io/service-name: web}}\n\
             addressType: IPv4\nports: [{{name: http, port: {port}}}]\nendpoints:\n  - addresses: [127.0.0.1]\n    conditions: {{ready: true}}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: shop, namespace: shop}}\nspec:\n\
             \x20 tls: [{{hosts: [kube.example.com], secretName: kube-tls}}]\n\
             \x20 rules:\n\
             \x20   - host: kube.example.com\n\
             \x20     http:\n\
             \x20       paths:\n\
             \x20         - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{name: http}}}}}}}}\n",
            base64(read(&kube.cert).as_bytes()),
            base64(kube.key_text().as_bytes()),
            port = backend.addr.port(),
        ),
    );
    // A secret that does not work (its key is not the certificate's, the chain is cut): its
    // diagnostics must name the problem without quoting the key.
    let cut_chain: String = read(&broken.cert)
        .lines()
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    folder.write(
        "broken.yaml",
        &format!(
            "kind: Secret\nname: broken\ntls_certificate:\n  certificate_chain: |\n    {}\n  private_key: |\n    {}\n  unknown_field: 1\n",
            indent(&cut_chain),
            indent(&broken.key_text()),
        ),
    );

    let mut outputs: Vec<(String, String)> = Vec::new();
    // The control: `render` prints a bootstrap for Envoy, whose static secrets must hold the
    // keys; the search below finds them there.
    let mut bootstrap_text = String::new();
    // check and render (text and JSON), with the broken file and without it.
    for args in [
        vec!["check"],
        vec!["check", "--output", "json"],
        vec!["render"],
    ] {
        let out = bin()
            .args(&args)
            .arg(folder.path())
            .output()
            .expect("xdsc-file runs");
        outputs.push((
            format!("{args:?} stderr"),
            String::from_utf8_lossy(&out.stderr).into(),
        ));
        if args[0] == "check" {
            outputs.push((
                format!("{args:?} stdout"),
                String::from_utf8_lossy(&out.stdout).into(),
            ));
        } else {
            bootstrap_text = String::from_utf8_lossy(&out.stdout).into();
        }
    }
    // Bad TLS flags: key and certificate swapped, a key cut short; the errors name the file.
    let cut_key = certs.join("cut.key");
    let key_text = server.key_text();
    std::fs::write(&cut_key, &key_text[..key_text.len() / 2]).expect("write");
    for (cert, key) in [(&server.key, &server.cert), (&server.cert, &cut_key)] {
        let out = bin()
            .arg("serve")
            .arg(folder.path())
            .args(["--xds-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--admin-addr", &format!("127.0.0.1:{}", free_port())])
            .arg("--xds-tls-cert")
            .arg(cert)
            .arg("--xds-tls-key")
            .arg(key)
            .stdout(Stdio::null())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("xDS TLS"), "{stderr}");
        outputs.push(("bad TLS flags".into(), stderr));
    }

    // serve, with the broken file moved out so the rest is served, an Envoy connected over
    // mutual TLS, then the broken file back (reported).
    let broken_text = std::fs::read_to_string(folder.join("broken.yaml")).expect("read");
    std::fs::remove_file(folder.join("broken.yaml")).expect("rm");
    for format in ["text", "json"] {
        let mut flags = tls_flags(&server, Some(&ca.pem));
        flags.extend(["--log-format".to_owned(), format.to_owned()]);
        let served = Served::start(folder.path(), &flags);
        let envoy = start_envoy(&envoy_bin, "secrets", &served, Some(&ca.pem), Some(&client));
        let synced = wait_for(WAIT, || {
            let clients = served.get("/debug/clients");
            clients.contains("\"type\": \"secrets\"").then_some(())
        });
        assert!(
            synced.is_some(),
            "Envoy never subscribed to secrets: {}\n{}",
            served.get("/debug/clients"),
            envoy.log_tail()
        );
        folder.write("broken.yaml", &broken_text);
        let reported = wait_for(WAIT, || {
            served.source()["errors"]
                .to_string()
                .contains("broken.yaml")
                .then_some(())
        });
        assert!(reported.is_some(), "{}", served.source());
        for path in [
            "/debug/snapshot",
            "/debug/clients",
            "/metrics",
            "/healthz",
            "/readyz",
        ] {
            outputs.push((format!("{format} {path}"), served.get(path)));
        }
        std::fs::remove_file(folder.join("broken.yaml")).expect("rm");
        drop(envoy);
        drop(served);
        // The log, complete now that the process is gone.
        let log = folder.path().with_extension("log");
        outputs.push((
            format!("{format} log"),
            std::fs::read_to_string(log).unwrap_or_default(),
        ));
    }

    assert!(
        outputs.iter().any(|(_, o)| o.contains("broken")),
        "the broken secret is reported somewhere"
    );
    let snapshot = &outputs
        .iter()
        .find(|(w, _)| w == "text /debug/snapshot")
        .expect("a snapshot")
        .1;
    assert!(
        snapshot.contains("inline") && snapshot.contains("kube-tls"),
        "the secrets are in the snapshot (redacted): {snapshot}"
    );
    let found = |pem: &Pem| {
        key_material(&pem.key_text())
            .iter()
            .any(|n| bootstrap_text.contains(n.as_str()))
    };
    assert!(
        found(&inline) && found(&in_file),
        "the search finds keys where they belong (render's bootstrap)"
    );
    for pem in keys {
        let text = pem.key_text();
        for needle in key_material(&text) {
            for (what, output) in &outputs {
                assert!(
                    !output.contains(&needle),
                    "{what} shows private key material of {}",
                    pem.key.display()
                );
            }
        }
    }
}
