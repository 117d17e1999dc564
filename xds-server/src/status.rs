//! The status page (`GET /` on the admin listener) and its JSON (`GET /debug/status`): build,
//! memory, fleets (snapshot version, resources and bytes per type), connected Envoys
//! (node, fleet, versions sent and acknowledged per type, the last NACK with Envoy's message
//! and the source objects it traces to) and the embedder's sources (errors, watch health).
//!
//! The page is rendered from the JSON, on the server, as plain HTML with an inline style
//! sheet: no script, no external asset, every value escaped. So every figure on the page is
//! in `/debug/status` too. No resource bodies are shown (only counts and sizes), so no secret
//! can be.
//!
//! Not here: the other endpoints (`admin`).

use std::fmt::Write;

use serde_json::{Map, Value, json};
use xdsc_core::snapshot::ResourceType;

use crate::publish::Publisher;

/// The JSON of the status page: `build` (the binary's name and version), the fleets of
/// `publisher`, and the `clients` and `sources` views the admin endpoints gathered (what
/// `/debug/clients` and `/debug/sources` answer).
pub(crate) fn json(
    build: &(String, String),
    publisher: &Publisher,
    clients: Value,
    sources: Value,
) -> Value {
    let mut fleets = Vec::new();
    for fleet in publisher.fleets() {
        let Some(s) = publisher.snapshot(&fleet) else {
            continue;
        };
        let types: Vec<Value> = ResourceType::ALL
            .iter()
            .map(|t| {
                let r = s.resources(*t);
                json!({
                    "type": t.short_name(),
                    "version": r.version().to_string(),
                    "resources": r.len(),
                    "bytes": r.iter().map(|x| x.body().len()).sum::<usize>(),
                })
            })
            .collect();
        fleets.push(json!({"fleet": fleet, "version": s.version().to_string(), "types": types}));
    }
    json!({
        "build": {
            "name": build.0,
            "version": build.1,
            "server": env!("CARGO_PKG_VERSION"),
        },
        "memory": crate::memory::MemoryFigures::now(),
        "fleets": fleets,
        "clients": clients,
        "sources": sources,
    })
}

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut o = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin:.4em 0 1em}\
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}\
.bad{color:#a00}.ok{color:#070}code{font-size:.9em}h2{margin-top:1.4em}";

/// A value as text: strings as they are, other JSON as JSON, absent as a dash.
fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

fn mib(v: Option<&Value>) -> String {
    v.and_then(Value::as_u64).map_or_else(
        || "-".to_owned(),
        |b| format!("{:.1} MiB", b as f64 / 1048576.0),
    )
}

/// The page.
pub(crate) fn html(status: &Value) -> String {
    let mut o = String::new();
    let e = |v: Option<&Value>| escape(&text(v));
    let b = &status["build"];
    let _ = write!(
        o,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>xdsc status: {}</title><style>{STYLE}</style></head><body>",
        e(b.get("name"))
    );
    let _ = write!(
        o,
        "<h1>{} {}</h1><p>xdsc-server {} &middot; <a href=\"/debug/status\">JSON</a> &middot; <a href=\"/metrics\">metrics</a></p>",
        e(b.get("name")),
        e(b.get("version")),
        e(b.get("server"))
    );
    // Memory.
    let m = &status["memory"];
    let a = &m["allocator"];
    let _ = write!(
        o,
        "<h2>Memory</h2><table><tr><th>resident</th><th>container limit</th><th>allocated</th><th>active</th><th>allocator resident</th><th>retained</th></tr><tr><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td><td class=num>{}</td></tr></table>",
        mib(m.get("resident")),
        mib(m.get("limit")),
        mib(a.get("allocated")),
        mib(a.get("active")),
        mib(a.get("resident")),
        mib(a.get("retained"))
    );
    // Fleets.
    o.push_str("<h2>Fleets</h2>");
    let fleets = status["fleets"].as_array().map_or(&[][..], Vec::as_slice);
    if fleets.is_empty() {
        o.push_str("<p>No snapshot published yet.</p>");
    }
    for f in fleets {
        let _ = write!(
            o,
            "<h3>{}</h3><p>snapshot version <code>{}</code></p><table><tr><th>type</th><th>version</th><th>resources</th><th>bytes</th></tr>",
            e(f.get("fleet")),
            e(f.get("version"))
        );
        for t in f["types"].as_array().into_iter().flatten() {
            let _ = write!(
                o,
                "<tr><td>{}</td><td><code>{}</code></td><td class=num>{}</td><td class=num>{}</td></tr>",
                e(t.get("type")),
                e(t.get("version")),
                e(t.get("resources")),
                e(t.get("bytes"))
            );
        }
        o.push_str("</table>");
    }
    // Envoys.
    let clients = status["clients"].as_array().map_or(&[][..], Vec::as_slice);
    let _ = write!(o, "<h2>Envoys ({})</h2>", clients.len());
    if clients.is_empty() {
        o.push_str("<p>No Envoy connected.</p>");
    }
    for c in clients {
        let _ = write!(
            o,
            "<h3>{}</h3><p>cluster {} &middot; fleet {} &middot; peer {} &middot; {} {}</p>",
            e(c["node"].get("id")),
            e(c["node"].get("cluster")),
            e(c.get("fleet")),
            e(c.get("peer")),
            e(c.get("service")),
            e(c.get("variant"))
        );
        o.push_str("<table><tr><th>type</th><th>subscription</th><th>version sent (awaiting ACK)</th><th>version acknowledged</th><th>last NACK</th></tr>");
        for t in c["types"].as_array().into_iter().flatten() {
            let names = t["names"].as_array().map_or(0, Vec::len);
            let subscription = if t["wildcard"].as_bool() == Some(true) {
                "wildcard".to_owned()
            } else {
                format!("{names} names")
            };
            let nack = match t.get("last_nack").filter(|n| !n.is_null()) {
                None => "-".to_owned(),
                Some(n) => {
                    let list = |k: &str| -> String {
                        n[k].as_array()
                            .into_iter()
                            .flatten()
                            .map(|v| format!("<li>{}</li>", e(Some(v))))
                            .collect()
                    };
                    format!(
                        "<div class=bad>version <code>{}</code>: {}</div><div>resources:<ul>{}</ul></div><div>from:<ul>{}</ul></div><div>read at:<ul>{}</ul></div>",
                        e(n.get("version")),
                        e(n.get("detail")),
                        list("resources"),
                        list("sources"),
                        list("origins")
                    )
                }
            };
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{nack}</td></tr>",
                e(t.get("type")),
                escape(&subscription),
                e(t.get("version_sent")),
                e(t.get("version_acked"))
            );
        }
        o.push_str("</table>");
    }
    // Sources: their own shape, shown as nested tables.
    o.push_str("<h2>Sources</h2>");
    match &status["sources"] {
        Value::Null => o.push_str("<p>No sources reported.</p>"),
        v => value_html(&mut o, v),
    }
    o.push_str("</body></html>\n");
    o
}

