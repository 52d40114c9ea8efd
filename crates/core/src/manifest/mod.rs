//! Reading Catalyst objects from multi-document YAML files and directories, offline.
//!
//! Objects of other kinds are counted and ignored (they are other people's manifests). Every
//! problem is collected, not just the first, so one run shows a user all they must fix.
//! Input too large is refused before it is read; YAML is parsed under [`crate::yaml`]'s budgets.

use crate::schema::{self, SchemaViolation};
use crate::validation::{FieldError, ObjectRef, validate_group, validate_host, validate_vm};
use catalyst_api::{API_VERSION, CatalystHost, CatalystVM, ServiceGroup};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Namespace given to namespaced objects that name none, as kubectl does.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The Catalyst objects found in a set of manifests.
#[derive(Debug, Default, Clone)]
pub struct Manifests {
    pub hosts: Vec<CatalystHost>,
    pub vms: Vec<CatalystVM>,
    pub groups: Vec<ServiceGroup>,
    /// Documents of other kinds, left alone.
    pub ignored: usize,
}

/// Where a document came from: file and 1-based position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub document: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file, self.document)
    }
}

/// Something wrong with the manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "{path}: {size} bytes would take the input past {} bytes (4 MiB), the most one run reads; split the layout",
        crate::yaml::MAX_INPUT_BYTES
    )]
    TooLarge { path: String, size: u64 },
    #[error("{location}: not valid YAML: {message}")]
    Yaml { location: Location, message: String },
    #[error("{location}: {object}: {message}")]
    Decode { location: Location, object: String, message: String },
    #[error("{location}: {error}")]
    Invalid { location: Location, error: FieldError },
    #[error("{location}: {object} is defined twice (first in {first})")]
    Duplicate { location: Location, object: ObjectRef, first: Location },
}

/// Reads every file and directory (recursively: `*.yaml`, `*.yml`, `*.json`) in name order.
pub fn load(paths: &[PathBuf]) -> (Manifests, Vec<ManifestError>) {
    let mut loader = Loader::default();
    let mut read = 0u64;
    for path in paths {
        let files = match files_under(path) {
            Ok(files) => files,
            Err(source) => {
                loader.errors.push(ManifestError::Read { path: path.display().to_string(), source });
                continue;
            }
        };
        for file in files {
            let name = file.display().to_string();
            // The size is checked before the file is read, so a huge file costs nothing.
            let size = match std::fs::metadata(&file) {
                Ok(metadata) => metadata.len(),
                Err(source) => {
                    loader.errors.push(ManifestError::Read { path: name, source });
                    continue;
                }
            };
            if read + size > crate::yaml::MAX_INPUT_BYTES {
                loader.errors.push(ManifestError::TooLarge { path: name, size });
                return (loader.manifests, loader.errors);
            }
            read += size;
            match std::fs::read_to_string(&file) {
                Ok(text) => loader.add_text(&name, &text),
                Err(source) => loader.errors.push(ManifestError::Read { path: name, source }),
            }
        }
    }
    (loader.manifests, loader.errors)
}

/// Parses one multi-document YAML text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> (Manifests, Vec<ManifestError>) {
    let mut loader = Loader::default();
    loader.add_text(file, text);
    (loader.manifests, loader.errors)
}

fn files_under(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            files.extend(files_under(&entry)?);
        } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml" || e == "json") {
            files.push(entry);
        }
    }
    Ok(files)
}

#[derive(Default)]
struct Loader {
    manifests: Manifests,
    errors: Vec<ManifestError>,
    seen: BTreeMap<ObjectRef, Location>,
}

impl Loader {
    fn add_text(&mut self, file: &str, text: &str) {
        match crate::yaml::from_multiple::<Value>(text) {
            Ok(documents) => {
                for (index, value) in documents.into_iter().enumerate() {
                    if !value.is_null() {
                        self.add_value(Location { file: file.to_string(), document: index + 1 }, value);
                    }
                }
            }
            Err(error) => {
                // The parser's first line names where (line, column) and what; the document is
                // counted from the separators before that line.
                let message = crate::yaml::describe(&error);
                let line = error.location().map_or(0, |at| at.line() as usize);
                let separators = text.lines().take(line.saturating_sub(1)).filter(|l| l.starts_with("---")).count();
                let leading = usize::from(text.trim_start().starts_with("---"));
                let document = (1 + separators).saturating_sub(leading).max(1);
                let location = Location { file: file.to_string(), document };
                self.errors.push(ManifestError::Yaml { location, message });
            }
        }
    }

