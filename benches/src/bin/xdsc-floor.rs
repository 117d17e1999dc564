//! `xdsc-floor`: what this machine can deliver at all, for comparing `xdsc-load` against.
//!
//! A child process (`xdsc-floor --write`, as `xdsc-load`'s server is one) writes `--bytes`
//! bytes to each of `--streams` TCP connections over the loopback, in 16 KiB writes (an
//! HTTP/2 DATA frame's size with Envoy's default `SETTINGS_MAX_FRAME_SIZE`), when this process
//! asks; this process reads them on the same two-thread runtime the load tool's clients use,
//! and reports, per round, when each connection had all its bytes (p50, p99, max) and both
//! processes' CPU time. No HTTP/2, no gRPC, no protobuf, no xDS: the cost of moving the bytes
//! of a change through the kernel, with reader and writer on the same machine. Give it the
//! bytes per stream `xdsc-load` reports for a change.
//!
//! ```text
//! cargo run --release -p xdsc-benches --bin xdsc-floor -- --streams 100 --bytes 3610624
//! ```

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xdsc_benches::{cpu_seconds, percentile};

/// One write: an HTTP/2 DATA frame's payload at the default maximum frame size.
const WRITE: usize = 16 * 1024;

struct Args {
    streams: usize,
    bytes: usize,
    rounds: usize,
    write: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        streams: 100,
        bytes: 3 << 20,
        rounds: 10,
        write: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} takes a number"))
        };
        match a.as_str() {
            "--streams" => args.streams = number("--streams")?,
            "--bytes" => args.bytes = number("--bytes")?,
            "--rounds" => args.rounds = number("--rounds")?,
            "--write" => args.write = true,
            _ => {
                return Err(
                    "usage: xdsc-floor [--streams S] [--bytes B per stream] [--rounds R]".into(),
                );
            }
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if args.write {
        return rt.block_on(write(&args));
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--write", "--streams", &args.streams.to_string()])
        .args(["--bytes", &args.bytes.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let result = rt.block_on(read(&args, &mut child));
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The writer: accepts the connections, and writes the bytes to one whenever it sends a byte.
async fn write(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    let body = std::sync::Arc::new(vec![7u8; args.bytes]);
    let mut tasks = Vec::new();
    for _ in 0..args.streams {
        let (mut c, _) = listener.accept().await?;
        c.set_nodelay(true)?;
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut go = [0u8; 1];
            while c.read_exact(&mut go).await.is_ok() {
                for piece in body.chunks(WRITE) {
                    if c.write_all(piece).await.is_err() {
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

async fn read(
    args: &Args,
    child: &mut std::process::Child,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut line = String::new();
    BufReader::new(child.stdout.take().ok_or("no output from the writer")?).read_line(&mut line)?;
    let port: u16 = line.trim().parse()?;
    let mut conns = Vec::new();
    for _ in 0..args.streams {
        let c = TcpStream::connect(("127.0.0.1", port)).await?;
        c.set_nodelay(true)?;
        conns.push(c);
    }
    let mut all = Vec::new();
    for round in 0..args.rounds {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (writer0, reader0) = (cpu_seconds(child.id()), cpu_seconds(std::process::id()));
        let start = Instant::now();
        let bytes = args.bytes;
        let tasks: Vec<_> = conns
            .drain(..)
            .map(|mut c| {
                tokio::spawn(async move {
                    c.write_all(&[1]).await?;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut got = 0;
                    while got < bytes {
                        match c.read(&mut buf).await? {
                            0 => return Err(std::io::Error::other("the writer went away")),
                            n => got += n,
                        }
                    }
                    Ok::<_, std::io::Error>((start.elapsed(), c))
                })
            })
            .collect();
        let mut times = Vec::new();
        for t in tasks {
            let (d, c) = t.await??;
            times.push(d);
            conns.push(c);
        }
        times.sort();
        println!(
            "  round {round}: {} streams x {} bytes: {}; CPU writer {:.2} s, reader {:.2} s",
            args.streams,
            args.bytes,
            spread(&times),
            cpu_seconds(child.id()) - writer0,
            cpu_seconds(std::process::id()) - reader0,
        );
        all.extend(times);
    }
    all.sort();
    println!(
        "FLOOR | {} streams | {} bytes each | {} |",
        args.streams,
        args.bytes,
        spread(&all)
    );
    Ok(())
}

/// p50, p99 and max of sorted times.
fn spread(sorted: &[Duration]) -> String {
    format!(
        "p50 {:?} p99 {:?} max {:?}",
        percentile(sorted, 0.5),
        percentile(sorted, 0.99),
        sorted.last().copied().unwrap_or_default()
    )
}
