//! What the memory tests share: the child process of fake Envoys whose server they measure.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use xdsc_server::testing::{FakeEnvoy, Subscription};

/// What the clients print once synced (the test harness may print its own text before it, on
/// the same line).
pub(crate) const SYNCED: &str = "ALL-STREAMS-SYNCED";

/// How many HTTP/2 connections the child's streams share (told it by the parent).
const CONNECTIONS: &str = "XDSC_MEMORY_TEST_CONNECTIONS";

/// Starts this test binary again as the child running `test` (whose first step is
/// [`run_as_child`] with the same variables), its clients on the server at `port` over
/// `connections` HTTP/2 connections, and returns once they have printed [`SYNCED`]. The
/// clients keep acknowledging until the child's standard input is closed.
pub(crate) fn spawn_synced_clients(
    test: &str,
    (port_var, named_var): (&str, &str),
    port: u16,
    mode: Subscription,
    connections: usize,
) -> Child {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(port_var, port.to_string())
        .env(named_var, (mode == Subscription::Named).to_string())
        .env(CONNECTIONS, connections.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the clients");
    let mut out = BufReader::new(child.stdout.take().expect("child stdout"));
    let mut line = String::new();
    while !line.trim_end().ends_with(SYNCED) {
        line.clear();
        let n = out.read_line(&mut line).expect("read the child");
        assert!(n > 0, "the clients ended before they synced");
    }
    child
}

/// When this process is the test's child (`port_var` is set): runs its clients, as
/// [`clients`] does, and returns true; else false.
pub(crate) fn run_as_child(
    port_var: &str,
    named_var: &str,
    streams: usize,
    settle: Duration,
) -> bool {
    let Ok(port) = std::env::var(port_var) else {
        return false;
    };
    let mode = if std::env::var(named_var).is_ok_and(|v| v == "true") {
        Subscription::Named
    } else {
        Subscription::Wildcard
    };
    let connections = std::env::var(CONNECTIONS)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2);
    clients(
        port.parse().expect("a port"),
        mode,
        streams,
        connections,
        settle,
    );
    true
}

/// `streams` streams over `connections` connections (every other stream delta), subscribing
/// as `mode` says; prints [`SYNCED`] `settle` after every stream has its route
/// configuration, then keeps acknowledging until its standard input closes.
pub(crate) fn clients(
    port: u16,
    mode: Subscription,
    streams: usize,
    connections: usize,
    settle: Duration,
) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut channels = Vec::new();
        for _ in 0..connections.max(1) {
            channels.push(
                tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
                    .expect("address")
                    .connect()
                    .await
                    .expect("connect"),
            );
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel(streams);
        for i in 0..streams {
            let (channel, tx) = (channels[i % channels.len()].clone(), tx.clone());
            tokio::spawn(async move {
                let synced = async {
                    let mut envoy =
                        FakeEnvoy::start(channel, &format!("mem-{i}"), i % 2 == 1, mode).await?;
                    envoy.until_synced().await?;
                    Ok::<_, tonic::Status>(envoy)
                }
                .await;
                let _ = tx
                    .send(synced.as_ref().map(|_| ()).map_err(|e| e.to_string()))
                    .await;
                // Keep acknowledging whatever else arrives.
                if let Ok(mut envoy) = synced {
                    while let Ok(Some(_)) = envoy.step().await {}
                }
            });
        }
        drop(tx);
        for _ in 0..streams {
            match rx.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => panic!("a stream failed: {e}"),
                None => panic!("a stream task ended"),
            }
        }
        tokio::time::sleep(settle).await;
        println!("{SYNCED}");
        let _ = std::io::stdout().flush();
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await
        .expect("stdin");
    });
}
