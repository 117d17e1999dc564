//! Faults with the real Envoy: `xdsc-file serve` killed with SIGKILL (no shutdown at all)
//! while Envoy is connected. Envoy keeps routing with what it holds; when the process is
//! back on the same port, Envoy reconnects presenting its versions and is sent nothing it
//! already has (its update counters do not move until a real change arrives), for state of
//! the world and delta alike.

use std::time::Duration;

use crate::serve_envoy::Served;
use crate::support::Dir;
use xdsc_test_support::{Backend, Envoy, ads_bootstrap, find_envoy, free_port, http_get, wait_for};

const WAIT: Duration = Duration::from_secs(30);

/// The site: `shop.example.com` on `listen` to cluster `to`; clusters one and two.
fn site(listen: u16, one: &Backend, two: &Backend, to: &str) -> String {
    format!(
        "kind: Listener\nname: http\naddress: 127.0.0.1\nport: {listen}\n---\n\
         kind: VirtualHost\nname: shop\nlisteners: [http]\ndomains: [shop.example.com]\n\
         routes:\n  - name: all\n    forward: {{backends: [{{cluster: {to}}}], timeout: 5s}}\n---\n\
         kind: Cluster\nname: one\nconnect_timeout: 1s\n---\nkind: Cluster\nname: two\nconnect_timeout: 1s\n---\n\
         kind: Endpoints\nname: one\nlocalities:\n  - endpoints: [{{address: 127.0.0.1, port: {}}}]\n---\n\
         kind: Endpoints\nname: two\nlocalities:\n  - endpoints: [{{address: 127.0.0.1, port: {}}}]\n",
        one.addr.port(),
        two.addr.port()
    )
}

/// Envoy's xDS update counters (`*.update_success`, `*.update_rejected`), by name.
fn counters(envoy: &Envoy) -> Vec<(String, u64)> {
    let stats = envoy
        .admin("/stats?filter=update_(success|rejected)$")
        .unwrap_or_default();
    let mut out: Vec<(String, u64)> = stats
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(": ")?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect();
    out.sort();
    out
}

fn connected(envoy: &Envoy, want: &str) -> bool {
    wait_for(WAIT, || {
        envoy
            .admin("/stats?filter=control_plane.connected_state")?
            .contains(&format!("connected_state: {want}"))
            .then_some(())
    })
    .is_some()
}

fn kill_9_then_restart(delta: bool) {
    let Some(envoy_bin) = find_envoy() else {
        return;
    };
    let (one, two) = (Backend::start("one"), Backend::start("two"));
    let listen = free_port();
    let tag = if delta { "kill9-delta" } else { "kill9-sotw" };
    let folder = Dir::with_files(tag, &[]);
    folder.write("site.yaml", &site(listen, &one, &two, "one"));
    let (xds_port, admin_port) = (free_port(), free_port());
    let mut served = Served::start_at(folder.path(), xds_port, admin_port, &[]);
    let envoy_admin = free_port();
    let envoy = Envoy::start(
        &envoy_bin,
        &ads_bootstrap(tag, "default", xds_port, envoy_admin, delta),
        envoy_admin,
    );
    let answers = |want: &str| {
        wait_for(WAIT, || match http_get(listen, "shop.example.com", "/") {
            Some((200, b)) if b == want => Some(()),
            _ => None,
        })
        .is_some()
    };
    assert!(answers("one"), "never routed:\n{}", envoy.log_tail());
    // Everything Envoy holds is acknowledged: what it was sent is settled.
    let settled = wait_for(WAIT, || {
        let c = counters(&envoy);
        (c.iter().any(|(k, _)| k.contains(".rds.")) && c == counters(&envoy)).then_some(c)
    })
    .expect("counters");
    std::thread::sleep(Duration::from_millis(500));
    let before = counters(&envoy);
    assert_eq!(settled, before, "updates still arriving");

    // SIGKILL: no GOAWAY, no stream end; the socket is closed by the kernel.
    served.child.kill().expect("kill -9");
    let _ = served.child.wait();
    assert!(connected(&envoy, "0"), "Envoy never noticed");
    for _ in 0..20 {
        let got = http_get(listen, "shop.example.com", "/");
        assert_eq!(
            got,
            Some((200, "one".to_owned())),
            "Envoy stopped routing without its control plane"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Back on the same port with the same files: Envoy reconnects and is sent nothing.
    drop(served);
    let served = Served::start_at(folder.path(), xds_port, admin_port, &[]);
    assert!(
        connected(&envoy, "1"),
        "Envoy never reconnected:\n{}",
        envoy.log_tail()
    );
    // A real change afterwards (the route only): it comes down the same ordered stream as
    // anything resent on reconnect would have, so once it is applied, a resend would show.
    folder.write("site.yaml", &site(listen, &one, &two, "two"));
    assert!(
        answers("two"),
        "the change after the restart never applied:\n{}",
        served.log_text()
    );
    let after = counters(&envoy);
    let moved: Vec<String> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| b != a)
        .map(|(b, a)| format!("{} {} -> {}", b.0, b.1, a.1))
        .collect();
    assert_eq!(
        before.iter().map(|c| &c.0).collect::<Vec<_>>(),
        after.iter().map(|c| &c.0).collect::<Vec<_>>()
    );
    let rds = before
        .iter()
        .find(|(k, _)| k.contains(".rds.") && k.ends_with("update_success"))
        .expect("an RDS counter");
    assert_eq!(
        moved,
        [format!("{} {} -> {}", rds.0, rds.1, rds.1 + 1)],
        "after a restart only the route change is applied, once (of {before:?})"
    );
    eprintln!(
        "{tag}: after kill -9 and restart, only {moved:?} (of {} counters)",
        before.len()
    );
}

#[test]
fn kill_9_with_envoy_connected_keeps_routing_and_a_restart_resends_nothing_sotw() {
    kill_9_then_restart(false);
}

#[test]
fn kill_9_with_envoy_connected_keeps_routing_and_a_restart_resends_nothing_delta() {
    kill_9_then_restart(true);
}
