//! Embedding xdsc with an escape hatch: a Lua HTTP filter, which the model has no type for,
//! given as the `envoy_types` prost message on the listener, compiled and served; stream
//! events (ACKs, NACKs with Envoy's detail) printed as they happen.
//!
//! ```text
//! cargo run -p xdsc-examples --bin embed-filter -- --xds-addr 127.0.0.1:18000 --backend-port 8080 --listener-port 10000
//! curl localhost:10000/lua   # answered by the Lua filter
//! ```
//!
//! See `docs/embedding.md`; `tests/embed_filter.rs` runs this against a real Envoy.

use xdsc_examples::{arg, filter};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend: u16 = arg("--backend-port", "8080").parse()?;
    let port: u16 = arg("--listener-port", "10000").parse()?;
    let xds = tokio::net::TcpListener::bind(arg("--xds-addr", "127.0.0.1:18000")).await?;
    println!("xDS on {}", xds.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let (_publisher, serving) = filter::serve(&filter::model(backend, port), xds, shutdown, |e| {
        if let Some(line) = filter::describe(e) {
            println!("{line}");
        }
    })?;
    serving.await??;
    Ok(())
}
