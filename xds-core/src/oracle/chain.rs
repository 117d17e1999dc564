//! Listener choice: which filter chain of a listener takes a connection, as Envoy's filter
//! chain manager picks it (destination port, SNI server names, transport protocol), and what
//! of a listener the oracle does not model.
//!
//! Not here: what the chosen chain does with a request (see the parent module).

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as listener;

use super::outcome::{ChainMatch, Result, rejected, unsupported};

pub(super) const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

pub(super) fn listener_port(l: &listener::Listener) -> Option<u32> {
    match l.address.as_ref()?.address.as_ref()? {
        core::address::Address::SocketAddress(s) => match s.port_specifier.as_ref()? {
            core::socket_address::PortSpecifier::PortValue(p) => Some(*p),
            core::socket_address::PortSpecifier::NamedPort(_) => None,
        },
        _ => None,
    }
}

pub(super) type Chosen<'l> = Option<(&'l listener::FilterChain, Option<usize>, ChainMatch)>;

/// Envoy's `FilterChainManagerImpl::findFilterChain`, for the criteria xdsc uses: destination
/// port, server names and transport protocol.
pub(super) fn choose_chain<'l>(
    l: &'l listener::Listener,
    port: Option<u32>,
    server_name: &str,
    transport: &str,
) -> Result<Chosen<'l>> {
    for c in &l.filter_chains {
        if let Some(m) = fcm(c) {
            check_chain_match(m)?;
        }
    }
    let dport =
        |c: &listener::FilterChain| fcm(c).and_then(|m| m.destination_port.map(|p| p.value));
    let exact_port: Vec<(usize, &listener::FilterChain)> = l
        .filter_chains
        .iter()
        .enumerate()
        .filter(|(_, c)| port.is_some() && dport(c) == port)
        .collect();
    let candidates = if exact_port.is_empty() {
        l.filter_chains
            .iter()
            .enumerate()
            .filter(|(_, c)| dport(c).is_none_or(|p| p == 0))
            .collect()
    } else {
        exact_port
    };
    let names = |c: &listener::FilterChain| -> Vec<String> {
        fcm(c).map(|m| m.server_names.clone()).unwrap_or_default()
    };
    let with_name = |n: &str| -> Vec<(usize, &'l listener::FilterChain)> {
        candidates
            .iter()
            .filter(|(_, c)| names(c).iter().any(|s| s == n))
            .copied()
            .collect()
    };
    let mut bucket = Vec::new();
    let mut why = ChainMatch::AnyServerName;
    if !server_name.is_empty() {
        bucket = with_name(server_name);
        why = ChainMatch::ServerName(server_name.to_owned());
        if bucket.is_empty() {
            let mut pos = server_name
                .get(1..)
                .and_then(|s| s.find('.'))
                .map(|p| p + 1);
            while let Some(p) = pos {
                if p + 1 >= server_name.len() {
                    break;
                }
                let wildcard = format!("*{}", &server_name[p..]);
                bucket = with_name(&wildcard);
                if !bucket.is_empty() {
                    why = ChainMatch::Wildcard(wildcard);
                    break;
                }
                pos = server_name[p + 1..].find('.').map(|q| q + p + 1);
            }
        }
    }
    if bucket.is_empty() {
        why = ChainMatch::AnyServerName;
        bucket = candidates
            .iter()
            .filter(|(_, c)| names(c).is_empty())
            .copied()
            .collect();
    }
    let proto = |c: &listener::FilterChain| {
        fcm(c)
            .map(|m| m.transport_protocol.clone())
            .unwrap_or_default()
    };
    let mut found: Vec<_> = bucket
        .iter()
        .filter(|(_, c)| proto(c) == transport)
        .collect();
    if found.is_empty() {
        found = bucket.iter().filter(|(_, c)| proto(c).is_empty()).collect();
    }
    match found.as_slice() {
        [] => Ok(l
            .default_filter_chain
            .as_ref()
            .map(|c| (c, None, ChainMatch::Default))),
        [(i, c)] => Ok(Some((c, Some(*i), why))),
        _ => rejected("two filter chains with the same matching rules"),
    }
}

pub(super) fn fcm(c: &listener::FilterChain) -> Option<&listener::FilterChainMatch> {
    c.filter_chain_match.as_ref()
}

/// Refuses the filter chain match criteria the oracle does not evaluate.
pub(super) fn check_chain_match(m: &listener::FilterChainMatch) -> Result<()> {
    if !m.prefix_ranges.is_empty()
        || !m.address_suffix.is_empty()
        || m.suffix_len.is_some()
        || !m.direct_source_prefix_ranges.is_empty()
        || m.source_type != 0
        || !m.source_prefix_ranges.is_empty()
        || !m.source_ports.is_empty()
        || !m.application_protocols.is_empty()
    {
        return unsupported("filter chain matches on addresses, source or application protocols");
    }
    Ok(())
}
