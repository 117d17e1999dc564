//! Tests of the live source: the decision rule, and the watcher on a real folder.

use std::sync::mpsc::Receiver;

use serde_json::Value;
use xdsc_core::model::{Kind, ObjectKey};
use xdsc_core::snapshot::{ResourceType, Snapshot};
use xdsc_test_support::TempDir;

use super::*;
use crate::load::tests::dir;

/// One reload of `dir` through `loader` into `r`.
fn step(r: &mut Reconciler, loader: &mut Loader, dir: &TempDir) -> Outcome {
    let delta = loader.reload(&[dir.path().to_owned()]);
    r.step(delta.changes, |c| loader.report(c))
}

const GOOD: &str = "kind: Cluster\nname: web\n";

fn applied(changed: usize) -> Outcome {
    Outcome::Applied {
        changed,
        held: 0,
        new_errors: Vec::new(),
    }
}

#[test]
fn a_broken_file_is_held_back_the_file_saved_with_it_applies_and_a_fix_applies_it() {
    let dir = dir(&[("a.yaml", GOOD)]);
    let (mut r, mut loader) = (reconciler(), Loader::default());
    assert_eq!(step(&mut r, &mut loader, &dir), applied(1));
    let web = ObjectKey::new(Kind::Cluster, "web");
    let api = ObjectKey::new(Kind::Cluster, "api");

    // One good file and one broken file in the same batch: the broken file's objects keep
    // their last good state, the good file applies.
    std::fs::write(dir.join("b.yaml"), "kind: Cluster\nname: api\n").unwrap();
    std::fs::write(dir.join("a.yaml"), "kind: Cluster\nname: [web\n").unwrap();
    let out = step(&mut r, &mut loader, &dir);
    let Outcome::Applied {
        changed: 1,
        held: 1,
        new_errors,
    } = out
    else {
        panic!("should hold a.yaml back: {out:?}")
    };
    assert!(
        new_errors[0].to_string().contains("a.yaml:")
            && new_errors[0].to_string().contains("invalid YAML"),
        "{new_errors:?}"
    );
    assert!(r.serves(&web), "the last good web stays");
    assert!(r.serves(&api));
    assert!(!r.newest_diagnostics().is_empty());
    // A rescan of the unchanged broken set decides the same.
    assert!(matches!(
        step(&mut r, &mut loader, &dir),
        Outcome::HeldBack { .. }
    ));

    std::fs::write(
        dir.join("a.yaml"),
        "kind: Cluster\nname: web\nconnect_timeout: 2s\n",
    )
    .unwrap();
    assert_eq!(step(&mut r, &mut loader, &dir), applied(1));
    assert!(r.newest_diagnostics().is_empty());
    assert_eq!(r.pending(), 0);
    assert_eq!(step(&mut r, &mut loader, &dir), Outcome::Unchanged);
}

#[test]
fn semantic_errors_hold_back_too() {
    let dir = dir(&[("a.yaml", "kind: Cluster\nname: web\n")]);
    let (mut r, mut loader) = (reconciler(), Loader::default());
    step(&mut r, &mut loader, &dir);
    std::fs::write(
        dir.join("a.yaml"),
        "kind: Cluster\nname: web\nconnect_timeout: 0s\n",
    )
    .unwrap();
    assert!(matches!(
        step(&mut r, &mut loader, &dir),
        Outcome::HeldBack { .. }
    ));
    assert_eq!(
        r.snapshot().resources(ResourceType::Cluster).len(),
        1,
        "still served"
    );
}

#[test]
fn errors_present_at_startup_do_not_block_other_changes() {
    let dir = dir(&[
        ("a.yaml", GOOD),
        ("broken.yaml", "kind: Cluster\nname: [x\n"),
    ]);
    let (mut r, mut loader) = (reconciler(), Loader::default());
    assert_eq!(step(&mut r, &mut loader, &dir), applied(1));
    assert_eq!(r.served_diagnostics().len(), 1);
    // Lines move in the broken file: the same error, not a new one.
    std::fs::write(dir.join("broken.yaml"), "\n\nkind: Cluster\nname: [x\n").unwrap();
    std::fs::write(dir.join("b.yaml"), "kind: Cluster\nname: api\n").unwrap();
    assert_eq!(step(&mut r, &mut loader, &dir), applied(1));
}

#[test]
fn deleting_a_file_removes_its_objects() {
    let dir = dir(&[("a.yaml", GOOD), ("b.yaml", "kind: Cluster\nname: api\n")]);
    let (mut r, mut loader) = (reconciler(), Loader::default());
    step(&mut r, &mut loader, &dir);
    std::fs::remove_file(dir.join("b.yaml")).unwrap();
    assert_eq!(step(&mut r, &mut loader, &dir), applied(1));
    assert!(!r.serves(&ObjectKey::new(Kind::Cluster, "api")));
}

