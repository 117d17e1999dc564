//! What every model object uses: [`Source`] (where it came from), [`Duration`] (as written
//! in documents: `250ms`, `5s`), the [`Backend`] of TCP and HTTP routes, and the serde
//! helpers of optional fields.
//!
//! Not here: any one kind of object (see the sibling modules).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a model object came from: the object a user wrote, so that a validation error, a
/// NACK or a routing question can be traced back to it.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The kind of the source object, e.g. `Ingress`, `HTTPRoute` or a model kind.
    pub kind: String,
    /// The namespace of the source object, for namespaced Kubernetes objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name of the source object.
    pub name: String,
    /// Where the source object was read: a file path (with line), or a cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        f.write_str(&self.name)?;
        if let Some(origin) = &self.origin {
            write!(f, " ({origin})")?;
        }
        Ok(())
    }
}

/// A duration written as a number with a unit: `250ms`, `5s`, `1.5s`, `2m`, `1h`. Millisecond
/// precision.
///
/// ```
/// use xdsc_core::model::Duration;
/// let d: Duration = "1.5s".parse().unwrap();
/// assert_eq!(d.as_millis(), 1500);
/// assert_eq!(d.to_string(), "1500ms");
/// assert!("5".parse::<Duration>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(u64);

impl Duration {
    /// A duration of that many milliseconds.
    pub const fn from_millis(ms: u64) -> Duration {
        Duration(ms)
    }

    /// A duration of that many seconds.
    pub const fn from_secs(s: u64) -> Duration {
        Duration(s.saturating_mul(1000))
    }

    /// The duration in milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}s", self.0 / 1000)
        } else {
            write!(f, "{}ms", self.0)
        }
    }
}

/// The error of parsing a [`Duration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected a number with a unit (ms, s, m, h), such as 250ms or 5s")]
pub struct ParseDurationError(String);

impl std::str::FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurationError(s.to_owned());
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, unit) = t.split_at(split);
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(err()),
        };
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(err());
        }
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if frac.contains('.') {
            return Err(err());
        }
        let int: u64 = int.parse().map_err(|_| err())?;
        let mut ms = int.checked_mul(scale).ok_or_else(err)?;
        // Fractions: at most millisecond precision.
        let mut unit_div = scale;
        for digit in frac.bytes() {
            unit_div /= 10;
            let d = u64::from(digit - b'0');
            if unit_div == 0 {
                if d != 0 {
                    return Err(err());
                }
                continue;
            }
            ms = ms.checked_add(d * unit_div).ok_or_else(err)?;
        }
        // Envoy durations are bounded by protobuf's Duration (~10,000 years); keep far below.
        if ms > 315_576_000_000_000 {
            return Err(err());
        }
        Ok(Duration(ms))
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]+(\\.[0-9]+)?(ms|s|m|h)$",
            "description": "A duration with a unit: 250ms, 5s, 1.5s, 2m, 1h."
        })
    }
}

pub(super) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One cluster behind a route, with its share of the traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    /// The cluster's name.
    pub cluster: String,
    /// The relative weight (default 1). 0 means never.
    #[serde(default = "one")]
    pub weight: u32,
}

pub(super) fn one() -> u32 {
    1
}

impl Backend {
    /// A backend: a cluster and its relative weight.
    ///
    /// ```
    /// let b = xdsc_core::model::Backend::new("web", 3);
    /// assert_eq!((b.cluster.as_str(), b.weight), ("web", 3));
    /// ```
    pub fn new(cluster: impl Into<String>, weight: u32) -> Backend {
        Backend {
            cluster: cluster.into(),
            weight,
        }
    }
}

impl Source {
    /// A source object: its kind, namespace (if any) and name, with no origin.
    ///
    /// ```
    /// let s = xdsc_core::model::Source::new("Service", Some("shop"), "web");
    /// assert_eq!(s.to_string(), "Service shop/web");
    /// ```
    pub fn new(
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Source {
        Source {
            kind: kind.into(),
            namespace: namespace.map(str::to_owned),
            name: name.into(),
            origin: None,
        }
    }
}