    fn add_value(&mut self, location: Location, value: Value) {
        if value.get("kind").and_then(Value::as_str) == Some("List") {
            for item in value.get("items").and_then(Value::as_array).into_iter().flatten() {
                self.add_value(location.clone(), item.clone());
            }
            return;
        }
        if value.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
            self.manifests.ignored += 1;
            return;
        }
        match value.get("kind").and_then(Value::as_str) {
            Some("CatalystHost") => {
                if let Some(host) = self.decode::<CatalystHost>(&location, value) {
                    self.accept(location, host, validate_host, |m| &mut m.hosts);
                }
            }
            Some("CatalystVM") => {
                if let Some(vm) = self.decode::<CatalystVM>(&location, default_namespace(value)) {
                    self.accept(location, vm, validate_vm, |m| &mut m.vms);
                }
            }
            Some("ServiceGroup") => {
                if let Some(group) = self.decode::<ServiceGroup>(&location, default_namespace(value)) {
                    self.accept(location, group, validate_group, |m| &mut m.groups);
                }
            }
            _ => self.manifests.ignored += 1,
        }
    }

    /// Decodes strictly: undeclared fields are errors, and type errors name the field. Returns
    /// the object when it decodes at all (so its rules are still checked) and whether it was clean.
    fn decode<K>(&mut self, location: &Location, value: Value) -> Option<(K, bool)>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let name = value.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("<no name>");
        let object = match value.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(namespace) => format!("{} {namespace}/{name}", K::kind(&())),
            None => format!("{} {name}", K::kind(&())),
        };
        let mut problems = Vec::new();
        if value.pointer("/metadata/name").and_then(Value::as_str).is_none_or(str::is_empty) {
            problems.push("metadata.name is required".to_string());
        }
        let schema = schema_of(&K::kind(&()));
        let checked = Value::Object(
            value
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k == "spec" || *k == "status")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        // Every schema violation at once, as the API server reports them; one that leaves the
        // object in a shape its rules were not written for keeps the rules unchecked, as there.
        let violations = schema::validate(schema, schema, &checked, "");
        let blocked = violations.iter().any(SchemaViolation::blocks_rules);
        problems.extend(violations.iter().map(ToString::to_string));
        let decoded = if blocked {
            problems.push(schema::RULES_NOT_CHECKED.to_string());
            None
        } else {
            match serde_path_to_error::deserialize::<_, K>(value) {
                Ok(object) => Some(object),
                Err(error) => {
                    problems.push(format!("{}: {}", error.path(), error.inner()));
                    None
                }
            }
        };
        let clean = problems.is_empty();
        for message in problems {
            self.errors.push(ManifestError::Decode { location: location.clone(), object: object.clone(), message });
        }
        decoded.map(|decoded| (decoded, clean))
    }

    fn accept<K>(
        &mut self,
        location: Location,
        (object, clean): (K, bool),
        validate: fn(&K) -> Result<(), Vec<FieldError>>,
        list: fn(&mut Manifests) -> &mut Vec<K>,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let reference = ObjectRef::of(&object);
        if let Some(first) = self.seen.get(&reference) {
            self.errors.push(ManifestError::Duplicate { location, object: reference, first: first.clone() });
            return;
        }
        self.seen.insert(reference, location.clone());
        match validate(&object) {
            Ok(()) if clean => list(&mut self.manifests).push(object),
            Ok(()) => {}
            // Where the schema found problems it has said what its own checks say; of the Rust
            // checks, those of the CEL rules remain, as the API server reports them beside the
            // schema's.
            Err(errors) => self.errors.extend(
                errors
                    .into_iter()
                    .filter(|error| clean || error.cel_rule.is_some())
                    .map(|error| ManifestError::Invalid { location: location.clone(), error }),
            ),
        }
    }
}

/// The structural schema of a Catalyst kind's CRD, generated once for all documents.
fn schema_of(kind: &str) -> &'static Value {
    static SCHEMAS: std::sync::OnceLock<BTreeMap<String, Value>> = std::sync::OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        crate::crd::all()
            .into_iter()
            .map(|(_, crd)| {
                let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
                (crd.spec.names.kind.clone(), serde_json::to_value(schema).expect("a CRD schema serializes"))
            })
            .collect()
    });
    &schemas[kind]
}