struct ChannelSink(mpsc::Sender<Snapshot>, mpsc::Sender<Value>);

impl Sink for ChannelSink {
    fn publish(&mut self, snapshot: Snapshot) {
        let _ = self.0.send(snapshot);
    }
    fn report(&mut self, report: Report<'_>) {
        let _ = self
            .1
            .send(serde_json::to_value(report.status).unwrap_or(Value::Null));
    }
}

/// Starts the live source on `folder` with short timings and a rescan too long to matter, so
/// a test passes on file events alone: the handle, the snapshots and the status reports.
fn watch(folder: &Path) -> (Running, Receiver<Snapshot>, Receiver<Value>) {
    let (stx, srx) = mpsc::channel();
    let (rtx, rrx) = mpsc::channel();
    let source = FileSource {
        paths: vec![folder.to_owned()],
        load: LoadOptions::default(),
        options: SourceOptions {
            hold_off: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            rescan: Duration::from_secs(3600),
        },
    };
    let running = source.start(ChannelSink(stx, rtx)).unwrap();
    (running, srx, rrx)
}

fn next_status(rx: &Receiver<Value>, want: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(v) if want(&v) => return v,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no such status within 20 s");
}

fn clusters(s: &Snapshot) -> Vec<String> {
    s.resources(ResourceType::Cluster)
        .names()
        .map(|n| n.to_string())
        .collect()
}

#[test]
fn the_live_source_follows_edits_renames_and_deletes() {
    let dir = dir(&[("conf/a.yaml", GOOD)]);
    let (running, srx, rrx) = watch(&dir.join("conf"));
    let first = srx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(clusters(&first), ["web"]);

    // An editor's atomic save: write a temporary file, rename it over.
    let tmp = dir.join("conf/.a.yaml.swp");
    std::fs::write(&tmp, "kind: Cluster\nname: web2\n").unwrap();
    std::fs::rename(&tmp, dir.join("conf/a.yaml")).unwrap();
    let s = srx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(clusters(&s), ["web2"]);
    // A reload reads the files; reading must not count as a change (a reload loop).
    std::thread::sleep(Duration::from_millis(300));
    let _ = rrx.try_iter().count();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(rrx.try_iter().count(), 0, "no reload without a change");

    // A new file in a new sub-folder.
    std::fs::create_dir_all(dir.join("conf/more")).unwrap();
    std::fs::write(dir.join("conf/more/b.yaml"), "kind: Cluster\nname: api\n").unwrap();
    let s = srx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(clusters(&s), ["api", "web2"]);

    // Broken: held back, reported.
    std::fs::write(dir.join("conf/a.yaml"), "kind: [\n").unwrap();
    let status = next_status(&rrx, |v| v["state"] == "held_back");
    assert!(
        status["held_back_errors"][0]
            .as_str()
            .unwrap()
            .contains("a.yaml"),
        "{status}"
    );

    // Deleted: its objects go.
    std::fs::remove_file(dir.join("conf/a.yaml")).unwrap();
    let s = srx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(clusters(&s), ["api"]);
    running.stop();
}