/// Any JSON as HTML: objects as two-column tables, arrays as lists, scalars escaped.
fn value_html(o: &mut String, v: &Value) {
    match v {
        Value::Object(map) => object_html(o, map),
        Value::Array(items) if items.is_empty() => o.push_str("<span>none</span>"),
        Value::Array(items) => {
            o.push_str("<ul>");
            for item in items {
                o.push_str("<li>");
                value_html(o, item);
                o.push_str("</li>");
            }
            o.push_str("</ul>");
        }
        other => o.push_str(&escape(&text(Some(other)))),
    }
}

fn object_html(o: &mut String, map: &Map<String, Value>) {
    o.push_str("<table>");
    for (k, v) in map {
        let _ = write!(o, "<tr><th>{}</th><td>", escape(k));
        value_html(o, v);
        o.push_str("</td></tr>");
    }
    o.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_escaped() {
        assert_eq!(
            escape("<script>a&b\"c'</script>"),
            "&lt;script&gt;a&amp;b&quot;c&#39;&lt;/script&gt;"
        );
        let page = html(&json!({
            "build": {"name": "x<y", "version": "1", "server": "1"},
            "memory": {},
            "fleets": [],
            "clients": [{"node": {"id": "<b>n</b>", "cluster": "c"}, "fleet": "default",
                "types": [{"type": "listeners", "wildcard": true, "names": [],
                    "version_sent": null, "version_acked": "v1",
                    "last_nack": {"version": "v2", "detail": "bad <port>", "resources": ["l"],
                        "sources": ["Listener/l"], "origins": ["Listener l (a.yaml:3:1)"]}}]}],
            "sources": [{"errors": ["f.yaml:1:1: <oops>"]}],
        }));
        assert!(!page.contains("<b>n</b>") && page.contains("&lt;b&gt;n&lt;/b&gt;"));
        assert!(page.contains("bad &lt;port&gt;"));
        assert!(page.contains("Listener l (a.yaml:3:1)"));
        assert!(page.contains("f.yaml:1:1: &lt;oops&gt;"));
        assert!(!page.contains("<script") && !page.contains("src="));
    }
}
