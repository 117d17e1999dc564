//! A tiny HTTP/1.1 backend for the quickstart: answers every request with its name, the
//! method, path and Host it saw. Standard library only.
//!
//! ```text
//! cargo run -p xdsc-examples --bin demo-backend -- --port 8081 --name blue
//! ```

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use xdsc_examples::arg;

fn answer(stream: TcpStream, name: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut host = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "host" => host = v.trim().to_owned(),
                    "content-length" => length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length.min(1 << 20)];
        std::io::Read::read_exact(&mut reader, &mut body)?;
        let mut parts = request_line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("?"), parts.next().unwrap_or("?"));
        let text = format!("hello from {name}: {method} {path} (host {host})\n");
        write!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )?;
    }
}

fn main() -> std::io::Result<()> {
    let port = arg("--port", "8081");
    let name = arg("--name", "demo");
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    println!("demo-backend {name} on {}", listener.local_addr()?);
    for stream in listener.incoming().flatten() {
        let name = name.clone();
        std::thread::spawn(move || answer(stream, &name));
    }
    Ok(())
}