/// Gives a namespaced object without a namespace the default one.
fn default_namespace(mut value: Value) -> Value {
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.entry("namespace").or_insert_with(|| Value::String(DEFAULT_NAMESPACE.into()));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: &str = "apiVersion: catalyst.io/v1alpha1
kind: CatalystVM
metadata: {name: a}
spec: {cpu: 4, memory: 8Gi, bootDisk: {containerDisk: {image: img}}}
";

    fn messages(errors: &[ManifestError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reads_catalyst_objects_and_ignores_other_kinds() {
        let text = format!("{VM}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\n---\n# empty\n");
        let (manifests, errors) = parse("a.yaml", &text);
        assert!(errors.is_empty(), "{:?}", messages(&errors));
        assert_eq!(manifests.vms.len(), 1);
        assert_eq!(manifests.ignored, 1);
        assert_eq!(manifests.vms[0].metadata.namespace.as_deref(), Some(DEFAULT_NAMESPACE));
    }

    #[test]
    fn unfolds_lists_as_kubectl_get_prints_them() {
        let indented: String = VM.lines().map(|l| format!("  {l}\n")).collect();
        let text = format!("apiVersion: v1\nkind: List\nitems:\n-{}", &indented[1..]);
        let (manifests, errors) = parse("list.yaml", &text);
        assert!(errors.is_empty(), "{:?}", messages(&errors));
        assert_eq!(manifests.vms.len(), 1);
    }

    #[test]
    fn names_unknown_fields_type_errors_and_broken_rules_with_their_location() {
        let text = "apiVersion: catalyst.io/v1alpha1
kind: CatalystVM
metadata: {name: a, namespace: team}
spec: {cpu: 0, memroy: 1Gi, memory: 8Gi, bootDisk: {containerDisk: {image: img}}}
---
apiVersion: catalyst.io/v1alpha1
kind: ServiceGroup
metadata: {name: g}
spec: {vm: a, replicas: three, cpu: 1, memory: 1Gi, template: {image: i}}
";
        let (manifests, errors) = parse("bad.yaml", text);
        assert_eq!(manifests.vms.len() + manifests.groups.len(), 0);
        assert_eq!(
            messages(&errors),
            [
                "bad.yaml (document 1): CatalystVM team/a: spec.cpu = 0: should be greater than or equal to 1",
                "bad.yaml (document 1): CatalystVM team/a: spec.memroy: unknown field",
                "bad.yaml (document 1): CatalystVM team/a: spec.node.reservedCpu = 1: node.reservedCpu must be less than the VM's cpu",
                "bad.yaml (document 2): ServiceGroup default/g: spec.replicas: expected integer",
                "bad.yaml (document 2): ServiceGroup default/g: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ]
        );
    }

    #[test]
    fn reports_every_schema_error_of_an_object_at_once() {
        // A missing bootDisk does not hide cpu: 0, nor a second unknown field the first.
        let text = "apiVersion: catalyst.io/v1alpha1
kind: CatalystVM
metadata: {name: a}
spec: {cpu: 0, memory: 8Gi, colour: red, node: {reservedCpu: 0, flavour: big}}
";
        let (manifests, errors) = parse("many.yaml", text);
        assert!(manifests.vms.is_empty());
        let prefix = "many.yaml (document 1): CatalystVM default/a: ";
        assert_eq!(
            messages(&errors),
            [
                "spec.bootDisk: required field missing",
                "spec.colour: unknown field",
                "spec.cpu = 0: should be greater than or equal to 1",
                "spec.node.flavour: unknown field",
                "spec.node.reservedCpu = 0: should be greater than or equal to 1",
                schema::RULES_NOT_CHECKED,
            ]
            .map(|m| format!("{prefix}{m}"))
        );
    }

    #[test]
    fn refuses_an_object_defined_twice() {
        let (manifests, errors) = parse("dup.yaml", &format!("{VM}---\n{VM}"));
        assert_eq!(manifests.vms.len(), 1);
        assert_eq!(
            messages(&errors),
            ["dup.yaml (document 2): CatalystVM default/a is defined twice (first in dup.yaml (document 1))"]
        );
    }

    #[test]
    fn reports_yaml_syntax_errors_and_missing_names() {
        let (_, errors) = parse("broken.yaml", "kind: [unclosed\n");
        assert!(matches!(errors.as_slice(), [ManifestError::Yaml { .. }]), "{:?}", messages(&errors));
        let (_, errors) = parse("anon.yaml", &VM.replace("metadata: {name: a}", "metadata: {}"));
        assert!(messages(&errors).iter().any(|m| m.ends_with("metadata.name is required")), "{:?}", messages(&errors));
    }

    #[test]
    fn refuses_collections_nested_past_the_limit_where_they_pass_it() {
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let (_, errors) = parse("deep.yaml", &format!("{VM}---\n{deep}"));
        assert_eq!(
            messages(&errors),
            [
                "deep.yaml (document 2): not valid YAML: line 6 column 68: recursion limit exceeded (nested deeper than 64 levels)"
            ]
        );
    }

    #[test]
    fn refuses_input_past_the_size_limit_before_reading_it() {
        let dir = std::env::temp_dir().join(format!("catalyst-manifest-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.yaml"), VM).unwrap();
        let big = std::fs::File::create(dir.join("b.yaml")).unwrap();
        big.set_len(crate::yaml::MAX_INPUT_BYTES).unwrap();
        let (manifests, errors) = load(std::slice::from_ref(&dir));
        assert_eq!(manifests.vms.len(), 1, "what came before the limit is read");
        let b = dir.join("b.yaml").display().to_string();
        assert_eq!(
            messages(&errors),
            [format!(
                "{b}: 4194304 bytes would take the input past 4194304 bytes (4 MiB), the most one run reads; split the layout"
            )]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reports_unreadable_paths() {
        let (_, errors) = load(&[PathBuf::from("/nonexistent/catalyst")]);
        assert!(matches!(errors.as_slice(), [ManifestError::Read { .. }]));
    }
}