#[test]
fn pem_files_a_secret_names_are_watched_even_outside_the_folder() {
    let dir = dir(&[
        (
            "conf/secret.yaml",
            "kind: Secret\nname: cert\ntls_certificate:\n  certificate_chain_file: ../pki/tls.crt\n  private_key_file: ../pki/tls.key\n",
        ),
        (
            "pki/tls.crt",
            "-----BEGIN CERTIFICATE-----\nb25l\n-----END CERTIFICATE-----\n",
        ),
        (
            "pki/tls.key",
            "-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n",
        ),
    ]);
    let (running, srx, _rrx) = watch(&dir.join("conf"));
    let first = srx.recv_timeout(Duration::from_secs(5)).unwrap();
    let version = |s: &Snapshot| s.get(ResourceType::Secret, "cert").map(|r| r.version());
    assert!(version(&first).is_some());
    // A certificate rotation: only the PEM file changes, outside the watched folder.
    std::fs::write(
        dir.join("pki/tls.crt"),
        "-----BEGIN CERTIFICATE-----\ndHdv\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let rotated = srx
        .recv_timeout(Duration::from_secs(20))
        .expect("the rotation is seen");
    assert_ne!(version(&rotated), version(&first));
    running.stop();
}

#[test]
fn a_kubernetes_volume_update_by_symlink_swap_is_seen() {
    // How the kubelet lays out a Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..v1.
    let cert = |n: &str| format!("-----BEGIN CERTIFICATE-----\n{n}\n-----END CERTIFICATE-----\n");
    let key = "-----BEGIN PRIVATE KEY-----\na2V5\n-----END PRIVATE KEY-----\n";
    let dir = dir(&[
        (
            "conf/secret.yaml",
            "kind: Secret\nname: cert\ntls_certificate:\n  certificate_chain_file: /VOL/tls.crt\n  private_key_file: /VOL/tls.key\n",
        ),
        ("vol/..v1/tls.crt", &cert("b25l")),
        ("vol/..v1/tls.key", key),
    ]);
    let vol = dir.join("vol");
    let secret = dir.join("conf/secret.yaml");
    let text = std::fs::read_to_string(&secret).unwrap();
    std::fs::write(&secret, text.replace("/VOL", &vol.display().to_string())).unwrap();
    std::os::unix::fs::symlink("..v1", vol.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tls.crt", vol.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink("..data/tls.key", vol.join("tls.key")).unwrap();

    let (running, srx, _rrx) = watch(&dir.join("conf"));
    let first = srx.recv_timeout(Duration::from_secs(5)).unwrap();
    let version = |s: &Snapshot| s.get(ResourceType::Secret, "cert").map(|r| r.version());
    assert!(version(&first).is_some(), "the secret is served");
    // The update: a new timestamped folder, then an atomic swap of ..data.
    std::fs::create_dir(vol.join("..v2")).unwrap();
    std::fs::write(vol.join("..v2/tls.crt"), cert("dHdv")).unwrap();
    std::fs::write(vol.join("..v2/tls.key"), key).unwrap();
    std::os::unix::fs::symlink("..v2", vol.join("..data_tmp")).unwrap();
    std::fs::rename(vol.join("..data_tmp"), vol.join("..data")).unwrap();
    let rotated = srx
        .recv_timeout(Duration::from_secs(20))
        .expect("the swap is seen");
    assert_ne!(version(&rotated), version(&first));
    running.stop();
}

/// Every snapshot published until one has `want` clusters; panics on any other.
fn only_whole(srx: &Receiver<Snapshot>, old: &[&str], want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let s = srx
            .recv_timeout(left)
            .expect("the new content is published");
        let got = clusters(&s);
        if got == want {
            return;
        }
        assert_eq!(got, old, "a half-written state was served");
    }
}

#[test]
fn a_file_written_in_place_in_chunks_is_never_served_half_written() {
    use std::io::Write;
    let old = "kind: Cluster\nname: a\n---\nkind: Cluster\nname: b\n---\nkind: Cluster\nname: c\n";
    let dir = dir(&[("conf/a.yaml", old)]);
    let (running, srx, _rrx) = watch(&dir.join("conf"));
    assert_eq!(
        clusters(&srx.recv_timeout(Duration::from_secs(5)).unwrap()),
        ["a", "b", "c"]
    );
    // As `cp` or an editor writing in place: truncate, then write in chunks with pauses far
    // longer than the hold-off (50 ms) and the maximum delay (500 ms). Each prefix is valid
    // YAML with fewer clusters: served, it would delete them.
    let mut f = std::fs::File::create(dir.join("conf/a.yaml")).unwrap();
    for chunk in [
        "kind: Cluster\nname: a\n---\n",
        "kind: Cluster\nname: b\n---\n",
        "kind: Cluster\nname: c\n---\nkind: Cluster\nname: d\n",
    ] {
        f.write_all(chunk.as_bytes()).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(700));
    }
    drop(f);
    only_whole(&srx, &["a", "b", "c"], &["a", "b", "c", "d"]);
    running.stop();
}

#[test]
fn a_config_folder_that_disappears_keeps_the_last_good_config_and_is_served_when_back() {
    let dir = dir(&[
        ("conf/a.yaml", GOOD),
        ("conf/sub/b.yaml", "kind: Cluster\nname: api\n"),
    ]);
    let (running, srx, rrx) = watch(&dir.join("conf"));
    assert_eq!(
        clusters(&srx.recv_timeout(Duration::from_secs(5)).unwrap()),
        ["api", "web"]
    );
    std::fs::remove_dir_all(dir.join("conf")).unwrap();
    let status = next_status(&rrx, |v| v["errors"].to_string().contains("cannot read"));
    assert_eq!(status["state"], "held_back", "{status}");
    assert!(
        srx.try_recv().is_err(),
        "nothing is published while the folder is gone"
    );
    // Back, with other content: watched again (the rescan is an hour), served.
    std::fs::create_dir_all(dir.join("conf/sub")).unwrap();
    std::fs::write(dir.join("conf/a.yaml"), "kind: Cluster\nname: web2\n").unwrap();
    std::fs::write(dir.join("conf/sub/b.yaml"), "kind: Cluster\nname: api\n").unwrap();
    let s = srx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(clusters(&s), ["api", "web2"]);
    // And followed after that.
    std::fs::write(dir.join("conf/sub/b.yaml"), "kind: Cluster\nname: api2\n").unwrap();
    let s = srx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert_eq!(clusters(&s), ["api2", "web2"]);
    running.stop();
}
