//! The object store: every object as JSON per resource, one increasing `resourceVersion`
//! across all kinds, a bounded event history per resource for watches, and the write rules
//! (create, replace, patch, apply, delete, the `status` subresource, `generation`).
//!
//! Objects are `imbl` ordered maps keyed by (namespace, name), so a list snapshot costs O(1)
//! and a `continue` token reads the same snapshot as its first page. Nothing is persisted.
//! There is no admission, no defaulting beyond the server-owned metadata (and a Namespace's
//! `status.phase: Active`), and no managed-fields bookkeeping: server-side apply is a JSON
//! merge of the applied configuration onto the stored object.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::resources::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};

/// (namespace, name); the namespace is empty for cluster-scoped objects.
pub(crate) type Key = (String, String);
/// One resource's objects at one moment.
pub(crate) type Objects = OrdMap<Key, Arc<Value>>;

/// List snapshots kept for `continue` tokens.
const PAGES_KEPT: usize = 64;

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches replay it.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) kind: EventType,
    /// The object after the change (for a delete, the last state with the delete's version).
    pub(crate) object: Arc<Value>,
    /// The object before the change, so a filtered watch can tell an object leaving its
    /// selector (sent as DELETED) from one entering it (sent as ADDED).
    pub(crate) previous: Option<Arc<Value>>,
}

struct Table {
    def: Arc<ResourceDef>,
    objects: Objects,
    history: VecDeque<Arc<Event>>,
    /// The newest version whose event is no longer kept: a watch from an older version
    /// gets 410 Expired.
    compacted: u64,
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Main,
    Status,
}

/// The patch types the server accepts.
#[derive(Clone, Debug)]
pub(crate) enum Patch {
    /// RFC 7386 (`application/merge-patch+json`); strategic merge patches are read as this.
    Merge(Value),
    /// RFC 6902 (`application/json-patch+json`).
    Json(Value),
    /// Server-side apply (`application/apply-patch+yaml`), merged onto the stored object.
    Apply(Value),
}

/// Who writes, and whether for real.
#[derive(Clone, Debug, Default)]
pub(crate) struct Writer {
    /// `dryRun=All`: check and answer, store nothing.
    pub(crate) dry_run: bool,
    /// The field manager recorded in `managedFields` (`fieldManager`, else the user agent's
    /// first word), if managed fields are kept.
    pub(crate) manager: Option<String>,
    /// Server-side apply (`operation: Apply`) rather than `Update`.
    pub(crate) apply: bool,
}

/// `DeleteOptions.preconditions`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Preconditions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
}

/// The result of a delete.
pub(crate) enum Deleted {
    /// The object is gone.
    Gone(Arc<Value>),
    /// The object has finalizers: it now carries a `deletionTimestamp` and stays.
    Pending(Arc<Value>),
}

/// Parameters of a list.
#[derive(Clone, Debug, Default)]
pub(crate) struct ListQuery {
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
    pub(crate) resource_version: Option<String>,
    pub(crate) version_match: Option<String>,
}

/// One page of a list.
pub(crate) struct ListPage {
    pub(crate) resource_version: u64,
    pub(crate) items: Vec<Arc<Value>>,
    pub(crate) continue_token: Option<String>,
    pub(crate) remaining: Option<usize>,
}

/// Everything the server holds, behind one lock (held only for in-memory work).
pub(crate) struct State {
    rv: u64,
    tables: Vec<Table>,
    history_limit: usize,
    pages: VecDeque<(usize, u64, Objects)>,
    serial: u64,
    now: Option<jiff::Timestamp>,
    managed_fields: bool,
}

