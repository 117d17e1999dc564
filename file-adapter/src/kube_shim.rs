//! TEMPORARY shim until xdsc-kube lands.
#![allow(missing_docs, unreachable_pub, dead_code)]
use serde_json::Value;
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub take_unclassed_ingress_without_classes: bool,
}
#[derive(Clone, Debug, Default)]
pub struct Inputs(std::collections::BTreeMap<ObjectRef, Option<String>>);
impl Inputs {
    pub fn insert(&mut self, k: KubeObject, origin: Option<String>) {
        self.0.insert(k.id(), origin);
    }
}
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}
pub struct KubeObject(ObjectRef);
impl KubeObject {
    pub fn from_value(_v: Value) -> Result<KubeObject, ParseError> {
        Err(ParseError)
    }
    pub fn id(&self) -> ObjectRef {
        self.0.clone()
    }
}
pub struct ParseError;
impl ParseError {
    pub fn field(&self) -> Option<String> {
        None
    }
    pub fn message(&self) -> String {
        "unsupported".into()
    }
}
pub enum Severity {
    Error,
    Warning,
}
pub struct Diagnostic {
    pub severity: Severity,
    pub object: ObjectRef,
    pub origin: Option<String>,
    pub field: String,
    pub message: String,
}
pub struct Translation {
    pub objects: Vec<xdsc_core::model::Object>,
    pub diagnostics: Vec<Diagnostic>,
}
pub fn translate(_i: &Inputs, _o: &Options) -> Translation {
    Translation {
        objects: vec![],
        diagnostics: vec![],
    }
}