/// The parts of an object `generation` counts: everything but metadata and status.
fn spec_of(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let root = obj.as_object_mut().expect("objects are JSON objects");
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("just made an object")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn has_finalizers(obj: &Value) -> bool {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// The `fieldsV1` shape of a value: every object key as `f:KEY` (lists are leaves).
fn field_set(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (format!("f:{k}"), field_set(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// Light name validation: a DNS subdomain (lower-case alphanumerics, `-` and `.`).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// `continue` tokens: `RV.HEX(namespace/name)` of the last item sent.
fn encode_continue(rv: u64, key: &Key) -> String {
    format!("{rv}.{}", hex(&format!("{}/{}", key.0, key.1)))
}

fn decode_continue(token: &str) -> Option<(u64, Key)> {
    let (rv, key) = token.split_once('.')?;
    let key = unhex(key)?;
    let (ns, name) = key.split_once('/')?;
    Some((rv.parse().ok()?, (ns.to_owned(), name.to_owned())))
}

impl State {
    pub(crate) fn new(defs: Vec<ResourceDef>, history_limit: usize) -> Self {
        let tables = defs
            .into_iter()
            .map(|def| Table {
                def: Arc::new(def),
                objects: OrdMap::new(),
                history: VecDeque::new(),
                compacted: 0,
            })
            .collect();
        Self {
            rv: 0,
            tables,
            history_limit: history_limit.max(1),
            pages: VecDeque::new(),
            serial: 0,
            now: None,
            managed_fields: true,
        }
    }

    /// The newest resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    pub(crate) fn defs(&self) -> Vec<ResourceDef> {
        self.tables.iter().map(|t| (*t.def).clone()).collect()
    }

    pub(crate) fn def(&self, id: usize) -> &Arc<ResourceDef> {
        &self.tables[id].def
    }

    /// The resource served at `group/version/plural`.
    pub(crate) fn find(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.tables.iter().position(|t| {
            t.def.group == group
                && t.def.plural == plural
                && t.def.versions.iter().any(|v| v == version)
        })
    }

    /// The resource of `apiVersion` and `kind`.
    pub(crate) fn find_kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.tables.iter().position(|t| {
            t.def.group == group
                && t.def.kind == kind
                && t.def.versions.iter().any(|v| v == version)
        })
    }

    /// Whether writes record their manager in `managedFields` (on by default, as in a real
    /// cluster, so a client's memory with and without them can be compared).
    pub(crate) fn set_managed_fields(&mut self, on: bool) {
        self.managed_fields = on;
    }

    /// Fixes the clock (`None`: the system clock) used for timestamps.
    pub(crate) fn set_time(&mut self, now: Option<jiff::Timestamp>) {
        self.now = now;
    }

    fn now(&self) -> String {
        self.now
            .unwrap_or_else(jiff::Timestamp::now)
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn uid(&mut self) -> String {
        let n = self.next_serial();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n >> 32,
            (n >> 16) & 0xffff,
            0,
            0,
            n
        )
    }

    /// A five-character suffix for `generateName`, from the alphabet the real server uses.
    fn suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        let mut n = self.next_serial().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7;
        (0..5)
            .map(|_| {
                let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                n /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    fn key(&self, id: usize, ns: Option<&str>, name: &str) -> Key {
        let ns = if self.tables[id].def.namespaced {
            ns.unwrap_or_default()
        } else {
            ""
        };
        (ns.to_owned(), name.to_owned())
    }

    /// Records a change: bumps the version, stores or removes the object, appends the event.
    fn commit(&mut self, id: usize, key: Key, mut object: Value, kind: EventType) -> Arc<Value> {
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let object = Arc::new(object);
        let table = &mut self.tables[id];
        let previous = if kind == EventType::Deleted {
            table.objects.remove(&key)
        } else {
            table.objects.insert(key, object.clone())
        };
        table.history.push_back(Arc::new(Event {
            rv: self.rv,
            kind,
            object: object.clone(),
            previous,
        }));
        while table.history.len() > self.history_limit {
            if let Some(old) = table.history.pop_front() {
                table.compacted = old.rv;
            }
        }
        object
    }

    /// Forgets every kept event and list snapshot: a watch or `continue` from any version
    /// before now gets 410 Expired.
    pub(crate) fn forget_history(&mut self) {
        for t in &mut self.tables {
            t.history.clear();
            t.compacted = self.rv;
        }
        self.pages.clear();
    }

    pub(crate) fn get(
        &self,
        id: usize,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let key = self.key(id, ns, name);
        self.tables[id]
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&self.tables[id].def, name))
    }

    /// Every object of a resource now, with the version it was taken at.
    pub(crate) fn snapshot(&self, id: usize) -> (Objects, u64) {
        (self.tables[id].objects.clone(), self.rv)
    }

    /// Up to `max` events of resource `id` after version `pos`, and the version the reader
    /// has then seen everything up to; `Err` when events after `pos` are no longer kept.
    pub(crate) fn events_after(
        &self,
        id: usize,
        pos: u64,
        max: usize,
    ) -> Result<(Vec<Arc<Event>>, u64), u64> {
        let table = &self.tables[id];
        if pos < table.compacted {
            return Err(table.compacted);
        }
        let start = table.history.partition_point(|e| e.rv <= pos);
        let events: Vec<Arc<Event>> = table
            .history
            .iter()
            .skip(start)
            .take(max)
            .cloned()
            .collect();
        let seen = if start + events.len() == table.history.len() {
            self.rv.max(pos)
        } else {
            events.last().map_or(pos, |e| e.rv)
        };
        Ok((events, seen))
    }

    /// Records `w`'s manager in `obj`'s `managedFields`, replacing its earlier entry for the
    /// same operation and subresource. Only the shape of a real entry: no ownership, no
    /// conflicts.
    fn manage(&self, id: usize, obj: &mut Value, part: Part, w: &Writer) {
        let Some(manager) = w.manager.as_deref().filter(|_| self.managed_fields) else {
            return;
        };
        let fields = match part {
            Part::Main => {
                let mut fields = obj.clone();
                let root = fields.as_object_mut().expect("objects");
                for k in ["apiVersion", "kind", "status"] {
                    root.remove(k);
                }
                if let Some(meta) = root.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.retain(|k, _| k == "labels" || k == "annotations" || k == "finalizers");
                    if meta.is_empty() {
                        root.remove("metadata");
                    }
                }
                field_set(&fields)
            }
            Part::Status => json!({"f:status": field_set(obj.get("status").unwrap_or(&json!({})))}),
        };
        let operation = if w.apply { "Apply" } else { "Update" };
        let mut entry = json!({
            "manager": manager,
            "operation": operation,
            "apiVersion": self.tables[id].def.api_version(),
            "time": self.now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        });
        let subresource = (part == Part::Status).then_some("status");
        if let Some(sub) = subresource {
            entry["subresource"] = json!(sub);
        }
        let meta = meta_mut(obj);
        let mut entries = meta
            .get("managedFields")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        entries.retain(|e| {
            !(e["manager"] == manager
                && e["operation"] == operation
                && e.get("subresource").and_then(Value::as_str) == subresource)
        });
        entries.push(entry);
        meta.insert("managedFields".into(), Value::Array(entries));
    }

    /// The object as written by a client, checked and with server-owned metadata reset.
    fn admit_new(
        &mut self,
        id: usize,
        ns: Option<&str>,
        mut obj: Value,
    ) -> Result<(Key, Value), ApiError> {
        let def = self.tables[id].def.clone();
        if !obj.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} must be a JSON object",
                def.kind
            )));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != def.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match {}",
                def.kind
            )));
        }
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str)
            && !def.versions.iter().any(|v| def.api_version_of(v) == av)
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                def.api_version()
            )));
        }
        let root = obj.as_object_mut().expect("checked");
        root.insert("apiVersion".into(), json!(def.api_version()));
        root.insert("kind".into(), json!(def.kind));
        let mut name = meta_str(&obj, "name").unwrap_or_default().to_owned();
        if name.is_empty() {
            match meta_str(&obj, "generateName")
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
            {
                Some(prefix) => name = format!("{prefix}{}", self.suffix()),
                None => {
                    return Err(ApiError::invalid(
                        &def,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        }
        if !valid_name(&name) {
            return Err(ApiError::invalid(
                &def,
                &name,
                "metadata.name",
                "Invalid value: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
            ));
        }
        if meta_str(&obj, "resourceVersion").is_some_and(|v| !v.is_empty()) {
            return Err(ApiError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let body_ns = meta_str(&obj, "namespace")
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let namespace = if def.namespaced {
            let ns = match (ns, body_ns.as_deref()) {
                (Some(path), Some(body)) if path != body => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (Some(path), _) => path.to_owned(),
                (None, Some(body)) => body.to_owned(),
                (None, None) => {
                    return Err(ApiError::bad_request(
                        "a namespace is required to create this object",
                    ));
                }
            };
            Some(ns)
        } else {
            None
        };
        let (uid, now) = (self.uid(), self.now());
        let meta = meta_mut(&mut obj);
        meta.insert("name".into(), json!(name));
        match &namespace {
            Some(ns) => meta.insert("namespace".into(), json!(ns)),
            None => meta.remove("namespace"),
        };
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.insert("generation".into(), json!(1));
        for server_owned in [
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(server_owned);
        }
        if def.status {
            let root = obj.as_object_mut().expect("checked");
            root.remove("status");
            if def.group.is_empty() && def.kind == "Namespace" {
                root.insert("status".into(), json!({"phase": "Active"}));
            }
        }
        Ok(((namespace.unwrap_or_default(), name), obj))
    }

    /// POST: a new object (409 AlreadyExists if the name is taken).
    pub(crate) fn create(
        &mut self,
        id: usize,
        ns: Option<&str>,
        body: Value,
        w: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        let (key, obj) = self.admit_new(id, ns, body)?;
        if self.tables[id].objects.contains_key(&key) {
            return Err(ApiError::already_exists(&self.tables[id].def, &key.1));
        }
        let mut obj = obj;
        self.manage(id, &mut obj, Part::Main, w);
        if w.dry_run {
            return Ok(Arc::new(obj));
        }
        Ok(self.commit(id, key, obj, EventType::Added))
    }

    /// Checks the name, namespace and `resourceVersion` precondition of a replacement.
    fn check_replacement(
        &self,
        id: usize,
        current: &Value,
        body: &Value,
        name: &str,
    ) -> Result<(), ApiError> {
        let def = &self.tables[id].def;
        if !body.is_object() {
            return Err(ApiError::bad_request(format!(
                "the body of a {} must be a JSON object",
                def.kind
            )));
        }
        if let Some(n) = meta_str(body, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if def.namespaced
            && let Some(n) = meta_str(body, "namespace").filter(|n| !n.is_empty())
            && Some(n) != meta_str(current, "namespace")
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(rv) = meta_str(body, "resourceVersion").filter(|v| !v.is_empty())
            && Some(rv) != meta_str(current, "resourceVersion")
        {
            return Err(ApiError::stale(def, name));
        }
        Ok(())
    }

    /// The new state of an object from the client's body and the stored object: `part`
    /// decides whether the body's spec or its status is taken.
    fn replaced(&self, id: usize, current: &Value, body: Value, part: Part) -> Value {
        let def = &self.tables[id].def;
        let mut new = match part {
            Part::Main => {
                let mut new = body;
                if def.status {
                    let root = new.as_object_mut().expect("checked");
                    match current.get("status") {
                        Some(s) => root.insert("status".into(), s.clone()),
                        None => root.remove("status"),
                    };
                }
                let keep = current
                    .get("metadata")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let meta = meta_mut(&mut new);
                for owned in [
                    "name",
                    "namespace",
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "resourceVersion",
                    "managedFields",
                ] {
                    match keep.get(owned) {
                        Some(v) => meta.insert(owned.into(), v.clone()),
                        None => meta.remove(owned),
                    };
                }
                new
            }
            Part::Status => {
                let mut new = current.clone();
                let root = new.as_object_mut().expect("stored objects are objects");
                match body.get("status") {
                    Some(s) => root.insert("status".into(), s.clone()),
                    None => root.remove("status"),
                };
                new
            }
        };
        let root = new.as_object_mut().expect("objects");
        root.insert("apiVersion".into(), json!(def.api_version()));
        root.insert("kind".into(), json!(def.kind));
        let generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let bumped = if spec_of(current) != spec_of(&new) {
            generation + 1
        } else {
            generation
        };
        meta_mut(&mut new).insert("generation".into(), json!(bumped));
        new
    }

    /// Stores `new` in place of `current`: nothing if they are equal, a delete if the
    /// object was being deleted and its last finalizer is gone.
    fn finish_update(
        &mut self,
        id: usize,
        key: Key,
        current: &Arc<Value>,
        mut new: Value,
        part: Part,
        w: &Writer,
    ) -> Arc<Value> {
        if new == **current {
            return current.clone();
        }
        self.manage(id, &mut new, part, w);
        if w.dry_run {
            return Arc::new(new);
        }
        let deleting = new
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        if deleting && !has_finalizers(&new) {
            return self.commit(id, key, new, EventType::Deleted);
        }
        self.commit(id, key, new, EventType::Modified)
    }

    /// PUT: replaces the object (or its status).
    pub(crate) fn update(
        &mut self,
        id: usize,
        ns: Option<&str>,
        name: &str,
        body: Value,
        part: Part,
        w: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        let current = self.get(id, ns, name)?;
        self.check_replacement(id, &current, &body, name)?;
        let new = self.replaced(id, &current, body, part);
        let key = self.key(id, ns, name);
        Ok(self.finish_update(id, key, &current, new, part, w))
    }

    /// PATCH: merge, JSON or apply patch on the object (or its status). An apply to a
    /// missing object creates it.
    pub(crate) fn patch(
        &mut self,
        id: usize,
        ns: Option<&str>,
        name: &str,
        patch: Patch,
        part: Part,
        w: &Writer,
    ) -> Result<Arc<Value>, ApiError> {
        let def = self.tables[id].def.clone();
        let current = match (self.get(id, ns, name), &patch, part) {
            (Ok(c), _, _) => c,
            (Err(_), Patch::Apply(applied), Part::Main) => {
                if meta_str(applied, "name").is_some_and(|n| n != name) {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({}) does not match the name on the URL ({name})",
                        meta_str(applied, "name").unwrap_or_default()
                    )));
                }
                let mut body = applied.clone();
                if body.is_object() {
                    meta_mut(&mut body).insert("name".into(), json!(name));
                }
                return self.create(id, ns, body, w);
            }
            (Err(e), _, _) => return Err(e),
        };
        let mut doc = (*current).clone();
        match patch {
            Patch::Merge(p) | Patch::Apply(p) => {
                if !p.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                json_patch::merge(&mut doc, &p);
            }
            Patch::Json(p) => {
                let ops: json_patch::Patch = serde_json::from_value(p).map_err(|e| {
                    ApiError::bad_request(format!("the JSON patch is malformed: {e}"))
                })?;
                json_patch::patch(&mut doc, &ops)
                    .map_err(|e| ApiError::invalid(&def, name, "patch", &e.to_string()))?;
            }
        }
        if !doc.is_object() {
            return Err(ApiError::invalid(
                &def,
                name,
                "patch",
                "the patched object is not a JSON object",
            ));
        }
        self.check_replacement(id, &current, &doc, name)?;
        let new = self.replaced(id, &current, doc, part);
        let key = self.key(id, ns, name);
        Ok(self.finish_update(id, key, &current, new, part, w))
    }

    /// DELETE of one object.
    pub(crate) fn delete(
        &mut self,
        id: usize,
        ns: Option<&str>,
        name: &str,
        pre: &Preconditions,
        w: &Writer,
    ) -> Result<Deleted, ApiError> {
        let current = self.get(id, ns, name)?;
        let def = self.tables[id].def.clone();
        if let Some(uid) = &pre.uid
            && Some(uid.as_str()) != meta_str(&current, "uid")
        {
            let why = format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&current, "uid").unwrap_or_default()
            );
            return Err(ApiError::conflict(&def, name, &why));
        }
        if let Some(rv) = &pre.resource_version
            && Some(rv.as_str()) != meta_str(&current, "resourceVersion")
        {
            let why = format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta_str(&current, "resourceVersion").unwrap_or_default()
            );
            return Err(ApiError::conflict(&def, name, &why));
        }
        let key = self.key(id, ns, name);
        if has_finalizers(&current) {
            if current.pointer("/metadata/deletionTimestamp").is_some() || w.dry_run {
                return Ok(Deleted::Pending(current));
            }
            let mut marked = (*current).clone();
            let now = self.now();
            let meta = meta_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(now));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            return Ok(Deleted::Pending(self.commit(
                id,
                key,
                marked,
                EventType::Modified,
            )));
        }
        if w.dry_run {
            return Ok(Deleted::Gone(current));
        }
        if def.group.is_empty() && def.kind == "Namespace" {
            self.delete_namespace_contents(name);
        }
        Ok(Deleted::Gone(self.commit(
            id,
            key,
            (*current).clone(),
            EventType::Deleted,
        )))
    }

    /// Deletes every namespaced object in `ns` (what the namespace controller does).
    fn delete_namespace_contents(&mut self, ns: &str) {
        for id in 0..self.tables.len() {
            if !self.tables[id].def.namespaced {
                continue;
            }
            let keys: Vec<(Key, Arc<Value>)> = self.tables[id]
                .objects
                .range((
                    Bound::Included((ns.to_owned(), String::new())),
                    Bound::Unbounded,
                ))
                .take_while(|(k, _)| k.0 == ns)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            for (key, obj) in keys {
                self.commit(id, key, (*obj).clone(), EventType::Deleted);
            }
        }
    }

    /// GET of a collection: one page of matching objects.
    pub(crate) fn list(
        &mut self,
        id: usize,
        ns: Option<&str>,
        q: &ListQuery,
    ) -> Result<ListPage, ApiError> {
        let (rv, objects, after) = match q.continue_token.as_deref() {
            Some(token) => {
                let (rv, after) = decode_continue(token)
                    .ok_or_else(|| ApiError::bad_request("invalid continue token"))?;
                let page = self
                    .pages
                    .iter()
                    .find(|(pid, prv, _)| *pid == id && *prv == rv);
                match page {
                    Some((_, _, objects)) => (rv, objects.clone(), Some(after)),
                    None => {
                        return Err(ApiError::expired(
                            "The provided continue parameter is too old to display a consistent list result. \
                             You can start a new list without the continue parameter.",
                        ));
                    }
                }
            }
            None => {
                let asked = match q.resource_version.as_deref() {
                    None | Some("") => None,
                    Some(v) => Some(v.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid resource version: {v}"))
                    })?),
                };
                match (asked, q.version_match.as_deref()) {
                    (Some(v), _) if v > self.rv => return Err(ApiError::too_new(v)),
                    (Some(v), Some("Exact")) if v != self.rv && v != 0 => {
                        match self
                            .pages
                            .iter()
                            .find(|(pid, prv, _)| *pid == id && *prv == v)
                        {
                            Some((_, _, objects)) => (v, objects.clone(), None),
                            None => {
                                return Err(ApiError::expired(format!(
                                    "too old resource version: {v} ({})",
                                    self.rv
                                )));
                            }
                        }
                    }
                    (None, Some(m)) => {
                        return Err(ApiError::bad_request(format!(
                            "resourceVersionMatch {m} is forbidden unless resourceVersion is provided"
                        )));
                    }
                    _ => (self.rv, self.tables[id].objects.clone(), None),
                }
            }
        };
        let lower = match (&after, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) if self.tables[id].def.namespaced => {
                Bound::Included((ns.to_owned(), String::new()))
            }
            (None, _) => Bound::Unbounded,
        };
        let scoped = ns.filter(|_| self.tables[id].def.namespaced);
        let mut items = Vec::new();
        let mut last = None;
        let mut remaining = 0;
        for (key, obj) in objects.range((lower, Bound::Unbounded)) {
            if scoped.is_some_and(|ns| key.0 != ns) {
                break;
            }
            if !q.labels.matches(obj) || !q.fields.matches(obj) {
                continue;
            }
            if q.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push(obj.clone());
            last = Some(key.clone());
        }
        let continue_token = if remaining > 0 {
            last.map(|k| encode_continue(rv, &k))
        } else {
            None
        };
        if continue_token.is_some()
            && !self
                .pages
                .iter()
                .any(|(pid, prv, _)| *pid == id && *prv == rv)
        {
            self.pages.push_back((id, rv, objects));
            if self.pages.len() > PAGES_KEPT {
                self.pages.pop_front();
            }
        }
        Ok(ListPage {
            resource_version: rv,
            items,
            continue_token,
            remaining: (remaining > 0).then_some(remaining),
        })
    }

    /// Stores `obj` as given (status included; `uid` and `creationTimestamp` kept when
    /// present), creating or replacing it: the in-process way to seed state.
    pub(crate) fn put(&mut self, id: usize, obj: Value) -> Result<Arc<Value>, ApiError> {
        let def = self.tables[id].def.clone();
        let ns = meta_str(&obj, "namespace").map(str::to_owned);
        let name = meta_str(&obj, "name").unwrap_or_default().to_owned();
        let key = self.key(id, ns.as_deref(), &name);
        let status = obj.get("status").cloned();
        let mut new = match self.tables[id].objects.get(&key).cloned() {
            Some(current) => {
                let mut body = obj.clone();
                meta_mut(&mut body).remove("resourceVersion");
                let mut new = self.replaced(id, &current, body, Part::Main);
                if let Some(ts) = meta_str(&obj, "creationTimestamp") {
                    meta_mut(&mut new).insert("creationTimestamp".into(), json!(ts));
                }
                new
            }
            None => {
                let mut body = obj.clone();
                meta_mut(&mut body).remove("resourceVersion");
                let (_, mut new) = self.admit_new(id, ns.as_deref(), body)?;
                for keep in ["uid", "creationTimestamp"] {
                    if let Some(v) = meta_str(&obj, keep) {
                        meta_mut(&mut new).insert(keep.into(), json!(v));
                    }
                }
                new
            }
        };
        if def.status {
            let root = new.as_object_mut().expect("objects");
            match status {
                Some(s) => root.insert("status".into(), s),
                None => root.remove("status"),
            };
        }
        let kind = if self.tables[id].objects.contains_key(&key) {
            EventType::Modified
        } else {
            EventType::Added
        };
        Ok(self.commit(id, key, new, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (State, usize, usize) {
        let s = State::new(ResourceDef::builtin(), 100);
        let ing = s.find("networking.k8s.io", "v1", "ingresses").unwrap();
        let cm = s.find("", "v1", "configmaps").unwrap();
        (s, ing, cm)
    }

    fn ingress(name: &str) -> Value {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
               "spec": {"rules": [{"host": "a.example"}]}, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}})
    }

    #[test]
    fn generation_counts_spec_changes_only() {
        let (mut s, ing, _) = state();
        let created = s
            .create(ing, Some("default"), ingress("web"), &Writer::default())
            .unwrap();
        assert_eq!(created["metadata"]["generation"], 1);
        assert!(
            created.get("status").is_none(),
            "status is dropped on create"
        );
        let labelled = s
            .patch(
                ing,
                Some("default"),
                "web",
                Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
                Part::Main,
                &Writer::default(),
            )
            .unwrap();
        assert_eq!(labelled["metadata"]["generation"], 1);
        let status = s
            .patch(
                ing,
                Some("default"),
                "web",
                Patch::Merge(json!({"status": {"x": 1}})),
                Part::Status,
                &Writer::default(),
            )
            .unwrap();
        assert_eq!(status["metadata"]["generation"], 1);
        assert_eq!(status["status"]["x"], 1);
        let spec = s
            .patch(
                ing,
                Some("default"),
                "web",
                Patch::Merge(json!({"spec": {"rules": []}, "status": null})),
                Part::Main,
                &Writer::default(),
            )
            .unwrap();
        assert_eq!(spec["metadata"]["generation"], 2);
        assert_eq!(spec["status"]["x"], 1, "the main resource ignores status");
        let rv = s.resource_version();
        let same = s
            .update(
                ing,
                Some("default"),
                "web",
                (*spec).clone(),
                Part::Main,
                &Writer::default(),
            )
            .unwrap();
        assert_eq!(
            s.resource_version(),
            rv,
            "an update that changes nothing is not a write"
        );
        assert_eq!(same, spec);
    }

    #[test]
    fn conflicts_and_preconditions() {
        let (mut s, _, cm) = state();
        let body = json!({"metadata": {"name": "c"}, "data": {"k": "v"}});
        let v1 = s
            .create(cm, Some("ns"), body.clone(), &Writer::default())
            .unwrap();
        assert_eq!(
            s.create(cm, Some("ns"), body.clone(), &Writer::default())
                .unwrap_err()
                .reason,
            "AlreadyExists"
        );
        let mut next = (*v1).clone();
        next["data"]["k"] = json!("w");
        s.update(
            cm,
            Some("ns"),
            "c",
            next.clone(),
            Part::Main,
            &Writer::default(),
        )
        .unwrap();
        let err = s
            .update(cm, Some("ns"), "c", next, Part::Main, &Writer::default())
            .unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        let pre = Preconditions {
            uid: Some("nope".into()),
            resource_version: None,
        };
        assert_eq!(
            s.delete(cm, Some("ns"), "c", &pre, &Writer::default())
                .err()
                .unwrap()
                .code,
            409
        );
        assert!(matches!(
            s.delete(
                cm,
                Some("ns"),
                "c",
                &Preconditions::default(),
                &Writer::default()
            ),
            Ok(Deleted::Gone(_))
        ));
        assert_eq!(s.get(cm, Some("ns"), "c").unwrap_err().code, 404);
    }

    #[test]
    fn finalizers_hold_a_delete_until_removed() {
        let (mut s, _, cm) = state();
        s.create(
            cm,
            Some("ns"),
            json!({"metadata": {"name": "c", "finalizers": ["x/y"]}}),
            &Writer::default(),
        )
        .unwrap();
        let Ok(Deleted::Pending(obj)) = s.delete(
            cm,
            Some("ns"),
            "c",
            &Preconditions::default(),
            &Writer::default(),
        ) else {
            panic!()
        };
        assert!(obj["metadata"]["deletionTimestamp"].is_string());
        s.patch(
            cm,
            Some("ns"),
            "c",
            Patch::Merge(json!({"metadata": {"finalizers": null}})),
            Part::Main,
            &Writer::default(),
        )
        .unwrap();
        assert_eq!(s.get(cm, Some("ns"), "c").unwrap_err().code, 404);
    }

    #[test]
    fn pages_read_one_snapshot() {
        let (mut s, _, cm) = state();
        for n in ["a", "b", "c"] {
            s.create(
                cm,
                Some("ns"),
                json!({"metadata": {"name": n}}),
                &Writer::default(),
            )
            .unwrap();
        }
        let q = ListQuery {
            limit: Some(2),
            ..Default::default()
        };
        let first = s.list(cm, None, &q).unwrap();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.remaining, Some(1));
        s.delete(
            cm,
            Some("ns"),
            "c",
            &Preconditions::default(),
            &Writer::default(),
        )
        .ok();
        let q2 = ListQuery {
            continue_token: first.continue_token.clone(),
            ..q.clone()
        };
        let second = s.list(cm, None, &q2).unwrap();
        assert_eq!(
            second.items[0]["metadata"]["name"], "c",
            "the page reads the first page's snapshot"
        );
        assert_eq!(second.resource_version, first.resource_version);
        assert!(second.continue_token.is_none());
        s.forget_history();
        assert_eq!(s.list(cm, None, &q2).err().unwrap().code, 410);
    }

    #[test]
    fn history_is_bounded_and_expires() {
        let mut s = State::new(ResourceDef::builtin(), 2);
        let cm = s.find("", "v1", "configmaps").unwrap();
        for n in ["a", "b", "c"] {
            s.create(
                cm,
                Some("ns"),
                json!({"metadata": {"name": n}}),
                &Writer::default(),
            )
            .unwrap();
        }
        assert_eq!(s.events_after(cm, 0, 10).unwrap_err(), 1);
        let (events, seen) = s.events_after(cm, 1, 10).unwrap();
        assert_eq!(events.iter().map(|e| e.rv).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(seen, 3);
    }
}
